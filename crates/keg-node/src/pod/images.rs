//! Making sure a container's image is present, as the kubelet's image manager does:
//! imagePullPolicy, credentials from imagePullSecrets, back-off, and the events and waiting
//! reasons ErrImagePull, ImagePullBackOff and ErrImageNeverPull with the registry's error.

use std::time::Instant as StdInstant;

use base64::Engine;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use serde_json::Value;
use tokio::time::Instant;

use super::PodContext;
use crate::events::EventType::{Normal, Warning};

/// The policy in force: the spec's, else upstream's default (Always for `:latest` or no tag).
pub(crate) fn pull_policy(image: &str, policy: Option<&str>) -> String {
    if let Some(p) = policy.filter(|p| !p.is_empty()) {
        return p.to_string();
    }
    if image.contains('@') {
        return "IfNotPresent".into();
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.split_once(':') {
        Some((_, "latest")) | None => "Always".into(),
        Some(_) => "IfNotPresent".into(),
    }
}

/// The registry host of a reference, as credentials name it (`docker.io` for Docker Hub).
pub(crate) fn registry_of(image: &str) -> String {
    match image.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            first.to_string()
        }
        _ => "docker.io".into(),
    }
}

/// A reference as the image store names images: `busybox` is
/// `docker.io/library/busybox:latest`.
pub(crate) fn normalize(image: &str) -> String {
    let registry = registry_of(image);
    let mut full = if image.starts_with(&format!("{registry}/")) {
        image.to_string()
    } else if image.contains('/') {
        format!("docker.io/{image}")
    } else {
        format!("docker.io/library/{image}")
    };
    let last = full.rsplit('/').next().unwrap_or_default();
    if !last.contains(':') && !full.contains('@') {
        full.push_str(":latest");
    }
    full
}

/// Finds credentials for `registry` in a `.dockerconfigjson` or `.dockercfg` document.
pub(crate) fn credentials_in(doc: &Value, registry: &str) -> Option<(String, String)> {
    let auths = doc.get("auths").unwrap_or(doc).as_object()?;
    let normalize = |key: &str| {
        let host = key
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap_or_default()
            .to_string();
        match host.as_str() {
            "index.docker.io" | "registry-1.docker.io" => "docker.io".to_string(),
            _ => host,
        }
    };
    let (_, entry) = auths.iter().find(|(k, _)| normalize(k) == registry)?;
    let user = entry.get("username").and_then(Value::as_str);
    let pass = entry.get("password").and_then(Value::as_str);
    if let (Some(u), Some(p)) = (user, pass) {
        return Some((u.to_string(), p.to_string()));
    }
    let auth = entry.get("auth").and_then(Value::as_str)?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(auth)
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

/// Credentials for `image` from the pod's imagePullSecrets (the first that has some).
async fn pull_credentials(ctx: &PodContext, image: &str) -> Option<(String, String)> {
    let spec = ctx.pod.spec.as_ref()?;
    let registry = registry_of(image);
    let api: Api<Secret> = Api::namespaced(ctx.shared.client.clone(), ctx.namespace());
    for reference in spec.image_pull_secrets.iter().flatten() {
        let Ok(secret) = api.get(&reference.name).await else {
            continue;
        };
        for key in [".dockerconfigjson", ".dockercfg"] {
            let doc = secret
                .data
                .as_ref()
                .and_then(|d| d.get(key))
                .and_then(|b| serde_json::from_slice::<Value>(&b.0).ok());
            if let Some(found) = doc.and_then(|d| credentials_in(&d, &registry)) {
                return Some(found);
            }
        }
    }
    None
}

/// Makes sure slot `i`'s image is present; on failure the slot shows why (waiting reason
/// and message) and false is returned.
pub(crate) async fn ensure_image(ctx: &mut PodContext, i: usize) -> bool {
    let image = ctx.slots[i].spec.image.clone().unwrap_or_default();
    let policy = pull_policy(&image, ctx.slots[i].spec.image_pull_policy.as_deref());
    let store = ctx.shared.runtime.images().clone();
    let present = store.resolve(&image).ok().flatten();
    let name = ctx.slots[i].name().to_string();
    match (policy.as_str(), present) {
        ("Never", None) => {
            let message =
                format!("Container image {image:?} is not present with pull policy of Never");
            ctx.event_for(&name, Warning, "ErrImageNeverPull", &message);
            ctx.slots[i].wait_for("ErrImageNeverPull", Some(message));
            return false;
        }
        ("Never" | "IfNotPresent", Some(found)) => {
            let message = format!("Container image {image:?} already present on machine");
            ctx.event_for(&name, Normal, "Pulled", &message);
            ctx.slots[i].image = Some(found);
            return true;
        }
        _ => {}
    }
    if let Some(left) = ctx.slots[i].pull_backoff.remaining(Instant::now()) {
        // Looked at again when the back-off ends, not before.
        ctx.slots[i].retry_at = Some(Instant::now() + left);
        let previous = ctx.slots[i].pull_error.clone().unwrap_or_default();
        // Once per back-off, not on every look at the pod.
        if ctx.slots[i].waiting_reason() != Some("ImagePullBackOff") {
            let backoff = format!("Back-off pulling image {image:?}");
            ctx.event_for(&name, Normal, "BackOff", &backoff);
            ctx.event_for(&name, Warning, "Failed", "Error: ImagePullBackOff");
        }
        let message = format!("Back-off pulling image {image:?}: ErrImagePull: {previous}");
        ctx.slots[i].wait_for("ImagePullBackOff", Some(message));
        return false;
    }
    pull(ctx, i, &image).await
}

/// Pulls slot `i`'s image, with the Pulling and Pulled (or Failed) events.
async fn pull(ctx: &mut PodContext, i: usize, image: &str) -> bool {
    let name = ctx.slots[i].name().to_string();
    let pulling = format!("Pulling image {image:?}");
    ctx.event_for(&name, Normal, "Pulling", &pulling);
    let auth = pull_credentials(ctx, image).await;
    let started = StdInstant::now();
    let insecure = ctx.shared.config.insecure_registries.clone();
    let store = ctx.shared.runtime.images().clone();
    match store.pull(image, auth, &insecure).await {
        Ok(pulled) => {
            let took = started.elapsed().as_secs_f64();
            let message = format!(
                "Successfully pulled image {image:?} in {took:.3}s ({took:.3}s including waiting). Image size: {} bytes.",
                pulled.size
            );
            ctx.event_for(&name, Normal, "Pulled", &message);
            let slot = &mut ctx.slots[i];
            slot.image = Some(pulled);
            slot.pull_error = None;
            true
        }
        Err(e) => {
            let error = e.to_string();
            let failed = format!("Failed to pull image {image:?}: {error}");
            ctx.event_for(&name, Warning, "Failed", &failed);
            ctx.event_for(&name, Warning, "Failed", "Error: ErrImagePull");
            let slot = &mut ctx.slots[i];
            slot.pull_backoff.next(Instant::now());
            // ErrImagePull shows for half the back-off, ImagePullBackOff for the rest, as
            // the kubelet's pod worker (re-syncing after an error) shows them in turn.
            slot.retry_at = Some(Instant::now() + slot.pull_backoff.delay() / 2);
            slot.pull_error = Some(error.clone());
            slot.wait_for("ErrImagePull", Some(error));
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_pull_policies() {
        assert_eq!(pull_policy("busybox", None), "Always");
        assert_eq!(pull_policy("busybox:latest", None), "Always");
        assert_eq!(pull_policy("busybox:1.36", None), "IfNotPresent");
        assert_eq!(pull_policy("localhost:5000/app", None), "Always");
        assert_eq!(pull_policy("localhost:5000/app:v1", None), "IfNotPresent");
        assert_eq!(pull_policy("app@sha256:abc", None), "IfNotPresent");
        assert_eq!(pull_policy("busybox", Some("Never")), "Never");
    }

    #[test]
    fn registries_and_credentials() {
        assert_eq!(registry_of("busybox"), "docker.io");
        assert_eq!(registry_of("library/busybox"), "docker.io");
        assert_eq!(registry_of("127.0.0.1:5000/app:v1"), "127.0.0.1:5000");
        assert_eq!(registry_of("ghcr.io/x/y"), "ghcr.io");
        assert_eq!(normalize("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(normalize("me/app:v1"), "docker.io/me/app:v1");
        assert_eq!(normalize("127.0.0.1:5000/a/b"), "127.0.0.1:5000/a/b:latest");
        assert_eq!(
            normalize("docker.io/library/x@sha256:ab"),
            "docker.io/library/x@sha256:ab"
        );
        let doc = serde_json::json!({"auths": {
            "https://index.docker.io/v1/": {"auth": "dXNlcjpwYXNz"},
            "127.0.0.1:5000": {"username": "u", "password": "p"}
        }});
        assert_eq!(
            credentials_in(&doc, "docker.io"),
            Some(("user".into(), "pass".into()))
        );
        assert_eq!(
            credentials_in(&doc, "127.0.0.1:5000"),
            Some(("u".into(), "p".into()))
        );
        assert_eq!(credentials_in(&doc, "ghcr.io"), None);
    }
}
