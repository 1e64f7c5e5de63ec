//! The command line: one subcommand per module.

mod cluster;
mod cost;
mod eks;
mod image;
mod node;
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
    Server(Box<server::ServerArgs>),
    /// Create a cluster.
    #[command(subcommand)]
    Create(CreateCommand),
    /// Delete a cluster.
    #[command(subcommand)]
    Delete(DeleteCommand),
    /// Show a cluster's Fargate profiles or node groups.
    #[command(subcommand)]
    Get(eks::GetCommand),
    /// Manage the machine's container images.
    #[command(subcommand)]
    Image(image::ImageCommand),
    /// Scale a node group.
    #[command(subcommand)]
    Scale(ScaleCommand),
    /// Show what a cluster's pods and node groups cost, and what the alternatives would.
    Cost(cost::CostArgs),
}

#[derive(Subcommand)]
enum CreateCommand {
    /// Create a cluster from an eksctl ClusterConfig file.
    Cluster(cluster::create::CreateClusterArgs),
    /// Write a kubeconfig for a user (a client certificate from the cluster CA).
    Kubeconfig(cluster::user::CreateKubeconfigArgs),
    /// Create a Fargate profile (from flags, or the profiles of a cluster file).
    Fargateprofile(eks::CreateFargateProfileArgs),
    /// Create a node group and wait for its nodes.
    Nodegroup(eks::CreateNodegroupArgs),
}

#[derive(Subcommand)]
enum DeleteCommand {
    /// Delete a cluster and everything it made.
    Cluster(cluster::delete::DeleteClusterArgs),
    /// Delete a Fargate profile.
    Fargateprofile(eks::DeleteFargateProfileArgs),
    /// Drain a node group's nodes, then delete it.
    Nodegroup(eks::DeleteNodegroupArgs),
}

#[derive(Subcommand)]
enum ScaleCommand {
    /// Set a node group's desired number of nodes.
    Nodegroup(eks::ScaleNodegroupArgs),
}

impl Cli {
    /// Runs the chosen subcommand.
    pub async fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Server(args) => server::run(*args).await,
            Command::Create(CreateCommand::Cluster(args)) => cluster::create::run(args).await,
            Command::Create(CreateCommand::Kubeconfig(args)) => cluster::user::run(args),
            Command::Create(CreateCommand::Fargateprofile(args)) => {
                eks::create_fargateprofile(args).await
            }
            Command::Create(CreateCommand::Nodegroup(args)) => eks::create_nodegroup(args).await,
            Command::Delete(DeleteCommand::Cluster(args)) => cluster::delete::run(args).await,
            Command::Delete(DeleteCommand::Fargateprofile(args)) => {
                eks::delete_fargateprofile(args).await
            }
            Command::Delete(DeleteCommand::Nodegroup(args)) => eks::delete_nodegroup(args).await,
            Command::Get(command) => eks::get(command).await,
            Command::Image(command) => image::run(command).await,
            Command::Scale(ScaleCommand::Nodegroup(args)) => eks::scale_nodegroup(args).await,
            Command::Cost(args) => cost::run(args).await,
        }
    }
}
