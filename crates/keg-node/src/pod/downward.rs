//! The downward API: pod fields (`fieldRef`) and container resources (`resourceFieldRef`)
//! as text, for env vars and downwardAPI volumes.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod, ResourceFieldSelector};
use keg_api::quantity::{parse_bytes, parse_millis};

/// The value of a `fieldRef` path, as the kubelet renders it.
pub(crate) fn field_value(
    pod: &Pod,
    path: &str,
    pod_ip: Option<&str>,
    host_ip: Option<&str>,
) -> Result<String, String> {
    let meta = &pod.metadata;
    let spec = pod.spec.clone().unwrap_or_default();
    let subscript = |prefix: &str| -> Option<String> {
        let rest = path.strip_prefix(prefix)?.strip_prefix("['")?;
        rest.strip_suffix("']").map(str::to_string)
    };
    if let Some(key) = subscript("metadata.labels") {
        return Ok(meta
            .labels
            .as_ref()
            .and_then(|l| l.get(&key))
            .cloned()
            .unwrap_or_default());
    }
    if let Some(key) = subscript("metadata.annotations") {
        return Ok(meta
            .annotations
            .as_ref()
            .and_then(|a| a.get(&key))
            .cloned()
            .unwrap_or_default());
    }
    Ok(match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "metadata.labels" => format_map(meta.labels.as_ref()),
        "metadata.annotations" => format_map(meta.annotations.as_ref()),
        "spec.nodeName" => spec.node_name.unwrap_or_default(),
        "spec.serviceAccountName" => spec.service_account_name.unwrap_or_default(),
        "status.hostIP" | "status.hostIPs" => host_ip.unwrap_or_default().to_string(),
        "status.podIP" | "status.podIPs" => pod_ip.unwrap_or_default().to_string(),
        other => return Err(format!("unsupported fieldPath: {other}")),
    })
}

/// Upstream's `FormatMap`: sorted `key="value"` lines, values quoted as Go's `%q` does.
pub(crate) fn format_map(map: Option<&BTreeMap<String, String>>) -> String {
    map.into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", go_quote(v)))
        .collect::<Vec<_>>()
        .join("\n")
}

fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The value of a `resourceFieldRef`: the container's (or, for a volume item, the named
/// container's) limit or request, divided by the divisor and rounded up. Unset limits read
/// as the node's allocatable amount, as upstream defaults them.
pub(crate) fn resource_value(
    field: &ResourceFieldSelector,
    container: &Container,
    pod: &Pod,
    allocatable: &BTreeMap<String, String>,
) -> Result<String, String> {
    let container = match field.container_name.as_deref().filter(|n| !n.is_empty()) {
        Some(name) if name != container.name => pod
            .spec
            .iter()
            .flat_map(|s| {
                s.containers
                    .iter()
                    .chain(s.init_containers.iter().flatten())
            })
            .find(|c| c.name == name)
            .ok_or_else(|| format!("container {name} not found"))?,
        _ => container,
    };
    let (kind, resource) = field
        .resource
        .split_once('.')
        .ok_or_else(|| format!("unsupported container resource : {}", field.resource))?;
    let resources = container.resources.clone().unwrap_or_default();
    let map = match kind {
        "limits" => resources.limits.unwrap_or_default(),
        "requests" => resources.requests.unwrap_or_default(),
        _ => {
            return Err(format!(
                "unsupported container resource : {}",
                field.resource
            ));
        }
    };
    let value = map.get(resource).map(|q| q.0.clone()).or_else(|| {
        (kind == "limits")
            .then(|| allocatable.get(resource).cloned())
            .flatten()
    });
    let value = value.unwrap_or_else(|| "0".into());
    let divisor = field
        .divisor
        .as_ref()
        .map(|d| d.0.clone())
        .filter(|d| d != "0");
    let divisor = divisor.unwrap_or_else(|| "1".into());
    let invalid = |e: keg_api::quantity::Error| e.to_string();
    match resource {
        "cpu" => {
            let (v, d) = (
                parse_millis(&value).map_err(invalid)?,
                parse_millis(&divisor).map_err(invalid)?,
            );
            Ok(v.div_ceil(d.max(1)).to_string())
        }
        "memory" | "ephemeral-storage" => {
            let (v, d) = (
                parse_bytes(&value).map_err(invalid)?,
                parse_bytes(&divisor).map_err(invalid)?,
            );
            Ok(v.div_ceil(d.max(1)).to_string())
        }
        _ => Err(format!(
            "unsupported container resource : {}",
            field.resource
        )),
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    use super::*;

    fn pod() -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "shop", "uid": "u-1",
                         "labels": {"app": "web", "tier": "front \"end\""}},
            "spec": {"nodeName": "n1", "containers": [{"name": "app", "resources": {
                "limits": {"memory": "64Mi"}, "requests": {"cpu": "250m"}}}]}
        }))
        .unwrap()
    }

    #[test]
    fn fields() {
        let pod = pod();
        let value = |p: &str| field_value(&pod, p, Some("10.42.0.9"), Some("192.168.1.2")).unwrap();
        assert_eq!(value("metadata.name"), "web");
        assert_eq!(value("metadata.labels['app']"), "web");
        assert_eq!(
            value("metadata.labels"),
            "app=\"web\"\ntier=\"front \\\"end\\\"\""
        );
        assert_eq!(value("status.podIP"), "10.42.0.9");
        assert_eq!(value("spec.nodeName"), "n1");
        assert!(field_value(&pod, "spec.nope", None, None).is_err());
    }

    #[test]
    fn resources_round_up_and_default_to_the_node() {
        let pod = pod();
        let container = &pod.spec.as_ref().unwrap().containers[0];
        let allocatable: BTreeMap<String, String> = [
            ("cpu".to_string(), "4".to_string()),
            ("memory".to_string(), "8Gi".to_string()),
        ]
        .into();
        let get = |resource: &str, divisor: Option<&str>| {
            let field = ResourceFieldSelector {
                resource: resource.into(),
                divisor: divisor.map(|d| Quantity(d.into())),
                container_name: None,
            };
            resource_value(&field, container, &pod, &allocatable).unwrap()
        };
        assert_eq!(get("limits.memory", None), (64u64 << 20).to_string());
        assert_eq!(get("limits.memory", Some("1Mi")), "64");
        assert_eq!(get("requests.cpu", None), "1", "250m rounds up to one CPU");
        assert_eq!(get("requests.cpu", Some("1m")), "250");
        assert_eq!(
            get("limits.cpu", None),
            "4",
            "no limit: the node's allocatable"
        );
        assert_eq!(get("requests.memory", None), "0");
    }
}
