#!/usr/bin/env bash
# The benchmark of call-event and call-history (tests/benches/calls.rs) on the local stack,
# started as needed (in memory, on its own table) and stopped after. BENCH_CALLS sets the size
# of the heavy number's history (default 10000); extra arguments go to `cargo bench`.
set -euo pipefail
# shellcheck source=infra/stack.sh
source "$(dirname "${BASH_SOURCE[0]}")/stack.sh"
with_own_stack bench cargo bench -p tests --bench calls "$@"
