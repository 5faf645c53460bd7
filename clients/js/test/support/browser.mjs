// Debian's Chromium, driven by playwright-core, on pages served from the real server's origin.
//
// The test pages are answered by `page.route('**/__test/**')`, so they share the server's origin
// (no CORS) and import the client module the server itself serves at `/client/sse-progress.js`.
// React ships no ES module build, so the React test app is bundled with esbuild in memory, with
// the core module left external so that plain and React code share one module instance.
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

import * as esbuild from 'esbuild';
import { chromium } from 'playwright-core';

import { TIMEOUT } from './server.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const app = path.join(here, '../app');

export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

export function launchBrowser() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: TIMEOUT,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-dev-shm-usage',
      '--disable-background-networking',
      '--disable-component-update',
      '--no-first-run',
    ],
  });
}

let bundle = null;

/** The React test app, bundled once per process (development React, so StrictMode double-mounts). */
function reactBundle() {
  bundle ??= esbuild
    .build({
      entryPoints: [path.join(app, 'app.jsx')],
      bundle: true,
      write: false,
      format: 'esm',
      jsx: 'automatic',
      logLevel: 'silent',
      define: { 'process.env.NODE_ENV': '"development"' },
      plugins: [
        {
          name: 'served-core-module',
          setup(build) {
            build.onResolve({ filter: /(^|\/)sse-progress\.js$/ }, () => ({ path: '/client/sse-progress.js', external: true }));
          },
        },
      ],
    })
    .then((result) => result.outputFiles[0].text);
  return bundle;
}

const PAGE = `<!doctype html><html><head><meta charset="utf-8"><title>sse-progress test</title></head>
<body><div id="root"></div><script type="module" src="/__test/SCRIPT"></script></body></html>`;

/**
 * A new browser context and page on `origin`, with the plain harness (`react: false`: `follow()`
 * and friends) or the React app (`mountApp()`...). Records every stream request the page makes.
 */
export async function openPage(browser, origin, { react = false } = {}) {
  const context = await browser.newContext();
  context.setDefaultTimeout(TIMEOUT);
  const page = await context.newPage();
  const streams = [];
  page.on('request', (request) => {
    if (new URL(request.url()).pathname.startsWith('/api/brand-monitor/progress')) {
      streams.push({ url: request.url(), at: Date.now(), request });
    }
  });
  const errors = [];
  page.on('pageerror', (e) => errors.push(e));
  await page.route('**/__test/**', async (route) => {
    const name = new URL(route.request().url()).pathname.slice('/__test/'.length);
    if (name === 'page.html') {
      await route.fulfill({ contentType: 'text/html', body: PAGE.replace('SCRIPT', react ? 'app.js' : 'harness.js') });
    } else if (name === 'harness.js') {
      await route.fulfill({ contentType: 'text/javascript', body: await readFile(path.join(app, 'harness.js'), 'utf8') });
    } else if (name === 'app.js') {
      await route.fulfill({ contentType: 'text/javascript', body: await reactBundle() });
    } else {
      await route.fulfill({ status: 404, body: 'no such test file' });
    }
  });
  const console = [];
  page.on('console', (message) => console.push(`${message.type()}: ${message.text()}`));
  page.on('requestfailed', (request) => console.push(`failed: ${request.url()} ${request.failure()?.errorText}`));
  await page.goto(`${origin}/__test/page.html`);
  try {
    await page.waitForFunction(() => window.harnessReady === true);
  } catch (e) {
    throw new Error(`the test page did not load: ${[...console, ...errors].join('; ')}`, { cause: e });
  }
  return {
    context,
    page,
    streams,
    errors,
    /** The request headers of the `i`th stream request. */
    headers: (i) => streams[i].request.allHeaders(),
    close: () => context.close(),
  };
}
