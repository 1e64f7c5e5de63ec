//! Persistent volumes as a user sees them through the API: the seed's database claim (class
//! tb-gp2, Immediate) binds at once to a provisioned directory; a WaitForFirstConsumer claim
//! says it waits until the scheduler picks a node (here the test plays the scheduler by
//! setting `volume.kubernetes.io/selected-node`, as it does); Delete and Retain; protection
//! finalizers; static volumes; claims that do not fit. The scheduler's side is tested in
//! keg-scheduler's tests.

#[path = "../common/mod.rs"]
mod common;
mod fixture;

use fixture::*;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde_json::json;

/// What `kubectl get pvc` shows of the seed's claim: Bound, its volume, 25Mi, RWO, tb-gp2.
fn assert_seed_claim(claim: &PersistentVolumeClaim, volume_name: &str) {
    let spec = claim.spec.clone().unwrap();
    let status = claim.status.clone().unwrap();
    assert_eq!(spec.volume_name.as_deref(), Some(volume_name));
    assert_eq!(spec.storage_class_name.as_deref(), Some("tb-gp2"));
    assert_eq!(status.capacity.unwrap()["storage"].0, "25Mi");
    assert_eq!(status.access_modes.unwrap(), ["ReadWriteOnce"]);
    let annotations = claim.annotations();
    assert_eq!(
        annotations["volume.kubernetes.io/storage-provisioner"],
        "ebs.csi.aws.com"
    );
    assert_eq!(annotations["pv.kubernetes.io/bind-completed"], "yes");
}

/// The seed claim's volume: Delete, tb-gp2, 25Mi, bound to the claim, made by the EBS name.
fn assert_seed_volume(volume: &PersistentVolume) {
    let spec = volume.spec.clone().unwrap();
    assert_eq!(
        spec.persistent_volume_reclaim_policy.as_deref(),
        Some("Delete")
    );
    assert_eq!(spec.storage_class_name.as_deref(), Some("tb-gp2"));
    assert_eq!(spec.capacity.unwrap()["storage"].0, "25Mi");
    assert_eq!(
        spec.claim_ref.unwrap().name.as_deref(),
        Some("mysql-data-disk")
    );
    assert_eq!(
        volume.annotations()["pv.kubernetes.io/provisioned-by"],
        "ebs.csi.aws.com"
    );
}

/// The events an external provisioner's claim gets, in upstream's words.
async fn provisioning_events_seen(client: &kube::Client, ns: &str, claim: &str, volume: &str) {
    let kind = "PersistentVolumeClaim";
    event_seen(client, ns, kind, claim, "ExternalProvisioning",
        "Waiting for a volume to be created either by the external provisioner 'ebs.csi.aws.com' or manually by the system administrator. If volume creation is delayed, please verify that the provisioner is running and correctly registered.").await;
    let provisioning =
        format!("External provisioner is provisioning volume for claim \"{ns}/{claim}\"");
    event_seen(client, ns, kind, claim, "Provisioning", &provisioning).await;
    let succeeded = format!("Successfully provisioned volume {volume}");
    event_seen(client, ns, kind, claim, "ProvisioningSucceeded", &succeeded).await;
}

/// Waits for both protection finalizers.
async fn protected(client: &kube::Client, ns: &str, claim: &str, volume: &str) {
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), ns);
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    eventually("protection finalizers", || async {
        let claim = claims.get(claim).await?;
        let volume = volumes.get(volume).await?;
        let pvc = claim
            .finalizers()
            .iter()
            .any(|f| f == "kubernetes.io/pvc-protection");
        let pv = volume
            .finalizers()
            .iter()
            .any(|f| f == "kubernetes.io/pv-protection");
        Ok((pvc && pv).then_some(()))
    })
    .await;
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

    let name = "mysql-data-disk";
    let claim = bound_claim(&client, "tb-demo", name).await;
    let volume_name = format!("pvc-{}", claim.uid().unwrap());
    assert_seed_claim(&claim, &volume_name);
    let volume = volume_in_phase(&client, &volume_name, "Bound").await;
    assert_seed_volume(&volume);
    // Immediate: the provisioner chose the only node-group node, and the directory is there.
    assert_eq!(affinity_hosts(&volume), [NODE]);
    let dir = f.volume_dir(NODE, &volume_name);
    assert_eq!(local_path(&volume), dir);
    assert!(dir.is_dir(), "{} made", dir.display());
    provisioning_events_seen(&client, "tb-demo", name, &volume_name).await;
    protected(&client, "tb-demo", name, &volume_name).await;

    // reclaimPolicy Delete: the claim's deletion takes the PV and the directory with it.
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "tb-demo");
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
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

#[tokio::test]
async fn static_volumes_bind_by_class_and_size_and_are_protected_while_bound() -> anyhow::Result<()>
{
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
async fn claims_with_nothing_to_bind_to_say_why() -> anyhow::Result<()> {
    let f = Fixture::start("static", "1Gi").await?;
    let client = f.client();
    create_static_volume(&client, "big", json!({"capacity": {"storage": "5Gi"}})).await?;
    volume_in_phase(&client, "big", "Available").await;

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
