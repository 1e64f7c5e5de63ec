#!/usr/bin/env bash
# Sets up a fresh machine and starts the Terrax cluster from examples/terrax/.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo build --release -p keg
export PATH="$PWD/target/release:$PATH"
if [ -x examples/terrax/build-images.sh ]; then examples/terrax/build-images.sh; fi
keg create cluster -f examples/terrax/eks-terrax-fargate.yaml
echo "cluster up: try 'kubectl get nodes' or run examples/terrax/walkthrough.sh"
