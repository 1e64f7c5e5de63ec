#!/usr/bin/env bash
# The Terrax cluster with the workload kinds beyond Deployments, step by step as a user runs
# them, each outcome checked: the database as a StatefulSet (database/statefulset.yml) whose
# row survives a new mysql-0 and whose name resolves from a Fargate pod; that lookup run as a
# Job, which gets a Fargate node of its own that goes when the Job completes; a DaemonSet on
# every node-group node and no Fargate node, following `keg scale nodegroup`, and refused by
# Fargate in a profile's namespace as on EKS. Ends by deleting what it made.
#
# Usage: examples/terrax/workloads.sh      (as root; images built by build-images.sh)
# Environment: KEG (the keg binary, default `keg`), KUBECTL (default `kubectl`).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
KEG=${KEG:-keg}
KUBECTL=${KUBECTL:-kubectl}
ns=tb-demo
cluster=terrax-fargate
keg_home=${KEG_HOME:-$HOME/.keg}
cluster_dir=$keg_home/clusters/$cluster
script=workloads
# shellcheck source=examples/terrax/lib.sh
. "$here/lib.sh"

cleanup() {
  [ "${torn_down:-}" = 1 ] && return
  step "Clean up after the failure"
  run "$KEG" delete cluster -f "$here/eks-terrax-fargate.yaml" || true
}

sql() { k exec mysql-0 -n "$ns" -- mariadb -uterrax -pterrax-beer-pw beers -N -e "$1"; }
ready() { [ "$(k get pod "$1" -n "${2:-$ns}" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" = True ]; }

step "Create the cluster"
run "$KEG" create cluster -f "$here/eks-terrax-fargate.yaml"
trap cleanup EXIT
run k create namespace "$ns"

step "The database as a StatefulSet: mysql-0 with its own claim on tb-gp2"
run k apply -f "$here/database/statefulset.yml"
run k rollout status statefulset/mysql -n "$ns" --timeout=300s
run k get statefulset,pods,pvc -n "$ns"
[ "$(k get pvc data-mysql-0 -n $ns -o jsonpath='{.spec.storageClassName}')" = tb-gp2 ] || fail "data-mysql-0 is not on tb-gp2"
[ "$(k get pvc data-mysql-0 -n $ns -o jsonpath='{.status.phase}')" = Bound ] || fail "data-mysql-0 is not Bound"
db_node=$(k get pod mysql-0 -n "$ns" -o jsonpath='{.spec.nodeName}')
k get node "$db_node" -o jsonpath='{.metadata.labels.alpha\.eksctl\.io/nodegroup-name}' | grep -qx node-group ||
  fail "mysql-0 runs on $db_node, not on the node group"

step "A row written survives a new mysql-0"
wait_for 120 sql "SELECT 1"
run sql "CREATE TABLE IF NOT EXISTS notes (t VARCHAR(64)); INSERT INTO notes VALUES ('kept by the claim')"
old_uid=$(k get pod mysql-0 -n "$ns" -o jsonpath='{.metadata.uid}')
run k delete pod mysql-0 -n "$ns"
wait_for 300 sh -c "[ \"\$($KUBECTL get pod mysql-0 -n $ns -o jsonpath='{.metadata.uid}')\" != '$old_uid' ]"
wait_for 300 ready mysql-0
wait_for 120 sql "SELECT 1"
[ "$(sql "SELECT t FROM notes")" = "kept by the claim" ] || fail "the row is gone after the new mysql-0"
echo "the row survived: the new mysql-0 mounted data-mysql-0 again"
# kubectl top: a second of samples gives mysql-0 a CPU rate and its working set.
top_memory() { k top pod mysql-0 -n "$ns" --no-headers | awk '{ exit !($3 + 0 > 0) }'; }
wait_for 30 top_memory
run k top pods -n "$ns"

step "A Job on Fargate resolves mysql-0.mysql.$ns.svc.cluster.local"
db_ip=$(k get pod mysql-0 -n "$ns" -o jsonpath='{.status.podIP}')
# The name answers once the headless service's endpoints list the new pod.
wait_for 60 sh -c "$KUBECTL get endpoints mysql -n $ns -o jsonpath='{.subsets[0].addresses[0].hostname} {.subsets[0].addresses[0].ip}' | grep -qx 'mysql-0 $db_ip'"
k apply -f - <<YAML
apiVersion: batch/v1
kind: Job
metadata:
  name: dns-check
  namespace: $ns
spec:
  backoffLimit: 2
  template:
    metadata:
      labels:
        app: service
    spec:
      restartPolicy: Never
      containers:
        - name: lookup
          image: terrax/beer-api:1.0
          imagePullPolicy: IfNotPresent
          # The answer is kept as the termination message: the pod's Fargate node, and the
          # logs on it, go when the pod ends.
          command: ["/bin/busybox", "sh", "-c", "out=\$(/bin/busybox nslookup mysql-0.mysql.$ns.svc.cluster.local) && echo \"\$out\" > /dev/termination-log"]
YAML
run k wait --for=condition=complete job/dns-check -n "$ns" --timeout=300s
run k get jobs -n "$ns"
succeeded() { k get pods -n "$ns" -l batch.kubernetes.io/job-name=dns-check -o jsonpath="{.items[?(@.status.phase==\"Succeeded\")]$1}"; }
answer=$(succeeded .status.containerStatuses[0].state.terminated.message)
echo "$answer"
echo "$answer" | grep -q "$db_ip" || fail "the lookup did not answer mysql-0's address $db_ip"
job_node=$(succeeded .spec.nodeName)
case $job_node in fargate-ip-*) ;; *) fail "the Job's pod ran on $job_node, not on a Fargate node" ;; esac
wait_for 120 sh -c "! $KUBECTL get node $job_node"
echo "the Job's pod ran on Fargate node $job_node, which went when the Job completed"
job_pod=$(succeeded .metadata.name)
billed() { "$KEG" cost --cluster "$cluster" --by pod -o csv | awk -F, -v key="$ns/$job_pod" '$1 == "row" && $2 == key { print $5 " " $7 }'; }
first=$(billed)
sleep 2
run "$KEG" cost --cluster "$cluster" --by pod
[ -n "$first" ] && [ "$(billed)" = "$first" ] || fail "the Job's pod is still billed: [$first] then [$(billed)]"
[ "${first#* }" = 0 ] || fail "the Job's pod still has an hourly rate: $first"
echo "the Job's pod is billed ${first% *}s and no more since it completed"

step "A DaemonSet runs on every node-group node and on no Fargate node"
daemon_set() { # namespace
  k apply -f - <<YAML
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: node-agent
  namespace: $1
spec:
  selector:
    matchLabels:
      app: node-agent
  template:
    metadata:
      labels:
        app: node-agent
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: agent
          image: terrax/beer-api:1.0
          imagePullPolicy: IfNotPresent
          command: ["/bin/busybox", "sleep", "3600"]
YAML
}
# In tb-demo, app=node-agent is selected by no profile: the pods go to the node group.
daemon_set "$ns"
run k rollout status daemonset/node-agent -n "$ns" --timeout=180s
run k get daemonset node-agent -n "$ns"
ds_nodes() { k get pods -n "$ns" -l app=node-agent -o jsonpath='{range .items[*]}{.spec.nodeName}{"\n"}{end}' | sort -u; }
group_nodes() { k get nodes -l alpha.eksctl.io/nodegroup-name=node-group -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}' | sort -u; }
[ "$(ds_nodes)" = "$(group_nodes)" ] || fail "the DaemonSet runs on [$(ds_nodes)], the node group has [$(group_nodes)]"
! ds_nodes | grep -q '^fargate-ip-' || fail "a DaemonSet pod runs on a Fargate node"
run "$KEG" scale nodegroup --cluster "$cluster" --name node-group --nodes 2 --nodes-max 2
wait_for 180 sh -c "[ \"\$($KUBECTL get nodes -l alpha.eksctl.io/nodegroup-name=node-group -o name | grep -c .)\" = 2 ]"
wait_for 180 sh -c "[ \"\$($KUBECTL get daemonset node-agent -n $ns -o jsonpath='{.status.numberReady}')\" = 2 ]"
[ "$(ds_nodes)" = "$(group_nodes)" ] || fail "after scaling, the DaemonSet runs on [$(ds_nodes)], the node group has [$(group_nodes)]"
run k get pods -n "$ns" -l app=node-agent -o wide
echo "the new node-group node got its DaemonSet pod; Fargate nodes got none"
# In kube-system, which fp-default selects, Fargate refuses the pods as EKS does.
daemon_set kube-system
refused() { k get events -n kube-system --field-selector reason=FailedScheduling -o jsonpath='{.items[*].message}' | grep -q 'Pod not supported on Fargate: DaemonSet not supported'; }
wait_for 60 refused
run k get daemonset node-agent -n kube-system
echo "in a Fargate profile's namespace the DaemonSet's pods are refused: Pod not supported on Fargate: DaemonSet not supported"

step "Delete everything; nothing is left behind"
run k delete daemonset node-agent -n kube-system
run k delete daemonset node-agent -n "$ns"
run k delete job dns-check -n "$ns"
run k delete -f "$here/database/statefulset.yml"
wait_for 120 sh -c "[ -z \"\$($KUBECTL get pods -n $ns -o name)\" ]"
delete_cluster_and_check

step "Done"
