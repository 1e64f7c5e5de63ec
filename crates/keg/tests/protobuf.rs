//! kubectl 1.32 and 1.33 send the bodies of typed commands (`create namespace`, `create
//! deployment`, drain's pod deletions, ...) as Kubernetes protobuf. Each object they create
//! must be what kubectl 1.31, which sends JSON, creates from the same command.

mod common;

use std::process::Command;

use common::{Kubectl, Server};
use serde_json::{Value, json};

/// kubectl versions that send protobuf, and the newest that sends JSON.
const PROTOBUF_KUBECTLS: [&str; 2] = ["1.32", "1.33"];
const JSON_KUBECTL: &str = "1.31";

/// An object as stored, less what the server and controllers assign (and the namespace), so
/// that objects created through the two encodings compare equal.
fn comparable(mut object: Value) -> Value {
    let meta = object["metadata"].as_object_mut().unwrap();
    for assigned in [
        "uid",
        "resourceVersion",
        "creationTimestamp",
        "namespace",
        "managedFields",
        "generation",
        "annotations",
    ] {
        meta.remove(assigned);
    }
    object.as_object_mut().unwrap().remove("status");
    if let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) {
        spec.remove("clusterIP");
        spec.remove("clusterIPs");
    }
    object
}

/// Runs a `create` command in a namespace with kubectl `version` and returns the object.
fn create(kubectl: &Kubectl, ns: &str, args: &[&str], get: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["-n", ns]);
    kubectl.ok(&all);
    let mut get = get.to_vec();
    get.extend(["-n", ns]);
    kubectl.json(&get)
}

/// Creates the same objects with a protobuf kubectl and with the JSON one; they must match.
fn same_as_json(server: &Server, version: &str, args: &[&str], get: &[&str]) -> Value {
    let tag = version.replace('.', "");
    let (pb_ns, json_ns) = (format!("pb{tag}"), format!("json{tag}"));
    let from_pb = create(&server.kubectl(version), &pb_ns, args, get);
    let from_json = create(&server.kubectl(JSON_KUBECTL), &json_ns, args, get);
    assert_eq!(
        comparable(from_pb.clone()),
        comparable(from_json),
        "kubectl {version} {args:?}"
    );
    from_pb
}

#[test]
fn typed_commands_of_protobuf_kubectls() {
    let server = Server::start();
    for version in PROTOBUF_KUBECTLS {
        let kubectl = server.kubectl(version);
        let tag = version.replace('.', "");
        for ns in [format!("pb{tag}"), format!("json{tag}")] {
            let maker = if ns.starts_with("pb") {
                version
            } else {
                JSON_KUBECTL
            };
            server.kubectl(maker).ok(&["create", "namespace", &ns]);
            let created = kubectl.json(&["get", "namespace", &ns]);
            assert_eq!(created["metadata"]["name"], json!(ns));
            assert_eq!(created["status"]["phase"], json!("Active"));
        }

        let deployment = same_as_json(
            &server,
            version,
            &[
                "create",
                "deployment",
                "web",
                "--image=nginx",
                "--replicas=2",
            ],
            &["get", "deployment", "web"],
        );
        let spec = &deployment["spec"];
        assert_eq!(spec["replicas"], json!(2), "{deployment}");
        assert_eq!(spec["selector"]["matchLabels"], json!({"app": "web"}));
        let container = &spec["template"]["spec"]["containers"][0];
        assert_eq!(
            (&container["name"], &container["image"]),
            (&json!("nginx"), &json!("nginx"))
        );
        // Go writes empty strings for unset fields; they are left out so defaults apply.
        assert!(deployment["metadata"].get("generateName").is_none());
        assert_eq!(
            container["terminationMessagePath"],
            json!("/dev/termination-log")
        );

        let secret = same_as_json(
            &server,
            version,
            &["create", "secret", "generic", "s", "--from-literal=a=b"],
            &["get", "secret", "s"],
        );
        assert_eq!(secret["data"], json!({"a": "Yg=="}));
        assert_eq!(secret["type"], json!("Opaque"));

        let config_map = same_as_json(
            &server,
            version,
            &["create", "configmap", "c", "--from-literal=k=v"],
            &["get", "configmap", "c"],
        );
        assert_eq!(config_map["data"], json!({"k": "v"}));

        let service = same_as_json(
            &server,
            version,
            &["create", "service", "clusterip", "x", "--tcp=80:8080"],
            &["get", "service", "x"],
        );
        let port = &service["spec"]["ports"][0];
        assert_eq!(port["port"], json!(80));
        assert_eq!(port["targetPort"], json!(8080), "an int, not a string");

        same_as_json(
            &server,
            version,
            &["create", "serviceaccount", "sa"],
            &["get", "serviceaccount", "sa"],
        );
        same_as_json(
            &server,
            version,
            &["create", "quota", "q", "--hard=pods=10,requests.cpu=500m"],
            &["get", "resourcequota", "q"],
        );

        kubectl.ok(&["delete", "namespace", &format!("pb{tag}"), "--wait=false"]);
    }
}

/// `kubectl drain` deletes pods (keg serves no eviction) with DeleteOptions in protobuf; a
/// grace period of 0 must arrive, as there is no node agent here to finish a graceful one.
#[test]
fn drain_deletes_pods_with_protobuf_delete_options() {
    let server = Server::start();
    for version in PROTOBUF_KUBECTLS {
        let kubectl = server.kubectl(version);
        let node = format!("node{}", version.replace('.', ""));
        let objects = json!({"apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "v1", "kind": "Node", "metadata": {"name": node}},
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": format!("p-{node}"), "namespace": "default"},
             "spec": {"nodeName": node, "containers": [{"name": "c", "image": "nginx"}]}},
        ]});
        kubectl.ok_stdin(
            &["create", "--validate=false", "-f", "-"],
            &objects.to_string(),
        );
        kubectl.ok(&[
            "drain",
            &node,
            "--force",
            "--grace-period=0",
            "--timeout=30s",
        ]);
        let gone = kubectl.run(&["get", "pod", &format!("p-{node}")]);
        assert!(gone.stderr.contains("NotFound"), "{}", gone.stderr);
    }
}

/// A request with a raw body, through curl; returns (HTTP code, body).
fn post(server: &Server, path: &str, body: &[u8]) -> (u16, Value) {
    let file = server.dir.join("body.pb");
    std::fs::write(&file, body).unwrap();
    let out = Command::new("curl")
        .args(["-s", "-w", "\n%{http_code}", "--cacert"])
        .arg(server.dir.join("ca.crt"))
        .args(["-H", &format!("Authorization: Bearer {}", server.token())])
        .args(["-H", "Content-Type: application/vnd.kubernetes.protobuf"])
        .arg("--data-binary")
        .arg(format!("@{}", file.display()))
        .arg(format!("{}{path}", server.url()))
        .output()
        .expect("run curl");
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.parse().unwrap(), serde_json::from_str(body).unwrap())
}

/// A length-delimited protobuf field.
fn field(number: u8, bytes: &[u8]) -> Vec<u8> {
    assert!(bytes.len() < 128, "one-byte lengths only");
    [&[number << 3 | 2, bytes.len() as u8][..], bytes].concat()
}

/// `k8s\0` and a runtime.Unknown holding `raw` as an object of the given type.
fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
    let type_meta = [field(1, api_version.as_bytes()), field(2, kind.as_bytes())].concat();
    [b"k8s\0".to_vec(), field(1, &type_meta), field(2, raw)].concat()
}

#[test]
fn malformed_and_custom_resource_bodies() {
    let server = Server::start();
    // A Namespace whose metadata.name (field 1 of field 1) is cut short.
    let cut = envelope("v1", "Namespace", &[0x0a, 0x03, 0x0a, 0x05, b'a']);
    let (code, status) = post(&server, "/api/v1/namespaces", &cut);
    assert_eq!(code, 400, "{status}");
    assert_eq!(status["reason"], json!("BadRequest"));
    let message = status["message"].as_str().unwrap();
    assert!(
        message.contains("core/v1.Namespace: metadata: ") && message.contains("runs past the end"),
        "{message}"
    );

    let (code, status) = post(&server, "/api/v1/namespaces", b"not protobuf");
    assert_eq!(code, 400, "{status}");
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("expected prefix")
    );

    // A well-formed namespace goes through the same endpoint.
    let name = field(1, &field(1, b"raw-pb"));
    let (code, created) = post(
        &server,
        "/api/v1/namespaces",
        &envelope("v1", "Namespace", &name),
    );
    assert_eq!(code, 201, "{created}");
    assert_eq!(created["metadata"]["name"], json!("raw-pb"));

    // Custom resources have no protobuf form upstream either.
    let profile = envelope("keg.dev/v1", "FargateProfile", &field(1, &field(1, b"fp")));
    let (code, status) = post(&server, "/apis/keg.dev/v1/fargateprofiles", &profile);
    assert_eq!(code, 415, "{status}");
    assert_eq!(status["reason"], json!("UnsupportedMediaType"));
    assert_eq!(
        status["message"],
        json!(
            "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml"
        )
    );
}
