//! A cluster without machines: the API server in-process, every controller (the volume
//! controllers among them) and both schedulers, with Node objects a test makes Ready itself.
//! There is no node agent: a pod bound to a node is as far as these tests go.

#![allow(dead_code)] // each test uses a different part of the fixture

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    Event, Namespace, Node, PersistentVolume, PersistentVolumeClaim, Pod,
};
use keg_api::nodes::ClusterInfo;
use keg_controllers::volumes;
use kube::api::{Api, DynamicObject, GroupVersionKind, ListParams, ObjectMeta, PostParams};
use kube::discovery::ApiResource;
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

/// How long any awaited state may take before the test fails.
const DEADLINE: Duration = Duration::from_secs(60);

/// The API server, controllers and schedulers, and the volumes' directory.
pub struct Cluster {
    /// An admin client.
    pub client: Client,
    /// The API server, until a test serves it over HTTPS.
    pub server: Option<keg_apiserver::ApiServer>,
    /// The API server's (and the volumes') directory.
    pub dir: tempfile::TempDir,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Cluster {
    /// Starts everything, with namespace `ns`.
    pub async fn start(ns: &str) -> anyhow::Result<Cluster> {
        let dir = tempfile::tempdir()?;
        let config = keg_apiserver::Config::local(dir.path().join("api"));
        let server =
            keg_apiserver::ApiServer::open(config, keg_apiserver::admission::Admission::standard())
                .await?;
        let client =
            keg_apiserver::client::in_process_client(server.router(), server.tokens.admin());
        let cluster = ClusterInfo {
            name: "terrax".into(),
            region: "us-east-1".into(),
            agent: "terrax".into(),
        };
        let volumes = volumes::Config {
            root: dir.path().join("volumes"),
        };
        let tasks = vec![
            tokio::spawn(keg_controllers::run_all(client.clone())),
            tokio::spawn(volumes::run(client.clone(), volumes)),
            tokio::spawn(keg_scheduler::run(client.clone(), cluster)),
        ];
        let namespace = Namespace {
            metadata: ObjectMeta {
                name: Some(ns.into()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &namespace)
            .await?;
        Ok(Cluster {
            client,
            server: Some(server),
            dir,
            tasks,
        })
    }

    /// A Ready node-group node with this much CPU and ephemeral storage.
    pub async fn node(&self, name: &str, cpu: &str, storage: &str) -> anyhow::Result<Node> {
        let resources =
            json!({"cpu": cpu, "memory": "8Gi", "pods": "29", "ephemeral-storage": storage});
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {
                "kubernetes.io/hostname": name,
                "alpha.eksctl.io/nodegroup-name": "ng-terrax",
            }},
            "status": {
                "capacity": resources, "allocatable": resources,
                "conditions": [{"type": "Ready", "status": "True"}],
            },
        }))?;
        Ok(Api::<Node>::all(self.client.clone())
            .create(&PostParams::default(), &node)
            .await?)
    }

    /// Where the provisioner keeps a volume made on `node`.
    pub fn volume_dir(&self, node: &str, volume: &str) -> PathBuf {
        self.dir.path().join("volumes").join(node).join(volume)
    }

    /// A namespaced API.
    pub fn api<K>(&self, ns: &str) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), ns)
    }

    /// Serves the API over HTTPS on loopback for the real kubectl; returns its kubeconfig.
    pub async fn serve_https(&mut self) -> PathBuf {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let server = self.server.take().expect("served once");
        self.tasks.push(tokio::spawn(async move {
            if let Err(e) = server.serve(std::future::pending()).await {
                eprintln!("API server: {e:#}");
            }
        }));
        let kubeconfig = self.dir.path().join("api/kubeconfig");
        eventually("the kubeconfig", || async {
            Ok(kubeconfig.exists().then_some(()))
        })
        .await;
        kubeconfig
    }
}

/// Polls `check` until it gives a value; fails the test with `what` after the deadline.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let mut last_error = None;
    let polled = tokio::time::timeout(DEADLINE, async {
        loop {
            match check().await {
                Ok(Some(value)) => return value,
                Ok(None) => {}
                Err(e) => last_error = Some(e.to_string()),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    match polled {
        Ok(value) => value,
        Err(_) => panic!("timed out waiting for {what} (last error: {last_error:?})"),
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

/// The seed's `database/database.yml`.
pub fn seed_database_manifest() -> String {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/terrax/database/database.yml");
    std::fs::read_to_string(path).expect("the seed's database.yml")
}

/// Creates an object from JSON through a typed API.
pub async fn create<K>(api: &Api<K>, body: Value) -> anyhow::Result<K>
where
    K: Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    Ok(api
        .create(&PostParams::default(), &serde_json::from_value(body)?)
        .await?)
}

/// A claim of `size` on `class` (`None`: the default class).
pub async fn claim(
    client: &Client,
    ns: &str,
    name: &str,
    class: Option<&str>,
    size: &str,
) -> anyhow::Result<PersistentVolumeClaim> {
    let api: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), ns);
    create(
        &api,
        json!({"metadata": {"name": name}, "spec": {
            "accessModes": ["ReadWriteOnce"], "storageClassName": class,
            "resources": {"requests": {"storage": size}},
        }}),
    )
    .await
}

/// A pod (one container, requesting `cpu`) using the claim.
pub async fn pod_using(
    client: &Client,
    ns: &str,
    name: &str,
    claim: &str,
    cpu: &str,
) -> anyhow::Result<Pod> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    create(
        &api,
        json!({"metadata": {"name": name, "labels": {"app": "database"}}, "spec": {
            "containers": [{"name": "db", "image": "terrax/mariadb:10",
                "resources": {"requests": {"cpu": cpu}},
                "volumeMounts": [{"name": "data", "mountPath": "/var/lib/mysql"}]}],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}],
        }}),
    )
    .await
}

/// The node a pod gets bound to.
pub async fn scheduled_node(client: &Client, ns: &str, pod: &str) -> String {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    eventually(&format!("pod {pod} scheduled"), || async {
        Ok(pods.get(pod).await?.spec.and_then(|s| s.node_name))
    })
    .await
}

/// Waits for a claim to be Bound; returns its volume.
pub async fn bound_volume(client: &Client, ns: &str, claim: &str) -> PersistentVolume {
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), ns);
    let name = eventually(&format!("claim {claim} bound"), || async {
        let claim = claims.get(claim).await?;
        let bound = claim.status.and_then(|s| s.phase).as_deref() == Some("Bound");
        Ok(bound
            .then(|| claim.spec.and_then(|s| s.volume_name))
            .flatten())
    })
    .await;
    Api::<PersistentVolume>::all(client.clone())
        .get(&name)
        .await
        .expect("the bound volume")
}

/// The hosts a volume's node affinity admits.
pub fn affinity_hosts(volume: &PersistentVolume) -> Vec<String> {
    let affinity = volume
        .spec
        .as_ref()
        .unwrap()
        .node_affinity
        .as_ref()
        .unwrap();
    let terms = &affinity.required.as_ref().unwrap().node_selector_terms;
    terms[0].match_expressions.as_ref().unwrap()[0]
        .values
        .clone()
        .unwrap()
}

/// The (reason, message) of the events about an object, as `kubectl describe` reads them.
pub async fn events_about(
    client: &Client,
    ns: &str,
    kind: &str,
    name: &str,
) -> anyhow::Result<Vec<(String, String)>> {
    let events: Api<Event> = Api::namespaced(client.clone(), ns);
    let selector = format!("involvedObject.kind={kind},involvedObject.name={name}");
    Ok(events
        .list(&ListParams::default().fields(&selector))
        .await?
        .items
        .into_iter()
        .map(|e| (e.reason.unwrap_or_default(), e.message.unwrap_or_default()))
        .collect())
}

/// Waits until an event with this reason and message exists about the object.
pub async fn event_seen(
    client: &Client,
    ns: &str,
    kind: &str,
    name: &str,
    reason: &str,
    message: &str,
) {
    eventually(
        &format!("event {reason} {message:?} about {kind} {name}"),
        || async {
            let events = events_about(client, ns, kind, name).await?;
            Ok(events
                .iter()
                .any(|(r, m)| r == reason && m == message)
                .then_some(()))
        },
    )
    .await
}

/// Waits until the pod is refused with exactly this FailedScheduling message.
pub async fn refused(client: &Client, ns: &str, pod: &str, message: &str) {
    event_seen(client, ns, "Pod", pod, "FailedScheduling", message).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let pod = pods.get(pod).await.expect("the pod");
    assert!(
        pod.spec.unwrap().node_name.is_none(),
        "refused pods stay unbound"
    );
}

/// The pods of a namespace with a label.
pub async fn pods_labelled(client: &Client, ns: &str, label: &str) -> anyhow::Result<Vec<Pod>> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    Ok(pods.list(&ListParams::default().labels(label)).await?.items)
}

/// A pod's name.
pub fn name(pod: &Pod) -> String {
    pod.name_any()
}
