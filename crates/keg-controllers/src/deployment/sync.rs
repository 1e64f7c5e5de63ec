//! Finding and creating the new ReplicaSet, scaling (also proportionally, when a Deployment
//! is scaled mid-rollout), and cleaning up old revisions: upstream's sync.go.

use std::cmp::Ordering;

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Resource, ResourceExt};
use serde_json::json;

use super::util::{self, replicas, rs_replicas};
use super::{Sync, status};
use crate::{Error, Result, owners};

/// The ReplicaSet whose template is the Deployment's: the oldest such (upstream's FindNewReplicaSet).
fn find_new(
    template: &k8s_openapi::api::core::v1::PodTemplateSpec,
    owned: &[ReplicaSet],
) -> Option<ReplicaSet> {
    let mut sorted: Vec<&ReplicaSet> = owned.iter().collect();
    sorted.sort_by(|a, b| util::by_creation(a, b));
    sorted
        .into_iter()
        .find(|rs| {
            rs.spec
                .as_ref()
                .and_then(|s| s.template.as_ref())
                .is_some_and(|t| util::equal_ignore_hash(t, template))
        })
        .cloned()
}

/// ReplicaSets with replicas to run.
pub(super) fn active(sets: &[&ReplicaSet]) -> Vec<ReplicaSet> {
    sets.iter()
        .filter(|rs| rs_replicas(rs) > 0)
        .map(|rs| (*rs).clone())
        .collect()
}

impl Sync<'_> {
    /// The old ReplicaSets and the new one (upstream's getAllReplicaSetsAndSyncRevision),
    /// creating the new one when `create`; kept in `self.new_rs` and `self.old`.
    pub(super) async fn get_all_and_sync_revision(
        &mut self,
        create: bool,
    ) -> Result<(Option<ReplicaSet>, Vec<ReplicaSet>)> {
        let template = util::spec(&self.d).template;
        let existing = find_new(&template, &self.owned);
        let old: Vec<ReplicaSet> = self
            .owned
            .iter()
            .filter(|rs| {
                existing
                    .as_ref()
                    .is_none_or(|n| n.metadata.uid != rs.metadata.uid)
            })
            .cloned()
            .collect();
        let new_revision = util::max_revision(&old) + 1;
        let new_rs = match existing {
            Some(existing) => Some(self.sync_existing_new_rs(existing, new_revision).await?),
            None if create => Some(self.create_new_rs(&old, new_revision).await?),
            None => None,
        };
        Ok((new_rs, old))
    }

    async fn sync_existing_new_rs(
        &mut self,
        existing: ReplicaSet,
        new_revision: i64,
    ) -> Result<ReplicaSet> {
        let mut copy = existing.clone();
        let annotations_changed = util::set_new_rs_annotations(
            &self.d,
            &mut copy,
            new_revision,
            false,
            util::max_surge(&self.d)?,
        );
        let min_ready = util::spec(&self.d).min_ready_seconds;
        let spec = copy.spec.get_or_insert_with(Default::default);
        if annotations_changed || spec.min_ready_seconds.unwrap_or(0) != min_ready.unwrap_or(0) {
            spec.min_ready_seconds = min_ready;
            let updated = self
                .sets
                .replace(&copy.name_any(), &PostParams::default(), &copy)
                .await?;
            super::replace_rs(&mut self.owned, &updated);
            return Ok(updated);
        }
        let revision = copy
            .annotations()
            .get(util::REVISION)
            .cloned()
            .unwrap_or_default();
        self.set_revision(&revision).await?;
        if status::has_progress_deadline(&self.d) && self.condition("Progressing").is_none() {
            let message = format!("Found new replica set \"{}\"", copy.name_any());
            self.set_condition(status::condition(
                "Progressing",
                "True",
                "FoundNewReplicaSet",
                message,
                self.now,
            ));
            self.update_status().await?;
        }
        Ok(copy)
    }

    async fn create_new_rs(&mut self, old: &[ReplicaSet], new_revision: i64) -> Result<ReplicaSet> {
        let spec = util::spec(&self.d);
        let collision_count = self.d.status.as_ref().and_then(|s| s.collision_count);
        let hash = util::template_hash(&spec.template, collision_count);
        let mut template = spec.template.clone();
        let meta = template.metadata.get_or_insert_with(Default::default);
        meta.labels
            .get_or_insert_with(Default::default)
            .insert(util::POD_TEMPLATE_HASH.into(), hash.clone());
        let mut selector = spec.selector.clone();
        selector
            .match_labels
            .get_or_insert_with(Default::default)
            .insert(util::POD_TEMPLATE_HASH.into(), hash.clone());
        let mut rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(format!("{}-{hash}", self.d.name_any())),
                namespace: self.d.namespace(),
                owner_references: Some(vec![owners::controller_ref(&self.d)]),
                labels: meta.labels.clone(),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(0),
                min_ready_seconds: spec.min_ready_seconds,
                selector,
                template: Some(template),
            }),
            status: None,
        };
        let mut all: Vec<&ReplicaSet> = old.iter().collect();
        all.push(&rs);
        let count = self.new_rs_new_replicas(&all, &rs)?;
        rs.spec.as_mut().expect("set above").replicas = Some(count);
        util::set_new_rs_annotations(
            &self.d,
            &mut rs,
            new_revision,
            true,
            util::max_surge(&self.d)?,
        );
        let (created, already_existed) = match self.sets.create(&PostParams::default(), &rs).await {
            Ok(created) => (created, false),
            Err(kube::Error::Api(s)) if s.code == 409 => {
                (self.existing_or_collision(&rs).await?, true)
            }
            Err(e) => return Err(self.failed_create(&rs, e).await),
        };
        let reference = self.d.object_ref(&());
        if !already_existed && count > 0 {
            let message = format!(
                "Scaled up replica set {} from 0 to {count}",
                created.name_any()
            );
            self.ctx
                .events
                .normal(&reference, "ScalingReplicaSet", "Scale", message)
                .await;
        }
        self.set_revision(&new_revision.to_string()).await?;
        if !already_existed && status::has_progress_deadline(&self.d) {
            let message = format!("Created new replica set \"{}\"", created.name_any());
            self.set_condition(status::condition(
                "Progressing",
                "True",
                "NewReplicaSetCreated",
                message,
                self.now,
            ));
            self.update_status().await?;
        }
        self.owned.push(created.clone());
        Ok(created)
    }

    /// A ReplicaSet of that name exists: ours with our template (a create whose answer was
    /// lost), or a hash collision, which bumps `status.collisionCount` for another name.
    async fn existing_or_collision(&mut self, rs: &ReplicaSet) -> Result<ReplicaSet> {
        let existing = self.sets.get(&rs.name_any()).await?;
        let template = util::spec(&self.d).template;
        let ours = owners::is_controlled_by(
            &existing.metadata,
            self.d.metadata.uid.as_deref().unwrap_or_default(),
        );
        if ours
            && existing
                .spec
                .as_ref()
                .and_then(|s| s.template.as_ref())
                .is_some_and(|t| util::equal_ignore_hash(t, &template))
        {
            return Ok(existing);
        }
        let status = self.d.status.get_or_insert_with(Default::default);
        status.collision_count = Some(status.collision_count.unwrap_or(0) + 1);
        self.update_status().await?;
        Err(Error::Invalid(format!(
            "replica set {} already exists with another template; trying another name",
            rs.name_any()
        )))
    }

    async fn failed_create(&mut self, rs: &ReplicaSet, error: kube::Error) -> Error {
        let message = format!(
            "Failed to create new replica set \"{}\": {}",
            rs.name_any(),
            crate::api_message(&error)
        );
        if status::has_progress_deadline(&self.d) {
            self.set_condition(status::condition(
                "Progressing",
                "False",
                "ReplicaSetCreateError",
                message.clone(),
                self.now,
            ));
            // The create error is what gets reported; a failed status write adds nothing.
            let _ = self.update_status().await;
        }
        self.ctx
            .events
            .warning(
                &self.d.object_ref(&()),
                "ReplicaSetCreateError",
                "Create",
                message,
            )
            .await;
        error.into()
    }

    /// Records the current revision on the Deployment. Upstream writes it with the status;
    /// a status write may not change metadata on every server, so it is patched here.
    async fn set_revision(&mut self, revision: &str) -> Result<()> {
        if self.d.annotations().get(util::REVISION).map(String::as_str) == Some(revision) {
            return Ok(());
        }
        let patch = json!({"metadata": {"annotations": {util::REVISION: revision}}});
        let patched = self
            .deployments
            .patch(
                &self.d.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await?;
        self.d.metadata = patched.metadata;
        Ok(())
    }

    /// Replicas for a new ReplicaSet: all of them for Recreate, up to the surge for RollingUpdate.
    pub(super) fn new_rs_new_replicas(
        &self,
        all: &[&ReplicaSet],
        new_rs: &ReplicaSet,
    ) -> Result<i32> {
        let desired = replicas(&self.d);
        if !util::is_rolling(&self.d) {
            return Ok(desired);
        }
        let rolling = self
            .d
            .spec
            .as_ref()
            .and_then(|s| s.strategy.as_ref())
            .and_then(|s| s.rolling_update.as_ref());
        let surge = util::scaled_value(rolling.and_then(|r| r.max_surge.as_ref()), desired, true)?;
        let current = util::spec_replicas(all);
        let max_total = desired + surge;
        if current >= max_total {
            return Ok(rs_replicas(new_rs));
        }
        Ok(rs_replicas(new_rs) + (max_total - current).min(desired - rs_replicas(new_rs)))
    }

    /// Scales a ReplicaSet and records a ScalingReplicaSet event; whether it was scaled.
    pub(super) async fn scale_and_record(
        &mut self,
        rs: &ReplicaSet,
        new_scale: i32,
    ) -> Result<(bool, ReplicaSet)> {
        let current = rs_replicas(rs);
        if current == new_scale {
            return Ok((false, rs.clone()));
        }
        self.scale_rs(
            rs,
            new_scale,
            if current < new_scale { "up" } else { "down" },
        )
        .await
    }

    /// Sets a ReplicaSet's replicas and replicas annotations (upstream's scaleReplicaSet).
    pub(super) async fn scale_rs(
        &mut self,
        rs: &ReplicaSet,
        new_scale: i32,
        operation: &str,
    ) -> Result<(bool, ReplicaSet)> {
        let desired = replicas(&self.d);
        let max = desired + util::max_surge(&self.d)?;
        let old_scale = rs_replicas(rs);
        let resize = old_scale != new_scale;
        let stale = util::desired_replicas_annotation(rs) != Some(desired)
            || util::max_replicas_annotation(rs) != Some(max);
        if !resize && !stale {
            return Ok((false, rs.clone()));
        }
        let mut copy = rs.clone();
        copy.spec.get_or_insert_with(Default::default).replicas = Some(new_scale);
        util::set_replicas_annotations(&mut copy, desired, max);
        let updated = self
            .sets
            .replace(&rs.name_any(), &PostParams::default(), &copy)
            .await?;
        super::replace_rs(&mut self.owned, &updated);
        if resize {
            let message = format!(
                "Scaled {operation} replica set {} from {old_scale} to {new_scale}",
                updated.name_any()
            );
            self.ctx
                .events
                .normal(
                    &self.d.object_ref(&()),
                    "ScalingReplicaSet",
                    "Scale",
                    message,
                )
                .await;
        }
        Ok((resize, updated))
    }

    /// Whether `spec.replicas` changed since the active ReplicaSets were last scaled.
    pub(super) async fn is_scaling_event(&mut self) -> Result<bool> {
        let (new_rs, old) = self.get_all_and_sync_revision(false).await?;
        let all: Vec<&ReplicaSet> = old.iter().chain(new_rs.as_ref()).collect();
        let desired = replicas(&self.d);
        Ok(active(&all)
            .iter()
            .any(|rs| util::desired_replicas_annotation(rs).is_some_and(|r| r != desired)))
    }

    /// A sync without rolling: scaling, and for a paused Deployment history cleanup.
    pub(super) async fn sync(&mut self) -> Result<()> {
        let (new_rs, old) = self.get_all_and_sync_revision(false).await?;
        let (new_rs, old) = self.scale(new_rs, old).await?;
        if util::spec(&self.d).paused == Some(true) {
            self.cleanup(&old).await?;
        }
        self.sync_deployment_status(new_rs.as_ref(), &old).await
    }

    /// Deletes the oldest ReplicaSets beyond revisionHistoryLimit that run nothing.
    pub(super) async fn cleanup(&mut self, old: &[ReplicaSet]) -> Result<()> {
        let Some(limit) = util::spec(&self.d).revision_history_limit else {
            return Ok(());
        };
        let mut cleanable: Vec<&ReplicaSet> = old
            .iter()
            .filter(|rs| rs.metadata.deletion_timestamp.is_none())
            .collect();
        let excess = cleanable
            .len()
            .saturating_sub(usize::try_from(limit).unwrap_or(0));
        cleanable.sort_by(|a, b| util::by_revision(a, b));
        for rs in cleanable.into_iter().take(excess) {
            let status = rs.status.clone().unwrap_or_default();
            let settled =
                status.observed_generation.unwrap_or(0) >= rs.metadata.generation.unwrap_or(0);
            if status.replicas != 0 || rs_replicas(rs) != 0 || !settled {
                continue;
            }
            crate::gone_is_fine(self.sets.delete(&rs.name_any(), &Default::default()).await)?;
        }
        Ok(())
    }
}

/// Larger first; among equals newer first (`newer`) or older first.
pub(super) fn by_size(a: &ReplicaSet, b: &ReplicaSet, newer: bool) -> Ordering {
    let by_age = if newer {
        util::by_creation(b, a)
    } else {
        util::by_creation(a, b)
    };
    rs_replicas(b).cmp(&rs_replicas(a)).then(by_age)
}
