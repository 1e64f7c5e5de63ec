//! eksctl's day-two commands on a keg cluster: `keg get`, `keg create` and `keg delete` of
//! Fargate profiles and node groups, and `keg scale nodegroup`, with eksctl's tables,
//! progress lines and refusals.

use anyhow::{Result, bail};
use keg_api::crds::{FargateProfile, NodeGroup};
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;

use super::cluster::running_cluster_client;

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

/// Runs `keg get ...`.
pub async fn get(command: GetCommand) -> Result<()> {
    match command {
        GetCommand::Fargateprofile(arg) => {
            let api: Api<FargateProfile> = Api::all(running_cluster_client(&arg.cluster).await?);
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
            let api: Api<NodeGroup> = Api::all(running_cluster_client(&arg.cluster).await?);
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
    let api: Api<NodeGroup> = Api::all(running_cluster_client(&args.cluster).await?);
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

/// Options of `keg create fargateprofile`.
#[derive(clap::Args)]
pub struct CreateFargateProfileArgs {
    /// The cluster's name (default: the file's `metadata.name`).
    #[arg(long)]
    cluster: Option<String>,
    /// The profile's name.
    #[arg(long)]
    name: Option<String>,
    /// The namespace the profile's one selector selects.
    #[arg(long)]
    namespace: Option<String>,
    /// Labels the selector requires, `k=v,k2=v2`.
    #[arg(long, short = 'l')]
    labels: Option<String>,
    /// A ClusterConfig whose `fargateProfiles` are created (instead of the flags).
    #[arg(short = 'f', long = "config-file")]
    config_file: Option<std::path::PathBuf>,
}

/// Options of `keg delete fargateprofile`.
#[derive(clap::Args)]
pub struct DeleteFargateProfileArgs {
    /// The cluster's name.
    #[arg(long)]
    cluster: String,
    /// The profile's name.
    #[arg(long)]
    name: String,
}

fn parse_labels(text: &str) -> Result<std::collections::BTreeMap<String, String>> {
    text.split(',')
        .filter(|p| !p.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) => Ok((k.to_owned(), v.to_owned())),
            None => bail!("invalid label {pair:?}: use key=value"),
        })
        .collect()
}

/// The profile of the flags, checked by the cluster file's rules.
fn profile_from_flags(args: &CreateFargateProfileArgs, cluster: &str) -> Result<FargateProfile> {
    use keg_api::cluster_config::{MAX_SELECTOR_LABELS, RESERVED_PROFILE_PREFIX};
    let Some(name) = args.name.clone().filter(|n| !n.is_empty()) else {
        bail!("--name must be set");
    };
    if name.starts_with(RESERVED_PROFILE_PREFIX) {
        bail!(
            "invalid Fargate profile {name:?}: name should NOT start with {RESERVED_PROFILE_PREFIX:?}"
        );
    }
    let Some(namespace) = args.namespace.clone().filter(|n| !n.is_empty()) else {
        bail!(
            "invalid Fargate profile {name:?}: invalid profile selector at index #0: empty namespace"
        );
    };
    let labels = parse_labels(args.labels.as_deref().unwrap_or_default())?;
    if labels.len() > MAX_SELECTOR_LABELS {
        bail!(
            "invalid Fargate profile {name:?}: invalid profile selector at index #0: at most {MAX_SELECTOR_LABELS} labels are allowed, found {}",
            labels.len()
        );
    }
    Ok(FargateProfile {
        metadata: kube::api::ObjectMeta {
            name: Some(name),
            ..Default::default()
        },
        spec: keg_api::crds::FargateProfileSpec {
            cluster_name: Some(cluster.to_owned()),
            selectors: vec![keg_api::crds::FargateProfileSelector { namespace, labels }],
            pod_execution_role_arn: None,
            subnets: Vec::new(),
            tags: Default::default(),
        },
        status: None,
    })
}

/// Runs `keg create fargateprofile`: from flags, or every profile of a cluster file.
pub async fn create_fargateprofile(args: CreateFargateProfileArgs) -> Result<()> {
    let (cluster, profiles) = match &args.config_file {
        Some(file) => {
            let config = keg_api::cluster_config::ClusterConfig::from_file(file)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let cluster = args.cluster.clone().unwrap_or(config.metadata.name.clone());
            (cluster, config.fargate_profile_objects())
        }
        None => {
            let Some(cluster) = args.cluster.clone() else {
                bail!("--cluster must be set");
            };
            let profile = profile_from_flags(&args, &cluster)?;
            (cluster, vec![profile])
        }
    };
    let api: Api<FargateProfile> = Api::all(running_cluster_client(&cluster).await?);
    for profile in profiles {
        let name = profile.name_any();
        eprintln!("[ℹ]  creating Fargate profile {name:?} on EKS cluster {cluster:?}");
        match api
            .create(&kube::api::PostParams::default(), &profile)
            .await
        {
            Ok(_) => eprintln!("[ℹ]  created Fargate profile {name:?} on EKS cluster {cluster:?}"),
            Err(kube::Error::Api(s)) if s.code == 409 => bail!(
                "failed to create Fargate profile {name:?} on EKS cluster {cluster:?}: ResourceInUseException: A Fargate Profile already exists with this name in this cluster."
            ),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Runs `keg delete fargateprofile`.
pub async fn delete_fargateprofile(args: DeleteFargateProfileArgs) -> Result<()> {
    let api: Api<FargateProfile> = Api::all(running_cluster_client(&args.cluster).await?);
    let name = &args.name;
    eprintln!("[ℹ]  deleting Fargate profile {name:?}");
    match api.delete(name, &kube::api::DeleteParams::default()).await {
        Ok(_) => eprintln!("[ℹ]  deleted Fargate profile {name:?}"),
        Err(kube::Error::Api(s)) if s.code == 404 => bail!(
            "failed to delete Fargate profile {name:?}: ResourceNotFoundException: No Fargate Profile found with name: {name}."
        ),
        Err(e) => return Err(e.into()),
    }
    Ok(())
}

/// Options of `keg create nodegroup`.
#[derive(clap::Args)]
pub struct CreateNodegroupArgs {
    /// The cluster's name.
    #[arg(long)]
    cluster: String,
    /// The node group's name.
    #[arg(long, short = 'n')]
    name: String,
    /// The instance type of its nodes.
    #[arg(long = "node-type", short = 't', default_value = keg_api::cluster_config::DEFAULT_INSTANCE_TYPE)]
    node_type: String,
    /// The desired number of nodes.
    #[arg(long, short = 'N', default_value_t = 2)]
    nodes: i32,
    /// The fewest nodes (default: --nodes).
    #[arg(long = "nodes-min", short = 'm')]
    nodes_min: Option<i32>,
    /// The most nodes (default: --nodes).
    #[arg(long = "nodes-max", short = 'M')]
    nodes_max: Option<i32>,
    /// How long to wait for the nodes.
    #[arg(long, default_value = "5m", value_parser = super::cluster::create::parse_duration)]
    timeout: std::time::Duration,
}

/// Options of `keg delete nodegroup`.
#[derive(clap::Args)]
pub struct DeleteNodegroupArgs {
    /// The cluster's name.
    #[arg(long)]
    cluster: String,
    /// The node group's name.
    #[arg(long, short = 'n')]
    name: String,
    /// How long to wait for the drain.
    #[arg(long, default_value = "5m", value_parser = super::cluster::create::parse_duration)]
    timeout: std::time::Duration,
}

/// The nodes of a group that are not being deleted, and how many of them are Ready.
async fn group_nodes(client: &kube::Client, group: &str) -> Result<(Vec<String>, usize)> {
    use k8s_openapi::api::core::v1::Node;
    let nodes: Api<Node> = Api::all(client.clone());
    let list = nodes
        .list(
            &ListParams::default().labels(&format!("{}={group}", keg_api::nodes::NODEGROUP_LABEL)),
        )
        .await?;
    let live: Vec<&Node> = list
        .items
        .iter()
        .filter(|n| n.metadata.deletion_timestamp.is_none())
        .collect();
    let ready = live
        .iter()
        .filter(|n| keg_controllers::nodegroup::is_ready(n))
        .count();
    Ok((live.iter().map(|n| n.name_any()).collect(), ready))
}

/// Runs `keg create nodegroup` and waits for its nodes.
pub async fn create_nodegroup(args: CreateNodegroupArgs) -> Result<()> {
    let client = running_cluster_client(&args.cluster).await?;
    let min = args.nodes_min.unwrap_or(args.nodes);
    let max = args.nodes_max.unwrap_or(args.nodes);
    if args.nodes < min || args.nodes > max {
        bail!(
            "the desired nodes {} is not within nodes-min {min} and nodes-max {max}",
            args.nodes
        );
    }
    if keg_api::instance_types::InstanceType::lookup(&args.node_type).is_none() {
        bail!("unknown instance type {:?}", args.node_type);
    }
    let (name, cluster) = (&args.name, &args.cluster);
    let group = NodeGroup {
        metadata: kube::api::ObjectMeta {
            name: Some(name.clone()),
            ..Default::default()
        },
        spec: keg_api::crds::NodeGroupSpec {
            instance_type: args.node_type.clone(),
            desired_capacity: args.nodes,
            min_size: min,
            max_size: max,
            labels: Default::default(),
            taints: Vec::new(),
            volume_size: None,
            tags: Default::default(),
            managed: true,
        },
        status: None,
    };
    let api: Api<NodeGroup> = Api::all(client.clone());
    eprintln!(
        "[ℹ]  creating nodegroup {name:?} ({} x {}) in cluster {cluster:?}",
        args.nodes, args.node_type
    );
    match api.create(&kube::api::PostParams::default(), &group).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {
            bail!(
                "creating nodegroup {name:?}: nodegroup {name:?} already exists in cluster {cluster:?}"
            )
        }
        Err(e) => return Err(e.into()),
    }
    let wanted = usize::try_from(args.nodes).unwrap_or(0);
    eprintln!("[ℹ]  waiting for at least {wanted} node(s) to become ready in {name:?}");
    let deadline = tokio::time::Instant::now() + args.timeout;
    loop {
        let (nodes, ready) = group_nodes(&client, name).await?;
        if ready >= wanted {
            for node in nodes {
                eprintln!("[ℹ]  node {node:?} is ready");
            }
            break;
        }
        if tokio::time::Instant::now() > deadline {
            bail!("timed out waiting for {wanted} node(s) of nodegroup {name:?} to become ready");
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    eprintln!("[✔]  created 1 nodegroup(s) in cluster {cluster:?}");
    Ok(())
}

/// Runs `keg delete nodegroup`: drains its nodes through evictions (as the node-group
/// controller scales in), then deletes it.
pub async fn delete_nodegroup(args: DeleteNodegroupArgs) -> Result<()> {
    let client = running_cluster_client(&args.cluster).await?;
    let (name, cluster) = (&args.name, &args.cluster);
    let api: Api<NodeGroup> = Api::all(client.clone());
    if api.get_opt(name).await?.is_none() {
        bail!("nodegroup {name:?} not found in cluster {cluster:?}");
    }
    eprintln!("[ℹ]  will drain 1 nodegroup(s) in cluster {cluster:?}");
    let patch = json!({"spec": {"desiredCapacity": 0, "minSize": 0}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(patch))
        .await?;
    let deadline = tokio::time::Instant::now() + args.timeout;
    loop {
        let (nodes, _) = group_nodes(&client, name).await?;
        if nodes.is_empty() {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            bail!(
                "timed out draining nodegroup {name:?}: nodes {nodes:?} still have pods their disruption budgets keep"
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    eprintln!("[✔]  drained all nodes of nodegroup {name:?}");
    eprintln!("[ℹ]  will delete 1 nodegroups from cluster {cluster:?}");
    api.delete(name, &kube::api::DeleteParams::default())
        .await?;
    eprintln!("[✔]  deleted 1 nodegroup(s) from cluster {cluster:?}");
    Ok(())
}
