//! Which volume a claim may bind to, as upstream's `findMatchingVolume`: a volume pre-bound
//! to the claim wins; otherwise the smallest Available volume of the claim's class whose
//! access modes, volume mode, labels (the claim's selector) and node affinity fit. The PV
//! controller asks without a node, and then leaves WaitForFirstConsumer claims to the
//! scheduler, which asks again for each candidate node.

use std::collections::{BTreeMap, HashSet};

use k8s_openapi::api::core::v1::{
    Node, NodeSelectorRequirement, NodeSelectorTerm, PersistentVolume, PersistentVolumeClaim,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use keg_apimachinery::labels::Selector;

use super::{claim_class, requested_bytes, volume_bytes, volume_class};

/// Whether the volume's claimRef names the claim (and its uid, once set).
pub fn is_bound_to(volume: &PersistentVolume, claim: &PersistentVolumeClaim) -> bool {
    let Some(claim_ref) = volume.spec.as_ref().and_then(|s| s.claim_ref.as_ref()) else {
        return false;
    };
    if claim_ref.name != claim.metadata.name || claim_ref.namespace != claim.metadata.namespace {
        return false;
    }
    match claim_ref.uid.as_deref() {
        None | Some("") => true,
        Some(uid) => claim.metadata.uid.as_deref() == Some(uid),
    }
}

/// The best volume for the claim, if any. `node` is the scheduler's candidate node (the PV
/// controller passes none); `excluded` names volumes already chosen for the pod's other claims.
pub fn find_best_match<'a>(
    claim: &PersistentVolumeClaim,
    volumes: impl IntoIterator<Item = &'a PersistentVolume>,
    node: Option<&Node>,
    delay_binding: bool,
    excluded: &HashSet<String>,
) -> Option<&'a PersistentVolume> {
    let requested = requested_bytes(claim);
    let class = claim_class(claim);
    let selector = claim.spec.as_ref().and_then(|s| s.selector.as_ref());
    let mut best: Option<(&PersistentVolume, u64)> = None;
    for volume in volumes {
        let name = volume.metadata.name.clone().unwrap_or_default();
        if excluded.contains(&name)
            || volume_mode_mismatch(claim, volume)
            || volume.metadata.deletion_timestamp.is_some()
        {
            continue;
        }
        let affinity_ok = node.is_none_or(|n| node_affinity_allows(volume, n));
        if is_bound_to(volume, claim) {
            // A volume pre-bound to the claim is its only choice: on a node it cannot
            // reach, the claim has no volume there at all.
            return affinity_ok.then_some(volume);
        }
        if node.is_none() && delay_binding {
            // The scheduler binds these, knowing the node.
            continue;
        }
        let spec = volume.spec.as_ref();
        let phase = volume.status.as_ref().and_then(|s| s.phase.as_deref());
        if phase != Some("Available")
            || spec.is_some_and(|s| s.claim_ref.is_some())
            || selector.is_some_and(|s| !selector_matches(s, volume))
            || volume_class(volume) != class
            || !affinity_ok
            // The PV controller indexes volumes by access modes, the scheduler checks
            // them: either way a volume lacking one of the claim's modes never matches.
            || !access_modes_ok(claim, volume)
        {
            continue;
        }
        let size = volume_bytes(volume);
        if size >= requested && best.is_none_or(|(_, s)| size < s) {
            best = Some((volume, size));
        }
    }
    best.map(|(v, _)| v)
}

/// Why a volume cannot serve a claim that asked for it by name, in upstream's words.
pub fn check_satisfies(
    volume: &PersistentVolume,
    claim: &PersistentVolumeClaim,
) -> Result<(), String> {
    if volume.metadata.deletion_timestamp.is_some() {
        return Err(format!(
            "the volume is marked for deletion {:?}",
            volume.metadata.name.clone().unwrap_or_default()
        ));
    }
    if volume_bytes(volume) < requested_bytes(claim) {
        return Err("requested PV is too small".into());
    }
    if volume_class(volume) != claim_class(claim) {
        return Err("storageClassName does not match".into());
    }
    if volume_mode_mismatch(claim, volume) {
        return Err("incompatible volumeMode".into());
    }
    if !access_modes_ok(claim, volume) {
        return Err("incompatible accessMode".into());
    }
    Ok(())
}

/// Whether the volume offers every access mode the claim asks for.
pub fn access_modes_ok(claim: &PersistentVolumeClaim, volume: &PersistentVolume) -> bool {
    let offered = volume
        .spec
        .as_ref()
        .and_then(|s| s.access_modes.clone())
        .unwrap_or_default();
    claim
        .spec
        .as_ref()
        .and_then(|s| s.access_modes.as_ref())
        .into_iter()
        .flatten()
        .all(|m| offered.contains(m))
}

fn volume_mode_mismatch(claim: &PersistentVolumeClaim, volume: &PersistentVolume) -> bool {
    let claim_mode = claim
        .spec
        .as_ref()
        .and_then(|s| s.volume_mode.as_deref())
        .unwrap_or("Filesystem");
    let volume_mode = volume
        .spec
        .as_ref()
        .and_then(|s| s.volume_mode.as_deref())
        .unwrap_or("Filesystem");
    claim_mode != volume_mode
}

fn selector_matches(selector: &LabelSelector, volume: &PersistentVolume) -> bool {
    let Ok(json) = serde_json::to_value(selector) else {
        return false;
    };
    let Ok(selector) = Selector::from_label_selector(&json) else {
        return false;
    };
    let labels = volume.metadata.labels.clone().unwrap_or_default();
    selector.matches(&labels)
}

/// Whether the volume's required node affinity admits the node (none admits every node).
pub fn node_affinity_allows(volume: &PersistentVolume, node: &Node) -> bool {
    let required = volume
        .spec
        .as_ref()
        .and_then(|s| s.node_affinity.as_ref())
        .and_then(|a| a.required.as_ref());
    match required {
        None => true,
        Some(selector) => terms_match(&selector.node_selector_terms, node),
    }
}

/// Whether any of the terms matches the node (upstream's MatchNodeSelectorTerms): a term
/// matches when all its expressions hold for the node's labels and all its fields for its
/// name; an empty term matches nothing.
pub fn terms_match(terms: &[NodeSelectorTerm], node: &Node) -> bool {
    let labels = node.metadata.labels.clone().unwrap_or_default();
    let name = node.metadata.name.clone().unwrap_or_default();
    terms.iter().any(|term| {
        let expressions = term.match_expressions.as_deref().unwrap_or_default();
        let fields = term.match_fields.as_deref().unwrap_or_default();
        (!expressions.is_empty() || !fields.is_empty())
            && expressions
                .iter()
                .all(|r| requirement_holds(r, labels.get(&r.key).map(String::as_str)))
            && fields
                .iter()
                .all(|r| r.key == "metadata.name" && requirement_holds(r, Some(name.as_str())))
    })
}

/// Whether a class's allowedTopologies admit a node's labels (none admits every node).
pub fn topology_allows(
    terms: Option<&[k8s_openapi::api::core::v1::TopologySelectorTerm]>,
    labels: &BTreeMap<String, String>,
) -> bool {
    let Some(terms) = terms.filter(|t| !t.is_empty()) else {
        return true;
    };
    terms.iter().any(|term| {
        term.match_label_expressions
            .iter()
            .flatten()
            .all(|e| labels.get(&e.key).is_some_and(|v| e.values.contains(v)))
    })
}

fn requirement_holds(r: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = r.values.as_deref().unwrap_or_default();
    let number = |s: &str| s.parse::<i64>().ok();
    let first = values.first().and_then(|x| number(x));
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
        "NotIn" => value.is_none_or(|v| !values.iter().any(|x| x == v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" => matches!((value.and_then(number), first), (Some(v), Some(x)) if v > x),
        "Lt" => matches!((value.and_then(number), first), (Some(v), Some(x)) if v < x),
        _ => false,
    }
}

#[cfg(test)]
mod tests;
