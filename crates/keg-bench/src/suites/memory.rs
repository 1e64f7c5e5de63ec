//! The control plane's resident memory: idle, then with the Terrax walkthrough deployed (the
//! seed's cluster file's node group and Fargate profiles, `database/database.yml` and
//! `service/service.yml` from examples/terrax). When the Terrax images are not in this
//! machine's keg image store, the same manifests run with busybox stand-ins that listen on
//! the same ports, so the cluster has the walkthrough's objects, nodes and pods.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, PersistentVolumeClaim, Secret, Service};
use k8s_openapi::api::storage::v1::StorageClass;
use keg_api::cluster_config::ClusterConfig;
use keg_api::crds::{FargateProfile, NodeGroup};
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, PostParams};
use serde_json::{Value, json};

use super::pod_start::{import_busybox, path_str};
use super::{Ctx, Outcome, is_root};
use crate::kube_util::{self, PodTracker};
use crate::report::{Row, mib};
use crate::server::Server;

const SUITE: &str = "memory";
const CLUSTER_FILE: &str = include_str!("../../../../examples/terrax/eks-terrax-fargate.yaml");
const DATABASE: &str = include_str!("../../../../examples/terrax/database/database.yml");
const SERVICE: &str = include_str!("../../../../examples/terrax/service/service.yml");
const IMAGES: [&str; 2] = ["terrax/beer-api:1.0", "terrax/mariadb:10"];
const K3S: &str = "k3s server: ~1.4 to 1.6 GB in its resource profiling";

/// Runs the suite.
pub async fn run(ctx: &Ctx) -> Result<Outcome> {
    let settle = Duration::from_secs(ctx.size.pick(2, 15));
    let cluster = ClusterConfig::parse("eks-terrax-fargate.yaml", CLUSTER_FILE)?;
    let scratch = tempfile::Builder::new()
        .prefix("keg-bench-images-")
        .tempdir()?;
    let mut notes = Vec::new();
    let mut flags = vec![
        "--cluster-name".to_owned(),
        cluster.metadata.name.clone(),
        "--region".to_owned(),
        cluster.metadata.region.clone(),
    ];
    let terrax = terrax_images();
    let stand_ins = terrax.is_none();
    if is_root() {
        let images = match terrax {
            Some(store) => {
                notes.push(format!("the Terrax images from {}", store.display()));
                store
            }
            None => {
                notes.push(
                    "the Terrax images are not in keg's image store (examples/terrax/build-images.sh \
                     puts them there): the walkthrough's manifests ran with busybox stand-ins \
                     listening on the same ports"
                        .into(),
                );
                import_busybox(scratch.path()).await?
            }
        };
        flags.extend(["--images-dir".to_owned(), path_str(&images)?.to_owned()]);
    } else {
        flags.push("--no-node-agent".into());
    }
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let server = Server::start(&ctx.keg, &flags).await?;
    tokio::time::sleep(settle).await;
    let idle = server.rss_bytes()?;
    let mut rows = vec![Row::new(SUITE, "control plane RSS, idle", mib(idle), "MiB").anchor(K3S)];
    if !is_root() {
        notes.push("the Terrax walkthrough was not deployed: running pods needs root".into());
        return Ok(Outcome::Ran {
            rows,
            notes,
            table: None,
        });
    }

    let client = server.client().await?;
    deploy(&client, &cluster, stand_ins).await?;
    let tracker = PodTracker::start(&client, "tb-demo", kube_util::is_ready).await?;
    tracker
        .wait_for(
            3,
            Duration::from_secs(ctx.size.pick(240, 300)),
            "Terrax pods Ready",
        )
        .await
        .with_context(|| server.log_tail())?;
    tokio::time::sleep(settle).await;
    let deployed = server.rss_bytes()?;
    let nodes = Api::<Node>::all(client)
        .list(&ListParams::default())
        .await?
        .items
        .len();
    rows.push(
        Row::new(
            SUITE,
            format!("control plane RSS, Terrax deployed (3 pods Ready, {nodes} nodes)"),
            mib(deployed),
            "MiB",
        )
        .anchor(K3S),
    );
    notes.push(
        "RSS of the one keg server process (API, store, controllers, schedulers, node agent); \
         the containers' own processes are not counted"
            .into(),
    );
    drop(server);
    Ok(Outcome::Ran {
        rows,
        notes,
        table: None,
    })
}

/// The image store holding both Terrax images, if this machine's has them.
fn terrax_images() -> Option<PathBuf> {
    let home = match std::env::var_os("KEG_HOME") {
        Some(home) if !home.is_empty() => PathBuf::from(home),
        _ => PathBuf::from(std::env::var_os("HOME").unwrap_or("/root".into())).join(".keg"),
    };
    let store = home.join("images");
    if !store.is_dir() {
        return None;
    }
    let opened = keg_runtime::ImageStore::open(&store).ok()?;
    IMAGES
        .iter()
        .all(|image| matches!(opened.resolve(image), Ok(Some(_))))
        .then_some(store)
}

/// Creates what `keg create cluster -f` and the walkthrough's `kubectl apply`s create.
async fn deploy(client: &Client, cluster: &ClusterConfig, stand_ins: bool) -> Result<()> {
    for group in cluster.node_group_objects() {
        Api::<NodeGroup>::all(client.clone())
            .create(&PostParams::default(), &group)
            .await?;
    }
    for profile in cluster.fargate_profile_objects() {
        Api::<FargateProfile>::all(client.clone())
            .create(&PostParams::default(), &profile)
            .await?;
    }
    kube_util::namespace(client, "tb-demo").await?;
    let mut docs: Vec<Value> = serde_saphyr::from_multiple(DATABASE)?;
    docs.extend(serde_saphyr::from_multiple::<Value>(SERVICE)?);
    for mut doc in docs.into_iter().filter(|d| d.is_object()) {
        if stand_ins {
            stand_in(&mut doc);
        }
        let kind = doc["kind"].as_str().unwrap_or_default().to_owned();
        let (resource, namespaced) = match kind.as_str() {
            "StorageClass" => (ApiResource::erase::<StorageClass>(&()), false),
            "PersistentVolumeClaim" => (ApiResource::erase::<PersistentVolumeClaim>(&()), true),
            "Secret" => (ApiResource::erase::<Secret>(&()), true),
            "Deployment" => (ApiResource::erase::<Deployment>(&()), true),
            "Service" => (ApiResource::erase::<Service>(&()), true),
            other => anyhow::bail!("the Terrax manifests have a {other} the harness does not know"),
        };
        let object: DynamicObject = serde_json::from_value(doc)?;
        let api: Api<DynamicObject> = if namespaced {
            let namespace = object
                .metadata
                .namespace
                .clone()
                .unwrap_or("default".into());
            Api::namespaced_with(client.clone(), &namespace, &resource)
        } else {
            Api::all_with(client.clone(), &resource)
        };
        api.create(&PostParams::default(), &object)
            .await
            .with_context(|| format!("creating the {kind}"))?;
    }
    Ok(())
}

/// Swaps a Deployment's container for busybox serving the same port (and, for the API, the
/// `/readyz` and `/healthz` its probes ask for).
fn stand_in(doc: &mut Value) {
    if doc["kind"] != "Deployment" {
        return;
    }
    let Some(container) = doc
        .pointer_mut("/spec/template/spec/containers/0")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    let port = container
        .get("ports")
        .and_then(|p| p[0]["containerPort"].as_u64())
        .unwrap_or(8080);
    let script = format!(
        "mkdir -p /www && echo ok > /www/readyz && echo ok > /www/healthz && \
         exec httpd -f -p {port} -h /www"
    );
    container.insert("image".into(), json!("busybox:bench"));
    container.insert("command".into(), json!(["sh", "-c", script]));
}
