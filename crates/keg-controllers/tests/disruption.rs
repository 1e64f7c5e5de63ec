//! Disruption budgets and evictions against the real API server, pods made ready by the
//! kubelet stand-in: the budget's status follows its pods, an eviction takes one allowed
//! disruption, and one the budget cannot afford is upstream's 429.

mod common;

use common::*;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, EvictParams, PostParams};
use serde_json::json;

#[tokio::test]
async fn evictions_take_what_the_budget_allows_and_no_more() -> anyhow::Result<()> {
    let mut cluster = Cluster::start().await?;
    cluster.namespace("pdb").await?;
    cluster.kubelet("pdb");
    let pods: Api<Pod> = cluster.api("pdb");
    for name in ["web-a", "web-b", "web-c"] {
        let pod = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "img"}]},
        }))?;
        pods.create(&PostParams::default(), &pod).await?;
    }
    let budgets: Api<PodDisruptionBudget> = cluster.api("pdb");
    let budget = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}},
    }))?;
    budgets.create(&PostParams::default(), &budget).await?;
    let status = eventually("the budget's status", || async {
        let s = budgets.get("web").await?.status.unwrap_or_default();
        Ok((s.current_healthy == 3).then_some(s))
    })
    .await;
    assert_eq!(
        (
            status.desired_healthy,
            status.expected_pods,
            status.disruptions_allowed
        ),
        (2, 3, 1)
    );
    let condition = &status.conditions.unwrap_or_default()[0];
    assert_eq!(
        (
            condition.type_.as_str(),
            condition.status.as_str(),
            condition.reason.as_str()
        ),
        ("DisruptionAllowed", "True", "SufficientPods")
    );

    pods.evict("web-a", &EvictParams::default()).await?;
    // The disruption was taken at once: a second eviction is refused before the
    // controller has even looked again.
    let refused = pods
        .evict("web-b", &EvictParams::default())
        .await
        .expect_err("the budget allows one disruption");
    let kube::Error::Api(status) = refused else {
        panic!("not an API error: {refused}");
    };
    assert_eq!(status.code, 429);
    assert_eq!(status.reason, "TooManyRequests");
    assert_eq!(
        status.message,
        "Cannot evict pod as it would violate the pod's disruption budget."
    );
    let after = eventually("the budget after the eviction", || async {
        let s = budgets.get("web").await?.status.unwrap_or_default();
        Ok((s.current_healthy == 2 && s.disruptions_allowed == 0).then_some(s))
    })
    .await;
    assert_eq!(
        after.conditions.unwrap_or_default()[0].reason,
        "InsufficientPods"
    );
    assert!(
        pods.get_opt("web-b").await?.is_some(),
        "web-b was not evicted"
    );
    Ok(())
}
