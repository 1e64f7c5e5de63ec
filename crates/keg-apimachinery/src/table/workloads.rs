//! Workload controllers: Deployment, ReplicaSet, StatefulSet, DaemonSet, Job, CronJob and
//! their relatives.

use jiff::Timestamp;
use serde_json::{Value, json};

use super::Col;
use super::helpers::{
    age, arr_at, at, condition_status, containers, deleting, format_label_selector, format_labels,
    go_bool, human_duration, int_at, name, opt_int, parse_time, selector_string, since, str_at,
};

pub(super) const POD_TEMPLATE: &[Col] = &[
    Col::NAME,
    Col::new(
        "Containers",
        "string",
        "Names of each container in the template.",
    ),
    Col::new(
        "Images",
        "string",
        "Images referenced by each container in the template.",
    ),
    Col::new("Pod Labels", "string", "The labels for the pod template."),
];

pub(super) fn pod_template(obj: &Value, _now: Timestamp) -> Vec<Value> {
    let [names, images] = containers(at(obj, "template.spec"));
    vec![
        name(obj),
        names,
        images,
        json!(format_labels(at(obj, "template.metadata.labels"))),
    ]
}

pub(super) const RC: &[Col] = &[
    Col::NAME,
    Col::new(
        "Desired",
        "integer",
        "Replicas is the number of desired replicas.",
    ),
    Col::new(
        "Current",
        "integer",
        "Replicas is the most recently observed number of replicas.",
    ),
    Col::new(
        "Ready",
        "integer",
        "The number of ready replicas for this replication controller.",
    ),
    Col::AGE,
    Col::CONTAINERS,
    Col::IMAGES,
    Col::new(
        "Selector",
        "string",
        "Selector is a label query over pods that should match the Replicas count.",
    )
    .wide(),
];

pub(super) fn replication_controller(obj: &Value, now: Timestamp) -> Vec<Value> {
    let [names, images] = containers(at(obj, "spec.template.spec"));
    vec![
        name(obj),
        json!(replicas(obj)),
        json!(int_at(obj, "status.replicas")),
        json!(int_at(obj, "status.readyReplicas")),
        age(obj, now),
        names,
        images,
        // A ReplicationController's selector is a plain label map.
        json!(format_labels(at(obj, "spec.selector"))),
    ]
}

pub(super) const REPLICA_SET: &[Col] = &[
    Col::NAME,
    Col::new(
        "Desired",
        "integer",
        "Replicas is the number of desired replicas.",
    ),
    Col::new(
        "Current",
        "integer",
        "Replicas is the most recently observed number of replicas.",
    ),
    Col::new(
        "Ready",
        "integer",
        "The number of ready replicas for this replica set.",
    ),
    Col::AGE,
    Col::CONTAINERS,
    Col::IMAGES,
    Col::new(
        "Selector",
        "string",
        "Selector is a label query over pods that should match the replica count.",
    )
    .wide(),
];

pub(super) fn replica_set(obj: &Value, now: Timestamp) -> Vec<Value> {
    let [names, images] = containers(at(obj, "spec.template.spec"));
    vec![
        name(obj),
        json!(replicas(obj)),
        json!(int_at(obj, "status.replicas")),
        json!(int_at(obj, "status.readyReplicas")),
        age(obj, now),
        names,
        images,
        json!(format_label_selector(at(obj, "spec.selector"))),
    ]
}

/// `spec.replicas`, which defaults to 1.
fn replicas(obj: &Value) -> i64 {
    opt_int(obj, "spec.replicas").unwrap_or(1)
}

pub(super) const DEPLOYMENT: &[Col] = &[
    Col::NAME,
    Col::new("Ready", "string", "Number of the pod with ready state"),
    Col::new(
        "Up-to-date",
        "string",
        "Total number of non-terminated pods targeted by this deployment that have the desired template spec.",
    ),
    Col::new(
        "Available",
        "string",
        "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.",
    ),
    Col::AGE,
    Col::CONTAINERS,
    Col::IMAGES,
    Col::new("Selector", "string", "Label selector for pods.").wide(),
];

pub(super) fn deployment(obj: &Value, now: Timestamp) -> Vec<Value> {
    let [names, images] = containers(at(obj, "spec.template.spec"));
    // Unlike other printers, Deployment prints an empty selector as "".
    let selector = selector_string(at(obj, "spec.selector")).unwrap_or_else(|| "<invalid>".into());
    vec![
        name(obj),
        json!(format!(
            "{}/{}",
            int_at(obj, "status.readyReplicas"),
            replicas(obj)
        )),
        json!(int_at(obj, "status.updatedReplicas")),
        json!(int_at(obj, "status.availableReplicas")),
        age(obj, now),
        names,
        images,
        json!(selector),
    ]
}

pub(super) const STATEFUL_SET: &[Col] = &[
    Col::NAME,
    Col::new("Ready", "string", "Number of the pod with ready state"),
    Col::AGE,
    Col::CONTAINERS,
    Col::IMAGES,
];

pub(super) fn stateful_set(obj: &Value, now: Timestamp) -> Vec<Value> {
    let [names, images] = containers(at(obj, "spec.template.spec"));
    vec![
        name(obj),
        json!(format!(
            "{}/{}",
            int_at(obj, "status.readyReplicas"),
            replicas(obj)
        )),
        age(obj, now),
        names,
        images,
    ]
}

pub(super) const DAEMON_SET: &[Col] = &[
    Col::NAME,
    Col::new(
        "Desired",
        "integer",
        "The total number of nodes that should be running the daemon pod.",
    ),
    Col::new(
        "Current",
        "integer",
        "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod.",
    ),
    Col::new(
        "Ready",
        "integer",
        "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and ready.",
    ),
    Col::new(
        "Up-to-date",
        "integer",
        "The total number of nodes that are running updated daemon pod",
    ),
    Col::new(
        "Available",
        "integer",
        "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available.",
    ),
    Col::new(
        "Node Selector",
        "string",
        "NodeSelector is a selector which must be true for the pod to fit on a node.",
    ),
    Col::AGE,
    Col::CONTAINERS,
    Col::IMAGES,
    Col::new(
        "Selector",
        "string",
        "A label query over pods that are managed by the daemon set.",
    )
    .wide(),
];

pub(super) fn daemon_set(obj: &Value, now: Timestamp) -> Vec<Value> {
    let [names, images] = containers(at(obj, "spec.template.spec"));
    vec![
        name(obj),
        json!(int_at(obj, "status.desiredNumberScheduled")),
        json!(int_at(obj, "status.currentNumberScheduled")),
        json!(int_at(obj, "status.numberReady")),
        json!(int_at(obj, "status.updatedNumberScheduled")),
        json!(int_at(obj, "status.numberAvailable")),
        json!(format_labels(at(obj, "spec.template.spec.nodeSelector"))),
        age(obj, now),
        names,
        images,
        json!(format_label_selector(at(obj, "spec.selector"))),
    ]
}

pub(super) const JOB: &[Col] = &[
    Col::NAME,
    Col::new("Status", "string", "Status of the job."),
    Col::new(
        "Completions",
        "string",
        "The number of pods which reached phase Succeeded.",
    ),
    Col::new("Duration", "string", "Time required to complete the job."),
    Col::AGE,
    Col::CONTAINERS,
    Col::IMAGES,
    Col::new(
        "Selector",
        "string",
        "A label query over pods that should match the pod count.",
    )
    .wide(),
];

pub(super) fn job(obj: &Value, now: Timestamp) -> Vec<Value> {
    let succeeded = int_at(obj, "status.succeeded");
    let completions = match opt_int(obj, "spec.completions") {
        Some(c) => format!("{succeeded}/{c}"),
        None => match opt_int(obj, "spec.parallelism").unwrap_or(0) {
            p if p > 1 => format!("{succeeded}/1 of {p}"),
            _ => format!("{succeeded}/1"),
        },
    };
    let start = parse_time(at(obj, "status.startTime"));
    let duration = match (start, parse_time(at(obj, "status.completionTime"))) {
        (None, _) => String::new(),
        (Some(start), None) => human_duration(now.duration_since(start)),
        (Some(start), Some(end)) => human_duration(end.duration_since(start)),
    };
    let conditions = arr_at(obj, "status.conditions");
    let has = |kind| condition_status(conditions, kind) == Some("True");
    let status = if has("Complete") {
        "Complete"
    } else if has("Failed") {
        "Failed"
    } else if deleting(obj) {
        "Terminating"
    } else if has("Suspended") {
        "Suspended"
    } else if has("FailureTarget") {
        "FailureTarget"
    } else {
        "Running"
    };
    let [names, images] = containers(at(obj, "spec.template.spec"));
    vec![
        name(obj),
        json!(status),
        json!(completions),
        json!(duration),
        age(obj, now),
        names,
        images,
        json!(format_label_selector(at(obj, "spec.selector"))),
    ]
}

pub(super) const CRON_JOB: &[Col] = &[
    Col::NAME,
    Col::new(
        "Schedule",
        "string",
        "The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron.",
    ),
    Col::new(
        "Timezone",
        "string",
        "The time zone name for the given schedule, see https://en.wikipedia.org/wiki/List_of_tz_database_time_zones.",
    ),
    Col::new(
        "Suspend",
        "boolean",
        "This flag tells the controller to suspend subsequent executions, it does not apply to already started executions.",
    ),
    Col::new(
        "Active",
        "integer",
        "A list of pointers to currently running jobs.",
    ),
    Col::new(
        "Last Schedule",
        "string",
        "Information when was the last time the job was successfully scheduled.",
    ),
    Col::AGE,
    Col::CONTAINERS,
    Col::IMAGES,
    Col::new(
        "Selector",
        "string",
        "A label query over pods that should match the pod count.",
    )
    .wide(),
];

pub(super) fn cron_job(obj: &Value, now: Timestamp) -> Vec<Value> {
    let last_schedule = match at(obj, "status.lastScheduleTime") {
        Value::Null => "<none>".to_owned(),
        t => since(t, now),
    };
    let timezone = at(obj, "spec.timeZone").as_str().unwrap_or("<none>");
    // Upstream prints the (defaulted) flag as text; it defaults to false.
    let suspend = go_bool(at(obj, "spec.suspend").as_bool().unwrap_or(false));
    let template = at(obj, "spec.jobTemplate.spec");
    let [names, images] = containers(at(template, "template.spec"));
    vec![
        name(obj),
        json!(str_at(obj, "spec.schedule")),
        json!(timezone),
        json!(suspend),
        json!(arr_at(obj, "status.active").len()),
        json!(last_schedule),
        age(obj, now),
        names,
        images,
        json!(format_label_selector(at(template, "selector"))),
    ]
}

pub(super) const CONTROLLER_REVISION: &[Col] = &[
    Col::NAME,
    Col::new("Controller", "string", "Controller of the object"),
    Col::new(
        "Revision",
        "string",
        "Revision indicates the revision of the state represented by Data.",
    ),
    Col::AGE,
];

pub(super) fn controller_revision(obj: &Value, now: Timestamp) -> Vec<Value> {
    let owner = arr_at(obj, "metadata.ownerReferences")
        .iter()
        .find(|r| r["controller"].as_bool() == Some(true));
    let controller = owner.map_or_else(
        || "<none>".to_owned(),
        |r| {
            // `kind.group/name`, lowercased like upstream's GroupKind formatting.
            let group = str_at(r, "apiVersion")
                .rsplit_once('/')
                .map_or("", |(g, _)| g);
            let kind = str_at(r, "kind");
            let gk = if group.is_empty() {
                kind.to_owned()
            } else {
                format!("{kind}.{group}")
            };
            format!("{}/{}", gk.to_lowercase(), str_at(r, "name"))
        },
    );
    vec![
        name(obj),
        json!(controller),
        json!(int_at(obj, "revision")),
        age(obj, now),
    ]
}
