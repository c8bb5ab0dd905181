#!/usr/bin/env bash
# Runs every test of the project: formatting and lints, the unit and integration tests of the
# whole workspace, and the interop tests with real clients (slixmpp from PyPI, installed into
# tests/interop/.venv on first run). This is the README's test command and what CI calls.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "=== interop clients"
tests/interop/setup.sh

echo "=== cargo fmt"
cargo fmt --all -- --check

echo "=== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "=== cargo test"
cargo test --workspace --locked
