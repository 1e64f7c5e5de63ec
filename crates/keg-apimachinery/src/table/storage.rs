//! Storage: PersistentVolume, PersistentVolumeClaim, StorageClass and the CSI kinds.

use jiff::Timestamp;
use serde_json::{Value, json};

use super::Col;
use super::helpers::{age, arr_at, at, deleting, len_at, name, quantity, str_at, str_or};

/// The annotation that predates `storageClassName` and still takes precedence over it.
const BETA_STORAGE_CLASS: &str = "volume.beta.kubernetes.io/storage-class";

pub(super) const PV: &[Col] = &[
    Col::NAME,
    Col::new("Capacity", "string", "capacity is the description of the persistent volume's resources and capacity."),
    Col::new("Access Modes", "string", "accessModes contains all ways the volume can be mounted."),
    Col::new("Reclaim Policy", "string", "persistentVolumeReclaimPolicy defines what happens to a persistent volume when released from its claim."),
    Col::new("Status", "string", "phase indicates if a volume is available, bound to a claim, or released by a claim."),
    Col::new("Claim", "string", "claimRef is part of a bi-directional binding between PersistentVolume and PersistentVolumeClaim."),
    Col::new("StorageClass", "string", "StorageClass of the pv"),
    Col::new("VolumeAttributesClass", "string", "VolumeAttributesClass of the pv"),
    Col::new("Reason", "string", "reason is a brief CamelCase string that describes any failure and is meant for machine parsing and tidy display in the CLI."),
    Col::AGE,
    Col::new("VolumeMode", "string", "volumeMode defines if a volume is intended to be used with a formatted filesystem or to remain in raw block state.").wide(),
];

pub(super) fn persistent_volume(obj: &Value, now: Timestamp) -> Vec<Value> {
    let claim = at(obj, "spec.claimRef");
    let claim = if claim.is_null() {
        String::new()
    } else {
        format!("{}/{}", str_at(claim, "namespace"), str_at(claim, "name"))
    };
    // Defaults: a new volume is Pending, retained when released, a filesystem.
    let phase = if deleting(obj) {
        "Terminating"
    } else {
        str_or(obj, "status.phase", "Pending")
    };
    vec![
        name(obj),
        json!(quantity(at(obj, "spec.capacity.storage"))),
        json!(access_modes(arr_at(obj, "spec.accessModes"))),
        json!(str_or(obj, "spec.persistentVolumeReclaimPolicy", "Retain")),
        json!(phase),
        json!(claim),
        json!(volume_class(obj)),
        json!(str_or(obj, "spec.volumeAttributesClassName", "<unset>")),
        json!(str_at(obj, "status.reason")),
        age(obj, now),
        json!(str_or(obj, "spec.volumeMode", "Filesystem")),
    ]
}

pub(super) const PVC: &[Col] = &[
    Col::NAME,
    Col::new(
        "Status",
        "string",
        "phase represents the current phase of PersistentVolumeClaim.",
    ),
    Col::new(
        "Volume",
        "string",
        "volumeName is the binding reference to the PersistentVolume backing this claim.",
    ),
    Col::new(
        "Capacity",
        "string",
        "capacity represents the actual resources of the underlying volume.",
    ),
    Col::new(
        "Access Modes",
        "string",
        "accessModes contains the actual access modes the volume backing the PVC has.",
    ),
    Col::new("StorageClass", "string", "StorageClass of the pvc"),
    Col::new(
        "VolumeAttributesClass",
        "string",
        "VolumeAttributesClass of the pvc",
    ),
    Col::AGE,
    Col::new(
        "VolumeMode",
        "string",
        "volumeMode defines what type of volume is required by the claim.",
    )
    .wide(),
];

pub(super) fn persistent_volume_claim(obj: &Value, now: Timestamp) -> Vec<Value> {
    let phase = if deleting(obj) {
        "Terminating"
    } else {
        str_or(obj, "status.phase", "Pending")
    };
    let volume = str_at(obj, "spec.volumeName");
    // Capacity and modes are the bound volume's, so shown only once bound.
    let (capacity, modes) = if volume.is_empty() {
        (String::new(), String::new())
    } else {
        (
            quantity(at(obj, "status.capacity.storage")),
            access_modes(arr_at(obj, "status.accessModes")),
        )
    };
    vec![
        name(obj),
        json!(phase),
        json!(volume),
        json!(capacity),
        json!(modes),
        json!(volume_class(obj)),
        json!(str_or(obj, "spec.volumeAttributesClassName", "<unset>")),
        age(obj, now),
        json!(str_or(obj, "spec.volumeMode", "Filesystem")),
    ]
}

/// The storage class of a PV or PVC: the beta annotation, else `spec.storageClassName`.
fn volume_class(obj: &Value) -> &str {
    match at(obj, "metadata.annotations")
        .get(BETA_STORAGE_CLASS)
        .and_then(Value::as_str)
    {
        Some(class) => class,
        None => str_at(obj, "spec.storageClassName"),
    }
}

/// Upstream's `GetAccessModesAsString`: `RWO,ROX,RWX,RWOP` in that order, each once.
fn access_modes(modes: &[Value]) -> String {
    [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ]
    .into_iter()
    .filter(|(mode, _)| modes.iter().any(|m| m.as_str() == Some(mode)))
    .map(|(_, short)| short)
    .collect::<Vec<_>>()
    .join(",")
}

pub(super) const STORAGE_CLASS: &[Col] = &[
    Col::NAME,
    Col::new(
        "Provisioner",
        "string",
        "provisioner indicates the type of the provisioner.",
    ),
    Col::new(
        "ReclaimPolicy",
        "string",
        "reclaimPolicy controls the reclaimPolicy for dynamically provisioned PersistentVolumes of this storage class.",
    ),
    Col::new(
        "VolumeBindingMode",
        "string",
        "volumeBindingMode indicates how PersistentVolumeClaims should be provisioned and bound.",
    ),
    Col::new(
        "AllowVolumeExpansion",
        "string",
        "allowVolumeExpansion shows whether the storage class allow volume expand.",
    ),
    Col::AGE,
];

/// The name, marked when the class is the cluster default.
fn storage_class_name(obj: &Value) -> String {
    let annotations = at(obj, "metadata.annotations");
    let is_default = [
        "storageclass.kubernetes.io/is-default-class",
        "storageclass.beta.kubernetes.io/is-default-class",
    ]
    .iter()
    .any(|a| annotations.get(a).and_then(Value::as_str) == Some("true"));
    let name = str_at(obj, "metadata.name");
    if is_default {
        format!("{name} (default)")
    } else {
        name.to_owned()
    }
}

pub(super) fn storage_class(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        json!(storage_class_name(obj)),
        json!(str_at(obj, "provisioner")),
        json!(str_or(obj, "reclaimPolicy", "Delete")),
        json!(str_or(obj, "volumeBindingMode", "Immediate")),
        json!(obj["allowVolumeExpansion"].as_bool().unwrap_or(false)),
        age(obj, now),
    ]
}

pub(super) const VAC: &[Col] = &[
    Col::NAME,
    Col::new("DriverName", "string", "Name of the CSI driver"),
    Col::AGE,
];

pub(super) fn volume_attributes_class(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![name(obj), json!(str_at(obj, "driverName")), age(obj, now)]
}

pub(super) const VOLUME_ATTACHMENT: &[Col] = &[
    Col::NAME,
    // Upstream marks this column as a name too.
    Col {
        format: "name",
        ..Col::new(
            "Attacher",
            "string",
            "attacher indicates the name of the volume driver that MUST handle this request.",
        )
    },
    Col::new(
        "PV",
        "string",
        "persistentVolumeName represents the name of the persistent volume to attach.",
    ),
    Col::new(
        "Node",
        "string",
        "nodeName represents the node that the volume should be attached to.",
    ),
    Col::new(
        "Attached",
        "boolean",
        "attached indicates the volume is successfully attached.",
    ),
    Col::AGE,
];

pub(super) fn volume_attachment(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(obj),
        json!(str_at(obj, "spec.attacher")),
        json!(str_at(obj, "spec.source.persistentVolumeName")),
        json!(str_at(obj, "spec.nodeName")),
        json!(at(obj, "status.attached").as_bool().unwrap_or(false)),
        age(obj, now),
    ]
}

pub(super) const CSI_DRIVER: &[Col] = &[
    Col::NAME,
    Col::new(
        "AttachRequired",
        "boolean",
        "attachRequired indicates this CSI volume driver requires an attach operation.",
    ),
    Col::new(
        "PodInfoOnMount",
        "boolean",
        "podInfoOnMount indicates this CSI volume driver requires additional pod information during mount operations.",
    ),
    Col::new(
        "StorageCapacity",
        "boolean",
        "storageCapacity indicates that the CSI volume driver wants pod scheduling to consider the storage capacity.",
    ),
    Col::new(
        "TokenRequests",
        "string",
        "tokenRequests indicates the CSI driver needs pods' service account tokens it is mounting volume for.",
    ),
    Col::new(
        "RequiresRepublish",
        "boolean",
        "requiresRepublish indicates the CSI driver wants NodePublishVolume being periodically called.",
    ),
    Col::new(
        "Modes",
        "string",
        "volumeLifecycleModes defines what kind of volumes this CSI volume driver supports.",
    ),
    Col::AGE,
];

pub(super) fn csi_driver(obj: &Value, now: Timestamp) -> Vec<Value> {
    let flag = |path, default| at(obj, path).as_bool().unwrap_or(default);
    let tokens = match at(obj, "spec.tokenRequests").as_array() {
        None => "<unset>".to_owned(),
        Some(list) => list
            .iter()
            .map(|t| str_at(t, "audience"))
            .collect::<Vec<_>>()
            .join(","),
    };
    // Volume lifecycle modes default to Persistent.
    let modes: Vec<&str> = arr_at(obj, "spec.volumeLifecycleModes")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let modes = if modes.is_empty() {
        "Persistent".to_owned()
    } else {
        modes.join(",")
    };
    vec![
        name(obj),
        json!(flag("spec.attachRequired", true)),
        json!(flag("spec.podInfoOnMount", false)),
        json!(flag("spec.storageCapacity", false)),
        json!(tokens),
        json!(flag("spec.requiresRepublish", false)),
        json!(modes),
        age(obj, now),
    ]
}

pub(super) const CSI_NODE: &[Col] = &[
    Col::NAME,
    Col::new(
        "Drivers",
        "integer",
        "Drivers indicates the number of CSI drivers registered on the node",
    ),
    Col::AGE,
];

pub(super) fn csi_node(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![name(obj), json!(len_at(obj, "spec.drivers")), age(obj, now)]
}

pub(super) const CSI_STORAGE_CAPACITY: &[Col] = &[
    Col::NAME,
    Col::new(
        "StorageClassName",
        "string",
        "storageClassName represents the name of the StorageClass that the reported capacity applies to.",
    ),
    Col::new(
        "Capacity",
        "string",
        "capacity is the value reported by the CSI driver in its GetCapacityResponse for a GetCapacityRequest with topology and parameters that match the previous fields.",
    ),
];

pub(super) fn csi_storage_capacity(obj: &Value, _now: Timestamp) -> Vec<Value> {
    let capacity = match &obj["capacity"] {
        Value::Null => "<unset>".to_owned(),
        q => quantity(q),
    };
    vec![
        name(obj),
        json!(str_at(obj, "storageClassName")),
        json!(capacity),
    ]
}
