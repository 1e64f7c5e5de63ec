//! The Kubernetes API server: authentication, admission, REST, watch, discovery and OpenAPI
//! over a [`keg_store::Store`]. Every other part of keg is a client of this API.

pub mod admission;
pub mod auth;
pub mod authz;
pub mod bootstrap;
#[cfg(feature = "client")]
pub mod client;
pub mod component_status;
pub mod convert;
pub mod crds;
pub mod delete;
pub mod discovery;
pub mod error;
pub mod eviction;
pub mod exec;
pub mod fieldcheck;
pub mod filter;
pub mod hooks;
pub mod kubeconfig;
pub mod metrics;
pub mod negotiate;
pub mod objects;
pub mod openapi;
pub mod pki;
pub mod protobuf;
pub mod proxy;
pub mod read;
pub mod render;
pub mod request;
pub mod resource_metrics;
pub mod resources;
pub mod rest;
pub mod reviews;
pub mod server;
pub mod shared;
pub mod state;
pub mod storage;
pub mod strategy;
pub mod subresources;
pub mod token_request;
pub mod version;
pub mod watch;
pub mod write;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, Result};
use keg_store::Store;

pub use state::{
    ApiState, ContainerUsage, ExecOptions, ExecSession, LogOptions, PodExec, PodLogs, PodUsage,
    UsageSource,
};

/// How to run the API server.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the store, certificates, tokens and kubeconfig live.
    pub data_dir: PathBuf,
    /// The address to listen on (loopback by default).
    pub bind_address: IpAddr,
    /// The port to listen on.
    pub port: u16,
    /// Extra names or addresses for the serving certificate.
    pub extra_names: Vec<String>,
    /// How often history is compacted; five intervals of history are kept.
    pub compaction_interval: Duration,
    /// Where pods reach the API server (the pod network's gateway): the server listens there
    /// too, on the same port, and the `kubernetes` Service's endpoints name it.
    pub advertise_address: Option<IpAddr>,
    /// Which store keeps the cluster's state.
    pub store: StoreBackend,
}

/// Where the cluster's state is kept.
#[derive(Debug, Clone, Default)]
pub enum StoreBackend {
    /// The embedded store: `keg.db` in the data dir (the default).
    #[default]
    Embedded,
    /// An etcd cluster.
    Etcd {
        /// `host:port` of each member.
        endpoints: Vec<String>,
        /// Prepended to every key (keg's keys already begin with `/registry/`).
        prefix: String,
        /// TLS to etcd, if any.
        tls: Option<keg_store::EtcdTls>,
    },
}

impl Config {
    /// Upstream's compaction: every minute, keeping about five minutes of history.
    pub const DEFAULT_COMPACTION_INTERVAL: Duration = Duration::from_secs(60);

    /// A server on loopback, on a port the system picks, with no pod network: what tests and
    /// in-process tools run.
    pub fn local(data_dir: impl Into<PathBuf>) -> Config {
        Config {
            data_dir: data_dir.into(),
            bind_address: IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            port: 0,
            extra_names: Vec::new(),
            compaction_interval: Config::DEFAULT_COMPACTION_INTERVAL,
            advertise_address: None,
            store: StoreBackend::Embedded,
        }
    }
}

/// An opened API server, ready to serve.
pub struct ApiServer {
    /// Shared state (for in-process wiring).
    pub state: Arc<ApiState>,
    /// The accepted tokens.
    pub tokens: auth::Tokens,
    /// Certificates.
    pub pki: pki::Pki,
    config: Config,
}

impl ApiServer {
    /// Opens the store in the data dir, the certificates and tokens, and bootstraps the cluster.
    pub async fn open(config: Config, admission: admission::Admission) -> Result<ApiServer> {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
        let store: Arc<dyn Store> = match &config.store {
            StoreBackend::Embedded => {
                let db = config.data_dir.join("keg.db");
                Arc::new(
                    keg_store::RedbStore::open(&db)
                        .await
                        .with_context(|| format!("opening the store {}", db.display()))?,
                )
            }
            StoreBackend::Etcd {
                endpoints,
                prefix,
                tls,
            } => Arc::new(
                keg_store::EtcdStore::connect(endpoints, prefix, tls.clone())
                    .await
                    .with_context(|| format!("connecting to etcd at {}", endpoints.join(",")))?,
            ),
        };
        // Every server on the store shares one CA, signing key and admin token.
        shared::sync(store.as_ref(), &config.data_dir).await?;
        let pki = pki::Pki::load_or_create(&config.data_dir, &config.extra_names)?;
        let auth = auth::Authenticator::load_or_create(&config.data_dir)?;
        let tokens = auth.tokens.clone();
        let policy = authz::cache::PolicyCache::start(store.clone())
            .await
            .context("loading the RBAC policy")?;
        let state = Arc::new(ApiState {
            objects: storage::Objects::new(store.clone()),
            registry: resources::Registry::new(),
            admission,
            pod_logs: Default::default(),
            pod_exec: Default::default(),
            pod_usage: Default::default(),
            ready: Default::default(),
            metrics: Default::default(),
            auth,
            authz: authz::Authorizer { policy },
            ca_pem: pki.ca_pem.clone(),
        });
        metrics::pods::spawn_observer(state.clone());
        crds::start(&state).await?;
        bootstrap::run(&state)
            .await
            .map_err(|e| anyhow::anyhow!("bootstrapping the cluster: {}", e.message))?;
        Ok(ApiServer {
            state,
            tokens,
            pki,
            config,
        })
    }

    /// The router serving every endpoint.
    pub fn router(&self) -> axum::Router {
        server::router(self.state.clone())
    }

    /// The HTTPS URL clients use.
    pub fn url(&self, port: u16) -> String {
        let host = if self.config.bind_address.is_unspecified() {
            "127.0.0.1".to_string()
        } else {
            self.config.bind_address.to_string()
        };
        match self.config.bind_address {
            IpAddr::V6(_) if !self.config.bind_address.is_unspecified() => {
                format!("https://[{host}]:{port}")
            }
            _ => format!("https://{host}:{port}"),
        }
    }

    /// Binds the listener, writes `data_dir/kubeconfig`, marks the server ready and serves
    /// until `shutdown` resolves.
    pub async fn serve(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        let addr = SocketAddr::new(self.config.bind_address, self.config.port);
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("listening on {addr}"))?;
        let port = listener.local_addr()?.port();
        let url = self.url(port);
        let admin = kubeconfig::render(
            "keg",
            &url,
            &self.pki.ca_pem,
            "keg-admin",
            kubeconfig::Credential::Token(self.tokens.admin()),
        );
        kubeconfig::write(&self.config.data_dir.join("kubeconfig"), &admin)?;
        let tls = self.pki.server_config()?;
        let router = self.router();
        spawn_compactor(self.state.clone(), self.config.compaction_interval);
        let (stopped, stop) = tokio::sync::watch::channel(false);
        if let Some(address) = self.config.advertise_address {
            let (state, tls, router) = (self.state.clone(), tls.clone(), router.clone());
            tokio::spawn(async move {
                let mut stop = stop;
                let listener = tokio::select! {
                    listener = bind_when_present(SocketAddr::new(address, port)) => listener,
                    _ = stop.wait_for(|s| *s) => return,
                };
                if let Err(e) = bootstrap::endpoints::publish(&state, address, port).await {
                    tracing::error!("publishing the kubernetes endpoints: {}", e.message);
                }
                let shutdown = async move {
                    let _ = stop.wait_for(|s| *s).await;
                };
                if let Err(e) = server::serve_tls(listener, tls, router, shutdown).await {
                    tracing::error!("serving pods on {address}:{port}: {e}");
                }
            });
        }
        self.state.ready.store(true, Ordering::SeqCst);
        tracing::info!(%url, "API server ready");
        let shutdown = async move {
            shutdown.await;
            let _ = stopped.send(true);
        };
        server::serve_tls(listener, tls, router, shutdown).await
    }
}

/// Binds `addr`, trying again every second while the address is not on any interface yet
/// (the pod bridge appears when the node agent sets up its network).
async fn bind_when_present(addr: SocketAddr) -> tokio::net::TcpListener {
    let mut logged = false;
    loop {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(listener) => return listener,
            Err(e) if !logged => {
                tracing::info!("waiting to listen on {addr}: {e}");
                logged = true;
            }
            Err(_) => {}
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Keeps five intervals of history (five minutes by default, as upstream keeps in etcd).
fn spawn_compactor(state: Arc<ApiState>, interval: Duration) {
    tokio::spawn(async move {
        let mut seen = std::collections::VecDeque::new();
        let mut tick = tokio::time::interval(interval);
        loop {
            tick.tick().await;
            seen.push_back(state.objects.store().current_revision());
            if seen.len() > 5 {
                let revision = seen.pop_front().unwrap_or(0);
                if revision > state.objects.store().compacted_revision()
                    && let Err(e) = state.objects.store().compact(revision).await
                {
                    tracing::warn!("compaction to {revision} failed: {e}");
                }
            }
        }
    });
}
