//! Tests of the Table printers against the cells kubectl shows for realistic objects.

mod custom;
mod kinds;
mod network;
mod pods;
mod storage;

use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

use super::helpers::human_duration;
use super::{IncludeObject, table};

const MIN: i64 = 60;
const HOUR: i64 = 60 * MIN;
const DAY: i64 = 24 * HOUR;

/// The fixed "now" every test prints against.
fn now() -> Timestamp {
    "2024-06-01T12:00:00Z".parse().unwrap()
}

/// An RFC 3339 timestamp `secs` before [`now`].
fn ago(secs: i64) -> String {
    now()
        .checked_sub(SignedDuration::from_secs(secs))
        .unwrap()
        .to_string()
}

/// The cells of the one row printed for `obj`.
fn cells(kind: &str, obj: Value) -> Value {
    let t = table(kind, &[obj], now(), IncludeObject::None);
    t["rows"][0]["cells"].clone()
}

/// Cells `range` of a cells array.
fn slice(cells: Value, range: std::ops::Range<usize>) -> Value {
    Value::Array(cells.as_array().unwrap()[range].to_vec())
}

/// Column names, with `*` marking wide-only columns.
fn headers(kind: &str) -> Vec<String> {
    let t = table(kind, &[], now(), IncludeObject::None);
    t["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let wide = if c["priority"] == 1 { "*" } else { "" };
            format!("{}{wide}", c["name"].as_str().unwrap())
        })
        .collect()
}

#[test]
fn human_durations_match_upstream() {
    let cases = [
        (-5, "<invalid>"),
        (-1, "0s"),
        (0, "0s"),
        (5, "5s"),
        (119, "119s"),
        (2 * MIN, "2m"),
        (2 * MIN + 3, "2m3s"),
        (9 * MIN + 59, "9m59s"),
        (10 * MIN + 30, "10m"),
        (179 * MIN, "179m"),
        (3 * HOUR, "3h"),
        (3 * HOUR + 5 * MIN, "3h5m"),
        (8 * HOUR + 30 * MIN, "8h"),
        (47 * HOUR, "47h"),
        (2 * DAY + 3 * HOUR, "2d3h"),
        (5 * DAY, "5d"),
        (8 * DAY, "8d"),
        (729 * DAY, "729d"),
        (2 * 365 * DAY + 10 * DAY, "2y10d"),
        (3 * 365 * DAY, "3y"),
        (9 * 365 * DAY + 100 * DAY, "9y"),
    ];
    for (secs, want) in cases {
        assert_eq!(
            human_duration(SignedDuration::from_secs(secs)),
            want,
            "{secs}s"
        );
    }
}

#[test]
fn table_shape_and_include_object() {
    let cm = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "settings", "namespace": "default", "uid": "u1", "creationTimestamp": ago(3 * DAY)},
        "data": {"a": "1"},
    });
    let t = table(
        "ConfigMap",
        std::slice::from_ref(&cm),
        now(),
        IncludeObject::Metadata,
    );
    assert_eq!(t["kind"], "Table");
    assert_eq!(t["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(t["metadata"], json!({}));
    assert_eq!(
        t["columnDefinitions"][0],
        json!({"name": "Name", "type": "string", "format": "name", "priority": 0,
               "description": super::NAME_DOC})
    );
    assert_eq!(t["rows"][0]["cells"], json!(["settings", 1, "3d"]));
    assert_eq!(
        t["rows"][0]["object"],
        json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": cm["metadata"]})
    );

    let t = table(
        "ConfigMap",
        std::slice::from_ref(&cm),
        now(),
        IncludeObject::Object,
    );
    assert_eq!(t["rows"][0]["object"], cm);
    let t = table(
        "ConfigMap",
        std::slice::from_ref(&cm),
        now(),
        IncludeObject::None,
    );
    assert_eq!(t["rows"][0]["object"], Value::Null);
    let t = table("ConfigMap", &[], now(), IncludeObject::None);
    assert_eq!(t["rows"], json!([]));
}

#[test]
fn kinds_without_a_printer_get_the_default_table() {
    for kind in [
        "Role",
        "ClusterRole",
        "CustomResourceDefinition",
        "LimitRange",
        "Widget",
    ] {
        assert_eq!(headers(kind), ["Name", "Created At"], "{kind}");
    }
    let t = table("Role", &[], now(), IncludeObject::None);
    assert_eq!(t["columnDefinitions"][1]["type"], "date");
    let role = json!({"metadata": {"name": "reader", "creationTimestamp": "2024-05-01T10:20:30Z"}});
    assert_eq!(
        cells("Role", role),
        json!(["reader", "2024-05-01T10:20:30Z"])
    );
    assert_eq!(
        cells("Role", json!({"metadata": {"name": "x"}})),
        json!(["x", "0001-01-01T00:00:00Z"])
    );
}

#[test]
fn every_printer_fills_every_column() {
    let kinds = [
        "Pod",
        "PodTemplate",
        "ReplicationController",
        "ReplicaSet",
        "Deployment",
        "StatefulSet",
        "DaemonSet",
        "Job",
        "CronJob",
        "ControllerRevision",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "Service",
        "Endpoints",
        "EndpointSlice",
        "Ingress",
        "IngressClass",
        "NetworkPolicy",
        "ServiceCIDR",
        "Node",
        "Namespace",
        "Event",
        "Lease",
        "RoleBinding",
        "ClusterRoleBinding",
        "PriorityClass",
        "RuntimeClass",
        "APIService",
        "CertificateSigningRequest",
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
        "ConfigMap",
        "Secret",
        "ServiceAccount",
        "ResourceQuota",
        "PersistentVolume",
        "PersistentVolumeClaim",
        "StorageClass",
        "VolumeAttributesClass",
        "VolumeAttachment",
        "CSIDriver",
        "CSINode",
        "CSIStorageCapacity",
    ];
    for kind in kinds {
        let t = table(
            kind,
            &[json!({"metadata": {"name": "x"}})],
            now(),
            IncludeObject::None,
        );
        let columns = t["columnDefinitions"].as_array().unwrap();
        assert!(columns.len() > 2, "{kind} has its own printer");
        assert_eq!(
            t["rows"][0]["cells"].as_array().unwrap().len(),
            columns.len(),
            "{kind}"
        );
        let names = columns.iter().filter(|c| c["format"] == "name").count();
        assert!(names >= 1, "{kind} has a name column");
    }
}

#[test]
fn missing_creation_timestamp_is_unknown() {
    assert_eq!(
        cells("Namespace", json!({"metadata": {"name": "ns"}}))[2],
        "<unknown>"
    );
}
