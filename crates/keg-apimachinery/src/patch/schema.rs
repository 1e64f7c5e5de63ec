//! The `patchStrategy`/`patchMergeKey` tags of the built-in types (k8s.io/api), as far as
//! strategic merge patch needs them. Fields not listed merge as maps or replace as lists,
//! which is what upstream does for untagged fields.

/// How a field's value combines with a patch's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Strategy {
    /// Maps merge key by key; lists are replaced whole.
    Default,
    /// Lists merge: maps by this key, primitives (no key) as an ordered set.
    Merge(Option<&'static str>),
}

/// A position in an object's type, enough to find the tags of the fields below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Schema {
    /// Nothing known below this point.
    Unknown,
    /// A top-level object of a kind with only metadata tags.
    Object,
    /// Pod.
    Pod,
    /// PodTemplate.
    PodTemplate,
    /// Deployment, ReplicaSet, StatefulSet, DaemonSet, Job, ReplicationController.
    Workload,
    /// CronJob.
    CronJob,
    /// Node.
    Node,
    /// Service.
    Service,
    /// A kind whose only tagged status field is `status.conditions`.
    WithConditions,
    /// Mutating/ValidatingWebhookConfiguration.
    WebhookConfiguration,
    /// ServiceAccount.
    ServiceAccount,
    ObjectMeta,
    PodTemplateSpec,
    JobTemplateSpec,
    WorkloadSpec,
    CronJobSpec,
    PodSpec,
    Container,
    PodStatus,
    NodeSpec,
    NodeStatus,
    ServiceSpec,
    ConditionsStatus,
}

impl Schema {
    /// The schema of a whole object of `kind`.
    pub(super) fn for_kind(kind: &str) -> Schema {
        match kind {
            "Pod" => Schema::Pod,
            "PodTemplate" => Schema::PodTemplate,
            "Deployment"
            | "ReplicaSet"
            | "StatefulSet"
            | "DaemonSet"
            | "Job"
            | "ReplicationController" => Schema::Workload,
            "CronJob" => Schema::CronJob,
            "Node" => Schema::Node,
            "Service" => Schema::Service,
            "Namespace"
            | "PersistentVolumeClaim"
            | "HorizontalPodAutoscaler"
            | "PodDisruptionBudget" => Schema::WithConditions,
            "MutatingWebhookConfiguration" | "ValidatingWebhookConfiguration" => {
                Schema::WebhookConfiguration
            }
            "ServiceAccount" => Schema::ServiceAccount,
            _ => Schema::Object,
        }
    }

    /// The strategy of field `name` of this type, and the schema of its value (or of
    /// the list's elements).
    pub(super) fn field(self, name: &str) -> (Strategy, Schema) {
        use Schema::*;
        let merge = |key: &'static str, schema| (Strategy::Merge(Some(key)), schema);
        let plain = |schema| (Strategy::Default, schema);
        match (self, name) {
            (
                Object | Pod | PodTemplate | Workload | CronJob | Node | Service | WithConditions
                | WebhookConfiguration | ServiceAccount | PodTemplateSpec | JobTemplateSpec,
                "metadata",
            ) => plain(ObjectMeta),
            (ObjectMeta, "finalizers") => (Strategy::Merge(None), Unknown),
            (ObjectMeta, "ownerReferences") => merge("uid", Unknown),

            (Pod, "spec") | (PodTemplateSpec, "spec") => plain(PodSpec),
            (Pod, "status") => plain(PodStatus),
            (PodTemplate, "template") | (WorkloadSpec, "template") => plain(PodTemplateSpec),
            (Workload, "spec") | (JobTemplateSpec, "spec") => plain(WorkloadSpec),
            (Workload | WithConditions | Service, "status") => plain(ConditionsStatus),
            (CronJob, "spec") => plain(CronJobSpec),
            (CronJobSpec, "jobTemplate") => plain(JobTemplateSpec),

            (PodSpec, "containers" | "initContainers" | "ephemeralContainers") => {
                merge("name", Container)
            }
            (PodSpec, "volumes" | "imagePullSecrets" | "resourceClaims" | "schedulingGates") => {
                merge("name", Unknown)
            }
            (PodSpec, "hostAliases") => merge("ip", Unknown),
            (PodSpec, "topologySpreadConstraints") => merge("topologyKey", Unknown),
            (Container, "ports") => merge("containerPort", Unknown),
            (Container, "env") => merge("name", Unknown),
            (Container, "volumeMounts") => merge("mountPath", Unknown),
            (Container, "volumeDevices") => merge("devicePath", Unknown),
            (PodStatus, "conditions") => merge("type", Unknown),
            (PodStatus, "podIPs" | "hostIPs") => merge("ip", Unknown),
            (PodStatus, "resourceClaimStatuses") => merge("name", Unknown),

            (Node, "spec") => plain(NodeSpec),
            (Node, "status") => plain(NodeStatus),
            (NodeSpec, "podCIDRs") => (Strategy::Merge(None), Unknown),
            (NodeStatus, "conditions" | "addresses") => merge("type", Unknown),

            (Service, "spec") => plain(ServiceSpec),
            (ServiceSpec, "ports") => merge("port", Unknown),
            (ConditionsStatus, "conditions") => merge("type", Unknown),

            (WebhookConfiguration, "webhooks") => merge("name", Unknown),
            (ServiceAccount, "secrets") => merge("name", Unknown),
            _ => plain(Unknown),
        }
    }
}
