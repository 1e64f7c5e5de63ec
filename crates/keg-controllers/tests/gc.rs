//! Garbage collection as `kubectl delete` drives it: background, foreground and orphan
//! propagation, dependents of owners that never existed, and whole namespaces.

mod common;

use common::*;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::json;

/// A namespace with a rolled-out Deployment "app" of two pods.
async fn cluster_with_deployment(ns: &str) -> anyhow::Result<Cluster> {
    let mut cluster = Cluster::start().await?;
    cluster.namespace(ns).await?;
    cluster.kubelet(ns);
    let deployments: Api<Deployment> = cluster.api(ns);
    deployments
        .create(
            &PostParams::default(),
            &deployment("app", 2, "app:1", json!({}))?,
        )
        .await?;
    rolled_out(&deployments, "app").await;
    Ok(cluster)
}

async fn count<K>(api: &Api<K>) -> anyhow::Result<usize>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    Ok(api.list(&ListParams::default()).await?.items.len())
}

#[tokio::test]
async fn background_deletion_removes_replica_sets_and_pods() -> anyhow::Result<()> {
    let cluster = cluster_with_deployment("bg").await?;
    let deployments: Api<Deployment> = cluster.api("bg");
    deployments
        .delete("app", &DeleteParams::background())
        .await?;
    let (sets, pods): (Api<ReplicaSet>, Api<Pod>) = (cluster.api("bg"), cluster.api("bg"));
    eventually("the ReplicaSet and pods to be collected", || async {
        Ok((count(&sets).await? == 0 && count(&pods).await? == 0).then_some(()))
    })
    .await;
    assert!(deployments.get_opt("app").await?.is_none());
    Ok(())
}

#[tokio::test]
async fn foreground_deletion_keeps_the_owner_until_its_dependents_are_gone() -> anyhow::Result<()> {
    let cluster = cluster_with_deployment("fg").await?;
    let deployments: Api<Deployment> = cluster.api("fg");
    let marked = deployments
        .delete("app", &DeleteParams::foreground())
        .await?
        .left()
        .expect("deletion in progress");
    assert!(
        marked
            .finalizers()
            .contains(&"foregroundDeletion".to_string())
    );
    assert!(marked.metadata.deletion_timestamp.is_some());
    let (sets, pods): (Api<ReplicaSet>, Api<Pod>) = (cluster.api("fg"), cluster.api("fg"));
    eventually("the Deployment to go last", || async {
        if deployments.get_opt("app").await?.is_some() {
            return Ok(None);
        }
        assert_eq!(
            (count(&sets).await?, count(&pods).await?),
            (0, 0),
            "dependents went before their owner"
        );
        Ok(Some(()))
    })
    .await;
    Ok(())
}

#[tokio::test]
async fn orphan_deletion_keeps_replica_sets_and_pods() -> anyhow::Result<()> {
    let cluster = cluster_with_deployment("orphan").await?;
    let deployments: Api<Deployment> = cluster.api("orphan");
    // kubectl delete --cascade=orphan
    deployments.delete("app", &DeleteParams::orphan()).await?;
    eventually("the Deployment to go", || async {
        Ok(deployments.get_opt("app").await?.is_none().then_some(()))
    })
    .await;
    let sets: Api<ReplicaSet> = cluster.api("orphan");
    let rs = eventually("the ReplicaSet to lose its owner reference", || async {
        let list = sets.list(&ListParams::default()).await?.items;
        Ok(list.into_iter().find(|rs| rs.owner_references().is_empty()))
    })
    .await;
    let pods = live_pods(&cluster.client, "orphan").await?;
    assert_eq!(pods.len(), 2);
    assert!(pods.iter().all(|p| {
        p.owner_references()
            .iter()
            .any(|r| r.uid == rs.uid().unwrap())
    }));
    Ok(())
}

#[tokio::test]
async fn dependents_of_an_owner_that_does_not_exist_are_collected() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    cluster.namespace("dangling").await?;
    let maps: Api<ConfigMap> = cluster.api("dangling");
    let owned = serde_json::from_value(json!({
        "metadata": {"name": "owned", "ownerReferences": [
            {"apiVersion": "v1", "kind": "ConfigMap", "name": "gone", "uid": "00000000-0000-0000-0000-000000000000"}
        ]},
        "data": {"k": "v"},
    }))?;
    maps.create(&PostParams::default(), &owned).await?;
    let keeper = serde_json::from_value(json!({"metadata": {"name": "keeper"}}))?;
    let keeper = maps.create(&PostParams::default(), &keeper).await?;
    let both = serde_json::from_value(json!({
        "metadata": {"name": "both", "ownerReferences": [
            {"apiVersion": "v1", "kind": "ConfigMap", "name": "gone", "uid": "00000000-0000-0000-0000-000000000000"},
            {"apiVersion": "v1", "kind": "ConfigMap", "name": "keeper", "uid": keeper.uid()},
        ]},
    }))?;
    maps.create(&PostParams::default(), &both).await?;
    eventually(
        "the dependent of a missing owner to be collected",
        || async { Ok(maps.get_opt("owned").await?.is_none().then_some(())) },
    )
    .await;
    let both = eventually("the dangling reference to be dropped", || async {
        let both = maps.get("both").await?;
        Ok((both.owner_references().len() == 1).then_some(both))
    })
    .await;
    assert_eq!(both.owner_references()[0].name, "keeper");
    Ok(())
}

#[tokio::test]
async fn deleting_a_namespace_removes_everything_in_it() -> anyhow::Result<()> {
    let cluster = cluster_with_deployment("doomed").await?;
    let namespaces: Api<Namespace> = Api::all(cluster.client.clone());
    namespaces
        .delete("doomed", &DeleteParams::default())
        .await?;
    let terminating = namespaces.get("doomed").await?;
    assert_eq!(
        terminating.status.and_then(|s| s.phase).as_deref(),
        Some("Terminating")
    );
    eventually("the namespace to go", || async {
        Ok(namespaces.get_opt("doomed").await?.is_none().then_some(()))
    })
    .await;
    let pods: Api<Pod> = cluster.api("doomed");
    assert_eq!(count(&pods).await?, 0);
    Ok(())
}
