//! The resource registry: which kinds the server serves, their names, scope and subresources.
//!
//! Built-in kinds come from a static table backed by the k8s-openapi types (used to type-check
//! and to find unknown fields); custom resources are added and removed as their CRDs change.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

use k8s_openapi::api::{
    apps, authentication, authorization, autoscaling, batch, certificates, coordination,
    core::v1 as core, discovery, events, flowcontrol, networking, node, policy, rbac, scheduling,
    storage,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiext;
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1 as apiregistration;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Hooks for a kind with a compiled-in Rust type.
#[derive(Clone, Copy)]
pub struct Typed {
    /// Deserializes a value as the kind's type; the error explains the first type mismatch.
    pub check: fn(&Value) -> Result<(), String>,
    /// The kind's JSON schema (draft 2020-12, with `$defs`), as k8s-openapi generates it.
    pub schema: fn() -> schemars::Schema,
    /// The kind's schema name, e.g. `io.k8s.api.apps.v1.Deployment`.
    pub schema_name: fn() -> String,
}

impl std::fmt::Debug for Typed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Typed")
    }
}

fn check_as<T: DeserializeOwned>(value: &Value) -> Result<(), String> {
    T::deserialize(value).map(|_| ()).map_err(|e| e.to_string())
}

fn schema_of<T: schemars::JsonSchema>() -> schemars::Schema {
    schemars::schema_for!(T)
}

fn schema_name_of<T: schemars::JsonSchema>() -> String {
    T::schema_name().into_owned()
}

fn typed<T: DeserializeOwned + schemars::JsonSchema>() -> Option<Typed> {
    Some(Typed {
        check: check_as::<T>,
        schema: schema_of::<T>,
        schema_name: schema_name_of::<T>,
    })
}

/// What a custom resource's CRD says beyond names.
#[derive(Debug, Clone, Default)]
pub struct CustomInfo {
    /// `additionalPrinterColumns` of the served version.
    pub printer_columns: Vec<Value>,
    /// `schema.openAPIV3Schema` of the served version, if given.
    pub schema: Option<Value>,
}

/// One served resource (a kind at one group-version).
#[derive(Debug)]
pub struct Resource {
    /// API group; empty for core.
    pub group: String,
    /// API version, e.g. `v1`.
    pub version: String,
    /// Kind, e.g. `Pod`.
    pub kind: String,
    /// Plural resource name used in URLs, e.g. `pods`.
    pub plural: String,
    /// Singular name, e.g. `pod`.
    pub singular: String,
    /// Whether objects live in namespaces.
    pub namespaced: bool,
    /// Short names, e.g. `po`.
    pub short_names: Vec<String>,
    /// Categories, e.g. `all`.
    pub categories: Vec<String>,
    /// Served subresources: `status`, `scale`, `binding`, `log`, `exec`, `portforward`, `proxy`.
    pub subresources: Vec<String>,
    /// Hooks for built-in kinds.
    pub typed: Option<Typed>,
    /// Details of custom resources.
    pub custom: Option<CustomInfo>,
    /// Where objects are kept, as (group, resource); kinds sharing storage (events) share this.
    pub storage: (String, String),
    /// Whether the kind is a review that is only ever created and never stored (TokenReview,
    /// SubjectAccessReview and the like), or a Binding, which acts on the pod it names.
    pub create_only: bool,
    schema_cache: OnceLock<Value>,
}

impl Resource {
    /// `v1` or `apps/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The storage key prefix of a namespace (or of all namespaces when `None`).
    pub fn key_prefix(&self, namespace: Option<&str>) -> String {
        let (group, resource) = &self.storage;
        let group = if group.is_empty() { "core" } else { group };
        match namespace {
            Some(ns) if self.namespaced => format!("/registry/{group}/{resource}/{ns}/"),
            _ => format!("/registry/{group}/{resource}/"),
        }
    }

    /// The storage key of one object.
    pub fn key(&self, namespace: Option<&str>, name: &str) -> String {
        format!("{}{name}", self.key_prefix(namespace))
    }

    /// Whether the kind is resource metrics (metrics.k8s.io): read-only, computed per request.
    pub fn is_metrics(&self) -> bool {
        self.group == "metrics.k8s.io"
    }

    /// Whether objects of the kind are computed at each read, never stored (resource metrics,
    /// ComponentStatus): only get and list are served.
    pub fn is_computed(&self) -> bool {
        self.is_metrics() || (self.group.is_empty() && self.kind == "ComponentStatus")
    }

    /// Whether the kind has a subresource.
    pub fn has_subresource(&self, name: &str) -> bool {
        self.subresources.iter().any(|s| s == name)
    }

    /// The kind's JSON schema as a value, computed once.
    pub fn schema(&self) -> Option<&Value> {
        if let Some(typed) = self.typed {
            return Some(
                self.schema_cache
                    .get_or_init(|| serde_json::to_value((typed.schema)()).unwrap_or(Value::Null)),
            );
        }
        self.custom.as_ref().and_then(|c| c.schema.as_ref())
    }

    /// Whether writes bump `metadata.generation` when the spec changes.
    pub fn tracks_generation(&self) -> bool {
        self.custom.is_some()
            || matches!(
                self.kind.as_str(),
                "Deployment"
                    | "ReplicaSet"
                    | "StatefulSet"
                    | "DaemonSet"
                    | "Job"
                    | "CronJob"
                    | "PodDisruptionBudget"
                    | "HorizontalPodAutoscaler"
                    | "ReplicationController"
                    | "Ingress"
                    | "NetworkPolicy"
                    | "FlowSchema"
                    | "PriorityLevelConfiguration"
                    | "CustomResourceDefinition"
                    | "Pod"
            )
    }
}

struct Builtin {
    group: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
    short_names: &'static [&'static str],
    categories: &'static [&'static str],
    subresources: &'static [&'static str],
    typed: Option<Typed>,
}

fn builtins() -> Vec<Builtin> {
    let b =
        |group, kind, plural, namespaced, short_names, categories, subresources, typed| Builtin {
            group,
            kind,
            plural,
            namespaced,
            short_names,
            categories,
            subresources,
            typed,
        };
    const ALL: &[&str] = &["all"];
    vec![
        b(
            "",
            "Namespace",
            "namespaces",
            false,
            &["ns"],
            &[],
            &["status", "finalize"],
            typed::<core::Namespace>(),
        ),
        b(
            "",
            "Pod",
            "pods",
            true,
            &["po"],
            ALL,
            &[
                "status",
                "binding",
                "eviction",
                "log",
                "exec",
                "portforward",
                "proxy",
            ],
            typed::<core::Pod>(),
        ),
        b(
            "",
            "Node",
            "nodes",
            false,
            &["no"],
            &[],
            &["status", "proxy"],
            typed::<core::Node>(),
        ),
        b(
            "",
            "Service",
            "services",
            true,
            &["svc"],
            ALL,
            &["status", "proxy"],
            typed::<core::Service>(),
        ),
        b(
            "",
            "Endpoints",
            "endpoints",
            true,
            &["ep"],
            &[],
            &[],
            typed::<core::Endpoints>(),
        ),
        b(
            "",
            "Event",
            "events",
            true,
            &["ev"],
            &[],
            &[],
            typed::<core::Event>(),
        ),
        b(
            "",
            "ConfigMap",
            "configmaps",
            true,
            &["cm"],
            &[],
            &[],
            typed::<core::ConfigMap>(),
        ),
        b(
            "",
            "Secret",
            "secrets",
            true,
            &[],
            &[],
            &[],
            typed::<core::Secret>(),
        ),
        b(
            "",
            "ServiceAccount",
            "serviceaccounts",
            true,
            &["sa"],
            &[],
            &["token"],
            typed::<core::ServiceAccount>(),
        ),
        b(
            "",
            "PersistentVolume",
            "persistentvolumes",
            false,
            &["pv"],
            &[],
            &["status"],
            typed::<core::PersistentVolume>(),
        ),
        b(
            "",
            "PersistentVolumeClaim",
            "persistentvolumeclaims",
            true,
            &["pvc"],
            &[],
            &["status"],
            typed::<core::PersistentVolumeClaim>(),
        ),
        b(
            "",
            "ResourceQuota",
            "resourcequotas",
            true,
            &["quota"],
            &[],
            &["status"],
            typed::<core::ResourceQuota>(),
        ),
        b(
            "",
            "LimitRange",
            "limitranges",
            true,
            &["limits"],
            &[],
            &[],
            typed::<core::LimitRange>(),
        ),
        b(
            "apps",
            "Deployment",
            "deployments",
            true,
            &["deploy"],
            ALL,
            &["status", "scale"],
            typed::<apps::v1::Deployment>(),
        ),
        b(
            "apps",
            "ReplicaSet",
            "replicasets",
            true,
            &["rs"],
            ALL,
            &["status", "scale"],
            typed::<apps::v1::ReplicaSet>(),
        ),
        b(
            "apps",
            "StatefulSet",
            "statefulsets",
            true,
            &["sts"],
            ALL,
            &["status", "scale"],
            typed::<apps::v1::StatefulSet>(),
        ),
        b(
            "apps",
            "DaemonSet",
            "daemonsets",
            true,
            &["ds"],
            ALL,
            &["status"],
            typed::<apps::v1::DaemonSet>(),
        ),
        b(
            "batch",
            "Job",
            "jobs",
            true,
            &[],
            ALL,
            &["status"],
            typed::<batch::v1::Job>(),
        ),
        b(
            "batch",
            "CronJob",
            "cronjobs",
            true,
            &["cj"],
            ALL,
            &["status"],
            typed::<batch::v1::CronJob>(),
        ),
        b(
            "apps",
            "ControllerRevision",
            "controllerrevisions",
            true,
            &[],
            &[],
            &[],
            typed::<apps::v1::ControllerRevision>(),
        ),
        b(
            "autoscaling",
            "HorizontalPodAutoscaler",
            "horizontalpodautoscalers",
            true,
            &["hpa"],
            ALL,
            &["status"],
            typed::<autoscaling::v2::HorizontalPodAutoscaler>(),
        ),
        b(
            "policy",
            "PodDisruptionBudget",
            "poddisruptionbudgets",
            true,
            &["pdb"],
            &[],
            &["status"],
            typed::<policy::v1::PodDisruptionBudget>(),
        ),
        // Computed from what the node agents measure, never stored (metrics-server's API).
        b(
            "metrics.k8s.io",
            "PodMetrics",
            "pods",
            true,
            &[],
            &[],
            &[],
            None,
        ),
        b(
            "metrics.k8s.io",
            "NodeMetrics",
            "nodes",
            false,
            &[],
            &[],
            &[],
            None,
        ),
        b(
            "storage.k8s.io",
            "StorageClass",
            "storageclasses",
            false,
            &["sc"],
            &[],
            &[],
            typed::<storage::v1::StorageClass>(),
        ),
        b(
            "coordination.k8s.io",
            "Lease",
            "leases",
            true,
            &[],
            &[],
            &[],
            typed::<coordination::v1::Lease>(),
        ),
        b(
            "discovery.k8s.io",
            "EndpointSlice",
            "endpointslices",
            true,
            &[],
            &[],
            &[],
            typed::<discovery::v1::EndpointSlice>(),
        ),
        b(
            "events.k8s.io",
            "Event",
            "events",
            true,
            &["ev"],
            &[],
            &[],
            typed::<events::v1::Event>(),
        ),
        b(
            "rbac.authorization.k8s.io",
            "Role",
            "roles",
            true,
            &[],
            &[],
            &[],
            typed::<rbac::v1::Role>(),
        ),
        b(
            "rbac.authorization.k8s.io",
            "RoleBinding",
            "rolebindings",
            true,
            &[],
            &[],
            &[],
            typed::<rbac::v1::RoleBinding>(),
        ),
        b(
            "rbac.authorization.k8s.io",
            "ClusterRole",
            "clusterroles",
            false,
            &[],
            &[],
            &[],
            typed::<rbac::v1::ClusterRole>(),
        ),
        b(
            "rbac.authorization.k8s.io",
            "ClusterRoleBinding",
            "clusterrolebindings",
            false,
            &[],
            &[],
            &[],
            typed::<rbac::v1::ClusterRoleBinding>(),
        ),
        b(
            "authentication.k8s.io",
            "TokenReview",
            "tokenreviews",
            false,
            &[],
            &[],
            &[],
            typed::<authentication::v1::TokenReview>(),
        ),
        b(
            "authentication.k8s.io",
            "SelfSubjectReview",
            "selfsubjectreviews",
            false,
            &[],
            &[],
            &[],
            typed::<authentication::v1::SelfSubjectReview>(),
        ),
        b(
            "authorization.k8s.io",
            "SubjectAccessReview",
            "subjectaccessreviews",
            false,
            &[],
            &[],
            &[],
            typed::<authorization::v1::SubjectAccessReview>(),
        ),
        b(
            "authorization.k8s.io",
            "SelfSubjectAccessReview",
            "selfsubjectaccessreviews",
            false,
            &[],
            &[],
            &[],
            typed::<authorization::v1::SelfSubjectAccessReview>(),
        ),
        b(
            "authorization.k8s.io",
            "LocalSubjectAccessReview",
            "localsubjectaccessreviews",
            true,
            &[],
            &[],
            &[],
            typed::<authorization::v1::LocalSubjectAccessReview>(),
        ),
        b(
            "authorization.k8s.io",
            "SelfSubjectRulesReview",
            "selfsubjectrulesreviews",
            false,
            &[],
            &[],
            &[],
            typed::<authorization::v1::SelfSubjectRulesReview>(),
        ),
        b(
            "",
            "ReplicationController",
            "replicationcontrollers",
            true,
            &["rc"],
            ALL,
            &["status", "scale"],
            typed::<core::ReplicationController>(),
        ),
        b(
            "",
            "PodTemplate",
            "podtemplates",
            true,
            &[],
            &[],
            &[],
            typed::<core::PodTemplate>(),
        ),
        b(
            "",
            "ComponentStatus",
            "componentstatuses",
            false,
            &["cs"],
            &[],
            &[],
            typed::<core::ComponentStatus>(),
        ),
        b(
            "",
            "Binding",
            "bindings",
            true,
            &[],
            &[],
            &[],
            typed::<core::Binding>(),
        ),
        b(
            "scheduling.k8s.io",
            "PriorityClass",
            "priorityclasses",
            false,
            &["pc"],
            &[],
            &[],
            typed::<scheduling::v1::PriorityClass>(),
        ),
        b(
            "certificates.k8s.io",
            "CertificateSigningRequest",
            "certificatesigningrequests",
            false,
            &["csr"],
            &[],
            &["status", "approval"],
            typed::<certificates::v1::CertificateSigningRequest>(),
        ),
        b(
            "apiregistration.k8s.io",
            "APIService",
            "apiservices",
            false,
            &[],
            &["api-extensions"],
            &["status"],
            typed::<apiregistration::APIService>(),
        ),
        b(
            "flowcontrol.apiserver.k8s.io",
            "FlowSchema",
            "flowschemas",
            false,
            &[],
            &[],
            &["status"],
            typed::<flowcontrol::v1::FlowSchema>(),
        ),
        b(
            "flowcontrol.apiserver.k8s.io",
            "PriorityLevelConfiguration",
            "prioritylevelconfigurations",
            false,
            &[],
            &[],
            &["status"],
            typed::<flowcontrol::v1::PriorityLevelConfiguration>(),
        ),
        b(
            "networking.k8s.io",
            "Ingress",
            "ingresses",
            true,
            &["ing"],
            &[],
            &["status"],
            typed::<networking::v1::Ingress>(),
        ),
        b(
            "networking.k8s.io",
            "IngressClass",
            "ingressclasses",
            false,
            &[],
            &[],
            &[],
            typed::<networking::v1::IngressClass>(),
        ),
        b(
            "networking.k8s.io",
            "NetworkPolicy",
            "networkpolicies",
            true,
            &["netpol"],
            &[],
            &[],
            typed::<networking::v1::NetworkPolicy>(),
        ),
        b(
            "networking.k8s.io",
            "IPAddress",
            "ipaddresses",
            false,
            &["ip"],
            &[],
            &[],
            typed::<networking::v1::IPAddress>(),
        ),
        b(
            "networking.k8s.io",
            "ServiceCIDR",
            "servicecidrs",
            false,
            &[],
            &[],
            &["status"],
            typed::<networking::v1::ServiceCIDR>(),
        ),
        b(
            "node.k8s.io",
            "RuntimeClass",
            "runtimeclasses",
            false,
            &[],
            &[],
            &[],
            typed::<node::v1::RuntimeClass>(),
        ),
        b(
            "storage.k8s.io",
            "CSIDriver",
            "csidrivers",
            false,
            &[],
            &[],
            &[],
            typed::<storage::v1::CSIDriver>(),
        ),
        b(
            "storage.k8s.io",
            "CSINode",
            "csinodes",
            false,
            &[],
            &[],
            &[],
            typed::<storage::v1::CSINode>(),
        ),
        b(
            "storage.k8s.io",
            "CSIStorageCapacity",
            "csistoragecapacities",
            true,
            &[],
            &[],
            &[],
            typed::<storage::v1::CSIStorageCapacity>(),
        ),
        b(
            "storage.k8s.io",
            "VolumeAttachment",
            "volumeattachments",
            false,
            &[],
            &[],
            &["status"],
            typed::<storage::v1::VolumeAttachment>(),
        ),
        b(
            "apiextensions.k8s.io",
            "CustomResourceDefinition",
            "customresourcedefinitions",
            false,
            &["crd", "crds"],
            &["api-extensions"],
            &["status"],
            typed::<apiext::CustomResourceDefinition>(),
        ),
    ]
}

fn builtin_resource(b: &Builtin, storage: (String, String), create_only: bool) -> Resource {
    Resource {
        group: b.group.to_string(),
        version: match b.group {
            "metrics.k8s.io" => "v1beta1",
            "autoscaling" => "v2",
            _ => "v1",
        }
        .to_string(),
        kind: b.kind.to_string(),
        plural: b.plural.to_string(),
        singular: b.kind.to_lowercase(),
        namespaced: b.namespaced,
        short_names: b.short_names.iter().map(|s| s.to_string()).collect(),
        categories: b.categories.iter().map(|s| s.to_string()).collect(),
        subresources: b.subresources.iter().map(|s| s.to_string()).collect(),
        typed: b.typed,
        custom: None,
        storage,
        create_only,
        schema_cache: OnceLock::new(),
    }
}

/// All served resources; built-ins plus the custom resources of established CRDs.
pub struct Registry {
    resources: RwLock<Vec<Arc<Resource>>>,
    index: RwLock<HashMap<(String, String, String), Arc<Resource>>>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry::new()
    }
}

impl Registry {
    /// A registry of the built-in kinds.
    pub fn new() -> Registry {
        let registry = Registry {
            resources: RwLock::new(Vec::new()),
            index: RwLock::new(HashMap::new()),
        };
        for b in builtins() {
            // events.k8s.io Events are kept with core Events, as upstream does, and converted.
            let storage_group = if b.group == "events.k8s.io" {
                ""
            } else {
                b.group
            };
            let storage = (storage_group.to_string(), b.plural.to_string());
            let create_only = matches!(b.group, "authentication.k8s.io" | "authorization.k8s.io")
                || b.kind == "Binding";
            if b.kind == "HorizontalPodAutoscaler" {
                // autoscaling/v1 serves the same objects (converted; see `convert`), after
                // v2 so that the kind's first version found is the preferred one.
                registry.insert(builtin_resource(&b, storage.clone(), create_only));
                registry.insert(Resource {
                    version: "v1".to_string(),
                    typed: typed::<autoscaling::v1::HorizontalPodAutoscaler>(),
                    ..builtin_resource(&b, storage, create_only)
                });
                continue;
            }
            if b.kind == "SelfSubjectReview" {
                // kubectl 1.27's `auth whoami` asks for the beta version.
                registry.insert(Resource {
                    version: "v1beta1".to_string(),
                    ..builtin_resource(&b, storage.clone(), create_only)
                });
            }
            registry.insert(builtin_resource(&b, storage, create_only));
        }
        registry
    }

    fn insert(&self, resource: Resource) {
        let resource = Arc::new(resource);
        let key = (
            resource.group.clone(),
            resource.version.clone(),
            resource.plural.clone(),
        );
        let mut resources = self.resources.write().expect("registry lock");
        resources.retain(|r| {
            (r.group.as_str(), r.version.as_str(), r.plural.as_str())
                != (&key.0[..], &key.1[..], &key.2[..])
        });
        resources.push(resource.clone());
        self.index
            .write()
            .expect("registry lock")
            .insert(key, resource);
    }

    /// The resource served at `group/version/plural`.
    pub fn get(&self, group: &str, version: &str, plural: &str) -> Option<Arc<Resource>> {
        let key = (group.to_string(), version.to_string(), plural.to_string());
        self.index.read().expect("registry lock").get(&key).cloned()
    }

    /// The resource of a kind in a group (any served version; the first found).
    pub fn by_kind(&self, group: &str, kind: &str) -> Option<Arc<Resource>> {
        self.resources
            .read()
            .expect("registry lock")
            .iter()
            .find(|r| r.group == group && r.kind == kind)
            .cloned()
    }

    /// Every served resource.
    pub fn all(&self) -> Vec<Arc<Resource>> {
        self.resources.read().expect("registry lock").clone()
    }

    /// Serves (or re-serves) the custom resources a CRD object defines.
    pub fn install_crd(&self, crd: &Value) {
        let spec = &crd["spec"];
        let group = spec["group"].as_str().unwrap_or_default().to_string();
        let names = &spec["names"];
        let plural = names["plural"].as_str().unwrap_or_default().to_string();
        self.remove_crd(&group, &plural);
        let strings = |v: &Value| -> Vec<String> {
            v.as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default()
        };
        for version in spec["versions"].as_array().into_iter().flatten() {
            if version["served"] == Value::Bool(false) {
                continue;
            }
            let mut subresources = Vec::new();
            if version["subresources"]["status"].is_object() {
                subresources.push("status".to_string());
            }
            if version["subresources"]["scale"].is_object() {
                subresources.push("scale".to_string());
            }
            let kind = names["kind"].as_str().unwrap_or_default().to_string();
            self.insert(Resource {
                group: group.clone(),
                version: version["name"].as_str().unwrap_or_default().to_string(),
                singular: names["singular"]
                    .as_str()
                    .map(String::from)
                    .unwrap_or_else(|| kind.to_lowercase()),
                kind,
                plural: plural.clone(),
                namespaced: spec["scope"] == "Namespaced",
                short_names: strings(&names["shortNames"]),
                categories: strings(&names["categories"]),
                subresources,
                typed: None,
                custom: Some(CustomInfo {
                    printer_columns: version["additionalPrinterColumns"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default(),
                    schema: version["schema"].get("openAPIV3Schema").cloned(),
                }),
                storage: (group.clone(), plural.clone()),
                create_only: false,
                schema_cache: OnceLock::new(),
            });
        }
    }

    /// Stops serving a CRD's resources.
    pub fn remove_crd(&self, group: &str, plural: &str) {
        let mut resources = self.resources.write().expect("registry lock");
        resources.retain(|r| !(r.custom.is_some() && r.group == group && r.plural == plural));
        self.index
            .write()
            .expect("registry lock")
            .retain(|(g, _, p), r| !(r.custom.is_some() && g == group && p == plural));
    }
}
