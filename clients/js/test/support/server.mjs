// The real `sse-progress` binary, started on port 0 for one test, and its HTTP API.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../../../..');

/** The binary under test: `$SSE_PROGRESS_BIN`, or the debug build of this repository. */
export const BIN = process.env.SSE_PROGRESS_BIN || path.join(repo, 'target/debug/sse-progress');

/** Every wait of the tests is bounded by this much. */
export const TIMEOUT = 15000;

/** Polls `check` until it returns a truthy value (which it returns), at most `timeout` ms. */
export async function waitFor(what, check, timeout = TIMEOUT) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    last = await check();
    if (last) return last;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/**
 * Starts `sse-progress serve --listen 127.0.0.1:<port>` (0: any free port) with `args`, and
 * resolves once it prints its address. No `SSE_PROGRESS_*` variable of the caller leaks in.
 */
export async function startServer(args = [], { port = 0, publishToken = null } = {}) {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('SSE_PROGRESS_') && k !== 'DEBUG'));
  const child = spawn(BIN, ['serve', '--listen', `127.0.0.1:${port}`, '--connect-rate-per-client', '0', '--drain-secs', '1', ...args], {
    env,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the server did not start: ${stderr}`)), TIMEOUT);
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (text) => {
      stderr += text;
      const found = /sse-progress listening on (http:\/\/\S+)\r?\n/.exec(stderr);
      if (found) {
        clearTimeout(timer);
        resolve(found[1]);
      }
    });
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`the server exited (${code ?? signal}) before listening: ${stderr}`));
    });
  });
  const auth = publishToken ? { Authorization: `Bearer ${publishToken}` } : {};

  async function call(method, route, body) {
    const init = { method, headers: { ...auth } };
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const response = await fetch(url + route, { ...init, signal: AbortSignal.timeout(TIMEOUT) });
    const text = await response.text();
    if (!response.ok) throw new Error(`${method} ${route}: ${response.status} ${text}`);
    return text === '' ? null : JSON.parse(text);
  }

  const server = {
    url,
    port: Number(new URL(url).port),
    pid: child.pid,
    get stderr() {
      return stderr;
    },
    create: (taskId, extra = {}) => call('POST', '/api/brand-monitor/tasks', { taskId, ...extra }),
    update: (taskId, patch) => call('PATCH', `/api/brand-monitor/tasks/${taskId}`, patch),
    complete: (taskId, result = null) => call('POST', `/api/brand-monitor/tasks/${taskId}/complete`, { result }),
    fail: (taskId, error) => call('POST', `/api/brand-monitor/tasks/${taskId}/fail`, { error }),
    remove: (taskId) => call('DELETE', `/api/brand-monitor/tasks/${taskId}`),
    health: () => call('GET', '/api/brand-monitor/health'),
    /** Waits until the server counts `n` open streams, and returns the health answer. */
    activeStreams: (n) => waitFor(`${n} open streams`, async () => {
      const health = await server.health();
      return health.activeConnections === n && health;
    }),
    /** Kills the process (SIGKILL: no drain) and waits for it to be gone. */
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
  return server;
}
