//! `keg create kubeconfig`: a kubeconfig for a user other than the admin, holding a client
//! certificate from the cluster CA whose subject names the user (CN) and groups (O). What
//! the user may do is then up to RBAC, as on any cluster.

use std::path::PathBuf;

use anyhow::{Context, Result};
use keg_apiserver::kubeconfig::{self, Credential};
use keg_apiserver::pki::ClusterCa;

use super::ClusterDir;

/// Options of `keg create kubeconfig`.
#[derive(clap::Args)]
pub struct CreateKubeconfigArgs {
    /// The cluster (as named at `keg create cluster`).
    #[arg(long)]
    cluster: String,
    /// The user name the certificate carries.
    #[arg(long)]
    user: String,
    /// A group the user is in; repeatable.
    #[arg(long = "group")]
    groups: Vec<String>,
    /// Where to write the kubeconfig (default: standard output).
    #[arg(short = 'o', long)]
    output: Option<PathBuf>,
}

/// Writes the kubeconfig.
pub fn run(args: CreateKubeconfigArgs) -> Result<()> {
    let dir = ClusterDir::new(&args.cluster);
    let data = dir.data();
    anyhow::ensure!(
        data.join("ca.key").exists(),
        "no cluster {:?} (looked in {})",
        args.cluster,
        dir.root.display()
    );
    let server =
        kubeconfig::server_of(&dir.admin_kubeconfig()).context("the cluster has not served yet")?;
    let ca = ClusterCa::load_or_create(&data)?;
    let (cert_pem, key_pem) = ca.issue_client(&args.user, &args.groups)?;
    let credential = Credential::Certificate {
        cert_pem: &cert_pem,
        key_pem: &key_pem,
    };
    let text = kubeconfig::render(&args.cluster, &server, &ca.ca_pem, &args.user, credential);
    match args.output {
        Some(path) => kubeconfig::write(&path, &text),
        None => {
            print!("{text}");
            Ok(())
        }
    }
}
