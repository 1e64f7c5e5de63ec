#!/usr/bin/env bash
# Installs the Debian packages keg and its tests need. Idempotent; run as root.
set -euo pipefail
packages=(
  crun iproute2 nftables iptables util-linux procps psmisc  # container runtime and pod network
  busybox-static umoci skopeo jq                           # building test images
  curl                                                     # requests without credentials
  docker-registry                                          # a real OCI registry on loopback
  mariadb-server mariadb-client                            # the Terrax database image and tests
  chromium chromium-driver                                 # the Swagger UI browser test
  libseccomp-dev pkg-config                                # seccomp for the runtime
  etcd-server etcd-client                                  # the etcd store backend's tests
  protobuf-compiler libprotobuf-dev                        # protoc and its well-known types (etcd-client)
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  apt-get install -y --no-install-recommends "${missing[@]}"
fi
# Debian's docker-registry, mariadb and etcd start services on install where systemd runs; keg's
# tests start their own instances on loopback, so stop any that an install may have started.
for svc in docker-registry mariadb etcd; do
  if command -v systemctl >/dev/null && systemctl is-active --quiet "$svc" 2>/dev/null; then
    systemctl stop "$svc" || true
  fi
done
# The official Kubernetes Python client, for the test that drives keg with it (PyPI).
if ! python3 -c "import kubernetes" 2>/dev/null; then
  python3 -m pip install --quiet "kubernetes==33.1.0" ||
    python3 -m pip install --quiet --break-system-packages "kubernetes==33.1.0"
fi
