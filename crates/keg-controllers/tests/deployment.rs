//! Deployments as a user drives them: rollouts after an image change, undo, pause and
//! resume, Recreate, scaling, history cleanup and the progress deadline.

mod common;

use common::*;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

const REVISION: &str = "deployment.kubernetes.io/revision";

fn annotation(obj: &impl ResourceExt, key: &str) -> Option<String> {
    obj.annotations().get(key).cloned()
}

async fn set_image(deployments: &Api<Deployment>, name: &str, image: &str) -> anyhow::Result<()> {
    let patch =
        json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": image}]}}}});
    deployments
        .patch(name, &PatchParams::default(), &Patch::Strategic(&patch))
        .await?;
    Ok(())
}

fn image(rs: &ReplicaSet) -> String {
    let template = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.spec.as_ref());
    template
        .and_then(|s| s.containers[0].image.clone())
        .unwrap_or_default()
}

fn replicas(rs: &ReplicaSet) -> i32 {
    rs.spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or_default()
}

/// What `kubectl rollout undo` does (client-side since kubectl 1.x): the template of the
/// ReplicaSet with the previous revision, without its pod-template-hash, patched in.
async fn rollout_undo(client: &kube::Client, ns: &str, name: &str) -> anyhow::Result<()> {
    let sets = replica_sets(client, ns).await?;
    let mut revisions: Vec<(i64, &ReplicaSet)> = sets
        .iter()
        .filter_map(|rs| Some((annotation(rs, REVISION)?.parse().ok()?, rs)))
        .collect();
    revisions.sort_by_key(|(r, _)| *r);
    let (_, previous) = revisions[revisions.len() - 2];
    let mut template = previous
        .spec
        .as_ref()
        .and_then(|s| s.template.clone())
        .expect("template");
    template
        .metadata
        .as_mut()
        .and_then(|m| m.labels.as_mut())
        .map(|l| l.remove("pod-template-hash"));
    let patch = json!([{"op": "replace", "path": "/spec/template", "value": template}]);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    deployments
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Json::<()>(serde_json::from_value(patch)?),
        )
        .await?;
    Ok(())
}

/// The first rollout: revision 1, the ReplicaSet named by its hash, conditions, events.
async fn check_first_rollout(
    cluster: &Cluster,
    deployments: &Api<Deployment>,
) -> anyhow::Result<ReplicaSet> {
    let d = rolled_out(deployments, "web").await;
    assert_eq!(annotation(&d, REVISION).as_deref(), Some("1"));
    let (status, reason, message) = condition(&d, "Available").expect("Available condition");
    assert_eq!(
        (status.as_str(), reason.as_str(), message.as_str()),
        (
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability."
        )
    );
    let first = replica_sets(&cluster.client, "roll").await?.remove(0);
    let hash = first.labels()["pod-template-hash"].clone();
    assert_eq!(first.name_any(), format!("web-{hash}"));
    assert_eq!(
        annotation(&first, "deployment.kubernetes.io/desired-replicas").as_deref(),
        Some("3")
    );
    assert_eq!(
        annotation(&first, "deployment.kubernetes.io/max-replicas").as_deref(),
        Some("4")
    );
    let progressing = eventually(
        "Progressing to say the new ReplicaSet is available",
        || async {
            let d = deployments.get("web").await?;
            Ok(condition(&d, "Progressing")
                .filter(|(_, reason, _)| reason == "NewReplicaSetAvailable"))
        },
    )
    .await;
    assert_eq!(
        progressing.2,
        format!("ReplicaSet \"web-{hash}\" has successfully progressed.")
    );
    let pods = live_pods(&cluster.client, "roll").await?;
    assert_eq!(pods.len(), 3);
    assert!(
        pods.iter()
            .all(|p| p.labels().get("pod-template-hash") == Some(&hash))
    );
    event_seen(
        &cluster.client,
        "roll",
        "Deployment",
        "web",
        "ScalingReplicaSet",
        &format!("Scaled up replica set web-{hash} from 0 to 3"),
    )
    .await;
    let created = events_about(&cluster.client, "roll", "ReplicaSet", &first.name_any()).await?;
    let pod_names: Vec<String> = created
        .iter()
        .filter(|(r, _)| r == "SuccessfulCreate")
        .map(|(_, m)| m.clone())
        .collect();
    assert_eq!(
        pod_names.len(),
        3,
        "one SuccessfulCreate per pod: {created:?}"
    );
    assert!(
        pod_names
            .iter()
            .all(|m| m.starts_with(&format!("Created pod: web-{hash}-")))
    );
    Ok(first)
}

/// A rollout after an image change: revision 2, old pods replaced, old ReplicaSet at zero.
async fn check_image_change(
    cluster: &Cluster,
    deployments: &Api<Deployment>,
) -> anyhow::Result<()> {
    set_image(deployments, "web", "nginx:1.26").await?;
    let d = rolled_out(deployments, "web").await;
    assert_eq!(annotation(&d, REVISION).as_deref(), Some("2"));
    let sets = replica_sets(&cluster.client, "roll").await?;
    assert_eq!(sets.len(), 2);
    let (old, new) = (&sets[0], &sets[1]);
    assert_eq!(
        (
            image(new).as_str(),
            replicas(new),
            annotation(new, REVISION).as_deref()
        ),
        ("nginx:1.26", 3, Some("2"))
    );
    assert_eq!(replicas(old), 0);
    let pods = eventually("the old pods to go", || async {
        let pods = live_pods(&cluster.client, "roll").await?;
        Ok((pods.len() == 3).then_some(pods))
    })
    .await;
    assert!(
        pods.iter()
            .all(|p| p.labels().get("pod-template-hash") == new.labels().get("pod-template-hash"))
    );
    event_seen(
        &cluster.client,
        "roll",
        "Deployment",
        "web",
        "ScalingReplicaSet",
        &format!("Scaled down replica set {} from 1 to 0", old.name_any()),
    )
    .await;
    Ok(())
}

#[tokio::test]
async fn image_change_rolls_out_and_undo_brings_the_old_template_back() -> anyhow::Result<()> {
    let mut cluster = Cluster::start().await?;
    cluster.namespace("roll").await?;
    cluster.kubelet("roll");
    let deployments: Api<Deployment> = cluster.api("roll");
    deployments
        .create(
            &PostParams::default(),
            &deployment("web", 3, "nginx:1.25", json!({}))?,
        )
        .await?;

    let first = check_first_rollout(&cluster, &deployments).await?;
    check_image_change(&cluster, &deployments).await?;

    rollout_undo(&cluster.client, "roll", "web").await?;
    let d = rolled_out(&deployments, "web").await;
    assert_eq!(annotation(&d, REVISION).as_deref(), Some("3"));
    let sets = replica_sets(&cluster.client, "roll").await?;
    assert_eq!(sets.len(), 2, "undo reuses the first ReplicaSet");
    let back = sets
        .iter()
        .find(|rs| rs.name_any() == first.name_any())
        .expect("first ReplicaSet");
    assert_eq!((image(back).as_str(), replicas(back)), ("nginx:1.25", 3));
    assert_eq!(annotation(back, REVISION).as_deref(), Some("3"));
    assert_eq!(
        annotation(back, "deployment.kubernetes.io/revision-history").as_deref(),
        Some("1")
    );
    Ok(())
}

#[tokio::test]
async fn paused_deployment_does_not_roll_until_resumed() -> anyhow::Result<()> {
    let mut cluster = Cluster::start().await?;
    cluster.namespace("pause").await?;
    cluster.kubelet("pause");
    let deployments: Api<Deployment> = cluster.api("pause");
    deployments
        .create(
            &PostParams::default(),
            &deployment("api", 2, "app:1", json!({}))?,
        )
        .await?;
    rolled_out(&deployments, "api").await;

    deployments
        .patch(
            "api",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"paused": true}})),
        )
        .await?;
    set_image(&deployments, "api", "app:2").await?;
    let d = eventually("the paused spec to be observed", || async {
        let d = deployments.get("api").await?;
        let observed =
            d.status.as_ref().and_then(|s| s.observed_generation) >= d.metadata.generation;
        Ok(
            (observed && condition(&d, "Progressing").is_some_and(|c| c.1 == "DeploymentPaused"))
                .then_some(d),
        )
    })
    .await;
    assert_eq!(
        condition(&d, "Progressing").unwrap().2,
        "Deployment is paused"
    );
    let sets = replica_sets(&cluster.client, "pause").await?;
    assert_eq!(sets.len(), 1, "a paused Deployment makes no new ReplicaSet");
    assert_eq!(image(&sets[0]), "app:1");

    deployments
        .patch(
            "api",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"paused": false}})),
        )
        .await?;
    rolled_out(&deployments, "api").await;
    let sets = replica_sets(&cluster.client, "pause").await?;
    assert_eq!(
        sets.iter()
            .map(|rs| (image(rs), replicas(rs)))
            .collect::<Vec<_>>(),
        [("app:1".to_string(), 0), ("app:2".to_string(), 2)]
    );
    Ok(())
}

#[tokio::test]
async fn recreate_scales_the_old_replica_set_down_before_the_new_one_up() -> anyhow::Result<()> {
    let mut cluster = Cluster::start().await?;
    cluster.namespace("recreate").await?;
    cluster.kubelet("recreate");
    let deployments: Api<Deployment> = cluster.api("recreate");
    let spec = json!({"strategy": {"type": "Recreate"}});
    deployments
        .create(&PostParams::default(), &deployment("db", 2, "db:1", spec)?)
        .await?;
    rolled_out(&deployments, "db").await;
    set_image(&deployments, "db", "db:2").await?;
    rolled_out(&deployments, "db").await;

    let sets = replica_sets(&cluster.client, "recreate").await?;
    let (old, new) = (sets[0].name_any(), sets[1].name_any());
    let scaling: Vec<String> = events_about(&cluster.client, "recreate", "Deployment", "db")
        .await?
        .into_iter()
        .filter(|(reason, _)| reason == "ScalingReplicaSet")
        .map(|(_, message)| message)
        .collect();
    let down = scaling
        .iter()
        .position(|m| *m == format!("Scaled down replica set {old} from 2 to 0"))
        .expect("old scaled down");
    let up = scaling
        .iter()
        .position(|m| *m == format!("Scaled up replica set {new} from 0 to 2"))
        .expect("new scaled up");
    assert!(down < up, "Recreate scales down first: {scaling:?}");
    Ok(())
}

#[tokio::test]
async fn scaling_resizes_the_replica_set_and_deletes_pods() -> anyhow::Result<()> {
    let mut cluster = Cluster::start().await?;
    cluster.namespace("scale").await?;
    cluster.kubelet("scale");
    let deployments: Api<Deployment> = cluster.api("scale");
    deployments
        .create(
            &PostParams::default(),
            &deployment("svc", 1, "svc:1", json!({}))?,
        )
        .await?;
    rolled_out(&deployments, "svc").await;

    // As `kubectl scale deployment svc --replicas=4`: through the scale subresource.
    let scale = json!({"spec": {"replicas": 4}});
    deployments
        .patch_scale("svc", &PatchParams::default(), &Patch::Merge(&scale))
        .await?;
    let d = rolled_out(&deployments, "svc").await;
    assert_eq!(
        d.status.as_ref().and_then(|s| s.available_replicas),
        Some(4)
    );
    assert_eq!(live_pods(&cluster.client, "scale").await?.len(), 4);
    let rs = replica_sets(&cluster.client, "scale").await?.remove(0);
    assert_eq!(
        annotation(&rs, "deployment.kubernetes.io/desired-replicas").as_deref(),
        Some("4")
    );

    deployments
        .patch(
            "svc",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 1}})),
        )
        .await?;
    rolled_out(&deployments, "svc").await;
    eventually("three pods to be deleted", || async {
        Ok((live_pods(&cluster.client, "scale").await?.len() == 1).then_some(()))
    })
    .await;
    event_seen(
        &cluster.client,
        "scale",
        "Deployment",
        "svc",
        "ScalingReplicaSet",
        &format!("Scaled down replica set {} from 4 to 1", rs.name_any()),
    )
    .await;
    // A pod is gone before the event of its deletion is recorded: wait for all three.
    eventually("three SuccessfulDelete events", || async {
        let deleted = events_about(&cluster.client, "scale", "ReplicaSet", &rs.name_any()).await?;
        let count = deleted
            .iter()
            .filter(|(r, m)| r == "SuccessfulDelete" && m.starts_with("Deleted pod: "))
            .count();
        assert!(count <= 3, "{count} pods deleted: {deleted:?}");
        Ok((count == 3).then_some(()))
    })
    .await;
    assert_eq!(replica_sets(&cluster.client, "scale").await?.len(), 1);
    Ok(())
}

#[tokio::test]
async fn revision_history_limit_deletes_the_oldest_replica_sets() -> anyhow::Result<()> {
    let mut cluster = Cluster::start().await?;
    cluster.namespace("history").await?;
    cluster.kubelet("history");
    let deployments: Api<Deployment> = cluster.api("history");
    deployments
        .create(
            &PostParams::default(),
            &deployment("h", 1, "h:1", json!({"revisionHistoryLimit": 1}))?,
        )
        .await?;
    rolled_out(&deployments, "h").await;
    for version in 2..=4 {
        set_image(&deployments, "h", &format!("h:{version}")).await?;
        rolled_out(&deployments, "h").await;
    }
    let sets = eventually("history to be cut to one old ReplicaSet", || async {
        let sets = replica_sets(&cluster.client, "history").await?;
        Ok((sets.len() == 2).then_some(sets))
    })
    .await;
    let mut kept: Vec<(String, String)> = sets
        .iter()
        .map(|rs| (image(rs), annotation(rs, REVISION).unwrap_or_default()))
        .collect();
    kept.sort();
    assert_eq!(
        kept,
        [
            ("h:3".to_string(), "3".to_string()),
            ("h:4".to_string(), "4".to_string())
        ]
    );
    Ok(())
}

#[tokio::test]
async fn a_rollout_without_ready_pods_exceeds_its_progress_deadline() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    cluster.namespace("stuck").await?;
    // No kubelet: the pods never become ready.
    let deployments: Api<Deployment> = cluster.api("stuck");
    deployments
        .create(
            &PostParams::default(),
            &deployment("stuck", 2, "x:1", json!({"progressDeadlineSeconds": 1}))?,
        )
        .await?;
    let d = eventually("the progress deadline to pass", || async {
        let d = deployments.get("stuck").await?;
        Ok(condition(&d, "Progressing")
            .filter(|c| c.1 == "ProgressDeadlineExceeded")
            .map(|c| (c, d)))
    })
    .await;
    let ((status, _, message), d) = d;
    assert_eq!(status, "False");
    let rs = replica_sets(&cluster.client, "stuck").await?.remove(0);
    assert_eq!(
        message,
        format!(
            "ReplicaSet \"{}\" has timed out progressing.",
            rs.name_any()
        )
    );
    let (available, reason, _) = condition(&d, "Available").expect("Available");
    assert_eq!(
        (available.as_str(), reason.as_str()),
        ("False", "MinimumReplicasUnavailable")
    );
    let pods: Api<Pod> = cluster.api("stuck");
    assert_eq!(pods.list(&Default::default()).await?.items.len(), 2);
    Ok(())
}

#[tokio::test]
async fn min_ready_seconds_delay_availability_but_not_forever() -> anyhow::Result<()> {
    let mut cluster = Cluster::start().await?;
    cluster.namespace("minready").await?;
    cluster.kubelet("minready");
    let deployments: Api<Deployment> = cluster.api("minready");
    let spec = json!({"minReadySeconds": 1});
    deployments
        .create(&PostParams::default(), &deployment("slow", 2, "s:1", spec)?)
        .await?;
    // Nothing but time makes the ready pods available: the controllers must look again.
    let d = rolled_out(&deployments, "slow").await;
    assert_eq!(
        d.status.as_ref().and_then(|s| s.available_replicas),
        Some(2)
    );
    let rs = replica_sets(&cluster.client, "minready").await?.remove(0);
    assert_eq!(rs.spec.as_ref().and_then(|s| s.min_ready_seconds), Some(1));
    Ok(())
}

#[tokio::test]
async fn a_deployment_adopts_the_replica_set_an_orphaning_delete_left() -> anyhow::Result<()> {
    let mut cluster = Cluster::start().await?;
    cluster.namespace("adopt").await?;
    cluster.kubelet("adopt");
    let deployments: Api<Deployment> = cluster.api("adopt");
    let web = deployment("web", 2, "web:1", json!({}))?;
    deployments.create(&PostParams::default(), &web).await?;
    rolled_out(&deployments, "web").await;
    let pods_before: Vec<String> = live_pods(&cluster.client, "adopt")
        .await?
        .iter()
        .map(|p| p.name_any())
        .collect();
    deployments
        .delete("web", &kube::api::DeleteParams::orphan())
        .await?;
    eventually("the Deployment to go", || async {
        Ok(deployments.get_opt("web").await?.is_none().then_some(()))
    })
    .await;

    let again = deployments.create(&PostParams::default(), &web).await?;
    rolled_out(&deployments, "web").await;
    let sets = eventually("the ReplicaSet to be adopted", || async {
        let sets = replica_sets(&cluster.client, "adopt").await?;
        let adopted = sets.iter().all(|rs| {
            rs.owner_references()
                .iter()
                .any(|r| Some(&r.uid) == again.metadata.uid.as_ref())
        });
        Ok(adopted.then_some(sets))
    })
    .await;
    assert_eq!(sets.len(), 1, "the same template needs no new ReplicaSet");
    let mut pods_after: Vec<String> = live_pods(&cluster.client, "adopt")
        .await?
        .iter()
        .map(|p| p.name_any())
        .collect();
    pods_after.sort();
    let mut pods_before = pods_before;
    pods_before.sort();
    assert_eq!(pods_after, pods_before, "the pods kept running");
    Ok(())
}
