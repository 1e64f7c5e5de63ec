//! Pods: upstream's `printPod`, including its status-reason rules.

use jiff::Timestamp;
use serde_json::{Value, json};

use super::Col;
use super::helpers::{
    age, arr_at, at, deleting, int_at, later, name, parse_time, since_ts, str_at,
};

pub(super) const COLUMNS: &[Col] = &[
    Col::NAME,
    Col::new(
        "Ready",
        "string",
        "The aggregate readiness state of this pod for accepting traffic.",
    ),
    Col::new(
        "Status",
        "string",
        "The aggregate status of the containers in this pod.",
    ),
    Col::new(
        "Restarts",
        "string",
        "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
    ),
    Col::AGE,
    Col::new("IP", "string", "podIP address allocated to the pod.").wide(),
    Col::new(
        "Node",
        "string",
        "NodeName indicates in which node this pod is scheduled.",
    )
    .wide(),
    Col::new(
        "Nominated Node",
        "string",
        "nominatedNodeName is set only when this pod preempts other pods on the node.",
    )
    .wide(),
    Col::new(
        "Readiness Gates",
        "string",
        "If specified, all readiness gates will be evaluated for pod readiness.",
    )
    .wide(),
];

/// Row conditions kubectl uses to recognise finished pods.
pub(super) fn row_conditions(pod: &Value) -> Option<Value> {
    let (reason, message) = match str_at(pod, "status.phase") {
        "Succeeded" => ("Succeeded", "The pod has completed successfully."),
        "Failed" => ("Failed", "The pod failed."),
        _ => return None,
    };
    Some(json!([{"type": "Completed", "status": "True", "reason": reason, "message": message}]))
}

/// Running totals over container statuses.
#[derive(Default)]
struct Restarts {
    count: i64,
    last: Option<Timestamp>,
}

impl Restarts {
    fn add(&mut self, status: &Value) {
        self.count += int_at(status, "restartCount");
        self.last = later(
            self.last,
            parse_time(at(status, "lastState.terminated.finishedAt")),
        );
    }
}

pub(super) fn row(pod: &Value, now: Timestamp) -> Vec<Value> {
    let spec = &pod["spec"];
    let status = &pod["status"];
    let init_specs = arr_at(spec, "initContainers");
    // Sidecars: init containers that keep running alongside the main containers.
    let is_sidecar = |name: &str| {
        init_specs
            .iter()
            .any(|c| str_at(c, "name") == name && str_at(c, "restartPolicy") == "Always")
    };
    let sidecars = init_specs
        .iter()
        .filter(|c| str_at(c, "restartPolicy") == "Always")
        .count();
    let total = arr_at(spec, "containers").len() + sidecars;
    let phase = str_at(status, "phase");
    let mut reason = match str_at(status, "reason") {
        "" => phase.to_owned(),
        r => r.to_owned(),
    };
    let conditions = arr_at(status, "conditions");
    if conditions
        .iter()
        .any(|c| str_at(c, "type") == "PodScheduled" && str_at(c, "reason") == "SchedulingGated")
    {
        reason = "SchedulingGated".to_owned();
    }

    let mut ready = 0;
    let mut all = Restarts::default();
    let mut sidecar_restarts = Restarts::default();
    let mut initializing = false;
    for (i, c) in arr_at(status, "initContainerStatuses").iter().enumerate() {
        all.add(c);
        let sidecar = is_sidecar(str_at(c, "name"));
        if sidecar {
            sidecar_restarts.add(c);
        }
        let terminated = at(c, "state.terminated");
        let waiting_reason = str_at(c, "state.waiting.reason");
        if terminated.is_object() && int_at(terminated, "exitCode") == 0 {
            continue;
        }
        if sidecar && c["started"].as_bool() == Some(true) {
            if c["ready"].as_bool() == Some(true) {
                ready += 1;
            }
            continue;
        }
        reason = if terminated.is_object() {
            // Initialization failed.
            terminated_reason(terminated, "Init:")
        } else if !waiting_reason.is_empty() && waiting_reason != "PodInitializing" {
            format!("Init:{waiting_reason}")
        } else {
            format!("Init:{i}/{}", init_specs.len())
        };
        initializing = true;
        break;
    }

    let mut restarts = all;
    if !initializing || condition_true(conditions, "Initialized") {
        // Once initialized, only sidecar restarts count among init containers.
        restarts = sidecar_restarts;
        let mut has_running = false;
        for c in arr_at(status, "containerStatuses").iter().rev() {
            restarts.add(c);
            let terminated = at(c, "state.terminated");
            let waiting_reason = str_at(c, "state.waiting.reason");
            if !waiting_reason.is_empty() {
                reason = waiting_reason.to_owned();
            } else if terminated.is_object() {
                reason = terminated_reason(terminated, "");
            } else if c["ready"].as_bool() == Some(true) && at(c, "state.running").is_object() {
                has_running = true;
                ready += 1;
            }
        }
        // A pod whose last container completed but others still run is not Completed.
        if reason == "Completed" && has_running {
            reason = if condition_true(conditions, "Ready") {
                "Running"
            } else {
                "NotReady"
            }
            .to_owned();
        }
    }

    if deleting(pod) && str_at(status, "reason") == "NodeLost" {
        reason = "Unknown".to_owned();
    } else if deleting(pod) && phase != "Succeeded" && phase != "Failed" {
        reason = "Terminating".to_owned();
    }

    let restarts_cell = match restarts.last {
        Some(last) if restarts.count != 0 => {
            format!("{} ({} ago)", restarts.count, since_ts(last, now))
        }
        _ => restarts.count.to_string(),
    };

    vec![
        name(pod),
        json!(format!("{ready}/{total}")),
        json!(reason),
        json!(restarts_cell),
        age(pod, now),
        json!(or_none(pod_ip(status))),
        json!(or_none(str_at(spec, "nodeName"))),
        json!(or_none(str_at(status, "nominatedNodeName"))),
        json!(readiness_gates(spec, conditions)),
    ]
}

/// A terminated container's reason, or its signal or exit code when it gave none.
fn terminated_reason(terminated: &Value, prefix: &str) -> String {
    let reason = str_at(terminated, "reason");
    let signal = int_at(terminated, "signal");
    if !reason.is_empty() {
        format!("{prefix}{reason}")
    } else if signal != 0 {
        format!("{prefix}Signal:{signal}")
    } else {
        format!("{prefix}ExitCode:{}", int_at(terminated, "exitCode"))
    }
}

fn condition_true(conditions: &[Value], kind: &str) -> bool {
    // Upstream checks the first condition of the type for Initialized, any for Ready; pods
    // carry one condition per type, so the first is the one.
    conditions
        .iter()
        .find(|c| str_at(c, "type") == kind)
        .is_some_and(|c| str_at(c, "status") == "True")
}

/// The primary pod IP; `podIPs` is the source of truth, `podIP` the single-stack spelling.
fn pod_ip(status: &Value) -> &str {
    match arr_at(status, "podIPs").first() {
        Some(first) => str_at(first, "ip"),
        None => str_at(status, "podIP"),
    }
}

fn or_none(s: &str) -> &str {
    if s.is_empty() { "<none>" } else { s }
}

/// `true/total` readiness gates, or `<none>`.
fn readiness_gates(spec: &Value, conditions: &[Value]) -> String {
    let gates = arr_at(spec, "readinessGates");
    if gates.is_empty() {
        return "<none>".to_owned();
    }
    let passing = gates
        .iter()
        .filter(|g| condition_true(conditions, str_at(g, "conditionType")))
        .count();
    format!("{passing}/{}", gates.len())
}
