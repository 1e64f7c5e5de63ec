//! The real kubectl (oldest and newest supported) against `keg server`: the everyday commands
//! and the errors users know.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use common::{KUBECTL_VERSIONS, Kubectl, Server, write_file};

fn manifest(ns: &str, image: &str, extra_env: bool) -> String {
    let env = if extra_env {
        "\n        - name: MODE\n          value: fast"
    } else {
        ""
    };
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: {ns}
  labels: {{app: web}}
spec:
  replicas: 2
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      containers:
      - name: web
        image: {image}
        ports:
        - containerPort: 8080
        env:
        - name: GREETING
          value: hello{env}
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: {ns}
spec:
  selector: {{app: web}}
  ports:
  - port: 80
    targetPort: 8080
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: {ns}
data:
  level: debug
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: fast
provisioner: keg.dev/local
volumeBindingMode: WaitForFirstConsumer
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: data
  namespace: {ns}
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: fast
  resources:
    requests:
      storage: 1Gi
"#
    )
}

fn lines_with(out: &str, needle: &str) -> usize {
    out.lines().filter(|l| l.contains(needle)).count()
}

fn apply_and_reapply(ns: &str, k: &Kubectl, dir: &std::path::Path) {
    k.ok(&["create", "namespace", ns]);
    let first = write_file(dir, "app.yaml", &manifest(ns, "web:1.0", false));
    let out = k.ok(&["apply", "-f", first.to_str().unwrap()]);
    for created in [
        "deployment.apps/web created",
        "service/web created",
        "configmap/settings created",
        "storageclass.storage.k8s.io/fast created",
        "persistentvolumeclaim/data created",
    ] {
        assert!(out.contains(created), "missing {created:?} in:\n{out}");
    }

    // A changed image and a new env var patch the Deployment and keep everything else.
    let second = write_file(dir, "app2.yaml", &manifest(ns, "web:2.0", true));
    let out = k.ok(&["apply", "-f", second.to_str().unwrap()]);
    assert!(out.contains("deployment.apps/web configured"), "{out}");
    assert_eq!(lines_with(&out, "unchanged"), 4, "{out}");
    let deploy = k.json(&["get", "deployment", "web", "-n", ns]);
    let container = &deploy["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "web:2.0");
    let env: Vec<&str> = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(env, ["GREETING", "MODE"]);
    assert_eq!(container["ports"][0]["containerPort"], 8080);
    assert_eq!(deploy["spec"]["replicas"], 2);
    assert_eq!(deploy["metadata"]["generation"], 2);

    // The same file again changes nothing.
    let out = k.ok(&["apply", "-f", second.to_str().unwrap()]);
    assert_eq!(lines_with(&out, "unchanged"), 5, "{out}");
}

/// `kubectl apply --server-side` creates what does not exist and patches what does.
fn server_side_apply(ns: &str, k: &Kubectl, dir: &std::path::Path) {
    let config = |size: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\n  namespace: {ns}\ndata:\n  size: {size}\n"
        )
    };
    let file = write_file(dir, "ssa.yaml", &config("small"));
    let out = k.ok(&["apply", "--server-side", "-f", file.to_str().unwrap()]);
    assert!(out.contains("configmap/ssa serverside-applied"), "{out}");
    let file = write_file(dir, "ssa.yaml", &config("large"));
    k.ok(&["apply", "--server-side", "-f", file.to_str().unwrap()]);
    let cm = k.json(&["get", "configmap", "ssa", "-n", ns]);
    assert_eq!(cm["data"]["size"], "large");
    k.ok(&["delete", "configmap", "ssa", "-n", ns]);
}

fn read_commands(ns: &str, k: &Kubectl) {
    let wide = k.ok(&["get", "deployments", "-n", ns, "-o", "wide"]);
    let header: Vec<&str> = wide.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "AGE",
            "CONTAINERS",
            "IMAGES",
            "SELECTOR"
        ]
    );
    assert!(
        wide.contains("web:2.0") && wide.contains("app=web"),
        "{wide}"
    );

    let yaml = k.ok(&["get", "configmap", "settings", "-n", ns, "-o", "yaml"]);
    assert!(
        yaml.contains("level: debug") && yaml.contains("kind: ConfigMap"),
        "{yaml}"
    );
    let name = k.ok(&["get", "svc", "-n", ns, "-o", "name"]);
    assert_eq!(name.trim(), "service/web");
    let labels = k.ok(&["get", "deploy", "-n", ns, "--show-labels"]);
    assert!(
        labels.lines().next().unwrap().ends_with("LABELS") && labels.contains("app=web"),
        "{labels}"
    );
    let selected = k.ok(&["get", "deploy", "-A", "-l", "app=web"]);
    assert!(
        selected.starts_with("NAMESPACE") && selected.contains(ns),
        "{selected}"
    );
    let none = k.run(&["get", "deploy", "-A", "-l", "app=nothing"]);
    assert!(
        none.stderr.contains("No resources found"),
        "{}",
        none.stderr
    );
    let svc = k.ok(&["get", "svc", "-n", ns]);
    let header: Vec<&str> = svc.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME",
            "TYPE",
            "CLUSTER-IP",
            "EXTERNAL-IP",
            "PORT(S)",
            "AGE"
        ]
    );
    assert!(
        svc.contains("ClusterIP") && svc.contains("10.43.") && svc.contains("80/TCP"),
        "{svc}"
    );
    let pvc = k.ok(&["get", "pvc", "-n", ns]);
    assert!(
        pvc.lines().next().unwrap().starts_with("NAME") && pvc.contains("STORAGECLASS"),
        "{pvc}"
    );
    let all = k.ok(&["get", "all", "-n", ns]);
    assert!(
        all.contains("service/web") && all.contains("deployment.apps/web"),
        "{all}"
    );
    let nodes_header = k.run(&["get", "namespaces"]);
    assert!(
        nodes_header.stdout.contains("kube-system") && nodes_header.stdout.contains("Active"),
        "{}",
        nodes_header.stdout
    );

    for (kind, name) in [
        ("deployment", "web"),
        ("service", "web"),
        ("configmap", "settings"),
        ("pvc", "data"),
        ("namespace", ns),
    ] {
        let out = k.ok(&["describe", kind, name, "-n", ns]);
        assert!(
            out.starts_with("Name:") && out.contains(name),
            "describe {kind}: {out}"
        );
    }
    let sc = k.ok(&["describe", "storageclass", "fast"]);
    assert!(sc.contains("WaitForFirstConsumer"), "{sc}");
}

fn watch_sees_scale(ns: &str, k: &Kubectl) {
    // A watch sees the change the scale makes.
    let mut watch = std::process::Command::new(&k.bin)
        .arg("--kubeconfig")
        .arg(&k.kubeconfig)
        .args([
            "get",
            "deploy",
            "web",
            "-n",
            ns,
            "-w",
            "-o",
            "jsonpath={.spec.replicas}{\"\\n\"}",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = watch.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    assert_eq!(rx.recv_timeout(Duration::from_secs(20)).unwrap(), "2");
    let out = k.ok(&["scale", "deployment", "web", "-n", ns, "--replicas=5"]);
    assert!(out.contains("deployment.apps/web scaled"), "{out}");
    assert_eq!(rx.recv_timeout(Duration::from_secs(20)).unwrap(), "5");
    let _ = watch.kill();
    let _ = watch.wait();
    assert_eq!(
        k.json(&["get", "deploy", "web", "-n", ns])["spec"]["replicas"],
        5
    );
}

fn errors_users_know(ns: &str, k: &Kubectl) {
    let err = k.fails(&["get", "pod", "nope", "-n", ns]);
    assert!(
        err.contains("Error from server (NotFound): pods \"nope\" not found"),
        "{err}"
    );
    let err = k.fails(&["create", "namespace", ns]);
    assert!(
        err.contains(&format!(
            "Error from server (AlreadyExists): namespaces \"{ns}\" already exists"
        )),
        "{err}"
    );

    let cm = k.json(&["get", "configmap", "settings", "-n", ns]);
    let stale = cm["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    k.ok(&["label", "configmap", "settings", "-n", ns, "touched=yes"]);
    let mut replaced = cm.clone();
    replaced["metadata"]["resourceVersion"] = serde_json::json!(stale);
    replaced["data"]["level"] = serde_json::json!("info");
    let run = k.run_stdin(&["replace", "-f", "-"], &replaced.to_string());
    assert!(
        run.stderr.contains("Error from server (Conflict)")
            && run.stderr.contains("Operation cannot be fulfilled on configmaps \"settings\": the object has been modified; please apply your changes to the latest version and try again"),
        "{}",
        run.stderr
    );

    let bad = format!(
        r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"Bad_Name","namespace":"{ns}"}}}}"#
    );
    let run = k.run_stdin(&["create", "-f", "-"], &bad);
    assert!(
        run.stderr.contains("The ConfigMap \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain must consist of"),
        "{}",
        run.stderr
    );
    let unknown = format!(
        r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"x","namespace":"{ns}"}},"bogus":1}}"#
    );
    let run = k.run_stdin(&["create", "-f", "-"], &unknown);
    assert!(
        run.stderr.contains("unknown field \"bogus\""),
        "{}",
        run.stderr
    );
}

fn delete_by_file(ns: &str, k: &Kubectl, dir: &std::path::Path) {
    let file = dir.join("app2.yaml");
    let out = k.ok(&["delete", "-f", file.to_str().unwrap(), "--wait=false"]);
    assert!(out.contains("deployment.apps \"web\" deleted"), "{out}");
    k.ok(&[
        "wait",
        "--for=delete",
        "deployment/web",
        "-n",
        ns,
        "--timeout=30s",
    ]);
    let gone = k.run(&["get", "configmap", "settings", "-n", ns]);
    assert!(gone.stderr.contains("NotFound"), "{}", gone.stderr);
}

fn discovery(k: &Kubectl) {
    let out = k.ok(&["api-resources"]);
    for (name, short) in [
        ("pods", "po"),
        ("deployments", "deploy"),
        ("services", "svc"),
        ("persistentvolumeclaims", "pvc"),
        ("namespaces", "ns"),
        ("storageclasses", "sc"),
        ("customresourcedefinitions", "crd,crds"),
    ] {
        let line = out
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("{name} missing:\n{out}"));
        assert!(line.split_whitespace().nth(1) == Some(short), "{line}");
    }
    for kind in [
        "Lease",
        "EndpointSlice",
        "Event",
        "ConfigMap",
        "Secret",
        "ServiceAccount",
        "Node",
        "Endpoints",
        "PersistentVolume",
        "ReplicaSet",
    ] {
        assert!(
            out.lines()
                .any(|l| l.split_whitespace().last() == Some(kind)),
            "{kind} missing:\n{out}"
        );
    }
    // kubectl 1.27 prints the long form unless asked for the short one; later ones refuse it.
    let run = k.run(&["version", "-o", "json"]);
    let version: serde_json::Value = serde_json::from_str(&run.stdout).unwrap_or_default();
    assert!(
        run.status.success()
            && version["serverVersion"]["gitVersion"]
                .as_str()
                .is_some_and(|v| v.starts_with("v1.33")),
        "{} {}",
        run.stdout,
        run.stderr
    );
    assert!(
        !run.stderr.to_lowercase().contains("error"),
        "{}",
        run.stderr
    );
}

#[test]
fn kubectl_drives_keg() {
    let server = Server::start();
    for version in KUBECTL_VERSIONS {
        let k = server.kubectl(version);
        let ns = format!("demo-{}", version.replace('.', ""));
        let dir = tempfile::tempdir().unwrap();
        apply_and_reapply(&ns, &k, dir.path());
        server_side_apply(&ns, &k, dir.path());
        read_commands(&ns, &k);
        watch_sees_scale(&ns, &k);
        errors_users_know(&ns, &k);
        discovery(&k);
        delete_by_file(&ns, &k, dir.path());
        // `delete -f` took the file's cluster-scoped StorageClass too, so the next
        // version's apply creates it afresh.
        let gone = k.fails(&["get", "storageclass", "fast"]);
        assert!(gone.contains("NotFound"), "{gone}");
    }
}
