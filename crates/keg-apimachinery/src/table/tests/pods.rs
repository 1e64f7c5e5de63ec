//! Pod status, readiness and restart cells.

use serde_json::{Value, json};

use super::{DAY, HOUR, MIN, ago, cells, headers, now, slice};
use crate::table::{IncludeObject, table};

fn pod(spec: Value, status: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "default", "creationTimestamp": ago(5 * HOUR)},
        "spec": spec,
        "status": status,
    })
}

fn one_container() -> Value {
    json!({"containers": [{"name": "app", "image": "nginx:1.27"}]})
}

/// READY, STATUS, RESTARTS.
fn summary(obj: Value) -> (String, String, String) {
    let c = cells("Pod", obj);
    let s = |i: usize| c[i].as_str().unwrap().to_owned();
    (s(1), s(2), s(3))
}

fn summary_of(ready: &str, status: &str, restarts: &str) -> (String, String, String) {
    (ready.into(), status.into(), restarts.into())
}

#[test]
fn pod_columns() {
    assert_eq!(
        headers("Pod"),
        [
            "Name",
            "Ready",
            "Status",
            "Restarts",
            "Age",
            "IP*",
            "Node*",
            "Nominated Node*",
            "Readiness Gates*"
        ]
    );
}

#[test]
fn running_pod_with_two_of_three_ready_and_one_restart() {
    let obj = pod(
        json!({
            "nodeName": "node-1",
            "containers": [
                {"name": "app", "image": "nginx"},
                {"name": "proxy", "image": "envoy"},
                {"name": "metrics", "image": "exporter"},
            ],
        }),
        json!({
            "phase": "Running",
            "podIP": "10.244.1.7",
            "podIPs": [{"ip": "10.244.1.7"}, {"ip": "fd00::7"}],
            "conditions": [
                {"type": "Initialized", "status": "True"},
                {"type": "Ready", "status": "False"},
                {"type": "PodScheduled", "status": "True"},
            ],
            "containerStatuses": [
                {"name": "app", "ready": true, "restartCount": 1, "started": true,
                 "state": {"running": {"startedAt": ago(5 * MIN)}},
                 "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled",
                                              "startedAt": ago(HOUR), "finishedAt": ago(5 * MIN)}}},
                {"name": "proxy", "ready": true, "restartCount": 0, "state": {"running": {}}},
                {"name": "metrics", "ready": false, "restartCount": 0, "state": {"running": {}}},
            ],
        }),
    );
    assert_eq!(
        cells("Pod", obj.clone()),
        json!([
            "web",
            "2/3",
            "Running",
            "1 (5m ago)",
            "5h",
            "10.244.1.7",
            "node-1",
            "<none>",
            "<none>"
        ])
    );
    let t = table("Pod", &[obj], now(), IncludeObject::None);
    assert!(t["rows"][0].get("conditions").is_none());
}

#[test]
fn crash_looping_container() {
    let obj = pod(
        one_container(),
        json!({
            "phase": "Running",
            "containerStatuses": [{
                "name": "app", "ready": false, "restartCount": 4,
                "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 1m20s"}},
                "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": ago(30)}},
            }],
        }),
    );
    assert_eq!(
        summary(obj),
        summary_of("0/1", "CrashLoopBackOff", "4 (30s ago)")
    );
}

#[test]
fn init_containers_progress_and_failures() {
    let spec = json!({
        "initContainers": [{"name": "migrate", "image": "m"}, {"name": "seed", "image": "s"}],
        "containers": [{"name": "app", "image": "a"}],
    });
    let init = |second: Value| {
        pod(
            spec.clone(),
            json!({
                "phase": "Pending",
                "conditions": [{"type": "Initialized", "status": "False"}],
                "initContainerStatuses": [
                    {"name": "migrate", "ready": false, "restartCount": 0,
                     "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                    second,
                ],
                "containerStatuses": [{"name": "app", "ready": false, "restartCount": 0,
                                       "state": {"waiting": {"reason": "PodInitializing"}}}],
            }),
        )
    };
    let running =
        json!({"name": "seed", "ready": false, "restartCount": 0, "state": {"running": {}}});
    assert_eq!(summary(init(running)), summary_of("0/1", "Init:1/2", "0"));

    let backoff = json!({"name": "seed", "ready": false, "restartCount": 3,
        "state": {"waiting": {"reason": "CrashLoopBackOff"}},
        "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(45)}}});
    assert_eq!(
        summary(init(backoff)),
        summary_of("0/1", "Init:CrashLoopBackOff", "3 (45s ago)")
    );

    let failed = json!({"name": "seed", "ready": false, "restartCount": 0,
        "state": {"terminated": {"exitCode": 1, "reason": "Error"}}});
    assert_eq!(summary(init(failed)), summary_of("0/1", "Init:Error", "0"));

    let no_reason =
        json!({"name": "seed", "restartCount": 0, "state": {"terminated": {"exitCode": 2}}});
    assert_eq!(summary(init(no_reason)).1, "Init:ExitCode:2");
    let signal = json!({"name": "seed", "restartCount": 0, "state": {"terminated": {"exitCode": 0, "signal": 9}}});
    // Exit code 0 counts as success whatever the signal.
    assert_eq!(summary(init(signal)).1, "PodInitializing");
}

#[test]
fn pod_initializing_once_init_containers_are_done() {
    let obj = pod(
        json!({"initContainers": [{"name": "migrate"}], "containers": [{"name": "app"}]}),
        json!({
            "phase": "Pending",
            "conditions": [{"type": "Initialized", "status": "True"}],
            "initContainerStatuses": [{"name": "migrate", "restartCount": 0,
                "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}],
            "containerStatuses": [{"name": "app", "restartCount": 0,
                "state": {"waiting": {"reason": "PodInitializing"}}}],
        }),
    );
    assert_eq!(summary(obj), summary_of("0/1", "PodInitializing", "0"));
}

#[test]
fn completed_pod_has_a_completed_row_condition() {
    let obj = pod(
        one_container(),
        json!({
            "phase": "Succeeded",
            "containerStatuses": [{"name": "app", "ready": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}],
        }),
    );
    assert_eq!(summary(obj.clone()), summary_of("0/1", "Completed", "0"));
    let t = table("Pod", &[obj], now(), IncludeObject::None);
    assert_eq!(
        t["rows"][0]["conditions"],
        json!([{"type": "Completed", "status": "True", "reason": "Succeeded",
                "message": "The pod has completed successfully."}])
    );
}

#[test]
fn completed_container_beside_a_running_one() {
    let status = |ready: &str| {
        json!({
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": ready}],
            "containerStatuses": [
                {"name": "job", "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                {"name": "app", "ready": true, "restartCount": 0, "state": {"running": {}}},
            ],
        })
    };
    let spec = json!({"containers": [{"name": "job"}, {"name": "app"}]});
    assert_eq!(
        summary(pod(spec.clone(), status("True"))),
        summary_of("1/2", "Running", "0")
    );
    assert_eq!(
        summary(pod(spec, status("False"))),
        summary_of("1/2", "NotReady", "0")
    );
}

#[test]
fn terminating_and_lost_pods() {
    let mut obj = pod(
        one_container(),
        json!({"phase": "Running", "containerStatuses": [
            {"name": "app", "ready": true, "restartCount": 0, "state": {"running": {}}}]}),
    );
    obj["metadata"]["deletionTimestamp"] = json!(ago(10));
    assert_eq!(summary(obj.clone()), summary_of("1/1", "Terminating", "0"));

    obj["status"]["reason"] = json!("NodeLost");
    assert_eq!(summary(obj.clone()).1, "Unknown");

    // A finished pod being deleted keeps its final status.
    obj["status"] = json!({"phase": "Failed", "reason": "Evicted"});
    assert_eq!(summary(obj).1, "Evicted");
}

#[test]
fn pending_and_gated_pods() {
    let pending = pod(one_container(), json!({"phase": "Pending"}));
    assert_eq!(
        cells("Pod", pending),
        json!([
            "web", "0/1", "Pending", "0", "5h", "<none>", "<none>", "<none>", "<none>"
        ])
    );
    let gated = pod(
        one_container(),
        json!({"phase": "Pending", "conditions": [
            {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]}),
    );
    assert_eq!(summary(gated).1, "SchedulingGated");
    let evicted = pod(
        one_container(),
        json!({"phase": "Failed", "reason": "Evicted"}),
    );
    assert_eq!(summary(evicted).1, "Evicted");
}

#[test]
fn restarts_after_termination_without_reason() {
    let obj = pod(
        one_container(),
        json!({"phase": "Running", "containerStatuses": [{
            "name": "app", "ready": false, "restartCount": 2,
            "state": {"terminated": {"exitCode": 143, "signal": 15, "finishedAt": ago(DAY)}},
            "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(3 * DAY)}},
        }]}),
    );
    // The last restart is the last *previous* termination.
    assert_eq!(summary(obj), summary_of("0/1", "Signal:15", "2 (3d ago)"));
}

#[test]
fn sidecars_count_towards_ready_and_restarts() {
    let obj = pod(
        json!({
            "initContainers": [
                {"name": "init", "image": "busybox"},
                {"name": "mesh", "image": "envoy", "restartPolicy": "Always"},
            ],
            "containers": [{"name": "app", "image": "nginx"}],
        }),
        json!({
            "phase": "Running",
            "conditions": [{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "True"}],
            "initContainerStatuses": [
                {"name": "init", "restartCount": 3, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}},
                 "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(HOUR)}}},
                {"name": "mesh", "ready": true, "started": true, "restartCount": 1,
                 "state": {"running": {}}, "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(20 * MIN)}}},
            ],
            "containerStatuses": [{"name": "app", "ready": true, "restartCount": 0, "state": {"running": {}}}],
        }),
    );
    // Plain init container restarts no longer count once the pod is initialized.
    assert_eq!(summary(obj), summary_of("2/2", "Running", "1 (20m ago)"));
}

#[test]
fn wide_cells() {
    let obj = pod(
        json!({"containers": [{"name": "app"}], "readinessGates": [
            {"conditionType": "example.com/lb-ready"}, {"conditionType": "example.com/dns"}]}),
        json!({
            "phase": "Pending",
            "podIP": "10.0.0.9",
            "nominatedNodeName": "node-2",
            "conditions": [{"type": "example.com/lb-ready", "status": "True"},
                           {"type": "example.com/dns", "status": "False"}],
        }),
    );
    let c = cells("Pod", obj);
    // podIP alone (no podIPs) still shows.
    assert_eq!(
        slice(c, 5..9),
        json!(["10.0.0.9", "<none>", "node-2", "1/2"])
    );
}
