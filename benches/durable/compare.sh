#!/usr/bin/env bash
# Durable update throughput and latency, measured against the disk and against Redis in one run.
#
#   benches/durable/compare.sh [ROUNDS]      (default 3)
#
# For each round, on a fresh data directory under target/: the disk's raw `fdatasync` time
# (`dd oflag=dsync`), then `bench --producers 32` against sse-progress in memory, with
# `--data-dir` (`--fsync always`), with `--fsync interval`, and `redis-benchmark -c 32 -t set`
# against `redis-server --appendonly yes --appendfsync always`; then one paced producer
# (p50/p99 of the round trip) in memory and with `--data-dir`. `fdatasync` calls are counted
# with `perf stat` when perf is installed. Installs redis-server/redis-tools from Debian if
# missing. Talks only to 127.0.0.1; stops everything it started, by PID.
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-3}
updates=${UPDATES:-60000}
if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq redis-server redis-tools >/dev/null
fi
cargo build --release --quiet
bin=target/release/sse-progress
work=$(mktemp -d -p target durable-bench.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

syncs() { # PID COMMAND...: runs COMMAND while counting PID's fdatasync calls; prints the count last
  local pid=$1
  shift
  if command -v perf >/dev/null; then
    perf stat -e syscalls:sys_enter_fdatasync -p "$pid" -x, -o "$work/perf" -- "$@"
    cut -d, -f1 "$work/perf" | grep -E '^[0-9]+$' | tail -1
  else
    "$@"
    echo "?"
  fi
}

serve() { # NAME ARGS...: starts a server on a free port; sets url and pid
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  "$bin" serve --listen "127.0.0.1:$port" --threads 2 --connect-rate-per-client 0 "${@:2}" 2>"$work/$1.log" &
  pid=$!
  pids+=("$pid")
  url=http://127.0.0.1:$port
  for _ in $(seq 50); do curl -sf -o /dev/null "$url/api/brand-monitor/health" && return; sleep 0.1; done
  echo "server $1 did not start" >&2
  exit 1
}

stop() { kill "$1"; wait "$1" 2>/dev/null || true; }

rate() { python3 -c 'import json,sys; print(round(json.loads(sys.stdin.readline())["publishRatePerSec"]))'; }
latency() { # p50/p99 of the publish round trip in ms
  python3 -c 'import json,sys; r = json.loads(sys.stdin.readline()); print("%.2f/%.2f" % (r["publishP50Us"] / 1000, r["publishP99Us"] / 1000))'
}

echo "| round | raw fdatasync | memory, 32 producers | --data-dir always | fdatasyncs, updates each | --fsync interval | Redis AOF always, -c 32 | one producer p50/p99 ms: memory | --data-dir |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
for round in $(seq "$rounds"); do
  dir=$work/round$round
  mkdir -p "$dir"
  start=$(date +%s.%N)
  dd if=/dev/zero of="$dir/dd" bs=256 count=2000 oflag=dsync 2>/dev/null
  raw=$(python3 -c "import time; print(f'{(time.time() - $start) / 2000 * 1000:.2f} ms')")
  rm -f "$dir/dd"

  serve memory
  memory=$("$bin" bench --url "$url" --streams 1 --updates "$updates" --producers 32 --json | rate)
  one_memory=$("$bin" bench --url "$url" --streams 1 --updates 2000 --interval-ms 1 --json | latency)
  stop "$pid"

  serve always --data-dir "$dir/always"
  out=$(syncs "$pid" "$bin" bench --url "$url" --streams 1 --updates "$updates" --producers 32 --json)
  always=$(head -1 <<<"$out" | rate)
  count=$(tail -1 <<<"$out")
  one_always=$("$bin" bench --url "$url" --streams 1 --updates 2000 --interval-ms 1 --json | latency)
  stop "$pid"

  serve interval --data-dir "$dir/interval" --fsync interval
  interval=$("$bin" bench --url "$url" --streams 1 --updates "$updates" --producers 32 --json | rate)
  stop "$pid"

  rport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  mkdir -p "$dir/redis"
  redis-server --port "$rport" --bind 127.0.0.1 --dir "$dir/redis" --appendonly yes --appendfsync always \
    --save "" --daemonize no >"$work/redis.log" 2>&1 &
  rpid=$!
  pids+=("$rpid")
  for _ in $(seq 50); do redis-cli -p "$rport" ping >/dev/null 2>&1 && break; sleep 0.1; done
  redis=$(redis-benchmark -p "$rport" -c 32 -t set -n "$updates" -q 2>/dev/null | grep -oE '[0-9.]+ requests per second' | cut -d' ' -f1)
  stop "$rpid"

  per_sync=$(python3 -c "c='$count'; print(f'{c}, {$updates / int(c):.1f}' if c.isdigit() and int(c) else c)")
  pct=$(python3 -c "print(f'{100 * $always / $memory:.0f} %')")
  echo "| $round | $raw | $memory/s | $always/s ($pct) | $per_sync | $interval/s | ${redis%.*}/s | $one_memory | $one_always |"
done
