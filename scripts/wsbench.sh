#!/usr/bin/env bash
# Live-service load, release build, measured by the `loadgen` binary, in the configuration
# `make run` serves (development profile: Redis bus, pool of 16, log level info):
#   A. 1,000 sockets on one conversation, 50 messages/s
#   B. 5,000 sockets over 500 conversations in 50 firms, 500 messages/s
#   C. 15,000 mostly idle sockets over 150 conversations, 15 messages/s (memory per socket)
# A and B on one node and on two nodes sharing Redis; C on one node. Every case starts on
# fresh servers, and the whole set runs WSBENCH_RUNS times (default 3); the end prints each
# figure's median with its range over the runs. Bounded: every case sends for
# WSBENCH_SECONDS (default 15) and drains for at most 10 s; servers stop at the end.
#
#   scripts/wsbench.sh            (run as root; uses the project's services like make run)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export CP_ENV=${CP_ENV:-development}
SECONDS_EACH=${WSBENCH_SECONDS:-15}
RUNS=${WSBENCH_RUNS:-3}
PORT_A=${WSBENCH_PORT:-18100}
PORT_B=$((PORT_A + 1))
REDIS_URL="redis://127.0.0.1:${CP_REDIS_PORT:-56379}"
RESULTS="${CP_DATA_DIR:-.data}/wsbench-$(date -u +%Y%m%dT%H%M%SZ).jsonl"

./scripts/services.sh up
cargo build --release --locked --bin consultantpro --bin loadgen
BIN=./target/release/consultantpro
LOADGEN=./target/release/loadgen
$BIN migrate >/dev/null
mkdir -p "$(dirname "$RESULTS")"

SERVERS=()
stop_servers() {
  for pid in "${SERVERS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${SERVERS[@]}"; do wait "$pid" 2>/dev/null || true; done
  SERVERS=()
}
trap stop_servers EXIT

start_server() { # port
  CP__SERVER__PORT=$1 CP__REDIS__URL=$REDIS_URL CP__SERVER__SHUTDOWN_TIMEOUT_SECS=1 \
    $BIN serve >>"${CP_DATA_DIR:-.data}/wsbench-server.log" 2>&1 &
  SERVERS+=($!)
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$1/ready/" >/dev/null && return; sleep 0.1; done
  echo "server on $1 did not become ready" >&2
  exit 1
}

case_on() { # nodes label -- loadgen args
  local nodes=$1 label=$2; shift 2
  stop_servers
  start_server "$PORT_A"
  local urls="http://127.0.0.1:$PORT_A" pids="${SERVERS[0]}"
  if [[ $nodes == 2 ]]; then
    start_server "$PORT_B"
    urls="$urls,http://127.0.0.1:$PORT_B" pids="$pids,${SERVERS[1]}"
  fi
  echo
  echo "== $label"
  $LOADGEN --nodes "$urls" --server-pids "$pids" --seconds "$SECONDS_EACH" --label "$label" "$@" | tee /dev/stderr \
    | tail -1 >>"$RESULTS"
  stop_servers
}

for run in $(seq 1 "$RUNS"); do
  echo
  echo "#### run $run of $RUNS"
  case_on 1 "A one node" --sockets 1000 --conversations 1 --rate 50
  case_on 1 "B one node" --sockets 5000 --firms 50 --conversations 500 --rate 500
  case_on 1 "C one node" --sockets 15000 --conversations 150 --rate 15
  case_on 2 "A two nodes" --sockets 1000 --conversations 1 --rate 50
  case_on 2 "B two nodes" --sockets 5000 --firms 50 --conversations 500 --rate 500
done

python3 - "$RESULTS" <<'PY'
import json, statistics, sys
runs = [json.loads(line) for line in open(sys.argv[1]) if line.startswith("{")]
def spread(values):
    return f"{statistics.median(values):.1f} ({min(values):.1f}-{max(values):.1f})"
print(f"\nmedian (range) over runs; results in {sys.argv[1]}")
print("| case | runs | p50 ms | p99 ms | max ms | lost | duplicated | accepted/s | KiB/socket | server CPU-s |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for label in dict.fromkeys(r["label"] for r in runs):
    rs = [r for r in runs if r["label"] == label]
    cpu = [sum(s["cpu_seconds_sending"] for s in r["servers"]) for r in rs]
    kib = [statistics.mean(s["kib_per_socket"] for s in r["servers"]) for r in rs]
    print(f"| {label} | {len(rs)} | {spread([r['latency_ms']['p50'] for r in rs])} | "
          f"{spread([r['latency_ms']['p99'] for r in rs])} | {spread([r['latency_ms']['max'] for r in rs])} | "
          f"{sum(r['lost'] for r in rs)} | {sum(r['duplicated'] for r in rs)} | "
          f"{spread([r['accepted_rate'] for r in rs])} | {spread(kib)} | {spread(cpu)} |")
PY
