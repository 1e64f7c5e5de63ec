//! Container runtime: OCI images, root file systems, namespaces, cgroups and the pod network.
//!
//! A CRI-shaped library for keg's node agent: an [`ImageStore`] shared by all nodes of the
//! machine, and a [`Runtime`] per node that runs pod sandboxes (a network namespace on a
//! bridge, a pod cgroup) and their containers (crun, driven by a per-container monitor
//! process that outlives keg restarts). See `docs/decisions/0002-container-runtime.md`.

pub mod cgroup;
pub mod crun;
mod fsutil;
pub mod image;
pub mod logs;
pub mod net;
pub mod runtime;
pub mod shim;
pub mod spec;
#[cfg(feature = "testing")]
pub mod testing;

pub use image::{Image, ImageConfig, ImageStore};
pub use net::{Ipv4Cidr, NetworkConfig};
pub use runtime::types::{
    Capabilities, ContainerConfig, ContainerState, ContainerStatus, DnsConfig, ExecOutput, Mount,
    PodSandboxConfig, Resources, Sandbox, SandboxState, User,
};
pub use runtime::{
    Error, ExecProcess, ExecReader, ExecStdio, ExecWriter, Result, Runtime, RuntimeConfig, Terminal,
};
