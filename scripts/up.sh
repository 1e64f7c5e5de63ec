#!/usr/bin/env bash
# Sets up a fresh machine and starts the Terrax cluster from examples/terrax/.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo build --release -p keg
export PATH="$PWD/target/release:$PATH"
if [ -x examples/terrax/build-images.sh ]; then examples/terrax/build-images.sh; fi
keg create cluster -f examples/terrax/eks-terrax-fargate.yaml
cat <<EOF
cluster up. Next:
  export PATH=$PWD/target/release:\$PATH
  kubectl get nodes
The seed's walkthrough makes (and deletes) its own cluster from the same file, so end this
one first:
  keg delete cluster -f examples/terrax/eks-terrax-fargate.yaml
  examples/terrax/walkthrough.sh     # then examples/terrax/workloads.sh the same way
EOF
