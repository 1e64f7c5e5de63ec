//! Pod sandboxes: run, stop, remove, status, list.

use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::types::{PodSandboxConfig, Sandbox, SandboxState};
use super::{Error, Result, Runtime, check_id, io_err, list_ids};
use crate::fsutil;
use crate::net::{Attachment, Network};

/// What is kept on disk about a sandbox.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct SandboxRecord {
    pub sandbox: Sandbox,
    pub attachment: Attachment,
    pub cgroup_path: String,
}

const RECORD: &str = "sandbox.json";

impl Runtime {
    /// Makes a pod sandbox: its cgroup sized to `config.resources`, a network namespace with
    /// an address on the bridge, and the `hosts`, `resolv.conf` and `hostname` its containers
    /// see. On failure nothing is left behind.
    pub async fn run_pod_sandbox(&self, mut config: PodSandboxConfig) -> Result<Sandbox> {
        if config.hostname.is_empty() {
            config.hostname = config.name.clone();
        }
        if config.hostname.is_empty() || config.hostname.len() > 63 {
            return Err(Error::InvalidArgument(format!(
                "invalid pod hostname {:?}",
                config.hostname
            )));
        }
        let id = fsutil::random_hex(32);
        let dir = self.sandbox_dir(&id);
        std::fs::create_dir_all(&dir).map_err(io_err(format!("create {}", dir.display())))?;
        let parent = if config.cgroup_parent.is_empty() {
            &self.inner.cgroup_root
        } else {
            &config.cgroup_parent
        };
        if !config
            .uid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(Error::InvalidArgument(format!(
                "invalid pod uid {:?}",
                config.uid
            )));
        }
        let pod = if config.uid.is_empty() {
            id.clone()
        } else {
            config.uid.clone()
        };
        let cgroup_path = format!("/{}/pod{pod}", parent.trim_matches('/'));
        let attachment = Network::planned(&id);
        let mut record = SandboxRecord {
            sandbox: Sandbox {
                id: id.clone(),
                config,
                ip: attachment.ip,
                netns_path: attachment.netns_path(),
                cgroup_path: cgroup_path.clone(),
                state: SandboxState::NotReady,
                created_at: Timestamp::now(),
            },
            attachment,
            cgroup_path,
        };
        // Written first, so that a crash half-way leaves a record cleanup can work from.
        write_record(&dir, &record)?;
        match self.set_up_sandbox(&mut record).await {
            Ok(()) => {
                let (pod, ip) = (&record.sandbox.config.name, record.sandbox.ip);
                tracing::info!(sandbox = %id, %pod, %ip, "pod sandbox ready");
                Ok(record.sandbox)
            }
            Err(e) => {
                if let Err(cleanup) = self.tear_down_sandbox(&record).await {
                    tracing::warn!(sandbox = %id, error = %cleanup, "cleaning up a failed sandbox");
                }
                Err(e)
            }
        }
    }

    async fn set_up_sandbox(&self, record: &mut SandboxRecord) -> Result<()> {
        let id = record.sandbox.id.clone();
        let dir = self.sandbox_dir(&id);
        self.inner
            .cgroups
            .create(&record.cgroup_path, &record.sandbox.config.resources)?;
        let attachment = self.inner.network.attach(&id).await?;
        record.sandbox.ip = attachment.ip;
        record.sandbox.netns_path = attachment.netns_path();
        record.attachment = attachment;
        let config = &record.sandbox.config;
        let hosts = format!(
            "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n\
             ::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n\
             fe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n{}\t{}\n",
            record.sandbox.ip, config.hostname
        );
        for (name, content) in [
            ("hosts", hosts),
            ("resolv.conf", config.dns.to_resolv_conf()),
            ("hostname", format!("{}\n", config.hostname)),
        ] {
            std::fs::write(dir.join(name), content)
                .map_err(io_err(format!("write the pod's {name}")))?;
        }
        record.sandbox.state = SandboxState::Ready;
        write_record(&dir, record)
    }

    /// The sandbox `id`.
    pub fn pod_sandbox_status(&self, id: &str) -> Result<Sandbox> {
        Ok(self.sandbox_record(id)?.sandbox)
    }

    /// Every sandbox of this runtime.
    pub fn list_pod_sandboxes(&self) -> Result<Vec<Sandbox>> {
        let mut out = Vec::new();
        for id in list_ids(&self.inner.root.join("sandboxes"))? {
            match self.sandbox_record(&id) {
                Ok(r) => out.push(r.sandbox),
                Err(Error::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    pub(super) fn sandbox_record(&self, id: &str) -> Result<SandboxRecord> {
        check_id("sandbox", id)?;
        let path = self.sandbox_dir(id).join(RECORD);
        fsutil::read_json(&path)
            .map_err(io_err(format!("read {}", path.display())))?
            .ok_or_else(|| Error::NotFound {
                kind: "sandbox",
                id: id.to_string(),
            })
    }

    /// Stops every container of the sandbox (each gets `timeout` between its stop signal and
    /// SIGKILL) and marks the sandbox not ready. Its network stays until it is removed.
    pub async fn stop_pod_sandbox(&self, id: &str, timeout: Duration) -> Result<()> {
        let lock = self.lock_for(id);
        let _guard = lock.lock().await;
        let mut record = self.sandbox_record(id)?;
        let containers = self.containers_of(id)?;
        let stops = containers.iter().map(|c| self.stop_container(c, timeout));
        for result in futures::future::join_all(stops).await {
            match result {
                Ok(()) | Err(Error::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        record.sandbox.state = SandboxState::NotReady;
        write_record(&self.sandbox_dir(id), &record)
    }

    /// Removes the sandbox: its containers (killed if running), network namespace, veth, IP
    /// and cgroup. Removing a sandbox that is gone is not an error.
    pub async fn remove_pod_sandbox(&self, id: &str) -> Result<()> {
        let lock = self.lock_for(id);
        let _guard = lock.lock().await;
        let record = match self.sandbox_record(id) {
            Ok(r) => r,
            Err(Error::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(e),
        };
        for container in self.containers_of(id)? {
            match self.remove_container(&container).await {
                Ok(()) | Err(Error::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        self.tear_down_sandbox(&record).await?;
        tracing::info!(sandbox = %id, "removed pod sandbox");
        drop(_guard);
        self.forget_lock(id);
        Ok(())
    }

    async fn tear_down_sandbox(&self, record: &SandboxRecord) -> Result<()> {
        let id = &record.sandbox.id;
        self.inner.network.detach(&record.attachment, id).await?;
        // The kubelet may make a pod's next sandbox before removing the last one; both use
        // the cgroup `pod<uid>`, which must stay while the other sandbox does.
        let shared = self
            .list_pod_sandboxes()?
            .iter()
            .any(|s| s.id != *id && s.cgroup_path == record.cgroup_path);
        if !shared {
            self.inner.cgroups.remove(&record.cgroup_path)?;
        }
        let dir = self.sandbox_dir(id);
        fsutil::remove_dir_all_if_exists(&dir).map_err(io_err(format!("remove {}", dir.display())))
    }
}

fn write_record(dir: &std::path::Path, record: &SandboxRecord) -> Result<()> {
    fsutil::write_json(&dir.join(RECORD), record).map_err(io_err("write the sandbox record"))
}
