//! API discovery: the legacy /api, /apis and group-version documents, and aggregated
//! discovery (apidiscovery.k8s.io v2 and v2beta1) chosen by the Accept header.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use http::HeaderMap;
use serde_json::{Value, json};

use crate::negotiate::{self, Discovery};
use crate::resources::{Registry, Resource};
use crate::rest::json_response;

const VERBS: [&str; 8] = [
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// What can be done with a resource: reviews are only ever created.
fn verbs_of(res: &Resource) -> Vec<&'static str> {
    if res.create_only {
        vec!["create"]
    } else if res.is_computed() {
        vec!["get", "list"]
    } else {
        VERBS.to_vec()
    }
}

/// The kind and verbs of a subresource, as upstream reports them.
fn subresource_kind(res: &Resource, sub: &str) -> (String, String, String, Vec<&'static str>) {
    let (g, v) = (res.group.clone(), res.version.clone());
    match sub {
        "scale" => (
            "autoscaling".into(),
            "v1".into(),
            "Scale".into(),
            vec!["get", "patch", "update"],
        ),
        "binding" => (String::new(), "v1".into(), "Binding".into(), vec!["create"]),
        // kubectl drain looks for this entry to evict rather than delete.
        "eviction" => (
            "policy".into(),
            "v1".into(),
            "Eviction".into(),
            vec!["create"],
        ),
        "token" => (
            "authentication.k8s.io".into(),
            "v1".into(),
            "TokenRequest".into(),
            vec!["create"],
        ),
        "log" => (String::new(), "v1".into(), "Pod".into(), vec!["get"]),
        "exec" => (
            String::new(),
            "v1".into(),
            "PodExecOptions".into(),
            vec!["create", "get"],
        ),
        "portforward" => (
            String::new(),
            "v1".into(),
            "PodPortForwardOptions".into(),
            vec!["create", "get"],
        ),
        // PodProxyOptions, ServiceProxyOptions, NodeProxyOptions: every method is proxied.
        "proxy" => (
            String::new(),
            "v1".into(),
            format!("{}ProxyOptions", res.kind),
            vec!["create", "delete", "get", "patch", "update"],
        ),
        "finalize" => (g, v, res.kind.clone(), vec!["update"]),
        _ => (g, v, res.kind.clone(), vec!["get", "patch", "update"]),
    }
}

/// Groups and versions served, core ("") first, then groups in name order.
fn group_versions(registry: &Registry) -> BTreeMap<String, Vec<Arc<Resource>>> {
    let mut groups: BTreeMap<String, Vec<Arc<Resource>>> = BTreeMap::new();
    for res in registry.all() {
        groups.entry(res.group.clone()).or_default().push(res);
    }
    for list in groups.values_mut() {
        list.sort_by(|a, b| a.plural.cmp(&b.plural));
    }
    groups
}

/// A group's versions, preferred first.
fn versions_of(resources: &[Arc<Resource>]) -> Vec<String> {
    let mut versions: Vec<String> = resources.iter().map(|r| r.version.clone()).collect();
    versions.sort_by(|a, b| version_priority(a).cmp(&version_priority(b)));
    versions.dedup();
    versions
}

/// The sort key of upstream's kube-aware version order: GA before beta before alpha, higher
/// numbers first within each (`v2`, `v1`, `v2beta1`, `v1beta2`, `v1alpha1`), then versions
/// not of that form alphabetically.
fn version_priority(version: &str) -> (u8, std::cmp::Reverse<u64>, std::cmp::Reverse<u64>, &str) {
    use std::cmp::Reverse;
    let parse = || -> Option<(u8, u64, u64)> {
        let rest = version.strip_prefix('v')?;
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let major: u64 = rest[..digits].parse().ok()?;
        let rest = &rest[digits..];
        if rest.is_empty() {
            return Some((0, major, 0));
        }
        let (rank, minor) = if let Some(m) = rest.strip_prefix("beta") {
            (1, m)
        } else {
            (2, rest.strip_prefix("alpha")?)
        };
        Some((rank, major, minor.parse().ok()?))
    };
    match parse() {
        Some((rank, major, minor)) => (rank, Reverse(major), Reverse(minor), ""),
        None => (3, Reverse(0), Reverse(0), version),
    }
}

/// The legacy APIResourceList of a group-version, or `None` when it is not served.
pub fn resource_list(registry: &Registry, group: &str, version: &str) -> Option<Value> {
    let resources: Vec<Arc<Resource>> = registry
        .all()
        .into_iter()
        .filter(|r| r.group == group && r.version == version)
        .collect();
    if resources.is_empty() {
        return None;
    }
    let mut entries = Vec::new();
    let mut sorted = resources.clone();
    sorted.sort_by(|a, b| a.plural.cmp(&b.plural));
    for res in sorted {
        let mut entry = json!({
            "name": res.plural, "singularName": res.singular, "namespaced": res.namespaced,
            "kind": res.kind, "verbs": verbs_of(&res),
        });
        if !res.short_names.is_empty() {
            entry["shortNames"] = json!(res.short_names);
        }
        if !res.categories.is_empty() {
            entry["categories"] = json!(res.categories);
        }
        entries.push(entry);
        for sub in &res.subresources {
            let (g, v, kind, verbs) = subresource_kind(&res, sub);
            let mut entry = json!({"name": format!("{}/{sub}", res.plural), "singularName": "", "namespaced": res.namespaced, "kind": kind, "verbs": verbs});
            if g != res.group || v != res.version {
                entry["group"] = json!(g);
                entry["version"] = json!(v);
            }
            entries.push(entry);
        }
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": entries}),
    )
}

fn api_group(name: &str, versions: &[String]) -> Value {
    let gvs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
        .collect();
    json!({"name": name, "versions": gvs, "preferredVersion": gvs[0]})
}

/// GET /apis/<group>: the APIGroup.
pub fn group(registry: &Registry, name: &str) -> Option<Value> {
    let groups = group_versions(registry);
    let resources = groups.get(name).filter(|_| !name.is_empty())?;
    let mut group = api_group(name, &versions_of(resources));
    group["kind"] = json!("APIGroup");
    group["apiVersion"] = json!("v1");
    Some(group)
}

fn aggregated(registry: &Registry, core: bool, format: Discovery) -> Response {
    let version = if format == Discovery::V2 {
        "v2"
    } else {
        "v2beta1"
    };
    let mut items = Vec::new();
    for (group, resources) in group_versions(registry) {
        if group.is_empty() != core {
            continue;
        }
        let mut versions = Vec::new();
        for v in versions_of(&resources) {
            let mut entries = Vec::new();
            for res in resources.iter().filter(|r| r.version == v) {
                let subresources: Vec<Value> = res
                    .subresources
                    .iter()
                    .map(|sub| {
                        let (g, sv, kind, verbs) = subresource_kind(res, sub);
                        json!({"subresource": sub, "responseKind": {"group": g, "version": sv, "kind": kind}, "verbs": verbs})
                    })
                    .collect();
                let mut entry = json!({
                    "resource": res.plural,
                    "responseKind": {"group": res.group, "version": res.version, "kind": res.kind},
                    "scope": if res.namespaced { "Namespaced" } else { "Cluster" },
                    "singularResource": res.singular,
                    "verbs": verbs_of(res),
                });
                if !res.short_names.is_empty() {
                    entry["shortNames"] = json!(res.short_names);
                }
                if !res.categories.is_empty() {
                    entry["categories"] = json!(res.categories);
                }
                if !subresources.is_empty() {
                    entry["subresources"] = json!(subresources);
                }
                entries.push(entry);
            }
            versions.push(json!({"version": v, "resources": entries, "freshness": "Current"}));
        }
        items.push(json!({"metadata": {"name": group}, "versions": versions}));
    }
    let body = json!({"kind": "APIGroupDiscoveryList", "apiVersion": format!("apidiscovery.k8s.io/{version}"), "metadata": {}, "items": items});
    Response::builder()
        .status(200)
        .header(
            http::header::CONTENT_TYPE,
            format!("application/json;g=apidiscovery.k8s.io;v={version};as=APIGroupDiscoveryList"),
        )
        .header(http::header::VARY, "Accept")
        .body(Body::from(body.to_string()))
        .expect("valid response")
}

/// GET /api.
pub fn api(registry: &Registry, headers: &HeaderMap) -> Response {
    match negotiate::discovery(headers) {
        Discovery::Legacy => json_response(
            200,
            &json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}]}),
        ),
        format => aggregated(registry, true, format),
    }
}

/// GET /apis.
pub fn apis(registry: &Registry, headers: &HeaderMap) -> Response {
    match negotiate::discovery(headers) {
        Discovery::Legacy => {
            let groups: Vec<Value> = group_versions(registry)
                .iter()
                .filter(|(g, _)| !g.is_empty())
                .map(|(g, resources)| api_group(g, &versions_of(resources)))
                .collect();
            json_response(
                200,
                &json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}),
            )
        }
        format => aggregated(registry, false, format),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_sort_as_upstream_prefers_them() {
        let mut versions = vec![
            "v1alpha1", "v1", "v2beta1", "foo", "v1beta2", "v2", "v1beta1", "v10",
        ];
        versions.sort_by(|a, b| version_priority(a).cmp(&version_priority(b)));
        assert_eq!(
            versions,
            [
                "v10", "v2", "v1", "v2beta1", "v1beta2", "v1beta1", "v1alpha1", "foo"
            ]
        );
    }

    #[test]
    fn autoscaling_prefers_v2() {
        let group = group(&Registry::new(), "autoscaling").unwrap();
        assert_eq!(group["preferredVersion"]["version"], "v2");
        assert_eq!(group["versions"][1]["version"], "v1");
    }
}
