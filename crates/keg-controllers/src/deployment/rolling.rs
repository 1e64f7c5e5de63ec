//! RollingUpdate, as upstream's rolling.go: scale the new ReplicaSet up within maxSurge, the
//! old ones down within maxUnavailable (unhealthy replicas first), one step per sync.

use k8s_openapi::api::apps::v1::ReplicaSet;

use super::sync::active;
use super::util::{self, replicas, rs_replicas};
use super::{Sync, status};
use crate::Result;

fn available(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0)
}

impl Sync<'_> {
    /// One step of a rolling update, then the status.
    pub(super) async fn rollout_rolling(&mut self) -> Result<()> {
        let (new_rs, old) = self.get_all_and_sync_revision(true).await?;
        let mut new_rs = new_rs.expect("created when missing");
        let mut old = old;
        if self.reconcile_new_rs(&mut new_rs, &old).await? {
            return self.sync_rollout_status(Some(&new_rs), &old).await;
        }
        if self.reconcile_old_rss(&new_rs, &mut old).await? {
            return self.sync_rollout_status(Some(&new_rs), &old).await;
        }
        if status::complete(&self.d, &self.d.status.clone().unwrap_or_default()) {
            self.cleanup(&old).await?;
        }
        self.sync_rollout_status(Some(&new_rs), &old).await
    }

    /// Scales the new ReplicaSet toward `spec.replicas` within the surge; whether it scaled.
    async fn reconcile_new_rs(
        &mut self,
        new_rs: &mut ReplicaSet,
        old: &[ReplicaSet],
    ) -> Result<bool> {
        let desired = replicas(&self.d);
        let target = match rs_replicas(new_rs).cmp(&desired) {
            std::cmp::Ordering::Equal => return Ok(false),
            std::cmp::Ordering::Greater => desired,
            std::cmp::Ordering::Less => {
                let all: Vec<&ReplicaSet> = old.iter().chain(std::iter::once(&*new_rs)).collect();
                self.new_rs_new_replicas(&all, new_rs)?
            }
        };
        let (scaled, updated) = self.scale_and_record(new_rs, target).await?;
        *new_rs = updated;
        Ok(scaled)
    }

    /// Scales old ReplicaSets down as far as maxUnavailable allows; whether any scaled.
    async fn reconcile_old_rss(
        &mut self,
        new_rs: &ReplicaSet,
        old: &mut [ReplicaSet],
    ) -> Result<bool> {
        let mut active_old = active(&old.iter().collect::<Vec<_>>());
        let old_pods = util::spec_replicas(&active_old.iter().collect::<Vec<_>>());
        if old_pods == 0 {
            return Ok(false);
        }
        let all_pods = old_pods + rs_replicas(new_rs);
        let min_available = replicas(&self.d) - util::max_unavailable(&self.d)?;
        let new_unavailable = rs_replicas(new_rs) - available(new_rs);
        let max_scaled_down = all_pods - min_available - new_unavailable;
        if max_scaled_down <= 0 {
            return Ok(false);
        }
        // Unhealthy replicas first: they would otherwise block the rollout until it times out.
        let cleaned = self
            .cleanup_unhealthy(&mut active_old, max_scaled_down)
            .await?;
        let scaled = self.scale_down_old(new_rs, &mut active_old).await?;
        for rs in &active_old {
            super::replace_rs(old, rs);
        }
        Ok(cleaned + scaled > 0)
    }

    async fn cleanup_unhealthy(&mut self, old: &mut [ReplicaSet], max_cleanup: i32) -> Result<i32> {
        old.sort_by(util::by_creation);
        let mut total = 0;
        for rs in old.iter_mut() {
            if total >= max_cleanup {
                break;
            }
            let unhealthy = rs_replicas(rs) - available(rs);
            if rs_replicas(rs) == 0 || unhealthy == 0 {
                continue;
            }
            let count = (max_cleanup - total).min(unhealthy);
            let (_, updated) = self.scale_and_record(rs, rs_replicas(rs) - count).await?;
            *rs = updated;
            total += count;
        }
        Ok(total)
    }

    async fn scale_down_old(&mut self, new_rs: &ReplicaSet, old: &mut [ReplicaSet]) -> Result<i32> {
        let min_available = replicas(&self.d) - util::max_unavailable(&self.d)?;
        let all: Vec<&ReplicaSet> = old.iter().chain(std::iter::once(new_rs)).collect();
        let available_pods = util::available_replicas(&all);
        if available_pods <= min_available {
            return Ok(0);
        }
        let to_scale_down = available_pods - min_available;
        old.sort_by(util::by_creation);
        let mut total = 0;
        for rs in old.iter_mut() {
            if total >= to_scale_down {
                break;
            }
            if rs_replicas(rs) == 0 {
                continue;
            }
            let count = rs_replicas(rs).min(to_scale_down - total);
            let (_, updated) = self.scale_and_record(rs, rs_replicas(rs) - count).await?;
            *rs = updated;
            total += count;
        }
        Ok(total)
    }
}
