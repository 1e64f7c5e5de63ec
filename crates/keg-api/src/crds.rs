//! keg's own kinds, `FargateProfile` and `NodeGroup` (and `UsageRecord`, in
//! [`crate::usage`]), as cluster-scoped custom resources in group `keg.dev`, version `v1`.
//!
//! The API server installs [`custom_resource_definitions`] at start; `keg create cluster` turns
//! a cluster file's entries into these objects (see
//! [`ClusterConfig::fargate_profile_objects`](crate::ClusterConfig::fargate_profile_objects)).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Taint;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{CustomResource, CustomResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The API group of keg's own kinds.
pub const GROUP: &str = "keg.dev";

/// The profile status EKS reports once a profile can take pods.
pub const STATUS_ACTIVE: &str = "ACTIVE";
/// The status EKS reports while a profile or node group is being created.
pub const STATUS_CREATING: &str = "CREATING";
/// The status EKS reports while a profile or node group is being deleted.
pub const STATUS_DELETING: &str = "DELETING";

/// Which pods run on Fargate: those that match one of the selectors.
// Each printcolumn(...) repeats `type_ = ...`; clippy takes the repeats for duplicated
// attributes of the struct, though each belongs to its own column.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "keg.dev",
    version = "v1",
    kind = "FargateProfile",
    status = "FargateProfileStatus",
    shortname = "fp",
    derive = "PartialEq",
    doc = "A Fargate profile: pods matching one of its selectors get a node of their own.",
    printcolumn(
        name = "Selectors",
        type_ = "string",
        description = "The namespaces the profile's selectors match",
        json_path = ".spec.selectors[*].namespace"
    ),
    printcolumn(
        name = "Pod-Execution-Role",
        type_ = "string",
        priority = 1,
        json_path = ".spec.podExecutionRoleARN"
    ),
    printcolumn(name = "Status", type_ = "string", json_path = ".status.status"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct FargateProfileSpec {
    /// The cluster the profile belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_name: Option<String>,
    /// A pod runs on Fargate when it matches any one of these.
    pub selectors: Vec<FargateProfileSelector>,
    /// The IAM role of the pods' nodes; recorded for fidelity, keg has no IAM.
    #[serde(
        rename = "podExecutionRoleARN",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub pod_execution_role_arn: Option<String>,
    /// The subnets the pods' nodes are placed in.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subnets: Vec<String>,
    /// Free-form tags.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

/// A namespace and the labels a pod in it must carry; `*` and `?` are wildcards in both.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct FargateProfileSelector {
    /// The namespace pattern a pod's namespace must match.
    pub namespace: String,
    /// Label patterns a pod must all carry; none means the whole namespace.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// What keg reports about a Fargate profile.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct FargateProfileStatus {
    /// `CREATING`, `ACTIVE`, `DELETING`, as EKS reports them.
    #[serde(default)]
    pub status: String,
}

/// A group of identical nodes of one instance type.
// Each printcolumn(...) repeats `type_ = ...`; clippy takes the repeats for duplicated
// attributes of the struct, though each belongs to its own column.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "keg.dev",
    version = "v1",
    kind = "NodeGroup",
    status = "NodeGroupStatus",
    shortname = "ng",
    derive = "PartialEq",
    doc = "A node group: nodes of one instance type, kept at the desired count.",
    printcolumn(
        name = "Instance-Type",
        type_ = "string",
        json_path = ".spec.instanceType"
    ),
    printcolumn(
        name = "Desired",
        type_ = "integer",
        json_path = ".spec.desiredCapacity"
    ),
    printcolumn(name = "Min", type_ = "integer", json_path = ".spec.minSize"),
    printcolumn(name = "Max", type_ = "integer", json_path = ".spec.maxSize"),
    printcolumn(name = "Ready", type_ = "integer", json_path = ".status.readyReplicas"),
    printcolumn(name = "Status", type_ = "string", json_path = ".status.status"),
    printcolumn(
        name = "Managed",
        type_ = "boolean",
        priority = 1,
        json_path = ".spec.managed"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct NodeGroupSpec {
    /// The EC2 instance type of every node (see [`crate::InstanceType`]).
    pub instance_type: String,
    /// How many nodes the group keeps.
    pub desired_capacity: i32,
    /// The fewest nodes the group may scale to.
    pub min_size: i32,
    /// The most nodes the group may scale to.
    pub max_size: i32,
    /// Labels every node carries.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Taints every node carries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub taints: Vec<Taint>,
    /// Root volume size in GiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_size: Option<i32>,
    /// Free-form tags.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// Whether it came from `managedNodeGroups` (EKS-managed) rather than `nodeGroups`.
    #[serde(default)]
    pub managed: bool,
}

/// What keg reports about a node group.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeGroupStatus {
    /// Nodes that exist.
    #[serde(default)]
    pub replicas: i32,
    /// Nodes that are Ready.
    #[serde(default)]
    pub ready_replicas: i32,
    /// `CREATING`, `ACTIVE`, `DELETING`, as EKS reports them.
    #[serde(default)]
    pub status: String,
}

/// The definitions of keg's kinds, for the API server to install at start.
pub fn custom_resource_definitions() -> Vec<CustomResourceDefinition> {
    vec![
        FargateProfile::crd(),
        NodeGroup::crd(),
        crate::usage::UsageRecord::crd(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns(crd: &CustomResourceDefinition) -> Vec<(String, String)> {
        let version = &crd.spec.versions[0];
        let cols = version
            .additional_printer_columns
            .as_deref()
            .unwrap_or_default();
        cols.iter()
            .map(|c| (c.name.clone(), c.json_path.clone()))
            .collect()
    }

    #[test]
    fn definitions_are_cluster_scoped_in_keg_dev() {
        let crds = custom_resource_definitions();
        let names: Vec<_> = crds
            .iter()
            .map(|c| c.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "fargateprofiles.keg.dev",
                "nodegroups.keg.dev",
                "usagerecords.keg.dev"
            ]
        );
        for crd in &crds {
            assert_eq!(crd.spec.group, GROUP);
            assert_eq!(crd.spec.scope, "Cluster");
            assert_eq!(crd.spec.versions[0].name, "v1");
        }
        for crd in &crds[..2] {
            let subresources = crd.spec.versions[0].subresources.as_ref().unwrap();
            assert!(subresources.status.is_some(), "status subresource");
        }
        assert_eq!(
            crds[0].spec.names.short_names.as_deref(),
            Some(&["fp".to_owned()][..])
        );
        assert_eq!(
            crds[1].spec.names.short_names.as_deref(),
            Some(&["ng".to_owned()][..])
        );
    }

    #[test]
    fn printer_columns_make_kubectl_get_useful() {
        let crds = custom_resource_definitions();
        let fp: Vec<_> = columns(&crds[0]).into_iter().map(|c| c.0).collect();
        assert_eq!(fp, ["Selectors", "Pod-Execution-Role", "Status", "Age"]);
        let ng = columns(&crds[1]);
        assert_eq!(ng[0], ("Instance-Type".into(), ".spec.instanceType".into()));
        assert_eq!(ng[4], ("Ready".into(), ".status.readyReplicas".into()));
    }

    #[test]
    fn spec_round_trips_with_eksctl_field_names() {
        let json = serde_json::json!({
            "apiVersion": "keg.dev/v1",
            "kind": "FargateProfile",
            "metadata": {"name": "fp-demo-service"},
            "spec": {
                "clusterName": "terrax-fargate",
                "selectors": [{"namespace": "tb-demo", "labels": {"app": "service"}}],
                "podExecutionRoleARN": "arn:aws:iam::123456789012:role/x"
            }
        });
        let fp: FargateProfile = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(fp.spec.selectors[0].labels["app"], "service");
        assert_eq!(serde_json::to_value(&fp).unwrap(), json);
    }
}
