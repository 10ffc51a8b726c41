#!/usr/bin/env bash
# README command 2: runs every test against the local stack, starting it as needed (in memory,
# on its own table), and stops what it started. Extra arguments go to `cargo test`.
set -euo pipefail
# shellcheck source=infra/stack.sh
source "$(dirname "${BASH_SOURCE[0]}")/stack.sh"
with_own_stack test bash -c 'infra/dev_signals_test.sh && cargo test --workspace "$@"' test "$@"
