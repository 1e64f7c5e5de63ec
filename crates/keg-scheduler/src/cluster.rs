//! One cached view of what scheduling looks at (pods, nodes, Fargate profiles, claims,
//! volumes, storage classes and disruption budgets), kept current by watches, with a signal that fires whenever
//! any of it changes.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::storage::v1::StorageClass;
use keg_api::crds::FargateProfile;
use keg_controllers::cache::follow;
use kube::runtime::reflector::Store;
use kube::{Api, Client};
use tokio::sync::watch;

/// The cached cluster state both schedulers read.
#[derive(Clone)]
pub struct ClusterView {
    /// Every pod.
    pub pods: Store<Pod>,
    /// Every node.
    pub nodes: Store<Node>,
    /// Every Fargate profile.
    pub profiles: Store<FargateProfile>,
    /// Every claim.
    pub claims: Store<PersistentVolumeClaim>,
    /// Every volume.
    pub volumes: Store<PersistentVolume>,
    /// Every storage class.
    pub classes: Store<StorageClass>,
    /// Every disruption budget (preemption prefers victims no budget protects).
    pub budgets: Store<PodDisruptionBudget>,
    changes: watch::Receiver<u64>,
}

impl ClusterView {
    /// Starts the watches; the view fills as they list.
    pub fn start(client: Client) -> ClusterView {
        let (tx, changes) = watch::channel(0u64);
        let tx = Arc::new(tx);
        ClusterView {
            pods: follow(Api::all(client.clone()), tx.clone()),
            nodes: follow(Api::all(client.clone()), tx.clone()),
            profiles: follow(Api::all(client.clone()), tx.clone()),
            claims: follow(Api::all(client.clone()), tx.clone()),
            volumes: follow(Api::all(client.clone()), tx.clone()),
            classes: follow(Api::all(client.clone()), tx.clone()),
            budgets: follow(Api::all(client), tx),
            changes,
        }
    }

    /// Waits until every watch has listed once.
    pub async fn ready(&self) {
        let _ = self.pods.wait_until_ready().await;
        let _ = self.nodes.wait_until_ready().await;
        let _ = self.profiles.wait_until_ready().await;
        let _ = self.claims.wait_until_ready().await;
        let _ = self.volumes.wait_until_ready().await;
        let _ = self.classes.wait_until_ready().await;
        let _ = self.budgets.wait_until_ready().await;
    }

    /// A receiver that is marked changed whenever anything in the view changes.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.clone()
    }

    /// The volume bound to a claim, if the claim is bound.
    pub fn bound_volume(&self, namespace: &str, claim: &str) -> Option<PersistentVolume> {
        let claim = self.claims.state().into_iter().find(|c| {
            c.metadata.namespace.as_deref() == Some(namespace)
                && c.metadata.name.as_deref() == Some(claim)
        })?;
        let volume = claim.spec.as_ref()?.volume_name.clone()?;
        self.volumes
            .state()
            .into_iter()
            .find(|v| v.metadata.name.as_deref() == Some(volume.as_str()))
            .map(|v| (*v).clone())
    }
}
