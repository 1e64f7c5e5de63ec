//! Leader election on a `coordination.k8s.io/v1` Lease, with client-go's `leaderelection`
//! semantics, so that of several keg servers on one store exactly one runs the controllers
//! (Lease `kube-system/kube-controller-manager`) and the schedulers
//! (`kube-system/kube-scheduler`) at a time.
//!
//! - A candidate takes the Lease when it does not exist (create), when it has no holder, or
//!   when its record has not changed for `leaseDuration` *as this candidate observed it*:
//!   expiry is measured on the local monotonic clock from when the record was last seen to
//!   change, never by comparing `renewTime` with the local wall clock, so clock skew between
//!   machines does not matter (as upstream's `observedTime`).
//! - Taking it sets `holderIdentity`, `leaseDurationSeconds`, `acquireTime` and `renewTime`
//!   and counts `leaseTransitions` when the holder changes; renewing moves `renewTime` only.
//!   Every write is an update at the `resourceVersion` read, so of two candidates racing for
//!   an expired Lease one wins and the other gets a conflict.
//! - The leader renews every `retryPeriod`; when no renewal has succeeded for
//!   `renewDeadline`, or the Lease names another holder, it stops leading at once (unlike
//!   client-go, which stops only at the deadline: the sooner a deposed leader stops, the
//!   shorter any overlap). `renewDeadline` is shorter than `leaseDuration`, so a leader cut
//!   off from the store stops before anyone else may take over.
//! - A leader that shuts down cleanly releases the Lease (empty holder, duration 1 s, as
//!   client-go's `ReleaseOnCancel`), so another instance takes over on its next retry.

use std::future::Future;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::Client;
use kube::api::{Api, ObjectMeta, PostParams};

/// Where the Leases live.
pub const NAMESPACE: &str = "kube-system";
/// The controllers' Lease, as kube-controller-manager names its own.
pub const CONTROLLER_MANAGER: &str = "kube-controller-manager";
/// The schedulers' Lease, as kube-scheduler names its own.
pub const SCHEDULER: &str = "kube-scheduler";

/// How one candidate campaigns (upstream's `LeaderElectionConfig`).
#[derive(Debug, Clone)]
pub struct Config {
    /// The Lease's namespace.
    pub namespace: String,
    /// The Lease's name.
    pub name: String,
    /// Who this candidate is; unique among the candidates.
    pub identity: String,
    /// How long others wait after the last renewal they saw before taking over.
    pub lease_duration: Duration,
    /// How long the leader keeps trying to renew before it stops leading.
    pub renew_deadline: Duration,
    /// Between attempts to take or renew the Lease.
    pub retry_period: Duration,
}

impl Config {
    /// Upstream's defaults (kube-controller-manager's and kube-scheduler's): a 15 s lease,
    /// a 10 s renew deadline, a 2 s retry period.
    pub fn new(name: &str, identity: &str) -> Config {
        Config {
            namespace: NAMESPACE.to_owned(),
            name: name.to_owned(),
            identity: identity.to_owned(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// An identity for this process: the host name and a random suffix, as upstream's
/// `hostname_<uuid>`.
pub fn identity() -> String {
    use rand::Rng;
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "keg".to_owned());
    let suffix: u64 = rand::rng().random();
    format!("{host}_{suffix:016x}")
}

/// One candidate's view of the Lease.
pub struct Elector {
    api: Api<Lease>,
    config: Config,
    /// The record last read and when it was first seen so (the local monotonic clock).
    observed: Option<(LeaseSpec, Instant)>,
}

fn is_status(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}

impl Elector {
    /// A candidate for the Lease `config` names.
    pub fn new(client: Client, config: Config) -> Elector {
        Elector {
            api: Api::namespaced(client, &config.namespace),
            config,
            observed: None,
        }
    }

    /// The holder the Lease named when last read, if any.
    pub fn holder(&self) -> Option<&str> {
        self.observed
            .as_ref()
            .and_then(|(spec, _)| spec.holder_identity.as_deref())
            .filter(|h| !h.is_empty())
    }

    /// Whether the Lease named this candidate when last read.
    pub fn is_leader(&self) -> bool {
        self.holder() == Some(self.config.identity.as_str())
    }

    fn observe(&mut self, spec: LeaseSpec, at: Instant) {
        match &self.observed {
            Some((seen, _)) if *seen == spec => {}
            _ => self.observed = Some((spec, at)),
        }
    }

    fn duration_seconds(&self) -> i32 {
        i32::try_from(self.config.lease_duration.as_secs().max(1)).unwrap_or(i32::MAX)
    }

    /// One attempt to take or renew the Lease (upstream's `tryAcquireOrRenew`): whether this
    /// candidate holds it afterwards. A lost race is `Ok(false)`, not an error.
    pub async fn try_acquire_or_renew(&mut self) -> kube::Result<bool> {
        let now = MicroTime(Timestamp::now());
        let at = Instant::now();
        let me = self.config.identity.clone();
        let Some(mut lease) = self.api.get_opt(&self.config.name).await? else {
            let spec = LeaseSpec {
                holder_identity: Some(me),
                lease_duration_seconds: Some(self.duration_seconds()),
                acquire_time: Some(now.clone()),
                renew_time: Some(now),
                lease_transitions: Some(0),
                ..LeaseSpec::default()
            };
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.config.name.clone()),
                    namespace: Some(self.config.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(spec),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(created) => {
                    self.observe(created.spec.unwrap_or_default(), at);
                    Ok(true)
                }
                Err(e) if is_status(&e, 409) => Ok(false),
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        self.observe(spec.clone(), at);
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let held_by_other = !holder.is_empty() && holder != me;
        if held_by_other {
            let since = self.observed.as_ref().map_or(at, |(_, since)| *since);
            if at.duration_since(since) < self.config.lease_duration {
                return Ok(false);
            }
        }
        let mut next = LeaseSpec {
            holder_identity: Some(me.clone()),
            lease_duration_seconds: Some(self.duration_seconds()),
            renew_time: Some(now.clone()),
            ..spec.clone()
        };
        if holder != me {
            next.acquire_time = Some(now);
            next.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        lease.spec = Some(next);
        // A replace at the resourceVersion read: a concurrent writer makes it a conflict.
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(updated) => {
                self.observe(updated.spec.unwrap_or_default(), at);
                Ok(true)
            }
            Err(e) if is_status(&e, 409) || is_status(&e, 404) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Gives the Lease up if this candidate holds it: no holder, a one-second duration, so
    /// the next candidate takes it on its next attempt.
    pub async fn release(&mut self) -> kube::Result<()> {
        let Some(mut lease) = self.api.get_opt(&self.config.name).await? else {
            return Ok(());
        };
        let spec = lease.spec.clone().unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
            return Ok(());
        }
        let now = MicroTime(Timestamp::now());
        lease.spec = Some(LeaseSpec {
            holder_identity: None,
            lease_duration_seconds: Some(1),
            acquire_time: Some(now.clone()),
            renew_time: Some(now),
            ..spec
        });
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_status(&e, 409) || is_status(&e, 404) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// Campaigns for the Lease until `shutdown` resolves: each time this candidate wins it,
/// `start` begins the leader's work and returns a handle to it; when the Lease is lost,
/// `stop` ends that work (before anyone else may take over, as `renewDeadline` is shorter
/// than `leaseDuration`). At shutdown, work in progress is stopped and the Lease released.
pub async fn run<T>(
    client: Client,
    config: Config,
    mut start: impl FnMut() -> T,
    mut stop: impl FnMut(T),
    shutdown: impl Future<Output = ()>,
) {
    let mut elector = Elector::new(client, config.clone());
    let mut shutdown = std::pin::pin!(shutdown);
    let mut leading: Option<(T, Instant)> = None;
    let mut last_holder: Option<String> = None;
    loop {
        let attempt = tokio::select! {
            attempt = tokio::time::timeout(config.retry_period.max(Duration::from_millis(100)) * 2, elector.try_acquire_or_renew()) => attempt,
            () = &mut shutdown => break,
        };
        let now = Instant::now();
        match attempt {
            Ok(Ok(true)) => match &mut leading {
                Some((_, renewed)) => *renewed = now,
                None => {
                    tracing::info!(lease = %config.name, identity = %config.identity, "acquired the lease: leading");
                    leading = Some((start(), now));
                }
            },
            outcome => {
                if let Ok(Err(e)) = &outcome {
                    tracing::warn!(lease = %config.name, "leader election: {e}");
                }
                let deposed = elector.holder().is_some() && !elector.is_leader();
                if let Some((_, renewed)) = &leading
                    && (deposed || now.duration_since(*renewed) >= config.renew_deadline)
                    && let Some((work, _)) = leading.take()
                {
                    tracing::warn!(lease = %config.name, identity = %config.identity, "lost the lease: stopped leading");
                    stop(work);
                }
            }
        }
        let holder = elector.holder().map(str::to_owned);
        if holder != last_holder {
            if let Some(h) = &holder {
                tracing::info!(lease = %config.name, holder = %h, "new leader");
            }
            last_holder = holder;
        }
        tokio::select! {
            () = tokio::time::sleep(config.retry_period) => {}
            () = &mut shutdown => break,
        }
    }
    if let Some((work, _)) = leading.take() {
        stop(work);
        if let Err(e) = elector.release().await {
            tracing::warn!(lease = %config.name, "releasing the lease: {e}");
        }
    }
}
