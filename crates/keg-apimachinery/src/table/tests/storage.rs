//! Storage and configuration kinds.

use serde_json::json;

use super::{DAY, HOUR, ago, cells, headers, slice};

#[test]
fn persistent_volumes() {
    assert_eq!(
        headers("PersistentVolume"),
        [
            "Name",
            "Capacity",
            "Access Modes",
            "Reclaim Policy",
            "Status",
            "Claim",
            "StorageClass",
            "VolumeAttributesClass",
            "Reason",
            "Age",
            "VolumeMode*"
        ]
    );
    let pv = json!({
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": "pvc-3f2a", "creationTimestamp": ago(5 * DAY)},
        "spec": {"capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteMany", "ReadWriteOnce"],
                 "persistentVolumeReclaimPolicy": "Delete", "storageClassName": "gp3",
                 "claimRef": {"kind": "PersistentVolumeClaim", "namespace": "default", "name": "data"},
                 "volumeMode": "Filesystem"},
        "status": {"phase": "Bound"},
    });
    assert_eq!(
        cells("PersistentVolume", pv.clone()),
        json!([
            "pvc-3f2a",
            "10Gi",
            "RWO,RWX",
            "Delete",
            "Bound",
            "default/data",
            "gp3",
            "<unset>",
            "",
            "5d",
            "Filesystem"
        ])
    );
    let mut released = pv;
    released["metadata"]["deletionTimestamp"] = json!(ago(1));
    released["metadata"]["annotations"] =
        json!({"volume.beta.kubernetes.io/storage-class": "legacy"});
    assert_eq!(
        slice(cells("PersistentVolume", released), 4..7),
        json!(["Terminating", "default/data", "legacy"])
    );
}

#[test]
fn persistent_volume_claims() {
    assert_eq!(
        headers("PersistentVolumeClaim"),
        [
            "Name",
            "Status",
            "Volume",
            "Capacity",
            "Access Modes",
            "StorageClass",
            "VolumeAttributesClass",
            "Age",
            "VolumeMode*"
        ]
    );
    let bound = json!({
        "metadata": {"name": "data", "namespace": "default", "creationTimestamp": ago(5 * DAY)},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "8Gi"}},
                 "storageClassName": "gp3", "volumeName": "pvc-3f2a", "volumeMode": "Block"},
        "status": {"phase": "Bound", "accessModes": ["ReadWriteOnce"], "capacity": {"storage": "10Gi"}},
    });
    assert_eq!(
        cells("PersistentVolumeClaim", bound),
        json!([
            "data", "Bound", "pvc-3f2a", "10Gi", "RWO", "gp3", "<unset>", "5d", "Block"
        ])
    );
    let pending = json!({
        "metadata": {"name": "logs", "creationTimestamp": ago(HOUR)},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
        "status": {"phase": "Pending"},
    });
    assert_eq!(
        cells("PersistentVolumeClaim", pending),
        json!([
            "logs",
            "Pending",
            "",
            "",
            "",
            "",
            "<unset>",
            "60m",
            "Filesystem"
        ])
    );
}

#[test]
fn storage_classes() {
    assert_eq!(
        headers("StorageClass"),
        [
            "Name",
            "Provisioner",
            "ReclaimPolicy",
            "VolumeBindingMode",
            "AllowVolumeExpansion",
            "Age"
        ]
    );
    let default = json!({
        "metadata": {"name": "gp3", "creationTimestamp": ago(DAY),
                     "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
        "provisioner": "ebs.csi.aws.com", "reclaimPolicy": "Delete",
        "volumeBindingMode": "WaitForFirstConsumer", "allowVolumeExpansion": true,
    });
    assert_eq!(
        cells("StorageClass", default),
        json!([
            "gp3 (default)",
            "ebs.csi.aws.com",
            "Delete",
            "WaitForFirstConsumer",
            true,
            "24h"
        ])
    );
    let plain = json!({"metadata": {"name": "local", "creationTimestamp": ago(DAY),
        "annotations": {"storageclass.kubernetes.io/is-default-class": "false"}},
        "provisioner": "kubernetes.io/no-provisioner"});
    assert_eq!(
        cells("StorageClass", plain),
        json!([
            "local",
            "kubernetes.io/no-provisioner",
            "Delete",
            "Immediate",
            false,
            "24h"
        ])
    );
}

#[test]
fn config_maps_secrets_service_accounts() {
    assert_eq!(headers("ConfigMap"), ["Name", "Data", "Age"]);
    let cm = json!({"metadata": {"name": "kube-root-ca.crt", "creationTimestamp": ago(DAY)},
        "data": {"ca.crt": "..."}, "binaryData": {"logo.png": "iVBO"}});
    assert_eq!(
        cells("ConfigMap", cm),
        json!(["kube-root-ca.crt", 2, "24h"])
    );

    assert_eq!(headers("Secret"), ["Name", "Type", "Data", "Age"]);
    let tls = json!({"metadata": {"name": "web-tls", "creationTimestamp": ago(DAY)},
        "type": "kubernetes.io/tls", "data": {"tls.crt": "Y3J0", "tls.key": "a2V5"}});
    assert_eq!(
        cells("Secret", tls),
        json!(["web-tls", "kubernetes.io/tls", 2, "24h"])
    );
    let opaque = json!({"metadata": {"name": "empty", "creationTimestamp": ago(DAY)}});
    assert_eq!(
        cells("Secret", opaque),
        json!(["empty", "Opaque", 0, "24h"])
    );

    assert_eq!(headers("ServiceAccount"), ["Name", "Secrets", "Age"]);
    let sa = json!({"metadata": {"name": "default", "creationTimestamp": ago(DAY)}});
    assert_eq!(cells("ServiceAccount", sa), json!(["default", 0, "24h"]));
}

#[test]
fn resource_quotas() {
    assert_eq!(
        headers("ResourceQuota"),
        ["Name", "Request", "Limit", "Age"]
    );
    let rq = json!({
        "metadata": {"name": "compute", "namespace": "team-a", "creationTimestamp": ago(DAY)},
        "spec": {"hard": {"requests.cpu": "4", "limits.memory": "8Gi", "pods": "20"}},
        "status": {"hard": {"requests.cpu": "4", "limits.memory": "8Gi", "pods": "20", "limits.cpu": "8"},
                   "used": {"requests.cpu": "500m", "limits.memory": "1Gi", "pods": "3"}},
    });
    assert_eq!(
        cells("ResourceQuota", rq),
        json!([
            "compute",
            "pods: 3/20, requests.cpu: 500m/4",
            "limits.cpu: 0/8, limits.memory: 1Gi/8Gi",
            "24h"
        ])
    );
}

#[test]
fn csi_kinds() {
    let driver = json!({"metadata": {"name": "ebs.csi.aws.com", "creationTimestamp": ago(DAY)},
        "spec": {"attachRequired": true, "podInfoOnMount": false, "volumeLifecycleModes": ["Persistent"]}});
    assert_eq!(
        cells("CSIDriver", driver),
        json!([
            "ebs.csi.aws.com",
            true,
            false,
            false,
            "<unset>",
            false,
            "Persistent",
            "24h"
        ])
    );
    let va = json!({"metadata": {"name": "csi-123", "creationTimestamp": ago(DAY)},
        "spec": {"attacher": "ebs.csi.aws.com", "nodeName": "node-1", "source": {"persistentVolumeName": "pvc-3f2a"}},
        "status": {"attached": true}});
    assert_eq!(
        cells("VolumeAttachment", va),
        json!([
            "csi-123",
            "ebs.csi.aws.com",
            "pvc-3f2a",
            "node-1",
            true,
            "24h"
        ])
    );
}
