//! The node agent (kubelet): serves every Node labelled `keg.dev/agent=<agent name>` — its
//! status and Lease heartbeat — and drives the pods bound to those nodes through their
//! lifecycle on a [`keg_runtime::Runtime`], reporting status, events and logs as the upstream
//! kubelet does.
//!
//! A pod's life is a state machine, one file per state under `pod/states/` (the allowed
//! transitions are written down in [`pod::states`]). Everything the agent knows it learns
//! from the API through `kube::Client`, so the same code runs in-process or remotely.

mod agent;
mod config;
mod events;
pub mod logs;
mod node;
mod pod;
mod util;

#[cfg(feature = "apiserver")]
mod apiserver;
#[cfg(feature = "apiserver")]
mod usage;

pub use agent::NodeAgent;
pub use config::Config;
pub use logs::{LogRequest, NodeLogs};

/// The label naming the node agent that serves a node.
pub const AGENT_LABEL: &str = "keg.dev/agent";
/// The label (EKS's) marking a Fargate node: pods there are bounded by the node's capacity.
pub const COMPUTE_TYPE_LABEL: &str = "eks.amazonaws.com/compute-type";
/// The kubelet version nodes report.
pub const KUBELET_VERSION: &str = concat!("v1.33.0+keg.", env!("CARGO_PKG_VERSION"));

/// Errors of the node agent.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call to the API server failed.
    #[error("API request failed: {0}")]
    Api(#[from] kube::Error),
    /// The container runtime failed.
    #[error(transparent)]
    Runtime(#[from] keg_runtime::Error),
    /// A file-system operation of the agent failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A request (e.g. for logs) cannot be answered; the message is the kubelet's wording.
    #[error("{0}")]
    BadRequest(String),
}

/// Result of node-agent operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}
