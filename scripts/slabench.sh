#!/usr/bin/env bash
# SLA timers at scale, release build, measured by the `slabench` binary in one process:
# memory and load time of SLABENCH_TIMERS (default 1,000,000) pending timers on one node,
# again after a restart, and the fire skew of SLABENCH_FIRES (default 5,000) timers coming
# due over ten seconds, each against a bare reference measured in the same run. Bounded:
# every wait has a limit; the bench firm's rows are removed at the end.
#
#   scripts/slabench.sh            (run as root; uses the project's services like make test)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export CP_ENV=${CP_ENV:-test}
export CP__REDIS__URL="redis://127.0.0.1:${CP_REDIS_PORT:-56379}" CP__TELEMETRY__FILTER=${CP__TELEMETRY__FILTER:-warn}

./scripts/services.sh up
cargo build --release --locked --bin consultantpro --bin slabench
./target/release/consultantpro migrate >/dev/null
./target/release/slabench --timers "${SLABENCH_TIMERS:-1000000}" --fires "${SLABENCH_FIRES:-5000}"
