#!/usr/bin/env bash
# Runs every test of the project: formatting and lints, the unit and integration tests of the
# whole workspace, the interop tests with real clients (slixmpp from PyPI, installed into
# tests/interop/.venv on first run), and the whole server suite a second time on the Redis
# backend (needs Debian's redis-server; tests that need it fail loudly without it), and the Helm
# chart check (helm/check.sh, with ../shared/tools/check-chart beside this checkout).
# This is the README's test command and what CI calls.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "=== interop clients"
tests/interop/setup.sh

echo "=== helm chart"
helm/check.sh

echo "=== cargo fmt"
cargo fmt --all -- --check

echo "=== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

command -v redis-server >/dev/null 2>&1 || {
  echo "redis-server not found: install Debian's redis-server package (apt-get install redis-server)" >&2
  exit 1
}

echo "=== cargo test (embedded store)"
cargo test --workspace --locked

echo "=== cargo test: the server suite on the Redis backend"
CORVID_TEST_STORAGE=redis cargo test --locked -p corvid-tests
