//! Creating and deleting a controller's pods with upstream's events (its PodControl): the
//! ReplicaSet, Job, StatefulSet and DaemonSet controllers all make and remove pods this way.

use k8s_openapi::api::core::v1::{ObjectReference, Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, PostParams};
use kube::{Client, Resource, ResourceExt};

use crate::events::Events;
use crate::{Result, api_message, owners};

/// Pods of one owner.
pub(crate) struct PodControl<'a> {
    pods: Api<Pod>,
    events: &'a Events,
    owner: ObjectReference,
    /// StatefulSets word their events differently: `create Pod web-0 in StatefulSet web
    /// successful`.
    stateful_set: Option<String>,
}

/// A new pod from an owner's template (upstream's GetPodFromTemplate): the template's
/// metadata, a name generated from the owner's, and the owner as its controller.
pub(crate) fn pod_from_template<K: Resource<DynamicType = ()>>(
    owner: &K,
    template: Option<&PodTemplateSpec>,
) -> Pod {
    let template = template.cloned().unwrap_or_default();
    let meta = template.metadata.unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!(
                "{}-",
                owner.meta().name.clone().unwrap_or_default()
            )),
            labels: meta.labels,
            annotations: meta.annotations,
            finalizers: meta.finalizers,
            owner_references: Some(vec![owners::controller_ref(owner)]),
            ..Default::default()
        },
        spec: template.spec,
        status: None,
    }
}

impl<'a> PodControl<'a> {
    /// Pods of `owner`, in its namespace.
    pub(crate) fn new<K: Resource<DynamicType = ()>>(
        client: &Client,
        events: &'a Events,
        owner: &K,
    ) -> PodControl<'a> {
        let ns = owner.meta().namespace.clone().unwrap_or_default();
        PodControl {
            pods: Api::namespaced(client.clone(), &ns),
            events,
            owner: owner.object_ref(&()),
            stateful_set: None,
        }
    }

    /// Pods of a StatefulSet, with its event wording.
    pub(crate) fn for_stateful_set<K: Resource<DynamicType = ()>>(
        client: &Client,
        events: &'a Events,
        owner: &K,
    ) -> PodControl<'a> {
        PodControl {
            stateful_set: owner.meta().name.clone(),
            ..PodControl::new(client, events, owner)
        }
    }

    fn success(&self, verb: &str, pod: &str) -> String {
        match &self.stateful_set {
            Some(set) => format!("{verb} Pod {pod} in StatefulSet {set} successful"),
            None if verb == "create" => format!("Created pod: {pod}"),
            None => format!("Deleted pod: {pod}"),
        }
    }

    fn failure(&self, verb: &str, pod: &str, error: &str) -> String {
        match &self.stateful_set {
            Some(set) => format!("{verb} Pod {pod} in StatefulSet {set} failed error: {error}"),
            None if verb == "create" => format!("Error creating: {error}"),
            None => format!("Error deleting: {error}"),
        }
    }

    /// Creates one pod. `Ok(None)` when the namespace is going away: creating more is
    /// pointless, failing too.
    pub(crate) async fn create(&self, pod: &Pod) -> Result<Option<Pod>> {
        let name = pod.metadata.name.clone().unwrap_or_default();
        match self.pods.create(&PostParams::default(), pod).await {
            Ok(created) => {
                let message = self.success("create", &created.name_any());
                self.events
                    .normal(&self.owner, "SuccessfulCreate", "Create", message)
                    .await;
                Ok(Some(created))
            }
            Err(kube::Error::Api(s)) if is_namespace_terminating(&s) => Ok(None),
            Err(e) => {
                let message = self.failure("create", &name, &api_message(&e));
                self.events
                    .warning(&self.owner, "FailedCreate", "Create", message)
                    .await;
                Err(e.into())
            }
        }
    }

    /// Creates pods in batches of 1, 2, 4, ... (upstream's slow start), so a failing create
    /// (quota, admission) fails once rather than once per pod. Returns how many were made.
    pub(crate) async fn create_all(&self, pods: Vec<Pod>) -> Result<usize> {
        let mut made = 0;
        let mut rest = pods.as_slice();
        let mut batch = 1;
        while !rest.is_empty() {
            let (now, later) = rest.split_at(batch.min(rest.len()));
            let results = futures::future::join_all(now.iter().map(|p| self.create(p))).await;
            for result in results {
                match result? {
                    Some(_) => made += 1,
                    None => return Ok(made),
                }
            }
            rest = later;
            batch *= 2;
        }
        Ok(made)
    }

    /// Deletes pods by name; ones already gone count as deleted.
    pub(crate) async fn delete_all(&self, names: &[String]) -> Result<()> {
        let params = DeleteParams::default();
        let results =
            futures::future::join_all(names.iter().map(|n| self.pods.delete(n, &params))).await;
        let mut failure = None;
        for (name, result) in names.iter().zip(results) {
            match result {
                Ok(_) => {
                    let message = self.success("delete", name);
                    self.events
                        .normal(&self.owner, "SuccessfulDelete", "Delete", message)
                        .await
                }
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => {
                    let message = self.failure("delete", name, &api_message(&e));
                    self.events
                        .warning(&self.owner, "FailedDelete", "Delete", message)
                        .await;
                    failure = Some(e);
                }
            }
        }
        failure.map_or(Ok(()), |e| Err(e.into()))
    }
}

fn is_namespace_terminating(status: &kube::core::Status) -> bool {
    status
        .details
        .as_ref()
        .is_some_and(|d| d.causes.iter().any(|c| c.reason == "NamespaceTerminating"))
}
