//! Admission: plugins that check and mutate writes after decoding and before storage, as
//! upstream's admission chain (namespace lifecycle, service IPs, default storage class, ...).

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use crate::error::{ApiError, Result};
use crate::objects::{is_deleting, meta_str};
use crate::resources::Resource;
use crate::state::ApiState;

mod certificates;
mod default_tolerations;
mod fargate;
mod priority;
mod service_account;
mod service_ips;
mod storage_class;

pub use certificates::Certificates;
pub use default_tolerations::DefaultTolerationSeconds;
pub use fargate::{FARGATE_SCHEDULER, Fargate};
pub use priority::{Priority, SYSTEM_PRIORITY_CLASSES};
pub use service_account::{MOUNT_PATH, ROOT_CA_CONFIG_MAP, ServiceAccount};
pub use service_ips::{SERVICE_CIDR, ServiceIps};
pub use storage_class::DefaultStorageClass;

/// What a write does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// A new object.
    Create,
    /// A change to an existing object.
    Update,
    /// The object was deleted (after the fact: for plugins that release what they allocated).
    Delete,
}

/// One write, as admission plugins see it.
pub struct Attributes<'a> {
    /// Create, update or delete.
    pub operation: Operation,
    /// The resource written.
    pub resource: &'a Resource,
    /// The subresource written, if any.
    pub subresource: Option<&'a str>,
    /// The object as it will be stored (mutable).
    pub object: &'a mut Value,
    /// The stored object before an update.
    pub old: Option<&'a Value>,
    /// Whether this is a dry run (allocate nothing).
    pub dry_run: bool,
    /// Who writes.
    pub user: &'a crate::auth::UserInfo,
}

/// An admission plugin.
#[async_trait]
pub trait AdmissionPlugin: Send + Sync {
    /// Checks (and may mutate) a write; an error refuses it.
    async fn admit(&self, state: &ApiState, attrs: &mut Attributes<'_>) -> Result<()>;
}

/// The ordered chain of admission plugins.
#[derive(Default)]
pub struct Admission {
    plugins: Vec<Arc<dyn AdmissionPlugin>>,
}

impl Admission {
    /// The built-in chain.
    pub fn standard() -> Admission {
        let mut admission = Admission::default();
        admission.push(Arc::new(NamespaceLifecycle));
        admission.push(Arc::new(crate::authz::escalation::NoEscalation));
        admission.push(Arc::new(ServiceAccount));
        admission.push(Arc::new(ServiceIps::default()));
        admission.push(Arc::new(DefaultStorageClass));
        admission.push(Arc::new(Fargate));
        admission.push(Arc::new(DefaultTolerationSeconds));
        admission.push(Arc::new(Priority));
        admission.push(Arc::new(Certificates));
        admission
    }

    /// Appends a plugin.
    pub fn push(&mut self, plugin: Arc<dyn AdmissionPlugin>) {
        self.plugins.push(plugin);
    }

    /// Runs every plugin in order.
    pub async fn admit(&self, state: &ApiState, attrs: &mut Attributes<'_>) -> Result<()> {
        for plugin in &self.plugins {
            plugin.admit(state, attrs).await?;
        }
        Ok(())
    }
}

/// Refuses namespaced creates in namespaces that are missing or being deleted.
struct NamespaceLifecycle;

#[async_trait]
impl AdmissionPlugin for NamespaceLifecycle {
    async fn admit(&self, state: &ApiState, attrs: &mut Attributes<'_>) -> Result<()> {
        if attrs.operation != Operation::Create
            || !attrs.resource.namespaced
            || attrs.subresource.is_some()
        {
            return Ok(());
        }
        let ns = meta_str(attrs.object, "namespace")
            .unwrap_or_default()
            .to_string();
        let namespaces = state
            .registry
            .get("", "v1", "namespaces")
            .expect("namespaces are built in");
        let namespace = state.objects.try_get(&namespaces, None, &ns).await?;
        match namespace {
            None => Err(ApiError::not_found("", "namespaces", &ns)),
            Some(namespace) if is_deleting(&namespace) && attrs.resource.kind != "Event" => {
                let name = meta_str(attrs.object, "name").unwrap_or_default();
                let mut err = ApiError::forbidden(
                    &attrs.resource.group,
                    &attrs.resource.plural,
                    name,
                    &format!(
                        "unable to create new content in namespace {ns} because it is being terminated"
                    ),
                );
                if let Some(details) = err.details.as_mut() {
                    details["causes"] = serde_json::json!([{
                        "reason": "NamespaceTerminating",
                        "message": format!("namespace {ns} is being terminated"),
                        "field": "metadata.namespace"
                    }]);
                }
                Err(err)
            }
            Some(_) => Ok(()),
        }
    }
}
