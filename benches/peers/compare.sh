#!/usr/bin/env bash
# sse-progress against nchan, measured by the same load tool in the same run.
#
#   benches/peers/compare.sh [N ...]        (default N: 1000 10000 19000)
#
# Environment:
#   REPEAT=3        runs per (N, peer), alternating the peers; the table shows medians
#   CORES=one       each server pinned to core 0 with one thread/worker, the tool (one thread)
#                   on core 1: the comparison issue 4 defines
#   CORES=both      nothing pinned: each server on two threads/workers, the tool on two threads,
#                   all sharing both cores
#   BUILDS="a=PATH b=PATH"  instead of this tree's release build, each named binary runs as a peer
#                   of its own (rows `sse-progress[a]`, ...), alternating with nchan in the same run:
#                   how before/after figures of a change are measured
#   BUSY=1          the tool's viewer threads poll without sleeping (`bench --busy-poll`; with
#                   CORES=one only): on loopback a sleeping viewer thread makes every server send
#                   pay for waking it (an IPI), which a server never pays for remote clients
#
# For each N and each peer: N streams on one fresh task, 20 updates 200 ms apart. Both servers
# are restarted for every run, so memory per stream is the growth of a fresh process, and each
# run uses its own 127.0.x.y source addresses so TIME_WAIT ports of an earlier run never run out.
# Prints one JSON line per run (kept in target/bench-compare-$CORES[-busy].jsonl) and a Markdown table
# of medians. Installs nginx with nchan from Debian if missing. Talks only to 127.0.0.1; stops
# by itself.
set -euo pipefail
cd "$(dirname "$0")/../.."
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(1000 10000 19000)
repeat=${REPEAT:-3}
cores=${CORES:-one}
case "$cores" in
  one) pin_server="taskset -c 0"; pin_tool="taskset -c 1"; threads=1 ;;
  both) pin_server=""; pin_tool=""; threads=2 ;;
  *) echo "CORES must be one or both" >&2; exit 2 ;;
esac
busy=""
if [ "${BUSY:-0}" = 1 ]; then
  [ "$cores" = one ] || { echo "BUSY=1 needs CORES=one (the tool would take the server's core)" >&2; exit 2; }
  busy=--busy-poll
fi

if [ ! -f /usr/lib/nginx/modules/ngx_nchan_module.so ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq nginx-light libnginx-mod-nchan >/dev/null
  service nginx stop >/dev/null 2>&1 || true
fi
cargo build --release --quiet
bin=target/release/sse-progress
builds=(${BUILDS:-this=$bin})
peers=(nchan)
for b in "${builds[@]}"; do peers+=("sse-progress[${b%%=*}]"); done
work=$(mktemp -d)
sed "s/^worker_processes 1;.*/worker_processes $threads;/" benches/peers/nchan.conf >"$work/nchan.conf"
pids=()
cleanup() { stop_servers; rm -rf "$work"; }
trap cleanup EXIT

start_server() { # peer
  stop_servers
  local server_bin=$bin
  for b in "${builds[@]}"; do [ "$1" = "sse-progress[${b%%=*}]" ] && server_bin=${b#*=}; done
  if [ "$1" = nchan ]; then
    $pin_server nginx -p "$work" -c "$work/nchan.conf" &
    server=$!
    pids=("$server")
    url=http://127.0.0.1:18400
    for _ in $(seq 50); do curl -s -o /dev/null -X POST "$url/pub?id=warmup" -d x && break; sleep 0.1; done
    spids=$(echo "$server" $(pgrep -P "$server") | tr ' ' ',')
  else
    $pin_server "$server_bin" serve --listen 127.0.0.1:18401 --threads "$threads" --connect-rate-per-client 0 \
      --max-streams-per-client 0 --max-connections-per-client 0 2>"$work/sse.log" &
    server=$!
    pids=("$server")
    url=http://127.0.0.1:18401
    for _ in $(seq 50); do curl -sf -o /dev/null "$url/api/brand-monitor/health" && break; sleep 0.1; done
    spids=$server
  fi
}
stop_servers() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do while kill -0 "$p" 2>/dev/null; do sleep 0.1; done; done
  pids=()
}

out=target/bench-compare-$cores${busy:+-busy}.jsonl
: >"$out"
run=0
for n in "${sizes[@]}"; do
  for r in $(seq "$repeat"); do
    for peer in "${peers[@]}"; do
      run=$((run + 1))
      start_server "$peer"
      sources=$(for i in 1 2 3 4; do printf '127.%d.%d.%d,' $((run / 250 + 1)) $((run % 250)) "$i"; done)
      label=$peer
      [ ${#builds[@]} -gt 1 ] || [ "$peer" = nchan ] || label=sse-progress
      $pin_tool "$bin" bench --peer "${peer%%[*}" --url "$url" --streams "$n" --updates 20 --interval-ms 200 \
        --sources "${sources%,}" --server-pid "$spids" --threads "$threads" $busy --json | sed "s/\"peer\":\"${peer%%[*}\"/\"peer\":\"$label\"/" | tee -a "$out" \
        || echo "{\"peer\":\"$label\",\"streams\":$n,\"failed\":true}" | tee -a "$out"
    done
  done
done
stop_servers

python3 - "$out" "$cores${busy:+, BUSY=1}" "$repeat" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print()
print(f"CORES={sys.argv[2]}, medians of {sys.argv[3]} runs per row (failed runs: "
      f"{sum(1 for r in rows if r.get('failed'))})")
print()
print("| peer | N | held | connect s | server CPU/connect | memory/stream | CPU/event | tool CPU/event "
      "| p50 ms | p99 ms | max ms | lost | publish p50 / max ms |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
groups = {}
for r in rows:
    if not r.get("failed"):
        groups.setdefault((r["streams"], r["peer"]), []).append(r)
def med(rs, key, scale=1.0):
    vals = [r[key] for r in rs if r.get(key) is not None]
    return statistics.median(vals) / scale if vals else float("nan")
for (n, peer), rs in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1] != "nchan")):
    print(f"| {peer} | {n} | {min(r['streamsHeld'] for r in rs)} | {med(rs, 'connectSeconds'):.2f} | "
          f"{med(rs, 'cpuPerConnectUs'):.0f} µs | {med(rs, 'memoryPerStreamBytes', 1024):.2f} KiB | "
          f"{med(rs, 'cpuPerEventUs'):.1f} µs | {med(rs, 'toolCpuPerEventUs'):.1f} µs | "
          f"{med(rs, 'latencyP50Us', 1000):.1f} | {med(rs, 'latencyP99Us', 1000):.1f} | "
          f"{med(rs, 'latencyMaxUs', 1000):.1f} | {max(r['lost'] for r in rs)} | "
          f"{med(rs, 'publishP50Us', 1000):.2f} / {med(rs, 'publishMaxUs', 1000):.2f} |")
PY
