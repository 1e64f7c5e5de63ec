//! Cluster-level kinds: Node, Namespace, Event, Lease, RBAC bindings, PriorityClass,
//! RuntimeClass, APIService, CertificateSigningRequest, admission webhooks.

use std::collections::BTreeSet;

use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

use super::Col;
use super::helpers::{
    age, arr_at, at, human_duration, int_at, len_at, name, opt_int, parse_time, since, since_ts,
    str_at, str_or,
};

pub(super) const NODE: &[Col] = &[
    Col::NAME,
    Col::new("Status", "string", "The status of the node"),
    Col::new("Roles", "string", "The roles of the node"),
    Col::AGE,
    Col::new("Version", "string", "Kubelet Version reported by the node."),
    Col::new("Internal-IP", "string", "List of addresses reachable to the node.").wide(),
    Col::new("External-IP", "string", "List of addresses reachable to the node.").wide(),
    Col::new("OS-Image", "string", "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).").wide(),
    Col::new("Kernel-Version", "string", "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).").wide(),
    Col::new("Container-Runtime", "string", "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).").wide(),
];

pub(super) fn node(obj: &Value, now: Timestamp) -> Vec<Value> {
    // The last Ready condition wins, as in upstream's condition map.
    let ready = arr_at(obj, "status.conditions")
        .iter()
        .rev()
        .find(|c| str_at(c, "type") == "Ready");
    let mut status = vec![match ready {
        Some(c) if str_at(c, "status") == "True" => "Ready",
        Some(_) => "NotReady",
        None => "Unknown",
    }];
    if at(obj, "spec.unschedulable").as_bool() == Some(true) {
        status.push("SchedulingDisabled");
    }
    let info = at(obj, "status.nodeInfo");
    let address = |kind: &str| {
        arr_at(obj, "status.addresses")
            .iter()
            .find(|a| str_at(a, "type") == kind)
            .map_or("<none>", |a| str_at(a, "address"))
    };
    vec![
        name(obj),
        json!(status.join(",")),
        json!(node_roles(obj)),
        age(obj, now),
        json!(str_at(info, "kubeletVersion")),
        json!(address("InternalIP")),
        json!(address("ExternalIP")),
        json!(str_or(info, "osImage", "<unknown>")),
        json!(str_or(info, "kernelVersion", "<unknown>")),
        json!(str_or(info, "containerRuntimeVersion", "<unknown>")),
    ]
}

/// Roles from `node-role.kubernetes.io/<role>` labels and the legacy `kubernetes.io/role`.
fn node_roles(obj: &Value) -> String {
    let mut roles = BTreeSet::new();
    for (key, value) in at(obj, "metadata.labels").as_object().into_iter().flatten() {
        if let Some(role) = key.strip_prefix("node-role.kubernetes.io/") {
            if !role.is_empty() {
                roles.insert(role);
            }
        } else if key == "kubernetes.io/role"
            && let Some(role) = value.as_str().filter(|r| !r.is_empty())
        {
            roles.insert(role);
        }
    }
    if roles.is_empty() {
        "<none>".to_owned()
    } else {
        roles.into_iter().collect::<Vec<_>>().join(",")
    }
}

pub(super) const NAMESPACE: &[Col] = &[
    Col::NAME,
    Col::new("Status", "string", "The status of the namespace"),
    Col::AGE,
];

pub(super) fn namespace(obj: &Value, now: Timestamp) -> Vec<Value> {
    // A namespace is Active from creation on.
    vec![
        name(obj),
        json!(str_or(obj, "status.phase", "Active")),
        age(obj, now),
    ]
}

pub(super) const EVENT: &[Col] = &[
    Col::new("Last Seen", "string", "The time at which the most recent occurrence of this event was recorded."),
    Col::new("Type", "string", "Type of this event (Normal, Warning), new types could be added in the future"),
    Col::new("Reason", "string", "This should be a short, machine understandable string that gives the reason for the transition into the object's current status."),
    Col::new("Object", "string", "The object that this event is about."),
    Col::new("Subobject", "string", "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement, such as desiredState.manifest.containers[2].").wide(),
    Col::new("Source", "string", "The component reporting this event. Should be a short machine understandable string.").wide(),
    Col::new("Message", "string", "A human-readable description of the status of this operation."),
    Col::new("First Seen", "string", "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)").wide(),
    Col::new("Count", "string", "The number of times this event has occurred.").wide(),
    Col::NAME.wide(),
];

/// Upstream's `printEvent`. events.k8s.io/v1 Events are read through their core/v1 spelling
/// (`regarding` for `involvedObject`, `note` for `message`, `deprecated*` fields), as upstream
/// converts both to the same internal type before printing.
pub(super) fn event(obj: &Value, now: Timestamp) -> Vec<Value> {
    let new_api = str_at(obj, "apiVersion").starts_with("events.k8s.io/");
    let field = |core: &str, new: &str| at(obj, if new_api { new } else { core });
    let first_seen = match parse_time(field("firstTimestamp", "deprecatedFirstTimestamp")) {
        Some(t) => since_ts(t, now),
        None => since(&obj["eventTime"], now),
    };
    let mut last_seen = match parse_time(field("lastTimestamp", "deprecatedLastTimestamp")) {
        Some(t) => since_ts(t, now),
        None => first_seen.clone(),
    };
    let series = &obj["series"];
    let count = if series.is_object() {
        last_seen = since(&series["lastObservedTime"], now);
        int_at(series, "count")
    } else {
        // Singleton events of the new API carry no count.
        match opt_int(obj, if new_api { "deprecatedCount" } else { "count" }) {
            None | Some(0) => 1,
            Some(n) => n,
        }
    };
    let regarding = field("involvedObject", "regarding");
    let kind = str_at(regarding, "kind").to_lowercase();
    let target = match str_at(regarding, "name") {
        "" => kind,
        n => format!("{kind}/{n}"),
    };
    let source = field("source", "deprecatedSource");
    let component = str_or(source, "component", str_at(obj, "reportingController"));
    let host = str_or(source, "host", str_at(obj, "reportingInstance"));
    let source = if host.is_empty() {
        component.to_owned()
    } else {
        format!("{component}, {host}")
    };
    vec![
        json!(last_seen),
        json!(str_at(obj, "type")),
        json!(str_at(obj, "reason")),
        json!(target),
        json!(str_at(regarding, "fieldPath")),
        json!(source),
        json!(field("message", "note").as_str().unwrap_or("").trim()),
        json!(first_seen),
        json!(count),
        name(obj),
    ]
}

pub(super) const LEASE: &[Col] = &[
    Col::NAME,
    Col::new(
        "Holder",
        "string",
        "holderIdentity contains the identity of the holder of a current lease.",
    ),
    Col::AGE,
];

pub(super) fn lease(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(obj),
        json!(str_at(obj, "spec.holderIdentity")),
        age(obj, now),
    ]
}

pub(super) const ROLE_BINDING: &[Col] = &[
    Col::NAME,
    Col::new(
        "Role",
        "string",
        "RoleRef can reference a Role in the current namespace or a ClusterRole in the global namespace.",
    ),
    Col::AGE,
    Col::new("Users", "string", "Users in the roleBinding").wide(),
    Col::new("Groups", "string", "Groups in the roleBinding").wide(),
    Col::new(
        "ServiceAccounts",
        "string",
        "ServiceAccounts in the roleBinding",
    )
    .wide(),
];

pub(super) const CLUSTER_ROLE_BINDING: &[Col] = &[
    Col::NAME,
    Col::new(
        "Role",
        "string",
        "RoleRef can only reference a ClusterRole in the global namespace.",
    ),
    Col::AGE,
    Col::new("Users", "string", "Users in the clusterRoleBinding").wide(),
    Col::new("Groups", "string", "Groups in the clusterRoleBinding").wide(),
    Col::new(
        "ServiceAccounts",
        "string",
        "ServiceAccounts in the clusterRoleBinding",
    )
    .wide(),
];

/// RoleBinding and ClusterRoleBinding.
pub(super) fn role_binding(obj: &Value, now: Timestamp) -> Vec<Value> {
    let (mut users, mut groups, mut sas) = (vec![], vec![], vec![]);
    for s in arr_at(obj, "subjects") {
        match str_at(s, "kind") {
            "ServiceAccount" => {
                sas.push(format!("{}/{}", str_at(s, "namespace"), str_at(s, "name")))
            }
            "User" => users.push(str_at(s, "name").to_owned()),
            "Group" => groups.push(str_at(s, "name").to_owned()),
            _ => {}
        }
    }
    vec![
        name(obj),
        json!(format!(
            "{}/{}",
            str_at(obj, "roleRef.kind"),
            str_at(obj, "roleRef.name")
        )),
        age(obj, now),
        json!(users.join(", ")),
        json!(groups.join(", ")),
        json!(sas.join(", ")),
    ]
}

pub(super) const PRIORITY_CLASS: &[Col] = &[
    Col::NAME,
    Col::new(
        "Value",
        "integer",
        "value represents the integer value of this priority class.",
    ),
    Col::new(
        "Global-Default",
        "boolean",
        "globalDefault specifies whether this PriorityClass should be considered as the default priority for pods that do not have any priority class.",
    ),
    Col::AGE,
    Col::new(
        "PreemptionPolicy",
        "string",
        "preemptionPolicy is the Policy for preempting pods with lower priority.",
    ),
];

pub(super) fn priority_class(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(obj),
        json!(int_at(obj, "value")),
        json!(obj["globalDefault"].as_bool().unwrap_or(false)),
        age(obj, now),
        json!(str_or(obj, "preemptionPolicy", "PreemptLowerPriority")),
    ]
}

pub(super) const RUNTIME_CLASS: &[Col] = &[
    Col::NAME,
    Col::new(
        "Handler",
        "string",
        "handler specifies the underlying runtime and configuration that the CRI implementation will use to handle pods of this class.",
    ),
    Col::AGE,
];

pub(super) fn runtime_class(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![name(obj), json!(str_at(obj, "handler")), age(obj, now)]
}

pub(super) const API_SERVICE: &[Col] = &[
    Col::NAME,
    Col::new(
        "Service",
        "string",
        "The reference to the service that hosts this API endpoint.",
    ),
    Col::new("Available", "string", "Whether this service is available."),
    Col::AGE,
];

/// kube-aggregator's APIService table: `Local` for in-process groups, else `namespace/name`.
pub(super) fn api_service(obj: &Value, now: Timestamp) -> Vec<Value> {
    let svc = at(obj, "spec.service");
    let service = if svc.is_null() {
        "Local".to_owned()
    } else {
        format!("{}/{}", str_at(svc, "namespace"), str_at(svc, "name"))
    };
    let available = arr_at(obj, "status.conditions")
        .iter()
        .find(|c| str_at(c, "type") == "Available");
    let status = match available {
        None => "Unknown".to_owned(),
        Some(c) => match (str_at(c, "status"), str_at(c, "reason")) {
            ("True", _) => "True".to_owned(),
            (s, "") => s.to_owned(),
            (s, reason) => format!("{s} ({reason})"),
        },
    };
    vec![name(obj), json!(service), json!(status), age(obj, now)]
}

pub(super) const CSR: &[Col] = &[
    Col::NAME,
    Col::AGE,
    Col::new("SignerName", "string", "Requested signer for the request."),
    Col::new("Requestor", "string", "Base64-encoded PKCS#10 CSR data"),
    Col::new(
        "RequestedDuration",
        "string",
        "expirationSeconds is the requested duration of validity of the issued certificate.",
    ),
    Col::new(
        "Condition",
        "string",
        "Conditions applied to the request, such as approval or denial.",
    ),
];

pub(super) fn csr(obj: &Value, now: Timestamp) -> Vec<Value> {
    let conditions = arr_at(obj, "status.conditions");
    let has = |kind| conditions.iter().any(|c| str_at(c, "type") == kind);
    let mut status = if has("Denied") {
        "Denied"
    } else if has("Approved") {
        "Approved"
    } else {
        "Pending"
    }
    .to_owned();
    if has("Failed") {
        status.push_str(",Failed");
    }
    if !str_at(obj, "status.certificate").is_empty() {
        status.push_str(",Issued");
    }
    let duration = opt_int(obj, "spec.expirationSeconds").map_or_else(
        || "<none>".to_owned(),
        |s| human_duration(SignedDuration::from_secs(s)),
    );
    vec![
        name(obj),
        age(obj, now),
        json!(str_or(obj, "spec.signerName", "<none>")),
        json!(str_at(obj, "spec.username")),
        json!(duration),
        json!(status),
    ]
}

pub(super) const WEBHOOKS: &[Col] = &[
    Col::NAME,
    Col::new(
        "Webhooks",
        "integer",
        "Webhooks indicates the number of webhooks registered in this configuration",
    ),
    Col::AGE,
];

/// Mutating- and ValidatingWebhookConfiguration.
pub(super) fn webhooks(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![name(obj), json!(len_at(obj, "webhooks")), age(obj, now)]
}

pub(super) const COMPONENT_STATUS: &[Col] = &[
    Col::NAME,
    Col::new("Status", "string", "Status of the component conditions"),
    Col::new("Message", "string", "Message of the component conditions"),
    Col::new("Error", "string", "Error of the component conditions"),
];

pub(super) fn component_status(obj: &Value, _now: Timestamp) -> Vec<Value> {
    let healthy = arr_at(obj, "conditions")
        .iter()
        .find(|c| str_at(c, "type") == "Healthy");
    let (status, message, error) = match healthy {
        Some(c) => (
            if str_at(c, "status") == "True" {
                "Healthy"
            } else {
                "Unhealthy"
            },
            str_at(c, "message"),
            str_at(c, "error"),
        ),
        None => ("Unknown", "", ""),
    };
    vec![name(obj), json!(status), json!(message), json!(error)]
}

pub(super) const FLOW_SCHEMA: &[Col] = &[
    Col::NAME,
    Col::new(
        "PriorityLevel",
        "string",
        "`name` is the name of the priority level configuration being referenced Required.",
    ),
    Col::new(
        "MatchingPrecedence",
        "string",
        "`matchingPrecedence` is used to choose among the FlowSchemas that match a given request. The chosen FlowSchema is among those with the numerically lowest (which we take to be logically highest) MatchingPrecedence.  Each MatchingPrecedence value must be ranged in [1,10000]. Note that if the precedence is not specified, it will be set to 1000 as default.",
    ),
    Col::new(
        "DistinguisherMethod",
        "string",
        "`distinguisherMethod` defines how to compute the flow distinguisher for requests that match this schema. `nil` specifies that the distinguisher is disabled and thus will always be the empty string.",
    ),
    Col::AGE,
    Col::new(
        "MissingPL",
        "string",
        "references a broken or non-existent PriorityLevelConfiguration",
    ),
];

pub(super) fn flow_schema(obj: &Value, now: Timestamp) -> Vec<Value> {
    let method = match str_at(obj, "spec.distinguisherMethod.type") {
        "" => "<none>",
        t => t,
    };
    let missing = arr_at(obj, "status.conditions")
        .iter()
        .find(|c| str_at(c, "type") == "Dangling")
        .map_or("?", |c| str_at(c, "status"));
    vec![
        name(obj),
        json!(str_at(obj, "spec.priorityLevelConfiguration.name")),
        json!(int_at(obj, "spec.matchingPrecedence")),
        json!(method),
        age(obj, now),
        json!(missing),
    ]
}

pub(super) const PRIORITY_LEVEL: &[Col] = &[
    Col::NAME,
    Col::new(
        "Type",
        "string",
        "`type` indicates whether this priority level is subject to limitation on request execution.  A value of `\"Exempt\"` means that requests of this priority level are not subject to a limit (and thus are never queued) and do not detract from the capacity made available to other priority levels.  A value of `\"Limited\"` means that (a) requests of this priority level _are_ subject to limits and (b) some of the server's limited capacity is made available exclusively to this priority level. Required.",
    ),
    Col::new(
        "NominalConcurrencyShares",
        "string",
        "`nominalConcurrencyShares` (NCS) contributes to the computation of the NominalConcurrencyLimit (NominalCL) of this level.",
    ),
    Col::new(
        "Queues",
        "string",
        "`queues` is the number of queues for this priority level. The queues exist independently at each apiserver. The value must be positive.  Setting it to 1 effectively precludes shufflesharding and thus makes the distinguisher method of associated flow schemas irrelevant.  This field has a default value of 64.",
    ),
    Col::new(
        "HandSize",
        "string",
        "`handSize` is a small positive number that configures the shuffle sharding of requests into queues.",
    ),
    Col::new(
        "QueueLengthLimit",
        "string",
        "`queueLengthLimit` is the maximum number of requests allowed to be waiting in a given queue of this priority level at a time; excess requests are rejected.  This value must be positive.  If not specified, it will be defaulted to 50.",
    ),
    Col::AGE,
];

pub(super) fn priority_level(obj: &Value, now: Timestamp) -> Vec<Value> {
    let none = || json!("<none>");
    let limited = at(obj, "spec.limited");
    let (shares, queues, hand, limit) = if limited.is_object() {
        let queuing = at(limited, "limitResponse.queuing");
        let q = |field: &str| {
            if queuing.is_object() {
                json!(int_at(queuing, field))
            } else {
                none()
            }
        };
        (
            json!(int_at(limited, "nominalConcurrencyShares")),
            q("queues"),
            q("handSize"),
            q("queueLengthLimit"),
        )
    } else {
        (none(), none(), none(), none())
    };
    vec![
        name(obj),
        json!(str_at(obj, "spec.type")),
        shares,
        queues,
        hand,
        limit,
        age(obj, now),
    ]
}

pub(super) const IP_ADDRESS: &[Col] = &[
    Col::NAME,
    Col::new(
        "ParentRef",
        "string",
        "ParentRef references the resource that an IPAddress is attached to. An IPAddress must reference a parent object.",
    ),
];

pub(super) fn ip_address(obj: &Value, _now: Timestamp) -> Vec<Value> {
    let parent = at(obj, "spec.parentRef");
    let mut text = str_at(parent, "resource").to_lowercase();
    if !str_at(parent, "group").is_empty() {
        text = format!("{text}.{}", str_at(parent, "group"));
    }
    if !str_at(parent, "namespace").is_empty() {
        text = format!("{text}/{}", str_at(parent, "namespace"));
    }
    text = format!("{text}/{}", str_at(parent, "name"));
    vec![name(obj), json!(text)]
}
