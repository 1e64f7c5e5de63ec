//! eksctl's day-two commands on a keg cluster: `keg get fargateprofile`, `keg get nodegroup`
//! and `keg scale nodegroup`, with eksctl's tables and refusals.

use anyhow::{Result, bail};
use keg_api::crds::{FargateProfile, NodeGroup};
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;

use super::cluster::{ClusterDir, admin_client};

/// What `keg get` shows.
#[derive(clap::Subcommand)]
pub enum GetCommand {
    /// Fargate profiles, one row per selector (as `eksctl get fargateprofile`).
    #[command(alias = "fargateprofiles")]
    Fargateprofile(ClusterArg),
    /// Node groups (as `eksctl get nodegroup`).
    #[command(alias = "nodegroups", alias = "ng")]
    Nodegroup(ClusterArg),
}

/// `--cluster NAME`.
#[derive(clap::Args)]
pub struct ClusterArg {
    /// The cluster's name.
    #[arg(long)]
    cluster: String,
}

/// Options of `keg scale nodegroup`.
#[derive(clap::Args)]
pub struct ScaleNodegroupArgs {
    /// The cluster's name.
    #[arg(long)]
    cluster: String,
    /// The node group's name.
    #[arg(long, short = 'n')]
    name: String,
    /// The desired number of nodes.
    #[arg(long, short = 'N')]
    nodes: i32,
    /// A new minimum size.
    #[arg(long = "nodes-min", short = 'm')]
    nodes_min: Option<i32>,
    /// A new maximum size.
    #[arg(long = "nodes-max", short = 'M')]
    nodes_max: Option<i32>,
}

async fn client_for(cluster: &str) -> Result<kube::Client> {
    let dir = ClusterDir::new(cluster);
    if dir.running_pid().is_none() {
        bail!("no cluster found for name: {cluster:?}");
    }
    admin_client(&dir.admin_kubeconfig()).await
}

/// Runs `keg get ...`.
pub async fn get(command: GetCommand) -> Result<()> {
    match command {
        GetCommand::Fargateprofile(arg) => {
            let api: Api<FargateProfile> = Api::all(client_for(&arg.cluster).await?);
            let mut rows = vec![row(&[
                "NAME",
                "SELECTOR_NAMESPACE",
                "SELECTOR_LABELS",
                "POD_EXECUTION_ROLE_ARN",
                "SUBNETS",
                "TAGS",
                "STATUS",
            ])];
            for profile in api.list(&ListParams::default()).await? {
                for selector in &profile.spec.selectors {
                    rows.push(vec![
                        profile.name_any(),
                        selector.namespace.clone(),
                        pairs(&selector.labels),
                        profile
                            .spec
                            .pod_execution_role_arn
                            .clone()
                            .unwrap_or_else(|| "<none>".into()),
                        if profile.spec.subnets.is_empty() {
                            "<none>".into()
                        } else {
                            profile.spec.subnets.join(",")
                        },
                        pairs(&profile.spec.tags),
                        profile
                            .status
                            .as_ref()
                            .map(|s| s.status.clone())
                            .filter(|s| !s.is_empty())
                            .unwrap_or_else(|| "ACTIVE".into()),
                    ]);
                }
            }
            print_table(&rows);
        }
        GetCommand::Nodegroup(arg) => {
            let api: Api<NodeGroup> = Api::all(client_for(&arg.cluster).await?);
            let mut rows = vec![row(&[
                "CLUSTER",
                "NODEGROUP",
                "STATUS",
                "CREATED",
                "MIN SIZE",
                "MAX SIZE",
                "DESIRED CAPACITY",
                "INSTANCE TYPE",
                "TYPE",
            ])];
            for group in api.list(&ListParams::default()).await? {
                let created = group
                    .metadata
                    .creation_timestamp
                    .as_ref()
                    .map(|t| t.0.to_string())
                    .unwrap_or_default();
                rows.push(vec![
                    arg.cluster.clone(),
                    group.name_any(),
                    group
                        .status
                        .as_ref()
                        .map(|s| s.status.clone())
                        .filter(|s| !s.is_empty())
                        .unwrap_or_else(|| "CREATING".into()),
                    created,
                    group.spec.min_size.to_string(),
                    group.spec.max_size.to_string(),
                    group.spec.desired_capacity.to_string(),
                    group.spec.instance_type.clone(),
                    if group.spec.managed {
                        "managed"
                    } else {
                        "unmanaged"
                    }
                    .into(),
                ]);
            }
            print_table(&rows);
        }
    }
    Ok(())
}

/// Runs `keg scale nodegroup`, refusing sizes outside the group's range as eksctl does.
pub async fn scale_nodegroup(args: ScaleNodegroupArgs) -> Result<()> {
    let api: Api<NodeGroup> = Api::all(client_for(&args.cluster).await?);
    let group = api.get(&args.name).await?;
    let min = args.nodes_min.unwrap_or(group.spec.min_size);
    let max = args.nodes_max.unwrap_or(group.spec.max_size);
    if args.nodes < 0 {
        bail!("number of nodes must be 0 or greater");
    }
    if args.nodes > max {
        bail!(
            "the desired nodes {} is greater than current nodes-max/maxSize {max}",
            args.nodes
        );
    }
    if args.nodes < min {
        bail!(
            "the desired nodes {} is less than current nodes-min/minSize {min}",
            args.nodes
        );
    }
    eprintln!(
        "[ℹ]  scaling nodegroup {:?} in cluster {}",
        args.name, args.cluster
    );
    let patch = json!({"spec": {"desiredCapacity": args.nodes, "minSize": min, "maxSize": max}});
    api.patch(&args.name, &PatchParams::default(), &Patch::Merge(patch))
        .await?;
    eprintln!("[ℹ]  initiated scaling of nodegroup");
    eprintln!(
        "[ℹ]  to see the status of the scaling run `keg get nodegroup --cluster {}`",
        args.cluster
    );
    Ok(())
}

fn row(cells: &[&str]) -> Vec<String> {
    cells.iter().map(|c| (*c).to_owned()).collect()
}

fn pairs(map: &std::collections::BTreeMap<String, String>) -> String {
    if map.is_empty() {
        "<none>".into()
    } else {
        map.iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Prints rows in aligned columns, as eksctl's table writer does.
fn print_table(rows: &[Vec<String>]) {
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        println!("{}", line.join("\t").trim_end());
    }
}
