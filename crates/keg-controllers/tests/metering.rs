//! Metering against the in-process API server: Fargate and node-group nodes and pods made by
//! hand (no scheduler, no node agent; the test writes the statuses they would), the records
//! metering keeps for them, and the report `keg cost` prints from those records.

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use keg_api::FargateProfile;
use keg_api::prices::PriceTable;
use keg_api::usage::report::{GroupBy, Report, report};
use keg_api::usage::{Compute, EndReason, UsageRecord};
use keg_controllers::Clock;
use keg_controllers::metering::{self, Config, checkpoint};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

const SMALLEST_HOURLY: f64 = 0.25 * 0.04048 + 0.5 * 0.004445;

/// A clock the test sets.
struct TestClock(Mutex<Timestamp>);

impl TestClock {
    fn at(time: &str) -> Arc<TestClock> {
        Arc::new(TestClock(Mutex::new(t(time))))
    }

    fn set(&self, time: &str) {
        *self.0.lock().unwrap() = t(time);
    }
}

impl Clock for TestClock {
    fn now(&self) -> Timestamp {
        *self.0.lock().unwrap()
    }
}

fn t(time: &str) -> Timestamp {
    format!("2025-01-01T{time}Z").parse().unwrap()
}

/// Metering running against `client` on `clock`; stopped when dropped.
struct Metering(JoinHandle<()>);

impl Metering {
    fn start(client: &Client, clock: Arc<TestClock>) -> Metering {
        let config = Config {
            region: "us-east-1".into(),
            prices: PriceTable::aws(),
            clock,
            checkpoint_interval: std::time::Duration::from_secs(3600),
        };
        Metering(tokio::spawn(metering::run(client.clone(), config)))
    }
}

impl Drop for Metering {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn create_node(client: &Client, name: &str, labels: Value, ready_at: &str) -> Node {
    let nodes: Api<Node> = Api::all(client.clone());
    let node = serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}}));
    nodes
        .create(&PostParams::default(), &node.unwrap())
        .await
        .unwrap();
    let status = json!({"status": {"conditions": [{"type": "Ready", "status": "True",
        "reason": "KubeletReady", "lastTransitionTime": format!("2025-01-01T{ready_at}Z")}]}});
    nodes
        .patch_status(name, &PatchParams::default(), &Patch::Merge(status))
        .await
        .unwrap()
}

/// Every usage record as stored: what `keg cost` reads.
async fn stored_records(client: &Client) -> kube::Result<Vec<keg_api::usage::UsageRecordSpec>> {
    let records = Api::<UsageRecord>::all(client.clone())
        .list(&ListParams::default())
        .await?;
    Ok(records.items.into_iter().map(|r| r.spec).collect())
}

/// A pod bound to `node` requesting 500m and 1Gi, which the node agent started at midnight.
async fn started_pod(client: &Client, ns: &str, name: &str, node: &str, meta: Value) -> Pod {
    started_pod_requesting(client, ns, name, node, meta, ("500m", "1Gi")).await
}

/// A pod bound to `node` requesting `cpu` and `memory`, which the node agent started at
/// midnight.
async fn started_pod_requesting(
    client: &Client,
    ns: &str,
    name: &str,
    node: &str,
    meta: Value,
    (cpu, memory): (&str, &str),
) -> Pod {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let mut metadata = json!({"name": name});
    metadata
        .as_object_mut()
        .unwrap()
        .extend(meta.as_object().unwrap().clone());
    let pod = json!({"metadata": metadata, "spec": {"nodeName": node, "containers": [{
        "name": "app", "image": "app:1",
        "resources": {"requests": {"cpu": cpu, "memory": memory}}}]}});
    pods.create(
        &PostParams::default(),
        &serde_json::from_value(pod).unwrap(),
    )
    .await
    .unwrap();
    let status = json!({"status": {"phase": "Running", "startTime": "2025-01-01T00:00:00Z"}});
    pods.patch_status(name, &PatchParams::default(), &Patch::Merge(status))
        .await
        .unwrap()
}

/// The Fargate profile `fp-demo`, selecting namespace tb-demo.
async fn profile(client: &Client) {
    let profiles: Api<FargateProfile> = Api::all(client.clone());
    let profile = json!({"apiVersion": "keg.dev/v1", "kind": "FargateProfile",
        "metadata": {"name": "fp-demo"}, "spec": {"selectors": [{"namespace": "tb-demo"}]}});
    profiles
        .create(
            &PostParams::default(),
            &serde_json::from_value(profile).unwrap(),
        )
        .await
        .unwrap();
}

fn fargate_meta() -> Value {
    json!({"labels": {"eks.amazonaws.com/fargate-profile": "fp-demo"},
           "annotations": {"CapacityProvisioned": "0.25vCPU 0.5GB"}})
}

/// Waits for the record of `name` (pod-<uid> or node-<uid>) to satisfy `check`.
async fn record_where(
    client: &Client,
    name: &str,
    what: &str,
    check: impl Fn(&UsageRecord) -> bool,
) -> UsageRecord {
    let records: Api<UsageRecord> = Api::all(client.clone());
    eventually(what, || async {
        Ok(records.get_opt(name).await?.filter(|r| check(r)))
    })
    .await
}

async fn delete_now(pods: &Api<Pod>, name: &str) {
    pods.delete(name, &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
}

#[tokio::test]
async fn records_follow_pods_and_nodes_and_add_up_in_the_report() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let client = cluster.client.clone();
    cluster.namespace("tb-demo").await?;
    profile(&client).await;
    let clock = TestClock::at("00:00:30");
    let _metering = Metering::start(&client, clock.clone());
    let fargate_labels = json!({"eks.amazonaws.com/compute-type": "fargate",
        "eks.amazonaws.com/fargate-profile": "fp-demo"});
    create_node(&client, "fargate-ip-1", fargate_labels.clone(), "00:00:00").await;
    create_node(&client, "fargate-ip-2", fargate_labels, "00:00:00").await;
    let group_labels = json!({"alpha.eksctl.io/nodegroup-name": "ng-1",
        "node.kubernetes.io/instance-type": "t3.medium"});
    let node = create_node(&client, "ip-1", group_labels, "00:00:00").await;

    // A Fargate job that runs ten seconds: billed one minute.
    let job = started_pod(&client, "tb-demo", "job", "fargate-ip-1", fargate_meta()).await;
    let job_record = metering::pod_record_name(&job.uid().unwrap());
    let open = record_where(&client, &job_record, "the job's record", |_| true).await;
    assert_eq!(open.spec.compute, Compute::Fargate);
    assert_eq!(open.spec.capacity.as_deref(), Some("0.25vCPU 0.5GB"));
    assert_eq!(open.spec.profile.as_deref(), Some("fp-demo"));
    assert!((open.spec.hourly_rate - SMALLEST_HOURLY).abs() < 1e-12);
    assert_eq!(open.labels()["keg.dev/namespace"], "tb-demo");
    let pods: Api<Pod> = cluster.api("tb-demo");
    let finished = json!({"status": {"phase": "Succeeded", "containerStatuses": [{
        "name": "app", "image": "app:1", "imageID": "", "ready": false, "restartCount": 0,
        "state": {"terminated": {"exitCode": 0, "finishedAt": "2025-01-01T00:00:10Z"}}}]}});
    pods.patch_status("job", &PatchParams::default(), &Patch::Merge(finished))
        .await?;
    let closed = record_where(&client, &job_record, "the job's record to close", |r| {
        r.spec.end.is_some()
    })
    .await;
    assert_eq!(closed.spec.end, Some(t("00:00:10")));
    assert_eq!(closed.spec.end_reason, Some(EndReason::Terminated));
    assert_eq!(closed.spec.billed_seconds(t("05:00:00")), 60);

    // A Fargate pod deleted at 61.2 s, with no final status: billed 62 seconds.
    let web = started_pod(&client, "tb-demo", "web", "fargate-ip-2", fargate_meta()).await;
    let web_record = metering::pod_record_name(&web.uid().unwrap());
    record_where(&client, &web_record, "the web pod's record", |_| true).await;
    clock.set("00:01:01.2");
    delete_now(&pods, "web").await;
    let closed = record_where(&client, &web_record, "the web pod's record to close", |r| {
        r.spec.end.is_some()
    })
    .await;
    assert_eq!(closed.spec.end_reason, Some(EndReason::Removed));
    assert_eq!(closed.spec.billed_seconds(t("05:00:00")), 62);

    // A pod on the node group: recorded for its lifetime, at no cost of its own.
    let db = started_pod(&client, "default", "db", "ip-1", json!({})).await;
    let db_record = metering::pod_record_name(&db.uid().unwrap());
    let db_open = record_where(&client, &db_record, "the db pod's record", |_| true).await;
    assert_eq!(db_open.spec.compute, Compute::Nodegroup);
    assert_eq!(db_open.spec.node_group.as_deref(), Some("ng-1"));
    assert_eq!(db_open.spec.hourly_rate, 0.0);

    // The node group's node, from Ready to its removal an hour later.
    let node_record = metering::node_record_name(&node.uid().unwrap());
    let node_open = record_where(&client, &node_record, "the node's record", |_| true).await;
    assert_eq!(node_open.spec.hourly_rate, 0.0416);
    assert_eq!(node_open.spec.start, t("00:00:00"));
    clock.set("01:00:00");
    Api::<Node>::all(client.clone())
        .delete("ip-1", &DeleteParams::default())
        .await?;
    let node_closed = record_where(&client, &node_record, "the node's record to close", |r| {
        r.spec.end.is_some()
    })
    .await;
    assert_eq!(node_closed.spec.billed_seconds(t("05:00:00")), 3600);

    // What `keg cost` prints, from the records as stored.
    let records = stored_records(&client).await?;
    let now = t("02:00:00");
    let report = report(
        &records,
        &PriceTable::aws(),
        "us-east-1",
        GroupBy::Namespace,
        None,
        now,
    );
    let row = |key: &str| report.rows.iter().find(|r| r.key == key).unwrap().clone();
    let demo = row("tb-demo");
    assert_eq!((demo.pods, demo.billed_seconds), (2, 122.0));
    assert!((demo.spend - SMALLEST_HOURLY * 122.0 / 3600.0).abs() < 1e-12);
    let ng = row("nodegroup/ng-1");
    assert_eq!((ng.nodes, ng.spend), (1, 0.0416));
    assert_eq!(row("default").pods, 1);
    assert!((report.total.spend - (demo.spend + 0.0416)).abs() < 1e-12);
    // Only the database pod (its record still open) runs now, and its node is gone.
    assert_eq!(report.actual.hourly, 0.0);
    assert_eq!(report.node_groups_only.detail, "1 x t3.micro now");
    Ok(())
}

#[tokio::test]
async fn what_went_while_metering_was_down_is_billed_to_its_checkpoint() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let client = cluster.client.clone();
    cluster.namespace("tb-demo").await?;
    profile(&client).await;
    let labels = json!({"eks.amazonaws.com/compute-type": "fargate"});
    create_node(&client, "fargate-ip-1", labels, "00:00:00").await;
    let pod = started_pod(&client, "tb-demo", "web", "fargate-ip-1", fargate_meta()).await;
    let name = metering::pod_record_name(&pod.uid().unwrap());

    let first = Metering::start(&client, TestClock::at("00:05:00"));
    record_where(&client, &name, "the record", |r| r.spec.is_open()).await;
    let leases: Api<Lease> = Api::namespaced(client.clone(), checkpoint::NAMESPACE);
    eventually("the checkpoint", || async {
        let lease = leases.get_opt(checkpoint::NAME).await?;
        let renewed = lease.and_then(|l| l.spec?.renew_time).map(|t| t.0);
        Ok((renewed == Some(t("00:05:00"))).then_some(()))
    })
    .await;
    drop(first);

    delete_now(&cluster.api("tb-demo"), "web").await;
    let _second = Metering::start(&client, TestClock::at("03:00:00"));
    let closed = record_where(&client, &name, "the record to close", |r| {
        r.spec.end.is_some()
    })
    .await;
    assert_eq!(closed.spec.end, Some(t("00:05:00")));
    assert_eq!(closed.spec.end_reason, Some(EndReason::Unobserved));
    assert_eq!(closed.spec.billed_seconds(t("03:00:00")), 300);
    Ok(())
}

/// Issue 22's acceptance: a node group of one t3.large running two pods that request 1 CPU
/// and 0.5 CPU (and 2 GiB and 1 GiB) for an hour of test-clock time. Their allocated cost is
/// 2:1 of the node's cost less idle, and idle is the rest, as computed by hand here from the
/// price table.
#[tokio::test]
async fn a_t3_large_is_allocated_two_to_one_over_its_pods_and_the_rest_is_idle()
-> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let client = cluster.client.clone();
    let clock = TestClock::at("00:00:30");
    let _metering = Metering::start(&client, clock.clone());
    let labels = json!({"alpha.eksctl.io/nodegroup-name": "ng-1",
        "node.kubernetes.io/instance-type": "t3.large"});
    let node = create_node(&client, "ip-1", labels, "00:00:00").await;
    let mut names = vec![metering::node_record_name(&node.uid().unwrap())];
    for (name, team, requests) in [("big", "a", ("1", "2Gi")), ("small", "b", ("500m", "1Gi"))] {
        let meta = json!({"labels": {"team": team}});
        let pod = started_pod_requesting(&client, "default", name, "ip-1", meta, requests).await;
        names.push(metering::pod_record_name(&pod.uid().unwrap()));
    }
    for name in &names {
        record_where(&client, name, "the records to open", |_| true).await;
    }

    // An hour later the pods and the node go.
    clock.set("01:00:00");
    let pods: Api<Pod> = cluster.api("default");
    delete_now(&pods, "big").await;
    delete_now(&pods, "small").await;
    Api::<Node>::all(client.clone())
        .delete("ip-1", &DeleteParams::default())
        .await?;
    for name in &names {
        let closed = record_where(&client, name, "the records to close", |r| {
            r.spec.end.is_some()
        })
        .await;
        assert_eq!(closed.spec.end, Some(t("01:00:00")), "{name}");
    }
    let node_record = record_where(&client, &names[0], "the node's record", |_| true).await;
    assert_eq!(
        (node_record.spec.cpu_millis, node_record.spec.memory_mib),
        (2000, 8192)
    );

    let records = stored_records(&client).await?;
    let by = |by: GroupBy| {
        report(
            &records,
            &PriceTable::aws(),
            "us-east-1",
            by,
            None,
            t("02:00:00"),
        )
    };
    let allocated = |report: &Report, key: &str| {
        report
            .allocation
            .iter()
            .find(|a| a.key == key)
            .unwrap_or_else(|| panic!("no {key} in {:?}", report.allocation))
            .spend
    };

    // By hand: t3.large is $0.0832 an hour for 2 vCPU and 8 GiB. At OpenCost's default
    // 0.031611 : 0.004237 a vCPU-hour to a GiB-hour, 2 x 0.031611 + 8 x 0.004237 = 0.097118,
    // so the node's prices are 0.0832 / 0.097118 = 0.85669 times those: $0.0270808 a
    // vCPU-hour and $0.0036298 a GiB-hour.
    let node_cost = PriceTable::aws()
        .ec2_hourly("us-east-1", "t3.large")
        .unwrap();
    assert_eq!(node_cost, 0.0832);
    let scale = node_cost / (2.0 * 0.031611 + 8.0 * 0.004237);
    let (vcpu_hour, gib_hour) = (0.031611 * scale, 0.004237 * scale);
    // big: 1 x 0.0270808 + 2 x 0.0036298 = $0.0343404; small: half that, $0.0171702;
    // idle: 0.0832 - 0.0515106 = $0.0316894.
    let big = vcpu_hour + 2.0 * gib_hour;
    let small = 0.5 * vcpu_hour + gib_hour;
    let idle = node_cost - big - small;
    let five = |usd: f64| (usd * 1e5).round() / 1e5;
    assert_eq!(
        (five(big), five(small), five(idle)),
        (0.03434, 0.01717, 0.03169)
    );

    let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
    let by_pod = by(GroupBy::Pod);
    let (got_big, got_small) = (
        allocated(&by_pod, "default/big"),
        allocated(&by_pod, "default/small"),
    );
    assert!(close(got_big, big), "{got_big} against {big}");
    assert!(close(got_small, small), "{got_small} against {small}");
    assert!(close(got_big, 2.0 * got_small), "2:1");
    assert!(close(allocated(&by_pod, "__idle__/ng-1"), idle));
    assert!(close(got_big + got_small + idle, node_cost));
    assert!(close(by_pod.total.spend, node_cost));
    // The same figures under every key: by the pods' label, their namespace, their group.
    let by_team = by(GroupBy::Label("team".into()));
    assert!(close(allocated(&by_team, "a"), big));
    assert!(close(allocated(&by_team, "b"), small));
    assert!(close(allocated(&by_team, "__idle__/ng-1"), idle));
    assert!(close(
        allocated(&by(GroupBy::Namespace), "default"),
        big + small
    ));
    assert!(close(
        allocated(&by(GroupBy::Nodegroup), "ng-1"),
        big + small
    ));
    Ok(())
}
