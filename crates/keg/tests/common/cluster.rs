//! A cluster made as a user makes it: `keg create cluster -f` with its own KEG_HOME and
//! kubeconfig, ended by `keg delete cluster` when dropped so nothing outlives a failed test.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::{Kubectl, kubectl_binary};

/// The seed's cluster name.
pub const CLUSTER: &str = "terrax-fargate";

/// The seed's cluster file, `examples/terrax/eks-terrax-fargate.yaml`.
pub fn seed_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/terrax/eks-terrax-fargate.yaml")
}

/// A KEG_HOME and a kubeconfig of the test's own.
pub struct Env {
    /// Holds `keg/` (KEG_HOME) and `kube/config`.
    pub home: tempfile::TempDir,
}

impl Env {
    /// An empty home.
    pub fn new() -> Env {
        Env {
            home: tempfile::tempdir().unwrap(),
        }
    }

    /// KEG_HOME.
    pub fn keg_home(&self) -> PathBuf {
        self.home.path().join("keg")
    }

    /// The kubeconfig `keg create cluster` merges its context into.
    pub fn kubeconfig(&self) -> PathBuf {
        self.home.path().join("kube").join("config")
    }

    /// Runs the built keg with this home.
    pub fn keg(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_keg"))
            .args(args)
            .env("KEG_HOME", self.keg_home())
            .env("KUBECONFIG", self.kubeconfig())
            .output()
            .unwrap()
    }

    /// Runs keg and returns its output; panics with the server's log when it fails.
    pub fn keg_ok(&self, args: &[&str]) -> String {
        let out = self.keg(args);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success(),
            "keg {args:?} failed:\n{text}\n{}",
            self.server_log()
        );
        text
    }

    /// The seed cluster's state directory.
    pub fn cluster_dir(&self) -> PathBuf {
        self.keg_home().join("clusters").join(CLUSTER)
    }

    /// The control plane's log so far.
    pub fn server_log(&self) -> String {
        std::fs::read_to_string(self.cluster_dir().join("logs").join("keg.log")).unwrap_or_default()
    }

    /// kubectl 1.33 with this home's kubeconfig.
    pub fn kubectl(&self) -> Kubectl {
        Kubectl {
            bin: kubectl_binary("1.33"),
            kubeconfig: self.kubeconfig(),
        }
    }
}

/// A test that fails half-way still ends its cluster, so nothing outlives it.
impl Drop for Env {
    fn drop(&mut self) {
        if self.cluster_dir().exists() {
            let out = self.keg(&["delete", "cluster", "--name", CLUSTER, "--timeout", "20s"]);
            if !out.status.success() {
                eprintln!(
                    "cleaning up the cluster failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }
}
