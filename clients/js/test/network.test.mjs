// Lost connections against the real server: a cut connection resumes with Last-Event-ID and
// misses no change; attempts run out; offline waits for online; a page that comes back (visible,
// restored) reconnects at once; a silent stream is taken as dead. Connections are cut by a TCP
// proxy in front of the server, or by killing the server.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { browserSuite, quiet } from './support/setup.mjs';
import { waitFor } from './support/server.mjs';

const setup = browserSuite();

/** The `progress` events in a stream's text, as [id, taskId, progress]. */
function progressEvents(text) {
  return [...text.matchAll(/event: progress\nid: (\d+)\ndata: (.*)\n/g)].map(([, id, data]) => {
    const task = JSON.parse(data);
    return [Number(id), task.taskId, task.progress];
  });
}

test('a cut connection resumes with Last-Event-ID and misses no change', async (t) => {
  const { server, page, proxy, streams, headers } = await setup(t, { proxy: true });
  await server.create('alpha');
  await server.create('beta');
  await page.evaluate(() => {
    const options = { reconnectDelay: 150, maxReconnectDelay: 300, maxReconnectAttempts: Infinity };
    follow('alpha', options);
    follow('beta', options);
  });
  await page.waitForFunction(() => snap(0).isConnected && snap(1).status === 'pending');
  await server.update('alpha', { status: 'running', progress: 10 });
  await page.waitForFunction(() => snap(0).progress === 10);
  const lastId = await page.evaluate(() => snap(0).lastEventId);

  // The network goes away: the live connection is cut and new ones are refused.
  proxy.block();
  proxy.cutAll();
  await page.waitForFunction(() => snap(0).connectionState === 'reconnecting');
  await waitFor('a refused attempt', () => proxy.refused > 0);
  await server.update('alpha', { progress: 20 });
  await server.update('alpha', { progress: 30, stage: 'while away' });
  proxy.unblock();

  await page.waitForFunction(() => snap(0).progress === 30 && snap(0).isConnected);
  const resumed = streams.length - 1;
  assert.equal((await headers(resumed))['last-event-id'], lastId);
  // The resumed stream carried alpha's newest snapshot and nothing of beta, which did not change.
  const sent = progressEvents(proxy.texts().at(-1));
  assert.deepEqual(sent.map(([, task, progress]) => [task, progress]), [['alpha', 30]]);
  assert.ok(sent[0][0] > Number(lastId));
  assert.equal(await page.evaluate(() => snap(0).stage), 'while away');
  assert.equal(await page.evaluate(() => calls(1, 'progress').length), 1, 'beta saw its snapshot once');

  // And every later change of either task arrives.
  await server.update('beta', { status: 'running', progress: 50 });
  await server.complete('alpha', 'a');
  await server.complete('beta', 'b');
  await page.waitForFunction(() => snap(0).status === 'completed' && snap(1).status === 'completed');
  assert.deepEqual(await page.evaluate(() => calls(1, 'progress').map((c) => c[2])), [0, 50, 100]);
  assert.equal(await page.evaluate(() => calls(0, 'complete').length), 1);
  assert.equal(await page.evaluate(() => snap(0).reconnectAttempts > 0), true);
});

test('the attempts run out after maxReconnectAttempts: onError once, then nothing', async (t) => {
  const { server, page, streams } = await setup(t);
  await server.create('doomed');
  await page.evaluate(() => follow('doomed', { reconnectDelay: 100, maxReconnectAttempts: 2 }));
  await page.waitForFunction(() => snap(0).isConnected && snap(0).status !== null);
  await server.kill();
  await page.waitForFunction(() => snap(0).connectionState === 'closed');
  const state = await page.evaluate(() => snap(0));
  assert.equal(state.reconnectAttempts, 2);
  assert.equal(state.error.code, 'network_error');
  assert.match(state.error.message, /gave up after 2 reconnect attempts/);
  await quiet(800);
  assert.equal(streams.length, 3, 'the first connect and 2 reconnect attempts');
  assert.deepEqual(await page.evaluate(() => calls(0, 'error')), [['error', 'network_error', null]]);
});

test('offline: no attempt is wasted until the page is online again, then it resumes at once', async (t) => {
  const { server, page, proxy, context, streams, headers } = await setup(t, { proxy: true });
  await server.create('roaming');
  // A retry delay of a minute: only the `online` event can bring it back within the test.
  await page.evaluate(() => follow('roaming', { reconnectDelay: 60000, maxReconnectAttempts: 1 }));
  await page.waitForFunction(() => snap(0).isConnected && snap(0).status !== null);
  const lastId = await page.evaluate(() => snap(0).lastEventId);
  await context.setOffline(true);
  proxy.cutAll();
  await page.waitForFunction(() => snap(0).connectionState === 'reconnecting');
  await server.update('roaming', { status: 'running', progress: 33 });
  await quiet(300);
  assert.equal(streams.length, 1, 'no attempt while offline');
  await context.setOffline(false);
  await page.waitForFunction(() => snap(0).progress === 33 && snap(0).isConnected);
  assert.equal(streams.length, 2);
  assert.equal((await headers(1))['last-event-id'], lastId);
});

test('a page that becomes visible, or is restored from the back-forward cache, reconnects a lost stream at once', async (t) => {
  const { server, page, proxy, streams } = await setup(t, { proxy: true });
  await server.create('mobile');
  await page.evaluate(() => follow('mobile', { reconnectDelay: 60000, maxReconnectAttempts: Infinity }));
  await page.waitForFunction(() => snap(0).isConnected && snap(0).status !== null);

  proxy.cutAll();
  await page.waitForFunction(() => snap(0).connectionState === 'reconnecting');
  await server.update('mobile', { status: 'running', progress: 40 });
  await page.evaluate(() => {
    Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'hidden' });
    document.dispatchEvent(new Event('visibilitychange'));
  });
  assert.equal(streams.length, 1, 'becoming hidden does nothing');
  await page.evaluate(() => {
    Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'visible' });
    document.dispatchEvent(new Event('visibilitychange'));
  });
  await page.waitForFunction(() => snap(0).progress === 40 && snap(0).isConnected);
  assert.equal(streams.length, 2);

  proxy.cutAll();
  await page.waitForFunction(() => snap(0).connectionState === 'reconnecting');
  await server.update('mobile', { progress: 80 });
  await page.evaluate(() => window.dispatchEvent(new PageTransitionEvent('pageshow', { persisted: true })));
  await page.waitForFunction(() => snap(0).progress === 80 && snap(0).isConnected);
  assert.equal(streams.length, 3);
});

test('a stream silent for idleTimeout is taken as dead and resumed', async (t) => {
  // The server's heartbeat is 30 s; a 1 s watchdog must give up on it and come back.
  const { server, page, streams, headers } = await setup(t);
  await server.create('quiet-task');
  await page.evaluate(() => follow('quiet-task', { idleTimeout: 1000, reconnectDelay: 50 }));
  await page.waitForFunction(() => snap(0).isConnected && snap(0).status !== null);
  const lastId = await page.evaluate(() => snap(0).lastEventId);
  await waitFor('a reconnect after the silence', () => streams.length >= 2);
  assert.equal((await headers(1))['last-event-id'], lastId);
  await page.waitForFunction(() => snap(0).isConnected && snap(0).status !== null);
  await page.evaluate(() => recs[0].client.disconnect());
  await server.activeStreams(0);
  assert.ok((await server.health()).totalConnections >= 2);
});

test('the attempt count starts again only once a connection has stayed open for a while', async (t) => {
  const { server, page, proxy, streams } = await setup(t, { proxy: true });
  await server.create('stable');
  await page.evaluate(() => follow('stable', { reconnectDelay: 50, maxReconnectAttempts: 1 }));
  await page.waitForFunction(() => snap(0).isConnected && snap(0).status !== null);
  proxy.cutAll();
  await page.waitForFunction(() => snap(0).reconnectAttempts === 1 && snap(0).isConnected);
  // Open for 10 s: the one attempt allowed is given back.
  await page.waitForFunction(() => snap(0).reconnectAttempts === 0, null, { timeout: 20000 });
  assert.equal(await page.evaluate(() => snap(0).isConnected), true);
  proxy.cutAll();
  await page.waitForFunction(() => snap(0).reconnectAttempts === 1 && snap(0).isConnected);
  // Cut again at once: that connection was not stable, so the attempts are spent.
  proxy.cutAll();
  await page.waitForFunction(() => snap(0).connectionState === 'closed');
  assert.match(await page.evaluate(() => snap(0).error.message), /gave up after 1 reconnect attempt\b/);
  assert.equal(streams.length, 3);
});
