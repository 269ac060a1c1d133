#!/usr/bin/env bash
# Booking pages, release build, measured by the `bookbench` binary against a server it
# starts: the public 60-day slot list (against the server's HTTP floor) and booking
# throughput on one member's calendar (against ticket creation), then 50 rounds of 32
# clients racing for one slot. Bounded: phases of BOOKBENCH_SECONDS (default 15); the
# server stops at the end.
#
#   scripts/bookbench.sh            (run as root; uses the project's services like make test)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export CP_ENV=${CP_ENV:-test}
PORT=${BOOKBENCH_PORT:-18300}

./scripts/services.sh up
cargo build --release --locked --bin consultantpro --bin bookbench
BIN=./target/release/consultantpro
$BIN migrate >/dev/null

CP__SERVER__PORT=$PORT CP__REDIS__URL="redis://127.0.0.1:${CP_REDIS_PORT:-56379}" CP__TELEMETRY__FILTER=warn \
  CP__SERVER__SHUTDOWN_TIMEOUT_SECS=1 $BIN serve &
SERVER=$!
trap 'kill -TERM $SERVER 2>/dev/null || true; wait $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/ready/" >/dev/null && break; sleep 0.1; done

./target/release/bookbench --node "http://127.0.0.1:$PORT" --seconds "${BOOKBENCH_SECONDS:-15}"
