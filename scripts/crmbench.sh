#!/usr/bin/env bash
# CRM list and search under load: 100,000 contacts in one firm among 50 firms, served by
# a release build, measured with wrk at 64 connections. Bounded: 15 s per endpoint.
#
#   scripts/crmbench.sh            (run as root; uses the project's services like make run)
#
# Seeding runs as the owner role with plain SQL (fast, and it bypasses nothing it should
# not: the data is then read through the API as a member, under row-level security).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export CP_ENV=${CP_ENV:-test}
# A database of its own, emptied at the start, so every run measures the same rows.
export CP__DATABASE__NAME=${CRMBENCH_DB:-consultantpro_crmbench}
PORT=${CRMBENCH_PORT:-18099}
DURATION=${CRMBENCH_SECONDS:-15}
CONNECTIONS=${CRMBENCH_CONNECTIONS:-64}

command -v wrk >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk >/dev/null
./scripts/services.sh up
cargo build --release --locked --bin consultantpro
BIN=./target/release/consultantpro
PG_PORT=${CP__DATABASE__PORT:-55432}
export PGPASSWORD=${CP__DATABASE__OWNER_PASSWORD:-cp_owner}
PSQL=(psql -h 127.0.0.1 -p "$PG_PORT" -U "${CP__DATABASE__OWNER_USER:-cp_owner}" -d "$CP__DATABASE__NAME" -X -q -v ON_ERROR_STOP=1)
"${PSQL[@]}" <<SQL
SET client_min_messages = warning;
DROP SCHEMA public CASCADE;
CREATE SCHEMA public;
GRANT USAGE ON SCHEMA public TO consultantpro_app;
SQL
$BIN migrate >/dev/null

RUN=$(date +%s)
BIG="bench-$RUN"
$BIN create-firm --slug "$BIG" --name "Benchmark Big Firm" >/dev/null
EMAIL="bench-$RUN@example.com"
CP_PASSWORD="benchmark password $RUN" $BIN create-user --firm "$BIG" --email "$EMAIL" --role staff >/dev/null
for i in $(seq 1 49); do $BIN create-firm --slug "bench-$RUN-$i" --name "Benchmark Firm $i" >/dev/null; done

echo "seeding 100,000 contacts in $BIG and 2,000 in each of 49 other firms..."
# Bulk loading through the trigram indexes row by row takes many minutes on two cores; the
# seed drops them and builds them again afterwards (what is measured is reading, not this).
time "${PSQL[@]}" <<SQL
DROP INDEX IF EXISTS contact_emails_trgm_idx;
DROP INDEX IF EXISTS contacts_name_trgm_idx;
CREATE TEMP TABLE bench_firms AS
  SELECT id, CASE WHEN slug = '$BIG' THEN 100000 ELSE 2000 END AS n FROM firms WHERE slug LIKE 'bench-$RUN%';
CREATE TEMP TABLE bench_contacts AS
  SELECT f.id AS firm_id, gen_random_uuid() AS id, g AS seq
    FROM bench_firms f, LATERAL generate_series(1, f.n) g;
INSERT INTO contacts (firm_id, id, first_name, last_name, created_at)
  SELECT firm_id, id,
         (ARRAY['Ada','Grace','Alan','Edsger','Barbara','Donald','Frances','Ken','Margaret','Niklaus'])[1 + seq % 10],
         (ARRAY['Smith','Jones','Taylor','Brown','Williams','Wilson','Johnson','Davies','Patel','Wright',
                'Walker','White','Green','Hall','Wood','Thompson','Clarke','Lewis','Harris','Robinson'])[1 + (seq / 10) % 20]
           || ' ' || seq,
         now() - make_interval(secs => seq)
    FROM bench_contacts;
INSERT INTO contact_emails (firm_id, email, contact_id, position)
  SELECT firm_id, 'person' || seq || '@bench' || substr(firm_id::text, 1, 8) || '.example', id, 0 FROM bench_contacts;
INSERT INTO contact_phones (firm_id, contact_id, phone, position)
  SELECT firm_id, id, '+1415' || lpad((5550000 + seq % 10000)::text, 7, '0'), 0 FROM bench_contacts;
CREATE INDEX contacts_name_trgm_idx ON contacts USING gin (name_key gin_trgm_ops);
CREATE INDEX contact_emails_trgm_idx ON contact_emails USING gin (email gin_trgm_ops);
ANALYZE contacts; ANALYZE contact_emails; ANALYZE contact_phones;
SQL

CP__SERVER__PORT=$PORT CP__TELEMETRY__FILTER=warn $BIN serve &
SERVER=$!
trap 'kill -INT $SERVER 2>/dev/null; wait $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$PORT/ready/" >/dev/null && break; sleep 0.2; done
TOKEN=$(curl -sf -H 'content-type: application/json' -H "x-forwarded-for: 203.0.113.$((RUN % 250))" \
  -d "{\"firm\":\"$BIG\",\"email\":\"$EMAIL\",\"password\":\"benchmark password $RUN\"}" \
  "http://127.0.0.1:$PORT/api/v1/auth/login" | sed -E 's/.*"access_token":"([^"]+)".*/\1/')

run() {
  echo
  echo "== $1"
  wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT$1" \
    | grep -E 'Latency|50%|90%|99%|Requests/sec|Non-2xx|requests in'
}
run "/api/v1/contacts?limit=25"
run "/api/v1/contacts?limit=25&sort=name"
run "/api/v1/contacts?limit=25&q=thompson%2012"
run "/api/v1/contacts?phone=%2B14155550042"
echo
echo "server RSS: $(ps -o rss= -p $SERVER | awk '{printf "%.1f MiB", $1/1024}')"
