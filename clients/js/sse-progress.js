// sse-progress-client: follow sse-progress tasks from a browser (or any runtime with `fetch`).
//
// Why not `EventSource`: it never shows the HTTP status, so it cannot honour `Retry-After`, it
// gives up for good on a 503, and it cannot tell a final 404 from a passing outage. This module
// reads the stream with `fetch` and a small parser of its own, and decides per status.
//
// Why one shared stream: a browser opens at most 6 HTTP/1.1 connections per origin, so a page
// with one stream per task hangs at the seventh. Every task followed on one origin (`baseUrl`)
// goes over one multi-task stream (`?tasks=a,b,c`, at most 100 tasks each, and no more than fit
// in the server's 8 KiB request head), with a reference count per task; the stream is reopened
// when the set of tasks changes. A dashboard follows every task of the server over the all-tasks
// stream (`followEverything`); both kinds of stream share one piece of connection code, so they
// treat statuses, silences and outages alike.
//
// This file has no imports: the server embeds it and serves it at `/client/sse-progress.js`, so a
// page without a bundler can import it. Importing it touches no `window` or `document`, so
// server-side rendering can import it too.

/** The stream route; `?tasks=` makes it the multi-task stream. */
const STREAM_PATH = '/api/brand-monitor/progress';

/** The most tasks the server takes on one stream; more tasks on one origin open more streams. */
export const MAX_TASKS_PER_STREAM = 100;

/**
 * The longest path and query of a stream request. The server reads request heads of at most
 * 8 KiB; the rest is left to the request line and the headers (cookies included). 100 ids of
 * 128 characters do not fit in one request, so a group holds fewer of them.
 */
const MAX_STREAM_TARGET = 6000;

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

/**
 * The shortest wait before any retry, and the least base of the backoff. A server (or a proxy)
 * that says `retry: 0`, or `Retry-After: 0` on every 503, would otherwise get an instant reconnect
 * loop from every open tab; a retry after a page's coming back (online, visible) is not delayed.
 */
const MIN_RETRY_DELAY_MS = 500;

/** `setTimeout` takes a 32-bit signed delay and runs a longer one at once: every delay is capped. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * A line, or the data of one event, longer than this is not from our server (it sends results of
 * at most 1 MiB): the stream is dropped rather than the tab's memory.
 */
const MAX_LINE_CHARS = 16 * 1024 * 1024;

/** The most of an error answer's body read: enough for the server's JSON error, not a proxy's novel. */
const MAX_ERROR_BODY_BYTES = 64 * 1024;

/** A task's subscribe token goes in `tokens=`, split on commas: one with a comma would shift the others. */
const TASK_TOKEN = /^[^,]*$/;

/** What a publish token may be: an `Authorization` header carries printable ASCII only. */
const PUBLISH_TOKEN = /^[\x21-\x7e]+$/;

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
      if (data.length + value.length >= MAX_LINE_CHARS) throw new Error('event-stream event too long');
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

/** `setTimeout` with the delay kept within what timers take (a longer one would run at once). */
function later(fn, ms) {
  return setTimeout(fn, Math.min(Math.max(0, ms), MAX_TIMER_MS));
}

/** An option that is a number: a delay or a count (NaN is no value). */
function isNumber(value) {
  return typeof value === 'number' && !Number.isNaN(value);
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

/** At most `limit` bytes of a body, as text; the rest is cancelled unread. */
async function readSome(response, limit) {
  if (response.body === null) return '';
  const reader = response.body.getReader();
  const chunks = [];
  let size = 0;
  while (size < limit) {
    const chunk = await reader.read();
    if (chunk.done) break;
    chunks.push(chunk.value);
    size += chunk.value.length;
  }
  if (size >= limit) reader.cancel().catch(() => {});
  const bytes = new Uint8Array(Math.min(size, limit));
  let at = 0;
  for (const chunk of chunks) {
    const part = chunk.subarray(0, bytes.length - at);
    bytes.set(part, at);
    at += part.length;
  }
  return new TextDecoder('utf-8').decode(bytes);
}

/** The server's JSON error, or one made from the status when the body is not one. */
async function readError(response) {
  const fallback = error(`http_${response.status}`, `The server answered ${response.status}.`);
  try {
    const body = JSON.parse(await readSome(response, MAX_ERROR_BODY_BYTES));
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

/** The data of an event as JSON, or null when it is not JSON. */
function parseData(event) {
  try {
    return JSON.parse(event.data);
  } catch {
    return null;
  }
}

/**
 * The error that ends following when `options` allow no reconnect attempt `next`, or null when
 * following may go on.
 */
function givingUp(cause, options, next, defaultMax) {
  const max = options.maxReconnectAttempts ?? defaultMax;
  if (options.autoReconnect !== false && next <= max) return null;
  const spent = next - 1;
  const why = options.autoReconnect === false
    ? 'no automatic reconnect'
    : `gave up after ${spent} reconnect attempt${spent === 1 ? '' : 's'}`;
  return error(cause.code, `${cause.message} (${why})`);
}

// ---------------------------------------------------------------------------------------------
// Page events: come back at once when the network or the tab comes back.

const liveStreams = new Set();
let pageWatched = false;

function onPageBack(event) {
  if (event.type === 'pageshow' && !event.persisted) return;
  if (event.type === 'visibilitychange' && globalThis.document.visibilityState !== 'visible') return;
  for (const stream of [...liveStreams]) stream.wake();
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
// Streams: one resumable connection to the server, whatever it carries.
//
// Every decision about a connection is made here, once: the request, what each status means, the
// reading, the watchdog, when to retry, the page's wake-ups. The owner of a stream (a group of
// followed tasks, or the feed of every task) says what to ask for and what the events mean:
//   request(conn)            -> {url, headers, resume} to open, or null when nothing is followed
//   option(name, fallback)   -> reconnectDelay, maxReconnectDelay or idleTimeout in ms
//   opened(attempts)         the stream is open
//   event(event)             a parsed event (stream-level `error` events are kept here)
//   taskError(taskId, cause) an `error` event about one task
//   lost(cause, next)        -> true to retry (attempt `next`), false when the owner gave up
//   ended(cause, status)     a final answer (`cause` null for a 204): no retry
//   attemptsChanged(n)       the count of reconnect attempts changed

class Stream {
  constructor(owner) {
    this.owner = owner;
    /** The current connection, or null; events of any other connection are ignored. */
    this.conn = null;
    this.retryTimer = null;
    this.stableTimer = null;
    this.waitingOnline = false;
    this.serverAskedDelay = false;
    /** Reconnect requests since the last stable connection. */
    this.attempts = 0;
    /** The last event ID of the stream: sent as `Last-Event-ID` on a resume. */
    this.resumeId = '';
    this.serverRetry = null;
    this.streamError = null;
  }

  get isOpen() {
    return this.conn !== null && this.conn.open;
  }

  /** A retry is waiting, for its timer or for the network. */
  get retrying() {
    return this.retryTimer !== null || this.waitingOnline;
  }

  /** Opens a new request (dropping the current one) for what the owner follows now. */
  open() {
    this.drop();
    const conn = { controller: new AbortController(), open: false, lastByte: Date.now(), watchdog: null };
    const target = this.owner.request(conn);
    if (target === null) return;
    liveStreams.add(this);
    watchPage(true);
    // A stream that must not resume (a new task's snapshot would be skipped) starts afresh, and
    // so do its retries until it has seen an event.
    if (!target.resume) this.resumeId = '';
    this.streamError = null;
    const resume = this.resumeId;
    const headers = { Accept: 'text/event-stream', ...target.headers };
    if (resume !== '') headers['Last-Event-ID'] = resume;
    this.conn = conn;
    this.arm(conn);
    this.read(conn, target.url, headers, resume).catch((e) => this.lost(conn, networkError(e)));
  }

  /** Stops for good: no request, no timer, no page listener on its behalf. */
  stop() {
    this.drop();
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.waitingOnline = false;
    liveStreams.delete(this);
    if (liveStreams.size === 0) watchPage(false);
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

  /** The heartbeat watchdog: no byte for `idleTimeout` means the connection is dead. */
  arm(conn) {
    const idle = this.owner.option('idleTimeout', DEFAULT_IDLE_TIMEOUT);
    // `Infinity` means no watchdog (a timer cannot wait that long; it would fire at once).
    if (!Number.isFinite(idle)) return;
    const left = conn.lastByte + idle - Date.now();
    if (left <= 0) {
      const seconds = Math.round(idle / 1000);
      this.lost(conn, error('stream_timeout', `No data for ${seconds} s: the connection is taken as dead.`));
      return;
    }
    conn.watchdog = later(() => {
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
      this.end(conn, null, status);
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
        this.end(conn, cause, status);
      }
      return;
    }
    const type = response.headers.get('Content-Type') || '';
    if (!/^text\/event-stream\b/i.test(type) || response.body === null) {
      response.body?.cancel().catch(() => {});
      const what = type || 'no content type';
      this.end(conn, error('bad_content_type', `The server answered ${what}, not an event stream.`), status);
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
    // A task stream ends once every task is finished for this viewer, and its owner has let go of
    // each by then; one still followed (or an outage, or the all-tasks stream) means a loss.
    this.lost(conn, this.streamError ?? error('stream_ended', 'The server ended the stream.'));
  }

  opened(conn) {
    conn.open = true;
    this.serverAskedDelay = false;
    this.stableTimer = later(() => {
      this.stableTimer = null;
      if (this.conn !== conn || this.attempts === 0) return;
      this.attempts = 0;
      this.owner.attemptsChanged(0);
    }, STABLE_AFTER_MS);
    this.owner.opened(this.attempts);
  }

  event(conn, event) {
    if (this.conn !== conn) return;
    this.resumeId = event.lastEventId;
    if (event.type !== 'error') {
      this.owner.event(event);
      return;
    }
    const body = parseData(event) ?? {};
    const cause = error(String(body.code ?? 'stream_error'), String(body.message ?? 'The server reported an error.'));
    if (body.taskId === undefined) this.streamError = cause;
    else if (typeof body.taskId === 'string') this.owner.taskError(body.taskId, cause);
  }

  /** The stream or the request failed in a way worth retrying (`delay`: the server's wish). */
  lost(conn, cause, delay = null) {
    if (this.conn !== conn) return;
    this.drop();
    const next = this.attempts + 1;
    if (!this.owner.lost(cause, next)) return;
    this.serverAskedDelay = delay !== null;
    if (isOffline() && delay === null) {
      this.waitingOnline = true;
      return;
    }
    // A server's wish is a least wait, not a licence to skip the backoff: `Retry-After: 0` on
    // every answer would otherwise be a retry loop.
    const backoff = this.backoff(next);
    const wait = delay !== null ? Math.max(this.spread(delay), backoff) : backoff;
    this.retryTimer = later(() => {
      this.retryTimer = null;
      this.attempt();
    }, Math.max(MIN_RETRY_DELAY_MS, wait));
  }

  /** `Retry-After`, capped, plus a random spread so that clients do not come back in lockstep. */
  spread(delay) {
    const capped = Math.min(delay, MAX_RETRY_AFTER_MS);
    return capped + Math.random() * Math.min(5000, Math.max(500, capped * 0.2));
  }

  /** `reconnectDelay` (at least MIN_RETRY_DELAY_MS) doubled per attempt, capped, and up to 30 % shorter at random. */
  backoff(attempt) {
    const base = Math.max(MIN_RETRY_DELAY_MS, this.owner.option('reconnectDelay', this.serverRetry ?? DEFAULT_RECONNECT_DELAY));
    const cap = Math.max(MIN_RETRY_DELAY_MS, this.owner.option('maxReconnectDelay', DEFAULT_MAX_RECONNECT_DELAY));
    const nominal = Math.min(base * 2 ** Math.min(attempt - 1, 30), cap);
    return nominal * (1 - 0.3 * Math.random());
  }

  attempt() {
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.waitingOnline = false;
    this.attempts += 1;
    this.owner.attemptsChanged(this.attempts);
    this.open();
  }

  /** A final answer (`cause` null for a 204): no retry. */
  end(conn, cause, status) {
    if (this.conn !== conn) return;
    this.drop();
    this.owner.ended(cause, status);
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

  /** A new connection now, with the attempts counted from zero. */
  restart() {
    this.attempts = 0;
    this.owner.attemptsChanged(0);
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.waitingOnline = false;
    this.open();
  }
}

// ---------------------------------------------------------------------------------------------
// Groups: the tasks of one origin that share one stream (at most MAX_TASKS_PER_STREAM of them,
// and no more than fit in a request the server reads).

/** base URL -> the groups of that origin. */
const origins = new Map();

function groupFor(base, taskId, token) {
  let groups = origins.get(base);
  if (groups === undefined) {
    groups = [];
    origins.set(base, groups);
  }
  const holding = groups.find((g) => g.entries.has(taskId));
  if (holding) return holding;
  const roomy = groups.find((g) => g.fits(taskId, token));
  if (roomy) return roomy;
  const group = new Group(base);
  groups.push(group);
  return group;
}

class Group {
  constructor(base) {
    this.base = base;
    /** The length of the base URL's origin: what comes after it is the request's target. */
    this.originLength = new URL(base).origin.length;
    /** taskId -> {taskId, token, followers: Set, task, id, conn} in the order they joined. */
    this.entries = new Map();
    this.changeTimer = null;
    /**
     * Tasks that joined (or changed token) since the last request: while there is one, the next
     * request must not resume (its snapshot would be skipped). A task that joins and leaves
     * within one debounce leaves nothing here.
     */
    this.added = new Set();
    /** The URL of the current request: a change of the set that comes back to it costs nothing. */
    this.requested = null;
    this.stream = new Stream(this);
  }

  // -- The watched set.

  /** The stream URL for `entries`. */
  url(entries) {
    const ids = entries.map((e) => encodeURIComponent(e.taskId));
    let url = `${this.base}${STREAM_PATH}?tasks=${ids.join(',')}`;
    const tokens = entries.map((e) => encodeURIComponent(e.token ?? ''));
    if (tokens.some((t) => t !== '')) url += `&tokens=${tokens.join(',')}`;
    return url;
  }

  /** Whether one more task still leaves the stream's request within the server's limits. */
  fits(taskId, token) {
    if (this.entries.size >= MAX_TASKS_PER_STREAM) return false;
    const url = this.url([...this.entries.values(), { taskId, token }]);
    return url.length - this.originLength <= MAX_STREAM_TARGET;
  }

  add(follower) {
    let entry = this.entries.get(follower.taskId);
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
      this.added.add(follower.taskId);
      this.changed();
      return;
    }
    const token = follower.options.token;
    if (token && token !== entry.token) {
      // Once the server has admitted the task with a token (a snapshot came), that token is the
      // task's: a different one is wrong, and it fails its follower alone rather than every
      // follower of the task. Before that, the newest token is tried.
      if (entry.task !== null && entry.token) {
        const why = 'This task is already followed on this page with another token, which the server accepted.';
        follower.fail(error('token_invalid', why), null, true);
        return;
      }
      if (entry.task === null) {
        entry.token = token;
        this.added.add(follower.taskId);
        this.changed();
      }
    }
    entry.followers.add(follower);
    follower.group = this;
    const open = this.stream.isOpen && entry.conn === this.stream.conn;
    follower.joined(entry.task, entry.id, open ? 'open' : 'connecting', this.stream.attempts);
  }

  /** A follower leaves; `finished` says the server is done with its task on this stream. */
  remove(follower, finished) {
    const entry = this.entries.get(follower.taskId);
    follower.group = null;
    if (entry === undefined || !entry.followers.delete(follower)) return;
    if (entry.followers.size > 0) return;
    this.entries.delete(follower.taskId);
    this.added.delete(follower.taskId);
    if (this.entries.size === 0) {
      this.stop();
    } else if (!finished) {
      this.changed();
    }
  }

  /** The set changed: reopen soon, unless a retry is already waiting (it takes the new set). */
  changed() {
    if (this.stream.retrying || this.changeTimer !== null) return;
    this.changeTimer = setTimeout(() => {
      this.changeTimer = null;
      // The set came back to what the current request asks for (a task joined and left): keep it.
      if (this.stream.conn !== null && this.url([...this.entries.values()]) === this.requested) return;
      this.stream.open();
    }, SET_CHANGE_DEBOUNCE_MS);
  }

  stop() {
    this.stream.stop();
    clearTimeout(this.changeTimer);
    this.changeTimer = null;
    const groups = origins.get(this.base);
    if (groups !== undefined) {
      const at = groups.indexOf(this);
      if (at !== -1) groups.splice(at, 1);
      if (groups.length === 0) origins.delete(this.base);
    }
  }

  followers() {
    const all = [];
    for (const entry of this.entries.values()) for (const f of entry.followers) all.push(f);
    return all;
  }

  // -- What the stream asks of its owner.

  request(conn) {
    clearTimeout(this.changeTimer);
    this.changeTimer = null;
    if (this.entries.size === 0) {
      this.requested = null;
      return null;
    }
    const resume = this.added.size === 0;
    this.added.clear();
    for (const entry of this.entries.values()) entry.conn = conn;
    this.requested = this.url([...this.entries.values()]);
    return { url: this.requested, headers: {}, resume };
  }

  /** The smallest value of an option over the followers (they share one stream); `Infinity` counts. */
  option(name, fallback) {
    let least = null;
    for (const f of this.followers()) {
      const value = f.options[name];
      if (isNumber(value) && (least === null || value < least)) least = value;
    }
    return least ?? fallback;
  }

  opened(attempts) {
    for (const f of this.followers()) f.connected(attempts);
  }

  attemptsChanged(attempts) {
    for (const f of this.followers()) f.update({ reconnectAttempts: attempts });
  }

  event(event) {
    if (event.type !== 'progress') return;
    const task = parseData(event);
    const entry = task && this.entries.get(task.taskId);
    if (!entry) return;
    const last = entry.task;
    // The same snapshot again (a reopened stream sends every task's): nothing changed.
    const same = last !== null && last.eventId === task.eventId && last.updatedAt === task.updatedAt;
    if (same && last.status === task.status) return;
    entry.task = task;
    entry.id = event.lastEventId;
    for (const f of [...entry.followers]) if (f.group === this) f.progress(task, event.lastEventId);
  }

  taskError(taskId, cause) {
    const entry = this.entries.get(taskId);
    if (entry === undefined) return;
    for (const f of [...entry.followers]) if (f.group === this) f.fail(cause, null, true);
  }

  lost(cause, next) {
    if (this.entries.size === 0) {
      this.stop();
      return false;
    }
    for (const f of this.followers()) {
      const final = givingUp(cause, f.options, next, DEFAULT_MAX_ATTEMPTS);
      if (final !== null) f.fail(final, null, false);
      else f.lost(cause);
    }
    if (this.entries.size === 0) return false; // The last follower's leaving stopped the group.
    clearTimeout(this.changeTimer);
    this.changeTimer = null;
    return true;
  }

  /** A final answer for every task of the stream: `cause` null for a 204. */
  ended(cause) {
    // The last one to leave stops the group; one that a callback brought back opens a new request.
    for (const f of this.followers()) {
      if (cause === null) f.stopped();
      else f.fail(cause, null, true);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The feed of every task: what a dashboard follows (`followEverything`).

class Feed {
  constructor(options) {
    this.options = options;
    this.stream = new Stream(this);
    /** Where the server is: resolved when following starts, one task after the call. */
    this.base = null;
    /** The last state told to `onState`. */
    this.state = null;
    this.startTimer = setTimeout(() => this.start(), 0);
  }

  start() {
    this.startTimer = null;
    this.base = resolveBase(this.options.baseUrl);
    if (this.base === null) {
      this.finish(error('no_base_url', 'No baseUrl was given and there is no page origin to use.'));
      return;
    }
    this.setState('connecting');
    const token = this.options.token;
    // A token no header can carry: `fetch` would throw (a TypeError, as on a network error, so
    // retried forever) or the server would answer 400. It is refused here, as the server would.
    if (token && (typeof token !== 'string' || !PUBLISH_TOKEN.test(token))) {
      const why = 'A publish token is printable ASCII (no space, no other character).';
      this.ended(error('invalid_token', why), 400);
      return;
    }
    this.stream.open();
  }

  setState(state) {
    if (state === this.state) return;
    this.state = state;
    call(this.options.onState, state);
  }

  /** Following ends: with `cause`, or quietly (`close()`). */
  finish(cause) {
    clearTimeout(this.startTimer);
    this.startTimer = null;
    this.stream.stop();
    if (cause !== null) call(this.options.onError, cause, true);
    this.setState('closed');
  }

  // -- What the stream asks of its owner.

  request() {
    const headers = {};
    if (this.options.token) headers.Authorization = `Bearer ${this.options.token}`;
    return { url: `${this.base}${STREAM_PATH}`, headers, resume: true };
  }

  option(name, fallback) {
    const value = this.options[name];
    return isNumber(value) ? value : fallback;
  }

  opened() {
    this.setState('open');
  }

  attemptsChanged() {}

  event(event) {
    const body = parseData(event);
    if (body === null || typeof body !== 'object') return;
    if (event.type === 'progress' && typeof body.taskId === 'string') {
      call(this.options.onTask, body);
    } else if (event.type === 'removed' && typeof body.taskId === 'string') {
      call(this.options.onRemoved, body.taskId);
    } else if (event.type === 'connected' && Array.isArray(body.taskIds)) {
      call(this.options.onConnected, body.taskIds);
    }
  }

  /** The all-tasks stream reports removals as `removed`; an error about one task changes nothing here. */
  taskError() {}

  lost(cause, next) {
    const final = givingUp(cause, this.options, next, Infinity);
    if (final !== null) {
      this.finish(final);
      return false;
    }
    this.setState('reconnecting');
    call(this.options.onError, cause, false);
    return true;
  }

  ended(cause, status) {
    // A 400 to a request with a token: the token is what the server could not read.
    const refused = status === 401 || status === 403 || (status === 400 && !!this.options.token);
    if (refused && typeof this.options.onUnauthorized === 'function') {
      this.finish(null);
      call(this.options.onUnauthorized);
      return;
    }
    this.finish(cause);
  }

  handle() {
    return { close: () => this.finish(null) };
  }
}

/**
 * Follows every task of the server over its all-tasks stream, for dashboards: the snapshot of each
 * current task, then every change (new tasks included) and removal, resumed with `Last-Event-ID`
 * after a loss. Starts one task later; `close()` stops it.
 * @param {object} [options] see sse-progress.d.ts
 */
export function followEverything(options = {}) {
  return new Feed({ ...options }).handle();
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
    const token = this.options.token;
    if (token !== undefined && token !== null && (typeof token !== 'string' || !TASK_TOKEN.test(token))) {
      // Tokens travel comma-separated: this one would give the other tasks of the stream wrong ones.
      this.fail(error('invalid_token', 'A subscribe token is a string without a comma.'), null, true);
      return;
    }
    this.update({ connectionState: 'connecting', error: null });
    groupFor(base, this.taskId, this.options.token).add(this);
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
          this.group.stream.restart();
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
