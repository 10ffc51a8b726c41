#!/usr/bin/env bash
# template.yaml run as deployed, on 127.0.0.1:${PORT:-3000}: starts the local stack, builds the
# functions' binaries, and serves the template's HTTP API with each function its own processes
# (the environment the template gives it, its routes from its HttpApi events, every AWS call
# judged against its own policy and denied as AWS would deny it). Ctrl-C, SIGTERM and SIGHUP
# stop it and what this script started.
#
#   infra/deployed.sh [--template FILE] [--record-iam] [--parameter-overrides Key=Value ...]
#
# The local stack's parameters (the App Check project, the countries, test numbers, the public
# URL, the sender) are given as overrides first; yours come after and win, as with `sam deploy`.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=infra/stack.sh
source "$ROOT/infra/stack.sh"

stop_on_signals
up
PORT=${PORT:-3000}
# The one local variable beside endpoints and credentials: the stack has no Twilio account, so
# its gateway (which dials nothing and logs the caller ID and the codes) must be let run.
export ALLOW_LOGGING_GATEWAY=true
cd "$ROOT"
log "building the functions (cargo build --bins)"
cargo build -q --workspace --bins
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}/debug

# Template parameters as the local stack needs them (sam deploy --parameter-overrides form).
local_overrides=(
  "AllowedCountryCodes=${ALLOWED_COUNTRY_CODES:-*}"
  "AppCheckProjectNumber=$APP_CHECK_PROJECT_NUMBER"
  "AppCheckJwksUrl=$APP_CHECK_JWKS_URL"
  "AllowTestNumbers=$ALLOW_TEST_NUMBERS"
  "PublicBaseUrl=${PUBLIC_BASE_URL:-http://127.0.0.1:$PORT}"
  "SmsFromNumbers=$SMS_FROM_NUMBERS"
)
args=() user_overrides=()
while [ $# -gt 0 ]; do
  case "$1" in
    --parameter-overrides) shift; while [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; do user_overrides+=("$1"); shift; done ;;
    *) args+=("$1"); shift ;;
  esac
done
log "the template's HTTP API on http://127.0.0.1:$PORT (each function's log lines are prefixed with its name)"
run_in_foreground "$TARGET/deployed" --port "$PORT" --bin-dir "$TARGET" "${args[@]}" \
  --parameter-overrides "${local_overrides[@]}" "${user_overrides[@]}"
