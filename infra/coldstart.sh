#!/usr/bin/env bash
# The cold-start benchmark: builds the functions (release profile, as deployed, or PROFILE),
# starts the local stack (own table, in memory), installs boto3 for the Python comparison, and
# runs `coldstart`: every function of shared::endpoints started cold RUNS times (default 20)
# under a Lambda Runtime API on loopback, then WARM invocations (default 200). Stops what it
# started.
#
#   infra/coldstart.sh                       # release build, 20 runs, 200 warm
#   RUNS=2 WARM=10 PROFILE=dev infra/coldstart.sh      # small, on the debug build (CI)
#   BIN_DIR=/some/other/build infra/coldstart.sh       # measure other binaries (before/after)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=infra/stack.sh
source "$ROOT/infra/stack.sh"

PROFILE=${PROFILE:-release}

python_with_boto3() {
  local venv="$STATE/py-bench"
  if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import boto3' 2>/dev/null; then
    log "installing boto3 (pip, in infra/.local/py-bench)"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q boto3 >"$STATE/logs/py-bench-pip.log" 2>&1 \
      || { tail -n 20 "$STATE/logs/py-bench-pip.log" >&2; return 1; }
  fi
  echo "$venv/bin/python"
}

bench() {
  local python; python=$(python_with_boto3)
  local functions=()
  for dir in "$ROOT"/functions/*/; do
    local name; name=$(basename "$dir")
    functions+=(-p "$name" --bin "$name")
  done
  log "building ${functions[*]} (profile $PROFILE)"
  cargo build -q --profile "$PROFILE" "${functions[@]}" -p devstack --bin coldstart
  local out=$PROFILE; [ "$PROFILE" = dev ] && out=debug
  local bin="${CARGO_TARGET_DIR:-$ROOT/target}/$out"
  log "python: $("$python" --version 2>&1), boto3 $("$python" -c 'import boto3; print(boto3.__version__)')"
  "$bin/coldstart" \
    --bin-dir "${BIN_DIR:-$bin}" \
    --runs "${RUNS:-20}" --warm "${WARM:-200}" \
    --python "$python" --python-handler "$ROOT/infra/coldstart/status_handler.py"
}

with_own_stack coldstart bench
