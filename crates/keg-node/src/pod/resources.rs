//! CPU and memory: each container's cgroup limits, the pod cgroup's bounds, and QoS class.
//!
//! On a Fargate node (label `eks.amazonaws.com/compute-type=fargate`) the pod is bounded by
//! its node's capacity, which is the size Fargate provisioned for it; elsewhere by the sum of
//! its containers' limits when every container has one (as the kubelet sizes pod cgroups).

use k8s_openapi::api::core::v1::{Container, Node, Pod, PodSpec, ResourceRequirements};
use keg_api::quantity::{parse_bytes, parse_millis};
use keg_runtime::Resources;

use crate::COMPUTE_TYPE_LABEL;

/// Whether the node is a Fargate node.
pub(crate) fn is_fargate(node: &Node) -> bool {
    node.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(COMPUTE_TYPE_LABEL))
        .is_some_and(|v| v == "fargate")
}

fn quantity<'a>(
    resources: Option<&'a ResourceRequirements>,
    limits: bool,
    name: &str,
) -> Option<&'a str> {
    let r = resources?;
    let map = if limits {
        r.limits.as_ref()
    } else {
        r.requests.as_ref()
    };
    map?.get(name).map(|q| q.0.as_str())
}

fn millis(resources: Option<&ResourceRequirements>, limits: bool) -> Option<u64> {
    quantity(resources, limits, "cpu").and_then(|q| parse_millis(q).ok())
}

fn bytes(resources: Option<&ResourceRequirements>, limits: bool) -> Option<u64> {
    quantity(resources, limits, "memory").and_then(|q| parse_bytes(q).ok())
}

/// A container's own cgroup bounds: its limits, and its CPU request as weight. A container
/// with a limit but no request requests its limit, as the API server defaults it.
pub(crate) fn container_resources(container: &Container) -> Resources {
    let r = container.resources.as_ref();
    Resources {
        cpu_limit_millis: millis(r, true),
        cpu_request_millis: millis(r, false).or_else(|| millis(r, true)),
        memory_limit_bytes: bytes(r, true),
    }
}

/// The pod cgroup's bounds on `node`.
pub(crate) fn pod_resources(pod: &Pod, node: &Node) -> Resources {
    let spec = pod.spec.clone().unwrap_or_default();
    if is_fargate(node) {
        let capacity = node.status.as_ref().and_then(|s| s.capacity.as_ref());
        let get = |name: &str| capacity.and_then(|c| c.get(name)).map(|q| q.0.clone());
        return Resources {
            cpu_limit_millis: get("cpu").and_then(|q| parse_millis(&q).ok()),
            cpu_request_millis: get("cpu").and_then(|q| parse_millis(&q).ok()),
            memory_limit_bytes: get("memory").and_then(|q| parse_bytes(&q).ok()),
        };
    }
    let app: Vec<Resources> = spec.containers.iter().map(container_resources).collect();
    let init: Vec<Resources> = spec
        .init_containers
        .iter()
        .flatten()
        .map(container_resources)
        .collect();
    // The pod needs the larger of its busiest init container and its app containers together.
    let total = |f: fn(&Resources) -> Option<u64>| -> Option<u64> {
        let sum = app.iter().map(f).sum::<Option<u64>>()?;
        let init_max = init
            .iter()
            .map(f)
            .try_fold(0u64, |m, v| v.map(|v| m.max(v)))?;
        Some(sum.max(init_max))
    };
    let requests: u64 = app.iter().filter_map(|r| r.cpu_request_millis).sum();
    Resources {
        cpu_limit_millis: total(|r| r.cpu_limit_millis),
        cpu_request_millis: (requests > 0).then_some(requests),
        memory_limit_bytes: total(|r| r.memory_limit_bytes),
    }
}

/// The pod's QoS class: Guaranteed when every container limits CPU and memory and requests
/// what it limits, BestEffort when none requests or limits either, else Burstable.
pub(crate) fn qos_class(spec: &PodSpec) -> &'static str {
    let containers: Vec<&Container> = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .collect();
    let mut any = false;
    let mut guaranteed = true;
    for c in containers {
        let r = c.resources.as_ref();
        for name in ["cpu", "memory"] {
            let limit = quantity(r, true, name);
            let request = quantity(r, false, name).or(limit);
            any |= limit.is_some() || request.is_some();
            let same = match name {
                "cpu" => {
                    limit.and_then(|l| parse_millis(l).ok())
                        == request.and_then(|q| parse_millis(q).ok())
                }
                _ => {
                    limit.and_then(|l| parse_bytes(l).ok())
                        == request.and_then(|q| parse_bytes(q).ok())
                }
            };
            guaranteed &= limit.is_some() && same;
        }
    }
    match (any, guaranteed) {
        (false, _) => "BestEffort",
        (true, true) => "Guaranteed",
        (true, false) => "Burstable",
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::api::core::v1::NodeStatus;
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    use super::*;

    fn container(requests: &[(&str, &str)], limits: &[(&str, &str)]) -> Container {
        let map = |kv: &[(&str, &str)]| -> Option<BTreeMap<String, Quantity>> {
            (!kv.is_empty()).then(|| {
                kv.iter()
                    .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
                    .collect()
            })
        };
        Container {
            name: "c".into(),
            resources: Some(ResourceRequirements {
                requests: map(requests),
                limits: map(limits),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn pod(containers: Vec<Container>) -> Pod {
        Pod {
            spec: Some(PodSpec {
                containers,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn qos_classes() {
        let spec = |c: Vec<Container>| pod(c).spec.unwrap();
        assert_eq!(qos_class(&spec(vec![container(&[], &[])])), "BestEffort");
        let full = [("cpu", "500m"), ("memory", "128Mi")];
        assert_eq!(qos_class(&spec(vec![container(&[], &full)])), "Guaranteed");
        assert_eq!(
            qos_class(&spec(vec![container(&full, &full)])),
            "Guaranteed"
        );
        assert_eq!(
            qos_class(&spec(vec![container(&[("cpu", "100m")], &[])])),
            "Burstable"
        );
        assert_eq!(
            qos_class(&spec(vec![container(&[], &full), container(&[], &[])])),
            "Burstable"
        );
    }

    #[test]
    fn fargate_pods_get_their_nodes_capacity() {
        let mut node = Node::default();
        node.metadata.labels =
            Some([(COMPUTE_TYPE_LABEL.to_string(), "fargate".to_string())].into());
        node.status = Some(NodeStatus {
            capacity: Some(
                [("cpu", "250m"), ("memory", "512Mi")]
                    .iter()
                    .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
                    .collect(),
            ),
            ..Default::default()
        });
        let r = pod_resources(&pod(vec![container(&[], &[])]), &node);
        assert_eq!(r.memory_limit_bytes, Some(512 << 20));
        assert_eq!(r.cpu_limit_millis, Some(250));
    }

    #[test]
    fn node_group_pods_sum_their_limits_when_all_have_one() {
        let node = Node::default();
        let limited = container(&[("cpu", "100m")], &[("cpu", "1"), ("memory", "64Mi")]);
        let r = pod_resources(&pod(vec![limited.clone(), limited.clone()]), &node);
        assert_eq!(r.memory_limit_bytes, Some(128 << 20));
        assert_eq!(r.cpu_limit_millis, Some(2000));
        assert_eq!(r.cpu_request_millis, Some(200));
        let r = pod_resources(&pod(vec![limited, container(&[], &[])]), &node);
        assert_eq!(
            r.memory_limit_bytes, None,
            "one unlimited container leaves the pod unlimited"
        );
    }
}
