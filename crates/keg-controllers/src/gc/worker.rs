//! What the collector does for one object, as upstream's attemptToDeleteItem,
//! processDeletingDependentsItem and attemptToOrphan. Owners are always checked with the
//! API, never only the graph, so nothing is deleted on a stale or incomplete view.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{
    Api, DeleteParams, DynamicObject, Patch, PatchParams, Preconditions, PropagationPolicy,
};
use kube::{Resource, ResourceExt};
use serde_json::json;

use super::graph::{FOREGROUND, Identity, ORPHAN};
use super::{Change, Collector};
use crate::{Error, Result, gone_is_fine, owners};

/// The API of an object's kind, scoped to its namespace when the kind is namespaced.
fn api_for(gc: &Collector, identity: &Identity) -> Result<Api<DynamicObject>> {
    let kind = gc.kind(&identity.group, &identity.kind).ok_or_else(|| {
        Error::Invalid(format!(
            "kind {} of group {:?} is not served",
            identity.kind, identity.group
        ))
    })?;
    Ok(match (&identity.namespace, kind.namespaced) {
        (Some(ns), true) => Api::namespaced_with(gc.client.clone(), ns, &kind.resource),
        _ => Api::all_with(gc.client.clone(), &kind.resource),
    })
}

/// The object as the API has it now, if it is still the one with this uid.
async fn latest(
    gc: &Collector,
    identity: &Identity,
) -> Result<Option<(Api<DynamicObject>, DynamicObject)>> {
    let api = api_for(gc, identity)?;
    let obj = api.get_opt(&identity.name).await?;
    Ok(obj
        .filter(|o| o.uid().as_deref() == Some(identity.uid.as_str()))
        .map(|o| (api, o)))
}

/// Owner references by what the owner is doing: (solid, dangling, waiting for dependents).
struct Classified {
    solid: Vec<OwnerReference>,
    dangling: Vec<OwnerReference>,
    waiting: Vec<OwnerReference>,
}

async fn classify(
    gc: &Collector,
    dependent: &Identity,
    refs: &[OwnerReference],
) -> Result<Classified> {
    let mut classified = Classified {
        solid: vec![],
        dangling: vec![],
        waiting: vec![],
    };
    for reference in refs {
        let owner = latest(
            gc,
            &Identity::of_owner(reference, dependent.namespace.as_deref()),
        )
        .await?;
        match owner {
            None => classified.dangling.push(reference.clone()),
            Some((_, o))
                if o.meta().deletion_timestamp.is_some()
                    && o.finalizers().iter().any(|f| f == FOREGROUND) =>
            {
                classified.waiting.push(reference.clone());
            }
            Some(_) => classified.solid.push(reference.clone()),
        }
    }
    Ok(classified)
}

/// Decides whether an object goes: deleted when no owner remains, with foreground
/// propagation when an owner waits for it and it has dependents of its own.
pub(super) async fn attempt_to_delete(gc: &Collector, uid: &str) -> Result<()> {
    let Some(node) = gc.graph.lock().expect("graph lock").get(uid).cloned() else {
        return Ok(());
    };
    if node.being_deleted && !node.deleting_dependents {
        return Ok(());
    }
    let Some((api, obj)) = latest(gc, &node.identity).await? else {
        // Gone (or never there, for an owner only referenced): its dependents are garbage now.
        gc.apply(Change::Remove(uid.to_string()));
        return Ok(());
    };
    if node.deleting_dependents {
        return process_deleting_dependents(gc, &node.identity).await;
    }
    let refs = obj.owner_references().to_vec();
    if refs.is_empty() {
        return Ok(());
    }
    let classified = classify(gc, &node.identity, &refs).await?;
    if !classified.solid.is_empty() {
        if classified.dangling.is_empty() && classified.waiting.is_empty() {
            return Ok(());
        }
        // It stays, owned by the live owners only.
        let gone: Vec<&str> = classified
            .dangling
            .iter()
            .chain(&classified.waiting)
            .map(|r| r.uid.as_str())
            .collect();
        let kept = refs
            .into_iter()
            .filter(|r| !gone.contains(&r.uid.as_str()))
            .collect();
        return gone_is_fine(owners::set_owner_references(&api, &obj, kept).await);
    }
    let policy = if !classified.waiting.is_empty() && !node.dependents.is_empty() {
        let cycle = {
            let graph = gc.graph.lock().expect("graph lock");
            node.dependents
                .iter()
                .filter_map(|d| graph.get(d))
                .any(|d| d.deleting_dependents)
        };
        if cycle {
            // An owner waits for this object which waits for one of its own dependents
            // waiting for it: stop blocking the owner, or none would ever go.
            let waiting: Vec<&str> = classified.waiting.iter().map(|r| r.uid.as_str()).collect();
            let unblocked = refs
                .into_iter()
                .map(|mut r| {
                    if waiting.contains(&r.uid.as_str()) {
                        r.block_owner_deletion = Some(false);
                    }
                    r
                })
                .collect();
            gone_is_fine(owners::set_owner_references(&api, &obj, unblocked).await)?;
        }
        PropagationPolicy::Foreground
    } else if obj.finalizers().iter().any(|f| f == ORPHAN) {
        PropagationPolicy::Orphan
    } else if obj.finalizers().iter().any(|f| f == FOREGROUND) {
        PropagationPolicy::Foreground
    } else {
        PropagationPolicy::Background
    };
    delete(&api, &obj, policy).await
}

async fn delete(
    api: &Api<DynamicObject>,
    obj: &DynamicObject,
    policy: PropagationPolicy,
) -> Result<()> {
    let params = DeleteParams {
        propagation_policy: Some(policy),
        preconditions: Some(Preconditions {
            uid: obj.uid(),
            resource_version: None,
        }),
        ..Default::default()
    };
    match api.delete(&obj.name_any(), &params).await {
        Ok(_) => Ok(()),
        // Gone, or replaced by another object of the same name: not ours to delete.
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// An owner deleted in the foreground: done once no dependent blocks it, else its blocking
/// dependents are looked at.
async fn process_deleting_dependents(gc: &Collector, owner: &Identity) -> Result<()> {
    let blocking: Vec<(String, bool)> = {
        let graph = gc.graph.lock().expect("graph lock");
        graph
            .blocking_dependents(&owner.uid)
            .into_iter()
            .map(|d| (d.identity.uid.clone(), d.deleting_dependents))
            .collect()
    };
    if blocking.is_empty() {
        return remove_finalizer(gc, owner, FOREGROUND).await;
    }
    for (uid, deleting_dependents) in blocking {
        if !deleting_dependents {
            gc.deletes.add(uid);
        }
    }
    Ok(())
}

/// An owner deleted with the orphan finalizer: its dependents lose their references to it,
/// then it loses the finalizer.
pub(super) async fn orphan(gc: &Collector, uid: &str) -> Result<()> {
    let Some(node) = gc.graph.lock().expect("graph lock").get(uid).cloned() else {
        return Ok(());
    };
    for dependent in &node.dependents {
        let identity = gc
            .graph
            .lock()
            .expect("graph lock")
            .get(dependent)
            .map(|d| d.identity.clone());
        let Some(identity) = identity else { continue };
        let Some((api, obj)) = latest(gc, &identity).await? else {
            continue;
        };
        if obj.owner_references().iter().any(|r| r.uid == uid) {
            let kept = obj
                .owner_references()
                .iter()
                .filter(|r| r.uid != uid)
                .cloned()
                .collect();
            gone_is_fine(owners::set_owner_references(&api, &obj, kept).await)?;
        }
    }
    remove_finalizer(gc, &node.identity, ORPHAN).await
}

/// Removes one finalizer, only from the object as it is now (a resourceVersion precondition).
async fn remove_finalizer(gc: &Collector, identity: &Identity, finalizer: &str) -> Result<()> {
    let Some((api, obj)) = latest(gc, identity).await? else {
        return Ok(());
    };
    if !obj.finalizers().iter().any(|f| f == finalizer) {
        return Ok(());
    }
    let kept: Vec<&String> = obj
        .finalizers()
        .iter()
        .filter(|f| *f != finalizer)
        .collect();
    let patch =
        json!({"metadata": {"resourceVersion": obj.resource_version(), "finalizers": kept}});
    gone_is_fine(
        api.patch(
            &obj.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await,
    )
}
