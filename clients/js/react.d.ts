// Types of sse-progress-client/react (written by hand; checked by `tsc` against test/types/check.tsx).
import type { SSEProgressOptions, SSEProgressState } from './sse-progress.js';

export type {
  ConnectionState,
  SSEProgressError,
  SSEProgressOptions,
  SSEProgressState,
  Task,
  TaskStatus,
} from './sse-progress.js';
export { IDLE_STATE } from './sse-progress.js';

/** What the hook returns: the state, and the two calls. */
export interface SSEProgressHookResult<R = unknown> extends SSEProgressState<R> {
  /** A new connection now, with the attempt count reset; follows again after an end. */
  reconnect(): void;
  /** Stops following (until `taskId` or a connection option changes, or `reconnect()`). */
  disconnect(): void;
}

/** Follows a task; `taskId` null or undefined means idle. Callbacks may change on every render
 * without reconnecting; a change of `taskId` or of a connection option reconnects. */
export function useSSEProgress<R = unknown>(
  taskId: string | null | undefined,
  options?: SSEProgressOptions<R>,
): SSEProgressHookResult<R>;
