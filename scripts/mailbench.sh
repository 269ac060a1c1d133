#!/usr/bin/env bash
# Email ingestion, release build, measured by the `mailbench` binary against a server it
# starts and the project's Dovecot: 10,000 messages imported by the hub and fetched by
# mbsync (isync) in the same run, then 1,000 APPENDs timed to the socket with IDLE.
# Bounded: the counts below; the server stops at the end.
#
#   scripts/mailbench.sh            (run as root; uses the project's services like make test)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export CP_ENV=${CP_ENV:-test}
PORT=${MAILBENCH_PORT:-18400}

./scripts/services.sh up
cargo build --release --locked --bin consultantpro --bin mailbench
BIN=./target/release/consultantpro
$BIN migrate >/dev/null

CP__SERVER__PORT=$PORT CP__REDIS__URL="redis://127.0.0.1:${CP_REDIS_PORT:-56379}" CP__TELEMETRY__FILTER=warn \
  CP__SERVER__SHUTDOWN_TIMEOUT_SECS=1 $BIN serve &
SERVER=$!
trap 'kill -TERM $SERVER 2>/dev/null || true; wait $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/ready/" >/dev/null && break; sleep 0.1; done

./target/release/mailbench --node "http://127.0.0.1:$PORT" \
  --messages "${MAILBENCH_MESSAGES:-10000}" --appends "${MAILBENCH_APPENDS:-1000}"
