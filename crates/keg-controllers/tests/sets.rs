//! StatefulSets and DaemonSets against the real API server, with pods made ready by hand
//! (no kubelet here): ordered start and reverse-ordered update, the partition, claims per
//! ordinal that outlive their pods, and one DaemonSet pod per node-group node but none on
//! Fargate nodes.

mod common;

use common::*;
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet, StatefulSet};
use k8s_openapi::api::core::v1::{Node, PersistentVolumeClaim, Pod};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

fn stateful_set(name: &str, replicas: i32) -> anyhow::Result<StatefulSet> {
    Ok(serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "serviceName": name,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "img:1"}]},
            },
            "volumeClaimTemplates": [{
                "metadata": {"name": "data"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
            }],
        },
    }))?)
}

/// The names of the live pods, sorted.
async fn names(cluster: &Cluster, ns: &str) -> anyhow::Result<Vec<String>> {
    let mut names: Vec<String> = live_pods(&cluster.client, ns)
        .await?
        .iter()
        .map(ResourceExt::name_any)
        .collect();
    names.sort();
    Ok(names)
}

fn revision_of(pod: &Pod) -> String {
    pod.labels()
        .get("controller-revision-hash")
        .cloned()
        .unwrap_or_default()
}

/// Waits until exactly `want` live pods exist, then makes the named one Running and Ready.
async fn then_ready(cluster: &Cluster, ns: &str, want: &[&str], ready: &str) {
    let pods: Api<Pod> = cluster.api(ns);
    eventually(&format!("pods {want:?}"), || async {
        Ok((names(cluster, ns).await? == want).then_some(()))
    })
    .await;
    set_pod_status(&pods, ready, true).await.unwrap();
}

#[tokio::test]
async fn stateful_pods_start_in_order_keep_their_claims_and_update_in_reverse() -> anyhow::Result<()>
{
    let cluster = Cluster::start().await?;
    cluster.namespace("sts").await?;
    let sets: Api<StatefulSet> = cluster.api("sts");
    sets.create(&PostParams::default(), &stateful_set("web", 3)?)
        .await?;
    // OrderedReady: web-1 waits for web-0, web-2 for web-1.
    then_ready(&cluster, "sts", &["web-0"], "web-0").await;
    then_ready(&cluster, "sts", &["web-0", "web-1"], "web-1").await;
    then_ready(&cluster, "sts", &["web-0", "web-1", "web-2"], "web-2").await;
    let pods: Api<Pod> = cluster.api("sts");
    let web0 = pods.get("web-0").await?;
    let spec = web0.spec.clone().unwrap();
    assert_eq!(spec.hostname.as_deref(), Some("web-0"));
    assert_eq!(spec.subdomain.as_deref(), Some("web"));
    let claim = spec.volumes.unwrap_or_default()[0]
        .persistent_volume_claim
        .clone()
        .map(|c| c.claim_name);
    assert_eq!(claim.as_deref(), Some("data-web-0"));
    let claims: Api<PersistentVolumeClaim> = cluster.api("sts");
    let mut claim_names: Vec<String> = claims
        .list(&ListParams::default())
        .await?
        .items
        .iter()
        .map(ResourceExt::name_any)
        .collect();
    claim_names.sort();
    assert_eq!(claim_names, ["data-web-0", "data-web-1", "data-web-2"]);
    let first = eventually("status of the started set", || async {
        let s = sets.get("web").await?.status.unwrap_or_default();
        Ok((s.ready_replicas == Some(3)).then_some(s))
    })
    .await;
    let old_revision = first.current_revision.clone().unwrap();

    // A new template with partition 2: only web-2 is replaced.
    let patch = json!({"spec": {
        "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}},
        "template": {"spec": {"containers": [{"name": "c", "image": "img:2"}]}},
    }});
    sets.patch("web", &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    let updated = eventually("web-2 at the new revision", || async {
        let s = sets.get("web").await?.status.unwrap_or_default();
        let p = pods.get("web-2").await?;
        let at_new = s.update_revision.as_deref() == Some(revision_of(&p).as_str())
            && s.update_revision != s.current_revision;
        Ok((at_new && s.updated_replicas == Some(1)).then_some(s))
    })
    .await;
    set_pod_status(&pods, "web-2", true).await?;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(revision_of(&pods.get("web-1").await?), old_revision);
    assert_eq!(revision_of(&pods.get("web-0").await?), old_revision);
    assert_eq!(
        updated.current_revision.as_deref(),
        Some(old_revision.as_str())
    );

    // Partition 0: web-1, then web-0, each once the one above is ready again.
    let patch = json!({"spec": {"updateStrategy": {"rollingUpdate": {"partition": 0}}}});
    sets.patch("web", &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    eventually("web-1 replaced", || async {
        let p = pods.get_opt("web-1").await?;
        Ok(
            p.filter(|p| revision_of(p) != old_revision && p.metadata.deletion_timestamp.is_none())
                .map(|_| ()),
        )
    })
    .await;
    assert_eq!(
        revision_of(&pods.get("web-0").await?),
        old_revision,
        "web-0 waits for web-1 to be ready"
    );
    set_pod_status(&pods, "web-1", true).await?;
    eventually("web-0 replaced", || async {
        let p = pods.get_opt("web-0").await?;
        Ok(
            p.filter(|p| revision_of(p) != old_revision && p.metadata.deletion_timestamp.is_none())
                .map(|_| ()),
        )
    })
    .await;
    set_pod_status(&pods, "web-0", true).await?;
    let done = eventually("the update complete", || async {
        let s = sets.get("web").await?.status.unwrap_or_default();
        Ok((s.current_revision == s.update_revision && s.updated_replicas == Some(3)).then_some(s))
    })
    .await;
    assert_eq!(done.current_replicas, Some(3));
    let revisions: Api<ControllerRevision> = cluster.api("sts");
    assert_eq!(revisions.list(&ListParams::default()).await?.items.len(), 2);

    // A deleted pod comes back with its name and its claim; scaling down keeps claims.
    pods.delete("web-1", &DeleteParams::default()).await?;
    then_ready(&cluster, "sts", &["web-0", "web-1", "web-2"], "web-1").await;
    let patch = json!({"spec": {"replicas": 1}});
    sets.patch("web", &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    eventually("scaled to one", || async {
        Ok((names(&cluster, "sts").await? == ["web-0"]).then_some(()))
    })
    .await;
    assert_eq!(claims.list(&ListParams::default()).await?.items.len(), 3);
    event_seen(
        &cluster.client,
        "sts",
        "StatefulSet",
        "web",
        "SuccessfulCreate",
        "create Pod web-0 in StatefulSet web successful",
    )
    .await;
    event_seen(
        &cluster.client,
        "sts",
        "StatefulSet",
        "web",
        "SuccessfulCreate",
        "create Claim data-web-0 Pod web-0 in StatefulSet web success",
    )
    .await;
    Ok(())
}

fn node(name: &str, fargate: bool) -> anyhow::Result<Node> {
    let (labels, taints) = if fargate {
        (
            json!({"eks.amazonaws.com/compute-type": "fargate", "kubernetes.io/hostname": name}),
            json!([{"key": "eks.amazonaws.com/compute-type", "value": "fargate", "effect": "NoSchedule"}]),
        )
    } else {
        (
            json!({"alpha.eksctl.io/nodegroup-name": "ng", "kubernetes.io/hostname": name}),
            json!([]),
        )
    };
    Ok(serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels},
        "spec": {"taints": taints},
    }))?)
}

fn pinned_node(pod: &Pod) -> Option<String> {
    let affinity = pod
        .spec
        .as_ref()?
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?;
    let term = affinity
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms
        .first()?;
    term.match_fields
        .as_ref()?
        .first()?
        .values
        .as_ref()?
        .first()
        .cloned()
}

#[tokio::test]
async fn daemon_pods_go_to_each_node_group_node_and_never_to_fargate() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    cluster.namespace("ds").await?;
    let nodes: Api<Node> = Api::all(cluster.client.clone());
    for (name, fargate) in [("ng-1", false), ("ng-2", false), ("fargate-ip-1", true)] {
        nodes
            .create(&PostParams::default(), &node(name, fargate)?)
            .await?;
    }
    let sets: Api<DaemonSet> = cluster.api("ds");
    let ds: DaemonSet = serde_json::from_value(json!({
        "metadata": {"name": "agent"},
        "spec": {
            "selector": {"matchLabels": {"app": "agent"}},
            "template": {
                "metadata": {"labels": {"app": "agent"}},
                "spec": {"containers": [{"name": "c", "image": "img:1"}]},
            },
        },
    }))?;
    sets.create(&PostParams::default(), &ds).await?;
    let pinned = |want: Vec<&'static str>| {
        let cluster = &cluster;
        async move {
            eventually(&format!("daemon pods on {want:?}"), || async {
                let mut on: Vec<String> = live_pods(&cluster.client, "ds")
                    .await?
                    .iter()
                    .filter_map(pinned_node)
                    .collect();
                on.sort();
                Ok((on == want).then_some(()))
            })
            .await
        }
    };
    pinned(vec!["ng-1", "ng-2"]).await;
    let status = eventually("the status counts", || async {
        let s = sets.get("agent").await?.status.unwrap_or_default();
        Ok((s.current_number_scheduled == 2).then_some(s))
    })
    .await;
    assert_eq!(
        status.desired_number_scheduled, 2,
        "Fargate nodes are not counted"
    );
    assert_eq!(status.number_misscheduled, 0);

    // A node added later gets its pod; a node that goes loses it.
    nodes
        .create(&PostParams::default(), &node("ng-3", false)?)
        .await?;
    pinned(vec!["ng-1", "ng-2", "ng-3"]).await;
    nodes.delete("ng-1", &DeleteParams::default()).await?;
    pinned(vec!["ng-2", "ng-3"]).await;
    Ok(())
}

#[tokio::test]
async fn parallel_sets_start_together_from_their_first_ordinal_and_claims_follow_the_policy()
-> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    cluster.namespace("par").await?;
    let sets: Api<StatefulSet> = cluster.api("par");
    let mut set = stateful_set("db", 3)?;
    let spec = set.spec.as_mut().unwrap();
    spec.pod_management_policy = Some("Parallel".into());
    spec.ordinals = Some(serde_json::from_value(json!({"start": 5}))?);
    spec.persistent_volume_claim_retention_policy = Some(serde_json::from_value(
        json!({"whenDeleted": "Delete", "whenScaled": "Delete"}),
    )?);
    sets.create(&PostParams::default(), &set).await?;
    // Parallel: all three at once, none of them ready.
    eventually("db-5, db-6 and db-7 together", || async {
        Ok((names(&cluster, "par").await? == ["db-5", "db-6", "db-7"]).then_some(()))
    })
    .await;
    let claims: Api<PersistentVolumeClaim> = cluster.api("par");
    let claim_names = || async {
        let mut names: Vec<String> = claims
            .list(&ListParams::default())
            .await?
            .items
            .iter()
            .filter(|c| c.metadata.deletion_timestamp.is_none())
            .map(ResourceExt::name_any)
            .collect();
        names.sort();
        anyhow::Ok(names)
    };
    eventually("three claims", || async {
        Ok((claim_names().await? == ["data-db-5", "data-db-6", "data-db-7"]).then_some(()))
    })
    .await;
    // whenScaled: Delete: the claim of a scaled-away ordinal goes with its pod.
    let patch = json!({"spec": {"replicas": 2}});
    sets.patch("db", &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    eventually("db-7 and its claim gone", || async {
        let pods_gone = names(&cluster, "par").await? == ["db-5", "db-6"];
        Ok((pods_gone && claim_names().await? == ["data-db-5", "data-db-6"]).then_some(()))
    })
    .await;
    // whenDeleted: Delete: the claims go with the set.
    sets.delete("db", &DeleteParams::default()).await?;
    eventually("every claim gone with the set", || async {
        Ok(claim_names().await?.is_empty().then_some(()))
    })
    .await;
    Ok(())
}
