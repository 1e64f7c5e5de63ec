//! Workload and cluster-level kinds.

use serde_json::{Value, json};

use super::{DAY, HOUR, MIN, ago, cells, headers, slice};

fn meta(name: &str, age: i64) -> Value {
    json!({"name": name, "namespace": "default", "creationTimestamp": ago(age)})
}

fn template(containers: Value) -> Value {
    json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": containers}})
}

#[test]
fn deployment() {
    assert_eq!(
        headers("Deployment"),
        [
            "Name",
            "Ready",
            "Up-to-date",
            "Available",
            "Age",
            "Containers*",
            "Images*",
            "Selector*"
        ]
    );
    let obj = json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta("web", 3 * DAY + 4 * HOUR),
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web", "tier": "frontend"},
                         "matchExpressions": [{"key": "env", "operator": "In", "values": ["prod", "canary"]}]},
            "template": template(json!([{"name": "nginx", "image": "nginx:1.27"}, {"name": "log", "image": "fluent-bit:3"}])),
        },
        "status": {"replicas": 3, "updatedReplicas": 3, "readyReplicas": 2, "availableReplicas": 2},
    });
    assert_eq!(
        cells("Deployment", obj),
        json!([
            "web",
            "2/3",
            3,
            2,
            "3d4h",
            "nginx,log",
            "nginx:1.27,fluent-bit:3",
            "app=web,env in (canary,prod),tier=frontend"
        ])
    );
    // A fresh deployment: replicas default to 1, no status yet, no selector.
    let fresh = json!({"metadata": meta("new", 5), "spec": {"template": template(json!([{"name": "a", "image": "a"}]))}});
    assert_eq!(
        cells("Deployment", fresh),
        json!(["new", "0/1", 0, 0, "5s", "a", "a", ""])
    );
}

#[test]
fn replica_set_stateful_set_daemon_set() {
    assert_eq!(
        headers("ReplicaSet"),
        [
            "Name",
            "Desired",
            "Current",
            "Ready",
            "Age",
            "Containers*",
            "Images*",
            "Selector*"
        ]
    );
    let rs = json!({
        "metadata": meta("web-5d8f7c9b4", 10 * MIN),
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web", "pod-template-hash": "5d8f7c9b4"}},
                 "template": template(json!([{"name": "nginx", "image": "nginx"}]))},
        "status": {"replicas": 2, "readyReplicas": 1},
    });
    assert_eq!(
        cells("ReplicaSet", rs),
        json!([
            "web-5d8f7c9b4",
            2,
            2,
            1,
            "10m",
            "nginx",
            "nginx",
            "app=web,pod-template-hash=5d8f7c9b4"
        ])
    );

    assert_eq!(
        headers("StatefulSet"),
        ["Name", "Ready", "Age", "Containers*", "Images*"]
    );
    let sts = json!({
        "metadata": meta("db", 40 * DAY),
        "spec": {"replicas": 3, "template": template(json!([{"name": "postgres", "image": "postgres:16"}]))},
        "status": {"readyReplicas": 3},
    });
    assert_eq!(
        cells("StatefulSet", sts),
        json!(["db", "3/3", "40d", "postgres", "postgres:16"])
    );

    assert_eq!(
        headers("DaemonSet"),
        [
            "Name",
            "Desired",
            "Current",
            "Ready",
            "Up-to-date",
            "Available",
            "Node Selector",
            "Age",
            "Containers*",
            "Images*",
            "Selector*"
        ]
    );
    let ds = json!({
        "metadata": meta("kube-proxy", 2 * HOUR),
        "spec": {"selector": {"matchLabels": {"k8s-app": "kube-proxy"}},
                 "template": {"spec": {"nodeSelector": {"kubernetes.io/os": "linux"},
                                       "containers": [{"name": "kube-proxy", "image": "kube-proxy:v1.33.0"}]}}},
        "status": {"desiredNumberScheduled": 3, "currentNumberScheduled": 3, "numberReady": 2,
                   "updatedNumberScheduled": 3, "numberAvailable": 2},
    });
    assert_eq!(
        cells("DaemonSet", ds),
        json!([
            "kube-proxy",
            3,
            3,
            2,
            3,
            2,
            "kubernetes.io/os=linux",
            "120m",
            "kube-proxy",
            "kube-proxy:v1.33.0",
            "k8s-app=kube-proxy"
        ])
    );
}

#[test]
fn jobs_and_cron_jobs() {
    assert_eq!(
        headers("Job"),
        [
            "Name",
            "Status",
            "Completions",
            "Duration",
            "Age",
            "Containers*",
            "Images*",
            "Selector*"
        ]
    );
    let done = json!({
        "metadata": meta("pi", 10 * MIN),
        "spec": {"completions": 1, "parallelism": 1,
                 "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "abc"}},
                 "template": template(json!([{"name": "pi", "image": "perl:5.34"}]))},
        "status": {"startTime": ago(10 * MIN), "completionTime": ago(10 * MIN - 47), "succeeded": 1,
                   "conditions": [{"type": "SuccessCriteriaMet", "status": "True"},
                                  {"type": "Complete", "status": "True"}]},
    });
    assert_eq!(
        cells("Job", done),
        json!([
            "pi",
            "Complete",
            "1/1",
            "47s",
            "10m",
            "pi",
            "perl:5.34",
            "batch.kubernetes.io/controller-uid=abc"
        ])
    );
    let running = json!({
        "metadata": meta("work", 3 * MIN),
        "spec": {"parallelism": 4, "template": template(json!([]))},
        "status": {"startTime": ago(3 * MIN + 5), "succeeded": 2},
    });
    assert_eq!(
        cells("Job", running),
        json!([
            "work", "Running", "2/1 of 4", "3m5s", "3m", "", "", "<none>"
        ])
    );
    let failed = json!({"metadata": meta("f", MIN), "spec": {"completions": 3},
        "status": {"failed": 6, "conditions": [{"type": "Failed", "status": "True"}]}});
    assert_eq!(
        slice(cells("Job", failed), 1..4),
        json!(["Failed", "0/3", ""])
    );

    assert_eq!(
        headers("CronJob"),
        [
            "Name",
            "Schedule",
            "Timezone",
            "Suspend",
            "Active",
            "Last Schedule",
            "Age",
            "Containers*",
            "Images*",
            "Selector*"
        ]
    );
    let cj = json!({
        "metadata": meta("backup", 2 * DAY),
        "spec": {"schedule": "*/5 * * * *", "suspend": false,
                 "jobTemplate": {"spec": {"template": template(json!([{"name": "backup", "image": "restic"}]))}}},
        "status": {"active": [{"kind": "Job", "name": "backup-28625"}], "lastScheduleTime": ago(90)},
    });
    assert_eq!(
        cells("CronJob", cj),
        json!([
            "backup",
            "*/5 * * * *",
            "<none>",
            "False",
            1,
            "90s",
            "2d",
            "backup",
            "restic",
            "<none>"
        ])
    );
}

#[test]
fn nodes() {
    assert_eq!(
        headers("Node"),
        [
            "Name",
            "Status",
            "Roles",
            "Age",
            "Version",
            "Internal-IP*",
            "External-IP*",
            "OS-Image*",
            "Kernel-Version*",
            "Container-Runtime*"
        ]
    );
    let node = json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": "ip-10-0-1-23", "creationTimestamp": ago(20 * DAY),
                     "labels": {"node-role.kubernetes.io/control-plane": "", "node-role.kubernetes.io/master": "",
                                "kubernetes.io/hostname": "ip-10-0-1-23"}},
        "status": {
            "conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True"}],
            "addresses": [{"type": "InternalIP", "address": "10.0.1.23"}, {"type": "Hostname", "address": "ip-10-0-1-23"}],
            "nodeInfo": {"kubeletVersion": "v1.33.1", "osImage": "Ubuntu 24.04 LTS",
                         "kernelVersion": "6.8.0-1009-aws", "containerRuntimeVersion": "containerd://1.7.27"},
        },
    });
    assert_eq!(
        cells("Node", node.clone()),
        json!([
            "ip-10-0-1-23",
            "Ready",
            "control-plane,master",
            "20d",
            "v1.33.1",
            "10.0.1.23",
            "<none>",
            "Ubuntu 24.04 LTS",
            "6.8.0-1009-aws",
            "containerd://1.7.27"
        ])
    );
    let mut cordoned = node.clone();
    cordoned["spec"] = json!({"unschedulable": true});
    cordoned["status"]["conditions"][1]["status"] = json!("Unknown");
    cordoned["metadata"]["labels"] = json!({"kubernetes.io/role": "worker"});
    assert_eq!(
        slice(cells("Node", cordoned), 1..3),
        json!(["NotReady,SchedulingDisabled", "worker"])
    );
    let bare = json!({"metadata": {"name": "n", "creationTimestamp": ago(5)}});
    assert_eq!(
        cells("Node", bare),
        json!([
            "n",
            "Unknown",
            "<none>",
            "5s",
            "",
            "<none>",
            "<none>",
            "<unknown>",
            "<unknown>",
            "<unknown>"
        ])
    );
}

#[test]
fn namespaces_and_leases() {
    assert_eq!(headers("Namespace"), ["Name", "Status", "Age"]);
    let ns = json!({"metadata": {"name": "kube-system", "creationTimestamp": ago(DAY)}, "status": {"phase": "Active"}});
    assert_eq!(
        cells("Namespace", ns),
        json!(["kube-system", "Active", "24h"])
    );
    let terminating = json!({"metadata": {"name": "old", "creationTimestamp": ago(DAY)}, "status": {"phase": "Terminating"}});
    assert_eq!(cells("Namespace", terminating)[1], "Terminating");

    assert_eq!(headers("Lease"), ["Name", "Holder", "Age"]);
    let lease = json!({"metadata": meta("kube-scheduler", 7 * MIN),
        "spec": {"holderIdentity": "cp-1_6f0d6b0e", "leaseDurationSeconds": 15}});
    assert_eq!(
        cells("Lease", lease),
        json!(["kube-scheduler", "cp-1_6f0d6b0e", "7m"])
    );
}

#[test]
fn core_and_new_events() {
    assert_eq!(
        headers("Event"),
        [
            "Last Seen",
            "Type",
            "Reason",
            "Object",
            "Subobject*",
            "Source*",
            "Message",
            "First Seen*",
            "Count*",
            "Name*"
        ]
    );
    let core = json!({
        "apiVersion": "v1", "kind": "Event", "metadata": meta("web.17c8a1b2c3d4e5f6", 10 * MIN),
        "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default", "fieldPath": "spec.containers{app}"},
        "reason": "Pulled", "message": "Successfully pulled image \"nginx\"\n", "type": "Normal",
        "source": {"component": "kubelet", "host": "node-1"},
        "firstTimestamp": ago(10 * MIN), "lastTimestamp": ago(2 * MIN), "count": 3,
    });
    assert_eq!(
        cells("Event", core),
        json!([
            "2m",
            "Normal",
            "Pulled",
            "pod/web",
            "spec.containers{app}",
            "kubelet, node-1",
            "Successfully pulled image \"nginx\"",
            "10m",
            3,
            "web.17c8a1b2c3d4e5f6"
        ])
    );
    let new = json!({
        "apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": meta("web.18", 90),
        "eventTime": "2024-06-01T11:58:30.000000Z",
        "regarding": {"kind": "Deployment", "name": "web", "namespace": "default"},
        "note": "Scaled up replica set web-5d8f7c9b4 to 3", "reason": "ScalingReplicaSet", "type": "Normal",
        "reportingController": "deployment-controller", "reportingInstance": "",
        "action": "Scale",
    });
    assert_eq!(
        cells("Event", new),
        json!([
            "90s",
            "Normal",
            "ScalingReplicaSet",
            "deployment/web",
            "",
            "deployment-controller",
            "Scaled up replica set web-5d8f7c9b4 to 3",
            "90s",
            1,
            "web.18"
        ])
    );
    let series = json!({
        "apiVersion": "v1", "kind": "Event", "metadata": meta("x", HOUR), "type": "Warning", "reason": "BackOff",
        "involvedObject": {"kind": "Node"}, "eventTime": ago(HOUR), "reportingComponent": "kubelet",
        "reportingController": "kubelet", "reportingInstance": "node-1",
        "series": {"count": 12, "lastObservedTime": ago(40)},
    });
    assert_eq!(
        slice(cells("Event", series), 0..9),
        json!([
            "40s",
            "Warning",
            "BackOff",
            "node",
            "",
            "kubelet, node-1",
            "",
            "60m",
            12
        ])
    );
}

#[test]
fn rbac_and_scheduling() {
    assert_eq!(
        headers("ClusterRoleBinding"),
        [
            "Name",
            "Role",
            "Age",
            "Users*",
            "Groups*",
            "ServiceAccounts*"
        ]
    );
    let crb = json!({
        "metadata": {"name": "cluster-admin", "creationTimestamp": ago(DAY)},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"kind": "Group", "name": "system:masters"}, {"kind": "User", "name": "alice"},
                     {"kind": "ServiceAccount", "name": "deployer", "namespace": "ci"}, {"kind": "User", "name": "bob"}],
    });
    assert_eq!(
        cells("ClusterRoleBinding", crb),
        json!([
            "cluster-admin",
            "ClusterRole/cluster-admin",
            "24h",
            "alice, bob",
            "system:masters",
            "ci/deployer"
        ])
    );
    assert_eq!(
        headers("PriorityClass"),
        ["Name", "Value", "Global-Default", "Age", "PreemptionPolicy"]
    );
    let pc = json!({"metadata": {"name": "system-node-critical", "creationTimestamp": ago(DAY)}, "value": 2000001000});
    assert_eq!(
        cells("PriorityClass", pc),
        json!([
            "system-node-critical",
            2000001000,
            false,
            "24h",
            "PreemptLowerPriority"
        ])
    );
}

#[test]
fn api_services() {
    assert_eq!(
        headers("APIService"),
        ["Name", "Service", "Available", "Age"]
    );
    let local = json!({"metadata": {"name": "v1.apps", "creationTimestamp": ago(DAY)},
        "spec": {"group": "apps", "version": "v1"}, "status": {"conditions": [{"type": "Available", "status": "True", "reason": "Local"}]}});
    assert_eq!(
        cells("APIService", local),
        json!(["v1.apps", "Local", "True", "24h"])
    );
    let broken = json!({"metadata": {"name": "v1beta1.metrics.k8s.io", "creationTimestamp": ago(DAY)},
        "spec": {"service": {"namespace": "kube-system", "name": "metrics-server"}},
        "status": {"conditions": [{"type": "Available", "status": "False", "reason": "MissingEndpoints"}]}});
    assert_eq!(
        slice(cells("APIService", broken), 1..3),
        json!(["kube-system/metrics-server", "False (MissingEndpoints)"])
    );
    let new = json!({"metadata": {"name": "v1.x", "creationTimestamp": ago(DAY)}, "spec": {}});
    assert_eq!(cells("APIService", new)[2], "Unknown");
}
