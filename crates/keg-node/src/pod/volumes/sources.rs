//! The files of configMap, secret, downwardAPI and projected volumes.

use std::collections::BTreeMap;

use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, DownwardAPIVolumeFile, KeyToPath, Secret, ServiceAccount,
    VolumeProjection,
};
use kube::api::{Api, PostParams};

use super::VolumeContext;
use super::atomic::{Files, check_relative};
use crate::pod::{downward, env};
use crate::util::is_not_found;

/// Upstream's default file mode of these volumes.
const DEFAULT_MODE: i32 = 0o644;

/// Keys (or the listed items) of some data as files.
fn key_files(
    data: &BTreeMap<String, String>,
    items: Option<&Vec<KeyToPath>>,
    default_mode: i32,
    optional: bool,
    missing: impl Fn(&str) -> String,
) -> Result<Files, String> {
    let mut files = Files::new();
    match items {
        None => {
            for (k, v) in data {
                files.insert(k.clone(), (v.clone().into_bytes(), default_mode as u32));
            }
        }
        Some(items) => {
            for item in items {
                check_relative(&item.path)?;
                match data.get(&item.key) {
                    Some(v) => {
                        let mode = item.mode.unwrap_or(default_mode) as u32;
                        files.insert(item.path.clone(), (v.clone().into_bytes(), mode));
                    }
                    None if optional => {}
                    None => return Err(missing(&item.key)),
                }
            }
        }
    }
    Ok(files)
}

async fn config_map(
    cx: &VolumeContext<'_>,
    name: &str,
) -> Result<Option<BTreeMap<String, String>>, String> {
    let api: Api<ConfigMap> = Api::namespaced(cx.client.clone(), cx.namespace());
    match api.get(name).await {
        Ok(cm) => Ok(Some(env::config_map_data(&cm))),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(format!(
            "couldn't get configMap {}/{name}: {e}",
            cx.namespace()
        )),
    }
}

async fn secret(
    cx: &VolumeContext<'_>,
    name: &str,
) -> Result<Option<BTreeMap<String, String>>, String> {
    let api: Api<Secret> = Api::namespaced(cx.client.clone(), cx.namespace());
    match api.get(name).await {
        Ok(s) => Ok(Some(env::secret_data(&s))),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(format!(
            "couldn't get secret {}/{name}: {e}",
            cx.namespace()
        )),
    }
}

/// A configMap volume's (or projection's) files.
pub(crate) async fn config_map_files(
    cx: &VolumeContext<'_>,
    name: &str,
    items: Option<&Vec<KeyToPath>>,
    default_mode: Option<i32>,
    optional: bool,
) -> Result<Files, String> {
    let data = match config_map(cx, name).await? {
        Some(d) => d,
        None if optional => BTreeMap::new(),
        None => return Err(format!("configmap {name:?} not found")),
    };
    let missing = |key: &str| format!("configmap references non-existent config key: {key}");
    key_files(
        &data,
        items,
        default_mode.unwrap_or(DEFAULT_MODE),
        optional,
        missing,
    )
}

/// A secret volume's (or projection's) files.
pub(crate) async fn secret_files(
    cx: &VolumeContext<'_>,
    name: &str,
    items: Option<&Vec<KeyToPath>>,
    default_mode: Option<i32>,
    optional: bool,
) -> Result<Files, String> {
    let data = match secret(cx, name).await? {
        Some(d) => d,
        None if optional => BTreeMap::new(),
        None => return Err(format!("secret {name:?} not found")),
    };
    let missing = |key: &str| format!("references non-existent secret key: {key}");
    key_files(
        &data,
        items,
        default_mode.unwrap_or(DEFAULT_MODE),
        optional,
        missing,
    )
}

/// A downwardAPI volume's (or projection's) files.
pub(crate) fn downward_files(
    cx: &VolumeContext<'_>,
    items: &[DownwardAPIVolumeFile],
    default_mode: Option<i32>,
) -> Result<Files, String> {
    let mut files = Files::new();
    let first = Container::default();
    let container = cx
        .pod
        .spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .unwrap_or(&first);
    for item in items {
        check_relative(&item.path)?;
        let value = if let Some(field) = &item.field_ref {
            downward::field_value(cx.pod, &field.field_path, cx.pod_ip, cx.host_ip)?
        } else if let Some(field) = &item.resource_field_ref {
            downward::resource_value(field, container, cx.pod, cx.allocatable)?
        } else {
            continue;
        };
        let mode = item.mode.or(default_mode).unwrap_or(DEFAULT_MODE) as u32;
        files.insert(item.path.clone(), (value.into_bytes(), mode));
    }
    Ok(files)
}

/// A projected volume's files: every source's files together.
pub(crate) async fn projected_files(
    cx: &VolumeContext<'_>,
    sources: &[VolumeProjection],
    default_mode: Option<i32>,
) -> Result<Files, String> {
    let mut files = Files::new();
    for source in sources {
        let more = if let Some(cm) = &source.config_map {
            let optional = cm.optional == Some(true);
            config_map_files(cx, &cm.name, cm.items.as_ref(), default_mode, optional).await?
        } else if let Some(s) = &source.secret {
            let optional = s.optional == Some(true);
            secret_files(cx, &s.name, s.items.as_ref(), default_mode, optional).await?
        } else if let Some(d) = &source.downward_api {
            downward_files(cx, d.items.as_deref().unwrap_or_default(), default_mode)?
        } else if let Some(t) = &source.service_account_token {
            check_relative(&t.path)?;
            let token = service_account_token(cx, t.audience.clone(), t.expiration_seconds).await?;
            let mode = default_mode.unwrap_or(DEFAULT_MODE) as u32;
            Files::from([(t.path.clone(), (token.into_bytes(), mode))])
        } else {
            return Err(
                "unsupported volume projection (clusterTrustBundle or podCertificate)".into(),
            );
        };
        files.extend(more);
    }
    Ok(files)
}

/// A token for the pod's service account, bound to the pod (TokenRequest API).
async fn service_account_token(
    cx: &VolumeContext<'_>,
    audience: Option<String>,
    expiration: Option<i64>,
) -> Result<String, String> {
    let spec = cx.pod.spec.clone().unwrap_or_default();
    let account = spec
        .service_account_name
        .unwrap_or_else(|| "default".into());
    let api: Api<ServiceAccount> = Api::namespaced(cx.client.clone(), cx.namespace());
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: audience.into_iter().collect(),
            expiration_seconds: Some(expiration.unwrap_or(3607)),
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: cx.pod.metadata.name.clone(),
                uid: cx.pod.metadata.uid.clone(),
            }),
        },
        ..Default::default()
    };
    let answer = api
        .create_token_request(&account, &PostParams::default(), &request)
        .await
        .map_err(|e| format!("failed to fetch token: {e}"))?;
    answer
        .status
        .map(|s| s.token)
        .ok_or_else(|| "failed to fetch token: the answer held no token".into())
}
