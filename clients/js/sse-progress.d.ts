// Types of sse-progress-client (written by hand; checked by `tsc` against test/types/check.tsx).

/** The status of a task. `completed` and `failed` are terminal. */
export type TaskStatus = 'pending' | 'running' | 'completed' | 'failed';

/** Where the client is with its connection. */
export type ConnectionState = 'idle' | 'connecting' | 'open' | 'reconnecting' | 'closed';

/** The task JSON the server sends in every `progress` event. */
export interface Task<R = unknown> {
  taskId: string;
  status: TaskStatus;
  /** 0 to 100, fractions allowed. */
  progress: number;
  stage: string;
  message: string;
  /** Milliseconds since the Unix epoch. */
  createdAt: number;
  updatedAt: number;
  /** Seconds; null until it can be estimated, 0 when finished. */
  estimatedTimeRemaining: number | null;
  result: R | null;
  error: string | null;
  /** The sequence number of the task's last change. */
  eventId: number;
}

/** An error: the server's code (`not_found`, `token_invalid`, `server_busy`...) or the client's
 * (`network_error`, `stream_timeout`, `task_failed`, `bad_content_type`, `invalid_token`, `http_<status>`...). */
export interface SSEProgressError {
  readonly code: string;
  readonly message: string;
}

/** The state of one followed task: a new frozen object on every change, the same one otherwise. */
export interface SSEProgressState<R = unknown> {
  /** null until the first snapshot. */
  readonly status: TaskStatus | null;
  readonly progress: number;
  readonly stage: string;
  readonly message: string;
  readonly estimatedTimeRemaining: number | null;
  readonly result: R | null;
  /** The task's failure (`task_failed`), a final refusal, or the trouble being retried. */
  readonly error: SSEProgressError | null;
  /** `connectionState === 'open'`. */
  readonly isConnected: boolean;
  readonly connectionState: ConnectionState;
  /** Reconnect requests since the last stable connection (the first connect is not one). */
  readonly reconnectAttempts: number;
  /** The stream's `id:` of the last change applied (the shared stream's change sequence). */
  readonly lastEventId: string | null;
}

/** How a stream connects and reconnects: the same for a task and for the feed of every task. */
export interface ConnectionOptions {
  /** Where the server is; default: the page's origin. */
  baseUrl?: string;
  /** Reconnect after a dropped connection or a server error; default true. */
  autoReconnect?: boolean;
  /** Consecutive reconnect requests before giving up; `Infinity` allowed. Default 3 for a task,
   * `Infinity` for `followEverything` (a dashboard keeps trying). */
  maxReconnectAttempts?: number;
  /** ms before the first retry, doubled on each further one; default 2000 (or the server's `retry:`).
   * No retry comes sooner than 500 ms, whatever this or the server says. */
  reconnectDelay?: number;
  /** Cap of that delay in ms; default 30000 (at least 500). */
  maxReconnectDelay?: number;
  /** ms without a byte after which the stream is taken as dead; default 45000. `Infinity`: no
   * watchdog. Delays past 2^31-1 ms are capped there. */
  idleTimeout?: number;
}

export interface SSEProgressOptions<R = unknown> extends ConnectionOptions {
  /** The task's subscribe token (sent as `tokens=` on the shared stream). One with a comma fails at
   * once (`invalid_token`); one that differs from the token a task was already admitted with on
   * this page fails this follower alone (`token_invalid`). */
  token?: string;
  /** Every change of the task (including the terminal one). */
  onProgress?: (task: Task<R>) => void;
  /** Once, when the task completes. */
  onComplete?: (result: R | null, task: Task<R>) => void;
  /** Once, when following ends with an error: the task failed (then `task` is given), was refused,
   * or the attempts ran out. Trouble that is being retried shows in the state only. */
  onError?: (error: SSEProgressError, task: Task<R> | null) => void;
  onConnect?: () => void;
  onDisconnect?: () => void;
}

/** One followed task. */
export interface SSEProgress<R = unknown> {
  getSnapshot(): SSEProgressState<R>;
  /** Calls `listener` after every change of the state; returns the unsubscribe function. */
  subscribe(listener: (state: SSEProgressState<R>) => void): () => void;
  /** A new connection now, with the attempt count reset; follows again after an end. */
  reconnect(): void;
  /** Stops following: cancels any request and any pending timer. */
  disconnect(): void;
}

/** Follows one task over its origin's shared stream, starting one task later. */
export function createSSEProgress<R = unknown>(taskId: string, options?: SSEProgressOptions<R>): SSEProgress<R>;

/** The state before anything is known (and on the server, in server-side rendering). */
export const IDLE_STATE: SSEProgressState<never>;

/** At most this many tasks share one stream; more tasks on one origin open more streams. */
export const MAX_TASKS_PER_STREAM: 100;

/** One event of a `text/event-stream`. */
export interface SSEMessage {
  type: string;
  data: string;
  lastEventId: string;
}

export interface SSEParserOptions {
  /** The last event id of a previous connection (events without `id:` carry it). */
  lastEventId?: string;
  /** Called with every valid `retry:` value (ms). */
  onRetry?: (ms: number) => void;
}

/** A streaming `text/event-stream` parser (WHATWG rules). */
export interface SSEParser {
  /** Bytes (UTF-8, split anywhere) or text. */
  push(chunk: Uint8Array | string): void;
  /** The end of the stream: an unfinished event is dropped. */
  end(): void;
  readonly lastEventId: string;
  readonly retry: number | null;
}

export function createSSEParser(onEvent: (event: SSEMessage) => void, options?: SSEParserOptions): SSEParser;

/** Where the feed of every task is with its connection (it starts connecting at once). */
export type FeedConnectionState = 'connecting' | 'open' | 'reconnecting' | 'closed';

export interface FollowEverythingOptions<R = unknown> extends ConnectionOptions {
  /** The server's publish token, sent as `Authorization: Bearer` (needed when the server has one).
   * Printable ASCII without spaces; any other is refused before a request, as the server would. */
  token?: string;
  /** On every (re)connection: the ids of every current task (newest 1000). After a resume, a task
   * not in the list was removed while the feed was away. */
  onConnected?: (taskIds: string[]) => void;
  /** Every snapshot of a task: the first of each current task, then every change (new tasks included). */
  onTask?: (task: Task<R>) => void;
  /** A task was deleted or expired. */
  onRemoved?: (taskId: string) => void;
  onState?: (state: FeedConnectionState) => void;
  /** The server wants a (different) publish token (401 or 403, or 400 to a request with a token),
   * or the token is not one a header can carry: the feed has stopped. Without this callback,
   * `onError` gets the refusal. */
  onUnauthorized?: () => void;
  /** Trouble: `final` false while it is being retried, true when the feed has stopped. */
  onError?: (error: SSEProgressError, final: boolean) => void;
}

/** The feed of every task. */
export interface Feed {
  /** Stops following: cancels the request and every timer. */
  close(): void;
}

/** Follows every task of the server over the all-tasks stream (one connection), starting one task later. */
export function followEverything<R = unknown>(options?: FollowEverythingOptions<R>): Feed;
