// A change of the watched set that comes back to the set of the current request within the
// debounce (a task joins and leaves at once) costs no request: the open stream goes on, and no
// reopen drops `Last-Event-ID`. Against a small server in this process.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';

import { createSSEProgress } from '../sse-progress.js';
import { quiet } from './support/setup.mjs';
import { waitFor } from './support/server.mjs';

test('a task added and removed within the debounce does not reopen the stream', async (t) => {
  const requests = [];
  const server = http.createServer((req, res) => {
    requests.push([req.url, req.headers['last-event-id'] ?? null]);
    res.writeHead(200, { 'Content-Type': 'text/event-stream' });
    res.write('retry: 2000\n\nid: 7\nevent: progress\ndata: {"taskId":"a","status":"running","progress":1,"eventId":3,"updatedAt":1}\n\n');
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  const url = `http://127.0.0.1:${server.address().port}`;
  const a = createSSEProgress('a', { baseUrl: url });
  t.after(() => a.disconnect());
  await waitFor('a followed', () => a.getSnapshot().progress === 1);
  const b = createSSEProgress('b', { baseUrl: url });
  await new Promise((resolve) => setTimeout(resolve, 1)); // b joins, and leaves before the 10 ms debounce ends
  b.disconnect();
  await quiet(300);
  assert.deepEqual(requests, [['/api/brand-monitor/progress?tasks=a', null]]);
  assert.equal(a.getSnapshot().connectionState, 'open');
});
