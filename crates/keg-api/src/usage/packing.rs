//! What a set of pods would cost on node groups alone: their requests packed onto as few
//! instances as first-fit-decreasing manages, for every instance type with a price, keeping
//! the type whose nodes cost least an hour.
//!
//! Nodes are counted at their full capacity, as keg's node-group nodes report it (EKS
//! reserves a little for the kubelet; keg does not), and up to the type's EKS pod limit.

use serde::Serialize;

use super::Requests;
use crate::instance_types::InstanceType;
use crate::prices::PriceTable;

/// The cheapest way found to run a set of pods on one instance type.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Packing {
    /// The instance type (none for no pods).
    pub instance_type: Option<String>,
    /// How many nodes of it.
    pub nodes: usize,
    /// USD an hour for all of them.
    pub hourly: f64,
}

impl Packing {
    /// No pods: no nodes.
    pub const NONE: Packing = Packing {
        instance_type: None,
        nodes: 0,
        hourly: 0.0,
    };
}

/// The cheapest instance type and node count that hold `pods` in `region`; `None` when some
/// pod fits on no priced type.
pub fn cheapest_fit(pods: &[Requests], prices: &PriceTable, region: &str) -> Option<Packing> {
    if pods.is_empty() {
        return Some(Packing::NONE);
    }
    let mut best: Option<Packing> = None;
    for instance in InstanceType::all() {
        let Some(price) = prices.ec2_hourly(region, instance.name) else {
            continue;
        };
        let Some(nodes) = nodes_needed(pods, instance) else {
            continue;
        };
        let hourly = nodes as f64 * price;
        // Ties go to fewer, larger nodes: the same money, less to manage.
        let better = best
            .as_ref()
            .is_none_or(|b| hourly < b.hourly || (hourly == b.hourly && nodes < b.nodes));
        if better {
            best = Some(Packing {
                instance_type: Some(instance.name.to_owned()),
                nodes,
                hourly,
            });
        }
    }
    best
}

/// Nodes of `instance` that first-fit-decreasing needs for `pods`; `None` if one cannot fit.
pub fn nodes_needed(pods: &[Requests], instance: &InstanceType) -> Option<usize> {
    let cpu = i64::try_from(instance.millicpu()).unwrap_or(i64::MAX);
    let memory = i64::try_from(instance.memory_mib * 1024 * 1024).unwrap_or(i64::MAX);
    let max_pods = instance.max_pods as usize;
    if max_pods == 0
        || pods
            .iter()
            .any(|p| p.cpu_millis > cpu || p.memory_bytes > memory)
    {
        return None;
    }
    // Largest first by the share of the node each pod takes in its scarcer resource.
    let share = |p: &Requests| {
        (p.cpu_millis as f64 / cpu as f64).max(p.memory_bytes as f64 / memory as f64)
    };
    let mut sorted: Vec<&Requests> = pods.iter().collect();
    sorted.sort_by(|a, b| share(b).total_cmp(&share(a)));
    // Free (cpu, memory, pod slots) of each open node.
    let mut nodes: Vec<(i64, i64, usize)> = Vec::new();
    for pod in sorted {
        let fits = |n: &&mut (i64, i64, usize)| {
            n.0 >= pod.cpu_millis && n.1 >= pod.memory_bytes && n.2 > 0
        };
        match nodes.iter_mut().find(fits) {
            Some(node) => {
                *node = (
                    node.0 - pod.cpu_millis,
                    node.1 - pod.memory_bytes,
                    node.2 - 1,
                )
            }
            None => nodes.push((
                cpu - pod.cpu_millis,
                memory - pod.memory_bytes,
                max_pods - 1,
            )),
        }
    }
    Some(nodes.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MI: i64 = 1024 * 1024;

    fn pod(cpu_millis: i64, memory_mib: i64) -> Requests {
        Requests {
            cpu_millis,
            memory_bytes: memory_mib * MI,
        }
    }

    fn t3_medium() -> &'static InstanceType {
        InstanceType::lookup("t3.medium").unwrap()
    }

    #[test]
    fn pods_are_packed_until_a_resource_runs_out() {
        // t3.medium: 2 vCPU, 4 GiB, 17 pods.
        assert_eq!(nodes_needed(&[pod(500, 512); 4], t3_medium()), Some(1));
        assert_eq!(nodes_needed(&[pod(500, 512); 5], t3_medium()), Some(2));
        assert_eq!(nodes_needed(&[pod(100, 1024); 8], t3_medium()), Some(2));
        assert_eq!(nodes_needed(&[pod(0, 0); 18], t3_medium()), Some(2));
        assert_eq!(nodes_needed(&[pod(3000, 512)], t3_medium()), None);
    }

    #[test]
    fn first_fit_decreasing_fills_gaps_with_small_pods() {
        let pods = [pod(1500, 256), pod(500, 256), pod(1500, 256), pod(500, 256)];
        assert_eq!(nodes_needed(&pods, t3_medium()), Some(2));
    }

    #[test]
    fn the_cheapest_type_wins() {
        let prices = PriceTable::aws();
        // One tiny pod: the cheapest instance that exists (t3.nano, $0.0052/h in us-east-1).
        let one = cheapest_fit(&[pod(100, 128)], &prices, "us-east-1").unwrap();
        assert_eq!(one.instance_type.as_deref(), Some("t3.nano"));
        assert_eq!((one.nodes, one.hourly), (1, 0.0052));
        // Four 0.5 vCPU / 1 GiB pods: one t3.medium ($0.0416) beats two t3.small ($0.0416)
        // on node count, and every other mix on price.
        let four = cheapest_fit(&[pod(500, 1024); 4], &prices, "us-east-1").unwrap();
        assert_eq!(four.instance_type.as_deref(), Some("t3.medium"));
        assert_eq!((four.nodes, four.hourly), (1, 0.0416));
        assert_eq!(cheapest_fit(&[], &prices, "us-east-1"), Some(Packing::NONE));
        let huge = pod(500_000, 1024);
        assert_eq!(cheapest_fit(&[huge], &prices, "us-east-1"), None);
        assert_eq!(cheapest_fit(&[pod(1, 1)], &prices, "mars-north-1"), None);
    }
}
