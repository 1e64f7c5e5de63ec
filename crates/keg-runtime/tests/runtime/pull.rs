//! Pulling from a real registry (Debian's docker-registry on loopback).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use keg_runtime::{ContainerState, ImageStore, image};

use crate::common::with_env;

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
        let storage = dir.join("registry-data");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n\
                 \x20   rootdirectory: {}\nhttp:\n  addr: {addr}\n",
                storage.display()
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
async fn pulls_from_a_registry_and_reports_its_errors() {
    with_env(
        "pulls_from_a_registry_and_reports_its_errors",
        |env| async move {
            let registry = Registry::start(env.dir.path());
            let reference = format!("{}/busybox:test", registry.addr);
            let pushed = Command::new("skopeo")
                .args(["copy", "--insecure-policy", "--dest-tls-verify=false"])
                .arg(format!("oci:{}:busybox:test", env.image.layout.display()))
                .arg(format!("docker://{reference}"))
                .output()
                .expect("run skopeo");
            assert!(
                pushed.status.success(),
                "skopeo copy: {}",
                String::from_utf8_lossy(&pushed.stderr)
            );
            let insecure = [registry.addr.clone()];

            // Into an empty store: every layer is downloaded and unpacked.
            let fresh = ImageStore::open(env.dir.path().join("fresh-store")).unwrap();
            let pulled = fresh.pull(&reference, None, &insecure).await.expect("pull");
            assert_eq!(pulled.id, env.image.id);
            assert_eq!(pulled.repo_tags, vec![reference.clone()]);
            assert!(
                pulled.repo_digests[0].starts_with(&format!("{}/busybox@sha256:", registry.addr))
            );
            assert_eq!(fresh.layer_dirs(&pulled).unwrap().len(), 2);
            assert_eq!(
                fresh
                    .resolve(&pulled.repo_digests[0])
                    .unwrap()
                    .map(|i| i.id),
                Some(env.image.id.clone())
            );

            // Into the runtime's store, and run it.
            env.images
                .pull(
                    &reference,
                    Some(("user".into(), "secret".into())),
                    &insecure,
                )
                .await
                .expect("pull with auth");
            let sandbox = env.sandbox("pulled").await;
            let mut config = env.container_config("pulled", "echo pulled");
            config.image = reference.clone();
            let id = env.run_with(&sandbox, config).await;
            assert!(matches!(
                env.wait_exited(&id).await,
                ContainerState::Exited { exit_code: 0, .. }
            ));
            assert_eq!(env.log_lines(&id), ["pulled"]);

            // The registry's own words come through, for ErrImagePull.
            let missing = format!("{}/busybox:nope", registry.addr);
            match fresh.pull(&missing, None, &insecure).await {
                Err(e @ image::Error::Pull { .. }) => {
                    assert!(e.to_string().contains("manifest unknown"), "{e}")
                }
                other => panic!("expected a pull error, got {other:?}"),
            }
            let unknown_repo = format!("{}/nothing/here:v1", registry.addr);
            let err = fresh
                .pull(&unknown_repo, None, &insecure)
                .await
                .unwrap_err()
                .to_string();
            assert!(err.contains("unknown"), "{err}");
            drop(registry);
            let err = fresh
                .pull(&reference, None, &insecure)
                .await
                .unwrap_err()
                .to_string();
            assert!(err.contains("onnection refused"), "{err}");
        },
    )
    .await;
}
