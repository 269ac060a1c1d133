#!/usr/bin/env bash
# Live-service load, release build, measured by the `loadgen` binary:
#   A. 1,000 sockets on one conversation, 50 messages/s
#   B. 5,000 sockets over 500 conversations, 500 messages/s
# each on one node (in-process bus) and on two nodes over Redis. Bounded: every run sends
# for WSBENCH_SECONDS (default 20) and drains for at most 10 s; servers stop at the end.
#
#   scripts/wsbench.sh            (run as root; uses the project's services like make test)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export CP_ENV=${CP_ENV:-test}
SECONDS_EACH=${WSBENCH_SECONDS:-20}
PORT_A=${WSBENCH_PORT:-18100}
PORT_B=$((PORT_A + 1))
REDIS_URL="redis://127.0.0.1:${CP_REDIS_PORT:-56379}"

./scripts/services.sh up
cargo build --release --locked --bin consultantpro --bin loadgen
BIN=./target/release/consultantpro
LOADGEN=./target/release/loadgen
$BIN migrate >/dev/null

SERVERS=()
stop_servers() {
  for pid in "${SERVERS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${SERVERS[@]}"; do wait "$pid" 2>/dev/null || true; done
  SERVERS=()
}
trap stop_servers EXIT

start_server() { # port redis-url
  CP__SERVER__PORT=$1 CP__REDIS__URL=$2 CP__TELEMETRY__FILTER=warn CP__SERVER__SHUTDOWN_TIMEOUT_SECS=1 \
    $BIN serve &
  SERVERS+=($!)
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$1/ready/" >/dev/null && return; sleep 0.1; done
  echo "server on $1 did not become ready" >&2
  exit 1
}

run() { # title nodes... -- loadgen args
  local title=$1; shift
  echo
  echo "== $title"
  $LOADGEN "$@" --seconds "$SECONDS_EACH"
}

start_server "$PORT_A" ""
run "A, one node: 1,000 sockets, 1 conversation, 50 msg/s" \
  --nodes "http://127.0.0.1:$PORT_A" --server-pids "${SERVERS[0]}" --sockets 1000 --conversations 1 --rate 50
run "B, one node: 5,000 sockets, 500 conversations in 50 firms, 500 msg/s" \
  --nodes "http://127.0.0.1:$PORT_A" --server-pids "${SERVERS[0]}" --sockets 5000 --firms 50 --conversations 500 --rate 500
stop_servers

start_server "$PORT_A" "$REDIS_URL"
start_server "$PORT_B" "$REDIS_URL"
NODES="http://127.0.0.1:$PORT_A,http://127.0.0.1:$PORT_B"
PIDS="${SERVERS[0]},${SERVERS[1]}"
run "A, two nodes over Redis: 1,000 sockets, 1 conversation, 50 msg/s" \
  --nodes "$NODES" --server-pids "$PIDS" --sockets 1000 --conversations 1 --rate 50
run "B, two nodes over Redis: 5,000 sockets, 500 conversations in 50 firms, 500 msg/s" \
  --nodes "$NODES" --server-pids "$PIDS" --sockets 5000 --firms 50 --conversations 500 --rate 500
