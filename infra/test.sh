#!/usr/bin/env bash
# README command 2: runs every test against the local stack, starting it as needed (in memory,
# on its own table), and stops what it started; `infra/test.sh iam` runs only the IAM checks. Extra arguments go to `cargo test`. Closes with
# one line that adds up every test runner's results.
set -euo pipefail
# shellcheck source=infra/stack.sh
source "$(dirname "${BASH_SOURCE[0]}")/stack.sh"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
# The functions' own binaries first: the as-deployed tests (tests/tests/it/deployed.rs) run them.
with_own_stack test bash -c 'infra/dev_signals_test.sh && cargo build -q --workspace --bins && cargo test --workspace "$@"' test "$@" 2>&1 \
  | tee "$log"
status=${PIPESTATUS[0]}
set -e
# cargo's `test result: ok. N passed; M failed; ...` lines and the signal check's own line.
awk '
  /^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1) } }
  /^dev.sh signals:/ { p += $3; f += $5 }
  END { printf "tests: %d passed, %d failed\n", p, f }
' "$log"
exit "$status"
