//! Cgroups: detecting v1 or v2 at run time, pod cgroups sized to the pod, OOM counters.
//!
//! crun creates and limits each container's cgroup from the OCI config; keg creates the pod
//! cgroup above them (as the kubelet does) so the pod as a whole is bounded, and removes it.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// Errors of cgroup handling.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A cgroup file or directory could not be read or written.
    #[error("cgroup {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The machine's cgroup layout is not one keg understands.
    #[error("unsupported cgroup setup: {0}")]
    Unsupported(String),
}

/// Result of cgroup operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// CPU and memory bounds of a pod or container.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Resources {
    /// CPU limit in millicores (1000 = one CPU), as a CFS quota.
    pub cpu_limit_millis: Option<u64>,
    /// CPU request in millicores, as the relative weight (`cpu.shares` / `cpu.weight`).
    pub cpu_request_millis: Option<u64>,
    /// Memory limit in bytes.
    pub memory_limit_bytes: Option<u64>,
}

/// CFS period keg uses, as the kubelet does.
pub(crate) const CPU_PERIOD_US: u64 = 100_000;

impl Resources {
    /// CFS quota for the period [`CPU_PERIOD_US`]; at least 1 ms, the kernel's minimum.
    pub(crate) fn cpu_quota_us(&self) -> Option<u64> {
        self.cpu_limit_millis
            .map(|m| (m * CPU_PERIOD_US / 1000).max(1000))
    }

    /// `cpu.shares` the kubelet derives from a request (2 when none).
    pub(crate) fn cpu_shares(&self) -> Option<u64> {
        self.cpu_request_millis.map(|m| (m * 1024 / 1000).max(2))
    }
}

/// One mounted v1 hierarchy.
#[derive(Clone, Debug)]
pub(crate) struct Hierarchy {
    mount: PathBuf,
    controllers: Vec<String>,
}

/// The machine's cgroup layout, detected once.
#[derive(Clone, Debug)]
pub(crate) enum Cgroups {
    /// cgroup v1: one hierarchy per controller set (possibly beside an empty v2 mount).
    V1 {
        /// The mounted v1 hierarchies.
        hierarchies: Vec<Hierarchy>,
        /// A v2 hierarchy at `/sys/fs/cgroup/unified` holds controllers, which crun refuses
        /// ("hybrid mode not supported"); crun then runs with that mount hidden.
        hybrid_v2_busy: bool,
    },
    /// cgroup v2, unified at `/sys/fs/cgroup`.
    V2 {
        /// The unified hierarchy's mount point.
        root: PathBuf,
    },
}

const CGROUP_ROOT: &str = "/sys/fs/cgroup";
const CGROUP2_MAGIC: i64 = 0x6367_7270;
const KNOWN_CONTROLLERS: [&str; 13] = [
    "cpu",
    "cpuacct",
    "cpuset",
    "memory",
    "devices",
    "freezer",
    "net_cls",
    "net_prio",
    "blkio",
    "perf_event",
    "hugetlb",
    "pids",
    "rdma",
];

impl Cgroups {
    /// Reads the mount table to find which cgroup version the machine runs.
    pub(crate) fn detect() -> Result<Self> {
        let root = Path::new(CGROUP_ROOT);
        if fs_type(root) == Some(CGROUP2_MAGIC) {
            return Ok(Cgroups::V2 {
                root: root.to_path_buf(),
            });
        }
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
            .map_err(io_err(Path::new("mountinfo")))?;
        let mut hierarchies: Vec<Hierarchy> = Vec::new();
        for line in mountinfo.lines() {
            let Some((left, right)) = line.split_once(" - ") else {
                continue;
            };
            let mut r = right.split(' ');
            if r.next() != Some("cgroup") {
                continue;
            }
            let options = r.nth(1).unwrap_or("");
            let mount = PathBuf::from(left.split(' ').nth(4).unwrap_or(""));
            let controllers: Vec<String> = options
                .split(',')
                .filter(|o| KNOWN_CONTROLLERS.contains(o) || o.starts_with("name="))
                .map(str::to_string)
                .collect();
            if !hierarchies.iter().any(|h| h.controllers == controllers) {
                hierarchies.push(Hierarchy { mount, controllers });
            }
        }
        if !hierarchies
            .iter()
            .any(|h| h.controllers.iter().any(|c| c == "memory"))
        {
            return Err(Error::Unsupported(
                "no cgroup v2 at /sys/fs/cgroup and no v1 memory hierarchy".into(),
            ));
        }
        let unified = root.join("unified");
        let hybrid_v2_busy = fs_type(&unified) == Some(CGROUP2_MAGIC)
            && std::fs::read_to_string(unified.join("cgroup.controllers"))
                .is_ok_and(|c| !c.trim().is_empty());
        Ok(Cgroups::V1 {
            hierarchies,
            hybrid_v2_busy,
        })
    }

    /// Whether crun must run with the busy v2 mount hidden (see [`Cgroups::V1`]).
    pub(crate) fn crun_needs_private_view(&self) -> bool {
        matches!(
            self,
            Cgroups::V1 {
                hybrid_v2_busy: true,
                ..
            }
        )
    }

    /// Directories of cgroup `path` (absolute, e.g. `/keg/pod<uid>`) in every hierarchy.
    fn dirs(&self, path: &str) -> Vec<PathBuf> {
        let rel = path.trim_start_matches('/');
        match self {
            Cgroups::V1 { hierarchies, .. } => {
                hierarchies.iter().map(|h| h.mount.join(rel)).collect()
            }
            Cgroups::V2 { root } => vec![root.join(rel)],
        }
    }

    fn v1_dir(&self, controller: &str, path: &str) -> Option<PathBuf> {
        match self {
            Cgroups::V1 { hierarchies, .. } => hierarchies
                .iter()
                .find(|h| h.controllers.iter().any(|c| c == controller))
                .map(|h| h.mount.join(path.trim_start_matches('/'))),
            Cgroups::V2 { .. } => None,
        }
    }

    /// Creates cgroup `path` with the given limits.
    pub(crate) fn create(&self, path: &str, resources: &Resources) -> Result<()> {
        match self {
            Cgroups::V1 { .. } => {
                // Only the controllers that carry limits; crun creates the rest on demand
                // (and initialises cpuset, which an empty directory would break).
                for controller in ["memory", "cpu", "pids"] {
                    if let Some(dir) = self.v1_dir(controller, path) {
                        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
                    }
                }
                if let (Some(dir), Some(limit)) =
                    (self.v1_dir("memory", path), resources.memory_limit_bytes)
                {
                    write(&dir.join("memory.limit_in_bytes"), &limit.to_string())?;
                }
                if let Some(dir) = self.v1_dir("cpu", path) {
                    if let Some(quota) = resources.cpu_quota_us() {
                        write(&dir.join("cpu.cfs_period_us"), &CPU_PERIOD_US.to_string())?;
                        write(&dir.join("cpu.cfs_quota_us"), &quota.to_string())?;
                    }
                    if let Some(shares) = resources.cpu_shares() {
                        write(&dir.join("cpu.shares"), &shares.to_string())?;
                    }
                }
                Ok(())
            }
            Cgroups::V2 { root } => create_v2(root, path, resources),
        }
    }

    /// The memory limit of cgroup `path`, if it has one.
    pub(crate) fn memory_limit(&self, path: &str) -> Option<u64> {
        let file = match self {
            Cgroups::V1 { .. } => self.v1_dir("memory", path)?.join("memory.limit_in_bytes"),
            Cgroups::V2 { root } => root.join(path.trim_start_matches('/')).join("memory.max"),
        };
        std::fs::read_to_string(file).ok()?.trim().parse().ok()
    }

    /// What cgroup `path` has used: CPU time in total, and memory now (the working set:
    /// usage less inactive file pages, as the kubelet reports it).
    pub(crate) fn usage(&self, path: &str) -> Option<CgroupUsage> {
        let read = |file: PathBuf| std::fs::read_to_string(file).ok();
        let stat_value = |text: &str, key: &str| -> Option<u64> {
            text.lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok())
        };
        let (cpu_nanos, usage, stat, inactive_key) = match self {
            Cgroups::V1 { .. } => {
                let cpu = read(self.v1_dir("cpuacct", path)?.join("cpuacct.usage"))?;
                let memory = self.v1_dir("memory", path)?;
                (
                    cpu.trim().parse().ok()?,
                    read(memory.join("memory.usage_in_bytes"))?
                        .trim()
                        .parse::<u64>()
                        .ok()?,
                    read(memory.join("memory.stat")).unwrap_or_default(),
                    "total_inactive_file",
                )
            }
            Cgroups::V2 { root } => {
                let dir = root.join(path.trim_start_matches('/'));
                let cpu = read(dir.join("cpu.stat"))?;
                (
                    stat_value(&cpu, "usage_usec")? * 1000,
                    read(dir.join("memory.current"))?
                        .trim()
                        .parse::<u64>()
                        .ok()?,
                    read(dir.join("memory.stat")).unwrap_or_default(),
                    "inactive_file",
                )
            }
        };
        let inactive: u64 = stat_value(&stat, inactive_key).unwrap_or(0);
        Some(CgroupUsage {
            cpu_nanos,
            memory_working_set: usage.saturating_sub(inactive),
        })
    }

    /// The file whose `oom_kill` line counts OOM kills in cgroup `path`.
    pub(crate) fn oom_events_file(&self, path: &str) -> Option<PathBuf> {
        match self {
            Cgroups::V1 { .. } => Some(self.v1_dir("memory", path)?.join("memory.oom_control")),
            Cgroups::V2 { root } => Some(
                root.join(path.trim_start_matches('/'))
                    .join("memory.events"),
            ),
        }
    }

    /// Removes cgroup `path` and everything below it in every hierarchy, killing processes
    /// still inside (they can only be leftovers of this pod's containers).
    pub(crate) fn remove(&self, path: &str) -> Result<()> {
        for dir in self.dirs(path) {
            remove_tree(&dir)?;
        }
        Ok(())
    }

    /// Removes cgroup `path` if it is empty (no children, no processes); used for the parent.
    pub(crate) fn remove_if_empty(&self, path: &str) {
        for dir in self.dirs(path) {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// What a cgroup has used (see [`Cgroups::usage`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CgroupUsage {
    /// CPU time used since the cgroup was made, in nanoseconds.
    pub cpu_nanos: u64,
    /// Memory in use now, less what the kernel may reclaim at once, in bytes.
    pub memory_working_set: u64,
}

/// Reads the `oom_kill` counter from a `memory.oom_control` or `memory.events` file.
pub(crate) fn read_oom_kills(file: &Path) -> u64 {
    std::fs::read_to_string(file)
        .ok()
        .and_then(|text| {
            text.lines().find_map(|l| {
                l.strip_prefix("oom_kill ")
                    .and_then(|n| n.trim().parse().ok())
            })
        })
        .unwrap_or(0)
}

fn fs_type(path: &Path) -> Option<i64> {
    nix::sys::statfs::statfs(path)
        .ok()
        .map(|s| s.filesystem_type().0)
}

fn write(file: &Path, value: &str) -> Result<()> {
    std::fs::write(file, value).map_err(io_err(file))
}

fn create_v2(root: &Path, path: &str, resources: &Resources) -> Result<()> {
    let rel = path.trim_start_matches('/');
    // Controllers must be enabled in every ancestor's subtree_control for the leaf to get them.
    let mut dir = root.to_path_buf();
    for part in Path::new(rel).components() {
        for controller in ["+cpu", "+memory", "+pids"] {
            // A controller the kernel lacks is not fatal; the limits below will say so.
            let _ = std::fs::write(dir.join("cgroup.subtree_control"), controller);
        }
        dir.push(part);
        if !dir.is_dir() {
            std::fs::create_dir(&dir).map_err(io_err(&dir))?;
        }
    }
    if let Some(limit) = resources.memory_limit_bytes {
        write(&dir.join("memory.max"), &limit.to_string())?;
    }
    if let Some(quota) = resources.cpu_quota_us() {
        write(&dir.join("cpu.max"), &format!("{quota} {CPU_PERIOD_US}"))?;
    }
    if let Some(shares) = resources.cpu_shares() {
        // The conversion the kubelet and runc use from v1 shares to v2 weight.
        let weight = 1 + ((shares.clamp(2, 262_144) - 2) * 9999) / 262_142;
        write(&dir.join("cpu.weight"), &weight.to_string())?;
    }
    Ok(())
}

fn remove_tree(dir: &Path) -> Result<()> {
    if !dir.is_dir() {
        return Ok(());
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                remove_tree(&entry.path())?;
            }
        }
    }
    for attempt in 0..50 {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) if attempt == 49 => {
                return Err(Error::Io {
                    path: dir.to_path_buf(),
                    source: e,
                });
            }
            Err(_) => {
                kill_members(dir);
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
    Ok(())
}

fn kill_members(dir: &Path) {
    let Ok(procs) = std::fs::read_to_string(dir.join("cgroup.procs")) else {
        return;
    };
    for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_settings_follow_the_kubelet() {
        let r = Resources {
            cpu_limit_millis: Some(250),
            cpu_request_millis: Some(100),
            memory_limit_bytes: None,
        };
        assert_eq!(r.cpu_quota_us(), Some(25_000));
        assert_eq!(r.cpu_shares(), Some(102));
        let tiny = Resources {
            cpu_limit_millis: Some(1),
            cpu_request_millis: Some(1),
            memory_limit_bytes: None,
        };
        assert_eq!(
            (tiny.cpu_quota_us(), tiny.cpu_shares()),
            (Some(1000), Some(2))
        );
    }

    #[test]
    fn reads_oom_kill_counters() {
        let dir = std::env::temp_dir().join(format!("keg-oom-{}", std::process::id()));
        std::fs::write(&dir, "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n").unwrap();
        assert_eq!(read_oom_kills(&dir), 3);
        std::fs::remove_file(&dir).unwrap();
    }
}
