#!/usr/bin/env bash
# README command 1: installs and starts the local stack, then runs the local API in the
# foreground on 127.0.0.1:${PORT:-3000}. Ctrl-C stops the API and what this script started.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=infra/stack.sh
source "$ROOT/infra/stack.sh"
trap stop_started EXIT
up
export PUBLIC_BASE_URL=${PUBLIC_BASE_URL:-http://127.0.0.1:${PORT:-3000}}
log "local API on http://127.0.0.1:${PORT:-3000} (the flash call's caller ID appears in this log)"
cd "$ROOT"
cargo run -q -p devstack --bin local-api
