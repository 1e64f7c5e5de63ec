use super::*;
use keg_api::usage::UsageRecordSpec;
use serde_json::json;

fn t(s: &str) -> Timestamp {
    format!("2025-01-01T{s}Z").parse().unwrap()
}

/// A ten-second Fargate pod, and a t3.medium node up for two hours and still running.
fn records() -> Vec<UsageRecordSpec> {
    let pod = json!({"subject": "Pod", "compute": "fargate", "region": "us-east-1",
        "namespace": "tb-demo", "name": "web", "uid": "u1", "profile": "fp-demo",
        "capacity": "0.25vCPU 0.5GB", "cpuMillis": 250, "memoryMib": 512,
        "requests": {"cpuMillis": 250, "memoryBytes": 268435456},
        "hourlyRate": 0.0123425, "start": "2025-01-01T00:00:00Z", "end": "2025-01-01T00:00:10Z"});
    let node = json!({"subject": "Node", "compute": "nodegroup", "region": "us-east-1",
        "name": "ip-1", "uid": "u2", "nodeGroup": "ng-1", "instanceType": "t3.medium",
        "hourlyRate": 0.0416, "start": "2025-01-01T00:00:00Z"});
    [pod, node]
        .into_iter()
        .map(|v| serde_json::from_value(v).unwrap())
        .collect()
}

fn sample() -> Report {
    let prices = PriceTable::aws();
    report(
        &records(),
        &prices,
        "us-east-1",
        GroupBy::Namespace,
        None,
        t("02:00:00"),
    )
}

#[test]
fn since_takes_times_dates_and_spans() {
    let now = t("12:00:00");
    assert_eq!(
        parse_since("2025-01-01T10:00:00Z", now).unwrap(),
        t("10:00:00")
    );
    assert_eq!(parse_since("2025-01-01", now).unwrap(), t("00:00:00"));
    assert_eq!(parse_since("90m", now).unwrap(), t("10:30:00"));
    assert_eq!(parse_since("1h30m", now).unwrap(), t("10:30:00"));
    assert_eq!(parse_since("45s", now).unwrap(), t("11:59:15"));
    assert_eq!(
        parse_since("1d", now).unwrap(),
        "2024-12-31T12:00:00Z".parse().unwrap()
    );
    for bad in ["", "5", "1x", "h", "yesterday", "0m"] {
        let err = parse_since(bad, now).unwrap_err();
        assert!(format!("{err:#}").contains("--since"), "{bad}: {err:#}");
    }
}

#[test]
fn the_table_shows_spend_run_rate_and_the_alternatives() {
    let text = table("terrax", &sample(), &[]);
    assert!(
        !text.contains("AUTOSCALER"),
        "no decisions, no section: {text}"
    );
    let expected_rows = "\
NAMESPACE       PODS  NODES  BILLED    SPEND     RUN RATE
nodegroup/ng-1  0     1      2h00m00s  $0.08320  $0.04160/h
tb-demo         1     0      0h01m00s  $0.00021  $0.00000/h
TOTAL           1     1      2h01m00s  $0.08341  $0.04160/h
";
    assert!(text.contains(expected_rows), "{text}");
    assert!(
        text.starts_with(
            "Cluster terrax (us-east-1), everything recorded, to 2025-01-01T02:00:00Z"
        )
    );
    // Fargate alone: the pod's minute at its own size; no node.
    assert!(
        text.contains("on Fargate alone      $0.00021  $0.00000/h  0 Fargate pods running"),
        "{text}"
    );
    // Node groups alone: the pod's ten seconds on a t3.nano.
    assert!(text.contains("on node groups alone  $0.00001"), "{text}");
    assert!(
        text.contains("Against Fargate alone: the mix as run costs $0.08320"),
        "{text}"
    );
    assert!(text.contains("Prices: AWS on-demand list prices"), "{text}");
    let allocated = "\
ALLOCATED BY NAMESPACE  PODS  SPEND     RUN RATE
__idle__/ng-1           0     $0.08320  $0.04160/h
tb-demo                 1     $0.00021  $0.00000/h
Allocation: node-group nodes split over their pods by requests";
    assert!(text.contains(allocated), "{text}");
}

#[test]
fn csv_and_json_carry_the_same_figures() {
    let report = sample();
    let csv = csv(&report, &[]);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "kind,key,pods,nodes,billed_seconds,spend_usd,hourly_usd"
    );
    assert!(
        lines[1].starts_with("row,nodegroup/ng-1,0,1,7200,"),
        "{csv}"
    );
    assert!(lines[3].starts_with("total,TOTAL,1,1,7260,"), "{csv}");
    // The allocation: the node's two idle hours, the Fargate pod's own minute.
    assert!(
        lines[4].starts_with("allocated,__idle__/ng-1,0,,,0.0832"),
        "{csv}"
    );
    assert!(lines[5].starts_with("allocated,tb-demo,1,,,"), "{csv}");
    assert!(lines[6].starts_with("scenario,as run,,,,"), "{csv}");
    assert_eq!(lines.len(), 9);
    let json: serde_json::Value =
        serde_json::from_str(&json("terrax", &report, &[]).unwrap()).unwrap();
    assert_eq!(json["cluster"], "terrax");
    assert_eq!(json["rows"][0]["key"], "nodegroup/ng-1");
    assert_eq!(json["allocation"][0]["key"], "__idle__/ng-1");
    let idle = json["allocation"][0]["spend"].as_f64().unwrap();
    assert!((idle - 0.0832).abs() < 1e-12, "{idle}");
    assert_eq!(json["total"]["hourly"], 0.0416);
    assert_eq!(json["nodeGroupsOnly"]["detail"], "no nodes now");
    assert!(json["saving"].is_number());
}

#[test]
fn durations_and_savings_read_plainly() {
    assert_eq!(duration(0.0), "-");
    assert_eq!(duration(61.2), "0h01m02s");
    assert_eq!(duration(3723.0), "1h02m03s");
    assert_eq!(saving(1.0, 4.0), "the mix as run saves $3.00000 (75.0%)");
    assert_eq!(
        saving(3.0, 2.0),
        "the mix as run costs $1.00000 more (1.5 times as much)"
    );
    assert_eq!(saving(0.0, 0.0), "the mix as run saves $0.00000");
}

#[test]
fn an_explicit_price_file_must_exist() {
    let err = load_prices(Some(Path::new("/nonexistent/prices.yaml"))).unwrap_err();
    assert!(
        err.to_string().contains("/nonexistent/prices.yaml"),
        "{err}"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.yaml");
    std::fs::write(&path, "regions: {us-east-1: {ec2: {t3.medium: 0.03}}}").unwrap();
    let prices = load_prices(Some(&path)).unwrap();
    assert_eq!(prices.ec2_hourly("us-east-1", "t3.medium"), Some(0.03));
}

fn decision(nodes: i32, hourly: f64) -> Decision {
    Decision {
        time: t("00:30:00"),
        group: "ng-1".into(),
        nodes,
        reason: if nodes > 0 {
            "ScaledUpGroup"
        } else {
            "ScaleDownEmpty"
        }
        .into(),
        instance_type: Some("t3.medium".into()),
        hourly: Some(hourly),
    }
}

#[test]
fn autoscaler_decisions_show_what_they_add_and_save() {
    let decisions = [decision(2, 0.0832), decision(-1, -0.0416)];
    let text = table("terrax", &sample(), &decisions);
    let expected = "\
AUTOSCALER            GROUP  NODES  RUN RATE
2025-01-01T00:30:00Z  ng-1   +2     +$0.08320/h (t3.medium)
2025-01-01T00:30:00Z  ng-1   -1     -$0.04160/h saved (t3.medium)
";
    assert!(text.contains(expected), "{text}");
    let csv = csv(&sample(), &decisions);
    assert!(csv.contains("autoscaler,ng-1,,2,,,0.0832"), "{csv}");
    let json: serde_json::Value =
        serde_json::from_str(&json("terrax", &sample(), &decisions).unwrap()).unwrap();
    assert_eq!(json["autoscaler"][1]["nodes"], -1);
    assert_eq!(json["autoscaler"][1]["instanceType"], "t3.medium");
}
