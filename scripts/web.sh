#!/usr/bin/env bash
# The browser app in web/: its packages, its API types, its build and its tests.
#
#   scripts/web.sh build BIN   packages (npm ci when the lock changed), types generated from
#                              `BIN openapi`, type check, Vite build into web/dist
#   scripts/web.sh test BIN    build, Vitest, then the browser tests: Debian's chromium
#                              (installed here when missing) driven by playwright-core against
#                              a hub started from BIN on a loopback port (CP_ENV=test)
#
# BIN is the hub's binary (make run: the release build; make test: the debug one).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ACTION=${1:?usage: scripts/web.sh build|test BIN}
BIN=$(realpath "${2:?usage: scripts/web.sh build|test BIN}")
cd "$ROOT/web"
log() { echo "[web] $*"; }

node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)' ||
  { echo "[web] Node.js 20.19 or newer is needed (this machine has $(node --version 2>/dev/null || echo none))" >&2; exit 1; }

stamp=node_modules/.package-lock.sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [[ ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
  log "installing packages (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$want" >"$stamp"
fi

# The client's types come from the API's own document: a change to the API that the app
# does not follow fails the type check below.
"$BIN" openapi >.openapi.json
npx openapi-typescript .openapi.json -o src/api/schema.d.ts --silent --empty-objects-unknown
log "type check and build"
npx tsc --noEmit
npx vite build --logLevel warn

[[ $ACTION == build ]] && exit 0
[[ $ACTION == test ]] || { echo "[web] unknown action $ACTION" >&2; exit 2; }

log "unit tests (Vitest)"
npx vitest run

if [[ ! -x /usr/bin/chromium ]]; then
  log "installing Debian's chromium"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1 ||
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium >/dev/null; }
fi

port=${CP_E2E_PORT:-18190}
data=${CP_DATA_DIR:-$ROOT/.data}
mkdir -p "$data"
export CP_ENV=test
slug="e2e-$(date +%s)-$RANDOM"
email="owner@$slug.test"
password="e2e-$(head -c 12 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')"
# The hub reads config/ from the project's root.
(cd "$ROOT" && "$BIN" create-firm --slug "$slug" --name "Browser test firm" >/dev/null)
(cd "$ROOT" && CP_PASSWORD=$password "$BIN" create-user --firm "$slug" --email "$email" --role owner \
  --name "Browser Tester" >/dev/null)

# Twilio cannot be reached from here: the stand-in plays it, with an account of this run's
# own whose number the test firm registers (a number belongs to one firm).
twilio_port=${CP_E2E_TWILIO_PORT:-18191}
twilio_sid="AC$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
twilio_token=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
twilio_number="+1500555$(printf '%04d' $((RANDOM % 10000)))"
(cd "$ROOT" && exec setsid timeout 900 "$BIN" twilio-standin --listen "127.0.0.1:$twilio_port" \
  --hub-url "http://127.0.0.1:$port" --account "$twilio_sid:$twilio_token:$twilio_number" \
  >>"$data/e2e-twilio.log" 2>&1 </dev/null) &
standin=$!

# The hub as `make run` serves it, on the test database: its job runner on (replies by
# email and SMS go out through jobs), Twilio's APIs at the stand-in.
(cd "$ROOT" && CP__SERVER__PORT=$port CP__SERVER__WEB_DIR="$ROOT/web/dist" CP__SERVER__SHUTDOWN_TIMEOUT_SECS=1 \
  CP__JOBS__ENABLED=true CP__MAIL__LINK_BASE_URL="http://127.0.0.1:$port" \
  CP__TWILIO__API_BASE_URL="http://127.0.0.1:$twilio_port" \
  CP__TWILIO__MESSAGING_BASE_URL="http://127.0.0.1:$twilio_port" \
  exec setsid timeout 900 "$BIN" serve >>"$data/e2e-hub.log" 2>&1 </dev/null) &
hub=$!
trap 'kill -TERM $hub $standin 2>/dev/null || true; wait $hub $standin 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do curl -fsS -m 1 "http://127.0.0.1:$port/ready/" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fsS -m 2 "http://127.0.0.1:$port/ready/" >/dev/null || { echo "[web] the hub did not start; see $data/e2e-hub.log" >&2; exit 1; }

log "browser tests (playwright-core, Debian's chromium) against 127.0.0.1:$port"
rm -rf e2e-artifacts
# The project's Dovecot, as config/test.toml names it (CI moves it with the same variables).
CP_E2E_IMAP_PORT=${CP__MAIL__LOCAL_IMAP_PORT:-51143} \
CP_E2E_IMAP_PASSWORD=${CP__MAIL__LOCAL_IMAP_PASSWORD:-development-only-imap-password} \
CP_E2E_MAIL_DIR="$data/mail/new" \
CP_E2E_TWILIO="http://127.0.0.1:$twilio_port" CP_E2E_TWILIO_SID=$twilio_sid CP_E2E_TWILIO_TOKEN=$twilio_token \
CP_E2E_TWILIO_NUMBER=$twilio_number \
CP_E2E_HUB="http://127.0.0.1:$port" CP_E2E_FIRM=$slug CP_E2E_EMAIL=$email CP_E2E_PASSWORD=$password \
  CP_E2E_ARTIFACTS="$ROOT/web/e2e-artifacts" timeout 600 node --test --test-concurrency=2 ${CP_E2E_FILES:-e2e/}
log "screenshots in web/e2e-artifacts/"
