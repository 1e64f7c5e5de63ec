//! The scheduler's VolumeBinding with keg's volume controllers: pods go where their volumes
//! are, WaitForFirstConsumer claims are provisioned on the pod's node, and pods that cannot
//! have their volumes get upstream's FailedScheduling messages.

mod fixture;
mod kubectl;

use fixture::*;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams};
use serde_json::json;

const ROOMY: &str = "ip-192-168-1-10.ec2.internal";
const BUSY: &str = "ip-192-168-1-20.ec2.internal";

#[tokio::test]
async fn the_seed_database_runs_on_the_node_of_its_volume() -> anyhow::Result<()> {
    let c = Cluster::start("tb-demo").await?;
    // The roomier disk gets the Immediate volume; the other node has more CPU to offer, so
    // without the volume's node affinity the database would go there.
    c.node(ROOMY, "2", "80Gi").await?;
    c.node(BUSY, "8", "20Gi").await?;
    create_manifest(&c.client, "tb-demo", &seed_database_manifest()).await?;

    let volume = bound_volume(&c.client, "tb-demo", "mysql-data-disk").await;
    assert_eq!(affinity_hosts(&volume), [ROOMY]);
    let pod = eventually("the database pod", || async {
        Ok(pods_labelled(&c.client, "tb-demo", "app=database")
            .await?
            .into_iter()
            .next())
    })
    .await;
    assert_eq!(
        scheduled_node(&c.client, "tb-demo", &name(&pod)).await,
        ROOMY
    );
    Ok(())
}

#[tokio::test]
async fn wait_for_first_consumer_provisions_on_the_pods_node() -> anyhow::Result<()> {
    let c = Cluster::start("wffc").await?;
    c.node(ROOMY, "2", "80Gi").await?;
    // More CPU, but no room for the claim: the scheduler must not choose it.
    c.node(BUSY, "8", "1Gi").await?;
    claim(&c.client, "wffc", "data", None, "5Gi").await?;
    let kind = "PersistentVolumeClaim";
    event_seen(
        &c.client,
        "wffc",
        kind,
        "data",
        "WaitForFirstConsumer",
        "waiting for first consumer to be created before binding",
    )
    .await;

    pod_using(&c.client, "wffc", "db", "data", "250m").await?;
    assert_eq!(scheduled_node(&c.client, "wffc", "db").await, ROOMY);
    let volume = bound_volume(&c.client, "wffc", "data").await;
    assert_eq!(affinity_hosts(&volume), [ROOMY]);
    assert!(c.volume_dir(ROOMY, &volume.name_any()).is_dir());
    let claims: Api<PersistentVolumeClaim> = c.api("wffc");
    let claim = claims.get("data").await?;
    assert_eq!(
        claim.annotations()["volume.kubernetes.io/selected-node"],
        ROOMY
    );
    event_seen(
        &c.client,
        "wffc",
        kind,
        "data",
        "ProvisioningSucceeded",
        &format!("Successfully provisioned volume {}", volume.name_any()),
    )
    .await;
    event_seen(
        &c.client,
        "wffc",
        "Pod",
        "db",
        "Scheduled",
        &format!("Successfully assigned wffc/db to {ROOMY}"),
    )
    .await;
    Ok(())
}

#[tokio::test]
async fn unbound_immediate_claims_keep_the_pod_pending_until_bound() -> anyhow::Result<()> {
    let c = Cluster::start("static").await?;
    c.node(ROOMY, "2", "80Gi").await?;
    let classes: Api<k8s_openapi::api::storage::v1::StorageClass> = Api::all(c.client.clone());
    create(
        &classes,
        json!({"metadata": {"name": "manual"},
        "provisioner": "kubernetes.io/no-provisioner", "volumeBindingMode": "Immediate"}),
    )
    .await?;
    claim(&c.client, "static", "data", Some("manual"), "1Gi").await?;
    pod_using(&c.client, "static", "db", "data", "100m").await?;
    refused(
        &c.client,
        "static",
        "db",
        "0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims.",
    )
    .await;

    // An administrator makes a volume: the claim binds, then the pod is scheduled.
    let volumes: Api<PersistentVolume> = Api::all(c.client.clone());
    create(
        &volumes,
        json!({"metadata": {"name": "disk-1"}, "spec": {
        "capacity": {"storage": "2Gi"}, "accessModes": ["ReadWriteOnce"],
        "storageClassName": "manual", "hostPath": {"path": "/tmp/keg-disk-1"}}}),
    )
    .await?;
    assert_eq!(
        bound_volume(&c.client, "static", "data").await.name_any(),
        "disk-1"
    );
    assert_eq!(scheduled_node(&c.client, "static", "db").await, ROOMY);
    Ok(())
}

#[tokio::test]
async fn a_volume_tied_to_another_node_is_a_node_affinity_conflict() -> anyhow::Result<()> {
    let c = Cluster::start("pinned").await?;
    c.node(ROOMY, "2", "80Gi").await?;
    c.node(BUSY, "2", "80Gi").await?;
    let volumes: Api<PersistentVolume> = Api::all(c.client.clone());
    create(&volumes, json!({"metadata": {"name": "elsewhere"}, "spec": {
        "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "storageClassName": "",
        "local": {"path": "/mnt/disks/1"},
        "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
            {"key": "kubernetes.io/hostname", "operator": "In", "values": ["ip-192-168-9-9.ec2.internal"]}]}]}}}})).await?;
    claim(&c.client, "pinned", "data", Some(""), "1Gi").await?;
    bound_volume(&c.client, "pinned", "data").await;
    pod_using(&c.client, "pinned", "db", "data", "100m").await?;
    refused(
        &c.client,
        "pinned",
        "db",
        "0/2 nodes are available: 2 node(s) had volume node affinity conflict.",
    )
    .await;
    Ok(())
}

#[tokio::test]
async fn a_claim_no_node_has_room_for_waits_for_a_bigger_node() -> anyhow::Result<()> {
    let c = Cluster::start("big").await?;
    c.node(BUSY, "2", "80Gi").await?;
    claim(&c.client, "big", "data", None, "100Gi").await?;
    pod_using(&c.client, "big", "db", "data", "100m").await?;
    refused(
        &c.client,
        "big",
        "db",
        "0/1 nodes are available: 1 node(s) did not have enough free storage.",
    )
    .await;
    c.node(ROOMY, "2", "200Gi").await?;
    assert_eq!(scheduled_node(&c.client, "big", "db").await, ROOMY);
    assert_eq!(
        affinity_hosts(&bound_volume(&c.client, "big", "data").await),
        [ROOMY]
    );
    Ok(())
}

#[tokio::test]
async fn a_missing_claim_is_named() -> anyhow::Result<()> {
    let c = Cluster::start("missing").await?;
    c.node(ROOMY, "2", "80Gi").await?;
    pod_using(&c.client, "missing", "db", "nope", "100m").await?;
    refused(
        &c.client,
        "missing",
        "db",
        "0/1 nodes are available: persistentvolumeclaim \"nope\" not found.",
    )
    .await;
    claim(&c.client, "missing", "nope", None, "1Gi").await?;
    assert_eq!(scheduled_node(&c.client, "missing", "db").await, ROOMY);
    Ok(())
}

#[tokio::test]
async fn the_next_pod_using_a_claim_finds_its_data() -> anyhow::Result<()> {
    let c = Cluster::start("again").await?;
    c.node(ROOMY, "2", "80Gi").await?;
    c.node(BUSY, "8", "80Gi").await?;
    claim(&c.client, "again", "data", None, "1Gi").await?;
    pod_using(&c.client, "again", "first", "data", "100m").await?;
    let node = scheduled_node(&c.client, "again", "first").await;
    let volume = bound_volume(&c.client, "again", "data").await;
    // What the first pod wrote to its mount (the node agent mounts this directory).
    let dir = c.volume_dir(&node, &volume.name_any());
    std::fs::write(dir.join("beers.csv"), "1,Stout\n")?;

    let pods: Api<Pod> = c.api("again");
    pods.delete("first", &DeleteParams::default().grace_period(0))
        .await?;
    // A node with more to offer than any: only the volume keeps the next pod where it was.
    c.node("ip-192-168-1-30.ec2.internal", "32", "80Gi").await?;
    pod_using(&c.client, "again", "second", "data", "100m").await?;
    assert_eq!(scheduled_node(&c.client, "again", "second").await, node);
    let claims: Api<PersistentVolumeClaim> = c.api("again");
    let claim = claims.get("data").await?;
    assert_eq!(claim.spec.unwrap().volume_name, volume.metadata.name);
    assert_eq!(std::fs::read_to_string(dir.join("beers.csv"))?, "1,Stout\n");
    Ok(())
}

#[tokio::test]
async fn claims_sent_to_a_node_book_its_storage_before_their_volumes_exist() -> anyhow::Result<()> {
    let c = Cluster::start("spread").await?;
    // Two equal nodes, each with room for one of the two claims.
    c.node(ROOMY, "2", "1Gi").await?;
    c.node(BUSY, "2", "1Gi").await?;
    for n in ["a", "b"] {
        claim(&c.client, "spread", n, None, "600Mi").await?;
    }
    for n in ["a", "b"] {
        pod_using(&c.client, "spread", n, n, "0").await?;
    }
    let a = scheduled_node(&c.client, "spread", "a").await;
    let b = scheduled_node(&c.client, "spread", "b").await;
    assert_ne!(a, b, "one node cannot hold both claims");
    assert_eq!(
        affinity_hosts(&bound_volume(&c.client, "spread", "a").await),
        [a]
    );
    assert_eq!(
        affinity_hosts(&bound_volume(&c.client, "spread", "b").await),
        [b]
    );
    // Chosen right the first time: no provisioning failed and had to be chosen again.
    for n in ["a", "b"] {
        let events = events_about(&c.client, "spread", "PersistentVolumeClaim", n).await?;
        assert!(
            !events
                .iter()
                .any(|(reason, _)| reason == "ProvisioningFailed"),
            "{n}: {events:?}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn fargate_refuses_pods_with_block_store_volumes() -> anyhow::Result<()> {
    let c = Cluster::start("tb-demo").await?;
    c.node(ROOMY, "2", "80Gi").await?;
    let profiles: Api<keg_api::crds::FargateProfile> = Api::all(c.client.clone());
    create(
        &profiles,
        json!({"apiVersion": "keg.dev/v1", "kind": "FargateProfile",
        "metadata": {"name": "fp-demo-service"},
        "spec": {"selectors": [{"namespace": "tb-demo", "labels": {"app": "service"}}]}}),
    )
    .await?;
    let classes: Api<k8s_openapi::api::storage::v1::StorageClass> = Api::all(c.client.clone());
    create(
        &classes,
        json!({"metadata": {"name": "tb-gp2"},
        "provisioner": "kubernetes.io/aws-ebs", "volumeBindingMode": "Immediate"}),
    )
    .await?;
    claim(&c.client, "tb-demo", "data", Some("tb-gp2"), "25Mi").await?;
    let volume = bound_volume(&c.client, "tb-demo", "data").await;
    // A pod the profile selects (app=service) that mounts the claim.
    let pods: Api<Pod> = c.api("tb-demo");
    create(
        &pods,
        json!({"metadata": {"name": "api", "labels": {"app": "service"}}, "spec": {
        "containers": [{"name": "api", "image": "terrax/beer-api:1",
            "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]}}),
    )
    .await?;
    let message = format!(
        "Pod not supported on Fargate: volumes not supported: data not supported because: PVC data bound to invalid PV {} with nil CSI spec",
        volume.name_any()
    );
    refused(&c.client, "tb-demo", "api", &message).await;
    Ok(())
}

#[tokio::test]
async fn local_volumes_made_by_hand_bind_when_their_pod_is_scheduled() -> anyhow::Result<()> {
    let c = Cluster::start("local").await?;
    c.node(ROOMY, "2", "80Gi").await?;
    c.node(BUSY, "8", "80Gi").await?;
    // Upstream's recipe for local disks: no provisioner, WaitForFirstConsumer, and a volume
    // per disk tied to its node.
    let classes: Api<k8s_openapi::api::storage::v1::StorageClass> = Api::all(c.client.clone());
    create(&classes, json!({"metadata": {"name": "local-storage"},
        "provisioner": "kubernetes.io/no-provisioner", "volumeBindingMode": "WaitForFirstConsumer"}))
    .await?;
    let volumes: Api<PersistentVolume> = Api::all(c.client.clone());
    create(
        &volumes,
        json!({"metadata": {"name": "roomy-disk"}, "spec": {
        "capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteOnce"],
        "storageClassName": "local-storage", "local": {"path": "/mnt/disks/1"},
        "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
            {"key": "kubernetes.io/hostname", "operator": "In", "values": [ROOMY]}]}]}}}}),
    )
    .await?;
    claim(&c.client, "local", "data", Some("local-storage"), "5Gi").await?;
    pod_using(&c.client, "local", "db", "data", "100m").await?;
    assert_eq!(scheduled_node(&c.client, "local", "db").await, ROOMY);
    assert_eq!(
        bound_volume(&c.client, "local", "data").await.name_any(),
        "roomy-disk"
    );
    // A second claim has no disk left anywhere.
    claim(&c.client, "local", "more", Some("local-storage"), "5Gi").await?;
    pod_using(&c.client, "local", "db2", "more", "100m").await?;
    refused(
        &c.client,
        "local",
        "db2",
        "0/2 nodes are available: 2 node(s) didn't find available persistent volumes to bind.",
    )
    .await;
    Ok(())
}
