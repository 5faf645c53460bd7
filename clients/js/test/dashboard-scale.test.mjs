// The dashboard with more than a thousand tasks, created through the API of a real server before
// and after the page loads: the counts count every task, the finished list shows only the newest
// 200 with a line for the rest, a filter shows only its status (and the rest it leaves out), a
// removal brings the next finished task in, and a 300 KB result is kept as a short preview. The
// longest animation-frame callback is reported, not asserted (no timed assertions).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';

import { launchBrowser } from './support/browser.mjs';
import { TIMEOUT, startServer } from './support/server.mjs';

let browser = null;
before(async () => {
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
});

/** Runs `fn(0..n-1)`, `width` at a time. */
async function pool(n, width, fn) {
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < n) await fn(next++);
  }));
}

const pad = (k) => String(k).padStart(4, '0');

test('1,200 tasks: counts of all, the newest 200 finished shown, filters, removals, short previews', { timeout: 120000 }, async (t) => {
  const server = await startServer([]);
  t.after(() => server.kill());
  // Before the page: 400 completed, 200 pending.
  await pool(600, 16, async (k) => {
    await server.create(`old-${pad(k)}`);
    if (k < 400) await server.complete(`old-${pad(k)}`, { n: k });
  });

  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  context.setDefaultTimeout(TIMEOUT);
  t.after(() => context.close());
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e));
  await page.addInitScript(() => {
    window.frameMs = [];
    const raf = window.requestAnimationFrame.bind(window);
    window.requestAnimationFrame = (cb) => raf((ts) => {
      const t0 = performance.now();
      cb(ts);
      window.frameMs.push(performance.now() - t0);
    });
  });
  const count = (k) => page.locator(`[data-count="${k}"]`).textContent();
  await page.goto(`${server.url}/`);
  await page.waitForFunction(() => document.querySelector('[data-count="all"]').textContent === '600', null, { timeout: 30000 });
  const first = await page.evaluate(() => Math.max(...window.frameMs));

  // Live: 600 more; every sixth fails, the odd ones complete, the rest run. Then one large result.
  await pool(600, 16, async (k) => {
    const id = `new-${pad(k)}`;
    await server.create(id);
    if (k % 6 === 0) await server.fail(id, 'broken');
    else if (k % 2 === 1) await server.complete(id, { n: k });
    else await server.update(id, { status: 'running', progress: 30, stage: 'working' });
  });
  await server.create('big');
  await server.complete('big', 'x'.repeat(300000));
  await page.waitForFunction(() => document.querySelector('[data-count="completed"]').textContent === '701', null, { timeout: 60000 });
  const live = await page.evaluate(() => Math.max(...window.frameMs));
  t.diagnostic(`longest frame callback: ${Math.round(first)} ms for 600 snapshots, ${Math.round(live)} ms while 601 tasks came live`);

  assert.deepEqual(
    await Promise.all(['all', 'pending', 'running', 'completed', 'failed'].map(count)),
    ['1201', '200', '200', '701', '100'],
  );
  const shown = () => page.evaluate(() => ({
    active: [...document.querySelectorAll('#active .task')].map((b) => b.dataset.status),
    finished: [...document.querySelectorAll('#finished .task')].filter((b) => !b.hidden).map((b) => b.dataset.status),
    finishedBoxes: document.querySelectorAll('#finished .task').length,
    finishedCount: document.getElementById('finished-count').textContent,
    more: document.getElementById('finished-more')?.hidden === false ? document.getElementById('finished-more').textContent : '',
  }));
  let now = await shown();
  assert.equal(now.active.length, 400, 'every task in progress has its box');
  assert.equal(now.finishedBoxes, 200, 'the newest 200 finished tasks, not 801');
  assert.equal(now.finishedCount, '801');
  assert.match(now.more, /^601 more\b/);
  // The newest finished first: the large result, kept as a short preview.
  const top = await page.evaluate(() => {
    const b = document.querySelector('#finished .task');
    return { id: b.dataset.taskId, title: b.querySelector('.detail').title.length };
  });
  assert.equal(top.id, 'big');
  assert.ok(top.title <= 220, `a preview of ${top.title} characters`);

  // A filter: only its status, and the rest of its count in the "more" line.
  await page.click('[data-filter="failed"]');
  now = await shown();
  assert.equal(now.active.length, 400, 'the active boxes stay, hidden');
  assert.equal(await page.locator('#active .task:not([hidden])').count(), 0);
  assert.ok(now.finished.length > 0 && now.finished.every((s) => s === 'failed'), `shown: ${now.finished}`);
  assert.equal(now.finishedCount, '100');
  const failedLeft = 100 - now.finished.length;
  assert.equal(now.more, failedLeft === 0 ? '' : `${failedLeft} more, older, not shown`);
  await page.click('[data-filter="running"]');
  now = await shown();
  assert.equal(await page.locator('#active .task:not([hidden])').count(), 200);
  assert.equal(now.finished.length, 0);
  await page.click('[data-filter="all"]');

  // Removing a shown finished task brings the next one in.
  await server.remove('big');
  await page.waitForFunction(() => document.querySelector('[data-count="all"]').textContent === '1200');
  now = await shown();
  assert.equal(now.finishedBoxes, 200);
  assert.match(now.more, /^600 more\b/);
  assert.equal(await page.locator('[data-task-id="big"]').count(), 0);
  assert.deepEqual(errors, []);
});
