#!/usr/bin/env bash
# Messages accepted per second, side by side in one run with the database's own limit:
#   reference: pgbench running the message transaction's core (BEGIN, the firm setting,
#              lock the conversation, take the next seq, insert the message, COMMIT) under
#              row-level security as the application role, 16 clients, 50 conversations;
#   product:   POST /api/v1/conversations/{id}/messages through a fresh release server
#              (the configuration `make run` serves: development profile, Redis bus, pool
#              of 16, log level info), offered MSGBENCH_RATE messages/s over 50
#              conversations with one socket each, measured by `loadgen`.
# Alternates reference and product MSGBENCH_RUNS times (default 2). Bounded: 15 s each.
#
#   scripts/msgbench.sh            (run as root; uses the project's services like make run)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export CP_ENV=${CP_ENV:-development}
RUNS=${MSGBENCH_RUNS:-2}
SECONDS_EACH=${MSGBENCH_SECONDS:-15}
RATE=${MSGBENCH_RATE:-2000}
PORT=${MSGBENCH_PORT:-18110}
REDIS_URL="redis://127.0.0.1:${CP_REDIS_PORT:-56379}"
PG_PORT=${CP__DATABASE__PORT:-55432}
DB_NAME=${CP__DATABASE__NAME:-consultantpro}
PGBENCH=$(ls /usr/lib/postgresql/*/bin/pgbench | tail -1)

./scripts/services.sh up
cargo build --release --locked --bin consultantpro --bin loadgen
# MSGBENCH_BIN measures another build of the server (an earlier commit's, say) the same way.
BIN=${MSGBENCH_BIN:-./target/release/consultantpro}
$BIN migrate >/dev/null

# The reference's firm: 50 conversations with ids pgbench can compute from a number.
RUN=$(date +%s)
SLUG="msgbench-$RUN"
$BIN create-firm --slug "$SLUG" --name "Message benchmark" >/dev/null
CP_PASSWORD="msgbench password $RUN" $BIN create-user --firm "$SLUG" --email "$SLUG@example.com" --role staff >/dev/null
OWNER=(psql -h 127.0.0.1 -p "$PG_PORT" -U "${CP__DATABASE__OWNER_USER:-cp_owner}" -d "$DB_NAME" -X -q -A -t -v ON_ERROR_STOP=1)
export PGPASSWORD=${CP__DATABASE__OWNER_PASSWORD:-cp_owner}
FIRM=$("${OWNER[@]}" -c "SELECT id FROM firms WHERE slug = '$SLUG'")
AUTHOR=$("${OWNER[@]}" -c "SELECT m.user_id FROM memberships m WHERE m.firm_id = '$FIRM'")
"${OWNER[@]}" -c "INSERT INTO conversations (firm_id, id, subject, channel)
  SELECT '$FIRM', ('00000000-0000-7000-8000-' || lpad(n::text, 12, '0'))::uuid, 'pgbench ' || n, 'internal'
    FROM generate_series(1, 50) n"
SCRIPT=$(mktemp)
cat >"$SCRIPT" <<SQL
\set n random(1, 50)
BEGIN;
SELECT set_config('app.current_firm_id', '$FIRM', true);
SELECT channel FROM conversations WHERE firm_id = '$FIRM' AND id = ('00000000-0000-7000-8000-' || lpad(:n::text, 12, '0'))::uuid FOR UPDATE;
UPDATE conversations SET last_seq = last_seq + 1, last_message_at = now(), updated_at = now()
 WHERE firm_id = '$FIRM' AND id = ('00000000-0000-7000-8000-' || lpad(:n::text, 12, '0'))::uuid RETURNING last_seq \gset
INSERT INTO messages (firm_id, conversation_id, seq, id, author_user_id, body, created_at)
VALUES ('$FIRM', ('00000000-0000-7000-8000-' || lpad(:n::text, 12, '0'))::uuid, :last_seq, gen_random_uuid(), '$AUTHOR', 'pgbench message', now());
COMMIT;
SQL

SERVER=
stop_server() {
  if [[ -n $SERVER ]]; then kill -TERM "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; SERVER=; fi
}
trap 'stop_server; rm -f "$SCRIPT"' EXIT

for run in $(seq 1 "$RUNS"); do
  echo "== run $run: pgbench, 16 clients, ${SECONDS_EACH} s"
  PGPASSWORD=${CP__DATABASE__APP_PASSWORD:-cp_app} "$PGBENCH" -n -M prepared -h 127.0.0.1 -p "$PG_PORT" \
    -U "${CP__DATABASE__APP_USER:-cp_app}" -c 16 -j 2 -T "$SECONDS_EACH" -f "$SCRIPT" "$DB_NAME" \
    | grep -E "^(tps|latency average|number of failed)"

  echo "== run $run: product, offered $RATE/s over 50 conversations, ${SECONDS_EACH} s"
  CP__SERVER__PORT=$PORT CP__REDIS__URL=$REDIS_URL CP__SERVER__SHUTDOWN_TIMEOUT_SECS=1 $BIN serve \
    >>"${CP_DATA_DIR:-.data}/msgbench-server.log" 2>&1 &
  SERVER=$!
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/ready/" >/dev/null && break; sleep 0.1; done
  ./target/release/loadgen --nodes "http://127.0.0.1:$PORT" --server-pids "$SERVER" --sockets 50 \
    --conversations 50 --rate "$RATE" --seconds "$SECONDS_EACH" --label "product messages run $run"
  stop_server
done
