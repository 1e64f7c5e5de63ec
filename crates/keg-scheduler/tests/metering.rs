//! The Fargate scheduler and metering together: the node and `CapacityProvisioned` the
//! scheduler gives a pod are what metering bills, from the pod's start to its end. No node
//! agent runs; the test writes the statuses it would.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use keg_api::nodes::ClusterInfo;
use keg_api::prices::PriceTable;
use keg_api::usage::{Compute, EndReason, UsageRecord};
use keg_controllers::metering;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;

const DEADLINE: Duration = Duration::from_secs(60);

async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Option<T>>>,
{
    let polled = tokio::time::timeout(DEADLINE, async {
        loop {
            if let Ok(Some(value)) = check().await {
                return value;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    polled.unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

async fn create<K>(api: &Api<K>, value: serde_json::Value) -> anyhow::Result<K>
where
    K: Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    Ok(api
        .create(&PostParams::default(), &serde_json::from_value(value)?)
        .await?)
}

#[tokio::test]
async fn a_fargate_pod_is_billed_at_the_size_the_scheduler_provisioned() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let config = keg_apiserver::Config::local(dir.path());
    let admission = keg_apiserver::admission::Admission::standard();
    let server = keg_apiserver::ApiServer::open(config, admission).await?;
    let client: Client =
        keg_apiserver::client::in_process_client(server.router(), server.tokens.admin());
    let cluster = ClusterInfo {
        name: "terrax".into(),
        region: "eu-west-1".into(),
        agent: "terrax".into(),
    };
    let scheduler = tokio::spawn(keg_scheduler::run(client.clone(), cluster.clone()));
    let config = metering::Config::new(&cluster, PriceTable::aws());
    let meter = tokio::spawn(metering::run(client.clone(), config));

    create(
        &Api::<Namespace>::all(client.clone()),
        json!({"metadata": {"name": "tb-demo"}}),
    )
    .await?;
    let profile = json!({"apiVersion": "keg.dev/v1", "kind": "FargateProfile",
        "metadata": {"name": "fp-demo"},
        "spec": {"selectors": [{"namespace": "tb-demo", "labels": {"app": "service"}}]}});
    create(
        &Api::<keg_api::FargateProfile>::all(client.clone()),
        profile,
    )
    .await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "tb-demo");
    let pod = json!({"metadata": {"name": "service", "labels": {"app": "service"}},
        "spec": {"containers": [{"name": "app", "image": "app:1",
            "resources": {"requests": {"cpu": "1", "memory": "2Gi"}}}]}});
    let pod = create(&pods, pod).await?;

    let node = eventually("the pod to be bound", || async {
        let pod = pods.get("service").await?;
        Ok(pod.spec.and_then(|s| s.node_name))
    })
    .await;
    // The node agent takes the pod on.
    let status = json!({"status": {"phase": "Running", "startTime": "2025-01-01T00:00:00Z"}});
    pods.patch_status("service", &PatchParams::default(), &Patch::Merge(status))
        .await?;
    let records: Api<UsageRecord> = Api::all(client.clone());
    let name = metering::pod_record_name(&pod.uid().unwrap());
    let record = eventually("the pod's record", || async {
        Ok(records.get_opt(&name).await?)
    })
    .await;
    // 1 vCPU and 2 GiB + 256 MiB round up to Fargate's 1 vCPU 3 GB.
    assert_eq!(record.spec.compute, Compute::Fargate);
    assert_eq!(record.spec.capacity.as_deref(), Some("1vCPU 3GB"));
    assert_eq!(record.spec.node.as_deref(), Some(node.as_str()));
    assert_eq!(record.spec.profile.as_deref(), Some("fp-demo"));
    let eu_hourly = 0.04456 + 3.0 * 0.004865;
    assert!((record.spec.hourly_rate - eu_hourly).abs() < 1e-12);

    // It finishes after 61 seconds: billed 61, and its node is recycled.
    let done = json!({"status": {"phase": "Succeeded", "containerStatuses": [{
        "name": "app", "image": "app:1", "imageID": "", "ready": false, "restartCount": 0,
        "state": {"terminated": {"exitCode": 0, "finishedAt": "2025-01-01T00:01:01Z"}}}]}});
    pods.patch_status("service", &PatchParams::default(), &Patch::Merge(done))
        .await?;
    let closed = eventually("the record to close", || async {
        Ok(records
            .get_opt(&name)
            .await?
            .filter(|r| r.spec.end.is_some()))
    })
    .await;
    assert_eq!(closed.spec.end_reason, Some(EndReason::Terminated));
    assert_eq!(closed.spec.billed_seconds(jiff::Timestamp::MAX), 61);
    let nodes: Api<Node> = Api::all(client.clone());
    eventually("the Fargate node to go", || async {
        Ok(nodes.get_opt(&node).await?.is_none().then_some(()))
    })
    .await;
    scheduler.abort();
    meter.abort();
    Ok(())
}
