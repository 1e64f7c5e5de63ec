//! The whole GA surface of Kubernetes 1.33, read from the REST paths of the official Python
//! client 33.1.0 (generated from 1.33's OpenAPI; installed by scripts/install-deps.sh): every
//! stable resource and subresource must be in discovery (`/api/v1`, `/apis/G/V`) and in the
//! aggregated discovery (`apidiscovery.k8s.io/v2`), every resource in `kubectl api-resources`
//! and `kubectl explain`. What keg does not serve yet is listed in `NOT_YET`, and the list
//! must be exact: a new gap fails the test, and so does serving something still listed, so
//! the list shrinks as the surface grows and can never fall behind silently.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use common::Server;
use serde_json::Value;

/// GA resources and subresources keg does not serve yet (`group/version/resource[/sub]`, the
/// core group as `core`), with the issue that adds them.
const NOT_YET: &[&str] = &[
    // issue 20 item 2: admission webhooks and admission policies.
    "admissionregistration.k8s.io/v1/mutatingwebhookconfigurations",
    "admissionregistration.k8s.io/v1/validatingadmissionpolicies",
    "admissionregistration.k8s.io/v1/validatingadmissionpolicies/status",
    "admissionregistration.k8s.io/v1/validatingadmissionpolicybindings",
    "admissionregistration.k8s.io/v1/validatingwebhookconfigurations",
    // issue 20: `kubectl attach`, `kubectl run -it` and `kubectl debug`.
    "core/v1/pods/attach",
    "core/v1/pods/ephemeralcontainers",
    // issue 25 item 6: in-place resize.
    "core/v1/pods/resize",
];

/// Where the Python client's generated API modules are.
fn python_client_api() -> PathBuf {
    let out = Command::new("python3")
        .args([
            "-c",
            "import os, kubernetes.client.api as a; print(os.path.dirname(a.__file__))",
        ])
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "the official Python client is not installed (scripts/install-deps.sh installs it): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// `group/version/resource[/sub]` of one REST path of a stable version, or `None` for
/// watches, discovery paths and non-stable versions.
fn surface_of(path: &str) -> Option<String> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match parts.as_slice() {
        ["api", version, rest @ ..] => ("core", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return None,
    };
    let stable = version.len() > 1
        && version.starts_with('v')
        && version[1..].chars().all(|c| c.is_ascii_digit());
    if !stable || rest.first().is_none_or(|p| *p == "watch") {
        return None;
    }
    let rest = match rest {
        ["namespaces", "{namespace}", tail @ ..] if !tail.is_empty() => tail,
        other => other,
    };
    match rest {
        [resource] | [resource, "{name}"] => Some(format!("{group}/{version}/{resource}")),
        [resource, "{name}", sub, ..] => Some(format!("{group}/{version}/{resource}/{sub}")),
        _ => None,
    }
}

/// Every stable resource and subresource the Python client has a path for.
fn ga_surface() -> BTreeSet<String> {
    let mut surface = BTreeSet::new();
    for entry in std::fs::read_dir(python_client_api()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "py") {
            continue;
        }
        let source = std::fs::read_to_string(&path).unwrap();
        for quoted in source.split('\'').skip(1).step_by(2) {
            if quoted.starts_with("/api") {
                surface.extend(surface_of(quoted));
            }
        }
    }
    surface
}

/// What discovery lists: `group/version/name` for each resource and subresource.
fn served(server: &Server) -> BTreeSet<String> {
    let k = server.kubectl("1.33");
    let mut paths = vec![("core".to_owned(), "/api/v1".to_owned())];
    let groups: Value = serde_json::from_str(&k.ok(&["get", "--raw", "/apis"])).unwrap();
    for group in groups["groups"].as_array().unwrap() {
        for version in group["versions"].as_array().unwrap() {
            let gv = version["groupVersion"].as_str().unwrap();
            paths.push((
                group["name"].as_str().unwrap().to_owned(),
                format!("/apis/{gv}"),
            ));
        }
    }
    let mut served = BTreeSet::new();
    for (group, path) in paths {
        let list: Value = serde_json::from_str(&k.ok(&["get", "--raw", &path])).unwrap();
        let version = path.rsplit('/').next().unwrap();
        for resource in list["resources"].as_array().unwrap() {
            let name = resource["name"].as_str().unwrap();
            served.insert(format!("{group}/{version}/{name}"));
        }
    }
    served
}

/// What the aggregated discovery lists, the same way.
fn served_aggregated(server: &Server) -> BTreeSet<String> {
    let mut served = BTreeSet::new();
    for path in ["/api", "/apis"] {
        let out = Command::new("curl")
            .args(["-sk", "--fail-with-body", "-H"])
            .arg(format!("Authorization: Bearer {}", server.token()))
            .args([
                "-H",
                "Accept: application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
            ])
            .arg(format!("{}{path}", server.url()))
            .output()
            .expect("run curl");
        let list: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{path}: {e}: {}", String::from_utf8_lossy(&out.stdout)));
        assert_eq!(list["kind"], "APIGroupDiscoveryList", "{path}: {list}");
        for group in list["items"].as_array().unwrap() {
            let name = group["metadata"]["name"].as_str().unwrap_or_default();
            let group_name = if name.is_empty() { "core" } else { name };
            for version in group["versions"].as_array().unwrap() {
                let v = version["version"].as_str().unwrap();
                for resource in version["resources"].as_array().unwrap() {
                    let plural = resource["resource"].as_str().unwrap();
                    served.insert(format!("{group_name}/{v}/{plural}"));
                    for sub in resource["subresources"].as_array().into_iter().flatten() {
                        let sub = sub["subresource"].as_str().unwrap();
                        served.insert(format!("{group_name}/{v}/{plural}/{sub}"));
                    }
                }
            }
        }
    }
    served
}

/// What of `expected` is not in `served`.
fn missing(expected: &BTreeSet<String>, served: &BTreeSet<String>) -> BTreeSet<String> {
    expected.difference(served).cloned().collect()
}

#[test]
fn the_python_client_paths_read_as_group_version_resource() {
    assert_eq!(
        surface_of("/api/v1/namespaces/{namespace}/pods/{name}/log").as_deref(),
        Some("core/v1/pods/log")
    );
    assert_eq!(
        surface_of("/api/v1/namespaces/{name}/finalize").as_deref(),
        Some("core/v1/namespaces/finalize")
    );
    assert_eq!(
        surface_of("/api/v1/nodes/{name}/proxy/{path}").as_deref(),
        Some("core/v1/nodes/proxy")
    );
    assert_eq!(
        surface_of("/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale").as_deref(),
        Some("apps/v1/deployments/scale")
    );
    assert_eq!(
        surface_of("/api/v1/namespaces").as_deref(),
        Some("core/v1/namespaces")
    );
    assert_eq!(surface_of("/apis/batch/v1/watch/jobs"), None);
    assert_eq!(
        surface_of("/apis/resource.k8s.io/v1beta1/deviceclasses"),
        None
    );
    assert_eq!(surface_of("/apis/apps/v1/"), None);
}

#[test]
fn every_ga_resource_and_subresource_of_1_33_is_served() {
    let expected = ga_surface();
    // The client's 1.33 surface: 61 GA resources and 44 subresources, as the issue counted.
    let resources = expected
        .iter()
        .filter(|s| s.split('/').count() == 3)
        .count();
    assert!(
        resources >= 61,
        "only {resources} GA resources read: {expected:#?}"
    );
    let not_yet: BTreeSet<String> = NOT_YET.iter().map(|s| (*s).to_owned()).collect();
    for listed in &not_yet {
        assert!(expected.contains(listed), "{listed} is not GA in 1.33");
    }

    let server = Server::start_with(&["--no-node-agent"]);
    let gaps = missing(&expected, &served(&server));
    assert_eq!(
        gaps, not_yet,
        "discovery: what is missing differs from NOT_YET (update the list when a gap closes)"
    );
    let aggregated_gaps = missing(&expected, &served_aggregated(&server));
    assert_eq!(aggregated_gaps, not_yet, "aggregated discovery");

    // Every resource in `kubectl api-resources` and `kubectl explain`, with either kubectl.
    for version in common::KUBECTL_VERSIONS {
        let k = server.kubectl(version);
        let listed = k.ok(&["api-resources", "-o", "name"]);
        let listed: BTreeSet<&str> = listed.lines().collect();
        let resources = expected
            .iter()
            .filter(|s| s.split('/').count() == 3 && !not_yet.contains(*s));
        for resource in resources {
            let mut parts = resource.split('/');
            let (group, api, plural) = (
                parts.next().unwrap(),
                parts.next().unwrap(),
                parts.next().unwrap(),
            );
            let (name, api_version) = if group == "core" {
                (plural.to_owned(), api.to_owned())
            } else {
                (format!("{plural}.{group}"), format!("{group}/{api}"))
            };
            assert!(
                listed.contains(name.as_str()),
                "kubectl {version} api-resources lacks {name}"
            );
            if version == "1.33" {
                let explained = k.ok(&["explain", plural, "--api-version", &api_version]);
                assert!(
                    explained.contains("KIND:"),
                    "kubectl explain {name}: {explained}"
                );
            }
        }
    }
}
