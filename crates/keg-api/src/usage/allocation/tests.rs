use super::*;
use crate::prices::PriceTable;
use crate::usage::Requests;

const GI: i64 = 1 << 30;

fn t(s: &str) -> Timestamp {
    format!("2025-01-01T{s}Z").parse().unwrap()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-12
}

fn five(usd: f64) -> f64 {
    (usd * 1e5).round() / 1e5
}

/// t3.large's price in us-east-1, from the price table.
fn t3_large() -> f64 {
    PriceTable::aws()
        .ec2_hourly("us-east-1", "t3.large")
        .unwrap()
}

/// A t3.large node `ip-1` in node group ng-1, Ready at `start`.
fn node(start: &str, end: Option<&str>) -> UsageRecordSpec {
    UsageRecordSpec {
        subject: Subject::Node,
        compute: Compute::Nodegroup,
        region: "us-east-1".into(),
        namespace: None,
        name: "ip-1".into(),
        uid: "n1".into(),
        node: None,
        profile: None,
        node_group: Some("ng-1".into()),
        instance_type: Some("t3.large".into()),
        capacity: Some("2vCPU 8GiB".into()),
        cpu_millis: 2000,
        memory_mib: 8192,
        requests: None,
        hourly_rate: t3_large(),
        start: t(start),
        end: end.map(t),
        end_reason: None,
        pod_labels: BTreeMap::new(),
    }
}

/// A pod on `ip-1` requesting `cpu_millis` and `memory` bytes.
fn pod(
    name: &str,
    cpu_millis: i64,
    memory: i64,
    start: &str,
    end: Option<&str>,
) -> UsageRecordSpec {
    UsageRecordSpec {
        subject: Subject::Pod,
        namespace: Some("default".into()),
        name: name.into(),
        uid: name.into(),
        node: Some("ip-1".into()),
        instance_type: None,
        capacity: None,
        cpu_millis: 0,
        memory_mib: 0,
        requests: Some(Requests {
            cpu_millis,
            memory_bytes: memory,
        }),
        hourly_rate: 0.0,
        ..node(start, end)
    }
}

/// The hand computation: t3.large's $0.0832 an hour over 2 vCPU and 8 GiB at OpenCost's
/// 0.031611 : 0.004237 is 0.0832 / 0.097118 = 0.85669 times those prices.
fn hand_prices() -> (f64, f64) {
    let scale = 0.0832 / (2.0 * 0.031611 + 8.0 * 0.004237);
    (0.031611 * scale, 0.004237 * scale)
}

#[test]
fn a_t3_large_splits_into_vcpu_and_gib_hours() {
    assert_eq!(t3_large(), 0.0832);
    let unit = unit_prices(
        t3_large(),
        Weight {
            vcpus: 2.0,
            gib: 8.0,
        },
    )
    .unwrap();
    let (vcpu_hour, gib_hour) = hand_prices();
    assert!(close(unit.vcpu_hour, vcpu_hour));
    assert!(close(unit.gib_hour, gib_hour));
    assert_eq!(
        (five(unit.vcpu_hour), five(unit.gib_hour)),
        (0.02708, 0.00363)
    );
    assert!(close(2.0 * unit.vcpu_hour + 8.0 * unit.gib_hour, 0.0832));
    assert_eq!(unit_prices(1.0, Weight::default()), None);
}

/// The acceptance: one t3.large, two pods requesting 1 and 0.5 CPU (and 2 and 1 GiB)
/// for an hour; they are allocated 2:1 of the node's cost less idle, idle is the rest.
#[test]
fn two_pods_on_a_t3_large_for_an_hour_share_it_two_to_one() {
    let records = [
        node("00:00:00", Some("01:00:00")),
        pod("big", 1000, 2 * GI, "00:00:00", Some("01:00:00")),
        pod("small", 500, GI, "00:00:00", Some("01:00:00")),
    ];
    let refs: Vec<_> = records.iter().collect();
    let allocation = allocate(&refs, None, t("02:00:00"));
    let (vcpu_hour, gib_hour) = hand_prices();
    let big = 1.0 * vcpu_hour + 2.0 * gib_hour;
    let small = 0.5 * vcpu_hour + 1.0 * gib_hour;
    assert_eq!(
        allocation.pods[0],
        Amount::default(),
        "the node pays nothing itself"
    );
    assert!(close(allocation.pods[1].spend, big));
    assert!(close(allocation.pods[2].spend, small));
    // $0.03434 and $0.01717: 2:1.
    assert_eq!((five(big), five(small)), (0.03434, 0.01717));
    assert!(close(
        allocation.pods[1].spend,
        2.0 * allocation.pods[2].spend
    ));
    let idle = allocation.idle["ng-1"];
    assert!(close(idle.spend, 0.0832 - big - small));
    assert_eq!(five(idle.spend), 0.03169);
    assert!(close(
        idle.spend + allocation.pods[1].spend + allocation.pods[2].spend,
        0.0832
    ));
    // All closed: nothing runs now.
    assert_eq!(idle.hourly + allocation.pods[1].hourly, 0.0);
}

#[test]
fn shares_follow_who_runs_when_and_the_run_rate_is_now() {
    // The node runs two hours and on; one pod the first hour, another from 00:30 on.
    let records = [
        node("00:00:00", None),
        pod("first", 1000, 0, "00:00:00", Some("01:00:00")),
        pod("second", 500, 0, "00:30:00", None),
    ];
    let refs: Vec<_> = records.iter().collect();
    let allocation = allocate(&refs, None, t("02:00:00"));
    let (vcpu_hour, _) = hand_prices();
    assert!(close(allocation.pods[1].spend, vcpu_hour));
    assert!(close(allocation.pods[2].spend, 1.5 * 0.5 * vcpu_hour));
    let idle = allocation.idle["ng-1"];
    assert!(close(idle.spend, 2.0 * 0.0832 - 1.75 * vcpu_hour));
    // Now only the second pod runs.
    assert_eq!(allocation.pods[1].hourly, 0.0);
    assert!(close(allocation.pods[2].hourly, 0.5 * vcpu_hour));
    assert!(close(idle.hourly, 0.0832 - 0.5 * vcpu_hour));

    // From 01:30 on only the second pod's half hour is in the window.
    let allocation = allocate(&refs, Some(t("01:30:00")), t("02:00:00"));
    assert_eq!(allocation.pods[1].spend, 0.0);
    assert!(close(allocation.pods[2].spend, 0.5 * 0.5 * vcpu_hour));
    assert!(close(
        allocation.idle["ng-1"].spend,
        0.5 * 0.0832 - 0.25 * vcpu_hour
    ));
}

#[test]
fn more_than_the_node_shares_the_whole_part_and_unknown_sizes_are_idle() {
    let capacity = Weight {
        vcpus: 2.0,
        gib: 8.0,
    };
    let pods = [
        Weight {
            vcpus: 3.0,
            gib: 0.0,
        },
        Weight {
            vcpus: 1.0,
            gib: 0.0,
        },
    ];
    let (shares, idle) = split(0.0832, capacity, &pods);
    let (vcpu_hour, gib_hour) = hand_prices();
    assert!(close(shares[0], 0.75 * 2.0 * vcpu_hour));
    assert!(close(shares[1], 0.25 * 2.0 * vcpu_hour));
    assert!(close(idle, 8.0 * gib_hour));
    let (shares, idle) = split(0.0832, Weight::default(), &pods);
    assert_eq!((shares, idle), (vec![0.0, 0.0], 0.0832));
}

#[test]
fn pods_on_other_nodes_and_fargate_get_nothing_of_this_node() {
    let mut elsewhere = pod("elsewhere", 1000, 0, "00:00:00", None);
    elsewhere.node = Some("ip-2".into());
    let mut fargate = pod("fargate", 1000, 0, "00:00:00", None);
    fargate.compute = Compute::Fargate;
    let records = [node("00:00:00", Some("01:00:00")), elsewhere, fargate];
    let refs: Vec<_> = records.iter().collect();
    let allocation = allocate(&refs, None, t("01:00:00"));
    assert_eq!(allocation.pods[1].spend + allocation.pods[2].spend, 0.0);
    assert!(close(allocation.idle["ng-1"].spend, 0.0832));
}
