//! Removing everything a runtime made (`keg delete cluster`).

use std::path::Path;

use super::{Error, Result, Runtime, container::unmount, io_err, list_ids};
use crate::fsutil;

impl Runtime {
    /// Stops and removes every container and sandbox, then sweeps what a crash may have left
    /// (mounts under the root directory, network namespaces, cgroups), deletes the bridge if
    /// no other node uses it, and deletes the root directory. Goes on past errors and returns
    /// the first. The runtime is unusable afterwards.
    pub async fn remove_everything(&self) -> Result<()> {
        let mut first_error: Option<Error> = None;
        let mut note = |r: Result<()>| {
            if let Err(e) = r {
                tracing::warn!(error = %e, "removing everything");
                first_error.get_or_insert(e);
            }
        };
        for id in list_ids(&self.inner.root.join("containers")).unwrap_or_default() {
            note(self.remove_container(&id).await);
        }
        for id in list_ids(&self.inner.root.join("sandboxes")).unwrap_or_default() {
            note(self.remove_pod_sandbox(&id).await);
        }
        note(self.sweep().await);
        note(
            self.inner
                .network
                .remove_bridge_if_unused()
                .await
                .map_err(Error::from),
        );
        self.inner.cgroups.remove_if_empty(&self.inner.cgroup_root);
        let root = &self.inner.root;
        note(
            fsutil::remove_dir_all_if_exists(root)
                .map_err(io_err(format!("remove {}", root.display()))),
        );
        first_error.map_or(Ok(()), Err)
    }

    /// Leftovers of objects whose records are gone or unreadable.
    async fn sweep(&self) -> Result<()> {
        for mount in mounts_under(&self.inner.root)? {
            unmount(Path::new(&mount))?;
        }
        for id in list_ids(&self.inner.root.join("sandboxes"))? {
            let attachment = crate::net::Network::planned(&id);
            let _ = crate::net::ip(&["link", "del", &attachment.veth]).await;
            let _ = crate::net::ip(&["netns", "del", &attachment.netns]).await;
        }
        Ok(())
    }
}

/// Mount points at or below `root`, deepest first.
fn mounts_under(root: &Path) -> Result<Vec<String>> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").map_err(io_err("read mountinfo"))?;
    let prefix = root.display().to_string();
    let mut mounts: Vec<String> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| m.replace("\\040", " "))
        .filter(|m| m == &prefix || m.starts_with(&format!("{prefix}/")))
        .collect();
    mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
    mounts.dedup();
    Ok(mounts)
}
