//! Identity and access as a user checks it with kubectl 1.27 and 1.33: RBAC objects are
//! created with kubectl's own verbs and enforced at once; `kubectl auth can-i` (with `--as`
//! and `--list`) and `kubectl auth whoami` answer; a service account's token from `kubectl
//! create token` names the account and is held to its role; a user of `keg create
//! kubeconfig` with the `view` role reads but cannot write; nobody grants what they do not
//! hold; the aggregated `view` role grows when a role is labelled for it; tampered tokens are
//! refused; a chart's rendered RBAC gives its Deployment's account exactly its role. As root,
//! a pod gets its credentials mounted, and a kube-rs program in it with in-cluster
//! configuration is refused with upstream's 403 until a RoleBinding lets it list pods.

mod common;

use std::time::Duration;

use common::{KUBECTL_VERSIONS, PodServer, Server, eventually, write_file};

#[test]
fn rbac_is_enforced_as_kubectl_users_expect() {
    let server = Server::start();
    let admin = server.kubectl("1.33");
    admin.ok(&["create", "namespace", "rbac-demo"]);
    admin.ok(&["create", "serviceaccount", "reader", "-n", "rbac-demo"]);
    admin.ok(&[
        "create",
        "configmap",
        "settings",
        "-n",
        "rbac-demo",
        "--from-literal=a=b",
    ]);

    // The admin is who the admin kubeconfig says, in system:masters.
    for version in KUBECTL_VERSIONS {
        let whoami = server.kubectl(version).ok(&["auth", "whoami"]);
        assert!(whoami.contains("kubernetes-admin"), "{version}: {whoami}");
        assert!(whoami.contains("system:masters"), "{version}: {whoami}");
    }

    for (i, version) in KUBECTL_VERSIONS.iter().enumerate() {
        let k = server.kubectl(version);
        let role = format!("pod-reader-{i}");
        let binding = format!("read-pods-{i}");
        k.ok(&[
            "create",
            "role",
            &role,
            "--verb=get,list,watch",
            "--resource=pods,configmaps",
            "-n",
            "rbac-demo",
        ]);
        k.ok(&[
            "create",
            "rolebinding",
            &binding,
            &format!("--role={role}"),
            "--serviceaccount=rbac-demo:reader",
            "-n",
            "rbac-demo",
        ]);
        // A ClusterRole by kubectl's verb, bound cluster-wide.
        let lister = format!("node-lister-{i}");
        k.ok(&[
            "create",
            "clusterrole",
            &lister,
            "--verb=list",
            "--resource=nodes",
        ]);
        k.ok(&[
            "create",
            "clusterrolebinding",
            &lister,
            &format!("--clusterrole={lister}"),
            "--serviceaccount=rbac-demo:reader",
        ]);
        let table = k.ok(&[
            "get",
            "rolebinding",
            &binding,
            "-n",
            "rbac-demo",
            "-o",
            "wide",
        ]);
        assert!(table.contains(&format!("Role/{role}")), "{table}");
        assert!(table.contains("rbac-demo/reader"), "{table}");

        let sa = "--as=system:serviceaccount:rbac-demo:reader";
        let yes = k.ok(&["auth", "can-i", "list", "pods", "-n", "rbac-demo", sa]);
        assert_eq!(yes.trim(), "yes");
        let no = k.run(&["auth", "can-i", "delete", "pods", "-n", "rbac-demo", sa]);
        assert!(!no.status.success());
        assert_eq!(no.stdout.trim(), "no");
        let nodes = k.ok(&["auth", "can-i", "list", "nodes", sa]);
        assert_eq!(nodes.trim(), "yes");
        let elsewhere = k.run(&["auth", "can-i", "list", "pods", "-n", "default", sa]);
        assert_eq!(elsewhere.stdout.trim(), "no");
        let list = k.ok(&["auth", "can-i", "--list", "-n", "rbac-demo", sa]);
        assert!(
            list.lines()
                .any(|l| l.starts_with("pods ") && l.contains("[get list watch]")),
            "{list}"
        );
        // Every authenticated user may ask about itself (system:basic-user).
        assert!(
            list.contains("selfsubjectaccessreviews.authorization.k8s.io"),
            "{list}"
        );
    }

    // A token for the account names it and is held to its role.
    let token = admin.ok(&[
        "create",
        "token",
        "reader",
        "-n",
        "rbac-demo",
        "--duration=10m",
    ]);
    let token = token.trim();
    let as_sa = |args: &[&str]| {
        let mut all = vec!["--token", token];
        all.extend(args);
        admin.run(&all)
    };
    let got = as_sa(&[
        "get",
        "configmap",
        "settings",
        "-n",
        "rbac-demo",
        "-o",
        "name",
    ]);
    assert!(got.status.success(), "{}", got.stderr);
    assert_eq!(got.stdout.trim(), "configmap/settings");
    let denied = as_sa(&["delete", "configmap", "settings", "-n", "rbac-demo"]);
    assert!(!denied.status.success());
    assert!(
        denied.stderr.contains(
            r#"Error from server (Forbidden): configmaps "settings" is forbidden: User "system:serviceaccount:rbac-demo:reader" cannot delete resource "configmaps" in API group "" in the namespace "rbac-demo""#
        ),
        "{}",
        denied.stderr
    );
    let other_ns = as_sa(&["get", "pods", "-n", "default"]);
    assert!(
        other_ns
            .stderr
            .contains(r#"cannot list resource "pods" in API group "" in the namespace "default""#),
        "{}",
        other_ns.stderr
    );
    admin.ok(&["get", "configmap", "settings", "-n", "rbac-demo"]);

    // A tampered token is a 401.
    let mut tampered = token.to_string();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    let refused = admin.run(&["--token", &tampered, "get", "pods", "-n", "rbac-demo"]);
    assert!(!refused.status.success());
    assert!(
        refused.stderr.contains("Unauthorized"),
        "{}",
        refused.stderr
    );

    // A token minted for another audience is not accepted by the API server.
    let other = admin.ok(&[
        "create",
        "token",
        "reader",
        "-n",
        "rbac-demo",
        "--audience=https://vault.example.com",
    ]);
    let refused = admin.run(&["--token", other.trim(), "get", "pods", "-n", "rbac-demo"]);
    assert!(
        refused.stderr.contains("Unauthorized"),
        "{}",
        refused.stderr
    );

    // A legacy token Secret gets the account's token, which dies with the Secret.
    admin.ok_stdin(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: reader-token\n  namespace: rbac-demo\n  annotations: {kubernetes.io/service-account.name: reader}\ntype: kubernetes.io/service-account-token\n",
    );
    let legacy = eventually(
        "the token controller fills the Secret",
        Duration::from_secs(10),
        || {
            let secret = admin.json(&["get", "secret", "reader-token", "-n", "rbac-demo"]);
            secret["data"]["token"].as_str().map(String::from)
        },
    );
    use base64::Engine;
    let legacy = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(legacy)
            .unwrap(),
    )
    .unwrap();
    let read = admin.run(&[
        "--token",
        &legacy,
        "get",
        "configmap",
        "settings",
        "-n",
        "rbac-demo",
    ]);
    assert!(read.status.success(), "{}", read.stderr);
    admin.ok(&["delete", "secret", "reader-token", "-n", "rbac-demo"]);
    let dead = admin.run(&[
        "--token",
        &legacy,
        "get",
        "configmap",
        "settings",
        "-n",
        "rbac-demo",
    ]);
    assert!(dead.stderr.contains("Unauthorized"), "{}", dead.stderr);

    // The TokenReview API says who the token is.
    let review = write_file(
        &server.dir,
        "review.yaml",
        &format!(
            "apiVersion: authentication.k8s.io/v1\nkind: TokenReview\nspec:\n  token: {token}\n"
        ),
    );
    let reviewed = admin.json(&["create", "-f", review.to_str().unwrap()]);
    assert_eq!(reviewed["status"]["authenticated"], true, "{reviewed}");
    assert_eq!(
        reviewed["status"]["user"]["username"],
        "system:serviceaccount:rbac-demo:reader"
    );

    // A user with a client certificate, bound to the view role through a group.
    admin.ok(&[
        "create",
        "clusterrolebinding",
        "viewers",
        "--clusterrole=view",
        "--group=viewers",
    ]);
    let jane = admin.with_kubeconfig(&server.user_kubeconfig("jane", &["viewers"]));
    let whoami = jane.ok(&["auth", "whoami"]);
    assert!(
        whoami.contains("jane") && whoami.contains("viewers"),
        "{whoami}"
    );
    let pods = jane.run(&["get", "configmaps", "-n", "rbac-demo"]);
    assert!(pods.status.success(), "{}", pods.stderr);
    assert!(pods.stdout.contains("settings"), "{}", pods.stdout);
    let write = jane.run(&["create", "configmap", "mine", "-n", "rbac-demo"]);
    assert!(
        write.stderr.contains(
            r#"configmaps is forbidden: User "jane" cannot create resource "configmaps" in API group "" in the namespace "rbac-demo""#
        ),
        "{}",
        write.stderr
    );
    // view does not read secrets.
    let secrets = jane.run(&["get", "secrets", "-n", "rbac-demo"]);
    assert!(secrets.stderr.contains("Forbidden"), "{}", secrets.stderr);

    // The aggregated view role takes in a role labelled for it (as charts extend it).
    admin.ok_stdin(
        &["apply", "-f", "-"],
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: secret-lister}\nrules:\n- {apiGroups: [\"\"], resources: [secrets], verbs: [list]}\n",
    );
    let no = jane.run(&["auth", "can-i", "list", "secrets", "-n", "rbac-demo"]);
    assert_eq!(no.stdout.trim(), "no");
    admin.ok(&[
        "label",
        "clusterrole",
        "secret-lister",
        "rbac.authorization.k8s.io/aggregate-to-view=true",
    ]);
    eventually(
        "view aggregates secret-lister",
        Duration::from_secs(20),
        || {
            let run = jane.run(&["auth", "can-i", "list", "secrets", "-n", "rbac-demo"]);
            (run.stdout.trim() == "yes").then_some(())
        },
    );
    let listed = jane.run(&["get", "secrets", "-n", "rbac-demo"]);
    assert!(listed.status.success(), "{}", listed.stderr);

    // Nobody grants what they do not hold: an admin of the namespace cannot hand out
    // access to persistent volumes, which admin does not include, and nothing is stored.
    admin.ok(&[
        "create",
        "rolebinding",
        "jane-admin",
        "--clusterrole=admin",
        "--user=jane",
        "-n",
        "rbac-demo",
    ]);
    jane.ok(&[
        "create",
        "role",
        "cm-editor",
        "--verb=update",
        "--resource=configmaps",
        "-n",
        "rbac-demo",
    ]);
    let escalation = jane.run(&[
        "create",
        "role",
        "pv-reader",
        "--verb=get",
        "--resource=secrets,persistentvolumes",
        "-n",
        "rbac-demo",
    ]);
    assert!(
        escalation.stderr.contains(
            r#"user "jane" (groups=["viewers" "system:authenticated"]) is attempting to grant RBAC permissions not currently held"#
        ),
        "{}",
        escalation.stderr
    );
    let roles = admin.ok(&["get", "roles", "-n", "rbac-demo", "-o", "name"]);
    assert!(
        roles.contains("role.rbac.authorization.k8s.io/cm-editor"),
        "{roles}"
    );
    assert!(!roles.contains("pv-reader"), "{roles}");

    // Health and version answer anyone; the API needs credentials. (curl, because kubectl
    // asks for a password when its kubeconfig holds no credentials.)
    let anonymous = |path: &str| {
        let out = std::process::Command::new("curl")
            .args(["-s", "--cacert"])
            .arg(server.dir.join("ca.crt"))
            .arg(format!("{}{path}", server.url()))
            .output()
            .expect("curl runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(anonymous("/version").contains("gitVersion"));
    assert_eq!(anonymous("/healthz"), "ok");
    let api = anonymous("/api/v1/namespaces");
    assert!(api.contains(r#""reason":"Unauthorized""#), "{api}");
}

const IN_POD: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: in-pod}
---
# A node-group node: Fargate refuses hostPath volumes, as EKS does.
apiVersion: keg.dev/v1
kind: NodeGroup
metadata: {name: ng-in-pod}
spec: {instanceType: t3.small, desiredCapacity: 1, minSize: 1, maxSize: 1}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: lister, namespace: in-pod}
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: in-pod}
spec:
  serviceAccountName: lister
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox:test
    command: ["sleep", "3600"]
    # The in-cluster kube-rs client (examples/in_cluster_list.rs) and the C library it links.
    volumeMounts:
    - {name: probe, mountPath: /probe, readOnly: true}
    - {name: libc, mountPath: /lib/x86_64-linux-gnu, readOnly: true}
    - {name: loader, mountPath: /lib64, readOnly: true}
  volumes:
  - {name: probe, hostPath: {path: PROBE_DIR}}
  - {name: libc, hostPath: {path: /lib/x86_64-linux-gnu}}
  - {name: loader, hostPath: {path: /lib64}}
"#;

/// Where cargo put the example programs (`cargo test` builds them): beside `deps/`, where
/// this test runs from.
fn examples_dir() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().join("examples")
}

#[test]
fn a_pod_calls_the_api_as_its_service_account() {
    let Some(server) = PodServer::start("a_pod_calls_the_api_as_its_service_account", &[]) else {
        return;
    };
    let k = server.kubectl("1.33");
    let probe = examples_dir();
    assert!(
        probe.join("in_cluster_list").exists(),
        "{} is missing: cargo test builds the examples",
        probe.display()
    );
    k.ok_stdin(
        &["apply", "-f", "-"],
        &IN_POD.replace("PROBE_DIR", probe.to_str().unwrap()),
    );
    let ready = k.run(&[
        "wait",
        "--for=condition=Ready",
        "pod/client",
        "-n",
        "in-pod",
        "--timeout=120s",
    ]);
    assert!(
        ready.status.success(),
        "{}",
        k.ok(&["describe", "pod", "client", "-n", "in-pod"])
    );
    let exec = |script: &str| k.run(&["exec", "-n", "in-pod", "client", "--", "sh", "-c", script]);
    // The projected volume, where in-cluster clients look.
    let files = exec("ls /var/run/secrets/kubernetes.io/serviceaccount");
    assert_eq!(
        files.stdout.split_whitespace().collect::<Vec<_>>(),
        ["ca.crt", "namespace", "token"]
    );
    let ns = exec("cat /var/run/secrets/kubernetes.io/serviceaccount/namespace");
    assert_eq!(ns.stdout, "in-pod");
    let ca = exec("cat /var/run/secrets/kubernetes.io/serviceaccount/ca.crt");
    assert_eq!(
        ca.stdout,
        std::fs::read_to_string(server.dir.join("ca.crt")).unwrap()
    );

    // The token names the account and its pod.
    let token = exec("cat /var/run/secrets/kubernetes.io/serviceaccount/token").stdout;
    let whoami = k.ok(&["--token", &token, "auth", "whoami"]);
    assert!(
        whoami.contains("system:serviceaccount:in-pod:lister"),
        "{whoami}"
    );
    assert!(
        whoami.contains("authentication.kubernetes.io/pod-name"),
        "{whoami}"
    );
    assert!(whoami.contains("[client]"), "{whoami}");

    // The API server is reachable from the pod at the kubernetes Service.
    // (busybox's nc has no -z: it connects, sends nothing, and gives up after two seconds.)
    let reachable =
        exec("nc -w 2 kubernetes.default.svc.cluster.local 443 </dev/null 2>&1; echo connected");
    assert_eq!(reachable.stdout.trim(), "connected", "{}", reachable.stderr);

    // A kube-rs program with in-cluster configuration gets upstream's 403 until a binding
    // allows it (the binding is made below).
    let refused = exec("/probe/in_cluster_list");
    assert_eq!(
        refused.stdout.trim(),
        r#"403 Forbidden: pods is forbidden: User "system:serviceaccount:in-pod:lister" cannot list resource "pods" in API group "" in the namespace "in-pod""#,
        "{}",
        refused.stderr
    );

    // The pod's token is held to RBAC: forbidden until a binding allows it.
    let list = [
        "--token",
        token.as_str(),
        "get",
        "pods",
        "-n",
        "in-pod",
        "-o",
        "name",
    ];
    let denied = k.run(&list);
    assert!(
        denied
            .stderr
            .contains(r#"User "system:serviceaccount:in-pod:lister" cannot list resource "pods""#),
        "{}",
        denied.stderr
    );
    k.ok(&[
        "create",
        "rolebinding",
        "lister-view",
        "--clusterrole=view",
        "--serviceaccount=in-pod:lister",
        "-n",
        "in-pod",
    ]);
    assert_eq!(k.ok(&list).trim(), "pod/client");
    let listed = exec("/probe/in_cluster_list");
    assert!(
        listed.status.success(),
        "{}{}",
        listed.stdout,
        listed.stderr
    );
    assert_eq!(listed.stdout.trim(), "client");

    // A token bound to a pod ends with the pod.
    k.ok(&["delete", "pod", "client", "-n", "in-pod", "--wait=true"]);
    let gone = k.run(&list);
    assert!(gone.stderr.contains("Unauthorized"), "{}", gone.stderr);

    // A pod that opts out gets no credentials.
    k.ok_stdin(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: Pod\nmetadata: {name: bare, namespace: in-pod}\nspec:\n  automountServiceAccountToken: false\n  terminationGracePeriodSeconds: 1\n  containers:\n  - {name: main, image: busybox:test, command: [sleep, '3600']}\n",
    );
    let bare = k.json(&["get", "pod", "bare", "-n", "in-pod"]);
    assert!(bare["spec"]["volumes"].is_null(), "{}", bare["spec"]);
    k.ok(&[
        "delete",
        "namespace",
        "in-pod",
        "--wait=true",
        "--timeout=120s",
    ]);
}

/// A chart's output as `helm template` renders it: an account, an aggregated ClusterRole, a
/// ClusterRoleBinding, a Role and RoleBinding, and a Deployment running as the account.
const CHART: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: chart-demo}
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: operator
  namespace: chart-demo
  labels: {app.kubernetes.io/name: operator, app.kubernetes.io/managed-by: Helm}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: operator-view
  labels:
    app.kubernetes.io/name: operator
    rbac.authorization.k8s.io/aggregate-to-view: "true"
    rbac.authorization.k8s.io/aggregate-to-edit: "true"
rules:
- apiGroups: [""]
  resources: [nodes]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: operator-view}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: operator-view}
subjects:
- {kind: ServiceAccount, name: operator, namespace: chart-demo}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: operator, namespace: chart-demo}
rules:
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, list, watch, create, update, patch]
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  resourceNames: [operator-lock]
  verbs: [get, update]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: operator, namespace: chart-demo}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: operator}
subjects:
- {kind: ServiceAccount, name: operator, namespace: chart-demo}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: operator, namespace: chart-demo}
spec:
  replicas: 1
  selector: {matchLabels: {app.kubernetes.io/name: operator}}
  template:
    metadata: {labels: {app.kubernetes.io/name: operator}}
    spec:
      serviceAccountName: operator
      containers:
      - {name: operator, image: busybox:test, command: [sleep, "3600"]}
"#;

#[test]
fn a_charts_rbac_gives_its_workload_exactly_its_role() {
    let server = Server::start();
    for version in KUBECTL_VERSIONS {
        let k = server.kubectl(version);
        let applied = k.ok_stdin(&["apply", "-f", "-"], CHART);
        assert!(applied.contains("deployment.apps/operator"), "{applied}");
    }
    let k = server.kubectl("1.33");
    // The Deployment's pod runs as the chart's account, with its credentials mounted.
    let pod = eventually("the operator pod", Duration::from_secs(30), || {
        let pods = k.json(&["get", "pods", "-n", "chart-demo"]);
        pods["items"].as_array().and_then(|p| p.first().cloned())
    });
    assert_eq!(pod["spec"]["serviceAccountName"], "operator");
    let mounts = pod["spec"]["containers"][0]["volumeMounts"].to_string();
    assert!(
        mounts.contains("/var/run/secrets/kubernetes.io/serviceaccount"),
        "{mounts}"
    );

    // What the role allows, and nothing more, for a token of that account.
    let token = k.ok(&["create", "token", "operator", "-n", "chart-demo"]);
    let as_operator = |args: &[&str]| {
        let mut all = vec!["--token", token.trim()];
        all.extend(args);
        k.run(&all)
    };
    let created = as_operator(&["create", "configmap", "state", "-n", "chart-demo"]);
    assert!(created.status.success(), "{}", created.stderr);
    let nodes = as_operator(&["get", "nodes"]);
    assert!(nodes.status.success(), "{}", nodes.stderr);
    for (args, message) in [
        (
            vec!["delete", "configmap", "state", "-n", "chart-demo"],
            r#"cannot delete resource "configmaps" in API group "" in the namespace "chart-demo""#,
        ),
        (
            vec!["get", "secrets", "-n", "chart-demo"],
            r#"cannot list resource "secrets" in API group "" in the namespace "chart-demo""#,
        ),
        (
            vec!["get", "configmaps", "-n", "default"],
            r#"cannot list resource "configmaps" in API group "" in the namespace "default""#,
        ),
    ] {
        let run = as_operator(&args);
        assert!(run.stderr.contains(message), "{args:?}: {}", run.stderr);
    }
    let sa = "--as=system:serviceaccount:chart-demo:operator";
    let lock = k.ok(&[
        "auth",
        "can-i",
        "update",
        "leases/operator-lock",
        "-n",
        "chart-demo",
        sa,
    ]);
    assert_eq!(lock.trim(), "yes");
    let other = k.run(&[
        "auth",
        "can-i",
        "update",
        "leases/other",
        "-n",
        "chart-demo",
        sa,
    ]);
    assert_eq!(other.stdout.trim(), "no");
    // The aggregation labels carried the chart's rule into view and edit.
    for role in ["view", "edit", "admin"] {
        eventually(
            &format!("{role} aggregates operator-view"),
            Duration::from_secs(20),
            || {
                let rules = k.json(&["get", "clusterrole", role])["rules"].to_string();
                rules.contains("\"nodes\"").then_some(())
            },
        );
    }
}
