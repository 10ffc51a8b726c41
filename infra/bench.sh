#!/usr/bin/env bash
# The benchmarks on the local stack, started as needed (in memory, on its own table) and
# stopped after:
#   tests/benches/calls.rs      call-event, call-history, sms-send, the webhook (BENCH_CALLS:
#                               the heavy number's history, default 10000)
#   tests/benches/cost.rs       the cost of one verification of each kind
#   tests/benches/footprint.rs  each endpoint's DynamoDB footprint by key class and modeled
#                               ceiling, faults injected (BENCH_FAULT_PERCENT), the stats of a
#                               million calls (BENCH_MILLION, BENCH_FOOTPRINT requests each)
# `infra/bench.sh footprint [cargo bench args]` runs the last one alone; other arguments go to
# `cargo bench`.
set -euo pipefail
# shellcheck source=infra/stack.sh
source "$(dirname "${BASH_SOURCE[0]}")/stack.sh"
if [ "${1:-}" = footprint ]; then
  shift
  with_own_stack bench bash -c 'cargo bench -p tests --bench footprint "$@"' bench "$@"
else
  with_own_stack bench bash -c 'cargo bench -p tests --bench calls "$@" && cargo bench -p tests --bench cost "$@" && cargo bench -p tests --bench footprint "$@"' bench "$@"
fi
