#!/usr/bin/env bash
# Inbound SMS webhooks, release build, measured by the `smsbench` binary: throughput with
# the signature check and storage (against the same server's HTTP floor in the same run),
# then webhook-to-socket latency. Bounded: two phases of SMSBENCH_SECONDS (default 15)
# and at most SMSBENCH_PROBES (default 1,000) timed webhooks; the server stops at the end.
#
#   scripts/smsbench.sh            (run as root; uses the project's services like make test)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export CP_ENV=${CP_ENV:-test}
PORT=${SMSBENCH_PORT:-18200}

./scripts/services.sh up
cargo build --release --locked --bin consultantpro --bin smsbench
BIN=./target/release/consultantpro
$BIN migrate >/dev/null

CP__SERVER__PORT=$PORT CP__REDIS__URL="redis://127.0.0.1:${CP_REDIS_PORT:-56379}" CP__TELEMETRY__FILTER=warn \
  CP__SERVER__SHUTDOWN_TIMEOUT_SECS=1 $BIN serve &
SERVER=$!
trap 'kill -TERM $SERVER 2>/dev/null || true; wait $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/ready/" >/dev/null && break; sleep 0.1; done

./target/release/smsbench --node "http://127.0.0.1:$PORT" --seconds "${SMSBENCH_SECONDS:-15}" \
  --latency-count "${SMSBENCH_PROBES:-1000}" --concurrency "${SMSBENCH_CONCURRENCY:-32}"
