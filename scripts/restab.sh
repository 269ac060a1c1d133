#!/usr/bin/env bash
# The contacts page (GET /api/v1/contacts?limit=50) side by side in one run: one or more
# builds of the product, each on a fresh server in the configuration `make run` serves
# (development profile, Redis bus, pool of 16, log level info), and rawrest from
# ../shared/bench (the least an honest server can do for that page under FORCE RLS).
# Rounds alternate product builds and rawrest, so drift hits all alike. Bounded: every
# probe is `restbench.sh` (wrk) for RESTAB_SECONDS (15), every server stops at the end.
#
#   scripts/restab.sh [LABEL=BINARY ...]     default: now=./target/release/consultantpro
#
# Needs: `make run`'s services and a seeded firm `bench` (../shared/bench/seed-product.sh),
# ../shared/bench/peers/setup-db.sh and rawrest built (cargo build --release in its folder).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export CP_ENV=${CP_ENV:-development}
BENCH=$(cd ../shared/bench && pwd)
RAWBIN=$BENCH/tools/rawrest/target/release/rawrest
SECONDS_EACH=${RESTAB_SECONDS:-15}
ROUNDS=${RESTAB_ROUNDS:-2}
PORT=${RESTAB_PORT:-18120}
RAW_PORT=18082
REDIS_URL="redis://127.0.0.1:${CP_REDIS_PORT:-56379}"
BUILDS=("$@")
[[ ${#BUILDS[@]} -gt 0 ]] || BUILDS=("now=./target/release/consultantpro")

pids=()
cleanup() { for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
wait_ready() { for _ in $(seq 1 100); do curl -fsS -m 1 "$1/ready/" >/dev/null 2>&1 && return 0; sleep 0.1; done; return 1; }

setsid timeout 1800 "$RAWBIN" --port "$RAW_PORT" --serve-for 1790 >/tmp/restab-rawrest.log 2>&1 </dev/null &
pids+=($!)
wait_ready "http://127.0.0.1:$RAW_PORT"

probe() { # label base connections
  LABEL="$1" "$BENCH/tools/restbench.sh" "$2" "$SECONDS_EACH" "$3"
}

for round in $(seq 1 "$ROUNDS"); do
  for connections in 64 8; do
    for build in "${BUILDS[@]}"; do
      label=${build%%=*} binary=${build#*=}
      CP__SERVER__PORT=$PORT CP__REDIS__URL=$REDIS_URL CP__SERVER__SHUTDOWN_TIMEOUT_SECS=1 \
        setsid timeout 600 "$binary" serve >>"${CP_DATA_DIR:-.data}/restab-server.log" 2>&1 </dev/null &
      server=$!
      pids+=("$server")
      wait_ready "http://127.0.0.1:$PORT"
      probe "product $label c$connections r$round" "http://127.0.0.1:$PORT" "$connections"
      kill -TERM "$server" 2>/dev/null || true
      wait "$server" 2>/dev/null || true
    done
    probe "rawrest c$connections r$round" "http://127.0.0.1:$RAW_PORT" "$connections"
  done
done
