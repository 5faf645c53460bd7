// Every retry waits at least half a second and backs off, whatever a server says: `retry: 0`, or
// `Retry-After: 0` on every 503, must not make an instant reconnect loop. The watchdog takes
// `idleTimeout: Infinity` (or a delay past what timers take) as no watchdog, not as "fire now", and
// an endless error body is read only to 64 KiB. Against small misbehaving servers in this process.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';

import { createSSEProgress, followEverything } from '../sse-progress.js';
import { quiet } from './support/setup.mjs';
import { waitFor } from './support/server.mjs';

/** A server on port 0 answering with `handler`; records the time of every request. */
async function serve(t, handler) {
  const hits = [];
  const server = http.createServer((req, res) => {
    hits.push(Date.now());
    handler(req, res);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  return { hits, url: `http://127.0.0.1:${server.address().port}` };
}

const endsAfterRetry0 = (req, res) => {
  res.writeHead(200, { 'Content-Type': 'text/event-stream' });
  res.end('retry: 0\n\n');
};

test('retry: 0 from the server does not make the feed reconnect in a loop', async (t) => {
  const { hits, url } = await serve(t, endsAfterRetry0);
  const feed = followEverything({ baseUrl: url });
  t.after(() => feed.close());
  await quiet(2000);
  // Backoff from a floor of 500 ms: requests at 0, ~0.5 and ~1.5 s.
  assert.ok(hits.length >= 2 && hits.length <= 5, `${hits.length} requests in 2 s`);
});

test('retry: 0 from the server does not make a task stream reconnect in a loop either', async (t) => {
  const { hits, url } = await serve(t, endsAfterRetry0);
  const follower = createSSEProgress('t1', { baseUrl: url, maxReconnectAttempts: Infinity });
  t.after(() => follower.disconnect());
  await quiet(2000);
  assert.ok(hits.length >= 2 && hits.length <= 5, `${hits.length} requests in 2 s`);
  const gaps = hits.slice(1).map((at, i) => at - hits[i]);
  assert.ok(gaps.every((gap) => gap >= 450), `gaps ${gaps}`);
});

test('a 503 with Retry-After: 0 on every answer is retried with a growing backoff, not every half second', async (t) => {
  const { hits, url } = await serve(t, (req, res) => {
    res.writeHead(503, { 'Content-Type': 'application/json', 'Retry-After': '0' });
    res.end('{"error":{"code":"server_busy","message":"busy"}}');
  });
  const errors = [];
  const feed = followEverything({ baseUrl: url, reconnectDelay: 500, onError: (e, final) => errors.push([e.code, final]) });
  t.after(() => feed.close());
  await quiet(3500);
  // The backoff of 500 ms doubled: 0, >=0.35, >=1.05, >=2.45 s (the spread of Retry-After: 0 is under it).
  assert.ok(hits.length >= 2 && hits.length <= 4, `${hits.length} requests in 3.5 s`);
  const gaps = hits.slice(1).map((at, i) => at - hits[i]);
  for (let i = 1; i < gaps.length; i++) assert.ok(gaps[i] > gaps[i - 1] * 1.2, `gaps ${gaps}`);
  assert.ok(errors.every(([code, final]) => code === 'server_busy' && final === false));
});

test('idleTimeout: Infinity (or past 2^31-1 ms) means no watchdog, not one that fires at once', async (t) => {
  const { url } = await serve(t, (req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/event-stream' });
    res.write(': open\n\n'); // and then silence
  });
  const real = globalThis.setTimeout;
  let timers = 0;
  globalThis.setTimeout = (fn, ms, ...args) => {
    timers++;
    return real(fn, ms, ...args);
  };
  t.after(() => { globalThis.setTimeout = real; });
  const states = [];
  const feed = followEverything({ baseUrl: url, idleTimeout: Infinity, onState: (s) => states.push(s) });
  const huge = followEverything({ baseUrl: url, idleTimeout: 2 ** 32 });
  const task = createSSEProgress('quiet', { baseUrl: url, idleTimeout: Infinity });
  t.after(() => {
    feed.close();
    huge.close();
    task.disconnect();
  });
  await waitFor('the streams open', () => states.includes('open') && task.getSnapshot().isConnected);
  const before = timers;
  await quiet(1000);
  // A watchdog that fires at once re-arms itself thousands of times a second.
  assert.ok(timers - before < 20, `${timers - before} timers in 1 s`);
  assert.deepEqual(states, ['connecting', 'open']);
  assert.equal(task.getSnapshot().connectionState, 'open');
});

test('an error answer with an endless body is read only to 64 KiB, then retried', async (t) => {
  const { hits, url } = await serve(t, (req, res) => {
    res.writeHead(500, { 'Content-Type': 'application/json' });
    res.write('x'.repeat(128 * 1024)); // and never ends
  });
  const errors = [];
  const feed = followEverything({ baseUrl: url, reconnectDelay: 500, onError: (e, final) => errors.push([e.code, final]) });
  t.after(() => feed.close());
  await waitFor('a retry', () => hits.length >= 2, 5000);
  assert.deepEqual(errors[0], ['http_500', false]);
});
