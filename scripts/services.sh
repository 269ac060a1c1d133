#!/usr/bin/env bash
# Installs (when missing) and starts the project's own PostgreSQL, Redis and SMTP sink on
# loopback, creates the roles and databases. Idempotent: running it again changes nothing.
# The SMTP sink (Debian's python3-aiosmtpd) accepts every message and writes it to
# $CP_DATA_DIR/mail/new/ (a maildir) instead of delivering it; it is started only while
# mail.smtp_host is a loopback address.
# Dovecot (IMAP, plaintext on loopback only) serves the demo firm's mailbox and the tests'
# mailboxes on mail.local_imap_port: any user name logs in with mail.local_imap_password
# and gets a maildir of its own, owned by the unprivileged user `cpmail`.
#
#   scripts/services.sh up     install, start, create roles and databases
#   scripts/services.sh down   stop the project's instances
#   scripts/services.sh postgres-stop | postgres-start
#                              stop PostgreSQL at once (as a crash would) or start it
#                              again: the fault tests' outage
#
# Ports, names and passwords follow the server's configuration: CP__DATABASE__* and
# CP_REDIS_PORT from the environment, else config/$CP_ENV.toml, else config/default.toml.
# Set CP_SKIP_SERVICES=1 to use servers of your own instead.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DATA_DIR=${CP_DATA_DIR:-$ROOT/.data}
CP_ENV=${CP_ENV:-development}

log() { printf '[services] %s\n' "$*" >&2; }
die() { printf '[services] error: %s\n' "$*" >&2; exit 1; }

# Reads `key` from `[section]` of a TOML file (strings and numbers only).
toml_get() {
  local file=$1 section=$2 key=$3
  [ -f "$file" ] || return 0
  awk -v section="[$section]" -v key="$key" '
    /^[[:space:]]*\[/ { in_section = ($0 ~ "^[[:space:]]*\\[" substr(section, 2, length(section) - 2) "\\][[:space:]]*$"); next }
    in_section {
      line = $0
      sub(/^[[:space:]]+/, "", line)
      if (index(line, key) == 1) {
        rest = substr(line, length(key) + 1)
        if (rest ~ /^[[:space:]]*=/) {
          sub(/^[[:space:]]*=[[:space:]]*/, "", rest)
          sub(/[[:space:]]+#.*$/, "", rest)
          if (rest ~ /^".*"$/) rest = substr(rest, 2, length(rest) - 2)
          print rest
          exit
        }
      }
    }' "$file"
}

# Setting as the server sees it: CP__SECTION__KEY, then config/$CP_ENV.toml, then default.
setting() {
  local section=$1 key=$2 env_name value
  env_name="CP__$(printf '%s__%s' "$section" "$key" | tr '[:lower:]' '[:upper:]')"
  value=${!env_name-}
  [ -n "$value" ] || value=$(toml_get "$ROOT/config/$CP_ENV.toml" "$section" "$key")
  [ -n "$value" ] || value=$(toml_get "$ROOT/config/default.toml" "$section" "$key")
  printf '%s' "$value"
}

PG_PORT=$(setting database port)
PG_HOST=$(setting database host)
DB_NAME=$(setting database name)
APP_USER=$(setting database app_user)
APP_PASSWORD=$(setting database app_password)
OWNER_USER=$(setting database owner_user)
OWNER_PASSWORD=$(setting database owner_password)
REDIS_PORT=${CP_REDIS_PORT:-56379}
SMTP_HOST=$(setting mail smtp_host)
SMTP_PORT=$(setting mail smtp_port)
MAIL_DIR=${CP_MAIL_DIR:-$DATA_DIR/mail}
IMAP_PORT=$(setting mail local_imap_port)
IMAP_PASSWORD=$(setting mail local_imap_password)
MAIL_USER=cpmail
# The group role migrations grant privileges to; the login role is made a member.
APP_GROUP=consultantpro_app
# Every database the project uses on this instance: the configured one and the test one.
TEST_DB_NAME=$(toml_get "$ROOT/config/test.toml" database name)
DATABASES=("$DB_NAME")
[ -z "$TEST_DB_NAME" ] || [ "$TEST_DB_NAME" = "$DB_NAME" ] || DATABASES+=("$TEST_DB_NAME")

APT_UPDATED=0
apt_install() {
  command -v apt-get >/dev/null || die "apt-get not found: install $* yourself, or set CP_SKIP_SERVICES=1"
  if [ "$APT_UPDATED" = 0 ]; then
    log "apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    APT_UPDATED=1
  fi
  log "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

pg_bin_dir() {
  local dir
  for dir in /usr/lib/postgresql/15/bin $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -Vr); do
    [ -x "$dir/postgres" ] && { printf '%s' "$dir"; return 0; }
  done
  return 1
}

ensure_packages() {
  local missing=()
  pg_bin_dir >/dev/null || missing+=(postgresql-15 postgresql-client-15)
  command -v redis-server >/dev/null || missing+=(redis-server)
  command -v runuser >/dev/null || missing+=(util-linux)
  /usr/bin/python3 -c 'import aiosmtpd' 2>/dev/null || missing+=(python3-aiosmtpd)
  /usr/bin/python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
  command -v dovecot >/dev/null || missing+=(dovecot-core dovecot-imapd)
  command -v mbsync >/dev/null || missing+=(isync)
  [ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"
  pg_bin_dir >/dev/null || die "PostgreSQL binaries not found after install"
}

# PostgreSQL will not run as root: its files belong to the postgres user, who must be able
# to reach them. A checkout under a private home (/root) is not reachable, so the cluster
# then lives under /var/lib/consultantpro instead.
pg_data_root() {
  mkdir -p "$DATA_DIR"
  if runuser -u postgres -- test -x "$DATA_DIR" 2>/dev/null; then
    printf '%s' "$DATA_DIR"
  else
    local alt
    alt="/var/lib/consultantpro/$(printf '%s' "$ROOT" | sha1sum | cut -c1-12)"
    mkdir -p "$alt"
    printf '%s' "$alt"
  fi
}

start_postgres() {
  local bin root pgdata sockdir
  bin=$(pg_bin_dir)
  root=$(pg_data_root)
  pgdata=$root/postgres
  sockdir=$root/run
  mkdir -p "$pgdata" "$sockdir"
  chown postgres:postgres "$pgdata" "$sockdir"
  chmod 700 "$pgdata"
  if [ ! -f "$pgdata/PG_VERSION" ]; then
    log "initialising PostgreSQL cluster in $pgdata"
    runuser -u postgres -- "$bin/initdb" -D "$pgdata" -U postgres -E UTF8 --no-locale \
      --auth-local=peer --auth-host=scram-sha-256 >/dev/null
    cat >>"$pgdata/postgresql.conf" <<CONF
# consultantpro
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$sockdir'
max_connections = 200
shared_buffers = 256MB
CONF
  fi
  if runuser -u postgres -- "$bin/pg_ctl" -D "$pgdata" status >/dev/null 2>&1; then
    log "PostgreSQL already running on $PG_HOST:$PG_PORT"
  else
    local attempt started=0
    for attempt in 1 2 3; do
      log "starting PostgreSQL on 127.0.0.1:$PG_PORT"
      if runuser -u postgres -- "$bin/pg_ctl" -D "$pgdata" -l "$pgdata/server.log" -w -t 60 start >/dev/null; then
        started=1
        break
      fi
      sleep "$attempt"
    done
    [ "$started" = 1 ] || die "PostgreSQL did not start; see $pgdata/server.log"
  fi
  PSQL=(runuser -u postgres -- "$bin/psql" -h "$sockdir" -p "$PG_PORT" -U postgres -X -q -v ON_ERROR_STOP=1)
}

# psql meta-command quoting: single quotes doubled inside single quotes.
psql_quote() { printf "'%s'" "${1//\'/\'\'}"; }

create_roles_and_databases() {
  "${PSQL[@]}" -d postgres <<SQL
SET client_min_messages = warning;
\\set owner $(psql_quote "$OWNER_USER")
\\set owner_pw $(psql_quote "$OWNER_PASSWORD")
\\set app $(psql_quote "$APP_USER")
\\set app_pw $(psql_quote "$APP_PASSWORD")
\\set app_group $(psql_quote "$APP_GROUP")
SELECT format('CREATE ROLE %I NOLOGIN', :'app_group')
  WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'app_group') \\gexec
SELECT format('CREATE ROLE %I LOGIN', :'owner')
  WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'owner') \\gexec
SELECT format('CREATE ROLE %I LOGIN', :'app')
  WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'app') \\gexec
SELECT format('ALTER ROLE %I LOGIN NOSUPERUSER BYPASSRLS NOCREATEDB NOCREATEROLE PASSWORD %L', :'owner', :'owner_pw') \\gexec
SELECT format('ALTER ROLE %I LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE PASSWORD %L', :'app', :'app_pw') \\gexec
SELECT format('GRANT %I TO %I', :'app_group', :'app') \\gexec
SQL
  local db
  for db in "${DATABASES[@]}"; do
    [ -n "$db" ] || continue
    "${PSQL[@]}" -d postgres <<SQL
\\set db $(psql_quote "$db")
\\set owner $(psql_quote "$OWNER_USER")
\\set app_group $(psql_quote "$APP_GROUP")
SELECT format('CREATE DATABASE %I OWNER %I ENCODING ''UTF8'' TEMPLATE template0', :'db', :'owner')
  WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'db') \\gexec
SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', :'db') \\gexec
SELECT format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO %I', :'db', :'app_group') \\gexec
SQL
  done
  log "roles $OWNER_USER (owner), $APP_USER (application, via $APP_GROUP) and databases ${DATABASES[*]} ready"
}

start_redis() {
  local dir=$DATA_DIR/redis
  mkdir -p "$dir"
  if redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1; then
    log "Redis already running on 127.0.0.1:$REDIS_PORT"
    return
  fi
  # A port in the ephemeral range can be briefly held by an outgoing connection; try again.
  local attempt i
  for attempt in 1 2 3 4 5; do
    log "starting Redis on 127.0.0.1:$REDIS_PORT"
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
      --dir "$dir" --pidfile "$dir/redis.pid" --logfile "$dir/redis.log"
    for i in $(seq 1 30); do
      redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1 && return
      sleep 0.1
    done
    sleep "$attempt"
  done
  die "Redis did not start; see $dir/redis.log"
}

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start_smtp_sink() {
  case "$SMTP_HOST" in
    127.0.0.1|localhost|::1) ;;
    *) log "mail.smtp_host is $SMTP_HOST: no local SMTP sink"; return ;;
  esac
  mkdir -p "$MAIL_DIR/tmp" "$MAIL_DIR/new" "$MAIL_DIR/cur" "$DATA_DIR"
  if listening "$SMTP_PORT"; then
    log "SMTP sink already listening on 127.0.0.1:$SMTP_PORT"
    return
  fi
  local attempt i
  for attempt in 1 2 3; do
    log "starting the SMTP sink on 127.0.0.1:$SMTP_PORT (messages to $MAIL_DIR)"
    setsid nohup /usr/bin/python3 -m aiosmtpd -n -l "127.0.0.1:$SMTP_PORT" \
      -c aiosmtpd.handlers.Mailbox "$MAIL_DIR" >"$DATA_DIR/smtp-sink.log" 2>&1 < /dev/null &
    echo $! >"$DATA_DIR/smtp-sink.pid"
    for i in $(seq 1 50); do
      listening "$SMTP_PORT" && return
      sleep 0.1
    done
    sleep "$attempt"
  done
  die "the SMTP sink did not start; see $DATA_DIR/smtp-sink.log"
}

# Dovecot's files live where the unprivileged mail user can reach them (a checkout under
# /root is not reachable); $DATA_DIR/dovecot points there so tests and tools find them.
dovecot_root() {
  local root
  root="/var/lib/consultantpro/$(printf '%s' "$DATA_DIR" | sha1sum | cut -c1-12)/dovecot"
  mkdir -p "$root"
  printf '%s' "$root"
}

start_dovecot() {
  [ -n "$IMAP_PORT" ] || { log "mail.local_imap_port is not set: no local Dovecot"; return; }
  id -u "$MAIL_USER" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$MAIL_USER"
  local root conf
  root=$(dovecot_root)
  mkdir -p "$root/run" "$root/state" "$root/home"
  chown "$MAIL_USER:$MAIL_USER" "$root/home"
  chmod 755 /var/lib/consultantpro "$(dirname "$root")" "$root"
  ln -sfn "$root" "$DATA_DIR/dovecot"
  conf=$root/dovecot.conf
  cat >"$conf.new" <<CONF
# Written by scripts/services.sh: the project's own Dovecot, on loopback only.
base_dir = $root/run
state_dir = $root/state
log_path = $root/dovecot.log
info_log_path = $root/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = $MAIL_USER
default_login_user = $MAIL_USER
default_internal_group = $MAIL_USER
first_valid_uid = $(id -u "$MAIL_USER")
mail_location = maildir:~/Maildir
mail_uid = $MAIL_USER
mail_gid = $MAIL_USER
auth_username_chars = abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ01234567890.-_@
mail_max_userip_connections = 200
imap_idle_notify_interval = 2 mins
mailbox_idle_check_interval = 1 secs
passdb {
  driver = static
  args = password=$IMAP_PASSWORD
}
userdb {
  driver = static
  args = uid=$MAIL_USER gid=$MAIL_USER home=$root/home/%u
}
service imap-login {
  chroot =
  inet_listener imap {
    address = 127.0.0.1
    port = $IMAP_PORT
  }
  inet_listener imaps {
    port = 0
  }
}
service anvil {
  chroot =
}
service stats {
  unix_listener stats-writer {
    mode = 0666
  }
}
CONF
  if [ -f "$conf" ] && cmp -s "$conf" "$conf.new" && listening "$IMAP_PORT"; then
    rm -f "$conf.new"
    log "Dovecot already listening on 127.0.0.1:$IMAP_PORT"
    return
  fi
  mv "$conf.new" "$conf"
  if [ -f "$root/run/master.pid" ] && kill -0 "$(cat "$root/run/master.pid")" 2>/dev/null; then
    log "reloading Dovecot with its new configuration"
    dovecot -c "$conf" reload </dev/null >/dev/null 2>&1
  else
    log "starting Dovecot on 127.0.0.1:$IMAP_PORT (maildirs under $root/home)"
    dovecot -c "$conf" </dev/null >/dev/null 2>&1
  fi
  local i
  for i in $(seq 1 50); do
    listening "$IMAP_PORT" && return
    sleep 0.1
  done
  die "Dovecot did not start; see $root/dovecot.log"
}

# The tests read back what the hub sends with independent parsers (Python's `icalendar` for
# invitations, `flufl.bounce` for its corpus of bounces), pinned, in a virtualenv of their
# own under the data directory.
ICALENDAR_VERSION=7.3.2
FLUFL_BOUNCE_VERSION=6.0.0
# The contract suite (tests/contract) runs it against /api/openapi.json.
SCHEMATHESIS_VERSION=4.32.5
ensure_test_tools() {
  local venv=$DATA_DIR/pyenv
  if "$venv/bin/python" -c "
import sys, icalendar
from importlib.metadata import version
sys.exit(icalendar.__version__ != '$ICALENDAR_VERSION' or version('flufl.bounce') != '$FLUFL_BOUNCE_VERSION'
         or version('schemathesis') != '$SCHEMATHESIS_VERSION')" 2>/dev/null; then
    return
  fi
  log "virtualenv with icalendar $ICALENDAR_VERSION, flufl.bounce $FLUFL_BOUNCE_VERSION and schemathesis $SCHEMATHESIS_VERSION in $venv"
  mkdir -p "$DATA_DIR"
  /usr/bin/python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "icalendar==$ICALENDAR_VERSION" \
    "flufl.bounce==$FLUFL_BOUNCE_VERSION" "schemathesis==$SCHEMATHESIS_VERSION" >/dev/null
}

# flufl.bounce's corpus of real bounces (in its source release, not its wheel): the email
# tests classify every one and compare with what flufl.bounce itself finds.
ensure_bounce_corpus() {
  local corpus=$DATA_DIR/bounce-corpus
  [ -f "$corpus/.version" ] && [ "$(cat "$corpus/.version")" = "$FLUFL_BOUNCE_VERSION" ] && return
  log "flufl.bounce $FLUFL_BOUNCE_VERSION corpus in $corpus"
  local tmp
  tmp=$(mktemp -d)
  "$DATA_DIR/pyenv/bin/pip" download -q --disable-pip-version-check --no-deps --no-binary :all: \
    -d "$tmp" "flufl.bounce==$FLUFL_BOUNCE_VERSION" >/dev/null
  tar -xzf "$tmp"/flufl_bounce-*.tar.gz -C "$tmp"
  rm -rf "$corpus"
  mkdir -p "$corpus"
  cp "$tmp"/flufl_bounce-*/tests/data/*.txt "$corpus/"
  # What flufl.bounce itself finds in each: the expectations the detector is held to.
  "$DATA_DIR/pyenv/bin/python" "$ROOT/scripts/bounce_oracle.py" "$corpus" "$corpus/expectations.json"
  printf '%s' "$FLUFL_BOUNCE_VERSION" >"$corpus/.version"
  rm -rf "$tmp"
}

stop_all() {
  local bin root
  if bin=$(pg_bin_dir) && [ -d /usr/lib/postgresql ]; then
    root=$(pg_data_root)
    if [ -f "$root/postgres/PG_VERSION" ]; then
      runuser -u postgres -- "$bin/pg_ctl" -D "$root/postgres" -m fast stop >/dev/null 2>&1 || true
    fi
  fi
  redis-cli -h 127.0.0.1 -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
  if [ -n "$IMAP_PORT" ] && [ -f "$(dovecot_root)/dovecot.conf" ]; then
    dovecot -c "$(dovecot_root)/dovecot.conf" stop 2>/dev/null || true
  fi
  if [ -f "$DATA_DIR/smtp-sink.pid" ]; then
    kill "$(cat "$DATA_DIR/smtp-sink.pid")" 2>/dev/null || true
    rm -f "$DATA_DIR/smtp-sink.pid"
  fi
  log "stopped"
}

case "${1:-up}" in
  up)
    if [ "${CP_SKIP_SERVICES:-0}" = 1 ]; then
      log "CP_SKIP_SERVICES=1: using the servers named by the configuration"
      exit 0
    fi
    [ "$(id -u)" = 0 ] || die "run as root (it installs packages and starts PostgreSQL as the postgres user)"
    ensure_packages
    start_postgres
    create_roles_and_databases
    start_redis
    start_smtp_sink
    start_dovecot
    ensure_test_tools
    ensure_bounce_corpus
    ;;
  down) stop_all ;;
  postgres-stop)
    runuser -u postgres -- "$(pg_bin_dir)/pg_ctl" -D "$(pg_data_root)/postgres" -m immediate stop >/dev/null
    log "PostgreSQL stopped"
    ;;
  postgres-start) start_postgres ;;
  *) die "usage: $0 [up|down|postgres-stop|postgres-start]" ;;
esac
