# What the Terrax scripts share: printing and running steps, polling, and deleting the
# cluster with a check that nothing of it is left. Sourced with $here, $KEG, $KUBECTL,
# $cluster, $cluster_dir and $script set.

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }
fail() { echo "$script: FAILED: $*" >&2; exit 1; }
k() { "$KUBECTL" "$@"; }

# Polls `$2...` until it succeeds, for at most $1 seconds.
wait_for() {
  local seconds=$1; shift
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || fail "timed out after ${seconds}s waiting for: $*"
    sleep 1
  done
}

# `keg delete cluster`, then no process, bridge, cgroup, mount or state of it may be left.
delete_cluster_and_check() {
  local network=$cluster_dir/data/node/network.json bridge cgroup pid
  bridge=$(sed -n 's/.*"bridge": "\(.*\)".*/\1/p' "$network")
  cgroup=$(sed -n 's/.*"cgroup_root": "\(.*\)".*/\1/p' "$network")
  pid=$(cat "$cluster_dir/keg.pid")
  run "$KEG" delete cluster -f "$here/eks-terrax-fargate.yaml"
  torn_down=1
  # A zombie (no parent reaps the daemon here) has stopped: only a live process counts.
  ! { [ -e "/proc/$pid" ] && ! grep -q ') Z ' "/proc/$pid/stat"; } || fail "the control plane (pid $pid) still runs"
  ! ip link show "$bridge" >/dev/null 2>&1 || fail "the pod bridge $bridge is still there"
  [ ! -e "/sys/fs/cgroup$cgroup" ] || fail "the cgroup $cgroup is still there"
  ! grep -q "$cluster_dir" /proc/self/mountinfo || fail "mounts under $cluster_dir are still there"
  [ ! -e "$cluster_dir" ] || fail "$cluster_dir is still there"
  echo "no process, bridge ($bridge), cgroup ($cgroup), mount or state of $cluster is left"
}
