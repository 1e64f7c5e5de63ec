//! `keg server`: the API server and everything that runs beside it in one process: the
//! controllers, the schedulers and (with a runtime) the node agent, all API clients of it.

use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::Result;
use keg_api::nodes::ClusterInfo;
use keg_apiserver::auth::UserInfo;
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
    /// Seconds a node may go without renewing its Lease before it is NotReady (Unknown) and
    /// tainted unreachable (upstream's --node-monitor-grace-period).
    #[arg(long, default_value_t = 40)]
    node_monitor_grace_period: u64,
    /// Seconds a node-group node must run nothing but DaemonSet pods before the autoscaler
    /// removes it (the Cluster Autoscaler's --scale-down-unneeded-time, 10 minutes).
    #[arg(long, default_value_t = 600)]
    scale_down_unneeded_time: u64,
    /// Seconds between syncs of each HorizontalPodAutoscaler (upstream's
    /// --horizontal-pod-autoscaler-sync-period).
    #[arg(long, default_value_t = 15)]
    horizontal_pod_autoscaler_sync_period: u64,
    /// Seconds scale-down waits for recommendations to agree when an autoscaler's `behavior`
    /// does not say (upstream's --horizontal-pod-autoscaler-downscale-stabilization).
    #[arg(long, default_value_t = 300)]
    horizontal_pod_autoscaler_downscale_stabilization: u64,
    /// Run no node agent: nodes stay NotReady and no pod runs (the API and controllers only).
    #[arg(long)]
    no_node_agent: bool,
    /// A price file laid over the built-in prices (default: $KEG_HOME/prices.yaml if present).
    #[arg(long)]
    prices: Option<PathBuf>,
    /// Where the cluster's state is kept: `embedded` (the default: `keg.db` in the data dir)
    /// or `etcd://HOST:PORT[,HOST:PORT...]`, an etcd cluster.
    #[arg(long, default_value = "embedded")]
    store: String,
    /// The CA that signed etcd's serving certificate (implies TLS to etcd).
    #[arg(long)]
    etcd_cafile: Option<PathBuf>,
    /// A client certificate for etcd (with --etcd-keyfile; implies TLS to etcd).
    #[arg(long)]
    etcd_certfile: Option<PathBuf>,
    /// The client certificate's key.
    #[arg(long)]
    etcd_keyfile: Option<PathBuf>,
    /// Prepended to every key in etcd. keg's keys already begin with `/registry/`, so with
    /// the default (none) they sit where a kube-apiserver keeps its objects; a prefix such as
    /// `/keg-a` lets several clusters share one etcd.
    #[arg(long, default_value = "")]
    etcd_prefix: String,
}

/// The store `--store` and the `--etcd-*` options name.
fn store_backend(args: &ServerArgs) -> Result<keg_apiserver::StoreBackend> {
    let tls =
        (args.etcd_cafile.is_some() || args.etcd_certfile.is_some() || args.etcd_keyfile.is_some())
            .then(|| keg_store::EtcdTls {
                ca_file: args.etcd_cafile.clone(),
                cert_file: args.etcd_certfile.clone(),
                key_file: args.etcd_keyfile.clone(),
            });
    if args.store == "embedded" {
        if tls.is_some() || !args.etcd_prefix.is_empty() {
            anyhow::bail!("the --etcd-* options need --store etcd://HOST:PORT");
        }
        return Ok(keg_apiserver::StoreBackend::Embedded);
    }
    let Some(members) = args.store.strip_prefix("etcd://") else {
        anyhow::bail!(
            "--store {}: expected `embedded` or etcd://HOST:PORT[,HOST:PORT...]",
            args.store
        );
    };
    let endpoints: Vec<String> = members
        .split(',')
        .map(|m| m.trim().trim_end_matches('/').to_owned())
        .filter(|m| !m.is_empty())
        .collect();
    if endpoints.is_empty() {
        anyhow::bail!("--store {}: no etcd members", args.store);
    }
    Ok(keg_apiserver::StoreBackend::Etcd {
        endpoints,
        prefix: args.etcd_prefix.clone(),
        tls,
    })
}

/// Serves until SIGINT or SIGTERM.
pub async fn run(args: ServerArgs) -> Result<()> {
    let store = store_backend(&args)?;
    let store_kind = store.clone();
    let runs_agent = if args.no_node_agent {
        false
    } else if !nix::unistd::Uid::effective().is_root() {
        tracing::warn!("not root: no node agent runs, so nodes stay NotReady and pods do not run");
        false
    } else {
        true
    };
    // With a node agent, pods reach the API server at their gateway (the `kubernetes`
    // Service's endpoint), so the serving certificate names it too.
    let pod_network = if runs_agent {
        Some(super::node::pod_network(&args.data_dir)?)
    } else {
        None
    };
    let gateway = pod_network.as_ref().map(|n| IpAddr::V4(n.gateway));
    let mut extra_names = args.tls_san;
    extra_names.extend(gateway.map(|g| g.to_string()));
    let config = Config {
        data_dir: args.data_dir,
        bind_address: args.bind_address,
        port: args.port,
        extra_names,
        compaction_interval: std::time::Duration::from_secs(args.compaction_interval.max(1)),
        advertise_address: gateway,
        store,
    };
    let data_dir = config.data_dir.clone();
    let prices = super::cost::load_prices(args.prices.as_deref())?;
    let server = ApiServer::open(config, Admission::standard()).await?;
    let cluster = ClusterInfo {
        agent: args.cluster_name.clone(),
        name: args.cluster_name,
        region: args.region,
    };
    // Each component is its own user with the rights the bootstrap policy gives it (see
    // keg-apiserver's bootstrap/policy.yaml), as upstream's controller manager, scheduler
    // and kubelets are.
    let client_as = |user: UserInfo| in_process_client(server.router(), &server.tokens.issue(user));
    let controllers = client_as(UserInfo::component("system:kube-controller-manager", &[]));
    let scheduler = client_as(UserInfo::component("system:kube-scheduler", &[]));
    let node = client_as(UserInfo::component(
        &format!("system:node:{}", cluster.agent),
        &["system:nodes"],
    ));
    // On a shared store (etcd) several servers may run: the controllers and the schedulers
    // act only in the one holding their Lease. With the embedded store this is the only
    // server, and they start at once.
    let elected = !matches!(store_kind, keg_apiserver::StoreBackend::Embedded);
    let settings = LeaderSettings {
        node_monitor_grace_period: args.node_monitor_grace_period,
        scale_down_unneeded_time: args.scale_down_unneeded_time,
        hpa_sync_period: args.horizontal_pod_autoscaler_sync_period,
        hpa_downscale_stabilization: args.horizontal_pod_autoscaler_downscale_stabilization,
        volumes: data_dir.join("volumes"),
        prices,
        cluster: cluster.clone(),
        sign: signer(&data_dir)?,
    };
    let (stopping, stop) = tokio::sync::watch::channel(false);
    let mut elections = Vec::new();
    if elected {
        let identity = keg_controllers::leader::identity();
        tracing::info!(%identity, "leader election on a shared store");
        let client = controllers.clone();
        elections.push(campaign(
            controllers.clone(),
            keg_controllers::leader::CONTROLLER_MANAGER,
            &identity,
            move || settings.controllers(client.clone()),
            stop.clone(),
        ));
        let (client, cluster) = (scheduler.clone(), cluster.clone());
        elections.push(campaign(
            scheduler,
            keg_controllers::leader::SCHEDULER,
            &identity,
            move || keg_scheduler::run(client.clone(), cluster.clone()),
            stop.clone(),
        ));
    } else {
        tokio::spawn(settings.controllers(controllers.clone()));
        tokio::spawn(keg_scheduler::run(scheduler, cluster.clone()));
    }
    let agent = if let Some(network) = &pod_network {
        let images = args
            .images_dir
            .unwrap_or_else(|| super::cluster::keg_home().join("images"));
        let gateway = network.gateway;
        let agent = super::node::open(node, &data_dir, &images, &cluster.agent, |config| {
            config.insecure_registries = args.insecure_registries;
            config.cluster_dns = vec![gateway.to_string()];
        })
        .await?;
        *server.state.pod_logs.write().expect("not poisoned") = Some(agent.pod_logs());
        *server.state.pod_exec.write().expect("not poisoned") = Some(agent.pod_exec());
        *server.state.pod_usage.write().expect("not poisoned") = Some(agent.pod_usage());
        let running = agent.clone();
        let task = tokio::spawn(async move {
            if let Err(e) = running.run().await {
                tracing::error!("node agent stopped: {e}");
            }
        });
        Some((agent, task))
    } else {
        None
    };
    tokio::spawn(keg_controllers::services::run(
        controllers,
        keg_controllers::services::Config {
            load_balancer_address: args.load_balancer_address,
            pod_network,
        },
    ));
    let served = server
        .serve(async move {
            shutdown_signal().await;
            let _ = stopping.send(true);
        })
        .await;
    // Stopped leaders release their Leases, so another server takes over at once.
    for election in elections {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), election).await;
    }
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

/// What the controllers run with (they are started afresh each time this server leads).
struct LeaderSettings {
    node_monitor_grace_period: u64,
    scale_down_unneeded_time: u64,
    hpa_sync_period: u64,
    hpa_downscale_stabilization: u64,
    volumes: PathBuf,
    prices: keg_api::prices::PriceTable,
    cluster: ClusterInfo,
    sign: keg_controllers::certificates::Sign,
}

/// The CSR signer's signing: with the cluster CA of the data dir (every server on a store
/// has the same one).
fn signer(data_dir: &std::path::Path) -> Result<keg_controllers::certificates::Sign> {
    let ca = std::sync::Arc::new(keg_apiserver::pki::ClusterCa::load_or_create(data_dir)?);
    Ok(std::sync::Arc::new(
        move |request, usages, not_before, not_after| {
            ca.sign(request, usages, not_before, not_after)
        },
    ))
}

impl LeaderSettings {
    /// Every controller of kube-controller-manager's and keg's own (metering, node groups,
    /// the cluster autoscaler), as one future.
    fn controllers(&self, client: kube::Client) -> impl std::future::Future<Output = ()> + use<> {
        use keg_controllers::{
            SystemClock, autoscaler, hpa, metering, node_lifecycle, nodegroup, volumes,
        };
        use std::sync::Arc;
        use std::time::Duration;
        let node_lifecycle = node_lifecycle::Config {
            grace_period: Duration::from_secs(self.node_monitor_grace_period.max(1)),
            clock: Arc::new(SystemClock),
        };
        let hpa = hpa::Config {
            sync_period: Duration::from_secs(self.hpa_sync_period.max(1)),
            downscale_stabilization: Duration::from_secs(self.hpa_downscale_stabilization),
            ..hpa::Config::new(Arc::new(SystemClock))
        };
        let volumes = volumes::Config {
            root: self.volumes.clone(),
        };
        let metering = metering::Config::new(&self.cluster, self.prices.clone());
        let cluster = self.cluster.clone();
        let sign = self.sign.clone();
        let autoscaler = autoscaler::Config {
            cluster: self.cluster.clone(),
            scale_down_unneeded: Duration::from_secs(self.scale_down_unneeded_time),
            clock: Arc::new(SystemClock),
        };
        async move {
            tokio::join!(
                keg_controllers::run_all(client.clone()),
                keg_controllers::certificates::run(client.clone(), sign),
                node_lifecycle::run(client.clone(), node_lifecycle),
                hpa::run(client.clone(), hpa),
                volumes::run(client.clone(), volumes),
                metering::run(client.clone(), metering),
                nodegroup::run(client.clone(), cluster),
                autoscaler::run(client, autoscaler),
            );
        }
    }
}

/// Campaigns for Lease `name` until the server stops: while this server holds it, `work`
/// runs on a runtime of its own, shut down (with every task it spawned) when the Lease is lost.
fn campaign<F>(
    client: kube::Client,
    name: &str,
    identity: &str,
    mut work: impl FnMut() -> F + Send + 'static,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()>
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let config = keg_controllers::leader::Config::new(name, identity);
    let name = name.to_owned();
    tokio::spawn(keg_controllers::leader::run(
        client,
        config,
        move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name(format!("keg-{name}"))
                .enable_all()
                .build()
                .expect("a runtime for the leader's work");
            runtime.spawn(work());
            runtime
        },
        |runtime: tokio::runtime::Runtime| runtime.shutdown_background(),
        async move {
            let _ = stop.wait_for(|s| *s).await;
        },
    ))
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
}
