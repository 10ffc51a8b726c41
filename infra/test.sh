#!/usr/bin/env bash
# README command 2: runs every test against the local stack, starting it as needed (in memory,
# on its own table), and stops what it started. Extra arguments go to `cargo test`.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export TABLE_NAME=${TEST_TABLE_NAME:-phone-verification-test}
export SECRET_ID=${TEST_SECRET_ID:-phone-verification/test}
export DYNAMODB_IN_MEMORY=${DYNAMODB_IN_MEMORY:-1}
# shellcheck source=infra/stack.sh
source "$ROOT/infra/stack.sh"
trap stop_started EXIT
up
cd "$ROOT"
cargo test --workspace "$@"
