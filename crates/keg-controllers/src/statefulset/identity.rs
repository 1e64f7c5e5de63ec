//! A StatefulSet pod's identity: its name and ordinal, its hostname under the set's
//! Service, its labels, and its claims from `volumeClaimTemplates`.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, Pod, PodTemplateSpec, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::{Resource, ResourceExt};

use crate::owners;
use crate::pod_control::pod_from_template;

/// The label a pod carries with the name of its revision.
pub const REVISION_LABEL: &str = "controller-revision-hash";
/// The label with the pod's own name (a Service can select one pod with it).
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
/// The label with the pod's ordinal.
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";

/// The ordinal in a pod's name (`web-2` of set `web` is 2), if it is one of the set's.
pub fn ordinal_of(set: &str, pod: &str) -> Option<i32> {
    let rest = pod.strip_prefix(set)?.strip_prefix('-')?;
    // Only the name the set itself gives: no sign, no leading zeros.
    let padded = rest.len() > 1 && rest.starts_with('0');
    if rest.starts_with('+') || padded {
        return None;
    }
    rest.parse().ok()
}

/// The name of the pod with `ordinal`.
pub fn pod_name(set: &StatefulSet, ordinal: i32) -> String {
    format!("{}-{ordinal}", set.name_any())
}

/// The name of the claim from template `template` for the pod with `ordinal`.
pub fn claim_name(set: &StatefulSet, template: &str, ordinal: i32) -> String {
    format!("{template}-{}-{ordinal}", set.name_any())
}

/// The pod with `ordinal` from a revision's template.
pub fn new_pod(set: &StatefulSet, template: &PodTemplateSpec, revision: &str, ordinal: i32) -> Pod {
    let name = pod_name(set, ordinal);
    let mut pod = pod_from_template(set, Some(template));
    pod.metadata.generate_name = None;
    pod.metadata.name = Some(name.clone());
    let labels = pod.metadata.labels.get_or_insert_default();
    labels.insert(REVISION_LABEL.into(), revision.into());
    labels.insert(POD_NAME_LABEL.into(), name.clone());
    labels.insert(POD_INDEX_LABEL.into(), ordinal.to_string());
    let spec = pod.spec.get_or_insert_default();
    spec.hostname = Some(name);
    let service = set.spec.as_ref().and_then(|s| s.service_name.clone());
    spec.subdomain = service.filter(|s| !s.is_empty());
    let volumes = spec.volumes.get_or_insert_default();
    for template in claim_templates(set) {
        let volume_name = template.metadata.name.clone().unwrap_or_default();
        let volume = Volume {
            name: volume_name.clone(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim_name(set, &volume_name, ordinal),
                read_only: None,
            }),
            ..Default::default()
        };
        match volumes.iter_mut().find(|v| v.name == volume_name) {
            Some(existing) => *existing = volume,
            None => volumes.push(volume),
        }
    }
    pod
}

/// The set's volume claim templates.
pub fn claim_templates(set: &StatefulSet) -> Vec<PersistentVolumeClaim> {
    set.spec
        .as_ref()
        .and_then(|s| s.volume_claim_templates.clone())
        .unwrap_or_default()
}

/// The claim from `template` for the pod with `ordinal`: the template with the set's
/// selector labels added, and the owner the retention policy asks for (the set, when claims
/// go with it).
pub fn new_claim(
    set: &StatefulSet,
    template: &PersistentVolumeClaim,
    ordinal: i32,
) -> PersistentVolumeClaim {
    let template_name = template.metadata.name.clone().unwrap_or_default();
    let mut labels: BTreeMap<String, String> = template.metadata.labels.clone().unwrap_or_default();
    if let Some(selector) = set
        .spec
        .as_ref()
        .and_then(|s| s.selector.match_labels.clone())
    {
        labels.extend(selector);
    }
    let owners = (retention(set, "whenDeleted") == "Delete").then(|| vec![set_owner(set)]);
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(claim_name(set, &template_name, ordinal)),
            namespace: set.namespace(),
            labels: Some(labels),
            annotations: template.metadata.annotations.clone(),
            owner_references: owners,
            ..Default::default()
        },
        spec: template.spec.clone(),
        status: None,
    }
}

/// `whenDeleted` or `whenScaled` of the claim retention policy (Retain by default).
pub fn retention(set: &StatefulSet, which: &str) -> String {
    let policy = set
        .spec
        .as_ref()
        .and_then(|s| s.persistent_volume_claim_retention_policy.as_ref());
    let value = match which {
        "whenDeleted" => policy.and_then(|p| p.when_deleted.clone()),
        _ => policy.and_then(|p| p.when_scaled.clone()),
    };
    value.unwrap_or_else(|| "Retain".into())
}

/// A reference to the set as an owner that is not the claim's controller.
fn set_owner(set: &StatefulSet) -> OwnerReference {
    OwnerReference {
        controller: Some(true),
        block_owner_deletion: Some(true),
        ..owners::controller_ref(set)
    }
}

/// A reference to a pod as its claim's owner (a claim of a scaled-down ordinal goes with
/// its pod under `whenScaled: Delete`).
pub fn pod_owner(pod: &Pod) -> OwnerReference {
    OwnerReference {
        api_version: "v1".into(),
        kind: "Pod".into(),
        name: pod.name_any(),
        uid: pod.meta().uid.clone().unwrap_or_default(),
        controller: Some(false),
        block_owner_deletion: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinals_come_from_names_of_the_set_only() {
        assert_eq!(ordinal_of("web", "web-0"), Some(0));
        assert_eq!(ordinal_of("web", "web-12"), Some(12));
        assert_eq!(ordinal_of("web", "web-x"), None);
        assert_eq!(ordinal_of("web", "web-01"), None);
        assert_eq!(ordinal_of("web", "webby-1"), None);
        assert_eq!(ordinal_of("web", "web-sub-1"), None);
    }
}
