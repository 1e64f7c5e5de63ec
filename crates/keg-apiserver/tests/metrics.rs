//! `/metrics` as a Prometheus scrape sees it: refused without credentials; with the admin
//! token, request latencies, scheduling latency, pod starts, and the cost series summed
//! from usage records.

mod common;

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use common::TestApi;
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

struct Server {
    router: Router,
    token: String,
    _api: TestApi,
}

impl Server {
    async fn start() -> Server {
        let api = TestApi::open().await;
        Server {
            router: api.server.router(),
            token: api.server.tokens.admin().to_owned(),
            _api: api,
        }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        token: bool,
    ) -> (StatusCode, String) {
        let mut request = Request::builder().method(method).uri(path);
        if token {
            request = request.header("Authorization", format!("Bearer {}", self.token));
        }
        let content_type = if path.ends_with("/status") {
            "application/merge-patch+json"
        } else {
            "application/json"
        };
        let request = request
            .header("Content-Type", content_type)
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
            .unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    async fn ok(&self, method: Method, path: &str, body: Value) {
        let (status, text) = self.call(method, path, Some(body), true).await;
        assert!(status.is_success(), "{path}: {status} {text}");
    }

    async fn metrics(&self) -> String {
        let (status, text) = self.call(Method::GET, "/metrics", None, true).await;
        assert_eq!(status, StatusCode::OK);
        text
    }
}

/// The value of the sample whose name and labels start with `series`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit_once(' '))
        .and_then(|(_, v)| v.parse().ok())
}

fn record(spec: Value) -> Value {
    let name = format!("pod-{}", spec["uid"].as_str().unwrap());
    json!({"apiVersion": "keg.dev/v1", "kind": "UsageRecord", "metadata": {"name": name}, "spec": spec})
}

#[tokio::test]
async fn metrics_need_credentials() {
    let server = Server::start().await;
    let (status, text) = server.call(Method::GET, "/metrics", None, false).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(text.contains("Unauthorized"), "{text}");
    assert!(!text.contains("keg_cost_dollars_total"));
    let text = server.metrics().await;
    for name in [
        "apiserver_request_duration_seconds",
        "apiserver_request_total",
        "scheduler_pod_scheduling_duration_seconds",
        "keg_pods_started_total",
        "keg_fargate_vcpu_seconds_total",
        "keg_fargate_gb_seconds_total",
        "keg_nodegroup_instance_seconds_total",
        "keg_cost_dollars_total",
    ] {
        assert!(
            text.contains(&format!("# TYPE {name} ")),
            "{name} missing in:\n{text}"
        );
    }
}

#[tokio::test]
async fn metrics_count_requests_scheduling_starts_and_cost() {
    let server = Server::start().await;
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "db"},
        "spec": {"containers": [{"name": "app", "image": "app:1"}]}});
    server
        .ok(Method::POST, "/api/v1/namespaces/default/pods", pod)
        .await;
    let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "db"},
        "target": {"kind": "Node", "name": "ip-1"}});
    server
        .ok(
            Method::POST,
            "/api/v1/namespaces/default/pods/db/binding",
            binding,
        )
        .await;
    let running = json!({"status": {"phase": "Running"}});
    server
        .ok(
            Method::PATCH,
            "/api/v1/namespaces/default/pods/db/status",
            running,
        )
        .await;
    // A Fargate pod's ten seconds (billed one minute) and a node's hour.
    let fargate = json!({"subject": "Pod", "compute": "fargate", "region": "us-east-1",
        "namespace": "tb-demo", "name": "web", "uid": "u1", "profile": "fp-demo",
        "capacity": "0.25vCPU 0.5GB", "cpuMillis": 250, "memoryMib": 512,
        "hourlyRate": 0.0123425, "start": "2025-01-01T00:00:00Z", "end": "2025-01-01T00:00:10Z"});
    let node = json!({"subject": "Node", "compute": "nodegroup", "region": "us-east-1",
        "name": "ip-1", "uid": "u2", "nodeGroup": "ng-1", "instanceType": "t3.medium",
        "hourlyRate": 0.0416, "start": "2025-01-01T00:00:00Z", "end": "2025-01-01T01:00:00Z"});
    for spec in [fargate, node] {
        server
            .ok(Method::POST, "/apis/keg.dev/v1/usagerecords", record(spec))
            .await;
    }

    // The pod observer follows the store's stream; give it a generous while.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let text = loop {
        let text = server.metrics().await;
        if sample(&text, "keg_pods_started_total{").is_some()
            || tokio::time::Instant::now() > deadline
        {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let created = "apiserver_request_duration_seconds_count{verb=\"POST\",group=\"\",\
        version=\"v1\",resource=\"pods\",subresource=\"\",scope=\"namespace\"}";
    assert_eq!(sample(&text, created), Some(1.0), "{text}");
    let bound = "apiserver_request_total{verb=\"POST\",group=\"\",version=\"v1\",\
        resource=\"pods\",subresource=\"binding\",scope=\"resource\",code=\"201\"}";
    assert_eq!(sample(&text, bound), Some(1.0), "{text}");
    let scheduled =
        "scheduler_pod_scheduling_duration_seconds_count{scheduler=\"default-scheduler\"}";
    assert_eq!(sample(&text, scheduled), Some(1.0), "{text}");
    assert_eq!(
        sample(&text, "keg_pods_started_total{compute=\"nodegroup\"}"),
        Some(1.0)
    );
    let fargate = "{namespace=\"tb-demo\",profile=\"fp-demo\"}";
    assert_eq!(
        sample(&text, &format!("keg_fargate_vcpu_seconds_total{fargate}")),
        Some(15.0)
    );
    assert_eq!(
        sample(&text, &format!("keg_fargate_gb_seconds_total{fargate}")),
        Some(30.0)
    );
    let instance =
        "keg_nodegroup_instance_seconds_total{nodegroup=\"ng-1\",instance_type=\"t3.medium\"}";
    assert_eq!(sample(&text, instance), Some(3600.0));
    let cost = |labels: &str| sample(&text, &format!("keg_cost_dollars_total{{{labels}")).unwrap();
    let pod_cost =
        cost("namespace=\"tb-demo\",profile=\"fp-demo\",nodegroup=\"\",compute=\"fargate\"}");
    assert!((pod_cost - 0.0123425 / 60.0).abs() < 1e-12, "{pod_cost}");
    let node_cost = cost("namespace=\"\",profile=\"\",nodegroup=\"ng-1\",compute=\"nodegroup\"}");
    assert!((node_cost - 0.0416).abs() < 1e-12, "{node_cost}");
}
