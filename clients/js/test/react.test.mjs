// The React hook in a real browser, development React 19 in StrictMode: one stream however many
// mounts and hooks (counted on the server), inline callbacks that never reconnect, an idle hook
// for a null task, and an unmount that leaves no request and no timer.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { browserSuite, quiet } from './support/setup.mjs';

const setup = browserSuite();

test('StrictMode opens exactly one stream (counted on the server); onComplete fires once', async (t) => {
  const { server, page, streams } = await setup(t, { react: true });
  await server.create('strict');
  await page.evaluate(() => mountApp({ tasks: ['strict'] }));
  await page.waitForFunction(() => bars()[0].state === 'open');
  const health = await server.activeStreams(1);
  assert.equal(health.totalConnections, 1);
  assert.equal(streams.length, 1);
  await server.update('strict', { status: 'running', progress: 50, stage: 'Scoring' });
  await page.waitForFunction(() => bars()[0].progress === 50);
  await server.complete('strict', { score: 9 });
  await page.waitForFunction(() => bars()[0].status === 'completed');
  assert.deepEqual(await page.evaluate(() => appLog.filter((e) => e[1] === 'complete')), [['strict', 'complete', { score: 9 }]]);
  assert.equal((await server.health()).totalConnections, 1);
});

test('50 hooks hold one connection, and all complete', async (t) => {
  const { server, page, streams } = await setup(t, { react: true });
  const ids = Array.from({ length: 50 }, (_, i) => `bar-${i}`);
  for (const id of ids) await server.create(id);
  await page.evaluate((tasks) => mountApp({ tasks }), ids);
  await page.waitForFunction(() => bars().every((b) => b.state === 'open' && b.status === 'pending'));
  const health = await server.activeStreams(1);
  assert.equal(health.totalConnections, 1);
  assert.equal(streams.length, 1);
  for (const id of ids) await server.update(id, { status: 'running', progress: 50 });
  await page.waitForFunction(() => bars().every((b) => b.progress === 50));
  for (const id of ids) await server.complete(id, id);
  await page.waitForFunction(() => bars().every((b) => b.status === 'completed' && b.state === 'closed'));
  const completes = await page.evaluate(() => appLog.filter((e) => e[1] === 'complete').map((e) => e[0]).sort());
  assert.deepEqual(completes, [...ids].sort(), 'one onComplete per task');
  await server.activeStreams(0);
  assert.equal((await server.health()).totalConnections, 1);
});

test('inline callbacks never reconnect; a null task is idle and opens nothing', async (t) => {
  const { server, page, streams } = await setup(t, { react: true });
  await server.create('steady');
  await page.evaluate(() => mountApp({ tasks: ['steady', null] }));
  await page.waitForFunction(() => bars()[0].state === 'open');
  for (let i = 0; i < 5; i++) await page.evaluate(() => rerenderApp());
  await server.update('steady', { status: 'running', progress: 64 });
  await page.waitForFunction(() => bars()[0].progress === 64);
  assert.equal(streams.length, 1);
  assert.equal((await server.health()).totalConnections, 1);
  assert.deepEqual(await page.evaluate(() => bars()[1]), { taskId: '', status: '', state: 'idle', progress: 0 });
  // The newest callback got the event (the log is written by whichever render's callback ran).
  assert.deepEqual(await page.evaluate(() => appLog.filter((e) => e[1] === 'progress').map((e) => e[2])), [0, 64]);
});

test('unmount closes the stream on the server; unmount during a retry cancels it', async (t) => {
  const { server, page, streams } = await setup(t, { react: true });
  await server.create('leaving');
  await page.evaluate(() => mountApp({ tasks: ['leaving'], options: { reconnectDelay: 300 } }));
  await page.waitForFunction(() => bars()[0].state === 'open');
  await server.activeStreams(1);
  await page.evaluate(() => unmountApp());
  await server.activeStreams(0);
  await quiet(600);
  assert.equal(streams.length, 1);

  await page.evaluate(() => mountApp({ tasks: ['leaving'], options: { reconnectDelay: 300 } }));
  await page.waitForFunction(() => bars()[0].state === 'open');
  await server.kill();
  await page.waitForFunction(() => bars()[0].state === 'reconnecting');
  const before = streams.length;
  await page.evaluate(() => unmountApp());
  await quiet(900);
  assert.equal(streams.length, before, 'no retry after unmount');
});
