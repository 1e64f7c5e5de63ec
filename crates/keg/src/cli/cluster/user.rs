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
    #[arg(
        long,
        required_unless_present = "data_dir",
        conflicts_with = "data_dir"
    )]
    cluster: Option<String>,
    /// The data dir of a `keg server` run by hand, instead of a cluster's.
    #[arg(long)]
    data_dir: Option<PathBuf>,
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
    let (name, data) = match (&args.cluster, &args.data_dir) {
        (Some(cluster), _) => (cluster.clone(), ClusterDir::new(cluster).data()),
        (None, Some(dir)) => ("keg".to_string(), dir.clone()),
        (None, None) => anyhow::bail!("name a --cluster or a --data-dir"),
    };
    anyhow::ensure!(
        data.join("ca.key").exists(),
        "no cluster CA in {} (is the cluster's name right?)",
        data.display()
    );
    let server = kubeconfig::server_of(&data.join("kubeconfig"))
        .context("the cluster has not served yet")?;
    let ca = ClusterCa::load_or_create(&data)?;
    let (cert_pem, key_pem) = ca.issue_client(&args.user, &args.groups)?;
    let credential = Credential::Certificate {
        cert_pem: &cert_pem,
        key_pem: &key_pem,
    };
    let text = kubeconfig::render(&name, &server, &ca.ca_pem, &args.user, credential);
    match args.output {
        Some(path) => kubeconfig::write(&path, &text),
        None => {
            print!("{text}");
            Ok(())
        }
    }
}
