//! Pod volumes, laid out as the kubelet lays them out:
//! `<root>/pods/<uid>/volumes/kubernetes.io~<plugin>/<name>`. emptyDir (on disk, or tmpfs
//! for `medium: Memory`), configMap, secret (tmpfs, so secrets stay off disk), downwardAPI and
//! projected through the atomic writer; hostPath and persistentVolumeClaim (the bound PV's
//! `hostPath.path` or `local.path`) are the host's own directories.

mod atomic;
mod host;
mod sources;

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, Pod, Volume};
use keg_runtime::Mount;

use crate::pod::env;

/// What volumes are made from.
pub(crate) struct VolumeContext<'a> {
    /// The pod.
    pub(crate) pod: &'a Pod,
    /// The agent's root directory.
    pub(crate) root: &'a Path,
    /// API access.
    pub(crate) client: &'a kube::Client,
    /// The pod's address, for the downward API.
    pub(crate) pod_ip: Option<&'a str>,
    /// The node's address, for the downward API.
    pub(crate) host_ip: Option<&'a str>,
    /// The node's allocatable resources, for the downward API.
    pub(crate) allocatable: &'a BTreeMap<String, String>,
    /// The node's memory, bounding memory-backed emptyDirs without a size limit.
    pub(crate) node_memory: Option<u64>,
    /// The node is a Fargate node, where the host's file system is out of reach.
    pub(crate) fargate: bool,
}

impl VolumeContext<'_> {
    fn namespace(&self) -> &str {
        self.pod.metadata.namespace.as_deref().unwrap_or("default")
    }
}

/// A volume that could not be set up; shown as the FailedMount event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MountError {
    /// The volume's name.
    pub(crate) volume: String,
    /// What went wrong, in the kubelet's words.
    pub(crate) message: String,
}

impl std::fmt::Display for MountError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "MountVolume.SetUp failed for volume {:?} : {}",
            self.volume, self.message
        )
    }
}

/// Where each volume of a pod is on the host, and whether it is read-only (configMap,
/// secret, downwardAPI and projected volumes always are, as upstream mounts them).
#[derive(Clone, Debug, Default)]
pub(crate) struct PodVolumes {
    paths: HashMap<String, (PathBuf, bool)>,
}

/// The directory of a pod's volumes and other files.
pub(crate) fn pod_dir(root: &Path, uid: &str) -> PathBuf {
    root.join("pods").join(uid)
}

/// Sets up (or refreshes) every volume of the pod.
pub(crate) async fn prepare(cx: &VolumeContext<'_>) -> Result<PodVolumes, MountError> {
    let mut out = PodVolumes::default();
    let volumes = cx.pod.spec.iter().flat_map(|s| s.volumes.iter().flatten());
    for volume in volumes {
        let fail = |message: String| MountError {
            volume: volume.name.clone(),
            message,
        };
        let (path, readonly) = prepare_one(cx, volume).await.map_err(fail)?;
        out.paths.insert(volume.name.clone(), (path, readonly));
    }
    Ok(out)
}

fn plugin_dir(cx: &VolumeContext<'_>, plugin: &str, name: &str) -> PathBuf {
    let uid = cx.pod.metadata.uid.as_deref().unwrap_or_default();
    pod_dir(cx.root, uid)
        .join("volumes")
        .join(format!("kubernetes.io~{plugin}"))
        .join(name)
}

async fn prepare_one(cx: &VolumeContext<'_>, v: &Volume) -> Result<(PathBuf, bool), String> {
    let io = |e: std::io::Error| e.to_string();
    if let Some(empty) = &v.empty_dir {
        let dir = plugin_dir(cx, "empty-dir", &v.name);
        std::fs::create_dir_all(&dir).map_err(io)?;
        if empty.medium.as_deref() == Some("Memory") {
            let limit = empty
                .size_limit
                .as_ref()
                .and_then(|q| keg_api::quantity::parse_bytes(&q.0).ok());
            host::mount_tmpfs(&dir, limit.or(cx.node_memory), 0o777)?;
        }
        // World-writable as upstream makes it, so any container user can use it.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).map_err(io)?;
        return Ok((dir, false));
    }
    let (plugin, files) = if let Some(cm) = &v.config_map {
        let optional = cm.optional == Some(true);
        let files =
            sources::config_map_files(cx, &cm.name, cm.items.as_ref(), cm.default_mode, optional);
        ("configmap", files.await?)
    } else if let Some(s) = &v.secret {
        let name = s.secret_name.clone().unwrap_or_default();
        let optional = s.optional == Some(true);
        let files = sources::secret_files(cx, &name, s.items.as_ref(), s.default_mode, optional);
        ("secret", files.await?)
    } else if let Some(d) = &v.downward_api {
        let items = d.items.as_deref().unwrap_or_default();
        (
            "downward-api",
            sources::downward_files(cx, items, d.default_mode)?,
        )
    } else if let Some(p) = &v.projected {
        let sources = p.sources.as_deref().unwrap_or_default();
        (
            "projected",
            sources::projected_files(cx, sources, p.default_mode).await?,
        )
    } else if let Some(h) = &v.host_path {
        if cx.fargate {
            // As Fargate refuses it: a serverless pod has no host to share files with.
            return Err(format!(
                "{} is of an unsupported volume Type on Fargate",
                v.name
            ));
        }
        return host::host_path(&h.path, h.type_.as_deref().unwrap_or_default())
            .map(|p| (p, false));
    } else if let Some(claim) = &v.persistent_volume_claim {
        let path = host::claim_path(cx, &claim.claim_name).await?;
        return Ok((path, claim.read_only == Some(true)));
    } else {
        return Err("volume type not supported by keg's node agent".into());
    };
    let dir = plugin_dir(cx, plugin, &v.name);
    std::fs::create_dir_all(&dir).map_err(io)?;
    if plugin == "secret" || plugin == "projected" {
        host::mount_tmpfs(&dir, None, 0o755)?;
    }
    atomic::write(&dir, &files).map_err(io)?;
    Ok((dir, true))
}

/// A container's bind mounts for its volumeMounts. `env` expands `subPathExpr`.
pub(crate) fn container_mounts(
    volumes: &PodVolumes,
    container: &Container,
    env: &[(String, String)],
) -> Result<Vec<Mount>, String> {
    let mut mounts = Vec::new();
    for m in container.volume_mounts.iter().flatten() {
        let (base, volume_readonly) = volumes.paths.get(&m.name).ok_or_else(|| {
            format!(
                "cannot find volume {:?} to mount into container {:?}",
                m.name, container.name
            )
        })?;
        let sub = match (&m.sub_path, &m.sub_path_expr) {
            (Some(p), _) if !p.is_empty() => Some(p.clone()),
            (_, Some(expr)) if !expr.is_empty() => Some(env::expand(expr, |name| {
                env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
            })),
            _ => None,
        };
        let host_path = match sub {
            Some(sub) => {
                atomic::check_relative(&sub).map_err(|e| format!("subPath {e}"))?;
                let path = base.join(&sub);
                // As upstream: a missing subPath is made as a directory.
                if !path.exists() {
                    std::fs::create_dir_all(&path)
                        .map_err(|e| format!("create subPath {sub}: {e}"))?;
                }
                path
            }
            None => base.clone(),
        };
        mounts.push(Mount {
            host_path,
            container_path: m.mount_path.clone(),
            readonly: m.read_only == Some(true) || *volume_readonly,
        });
    }
    Ok(mounts)
}

/// Gives the pod's writable volumes to its `fsGroup`, as the kubelet's volume ownership does.
pub(crate) fn apply_fs_group(root: &Path, uid: &str, gid: u32) {
    let dir = pod_dir(root, uid).join("volumes");
    host::chown_group(&dir, gid);
}

/// Unmounts and deletes everything of a pod under the root directory.
pub(crate) fn remove_pod_dir(root: &Path, uid: &str) -> std::io::Result<()> {
    let dir = pod_dir(root, uid);
    host::unmount_under(&dir)?;
    match std::fs::remove_dir_all(&dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Unmounts every mount under `dir` (a whole agent's pods, when cleaning up).
pub(crate) fn unmount_all_under(dir: &Path) -> std::io::Result<()> {
    host::unmount_under(dir)
}
