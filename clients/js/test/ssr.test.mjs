// Server-side rendering: importing the client and the hook touches no `window`, `document`,
// `location` or `EventSource`, and rendering the hook on the server gives the idle state and
// sends no request.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import React from 'react';
import { renderToString } from 'react-dom/server';

const WATCHED = ['window', 'document', 'location', 'EventSource', 'navigator'];

test('ssr: importing the modules touches no browser global', async () => {
  const touched = [];
  const saved = WATCHED.map((name) => [name, Object.getOwnPropertyDescriptor(globalThis, name)]);
  for (const name of WATCHED) {
    Object.defineProperty(globalThis, name, {
      configurable: true,
      get() {
        touched.push(name);
        return undefined;
      },
    });
  }
  try {
    await import('../sse-progress.js');
    await import('../react.js');
  } finally {
    for (const [name, descriptor] of saved) {
      if (descriptor) Object.defineProperty(globalThis, name, descriptor);
      else delete globalThis[name];
    }
  }
  assert.deepEqual(touched, []);
});

test('ssr: the hook renders the idle state on the server and sends no request', async () => {
  const { useSSEProgress } = await import('../react.js');
  const { IDLE_STATE } = await import('../sse-progress.js');
  const requests = [];
  const realFetch = globalThis.fetch;
  globalThis.fetch = (...args) => {
    requests.push(args);
    return new Promise(() => {});
  };
  let seen = null;
  function Bar() {
    const state = useSSEProgress('task-1', { baseUrl: 'http://127.0.0.1:9', onProgress: () => {} });
    seen = state;
    return React.createElement('p', null, `${state.connectionState} ${state.progress}% ${state.status}`);
  }
  try {
    const html = renderToString(React.createElement(React.StrictMode, null, React.createElement(Bar)));
    assert.equal(html, '<p>idle 0% null</p>');
    await new Promise((resolve) => setTimeout(resolve, 50));
  } finally {
    globalThis.fetch = realFetch;
  }
  assert.equal(requests.length, 0);
  for (const key of Object.keys(IDLE_STATE)) assert.equal(seen[key], IDLE_STATE[key], key);
  assert.equal(typeof seen.reconnect, 'function');
  assert.equal(typeof seen.disconnect, 'function');
});
