//! Scaling a Deployment's ReplicaSets when `spec.replicas` changes: the one active set takes
//! the new size; mid-rollout, the change is shared among active sets in proportion to their
//! size (upstream's scale, GetProportion and getReplicaSetFraction).

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};

use super::sync::{active, by_size};
use super::util::{self, replicas, rs_replicas};
use super::{Sync, store};
use crate::Result;

/// The only active ReplicaSet, or the newest when none is active; none with several active.
fn active_or_latest(new_rs: Option<&ReplicaSet>, old: &[ReplicaSet]) -> Option<ReplicaSet> {
    let mut newest_first: Vec<&ReplicaSet> = old.iter().collect();
    newest_first.sort_by(|a, b| util::by_creation(b, a));
    let all: Vec<&ReplicaSet> = newest_first.iter().copied().chain(new_rs).collect();
    let running = active(&all);
    match running.len() {
        0 => new_rs.or(newest_first.first().copied()).cloned(),
        1 => running.into_iter().next(),
        _ => None,
    }
}

/// Whether the new ReplicaSet already runs all replicas, available.
fn is_saturated(d: &Deployment, rs: &ReplicaSet) -> bool {
    let available = rs
        .status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0);
    util::desired_replicas_annotation(rs) == Some(replicas(d)) && available == replicas(d)
}

/// This ReplicaSet's share of `to_add` (negative to remove), given `added` so far.
fn proportion(d: &Deployment, rs: &ReplicaSet, to_add: i32, added: i32, surge: i32) -> i32 {
    if rs_replicas(rs) == 0 || to_add == 0 || to_add == added {
        return 0;
    }
    let fraction = fraction(d, rs, surge);
    let allowed = to_add - added;
    if to_add > 0 {
        fraction.min(allowed)
    } else {
        fraction.max(allowed)
    }
}

/// How much this ReplicaSet grows or shrinks to keep its share of the Deployment's new size.
fn fraction(d: &Deployment, rs: &ReplicaSet, surge: i32) -> i32 {
    if replicas(d) == 0 {
        return -rs_replicas(rs);
    }
    let deployment_replicas = replicas(d) + surge;
    let annotated = util::max_replicas_annotation(rs)
        .unwrap_or_else(|| d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0));
    if annotated == 0 {
        return 0;
    }
    let size = f64::from(rs_replicas(rs)) * f64::from(deployment_replicas) / f64::from(annotated);
    size.round() as i32 - rs_replicas(rs)
}

impl Sync<'_> {
    /// Scales to `spec.replicas`; returns the ReplicaSets as they are afterwards.
    pub(super) async fn scale(
        &mut self,
        mut new_rs: Option<ReplicaSet>,
        mut old: Vec<ReplicaSet>,
    ) -> Result<(Option<ReplicaSet>, Vec<ReplicaSet>)> {
        let desired = replicas(&self.d);
        if let Some(rs) = active_or_latest(new_rs.as_ref(), &old) {
            if rs_replicas(&rs) != desired {
                let (_, updated) = self.scale_and_record(&rs, desired).await?;
                store(&mut new_rs, &mut old, updated);
            }
            return Ok((new_rs, old));
        }
        if new_rs.as_ref().is_some_and(|rs| is_saturated(&self.d, rs)) {
            for rs in active(&old.iter().collect::<Vec<_>>()) {
                let (_, updated) = self.scale_and_record(&rs, 0).await?;
                store(&mut new_rs, &mut old, updated);
            }
            return Ok((new_rs, old));
        }
        if !util::is_rolling(&self.d) {
            return Ok((new_rs, old));
        }
        let mut all = active(&old.iter().chain(new_rs.as_ref()).collect::<Vec<_>>());
        let surge = util::max_surge(&self.d)?;
        let allowed = if desired > 0 { desired + surge } else { 0 };
        let to_add = allowed - util::spec_replicas(&all.iter().collect::<Vec<_>>());
        all.sort_by(|a, b| by_size(a, b, to_add > 0));
        let mut added = 0;
        let mut sizes: Vec<i32> = all
            .iter()
            .map(|rs| {
                let share = proportion(&self.d, rs, to_add, added, surge);
                added += share;
                rs_replicas(rs) + share
            })
            .collect();
        if let Some(first) = sizes.first_mut().filter(|_| to_add != 0) {
            // Whatever rounding left over goes to the largest ReplicaSet.
            *first = (*first + to_add - added).max(0);
        }
        let operation = if to_add > 0 { "up" } else { "down" };
        for (rs, size) in all.iter().zip(sizes) {
            // Also called when the size stays, to bring the replicas annotations up to date.
            let (_, updated) = self.scale_rs(rs, size, operation).await?;
            store(&mut new_rs, &mut old, updated);
        }
        Ok((new_rs, old))
    }
}
