//! Facts about this machine that nodes report: kernel, OS image, ids, CPUs, memory, disk.

use std::path::Path;

use k8s_openapi::api::core::v1::NodeSystemInfo;

/// What every node of this agent reports about the machine (all nodes share it).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct MachineFacts {
    /// `nodeInfo` as the kubelet fills it.
    pub(crate) info: NodeSystemInfo,
    /// Logical CPUs.
    pub(crate) cpus: u64,
    /// Physical memory in bytes.
    pub(crate) memory_bytes: u64,
    /// Size of the file system holding the agent's root directory, in bytes.
    pub(crate) disk_bytes: u64,
}

impl MachineFacts {
    /// Reads the facts; anything unreadable is reported empty rather than failing.
    pub(crate) fn read(root_dir: &Path, runtime_version: String) -> Self {
        let first_line = |path: &str| {
            std::fs::read_to_string(path)
                .ok()
                .and_then(|s| s.lines().next().map(|l| l.trim().to_string()))
                .unwrap_or_default()
        };
        let machine_id = first_line("/etc/machine-id");
        let product_uuid = first_line("/sys/class/dmi/id/product_uuid");
        let info = NodeSystemInfo {
            architecture: go_arch().into(),
            boot_id: first_line("/proc/sys/kernel/random/boot_id"),
            container_runtime_version: runtime_version,
            kernel_version: first_line("/proc/sys/kernel/osrelease"),
            kube_proxy_version: String::new(),
            kubelet_version: crate::KUBELET_VERSION.into(),
            system_uuid: if product_uuid.is_empty() {
                machine_id.clone()
            } else {
                product_uuid
            },
            machine_id,
            operating_system: "linux".into(),
            os_image: os_image(),
            swap: None,
        };
        Self {
            info,
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get() as u64),
            memory_bytes: mem_total().unwrap_or(0),
            disk_bytes: disk_size(root_dir).unwrap_or(0),
        }
    }
}

/// The architecture as Go (and so Kubernetes) names it.
pub(crate) fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// `PRETTY_NAME` of os-release, as the kubelet reports it.
fn os_image() -> String {
    let text = std::fs::read_to_string("/etc/os-release")
        .or_else(|_| std::fs::read_to_string("/usr/lib/os-release"))
        .unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_string())
        .unwrap_or_else(|| "Linux".into())
}

fn mem_total() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn disk_size(path: &Path) -> Option<u64> {
    let mut dir = path;
    // The root directory may not exist yet; its nearest existing parent is on the same disk.
    while !dir.exists() {
        dir = dir.parent()?;
    }
    let stat = nix::sys::statvfs::statvfs(dir).ok()?;
    Some(stat.blocks() * stat.fragment_size())
}

/// `crun://<version>` from `crun --version`, as the kubelet reports `containerd://1.7.x`.
pub(crate) fn runtime_version() -> String {
    let binary = std::env::var("KEG_CRUN").unwrap_or_else(|_| "crun".into());
    let output = std::process::Command::new(binary).arg("--version").output();
    let version = output
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .and_then(|l| l.strip_prefix("crun version "))
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    format!("crun://{version}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_machine() {
        let facts = MachineFacts::read(Path::new("/tmp/does/not/exist"), "crun://1".into());
        assert!(facts.cpus >= 1);
        assert!(facts.memory_bytes > 0);
        assert!(facts.disk_bytes > 0);
        assert!(!facts.info.kernel_version.is_empty());
        assert_eq!(facts.info.operating_system, "linux");
    }
}
