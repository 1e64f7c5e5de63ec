#!/usr/bin/env bash
# The seed's walkthrough on keg, step by step: each command is printed and run as a user would
# run it, and each outcome the seed shows is checked; then the API's supply follows its load
# (a HorizontalPodAutoscaler). Ends by deleting what it made.
#
# Usage: examples/terrax/walkthrough.sh      (as root; images built by build-images.sh)
# Environment: KEG (the keg binary, default `keg`), KUBECTL (default `kubectl`),
#              BROWSER_CHECK (terrax-browser-check, default: beside KEG or on PATH),
#              ARTIFACTS (where the Swagger UI screenshot goes, default: a temporary dir),
#              KEEP=1 to leave the cluster running at the end.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
KEG=${KEG:-keg}
KUBECTL=${KUBECTL:-kubectl}
ns=tb-demo
cluster=terrax-fargate
keg_home=${KEG_HOME:-$HOME/.keg}
cluster_dir=$keg_home/clusters/$cluster

script=walkthrough
# shellcheck source=examples/terrax/lib.sh
. "$here/lib.sh"

# Only after a failure: the last step tears down and checks on its own.
cleanup() {
  [ "${KEEP:-}" = 1 ] && return
  [ "${torn_down:-}" = 1 ] && return
  step "Clean up after the failure"
  [ -n "${load:-}" ] && { kill "$load" 2>/dev/null || true; }
  run k delete -f "$here/service/autoscaler.yml" --ignore-not-found --wait=false || true
  run k delete -f "$here/service/service.yml" --ignore-not-found --wait=false || true
  run k delete -f "$here/database/database.yml" --ignore-not-found --wait=false || true
  run "$KEG" delete cluster -f "$here/eks-terrax-fargate.yaml" || true
}

running_pods() { # label -> count of Running pods
  k get pods -n "$ns" -l "$1" -o jsonpath='{range .items[*]}{.status.phase}{"\n"}{end}' | grep -c '^Running$' || true
}
fargate_nodes() {
  k get nodes -l eks.amazonaws.com/compute-type=fargate,eks.amazonaws.com/fargate-profile=fp-demo-service -o name | grep -c . || true
}
pods_running() { [ "$(running_pods "$1")" = "$2" ]; }
fargate_nodes_are() { [ "$(fargate_nodes)" = "$1" ]; }

step "Create the cluster (one node group, two Fargate profiles)"
run "$KEG" create cluster -f "$here/eks-terrax-fargate.yaml"
trap cleanup EXIT
run k get nodes
[ "$(k get nodes -l alpha.eksctl.io/nodegroup-name=node-group -o name | grep -c .)" = 1 ] || fail "expected one node-group node"

step "The database: StorageClass tb-gp2 (Immediate), its claim, MySQL"
run k create namespace "$ns"
run k apply -f "$here/database/database.yml"
wait_for 60 sh -c "$KUBECTL get pvc mysql-data-disk -n $ns -o jsonpath='{.status.phase}' | grep -qx Bound"
run k describe pvc mysql-data-disk -n "$ns"
[ "$(k get pvc mysql-data-disk -n $ns -o jsonpath='{.spec.storageClassName}')" = tb-gp2 ] || fail "claim not on tb-gp2"
wait_for 300 pods_running app=database 1
db_node=$(k get pods -n "$ns" -l app=database -o jsonpath='{.items[0].spec.nodeName}')
k get node "$db_node" -o jsonpath='{.metadata.labels.alpha\.eksctl\.io/nodegroup-name}' | grep -qx node-group ||
  fail "the database pod runs on $db_node, not on the node group"

step "The beer API: two pods, each on a Fargate node of its own"
run k apply -f "$here/service/service.yml"
wait_for 300 pods_running app=service 2
run k get pods -n "$ns" -o wide
nodes=$(k get pods -n "$ns" -l app=service -o jsonpath='{range .items[*]}{.spec.nodeName}{"\n"}{end}' | sort -u)
[ "$(echo "$nodes" | grep -c '^fargate-ip-')" = 2 ] || fail "service pods are not on two Fargate nodes: $nodes"
run k get nodes

step "The LoadBalancer Service and the API through it"
wait_for 60 sh -c "$KUBECTL get service springboot-service -n $ns -o jsonpath='{.status.loadBalancer.ingress[0].ip}' | grep -q ."
run k get service -n "$ns"
ip=$(k get service springboot-service -n "$ns" -o jsonpath='{.status.loadBalancer.ingress[0].ip}')
wait_for 120 curl -fsS "http://$ip/readyz"
run curl -fsS -X POST -H 'content-type: application/json' -d '{"name":"Terrax Blonde","brewery":"Terrax","style":"Blonde Ale","abv":5.2}' "http://$ip/api/beers"
echo
run curl -fsS "http://$ip/api/beers"
echo
curl -fsS "http://$ip/swagger-ui.html" -L | grep -qi swagger || fail "swagger-ui does not answer"
echo "swagger-ui answers at http://$ip/swagger-ui.html"

step "Swagger UI in a browser: list the operations, create a beer"
browser_check=${BROWSER_CHECK:-$(dirname "$(command -v "$KEG")")/terrax-browser-check}
[ -x "$browser_check" ] || browser_check=$(command -v terrax-browser-check || true)
if [ -n "$browser_check" ] && [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
  artifacts=${ARTIFACTS:-$(mktemp -d)}
  mkdir -p "$artifacts"
  run "$browser_check" "http://$ip/swagger-ui.html" --beer "Swagger Saison" --screenshot "$artifacts/swagger-ui.png"
  curl -fsS "http://$ip/api/beers?size=100" | grep -q '"Swagger Saison"' || fail "the beer made in swagger-ui is not listed"
elif [ "${CI:-}" = true ]; then
  fail "the browser check needs terrax-browser-check, /usr/bin/chromium and /usr/bin/chromedriver"
else
  echo "skipped: terrax-browser-check, /usr/bin/chromium or /usr/bin/chromedriver missing (scripts/install-deps.sh, cargo build)"
fi

step "Data persists across pods"
run k delete pods -n "$ns" -l app=service
wait_for 300 pods_running app=service 2
wait_for 120 curl -fsS "http://$ip/readyz"
curl -fsS "http://$ip/api/beers" | grep -q "Terrax Blonde" || fail "the beer is gone after replacing the API pods"
run k delete pods -n "$ns" -l app=database
wait_for 300 pods_running app=database 1
wait_for 180 sh -c "curl -fsS http://$ip/api/beers | grep -q 'Terrax Blonde'"
echo "the beer survived new API pods and a new database pod"

step "Scale the API: 2 -> 4 -> 1 pods, Fargate nodes follow"
run k scale deployment springboot-deployment --replicas=4 -n "$ns"
wait_for 300 pods_running app=service 4
wait_for 120 fargate_nodes_are 4
run k get nodes
run k scale deployment springboot-deployment --replicas=1 -n "$ns"
wait_for 300 fargate_nodes_are 1
run k get nodes

step "Supply follows demand: an autoscaler on the API, load through the load balancer"
run k apply -f "$here/service/autoscaler.yml"
hpa() { k get hpa springboot-deployment -n "$ns" -o jsonpath="$1"; }
# The first sync reads the pods' CPU: TARGETS shows a value, not <unknown>.
wait_for 60 sh -c "$KUBECTL get hpa springboot-deployment -n $ns -o jsonpath='{.status.currentMetrics[0].resource.current.averageUtilization}' | grep -q ."
run k get hpa -n "$ns"
# Load: requests on new connections, so that the load balancer spreads them over the pods as
# they come; bounded in count and time, on the load balancer's loopback address.
curl -s --parallel --parallel-max 16 --max-time 5 -H 'Connection: close' -o /dev/null \
  "http://$ip/api/beers?n=[1-300000]" 2>/dev/null &
load=$!
stop_load() { kill "$load" 2>/dev/null || true; wait "$load" 2>/dev/null || true; }
ready_pods() {
  k get pods -n "$ns" -l app=service -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' | grep -c '^True$' || true
}
scaled_out() {
  local desired
  desired=$(hpa '{.status.desiredReplicas}')
  [ "${desired:-0}" -ge 2 ] && [ "$(ready_pods)" = "$desired" ] && fargate_nodes_are "$desired"
}
wait_for 240 scaled_out # (a failure stops the load in cleanup)
stop_load
run k get hpa,pods -n "$ns" -o wide
run k get nodes
echo "under load the API grew to $(hpa '{.status.desiredReplicas}') pods, each on a Fargate node of its own"
# Without load the pods idle; after the 30 s window of the autoscaler's behavior it goes back.
wait_for 240 sh -c "[ \"\$($KUBECTL get hpa springboot-deployment -n $ns -o jsonpath='{.status.desiredReplicas}')\" = 1 ]"
wait_for 300 fargate_nodes_are 1
run k describe hpa springboot-deployment -n "$ns"
k get events -n "$ns" --field-selector reason=SuccessfulRescale -o jsonpath='{range .items[*]}{.message}{"\n"}{end}' |
  grep -q "above target" || fail "no SuccessfulRescale event for the scale-up"
run k delete -f "$here/service/autoscaler.yml"

step "What it cost: Fargate pods by the second, the node group by the hour"
run "$KEG" cost --cluster "$cluster"
"$KEG" cost --cluster "$cluster" -o csv |
  awk -F, -v ns="$ns" '$1 == "row" && $2 == ns && $5 > 0 { billed = 1 } END { exit !billed }' ||
  fail "keg cost bills nothing to $ns"

[ "${KEEP:-}" = 1 ] && { step "Done: the cluster keeps running (KEEP=1)"; exit 0; }

step "Delete the application and the cluster; nothing is left behind"
run k delete -f "$here/service/service.yml"
run k delete -f "$here/database/database.yml"
wait_for 120 sh -c "[ -z \"\$($KUBECTL get pods -n $ns -o name)\" ]"
delete_cluster_and_check

step "Done"
