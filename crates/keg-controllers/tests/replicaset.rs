//! ReplicaSets on their own: adopting and releasing pods by selector, and which pods go
//! first when scaling down.

mod common;

use common::*;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

fn replica_set(name: &str, replicas: i32) -> anyhow::Result<ReplicaSet> {
    Ok(serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "c", "image": "img"}]}},
        },
    }))?)
}

fn controlled_by(pod: &Pod, rs: &ReplicaSet) -> bool {
    pod.owner_references()
        .iter()
        .any(|r| r.controller == Some(true) && Some(&r.uid) == rs.metadata.uid.as_ref())
}

#[tokio::test]
async fn adopts_matching_orphans_and_releases_pods_that_stop_matching() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    cluster.namespace("adopt").await?;
    let pods: Api<Pod> = cluster.api("adopt");
    let orphan = serde_json::from_value(json!({
        "metadata": {"name": "orphan", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "c", "image": "img"}]},
    }))?;
    pods.create(&PostParams::default(), &orphan).await?;
    let sets: Api<ReplicaSet> = cluster.api("adopt");
    let rs = sets
        .create(&PostParams::default(), &replica_set("web", 2)?)
        .await?;

    let owned = eventually("two pods, the orphan adopted", || async {
        let live = live_pods(&cluster.client, "adopt").await?;
        Ok((live.len() == 2 && live.iter().all(|p| controlled_by(p, &rs))).then_some(live))
    })
    .await;
    assert!(
        owned.iter().any(|p| p.name_any() == "orphan"),
        "the orphan was adopted, not replaced"
    );
    assert_eq!(
        owned
            .iter()
            .filter(|p| p.name_any().starts_with("web-"))
            .count(),
        1
    );

    let relabel = json!({"metadata": {"labels": {"app": "other"}}});
    pods.patch("orphan", &PatchParams::default(), &Patch::Merge(&relabel))
        .await?;
    eventually("the relabelled pod released and replaced", || async {
        let released = pods.get("orphan").await?;
        let live = live_pods(&cluster.client, "adopt").await?;
        let owned = live.iter().filter(|p| controlled_by(p, &rs)).count();
        Ok((released.owner_references().is_empty() && owned == 2).then_some(()))
    })
    .await;
    let rs = sets.get("web").await?;
    assert_eq!(rs.status.map(|s| s.replicas), Some(2));
    Ok(())
}

#[tokio::test]
async fn scaling_down_deletes_pods_that_are_not_ready_first() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    cluster.namespace("rank").await?;
    let sets: Api<ReplicaSet> = cluster.api("rank");
    sets.create(&PostParams::default(), &replica_set("db", 3)?)
        .await?;
    let pods: Api<Pod> = cluster.api("rank");
    let created = eventually("three pods", || async {
        let live = live_pods(&cluster.client, "rank").await?;
        Ok((live.len() == 3).then_some(live))
    })
    .await;
    // The kubelet stand-in: one pod ready, one running but not ready, one still pending.
    set_pod_status(&pods, &created[0].name_any(), true).await?;
    set_pod_status(&pods, &created[1].name_any(), false).await?;
    eventually("the ReplicaSet to count one ready pod", || async {
        let rs = sets.get("db").await?;
        Ok((rs.status.and_then(|s| s.ready_replicas) == Some(1)).then_some(()))
    })
    .await;

    sets.patch(
        "db",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 1}})),
    )
    .await?;
    let left = eventually("one pod left", || async {
        let live = live_pods(&cluster.client, "rank").await?;
        Ok((live.len() == 1).then_some(live))
    })
    .await;
    assert_eq!(
        left[0].name_any(),
        created[0].name_any(),
        "the ready pod stays"
    );
    for gone in &created[1..] {
        event_seen(
            &cluster.client,
            "rank",
            "ReplicaSet",
            "db",
            "SuccessfulDelete",
            &format!("Deleted pod: {}", gone.name_any()),
        )
        .await;
    }
    Ok(())
}
