//! Generating the OCI runtime configuration (`config.json`) crun runs a container from.
//!
//! The defaults follow containerd's CRI plugin: the same capability set, mounts, masked and
//! read-only paths, device rules and (see [`seccomp`]) seccomp profile.

mod seccomp;
mod user;

use std::path::Path;

use serde_json::{Value, json};

use crate::cgroup::{CPU_PERIOD_US, Resources};
use crate::image::ImageConfig;
use crate::runtime::types::ContainerConfig;

/// Errors of generating a container's configuration.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Neither the container nor its image says what to run.
    #[error("no command: the container sets no command and its image has no entrypoint or cmd")]
    NoCommand,
    /// A capability name is unknown.
    #[error("unknown capability {0:?}")]
    UnknownCapability(String),
    /// The user or group cannot be resolved.
    #[error("cannot resolve the container's user: {0}")]
    User(String),
    /// A bind mount's source is missing or a path is not absolute.
    #[error("invalid mount: {0}")]
    Mount(String),
}

/// Result of configuration generation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The capabilities containerd grants a container by default.
pub const DEFAULT_CAPABILITIES: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Every capability the kernel knows, in the order of their numbers.
const ALL_CAPABILITIES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

const MASKED_PATHS: [&str; 11] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];
const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Everything a container's configuration is made from.
pub(crate) struct SpecInput<'a> {
    /// The container's request.
    pub config: &'a ContainerConfig,
    /// Its image's settings.
    pub image: &'a ImageConfig,
    /// The mounted root file system (to read the image's users).
    pub rootfs: &'a Path,
    /// The pod's hostname.
    pub hostname: &'a str,
    /// The pod's network namespace.
    pub netns: &'a Path,
    /// The directory with the pod's `hosts`, `resolv.conf` and `hostname`.
    pub sandbox_dir: &'a Path,
    /// The container's cgroup (absolute).
    pub cgroups_path: &'a str,
}

/// The OCI `config.json` for a container.
pub(crate) fn generate(input: &SpecInput) -> Result<Value> {
    let c = input.config;
    let args = command_line(c, input.image)?;
    let id = user::resolve(
        c.user,
        &input.image.user,
        &c.supplemental_groups,
        input.rootfs,
    )?;
    let caps = if c.privileged {
        host_capabilities()
    } else {
        capabilities(c)?
    };
    let cwd = c
        .working_dir
        .clone()
        .filter(|w| !w.is_empty())
        .or_else(|| Some(input.image.working_dir.clone()).filter(|w| !w.is_empty()))
        .unwrap_or_else(|| "/".into());
    let mut linux = json!({
        "namespaces": [
            {"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"},
            {"type": "cgroup"},
            {"type": "network", "path": input.netns},
        ],
        "cgroupsPath": input.cgroups_path,
        "resources": resources(&c.resources, c.privileged),
    });
    if !c.privileged {
        linux["maskedPaths"] = json!(MASKED_PATHS);
        linux["readonlyPaths"] = json!(READONLY_PATHS);
        linux["seccomp"] = seccomp::default_profile(&caps);
    }
    Ok(json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": id.uid, "gid": id.gid, "additionalGids": id.additional_gids},
            "args": args,
            "env": environment(c, input.image, input.hostname),
            "cwd": cwd,
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "noNewPrivileges": false,
            "oomScoreAdj": 0,
        },
        "root": {"path": "rootfs", "readonly": false},
        "hostname": input.hostname,
        "mounts": mounts(c, input.sandbox_dir)?,
        "linux": linux,
    }))
}

/// Kubernetes' rule: `command` replaces the entrypoint (and drops the image's cmd), `args`
/// replaces the cmd.
pub(crate) fn command_line(c: &ContainerConfig, image: &ImageConfig) -> Result<Vec<String>> {
    let mut args = if c.command.is_empty() {
        image.entrypoint.clone()
    } else {
        c.command.clone()
    };
    if !c.args.is_empty() {
        args.extend(c.args.iter().cloned());
    } else if c.command.is_empty() {
        args.extend(image.cmd.iter().cloned());
    }
    if args.is_empty() {
        return Err(Error::NoCommand);
    }
    Ok(args)
}

/// The image's environment, overridden by the container's, with `PATH` and `HOSTNAME`.
fn environment(c: &ContainerConfig, image: &ImageConfig, hostname: &str) -> Vec<String> {
    let mut env: Vec<(String, String)> = Vec::new();
    let mut set = |k: &str, v: &str| match env.iter_mut().find(|(name, _)| name == k) {
        Some(entry) => entry.1 = v.to_string(),
        None => env.push((k.to_string(), v.to_string())),
    };
    let (path_key, path_value) = DEFAULT_PATH.split_once('=').expect("constant");
    set(path_key, path_value);
    set("HOSTNAME", hostname);
    for entry in &image.env {
        let (k, v) = entry.split_once('=').unwrap_or((entry, ""));
        set(k, v);
    }
    for (k, v) in &c.env {
        set(k, v);
    }
    env.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
}

/// containerd's order: `ALL` first, then single additions, then single drops.
fn capabilities(c: &ContainerConfig) -> Result<Vec<String>> {
    let normalize = |name: &str| -> Result<String> {
        let upper = name.to_ascii_uppercase();
        let full = if upper.starts_with("CAP_") {
            upper
        } else {
            format!("CAP_{upper}")
        };
        if ALL_CAPABILITIES.contains(&full.as_str()) {
            Ok(full)
        } else {
            Err(Error::UnknownCapability(name.into()))
        }
    };
    let is_all = |n: &String| n.eq_ignore_ascii_case("ALL");
    let mut caps: Vec<String> = DEFAULT_CAPABILITIES.iter().map(|s| s.to_string()).collect();
    if c.capabilities.add.iter().any(is_all) {
        caps = host_capabilities();
    }
    if c.capabilities.drop.iter().any(is_all) {
        caps.clear();
    }
    for name in c.capabilities.add.iter().filter(|n| !is_all(n)) {
        let cap = normalize(name)?;
        if !caps.contains(&cap) {
            caps.push(cap);
        }
    }
    for name in c.capabilities.drop.iter().filter(|n| !is_all(n)) {
        let cap = normalize(name)?;
        caps.retain(|c| *c != cap);
    }
    // A capability keg lacks cannot be granted (crun's capset would fail): leave it out.
    let host = host_capabilities();
    caps.retain(|cap| {
        let held = host.contains(cap);
        if !held {
            tracing::warn!(container = %c.name, capability = %cap, "keg lacks it; not granted");
        }
        held
    });
    Ok(caps)
}

/// The capabilities keg itself may hand on (its bounding set), which is what `privileged`
/// and `add: [ALL]` mean, as in containerd: asking crun for more fails.
fn host_capabilities() -> Vec<String> {
    let bounding = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let hex = status.lines().find_map(|l| l.strip_prefix("CapBnd:"))?;
            u64::from_str_radix(hex.trim(), 16).ok()
        });
    ALL_CAPABILITIES
        .iter()
        .enumerate()
        .filter(|(bit, _)| bounding.is_none_or(|b| b & (1 << bit) != 0))
        .map(|(_, name)| name.to_string())
        .collect()
}

fn mounts(c: &ContainerConfig, sandbox_dir: &Path) -> Result<Vec<Value>> {
    let sys_options = if c.privileged {
        json!(["nosuid", "noexec", "nodev"])
    } else {
        json!(["nosuid", "noexec", "nodev", "ro"])
    };
    let nosuid_noexec_nodev = ["nosuid", "noexec", "nodev"];
    let mut out = vec![
        mount("/proc", "proc", "proc", &nosuid_noexec_nodev),
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        ),
        mount("/dev/mqueue", "mqueue", "mqueue", &nosuid_noexec_nodev),
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        ),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": sys_options}),
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["nosuid", "noexec", "nodev", "relatime", "ro"],
        ),
    ];
    let user_targets: Vec<&str> = c
        .mounts
        .iter()
        .map(|m| m.container_path.trim_end_matches('/'))
        .collect();
    // The pod's files, unless the container mounts its own there (as the kubelet allows).
    for file in ["hosts", "resolv.conf", "hostname"] {
        let target = format!("/etc/{file}");
        if !user_targets.contains(&target.as_str()) {
            out.push(bind(&target, &sandbox_dir.join(file), "rw"));
        }
    }
    for m in &c.mounts {
        if !m.container_path.starts_with('/') {
            return Err(Error::Mount(format!(
                "container path {:?} is not absolute",
                m.container_path
            )));
        }
        if !m.host_path.exists() {
            return Err(Error::Mount(format!(
                "host path {} does not exist",
                m.host_path.display()
            )));
        }
        let mode = if m.readonly { "ro" } else { "rw" };
        out.push(bind(&m.container_path, &m.host_path, mode));
    }
    Ok(out)
}

fn mount(destination: &str, kind: &str, source: &str, options: &[&str]) -> Value {
    json!({"destination": destination, "type": kind, "source": source, "options": options})
}

fn bind(destination: &str, source: &Path, mode: &str) -> Value {
    let options = ["rbind", "rprivate", mode];
    json!({"destination": destination, "type": "bind", "source": source, "options": options})
}

fn resources(r: &Resources, privileged: bool) -> Value {
    let devices = if privileged {
        json!([{"allow": true, "access": "rwm"}])
    } else {
        fn dev(kind: &str, major: i64, minor: Option<i64>) -> Value {
            json!({"allow": true, "type": kind, "major": major, "minor": minor, "access": "rwm"})
        }
        json!([
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "access": "m"},
            {"allow": true, "type": "b", "access": "m"},
            dev("c", 1, Some(3)), dev("c", 1, Some(5)), dev("c", 1, Some(7)), dev("c", 1, Some(8)),
            dev("c", 1, Some(9)), dev("c", 5, Some(0)), dev("c", 5, Some(1)), dev("c", 5, Some(2)),
            dev("c", 136, None), dev("c", 10, Some(200)),
        ])
    };
    let mut out = json!({"devices": devices});
    if let Some(limit) = r.memory_limit_bytes {
        out["memory"] = json!({"limit": limit});
    }
    let mut cpu = serde_json::Map::new();
    if let Some(quota) = r.cpu_quota_us() {
        cpu.insert("quota".into(), json!(quota));
        cpu.insert("period".into(), json!(CPU_PERIOD_US));
    }
    if let Some(shares) = r.cpu_shares() {
        cpu.insert("shares".into(), json!(shares));
    }
    if !cpu.is_empty() {
        out["cpu"] = Value::Object(cpu);
    }
    out
}

/// The process of an exec: the container's process with other arguments.
pub(crate) fn exec_process(container_spec: &Value, args: &[String]) -> Value {
    let mut process = container_spec["process"].clone();
    process["args"] = json!(args);
    process["terminal"] = json!(false);
    process
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::types::Capabilities;

    fn image() -> ImageConfig {
        ImageConfig {
            entrypoint: vec!["/entry".into()],
            cmd: vec!["serve".into()],
            ..Default::default()
        }
    }

    #[test]
    fn command_and_args_follow_kubernetes() {
        let cfg = |command: &[&str], args: &[&str]| ContainerConfig {
            command: command.iter().map(|s| s.to_string()).collect(),
            args: args.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        assert_eq!(
            command_line(&cfg(&[], &[]), &image()).unwrap(),
            ["/entry", "serve"]
        );
        assert_eq!(
            command_line(&cfg(&[], &["x"]), &image()).unwrap(),
            ["/entry", "x"]
        );
        assert_eq!(command_line(&cfg(&["sh"], &[]), &image()).unwrap(), ["sh"]);
        assert_eq!(
            command_line(&cfg(&["sh"], &["-c", "true"]), &image()).unwrap(),
            ["sh", "-c", "true"]
        );
        assert!(command_line(&cfg(&[], &[]), &ImageConfig::default()).is_err());
    }

    #[test]
    fn capabilities_add_and_drop_like_containerd() {
        let with = |add: &[&str], drop: &[&str]| {
            let c = ContainerConfig {
                capabilities: Capabilities {
                    add: add.iter().map(|s| s.to_string()).collect(),
                    drop: drop.iter().map(|s| s.to_string()).collect(),
                },
                ..Default::default()
            };
            capabilities(&c)
        };
        assert_eq!(with(&[], &[]).unwrap().len(), 14);
        assert_eq!(
            with(&["ALL"], &["chown"]).unwrap().len(),
            host_capabilities().len() - 1
        );
        assert_eq!(with(&["NET_ADMIN"], &["ALL"]).unwrap(), ["CAP_NET_ADMIN"]);
        assert!(with(&["FLY"], &[]).is_err());
    }

    #[test]
    fn container_env_overrides_the_image() {
        let img = ImageConfig {
            env: vec!["A=1".into(), "PATH=/img".into()],
            ..Default::default()
        };
        let c = ContainerConfig {
            env: vec![("A".into(), "2".into())],
            ..Default::default()
        };
        assert_eq!(
            environment(&c, &img, "web"),
            ["PATH=/img", "HOSTNAME=web", "A=2"]
        );
    }
}
