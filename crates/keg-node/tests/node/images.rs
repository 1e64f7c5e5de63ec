//! Pulling from a registry (Debian's docker-registry on loopback): a pulled image runs; a
//! missing one gives ErrImagePull, then ImagePullBackOff, with the registry's message.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::json;

use crate::common::{container_status, kubectl_status, with_cluster};

const NODE: &str = "ip-192-168-7-9.eu-west-1.compute.internal";

/// A docker-registry on 127.0.0.1, stopped (by its pid) when dropped.
struct Registry {
    child: Child,
    addr: String,
}

impl Registry {
    fn start(dir: &Path) -> Registry {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let config = dir.join("registry.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n",
                dir.join("registry-data").display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("registry.log")).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start docker-registry (Debian package docker-registry)");
        let registry = Registry { child, addr };
        for _ in 0..100 {
            if std::net::TcpStream::connect(&registry.addr).is_ok() {
                return registry;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("docker-registry did not listen on {}", registry.addr);
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn pulls_images_and_reports_pull_errors() {
    with_cluster("pulls_images_and_reports_pull_errors", |mut c| async move {
        let registry = Registry::start(c.dir.path());
        let reference = format!("{}/tools/busybox:v1", registry.addr);
        let pushed = Command::new("skopeo")
            .args(["copy", "--insecure-policy", "--dest-tls-verify=false"])
            .arg(format!("oci:{}:busybox:test", c.image.layout.display()))
            .arg(format!("docker://{reference}"))
            .output()
            .expect("run skopeo");
        assert!(pushed.status.success(), "skopeo: {}", String::from_utf8_lossy(&pushed.stderr));
        c.restart_agent_with(|config| config.insecure_registries = vec![registry.addr.clone()]).await;
        c.node(NODE, false).await;
        c.pod("pulled", NODE, json!({"containers": [{"name": "app", "image": reference,
            "imagePullPolicy": "Always", "command": ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]}]}))
        .await;
        let missing = format!("{}/tools/missing:v1", registry.addr);
        c.pod("missing", NODE, json!({"containers": [{"name": "app", "image": missing, "command": ["true"]}]}))
            .await;
        let pod = c.wait_pod("pulled", "Running", |p| kubectl_status(p) == "Running").await;
        let app = container_status(&pod, "app");
        assert_eq!(app.image, reference);
        assert!(app.image_id.starts_with(&format!("{}/tools/busybox@sha256:", registry.addr)), "{}", app.image_id);
        c.wait_event("pulled", &format!("Pulling: Pulling image \"{reference}\"")).await;
        c.wait_event("pulled", &format!("Pulled: Successfully pulled image \"{reference}\" in")).await;

        let pod = c.wait_pod("missing", "ErrImagePull", |p| kubectl_status(p) == "ErrImagePull").await;
        let waiting = container_status(&pod, "app").state.unwrap().waiting.unwrap();
        let message = waiting.message.unwrap();
        assert!(message.contains("manifest unknown"), "the registry's own words: {message}");
        let pod = c.wait_pod("missing", "ImagePullBackOff", |p| kubectl_status(p) == "ImagePullBackOff").await;
        let waiting = container_status(&pod, "app").state.unwrap().waiting.unwrap();
        let backoff = waiting.message.unwrap();
        assert!(
            backoff.starts_with(&format!("Back-off pulling image \"{missing}\": ErrImagePull: ")),
            "{backoff}"
        );
        assert!(backoff.contains("manifest unknown"), "{backoff}");
        c.wait_event("missing", "Failed: Error: ErrImagePull").await;
        c.wait_event("missing", &format!("BackOff: Back-off pulling image \"{missing}\"")).await;
        for name in ["pulled", "missing"] {
            c.delete_pod(name).await;
            c.wait_gone(name).await;
        }
        drop(registry);
        c
    })
    .await;
}
