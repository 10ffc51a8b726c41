#!/usr/bin/env bash
# Fuzzes the local API against its contract (openapi.yaml) with schemathesis: every check,
# positive and negative data, the links between operations, Twilio's webhooks signed as Twilio
# signs them (infra/fuzz/hooks.py). Any 5xx, any response that contradicts the spec, fails. Bounded: FUZZ_EXAMPLES cases per operation and phase (default
# 50), FUZZ_SECONDS in all (default 300). Starts the stack if needed, on its own table, and the
# API on a free port; stops what it started.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=infra/stack.sh
source "$ROOT/infra/stack.sh"

# schemathesis wants Python 3.12 or newer (its coverage phase crashed under 3.11).
python_for_schemathesis() {
  local candidate
  for candidate in python3.13 python3.12 "$HOME"/.pyenv/versions/3.1[2-9]*/bin/python3 python3; do
    if command -v "$candidate" >/dev/null 2>&1 \
       && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  return 1
}

install_schemathesis() {
  local venv="$STATE/st-venv"
  if [ ! -x "$venv/bin/st" ]; then
    local python
    if ! python=$(python_for_schemathesis); then
      have apt-get && apt_install python3.12 python3.12-venv >/dev/null 2>&1 || true
      python=$(python_for_schemathesis) || { log "schemathesis needs Python 3.12+"; return 1; }
    fi
    log "installing schemathesis (pip, in infra/.local/st-venv, with $python)"
    "$python" -m venv "$venv"
    "$venv/bin/pip" install -q 'schemathesis>=4,<5' >"$STATE/logs/st-pip.log" 2>&1 \
      || { tail -n 20 "$STATE/logs/st-pip.log" >&2; return 1; }
  fi
  echo "$venv/bin/st"
}

API_PID=
stop_api() { if [ -n "$API_PID" ]; then kill "$API_PID" 2>/dev/null || true; wait "$API_PID" 2>/dev/null || true; fi; }

fuzz() {
  local st; st=$(install_schemathesis)
  cargo build -q -p devstack --bin local-api
  local port; port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  # App signatures off, so that generated requests reach the limits and the pool rather than
  # stopping at the signature check (which the handler and fixture tests cover).
  # The public URL is the one the hooks sign webhook requests for (infra/fuzz/hooks.py).
  REQUIRE_APP_SIGNATURE=false PORT=$port RUST_LOG=warn PUBLIC_BASE_URL="http://127.0.0.1:$port" \
    "${CARGO_TARGET_DIR:-$ROOT/target}/debug/local-api" >"$STATE/logs/fuzz-api.log" 2>&1 &
  API_PID=$!
  trap stop_api EXIT
  for _ in $(seq 1 100); do port_open "$port" && break; sleep 0.1; done
  SCHEMATHESIS_HOOKS=hooks PYTHONPATH="$ROOT/infra/fuzz" \
    timeout "${FUZZ_SECONDS:-300}" "$st" --config-file "$ROOT/infra/fuzz/schemathesis.toml" \
    --no-color run "$ROOT/openapi.yaml" \
    --url "http://127.0.0.1:$port" \
    -H "Authorization: Bearer local-service-key" \
    --max-examples "${FUZZ_EXAMPLES:-50}" \
    --phases examples,coverage,fuzzing,stateful
}

# `fuzz` runs in with_own_stack's subshell: its trap stops the API, the outer one the stack.
with_own_stack fuzz fuzz
