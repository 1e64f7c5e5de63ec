//! Controllers (namespaces, garbage collection, deployments, replica sets, endpoints,
//! volumes, load balancers). Each is a kube-rs controller: a client of the API only.

pub mod cache;
pub mod loadbalancer;
pub mod namespace;
pub mod nodegroup;

use std::time::Duration;

use kube::Client;

/// How long a failed reconcile waits before it is tried again.
pub(crate) const RETRY: Duration = Duration::from_secs(2);

/// Errors of reconcilers.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call failed.
    #[error("API call failed: {0}")]
    Api(#[from] kube::Error),
    /// Discovering served resources failed.
    #[error("discovery failed: {0}")]
    Discovery(String),
    /// An object asks for something that cannot be done.
    #[error("{0}")]
    Invalid(String),
}

/// Results of reconcilers.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The outcome of a delete, where the object being gone already counts as success.
pub(crate) fn gone_is_fine<T>(result: std::result::Result<T, kube::Error>) -> Result<()> {
    match result {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Runs every controller until the process ends.
pub async fn run_all(client: Client) {
    tokio::join!(namespace::run(client.clone()));
}
