// The client against the real server: a task followed to its end, terminal and final answers that
// stop it, one shared stream for many tasks of an origin (joins, refusals, two followers of one
// task, more than 100 tasks), and disconnect(). Streams are counted on the server.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';

import { browserSuite, quiet } from './support/setup.mjs';

const setup = browserSuite();

test('the server serves this package sse-progress.js byte for byte', async () => {
  const { startServer } = await import('./support/server.mjs');
  const server = await startServer();
  try {
    const response = await fetch(`${server.url}/client/sse-progress.js`);
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type'), /^text\/javascript/);
    const served = await response.text();
    const ours = await readFile(new URL('../sse-progress.js', import.meta.url), 'utf8');
    assert.ok(served === ours, 'the served module differs from clients/js/sse-progress.js: rebuild the server');
  } finally {
    await server.kill();
  }
});

test('a task followed to completion fires onComplete once, ends the stream, and never reconnects', async (t) => {
  const { server, page, streams } = await setup(t);
  await server.create('report-1', { stage: 'Queued' });
  await page.evaluate(() => follow('report-1', { reconnectDelay: 100 }));
  await page.waitForFunction(() => snap(0).connectionState === 'open' && snap(0).status === 'pending');
  await server.update('report-1', { status: 'running', progress: 40, stage: 'Crawling', message: 'page 4 of 10' });
  await page.waitForFunction(() => snap(0).progress === 40);
  assert.deepEqual(await page.evaluate(() => [snap(0).stage, snap(0).message, snap(0).status]), ['Crawling', 'page 4 of 10', 'running']);
  await server.complete('report-1', { mentions: 7 });
  await page.waitForFunction(() => snap(0).connectionState === 'closed');

  const state = await page.evaluate(() => ({ ...snap(0), frozen: Object.isFrozen(snap(0)), same: snap(0) === snap(0) }));
  assert.equal(state.status, 'completed');
  assert.equal(state.progress, 100);
  assert.deepEqual(state.result, { mentions: 7 });
  assert.equal(state.estimatedTimeRemaining, 0);
  assert.equal(state.error, null);
  assert.equal(state.isConnected, false);
  assert.ok(state.frozen && state.same, 'the state is frozen, and the same object while nothing changes');
  assert.match(state.lastEventId, /^[0-9]+$/);
  assert.deepEqual(await page.evaluate(() => calls(0, 'complete')), [['complete', { mentions: 7 }]]);
  assert.deepEqual(await page.evaluate(() => calls(0, 'error')), []);
  assert.deepEqual(await page.evaluate(() => calls(0, 'progress').map((c) => c[2])), [0, 40, 100]);

  await server.activeStreams(0);
  await quiet(600);
  assert.equal(streams.length, 1, 'no request after the terminal snapshot');
  assert.equal((await server.health()).totalConnections, 1);
  assert.deepEqual(await page.evaluate(() => calls(0, 'complete').length), 1);
});

test('a failed task fires onError once with its error, and nothing reconnects', async (t) => {
  const { server, page, streams } = await setup(t);
  await server.create('report-2');
  await server.update('report-2', { status: 'running', progress: 30 });
  await server.fail('report-2', 'API rate limit exceeded');
  // Followed after it finished: the terminal snapshot comes first and alone.
  await page.evaluate(() => follow('report-2', { reconnectDelay: 100 }));
  await page.waitForFunction(() => snap(0).connectionState === 'closed');
  const state = await page.evaluate(() => snap(0));
  assert.equal(state.status, 'failed');
  assert.equal(state.progress, 30);
  assert.deepEqual(state.error, { code: 'task_failed', message: 'API rate limit exceeded' });
  assert.deepEqual(await page.evaluate(() => calls(0, 'error')), [['error', 'task_failed', 'failed']]);
  assert.deepEqual(await page.evaluate(() => calls(0, 'complete')), []);
  await quiet(500);
  assert.equal(streams.length, 1);
});

test('an unknown task (404) is final: one request, onError once, no retry', async (t) => {
  const { page, streams } = await setup(t);
  await page.evaluate(() => follow('no-such-task', { reconnectDelay: 100, maxReconnectAttempts: Infinity }));
  await page.waitForFunction(() => snap(0).connectionState === 'closed');
  assert.equal((await page.evaluate(() => snap(0))).error.code, 'task_not_found');
  await quiet(600);
  assert.equal(streams.length, 1);
  assert.deepEqual(await page.evaluate(() => calls(0, 'error')), [['error', 'task_not_found', null]]);
});

test('a task refused alone on the shared stream gets its error; the others go on', async (t) => {
  const { server, page, streams } = await setup(t);
  await server.create('real-task');
  await page.evaluate(() => {
    follow('real-task');
    follow('ghost-task');
  });
  await page.waitForFunction(() => snap(1).connectionState === 'closed' && snap(0).status === 'pending');
  assert.equal(streams.length, 1, 'both tasks went on one stream');
  assert.match(streams[0].url, /tasks=real-task(,|%2C)ghost-task/);
  assert.deepEqual(await page.evaluate(() => calls(1, 'error')), [['error', 'not_found', null]]);
  assert.equal(await page.evaluate(() => snap(0).isConnected), true);
  await server.complete('real-task', 'done');
  await page.waitForFunction(() => snap(0).status === 'completed');
  assert.equal(streams.length, 1, 'the refusal did not reconnect the others');
});

test('a new task joins the shared stream: reopened without Last-Event-ID, its snapshot is not skipped', async (t) => {
  const { server, page, streams, headers } = await setup(t);
  await server.create('older');
  await server.create('first');
  await page.evaluate(() => follow('first'));
  await page.waitForFunction(() => snap(0).isConnected && snap(0).status !== null);
  // `first` changes after `older` did: resuming from here would skip `older`'s snapshot.
  await server.update('first', { status: 'running', progress: 10 });
  await page.waitForFunction(() => snap(0).progress === 10);
  await page.evaluate(() => follow('older'));
  await page.waitForFunction(() => snap(1).status === 'pending' && snap(1).isConnected);
  assert.equal(streams.length, 2);
  assert.match(streams[1].url, /tasks=first(,|%2C)older/);
  assert.equal((await headers(1))['last-event-id'], undefined);
  await server.activeStreams(1);
  await server.update('first', { progress: 20 });
  await server.update('older', { status: 'running', progress: 5 });
  await page.waitForFunction(() => snap(0).progress === 20 && snap(1).progress === 5);
  assert.deepEqual(await page.evaluate(() => calls(0, 'connect').length), 1, 'the switch is not a disconnect');
});

test('two followers of one task share it: the second costs no request, and outlives the first', async (t) => {
  const { server, page, streams } = await setup(t);
  await server.create('shared');
  await server.update('shared', { status: 'running', progress: 25 });
  await page.evaluate(() => follow('shared'));
  await page.waitForFunction(() => snap(0).progress === 25);
  await page.evaluate(() => follow('shared'));
  // The second has the task's state at once, from the stream that is already open.
  assert.deepEqual(await page.evaluate(() => [snap(1).progress, snap(1).connectionState]), [25, 'open']);
  await page.evaluate(() => recs[0].client.disconnect());
  await server.update('shared', { progress: 75 });
  await page.waitForFunction(() => snap(1).progress === 75);
  assert.equal(await page.evaluate(() => snap(0).progress), 25, 'the one that left sees nothing more');
  assert.equal(streams.length, 1);
  assert.equal((await server.health()).activeConnections, 1);
});

test('disconnect() closes the stream on the server and leaves nothing running', async (t) => {
  const { server, page, streams } = await setup(t);
  await server.create('long-task');
  await page.evaluate(() => follow('long-task', { reconnectDelay: 100 }));
  await page.waitForFunction(() => snap(0).isConnected && snap(0).status !== null);
  await server.activeStreams(1);
  await page.evaluate(() => recs[0].client.disconnect());
  await server.activeStreams(0);
  assert.equal(await page.evaluate(() => snap(0).connectionState), 'closed');
  assert.deepEqual(await page.evaluate(() => calls(0).map((c) => c[0])), ['connect', 'progress', 'disconnect']);
  await server.update('long-task', { status: 'running', progress: 50 });
  await quiet(600);
  assert.equal(streams.length, 1);
  assert.equal(await page.evaluate(() => snap(0).progress), 0);
});

test('more than 100 tasks on one origin: streams of at most 100 tasks, and all complete', async (t) => {
  const { server, page, streams } = await setup(t);
  const ids = Array.from({ length: 120 }, (_, i) => `bulk-${i}`);
  for (const id of ids) await server.create(id);
  await page.evaluate((list) => list.forEach((id) => follow(id)), ids);
  await page.waitForFunction(() => recs.every((r) => r.client.getSnapshot().isConnected));
  await server.activeStreams(2);
  const sizes = streams.map((s) => new URL(s.url).searchParams.get('tasks').split(',').length).sort((a, b) => a - b);
  assert.deepEqual(sizes, [20, 100]);
  for (const id of ids) await server.complete(id, id);
  await page.waitForFunction(() => recs.every((r) => r.client.getSnapshot().status === 'completed'));
  assert.equal(await page.evaluate(() => recs.filter((r) => r.calls.some((c) => c[0] === 'complete')).length), 120);
  await server.activeStreams(0);
});

test('100 tasks with long ids go over several streams the server reads (none refused with 431), and all complete', async (t) => {
  const { server, page, streams } = await setup(t);
  // 100 ids of 100 characters make a 10 KB query: more than the server's 8 KiB request head.
  const ids = Array.from({ length: 100 }, (_, i) => `long-${String(i).padStart(3, '0')}-`.padEnd(100, 'x'));
  for (const id of ids) await server.create(id);
  await page.evaluate((list) => list.forEach((id) => follow(id)), ids);
  await page.waitForFunction(() => recs.every((r) => r.client.getSnapshot().isConnected && r.client.getSnapshot().status === 'pending'));
  assert.deepEqual(await page.evaluate(() => recs.flatMap((r) => calls(recs.indexOf(r), 'error'))), []);
  assert.ok(streams.length >= 2, `${streams.length} stream(s)`);
  for (const { url } of streams) {
    const { pathname, search } = new URL(url);
    assert.ok(pathname.length + search.length <= 6000, `a request target of ${pathname.length + search.length} bytes`);
  }
  const carried = streams.flatMap((s) => new URL(s.url).searchParams.get('tasks').split(',')).sort();
  assert.deepEqual(carried, [...ids].sort(), 'every task on exactly one stream');
  await server.activeStreams(streams.length);
  for (const id of ids) await server.complete(id, id.slice(0, 8));
  await page.waitForFunction(() => recs.every((r) => r.client.getSnapshot().status === 'completed'));
  assert.equal(await page.evaluate(() => recs.filter((r) => r.calls.some((c) => c[0] === 'complete')).length), 100);
  await server.activeStreams(0);
});
