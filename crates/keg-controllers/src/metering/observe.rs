//! What a pod or node says about its bill, as a [`UsageRecordSpec`]: pure functions of the
//! objects, the region and the prices, so the rules are tested without an API server.
//!
//! - A pod is billed from `status.startTime`: the node agent stamps it when it takes the pod
//!   on, immediately before its volumes, sandbox and image pulls (on AWS the clock starts at
//!   the pull, which in keg follows within the same second).
//! - It ends when every container has terminated and the pod is finished or being deleted:
//!   the last `finishedAt`. The node agent posts that final status before it removes a
//!   deleted pod, so it is known even for deleted pods.
//! - A node-group node is billed from its Ready condition's first transition to True.

use k8s_openapi::api::core::v1::{Node, Pod};
use keg_api::fargate::matching::PROFILE_LABEL;
use keg_api::fargate::sizing::pod_requests;
use keg_api::instance_types::InstanceType;
use keg_api::nodes::{COMPUTE_TYPE_LABEL, NODEGROUP_LABEL};
use keg_api::prices::PriceTable;
use keg_api::usage::{
    Compute, EndReason, Requests, Subject, UsageRecordSpec, parse_capacity, record_name,
};
use kube::ResourceExt;

/// The pod annotation with a Fargate pod's provisioned size (the scheduler writes it).
pub const CAPACITY_ANNOTATION: &str = "CapacityProvisioned";
/// The node label with a node-group node's instance type.
pub const INSTANCE_TYPE_LABEL: &str = "node.kubernetes.io/instance-type";

/// Prices and region, as every observation needs them.
pub struct Pricing<'a> {
    /// The region whose prices apply.
    pub region: &'a str,
    /// The prices.
    pub prices: &'a PriceTable,
}

/// The record a pod calls for, with its end if it has ended; none before it started.
pub fn pod_record(
    pod: &Pod,
    node: Option<&Node>,
    pricing: &Pricing<'_>,
) -> Option<UsageRecordSpec> {
    let status = pod.status.as_ref()?;
    let start = status.start_time.as_ref()?.0;
    let node_name = pod.spec.as_ref()?.node_name.clone()?;
    let uid = pod.uid()?;
    let node_label = |key: &str| node.and_then(|n| n.labels().get(key).cloned());
    let capacity = pod
        .annotations()
        .get(CAPACITY_ANNOTATION)
        .and_then(|c| parse_capacity(c));
    let on_fargate = node_label(COMPUTE_TYPE_LABEL).as_deref() == Some("fargate")
        || (node.is_none() && capacity.is_some());
    let requests = pod
        .spec
        .as_ref()
        .and_then(|spec| pod_requests(spec).ok())
        .map(|(cpu, memory)| Requests {
            cpu_millis: i64::try_from(cpu).unwrap_or(i64::MAX),
            memory_bytes: i64::try_from(memory).unwrap_or(i64::MAX),
        });
    let (end, end_reason) = match pod_end(pod) {
        Some(end) => (Some(end), Some(EndReason::Terminated)),
        None => (None, None),
    };
    let mut record = UsageRecordSpec {
        subject: Subject::Pod,
        compute: Compute::Nodegroup,
        region: pricing.region.to_owned(),
        namespace: pod.namespace(),
        name: pod.name_any(),
        uid,
        node: Some(node_name),
        profile: None,
        node_group: node_label(NODEGROUP_LABEL),
        instance_type: None,
        capacity: None,
        cpu_millis: 0,
        memory_mib: 0,
        requests,
        hourly_rate: 0.0,
        start,
        end,
        end_reason,
        pod_labels: pod.labels().clone(),
    };
    if on_fargate {
        let size = capacity?;
        record.compute = Compute::Fargate;
        record.profile = pod
            .labels()
            .get(PROFILE_LABEL)
            .cloned()
            .or(node_label(PROFILE_LABEL));
        record.capacity = Some(size.to_string());
        record.cpu_millis = i64::from(size.millicpu);
        record.memory_mib = i64::from(size.memory_mib);
        // No price (a region without figures) still records the time, at $0.
        record.hourly_rate = pricing
            .prices
            .fargate_hourly(pricing.region, &size)
            .unwrap_or(0.0);
    }
    Some(record)
}

/// When a finished (or deleted and stopped) pod's last container ended.
pub fn pod_end(pod: &Pod) -> Option<jiff::Timestamp> {
    let status = pod.status.as_ref()?;
    let finished = matches!(status.phase.as_deref(), Some("Succeeded" | "Failed"));
    if !finished && pod.metadata.deletion_timestamp.is_none() {
        return None;
    }
    let containers: Vec<_> = status.container_statuses.iter().flatten().collect();
    if containers.is_empty() {
        return None;
    }
    let mut last = None;
    for container in containers {
        let terminated = container.state.as_ref()?.terminated.as_ref()?;
        let at = terminated.finished_at.as_ref()?.0;
        last = last.max(Some(at));
    }
    last
}

/// The record a node-group node calls for once it has been Ready; none for other nodes.
pub fn node_record(node: &Node, pricing: &Pricing<'_>) -> Option<UsageRecordSpec> {
    let labels = node.labels();
    let group = labels.get(NODEGROUP_LABEL)?;
    if labels.get(COMPUTE_TYPE_LABEL).map(String::as_str) == Some("fargate") {
        return None;
    }
    let ready = node
        .status
        .as_ref()?
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Ready" && c.status == "True")?;
    let start = ready.last_transition_time.as_ref()?.0;
    let instance_type = labels.get(INSTANCE_TYPE_LABEL).cloned();
    let instance = instance_type.as_deref().and_then(InstanceType::lookup);
    let hourly = instance_type
        .as_deref()
        .and_then(|t| pricing.prices.ec2_hourly(pricing.region, t));
    Some(UsageRecordSpec {
        subject: Subject::Node,
        compute: Compute::Nodegroup,
        region: pricing.region.to_owned(),
        namespace: None,
        name: node.name_any(),
        uid: node.uid()?,
        node: None,
        profile: None,
        node_group: Some(group.clone()),
        capacity: instance.map(|i| format!("{}vCPU {}GiB", i.vcpus, i.memory_mib as f64 / 1024.0)),
        cpu_millis: instance.map_or(0, |i| i64::from(i.vcpus) * 1000),
        memory_mib: instance.map_or(0, |i| i64::try_from(i.memory_mib).unwrap_or(0)),
        hourly_rate: hourly.unwrap_or(0.0),
        instance_type,
        requests: None,
        start,
        end: None,
        end_reason: None,
        pod_labels: Default::default(),
    })
}

/// The record name of a live pod or node, to tell which open records lost their subject.
pub fn subject_names(pods: &[std::sync::Arc<Pod>], nodes: &[std::sync::Arc<Node>]) -> Vec<String> {
    let pods = pods
        .iter()
        .filter_map(|p| p.uid())
        .map(|u| record_name(Subject::Pod, &u));
    let nodes = nodes
        .iter()
        .filter_map(|n| n.uid())
        .map(|u| record_name(Subject::Node, &u));
    pods.chain(nodes).collect()
}

#[cfg(test)]
mod tests;
