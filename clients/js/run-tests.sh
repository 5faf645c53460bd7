#!/usr/bin/env bash
# Tests of the JavaScript client (clients/js): the type check of the hand-written .d.ts files, the
# parser and server-side-rendering tests in Node, and the browser tests, in Debian's Chromium
# driven by playwright-core against the real `sse-progress` binary.
#
# Usage: clients/js/run-tests.sh   (after `cargo build`; SSE_PROGRESS_BIN names another binary)
# Needs: node and npm (20 or later), root for apt-get when Chromium is missing.
set -euo pipefail
cd "$(dirname "$0")"
repo=$(cd ../.. && pwd)
export SSE_PROGRESS_BIN="${SSE_PROGRESS_BIN:-$repo/target/debug/sse-progress}"
start=$SECONDS
step() { printf '\n==> clients/js: %s (%ds)\n' "$*" "$((SECONDS - start))"; }

step "system packages"
need=()
[ -x /usr/bin/chromium ] || need+=(chromium)
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null || need+=(npm)
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
node --version
/usr/bin/chromium --version 2>/dev/null | tail -1
if [ ! -x "$SSE_PROGRESS_BIN" ]; then
  echo "no server binary at $SSE_PROGRESS_BIN: run cargo build first, or set SSE_PROGRESS_BIN" >&2
  exit 1
fi

step "npm ci"
# --ignore-scripts: nothing runs at install time (esbuild's binary comes as its own package).
npm ci --ignore-scripts --no-audit --no-fund --loglevel=error

step "types (tsc)"
npx --no-install tsc -p test/types/tsconfig.json

step "tests (node --test)"
node --test --test-timeout=90000 test/parser.test.mjs test/ssr.test.mjs test/client.test.mjs test/statuses.test.mjs \
  test/network.test.mjs test/react.test.mjs test/feed.test.mjs test/dashboard.test.mjs \
  test/retry-floor.test.mjs test/shared-tokens.test.mjs test/set-change.test.mjs \
  test/dashboard-scale.test.mjs test/dashboard-token.test.mjs
