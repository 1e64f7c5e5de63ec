//! A Deployment's status and conditions, as upstream's sync.go and progress.go compute them:
//! counts over its ReplicaSets, Available (MinimumReplicasAvailable), Progressing
//! (NewReplicaSetCreated, ReplicaSetUpdated, NewReplicaSetAvailable, ProgressDeadlineExceeded,
//! DeploymentPaused, DeploymentResumed) and ReplicaFailure.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::api::PostParams;

use super::Sync;
use super::util::{self, replicas};
use crate::Result;

/// The Progressing reason of a finished rollout.
const NEW_RS_AVAILABLE: &str = "NewReplicaSetAvailable";
/// The Progressing reason of a rollout past its deadline.
const TIMED_OUT: &str = "ProgressDeadlineExceeded";
/// The Progressing reason of a paused Deployment.
const PAUSED: &str = "DeploymentPaused";

/// Whether the Deployment has a progress deadline (upstream's "no deadline" is MaxInt32).
pub(super) fn has_progress_deadline(d: &Deployment) -> bool {
    d.spec
        .as_ref()
        .and_then(|s| s.progress_deadline_seconds)
        .is_some_and(|s| s != i32::MAX)
}

/// A condition that changed at `now`.
pub(super) fn condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
    now: Timestamp,
) -> DeploymentCondition {
    DeploymentCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_update_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

fn find<'a>(status: &'a DeploymentStatus, type_: &str) -> Option<&'a DeploymentCondition> {
    status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == type_)
}

/// Upstream's SetDeploymentCondition: no change for the same status and reason; the
/// transition time stays while the status does.
fn set_condition(status: &mut DeploymentStatus, mut condition: DeploymentCondition) {
    if let Some(current) = find(status, &condition.type_) {
        if current.status == condition.status && current.reason == condition.reason {
            return;
        }
        if current.status == condition.status {
            condition.last_transition_time = current.last_transition_time.clone();
        }
    }
    remove_condition(status, &condition.type_);
    status
        .conditions
        .get_or_insert_with(Vec::new)
        .push(condition);
}

fn remove_condition(status: &mut DeploymentStatus, type_: &str) {
    if let Some(conditions) = status.conditions.as_mut() {
        conditions.retain(|c| c.type_ != type_);
    }
}

/// Whether the rollout is done: every replica updated and available, and the spec observed.
pub(super) fn complete(d: &Deployment, status: &DeploymentStatus) -> bool {
    let desired = replicas(d);
    status.updated_replicas == Some(desired)
        && status.replicas == Some(desired)
        && status.available_replicas == Some(desired)
        && status.observed_generation >= d.metadata.generation
}

/// Whether the rollout moved since the last status (upstream's DeploymentProgressing).
fn progressing(d: &Deployment, new: &DeploymentStatus) -> bool {
    let old = d.status.clone().unwrap_or_default();
    let n = |v: Option<i32>| v.unwrap_or(0);
    let old_old = n(old.replicas) - n(old.updated_replicas);
    let new_old = n(new.replicas) - n(new.updated_replicas);
    n(new.updated_replicas) > n(old.updated_replicas)
        || new_old < old_old
        || n(new.ready_replicas) > n(old.ready_replicas)
        || n(new.available_replicas) > n(old.available_replicas)
}

/// When the Progressing condition runs out of time, unless it is done or already out.
fn deadline(d: &Deployment, status: &DeploymentStatus) -> Option<Timestamp> {
    let seconds = d.spec.as_ref()?.progress_deadline_seconds?;
    let condition = find(status, "Progressing")?;
    if !has_progress_deadline(d)
        || matches!(
            condition.reason.as_deref(),
            Some(NEW_RS_AVAILABLE | TIMED_OUT)
        )
    {
        return None;
    }
    let from = condition.last_update_time.as_ref()?.0;
    from.checked_add(Duration::from_secs(u64::from(seconds.unsigned_abs())))
        .ok()
}

/// "ReplicaSet "x" is progressing." or, without a new ReplicaSet, about the Deployment.
fn progress_message(d: &Deployment, new_rs: Option<&ReplicaSet>, what: &str) -> String {
    match new_rs {
        Some(rs) => format!("ReplicaSet \"{}\" {what}.", rs.name_any()),
        None => format!("Deployment \"{}\" {what}.", d.name_any()),
    }
}

impl Sync<'_> {
    /// A condition of the Deployment's current status.
    pub(super) fn condition(&self, type_: &str) -> Option<&DeploymentCondition> {
        find(self.d.status.as_ref()?, type_)
    }

    /// Sets a condition on the Deployment's status (written by `update_status`).
    pub(super) fn set_condition(&mut self, condition: DeploymentCondition) {
        set_condition(
            self.d.status.get_or_insert_with(Default::default),
            condition,
        );
    }

    /// Writes the Deployment's status.
    pub(super) async fn update_status(&mut self) -> Result<()> {
        self.d = self
            .deployments
            .replace_status(&self.d.name_any(), &PostParams::default(), &self.d)
            .await?;
        Ok(())
    }

    async fn write_status(&mut self, status: DeploymentStatus) -> Result<()> {
        if self.d.status.as_ref() == Some(&status) {
            return Ok(());
        }
        self.d.status = Some(status);
        self.update_status().await
    }

    /// Upstream's calculateStatus: counts over the ReplicaSets and the Available condition.
    fn calculate_status(
        &self,
        new_rs: Option<&ReplicaSet>,
        old: &[ReplicaSet],
    ) -> Result<DeploymentStatus> {
        let all: Vec<&ReplicaSet> = old.iter().chain(new_rs).collect();
        let available = util::available_replicas(&all);
        let current = self.d.status.clone().unwrap_or_default();
        let mut status = DeploymentStatus {
            observed_generation: self.d.metadata.generation,
            replicas: Some(util::actual_replicas(&all)),
            updated_replicas: Some(util::actual_replicas(
                &new_rs.into_iter().collect::<Vec<_>>(),
            )),
            ready_replicas: Some(util::ready_replicas(&all)),
            available_replicas: Some(available),
            unavailable_replicas: Some((util::spec_replicas(&all) - available).max(0)),
            collision_count: current.collision_count,
            conditions: current.conditions,
            terminating_replicas: None,
        };
        let available_condition =
            if available >= replicas(&self.d) - util::max_unavailable(&self.d)? {
                condition(
                    "Available",
                    "True",
                    "MinimumReplicasAvailable",
                    "Deployment has minimum availability.".into(),
                    self.now,
                )
            } else {
                condition(
                    "Available",
                    "False",
                    "MinimumReplicasUnavailable",
                    "Deployment does not have minimum availability.".into(),
                    self.now,
                )
            };
        set_condition(&mut status, available_condition);
        Ok(status)
    }

    /// Writes the calculated status when it changed (upstream's syncDeploymentStatus).
    pub(super) async fn sync_deployment_status(
        &mut self,
        new_rs: Option<&ReplicaSet>,
        old: &[ReplicaSet],
    ) -> Result<()> {
        let status = self.calculate_status(new_rs, old)?;
        self.write_status(status).await
    }

    /// The status with the Progressing condition a rollout has reached (upstream's syncRolloutStatus).
    pub(super) async fn sync_rollout_status(
        &mut self,
        new_rs: Option<&ReplicaSet>,
        old: &[ReplicaSet],
    ) -> Result<()> {
        let mut status = self.calculate_status(new_rs, old)?;
        if !has_progress_deadline(&self.d) {
            remove_condition(&mut status, "Progressing");
        }
        let current = self.condition("Progressing").cloned();
        let finished = status.replicas == status.updated_replicas
            && current
                .as_ref()
                .is_some_and(|c| c.reason.as_deref() == Some(NEW_RS_AVAILABLE));
        if has_progress_deadline(&self.d) && !finished {
            if complete(&self.d, &status) {
                let message = progress_message(&self.d, new_rs, "has successfully progressed");
                set_condition(
                    &mut status,
                    condition("Progressing", "True", NEW_RS_AVAILABLE, message, self.now),
                );
            } else if progressing(&self.d, &status) {
                let message = progress_message(&self.d, new_rs, "is progressing");
                let mut updated = condition(
                    "Progressing",
                    "True",
                    "ReplicaSetUpdated",
                    message,
                    self.now,
                );
                // Progress moves lastUpdateTime (what the deadline counts from), even with the same reason.
                if let Some(current) = current.as_ref().filter(|c| c.status == "True") {
                    updated.last_transition_time = current.last_transition_time.clone();
                }
                remove_condition(&mut status, "Progressing");
                set_condition(&mut status, updated);
            } else if deadline(&self.d, &status).is_some_and(|at| at < self.now) {
                let message = progress_message(&self.d, new_rs, "has timed out progressing");
                set_condition(
                    &mut status,
                    condition("Progressing", "False", TIMED_OUT, message, self.now),
                );
            }
        }
        let all: Vec<&ReplicaSet> = new_rs.into_iter().chain(old).collect();
        match replica_failure(&all) {
            Some(failure) => set_condition(&mut status, failure),
            None => remove_condition(&mut status, "ReplicaFailure"),
        }
        self.write_status(status).await
    }

    /// Marks a paused or resumed Deployment in its Progressing condition.
    pub(super) async fn check_paused_conditions(&mut self) -> Result<()> {
        if !has_progress_deadline(&self.d) {
            return Ok(());
        }
        let reason = self.condition("Progressing").and_then(|c| c.reason.clone());
        if reason.as_deref() == Some(TIMED_OUT) {
            return Ok(());
        }
        let paused = util::spec(&self.d).paused == Some(true);
        let marked = reason.as_deref() == Some(PAUSED);
        let change = match (paused, marked) {
            (true, false) => condition(
                "Progressing",
                "Unknown",
                PAUSED,
                "Deployment is paused".into(),
                self.now,
            ),
            (false, true) => condition(
                "Progressing",
                "Unknown",
                "DeploymentResumed",
                "Deployment is resumed".into(),
                self.now,
            ),
            _ => return Ok(()),
        };
        self.set_condition(change);
        self.update_status().await
    }

    /// Only records that the spec was seen (for a Deployment that cannot be acted on).
    pub(super) async fn observe_generation_only(&mut self) -> Result<()> {
        let status = self.d.status.get_or_insert_with(Default::default);
        if status.observed_generation >= self.d.metadata.generation {
            return Ok(());
        }
        status.observed_generation = self.d.metadata.generation;
        self.update_status().await
    }

    /// When to look again at a rollout that may time out with no event to announce it.
    pub(super) fn requeue(&self) -> Option<Duration> {
        let status = self.d.status.as_ref()?;
        if util::spec(&self.d).paused == Some(true) || complete(&self.d, status) {
            return None;
        }
        let at = deadline(&self.d, status)?;
        let after = Duration::try_from(at.duration_since(self.now)).unwrap_or_default();
        Some(after.max(Duration::from_secs(1)))
    }
}

/// The ReplicaFailure of the new ReplicaSet (first in `all`), else of any other.
fn replica_failure(all: &[&ReplicaSet]) -> Option<DeploymentCondition> {
    all.iter()
        .flat_map(|rs| rs.status.iter().flat_map(|s| s.conditions.iter().flatten()))
        .find(|c| c.type_ == "ReplicaFailure")
        .map(|c| DeploymentCondition {
            type_: c.type_.clone(),
            status: c.status.clone(),
            reason: c.reason.clone(),
            message: c.message.clone(),
            last_update_time: c.last_transition_time.clone(),
            last_transition_time: c.last_transition_time.clone(),
        })
}
