//! Persistent volumes as a user sees them through the API: the seed's database claim (class
//! tb-gp2, Immediate) binds at once to a provisioned directory; a WaitForFirstConsumer claim
//! says it waits until the scheduler picks a node (here the test plays the scheduler by
//! setting `volume.kubernetes.io/selected-node`, as it does); Delete and Retain; protection
//! finalizers; static volumes; claims that do not fit. The scheduler's side is tested in
//! keg-scheduler's tests.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use keg_controllers::volumes;
use kube::api::{
    Api, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use kube::discovery::ApiResource;
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

/// The node-group node every test has, with 1Gi of ephemeral storage unless a test asks.
const NODE: &str = "ip-192-168-10-20.us-east-1.compute.internal";

/// The controllers (with the volume controllers) and a directory for volumes.
struct Fixture {
    cluster: Cluster,
    root: tempfile::TempDir,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Fixture {
    async fn start(ns: &str, node_storage: &str) -> anyhow::Result<Fixture> {
        let cluster = Cluster::start().await?;
        cluster.namespace(ns).await?;
        let root = tempfile::tempdir()?;
        let config = volumes::Config {
            root: root.path().join("volumes"),
        };
        let task = tokio::spawn(volumes::run(cluster.client.clone(), config));
        let fixture = Fixture {
            cluster,
            root,
            task,
        };
        fixture.node(NODE, node_storage).await?;
        Ok(fixture)
    }

    fn client(&self) -> Client {
        self.cluster.client.clone()
    }

    /// A Ready node-group node, labelled as eksctl labels them.
    async fn node(&self, name: &str, storage: &str) -> anyhow::Result<Node> {
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {
                "kubernetes.io/hostname": name,
                "alpha.eksctl.io/nodegroup-name": "ng-1",
            }},
            "status": {
                "capacity": {"cpu": "2", "memory": "4Gi", "pods": "17", "ephemeral-storage": storage},
                "allocatable": {"cpu": "2", "memory": "4Gi", "pods": "17", "ephemeral-storage": storage},
                "conditions": [{"type": "Ready", "status": "True"}],
            },
        }))?;
        Ok(Api::<Node>::all(self.client())
            .create(&PostParams::default(), &node)
            .await?)
    }

    fn volume_dir(&self, node: &str, volume: &str) -> PathBuf {
        self.root.path().join("volumes").join(node).join(volume)
    }
}

/// Creates the objects of a manifest of several documents, as `kubectl create -f` does.
async fn create_manifest(client: &Client, ns: &str, text: &str) -> anyhow::Result<()> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(text)?;
    for doc in docs.into_iter().filter(|d| d.is_object()) {
        let object: DynamicObject = serde_json::from_value(doc)?;
        let types = object.types.clone().expect("apiVersion and kind");
        let gvk = GroupVersionKind::try_from(&types)?;
        let resource = ApiResource::from_gvk(&gvk);
        let api: Api<DynamicObject> = if gvk.kind == "StorageClass" {
            Api::all_with(client.clone(), &resource)
        } else {
            Api::namespaced_with(client.clone(), ns, &resource)
        };
        api.create(&PostParams::default(), &object).await?;
    }
    Ok(())
}

fn seed_database_manifest() -> String {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/terrax/database/database.yml");
    std::fs::read_to_string(path).expect("the seed's database.yml")
}

async fn create_class(client: &Client, class: Value) -> anyhow::Result<()> {
    let mut body = json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass"});
    merge(&mut body, class);
    Api::<StorageClass>::all(client.clone())
        .create(&PostParams::default(), &serde_json::from_value(body)?)
        .await?;
    Ok(())
}

async fn create_claim(
    client: &Client,
    ns: &str,
    name: &str,
    spec: Value,
) -> anyhow::Result<PersistentVolumeClaim> {
    let mut body = json!({
        "metadata": {"name": name},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "100Mi"}}},
    });
    merge(&mut body, spec);
    Ok(Api::<PersistentVolumeClaim>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &serde_json::from_value(body)?)
        .await?)
}

fn merge(into: &mut Value, from: Value) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (slot, value) => *slot = value,
    }
}

fn claim_phase(claim: &PersistentVolumeClaim) -> &str {
    claim
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or_default()
}

fn volume_phase(volume: &PersistentVolume) -> &str {
    volume
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or_default()
}

async fn bound_claim(client: &Client, ns: &str, name: &str) -> PersistentVolumeClaim {
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), ns);
    eventually(&format!("claim {ns}/{name} Bound"), || async {
        let claim = claims.get(name).await?;
        Ok((claim_phase(&claim) == "Bound").then_some(claim))
    })
    .await
}

async fn volume_in_phase(client: &Client, name: &str, phase: &str) -> PersistentVolume {
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    eventually(&format!("volume {name} {phase}"), || async {
        let volume = volumes.get(name).await?;
        Ok((volume_phase(&volume) == phase).then_some(volume))
    })
    .await
}

async fn gone<K>(api: &Api<K>, name: &str)
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    eventually(&format!("{name} gone"), || async {
        Ok(api.get_opt(name).await?.is_none().then_some(()))
    })
    .await
}

fn local_path(volume: &PersistentVolume) -> PathBuf {
    PathBuf::from(&volume.spec.as_ref().unwrap().local.as_ref().unwrap().path)
}

fn affinity_hosts(volume: &PersistentVolume) -> Vec<String> {
    let affinity = volume
        .spec
        .as_ref()
        .unwrap()
        .node_affinity
        .as_ref()
        .unwrap();
    let terms = &affinity.required.as_ref().unwrap().node_selector_terms;
    let requirement = &terms[0].match_expressions.as_ref().unwrap()[0];
    assert_eq!(requirement.key, "kubernetes.io/hostname");
    assert_eq!(requirement.operator, "In");
    requirement.values.clone().unwrap()
}

/// A pod using the claim, bound to `node` (or unscheduled when `None`).
async fn pod_using(
    client: &Client,
    ns: &str,
    name: &str,
    claim: &str,
    node: Option<&str>,
) -> anyhow::Result<Pod> {
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "nodeName": node,
            "containers": [{"name": "db", "image": "terrax/mariadb:10",
                "volumeMounts": [{"name": "data", "mountPath": "/var/lib/mysql"}]}],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}],
        },
    }))?;
    Ok(Api::<Pod>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &pod)
        .await?)
}

#[tokio::test]
async fn the_seed_database_claim_binds_at_once_and_delete_removes_its_directory()
-> anyhow::Result<()> {
    let f = Fixture::start("tb-demo", "80Gi").await?;
    let client = f.client();
    let manifest = seed_database_manifest();
    // The StorageClass and the claim; the Deployment's side is the scheduler's test.
    let storage_part = manifest
        .split("\n---\n")
        .take(2)
        .collect::<Vec<_>>()
        .join("\n---\n");
    create_manifest(&client, "tb-demo", &storage_part).await?;

    let claim = bound_claim(&client, "tb-demo", "mysql-data-disk").await;
    let uid = claim.uid().unwrap();
    let volume_name = format!("pvc-{uid}");
    let spec = claim.spec.clone().unwrap();
    let status = claim.status.clone().unwrap();
    // What `kubectl get pvc` shows: Bound, the volume, 25Mi, RWO, the class.
    assert_eq!(spec.volume_name.as_deref(), Some(volume_name.as_str()));
    assert_eq!(spec.storage_class_name.as_deref(), Some("tb-gp2"));
    assert_eq!(status.capacity.unwrap()["storage"].0, "25Mi");
    assert_eq!(status.access_modes.unwrap(), ["ReadWriteOnce"]);
    let annotations = claim.annotations();
    assert_eq!(
        annotations["volume.kubernetes.io/storage-provisioner"],
        "ebs.csi.aws.com"
    );
    assert_eq!(annotations["pv.kubernetes.io/bind-completed"], "yes");

    let volume = volume_in_phase(&client, &volume_name, "Bound").await;
    let pv_spec = volume.spec.clone().unwrap();
    assert_eq!(
        pv_spec.persistent_volume_reclaim_policy.as_deref(),
        Some("Delete")
    );
    assert_eq!(pv_spec.storage_class_name.as_deref(), Some("tb-gp2"));
    assert_eq!(pv_spec.capacity.unwrap()["storage"].0, "25Mi");
    assert_eq!(
        pv_spec.claim_ref.unwrap().name.as_deref(),
        Some("mysql-data-disk")
    );
    assert_eq!(
        volume.annotations()["pv.kubernetes.io/provisioned-by"],
        "ebs.csi.aws.com"
    );
    // Immediate: the provisioner chose the only node-group node, and the directory is there.
    assert_eq!(affinity_hosts(&volume), [NODE]);
    let dir = f.volume_dir(NODE, &volume_name);
    assert_eq!(local_path(&volume), dir);
    assert!(dir.is_dir(), "{} made", dir.display());

    let ns = "tb-demo";
    let kind = "PersistentVolumeClaim";
    let name = "mysql-data-disk";
    event_seen(&client, ns, kind, name, "ExternalProvisioning",
        "Waiting for a volume to be created either by the external provisioner 'ebs.csi.aws.com' or manually by the system administrator. If volume creation is delayed, please verify that the provisioner is running and correctly registered.").await;
    event_seen(
        &client,
        ns,
        kind,
        name,
        "Provisioning",
        "External provisioner is provisioning volume for claim \"tb-demo/mysql-data-disk\"",
    )
    .await;
    event_seen(
        &client,
        ns,
        kind,
        name,
        "ProvisioningSucceeded",
        &format!("Successfully provisioned volume {volume_name}"),
    )
    .await;

    // Both carry their protection finalizers.
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), ns);
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    eventually("protection finalizers", || async {
        let claim = claims.get(name).await?;
        let volume = volumes.get(&volume_name).await?;
        Ok((claim
            .finalizers()
            .contains(&"kubernetes.io/pvc-protection".to_owned())
            && volume
                .finalizers()
                .contains(&"kubernetes.io/pv-protection".to_owned()))
        .then_some(()))
    })
    .await;

    // reclaimPolicy Delete: the claim's deletion takes the PV and the directory with it.
    claims.delete(name, &DeleteParams::default()).await?;
    gone(&claims, name).await;
    gone(&volumes, &volume_name).await;
    eventually("the directory removed", || async {
        Ok((!dir.exists()).then_some(()))
    })
    .await;
    Ok(())
}

#[tokio::test]
async fn wait_for_first_consumer_waits_for_a_pod_and_its_node() -> anyhow::Result<()> {
    let f = Fixture::start("wffc", "80Gi").await?;
    let client = f.client();
    // No class named: the default one, gp2 (WaitForFirstConsumer), is filled in.
    let claim = create_claim(&client, "wffc", "data", json!({})).await?;
    assert_eq!(
        claim.spec.unwrap().storage_class_name.as_deref(),
        Some("gp2")
    );
    let kind = "PersistentVolumeClaim";
    event_seen(
        &client,
        "wffc",
        kind,
        "data",
        "WaitForFirstConsumer",
        "waiting for first consumer to be created before binding",
    )
    .await;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "wffc");
    let waiting = claims.get("data").await?;
    assert_eq!(claim_phase(&waiting), "Pending");
    assert!(waiting.spec.unwrap().volume_name.is_none());

    // A pod uses it but is not scheduled yet.
    pod_using(&client, "wffc", "db", "data", None).await?;
    event_seen(
        &client,
        "wffc",
        kind,
        "data",
        "WaitForPodScheduled",
        "waiting for pod db to be scheduled",
    )
    .await;

    // The scheduler chooses a node: the volume is made there.
    let patch = json!({"metadata": {"annotations": {"volume.kubernetes.io/selected-node": NODE}}});
    claims
        .patch("data", &PatchParams::default(), &Patch::Merge(patch))
        .await?;
    let claim = bound_claim(&client, "wffc", "data").await;
    let volume_name = claim.spec.unwrap().volume_name.unwrap();
    let volume = volume_in_phase(&client, &volume_name, "Bound").await;
    assert_eq!(affinity_hosts(&volume), [NODE]);
    assert!(f.volume_dir(NODE, &volume_name).is_dir());
    event_seen(
        &client,
        "wffc",
        kind,
        "data",
        "ProvisioningSucceeded",
        &format!("Successfully provisioned volume {volume_name}"),
    )
    .await;
    Ok(())
}

#[tokio::test]
async fn retain_keeps_the_data_and_the_volume_goes_released() -> anyhow::Result<()> {
    let f = Fixture::start("keep", "1Gi").await?;
    let client = f.client();
    create_class(
        &client,
        json!({"metadata": {"name": "keep"}, "provisioner": "keg.dev/local",
        "reclaimPolicy": "Retain", "volumeBindingMode": "Immediate"}),
    )
    .await?;
    create_claim(
        &client,
        "keep",
        "data",
        json!({"spec": {"storageClassName": "keep"}}),
    )
    .await?;
    let claim = bound_claim(&client, "keep", "data").await;
    let volume_name = claim.spec.unwrap().volume_name.unwrap();
    let dir = f.volume_dir(NODE, &volume_name);
    std::fs::write(dir.join("beers.ibd"), b"stout")?;

    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "keep");
    claims.delete("data", &DeleteParams::default()).await?;
    gone(&claims, "data").await;
    let released = volume_in_phase(&client, &volume_name, "Released").await;
    assert_eq!(
        released
            .spec
            .unwrap()
            .persistent_volume_reclaim_policy
            .as_deref(),
        Some("Retain")
    );
    assert_eq!(std::fs::read(dir.join("beers.ibd"))?, b"stout");

    // Deleting the released volume by hand removes the object, never the data.
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    volumes
        .delete(&volume_name, &DeleteParams::default())
        .await?;
    gone(&volumes, &volume_name).await;
    assert_eq!(std::fs::read(dir.join("beers.ibd"))?, b"stout");
    Ok(())
}

#[tokio::test]
async fn a_claim_in_use_survives_deletion_until_its_pod_is_gone() -> anyhow::Result<()> {
    let f = Fixture::start("inuse", "1Gi").await?;
    let client = f.client();
    create_class(
        &client,
        json!({"metadata": {"name": "now"}, "provisioner": "keg.dev/local",
        "volumeBindingMode": "Immediate"}),
    )
    .await?;
    create_claim(
        &client,
        "inuse",
        "data",
        json!({"spec": {"storageClassName": "now"}}),
    )
    .await?;
    let claim = bound_claim(&client, "inuse", "data").await;
    let volume_name = claim.spec.unwrap().volume_name.unwrap();
    pod_using(&client, "inuse", "db", "data", Some(NODE)).await?;

    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "inuse");
    eventually("pvc-protection", || async {
        let claim = claims.get("data").await?;
        Ok(claim
            .finalizers()
            .contains(&"kubernetes.io/pvc-protection".to_owned())
            .then_some(()))
    })
    .await;
    claims.delete("data", &DeleteParams::default()).await?;
    let terminating = claims.get("data").await?;
    assert!(terminating.metadata.deletion_timestamp.is_some());
    assert_eq!(claim_phase(&terminating), "Bound");
    // The volume stays bound, its directory there, while the pod runs.
    let volume = volume_in_phase(&client, &volume_name, "Bound").await;
    assert!(local_path(&volume).is_dir());

    let pods: Api<Pod> = Api::namespaced(client.clone(), "inuse");
    pods.delete("db", &DeleteParams::default().grace_period(0))
        .await?;
    gone(&claims, "data").await;
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    gone(&volumes, &volume_name).await;
    assert!(!f.volume_dir(NODE, &volume_name).exists());
    Ok(())
}

#[tokio::test]
async fn claims_that_do_not_fit_fail_with_a_clear_event() -> anyhow::Result<()> {
    let f = Fixture::start("full", "1Gi").await?;
    let client = f.client();
    create_class(
        &client,
        json!({"metadata": {"name": "now"}, "provisioner": "keg.dev/local",
        "volumeBindingMode": "Immediate"}),
    )
    .await?;
    let kind = "PersistentVolumeClaim";

    // Too big for any node.
    create_claim(
        &client,
        "full",
        "huge",
        json!({"spec": {"storageClassName": "now",
        "resources": {"requests": {"storage": "2Gi"}}}}),
    )
    .await?;
    event_seen(&client, "full", kind, "huge", "ProvisioningFailed",
        &format!("failed to provision volume with StorageClass \"now\": no node has room for 2Gi; the roomiest: node \"{NODE}\" has no room for 2Gi: its ephemeral-storage is 1Gi, of which 0 is booked by other volumes (1Gi free)")).await;

    // Booked capacity counts: 600Mi fits once, not twice.
    create_claim(
        &client,
        "full",
        "first",
        json!({"spec": {"storageClassName": "now",
        "resources": {"requests": {"storage": "600Mi"}}}}),
    )
    .await?;
    bound_claim(&client, "full", "first").await;
    create_claim(
        &client,
        "full",
        "second",
        json!({"spec": {"storageClassName": "now",
        "resources": {"requests": {"storage": "600Mi"}}}}),
    )
    .await?;
    event_seen(&client, "full", kind, "second", "ProvisioningFailed",
        &format!("failed to provision volume with StorageClass \"now\": no node has room for 600Mi; the roomiest: node \"{NODE}\" has no room for 600Mi: its ephemeral-storage is 1Gi, of which 600Mi is booked by other volumes (424Mi free)")).await;

    // On the scheduler's node: the node is handed back for the scheduler to choose again.
    create_claim(
        &client,
        "full",
        "chosen",
        json!({
            "metadata": {"annotations": {"volume.kubernetes.io/selected-node": NODE}},
            "spec": {"resources": {"requests": {"storage": "2Gi"}}},
        }),
    )
    .await?;
    event_seen(&client, "full", kind, "chosen", "ProvisioningFailed",
        &format!("failed to provision volume with StorageClass \"gp2\": node \"{NODE}\" has no room for 2Gi: its ephemeral-storage is 1Gi, of which 600Mi is booked by other volumes (424Mi free)")).await;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "full");
    eventually("selected-node removed", || async {
        let claim = claims.get("chosen").await?;
        Ok((!claim
            .annotations()
            .contains_key("volume.kubernetes.io/selected-node"))
        .then_some(()))
    })
    .await;
    for name in ["huge", "second"] {
        assert_eq!(claim_phase(&claims.get(name).await?), "Pending");
    }
    Ok(())
}

async fn create_static_volume(client: &Client, name: &str, spec: Value) -> anyhow::Result<()> {
    let mut body = json!({
        "metadata": {"name": name},
        "spec": {
            "capacity": {"storage": "1Gi"},
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": "manual",
            "hostPath": {"path": format!("/tmp/keg-static-{name}")},
        },
    });
    merge(&mut body, json!({"spec": spec}));
    Api::<PersistentVolume>::all(client.clone())
        .create(&PostParams::default(), &serde_json::from_value(body)?)
        .await?;
    Ok(())
}

#[tokio::test]
async fn static_volumes_bind_by_class_size_and_name() -> anyhow::Result<()> {
    let f = Fixture::start("static", "1Gi").await?;
    let client = f.client();
    create_static_volume(&client, "small", json!({})).await?;
    create_static_volume(&client, "big", json!({"capacity": {"storage": "5Gi"}})).await?;
    create_static_volume(&client, "elsewhere", json!({"storageClassName": "other"})).await?;
    for name in ["small", "big", "elsewhere"] {
        volume_in_phase(&client, name, "Available").await;
    }

    // The smallest volume of the class that fits.
    create_claim(
        &client,
        "static",
        "data",
        json!({"spec": {"storageClassName": "manual",
        "resources": {"requests": {"storage": "1Gi"}}}}),
    )
    .await?;
    let claim = bound_claim(&client, "static", "data").await;
    assert_eq!(claim.spec.unwrap().volume_name.as_deref(), Some("small"));
    let small = volume_in_phase(&client, "small", "Bound").await;
    assert_eq!(
        small.annotations()["pv.kubernetes.io/bound-by-controller"],
        "yes"
    );

    // A volume asked for by name must fit.
    create_claim(
        &client,
        "static",
        "wants-big",
        json!({"spec": {"storageClassName": "manual",
        "volumeName": "big", "resources": {"requests": {"storage": "10Gi"}}}}),
    )
    .await?;
    let kind = "PersistentVolumeClaim";
    event_seen(
        &client,
        "static",
        kind,
        "wants-big",
        "VolumeMismatch",
        "Cannot bind to requested volume \"big\": requested PV is too small",
    )
    .await;

    // No class and no volume: nothing to bind to, and upstream's words for it.
    create_claim(
        &client,
        "static",
        "classless",
        json!({"spec": {"storageClassName": ""}}),
    )
    .await?;
    event_seen(
        &client,
        "static",
        kind,
        "classless",
        "FailedBinding",
        "no persistent volumes available for this claim and no storage class is set",
    )
    .await;

    // A class whose provisioner keg has no plugin for.
    create_class(
        &client,
        json!({"metadata": {"name": "local-storage"},
        "provisioner": "kubernetes.io/no-provisioner", "volumeBindingMode": "Immediate"}),
    )
    .await?;
    create_claim(
        &client,
        "static",
        "unprovisionable",
        json!({"spec": {"storageClassName": "local-storage"}}),
    )
    .await?;
    event_seen(
        &client,
        "static",
        kind,
        "unprovisionable",
        "ProvisioningFailed",
        "no volume plugin matched name: kubernetes.io/no-provisioner",
    )
    .await;

    // pv-protection: a bound volume deleted stays until its claim lets go; then, Retain
    // (the default for volumes made by hand), it is Released and goes.
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    volumes.delete("small", &DeleteParams::default()).await?;
    let held = volumes.get("small").await?;
    assert!(held.metadata.deletion_timestamp.is_some());
    assert_eq!(volume_phase(&held), "Bound");
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "static");
    claims.delete("data", &DeleteParams::default()).await?;
    gone(&volumes, "small").await;
    Ok(())
}

#[tokio::test]
async fn a_volume_without_a_deleter_fails_when_its_policy_says_delete() -> anyhow::Result<()> {
    let f = Fixture::start("nodeleter", "1Gi").await?;
    let client = f.client();
    create_static_volume(
        &client,
        "handmade",
        json!({"persistentVolumeReclaimPolicy": "Delete"}),
    )
    .await?;
    create_claim(
        &client,
        "nodeleter",
        "data",
        json!({"spec": {"storageClassName": "manual",
        "resources": {"requests": {"storage": "1Gi"}}}}),
    )
    .await?;
    bound_claim(&client, "nodeleter", "data").await;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "nodeleter");
    claims.delete("data", &DeleteParams::default()).await?;
    let failed = volume_in_phase(&client, "handmade", "Failed").await;
    let message = "error getting deleter volume plugin for volume \"handmade\": no deletable volume plugin matched";
    assert_eq!(failed.status.unwrap().message.as_deref(), Some(message));
    event_seen(
        &client,
        "default",
        "PersistentVolume",
        "handmade",
        "VolumeFailedDelete",
        message,
    )
    .await;
    Ok(())
}
