#!/usr/bin/env bash
# Runs keg's whole test suite: lints, unit tests and the end-to-end tests against real kubectl.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo build --workspace --bins
cargo test --workspace -- --test-threads="${KEG_TEST_THREADS:-2}"
