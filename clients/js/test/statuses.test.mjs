// What the client does on each HTTP answer. Answers the real server cannot be made to give on cue
// (503 with exactly `Retry-After: 2`, 429, 500, 204 on a resume, a wrong content type) are
// answered by `page.route` in the browser; every other request goes on to the real server.
// Subscribe tokens (401/403 and per-task refusals) use the real server.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { browserSuite, quiet } from './support/setup.mjs';

const setup = browserSuite();

/** Answers the page's stream requests with `answers` in turn (`null`: on to the real server). */
async function answerStreams(page, answers) {
  const seen = [];
  await page.route(/\/api\/brand-monitor\/progress/, async (route) => {
    const answer = answers[seen.length] ?? null;
    seen.push({ at: Date.now(), headers: await route.request().allHeaders() });
    if (answer === null) await route.continue();
    else await route.fulfill(answer);
  });
  return seen;
}

const busy = (status, retryAfter) => ({
  status,
  headers: { 'Retry-After': String(retryAfter), 'Content-Type': 'application/json' },
  body: JSON.stringify({ error: { code: 'server_busy', message: 'The server is busy.' } }),
});

for (const [status, seconds] of [[503, 2], [429, 1]]) {
  test(`${status} with Retry-After: ${seconds} waits at least ${seconds} s, then follows`, async (t) => {
    const { server, page } = await setup(t);
    await server.create('busy-task');
    const seen = await answerStreams(page, [busy(status, seconds)]);
    // A backoff of 50 ms would come back long before the server's wish.
    await page.evaluate(() => follow('busy-task', { reconnectDelay: 50 }));
    await page.waitForFunction(() => snap(0).connectionState === 'reconnecting');
    assert.equal(await page.evaluate(() => snap(0).error.code), 'server_busy');
    await page.waitForFunction(() => snap(0).isConnected, null, { timeout: 15000 });
    assert.equal(seen.length, 2);
    const waited = seen[1].at - seen[0].at;
    assert.ok(waited >= seconds * 1000, `waited ${waited} ms`);
    assert.equal(await page.evaluate(() => snap(0).reconnectAttempts), 1);
    await server.complete('busy-task', 1);
    await page.waitForFunction(() => snap(0).status === 'completed');
  });
}

test('5xx backs off: reconnectDelay doubled per attempt, attempts counted, then follows', async (t) => {
  const { server, page } = await setup(t);
  await server.create('flaky');
  const error = { status: 500, contentType: 'text/plain', body: 'oops' };
  const seen = await answerStreams(page, [error, error, error]);
  await page.evaluate(() => follow('flaky', { reconnectDelay: 400, maxReconnectDelay: 5000, maxReconnectAttempts: 5 }));
  await page.waitForFunction(() => snap(0).isConnected);
  assert.equal(seen.length, 4);
  const gaps = [1, 2, 3].map((i) => seen[i].at - seen[i - 1].at);
  // Nominal 400, 800, 1600 ms, each up to 30 % shorter at random: every gap is longer than the one before.
  assert.ok(gaps[0] >= 280 && gaps[1] > gaps[0] && gaps[2] > gaps[1], `gaps ${gaps}`);
  const attempts = await page.evaluate(() => recs[0].states.map((s) => s.reconnectAttempts));
  assert.deepEqual([...new Set(attempts)], [0, 1, 2, 3]);
  assert.equal(await page.evaluate(() => snap(0).reconnectAttempts), 3);
  assert.equal(await page.evaluate(() => snap(0).error), null, 'the error clears once connected');
  assert.deepEqual(await page.evaluate(() => calls(0, 'error')), [], 'trouble being retried is not an onError');
});

test('a 204 on a resume ends following: no error, no retry', async (t) => {
  const { server, page, proxy } = await setup(t, { proxy: true });
  await server.create('ended');
  await server.update('ended', { status: 'running', progress: 60 });
  const seen = await answerStreams(page, [null, { status: 204 }]);
  await page.evaluate(() => follow('ended', { reconnectDelay: 50 }));
  await page.waitForFunction(() => snap(0).progress === 60);
  const lastId = await page.evaluate(() => snap(0).lastEventId);
  proxy.cutAll();
  await page.waitForFunction(() => snap(0).connectionState === 'closed');
  assert.equal(seen[1].headers['last-event-id'], lastId);
  const state = await page.evaluate(() => snap(0));
  assert.equal(state.error, null);
  assert.equal(state.progress, 60);
  await quiet(500);
  assert.equal(seen.length, 2);
  assert.deepEqual(await page.evaluate(() => calls(0).filter((c) => c[0] === 'error' || c[0] === 'complete')), []);
});

test('disconnect() during a pending retry cancels it', async (t) => {
  const { server, page } = await setup(t);
  await server.create('waiting');
  const seen = await answerStreams(page, [{ status: 502, body: '' }]);
  await page.evaluate(() => follow('waiting', { reconnectDelay: 300 }));
  await page.waitForFunction(() => snap(0).connectionState === 'reconnecting');
  await page.evaluate(() => recs[0].client.disconnect());
  await quiet(900);
  assert.equal(seen.length, 1);
  assert.equal(await page.evaluate(() => snap(0).connectionState), 'closed');
});

test('a 200 that is not an event stream is final', async (t) => {
  const { server, page } = await setup(t);
  await server.create('proxied');
  const seen = await answerStreams(page, [{ status: 200, contentType: 'text/html', body: '<h1>Login</h1>' }]);
  await page.evaluate(() => follow('proxied', { reconnectDelay: 50 }));
  await page.waitForFunction(() => snap(0).connectionState === 'closed');
  assert.equal(await page.evaluate(() => snap(0).error.code), 'bad_content_type');
  await quiet(400);
  assert.equal(seen.length, 1);
});

test('subscribe tokens: sent in order; a wrong one refuses its task alone; all wrong is a final 403', async (t) => {
  const { server, page, streams } = await setup(t, { publishToken: 'publisher', args: ['--require-subscribe-token'] });
  const good = await server.create('tok-good');
  const other = await server.create('tok-other');
  await server.create('tok-bad');
  await page.evaluate(
    ([a, b]) => {
      follow('tok-good', { token: a });
      follow('tok-bad', { token: 'wrong' });
      follow('tok-other', { token: b });
    },
    [good.subscribeToken, other.subscribeToken],
  );
  await page.waitForFunction(() => snap(1).connectionState === 'closed' && snap(0).isConnected && snap(2).isConnected);
  const url = new URL(streams[0].url);
  assert.deepEqual(url.searchParams.get('tasks').split(','), ['tok-good', 'tok-bad', 'tok-other']);
  assert.deepEqual(url.searchParams.get('tokens').split(','), [good.subscribeToken, 'wrong', other.subscribeToken]);
  assert.deepEqual(await page.evaluate(() => calls(1, 'error')), [['error', 'token_invalid', null]]);
  await server.complete('tok-good', 'a');
  await server.complete('tok-other', 'b');
  await page.waitForFunction(() => snap(0).status === 'completed' && snap(2).status === 'completed');
  assert.equal(streams.length, 1);

  await page.evaluate(() => follow('tok-bad', { token: 'still-wrong', reconnectDelay: 50 }));
  await page.waitForFunction(() => snap(3).connectionState === 'closed');
  assert.equal(await page.evaluate(() => snap(3).error.code), 'token_invalid');
  await quiet(400);
  assert.equal(streams.length, 2, 'a 403 is not retried');
});
