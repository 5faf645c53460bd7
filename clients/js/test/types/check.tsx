// The hand-written .d.ts files describe the package: every option, state field and call is used
// here, through the package's own `exports` (self-reference by name), and wrong uses must fail
// (each `@ts-expect-error` line is itself an error if the line below it type-checks).
import {
  IDLE_STATE,
  MAX_TASKS_PER_STREAM,
  createSSEParser,
  createSSEProgress,
  followEverything,
  type ConnectionOptions,
  type ConnectionState,
  type Feed,
  type FeedConnectionState,
  type FollowEverythingOptions,
  type SSEMessage,
  type SSEProgress,
  type SSEProgressError,
  type SSEProgressOptions,
  type SSEProgressState,
  type Task,
  type TaskStatus,
} from 'sse-progress-client';
import { useSSEProgress, type SSEProgressHookResult } from 'sse-progress-client/react';

interface Report {
  url: string;
  mentions: number;
}

const options: SSEProgressOptions<Report> = {
  baseUrl: 'https://progress.example.com',
  token: 'subscribe-token',
  autoReconnect: true,
  maxReconnectAttempts: Infinity,
  reconnectDelay: 2000,
  maxReconnectDelay: 30000,
  idleTimeout: 45000,
  onProgress: (task: Task<Report>) => {
    const status: TaskStatus = task.status;
    const numbers: number[] = [task.progress, task.createdAt, task.updatedAt, task.eventId];
    const texts: string[] = [task.taskId, task.stage, task.message, status];
    const eta: number | null = task.estimatedTimeRemaining;
    const failure: string | null = task.error;
    const mentions: number | undefined = task.result?.mentions;
    void [numbers, texts, eta, failure, mentions];
  },
  onComplete: (result: Report | null, task: Task<Report>) => void [result?.url, task.taskId],
  onError: (error: SSEProgressError, task: Task<Report> | null) => void [error.code, error.message, task?.error],
  onConnect: () => {},
  onDisconnect: () => {},
};

const client: SSEProgress<Report> = createSSEProgress<Report>('task-123', options);
const state: SSEProgressState<Report> = client.getSnapshot();
const status: TaskStatus | null = state.status;
const progress: number = state.progress;
const stage: string = state.stage;
const message: string = state.message;
const eta: number | null = state.estimatedTimeRemaining;
const result: Report | null = state.result;
const error: SSEProgressError | null = state.error;
const isConnected: boolean = state.isConnected;
const connectionState: ConnectionState = state.connectionState;
const attempts: number = state.reconnectAttempts;
const lastEventId: string | null = state.lastEventId;
void [status, progress, stage, message, eta, result, error, isConnected, connectionState, attempts, lastEventId];

const unsubscribe: () => void = client.subscribe((next) => void next.progress);
unsubscribe();
client.reconnect();
client.disconnect();
createSSEProgress('task-456');

const idle: SSEProgressState<Report> = IDLE_STATE;
const most: 100 = MAX_TASKS_PER_STREAM;
void [idle, most];

const parser = createSSEParser((event: SSEMessage) => void [event.type, event.data, event.lastEventId], {
  lastEventId: '41',
  onRetry: (ms: number) => void ms,
});
parser.push(new Uint8Array([100, 97, 116, 97, 10, 10]));
parser.push('data: text\n\n');
parser.end();
const parsedId: string = parser.lastEventId;
const retry: number | null = parser.retry;
void [parsedId, retry];

// The connection options of a task are those of the feed.
const connection: ConnectionOptions = options;
const feedOptions: FollowEverythingOptions<Report> = {
  ...connection,
  token: 'publish-token',
  onConnected: (taskIds: string[]) => void taskIds.length,
  onTask: (task: Task<Report>) => void [task.taskId, task.progress, task.result?.mentions],
  onRemoved: (taskId: string) => void taskId,
  onState: (state: FeedConnectionState) => void state,
  onUnauthorized: () => {},
  onError: (error: SSEProgressError, final: boolean) => void [error.code, final],
};
const feed: Feed = followEverything<Report>(feedOptions);
feed.close();
followEverything().close();

// Wrong uses.
// @ts-expect-error: a feed is never idle.
followEverything({ onState: (state: 'idle') => void state });
// @ts-expect-error: onRemoved gets a task id, not a task.
followEverything({ onRemoved: (task: Task) => void task });
// @ts-expect-error: unknown option (the token is `token`).
followEverything({ publishToken: 'x' });
// @ts-expect-error: a feed has no state to read, only close().
feed.getSnapshot();
// @ts-expect-error: a task id is a string.
createSSEProgress(123);
// @ts-expect-error: unknown option.
createSSEProgress('t', { reconnectDelayMs: 1 });
// @ts-expect-error: maxReconnectAttempts is a number.
createSSEProgress('t', { maxReconnectAttempts: '3' });
// @ts-expect-error: the state is read-only.
state.progress = 5;
// @ts-expect-error: no such status.
const wrongStatus: TaskStatus = 'done';
void wrongStatus;
// @ts-expect-error: no such connection state.
const wrongConnection: ConnectionState = 'connected';
void wrongConnection;
// @ts-expect-error: onComplete's result has the declared type.
createSSEProgress<Report>('t', { onComplete: (r: string) => void r });
// @ts-expect-error: the listener gets the state, not a task.
client.subscribe((task: Task) => void task);
// @ts-expect-error: the parser takes bytes or text.
parser.push(42);

function ProgressBar({ taskId }: { taskId: string | null }) {
  const hook: SSEProgressHookResult<Report> = useSSEProgress<Report>(taskId, {
    ...options,
    onProgress: (task) => void task.progress,
  });
  const { status, progress, stage, message, estimatedTimeRemaining, result, error, isConnected } = hook;
  const { connectionState, reconnectAttempts, lastEventId, reconnect, disconnect } = hook;
  void [status, result, isConnected, connectionState, reconnectAttempts, lastEventId];
  // @ts-expect-error: the hook's state is read-only too.
  hook.stage = 'x';
  // @ts-expect-error: no such call.
  hook.close();
  return (
    <div>
      <progress value={progress} max={100} />
      <span>{stage}: {message} ({estimatedTimeRemaining ?? '?'} s)</span>
      {error && <span>{error.code}</span>}
      <button onClick={reconnect}>Retry</button>
      <button onClick={disconnect}>Stop</button>
    </div>
  );
}

export function App() {
  useSSEProgress(null);
  useSSEProgress(undefined);
  // @ts-expect-error: the hook's task id is a string, null or undefined.
  useSSEProgress(7);
  return <ProgressBar taskId="task-123" />;
}
