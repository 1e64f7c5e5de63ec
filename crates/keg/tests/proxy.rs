//! `pods/proxy` and `services/proxy` end to end with kubectl 1.27 and 1.33 and real pods: the
//! API server forwards `kubectl get --raw .../proxy/PATH` to what the pod serves, by port
//! number, container port name or the first declared port, and to a ready endpoint of a
//! service by port number or (with a scheme) port name; other methods reach the pod with
//! their query and body but without the client's credentials; errors read as upstream's
//! (no endpoints, no such service port, a pod without an address, nodes/proxy); discovery
//! lists the subresources, and a user whose role lacks `pods/proxy` is refused.

mod common;

use std::time::Duration;

use common::{KUBECTL_VERSIONS, Kubectl, PodServer, eventually, write_file};

const MANIFEST: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: web, labels: {app: web}}
spec:
  containers:
  - name: httpd
    image: busybox:test
    command:
    - sh
    - -c
    - |
      mkdir -p /www/sub /www/cgi-bin /alt
      echo hello from web > /www/index.html
      echo a page > /www/sub/page.txt
      echo hello from alt > /alt/index.html
      printf '#!/bin/sh\necho "Content-Type: text/plain"\necho\necho "$REQUEST_METHOD $QUERY_STRING auth=[$HTTP_AUTHORIZATION]"\nhead -c "${CONTENT_LENGTH:-0}"\n' > /www/cgi-bin/echo
      chmod +x /www/cgi-bin/echo
      httpd -p 8081 -h /alt
      exec httpd -f -p 8080 -h /www
    ports:
    - {name: http, containerPort: 8080}
    - {name: alt, containerPort: 8081}
    readinessProbe:
      tcpSocket: {port: http}
      periodSeconds: 1
---
apiVersion: v1
kind: Pod
metadata: {name: unready, labels: {app: unready}}
spec:
  containers:
  - name: httpd
    image: busybox:test
    command: ["sh", "-c", "mkdir -p /www && echo unready > /www/index.html && exec httpd -f -p 8080 -h /www"]
    readinessProbe:
      exec: {command: ["false"]}
      periodSeconds: 1
---
# Never scheduled: it has no address to proxy to.
apiVersion: v1
kind: Pod
metadata: {name: nowhere}
spec:
  nodeSelector: {no-such-label: "true"}
  containers:
  - {name: main, image: busybox:test, command: ["sleep", "3600"]}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: http}
  - {name: alt, port: 81, targetPort: alt}
---
apiVersion: v1
kind: Service
metadata: {name: unready}
spec:
  selector: {app: unready}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: lonely}
spec:
  selector: {app: nobody}
  ports: [{port: 80}]
"#;

/// `kubectl get --raw <path>` of the default namespace's `rest`.
fn raw(k: &Kubectl, rest: &str) -> String {
    k.ok(&[
        "get",
        "--raw",
        &format!("/api/v1/namespaces/default/{rest}"),
    ])
}

/// The error kubectl printed for `kubectl get --raw <path>`.
fn raw_error(k: &Kubectl, rest: &str) -> String {
    k.fails(&[
        "get",
        "--raw",
        &format!("/api/v1/namespaces/default/{rest}"),
    ])
}

#[test]
fn pods_and_services_are_reached_through_the_proxy_subresources() {
    let Some(server) = PodServer::start(
        "pods_and_services_are_reached_through_the_proxy_subresources",
        &[],
    ) else {
        return;
    };
    server.node_group("ng", "t3.small", 1, 1);
    let work = tempfile::tempdir().unwrap();
    let admin = server.kubectl("1.33");
    let manifest = write_file(work.path(), "proxy.yaml", MANIFEST);
    admin.ok(&["apply", "-f", manifest.to_str().unwrap()]);
    admin.ok(&["wait", "--for=condition=Ready", "pod/web", "--timeout=120s"]);
    // The unready pod runs, but is listed only among the service's not-ready addresses.
    eventually(
        "the unready pod among the not-ready addresses",
        Duration::from_secs(120),
        || {
            let eps = admin.json(&["get", "endpoints", "unready"]);
            eps["subsets"][0]["notReadyAddresses"][0]["ip"]
                .is_string()
                .then_some(())
        },
    );
    eventually(
        "the web service's endpoints",
        Duration::from_secs(60),
        || {
            let eps = admin.json(&["get", "endpoints", "web"]);
            eps["subsets"][0]["addresses"][0]["ip"]
                .is_string()
                .then_some(())
        },
    );

    for version in KUBECTL_VERSIONS {
        let k = server.kubectl(version);
        for (path, served) in [
            // A pod by port number, by container port name, and by its first declared port.
            ("pods/web:8080/proxy/", "hello from web\n"),
            ("pods/web:8080/proxy/sub/page.txt", "a page\n"),
            ("pods/web:8081/proxy/", "hello from alt\n"),
            ("pods/web:alt/proxy/", "hello from alt\n"),
            ("pods/http:web:alt/proxy/", "hello from alt\n"),
            ("pods/web/proxy/", "hello from web\n"),
            // `.../proxy` is redirected to `.../proxy/`, which kubectl follows.
            ("pods/web:8080/proxy", "hello from web\n"),
            // A service by port number (to its target port's name) and by scheme and port
            // name.
            ("services/web:80/proxy/", "hello from web\n"),
            ("services/web:http/proxy/sub/page.txt", "a page\n"),
            ("services/http:web:alt/proxy/", "hello from alt\n"),
            ("services/web:81/proxy/", "hello from alt\n"),
        ] {
            assert_eq!(raw(&k, path), served, "{version}: {path}");
        }
        // The pod's own answers come back as they are: a 404 of busybox httpd.
        let missing = raw_error(&k, "pods/web:8080/proxy/not-there");
        assert!(
            missing.contains("NotFound") || missing.contains("404"),
            "{version}: {missing}"
        );

        // Other methods and the query reach the pod; the credentials do not. (kubectl streams
        // the body without a length, which busybox httpd does not read: curl sends it below.)
        let body = write_file(work.path(), "body.txt", "a posted body");
        let posted = k.ok(&[
            "create",
            "--raw",
            "/api/v1/namespaces/default/pods/web:8080/proxy/cgi-bin/echo?a=1&b=two",
            "-f",
            body.to_str().unwrap(),
        ]);
        assert!(
            posted.starts_with("POST a=1&b=two auth=[]\n"),
            "{version}: {posted}"
        );
        let deleted = k.ok(&[
            "delete",
            "--raw",
            "/api/v1/namespaces/default/services/web:80/proxy/cgi-bin/echo?gone=yes",
        ]);
        assert!(
            deleted.starts_with("DELETE gone=yes auth=[]"),
            "{version}: {deleted}"
        );

        // Upstream's errors.
        let err = raw_error(&k, "services/lonely/proxy/");
        assert!(
            err.contains("ServiceUnavailable")
                && err.contains(r#"no endpoints available for service "lonely""#),
            "{version}: {err}"
        );
        let err = raw_error(&k, "services/unready:80/proxy/");
        assert!(
            err.contains(r#"no endpoints available for service "unready:80""#),
            "{version}: {err}"
        );
        let err = raw_error(&k, "services/web:82/proxy/");
        assert!(
            err.contains(r#"no service port 82 found for service "web""#),
            "{version}: {err}"
        );
        let err = raw_error(&k, "pods/nowhere/proxy/");
        assert!(
            err.contains("BadRequest") && err.contains("address not allowed"),
            "{version}: {err}"
        );
        let err = raw_error(&k, "pods/ghost:80/proxy/");
        assert!(
            err.contains(r#"pods "ghost" not found"#),
            "{version}: {err}"
        );
        let err = raw_error(&k, "pods/ftp:web:21/proxy/");
        assert!(
            err.contains(r#"invalid pod request "ftp:web:21""#),
            "{version}: {err}"
        );
        let err = raw_error(&k, "pods/web:9999/proxy/");
        assert!(
            err.contains("error trying to reach service: dial tcp")
                && err.contains(":9999: connect: connection refused"),
            "{version}: {err}"
        );
    }

    // A body of known length reaches the pod whole, over HTTP/1.1 too; the bearer token
    // that authenticated the request stays behind.
    let out = std::process::Command::new("curl")
        .args(["-s", "--http1.1", "--cacert"])
        .arg(server.dir.join("ca.crt"))
        .args(["-H", &format!("Authorization: Bearer {}", server.token())])
        .args(["--data-binary", "a posted body"])
        .arg(format!(
            "{}/api/v1/namespaces/default/services/web:http/proxy/cgi-bin/echo?x=%2F",
            server.url()
        ))
        .output()
        .expect("curl runs");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "POST x=%2F auth=[]\na posted body"
    );

    // Discovery lists the subresources; nodes/proxy says why it is not served.
    let core: serde_json::Value =
        serde_json::from_str(&admin.ok(&["get", "--raw", "/api/v1"])).unwrap();
    let names: Vec<&str> = core["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    for sub in ["pods/proxy", "services/proxy", "nodes/proxy"] {
        assert!(names.contains(&sub), "{sub} in {names:?}");
    }
    let node = admin.ok(&["get", "pod", "web", "-o", "jsonpath={.spec.nodeName}"]);
    let err = admin.fails(&[
        "get",
        "--raw",
        &format!("/api/v1/nodes/{node}/proxy/metrics"),
    ]);
    assert!(
        err.contains("ServiceUnavailable") && err.contains("no kubelet API"),
        "{err}"
    );

    // A viewer may read pods but not proxy to them, until a role grants pods/proxy.
    let alice = server.user_kubeconfig("alice", &[]);
    admin.ok(&[
        "create",
        "rolebinding",
        "alice-view",
        "--clusterrole=view",
        "--user=alice",
    ]);
    for version in KUBECTL_VERSIONS {
        let k = server.kubectl(version).with_kubeconfig(&alice);
        k.ok(&["get", "pod", "web"]);
        let err = raw_error(&k, "pods/web:8080/proxy/");
        assert!(
            err.contains("Forbidden")
                && err.contains(r#"User "alice" cannot get resource "pods/proxy" in API group "" in the namespace "default""#),
            "{version}: {err}"
        );
        let err = raw_error(&k, "services/web:80/proxy/");
        assert!(
            err.contains(r#"cannot get resource "services/proxy""#),
            "{version}: {err}"
        );
    }
    admin.ok(&[
        "create",
        "role",
        "proxier",
        "--verb=get",
        "--resource=pods/proxy",
    ]);
    admin.ok(&[
        "create",
        "rolebinding",
        "alice-proxier",
        "--role=proxier",
        "--user=alice",
    ]);
    let k = server.kubectl("1.33").with_kubeconfig(&alice);
    assert_eq!(
        eventually("alice's pods/proxy grant", Duration::from_secs(10), || {
            let run = k.run(&[
                "get",
                "--raw",
                "/api/v1/namespaces/default/pods/web:8080/proxy/",
            ]);
            run.status.success().then_some(run.stdout)
        }),
        "hello from web\n"
    );
    // get is not create: the grant is per verb.
    let body = write_file(work.path(), "body.txt", "x");
    let err = k.fails(&[
        "create",
        "--raw",
        "/api/v1/namespaces/default/pods/web:8080/proxy/cgi-bin/echo",
        "-f",
        body.to_str().unwrap(),
    ]);
    assert!(
        err.contains(r#"cannot create resource "pods/proxy""#),
        "{err}"
    );
}
