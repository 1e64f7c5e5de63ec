//! Allocation: a node-group node's bill divided among the pods that ran on it, the rest left
//! as the node group's idle cost, as OpenCost does it.
//!
//! - **A node's price, split.** The node's hourly price is cut into a price per vCPU-hour and
//!   per GiB-hour in the ratio of OpenCost's default prices ([`CPU_WEIGHT`] :
//!   [`MEMORY_WEIGHT`], $0.031611 a vCPU-hour to $0.004237 a GiB-hour, about 7.46 : 1),
//!   scaled so that the instance's vCPUs and GiB at those prices add up to its hourly price.
//!   A t3.large (2 vCPU, 8 GiB, $0.0832/h) thus costs $0.0832 / (2 x 7.4607 + 8) =
//!   $0.0036298 a GiB-hour and 7.4607 times that, $0.0270808, a vCPU-hour.
//! - **A pod's share.** Over every stretch of time in which the same pods run on the node,
//!   each pod pays its weight at those prices: for CPU and for memory, the larger of its
//!   request and its usage. Usage metrics are not in the records yet, so the weight is the
//!   request alone ([`Weight::of`]). If the pods' weights exceed the node's capacity (usage
//!   above what the node has, which requests alone cannot do), the resource's whole price
//!   is shared among them in proportion and none of it is idle.
//! - **Idle.** What no pod pays of the node's bill is the idle cost of the node group,
//!   reported under the key [`idle_key`] (`__idle__/<group>`, after OpenCost's `__idle__`).
//!   A node whose size is unknown (an instance type outside keg's table) is idle throughout.
//!
//! The node's bill is its billed interval (AWS's minute minimum included, see
//! [`super::billing`]) after `since`, so a node's pods and idle always add up to its spend.

use std::collections::BTreeMap;

use jiff::Timestamp;

use super::{Compute, Subject, UsageRecordSpec, billing};

/// OpenCost's default price of a vCPU-hour, USD: the CPU side of the split's ratio.
pub const CPU_WEIGHT: f64 = 0.031611;
/// OpenCost's default price of a GiB-hour of memory, USD: the memory side of the ratio.
pub const MEMORY_WEIGHT: f64 = 0.004237;

/// The key idle cost starts with, whatever the rows are.
pub const IDLE: &str = "__idle__";

/// The key of node group `group`'s idle cost: `__idle__/<group>`. No namespace, pod, profile,
/// node group or label value can start with `_`, so it cannot clash with another row.
pub fn idle_key(group: &str) -> String {
    format!("{IDLE}/{group}")
}

/// What a vCPU-hour and a GiB-hour of one node cost.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UnitPrices {
    /// USD per vCPU per hour.
    pub vcpu_hour: f64,
    /// USD per GiB of memory per hour.
    pub gib_hour: f64,
}

/// `hourly` split over `capacity` in the ratio [`CPU_WEIGHT`] : [`MEMORY_WEIGHT`]; none for
/// a node of no size.
pub fn unit_prices(hourly: f64, capacity: Weight) -> Option<UnitPrices> {
    let at_default = capacity.vcpus * CPU_WEIGHT + capacity.gib * MEMORY_WEIGHT;
    if at_default.is_nan() || at_default <= 0.0 {
        return None;
    }
    let scale = hourly / at_default;
    Some(UnitPrices {
        vcpu_hour: CPU_WEIGHT * scale,
        gib_hour: MEMORY_WEIGHT * scale,
    })
}

/// An amount of CPU and memory: a node's capacity or a pod's weight.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Weight {
    /// vCPUs.
    pub vcpus: f64,
    /// GiB of memory.
    pub gib: f64,
}

impl Weight {
    /// A pod's weight: per resource, the larger of its request and its usage. The records
    /// carry no usage yet, so this is its requests.
    pub fn of(pod: &UsageRecordSpec) -> Weight {
        let requests = pod.requests.unwrap_or_default();
        Weight {
            vcpus: requests.cpu_millis.max(0) as f64 / 1000.0,
            gib: requests.memory_bytes.max(0) as f64 / GIB,
        }
    }

    /// A node's capacity, from its record.
    pub fn capacity(node: &UsageRecordSpec) -> Weight {
        Weight {
            vcpus: node.cpu_millis.max(0) as f64 / 1000.0,
            gib: node.memory_mib.max(0) as f64 / 1024.0,
        }
    }
}

const GIB: f64 = (1u64 << 30) as f64;

/// A node's `hourly` price divided among `pods` on a node of `capacity`: each pod's USD an
/// hour, in order, and the idle USD an hour. They add up to `hourly`.
pub fn split(hourly: f64, capacity: Weight, pods: &[Weight]) -> (Vec<f64>, f64) {
    let Some(unit) = unit_prices(hourly, capacity) else {
        return (vec![0.0; pods.len()], hourly);
    };
    let used = pods.iter().fold(Weight::default(), |sum, p| Weight {
        vcpus: sum.vcpus + p.vcpus,
        gib: sum.gib + p.gib,
    });
    // Above capacity, the resource's whole price is shared in proportion.
    let scale = |used: f64, capacity: f64| {
        if used > capacity {
            capacity / used
        } else {
            1.0
        }
    };
    let (cpu_scale, gib_scale) = (
        scale(used.vcpus, capacity.vcpus),
        scale(used.gib, capacity.gib),
    );
    let shares: Vec<f64> = pods
        .iter()
        .map(|p| p.vcpus * cpu_scale * unit.vcpu_hour + p.gib * gib_scale * unit.gib_hour)
        .collect();
    let idle = (hourly - shares.iter().sum::<f64>()).max(0.0);
    (shares, idle)
}

/// USD spent in a window and USD an hour now.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Amount {
    /// USD in the window.
    pub spend: f64,
    /// USD an hour at the current run rate.
    pub hourly: f64,
}

impl Amount {
    fn add(&mut self, other: Amount) {
        self.spend += other.spend;
        self.hourly += other.hourly;
    }
}

/// The node-group nodes' bills divided among their pods.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Allocation {
    /// What each record was allocated, by its index in the records given: node-group pods'
    /// shares of their nodes; nothing for nodes and Fargate pods (they pay their own).
    pub pods: Vec<Amount>,
    /// What no pod was allocated, by node group.
    pub idle: BTreeMap<String, Amount>,
}

/// Divides the bill after `since` (to `now`) of every node-group node in `records` among the
/// node-group pods in `records` that ran on it.
pub fn allocate(
    records: &[&UsageRecordSpec],
    since: Option<Timestamp>,
    now: Timestamp,
) -> Allocation {
    let mut allocation = Allocation {
        pods: vec![Amount::default(); records.len()],
        idle: BTreeMap::new(),
    };
    let nodes = records
        .iter()
        .filter(|r| r.subject == Subject::Node && r.compute == Compute::Nodegroup);
    for node in nodes {
        let (billed_from, to) = node.billed_interval(now);
        let from = since.map_or(billed_from, |s| billed_from.max(s));
        let capacity = Weight::capacity(node);
        // The pods that ran on this node, with their runs cut to the node's bill.
        let on_node: Vec<(usize, Timestamp, Timestamp, Weight)> = records
            .iter()
            .enumerate()
            .filter(|(_, r)| {
                r.subject == Subject::Pod
                    && r.compute == Compute::Nodegroup
                    && r.node.as_deref() == Some(node.name.as_str())
            })
            .map(|(i, r)| (i, r.start.max(from), r.end_or(now).min(to), Weight::of(r)))
            .filter(|(_, a, b, _)| a < b)
            .collect();
        let mut cuts: Vec<Timestamp> = [from, to]
            .into_iter()
            .chain(on_node.iter().flat_map(|(_, a, b, _)| [*a, *b]))
            .collect();
        cuts.sort();
        cuts.dedup();
        let group = node.node_group.clone().unwrap_or_else(|| "-".into());
        let mut idle = Amount::default();
        for pair in cuts.windows(2).filter(|p| from <= p[0] && p[1] <= to) {
            let running: Vec<_> = on_node
                .iter()
                .filter(|(_, a, b, _)| *a <= pair[0] && pair[1] <= *b)
                .collect();
            let weights: Vec<Weight> = running.iter().map(|(_, _, _, w)| *w).collect();
            let (shares, idle_hourly) = split(node.hourly_rate, capacity, &weights);
            let seconds = pair[1].duration_since(pair[0]).as_secs_f64();
            for ((i, ..), share) in running.iter().zip(shares) {
                allocation.pods[*i].spend += billing::cost(share, seconds);
            }
            idle.spend += billing::cost(idle_hourly, seconds);
        }
        // The run rate: the node's rate now, split among the pods on it now.
        if node.is_open() {
            let running: Vec<usize> = on_node
                .iter()
                .map(|(i, ..)| *i)
                .filter(|i| records[*i].is_open())
                .collect();
            let weights: Vec<Weight> = running.iter().map(|i| Weight::of(records[*i])).collect();
            let (shares, idle_hourly) = split(node.hourly_rate, capacity, &weights);
            for (i, share) in running.iter().zip(shares) {
                allocation.pods[*i].hourly += share;
            }
            idle.hourly += idle_hourly;
        }
        allocation.idle.entry(group).or_default().add(idle);
    }
    allocation
}

#[cfg(test)]
mod tests;
