//! metrics.k8s.io/v1beta1 (the API metrics-server serves): PodMetrics and NodeMetrics,
//! computed at each request from what the node agents measure, never stored. A node's usage
//! is the sum of its pods' (each keg node is a share of this machine, not a machine).

use std::collections::HashMap;
use std::sync::Arc;

use axum::response::Response;
use http::Method;
use keg_apimachinery::labels::Selector;
use serde_json::{Value, json};

use crate::error::{ApiError, Result};
use crate::request::Query;
use crate::resources::Resource;
use crate::rest::json_response;
use crate::state::{ApiState, PodUsage};

const API_VERSION: &str = "metrics.k8s.io/v1beta1";

/// What the node agents measured, by pod uid.
pub(crate) fn usage_by_pod(state: &ApiState) -> HashMap<String, PodUsage> {
    let source = state.pod_usage.read().expect("not poisoned").clone();
    source
        .map(|s| s.pods())
        .unwrap_or_default()
        .into_iter()
        .map(|u| (u.uid.clone(), u))
        .collect()
}

/// GET of a list or one object of `pods` or `nodes` in metrics.k8s.io.
pub async fn serve(
    state: &Arc<ApiState>,
    res: &Resource,
    ns: Option<&str>,
    name: Option<&str>,
    method: &Method,
    query: &Query,
) -> Result<Response> {
    if method != Method::GET || query.flag("watch") {
        return Err(ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        ));
    }
    let usage = usage_by_pod(state);
    let selector = match query.get("labelSelector") {
        Some(text) if !text.is_empty() => {
            Some(Selector::parse(text).map_err(|e| ApiError::bad_request(e.to_string()))?)
        }
        _ => None,
    };
    let pods_res = state.registry.get("", "v1", "pods").expect("built in");
    let pods = state
        .objects
        .list(
            &pods_res,
            if res.namespaced { ns } else { None },
            None,
            None,
            None,
        )
        .await?
        .items;
    let selected = |obj: &Value| {
        let labels = obj["metadata"]["labels"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        selector.as_ref().is_none_or(|s| s.matches_json(&labels))
    };
    let (kind, items) = if res.kind == "PodMetrics" {
        let items: Vec<Value> = pods
            .iter()
            .filter(|p| selected(p))
            .filter_map(|p| {
                let u = usage.get(p["metadata"]["uid"].as_str()?)?;
                Some(pod_metrics(p, u))
            })
            .collect();
        ("PodMetrics", items)
    } else {
        let nodes_res = state.registry.get("", "v1", "nodes").expect("built in");
        let nodes = state
            .objects
            .list(&nodes_res, None, None, None, None)
            .await?
            .items;
        let items = nodes
            .iter()
            .filter(|n| selected(n))
            .map(|n| node_metrics(n, &pods, &usage))
            .collect();
        ("NodeMetrics", items)
    };
    match name {
        None => Ok(json_response(
            200,
            &json!({"kind": format!("{kind}List"), "apiVersion": API_VERSION, "metadata": {}, "items": items}),
        )),
        Some(name) => match items.into_iter().find(|i| i["metadata"]["name"] == name) {
            Some(item) => Ok(json_response(200, &item)),
            None => Err(ApiError::not_found(
                "metrics.k8s.io",
                &kind.to_lowercase(),
                name,
            )),
        },
    }
}

fn cpu(nano_cores: u64) -> String {
    format!("{nano_cores}n")
}

fn memory(bytes: u64) -> String {
    format!("{}Ki", bytes / 1024)
}

/// A Go duration as metrics-server writes the window: `10s`, `10.5s`.
fn window(d: std::time::Duration) -> String {
    let text = format!("{:.3}", d.as_secs_f64());
    format!("{}s", text.trim_end_matches('0').trim_end_matches('.'))
}

fn pod_metrics(pod: &Value, u: &PodUsage) -> Value {
    let containers: Vec<Value> = u
        .containers
        .iter()
        .map(|c| json!({"name": c.name, "usage": {"cpu": cpu(c.nano_cores), "memory": memory(c.memory_bytes)}}))
        .collect();
    let meta = &pod["metadata"];
    json!({
        "kind": "PodMetrics", "apiVersion": API_VERSION,
        "metadata": {"name": meta["name"], "namespace": meta["namespace"], "labels": meta["labels"],
            "creationTimestamp": crate::objects::now()},
        "timestamp": u.timestamp.to_string(),
        "window": window(u.window),
        "containers": containers,
    })
}

fn node_metrics(node: &Value, pods: &[Value], usage: &HashMap<String, PodUsage>) -> Value {
    let name = node["metadata"]["name"].as_str().unwrap_or_default();
    let mut cores = 0;
    let mut bytes = 0;
    let mut latest: Option<&PodUsage> = None;
    for pod in pods.iter().filter(|p| p["spec"]["nodeName"] == name) {
        let Some(u) = pod["metadata"]["uid"]
            .as_str()
            .and_then(|uid| usage.get(uid))
        else {
            continue;
        };
        cores += u.containers.iter().map(|c| c.nano_cores).sum::<u64>();
        bytes += u.containers.iter().map(|c| c.memory_bytes).sum::<u64>();
        if latest.is_none_or(|l| l.timestamp < u.timestamp) {
            latest = Some(u);
        }
    }
    let (timestamp, span) = match latest {
        Some(u) => (u.timestamp.to_string(), window(u.window)),
        None => (jiff::Timestamp::now().to_string(), "0s".to_string()),
    };
    json!({
        "kind": "NodeMetrics", "apiVersion": API_VERSION,
        "metadata": {"name": name, "labels": node["metadata"]["labels"],
            "creationTimestamp": crate::objects::now()},
        "timestamp": timestamp,
        "window": span,
        "usage": {"cpu": cpu(cores), "memory": memory(bytes)},
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn windows_read_as_go_durations() {
        assert_eq!(super::window(std::time::Duration::from_secs(10)), "10s");
        assert_eq!(
            super::window(std::time::Duration::from_millis(10_500)),
            "10.5s"
        );
    }
}
