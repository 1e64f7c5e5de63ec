//! Usage records: what ran, where, at what size and price, from when to when. The metering
//! controller writes one `UsageRecord` (cluster-scoped, group `keg.dev`) per pod that started
//! and per node-group node that became Ready; [`billing`] turns a record into billed seconds
//! and dollars, and [`report`] sums records into what `keg cost` shows.
//!
//! Records are cluster-scoped so that deleting a namespace (which deletes everything in it)
//! does not delete its bill, and so that node records, which belong to no namespace, sit
//! beside pod records.

pub mod allocation;
pub mod billing;
pub mod packing;
pub mod report;

use std::collections::BTreeMap;

use jiff::Timestamp;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::fargate::FargateSize;

/// Record label: `fargate` or `nodegroup`.
pub const COMPUTE_LABEL: &str = "keg.dev/compute";
/// Record label: the pod's namespace.
pub const NAMESPACE_LABEL: &str = "keg.dev/namespace";
/// Record label: the Fargate profile that placed the pod.
pub const PROFILE_LABEL: &str = "keg.dev/fargate-profile";
/// Record label: the node group of the node (or of the pod's node).
pub const NODEGROUP_LABEL: &str = "keg.dev/nodegroup";

/// What a record is about.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum Subject {
    /// A pod, from its start to its termination.
    Pod,
    /// A node-group node, from Ready to its removal.
    Node,
}

/// Where something ran.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Compute {
    /// A one-pod Fargate node, billed per pod.
    Fargate,
    /// A node group's instance, billed per node.
    Nodegroup,
}

/// How a record's end was learnt.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum EndReason {
    /// The pod's containers all terminated; the end is the last one's `finishedAt`.
    Terminated,
    /// The pod or node was seen removed; the end is when metering saw it go.
    Removed,
    /// It went while metering was not running; the end is metering's last checkpoint.
    Unobserved,
}

/// A pod's effective requests, as the scheduler counts them.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Requests {
    /// CPU in millicores.
    pub cpu_millis: i64,
    /// Memory in bytes.
    pub memory_bytes: i64,
}

/// One pod's or node's use of compute, and its price.
// Each printcolumn(...) repeats `type_ = ...`; clippy takes the repeats for duplicated
// attributes of the struct, though each belongs to its own column.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "keg.dev",
    version = "v1",
    kind = "UsageRecord",
    shortname = "usage",
    derive = "PartialEq",
    doc = "What one pod or node-group node ran, at what size and price, from when to when.",
    printcolumn(name = "Subject", type_ = "string", json_path = ".spec.subject"),
    printcolumn(name = "Compute", type_ = "string", json_path = ".spec.compute"),
    printcolumn(name = "Namespace", type_ = "string", json_path = ".spec.namespace"),
    printcolumn(name = "Target", type_ = "string", json_path = ".spec.name"),
    printcolumn(name = "Capacity", type_ = "string", json_path = ".spec.capacity"),
    printcolumn(name = "Hourly", type_ = "number", json_path = ".spec.hourlyRate"),
    printcolumn(name = "Start", type_ = "date", json_path = ".spec.start"),
    printcolumn(name = "End", type_ = "date", json_path = ".spec.end")
)]
#[serde(rename_all = "camelCase")]
pub struct UsageRecordSpec {
    /// A pod or a node.
    pub subject: Subject,
    /// Fargate or a node group.
    pub compute: Compute,
    /// The region whose prices apply.
    pub region: String,
    /// The pod's namespace (pods only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The pod's or node's name.
    pub name: String,
    /// The pod's or node's UID.
    pub uid: String,
    /// The node the pod ran on (pods only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The Fargate profile that placed the pod (Fargate pods only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// The node group of the node, or of the pod's node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_group: Option<String>,
    /// The node's instance type (nodes only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_type: Option<String>,
    /// What was provisioned and paid for: `0.25vCPU 0.5GB` (Fargate's `CapacityProvisioned`),
    /// or the instance's size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<String>,
    /// Provisioned CPU in millicores (a Fargate pod's size, a node's vCPUs).
    #[serde(default)]
    pub cpu_millis: i64,
    /// Provisioned memory in MiB.
    #[serde(default)]
    pub memory_mib: i64,
    /// The pod's requests (pods only), for what-if pricing elsewhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<Requests>,
    /// USD per hour this record is billed at; 0 for a pod on a node-group node, whose node
    /// pays for it.
    pub hourly_rate: f64,
    /// When billing starts: the pod's start (its image pulls follow at once) or the node's
    /// Ready transition.
    #[schemars(with = "String")]
    pub start: Timestamp,
    /// When billing ends; none while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub end: Option<Timestamp>,
    /// How the end was learnt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_reason: Option<EndReason>,
    /// The pod's labels when it started (pods only), for `keg cost --by label=KEY`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pod_labels: BTreeMap<String, String>,
}

impl UsageRecordSpec {
    /// The record's object name: `pod-<uid>` or `node-<uid>`, so each thing has one record.
    pub fn object_name(&self) -> String {
        record_name(self.subject, &self.uid)
    }

    /// The labels `kubectl get usage -l ...` can select records by.
    pub fn labels(&self) -> BTreeMap<String, String> {
        let compute = match self.compute {
            Compute::Fargate => "fargate",
            Compute::Nodegroup => "nodegroup",
        };
        [
            (COMPUTE_LABEL, Some(compute)),
            (NAMESPACE_LABEL, self.namespace.as_deref()),
            (PROFILE_LABEL, self.profile.as_deref()),
            (NODEGROUP_LABEL, self.node_group.as_deref()),
        ]
        .into_iter()
        .filter_map(|(k, v)| Some((k.to_owned(), v?.to_owned())))
        .collect()
    }

    /// The provisioned Fargate size, for Fargate pods.
    pub fn fargate_size(&self) -> Option<FargateSize> {
        (self.compute == Compute::Fargate && self.subject == Subject::Pod).then(|| FargateSize {
            millicpu: u32::try_from(self.cpu_millis).unwrap_or(0),
            memory_mib: u32::try_from(self.memory_mib).unwrap_or(0),
        })
    }
}

/// The object name of the record of the pod or node with `uid`.
pub fn record_name(subject: Subject, uid: &str) -> String {
    match subject {
        Subject::Pod => format!("pod-{uid}"),
        Subject::Node => format!("node-{uid}"),
    }
}

/// Reads EKS's `CapacityProvisioned` annotation (`0.25vCPU 0.5GB`, `2vCPU 9GB`).
pub fn parse_capacity(text: &str) -> Option<FargateSize> {
    let (cpu, memory) = text.trim().split_once(' ')?;
    let vcpus: f64 = cpu.strip_suffix("vCPU")?.parse().ok()?;
    let gb: f64 = memory.trim().strip_suffix("GB")?.parse().ok()?;
    let size = FargateSize {
        millicpu: (vcpus * 1000.0).round() as u32,
        memory_mib: (gb * 1024.0).round() as u32,
    };
    (size.millicpu > 0 && size.memory_mib > 0).then_some(size)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::CustomResourceExt;

    #[test]
    fn capacity_round_trips_through_the_annotation() {
        for (millicpu, memory_mib) in [(250, 512), (250, 2048), (2000, 9216), (16000, 122_880)] {
            let size = FargateSize {
                millicpu,
                memory_mib,
            };
            assert_eq!(parse_capacity(&size.to_string()), Some(size));
        }
        for bad in ["", "0.25vCPU", "0.25 0.5GB", "xvCPU 1GB", "0vCPU 0GB"] {
            assert_eq!(parse_capacity(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_definition_is_cluster_scoped_with_useful_columns() {
        let crd = UsageRecord::crd();
        assert_eq!(crd.metadata.name.as_deref(), Some("usagerecords.keg.dev"));
        assert_eq!(crd.spec.scope, "Cluster");
        let columns: Vec<_> = crd.spec.versions[0]
            .additional_printer_columns
            .iter()
            .flatten()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(
            columns,
            [
                "Subject",
                "Compute",
                "Namespace",
                "Target",
                "Capacity",
                "Hourly",
                "Start",
                "End"
            ]
        );
    }

    #[test]
    fn records_serialize_with_camel_case_and_rfc3339_times() {
        let spec = UsageRecordSpec {
            subject: Subject::Pod,
            compute: Compute::Fargate,
            region: "us-east-1".into(),
            namespace: Some("tb-demo".into()),
            name: "web-1".into(),
            uid: "u1".into(),
            node: None,
            profile: Some("fp-demo".into()),
            node_group: None,
            instance_type: None,
            capacity: Some("0.25vCPU 0.5GB".into()),
            cpu_millis: 250,
            memory_mib: 512,
            requests: Some(Requests::default()),
            hourly_rate: 0.01234,
            start: "2025-01-01T00:00:00.5Z".parse().unwrap(),
            end: None,
            end_reason: None,
            pod_labels: BTreeMap::new(),
        };
        let json = serde_json::to_value(&spec).unwrap();
        assert_eq!(json["start"], "2025-01-01T00:00:00.5Z");
        assert_eq!(json["hourlyRate"], 0.01234);
        assert!(json.get("end").is_none());
        assert_eq!(spec.object_name(), "pod-u1");
        assert_eq!(spec.labels()[COMPUTE_LABEL], "fargate");
        assert_eq!(spec.labels()[NAMESPACE_LABEL], "tb-demo");
        assert_eq!(spec.fargate_size(), Some(FargateSize::SMALLEST));
        let back: UsageRecordSpec = serde_json::from_value(json).unwrap();
        assert_eq!(back, spec);
    }
}
