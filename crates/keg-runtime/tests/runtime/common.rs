//! A per-test environment (image store, runtime, network, cgroup root) that is always torn
//! down, and checked for leftovers, even when the test fails.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use keg_runtime::testing::{self, TestImage};
use keg_runtime::{
    ContainerConfig, ContainerState, DnsConfig, ImageStore, PodSandboxConfig, Runtime,
    RuntimeConfig, Sandbox,
};

/// What a test works with.
#[derive(Clone)]
pub struct Env {
    pub dir: Arc<tempfile::TempDir>,
    pub images: ImageStore,
    pub runtime: Runtime,
    pub image: TestImage,
    pub config: RuntimeConfig,
    /// Sandboxes and containers made through the helpers, for the leak check.
    made: Arc<Mutex<(Vec<String>, Vec<String>)>>,
}

impl Env {
    pub fn root(&self) -> PathBuf {
        self.config.root_dir.clone()
    }

    /// A runtime on the same root, as after a keg restart.
    pub async fn restarted(&self) -> Runtime {
        Runtime::new(self.config.clone(), self.images.clone())
            .await
            .expect("restart the runtime")
    }

    pub async fn sandbox(&self, name: &str) -> Sandbox {
        let config = PodSandboxConfig {
            uid: format!("uid-{name}"),
            name: name.into(),
            namespace: "demo".into(),
            dns: DnsConfig::cluster_first("demo", "cluster.local", vec!["10.43.0.10".into()]),
            ..Default::default()
        };
        self.sandbox_with(config).await
    }

    pub async fn sandbox_with(&self, config: PodSandboxConfig) -> Sandbox {
        let sandbox = self
            .runtime
            .run_pod_sandbox(config)
            .await
            .expect("run the pod sandbox");
        self.made.lock().unwrap().0.push(sandbox.id.clone());
        sandbox
    }

    pub fn container_config(&self, name: &str, script: &str) -> ContainerConfig {
        ContainerConfig {
            name: name.into(),
            image: "busybox:test".into(),
            command: vec!["sh".into(), "-c".into(), script.into()],
            log_path: self.dir.path().join("logs").join(format!("{name}.log")),
            ..Default::default()
        }
    }

    /// Creates and starts a container running `script` in `sh -c`.
    pub async fn run(&self, sandbox: &Sandbox, name: &str, script: &str) -> String {
        self.run_with(sandbox, self.container_config(name, script))
            .await
    }

    pub async fn run_with(&self, sandbox: &Sandbox, config: ContainerConfig) -> String {
        let id = self
            .runtime
            .create_container(&sandbox.id, config)
            .await
            .expect("create the container");
        self.made.lock().unwrap().1.push(id.clone());
        self.runtime
            .start_container(&id)
            .await
            .expect("start the container");
        id
    }

    /// The container's log as text lines (content only).
    pub fn log_lines(&self, id: &str) -> Vec<String> {
        let status = self.runtime.container_status(id).expect("status");
        keg_runtime::logs::read_log(&status.config.log_path, &Default::default())
            .expect("read the log")
            .into_iter()
            .map(|l| String::from_utf8_lossy(&l.content).into_owned())
            .collect()
    }

    pub async fn wait_for_log(&self, id: &str, text: &str) {
        let found = testing::eventually(Duration::from_secs(10), || {
            self.log_lines(id).iter().any(|l| l.contains(text))
        })
        .await;
        assert!(
            found,
            "log of {id} never showed {text:?}: {:?}",
            self.log_lines(id)
        );
    }

    pub async fn wait_exited(&self, id: &str) -> ContainerState {
        let done = testing::eventually(Duration::from_secs(15), || {
            matches!(
                self.runtime.container_status(id).map(|s| s.state),
                Ok(ContainerState::Exited { .. })
            )
        })
        .await;
        assert!(done, "container {id} did not exit");
        self.runtime.container_status(id).unwrap().state
    }

    /// Runs a command in the container and returns (exit code, stdout).
    pub async fn exec(&self, id: &str, cmd: &[&str]) -> (i32, String) {
        let cmd: Vec<String> = cmd.iter().map(|s| s.to_string()).collect();
        let out = self
            .runtime
            .exec(id, &cmd, Duration::from_secs(20))
            .await
            .expect("exec");
        (
            out.exit_code,
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }
}

/// Runs `body` in a fresh environment; afterwards removes everything and fails the test if
/// anything (mount, bridge, cgroup, namespace, monitor process, file) is left.
pub async fn with_env<F, Fut>(name: &str, body: F)
where
    F: FnOnce(Env) -> Fut,
    Fut: Future<Output = ()>,
{
    if !testing::require_root(name) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let image = testing::build_busybox_image(&dir.path().join("image"), "busybox:test")
        .expect("build the image");
    let images = ImageStore::open(dir.path().join("images")).expect("open the image store");
    images
        .import_archive(&image.oci_archive)
        .await
        .expect("import the image");
    let mut config = RuntimeConfig::new(dir.path().join("runtime"));
    config.network = testing::unique_network();
    config.cgroup_root = testing::unique_cgroup_root();
    let runtime = Runtime::new(config.clone(), images.clone())
        .await
        .expect("start the runtime");
    let env = Env {
        dir: Arc::new(dir),
        images,
        runtime,
        image,
        config,
        made: Arc::default(),
    };
    let result = AssertUnwindSafe(body(env.clone())).catch_unwind().await;
    let (sandboxes, containers) = env.made.lock().unwrap().clone();
    let monitors: Vec<(i32, u64)> = containers
        .iter()
        .filter_map(|c| testing::monitor_of(&env.root(), c))
        .collect();
    let removed = env.runtime.remove_everything().await;
    let left = testing::leftovers(
        &env.root(),
        &env.config.network,
        &env.config.cgroup_root,
        &sandboxes,
        &monitors,
    );
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
    removed.expect("remove everything");
    assert!(left.is_empty(), "left behind: {left:?}");
}

impl Env {
    pub fn state(&self, id: &str) -> ContainerState {
        self.runtime.container_status(id).expect("status").state
    }

    pub fn log_path_exists(&self, name: &str) -> bool {
        self.dir
            .path()
            .join("logs")
            .join(format!("{name}.log"))
            .exists()
    }
}
