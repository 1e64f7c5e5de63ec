//! Server-side printing: `meta.k8s.io/v1` Table objects as the API server returns them to
//! `kubectl get` (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`).
//!
//! Built-in kinds get the columns and cells of upstream's printers
//! (`pkg/printers/internalversion/printers.go`); kinds without a printer get upstream's default
//! table (`Name`, `Created At`); custom resources get their CRD's `additionalPrinterColumns`.
//!
//! Like upstream's server, every row carries the wide (`priority: 1`) cells too; kubectl hides
//! those columns unless asked for `-o wide`. Upstream prints internal objects that storage has
//! already defaulted; where a field its defaulting always sets is missing here, the printers
//! show the default (`ClusterIP`, `TCP`, one replica, ...) so the output matches a real cluster.

mod cluster;
mod config;
mod custom;
mod helpers;
mod jsonpath;
mod pods;
mod policy;
mod services;
mod storage;
mod workloads;

#[cfg(test)]
mod tests;

use jiff::Timestamp;
use serde_json::{Map, Value, json};

pub use custom::custom_table;

/// How much of each object a Table row carries (the `includeObject` parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IncludeObject {
    /// No object: `object` is null.
    None,
    /// The object's metadata, as a `PartialObjectMetadata` (upstream's default).
    #[default]
    Metadata,
    /// The whole object.
    Object,
}

/// A Table for built-in kind `kind` with upstream's columns.
pub fn table(kind: &str, items: &[Value], now: Timestamp, include: IncludeObject) -> Value {
    let Some(printer) = printer(kind) else {
        return default_table(items, include);
    };
    let rows = items.iter().map(|item| {
        let mut row = Map::new();
        row.insert("cells".into(), Value::Array((printer.row)(item, now)));
        if kind == "Pod"
            && let Some(conditions) = pods::row_conditions(item)
        {
            row.insert("conditions".into(), conditions);
        }
        row.insert("object".into(), row_object(item, include));
        Value::Object(row)
    });
    assemble(
        printer.columns.iter().map(Col::to_json).collect(),
        rows.collect(),
    )
}

/// Upstream's `DefaultTableConvertor`: the name and the creation time as RFC 3339.
fn default_table(items: &[Value], include: IncludeObject) -> Value {
    let columns = vec![
        Col::NAME.to_json(),
        Col::new("Created At", "date", CREATION_TIMESTAMP_DOC).to_json(),
    ];
    let rows = items
        .iter()
        .map(|item| {
            // Go formats an unset time as its zero value.
            let created = helpers::parse_time(helpers::at(item, "metadata.creationTimestamp"))
                .map_or_else(
                    || "0001-01-01T00:00:00Z".to_owned(),
                    |ts| ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
                );
            json!({
                "cells": [helpers::name(item), created],
                "object": row_object(item, include),
            })
        })
        .collect();
    assemble(columns, rows)
}

/// A Table object from column definitions and rows; the caller fills in `metadata`.
fn assemble(columns: Vec<Value>, rows: Vec<Value>) -> Value {
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {},
        "columnDefinitions": columns,
        "rows": rows,
    })
}

/// The `object` of a row, per `includeObject`.
fn row_object(item: &Value, include: IncludeObject) -> Value {
    match include {
        IncludeObject::None => Value::Null,
        IncludeObject::Metadata => json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": item.get("metadata").cloned().unwrap_or_else(|| json!({})),
        }),
        IncludeObject::Object => item.clone(),
    }
}

/// `ObjectMeta.name`'s API documentation, upstream's description of every Name column.
const NAME_DOC: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";

/// `ObjectMeta.creationTimestamp`'s API documentation, upstream's description of Age columns.
const CREATION_TIMESTAMP_DOC: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";

/// A column definition.
struct Col {
    name: &'static str,
    kind: &'static str,
    format: &'static str,
    description: &'static str,
    priority: u8,
}

impl Col {
    /// The Name column every printer starts with.
    const NAME: Col = Col {
        format: "name",
        ..Col::new("Name", "string", NAME_DOC)
    };
    /// The Age column.
    const AGE: Col = Col::new("Age", "string", CREATION_TIMESTAMP_DOC);
    /// Upstream's "Names of each container in the template." wide column.
    const CONTAINERS: Col = Col::new(
        "Containers",
        "string",
        "Names of each container in the template.",
    )
    .wide();
    /// Upstream's "Images referenced by each container in the template." wide column.
    const IMAGES: Col = Col::new(
        "Images",
        "string",
        "Images referenced by each container in the template.",
    )
    .wide();

    const fn new(name: &'static str, kind: &'static str, description: &'static str) -> Col {
        Col {
            name,
            kind,
            format: "",
            description,
            priority: 0,
        }
    }

    /// Shown only with `-o wide`.
    const fn wide(self) -> Col {
        Col {
            priority: 1,
            ..self
        }
    }

    fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "type": self.kind,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        })
    }
}

/// Computes one object's cells.
type RowFn = fn(&Value, Timestamp) -> Vec<Value>;

/// A kind's columns and the function computing one object's cells.
struct Printer {
    columns: &'static [Col],
    row: RowFn,
}

/// The printer of a built-in kind; `None` for kinds upstream prints with the default table
/// (Role, ClusterRole, LimitRange, CustomResourceDefinition, ...).
fn printer(kind: &str) -> Option<Printer> {
    let (columns, row): (&'static [Col], RowFn) = match kind {
        "Pod" => (pods::COLUMNS, pods::row),
        "PodTemplate" => (workloads::POD_TEMPLATE, workloads::pod_template),
        "ReplicationController" => (workloads::RC, workloads::replication_controller),
        "ReplicaSet" => (workloads::REPLICA_SET, workloads::replica_set),
        "Deployment" => (workloads::DEPLOYMENT, workloads::deployment),
        "StatefulSet" => (workloads::STATEFUL_SET, workloads::stateful_set),
        "DaemonSet" => (workloads::DAEMON_SET, workloads::daemon_set),
        "Job" => (workloads::JOB, workloads::job),
        "CronJob" => (workloads::CRON_JOB, workloads::cron_job),
        "ControllerRevision" => (
            workloads::CONTROLLER_REVISION,
            workloads::controller_revision,
        ),
        "HorizontalPodAutoscaler" => (policy::HPA, policy::hpa),
        "PodDisruptionBudget" => (policy::PDB, policy::pdb),
        "Service" => (services::SERVICE, services::service),
        "Endpoints" => (services::ENDPOINTS, services::endpoints),
        "EndpointSlice" => (services::ENDPOINT_SLICE, services::endpoint_slice),
        "Ingress" => (services::INGRESS, services::ingress),
        "IngressClass" => (services::INGRESS_CLASS, services::ingress_class),
        "NetworkPolicy" => (services::NETWORK_POLICY, services::network_policy),
        "ServiceCIDR" => (services::SERVICE_CIDR, services::service_cidr),
        "Node" => (cluster::NODE, cluster::node),
        "Namespace" => (cluster::NAMESPACE, cluster::namespace),
        "Event" => (cluster::EVENT, cluster::event),
        "Lease" => (cluster::LEASE, cluster::lease),
        "RoleBinding" => (cluster::ROLE_BINDING, cluster::role_binding),
        "ClusterRoleBinding" => (cluster::CLUSTER_ROLE_BINDING, cluster::role_binding),
        "PriorityClass" => (cluster::PRIORITY_CLASS, cluster::priority_class),
        "ComponentStatus" => (cluster::COMPONENT_STATUS, cluster::component_status),
        "FlowSchema" => (cluster::FLOW_SCHEMA, cluster::flow_schema),
        "PriorityLevelConfiguration" => (cluster::PRIORITY_LEVEL, cluster::priority_level),
        "IPAddress" => (cluster::IP_ADDRESS, cluster::ip_address),
        "RuntimeClass" => (cluster::RUNTIME_CLASS, cluster::runtime_class),
        "APIService" => (cluster::API_SERVICE, cluster::api_service),
        "CertificateSigningRequest" => (cluster::CSR, cluster::csr),
        "MutatingWebhookConfiguration" | "ValidatingWebhookConfiguration" => {
            (cluster::WEBHOOKS, cluster::webhooks)
        }
        "ConfigMap" => (config::CONFIG_MAP, config::config_map),
        "Secret" => (config::SECRET, config::secret),
        "ServiceAccount" => (config::SERVICE_ACCOUNT, config::service_account),
        "ResourceQuota" => (config::RESOURCE_QUOTA, config::resource_quota),
        "PersistentVolume" => (storage::PV, storage::persistent_volume),
        "PersistentVolumeClaim" => (storage::PVC, storage::persistent_volume_claim),
        "StorageClass" => (storage::STORAGE_CLASS, storage::storage_class),
        "VolumeAttributesClass" => (storage::VAC, storage::volume_attributes_class),
        "VolumeAttachment" => (storage::VOLUME_ATTACHMENT, storage::volume_attachment),
        "CSIDriver" => (storage::CSI_DRIVER, storage::csi_driver),
        "CSINode" => (storage::CSI_NODE, storage::csi_node),
        "CSIStorageCapacity" => (storage::CSI_STORAGE_CAPACITY, storage::csi_storage_capacity),
        _ => return None,
    };
    Some(Printer { columns, row })
}
