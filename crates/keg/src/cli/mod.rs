//! The command line: one subcommand per module.

mod server;

use clap::{Parser, Subcommand};

/// keg: serverless Kubernetes in one binary.
#[derive(Parser)]
#[command(name = "keg", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the control plane in the foreground.
    Server(server::ServerArgs),
}

impl Cli {
    /// Runs the chosen subcommand.
    pub async fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Server(args) => server::run(args).await,
        }
    }
}
