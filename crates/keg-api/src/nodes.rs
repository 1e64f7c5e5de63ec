//! What keg's nodes share, whoever launches them: the cluster they belong to, the labels EKS
//! puts on every node, and free private addresses to name them by.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

/// The label naming a node's node group, as eksctl sets it on every node it launches.
pub const NODEGROUP_LABEL: &str = "alpha.eksctl.io/nodegroup-name";
/// The label naming the node agent that serves a node.
pub const AGENT_LABEL: &str = "keg.dev/agent";
/// The label EKS puts on Fargate nodes (`eks.amazonaws.com/compute-type=fargate`).
pub const COMPUTE_TYPE_LABEL: &str = "eks.amazonaws.com/compute-type";

/// What every node of a cluster shares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterInfo {
    /// The cluster's name.
    pub name: String,
    /// The AWS region the cluster stands for (names nodes and zones).
    pub region: String,
    /// The node agent that serves this machine's nodes.
    pub agent: String,
}

/// The labels every node of the region carries, as EKS sets them.
pub fn region_labels(region: &str, hostname: &str, arch: &str) -> BTreeMap<String, String> {
    let zone = format!("{region}a");
    [
        ("kubernetes.io/hostname", hostname),
        ("kubernetes.io/os", "linux"),
        ("kubernetes.io/arch", arch),
        ("beta.kubernetes.io/os", "linux"),
        ("beta.kubernetes.io/arch", arch),
        ("topology.kubernetes.io/region", region),
        ("topology.kubernetes.io/zone", &zone),
        ("failure-domain.beta.kubernetes.io/region", region),
        ("failure-domain.beta.kubernetes.io/zone", &zone),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// A fresh private address in eksctl's default VPC (192.168.0.0/16) whose node name
/// (`name_of(address, region)`) is not in `taken`.
pub fn free_node_address(
    region: &str,
    taken: &[String],
    name_of: impl Fn(Ipv4Addr, &str) -> String,
) -> Ipv4Addr {
    use rand::Rng;
    let mut rng = rand::rng();
    loop {
        let ip = Ipv4Addr::new(
            192,
            168,
            rng.random_range(0..=255),
            rng.random_range(1..=254),
        );
        if !taken.contains(&name_of(ip, region)) {
            return ip;
        }
    }
}

/// The Cluster Autoscaler's event when it grows a node group (reason `ScaledUpGroup`).
pub fn scale_up_message(group: &str, from: i32, to: i32, max: i32) -> String {
    format!("Scale-up: setting group {group} size to {to} instead of {from} (max: {max})")
}

/// The (group, from, to) of a [`scale_up_message`].
pub fn parse_scale_up_message(message: &str) -> Option<(String, i32, i32)> {
    let rest = message.strip_prefix("Scale-up: setting group ")?;
    let (group, rest) = rest.split_once(" size to ")?;
    let (to, rest) = rest.split_once(" instead of ")?;
    let (from, _) = rest.split_once(' ')?;
    Some((group.to_string(), from.parse().ok()?, to.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fargate::node::ec2_node_name;

    #[test]
    fn zone_follows_region() {
        let labels = region_labels("eu-west-1", "ip-1", "amd64");
        assert_eq!(labels["topology.kubernetes.io/zone"], "eu-west-1a");
        assert_eq!(labels["kubernetes.io/hostname"], "ip-1");
    }

    #[test]
    fn addresses_avoid_taken_names() {
        let taken: Vec<String> = (1..=254)
            .filter(|d| *d != 7)
            .map(|d| ec2_node_name(Ipv4Addr::new(192, 168, 0, d), "r"))
            .collect();
        for _ in 0..50 {
            let ip = free_node_address("r", &taken, ec2_node_name);
            assert!(ip.octets()[2] != 0 || ip.octets()[3] == 7, "{ip} is taken");
        }
    }

    #[test]
    fn scale_up_messages_read_back() {
        let text = scale_up_message("ng-1", 1, 3, 5);
        assert_eq!(
            text,
            "Scale-up: setting group ng-1 size to 3 instead of 1 (max: 5)"
        );
        assert_eq!(parse_scale_up_message(&text), Some(("ng-1".into(), 1, 3)));
        assert_eq!(
            parse_scale_up_message("Scale-down: removing empty node \"x\""),
            None
        );
    }
}
