// followEverything against the real server: every task over one all-tasks stream (new tasks and
// removals included), the publish token as `Authorization: Bearer`, a resume after a loss that
// sends only what changed, and the connection rules it shares with the task streams (retries
// without limit by default, maxReconnectAttempts, Retry-After, final 4xx, close(), wake-ups).
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { browserSuite, quiet } from './support/setup.mjs';
import { waitFor } from './support/server.mjs';

const setup = browserSuite();

/** Answers the page's next `count` stream requests with `answer`; later ones go to the server. */
async function refuseStreams(page, count, answer) {
  const seen = [];
  await page.route(/\/api\/brand-monitor\/progress/, async (route) => {
    seen.push(Date.now());
    if (seen.length <= count) await route.fulfill(answer);
    else await route.continue();
  });
  return seen;
}

const serverError = { status: 500, contentType: 'text/plain', body: 'oops' };

test('the feed follows every task over one stream: snapshots, changes, new tasks, removals', async (t) => {
  const { server, page, streams } = await setup(t);
  await server.create('one');
  await server.create('two');
  await server.update('one', { status: 'running', progress: 10 });
  await page.evaluate(() => feed());
  await page.waitForFunction(() => feedState() === 'open' && feedTasks.size === 2);
  assert.deepEqual((await page.evaluate(() => feedOf('connected')[0][1])).sort(), ['one', 'two']);

  await server.create('three');
  await server.update('two', { status: 'running', progress: 50 });
  await server.complete('one', 'report');
  await server.remove('three');
  await page.waitForFunction(() => feedOf('removed').length === 1);
  const known = await page.evaluate(() => [...feedTasks.values()].map((t) => [t.taskId, t.status, t.progress]).sort());
  assert.deepEqual(known, [['one', 'completed', 100], ['two', 'running', 50]]);
  assert.deepEqual(await page.evaluate(() => feedOf('task').filter((c) => c[1] === 'three')), [['task', 'three', 'pending', 0]]);
  assert.deepEqual(await page.evaluate(() => feedOf('removed')), [['removed', 'three']]);
  assert.equal(streams.length, 1, 'one request for every task');
  assert.equal(new URL(streams[0].url).search, '', 'the all-tasks stream');
  assert.equal((await server.health()).activeConnections, 1);
  assert.deepEqual(await page.evaluate(() => feedOf('error')), []);

  await page.evaluate(() => feedHandle.close());
  await server.activeStreams(0);
  assert.deepEqual(await page.evaluate(() => feedOf('state').map((c) => c[1])), ['connecting', 'open', 'closed']);
});

test('a publish token goes as Authorization: Bearer; without it, or wrong, the feed stops at once', async (t) => {
  const { server, page, streams, headers } = await setup(t, { publishToken: 'sekrit' });
  await server.create('private');
  await page.evaluate(() => feed({ reconnectDelay: 50 }));
  await page.waitForFunction(() => feedState() === 'closed');
  assert.equal(await page.evaluate(() => feedOf('unauthorized').length), 1);
  assert.deepEqual(await page.evaluate(() => feedOf('error')), [], 'onUnauthorized takes the refusal');
  // Without onUnauthorized, the refusal is a final error.
  await page.evaluate(() => feed({ token: 'wrong', reconnectDelay: 50, noUnauthorized: true }));
  await page.waitForFunction(() => feedState() === 'closed');
  assert.deepEqual(await page.evaluate(() => feedOf('error')), [['error', 'unauthorized', true]]);
  await quiet(400);
  assert.equal(streams.length, 2, 'no retry after a 401');
  assert.equal((await headers(1)).authorization, 'Bearer wrong');

  await page.evaluate(() => feed({ token: 'sekrit' }));
  await page.waitForFunction(() => feedTasks.has('private') && feedState() === 'open');
  assert.equal((await headers(2)).authorization, 'Bearer sekrit');
});

test('a cut feed resumes with Last-Event-ID: only what changed meanwhile, and removals while away are told', async (t) => {
  const { server, page, proxy, streams, headers } = await setup(t, { proxy: true });
  for (const id of ['a', 'b', 'c']) await server.create(id);
  await page.evaluate(() => feed({ reconnectDelay: 100, maxReconnectDelay: 200 }));
  await page.waitForFunction(() => feedState() === 'open' && feedTasks.size === 3);
  await waitFor('the snapshots on the wire', () => /data: \{"taskId":"c"/.test(proxy.texts()[0]));
  const lastId = [...proxy.texts()[0].matchAll(/^id: (\d+)$/gm)].at(-1)[1];

  proxy.block();
  proxy.cutAll();
  await page.waitForFunction(() => feedState() === 'reconnecting');
  await waitFor('a refused attempt', () => proxy.refused > 0);
  await server.update('a', { status: 'running', progress: 40 });
  await server.remove('b');
  proxy.unblock();

  await page.waitForFunction(() => feedState() === 'open' && feedTasks.get('a')?.progress === 40 && !feedTasks.has('b'));
  assert.equal((await headers(streams.length - 1))['last-event-id'], lastId);
  assert.equal(await page.evaluate(() => feedOf('task').filter((c) => c[1] === 'c').length), 1, 'c was not sent again');
  assert.deepEqual((await page.evaluate(() => feedOf('connected').at(-1)[1])).sort(), ['a', 'c']);
  const errors = await page.evaluate(() => feedOf('error'));
  assert.ok(errors.length > 0 && errors.every(([, , final]) => final === false), 'the losses were retried');
});

test('the feed retries without limit by default; maxReconnectAttempts is honoured; a 404 is final', async (t) => {
  const { page } = await setup(t);
  const seen = await refuseStreams(page, 6, serverError);
  await page.evaluate(() => feed({ reconnectDelay: 20, maxReconnectDelay: 40 }));
  await page.waitForFunction(() => feedState() === 'open');
  assert.equal(seen.length, 7, '6 refusals (twice the default of a task stream), then the stream');
  assert.deepEqual(await page.evaluate(() => feedOf('error').map((c) => c.slice(1))), Array(6).fill(['http_500', false]));
  await page.evaluate(() => feedHandle.close());

  await page.unroute(/\/api\/brand-monitor\/progress/);
  const limited = await refuseStreams(page, 100, serverError);
  await page.evaluate(() => feed({ reconnectDelay: 20, maxReconnectAttempts: 2 }));
  await page.waitForFunction(() => feedState() === 'closed');
  const last = await page.evaluate(() => feedOf('error').at(-1));
  assert.deepEqual(last.slice(1), ['http_500', true]);
  await quiet(300);
  assert.equal(limited.length, 3, 'the first request and 2 reconnect attempts');

  await page.unroute(/\/api\/brand-monitor\/progress/);
  const gone = await refuseStreams(page, 100, { status: 404, contentType: 'application/json', body: '{"error":{"code":"not_found","message":"No."}}' });
  await page.evaluate(() => feed({ reconnectDelay: 20 }));
  await page.waitForFunction(() => feedState() === 'closed');
  assert.deepEqual(await page.evaluate(() => feedOf('error')), [['error', 'not_found', true]]);
  await quiet(300);
  assert.equal(gone.length, 1);
});

test('the feed waits Retry-After on a 503, and close() during that wait leaves nothing to run', async (t) => {
  const { page } = await setup(t);
  const busy = {
    status: 503,
    headers: { 'Retry-After': '1', 'Content-Type': 'application/json' },
    body: JSON.stringify({ error: { code: 'server_busy', message: 'The server is busy.' } }),
  };
  const seen = await refuseStreams(page, 1, busy);
  // A backoff of 20 ms would come back long before the server's wish.
  await page.evaluate(() => feed({ reconnectDelay: 20 }));
  await page.waitForFunction(() => feedState() === 'open');
  assert.equal(seen.length, 2);
  assert.ok(seen[1] - seen[0] >= 1000, `waited ${seen[1] - seen[0]} ms`);
  await page.evaluate(() => feedHandle.close());

  await page.unroute(/\/api\/brand-monitor\/progress/);
  const again = await refuseStreams(page, 100, busy);
  await page.evaluate(() => feed({ reconnectDelay: 20 }));
  await page.waitForFunction(() => feedState() === 'reconnecting');
  await page.evaluate(() => feedHandle.close());
  await quiet(1800);
  assert.equal(again.length, 1, 'the retry was cancelled');
  assert.equal(await page.evaluate(() => feedState()), 'closed');
});

test('a silent feed is taken as dead and resumed; a page that becomes visible retries a lost one at once', async (t) => {
  const { server, page, proxy, streams, headers } = await setup(t, { proxy: true });
  await server.create('watched');
  // The server's heartbeat is 30 s: a 1 s watchdog gives up on the silence.
  await page.evaluate(() => feed({ idleTimeout: 1000, reconnectDelay: 50 }));
  await page.waitForFunction(() => feedTasks.has('watched'));
  await waitFor('a reconnect after the silence', () => streams.length >= 2);
  assert.match((await headers(1))['last-event-id'] ?? '', /^[0-9]+$/);
  assert.equal(await page.evaluate(() => feedOf('error').find((c) => c[1] === 'stream_timeout')?.[2]), false);
  await page.evaluate(() => feedHandle.close());
  await page.waitForFunction(() => feedState() === 'closed');

  // A retry delay of a minute: only the page's coming back can bring the stream back in time.
  await page.evaluate(() => feed({ reconnectDelay: 60000 }));
  await page.waitForFunction(() => feedState() === 'open');
  const before = streams.length;
  proxy.cutAll();
  await page.waitForFunction(() => feedState() === 'reconnecting');
  await server.update('watched', { status: 'running', progress: 70 });
  await page.evaluate(() => {
    Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'visible' });
    document.dispatchEvent(new Event('visibilitychange'));
  });
  await page.waitForFunction(() => feedTasks.get('watched')?.progress === 70 && feedState() === 'open');
  assert.equal(streams.length, before + 1);
});
