#!/usr/bin/env bash
# The benchmarks (tests/benches/calls.rs: call-event, call-history, sms-send, the webhook;
# tests/benches/cost.rs: the cost of one verification of each kind) on the local stack,
# started as needed (in memory, on its own table) and stopped after. BENCH_CALLS sets the size
# of the heavy number's history (default 10000); extra arguments go to `cargo bench`.
set -euo pipefail
# shellcheck source=infra/stack.sh
source "$(dirname "${BASH_SOURCE[0]}")/stack.sh"
with_own_stack bench bash -c 'cargo bench -p tests --bench calls "$@" && cargo bench -p tests --bench cost "$@"' bench "$@"
