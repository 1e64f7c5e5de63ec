//! What the real kubectl shows of pods the agent runs: `get` (the server's table, from the
//! status the agent writes) and `logs` with its flags, against the API served over HTTPS.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;

use crate::common::{IMAGE, kubectl_status, with_cluster};

const NODE: &str = "ip-192-168-7-9.eu-west-1.compute.internal";

/// The newest kubectl beside the one on PATH (kubectl.1.33), else the one on PATH.
fn kubectl_binary() -> PathBuf {
    let on_path = std::process::Command::new("sh")
        .args(["-c", "readlink -f \"$(command -v kubectl)\""])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let versioned = Path::new(&on_path).with_file_name("kubectl.1.33");
    if versioned.exists() {
        versioned
    } else {
        PathBuf::from("kubectl")
    }
}

async fn kubectl(kubeconfig: &Path, args: &[&str]) -> String {
    let out = tokio::process::Command::new(kubectl_binary())
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .await
        .expect("run kubectl");
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The STATUS and RESTARTS columns of `kubectl get pod`.
async fn columns(kubeconfig: &Path, pod: &str) -> (String, String) {
    let out = kubectl(kubeconfig, &["get", "pod", pod, "--no-headers"]).await;
    let fields: Vec<&str> = out.split_whitespace().collect();
    (fields[2].to_string(), fields[3].to_string())
}

#[tokio::test]
async fn kubectl_sees_what_the_agent_reports() {
    with_cluster("kubectl_sees_what_the_agent_reports", |mut c| async move {
        let kubeconfig = c.serve_https().await;
        c.node(NODE, false).await;
        let script = "trap 'exit 0' TERM; for i in 1 2 3; do echo line $i; done; while true; do sleep 1; done";
        c.pod("web", NODE, json!({"containers": [{"name": "app", "image": IMAGE, "command": ["sh", "-c", script]}]}))
            .await;
        c.pod("crash", NODE, json!({"containers": [{"name": "app", "image": IMAGE, "command": ["sh", "-c", "echo bad; exit 2"]}]}))
            .await;
        c.wait_pod("web", "Running", |p| kubectl_status(p) == "Running").await;
        let (status, restarts) = columns(&kubeconfig, "web").await;
        assert_eq!((status.as_str(), restarts.as_str()), ("Running", "0"));
        let ready = kubectl(&kubeconfig, &["get", "pod", "web", "--no-headers"]).await;
        assert!(ready.split_whitespace().nth(1) == Some("1/1"), "{ready}");
        assert_eq!(kubectl(&kubeconfig, &["logs", "web"]).await, "line 1\nline 2\nline 3\n");
        assert_eq!(kubectl(&kubeconfig, &["logs", "web", "--tail=1"]).await, "line 3\n");
        assert_eq!(kubectl(&kubeconfig, &["logs", "web", "-c", "app", "--since=1h"]).await.lines().count(), 3);
        let stamped = kubectl(&kubeconfig, &["logs", "web", "--timestamps", "--tail=1"]).await;
        assert!(stamped.ends_with("Z line 3\n") && stamped.starts_with("20"), "{stamped}");

        c.wait_pod("crash", "CrashLoopBackOff", |p| kubectl_status(p) == "CrashLoopBackOff").await;
        let (status, restarts) = columns(&kubeconfig, "crash").await;
        assert_eq!(status, "CrashLoopBackOff");
        assert!(restarts.starts_with('1'), "{restarts}");
        assert_eq!(kubectl(&kubeconfig, &["logs", "crash", "--previous"]).await, "bad\n");

        // `logs -f` streams until the container ends.
        let follow = {
            let kubeconfig = kubeconfig.clone();
            tokio::spawn(async move { kubectl(&kubeconfig, &["logs", "-f", "web"]).await })
        };
        tokio::time::sleep(Duration::from_millis(500)).await;
        kubectl(&kubeconfig, &["delete", "pod", "web", "crash", "--wait=false"]).await;
        let followed = tokio::time::timeout(crate::common::WAIT, follow).await.expect("logs -f ended").unwrap();
        assert_eq!(followed, "line 1\nline 2\nline 3\n");
        c.wait_gone("web").await;
        c.wait_gone("crash").await;
        c
    })
    .await;
}
