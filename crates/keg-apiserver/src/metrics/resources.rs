//! The figures behind metrics.k8s.io as Prometheus series, named as the kubelet's
//! `/metrics/resource` names them, for Prometheus users scraping `/metrics`.

use std::collections::BTreeMap;

use super::exposition::{Exposition, Labels};
use crate::error::Result;
use crate::state::ApiState;

/// Writes container and pod CPU counters and memory gauges of every measured pod.
pub async fn write(state: &ApiState, out: &mut Exposition) -> Result<()> {
    let usage = crate::resource_metrics::usage_by_pod(state);
    if usage.is_empty() {
        return Ok(());
    }
    let pods_res = state.registry.get("", "v1", "pods").expect("built in");
    let pods = state
        .objects
        .list(&pods_res, None, None, None, None)
        .await?
        .items;
    let mut container_cpu = BTreeMap::new();
    let mut container_memory = BTreeMap::new();
    let mut pod_cpu = BTreeMap::new();
    let mut pod_memory = BTreeMap::new();
    for pod in &pods {
        let Some(u) = pod["metadata"]["uid"]
            .as_str()
            .and_then(|uid| usage.get(uid))
        else {
            continue;
        };
        let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
        let (namespace, name) = (
            text(&pod["metadata"]["namespace"]),
            text(&pod["metadata"]["name"]),
        );
        let pod_labels: Labels = vec![("namespace", namespace.clone()), ("pod", name.clone())];
        for c in &u.containers {
            let labels: Labels = vec![
                ("container", c.name.clone()),
                ("namespace", namespace.clone()),
                ("pod", name.clone()),
            ];
            container_cpu.insert(labels.clone(), c.cpu_seconds);
            container_memory.insert(labels, c.memory_bytes as f64);
        }
        pod_cpu.insert(
            pod_labels.clone(),
            u.containers.iter().map(|c| c.cpu_seconds).sum(),
        );
        pod_memory.insert(
            pod_labels,
            u.containers.iter().map(|c| c.memory_bytes as f64).sum(),
        );
    }
    out.values(
        "container_cpu_usage_seconds_total",
        "counter",
        "Cumulative cpu time consumed by the container in core-seconds",
        &container_cpu,
    );
    out.values(
        "container_memory_working_set_bytes",
        "gauge",
        "Current working set of the container in bytes",
        &container_memory,
    );
    out.values(
        "pod_cpu_usage_seconds_total",
        "counter",
        "Cumulative cpu time consumed by the pod in core-seconds",
        &pod_cpu,
    );
    out.values(
        "pod_memory_working_set_bytes",
        "gauge",
        "Current working set of the pod in bytes",
        &pod_memory,
    );
    Ok(())
}
