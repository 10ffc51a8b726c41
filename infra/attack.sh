#!/usr/bin/env bash
# The attack lab (tests/benches/attack.rs): attacks replayed against the local API on loopback
# beside a legitimate population, on the local stack (started as needed, in memory, on its own
# table, stopped after). ATTACK_SCALE sizes it (default 1; CI runs 0.1); extra arguments go to
# `cargo bench` (`--profile dev` skips the optimised build).
set -euo pipefail
# shellcheck source=infra/stack.sh
source "$(dirname "${BASH_SOURCE[0]}")/stack.sh"
with_own_stack attack bash -c 'cargo bench -p tests --bench attack "$@"' attack "$@"
