// sse-progress-client/react: `useSSEProgress`, the React hook of the original system, on the
// framework-free client.
//
// Why `useSyncExternalStore`: the client's state is an external store (a new frozen object on
// every change), and this hook keeps concurrent renders from tearing. Why the callbacks are read
// from a ref: an inline `onProgress={() => ...}` is a new function on every render, and a
// reconnect per render would be absurd; only the connection options reconnect. Why the client is
// made in an effect: the server snapshot (and a component's first render) is the idle state, and
// StrictMode's mount, unmount and mount again costs no request because the client starts one
// task later.
import { useEffect, useInsertionEffect, useMemo, useRef, useState, useSyncExternalStore } from 'react';

import { IDLE_STATE, createSSEProgress } from './sse-progress.js';

const serverSnapshot = () => IDLE_STATE;

/** What the hook subscribes to: the client of the current task, or nothing. */
function makeStore() {
  const listeners = new Set();
  let client = null;
  let clientTask = null;
  let unsubscribe = null;
  const notify = () => {
    for (const listener of [...listeners]) listener();
  };
  return {
    subscribe(listener) {
      listeners.add(listener);
      return () => {
        listeners.delete(listener);
      };
    },
    snapshot(taskId) {
      return client !== null && clientTask === taskId ? client.getSnapshot() : IDLE_STATE;
    },
    attach(taskId, next) {
      client = next;
      clientTask = taskId;
      unsubscribe = next.subscribe(notify);
      notify();
    },
    detach(old) {
      if (client !== old) return;
      unsubscribe();
      client = null;
      clientTask = null;
      unsubscribe = null;
      notify();
    },
    reconnect() {
      if (client !== null) client.reconnect();
    },
    disconnect() {
      if (client !== null) client.disconnect();
    },
  };
}

/**
 * Follows a task's progress; `taskId` null (or undefined) means idle.
 * @param {string | null | undefined} taskId
 * @param {object} [options] see react.d.ts
 */
export function useSSEProgress(taskId, options = {}) {
  const latest = useRef(options);
  // An insertion effect runs before any other effect of the commit (so the callbacks are current
  // before the client can call them) and, unlike a layout effect, is quiet on the server.
  useInsertionEffect(() => {
    latest.current = options;
  });
  const [store] = useState(makeStore);
  const { baseUrl, token, autoReconnect, maxReconnectAttempts, reconnectDelay, maxReconnectDelay, idleTimeout } =
    options;

  useEffect(() => {
    if (taskId === null || taskId === undefined) return undefined;
    const client = createSSEProgress(taskId, {
      baseUrl,
      token,
      autoReconnect,
      maxReconnectAttempts,
      reconnectDelay,
      maxReconnectDelay,
      idleTimeout,
      onProgress: (...args) => latest.current.onProgress?.(...args),
      onComplete: (...args) => latest.current.onComplete?.(...args),
      onError: (...args) => latest.current.onError?.(...args),
      onConnect: () => latest.current.onConnect?.(),
      onDisconnect: () => latest.current.onDisconnect?.(),
    });
    store.attach(taskId, client);
    return () => {
      store.detach(client);
      client.disconnect();
    };
    // The connection options, not the callbacks: a new callback must not reconnect.
  }, [store, taskId, baseUrl, token, autoReconnect, maxReconnectAttempts, reconnectDelay, maxReconnectDelay,
    idleTimeout]);

  const state = useSyncExternalStore(store.subscribe, () => store.snapshot(taskId), serverSnapshot);
  return useMemo(() => ({ ...state, reconnect: store.reconnect, disconnect: store.disconnect }), [state, store]);
}

export { IDLE_STATE };
