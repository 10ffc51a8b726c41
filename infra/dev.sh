#!/usr/bin/env bash
# README command 1: installs and starts the local stack, then runs the local API on
# 127.0.0.1:${PORT:-3000} until this script is stopped. Ctrl-C, SIGTERM and SIGHUP (a process
# manager, a closed terminal, a CI runner) all stop the API and what this script started.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=infra/stack.sh
source "$ROOT/infra/stack.sh"

stop_on_signals
up
export PUBLIC_BASE_URL=${PUBLIC_BASE_URL:-http://127.0.0.1:${PORT:-3000}}
cd "$ROOT"
cargo build -q -p devstack --bin local-api
log "local API on http://127.0.0.1:${PORT:-3000} (the flash call's caller ID appears in this log)"
run_in_foreground "${CARGO_TARGET_DIR:-$ROOT/target}/debug/local-api"
