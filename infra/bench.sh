#!/usr/bin/env bash
# The benchmark of call-event and call-history (tests/benches/calls.rs) on the local stack,
# started as needed (in memory, on its own table) and stopped after. BENCH_CALLS sets the size
# of the heavy number's history (default 10000).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export TABLE_NAME=${BENCH_TABLE_NAME:-phone-verification-bench}
export SECRET_ID=${BENCH_SECRET_ID:-phone-verification/bench}
export DYNAMODB_IN_MEMORY=${DYNAMODB_IN_MEMORY:-1}
# shellcheck source=infra/stack.sh
source "$ROOT/infra/stack.sh"
trap stop_started EXIT
up
cd "$ROOT"
cargo bench -p tests --bench calls "$@"
