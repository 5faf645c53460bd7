// Tasks that share a stream do not share the consequences of one follower's token: a follower
// that brings a wrong token for a task already admitted fails alone, and a token with a comma
// (tokens travel comma-separated in `tokens=`) fails its follower at once, before any request.
// Against the real server with --require-subscribe-token.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { createSSEProgress } from '../sse-progress.js';
import { quiet } from './support/setup.mjs';
import { startServer, waitFor } from './support/server.mjs';

function follow(t, url, id, token) {
  const rec = { errors: [] };
  rec.handle = createSSEProgress(id, { baseUrl: url, token, onError: (e) => rec.errors.push(e.code) });
  t.after(() => rec.handle.disconnect());
  rec.state = () => rec.handle.getSnapshot();
  return rec;
}

async function strictServer(t) {
  const server = await startServer(['--publish-token', 'p', '--require-subscribe-token'], { publishToken: 'p' });
  t.after(() => server.kill());
  return server;
}

test('a second follower of a task with a wrong token fails alone; the admitted one goes on', async (t) => {
  const server = await strictServer(t);
  const { subscribeToken } = await server.create('shared');
  const good = follow(t, server.url, 'shared', subscribeToken);
  await waitFor('the task admitted', () => good.state().status === 'pending');
  const bad = follow(t, server.url, 'shared', 'stale-token');
  await waitFor('the newcomer refused', () => bad.state().connectionState === 'closed');
  assert.deepEqual(bad.errors, ['token_invalid']);

  await server.update('shared', { status: 'running', progress: 30 });
  await waitFor('the change', () => good.state().progress === 30);
  assert.deepEqual(good.errors, []);
  assert.equal(good.state().connectionState, 'open');
  // A newcomer with the right token shares the stream.
  const twin = follow(t, server.url, 'shared', subscribeToken);
  await waitFor('the twin joined', () => twin.state().progress === 30 && twin.state().isConnected);
  await server.complete('shared', 'done');
  await waitFor('both completed', () => good.state().status === 'completed' && twin.state().status === 'completed');
  assert.deepEqual([good.errors, twin.errors], [[], []]);
});

test('a token with a comma fails its follower at once; the other tasks of the stream keep their tokens', async (t) => {
  const server = await strictServer(t);
  await server.create('x');
  const { subscribeToken } = await server.create('y');
  const fx = follow(t, server.url, 'x', 'garbage,with-comma');
  const fy = follow(t, server.url, 'y', subscribeToken);
  await waitFor('x refused', () => fx.state().connectionState === 'closed');
  assert.deepEqual(fx.errors, ['invalid_token']);
  await waitFor('y admitted', () => fy.state().status === 'pending' && fy.state().isConnected);
  await quiet(300);
  assert.deepEqual(fy.errors, []);
  assert.equal(fy.state().connectionState, 'open');
});
