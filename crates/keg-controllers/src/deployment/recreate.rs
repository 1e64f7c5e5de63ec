//! Recreate, as upstream's recreate.go: scale every old ReplicaSet to zero, wait until none
//! of their pods runs, then create (or scale up) the new ReplicaSet.

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;

use super::sync::active;
use super::util::{self, replicas};
use super::{Sync, status};
use crate::{Result, pods};

/// Whether any pod of the old ReplicaSets may still run (only finished pods may not).
fn old_pods_running(
    new_rs: Option<&ReplicaSet>,
    old: &[ReplicaSet],
    pods: &[(String, Pod)],
) -> bool {
    if util::actual_replicas(&old.iter().collect::<Vec<_>>()) > 0 {
        return true;
    }
    let new_uid = new_rs.and_then(|rs| rs.metadata.uid.as_deref());
    pods.iter()
        .filter(|(owner, _)| Some(owner.as_str()) != new_uid)
        .any(|(_, pod)| !matches!(pods::phase(pod), "Failed" | "Succeeded"))
}

impl Sync<'_> {
    /// One step of a Recreate rollout, then the status.
    pub(super) async fn rollout_recreate(&mut self) -> Result<()> {
        let (mut new_rs, mut old) = self.get_all_and_sync_revision(false).await?;
        let mut scaled_down = false;
        for rs in active(&old.iter().collect::<Vec<_>>()) {
            let (scaled, updated) = self.scale_and_record(&rs, 0).await?;
            super::replace_rs(&mut old, &updated);
            scaled_down |= scaled;
        }
        if scaled_down {
            return self.sync_rollout_status(new_rs.as_ref(), &old).await;
        }
        let pods = self.pods_by_rs().await?;
        if old_pods_running(new_rs.as_ref(), &old, &pods) {
            return self.sync_rollout_status(new_rs.as_ref(), &old).await;
        }
        if new_rs.is_none() {
            (new_rs, old) = self.get_all_and_sync_revision(true).await?;
        }
        let rs = new_rs.clone().expect("created when missing");
        let (_, updated) = self.scale_and_record(&rs, replicas(&self.d)).await?;
        new_rs = Some(updated);
        if status::complete(&self.d, &self.d.status.clone().unwrap_or_default()) {
            self.cleanup(&old).await?;
        }
        self.sync_rollout_status(new_rs.as_ref(), &old).await
    }
}
