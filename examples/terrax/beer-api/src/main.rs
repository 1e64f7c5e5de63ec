//! The Terrax beer API server: reads its settings, serves HTTP at once, and connects to the
//! database in the background.

use anyhow::Context;
use beer_api::config::Config;
use beer_api::{AppState, app, prepare_database};
use clap::Parser;
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    // Plain text on stdout: in a pod, that is what `kubectl logs` shows.
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stdout)
        .with_ansi(false)
        .init();

    let addr = config.listen_addr();
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    tracing::info!(%addr, database = %config.db().redacted(), "beer-api listening");

    let state = AppState::new();
    tokio::spawn(prepare_database(
        config.db(),
        config.retry_every(),
        state.clone(),
    ));
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("server failed")?;
    tracing::info!("beer-api stopped");
    Ok(())
}

/// Resolves on SIGTERM (what the kubelet sends when it stops a pod) or Ctrl-C, so in-flight
/// requests finish before the process exits.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            // Without a SIGTERM handler, Ctrl-C still stops the server.
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}
