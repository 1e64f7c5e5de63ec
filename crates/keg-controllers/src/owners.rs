//! Owner references, shared by every controller that owns objects: who controls an object,
//! the reference a controller puts on what it creates, and claiming (adopting and releasing)
//! objects by selector as upstream's ControllerRefManager does.

use std::fmt::Debug;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use kube::api::{Api, Patch, PatchParams};
use kube::core::{Selector, SelectorExt};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::{Error, Result};

/// The owner reference marked `controller: true`, if any.
pub fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
}

/// Whether the object's controller is the object with this uid.
pub fn is_controlled_by(meta: &ObjectMeta, uid: &str) -> bool {
    controller_of(meta).is_some_and(|r| r.uid == uid)
}

/// The reference a controller puts on what it creates: controller and blocking its owner's
/// foreground deletion, as upstream's NewControllerRef.
pub fn controller_ref<K: Resource<DynamicType = ()>>(owner: &K) -> OwnerReference {
    OwnerReference {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        name: owner.meta().name.clone().unwrap_or_default(),
        uid: owner.meta().uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// A label selector as a matcher. Upstream treats a missing selector as matching nothing,
/// and validation keeps workloads from having an empty one.
pub fn selector(selector: Option<&LabelSelector>) -> Result<Option<Selector>> {
    let Some(selector) = selector else {
        return Ok(None);
    };
    Selector::try_from(selector.clone())
        .map(Some)
        .map_err(|e| Error::Invalid(format!("invalid selector: {e}")))
}

/// Whether `labels` are selected; a missing selector selects nothing.
pub fn selects(selector: Option<&Selector>, meta: &ObjectMeta) -> bool {
    selector.is_some_and(|s| s.matches(&meta.labels.clone().unwrap_or_default()))
}

/// Claims objects for a controller as upstream's ControllerRefManager: keeps those it
/// controls and its selector matches, adopts matching orphans, and releases controlled
/// objects the selector no longer matches. Returns the claimed objects.
pub async fn claim<Owner, K>(
    owner: &Owner,
    selector: Option<&Selector>,
    api: &Api<K>,
    candidates: Vec<K>,
) -> Result<Vec<K>>
where
    Owner: Resource<DynamicType = ()>,
    K: Resource + Clone + Debug + Serialize + DeserializeOwned,
{
    let owner_uid = owner.meta().uid.clone().unwrap_or_default();
    let owner_deleting = owner.meta().deletion_timestamp.is_some();
    let mut claimed = Vec::new();
    for obj in candidates {
        let matches = selects(selector, obj.meta());
        match controller_of(obj.meta()) {
            Some(r) if r.uid != owner_uid => {}
            Some(_) if matches => claimed.push(obj),
            Some(_) => {
                if !owner_deleting {
                    let refs = obj
                        .owner_references()
                        .iter()
                        .filter(|r| r.uid != owner_uid)
                        .cloned()
                        .collect();
                    ignore_gone(set_owner_references(api, &obj, refs).await)?;
                }
            }
            None => {
                let adoptable =
                    matches && !owner_deleting && obj.meta().deletion_timestamp.is_none();
                if adoptable && obj.namespace() == owner.meta().namespace {
                    let mut refs = obj.owner_references().to_vec();
                    refs.push(controller_ref(owner));
                    if let Some(adopted) = ignore_gone(set_owner_references(api, &obj, refs).await)?
                    {
                        claimed.push(adopted);
                    }
                }
            }
        }
    }
    Ok(claimed)
}

/// Replaces an object's owner references, only if it has not changed since it was read (a
/// resourceVersion precondition), so a concurrent claim by another controller is not lost.
pub async fn set_owner_references<K>(
    api: &Api<K>,
    obj: &K,
    refs: Vec<OwnerReference>,
) -> Result<K, kube::Error>
where
    K: Resource + Clone + Debug + Serialize + DeserializeOwned,
{
    let patch = json!({"metadata": {
        "resourceVersion": obj.meta().resource_version,
        "uid": obj.meta().uid,
        "ownerReferences": refs,
    }});
    api.patch(
        &obj.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
}

fn ignore_gone<T>(result: Result<T, kube::Error>) -> Result<Option<T>> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// For `Controller::watches`: maps an object to its controller when that is an `O`, so a pod
/// (or Job) wakes the workload that owns it.
pub fn to_controller<K, O>() -> impl Fn(K) -> Option<ObjectRef<O>> + Clone
where
    K: Resource,
    O: Resource<DynamicType = ()>,
{
    let kind = O::kind(&()).into_owned();
    move |obj: K| {
        let ns = obj.meta().namespace.clone().unwrap_or_default();
        controller_of(obj.meta())
            .filter(|r| r.kind == kind)
            .map(|r| ObjectRef::new(&r.name).within(&ns))
    }
}

/// Whether a disruption budget covers a pod: same namespace, and a selector that selects it
/// (a budget without a selector covers nothing, as policy/v1 says).
pub fn budget_covers(
    budget: &k8s_openapi::api::policy::v1::PodDisruptionBudget,
    pod: &ObjectMeta,
) -> bool {
    let selector = budget.spec.as_ref().and_then(|s| s.selector.as_ref());
    budget.metadata.namespace == pod.namespace
        && selector.is_some()
        && self::selector(selector)
            .ok()
            .flatten()
            .is_some_and(|s| selects(Some(&s), pod))
}
