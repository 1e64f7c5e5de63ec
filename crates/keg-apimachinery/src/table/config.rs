//! Configuration kinds: ConfigMap, Secret, ServiceAccount, ResourceQuota.

use jiff::Timestamp;
use serde_json::{Value, json};

use super::Col;
use super::helpers::{age, at, len_at, name, quantity, str_or};

pub(super) const CONFIG_MAP: &[Col] = &[
    Col::NAME,
    Col::new("Data", "string", "Data contains the configuration data."),
    Col::AGE,
];

pub(super) fn config_map(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(obj),
        json!(len_at(obj, "data") + len_at(obj, "binaryData")),
        age(obj, now),
    ]
}

pub(super) const SECRET: &[Col] = &[
    Col::NAME,
    Col::new(
        "Type",
        "string",
        "Used to facilitate programmatic handling of secret data.",
    ),
    Col::new("Data", "string", "Data contains the secret data."),
    Col::AGE,
];

pub(super) fn secret(obj: &Value, now: Timestamp) -> Vec<Value> {
    // The type defaults to Opaque.
    vec![
        name(obj),
        json!(str_or(obj, "type", "Opaque")),
        json!(len_at(obj, "data")),
        age(obj, now),
    ]
}

pub(super) const SERVICE_ACCOUNT: &[Col] = &[
    Col::NAME,
    Col::new(
        "Secrets",
        "string",
        "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use.",
    ),
    Col::AGE,
];

pub(super) fn service_account(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![name(obj), json!(len_at(obj, "secrets")), age(obj, now)]
}

pub(super) const RESOURCE_QUOTA: &[Col] = &[
    Col::NAME,
    Col::new(
        "Request",
        "string",
        "Request represents a minimum amount of cpu/memory that a container may consume.",
    ),
    Col::new(
        "Limit",
        "string",
        "Limits control the maximum amount of cpu/memory that a container may use independent of contention on the node.",
    ),
    Col::AGE,
];

/// `resource: used/hard` per hard limit, sorted by resource; `limits.*` go to the Limit column.
pub(super) fn resource_quota(obj: &Value, now: Timestamp) -> Vec<Value> {
    let (mut requests, mut limits) = (Vec::new(), Vec::new());
    // Upstream sorts resource names.
    let mut hard: Vec<_> = at(obj, "status.hard")
        .as_object()
        .into_iter()
        .flatten()
        .collect();
    hard.sort_by(|a, b| a.0.cmp(b.0));
    for (resource, hard) in hard {
        let used = at(obj, "status.used").get(resource).unwrap_or(&Value::Null);
        let entry = format!("{resource}: {}/{}", quantity(used), quantity(hard));
        match resource.split_once('.') {
            Some(("limits", _)) => limits.push(entry),
            _ => requests.push(entry),
        }
    }
    vec![
        name(obj),
        json!(requests.join(", ")),
        json!(limits.join(", ")),
        age(obj, now),
    ]
}
