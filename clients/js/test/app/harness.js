// The plain test page: follows tasks with the client module the server serves, and records
// every callback and every state in `window.recs`.
import * as sse from '/client/sse-progress.js';

window.sse = sse;
window.recs = [];

window.follow = (taskId, options = {}) => {
  const rec = { taskId, calls: [], states: [] };
  rec.client = sse.createSSEProgress(taskId, {
    ...options,
    onProgress: (task) => rec.calls.push(['progress', task.status, task.progress]),
    onComplete: (result) => rec.calls.push(['complete', result]),
    onError: (error, task) => rec.calls.push(['error', error.code, task ? task.status : null]),
    onConnect: () => rec.calls.push(['connect']),
    onDisconnect: () => rec.calls.push(['disconnect']),
  });
  rec.client.subscribe((state) => rec.states.push(state));
  window.recs.push(rec);
  return window.recs.length - 1;
};

/** The state of follower `i`. */
window.snap = (i) => window.recs[i].client.getSnapshot();

/** The callbacks of follower `i` (of one kind, when given). */
window.calls = (i, kind) => window.recs[i].calls.filter((call) => kind === undefined || call[0] === kind);

window.harnessReady = true;
