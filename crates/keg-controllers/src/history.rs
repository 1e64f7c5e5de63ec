//! ControllerRevisions: the history of a StatefulSet's or DaemonSet's pod template, as
//! upstream's history package keeps it. Each revision holds the template as the strategic
//! merge patch `kubectl rollout undo` applies, a revision number, and a name hashed from
//! the template; an old template that comes back reuses its revision under a new number.

use std::collections::BTreeSet;

use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};

use crate::{Result, owners};

/// The label a revision carries with its hash.
pub const HASH_LABEL: &str = "controller.kubernetes.io/hash";

/// The revision data of a pod template: a patch that replaces the owner's template.
pub fn template_patch(template: Option<&PodTemplateSpec>) -> Value {
    let mut template =
        serde_json::to_value(template.cloned().unwrap_or_default()).unwrap_or_else(|_| json!({}));
    template["$patch"] = json!("replace");
    json!({"spec": {"template": template}})
}

/// The pod template a revision holds.
pub fn template_of(revision: &ControllerRevision) -> Option<PodTemplateSpec> {
    let mut template = revision.data.as_ref()?.0["spec"]["template"].clone();
    template.as_object_mut()?.remove("$patch");
    serde_json::from_value(template).ok()
}

/// The revisions an owner controls, oldest revision first.
async fn owned<K: Resource<DynamicType = ()>>(
    api: &Api<ControllerRevision>,
    owner: &K,
) -> Result<Vec<ControllerRevision>> {
    let uid = owner.meta().uid.clone().unwrap_or_default();
    let mut revisions: Vec<ControllerRevision> = api
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|r| owners::is_controlled_by(&r.metadata, &uid))
        .collect();
    revisions.sort_by_key(|r| (r.revision, r.metadata.creation_timestamp.clone()));
    Ok(revisions)
}

/// The owner's revisions (oldest first) and the one of its current `template`: the newest
/// if it holds the same, an older one renumbered as the newest, or a new one (labelled as
/// the template's pods). Hash collisions are not handled, so the collision count is 0.
pub async fn sync<K: Resource<DynamicType = ()>>(
    api: &Api<ControllerRevision>,
    owner: &K,
    template: &PodTemplateSpec,
) -> Result<(Vec<ControllerRevision>, ControllerRevision)> {
    let mut revisions = owned(api, owner).await?;
    let update = ensure(api, owner, template, &mut revisions).await?;
    Ok((revisions, update))
}

async fn ensure<K: Resource<DynamicType = ()>>(
    api: &Api<ControllerRevision>,
    owner: &K,
    template: &PodTemplateSpec,
    revisions: &mut Vec<ControllerRevision>,
) -> Result<ControllerRevision> {
    let data = template_patch(Some(template));
    let labels = template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let next = revisions.last().map_or(1, |r| r.revision + 1);
    let same = revisions
        .iter()
        .position(|r| r.data.as_ref().map(|d| &d.0) == Some(&data));
    if let Some(i) = same {
        if i + 1 == revisions.len() {
            return Ok(revisions[i].clone());
        }
        let patch = json!({"revision": next});
        let bumped = api
            .patch(
                &revisions[i].name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await?;
        revisions.remove(i);
        revisions.push(bumped.clone());
        return Ok(bumped);
    }
    // The hash upstream's name carries, computed as for a Deployment's pod-template-hash.
    let hash = crate::deployment::util::template_hash(template, None);
    let mut labels = labels;
    labels.insert(HASH_LABEL.into(), hash.clone());
    let revision = ControllerRevision {
        metadata: ObjectMeta {
            name: Some(format!(
                "{}-{hash}",
                owner.meta().name.clone().unwrap_or_default()
            )),
            namespace: owner.meta().namespace.clone(),
            labels: Some(labels),
            owner_references: Some(vec![owners::controller_ref(owner)]),
            ..Default::default()
        },
        data: Some(RawExtension(data)),
        revision: next,
    };
    let created = match api.create(&PostParams::default(), &revision).await {
        Ok(created) => created,
        // Made by an earlier sync whose list we did not see yet.
        Err(kube::Error::Api(s)) if s.code == 409 => api.get(&revision.name_any()).await?,
        Err(e) => return Err(e.into()),
    };
    revisions.push(created.clone());
    Ok(created)
}

/// Deletes the oldest revisions no pod and no status names, beyond `limit` of them.
pub async fn truncate(
    api: &Api<ControllerRevision>,
    revisions: &[ControllerRevision],
    live: &BTreeSet<String>,
    limit: i32,
) -> Result<()> {
    let old: Vec<&ControllerRevision> = revisions
        .iter()
        .filter(|r| !live.contains(&r.name_any()))
        .collect();
    let keep = usize::try_from(limit).unwrap_or(0);
    if old.len() <= keep {
        return Ok(());
    }
    for revision in &old[..old.len() - keep] {
        crate::gone_is_fine(
            api.delete(&revision.name_any(), &DeleteParams::default())
                .await,
        )?;
    }
    Ok(())
}
