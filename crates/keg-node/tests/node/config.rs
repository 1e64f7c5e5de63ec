//! Environment (value, $(VAR), fieldRef, resourceFieldRef, configMapKeyRef, secretKeyRef,
//! envFrom) and volumes (emptyDir, configMap, secret, downwardAPI, hostPath, PVC).

use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolume, PersistentVolumeClaim, Secret};
use kube::api::{Api, LogParams, Patch, PostParams};
use serde_json::json;

use crate::common::{Cluster, IMAGE, container_status, kubectl_status, with_cluster};

const NODE: &str = "ip-192-168-7-9.eu-west-1.compute.internal";

async fn config_objects(c: &Cluster, pv_dir: &str) {
    let cms: Api<ConfigMap> = Api::namespaced(c.client.clone(), "default");
    let cm = serde_json::from_value(json!({"metadata": {"name": "settings"},
        "data": {"greeting": "hello", "level": "debug", "bad key": "skipped"}}))
    .unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();
    let secrets: Api<Secret> = Api::namespaced(c.client.clone(), "default");
    let secret = serde_json::from_value(json!({"metadata": {"name": "creds"},
        "stringData": {"password": "s3cret"}}))
    .unwrap();
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let pvs: Api<PersistentVolume> = Api::all(c.client.clone());
    let pv = serde_json::from_value(json!({"metadata": {"name": "pv-data"}, "spec": {
        "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
        "hostPath": {"path": pv_dir}}}))
    .unwrap();
    pvs.create(&PostParams::default(), &pv).await.unwrap();
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(c.client.clone(), "default");
    let pvc = serde_json::from_value(json!({"metadata": {"name": "data"}, "spec": {
        "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}},
        "volumeName": "pv-data"}}))
    .unwrap();
    pvcs.create(&PostParams::default(), &pvc).await.unwrap();
    // As the volume binder would.
    let bound = json!({"status": {"phase": "Bound"}});
    pvcs.patch_status("data", &Default::default(), &Patch::Merge(&bound))
        .await
        .unwrap();
}

const SCRIPT: &str = "env | sort | grep -E '^(A|B|NAME|POD_IP|NODE|MEM|CPU|GREETING|PASSWORD|CFG_.*)='; \
    echo \"args: $0 $1\"; \
    cat /config/greeting; echo; cat /secret/password; echo; cat /info/labels; echo; \
    echo from-pod > /data/written; echo from-pod > /host/written; \
    grep -q ' /scratch tmpfs' /proc/mounts && echo scratch-is-tmpfs; \
    trap 'exit 0' TERM; while true; do sleep 1; done";

#[tokio::test]
async fn env_and_volumes() {
    with_cluster("env_and_volumes", |c| async move {
        let pv_dir = c.dir.path().join("pv-data");
        let host_dir = c.dir.path().join("host-dir");
        config_objects(&c, pv_dir.to_str().unwrap()).await;
        c.node(NODE, false).await;
        let env = json!([
            {"name": "A", "value": "alpha"},
            {"name": "B", "value": "$(A)-beta-$(MISSING)-$$(A)"},
            {"name": "NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
            {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "requests.cpu", "divisor": "1m"}}},
            {"name": "GREETING", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "greeting"}}},
            {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}}
        ]);
        c.pod("configured", NODE, json!({
            "volumes": [
                {"name": "config", "configMap": {"name": "settings"}},
                {"name": "secret", "secret": {"secretName": "creds"}},
                {"name": "info", "downwardAPI": {"items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}},
                {"name": "data", "persistentVolumeClaim": {"claimName": "data"}},
                {"name": "host", "hostPath": {"path": host_dir.to_str().unwrap(), "type": "DirectoryOrCreate"}},
                {"name": "scratch", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}}
            ],
            "containers": [{
                "name": "app", "image": IMAGE,
                "command": ["sh", "-c", SCRIPT, "$(A)", "$(GREETING)"],
                "env": env,
                "envFrom": [{"configMapRef": {"name": "settings"}, "prefix": "CFG_"}],
                "resources": {"limits": {"memory": "64Mi"}, "requests": {"cpu": "100m"}},
                "volumeMounts": [
                    {"name": "config", "mountPath": "/config"},
                    {"name": "secret", "mountPath": "/secret"},
                    {"name": "info", "mountPath": "/info"},
                    {"name": "data", "mountPath": "/data"},
                    {"name": "host", "mountPath": "/host"},
                    {"name": "scratch", "mountPath": "/scratch"}
                ]
            }]
        }))
        .await;
        let pod = c.wait_pod("configured", "Running", |p| kubectl_status(p) == "Running").await;
        let ip = pod.status.clone().unwrap().pod_ip.unwrap();
        let deadline = std::time::Instant::now() + crate::common::WAIT;
        let logs = loop {
            let logs = c.logs("configured", LogParams::default()).await;
            if logs.contains("scratch-is-tmpfs") || std::time::Instant::now() > deadline {
                break logs;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        };
        let expected = format!(
            "A=alpha\nB=alpha-beta-$(MISSING)-$(A)\nCFG_greeting=hello\nCFG_level=debug\nCPU=100\n\
             GREETING=hello\nMEM=64\nNAME=configured\nNODE={NODE}\nPASSWORD=s3cret\nPOD_IP={ip}\n\
             args: alpha hello\nhello\ns3cret\n\nfrom-pod\nscratch-is-tmpfs\n"
        );
        // The labels file is empty (the pod has none); its line is the blank one.
        assert_eq!(logs.replace("from-pod\n", ""), expected.replace("from-pod\n", ""), "{logs}");
        assert_eq!(std::fs::read_to_string(pv_dir.join("written")).unwrap(), "from-pod\n");
        assert_eq!(std::fs::read_to_string(host_dir.join("written")).unwrap(), "from-pod\n");
        // On a node-group node the pod cgroup is the sum of its containers' limits.
        let uid = pod.metadata.uid.clone().unwrap();
        let cgroup = format!("/{}/pod{uid}", c.runtime_config.cgroup_root.trim_matches('/'));
        assert_eq!(c.runtime.cgroup_memory_limit(&cgroup), Some(64 << 20));
        let mounts = container_status(&pod, "app").volume_mounts.unwrap();
        // The pod's six volumes, and the service-account volume admission added.
        assert_eq!(mounts.len(), 7);
        assert!(
            mounts
                .iter()
                .any(|m| m.mount_path == "/var/run/secrets/kubernetes.io/serviceaccount"),
            "{mounts:?}"
        );
        c.delete_pod("configured").await;
        c.wait_gone("configured").await;
        c
    })
    .await;
}

#[tokio::test]
async fn missing_config_is_reported() {
    with_cluster("missing_config_is_reported", |c| async move {
        c.node(NODE, false).await;
        c.pod("no-env", NODE, json!({"containers": [{"name": "app", "image": IMAGE, "command": ["true"],
            "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "x"}}}]}]}))
        .await;
        c.pod("no-volume", NODE, json!({
            "volumes": [{"name": "cfg", "configMap": {"name": "absent"}}],
            "containers": [{"name": "app", "image": IMAGE, "command": ["true"],
                            "volumeMounts": [{"name": "cfg", "mountPath": "/cfg"}]}]}))
        .await;
        let pod = c
            .wait_pod("no-env", "CreateContainerConfigError", |p| kubectl_status(p) == "CreateContainerConfigError")
            .await;
        let waiting = container_status(&pod, "app").state.unwrap().waiting.unwrap();
        assert_eq!(waiting.message.as_deref(), Some("configmap \"nope\" not found"));
        c.wait_event("no-env", "Failed: Error: configmap \"nope\" not found").await;
        c.wait_event("no-volume", "FailedMount: MountVolume.SetUp failed for volume \"cfg\" : configmap \"absent\" not found")
            .await;
        c.node("fargate-ip-192-168-7-10.eu-west-1.compute.internal", true).await;
        let host = json!({
            "volumes": [{"name": "h", "hostPath": {"path": "/tmp"}}],
            "containers": [{"name": "app", "image": IMAGE, "command": ["true"],
                            "volumeMounts": [{"name": "h", "mountPath": "/h"}]}]});
        c.pod("no-host", "fargate-ip-192-168-7-10.eu-west-1.compute.internal", host).await;
        c.wait_event(
            "no-host",
            "FailedMount: MountVolume.SetUp failed for volume \"h\" : h is of an unsupported volume Type on Fargate",
        )
        .await;
        let pod = c.pods().get("no-volume").await.unwrap();
        assert_eq!(kubectl_status(&pod), "ContainerCreating");
        for name in ["no-env", "no-volume", "no-host"] {
            c.delete_pod(name).await;
            c.wait_gone(name).await;
        }
        c
    })
    .await;
}
