//! `keg server`: the API server (and, in a cluster, everything that runs beside it).

use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::Result;
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
}

/// Serves until SIGINT or SIGTERM.
pub async fn run(args: ServerArgs) -> Result<()> {
    let config = Config { data_dir: args.data_dir, bind_address: args.bind_address, port: args.port, extra_names: args.tls_san };
    let server = ApiServer::open(config, Admission::standard()).await?;
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
