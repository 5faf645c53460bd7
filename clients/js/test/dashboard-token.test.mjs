// The dashboard never gets stuck on a publish token: one no request can carry (Latin-1, or beyond)
// kept from an earlier visit is forgotten and asked for again with an error; the form takes
// printable ASCII only; the right token still works after. The health poll runs one request at a
// time and gives up on a hung one, so it never holds more than one of the browser's connections.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';

import { launchBrowser } from './support/browser.mjs';
import { TIMEOUT, startServer, waitFor } from './support/server.mjs';

let browser = null;
before(async () => {
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
});

async function newPage(t) {
  const context = await browser.newContext();
  context.setDefaultTimeout(TIMEOUT);
  t.after(() => context.close());
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e));
  t.after(() => assert.deepEqual(errors, [], 'no script error on the page'));
  return page;
}

const KEY = 'sse-progress.publishToken';

test('a stored token no request can carry brings the form back with an error, and is forgotten', { timeout: 60000 }, async (t) => {
  const server = await startServer(['--publish-token', 'right'], { publishToken: 'right' });
  t.after(() => server.kill());
  await server.create('kept');
  const page = await newPage(t);
  await page.goto(`${server.url}/`);
  await page.locator('#token').waitFor({ state: 'visible' });

  for (const bad of ['pässwörd', 'токен', 'has space']) {
    await page.evaluate(([key, value]) => sessionStorage.setItem(key, value), [KEY, bad]);
    await page.reload();
    await page.locator('#token-error').filter({ hasText: 'refused' }).waitFor();
    assert.equal(await page.locator('#token').isVisible(), true, bad);
    assert.equal(await page.locator('#link').textContent(), 'token needed', bad);
    assert.equal(await page.evaluate((key) => sessionStorage.getItem(key), KEY), null, `${bad} forgotten`);
  }

  // The form does not take one either.
  await page.fill('#token-input', 'pässwörd');
  await page.click('#token button[type="submit"]');
  assert.equal(await page.locator('#token').isVisible(), true);
  assert.equal(await page.evaluate((key) => sessionStorage.getItem(key), KEY), null);
  assert.match(await page.locator('#token-rule').textContent(), /printable ASCII/i);

  await page.fill('#token-input', 'right');
  await page.click('#token button[type="submit"]');
  await page.locator('.task[data-task-id="kept"]').waitFor();
  assert.equal(await page.locator('#link').textContent(), 'live');
});

test('a hung health request is given up, and never more than one runs', { timeout: 60000 }, async (t) => {
  const server = await startServer([]);
  t.after(() => server.kill());
  await server.create('a');
  const page = await newPage(t);
  // Every health request is held unanswered; one that the page gives up fails.
  let started = 0;
  let running = 0;
  let atOnce = 0;
  const isHealth = (request) => new URL(request.url()).pathname === '/api/brand-monitor/health';
  await page.route('**/api/brand-monitor/health', () => {
    started++;
    running++;
    atOnce = Math.max(atOnce, running);
  });
  page.on('requestfailed', (request) => {
    if (isHealth(request)) running--;
  });
  await page.goto(`${server.url}/`);
  await page.waitForFunction(() => document.getElementById('link').textContent === 'live');
  // The first poll is given up after 5 s; the next one comes on a later tick.
  await waitFor('a second health request', () => started >= 2, 20000);
  assert.equal(atOnce, 1, 'one health request at a time');
  await page.locator('#health-status').filter({ hasText: 'unreachable' }).waitFor();
});
