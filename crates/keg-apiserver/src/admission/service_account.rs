//! The ServiceAccount plugin, as upstream's: a new pod runs as its namespace's `default`
//! account unless it names one, the account must exist, and (unless the pod or the account
//! opts out with `automountServiceAccountToken: false`) every container gets the
//! `kube-api-access-xxxxx` projected volume at the path in-cluster clients read: a bound
//! token, the cluster CA from `kube-root-ca.crt` and the namespace.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};

use super::{AdmissionPlugin, Attributes, Operation};
use crate::error::{ApiError, Result};
use crate::objects::meta_str;
use crate::state::ApiState;

/// Where in-cluster clients look for the token, `ca.crt` and `namespace`.
pub const MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// The ConfigMap holding the cluster CA in every namespace.
pub const ROOT_CA_CONFIG_MAP: &str = "kube-root-ca.crt";

/// Upstream's token lifetime for the projected volume: an hour and a bit (the extra seven
/// seconds mark it as the default, which lets the issuer extend it for legacy clients).
const TOKEN_EXPIRATION_SECONDS: i64 = 3607;

/// The plugin.
pub struct ServiceAccount;

#[async_trait]
impl AdmissionPlugin for ServiceAccount {
    async fn admit(&self, state: &ApiState, attrs: &mut Attributes<'_>) -> Result<()> {
        if attrs.operation != Operation::Create
            || attrs.resource.kind != "Pod"
            || !attrs.resource.group.is_empty()
            || attrs.subresource.is_some()
            || is_mirror_pod(attrs.object)
        {
            return Ok(());
        }
        let pod = &mut *attrs.object;
        let ns = meta_str(pod, "namespace").unwrap_or_default().to_string();
        let name = meta_str(pod, "name").unwrap_or_default().to_string();
        let account_name = match pod["spec"]["serviceAccountName"].as_str() {
            Some(n) if !n.is_empty() => n.to_string(),
            _ => "default".to_string(),
        };
        pod["spec"]["serviceAccountName"] = json!(account_name);
        // The deprecated alias kubectl still shows in some outputs.
        pod["spec"]["serviceAccount"] = json!(account_name);
        let account = lookup(state, &ns, &account_name).await?.ok_or_else(|| {
            ApiError::forbidden(
                "",
                "pods",
                &name,
                &format!(
                    "error looking up service account {ns}/{account_name}: serviceaccount \"{account_name}\" not found"
                ),
            )
        })?;
        if pod["spec"]["imagePullSecrets"]
            .as_array()
            .is_none_or(|s| s.is_empty())
            && let Some(secrets) = account["imagePullSecrets"].as_array()
            && !secrets.is_empty()
        {
            pod["spec"]["imagePullSecrets"] = json!(secrets);
        }
        let automount = pod["spec"]["automountServiceAccountToken"]
            .as_bool()
            .or_else(|| account["automountServiceAccountToken"].as_bool())
            .unwrap_or(true);
        if automount {
            mount_api_access(pod);
        }
        Ok(())
    }
}

fn is_mirror_pod(pod: &Value) -> bool {
    !pod["metadata"]["annotations"]["kubernetes.io/config.mirror"].is_null()
}

/// The account, looked up again for a few seconds when missing: a pod created right after its
/// namespace may race the namespace's `default` account, as upstream allows for.
async fn lookup(state: &ApiState, ns: &str, name: &str) -> Result<Option<Value>> {
    let accounts = state
        .registry
        .get("", "v1", "serviceaccounts")
        .expect("serviceaccounts are built in");
    let attempts = if name == "default" { 10 } else { 1 };
    for attempt in 0..attempts {
        if let Some(account) = state.objects.try_get(&accounts, Some(ns), name).await? {
            return Ok(Some(account));
        }
        if attempt + 1 < attempts {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(None)
}

/// Adds the projected volume and mounts it read-only in every container, unless some
/// container already mounts something at [`MOUNT_PATH`] (the pod brings its own).
fn mount_api_access(pod: &mut Value) {
    let spec = &mut pod["spec"];
    let containers = ["initContainers", "containers"];
    let mounts_own = containers.iter().any(|list| {
        spec[*list].as_array().into_iter().flatten().any(|c| {
            c["volumeMounts"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|m| m["mountPath"].as_str() == Some(MOUNT_PATH))
        })
    });
    if mounts_own {
        return;
    }
    let taken: Vec<String> = spec["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v["name"].as_str().map(String::from))
        .collect();
    let volume_name = loop {
        let candidate = format!("kube-api-access-{}", crate::write::random_suffix());
        if !taken.contains(&candidate) {
            break candidate;
        }
    };
    let volume = json!({
        "name": volume_name,
        "projected": {
            "defaultMode": 420,
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": TOKEN_EXPIRATION_SECONDS, "path": "token"}},
                {"configMap": {"name": ROOT_CA_CONFIG_MAP, "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
            ],
        },
    });
    match spec["volumes"].as_array_mut() {
        Some(volumes) => volumes.push(volume),
        None => spec["volumes"] = json!([volume]),
    }
    let mount = json!({"name": volume_name, "readOnly": true, "mountPath": MOUNT_PATH});
    for list in containers {
        for container in spec[list].as_array_mut().into_iter().flatten() {
            match container["volumeMounts"].as_array_mut() {
                Some(mounts) => mounts.push(mount.clone()),
                None => container["volumeMounts"] = json!([mount]),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod() -> Value {
        json!({"spec": {
            "initContainers": [{"name": "init"}],
            "containers": [{"name": "a", "volumeMounts": [{"name": "data", "mountPath": "/data"}]}, {"name": "b"}],
            "volumes": [{"name": "data", "emptyDir": {}}],
        }})
    }

    #[test]
    fn every_container_mounts_the_projected_volume() {
        let mut pod = pod();
        mount_api_access(&mut pod);
        let volume = &pod["spec"]["volumes"][1];
        let name = volume["name"].as_str().unwrap();
        assert!(
            name.starts_with("kube-api-access-") && name.len() == 21,
            "{name}"
        );
        let sources = volume["projected"]["sources"].as_array().unwrap();
        assert_eq!(sources[0]["serviceAccountToken"]["expirationSeconds"], 3607);
        assert_eq!(sources[1]["configMap"]["name"], "kube-root-ca.crt");
        assert_eq!(sources[2]["downwardAPI"]["items"][0]["path"], "namespace");
        for (list, i) in [("initContainers", 0), ("containers", 0), ("containers", 1)] {
            let mounts = pod["spec"][list][i]["volumeMounts"].as_array().unwrap();
            let mount = mounts.last().unwrap();
            assert_eq!(mount["name"], name);
            assert_eq!(mount["mountPath"], MOUNT_PATH);
            assert_eq!(mount["readOnly"], true);
        }
    }

    #[test]
    fn a_pod_mounting_its_own_credentials_is_left_alone() {
        let mut pod = pod();
        pod["spec"]["containers"][1]["volumeMounts"] =
            json!([{"name": "data", "mountPath": MOUNT_PATH}]);
        let before = pod.clone();
        mount_api_access(&mut pod);
        assert_eq!(pod, before);
    }
}
