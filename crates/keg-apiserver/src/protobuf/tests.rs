//! Bodies encoded by k8s-pb's prost types (generated from Kubernetes' `generated.proto`, a
//! source independent of keg's table) must read as the JSON a JSON client sends.
//!
//! Go writes every non-pointer field, zero or not; prost writes only what is `Some`. So the
//! helpers set zero values where Go would write them, to test that they are left out.

use k8s_pb::api::apps::v1 as apps;
use k8s_pb::api::core::v1 as core;
use k8s_pb::apimachinery::pkg::api::resource::Quantity;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
use prost::Message;
use serde_json::{Value, json};

use super::{Error, decode};
use crate::error::ApiError;

/// A body as client-go's protobuf serializer writes it.
fn body(api_version: &str, kind: &str, object: &impl Message) -> Vec<u8> {
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: Some(api_version.into()),
            kind: Some(kind.into()),
        }),
        raw: Some(object.encode_to_vec()),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    [b"k8s\0".as_slice(), &unknown.encode_to_vec()].concat()
}

fn s(text: &str) -> Option<String> {
    Some(text.into())
}

/// ObjectMeta as Go writes it: every non-pointer field, the zero time as an empty message.
fn go_meta(name: &str, namespace: &str) -> meta::ObjectMeta {
    meta::ObjectMeta {
        name: s(name),
        generate_name: s(""),
        namespace: s(namespace),
        self_link: s(""),
        uid: s(""),
        resource_version: s(""),
        generation: Some(0),
        creation_timestamp: Some(meta::Time::default()),
        ..Default::default()
    }
}

fn quantity(q: &str) -> Quantity {
    Quantity { string: s(q) }
}

#[test]
fn namespace() {
    let ns = core::Namespace {
        metadata: Some(go_meta("x", "")),
        spec: Some(core::NamespaceSpec::default()),
        status: Some(core::NamespaceStatus {
            phase: s(""),
            ..Default::default()
        }),
    };
    let value = decode(&body("v1", "Namespace", &ns)).unwrap();
    // What kubectl create namespace x sends as JSON.
    let want = json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "x", "creationTimestamp": null},
        "spec": {}, "status": {},
    });
    assert_eq!(value, want);
}

fn probe() -> core::Probe {
    core::Probe {
        handler: Some(core::ProbeHandler {
            http_get: Some(core::HttpGetAction {
                path: s("/healthz"),
                port: Some(IntOrString {
                    r#type: Some(0),
                    int_val: Some(8080),
                    str_val: s(""),
                }),
                host: s(""),
                scheme: s("HTTP"),
                ..Default::default()
            }),
            ..Default::default()
        }),
        initial_delay_seconds: Some(0),
        timeout_seconds: Some(1),
        period_seconds: Some(10),
        success_threshold: Some(0),
        failure_threshold: Some(3),
        termination_grace_period_seconds: None,
    }
}

fn container() -> core::Container {
    core::Container {
        name: s("nginx"),
        image: s("nginx"),
        working_dir: s(""),
        ports: vec![core::ContainerPort {
            name: s("http"),
            host_port: Some(0),
            container_port: Some(80),
            protocol: s("TCP"),
            host_ip: s(""),
        }],
        resources: Some(core::ResourceRequirements {
            limits: [("memory".to_string(), quantity("128Mi"))].into(),
            requests: [("cpu".to_string(), quantity("250m"))].into(),
            claims: vec![],
        }),
        liveness_probe: Some(probe()),
        readiness_probe: Some(core::Probe {
            handler: Some(core::ProbeHandler {
                tcp_socket: Some(core::TcpSocketAction {
                    port: Some(IntOrString {
                        r#type: Some(1),
                        int_val: Some(0),
                        str_val: s("http"),
                    }),
                    host: s(""),
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        termination_message_path: s(""),
        image_pull_policy: s(""),
        stdin: Some(false),
        stdin_once: Some(false),
        tty: Some(false),
        termination_message_policy: s(""),
        ..Default::default()
    }
}

#[test]
fn deployment_with_resources_and_probes() {
    let deployment = apps::Deployment {
        metadata: Some(meta::ObjectMeta {
            labels: [("app".to_string(), "web".to_string())].into(),
            ..go_meta("web", "default")
        }),
        spec: Some(apps::DeploymentSpec {
            replicas: Some(2),
            selector: Some(meta::LabelSelector {
                match_labels: [("app".to_string(), "web".to_string())].into(),
                match_expressions: vec![],
            }),
            template: Some(core::PodTemplateSpec {
                metadata: Some(meta::ObjectMeta {
                    labels: [("app".to_string(), "web".to_string())].into(),
                    ..go_meta("", "")
                }),
                spec: Some(core::PodSpec {
                    containers: vec![container()],
                    restart_policy: s(""),
                    dns_policy: s(""),
                    service_account_name: s(""),
                    host_network: Some(false),
                    ..Default::default()
                }),
            }),
            strategy: Some(apps::DeploymentStrategy {
                r#type: s(""),
                rolling_update: None,
            }),
            min_ready_seconds: Some(0),
            paused: Some(false),
            ..Default::default()
        }),
        status: Some(apps::DeploymentStatus {
            observed_generation: Some(0),
            replicas: Some(0),
            ..Default::default()
        }),
    };
    let value = decode(&body("apps/v1", "Deployment", &deployment)).unwrap();
    let probe = json!({
        "httpGet": {"path": "/healthz", "port": 8080, "scheme": "HTTP"},
        "timeoutSeconds": 1, "periodSeconds": 10, "failureThreshold": 3,
    });
    let want = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {
            "name": "web", "namespace": "default", "labels": {"app": "web"},
            "creationTimestamp": null,
        },
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}, "creationTimestamp": null},
                "spec": {"containers": [{
                    "name": "nginx", "image": "nginx",
                    "ports": [{"name": "http", "containerPort": 80, "protocol": "TCP"}],
                    "resources": {"limits": {"memory": "128Mi"}, "requests": {"cpu": "250m"}},
                    "livenessProbe": probe,
                    "readinessProbe": {"tcpSocket": {"port": "http"}},
                }]},
            },
            "strategy": {},
        },
        "status": {},
    });
    assert_eq!(value, want);
    // The JSON is of the kind's type, as the JSON path checks it.
    let typed: k8s_openapi::api::apps::v1::Deployment = serde_json::from_value(value).unwrap();
    assert_eq!(typed.spec.unwrap().replicas, Some(2));
}

#[test]
fn secret_bytes_are_base64() {
    let secret = core::Secret {
        metadata: Some(go_meta("s", "default")),
        immutable: None,
        data: [("a".to_string(), b"b".to_vec()), ("e".to_string(), vec![])].into(),
        string_data: Default::default(),
        r#type: s("Opaque"),
    };
    let value = decode(&body("v1", "Secret", &secret)).unwrap();
    assert_eq!(value["data"], json!({"a": "Yg==", "e": ""}));
    assert_eq!(value["type"], json!("Opaque"));
    assert!(value.get("immutable").is_none());
    let config_map = core::ConfigMap {
        metadata: Some(go_meta("c", "default")),
        data: [("k".to_string(), "v".to_string())].into(),
        binary_data: [("bin".to_string(), vec![0, 255])].into(),
        immutable: Some(false),
    };
    let value = decode(&body("v1", "ConfigMap", &config_map)).unwrap();
    assert_eq!(value["data"], json!({"k": "v"}));
    assert_eq!(value["binaryData"], json!({"bin": "AP8="}));
    // immutable is a pointer in Go: an explicit false stays.
    assert_eq!(value["immutable"], json!(false));
}

#[test]
fn event_times() {
    let event = core::Event {
        metadata: Some(go_meta("e.1", "default")),
        involved_object: Some(core::ObjectReference {
            kind: s("Pod"),
            name: s("p"),
            namespace: s("default"),
            ..Default::default()
        }),
        reason: s("Started"),
        message: s("Started container"),
        source: Some(core::EventSource {
            component: s("kubelet"),
            host: s(""),
        }),
        first_timestamp: Some(meta::Time {
            seconds: Some(1_704_067_200),
            nanos: Some(0),
        }),
        last_timestamp: Some(meta::Time {
            seconds: Some(1_704_067_261),
            nanos: Some(500_000_000),
        }),
        count: Some(2),
        r#type: s("Normal"),
        event_time: Some(meta::MicroTime {
            seconds: Some(1_704_067_200),
            nanos: Some(123_456_789),
        }),
        reporting_component: s(""),
        reporting_instance: s(""),
        ..Default::default()
    };
    let value = decode(&body("v1", "Event", &event)).unwrap();
    assert_eq!(value["firstTimestamp"], json!("2024-01-01T00:00:00Z"));
    assert_eq!(value["lastTimestamp"], json!("2024-01-01T00:01:01Z"));
    assert_eq!(value["eventTime"], json!("2024-01-01T00:00:00.123456Z"));
    assert_eq!(value["count"], json!(2));
    // reportingComponent has no omitempty in Go: its empty value is in the JSON too.
    assert_eq!(value["reportingComponent"], json!(""));
    assert_eq!(value["source"], json!({"component": "kubelet"}));
    let typed: k8s_openapi::api::core::v1::Event = serde_json::from_value(value).unwrap();
    assert_eq!(typed.count, Some(2));
}

#[test]
fn delete_options_keep_pointer_zeros() {
    let options = meta::DeleteOptions {
        grace_period_seconds: Some(0),
        propagation_policy: s("Foreground"),
        preconditions: Some(meta::Preconditions {
            uid: s("u-1"),
            resource_version: None,
        }),
        ..Default::default()
    };
    let value = decode(&body("meta.k8s.io/v1", "DeleteOptions", &options)).unwrap();
    let want = json!({
        "apiVersion": "meta.k8s.io/v1", "kind": "DeleteOptions",
        "gracePeriodSeconds": 0, "propagationPolicy": "Foreground",
        "preconditions": {"uid": "u-1"},
    });
    assert_eq!(value, want);
    // Every group version serves DeleteOptions.
    let value = decode(&body("v1", "DeleteOptions", &options)).unwrap();
    assert_eq!(value["gracePeriodSeconds"], json!(0));
}

#[test]
fn inlined_volume_sources() {
    let pod = core::Pod {
        metadata: Some(go_meta("p", "default")),
        spec: Some(core::PodSpec {
            volumes: vec![core::Volume {
                name: s("data"),
                volume_source: Some(core::VolumeSource {
                    empty_dir: Some(core::EmptyDirVolumeSource {
                        medium: s(""),
                        size_limit: Some(quantity("1Gi")),
                    }),
                    ..Default::default()
                }),
            }],
            ..Default::default()
        }),
        status: None,
    };
    let value = decode(&body("v1", "Pod", &pod)).unwrap();
    let want = json!([{"name": "data", "emptyDir": {"sizeLimit": "1Gi"}}]);
    assert_eq!(value["spec"]["volumes"], want);
}

#[test]
fn a_custom_resource_is_unsupported() {
    let object = core::Namespace::default();
    let err = decode(&body("keg.dev/v1", "FargateProfile", &object)).unwrap_err();
    assert!(matches!(err, Error::UnknownKind { .. }), "{err}");
    let err = ApiError::from(err);
    assert_eq!((err.code, err.reason), (415, "UnsupportedMediaType"));
    assert_eq!(
        err.message,
        "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml"
    );
}

fn bad_request(body: &[u8]) -> String {
    let err = ApiError::from(decode(body).unwrap_err());
    assert_eq!(
        (err.code, err.reason),
        (400, "BadRequest"),
        "{}",
        err.message
    );
    err.message
}

#[test]
fn malformed_bodies_are_bad_requests_naming_the_fault() {
    let message = bad_request(b"{\"kind\": \"Namespace\"}");
    assert!(
        message.contains("expected prefix [107 56 115 0]"),
        "{message}"
    );
    let good = body("v1", "Namespace", &core::Namespace::default());
    // The envelope ends with contentType, an empty string: its length is cut off.
    let message = bad_request(&good[..good.len() - 1]);
    assert!(
        message.ends_with("runtime.Unknown: truncated varint"),
        "{message}"
    );
    // Its raw object (before contentEncoding and contentType, 4 bytes) loses a byte.
    let named = core::Namespace {
        metadata: Some(go_meta("x", "")),
        ..Default::default()
    };
    let named = body("v1", "Namespace", &named);
    let message = bad_request(&named[..named.len() - 5]);
    assert!(
        message.ends_with("runtime.Unknown: length-delimited field runs past the end"),
        "{message}"
    );
    // A Namespace whose metadata (field 1) is a varint.
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: s("v1"),
            kind: s("Namespace"),
        }),
        raw: Some(vec![0x08, 0x01]),
        ..Default::default()
    };
    let broken = [b"k8s\0".as_slice(), &unknown.encode_to_vec()].concat();
    let message = bad_request(&broken);
    assert!(
        message.contains("core/v1.Namespace: metadata: varint value"),
        "{message}"
    );
    let no_kind = Unknown {
        raw: Some(vec![]),
        ..Default::default()
    };
    let message = bad_request(&[b"k8s\0".as_slice(), &no_kind.encode_to_vec()].concat());
    assert!(message.contains("Object 'Kind' is missing"), "{message}");
}

#[test]
fn a_raw_extension_holds_json() {
    let revision = apps::ControllerRevision {
        metadata: Some(go_meta("r", "default")),
        data: Some(k8s_pb::apimachinery::pkg::runtime::RawExtension {
            raw: Some(br#"{"spec":{"x":1}}"#.to_vec()),
        }),
        revision: Some(3),
    };
    let value: Value = decode(&body("apps/v1", "ControllerRevision", &revision)).unwrap();
    assert_eq!(value["data"], json!({"spec": {"x": 1}}));
    assert_eq!(value["revision"], json!(3));
}

/// Bodies as kubectl 1.33 sent them (from its `-v=8` log).
#[test]
fn bodies_captured_from_kubectl() {
    // kubectl create namespace surv
    let namespace = [
        0x6b, 0x38, 0x73, 0x00, 0x0a, 0x0f, 0x0a, 0x02, 0x76, 0x31, 0x12, 0x09, 0x4e, 0x61, 0x6d,
        0x65, 0x73, 0x70, 0x61, 0x63, 0x65, 0x12, 0x1c, 0x0a, 0x14, 0x0a, 0x04, 0x73, 0x75, 0x72,
        0x76, 0x12, 0x00, 0x1a, 0x00, 0x22, 0x00, 0x2a, 0x00, 0x32, 0x00, 0x38, 0x00, 0x42, 0x00,
        0x12, 0x00, 0x1a, 0x02, 0x0a, 0x00, 0x1a, 0x00, 0x22, 0x00,
    ];
    let want = json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "surv", "creationTimestamp": null}, "spec": {}, "status": {},
    });
    assert_eq!(decode(&namespace).unwrap(), want);
    // kubectl drain --grace-period=0, deleting a pod
    let mut delete_options = b"k8s\0\x0a\x13\x0a\x02v1\x12\x0dDeleteOptions".to_vec();
    delete_options.extend([0x12, 0x02, 0x08, 0x00, 0x1a, 0x00, 0x22, 0x00]);
    let want = json!({"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0});
    assert_eq!(decode(&delete_options).unwrap(), want);
}
