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

/** Follows every task (`followEverything`); its callbacks go to `window.feedCalls`, and the
 * tasks it knows (id -> last snapshot, removed ones dropped) to `window.feedTasks`. */
window.feed = (options = {}) => {
  window.feedCalls = [];
  window.feedTasks = new Map();
  const calls = window.feedCalls;
  window.feedHandle = sse.followEverything({
    ...options,
    onConnected: (ids) => {
      calls.push(['connected', ids]);
      for (const id of [...window.feedTasks.keys()]) if (!ids.includes(id)) window.feedTasks.delete(id);
    },
    onTask: (task) => {
      calls.push(['task', task.taskId, task.status, task.progress]);
      window.feedTasks.set(task.taskId, task);
    },
    onRemoved: (id) => {
      calls.push(['removed', id]);
      window.feedTasks.delete(id);
    },
    onState: (state) => calls.push(['state', state]),
    onUnauthorized: options.noUnauthorized ? undefined : () => calls.push(['unauthorized']),
    onError: (error, final) => calls.push(['error', error.code, final]),
  });
};

/** The feed's callbacks (of one kind, when given). */
window.feedOf = (kind) => window.feedCalls.filter((call) => kind === undefined || call[0] === kind);

/** The feed's last connection state. */
window.feedState = () => window.feedOf('state').at(-1)?.[1] ?? null;

window.harnessReady = true;
