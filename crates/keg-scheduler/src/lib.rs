//! The schedulers: the default scheduler, which places pods on node-group nodes, and the
//! Fargate scheduler, which gives each pod a Fargate profile selects a node of its own.
//! Both are clients of the API only, and both work from one shared view of the cluster.

mod cluster;
pub mod default_scheduler;
pub mod fargate;
mod placement;
pub mod volume_binding;

pub use cluster::ClusterView;

use keg_api::nodes::ClusterInfo;
use kube::Client;

/// Errors of a scheduling pass.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call failed.
    #[error("API call failed: {0}")]
    Api(#[from] kube::Error),
}

/// Results of scheduling.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Runs both schedulers (and the Fargate node reaper) until the process ends.
pub async fn run(client: Client, cluster: ClusterInfo) {
    let view = ClusterView::start(client.clone());
    tokio::join!(
        default_scheduler::run(client.clone(), view.clone()),
        fargate::run(client, view, cluster),
    );
}
