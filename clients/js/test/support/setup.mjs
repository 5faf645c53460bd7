// One Chromium per test file; per test, a fresh server (so the server's connection counts are the
// test's own), an optional proxy in front of it, and a fresh page.
import { after, before } from 'node:test';

import { launchBrowser, openPage } from './browser.mjs';
import { startProxy } from './proxy.mjs';
import { startServer } from './server.mjs';

export function browserSuite() {
  let browser = null;
  before(async () => {
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
  });

  /** A server (`args`), maybe a proxy, and a page on the origin the browser talks to. */
  return async function setup(t, { args = [], react = false, proxy = false, publishToken = null } = {}) {
    const server = await startServer(publishToken ? ['--publish-token', publishToken, ...args] : args, { publishToken });
    t.after(() => server.kill());
    let origin = server.url;
    let px = null;
    if (proxy) {
      px = await startProxy(server.port);
      t.after(() => px.close());
      origin = px.url;
    }
    const page = await openPage(browser, origin, { react });
    t.after(() => page.close());
    t.after(() => {
      if (page.errors.length > 0) throw page.errors[0];
    });
    return { server, proxy: px, origin, ...page };
  };
}

/** A window in which something that must not happen (a retry, a reconnect) would show. */
export function quiet(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
