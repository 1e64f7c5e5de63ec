//! Pure helpers of the deployment controller, as upstream's deployment_util.go: annotations,
//! revisions, surge and unavailability, the pod-template-hash, and counts over ReplicaSets.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, ReplicaSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;

use crate::{Error, Result};

/// The revision of a Deployment's template a ReplicaSet carries (and the Deployment, its latest).
pub const REVISION: &str = "deployment.kubernetes.io/revision";
/// The earlier revisions a ReplicaSet had before a rollback made it current again.
pub const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
/// The Deployment's replicas when the ReplicaSet was last scaled.
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
/// The Deployment's replicas plus surge when the ReplicaSet was last scaled.
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
/// The label telling apart the pods of a Deployment's ReplicaSets.
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";
/// Deployment annotations that are not copied onto its ReplicaSets.
const NOT_COPIED: [&str; 6] = [
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    REVISION_HISTORY,
    DESIRED_REPLICAS,
    MAX_REPLICAS,
    "deprecated.deployment.rollback.to",
];
/// How long the revision-history annotation may grow.
const MAX_REVISION_HISTORY_CHARS: usize = 2000;

/// The Deployment's spec (defaulted by the API server, so never really missing).
pub fn spec(d: &Deployment) -> DeploymentSpec {
    d.spec.clone().unwrap_or_default()
}

/// `spec.replicas` of a Deployment.
pub fn replicas(d: &Deployment) -> i32 {
    d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

/// `spec.replicas` of a ReplicaSet.
pub fn rs_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

/// Whether the Deployment rolls by RollingUpdate (the default).
pub fn is_rolling(d: &Deployment) -> bool {
    d.spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.type_.as_deref())
        .unwrap_or("RollingUpdate")
        == "RollingUpdate"
}

/// An int or a percentage of `total`, rounded up or down (upstream's GetScaledValueFromIntOrPercent).
pub fn scaled_value(value: Option<&IntOrString>, total: i32, round_up: bool) -> Result<i32> {
    match value {
        None => Ok(0),
        Some(IntOrString::Int(n)) => Ok(*n),
        Some(IntOrString::String(s)) => {
            let percent: i64 = s
                .strip_suffix('%')
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| {
                    Error::Invalid(format!(
                        "invalid value for IntOrString: invalid value {s:?}"
                    ))
                })?;
            let scaled = percent * i64::from(total);
            let value = if round_up {
                (scaled + 99).div_euclid(100)
            } else {
                scaled.div_euclid(100)
            };
            Ok(i32::try_from(value).unwrap_or(i32::MAX))
        }
    }
}

/// Surge and unavailability, never both zero (upstream's ResolveFenceposts).
fn fenceposts(d: &Deployment) -> Result<(i32, i32)> {
    let rolling = d
        .spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.rolling_update.clone())
        .unwrap_or_default();
    let desired = replicas(d);
    let surge = scaled_value(rolling.max_surge.as_ref(), desired, true)?;
    let unavailable = scaled_value(rolling.max_unavailable.as_ref(), desired, false)?;
    Ok(if surge == 0 && unavailable == 0 {
        (0, 1)
    } else {
        (surge, unavailable)
    })
}

/// How many pods above `spec.replicas` a rollout may run.
pub fn max_surge(d: &Deployment) -> Result<i32> {
    if !is_rolling(d) {
        return Ok(0);
    }
    Ok(fenceposts(d)?.0)
}

/// How many of `spec.replicas` may be unavailable during a rollout.
pub fn max_unavailable(d: &Deployment) -> Result<i32> {
    if !is_rolling(d) || replicas(d) == 0 {
        return Ok(0);
    }
    Ok(fenceposts(d)?.1.min(replicas(d)))
}

/// A template as compared and hashed: without the pod-template-hash label, and with empty
/// and null fields dropped, as upstream's semantic equality treats nil and empty alike.
fn normalized(template: &PodTemplateSpec) -> Value {
    let mut value = serde_json::to_value(template).unwrap_or(Value::Null);
    if let Some(labels) = value
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        labels.remove(POD_TEMPLATE_HASH);
    }
    prune(&mut value);
    value
}

fn prune(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.values_mut().for_each(prune);
            map.retain(|_, v| !is_empty(v));
        }
        Value::Array(items) => items.iter_mut().for_each(prune),
        _ => {}
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Object(map) => map.is_empty(),
        Value::Array(items) => items.is_empty(),
        _ => false,
    }
}

/// Whether two templates are the same but for the pod-template-hash label.
pub fn equal_ignore_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    normalized(a) == normalized(b)
}

/// The pod-template-hash of a template: FNV-1a (32 bits) of the template, then of the
/// collision count, encoded with upstream's SafeEncodeString alphabet. Upstream hashes a Go
/// dump of the struct, so the values differ from upstream's, not their form.
pub fn template_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut hash: u32 = 0x811c_9dc5;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            hash ^= u32::from(*b);
            hash = hash.wrapping_mul(0x0100_0193);
        }
    };
    feed(normalized(template).to_string().as_bytes());
    if let Some(count) = collision_count {
        feed(&count.to_le_bytes());
    }
    hash.to_string()
        .bytes()
        .map(|b| ALPHABET[usize::from(b) % ALPHABET.len()] as char)
        .collect()
}

/// A ReplicaSet's revision; 0 when it has none (or an unreadable one).
pub fn revision(rs: &ReplicaSet) -> i64 {
    annotation(&rs.metadata.annotations, REVISION)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

/// The highest revision among ReplicaSets.
pub fn max_revision(sets: &[ReplicaSet]) -> i64 {
    sets.iter().map(revision).max().unwrap_or(0)
}

fn annotation<'a>(annotations: &'a Option<BTreeMap<String, String>>, key: &str) -> Option<&'a str> {
    annotations.as_ref()?.get(key).map(String::as_str)
}

/// The Deployment replicas a ReplicaSet was last scaled for.
pub fn desired_replicas_annotation(rs: &ReplicaSet) -> Option<i32> {
    annotation(&rs.metadata.annotations, DESIRED_REPLICAS)?
        .parse()
        .ok()
}

/// The Deployment replicas plus surge a ReplicaSet was last scaled for.
pub fn max_replicas_annotation(rs: &ReplicaSet) -> Option<i32> {
    annotation(&rs.metadata.annotations, MAX_REPLICAS)?
        .parse()
        .ok()
}

/// Sets the desired- and max-replicas annotations; whether anything changed.
pub fn set_replicas_annotations(rs: &mut ReplicaSet, desired: i32, max: i32) -> bool {
    let annotations = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    let mut changed = false;
    for (key, value) in [(DESIRED_REPLICAS, desired), (MAX_REPLICAS, max)] {
        if annotations.get(key) != Some(&value.to_string()) {
            annotations.insert(key.to_string(), value.to_string());
            changed = true;
        }
    }
    changed
}

/// Copies the Deployment's annotations and bumps the new ReplicaSet's revision to
/// `new_revision` when it is lower, keeping the revisions it had in revision-history (a
/// rollback makes an old ReplicaSet new again). `creating` adds the replicas annotations.
/// Returns whether anything changed (upstream's SetNewReplicaSetAnnotations).
pub fn set_new_rs_annotations(
    d: &Deployment,
    rs: &mut ReplicaSet,
    new_revision: i64,
    creating: bool,
    max_surge: i32,
) -> bool {
    let mut changed = false;
    let annotations = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    for (key, value) in d.metadata.annotations.iter().flatten() {
        if !NOT_COPIED.contains(&key.as_str()) && annotations.get(key) != Some(value) {
            annotations.insert(key.clone(), value.clone());
            changed = true;
        }
    }
    let old = annotations.get(REVISION).cloned();
    let old_revision = match old.as_deref().map(str::parse::<i64>) {
        None => 0,
        Some(Ok(r)) => r,
        Some(Err(_)) => return changed, // unreadable: leave it alone, as upstream
    };
    if old_revision < new_revision {
        annotations.insert(REVISION.into(), new_revision.to_string());
        changed = true;
        if let Some(old) = old {
            append_revision_history(annotations, &old);
        }
    }
    if creating {
        let desired = replicas(d);
        changed |= set_replicas_annotations(rs, desired, desired + max_surge);
    }
    changed
}

fn append_revision_history(annotations: &mut BTreeMap<String, String>, old: &str) {
    let history = annotations
        .get(REVISION_HISTORY)
        .cloned()
        .unwrap_or_default();
    if history.is_empty() {
        annotations.insert(REVISION_HISTORY.into(), old.to_string());
        return;
    }
    let mut revisions: Vec<&str> = history.split(',').collect();
    let mut length = history.len() + old.len() + 1;
    let mut start = 0;
    while length > MAX_REVISION_HISTORY_CHARS && start < revisions.len() {
        length -= revisions[start].len() + 1;
        start += 1;
    }
    if length <= MAX_REVISION_HISTORY_CHARS {
        revisions.drain(..start);
        revisions.push(old);
        annotations.insert(REVISION_HISTORY.into(), revisions.join(","));
    }
}

/// Sum of `spec.replicas`.
pub fn spec_replicas(sets: &[&ReplicaSet]) -> i32 {
    sets.iter().map(|rs| rs_replicas(rs)).sum()
}

/// Sum of `status.replicas`.
pub fn actual_replicas(sets: &[&ReplicaSet]) -> i32 {
    sets.iter()
        .map(|rs| rs.status.as_ref().map_or(0, |s| s.replicas))
        .sum()
}

/// Sum of `status.readyReplicas`.
pub fn ready_replicas(sets: &[&ReplicaSet]) -> i32 {
    sets.iter()
        .map(|rs| {
            rs.status
                .as_ref()
                .and_then(|s| s.ready_replicas)
                .unwrap_or(0)
        })
        .sum()
}

/// Sum of `status.availableReplicas`.
pub fn available_replicas(sets: &[&ReplicaSet]) -> i32 {
    sets.iter()
        .map(|rs| {
            rs.status
                .as_ref()
                .and_then(|s| s.available_replicas)
                .unwrap_or(0)
        })
        .sum()
}

/// Creation time then name: upstream's ReplicaSetsByCreationTimestamp.
pub fn by_creation(a: &ReplicaSet, b: &ReplicaSet) -> std::cmp::Ordering {
    a.metadata
        .creation_timestamp
        .cmp(&b.metadata.creation_timestamp)
        .then_with(|| a.metadata.name.cmp(&b.metadata.name))
}

/// Revision then creation: upstream's ReplicaSetsByRevision.
pub fn by_revision(a: &ReplicaSet, b: &ReplicaSet) -> std::cmp::Ordering {
    revision(a)
        .cmp(&revision(b))
        .then_with(|| by_creation(a, b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_round_as_upstream() {
        let pct = IntOrString::String("25%".into());
        assert_eq!(scaled_value(Some(&pct), 3, true).unwrap(), 1);
        assert_eq!(scaled_value(Some(&pct), 3, false).unwrap(), 0);
        assert_eq!(scaled_value(Some(&pct), 10, true).unwrap(), 3);
        assert!(scaled_value(Some(&IntOrString::String("x".into())), 3, true).is_err());
    }

    #[test]
    fn hash_ignores_its_own_label_and_uses_the_safe_alphabet() {
        let mut template = PodTemplateSpec::default();
        let hash = template_hash(&template, None);
        assert!(
            hash.chars()
                .all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c))
        );
        template.metadata = Some(Default::default());
        template.metadata.as_mut().unwrap().labels =
            Some([(POD_TEMPLATE_HASH.to_string(), hash.clone())].into());
        assert_eq!(template_hash(&template, None), hash);
        assert_ne!(template_hash(&template, Some(1)), hash);
        assert!(equal_ignore_hash(&template, &PodTemplateSpec::default()));
    }

    #[test]
    fn rollback_keeps_revision_history() {
        let d = Deployment::default();
        let mut rs = ReplicaSet::default();
        rs.metadata.annotations = Some([(REVISION.to_string(), "1".to_string())].into());
        assert!(set_new_rs_annotations(&d, &mut rs, 3, false, 0));
        assert_eq!(revision(&rs), 3);
        assert!(set_new_rs_annotations(&d, &mut rs, 5, false, 0));
        assert_eq!(
            rs.metadata.annotations.as_ref().unwrap()[REVISION_HISTORY],
            "1,3"
        );
        assert!(!set_new_rs_annotations(&d, &mut rs, 4, false, 0));
    }
}
