//! HorizontalPodAutoscalers as users meet them: `kubectl autoscale` (1.27 writes
//! autoscaling/v1, 1.33 autoscaling/v2), `kubectl get hpa` columns, the two versions of one
//! object (v1 keeps what it cannot say in upstream's annotations), validation errors, the
//! conditions and events when no metrics exist, and with real pods an autoscaler that scales a
//! CPU-burning Deployment out to maxReplicas and back in when the burning stops.
//! (The beer API on Fargate under load through its load balancer is the walkthrough's.)

mod common;

use std::time::Duration;

use common::{Kubectl, PodServer, Server, eventually};
use serde_json::Value;

const DEPLOYMENT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - {name: web, image: busybox:test, resources: {requests: {cpu: 100m}}}
"#;

fn hpa(k: &Kubectl, name: &str, version: &str) -> Value {
    k.json(&["get", &format!("hpa.{version}.autoscaling"), name])
}

fn condition<'a>(hpa: &'a Value, kind: &str) -> Option<&'a Value> {
    hpa["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
}

#[test]
fn kubectl_autoscale_writes_either_version_of_one_object() {
    let server = Server::start();
    let k = server.kubectl("1.33");
    let old = server.kubectl("1.27");
    k.ok_stdin(&["apply", "-f", "-"], DEPLOYMENT);

    // kubectl 1.27 posts autoscaling/v1, 1.33 autoscaling/v2; both are one stored object.
    old.ok(&[
        "autoscale",
        "deployment",
        "web",
        "--cpu-percent=60",
        "--min=2",
        "--max=5",
    ]);
    k.ok(&[
        "autoscale",
        "deployment",
        "web",
        "--name=web-v2",
        "--cpu-percent=70",
        "--max=3",
    ]);
    let v2 = hpa(&k, "web", "v2");
    assert_eq!(v2["apiVersion"], "autoscaling/v2");
    assert_eq!(v2["spec"]["minReplicas"], 2);
    assert_eq!(
        v2["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
        60
    );
    let v1 = hpa(&old, "web-v2", "v1");
    assert_eq!(v1["apiVersion"], "autoscaling/v1");
    assert_eq!(v1["spec"]["targetCPUUtilizationPercentage"], 70);
    assert_eq!(v1["spec"]["minReplicas"], 1, "minReplicas defaults to 1");

    // Columns as upstream prints them, for both kubectl versions.
    for kubectl in [&k, &old] {
        let table = kubectl.ok(&["get", "hpa"]);
        let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
        assert_eq!(
            header,
            [
                "NAME",
                "REFERENCE",
                "TARGETS",
                "MINPODS",
                "MAXPODS",
                "REPLICAS",
                "AGE"
            ],
            "{table}"
        );
        let row = table.lines().find(|l| l.starts_with("web ")).unwrap();
        assert!(row.contains("Deployment/web"), "{row}");
        assert!(row.contains("/60%"), "{row}");
    }
    let resources = k.ok(&["api-resources", "--api-group=autoscaling"]);
    assert!(
        resources.contains("hpa") && resources.contains("autoscaling/v2"),
        "v2 is the preferred version: {resources}"
    );

    // What v1 cannot say (a memory metric, behavior) survives a v1 client's read-modify-write.
    k.ok_stdin(
        &["apply", "-f", "-"],
        r#"
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: mixed, namespace: default}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  maxReplicas: 4
  metrics:
  - {type: Resource, resource: {name: cpu, target: {type: Utilization, averageUtilization: 50}}}
  - {type: Resource, resource: {name: memory, target: {type: AverageValue, averageValue: 100Mi}}}
  behavior:
    scaleDown: {stabilizationWindowSeconds: 30}
"#,
    );
    let mut v1 = hpa(&old, "mixed", "v1");
    assert!(
        v1["metadata"]["annotations"]["autoscaling.alpha.kubernetes.io/metrics"]
            .as_str()
            .is_some_and(|m| m.contains("memory")),
        "{v1}"
    );
    v1["spec"]["maxReplicas"] = 6.into();
    old.ok_stdin(&["replace", "-f", "-"], &v1.to_string());
    let v2 = hpa(&k, "mixed", "v2");
    assert_eq!(v2["spec"]["maxReplicas"], 6);
    assert_eq!(v2["spec"]["metrics"][1]["resource"]["name"], "memory");
    assert_eq!(
        v2["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"],
        30
    );
    assert_eq!(
        v2["spec"]["behavior"]["scaleUp"]["policies"][0]["type"], "Pods",
        "behavior's unset rules get upstream's defaults"
    );
    let annotations = v2["metadata"]["annotations"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    assert!(
        !annotations
            .keys()
            .any(|k| k.starts_with("autoscaling.alpha")),
        "v1's annotations are folded back into the v2 fields: {v2}"
    );

    // Invalid specs are refused with upstream's messages.
    let bad = k.run_stdin(
        &["apply", "-f", "-"],
        r#"
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: bad, namespace: default}
spec:
  scaleTargetRef: {kind: Deployment, name: web}
  minReplicas: 5
  maxReplicas: 2
"#,
    );
    let err = bad.stderr;
    assert!(
        !bad.status.success() && err.contains("The HorizontalPodAutoscaler \"bad\" is invalid: spec.maxReplicas: Invalid value: 2: must be greater than or equal to `minReplicas`"),
        "{err}"
    );

    // Without a node agent no pod runs and no metrics exist: the autoscaler says so.
    let no_metrics = eventually("ScalingActive=False", Duration::from_secs(60), || {
        let v2 = hpa(&k, "web", "v2");
        let c = condition(&v2, "ScalingActive")?.clone();
        (c["status"] == "False").then_some(c)
    });
    assert_eq!(no_metrics["reason"], "FailedGetResourceMetric");
    assert_eq!(
        no_metrics["message"],
        "the HPA was unable to compute the replica count: failed to get cpu utilization: unable to get metrics for resource cpu: no metrics returned from resource metrics API"
    );
    // minReplicas 2 above the Deployment's 1: scaled up with upstream's reason, metrics or not.
    let describe = eventually("the rescale event", Duration::from_secs(30), || {
        let d = k.ok(&["describe", "hpa", "web"]);
        d.contains("SuccessfulRescale").then_some(d)
    });
    assert!(
        describe.contains("New size: 2; reason: Current number of replicas below Spec.MinReplicas"),
        "{describe}"
    );
    assert!(describe.contains("FailedGetResourceMetric"), "{describe}");
    let replicas = k.ok(&[
        "get",
        "deployment",
        "web",
        "-o",
        "jsonpath={.spec.replicas}",
    ]);
    assert_eq!(replicas, "2");
}

/// A Deployment whose pods burn CPU under a 200m limit until `until` (Unix seconds), then
/// idle: every pod, including those the autoscaler adds, stops at the same moment.
fn burner(until: u64) -> String {
    format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: burner, namespace: default}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: burner}}}}
  template:
    metadata: {{labels: {{app: burner}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: spin
        image: busybox:test
        command: [sh, -c, 'while [ $(date +%s) -lt {until} ]; do :; done; exec sleep 3600']
        resources:
          requests: {{cpu: 100m}}
          limits: {{cpu: 200m}}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {{name: burner, namespace: default}}
spec:
  scaleTargetRef: {{apiVersion: apps/v1, kind: Deployment, name: burner}}
  minReplicas: 1
  maxReplicas: 3
  metrics:
  - {{type: Resource, resource: {{name: cpu, target: {{type: Utilization, averageUtilization: 50}}}}}}
  behavior:
    scaleDown: {{stabilizationWindowSeconds: 0}}
"#
    )
}

fn running(k: &Kubectl) -> usize {
    k.running_pods("app=burner").len()
}

#[test]
fn an_autoscaler_scales_a_busy_deployment_out_and_back_in() {
    let Some(server) = PodServer::start(
        "an_autoscaler_scales_a_busy_deployment_out_and_back_in",
        &["--horizontal-pod-autoscaler-sync-period=3"],
    ) else {
        return;
    };
    let k = server.kubectl("1.33");
    server.node_group("ng", "t3.medium", 1, 1);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    k.ok_stdin(&["apply", "-f", "-"], &burner(now + 75));

    // 200m used of 100m requested is 200% against a 50% target: four times as many pods,
    // held at maxReplicas 3.
    eventually("three burning pods", Duration::from_secs(60), || {
        let v2 = hpa(&k, "burner", "v2");
        (v2["status"]["desiredReplicas"] == 3 && running(&k) == 3).then_some(())
    });
    let v2 = hpa(&k, "burner", "v2");
    let limited = condition(&v2, "ScalingLimited").unwrap();
    assert_eq!(limited["status"], "True", "{v2}");
    assert_eq!(limited["reason"], "TooManyReplicas", "{v2}");
    let utilization =
        v2["status"]["currentMetrics"][0]["resource"]["current"]["averageUtilization"]
            .as_i64()
            .unwrap();
    assert!(
        utilization > 100,
        "burning pods use more than their request: {v2}"
    );
    let table = k.ok(&["get", "hpa", "burner", "--no-headers"]);
    assert!(table.contains("cpu: ") && table.contains("/50%"), "{table}");

    // When the burning stops the autoscaler goes back to minReplicas (no stabilization asked).
    eventually("one pod again", Duration::from_secs(120), || {
        let v2 = hpa(&k, "burner", "v2");
        (v2["status"]["desiredReplicas"] == 1 && running(&k) == 1).then_some(())
    });
    let events = k.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=burner,reason=SuccessfulRescale",
        "-o",
        "jsonpath={range .items[*]}{.message}{\"\\n\"}{end}",
    ]);
    assert!(
        events.contains(
            "New size: 3; reason: cpu resource utilization (percentage of request) above target"
        ),
        "{events}"
    );
    assert!(
        events.contains("New size: 1; reason: All metrics below target"),
        "{events}"
    );
}
