//! A per-test cluster: an in-process API server, a runtime on its own network and cgroup, a
//! busybox image, and a node agent; always torn down and checked for leftovers.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use keg_node::{Config, NodeAgent};
use keg_runtime::testing;
use keg_runtime::{ImageStore, Runtime, RuntimeConfig};
use kube::api::{Api, DeleteParams, ListParams, LogParams, PostParams};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

/// The image every test pod runs (imported, not pulled).
pub const IMAGE: &str = "busybox:test";
/// How long a pod may take to get somewhere.
pub const WAIT: Duration = Duration::from_secs(60);

/// What a test works with.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    server: Option<keg_apiserver::ApiServer>,
    pub state: Arc<keg_apiserver::ApiState>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    pub client: kube::Client,
    pub images: ImageStore,
    pub runtime: Arc<Runtime>,
    pub runtime_config: RuntimeConfig,
    pub agent: Arc<NodeAgent>,
    pub agent_name: String,
    pub config: Config,
    pub image: testing::TestImage,
    task: Option<JoinHandle<()>>,
}

impl Cluster {
    /// Stops the agent (its containers go on running).
    pub async fn stop_agent(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// A new agent on a new runtime over the same directories, as after a restart of keg.
    pub async fn restart_agent(&mut self) {
        self.restart_agent_with(|_| {}).await;
    }

    /// Like [`Cluster::restart_agent`], with changed settings.
    pub async fn restart_agent_with(&mut self, change: impl FnOnce(&mut Config)) {
        change(&mut self.config);
        self.stop_agent().await;
        let runtime = Runtime::new(self.runtime_config.clone(), self.images.clone())
            .await
            .expect("reopen the runtime");
        self.runtime = Arc::new(runtime);
        let agent = NodeAgent::new(
            self.client.clone(),
            self.runtime.clone(),
            self.config.clone(),
        )
        .expect("make the node agent");
        self.agent = Arc::new(agent);
        self.start_agent();
    }

    fn start_agent(&mut self) {
        *self.state.pod_logs.write().unwrap() = Some(self.agent.pod_logs());
        *self.state.pod_exec.write().unwrap() = Some(self.agent.pod_exec());
        let agent = self.agent.clone();
        self.task = Some(tokio::spawn(async move {
            if let Err(e) = agent.run().await {
                panic!("node agent failed: {e}");
            }
        }));
    }

    /// Creates a node served by this test's agent.
    pub async fn node(&self, name: &str, fargate: bool) -> Node {
        let mut labels =
            json!({ "keg.dev/agent": self.agent_name, "kubernetes.io/hostname": name });
        let capacity = if fargate {
            labels["eks.amazonaws.com/compute-type"] = json!("fargate");
            json!({"cpu": "250m", "memory": "512Mi", "pods": "1"})
        } else {
            json!({"cpu": "2", "memory": "4Gi", "pods": "110"})
        };
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": labels},
            "status": {
                "capacity": capacity, "allocatable": capacity,
                "addresses": [{"type": "InternalIP", "address": "192.168.7.9"}, {"type": "Hostname", "address": name}]
            }
        }))
        .unwrap();
        let api: Api<Node> = Api::all(self.client.clone());
        let created = api
            .create(&PostParams::default(), &node)
            .await
            .expect("create node");
        // Status given at creation may be dropped by the API; set it through the subresource.
        let patch = json!({"status": node.status});
        api.patch_status(name, &Default::default(), &kube::api::Patch::Merge(&patch))
            .await
            .expect("set node status");
        created
    }

    /// Creates a pod in `default` from a spec, bound to `node`.
    pub async fn pod(&self, name: &str, node: &str, mut spec: Value) -> Pod {
        spec["nodeName"] = json!(node);
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default"},
            "spec": spec,
        }))
        .unwrap();
        self.pods()
            .create(&PostParams::default(), &pod)
            .await
            .expect("create pod")
    }

    pub fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), "default")
    }

    /// Polls the pod until `check` holds; panics with the pod's last status otherwise.
    pub async fn wait_pod(&self, name: &str, what: &str, check: impl Fn(&Pod) -> bool) -> Pod {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let pod = self.pods().get_opt(name).await.expect("get pod");
            if let Some(pod) = &pod
                && check(pod)
            {
                return pod.clone();
            }
            if std::time::Instant::now() > deadline {
                let status = pod.map(|p| serde_json::to_string_pretty(&p.status).unwrap());
                let events = self.event_lines(name).await;
                panic!("pod {name} never got {what}; status: {status:?}\nevents: {events:#?}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits for the pod object to be gone.
    pub async fn wait_gone(&self, name: &str) {
        let deadline = std::time::Instant::now() + WAIT;
        while self.pods().get_opt(name).await.expect("get pod").is_some() {
            assert!(
                std::time::Instant::now() < deadline,
                "pod {name} was never removed"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub async fn delete_pod(&self, name: &str) {
        self.pods()
            .delete(name, &DeleteParams::default())
            .await
            .expect("delete pod");
    }

    /// `reason: message` of the pod's events, oldest first.
    pub async fn event_lines(&self, pod: &str) -> Vec<String> {
        let api: Api<Event> = Api::namespaced(self.client.clone(), "default");
        let list = api
            .list(&ListParams::default())
            .await
            .map(|l| l.items)
            .unwrap_or_default();
        list.into_iter()
            .filter(|e| e.involved_object.name.as_deref() == Some(pod))
            .map(|e| {
                format!(
                    "{}: {}",
                    e.reason.unwrap_or_default(),
                    e.message.unwrap_or_default()
                )
            })
            .collect()
    }

    /// Waits for an event of the pod whose `reason: message` contains `text`.
    pub async fn wait_event(&self, pod: &str, text: &str) {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let lines = self.event_lines(pod).await;
            if lines.iter().any(|l| l.contains(text)) {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no event {text:?} for {pod}: {lines:#?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Serves the API over HTTPS on loopback for the real kubectl; returns its kubeconfig.
    pub async fn serve_https(&mut self) -> std::path::PathBuf {
        // As the keg binary does at start: rustls needs its crypto provider chosen.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let server = self.server.take().expect("served once");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        self.shutdown = Some(tx);
        let kubeconfig = self.dir.path().join("api/kubeconfig");
        tokio::spawn(async move {
            let stop = async move {
                let _ = rx.await;
            };
            if let Err(e) = server.serve(stop).await {
                eprintln!("API server: {e:#}");
            }
        });
        for _ in 0..200 {
            if kubeconfig.exists() {
                return kubeconfig;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the API server never wrote its kubeconfig");
    }

    /// `kubectl logs` through the API server.
    pub async fn logs(&self, pod: &str, params: LogParams) -> String {
        self.pods().logs(pod, &params).await.expect("read logs")
    }

    /// Runs a command in the pod's (only or named) container, through the runtime.
    pub async fn exec(&self, pod: &Pod, container: &str, cmd: &[&str]) -> (i32, String) {
        let id = container_id(pod, container);
        let out = self
            .runtime
            .exec(&id, cmd, Duration::from_secs(20))
            .await
            .expect("exec");
        (
            out.exit_code,
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }
}

/// The runtime id of a container from pod status.
pub fn container_id(pod: &Pod, container: &str) -> String {
    let status = pod.status.clone().unwrap_or_default();
    let c = status
        .container_statuses
        .into_iter()
        .flatten()
        .find(|c| c.name == container)
        .expect("container status");
    c.container_id
        .expect("container id")
        .trim_start_matches("crun://")
        .to_string()
}

fn agent_config(name: &str, root: &std::path::Path) -> Config {
    let mut config = Config::new(name, root);
    config.cluster_dns = vec!["10.43.0.10".into()];
    config
}

/// Runs `body` with a fresh cluster; afterwards removes everything and fails the test if
/// anything (mount, bridge, cgroup, namespace, monitor, file) is left.
pub async fn with_cluster<F, Fut>(test: &str, body: F)
where
    F: FnOnce(Cluster) -> Fut,
    Fut: Future<Output = Cluster>,
{
    if !testing::require_root(test) {
        return;
    }
    let mut cluster = Cluster::open().await;
    cluster.start_agent();
    let root = cluster.runtime_config.root_dir.clone();
    let (runtime_config, images) = (cluster.runtime_config.clone(), cluster.images.clone());
    let agent_root = cluster.dir.path().join("agent");
    let result = AssertUnwindSafe(body(cluster)).catch_unwind().await;
    let mut cluster = match result {
        Ok(c) => c,
        Err(panic) => {
            clean_after_panic(runtime_config, images, &agent_root).await;
            std::panic::resume_unwind(panic);
        }
    };
    cluster.stop_agent().await;
    let monitors = monitors(&root);
    let sandboxes = sandbox_ids(&root);
    let removed = cluster.agent.remove_everything().await;
    removed.expect("remove everything");
    let network = &cluster.runtime_config.network;
    let cgroup_root = &cluster.runtime_config.cgroup_root;
    let left = testing::leftovers(&root, network, cgroup_root, &sandboxes, &monitors);
    assert!(left.is_empty(), "left behind: {left:?}");
    assert!(!agent_root.exists(), "agent directory left behind");
}

impl Cluster {
    /// A fresh API server, image store (with the busybox image), runtime and agent.
    async fn open() -> Cluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = keg_apiserver::Config {
            compaction_interval: Duration::from_secs(300),
            ..keg_apiserver::Config::local(dir.path().join("api"))
        };
        let admission = keg_apiserver::admission::Admission::standard();
        let server = keg_apiserver::ApiServer::open(config, admission)
            .await
            .expect("open the API server");
        let client =
            keg_apiserver::client::in_process_client(server.router(), server.tokens.admin());
        let image = testing::build_busybox_image(&dir.path().join("image"), IMAGE)
            .expect("build the image");
        let images = ImageStore::open(dir.path().join("images")).expect("open the image store");
        images
            .import_archive(&image.oci_archive)
            .await
            .expect("import the image");
        let mut runtime_config = RuntimeConfig::new(dir.path().join("runtime"));
        runtime_config.network = testing::unique_network();
        runtime_config.cgroup_root = testing::unique_cgroup_root();
        let runtime = Runtime::new(runtime_config.clone(), images.clone())
            .await
            .expect("start the runtime");
        let runtime = Arc::new(runtime);
        let agent_name = format!("test-{}", &uuid_like()[..8]);
        let config = agent_config(&agent_name, &dir.path().join("agent"));
        let agent = NodeAgent::new(client.clone(), runtime.clone(), config.clone())
            .expect("make the node agent");
        Cluster {
            dir,
            state: server.state.clone(),
            server: Some(server),
            shutdown: None,
            client,
            images,
            runtime,
            runtime_config,
            agent: Arc::new(agent),
            agent_name,
            config,
            image,
            task: None,
        }
    }
}

/// Ids under a runtime directory (`containers` or `sandboxes`).
fn ids(root: &std::path::Path, kind: &str) -> Vec<String> {
    std::fs::read_dir(root.join(kind))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

fn monitors(root: &std::path::Path) -> Vec<(i32, u64)> {
    ids(root, "containers")
        .iter()
        .filter_map(|id| testing::monitor_of(root, id))
        .collect()
}

fn sandbox_ids(root: &std::path::Path) -> Vec<String> {
    ids(root, "sandboxes")
}

/// After a failed test the cluster went with the panic (its drop aborted the agent); what
/// it ran is removed through a runtime opened again on the same directory.
async fn clean_after_panic(
    config: RuntimeConfig,
    images: ImageStore,
    agent_root: &std::path::Path,
) {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    match Runtime::new(config, images).await {
        Ok(runtime) => {
            if let Err(e) = runtime.remove_everything().await {
                eprintln!("cleaning up after a failed test: {e}");
            }
        }
        Err(e) => eprintln!("cleaning up after a failed test: {e}"),
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let prefix = agent_root.display().to_string();
    let mut points: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(&prefix))
        .collect();
    points.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for m in points {
        let _ = nix::mount::umount2(m, nix::mount::MntFlags::MNT_DETACH);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{:016x}", nanos ^ (std::process::id() as u128) << 40)
}

/// What `kubectl get pod` shows in its STATUS column (kubectl's printPod).
pub fn kubectl_status(pod: &Pod) -> String {
    let status = pod.status.clone().unwrap_or_default();
    let mut reason = status.phase.clone().unwrap_or_default();
    if let Some(r) = status.reason.clone().filter(|r| !r.is_empty()) {
        reason = r;
    }
    let inits = status.init_container_statuses.clone().unwrap_or_default();
    let mut initializing = false;
    let sidecars: Vec<String> = pod
        .spec
        .iter()
        .flat_map(|s| s.init_containers.iter().flatten())
        .filter(|c| c.restart_policy.as_deref() == Some("Always"))
        .map(|c| c.name.clone())
        .collect();
    for (i, c) in inits.iter().enumerate() {
        let state = c.state.clone().unwrap_or_default();
        if sidecars.contains(&c.name) && c.started == Some(true) {
            continue;
        }
        if let Some(t) = &state.terminated {
            if t.exit_code == 0 {
                continue;
            }
            reason = match t.reason.clone().filter(|r| !r.is_empty()) {
                Some(r) => format!("Init:{r}"),
                None => format!("Init:ExitCode:{}", t.exit_code),
            };
        } else if let Some(r) = state
            .waiting
            .and_then(|w| w.reason)
            .filter(|r| r != "PodInitializing")
        {
            reason = format!("Init:{r}");
        } else {
            reason = format!("Init:{i}/{}", inits.len());
        }
        initializing = true;
        break;
    }
    if !initializing {
        let mut has_running = false;
        for c in status
            .container_statuses
            .clone()
            .unwrap_or_default()
            .iter()
            .rev()
        {
            let state = c.state.clone().unwrap_or_default();
            if let Some(r) = state
                .waiting
                .as_ref()
                .and_then(|w| w.reason.clone())
                .filter(|r| !r.is_empty())
            {
                reason = r;
            } else if let Some(t) = &state.terminated {
                reason = match t.reason.clone().filter(|r| !r.is_empty()) {
                    Some(r) => r,
                    None => format!("ExitCode:{}", t.exit_code),
                };
            } else if state.running.is_some() && c.ready {
                has_running = true;
            }
        }
        if reason == "Completed" && has_running {
            reason = "Running".into();
        }
    }
    if pod.metadata.deletion_timestamp.is_some() {
        reason = "Terminating".into();
    }
    reason
}

/// The status of the pod's (first) container.
pub fn container_status(pod: &Pod, name: &str) -> k8s_openapi::api::core::v1::ContainerStatus {
    pod.status
        .clone()
        .unwrap_or_default()
        .container_statuses
        .into_iter()
        .flatten()
        .find(|c| c.name == name)
        .expect("container status")
}

/// The pod's condition of a type: (status, reason, message).
pub fn condition(pod: &Pod, type_: &str) -> (String, Option<String>, Option<String>) {
    let c = pod
        .status
        .clone()
        .unwrap_or_default()
        .conditions
        .into_iter()
        .flatten()
        .find(|c| c.type_ == type_)
        .unwrap_or_else(|| panic!("no {type_} condition"));
    (c.status, c.reason, c.message)
}
