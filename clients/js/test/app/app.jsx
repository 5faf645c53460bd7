// The React test app: progress bars on `useSSEProgress`, in StrictMode (development React, so
// every effect mounts, unmounts and mounts again), with inline callbacks on purpose.
import { StrictMode, useState } from 'react';
import { flushSync } from 'react-dom';
import { createRoot } from 'react-dom/client';

import { useSSEProgress } from '../../react.js';

window.appLog = [];
let root = null;
let rerender = null;

function Bar({ taskId, options }) {
  const state = useSSEProgress(taskId, {
    ...options,
    onProgress: (task) => window.appLog.push([taskId, 'progress', task.progress]),
    onComplete: (result) => window.appLog.push([taskId, 'complete', result]),
    onError: (error) => window.appLog.push([taskId, 'error', error.code]),
  });
  return (
    <div
      className="bar"
      data-task={taskId ?? ''}
      data-status={state.status ?? ''}
      data-state={state.connectionState}
      data-progress={state.progress}
    >
      {state.stage}
    </div>
  );
}

function App({ tasks, options }) {
  const [renders, setRenders] = useState(0);
  rerender = () => setRenders((n) => n + 1);
  return (
    <div data-renders={renders}>
      {tasks.map((taskId, i) => (
        <Bar key={i} taskId={taskId} options={options} />
      ))}
    </div>
  );
}

/** Renders bars for `tasks` (null: an idle bar). */
window.mountApp = ({ tasks, options = {}, strict = true }) => {
  root = createRoot(document.getElementById('root'));
  const app = <App tasks={tasks} options={options} />;
  flushSync(() => root.render(strict ? <StrictMode>{app}</StrictMode> : app));
};

/** Renders the app again (new inline callbacks, same task ids). */
window.rerenderApp = () => flushSync(() => rerender());

window.unmountApp = () => {
  root.unmount();
  root = null;
};

/** What each bar shows. */
window.bars = () =>
  [...document.querySelectorAll('.bar')].map((bar) => ({
    taskId: bar.dataset.task,
    status: bar.dataset.status,
    state: bar.dataset.state,
    progress: Number(bar.dataset.progress),
  }));

window.harnessReady = true;
