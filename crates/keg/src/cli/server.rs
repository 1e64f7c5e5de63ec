//! `keg server`: the API server and everything that runs beside it in one process: the
//! controllers, the schedulers and (with a runtime) the node agent, all API clients of it.

use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::Result;
use keg_api::nodes::ClusterInfo;
use keg_apiserver::client::in_process_client;
use keg_apiserver::{ApiServer, Config, admission::Admission};

/// Options of `keg server`.
#[derive(clap::Args)]
pub struct ServerArgs {
    /// Where state, certificates and the kubeconfig are kept.
    #[arg(long)]
    data_dir: PathBuf,
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    bind_address: IpAddr,
    /// The port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 6443)]
    port: u16,
    /// Extra host names or addresses for the serving certificate.
    #[arg(long = "tls-san")]
    tls_san: Vec<String>,
    /// The cluster's name (labels its nodes).
    #[arg(long, default_value = "keg")]
    cluster_name: String,
    /// The AWS region the cluster stands for (names its nodes).
    #[arg(long, default_value = "us-east-1")]
    region: String,
    /// The address LoadBalancer Services get, where keg listens on their ports.
    #[arg(long, default_value = "127.0.0.1")]
    load_balancer_address: IpAddr,
    /// Seconds between compactions of the store's history (five intervals are kept).
    #[arg(long, default_value_t = 60)]
    compaction_interval: u64,
}

/// Serves until SIGINT or SIGTERM.
pub async fn run(args: ServerArgs) -> Result<()> {
    let config = Config {
        data_dir: args.data_dir,
        bind_address: args.bind_address,
        port: args.port,
        extra_names: args.tls_san,
        compaction_interval: std::time::Duration::from_secs(args.compaction_interval.max(1)),
    };
    let server = ApiServer::open(config, Admission::standard()).await?;
    let client = in_process_client(server.router(), server.tokens.admin());
    let cluster = ClusterInfo {
        agent: args.cluster_name.clone(),
        name: args.cluster_name,
        region: args.region,
    };
    tokio::spawn(keg_controllers::run_all(client.clone()));
    tokio::spawn(keg_controllers::nodegroup::run(
        client.clone(),
        cluster.clone(),
    ));
    tokio::spawn(keg_controllers::loadbalancer::run(
        client.clone(),
        args.load_balancer_address,
    ));
    tokio::spawn(keg_scheduler::run(client, cluster));
    server.serve(shutdown_signal()).await
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
}
