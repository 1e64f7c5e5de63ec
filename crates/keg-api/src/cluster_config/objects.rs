//! A cluster file's node groups and Fargate profiles as keg's own objects.

use kube::api::ObjectMeta;

use super::{ClusterConfig, FargateProfileConfig, NodeGroupConfig};
use crate::crds::{FargateProfile, FargateProfileSpec, NodeGroup, NodeGroupSpec};

impl ClusterConfig {
    /// Every node group, `nodeGroups` then `managedNodeGroups`, as `NodeGroup` objects.
    pub fn node_group_objects(&self) -> Vec<NodeGroup> {
        let unmanaged = self.node_groups.iter().map(|ng| node_group(ng, false));
        let managed = self
            .managed_node_groups
            .iter()
            .map(|ng| node_group(ng, true));
        unmanaged.chain(managed).collect()
    }

    /// Every Fargate profile as a `FargateProfile` object of this cluster.
    pub fn fargate_profile_objects(&self) -> Vec<FargateProfile> {
        let cluster = &self.metadata.name;
        self.fargate_profiles
            .iter()
            .map(|fp| fargate_profile(fp, cluster))
            .collect()
    }
}

fn meta(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        ..ObjectMeta::default()
    }
}

/// Counts are u32 in the file and i32 in the object, as Kubernetes' int32; sizes beyond
/// i32 are not sizes anyone runs, so they saturate.
fn int32(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn node_group(ng: &NodeGroupConfig, managed: bool) -> NodeGroup {
    NodeGroup {
        metadata: meta(&ng.name),
        spec: NodeGroupSpec {
            instance_type: ng.instance_type.clone(),
            desired_capacity: int32(ng.desired_capacity),
            min_size: int32(ng.min_size),
            max_size: int32(ng.max_size),
            labels: ng.labels.clone(),
            taints: ng.taints.clone(),
            volume_size: ng.volume_size.map(int32),
            tags: ng.tags.clone(),
            managed,
        },
        status: None,
    }
}

fn fargate_profile(fp: &FargateProfileConfig, cluster: &str) -> FargateProfile {
    FargateProfile {
        metadata: meta(&fp.name),
        spec: FargateProfileSpec {
            cluster_name: Some(cluster.to_owned()),
            selectors: fp.selectors.clone(),
            pod_execution_role_arn: fp.pod_execution_role_arn.clone(),
            subnets: fp.subnets.clone(),
            tags: fp.tags.clone(),
        },
        status: None,
    }
}
