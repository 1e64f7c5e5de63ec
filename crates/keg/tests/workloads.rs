//! StatefulSets, DaemonSets, Jobs and CronJobs as users drive them with kubectl 1.27 and
//! 1.33, with real pods on a node-group node: a StatefulSet starts 0 -> 1 -> 2, updates
//! 2 -> 1 -> 0, honours a partition and goes back with `kubectl rollout undo`; a DaemonSet
//! runs on every node-group node; Jobs complete five pods two at a time, stop at the
//! back-off limit, give Indexed pods their index and expire after their TTL; a CronJob makes
//! Jobs by hand with `kubectl create job --from`; `kubectl get all` lists them all; and bad
//! input is refused with upstream's 422 causes, nothing stored.

mod common;

use std::time::Duration;

use common::{Kubectl, PodServer, Server, eventually};
use serde_json::Value;

/// A server with real pods and a node group of `nodes` t3.medium nodes.
fn cluster(test: &str, nodes: u32) -> Option<PodServer> {
    let server = PodServer::start(test, &[])?;
    server.node_group("ng", "t3.medium", nodes, 3);
    Some(server)
}

fn json_of(k: &Kubectl, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    k.json(&all)
}

/// The time a pod became Ready, as RFC 3339 text (compares in time order).
fn ready_at(pod: &Value) -> String {
    pod["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Ready" && c["status"] == "True")
        .and_then(|c| c["lastTransitionTime"].as_str())
        .unwrap_or_default()
        .to_string()
}

fn created_at(pod: &Value) -> String {
    pod["metadata"]["creationTimestamp"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

const STATEFUL_SET: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: sts}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: sts}
spec:
  clusterIP: None
  selector: {app: web}
  ports: [{name: http, port: 80}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: web, namespace: sts}
spec:
  serviceName: web
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: busybox:test
        command: [sh, -c, "echo version $VERSION; exec sleep 3600"]
        env: [{name: VERSION, value: one}]
        readinessProbe:
          exec: {command: ["true"]}
          initialDelaySeconds: 1
          periodSeconds: 1
"#;

fn pod(k: &Kubectl, name: &str) -> Value {
    json_of(k, &["get", "pod", name, "-n", "sts"])
}

fn version_of(pod: &Value) -> String {
    pod["spec"]["containers"][0]["env"][0]["value"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn rollout_status(k: &Kubectl) -> String {
    k.ok(&[
        "rollout",
        "status",
        "statefulset/web",
        "-n",
        "sts",
        "--timeout=180s",
    ])
}

#[test]
fn stateful_sets_start_in_order_update_in_reverse_and_roll_back() {
    let Some(server) = cluster("stateful_sets_start_in_order", 1) else {
        return;
    };
    let k = server.kubectl("1.33");
    let old = server.kubectl("1.27");
    k.ok_stdin(&["apply", "-f", "-"], STATEFUL_SET);
    // kubectl reads a defaulted rollingUpdate (partition 0) as a partitioned roll out.
    let out = rollout_status(&k);
    assert!(
        out.contains("partitioned roll out complete: 3 new pods have been updated"),
        "{out}"
    );
    // OrderedReady: each pod was created once the one before it was ready.
    let pods: Vec<Value> = (0..3).map(|i| pod(&k, &format!("web-{i}"))).collect();
    for i in 1..3 {
        assert!(
            created_at(&pods[i]) >= ready_at(&pods[i - 1]),
            "web-{i} was created at {} before web-{} was ready at {}",
            created_at(&pods[i]),
            i - 1,
            ready_at(&pods[i - 1])
        );
    }
    assert_eq!(pods[1]["spec"]["hostname"], "web-1");
    assert_eq!(pods[1]["spec"]["subdomain"], "web");
    let table = k.ok(&["get", "statefulsets", "-n", "sts"]);
    assert!(
        table.starts_with("NAME") && table.contains("READY") && table.contains("3/3"),
        "{table}"
    );

    // An update replaces web-2, then web-1, then web-0.
    k.ok(&["set", "env", "statefulset/web", "-n", "sts", "VERSION=two"]);
    rollout_status(&k);
    let pods: Vec<Value> = (0..3).map(|i| pod(&k, &format!("web-{i}"))).collect();
    assert!(pods.iter().all(|p| version_of(p) == "two"));
    for i in 0..2 {
        assert!(
            created_at(&pods[i]) >= ready_at(&pods[i + 1]),
            "web-{i} was replaced before web-{} was ready again",
            i + 1
        );
    }

    // partition: 2 updates web-2 only.
    k.ok(&[
        "patch",
        "statefulset/web",
        "-n",
        "sts",
        "-p",
        r#"{"spec":{"updateStrategy":{"rollingUpdate":{"partition":2}}}}"#,
    ]);
    k.ok(&[
        "set",
        "env",
        "statefulset/web",
        "-n",
        "sts",
        "VERSION=three",
    ]);
    let out = rollout_status(&k);
    assert!(
        out.contains("partitioned roll out complete: 1 new pods have been updated"),
        "{out}"
    );
    let versions: Vec<String> = (0..3)
        .map(|i| version_of(&pod(&k, &format!("web-{i}"))))
        .collect();
    assert_eq!(versions, ["two", "two", "three"]);

    // History and undo (kubectl 1.27): back to "two" everywhere once the partition is gone.
    let history = old.ok(&["rollout", "history", "statefulset/web", "-n", "sts"]);
    assert!(
        history.contains("REVISION") && history.lines().count() >= 5,
        "{history}"
    );
    k.ok(&[
        "patch",
        "statefulset/web",
        "-n",
        "sts",
        "-p",
        r#"{"spec":{"updateStrategy":{"rollingUpdate":{"partition":0}}}}"#,
    ]);
    let undone = old.ok(&["rollout", "undo", "statefulset/web", "-n", "sts"]);
    assert!(undone.contains("rolled back"), "{undone}");
    rollout_status(&old);
    let versions: Vec<String> = (0..3)
        .map(|i| version_of(&pod(&k, &format!("web-{i}"))))
        .collect();
    assert_eq!(versions, ["two", "two", "two"]);
    let sts = json_of(&k, &["get", "statefulset", "web", "-n", "sts"]);
    assert_eq!(
        sts["status"]["currentRevision"],
        sts["status"]["updateRevision"]
    );
}

const DAEMON_SET: &str = r#"
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent, namespace: default}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - {name: main, image: busybox:test, command: [sleep, "3600"]}
"#;

#[test]
fn a_daemon_set_runs_on_every_node_group_node() {
    let Some(server) = cluster("a_daemon_set_runs_on_every_node_group_node", 2) else {
        return;
    };
    let k = server.kubectl("1.33");
    eventually("two node-group nodes", Duration::from_secs(60), || {
        let nodes = json_of(&k, &["get", "nodes"]);
        (nodes["items"].as_array().map(Vec::len) == Some(2)).then_some(())
    });
    k.ok_stdin(&["apply", "-f", "-"], DAEMON_SET);
    let out = k.ok(&["rollout", "status", "daemonset/agent", "--timeout=120s"]);
    assert!(
        out.contains("daemon set \"agent\" successfully rolled out"),
        "{out}"
    );
    let pods = json_of(&k, &["get", "pods", "-l", "app=agent"]);
    let mut on: Vec<String> = pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            p["spec"]["nodeName"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    on.sort();
    on.dedup();
    assert_eq!(on.len(), 2, "one pod on each node: {on:?}");
    let table = k.ok(&["get", "daemonsets"]);
    for column in [
        "DESIRED",
        "CURRENT",
        "READY",
        "UP-TO-DATE",
        "AVAILABLE",
        "NODE SELECTOR",
    ] {
        assert!(table.contains(column), "{table}");
    }
    // An update rolls node by node to the new template.
    k.ok(&["set", "env", "daemonset/agent", "V=2"]);
    k.ok(&["rollout", "status", "daemonset/agent", "--timeout=120s"]);
    let pods = json_of(&k, &["get", "pods", "-l", "app=agent"]);
    let live: Vec<&Value> = pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .collect();
    assert_eq!(live.len(), 2);
    assert!(
        live.iter()
            .all(|p| p["spec"]["containers"][0]["env"][0]["value"] == "2")
    );

    // History and undo (kubectl 1.27): back to the template without V.
    let old = server.kubectl("1.27");
    let history = old.ok(&["rollout", "history", "daemonset/agent"]);
    assert!(
        history.contains("REVISION") && history.lines().count() >= 4,
        "{history}"
    );
    let undone = old.ok(&["rollout", "undo", "daemonset/agent"]);
    assert!(undone.contains("rolled back"), "{undone}");
    eventually(
        "the pods back at the first template",
        Duration::from_secs(120),
        || {
            let pods = json_of(&k, &["get", "pods", "-l", "app=agent"]);
            let live: Vec<Value> = pods["items"]
                .as_array()?
                .iter()
                .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
                .cloned()
                .collect();
            (live.len() == 2
                && live
                    .iter()
                    .all(|p| p["spec"]["containers"][0]["env"].is_null()))
            .then_some(())
        },
    );
}

const JOBS: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: batch}
---
apiVersion: batch/v1
kind: Job
metadata: {name: five, namespace: batch}
spec:
  completions: 5
  parallelism: 2
  template:
    spec:
      restartPolicy: Never
      containers:
      - {name: main, image: busybox:test, command: [sh, -c, "sleep 1"]}
---
apiVersion: batch/v1
kind: Job
metadata: {name: failing, namespace: batch}
spec:
  backoffLimit: 1
  template:
    spec:
      restartPolicy: Never
      containers:
      - {name: main, image: busybox:test, command: [sh, -c, "exit 3"]}
---
apiVersion: batch/v1
kind: Job
metadata: {name: indexed, namespace: batch}
spec:
  completions: 3
  parallelism: 3
  completionMode: Indexed
  ttlSecondsAfterFinished: 20
  template:
    spec:
      restartPolicy: Never
      containers:
      - {name: main, image: busybox:test, command: [sh, -c, "echo index=$JOB_COMPLETION_INDEX"]}
"#;

#[test]
fn jobs_complete_fail_at_their_limit_index_their_pods_and_expire() {
    let Some(server) = cluster("jobs_complete_fail_at_their_limit", 1) else {
        return;
    };
    let k = server.kubectl("1.33");
    let old = server.kubectl("1.27");
    k.ok_stdin(&["apply", "-f", "-"], JOBS);
    k.ok(&[
        "wait",
        "--for=condition=complete",
        "job/five",
        "-n",
        "batch",
        "--timeout=180s",
    ]);
    let five = json_of(&k, &["get", "job", "five", "-n", "batch"]);
    assert_eq!(five["status"]["succeeded"], 5);
    let table = k.ok(&["get", "jobs", "-n", "batch", "five"]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"],
        "{table}"
    );
    assert!(
        table.contains("Complete") && table.contains("5/5"),
        "{table}"
    );
    let table = old.ok(&["get", "jobs", "-n", "batch", "five"]);
    assert!(table.contains("5/5"), "{table}");

    // The failing Job: a first failure, ten seconds of back-off, a second one, then no more.
    k.ok(&[
        "wait",
        "--for=condition=failed",
        "job/failing",
        "-n",
        "batch",
        "--timeout=180s",
    ]);
    let failing = json_of(&k, &["get", "job", "failing", "-n", "batch"]);
    assert_eq!(failing["status"]["failed"], 2);
    let failed = failing["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Failed")
        .cloned()
        .unwrap();
    assert_eq!(failed["reason"], "BackoffLimitExceeded");
    assert_eq!(
        failed["message"],
        "Job has reached the specified backoff limit"
    );
    let described = k.ok(&["describe", "job", "failing", "-n", "batch"]);
    assert!(described.contains("BackoffLimitExceeded"), "{described}");

    // The Indexed Job: each pod prints its own index; 20 seconds after it completes the
    // Job and its pods are gone.
    let logs = eventually("the indexed pods' logs", Duration::from_secs(120), || {
        let pods = json_of(
            &k,
            &[
                "get",
                "pods",
                "-n",
                "batch",
                "-l",
                "batch.kubernetes.io/job-name=indexed",
            ],
        );
        let names: Vec<String> = pods["items"]
            .as_array()?
            .iter()
            .filter(|p| p["status"]["phase"] == "Succeeded")
            .map(|p| {
                p["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect();
        if names.len() < 3 {
            return None;
        }
        let mut logs: Vec<String> = names
            .iter()
            .map(|n| k.ok(&["logs", n, "-n", "batch"]).trim().to_string())
            .collect();
        logs.sort();
        Some(logs)
    });
    assert_eq!(logs, ["index=0", "index=1", "index=2"]);
    eventually(
        "the indexed job deleted by its TTL",
        Duration::from_secs(60),
        || {
            let run = k.run(&["get", "job", "indexed", "-n", "batch"]);
            (!run.status.success() && run.stderr.contains("NotFound")).then_some(())
        },
    );
}

#[test]
fn cron_jobs_make_jobs_by_hand_and_get_all_lists_every_kind() {
    let Some(server) = cluster("cron_jobs_make_jobs_by_hand", 1) else {
        return;
    };
    let k = server.kubectl("1.33");
    k.ok(&["create", "namespace", "cron"]);
    k.ok(&[
        "create",
        "cronjob",
        "nightly",
        "-n",
        "cron",
        "--image=busybox:test",
        "--schedule=0 3 * * *",
        "--",
        "sh",
        "-c",
        "echo nightly run",
    ]);
    let table = k.ok(&["get", "cronjobs", "-n", "cron"]);
    for column in ["SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST SCHEDULE"] {
        assert!(table.contains(column), "{table}");
    }
    assert!(table.contains("0 3 * * *"), "{table}");
    k.ok(&[
        "create",
        "job",
        "by-hand",
        "-n",
        "cron",
        "--from=cronjob/nightly",
    ]);
    k.ok(&[
        "wait",
        "--for=condition=complete",
        "job/by-hand",
        "-n",
        "cron",
        "--timeout=120s",
    ]);
    let job = json_of(&k, &["get", "job", "by-hand", "-n", "cron"]);
    assert_eq!(
        job["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"],
        "manual"
    );
    assert_eq!(
        k.ok(&["logs", "job/by-hand", "-n", "cron"]).trim(),
        "nightly run"
    );
    let all = k.ok(&["get", "all", "-n", "cron"]);
    assert!(
        all.contains("cronjob.batch/nightly") && all.contains("job.batch/by-hand"),
        "{all}"
    );
}

#[test]
fn bad_workloads_are_refused_with_upstreams_causes_and_nothing_is_stored() {
    let server = Server::start();
    let k = server.kubectl("1.33");
    let bad_schedule = "apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: bad, namespace: default}\nspec:\n  schedule: \"every day\"\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          restartPolicy: Never\n          containers: [{name: c, image: busybox}]\n";
    let err = k.run_stdin(&["apply", "-f", "-"], bad_schedule);
    assert!(!err.status.success());
    assert!(
        err.stderr.contains(r#"The CronJob "bad" is invalid: spec.schedule: Invalid value: "every day": expected exactly 5 fields, found 2: [every day]"#),
        "{}",
        err.stderr
    );
    let mismatched = "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: odd, namespace: default}\nspec:\n  serviceName: odd\n  selector: {matchLabels: {app: odd}}\n  template:\n    metadata: {labels: {app: other}}\n    spec:\n      containers: [{name: c, image: busybox}]\n";
    let err = k.run_stdin(&["apply", "-f", "-"], mismatched);
    assert!(
        err.stderr.contains("spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"other\"}: `selector` does not match template `labels`"),
        "{}",
        err.stderr
    );
    let job = "apiVersion: batch/v1\nkind: Job\nmetadata: {name: once, namespace: default}\nspec:\n  completions: 2\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{name: c, image: busybox}]\n";
    k.ok_stdin(&["apply", "-f", "-"], job);
    let err = k.run(&[
        "patch",
        "job",
        "once",
        "-p",
        r#"{"spec":{"completions":3}}"#,
    ]);
    assert!(
        err.stderr
            .contains("spec.completions: Invalid value: 3: field is immutable"),
        "{}",
        err.stderr
    );
    let always = "apiVersion: batch/v1\nkind: Job\nmetadata: {name: forever, namespace: default}\nspec:\n  template:\n    spec:\n      containers: [{name: c, image: busybox}]\n";
    let err = k.run_stdin(&["apply", "-f", "-"], always);
    assert!(
        err.stderr.contains(r#"spec.template.spec.restartPolicy: Unsupported value: "Always": supported values: "OnFailure", "Never""#),
        "{}",
        err.stderr
    );
    let sts_change = "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: db, namespace: default}\nspec:\n  serviceName: db\n  selector: {matchLabels: {app: db}}\n  template:\n    metadata: {labels: {app: db}}\n    spec:\n      containers: [{name: c, image: busybox}]\n";
    k.ok_stdin(&["apply", "-f", "-"], sts_change);
    let err = k.run(&[
        "patch",
        "statefulset",
        "db",
        "-p",
        r#"{"spec":{"serviceName":"other"}}"#,
    ]);
    assert!(
        err.stderr.contains("spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"),
        "{}",
        err.stderr
    );
    // Nothing of the refused writes is stored.
    for (kind, name) in [
        ("cronjob", "bad"),
        ("statefulset", "odd"),
        ("job", "forever"),
    ] {
        let run = k.run(&["get", kind, name]);
        assert!(
            run.stderr.contains("NotFound"),
            "{kind}/{name}: {}",
            run.stderr
        );
    }
    let once = json_of(&k, &["get", "job", "once"]);
    assert_eq!(once["spec"]["completions"], 2);
    let db = json_of(&k, &["get", "statefulset", "db"]);
    assert_eq!(db["spec"]["serviceName"], "db");
}
