//! keg's local provisioner: it serves `kubernetes.io/aws-ebs` (through its CSI name,
//! `ebs.csi.aws.com`, as upstream's CSI migration does), `ebs.csi.aws.com` and `keg.dev/local`
//! the way an external provisioner serves its name: it acts on claims the PV controller has
//! annotated with `volume.kubernetes.io/storage-provisioner`, creates the volume and a PV
//! pre-bound to the claim, and leaves the binding to the PV controller.
//!
//! A volume is a directory `<root>/<node>/pvc-<claim uid>` on the node's machine, a `local`
//! PV with node affinity to that node, so pods that use it are scheduled there. The node is
//! the scheduler's (`volume.kubernetes.io/selected-node`, WaitForFirstConsumer) or, for
//! Immediate claims, the node-group node with the most free storage (as EBS picks a zone).
//! The claim's size is booked against the node's ephemeral storage; a claim that does not
//! fit fails with a ProvisioningFailed event, and a scheduler-chosen node is handed back
//! (the annotation removed) so the scheduler can choose again, as upstream reschedules.

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{
    LocalVolumeSource, Node, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm,
    ObjectReference, PersistentVolume, PersistentVolumeClaim, PersistentVolumeSpec,
    VolumeNodeAffinity,
};
use k8s_openapi::api::storage::v1::StorageClass;
use keg_api::quantity::format_bytes;
use kube::api::{Api, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde_json::json;
use tokio::sync::Mutex;

use super::capacity::{booked, can_hold_volumes, free, node_storage};
use super::matching::topology_allows;
use super::{
    ANN_BETA_STORAGE_PROVISIONER, ANN_PROVISIONED_BY, ANN_SELECTED_NODE, ANN_STORAGE_PROVISIONER,
    ANN_VOLUME_NODE, Config, PROVISIONER_FINALIZER, annotation, claim_class, is_local_provisioner,
    requested_bytes, requested_quantity,
};
use crate::events::Events;
use crate::{Error, Result};

/// How long a claim whose provisioning failed waits before it is tried again.
const RETRY_FAILED: Duration = Duration::from_secs(10);
/// The label a PV's node affinity selects its node by.
const HOSTNAME_LABEL: &str = "kubernetes.io/hostname";

struct Context {
    client: Client,
    config: Arc<Config>,
    /// One event source per provisioner name, as each external provisioner reports as itself.
    events: std::sync::Mutex<HashMap<String, Arc<Events>>>,
    /// Held from choosing a node to creating the PV, so two claims never book the same room.
    booking: Mutex<()>,
}

impl Context {
    fn events(&self, provisioner: &str) -> Arc<Events> {
        let mut events = self.events.lock().expect("events lock");
        events
            .entry(provisioner.to_owned())
            .or_insert_with(|| {
                let component = format!("{provisioner}_keg-local-provisioner");
                Arc::new(Events::new(self.client.clone(), &component))
            })
            .clone()
    }
}

/// Why provisioning failed, and whether the scheduler should pick another node.
struct Failure {
    message: String,
    reschedule: bool,
}

impl Failure {
    fn new(message: impl Into<String>, reschedule: bool) -> Failure {
        Failure {
            message: message.into(),
            reschedule,
        }
    }
}

/// Runs the provisioner until the process ends.
pub async fn run(client: Client, config: Arc<Config>) {
    let ctx = Arc::new(Context {
        client: client.clone(),
        config,
        events: std::sync::Mutex::default(),
        booking: Mutex::new(()),
    });
    Controller::new(
        Api::<PersistentVolumeClaim>::all(client),
        watcher::Config::default(),
    )
    .run(
        reconcile,
        |_, error, _| crate::retry_after_error("volume provisioner", error),
        ctx,
    )
    .for_each(|_| async {})
    .await;
}

/// The provisioner a claim waits for, if it is one keg serves.
fn wanted_provisioner(claim: &PersistentVolumeClaim) -> Option<String> {
    annotation(&claim.metadata, ANN_STORAGE_PROVISIONER)
        .or_else(|| annotation(&claim.metadata, ANN_BETA_STORAGE_PROVISIONER))
        .filter(|p| is_local_provisioner(p))
        .cloned()
}

/// The PV name upstream gives a claim's provisioned volume.
pub fn volume_name_for(claim: &PersistentVolumeClaim) -> String {
    format!("pvc-{}", claim.uid().unwrap_or_default())
}

async fn reconcile(claim: Arc<PersistentVolumeClaim>, ctx: Arc<Context>) -> Result<Action> {
    let claims: Api<PersistentVolumeClaim> =
        Api::namespaced(ctx.client.clone(), &claim.namespace().unwrap_or_default());
    let Some(claim) = claims.get_opt(&claim.name_any()).await? else {
        return Ok(Action::await_change());
    };
    let bound = claim
        .spec
        .as_ref()
        .and_then(|s| s.volume_name.as_deref())
        .is_some_and(|v| !v.is_empty());
    let Some(provisioner) = wanted_provisioner(&claim) else {
        return Ok(Action::await_change());
    };
    if bound || claim.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let volumes: Api<PersistentVolume> = Api::all(ctx.client.clone());
    if volumes.get_opt(&volume_name_for(&claim)).await?.is_some() {
        // Made already; the PV controller binds it.
        return Ok(Action::await_change());
    }
    let class_name = claim_class(&claim);
    let Some(class) = Api::<StorageClass>::all(ctx.client.clone())
        .get_opt(&class_name)
        .await?
    else {
        return Ok(Action::await_change());
    };
    let delayed = class.volume_binding_mode.as_deref() == Some("WaitForFirstConsumer");
    if delayed && annotation(&claim.metadata, ANN_SELECTED_NODE).is_none() {
        // Not until the scheduler has chosen a node.
        return Ok(Action::await_change());
    }
    provision(&ctx, &claims, claim, &class, &provisioner).await
}

async fn provision(
    ctx: &Context,
    claims: &Api<PersistentVolumeClaim>,
    claim: PersistentVolumeClaim,
    class: &StorageClass,
    provisioner: &str,
) -> Result<Action> {
    let events = ctx.events(provisioner);
    let reference = claim.object_ref(&());
    let key = format!(
        "{}/{}",
        claim.namespace().unwrap_or_default(),
        claim.name_any()
    );
    let message = format!("External provisioner is provisioning volume for claim {key:?}");
    events
        .normal(&reference, "Provisioning", "Provisioning", message)
        .await;
    let outcome = {
        let _booking = ctx.booking.lock().await;
        create_volume(ctx, &claim, class, provisioner).await?
    };
    match outcome {
        Ok(volume) => {
            tracing::info!(claim = %key, %volume, "provisioned");
            let message = format!("Successfully provisioned volume {volume}");
            events
                .normal(&reference, "ProvisioningSucceeded", "Provisioning", message)
                .await;
            Ok(Action::await_change())
        }
        Err(failure) => {
            let message = format!(
                "failed to provision volume with StorageClass {:?}: {}",
                class.name_any(),
                failure.message
            );
            tracing::info!(claim = %key, "{message}");
            events
                .warning(&reference, "ProvisioningFailed", "Provisioning", message)
                .await;
            if failure.reschedule && annotation(&claim.metadata, ANN_SELECTED_NODE).is_some() {
                let patch = json!({"metadata": {"annotations": {ANN_SELECTED_NODE: null}}});
                claims
                    .patch(
                        &claim.name_any(),
                        &PatchParams::default(),
                        &Patch::Merge(patch),
                    )
                    .await?;
            }
            Ok(Action::requeue(RETRY_FAILED))
        }
    }
}

/// Chooses the node, makes the directory and creates the PV; returns the PV's name, or why
/// the claim cannot be provisioned (an API failure is the outer error, tried again).
async fn create_volume(
    ctx: &Context,
    claim: &PersistentVolumeClaim,
    class: &StorageClass,
    provisioner: &str,
) -> Result<std::result::Result<String, Failure>> {
    if let Err(failure) = check_claim(claim) {
        return Ok(Err(failure));
    }
    let nodes = Api::<Node>::all(ctx.client.clone())
        .list(&ListParams::default())
        .await?
        .items;
    let volumes = Api::<PersistentVolume>::all(ctx.client.clone())
        .list(&ListParams::default())
        .await?
        .items;
    let booked = booked(&volumes);
    let requested = requested_bytes(claim);
    let node = match annotation(&claim.metadata, ANN_SELECTED_NODE) {
        Some(name) => selected_node(&nodes, name, requested, &booked),
        None => choose_node(&nodes, class, requested, &booked),
    };
    let node = match node {
        Ok(node) => node,
        Err(failure) => return Ok(Err(failure)),
    };
    let name = volume_name_for(claim);
    let path = match make_directory(&ctx.config, &node.name_any(), &name) {
        Ok(path) => path,
        Err(e) => return Ok(Err(Failure::new(e, false))),
    };
    let volume = volume_object(claim, class, provisioner, node, &name, path);
    match Api::<PersistentVolume>::all(ctx.client.clone())
        .create(&PostParams::default(), &volume)
        .await
    {
        Ok(_) => Ok(Ok(name)),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(Ok(name)),
        Err(e) => Err(Error::Api(e)),
    }
}

/// What keg's local volumes cannot be, in the words of upstream's external provisioner
/// where it has them.
fn check_claim(claim: &PersistentVolumeClaim) -> std::result::Result<(), Failure> {
    let spec = claim.spec.clone().unwrap_or_default();
    if spec.selector.is_some() {
        return Err(Failure::new("claim Selector is not supported", false));
    }
    if spec.volume_mode.as_deref() == Some("Block") {
        return Err(Failure::new(
            "volumeMode Block is not supported: keg's local volumes are directories",
            false,
        ));
    }
    if spec.data_source.is_some() || spec.data_source_ref.is_some() {
        return Err(Failure::new(
            "dataSource is not supported: keg's local volumes start empty",
            false,
        ));
    }
    Ok(())
}

/// The scheduler's node, if it can take the claim.
fn selected_node<'a>(
    nodes: &'a [Node],
    name: &str,
    requested: u64,
    booked: &BTreeMap<String, u64>,
) -> std::result::Result<&'a Node, Failure> {
    let Some(node) = nodes.iter().find(|n| n.name_any() == name) else {
        return Err(Failure::new(
            format!("failed to get target node: node {name:?} not found"),
            true,
        ));
    };
    if !can_hold_volumes(node) {
        return Err(Failure::new(
            format!("node {name:?} cannot hold volumes (a Fargate, cordoned or departing node)"),
            true,
        ));
    }
    let room = free(node, booked);
    if requested > room {
        return Err(Failure::new(too_big(node, requested, booked), true));
    }
    Ok(node)
}

fn too_big(node: &Node, requested: u64, booked: &BTreeMap<String, u64>) -> String {
    let name = node.name_any();
    format!(
        "node {name:?} has no room for {}: its ephemeral-storage is {}, of which {} is booked by other volumes ({} free)",
        format_bytes(requested),
        format_bytes(node_storage(node)),
        format_bytes(booked.get(&name).copied().unwrap_or(0)),
        format_bytes(free(node, booked)),
    )
}

/// For an Immediate claim: the node that can hold volumes (and that the class's
/// allowedTopologies admit) with the most free storage, Ready nodes first.
fn choose_node<'a>(
    nodes: &'a [Node],
    class: &StorageClass,
    requested: u64,
    booked: &BTreeMap<String, u64>,
) -> std::result::Result<&'a Node, Failure> {
    let candidates: Vec<&Node> = nodes
        .iter()
        .filter(|n| can_hold_volumes(n))
        .filter(|n| {
            let labels = n.metadata.labels.clone().unwrap_or_default();
            topology_allows(class.allowed_topologies.as_deref(), &labels)
        })
        .collect();
    if candidates.is_empty() {
        return Err(Failure::new(
            "no node can hold volumes: keg's local volumes live on node-group nodes (Fargate nodes take none), and the class's allowedTopologies must admit the node",
            false,
        ));
    }
    let best = candidates
        .iter()
        .filter(|n| free(n, booked) >= requested)
        .max_by_key(|n| {
            (
                is_ready(n),
                free(n, booked),
                std::cmp::Reverse(n.name_any()),
            )
        });
    match best {
        Some(node) => Ok(node),
        None => {
            let roomiest = candidates
                .iter()
                .max_by_key(|n| free(n, booked))
                .expect("not empty");
            Err(Failure::new(
                format!(
                    "no node has room for {}; the roomiest: {}",
                    format_bytes(requested),
                    too_big(roomiest, requested, booked)
                ),
                false,
            ))
        }
    }
}

fn is_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Makes `<root>/<node>/<volume>`, writable by every user: the containers that mount it run
/// as whatever user their image says (MariaDB's entrypoint, for one, drops to `mysql`).
fn make_directory(
    config: &Config,
    node: &str,
    volume: &str,
) -> std::result::Result<PathBuf, String> {
    let root = std::path::absolute(&config.root)
        .map_err(|e| format!("volume root {}: {e}", config.root.display()))?;
    let path = root.join(node).join(volume);
    std::fs::create_dir_all(&path).map_err(|e| format!("create {}: {e}", path.display()))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777))
        .map_err(|e| format!("chmod {}: {e}", path.display()))?;
    Ok(path)
}

/// The PV of a provisioned volume: pre-bound to the claim, a `local` volume at `path` with
/// node affinity to `node`, the class's reclaim policy, and the claim's size booked on `node`.
fn volume_object(
    claim: &PersistentVolumeClaim,
    class: &StorageClass,
    provisioner: &str,
    node: &Node,
    name: &str,
    path: PathBuf,
) -> PersistentVolume {
    let spec = claim.spec.clone().unwrap_or_default();
    let policy = class
        .reclaim_policy
        .clone()
        .unwrap_or_else(|| "Delete".into());
    let hostname = node
        .labels()
        .get(HOSTNAME_LABEL)
        .cloned()
        .unwrap_or_else(|| node.name_any());
    let mut annotations = BTreeMap::new();
    annotations.insert(ANN_PROVISIONED_BY.to_owned(), provisioner.to_owned());
    annotations.insert(ANN_VOLUME_NODE.to_owned(), node.name_any());
    // So a PV deleted before its claim still has its directory removed (HonorPVReclaimPolicy).
    let finalizers = (policy == "Delete").then(|| vec![PROVISIONER_FINALIZER.to_owned()]);
    let capacity = [(
        "storage".to_owned(),
        k8s_openapi::apimachinery::pkg::api::resource::Quantity(requested_quantity(claim)),
    )]
    .into();
    let term = NodeSelectorTerm {
        match_expressions: Some(vec![NodeSelectorRequirement {
            key: HOSTNAME_LABEL.into(),
            operator: "In".into(),
            values: Some(vec![hostname]),
        }]),
        match_fields: None,
    };
    PersistentVolume {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            annotations: Some(annotations),
            finalizers,
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeSpec {
            capacity: Some(capacity),
            access_modes: spec.access_modes.clone(),
            persistent_volume_reclaim_policy: Some(policy),
            storage_class_name: Some(class.name_any()),
            volume_mode: Some(spec.volume_mode.unwrap_or_else(|| "Filesystem".into())),
            claim_ref: Some(ObjectReference {
                kind: Some("PersistentVolumeClaim".into()),
                api_version: Some("v1".into()),
                namespace: claim.namespace(),
                name: claim.metadata.name.clone(),
                uid: claim.metadata.uid.clone(),
                resource_version: claim.metadata.resource_version.clone(),
                ..ObjectReference::default()
            }),
            local: Some(LocalVolumeSource {
                path: path.display().to_string(),
                fs_type: None,
            }),
            node_affinity: Some(VolumeNodeAffinity {
                required: Some(NodeSelector {
                    node_selector_terms: vec![term],
                }),
            }),
            ..PersistentVolumeSpec::default()
        }),
        status: None,
    }
}
