//! What a pod may not ask for on Fargate, in the words EKS's Fargate scheduler uses: the
//! reasons are joined with ", " after `Pod not supported on Fargate: `, e.g.
//! `Pod not supported on Fargate: fields not supported: HostNetwork, port contains HostIP or
//! HostPort`.
//!
//! The order and wording follow pods refused by EKS as reported in public issues and a
//! public re-implementation of its validator; keg's one deviation is that a PVC bound to an
//! NFS volume is accepted, as keg's stand-in for EFS.

use k8s_openapi::api::core::v1::{
    Container, PersistentVolume, Pod, PodSpec, SecurityContext, Volume,
};

/// The driver of the only CSI volumes Fargate mounts.
pub const EFS_CSI_DRIVER: &str = "efs.csi.aws.com";

/// Capabilities a Fargate container may add: containerd's default set.
const PERMITTED_CAPABILITIES: &[&str] = &[
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "NET_RAW",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

/// Finds the persistent volume a claim is bound to.
pub trait VolumeLookup {
    /// The volume bound to claim `claim` in `namespace`; `None` when unbound or missing.
    fn bound_volume(&self, namespace: &str, claim: &str) -> Option<PersistentVolume>;
}

impl<F> VolumeLookup for F
where
    F: Fn(&str, &str) -> Option<PersistentVolume>,
{
    fn bound_volume(&self, namespace: &str, claim: &str) -> Option<PersistentVolume> {
        self(namespace, claim)
    }
}

/// Errors from checking a pod.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The pod asks for something Fargate does not give.
    #[error("Pod not supported on Fargate: {}", .reasons.join(", "))]
    NotSupported {
        /// Each reason, in EKS's wording.
        reasons: Vec<String>,
    },
}

impl Error {
    /// The pod condition's reason, as EKS's scheduler gives it.
    pub fn reason(&self) -> &'static str {
        "POD_UNSUPPORTED_ON_FARGATE"
    }
}

/// Result of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Whether the pod can run on Fargate; if not, every reason why.
pub fn check_pod(pod: &Pod, volumes: &impl VolumeLookup) -> Result<()> {
    let reasons = unsupported_reasons(pod, volumes);
    if reasons.is_empty() {
        Ok(())
    } else {
        Err(Error::NotSupported { reasons })
    }
}

/// Every reason the pod cannot run on Fargate; empty when it can.
pub fn unsupported_reasons(pod: &Pod, volumes: &impl VolumeLookup) -> Vec<String> {
    let owned_by_daemon_set = pod
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|owner| owner.kind == "DaemonSet");
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let default_spec = PodSpec::default();
    let spec = pod.spec.as_ref().unwrap_or(&default_spec);
    let containers: Vec<&Container> = spec
        .init_containers
        .iter()
        .flatten()
        .chain(&spec.containers)
        .collect();
    [
        owned_by_daemon_set.then(|| "DaemonSet not supported".to_owned()),
        host_fields(spec),
        unsupported_volumes(spec, namespace, volumes),
        security_contexts(&containers),
        containers
            .iter()
            .any(|c| c.volume_devices.as_ref().is_some_and(|d| !d.is_empty()))
            .then(|| "volumeDevices not supported".to_owned()),
        containers
            .iter()
            .flat_map(|c| c.ports.iter().flatten())
            .any(|p| {
                p.host_port.is_some_and(|port| port > 0)
                    || p.host_ip.as_ref().is_some_and(|ip| !ip.is_empty())
            })
            .then(|| "port contains HostIP or HostPort".to_owned()),
    ]
    .into_iter()
    .flatten()
    .collect()
}

fn host_fields(spec: &PodSpec) -> Option<String> {
    let fields: Vec<&str> = [
        (spec.host_network, "HostNetwork"),
        (spec.host_pid, "HostPID"),
        (spec.host_ipc, "HostIPC"),
    ]
    .into_iter()
    .filter(|(set, _)| *set == Some(true))
    .map(|(_, name)| name)
    .collect();
    (!fields.is_empty()).then(|| format!("fields not supported: {}", fields.join(", ")))
}

fn unsupported_volumes(
    spec: &PodSpec,
    namespace: &str,
    lookup: &impl VolumeLookup,
) -> Option<String> {
    let problems: Vec<String> = spec
        .volumes
        .iter()
        .flatten()
        .filter_map(|volume| volume_problem(volume, namespace, lookup))
        .collect();
    (!problems.is_empty()).then(|| format!("volumes not supported: {}", problems.join(", ")))
}

fn volume_problem(volume: &Volume, namespace: &str, lookup: &impl VolumeLookup) -> Option<String> {
    let name = &volume.name;
    if let Some(claim) = &volume.persistent_volume_claim {
        let claim = &claim.claim_name;
        let why = match lookup.bound_volume(namespace, claim) {
            None => format!("PVC {claim} not bound"),
            Some(pv) => invalid_pv(claim, &pv)?,
        };
        return Some(format!("{name} not supported because: {why}"));
    }
    let supported = volume.empty_dir.is_some()
        || volume.secret.is_some()
        || volume.config_map.is_some()
        || volume.projected.is_some()
        || volume.downward_api.is_some()
        || volume.nfs.is_some();
    (!supported).then(|| format!("{name} is of an unsupported volume Type"))
}

/// Why a bound volume cannot be mounted on Fargate, if it cannot: it is a block store (EBS,
/// keg's local and host-path volumes), not a shared file system.
fn invalid_pv(claim: &str, pv: &PersistentVolume) -> Option<String> {
    let pv_name = pv.metadata.name.as_deref().unwrap_or_default();
    let spec = pv.spec.as_ref();
    match spec.and_then(|s| s.csi.as_ref()) {
        Some(csi) if csi.driver == EFS_CSI_DRIVER => None,
        Some(csi) => Some(format!(
            "PVC {claim} bound to invalid PV {pv_name} with CSI Driver: {}",
            csi.driver
        )),
        None if spec.is_some_and(|s| s.nfs.is_some()) => None,
        None => Some(format!(
            "PVC {claim} bound to invalid PV {pv_name} with nil CSI spec"
        )),
    }
}

fn security_contexts(containers: &[&Container]) -> Option<String> {
    let invalid: Vec<String> = containers
        .iter()
        .filter_map(|c| {
            c.security_context
                .as_ref()
                .and_then(invalid_security_fields)
        })
        .collect();
    // Containers are joined without a space, as EKS prints them ("Privileged,Privileged").
    (!invalid.is_empty()).then(|| format!("invalid SecurityContext fields: {}", invalid.join(",")))
}

fn invalid_security_fields(context: &SecurityContext) -> Option<String> {
    let mut fields = Vec::new();
    let added = context.capabilities.as_ref().and_then(|c| c.add.as_ref());
    let rejected: Vec<&str> = added
        .into_iter()
        .flatten()
        .map(String::as_str)
        .filter(|cap| {
            let bare = cap.strip_prefix("CAP_").unwrap_or(cap);
            !PERMITTED_CAPABILITIES.contains(&bare)
        })
        .collect();
    if !rejected.is_empty() {
        fields.push(format!("Capabilities added: {}", rejected.join(", ")));
    }
    if context.allow_privilege_escalation == Some(true) {
        fields.push("AllowPrivilegeEscalation".to_owned());
    }
    if context.privileged == Some(true) {
        fields.push("Privileged".to_owned());
    }
    (!fields.is_empty()).then(|| fields.join(", "))
}

#[cfg(test)]
mod tests;
