#!/usr/bin/env bash
# README command 1: installs and starts the local stack, then runs the local API on
# 127.0.0.1:${PORT:-3000} until this script is stopped. Ctrl-C, SIGTERM and SIGHUP (a process
# manager, a closed terminal, a CI runner) all stop the API and what this script started.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=infra/stack.sh
source "$ROOT/infra/stack.sh"

API_PID=
stop_all() {
  trap - EXIT INT TERM HUP
  if [ -n "$API_PID" ] && kill -0 "$API_PID" 2>/dev/null; then
    kill "$API_PID" 2>/dev/null || true
    wait "$API_PID" 2>/dev/null || true
  fi
  stop_started
}
trap stop_all EXIT
# `exit` runs the EXIT trap; the status says which signal ended the script.
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

up
export PUBLIC_BASE_URL=${PUBLIC_BASE_URL:-http://127.0.0.1:${PORT:-3000}}
cd "$ROOT"
cargo build -q -p devstack --bin local-api
log "local API on http://127.0.0.1:${PORT:-3000} (the flash call's caller ID appears in this log)"
# In the background, so that a signal reaches the trap at once (bash runs traps only between
# commands, and `wait` is one), and the API's own PID is known.
"${CARGO_TARGET_DIR:-$ROOT/target}/debug/local-api" &
API_PID=$!
wait "$API_PID"
