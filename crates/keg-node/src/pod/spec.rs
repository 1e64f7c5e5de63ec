//! A Kubernetes container as the runtime's `ContainerConfig`: command and args with `$(VAR)`
//! expansion, environment, mounts (volumes and the termination-message file), user and
//! groups, resources and capabilities. Errors are CreateContainerConfigError messages.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use k8s_openapi::api::core::v1::{Container, PodSecurityContext, SecurityContext};
use keg_runtime::{Capabilities, ContainerConfig, Mount, User};

use super::env::{EnvSource, container_env, expand};
use super::resources::container_resources;
use super::{PodContext, volumes};

/// Labels on runtime containers, to find a pod's containers again after a restart.
pub(crate) const POD_UID_LABEL: &str = "io.kubernetes.pod.uid";
/// The container's name in its pod.
pub(crate) const CONTAINER_NAME_LABEL: &str = "io.kubernetes.container.name";

/// The runtime configuration of slot `i`'s next instance.
pub(crate) async fn container_config(
    ctx: &PodContext,
    i: usize,
    attempt: i32,
) -> Result<ContainerConfig, String> {
    let slot = &ctx.slots[i];
    let container = &slot.spec;
    let allocatable = ctx.allocatable();
    let (pod_ip, host_ip) = (ctx.pod_ip(), ctx.host_ip());
    let source = EnvSource {
        pod: &ctx.pod,
        pod_ip: pod_ip.as_deref(),
        host_ip: host_ip.as_deref(),
        allocatable: &allocatable,
        client: &ctx.shared.client,
    };
    let env = container_env(&source, container).await?;
    let lookup = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let expand_all = |list: &Option<Vec<String>>| -> Vec<String> {
        list.iter().flatten().map(|s| expand(s, lookup)).collect()
    };
    let mut mounts = volumes::container_mounts(&ctx.volumes, container, &env)?;
    mounts.push(termination_log(ctx, container, attempt)?);
    let pod_security = ctx
        .pod
        .spec
        .as_ref()
        .and_then(|s| s.security_context.clone())
        .unwrap_or_default();
    let security = container.security_context.clone().unwrap_or_default();
    let user = user(&pod_security, &security);
    check_non_root(ctx, container, &pod_security, &security, user)?;
    let mut groups: Vec<u32> = pod_security
        .supplemental_groups
        .iter()
        .flatten()
        .map(|g| *g as u32)
        .collect();
    groups.extend(pod_security.fs_group.map(|g| g as u32));
    let caps = security.capabilities.clone().unwrap_or_default();
    let mut labels = BTreeMap::new();
    labels.insert(POD_UID_LABEL.to_string(), ctx.uid.clone());
    labels.insert(CONTAINER_NAME_LABEL.to_string(), container.name.clone());
    Ok(ContainerConfig {
        name: container.name.clone(),
        image: slot
            .image
            .as_ref()
            .map(|i| i.id.clone())
            .unwrap_or_default(),
        command: expand_all(&container.command),
        args: expand_all(&container.args),
        env,
        working_dir: container.working_dir.clone().filter(|w| !w.is_empty()),
        user,
        supplemental_groups: groups,
        mounts,
        resources: container_resources(container),
        privileged: security.privileged == Some(true),
        capabilities: Capabilities {
            add: caps.add.unwrap_or_default(),
            drop: caps.drop.unwrap_or_default(),
        },
        log_path: ctx.log_path(&container.name, attempt),
        attempt: attempt as u32,
        labels,
    })
}

/// runAsUser and runAsGroup, the container's over the pod's.
fn user(pod: &PodSecurityContext, container: &SecurityContext) -> Option<User> {
    let uid = container.run_as_user.or(pod.run_as_user)?;
    let gid = container.run_as_group.or(pod.run_as_group);
    Some(User {
        uid: uid as u32,
        gid: gid.map(|g| g as u32),
    })
}

/// runAsNonRoot, checked as the kubelet checks it (the image's user when none is set).
fn check_non_root(
    ctx: &PodContext,
    container: &Container,
    pod: &PodSecurityContext,
    security: &SecurityContext,
    user: Option<User>,
) -> Result<(), String> {
    if security.run_as_non_root.or(pod.run_as_non_root) != Some(true) {
        return Ok(());
    }
    let who = format!("(pod: {:?}, container: {})", ctx.pod_ref(), container.name);
    if let Some(u) = user {
        return match u.uid {
            0 => Err(format!(
                "container's runAsUser breaks non-root policy {who}"
            )),
            _ => Ok(()),
        };
    }
    let image_user = ctx
        .slots
        .iter()
        .find(|s| s.spec.name == container.name)
        .and_then(|s| s.image.as_ref())
        .map(|i| i.config.user.clone())
        .unwrap_or_default();
    let name = image_user.split(':').next().unwrap_or_default();
    match name.parse::<u32>() {
        _ if name.is_empty() || name == "root" => Err(format!(
            "container has runAsNonRoot and image will run as root {who}"
        )),
        Ok(0) => Err(format!(
            "container has runAsNonRoot and image will run as root {who}"
        )),
        Ok(_) => Ok(()),
        Err(_) => Err(format!(
            "container has runAsNonRoot and image has non-numeric user ({name}), cannot verify user is non-root {who}"
        )),
    }
}

/// The file behind terminationMessagePath, one per attempt, writable by any user.
fn termination_log(ctx: &PodContext, container: &Container, attempt: i32) -> Result<Mount, String> {
    let path = termination_log_path(ctx, &container.name, attempt);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("create {}: {e}", parent.display()))?;
    }
    std::fs::write(&path, b"").map_err(|e| format!("create {}: {e}", path.display()))?;
    let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666));
    let target = container
        .termination_message_path
        .clone()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "/dev/termination-log".into());
    Ok(Mount {
        host_path: path,
        container_path: target,
        readonly: false,
    })
}

/// Where an attempt's termination message is kept on the host.
pub(crate) fn termination_log_path(ctx: &PodContext, name: &str, attempt: i32) -> PathBuf {
    volumes::pod_dir(&ctx.shared.config.root_dir, &ctx.uid)
        .join("containers")
        .join(name)
        .join(format!("{attempt}-termination-log"))
}
