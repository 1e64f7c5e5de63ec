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
    /// The machine's image store (default: $KEG_HOME/images, where `keg image import` puts
    /// images).
    #[arg(long)]
    images_dir: Option<PathBuf>,
    /// A registry (`host[:port]`) to pull from over plain HTTP; repeatable.
    #[arg(long = "insecure-registry")]
    insecure_registries: Vec<String>,
    /// Run no node agent: nodes stay NotReady and no pod runs (the API and controllers only).
    #[arg(long)]
    no_node_agent: bool,
    /// A price file laid over the built-in prices (default: $KEG_HOME/prices.yaml if present).
    #[arg(long)]
    prices: Option<PathBuf>,
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
    let data_dir = config.data_dir.clone();
    let prices = super::cost::load_prices(args.prices.as_deref())?;
    let server = ApiServer::open(config, Admission::standard()).await?;
    let client = in_process_client(server.router(), server.tokens.admin());
    let cluster = ClusterInfo {
        agent: args.cluster_name.clone(),
        name: args.cluster_name,
        region: args.region,
    };
    tokio::spawn(keg_controllers::run_all(client.clone()));
    tokio::spawn(keg_controllers::volumes::run(
        client.clone(),
        keg_controllers::volumes::Config {
            root: data_dir.join("volumes"),
        },
    ));
    tokio::spawn(keg_controllers::metering::run(
        client.clone(),
        keg_controllers::metering::Config::new(&cluster, prices),
    ));
    tokio::spawn(keg_controllers::nodegroup::run(
        client.clone(),
        cluster.clone(),
    ));
    tokio::spawn(keg_scheduler::run(client.clone(), cluster.clone()));
    let mut pod_network = None;
    let agent = if args.no_node_agent {
        None
    } else if !nix::unistd::Uid::effective().is_root() {
        tracing::warn!("not root: no node agent runs, so nodes stay NotReady and pods do not run");
        None
    } else {
        let images = args
            .images_dir
            .unwrap_or_else(|| super::cluster::keg_home().join("images"));
        let network = super::node::pod_network(&data_dir)?;
        let gateway = network.gateway;
        let agent = super::node::open(
            client.clone(),
            &data_dir,
            &images,
            &cluster.agent,
            |config| {
                config.insecure_registries = args.insecure_registries;
                config.cluster_dns = vec![gateway.to_string()];
            },
        )
        .await?;
        pod_network = Some(network);
        *server.state.pod_logs.write().expect("not poisoned") = Some(agent.pod_logs());
        *server.state.pod_exec.write().expect("not poisoned") = Some(agent.pod_exec());
        let running = agent.clone();
        let task = tokio::spawn(async move {
            if let Err(e) = running.run().await {
                tracing::error!("node agent stopped: {e}");
            }
        });
        Some((agent, task))
    };
    tokio::spawn(keg_controllers::services::run(
        client,
        keg_controllers::services::Config {
            load_balancer_address: args.load_balancer_address,
            pod_network,
        },
    ));
    let served = server.serve(shutdown_signal()).await;
    // Stopping the server ends the cluster's pods: nothing it made outlives it.
    if let Some((agent, task)) = agent {
        task.abort();
        let _ = task.await;
        if let Err(e) = agent.remove_everything().await {
            tracing::error!("cleaning up the node agent's containers: {e}");
        }
    }
    served
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
}
