use super::*;
use crate::usage::Requests;

const MI: i64 = 1024 * 1024;
const SMALLEST_HOURLY: f64 = 0.25 * 0.04048 + 0.5 * 0.004445;

fn t(s: &str) -> Timestamp {
    format!("2025-01-01T{s}Z").parse().unwrap()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

fn base(subject: Subject, compute: Compute, name: &str, start: &str) -> UsageRecordSpec {
    UsageRecordSpec {
        subject,
        compute,
        region: "us-east-1".into(),
        namespace: None,
        name: name.into(),
        uid: name.into(),
        node: None,
        profile: None,
        node_group: None,
        instance_type: None,
        capacity: None,
        cpu_millis: 0,
        memory_mib: 0,
        requests: None,
        hourly_rate: 0.0,
        start: t(start),
        end: None,
        end_reason: None,
        pod_labels: Default::default(),
    }
}

fn fargate_pod(name: &str, start: &str, end: Option<&str>) -> UsageRecordSpec {
    UsageRecordSpec {
        namespace: Some("tb-demo".into()),
        profile: Some("fp-demo".into()),
        capacity: Some("0.25vCPU 0.5GB".into()),
        cpu_millis: 250,
        memory_mib: 512,
        requests: Some(Requests {
            cpu_millis: 100,
            memory_bytes: 128 * MI,
        }),
        hourly_rate: SMALLEST_HOURLY,
        end: end.map(t),
        ..base(Subject::Pod, Compute::Fargate, name, start)
    }
}

/// Two Fargate pods (one an hour long, one ten seconds), a t3.medium node running since
/// midnight, and a pod on it; two hours in.
fn cluster() -> Vec<UsageRecordSpec> {
    let node = UsageRecordSpec {
        node_group: Some("ng-1".into()),
        instance_type: Some("t3.medium".into()),
        cpu_millis: 2000,
        memory_mib: 4096,
        hourly_rate: 0.0416,
        ..base(Subject::Node, Compute::Nodegroup, "ip-1", "00:00:00")
    };
    let on_node = UsageRecordSpec {
        namespace: Some("default".into()),
        node_group: Some("ng-1".into()),
        node: Some("ip-1".into()),
        requests: Some(Requests {
            cpu_millis: 500,
            memory_bytes: 1024 * MI,
        }),
        ..base(Subject::Pod, Compute::Nodegroup, "db", "00:00:00")
    };
    vec![
        fargate_pod("web", "00:00:00", Some("01:00:00")),
        fargate_pod("job", "00:00:00", Some("00:00:10")),
        node,
        on_node,
    ]
}

fn row<'a>(report: &'a Report, key: &str) -> &'a Row {
    report
        .rows
        .iter()
        .find(|r| r.key == key)
        .unwrap_or_else(|| panic!("no row {key} in {:?}", report.rows))
}

#[test]
fn spend_and_run_rate_by_namespace() {
    let prices = PriceTable::aws();
    let report = report(
        &cluster(),
        &prices,
        "us-east-1",
        GroupBy::Namespace,
        None,
        t("02:00:00"),
    );
    let keys: Vec<_> = report.rows.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(keys, ["default", "nodegroup/ng-1", "tb-demo"]);
    let demo = row(&report, "tb-demo");
    assert_eq!((demo.pods, demo.nodes), (2, 0));
    // An hour, plus the ten-second pod's minute.
    assert_eq!(demo.billed_seconds, 3660.0);
    assert!(close(demo.spend, SMALLEST_HOURLY * 61.0 / 60.0));
    assert_eq!(demo.hourly, 0.0);
    let ng = row(&report, "nodegroup/ng-1");
    assert_eq!((ng.pods, ng.nodes), (0, 1));
    assert!(close(ng.spend, 0.0832));
    assert!(close(ng.hourly, 0.0416));
    // The pod on the node group costs nothing of its own: its node pays.
    assert_eq!(row(&report, "default").spend, 0.0);
    assert!(close(report.total.spend, demo.spend + ng.spend));
    assert!(close(report.actual.hourly, 0.0416));
    assert_eq!(
        report.actual.detail,
        "0 Fargate pods, 1 node-group nodes running"
    );
}

#[test]
fn the_alternatives_price_the_same_pods() {
    let prices = PriceTable::aws();
    let report = report(
        &cluster(),
        &prices,
        "us-east-1",
        GroupBy::Pod,
        None,
        t("02:00:00"),
    );
    // Fargate alone: the database's 0.5 vCPU / 1 GiB requests (+256 MiB) round up to
    // 0.5 vCPU 2 GB, $0.02913 an hour, for its two hours.
    let db_hourly = 0.5 * 0.04048 + 2.0 * 0.004445;
    let fargate_pods = SMALLEST_HOURLY * 61.0 / 60.0;
    assert!(close(
        report.fargate_only.spend,
        fargate_pods + 2.0 * db_hourly
    ));
    assert!(close(report.fargate_only.hourly, db_hourly));
    // Node groups alone: one t3.small (or an equal-priced pair of t3.micro) for the first
    // hour, then one t3.micro for the database alone.
    assert!(close(report.node_groups_only.spend, 0.0208 + 0.0104));
    assert!(close(report.node_groups_only.hourly, 0.0104));
    assert_eq!(report.node_groups_only.detail, "1 x t3.micro now");
    let saving = report.saving().unwrap();
    let dearer = report.fargate_only.spend.max(report.node_groups_only.spend);
    assert!(close(saving, 1.0 - report.actual.spend / dearer));
}

#[test]
fn since_cuts_the_window() {
    let prices = PriceTable::aws();
    let since = Some(t("00:30:00"));
    let report = report(
        &cluster(),
        &prices,
        "us-east-1",
        GroupBy::Namespace,
        since,
        t("02:00:00"),
    );
    let demo = row(&report, "tb-demo");
    // The ten-second pod's bill ended before the cut.
    assert_eq!(demo.pods, 1);
    assert!(close(demo.spend, SMALLEST_HOURLY / 2.0));
    assert!(close(row(&report, "nodegroup/ng-1").spend, 0.0416 * 1.5));
    assert!(close(report.node_groups_only.spend, 0.0208 * 0.5 + 0.0104));
}

#[test]
fn rows_by_profile_and_by_node_group_keep_the_other_kind_in_one_row() {
    let prices = PriceTable::aws();
    let now = t("02:00:00");
    let by_profile = report(
        &cluster(),
        &prices,
        "us-east-1",
        GroupBy::Profile,
        None,
        now,
    );
    let keys: Vec<_> = by_profile.rows.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(keys, ["(node groups)", "fp-demo"]);
    assert_eq!(row(&by_profile, "(node groups)").pods, 1);
    let by_group = report(
        &cluster(),
        &prices,
        "us-east-1",
        GroupBy::Nodegroup,
        None,
        now,
    );
    let keys: Vec<_> = by_group.rows.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(keys, ["(fargate)", "ng-1"]);
    assert_eq!(
        (row(&by_group, "ng-1").pods, row(&by_group, "ng-1").nodes),
        (1, 1)
    );
    let by_pod = report(&cluster(), &prices, "us-east-1", GroupBy::Pod, None, now);
    let keys: Vec<_> = by_pod.rows.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(
        keys,
        ["default/db", "node/ip-1", "tb-demo/job", "tb-demo/web"]
    );
}

#[test]
fn no_records_cost_nothing() {
    let report = report(
        &[],
        &PriceTable::aws(),
        "us-east-1",
        GroupBy::Namespace,
        None,
        t("01:00:00"),
    );
    assert!(report.rows.is_empty());
    assert_eq!((report.total.spend, report.fargate_only.spend), (0.0, 0.0));
    assert_eq!(report.node_groups_only.detail, "no nodes now");
    assert_eq!(report.saving(), None);
}

#[test]
fn pods_too_large_for_fargate_are_left_out_and_said_so() {
    let mut records = cluster();
    records[3].requests = Some(Requests {
        cpu_millis: 32_000,
        memory_bytes: 1024 * MI,
    });
    let report = report(
        &records,
        &PriceTable::aws(),
        "us-east-1",
        GroupBy::Pod,
        None,
        t("02:00:00"),
    );
    assert!(
        report.fargate_only.detail.contains("1 pods left out"),
        "{}",
        report.fargate_only.detail
    );
    assert!(close(
        report.fargate_only.spend,
        SMALLEST_HOURLY * 61.0 / 60.0
    ));
    // 32 vCPU fits an m5.8xlarge (or bigger) node, so node groups can still hold it.
    assert!(report.node_groups_only.hourly > 1.0);
}

#[test]
fn the_allocation_divides_node_groups_among_their_pods_under_every_key() {
    let prices = PriceTable::aws();
    let now = t("02:00:00");
    let mut records = cluster();
    records[3].pod_labels = [("app".to_owned(), "db".to_owned())].into();
    // The t3.medium (2 vCPU, 4 GiB, $0.0416/h) at OpenCost's CPU:RAM ratio; the database
    // requests 0.5 vCPU and 1 GiB of it, for the two hours so far.
    let scale = 0.0416 / (2.0 * 0.031611 + 4.0 * 0.004237);
    let db_hourly = (0.5 * 0.031611 + 1.0 * 0.004237) * scale;
    let fargate_pods = SMALLEST_HOURLY * 61.0 / 60.0;
    let by_keys = [
        (
            GroupBy::Namespace,
            vec!["__idle__/ng-1", "default", "tb-demo"],
        ),
        (
            GroupBy::Profile,
            vec!["(node groups)", "__idle__/ng-1", "fp-demo"],
        ),
        (
            GroupBy::Nodegroup,
            vec!["(fargate)", "__idle__/ng-1", "ng-1"],
        ),
        (
            GroupBy::Pod,
            vec!["__idle__/ng-1", "default/db", "tb-demo/job", "tb-demo/web"],
        ),
        (
            GroupBy::Label("app".into()),
            vec!["__idle__/ng-1", "__unallocated__", "db"],
        ),
    ];
    for (by, keys) in by_keys {
        let report = report(&records, &prices, "us-east-1", by.clone(), None, now);
        let got: Vec<_> = report.allocation.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(got, keys, "{by:?}");
        let spend: f64 = report.allocation.iter().map(|r| r.spend).sum();
        let hourly: f64 = report.allocation.iter().map(|r| r.hourly).sum();
        assert!(close(spend, report.total.spend), "{by:?}");
        assert!(close(hourly, report.total.hourly), "{by:?}");
        let idle = &report.allocation[keys.iter().position(|k| k.starts_with("__idle__")).unwrap()];
        assert_eq!(idle.pods, 0);
        assert!(close(idle.spend, 0.0832 - 2.0 * db_hourly));
        assert!(close(idle.hourly, 0.0416 - db_hourly));
    }
    let by_namespace = report(
        &records,
        &prices,
        "us-east-1",
        GroupBy::Namespace,
        None,
        now,
    );
    let default = &by_namespace.allocation[1];
    assert_eq!(default.pods, 1);
    assert!(close(default.spend, 2.0 * db_hourly));
    assert!(close(by_namespace.allocation[2].spend, fargate_pods));
    // The rows themselves still show the bill where it falls: on the node.
    assert_eq!(row(&by_namespace, "default").spend, 0.0);
    let by_label = report(
        &records,
        &prices,
        "us-east-1",
        GroupBy::Label("app".into()),
        None,
        now,
    );
    let keys: Vec<_> = by_label.rows.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(keys, ["__unallocated__", "db", "nodegroup/ng-1"]);
}

#[test]
fn group_by_reads_what_keg_cost_takes() {
    assert_eq!(GroupBy::parse("pod"), Ok(GroupBy::Pod));
    assert_eq!(GroupBy::parse("nodegroup"), Ok(GroupBy::Nodegroup));
    assert_eq!(
        GroupBy::parse("label=app.kubernetes.io/name"),
        Ok(GroupBy::Label("app.kubernetes.io/name".into()))
    );
    for bad in ["label=", "label", "node", ""] {
        assert!(GroupBy::parse(bad).is_err(), "{bad}");
    }
}
