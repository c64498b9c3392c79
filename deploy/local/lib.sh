# Shared provisioning for deploy/local/up and deploy/local/test (sourced, not run).
#
# Installs what is missing, starts a private Postgres and Redis under .local/ (unless
# DATABASE_URL / REDIS_URL point elsewhere), creates the database, builds, migrates, and
# generates a development signing key; `start_s3` adds an S3-compatible server for the tests.
# Everything it starts is stopped by `stop_started`.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
LOCAL="$ROOT/.local"
# Where cargo puts the binaries: CARGO_TARGET_DIR when set (a build shared between work trees).
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
PG_PORT=${LOCAL_PG_PORT:-55432}
REDIS_PORT=${LOCAL_REDIS_PORT:-56379}
S3_PORT=${LOCAL_S3_PORT:-59000}
# moto's S3 server, pinned; with only what its S3 part and its HTTP server need.
MOTO_PACKAGES=('moto[s3]==5.2.5' 'flask==3.1.3' 'flask-cors==6.0.5')
STARTED_PG=""
STARTED_REDIS=""
STARTED_S3=""
CHILDREN=()

log() { printf '\033[1m[confab]\033[0m %s\n' "$*" >&2; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_install() {
  log "installing $* with apt-get"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }

ensure_packages() {
  local missing=()
  if [ -z "${DATABASE_URL:-}" ] && [ -z "$(pg_bin)" ]; then missing+=(postgresql); fi
  if [ -z "${REDIS_URL:-}" ] && ! command -v redis-server >/dev/null; then missing+=(redis-server); fi
  command -v psql >/dev/null || missing+=(postgresql-client)
  command -v curl >/dev/null || missing+=(curl)
  command -v protoc >/dev/null || missing+=(protobuf-compiler)
  # libwebm (webm-sys) is C++ and ring has C: the recorder needs a C/C++ toolchain.
  command -v g++ >/dev/null || missing+=(g++)
  # The whole-stack and recorder tests judge recorded files with ffprobe and ffmpeg.
  command -v ffprobe >/dev/null || missing+=(ffmpeg)
  command -v cargo >/dev/null || { log "cargo is required (https://rustup.rs)"; exit 1; }
  if [ ${#missing[@]} -gt 0 ]; then apt_install "${missing[@]}"; fi
}

# Runs a command as the postgres user when we are root (Postgres refuses to run as root).
as_pg() {
  if [ "$(id -u)" = 0 ]; then su postgres -s /bin/bash -c "$(printf '%q ' "$@")"; else "$@"; fi
}

start_postgres() {
  if [ -n "${DATABASE_URL:-}" ]; then log "using DATABASE_URL from the environment"; return; fi
  local bin data sock
  bin=$(pg_bin); data="$LOCAL/pgdata"; sock="$LOCAL/pgsock"
  mkdir -p "$LOCAL" "$sock"
  chmod 755 "$LOCAL"
  if [ "$(id -u)" = 0 ]; then chown postgres:postgres "$sock"; fi
  if [ ! -f "$data/PG_VERSION" ]; then
    mkdir -p "$data"
    if [ "$(id -u)" = 0 ]; then chown postgres:postgres "$data"; fi
    log "initialising Postgres in $data"
    as_pg "$bin/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
  fi
  if as_pg "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    log "Postgres already running on $PG_PORT"
  else
    log "starting Postgres on 127.0.0.1:$PG_PORT"
    as_pg "$bin/pg_ctl" -D "$data" -l "$data/server.log" -w \
      -o "-p $PG_PORT -k $sock -c listen_addresses=127.0.0.1 -c max_connections=300" start >/dev/null
    STARTED_PG="$bin/pg_ctl -D $data"
  fi
  export DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/confab"
  psql "postgres://postgres@127.0.0.1:$PG_PORT/postgres" -qtAc \
    "select 1 from pg_database where datname = 'confab'" | grep -q 1 ||
    psql "postgres://postgres@127.0.0.1:$PG_PORT/postgres" -qc "create database confab" >/dev/null
}

start_redis() {
  if [ -n "${REDIS_URL:-}" ]; then log "using REDIS_URL from the environment"; return; fi
  local dir="$LOCAL/redis"
  mkdir -p "$dir"
  if redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; then
    log "Redis already running on $REDIS_PORT"
  else
    log "starting Redis on 127.0.0.1:$REDIS_PORT"
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --daemonize yes --dir "$dir" \
      --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" --save '' --appendonly no
    for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
    STARTED_REDIS="$dir/redis.pid"
  fi
  export REDIS_URL="redis://127.0.0.1:$REDIS_PORT/"
}

# A virtualenv VENV holding exactly the pinned PACKAGES (from PyPI), for WHAT; made again when
# the pins change. Usage: ensure_venv VENV WHAT PACKAGES...
ensure_venv() {
  local venv=$1 what=$2
  shift 2
  if [ "$(cat "$venv/.pinned" 2>/dev/null)" != "$*" ]; then
    python3 -c 'import venv, ensurepip' 2>/dev/null || apt_install python3 python3-venv
    log "installing $what into $venv"
    rm -rf "$venv"
    mkdir -p "$LOCAL"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "$@"
    echo "$*" >"$venv/.pinned"
  fi
}

# The storage tests' S3 server: moto, from PyPI into a virtualenv under .local/s3. It is plain
# Python (nothing to compile, starts in about a second) and serves the S3 calls Confab makes,
# path-style, multipart uploads and ranged reads included; MinIO and Garage are neither in
# Debian nor on PyPI. Unless S3_ENDPOINT points elsewhere, it listens on 127.0.0.1:$S3_PORT,
# keeps objects in memory, and gets the bucket $S3_BUCKET (default confab-test).
start_s3() {
  export S3_BUCKET=${S3_BUCKET:-confab-test}
  if [ -n "${S3_ENDPOINT:-}" ]; then log "using S3_ENDPOINT from the environment"; return; fi
  local venv="$LOCAL/s3"
  ensure_venv "$venv" "moto (an S3 server for the tests)" "${MOTO_PACKAGES[@]}"
  export S3_ENDPOINT="http://127.0.0.1:$S3_PORT"
  if curl -s -o /dev/null "$S3_ENDPOINT/moto-api/"; then
    log "S3 (moto) already running on $S3_PORT"
  else
    log "starting S3 (moto) on 127.0.0.1:$S3_PORT"
    "$venv/bin/moto_server" -H 127.0.0.1 -p "$S3_PORT" >"$venv/server.log" 2>&1 &
    STARTED_S3=$!
    for _ in $(seq 100); do curl -s -o /dev/null "$S3_ENDPOINT/moto-api/" && break; sleep 0.1; done
    curl -s -o /dev/null "$S3_ENDPOINT/moto-api/" || { log "moto did not start: see $venv/server.log"; exit 1; }
  fi
  curl -s -o /dev/null -X PUT "$S3_ENDPOINT/$S3_BUCKET"
}

# Generates the development JWT signing key and camera credentials key once; production
# supplies its own files.
ensure_dev_key() {
  if [ -z "${CONFAB_JWT_KEY_FILE:-}" ]; then
    export CONFAB_JWT_KEY_FILE="$LOCAL/jwt-signing-key.pem"
    if [ ! -f "$CONFAB_JWT_KEY_FILE" ]; then
      log "generating a development signing key in $CONFAB_JWT_KEY_FILE"
      "$TARGET/debug/confab-api" keygen --out "$CONFAB_JWT_KEY_FILE"
    fi
  fi
  if [ -z "${CONFAB_CAMERA_KEY_FILE:-}${CONFAB_CAMERA_KEY:-}" ]; then
    export CONFAB_CAMERA_KEY_FILE="$LOCAL/camera-credentials.key"
    if [ ! -f "$CONFAB_CAMERA_KEY_FILE" ]; then
      log "generating a development camera credentials key in $CONFAB_CAMERA_KEY_FILE"
      (umask 077 && head -c 32 /dev/urandom | base64 > "$CONFAB_CAMERA_KEY_FILE")
    fi
  fi
}

build_and_migrate() {
  log "building"
  (cd "$ROOT" && cargo build --workspace --bins)
  ensure_dev_key
  log "running migrations"
  "$TARGET/debug/confab-api" migrate
}

provision() {
  # The API serves what the recorder writes: one directory for both.
  export CONFAB_RECORDINGS_DIR=${CONFAB_RECORDINGS_DIR:-$LOCAL/recordings}
  export CONFAB_WEB_DIR=${CONFAB_WEB_DIR:-$ROOT/web}
  ensure_packages
  start_postgres
  start_redis
  build_and_migrate
}

# Stops every child and every server this script started; safe to call more than once.
stop_started() {
  local pid
  for pid in "${CHILDREN[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${CHILDREN[@]}"; do wait "$pid" 2>/dev/null || true; done
  CHILDREN=()
  if [ -n "$STARTED_S3" ]; then
    kill -TERM "$STARTED_S3" 2>/dev/null || true
    wait "$STARTED_S3" 2>/dev/null || true
    STARTED_S3=""
  fi
  if [ -n "$STARTED_REDIS" ] && [ -f "$STARTED_REDIS" ]; then
    kill -TERM "$(cat "$STARTED_REDIS")" 2>/dev/null || true
    STARTED_REDIS=""
  fi
  if [ -n "$STARTED_PG" ]; then
    as_pg $STARTED_PG -m fast -w stop >/dev/null 2>&1 || true
    STARTED_PG=""
  fi
}
