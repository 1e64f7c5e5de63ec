#!/usr/bin/env bash
# Runs keg's whole test suite: lints, unit tests and the end-to-end tests against real kubectl,
# then the API server, controller and kubectl suites again with keg's state in a three-member
# etcd cluster (KEG_TEST_STORE=etcd: each test server gets etcd members of its own).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo build --workspace --bins
threads="${KEG_TEST_THREADS:-2}"
cargo test --workspace -- --test-threads="$threads"

# The suites whose servers the tests start themselves (tests that create clusters with
# `keg create cluster`, or name a store of their own, already ran above).
etcd_suites=(autoscaling certificates drain exec ga_api hpa kubectl node_failure protobuf python_client
  rbac server services top workloads)
KEG_TEST_STORE=etcd cargo test -p keg-apiserver -p keg-controllers -- --test-threads="$threads"
KEG_TEST_STORE=etcd cargo test -p keg "${etcd_suites[@]/#/--test=}" -- --test-threads="$threads"
