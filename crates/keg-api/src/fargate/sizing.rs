//! The size of node a pod gets on Fargate (EKS user guide, "Fargate Pod configuration"):
//!
//! - for CPU and memory separately, the larger of the largest init container request and the
//!   sum of the long-running containers' requests;
//! - plus 256 MiB of memory for the node's own components (kubelet, kube-proxy, containerd);
//! - rounded up to the first vCPU and memory combination Fargate offers.
//!
//! A container that sets only a limit is taken to request the limit, as Kubernetes defaults it.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::{Container, PodSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::quantity;

/// Memory Fargate adds to every pod for the node's own components.
pub const MEMORY_OVERHEAD_MIB: u64 = 256;

/// A Fargate compute configuration; its `Display` is EKS's `CapacityProvisioned` annotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FargateSize {
    /// CPU in thousandths of a vCPU.
    pub millicpu: u32,
    /// Memory in MiB.
    pub memory_mib: u32,
}

/// Errors from sizing a pod.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A container's request or limit is not a quantity.
    #[error("container {container:?}: {field}: {source}")]
    Quantity {
        /// The container's name.
        container: String,
        /// E.g. `resources.requests.memory`.
        field: String,
        /// What is wrong with it.
        source: quantity::Error,
    },
    /// More than the largest configuration; the wording is EKS's.
    #[error("Your pod's cpu/memory requirements exceed the max Fargate configuration")]
    ExceedsMax {
        /// CPU asked for, in millicpu.
        millicpu: u64,
        /// Memory asked for, overhead included, in MiB.
        memory_mib: u64,
    },
}

impl Error {
    /// The pod condition's reason, as EKS's scheduler gives it.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Quantity { .. } => "InvalidQuantity",
            Error::ExceedsMax { .. } => "POD_CPU_MEM_EXCEEDS_MAX_FARGATE_SIZE",
        }
    }
}

/// Result of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Fargate's configurations: a vCPU amount and an even run of memory sizes, smallest first.
struct Tier {
    millicpu: u32,
    first_mib: u32,
    last_mib: u32,
    step_mib: u32,
}

const GIB: u32 = 1024;

const fn tier(millicpu: u32, first_gib: u32, last_gib: u32, step_gib: u32) -> Tier {
    Tier {
        millicpu,
        first_mib: first_gib * GIB,
        last_mib: last_gib * GIB,
        step_mib: step_gib * GIB,
    }
}

/// 0.25 vCPU has 0.5, 1 and 2 GB, which no single step covers, hence its three rows.
const TIERS: &[Tier] = &[
    Tier {
        millicpu: 250,
        first_mib: 512,
        last_mib: 512,
        step_mib: 512,
    },
    tier(250, 1, 2, 1),
    tier(500, 1, 4, 1),
    tier(1000, 2, 8, 1),
    tier(2000, 4, 16, 1),
    tier(4000, 8, 30, 1),
    tier(8000, 16, 60, 4),
    tier(16000, 32, 120, 8),
];

impl FargateSize {
    /// The smallest configuration, which a pod without requests gets: 0.25 vCPU, 0.5 GB.
    pub const SMALLEST: FargateSize = FargateSize {
        millicpu: 250,
        memory_mib: 512,
    };

    /// The configuration Fargate provisions for a pod with this spec.
    pub fn for_pod(spec: &PodSpec) -> Result<FargateSize> {
        let (millicpu, memory_bytes) = pod_requests(spec)?;
        let memory_mib = memory_bytes.div_ceil(1 << 20) + MEMORY_OVERHEAD_MIB;
        Self::round_up(millicpu, memory_mib)
    }

    /// The first configuration with at least `millicpu` and `memory_mib` (overhead included).
    pub fn round_up(millicpu: u64, memory_mib: u64) -> Result<FargateSize> {
        for tier in TIERS {
            if u64::from(tier.millicpu) < millicpu || u64::from(tier.last_mib) < memory_mib {
                continue;
            }
            let above_first = memory_mib.saturating_sub(u64::from(tier.first_mib));
            let steps = above_first.div_ceil(u64::from(tier.step_mib)) as u32;
            return Ok(FargateSize {
                millicpu: tier.millicpu,
                memory_mib: tier.first_mib + steps * tier.step_mib,
            });
        }
        Err(Error::ExceedsMax {
            millicpu,
            memory_mib,
        })
    }

    /// vCPUs, as prices count them.
    pub fn vcpus(&self) -> f64 {
        f64::from(self.millicpu) / 1000.0
    }

    /// GB (GiB, as Fargate means it), as prices count them.
    pub fn memory_gb(&self) -> f64 {
        f64::from(self.memory_mib) / f64::from(GIB)
    }
}

impl fmt::Display for FargateSize {
    /// `0.25vCPU 0.5GB`, `2vCPU 9GB`: f64's shortest form prints whole numbers bare.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}vCPU {}GB", self.vcpus(), self.memory_gb())
    }
}

/// The pod's effective CPU (millicpu) and memory (bytes) requests, as Kubernetes computes
/// them. Sidecars (init containers with `restartPolicy: Always`) run alongside the others,
/// so they count in both the long-running sum and every later init container's peak; without
/// sidecars this is exactly EKS's rule.
pub fn pod_requests(spec: &PodSpec) -> Result<(u64, u64)> {
    let mut sidecars = (0u64, 0u64);
    let mut init_peak = (0u64, 0u64);
    for container in spec.init_containers.iter().flatten() {
        let (cpu, memory) = container_requests(container)?;
        let at_this_step = if container.restart_policy.as_deref() == Some("Always") {
            sidecars = (sidecars.0 + cpu, sidecars.1 + memory);
            sidecars
        } else {
            (sidecars.0 + cpu, sidecars.1 + memory)
        };
        init_peak = (
            init_peak.0.max(at_this_step.0),
            init_peak.1.max(at_this_step.1),
        );
    }
    let mut running = sidecars;
    for container in &spec.containers {
        let (cpu, memory) = container_requests(container)?;
        running = (running.0 + cpu, running.1 + memory);
    }
    Ok((running.0.max(init_peak.0), running.1.max(init_peak.1)))
}

fn container_requests(container: &Container) -> Result<(u64, u64)> {
    let cpu = request(container, "cpu", quantity::parse_millis)?;
    let memory = request(container, "memory", quantity::parse_bytes)?;
    Ok((cpu, memory))
}

/// The request for `resource`, else its limit, else nothing.
fn request(
    container: &Container,
    resource: &str,
    parse: fn(&str) -> quantity::Result<u64>,
) -> Result<u64> {
    let Some(resources) = &container.resources else {
        return Ok(0);
    };
    let requested = lookup(&resources.requests, resource);
    let (kind, quantity) = match (requested, lookup(&resources.limits, resource)) {
        (Some(q), _) => ("requests", q),
        (None, Some(q)) => ("limits", q),
        (None, None) => return Ok(0),
    };
    parse(&quantity.0).map_err(|source| Error::Quantity {
        container: container.name.clone(),
        field: format!("resources.{kind}.{resource}"),
        source,
    })
}

fn lookup<'a>(map: &'a Option<BTreeMap<String, Quantity>>, resource: &str) -> Option<&'a Quantity> {
    map.as_ref()?.get(resource)
}

#[cfg(test)]
mod tests;
