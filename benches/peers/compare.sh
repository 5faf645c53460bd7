#!/usr/bin/env bash
# sse-progress against nchan, measured by the same load tool in the same run.
#
#   benches/peers/compare.sh [N ...]        (default N: 1000 10000 19000)
#
# Each server is pinned to core 0 and runs one thread/worker; the load tool is pinned to core 1.
# For each N and each peer: N streams on one fresh task, 20 updates 200 ms apart. Each run uses
# its own 127.0.0.x source addresses so TIME_WAIT ports of the previous run do not run out.
# Prints one JSON line per run (also kept in target/bench-compare.jsonl) and a Markdown table.
# Installs nginx with nchan from Debian if missing. Talks only to 127.0.0.1; stops by itself.
set -euo pipefail
cd "$(dirname "$0")/../.."
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(1000 10000 19000)

if [ ! -f /usr/lib/nginx/modules/ngx_nchan_module.so ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq nginx-light libnginx-mod-nchan >/dev/null
  service nginx stop >/dev/null 2>&1 || true
fi
cargo build --release --quiet
bin=target/release/sse-progress
work=$(mktemp -d)
pids=()
cleanup() { stop_servers; rm -rf "$work"; }
trap cleanup EXIT

# Both servers start fresh for every N, so memory per stream is not flattered by memory the
# previous run left in the allocator.
start_servers() {
  stop_servers
  taskset -c 0 nginx -p "$work" -c "$PWD/benches/peers/nchan.conf" &
  nginx_master=$!
  taskset -c 0 "$bin" serve --listen 127.0.0.1:18401 --threads 1 --connect-rate-per-client 0 \
    --max-streams-per-client 0 2>"$work/sse.log" &
  sse=$!
  pids=("$nginx_master" "$sse")
  for _ in $(seq 50); do
    curl -sf -o /dev/null http://127.0.0.1:18401/api/brand-monitor/health && \
      curl -s -o /dev/null -X POST 'http://127.0.0.1:18400/pub?id=warmup' -d x && break
    sleep 0.1
  done
  nginx_pids=$(echo "$nginx_master" $(pgrep -P "$nginx_master") | tr ' ' ',')
}
stop_servers() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do while kill -0 "$p" 2>/dev/null; do sleep 0.1; done; done
  pids=()
}

out=target/bench-compare.jsonl
: >"$out"
run=0
for n in "${sizes[@]}"; do
  start_servers
  for peer in nchan sse-progress; do
    run=$((run + 1))
    sources=$(for i in 1 2 3 4; do printf '127.0.%d.%d,' "$run" "$i"; done)
    if [ "$peer" = nchan ]; then url=http://127.0.0.1:18400; spids=$nginx_pids; else url=http://127.0.0.1:18401; spids=$sse; fi
    taskset -c 1 "$bin" bench --peer "$peer" --url "$url" --streams "$n" --updates 20 --interval-ms 200 \
      --sources "${sources%,}" --server-pid "$spids" --json | tee -a "$out" \
      || echo "{\"peer\":\"$peer\",\"streams\":$n,\"failed\":true}" | tee -a "$out"
    sleep 2 # let the server close the old streams before the next run
  done
done

python3 - "$out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print()
print("| peer | N | held | connect s | memory/stream | CPU/event | p50 ms | p99 ms | max ms | lost | publish p50 / max ms |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for r in rows:
    if r.get("failed"):
        print(f"| {r['peer']} | {r['streams']} | run failed (see the log above) | | | | | | | | |")
        continue
    mem = r.get("memoryPerStreamBytes"); cpu = r.get("cpuPerEventUs")
    print(f"| {r['peer']} | {r['streams']} | {r['streamsHeld']} | {r['connectSeconds']:.2f} | "
          f"{mem/1024:.2f} KiB | {cpu:.1f} µs | {r['latencyP50Us']/1000:.1f} | {r['latencyP99Us']/1000:.1f} | "
          f"{r['latencyMaxUs']/1000:.1f} | {r['lost']} | {r['publishP50Us']/1000:.2f} / {r['publishMaxUs']/1000:.2f} |")
PY
