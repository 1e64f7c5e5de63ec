//! Node status and the Lease heartbeat.

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, PostParams};
use serde_json::json;

use crate::common::{WAIT, with_cluster};

#[tokio::test]
async fn keeps_node_status_and_lease() {
    with_cluster("keeps_node_status_and_lease", |c| async move {
        c.node("ip-192-168-7-9.eu-west-1.compute.internal", false)
            .await;
        // A node of another agent is left alone.
        let other: Node = serde_json::from_value(json!({
            "metadata": {"name": "other", "labels": {"keg.dev/agent": "someone-else"}}
        }))
        .unwrap();
        let nodes: Api<Node> = Api::all(c.client.clone());
        nodes.create(&PostParams::default(), &other).await.unwrap();
        let name = "ip-192-168-7-9.eu-west-1.compute.internal";
        let leases: Api<Lease> = Api::namespaced(c.client.clone(), "kube-node-lease");
        let deadline = std::time::Instant::now() + WAIT;
        let node = loop {
            let node = nodes.get(name).await.unwrap();
            let ready = node
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
            if ready && leases.get_opt(name).await.unwrap().is_some() {
                break node;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "node never became Ready: {:?}",
                node.status
            );
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        };
        let status = node.status.unwrap();
        let conditions = status.conditions.unwrap();
        let find = |t: &str| conditions.iter().find(|c| c.type_ == t).unwrap();
        assert_eq!(find("Ready").reason.as_deref(), Some("KubeletReady"));
        assert_eq!(
            find("Ready").message.as_deref(),
            Some("kubelet is posting ready status")
        );
        assert_eq!(
            find("MemoryPressure").reason.as_deref(),
            Some("KubeletHasSufficientMemory")
        );
        assert_eq!(find("DiskPressure").status, "False");
        assert_eq!(
            find("PIDPressure").reason.as_deref(),
            Some("KubeletHasSufficientPID")
        );
        let info = status.node_info.unwrap();
        assert!(
            info.kubelet_version.starts_with("v1.33."),
            "{}",
            info.kubelet_version
        );
        assert!(info.container_runtime_version.starts_with("crun://"));
        assert_eq!(info.operating_system, "linux");
        assert!(!info.kernel_version.is_empty() && !info.os_image.is_empty());
        assert_eq!(
            status.capacity.unwrap()["memory"].0,
            "4Gi",
            "the creator's capacity stays"
        );
        assert_eq!(status.addresses.unwrap()[0].address, "192.168.7.9");
        let lease = leases.get(name).await.unwrap();
        let spec = lease.spec.unwrap();
        assert_eq!(spec.holder_identity.as_deref(), Some(name));
        assert_eq!(spec.lease_duration_seconds, Some(40));
        assert!(spec.renew_time.is_some());
        assert_eq!(lease.metadata.owner_references.unwrap()[0].kind, "Node");
        let untouched = nodes.get("other").await.unwrap();
        assert!(untouched.status.and_then(|s| s.conditions).is_none());
        assert!(leases.get_opt("other").await.unwrap().is_none());
        c
    })
    .await;
}
