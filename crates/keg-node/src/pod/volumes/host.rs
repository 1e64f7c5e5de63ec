//! Volumes on the host's own file system: hostPath (with its type checks), claims' PV
//! directories, tmpfs mounts, group ownership and unmounting.

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use kube::api::Api;
use nix::mount::{MntFlags, MsFlags};

use super::VolumeContext;
use crate::util::is_not_found;

/// Mounts a tmpfs at `dir` unless one is there already.
pub(crate) fn mount_tmpfs(dir: &Path, size: Option<u64>, mode: u32) -> Result<(), String> {
    if is_mount_point(dir) {
        return Ok(());
    }
    let mut options = format!("mode={mode:o}");
    if let Some(size) = size {
        options.push_str(&format!(",size={size}"));
    }
    nix::mount::mount(
        Some("tmpfs"),
        dir,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some(options.as_str()),
    )
    .map_err(|e| format!("mount tmpfs at {}: {e}", dir.display()))
}

/// A directory on another device than its parent is a mount point.
fn is_mount_point(dir: &Path) -> bool {
    let (Ok(meta), Some(parent)) = (std::fs::metadata(dir), dir.parent()) else {
        return false;
    };
    std::fs::metadata(parent).is_ok_and(|p| p.dev() != meta.dev())
}

/// A hostPath volume: checks (or creates) the path as its `type` says.
pub(crate) fn host_path(path: &str, type_: &str) -> Result<PathBuf, String> {
    let p = PathBuf::from(path);
    let meta = std::fs::metadata(&p);
    let fail = |what: &str| Err(format!("hostPath type check failed: {path} is not {what}"));
    match type_ {
        "" => {}
        "DirectoryOrCreate" => {
            if meta.is_err() {
                std::fs::create_dir_all(&p).map_err(|e| format!("create {path}: {e}"))?;
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))
                    .map_err(|e| e.to_string())?;
            } else if !meta.as_ref().is_ok_and(|m| m.is_dir()) {
                return fail("a directory");
            }
        }
        "Directory" if !meta.as_ref().is_ok_and(|m| m.is_dir()) => return fail("a directory"),
        "FileOrCreate" => {
            if meta.is_err() {
                if let Some(parent) = p.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
                }
                std::fs::File::create(&p).map_err(|e| format!("create {path}: {e}"))?;
            } else if !meta.as_ref().is_ok_and(|m| m.is_file()) {
                return fail("a file");
            }
        }
        "File" if !meta.as_ref().is_ok_and(|m| m.is_file()) => return fail("a file"),
        "Socket" if !meta.as_ref().is_ok_and(|m| m.file_type().is_socket()) => {
            return fail("a socket file");
        }
        "CharDevice" if !meta.as_ref().is_ok_and(|m| m.file_type().is_char_device()) => {
            return fail("a character device");
        }
        "BlockDevice" if !meta.as_ref().is_ok_and(|m| m.file_type().is_block_device()) => {
            return fail("a block device");
        }
        "Directory" | "File" | "Socket" | "CharDevice" | "BlockDevice" => {}
        other => return Err(format!("invalid HostPathType {other:?}")),
    }
    Ok(p)
}

/// The directory of the PV bound to a claim: its `hostPath.path` or `local.path`, made if
/// missing (a provisioner may leave that to first use).
pub(crate) async fn claim_path(cx: &VolumeContext<'_>, claim: &str) -> Result<PathBuf, String> {
    let ns = cx.namespace();
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(cx.client.clone(), ns);
    let pvc = match claims.get(claim).await {
        Ok(c) => c,
        Err(e) if is_not_found(&e) => {
            return Err(format!("persistentvolumeclaim {claim:?} not found"));
        }
        Err(e) => return Err(format!("error processing PVC {ns}/{claim}: {e}")),
    };
    let bound = pvc.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound");
    let volume = pvc
        .spec
        .as_ref()
        .and_then(|s| s.volume_name.clone())
        .unwrap_or_default();
    if !bound || volume.is_empty() {
        return Err(format!(
            "error processing PVC {ns}/{claim}: PVC is not bound"
        ));
    }
    let pvs: Api<PersistentVolume> = Api::all(cx.client.clone());
    let pv = pvs
        .get(&volume)
        .await
        .map_err(|e| format!("error processing PVC {ns}/{claim}: {e}"))?;
    let spec = pv.spec.unwrap_or_default();
    let path = spec
        .host_path
        .map(|h| h.path)
        .or(spec.local.map(|l| l.path))
        .ok_or_else(|| {
            format!("persistent volume {volume} is neither hostPath nor local, which keg's node agent cannot mount")
        })?;
    std::fs::create_dir_all(&path).map_err(|e| format!("create {path}: {e}"))?;
    Ok(PathBuf::from(path))
}

/// Gives every file under `dir` to group `gid`, readable and writable by it; directories get
/// the set-group-id bit so new files inherit the group. Errors are logged, not fatal.
pub(crate) fn chown_group(dir: &Path, gid: u32) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.file_type().is_symlink() {
            continue;
        }
        if let Err(e) = std::os::unix::fs::lchown(&path, None, Some(gid)) {
            tracing::warn!(path = %path.display(), error = %e, "fsGroup ownership");
        }
        let mut mode = meta.permissions().mode() | 0o060;
        if meta.is_dir() {
            mode |= 0o2010;
        }
        let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode & 0o7777));
        if meta.is_dir() {
            chown_group(&path, gid);
        }
    }
}

/// Unmounts every mount at or below `dir`, deepest first.
pub(crate) fn unmount_under(dir: &Path) -> std::io::Result<()> {
    let info = std::fs::read_to_string("/proc/self/mountinfo")?;
    let prefix = dir.display().to_string();
    let mut mounts: Vec<String> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| m.replace("\\040", " "))
        .filter(|m| m == &prefix || m.starts_with(&format!("{prefix}/")))
        .collect();
    mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
    mounts.dedup();
    for m in mounts {
        match nix::mount::umount2(Path::new(&m), MntFlags::MNT_DETACH) {
            Ok(()) | Err(nix::errno::Errno::EINVAL | nix::errno::Errno::ENOENT) => {}
            Err(e) => return Err(std::io::Error::other(format!("unmount {m}: {e}"))),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_path_types() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("made");
        let d = d.to_str().unwrap();
        assert!(
            host_path(d, "Directory")
                .unwrap_err()
                .contains("is not a directory")
        );
        host_path(d, "DirectoryOrCreate").unwrap();
        host_path(d, "Directory").unwrap();
        assert!(host_path(d, "File").unwrap_err().contains("is not a file"));
        let f = dir.path().join("sub/file");
        let f = f.to_str().unwrap();
        host_path(f, "FileOrCreate").unwrap();
        host_path(f, "File").unwrap();
        assert!(host_path(f, "Bogus").is_err());
        host_path("/does/not/exist", "").unwrap();
    }
}
