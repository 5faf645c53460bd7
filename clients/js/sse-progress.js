// sse-progress-client: follow sse-progress tasks from a browser (or any runtime with `fetch`).
//
// Why not `EventSource`: it never shows the HTTP status, so it cannot honour `Retry-After`, it
// gives up for good on a 503, and it cannot tell a final 404 from a passing outage. This module
// reads the stream with `fetch` and a small parser of its own, and decides per status.
//
// Why one shared stream: a browser opens at most 6 HTTP/1.1 connections per origin, so a page
// with one stream per task hangs at the seventh. Every task followed on one origin (`baseUrl`)
// goes over one multi-task stream (`?tasks=a,b,c`, at most 100 tasks each), with a reference
// count per task; the stream is reopened when the set of tasks changes.
//
// This file has no imports: the server embeds it and serves it at `/client/sse-progress.js`, so a
// page without a bundler can import it. Importing it touches no `window` or `document`, so
// server-side rendering can import it too.

/** The stream route; `?tasks=` makes it the multi-task stream. */
const STREAM_PATH = '/api/brand-monitor/progress';

/** The most tasks the server takes on one stream; more tasks on one origin open more streams. */
export const MAX_TASKS_PER_STREAM = 100;

/** What the server accepts as a task id; one bad id would make it refuse the whole stream. */
const TASK_ID = /^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}$/;

const DEFAULT_MAX_ATTEMPTS = 3;
const DEFAULT_RECONNECT_DELAY = 2000;
const DEFAULT_MAX_RECONNECT_DELAY = 30000;

/** One and a half heartbeats of the server's default 30 s: silence longer than that is death. */
const DEFAULT_IDLE_TIMEOUT = 45000;

/** A connection open this long is stable: the count of failed attempts starts again. */
const STABLE_AFTER_MS = 10000;

/** Changes of the watched set closer together than this cost one reconnect, not several. */
const SET_CHANGE_DEBOUNCE_MS = 10;

/** The longest `Retry-After` obeyed: a server (or a proxy) asking for hours is not taken at its word. */
const MAX_RETRY_AFTER_MS = 300000;

/** A line longer than this is not from our server: the stream is dropped rather than the tab's memory. */
const MAX_LINE_CHARS = 16 * 1024 * 1024;

/** The state before anything is known; also what server-side rendering shows. */
export const IDLE_STATE = Object.freeze({
  status: null,
  progress: 0,
  stage: '',
  message: '',
  estimatedTimeRemaining: null,
  result: null,
  error: null,
  isConnected: false,
  connectionState: 'idle',
  reconnectAttempts: 0,
  lastEventId: null,
});

// ---------------------------------------------------------------------------------------------
// The parser.
//
// The WHATWG HTML "server-sent events" interpretation, as this parser follows it:
//   stream = [ bom ] *event ; event = *( comment / field ) end-of-line
//   end-of-line = ( cr lf / cr / lf )
// - A line that is empty dispatches the event: the last event ID string becomes the ID buffer
//   (also when no event is dispatched); if the data buffer is empty, the data and event type
//   buffers are reset and nothing is dispatched; otherwise one trailing LF is removed from the
//   data and the event is dispatched with type "message" when the type buffer is empty.
// - A line starting with ":" is a comment and is ignored.
// - Otherwise the field name is the text before the first ":" (the whole line when there is
//   none) and the value the text after it, less one leading space.
// - "event" sets the type buffer; "data" appends the value and one LF to the data buffer; "id"
//   sets the ID buffer unless the value has a NULL; "retry" sets the reconnection time when the
//   value is ASCII digits only; any other field is ignored.
// - At the end of the stream, an event not ended by an empty line is discarded.
// One `TextDecoder` in streaming mode decodes every chunk, so a UTF-8 character split across two
// chunks is decoded once, whole; it drops a leading BOM. A CR that ends a chunk ends the line at
// once, and a LF that starts the next chunk is taken as its second half.

/**
 * A streaming parser of `text/event-stream`.
 * @param {(event: {type: string, data: string, lastEventId: string}) => void} onEvent
 * @param {{lastEventId?: string, onRetry?: (ms: number) => void}} [options]
 */
export function createSSEParser(onEvent, options = {}) {
  const decoder = new TextDecoder('utf-8');
  const onRetry = options.onRetry;
  let pending = '';
  let afterCR = false;
  let sawText = false;
  let data = '';
  let type = '';
  let idBuffer = options.lastEventId ?? '';
  let lastEventId = idBuffer;
  let retry = null;

  function dispatch() {
    lastEventId = idBuffer;
    if (data === '') {
      type = '';
      return;
    }
    const event = { type: type === '' ? 'message' : type, data: data.slice(0, -1), lastEventId };
    data = '';
    type = '';
    onEvent(event);
  }

  function line(text) {
    if (text === '') {
      dispatch();
      return;
    }
    if (text.charCodeAt(0) === 58 /* : */) return;
    const colon = text.indexOf(':');
    let field = text;
    let value = '';
    if (colon !== -1) {
      field = text.slice(0, colon);
      value = text.slice(colon + 1);
      if (value.charCodeAt(0) === 32 /* space */) value = value.slice(1);
    }
    if (field === 'data') {
      data += value + '\n';
    } else if (field === 'event') {
      type = value;
    } else if (field === 'id') {
      if (!value.includes('\0')) idBuffer = value;
    } else if (field === 'retry') {
      if (/^[0-9]+$/.test(value)) {
        retry = Number(value);
        if (onRetry) onRetry(retry);
      }
    }
  }

  const lineEnd = /\r\n|\r|\n/g;

  function text(chunk) {
    let pos = 0;
    if (afterCR) {
      afterCR = false;
      if (chunk.charCodeAt(0) === 10) pos = 1;
    }
    while (pos < chunk.length) {
      lineEnd.lastIndex = pos;
      const found = lineEnd.exec(chunk);
      if (found === null) {
        pending += chunk.slice(pos);
        if (pending.length > MAX_LINE_CHARS) throw new Error('event-stream line too long');
        return;
      }
      const whole = pending + chunk.slice(pos, found.index);
      pending = '';
      pos = found.index + found[0].length;
      if (found[0] === '\r' && pos === chunk.length) afterCR = true;
      line(whole);
    }
  }

  return {
    /** Feeds bytes (decoded as UTF-8 across chunks) or already decoded text. */
    push(chunk) {
      let decoded;
      if (typeof chunk === 'string') {
        decoded = !sawText && chunk.charCodeAt(0) === 0xfeff ? chunk.slice(1) : chunk;
      } else {
        decoded = decoder.decode(chunk, { stream: true });
      }
      if (decoded === '') return;
      sawText = true;
      text(decoded);
    },
    /** Ends the stream: an event not finished by an empty line is dropped. */
    end() {
      const rest = decoder.decode();
      if (rest !== '') text(rest);
      pending = '';
      data = '';
      type = '';
    },
    /** The last event ID string (the one a reconnect sends as `Last-Event-ID`). */
    get lastEventId() {
      return lastEventId;
    },
    /** The last valid `retry:` value in ms, or null. */
    get retry() {
      return retry;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Small helpers.

/** Calls a user callback; its exception is reported, never allowed to break the stream. */
function call(fn, ...args) {
  if (typeof fn !== 'function') return;
  try {
    fn(...args);
  } catch (error) {
    if (typeof globalThis.reportError === 'function') globalThis.reportError(error);
    else setTimeout(() => { throw error; }, 0);
  }
}

function error(code, message) {
  return Object.freeze({ code, message });
}

function networkError(e) {
  return error('network_error', String((e && e.message) || e));
}

function isTerminal(status) {
  return status === 'completed' || status === 'failed';
}

function isOffline() {
  const nav = globalThis.navigator;
  return nav !== undefined && nav.onLine === false;
}

/** `Retry-After` in ms (seconds or an HTTP date), or null when absent or unreadable. */
function retryAfterMs(value) {
  if (value === null || value === undefined) return null;
  const trimmed = value.trim();
  if (/^[0-9]+$/.test(trimmed)) return Number(trimmed) * 1000;
  const when = Date.parse(trimmed);
  return Number.isNaN(when) ? null : Math.max(0, when - Date.now());
}

/** The server's JSON error, or one made from the status when the body is not one. */
async function readError(response) {
  const fallback = error(`http_${response.status}`, `The server answered ${response.status}.`);
  try {
    const body = JSON.parse(await response.text());
    const e = body && body.error;
    if (e && typeof e.code === 'string') {
      return error(e.code, typeof e.message === 'string' ? e.message : fallback.message);
    }
  } catch {
    // Not JSON: the status says enough.
  }
  return fallback;
}

/** The key of an origin: the base URL without a trailing slash, or null when there is none. */
function resolveBase(baseUrl) {
  const page = globalThis.location;
  let base = baseUrl;
  if (base === undefined || base === null || base === '') {
    if (page === undefined || typeof page.origin !== 'string' || page.origin === 'null') return null;
    base = page.origin;
  }
  try {
    const url = page !== undefined && typeof page.href === 'string' ? new URL(base, page.href) : new URL(base);
    return (url.origin + url.pathname).replace(/\/+$/, '');
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------------------------------------
// Page events: come back at once when the network or the tab comes back.

const liveGroups = new Set();
let pageWatched = false;

function onPageBack(event) {
  if (event.type === 'pageshow' && !event.persisted) return;
  if (event.type === 'visibilitychange' && globalThis.document.visibilityState !== 'visible') return;
  for (const group of [...liveGroups]) group.wake();
}

function watchPage(on) {
  if (on === pageWatched) return;
  const win = typeof globalThis.addEventListener === 'function' ? globalThis : null;
  const doc = globalThis.document;
  const method = on ? 'addEventListener' : 'removeEventListener';
  if (win) {
    win[method]('online', onPageBack);
    win[method]('pageshow', onPageBack);
  }
  if (doc && typeof doc.addEventListener === 'function') doc[method]('visibilitychange', onPageBack);
  pageWatched = on;
}

// ---------------------------------------------------------------------------------------------
// Groups: one stream for at most MAX_TASKS_PER_STREAM tasks of one origin.

/** base URL -> the groups of that origin. */
const origins = new Map();

function groupFor(base, taskId) {
  let groups = origins.get(base);
  if (groups === undefined) {
    groups = [];
    origins.set(base, groups);
  }
  const holding = groups.find((g) => g.entries.has(taskId));
  if (holding) return holding;
  const roomy = groups.find((g) => g.entries.size < MAX_TASKS_PER_STREAM);
  if (roomy) return roomy;
  const group = new Group(base);
  groups.push(group);
  return group;
}

class Group {
  constructor(base) {
    this.base = base;
    /** taskId -> {taskId, token, followers: Set, task} in the order they joined. */
    this.entries = new Map();
    /** The current connection, or null; events of any other connection are ignored. */
    this.conn = null;
    this.retryTimer = null;
    this.changeTimer = null;
    this.stableTimer = null;
    this.waitingOnline = false;
    this.serverAskedDelay = false;
    /** Reconnect requests since the last stable connection. */
    this.attempts = 0;
    /** The last event ID of the stream: sent as `Last-Event-ID` on a resume. */
    this.resumeId = '';
    /** A task joined since the last request: the next one must not resume (its snapshot would be skipped). */
    this.grew = false;
    this.serverRetry = null;
    this.streamError = null;
  }

  // -- The watched set.

  add(follower) {
    let entry = this.entries.get(follower.taskId);
    liveGroups.add(this);
    watchPage(true);
    if (entry === undefined) {
      entry = {
        taskId: follower.taskId,
        token: follower.options.token,
        followers: new Set(),
        task: null,
        id: '',
        conn: null,
      };
      this.entries.set(follower.taskId, entry);
      entry.followers.add(follower);
      follower.group = this;
      this.grew = true;
      this.changed();
      return;
    }
    entry.followers.add(follower);
    follower.group = this;
    const token = follower.options.token;
    if (token && token !== entry.token) {
      entry.token = token;
      this.grew = true;
      this.changed();
    }
    const open = this.conn !== null && this.conn.open && entry.conn === this.conn;
    follower.joined(entry.task, entry.id, open ? 'open' : 'connecting', this.attempts);
  }

  /** A follower leaves; `finished` says the server is done with its task on this stream. */
  remove(follower, finished) {
    const entry = this.entries.get(follower.taskId);
    follower.group = null;
    if (entry === undefined || !entry.followers.delete(follower)) return;
    if (entry.followers.size > 0) return;
    this.entries.delete(follower.taskId);
    if (this.entries.size === 0) {
      this.stop();
    } else if (!finished) {
      this.changed();
    }
  }

  /** The set changed: reopen soon, unless a retry is already waiting (it takes the new set). */
  changed() {
    if (this.retryTimer !== null || this.waitingOnline || this.changeTimer !== null) return;
    this.changeTimer = setTimeout(() => {
      this.changeTimer = null;
      this.open();
    }, SET_CHANGE_DEBOUNCE_MS);
  }

  stop() {
    this.drop();
    clearTimeout(this.retryTimer);
    clearTimeout(this.changeTimer);
    this.retryTimer = null;
    this.changeTimer = null;
    this.waitingOnline = false;
    liveGroups.delete(this);
    if (liveGroups.size === 0) watchPage(false);
    const groups = origins.get(this.base);
    if (groups !== undefined) {
      const at = groups.indexOf(this);
      if (at !== -1) groups.splice(at, 1);
      if (groups.length === 0) origins.delete(this.base);
    }
  }

  /** Forgets the current connection, cancelling its request. */
  drop() {
    const conn = this.conn;
    if (conn === null) return;
    this.conn = null;
    clearTimeout(conn.watchdog);
    clearTimeout(this.stableTimer);
    this.stableTimer = null;
    conn.controller.abort();
  }

  followers() {
    const all = [];
    for (const entry of this.entries.values()) for (const f of entry.followers) all.push(f);
    return all;
  }

  /** The smallest value of an option over the followers (they share one stream). */
  least(name, fallback) {
    let least = Infinity;
    for (const f of this.followers()) {
      const value = f.options[name];
      if (typeof value === 'number' && value < least) least = value;
    }
    return least === Infinity ? fallback : least;
  }

  // -- The connection.

  open() {
    this.drop();
    clearTimeout(this.changeTimer);
    this.changeTimer = null;
    if (this.entries.size === 0) return;
    if (this.grew) this.resumeId = '';
    this.grew = false;
    this.streamError = null;
    const resume = this.resumeId;
    const ids = [...this.entries.keys()];
    let url = `${this.base}${STREAM_PATH}?tasks=${ids.map(encodeURIComponent).join(',')}`;
    const tokens = ids.map((id) => this.entries.get(id).token ?? '');
    if (tokens.some((t) => t !== '')) url += `&tokens=${tokens.map(encodeURIComponent).join(',')}`;
    const headers = { Accept: 'text/event-stream' };
    if (resume !== '') headers['Last-Event-ID'] = resume;
    const conn = { controller: new AbortController(), open: false, lastByte: Date.now(), watchdog: null };
    this.conn = conn;
    for (const entry of this.entries.values()) entry.conn = conn;
    this.arm(conn);
    this.read(conn, url, headers, resume).catch((e) => this.lost(conn, networkError(e)));
  }

  /** The heartbeat watchdog: no byte for `idleTimeout` means the connection is dead. */
  arm(conn) {
    const idle = this.least('idleTimeout', DEFAULT_IDLE_TIMEOUT);
    const left = conn.lastByte + idle - Date.now();
    if (left <= 0) {
      const seconds = Math.round(idle / 1000);
      this.lost(conn, error('stream_timeout', `No data for ${seconds} s: the connection is taken as dead.`));
      return;
    }
    conn.watchdog = setTimeout(() => {
      if (this.conn === conn) this.arm(conn);
    }, left);
  }

  async read(conn, url, headers, resume) {
    let response;
    try {
      const signal = conn.controller.signal;
      response = await fetch(url, { headers, signal, cache: 'no-store', credentials: 'same-origin' });
    } catch (e) {
      this.lost(conn, networkError(e));
      return;
    }
    if (this.conn !== conn) return;
    conn.lastByte = Date.now();
    const status = response.status;
    if (status === 204) {
      this.end(conn, null);
      return;
    }
    if (status !== 200) {
      const cause = await readError(response);
      if (this.conn !== conn) return;
      if (status === 429 || status === 503) {
        this.lost(conn, cause, retryAfterMs(response.headers.get('Retry-After')));
      } else if (status >= 500 || status === 408) {
        this.lost(conn, cause);
      } else {
        this.end(conn, cause);
      }
      return;
    }
    const type = response.headers.get('Content-Type') || '';
    if (!/^text\/event-stream\b/i.test(type) || response.body === null) {
      response.body?.cancel().catch(() => {});
      const what = type || 'no content type';
      this.end(conn, error('bad_content_type', `The server answered ${what}, not an event stream.`));
      return;
    }
    this.opened(conn);
    const parser = createSSEParser((event) => this.event(conn, event), {
      lastEventId: resume,
      onRetry: (ms) => { this.serverRetry = ms; },
    });
    const reader = response.body.getReader();
    for (;;) {
      let chunk;
      try {
        chunk = await reader.read();
      } catch (e) {
        this.lost(conn, networkError(e));
        return;
      }
      if (this.conn !== conn) {
        reader.cancel().catch(() => {});
        return;
      }
      if (chunk.done) break;
      conn.lastByte = Date.now();
      parser.push(chunk.value);
      if (this.conn !== conn) {
        reader.cancel().catch(() => {});
        return;
      }
    }
    parser.end();
    // The server ends a stream once every task is finished for this viewer; a task still in the
    // set (or an outage) means the end was a loss.
    this.lost(conn, this.streamError ?? error('stream_ended', 'The server ended the stream.'));
  }

  opened(conn) {
    conn.open = true;
    this.serverAskedDelay = false;
    this.stableTimer = setTimeout(() => {
      this.stableTimer = null;
      if (this.conn !== conn || this.attempts === 0) return;
      this.attempts = 0;
      for (const f of this.followers()) f.update({ reconnectAttempts: 0 });
    }, STABLE_AFTER_MS);
    for (const f of this.followers()) f.connected(this.attempts);
  }

  event(conn, event) {
    if (this.conn !== conn) return;
    this.resumeId = event.lastEventId;
    if (event.type === 'progress') {
      let task;
      try {
        task = JSON.parse(event.data);
      } catch {
        return;
      }
      const entry = task && this.entries.get(task.taskId);
      if (entry) this.progress(entry, task, event.lastEventId);
    } else if (event.type === 'error') {
      let body;
      try {
        body = JSON.parse(event.data);
      } catch {
        body = {};
      }
      const cause = error(String(body.code ?? 'stream_error'), String(body.message ?? 'The server reported an error.'));
      const entry = typeof body.taskId === 'string' ? this.entries.get(body.taskId) : undefined;
      if (entry) {
        for (const f of [...entry.followers]) if (f.group === this) f.fail(cause, null, true);
      } else if (body.taskId === undefined) {
        this.streamError = cause;
      }
    }
  }

  progress(entry, task, id) {
    const last = entry.task;
    // The same snapshot again (a reopened stream sends every task's): nothing changed.
    const same = last !== null && last.eventId === task.eventId && last.updatedAt === task.updatedAt;
    if (same && last.status === task.status) return;
    entry.task = task;
    entry.id = id;
    for (const f of [...entry.followers]) if (f.group === this) f.progress(task, id);
  }

  /** The stream or the request failed in a way worth retrying (`delay`: the server's wish). */
  lost(conn, cause, delay = null) {
    if (this.conn !== conn) return;
    this.drop();
    if (this.entries.size === 0) {
      this.stop();
      return;
    }
    const next = this.attempts + 1;
    const spent = `gave up after ${this.attempts} reconnect attempt${this.attempts === 1 ? '' : 's'}`;
    for (const f of this.followers()) {
      const max = f.options.maxReconnectAttempts ?? DEFAULT_MAX_ATTEMPTS;
      if (f.options.autoReconnect === false || !(next <= max)) {
        const why = f.options.autoReconnect === false ? 'no automatic reconnect' : spent;
        f.fail(error(cause.code, `${cause.message} (${why})`), null, false);
      } else {
        f.lost(cause);
      }
    }
    if (this.entries.size === 0) return; // The last follower's leaving stopped the group.
    clearTimeout(this.changeTimer);
    this.changeTimer = null;
    this.serverAskedDelay = delay !== null;
    if (isOffline() && delay === null) {
      this.waitingOnline = true;
      return;
    }
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.attempt();
    }, delay !== null ? this.spread(delay) : this.backoff(next));
  }

  /** `Retry-After`, capped, plus a random spread so that clients do not come back in lockstep. */
  spread(delay) {
    const capped = Math.min(delay, MAX_RETRY_AFTER_MS);
    return capped + Math.random() * Math.min(5000, Math.max(500, capped * 0.2));
  }

  /** `reconnectDelay` doubled per attempt, capped, and up to 30 % shorter at random. */
  backoff(attempt) {
    const base = this.least('reconnectDelay', this.serverRetry ?? DEFAULT_RECONNECT_DELAY);
    const cap = this.least('maxReconnectDelay', DEFAULT_MAX_RECONNECT_DELAY);
    const nominal = Math.min(base * 2 ** Math.min(attempt - 1, 30), cap);
    return nominal * (1 - 0.3 * Math.random());
  }

  attempt() {
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.waitingOnline = false;
    if (this.entries.size === 0) return;
    this.attempts += 1;
    for (const f of this.followers()) f.update({ reconnectAttempts: this.attempts });
    this.open();
  }

  /** A final answer for every task of the stream: `cause` null for a 204. */
  end(conn, cause) {
    if (this.conn !== conn) return;
    this.drop();
    // The last one to leave stops the group; one that a callback brought back opens a new request.
    for (const f of this.followers()) {
      if (cause === null) f.stopped();
      else f.fail(cause, null, true);
    }
  }

  /** The page came back (online, visible, restored): a lost stream is retried now. */
  wake() {
    if (this.conn !== null) {
      // A frozen tab's timers did not run: the watchdog looks now.
      clearTimeout(this.conn.watchdog);
      this.arm(this.conn);
      return;
    }
    if (this.waitingOnline || (this.retryTimer !== null && !this.serverAskedDelay)) this.attempt();
  }

  /** `reconnect()`: a new connection now, with the attempts counted from zero. */
  restart() {
    this.attempts = 0;
    for (const f of this.followers()) f.update({ reconnectAttempts: 0 });
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.waitingOnline = false;
    this.open();
  }
}

// ---------------------------------------------------------------------------------------------
// Followers: what `createSSEProgress` returns.

class Follower {
  constructor(taskId, options) {
    this.taskId = taskId;
    this.options = options;
    this.state = Object.freeze({ ...IDLE_STATE, connectionState: 'connecting' });
    this.listeners = new Set();
    this.group = null;
    this.startTimer = null;
  }

  update(patch) {
    let changed = false;
    for (const key in patch) {
      if (this.state[key] !== patch[key]) {
        changed = true;
        break;
      }
    }
    if (!changed) return;
    const wasConnected = this.state.isConnected;
    const next = { ...this.state, ...patch };
    next.isConnected = next.connectionState === 'open';
    this.state = Object.freeze(next);
    for (const listener of [...this.listeners]) call(listener, this.state);
    if (!wasConnected && this.state.isConnected) call(this.options.onConnect);
    if (wasConnected && !this.state.isConnected) call(this.options.onDisconnect);
  }

  start() {
    this.startTimer = null;
    if (!TASK_ID.test(this.taskId)) {
      const rule = 'A task id is 1 to 128 characters of A-Z a-z 0-9 _ - . and does not start with a dot.';
      this.fail(error('invalid_task_id', rule), null, true);
      return;
    }
    const base = resolveBase(this.options.baseUrl);
    if (base === null) {
      this.fail(error('no_base_url', 'No baseUrl was given and there is no page origin to use.'), null, true);
      return;
    }
    this.update({ connectionState: 'connecting', error: null });
    groupFor(base, this.taskId).add(this);
  }

  /** Joined a group that already follows the task: its last snapshot applies at once. */
  joined(task, id, connectionState, attempts) {
    if (task !== null) this.progress(task, id);
    if (this.group !== null) this.update({ connectionState, reconnectAttempts: attempts });
  }

  connected(attempts) {
    this.update({ connectionState: 'open', error: null, reconnectAttempts: attempts });
  }

  lost(cause) {
    this.update({ connectionState: 'reconnecting', error: cause });
  }

  progress(task, id) {
    const terminal = isTerminal(task.status);
    const failed = task.status === 'failed';
    const patch = {
      status: task.status,
      progress: typeof task.progress === 'number' ? task.progress : this.state.progress,
      stage: task.stage ?? '',
      message: task.message ?? '',
      estimatedTimeRemaining: task.estimatedTimeRemaining ?? null,
      result: task.result ?? null,
      error: failed ? error('task_failed', String(task.error ?? 'The task failed.')) : this.state.error,
      lastEventId: id === '' ? this.state.lastEventId : id,
    };
    if (terminal) this.leave(true);
    this.update(patch);
    call(this.options.onProgress, task);
    if (task.status === 'completed') call(this.options.onComplete, task.result ?? null, task);
    if (failed) call(this.options.onError, this.state.error, task);
    if (terminal) this.closed();
  }

  /** Following ends with an error (`finished`: the server is done with the task on this stream). */
  fail(cause, task, finished) {
    this.leave(finished);
    this.update({ error: cause });
    call(this.options.onError, cause, task);
    this.closed();
  }

  /** Closed, unless a callback has just started following again. */
  closed() {
    if (this.group === null && this.startTimer === null) this.update({ connectionState: 'closed' });
  }

  /** Following ends without an error (a 204: nothing more will come; the trouble before it is over). */
  stopped() {
    this.leave(true);
    this.update({ connectionState: 'closed', error: null });
  }

  leave(finished) {
    clearTimeout(this.startTimer);
    this.startTimer = null;
    if (this.group !== null) this.group.remove(this, finished);
  }

  handle() {
    return {
      getSnapshot: () => this.state,
      subscribe: (listener) => {
        if (typeof listener !== 'function') throw new TypeError('subscribe needs a function');
        const entry = (state) => listener(state);
        this.listeners.add(entry);
        return () => { this.listeners.delete(entry); };
      },
      reconnect: () => {
        if (this.startTimer !== null) return;
        if (this.group !== null) {
          this.group.restart();
          return;
        }
        this.update({ reconnectAttempts: 0 });
        this.start();
      },
      disconnect: () => {
        this.leave(false);
        if (this.state.connectionState !== 'closed') this.update({ connectionState: 'closed' });
      },
    };
  }
}

/**
 * Follows one task: its progress, over the origin's shared stream, until it completes or fails.
 * Starts one task later (so that a React StrictMode mount and unmount cost no request);
 * `disconnect()` stops it.
 * @param {string} taskId
 * @param {object} [options] see sse-progress.d.ts
 */
export function createSSEProgress(taskId, options = {}) {
  if (typeof taskId !== 'string') throw new TypeError('createSSEProgress needs a task id (a string)');
  const follower = new Follower(taskId, { ...options });
  follower.startTimer = setTimeout(() => follower.start(), 0);
  return follower.handle();
}
