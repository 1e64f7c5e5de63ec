//! The seed's storage walkthrough with the real kubectl (1.33) over HTTPS: `kubectl apply -f
//! database.yml`, `kubectl get pvc` (Bound, the volume, the class), `kubectl describe pvc`
//! of a claim on the default class (the WaitForFirstConsumer event until a pod uses it).

use std::path::{Path, PathBuf};

use crate::fixture::*;

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

/// Runs kubectl until its output satisfies `check`.
async fn kubectl_until(kubeconfig: &Path, args: &[&str], check: impl Fn(&str) -> bool) -> String {
    eventually(&format!("kubectl {}", args.join(" ")), || async {
        let out = kubectl(kubeconfig, args).await;
        Ok(check(&out).then_some(out))
    })
    .await
}

const NODE: &str = "ip-192-168-1-10.ec2.internal";

#[tokio::test]
async fn kubectl_shows_the_seed_claim_bound_with_its_volume_and_class() -> anyhow::Result<()> {
    let mut c = Cluster::start("tb-demo").await?;
    c.node(NODE, "2", "80Gi").await?;
    let kubeconfig = c.serve_https().await;
    let manifest = c.dir.path().join("database.yml");
    std::fs::write(&manifest, seed_database_manifest())?;
    kubectl(&kubeconfig, &["apply", "-f", manifest.to_str().unwrap()]).await;

    // NAME STATUS VOLUME CAPACITY ACCESS MODES STORAGECLASS VOLUMEATTRIBUTESCLASS AGE
    let row = kubectl_until(
        &kubeconfig,
        &[
            "get",
            "pvc",
            "mysql-data-disk",
            "-n",
            "tb-demo",
            "--no-headers",
        ],
        |out| out.contains("Bound"),
    )
    .await;
    let fields: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(fields[..2], ["mysql-data-disk", "Bound"], "{row}");
    assert!(fields[2].starts_with("pvc-"), "{row}");
    assert_eq!(fields[3..6], ["25Mi", "RWO", "tb-gp2"], "{row}");
    let volume = fields[2].to_owned();

    let pv = kubectl(&kubeconfig, &["get", "pv", &volume, "--no-headers"]).await;
    let fields: Vec<&str> = pv.split_whitespace().collect();
    // NAME CAPACITY ACCESS MODES RECLAIM POLICY STATUS CLAIM STORAGECLASS ...
    assert_eq!(
        fields[1..7],
        [
            "25Mi",
            "RWO",
            "Delete",
            "Bound",
            "tb-demo/mysql-data-disk",
            "tb-gp2"
        ],
        "{pv}"
    );

    let classes = kubectl(&kubeconfig, &["get", "storageclass", "gp2", "--no-headers"]).await;
    let fields: Vec<&str> = classes.split_whitespace().collect();
    assert_eq!(
        fields[..5],
        [
            "gp2",
            "(default)",
            "kubernetes.io/aws-ebs",
            "Delete",
            "WaitForFirstConsumer"
        ],
        "{classes}"
    );
    Ok(())
}

#[tokio::test]
async fn kubectl_describe_shows_a_claim_waiting_for_its_first_consumer() -> anyhow::Result<()> {
    let mut c = Cluster::start("tb-demo").await?;
    c.node(NODE, "2", "80Gi").await?;
    let kubeconfig = c.serve_https().await;
    // The seed's claim on the default class waits for its first consumer, and says so.
    let claim = c.dir.path().join("claim.yml");
    std::fs::write(
        &claim,
        "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: mysql-data-gp2\n  namespace: tb-demo\nspec:\n  accessModes: [ReadWriteOnce]\n  resources:\n    requests:\n      storage: 25Mi\n",
    )?;
    kubectl(&kubeconfig, &["apply", "-f", claim.to_str().unwrap()]).await;
    let described = kubectl_until(
        &kubeconfig,
        &["describe", "pvc", "mysql-data-gp2", "-n", "tb-demo"],
        |out| out.contains("WaitForFirstConsumer"),
    )
    .await;
    assert!(described.contains("StorageClass:  gp2"), "{described}");
    assert!(described.contains("Status:        Pending"), "{described}");
    let event = described
        .lines()
        .find(|l| l.contains("WaitForFirstConsumer"))
        .expect("the event line");
    assert!(event.contains("Normal"), "{event}");
    assert!(event.contains("persistentvolume-controller"), "{event}");
    assert!(
        event.ends_with("waiting for first consumer to be created before binding"),
        "{event}"
    );

    // A pod uses it: it binds to a volume on the pod's node.
    pod_using(&c.client, "tb-demo", "gp2-user", "mysql-data-gp2", "100m").await?;
    assert_eq!(scheduled_node(&c.client, "tb-demo", "gp2-user").await, NODE);
    let described = kubectl_until(
        &kubeconfig,
        &["describe", "pvc", "mysql-data-gp2", "-n", "tb-demo"],
        |out| out.contains("Status:        Bound") && out.contains("ProvisioningSucceeded"),
    )
    .await;
    assert!(described.contains("Used By:       gp2-user"), "{described}");
    assert!(
        described.contains(&format!("volume.kubernetes.io/selected-node: {NODE}")),
        "{described}"
    );
    Ok(())
}
