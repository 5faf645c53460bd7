// The dashboard at `/` in Chromium. Against `sse-progress demo` (8 simulated tasks at once): the
// page holds one stream to the server however many tasks; more than 6 tasks are live at once;
// every task seen at the start moves (never backwards) and finishes; the filters show only tasks
// of the chosen status; the health panel shows numbers; new tasks appear. Against a server with a
// publish token: the page asks for it, shows the tasks once given, and a reload does not ask again.
// With SCREENSHOT=1, it saves docs/dashboard.png (1280x800) while more than 6 tasks run.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

import { launchBrowser } from './support/browser.mjs';
import { BIN, TIMEOUT, startServer } from './support/server.mjs';

const SCREENSHOT = fileURLToPath(new URL('../../../docs/dashboard.png', import.meta.url));

/** Simulated tasks take 20 to 40 s: the tasks seen at the start have finished well within this. */
const TASKS_FINISH = 60000;

let browser = null;
before(async () => {
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
});

/** `sse-progress demo` on port 0 with 8 tasks at once; resolves with its address once it prints it. */
async function startDemo(t) {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('SSE_PROGRESS_') && k !== 'DEBUG'));
  // --exit-after-secs: the demo ends by itself even if this process dies before killing it.
  const child = spawn(BIN, ['demo', '--listen', '127.0.0.1:0', '--concurrent', '8', '--exit-after-secs', '180'], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  });
  let output = '';
  child.stderr.setEncoding('utf8').on('data', (text) => { output += text; });
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the demo did not start: ${output}`)), TIMEOUT);
    child.stdout.setEncoding('utf8').on('data', (text) => {
      output += text;
      const found = /sse-progress demo on (http:\/\/\S+)\r?\n/.exec(output);
      if (found) {
        clearTimeout(timer);
        resolve(found[1]);
      }
    });
    exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`the demo exited (${code}) before listening: ${output}`));
    });
  });
  const health = async () => (await fetch(`${url}/api/brand-monitor/health`, { signal: AbortSignal.timeout(TIMEOUT) })).json();
  return { url, health };
}

/** A page of its own context, with the stream requests it makes and its errors recorded. */
async function openDashboard(t, url) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  context.setDefaultTimeout(TIMEOUT);
  t.after(() => context.close());
  const page = await context.newPage();
  const streams = [];
  const refused = [];
  page.on('request', (request) => {
    if (new URL(request.url()).pathname.startsWith('/api/brand-monitor/progress')) streams.push(request);
  });
  page.on('response', (response) => {
    if (new URL(response.url()).pathname.startsWith('/api/brand-monitor/progress') && response.status() !== 200) {
      refused.push(response.status());
    }
  });
  const errors = [];
  page.on('pageerror', (e) => errors.push(e));
  t.after(() => assert.deepEqual(errors, [], 'no script error on the page'));
  await page.goto(`${url}/`);
  return { page, streams, refused };
}

/** What the page shows of each task box: id -> {status, progress, hidden}. */
function boxes(page) {
  return page.evaluate(() => Object.fromEntries([...document.querySelectorAll('.task')].map((b) => [
    b.dataset.taskId,
    { status: b.dataset.status, progress: Number(b.dataset.progress), hidden: b.hidden },
  ])));
}

test('the dashboard follows the demo over one stream: every task moves and finishes, filters, health, new tasks', { timeout: 85000 }, async (t) => {
  const demo = await startDemo(t);
  const { page, streams } = await openDashboard(t, demo.url);

  // Every value each box shows, as the page draws it.
  await page.evaluate(() => {
    window.drawn = {};
    new MutationObserver((changes) => {
      for (const change of changes) {
        const box = change.target;
        if (!box.classList?.contains('task')) continue;
        (window.drawn[box.dataset.taskId] ??= []).push([box.dataset.status, Number(box.dataset.progress)]);
      }
    }).observe(document.body, { subtree: true, attributes: true, attributeFilter: ['data-progress', 'data-status'] });
  });

  await page.waitForFunction(() => document.querySelectorAll('.task[data-status="running"]').length > 6, null, { polling: 100 });
  const start = await boxes(page);
  const initial = Object.keys(start);
  assert.ok(initial.length >= 7, `${initial.length} tasks at the start`);
  const health = await demo.health();
  assert.equal(health.activeConnections, 1, 'one stream for every task');

  await page.waitForFunction((ids) => ids.every((id) => {
    const status = document.querySelector(`.task[data-task-id="${id}"]`)?.dataset.status;
    return status === 'completed' || status === 'failed';
  }), initial, { timeout: TASKS_FINISH, polling: 250 });

  const drawn = await page.evaluate(() => window.drawn);
  for (const id of initial) {
    const seen = drawn[id] ?? [];
    const values = seen.map(([, progress]) => progress);
    assert.ok(new Set(values).size >= 3, `${id} moved step by step: ${values}`);
    assert.ok(Math.max(...values) > start[id].progress, `${id} went past ${start[id].progress}`);
    assert.ok(values.every((v, i) => i === 0 || v >= values[i - 1]), `${id} never went backwards: ${values}`);
    const last = seen.at(-1)[0];
    assert.ok(last === 'completed' || last === 'failed', `${id} ended ${last}`);
    if (last === 'completed') assert.equal(values.at(-1), 100);
  }

  // New tasks have taken the finished ones' places, and more than 6 run at once again.
  await page.waitForFunction(() => document.querySelectorAll('.task[data-status="running"]').length > 6, null, { polling: 100 });
  const now = await boxes(page);
  assert.ok(Object.keys(now).some((id) => !initial.includes(id)), 'new tasks appear');

  // One stream all along, as the server counts it.
  const after = await demo.health();
  assert.equal(after.activeConnections, 1);
  assert.equal(after.totalConnections, 1, 'the server saw one stream in all');
  assert.equal(streams.length, 1, 'the page asked for one stream');

  // The health panel shows the server's numbers.
  await page.waitForFunction(() => /^[1-9][0-9]*$/.test(document.getElementById('t-total').textContent));
  const panel = await page.evaluate(() => Object.fromEntries(
    ['active-streams', 'total', 'healthy', 'unhealthy', 'stale', 'errors', 't-running', 't-completed', 't-failed', 't-pending', 'health-status', 'uptime']
      .map((id) => [id, document.getElementById(id).textContent]),
  ));
  for (const id of ['active-streams', 'total', 'healthy', 'unhealthy', 'stale', 'errors', 't-running', 't-completed', 't-failed', 't-pending']) {
    assert.match(panel[id], /^[0-9]+$/, `${id}: ${panel[id]}`);
  }
  assert.equal(panel['active-streams'], '1');
  assert.equal(panel['health-status'], 'healthy');
  assert.match(panel.uptime, /^[0-9]+ s$/);

  if (process.env.SCREENSHOT === '1') {
    // More than 6 running, with bars in at least four of the five fifths of the way.
    await page.waitForFunction(() => {
      const live = [...document.querySelectorAll('.task[data-status="running"]')].map((b) => Number(b.dataset.progress));
      return live.length > 6 && new Set(live.map((p) => Math.min(4, Math.floor(p / 20)))).size >= 4;
    }, null, { polling: 100, timeout: 30000 });
    await page.screenshot({ path: SCREENSHOT });
  }

  // The filters: only tasks of the chosen status show, all of them.
  for (const status of ['running', 'completed', 'failed', 'pending', 'all']) {
    await page.click(`[data-filter="${status}"]`);
    const shown = await page.evaluate((wanted) => {
      const all = [...document.querySelectorAll('.task')];
      const visible = all.filter((b) => b.checkVisibility());
      return {
        pressed: document.querySelector('[aria-pressed="true"]').dataset.filter,
        wrong: visible.filter((b) => wanted !== 'all' && b.dataset.status !== wanted).map((b) => b.dataset.taskId),
        missing: all.filter((b) => (wanted === 'all' || b.dataset.status === wanted) && !b.checkVisibility()).map((b) => b.dataset.taskId),
        visible: visible.length,
      };
    }, status);
    assert.equal(shown.pressed, status);
    assert.deepEqual(shown.wrong, [], `only ${status} tasks show`);
    assert.deepEqual(shown.missing, [], `every ${status} task shows`);
    if (status === 'running' || status === 'all') assert.ok(shown.visible > 0);
  }
});

test('with a publish token, the dashboard asks for it once and keeps it for the tab', { timeout: 30000 }, async (t) => {
  const server = await startServer(['--publish-token', 'T0ken'], { publishToken: 'T0ken' });
  t.after(() => server.kill());
  await server.create('secret-report', { stage: 'Queued' });
  const { page, streams, refused } = await openDashboard(t, server.url);

  await page.locator('#token').waitFor({ state: 'visible' });
  assert.deepEqual(refused, [401]);
  assert.equal(await page.locator('.task').count(), 0);

  // A wrong token is refused and asked for again.
  await page.fill('#token-input', 'wrong');
  await page.click('#token button[type="submit"]');
  await page.locator('#token-error').filter({ hasText: 'refused' }).waitFor();
  assert.equal(await page.locator('#token').isVisible(), true);

  await page.fill('#token-input', 'T0ken');
  await page.click('#token button[type="submit"]');
  await page.locator('.task[data-task-id="secret-report"]').waitFor();
  assert.equal(await page.locator('#token').isVisible(), false);
  assert.equal((await streams.at(-1).allHeaders()).authorization, 'Bearer T0ken');
  assert.doesNotMatch(streams.at(-1).url(), /T0ken/, 'the token is never in a URL');
  await server.update('secret-report', { status: 'running', progress: 42 });
  await page.locator('.task[data-task-id="secret-report"][data-progress="42"]').waitFor();

  // A reload of the tab: the token is remembered, nothing is asked.
  const before = { streams: streams.length, refused: refused.length };
  await page.reload();
  await page.locator('.task[data-task-id="secret-report"][data-progress="42"]').waitFor();
  assert.equal(await page.locator('#token').isVisible(), false);
  assert.equal(refused.length, before.refused, 'no refusal after the reload');
  assert.equal(streams.length, before.streams + 1);
  await server.activeStreams(1);
});
