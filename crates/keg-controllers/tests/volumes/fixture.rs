//! The fixture of the volume tests: the controllers of `run_all` and the volume controllers
//! against an in-process API server, one Ready node-group node, and helpers to create and
//! await claims and volumes.

#![allow(dead_code)] // each test uses a different part of the fixture

use std::path::{Path, PathBuf};

pub use super::common::*;
use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use keg_controllers::volumes;
use kube::Client;
use kube::api::{Api, DynamicObject, GroupVersionKind, PostParams};
use kube::discovery::ApiResource;
use serde_json::{Value, json};

/// The node-group node every test has, with 1Gi of ephemeral storage unless a test asks.
pub const NODE: &str = "ip-192-168-10-20.us-east-1.compute.internal";

/// The controllers (with the volume controllers) and a directory for volumes.
pub struct Fixture {
    cluster: Cluster,
    root: tempfile::TempDir,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Fixture {
    pub async fn start(ns: &str, node_storage: &str) -> anyhow::Result<Fixture> {
        let cluster = Cluster::start().await?;
        cluster.namespace(ns).await?;
        let root = tempfile::tempdir()?;
        let config = volumes::Config {
            root: root.path().join("volumes"),
        };
        let task = tokio::spawn(volumes::run(cluster.client.clone(), config));
        let fixture = Fixture {
            cluster,
            root,
            task,
        };
        fixture.node(NODE, node_storage).await?;
        Ok(fixture)
    }

    pub fn client(&self) -> Client {
        self.cluster.client.clone()
    }

    /// A Ready node-group node, labelled as eksctl labels them.
    pub async fn node(&self, name: &str, storage: &str) -> anyhow::Result<Node> {
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {
                "kubernetes.io/hostname": name,
                "alpha.eksctl.io/nodegroup-name": "ng-1",
            }},
            "status": {
                "capacity": {"cpu": "2", "memory": "4Gi", "pods": "17", "ephemeral-storage": storage},
                "allocatable": {"cpu": "2", "memory": "4Gi", "pods": "17", "ephemeral-storage": storage},
                "conditions": [{"type": "Ready", "status": "True"}],
            },
        }))?;
        Ok(Api::<Node>::all(self.client())
            .create(&PostParams::default(), &node)
            .await?)
    }

    pub fn volume_dir(&self, node: &str, volume: &str) -> PathBuf {
        self.root.path().join("volumes").join(node).join(volume)
    }
}

/// Creates the objects of a manifest of several documents, as `kubectl create -f` does.
pub async fn create_manifest(client: &Client, ns: &str, text: &str) -> anyhow::Result<()> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(text)?;
    for doc in docs.into_iter().filter(|d| d.is_object()) {
        let object: DynamicObject = serde_json::from_value(doc)?;
        let types = object.types.clone().expect("apiVersion and kind");
        let gvk = GroupVersionKind::try_from(&types)?;
        let resource = ApiResource::from_gvk(&gvk);
        let api: Api<DynamicObject> = if gvk.kind == "StorageClass" {
            Api::all_with(client.clone(), &resource)
        } else {
            Api::namespaced_with(client.clone(), ns, &resource)
        };
        api.create(&PostParams::default(), &object).await?;
    }
    Ok(())
}

pub fn seed_database_manifest() -> String {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/terrax/database/database.yml");
    std::fs::read_to_string(path).expect("the seed's database.yml")
}

pub async fn create_class(client: &Client, class: Value) -> anyhow::Result<()> {
    let mut body = json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass"});
    merge(&mut body, class);
    Api::<StorageClass>::all(client.clone())
        .create(&PostParams::default(), &serde_json::from_value(body)?)
        .await?;
    Ok(())
}

pub async fn create_claim(
    client: &Client,
    ns: &str,
    name: &str,
    spec: Value,
) -> anyhow::Result<PersistentVolumeClaim> {
    let mut body = json!({
        "metadata": {"name": name},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "100Mi"}}},
    });
    merge(&mut body, spec);
    Ok(Api::<PersistentVolumeClaim>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &serde_json::from_value(body)?)
        .await?)
}

pub fn merge(into: &mut Value, from: Value) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (slot, value) => *slot = value,
    }
}

pub fn claim_phase(claim: &PersistentVolumeClaim) -> &str {
    claim
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or_default()
}

pub fn volume_phase(volume: &PersistentVolume) -> &str {
    volume
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or_default()
}

pub async fn bound_claim(client: &Client, ns: &str, name: &str) -> PersistentVolumeClaim {
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), ns);
    eventually(&format!("claim {ns}/{name} Bound"), || async {
        let claim = claims.get(name).await?;
        Ok((claim_phase(&claim) == "Bound").then_some(claim))
    })
    .await
}

pub async fn volume_in_phase(client: &Client, name: &str, phase: &str) -> PersistentVolume {
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    eventually(&format!("volume {name} {phase}"), || async {
        let volume = volumes.get(name).await?;
        Ok((volume_phase(&volume) == phase).then_some(volume))
    })
    .await
}

pub async fn gone<K>(api: &Api<K>, name: &str)
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    eventually(&format!("{name} gone"), || async {
        Ok(api.get_opt(name).await?.is_none().then_some(()))
    })
    .await
}

pub fn local_path(volume: &PersistentVolume) -> PathBuf {
    PathBuf::from(&volume.spec.as_ref().unwrap().local.as_ref().unwrap().path)
}

pub fn affinity_hosts(volume: &PersistentVolume) -> Vec<String> {
    let affinity = volume
        .spec
        .as_ref()
        .unwrap()
        .node_affinity
        .as_ref()
        .unwrap();
    let terms = &affinity.required.as_ref().unwrap().node_selector_terms;
    let requirement = &terms[0].match_expressions.as_ref().unwrap()[0];
    assert_eq!(requirement.key, "kubernetes.io/hostname");
    assert_eq!(requirement.operator, "In");
    requirement.values.clone().unwrap()
}

/// A pod using the claim, bound to `node` (or unscheduled when `None`).
pub async fn pod_using(
    client: &Client,
    ns: &str,
    name: &str,
    claim: &str,
    node: Option<&str>,
) -> anyhow::Result<Pod> {
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "nodeName": node,
            "containers": [{"name": "db", "image": "terrax/mariadb:10",
                "volumeMounts": [{"name": "data", "mountPath": "/var/lib/mysql"}]}],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}],
        },
    }))?;
    Ok(Api::<Pod>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &pod)
        .await?)
}

pub async fn create_static_volume(client: &Client, name: &str, spec: Value) -> anyhow::Result<()> {
    let mut body = json!({
        "metadata": {"name": name},
        "spec": {
            "capacity": {"storage": "1Gi"},
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": "manual",
            "hostPath": {"path": format!("/tmp/keg-static-{name}")},
        },
    });
    merge(&mut body, json!({"spec": spec}));
    Api::<PersistentVolume>::all(client.clone())
        .create(&PostParams::default(), &serde_json::from_value(body)?)
        .await?;
    Ok(())
}
