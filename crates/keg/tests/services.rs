//! Service networking end to end, as the Terrax API reaches its database: a pod on a
//! serverless node connects to another service by its short name, through the cluster DNS
//! and the service's cluster IP, and to a pod on a node-group node by its IP; the load
//! balancer's external IP spreads requests over the ready pods; a pod that is not ready gets
//! no traffic either way; the cluster IP leaves the bridge with the service, and the
//! bridge leaves with the server.

mod common;

use std::time::Duration;

use common::{Server, eventually, write_file};
use keg_runtime::testing::{busybox_in_store, require_root};

const MANIFEST: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: svc-demo}
---
apiVersion: keg.dev/v1
kind: FargateProfile
metadata: {name: fp-svc-demo}
spec:
  selectors: [{namespace: svc-demo}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: svc-demo}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web, tier: front}}
    spec:
      containers:
      - name: httpd
        image: busybox:test
        command: ["sh", "-c", "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 8080 -h /www"]
        ports: [{name: http, containerPort: 8080}]
        readinessProbe:
          tcpSocket: {port: http}
          periodSeconds: 1
---
apiVersion: keg.dev/v1
kind: NodeGroup
metadata: {name: ng}
spec: {instanceType: t3.small, desiredCapacity: 1, minSize: 1, maxSize: 1}
---
apiVersion: v1
kind: Namespace
metadata: {name: on-group}
---
apiVersion: v1
kind: Pod
metadata: {name: plain, namespace: on-group}
spec:
  containers:
  - name: httpd
    image: busybox:test
    command: ["sh", "-c", "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 80 -h /www"]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: svc-demo}
spec:
  selector: {tier: front}
  ports: [{name: http, port: 80, targetPort: http}]
---
# Behind the same services, but never ready: it must get no traffic.
apiVersion: v1
kind: Pod
metadata: {name: unready, namespace: svc-demo, labels: {tier: front}}
spec:
  containers:
  - name: httpd
    image: busybox:test
    command: ["sh", "-c", "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 8080 -h /www"]
    ports: [{name: http, containerPort: 8080}]
    readinessProbe:
      httpGet: {path: /never-there, port: http}
      periodSeconds: 1
"#;

/// The LoadBalancer in front of the same pods, on a port the test picks.
fn load_balancer(port: u16) -> String {
    format!(
        r#"
apiVersion: v1
kind: Service
metadata: {{name: web-lb, namespace: svc-demo}}
spec:
  type: LoadBalancer
  selector: {{tier: front}}
  ports: [{{name: http, port: {port}, targetPort: http}}]
"#
    )
}

/// The body of `GET /` from `address`, if it answers.
fn fetch(address: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream.write_all(b"GET / HTTP/1.0\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (_, body) = response.split_once("\r\n\r\n")?;
    Some(body.trim().to_string())
}

/// A pod that looks `host` up and fetches `http://<address>/` with nc until it answers
/// (busybox's own resolver and nc: the static glibc of Debian's busybox crashes in
/// getaddrinfo once a resolv.conf exists) and prints `answer: <body>`,
/// or prints what it saw of DNS and routes. It stays running so that its log can be read: a
/// serverless node, and the log with it, goes as soon as its pod ends.
fn client_pod(name: &str, host: &str) -> String {
    let script = format!(
        "for i in $(seq 1 30); do \
           addr={host}; case $addr in *[a-z]*) addr=$(nslookup {host} 2>/dev/null | sed -n 's/^Address: //p' | head -n1);; esac; \
           body=$(printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 $addr 80 | tail -n1); \
           if [ -n \"$body\" ]; then echo answer: $body; exec sleep 3600; fi; sleep 1; \
         done; \
         echo failed; echo \"address: [$addr]\"; cat /etc/resolv.conf; ip route; nslookup {host}; exec sleep 3600"
    );
    serde_json::to_string(&serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "svc-demo"},
        "spec": {"containers": [{"name": "client", "image": "busybox:test",
                                 "command": ["sh", "-c", script]}]}
    }))
    .unwrap()
}

fn bridge_addresses(bridge: &str) -> String {
    let out = std::process::Command::new("ip")
        .args(["-o", "addr", "show", "dev", bridge])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn services_reach_ready_pods_by_name_cluster_ip_and_load_balancer() {
    if !require_root("services_reach_ready_pods_by_name_cluster_ip_and_load_balancer") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let images_dir = work.path().join("images");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime
        .block_on(busybox_in_store(work.path(), &images_dir, "busybox:test"))
        .unwrap();
    let mut server = Server::start_with(&["--images-dir", images_dir.to_str().unwrap()]);
    let k = server.kubectl("1.33");
    let manifest = write_file(work.path(), "web.yaml", MANIFEST);
    k.ok(&["apply", "-f", manifest.to_str().unwrap()]);
    k.ok(&[
        "rollout",
        "status",
        "deployment/web",
        "-n",
        "svc-demo",
        "--timeout=120s",
    ]);
    let web_pods = k.ok(&[
        "get",
        "pods",
        "-n",
        "svc-demo",
        "-l",
        "app=web",
        "-o",
        "jsonpath={.items[*].metadata.name}",
    ]);
    let cluster_ip = k.ok(&[
        "get",
        "service",
        "web",
        "-n",
        "svc-demo",
        "-o",
        "jsonpath={.spec.clusterIP}",
    ]);

    // A pod outside every profile runs on the node group's node; pods on Fargate nodes
    // reach it by its IP.
    k.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/plain",
        "-n",
        "on-group",
        "--timeout=120s",
    ]);
    let plain = k.json(&["get", "pod", "plain", "-n", "on-group"]);
    let plain_ip = plain["status"]["podIP"].as_str().unwrap().to_string();
    let plain_node = plain["spec"]["nodeName"].as_str().unwrap();
    let node = k.json(&["get", "node", plain_node]);
    assert_eq!(
        node["metadata"]["labels"]["alpha.eksctl.io/nodegroup-name"], "ng",
        "{node}"
    );
    // The short name goes through the pod's search list (svc-demo.svc.cluster.local first);
    // the fully qualified name and the bare cluster IP work too.
    for (pod, host) in [
        ("by-name", "web"),
        ("by-fqdn", "web.svc-demo.svc.cluster.local"),
        ("by-ip", cluster_ip.as_str()),
        ("by-pod-ip", plain_ip.as_str()),
    ] {
        let file = write_file(work.path(), &format!("{pod}.yaml"), &client_pod(pod, host));
        k.ok(&["apply", "-f", file.to_str().unwrap()]);
        let log = eventually(
            &format!("pod {pod} to answer"),
            Duration::from_secs(120),
            || {
                let log = k.run(&["logs", pod, "-n", "svc-demo"]).stdout;
                (log.contains("answer:") || log.contains("failed")).then_some(log)
            },
        );
        let answer = log
            .strip_prefix("answer:")
            .unwrap_or_else(|| panic!("{pod} fetching from {host}:\n{log}"));
        let answered_by = answer.trim();
        let expected: Vec<&str> = if pod == "by-pod-ip" {
            vec!["plain"]
        } else {
            web_pods.split_whitespace().collect()
        };
        assert!(
            expected.contains(&answered_by),
            "{pod}: {answered_by:?} is not one of {expected:?}"
        );
        let client = k.json(&["get", "pod", pod, "-n", "svc-demo"]);
        let node = client["spec"]["nodeName"].as_str().unwrap();
        assert!(node.starts_with("fargate-"), "{pod} runs on {node}");
    }

    // The load balancer's external IP spreads requests over the ready pods, and never sends
    // one to the pod that is not ready.
    let port = common::free_port();
    let lb = write_file(work.path(), "lb.yaml", &load_balancer(port));
    k.ok(&["apply", "-f", lb.to_str().unwrap()]);
    let external_ip = eventually("the external IP", Duration::from_secs(60), || {
        let ip = k.ok(&[
            "get",
            "service",
            "web-lb",
            "-n",
            "svc-demo",
            "-o",
            "jsonpath={.status.loadBalancer.ingress[0].ip}",
        ]);
        (!ip.is_empty()).then_some(ip)
    });
    let address = format!("{external_ip}:{port}");
    eventually(
        "the load balancer to answer",
        Duration::from_secs(60),
        || fetch(&address),
    );
    let mut answered: Vec<String> = (0..20).filter_map(|_| fetch(&address)).collect();
    assert_eq!(
        answered.len(),
        20,
        "every request through the load balancer is answered"
    );
    answered.sort();
    answered.dedup();
    let mut expected: Vec<String> = web_pods.split_whitespace().map(String::from).collect();
    expected.sort();
    assert_eq!(
        answered, expected,
        "requests reach each ready pod and only those"
    );

    let network: serde_json::Value =
        serde_json::from_slice(&std::fs::read(server.dir.join("node/network.json")).unwrap())
            .unwrap();
    let bridge = network["bridge"].as_str().unwrap().to_string();
    assert!(bridge_addresses(&bridge).contains(&format!("{cluster_ip}/32")));
    k.ok(&["delete", "service", "web", "-n", "svc-demo"]);
    eventually(
        "the cluster IP to leave the bridge",
        Duration::from_secs(30),
        || (!bridge_addresses(&bridge).contains(&format!("{cluster_ip}/32"))).then_some(()),
    );

    server.stop();
    assert!(
        bridge_addresses(&bridge).is_empty(),
        "bridge {bridge} left behind"
    );
}
