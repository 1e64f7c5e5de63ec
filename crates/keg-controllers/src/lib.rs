//! Controllers (namespaces, garbage collection, deployments, replica sets, stateful sets,
//! daemon sets, jobs, cron jobs, endpoints, volumes, service networking). Each is a kube-rs
//! controller: a client of the API only.

pub mod autoscaler;
pub mod cache;
pub mod certificates;
pub mod clusterrole_aggregation;
pub mod cronjob;
pub mod daemonset;
pub mod deployment;
pub mod disruption;
pub mod endpoints;
pub mod endpointslice;
pub mod events;
pub mod gc;
pub mod history;
pub mod hpa;
pub mod job;
pub mod leader;
pub mod metering;
pub mod namespace;
pub mod node_lifecycle;
pub mod nodegroup;
pub mod owners;
pub(crate) mod pod_control;
pub mod pods;
pub mod replicaset;
pub mod services;
pub mod statefulset;
pub mod volumes;

use std::sync::Arc;
use std::time::Duration;

use kube::Client;
use kube::runtime::controller::Action;

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

impl Error {
    /// The message a user reads: an API error's own message (as kubectl prints it), else
    /// this error's.
    pub fn message(&self) -> String {
        match self {
            Error::Api(e) => api_message(e),
            other => other.to_string(),
        }
    }
}

/// An API error's message as the server wrote it, without kube's wrapping.
pub fn api_message(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => status.message.clone(),
        other => other.to_string(),
    }
}

/// Where controllers read the time from, so logic that depends on it can be tested.
pub trait Clock: Send + Sync {
    /// The current time.
    fn now(&self) -> jiff::Timestamp;

    /// How long to really wait for `wait` of this clock's time to pass. A clock set by hand
    /// moves in jumps, so a controller waiting on it looks again soon instead.
    fn real_wait(&self, wait: Duration) -> Duration {
        wait
    }
}

/// A clock that moves only when told (tests): waits on it last a tenth of a second.
pub struct ManualClock(std::sync::Mutex<jiff::Timestamp>);

impl ManualClock {
    /// A clock stopped at `at`.
    pub fn new(at: jiff::Timestamp) -> Arc<ManualClock> {
        Arc::new(ManualClock(std::sync::Mutex::new(at)))
    }

    /// Sets the time.
    pub fn set(&self, at: jiff::Timestamp) {
        *self.0.lock().expect("clock lock") = at;
    }

    /// Moves the time on.
    pub fn advance(&self, by: jiff::SignedDuration) {
        let mut now = self.0.lock().expect("clock lock");
        *now += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> jiff::Timestamp {
        *self.0.lock().expect("clock lock")
    }

    fn real_wait(&self, wait: Duration) -> Duration {
        wait.min(Duration::from_millis(100))
    }
}

/// The system's clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> jiff::Timestamp {
        jiff::Timestamp::now()
    }
}

/// What a controller does after a failed reconcile: log it and try again after [`RETRY`].
/// Conflicts (someone wrote first) and objects gone meanwhile are part of normal operation,
/// so they are only logged at debug level.
pub(crate) fn retry_after_error(controller: &str, error: &Error) -> Action {
    match error {
        Error::Api(kube::Error::Api(s)) if s.code == 409 || s.code == 404 => {
            tracing::debug!("{controller} controller: {}", s.message)
        }
        other => tracing::warn!("{controller} controller: {other}"),
    }
    Action::requeue(RETRY)
}

/// A built-in kind a controller can watch: what kube's Controller and reflector need.
pub(crate) trait Object:
    kube::Resource<DynamicType = ()>
    + Clone
    + serde::de::DeserializeOwned
    + std::fmt::Debug
    + Send
    + Sync
    + 'static
{
}

impl<T> Object for T where
    T: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static
{
}

/// Runs a workload controller until the process ends: `reconcile` each `K` when it or an
/// `Owned` object it controls changes (upstream's shape for every workload kind); failures
/// are retried after [`RETRY`].
pub(crate) async fn run_workload<K, Owned, C, R, F>(
    client: &Client,
    name: &'static str,
    reconcile: R,
    context: Arc<C>,
) where
    K: Object,
    Owned: Object,
    C: Send + Sync + 'static,
    R: FnMut(Arc<K>, Arc<C>) -> F,
    F: std::future::Future<Output = Result<Action>> + Send + 'static,
{
    use futures::StreamExt;
    let watch = kube::runtime::watcher::Config::default;
    kube::runtime::Controller::new(kube::Api::<K>::all(client.clone()), watch())
        .watches(
            kube::Api::<Owned>::all(client.clone()),
            watch(),
            owners::to_controller::<Owned, K>(),
        )
        .run(
            reconcile,
            move |_, error, _| retry_after_error(name, error),
            context,
        )
        .for_each(|_| async {})
        .await;
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
    run_all_with_clock(client, Arc::new(SystemClock)).await;
}

/// Runs every controller, reading the time from `clock`, until the process ends.
pub async fn run_all_with_clock(client: Client, clock: Arc<dyn Clock>) {
    tokio::join!(
        job::run(client.clone(), clock.clone()),
        cronjob::run(client.clone(), clock.clone()),
        statefulset::run(client.clone(), clock.clone()),
        daemonset::run(client.clone(), clock.clone()),
        disruption::run(client.clone(), clock.clone()),
        namespace::run(client.clone()),
        gc::run(client.clone()),
        replicaset::run(client.clone(), clock.clone()),
        replicaset::run_replication_controllers(client.clone(), clock.clone()),
        deployment::run(client.clone(), clock.clone()),
        endpoints::run(client.clone()),
        endpointslice::run(client.clone()),
        clusterrole_aggregation::run(client.clone()),
    );
}
