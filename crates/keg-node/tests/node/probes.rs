//! Startup, readiness and liveness probes (tcpSocket, httpGet, exec) against a real server.

use serde_json::json;

use crate::common::{IMAGE, condition, container_status, kubectl_status, with_cluster};

const NODE: &str = "ip-192-168-7-9.eu-west-1.compute.internal";

#[tokio::test]
async fn probes_decide_readiness_and_restarts() {
    with_cluster("probes_decide_readiness_and_restarts", |c| async move {
        c.node(NODE, false).await;
        let script = "mkdir -p /www; touch /tmp/alive; exec httpd -f -p 8080 -h /www";
        c.pod("probed", NODE, json!({"terminationGracePeriodSeconds": 2, "containers": [{
            "name": "app", "image": IMAGE, "command": ["sh", "-c", script],
            "ports": [{"name": "http", "containerPort": 8080}],
            "startupProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1, "failureThreshold": 30},
            "readinessProbe": {"httpGet": {"path": "/ready.html", "port": "http"},
                               "periodSeconds": 1, "failureThreshold": 1},
            "livenessProbe": {"exec": {"command": ["cat", "/tmp/alive"]},
                              "periodSeconds": 1, "failureThreshold": 2}
        }]}))
        .await;
        let pod = c
            .wait_pod("probed", "started", |p| {
                p.status.as_ref().and_then(|s| s.container_statuses.as_ref()).is_some_and(|cs| {
                    cs[0].started == Some(true)
                })
            })
            .await;
        assert!(!container_status(&pod, "app").ready, "no page, not ready");
        assert_eq!(kubectl_status(&pod), "Running");
        let (_, reason, message) = condition(&pod, "Ready");
        assert_eq!(reason.as_deref(), Some("ContainersNotReady"));
        assert_eq!(message.as_deref(), Some("containers with unready status: [app]"));
        c.wait_event("probed", "Unhealthy: Readiness probe failed: HTTP probe failed with statuscode: 404").await;

        c.exec(&pod, "app", &["touch", "/www/ready.html"]).await;
        let pod = c.wait_pod("probed", "Ready", |p| condition(p, "Ready").0 == "True").await;
        assert!(container_status(&pod, "app").ready);
        c.exec(&pod, "app", &["rm", "/www/ready.html"]).await;
        let pod = c.wait_pod("probed", "not Ready", |p| condition(p, "Ready").0 == "False").await;

        // Failing liveness: killed and started again.
        c.exec(&pod, "app", &["rm", "/tmp/alive"]).await;
        c.wait_pod("probed", "a restart", |p| container_status(p, "app").restart_count == 1).await;
        c.wait_event(
            "probed",
            "Unhealthy: Liveness probe failed: cat: can't open '/tmp/alive': No such file or directory",
        )
        .await;
        c.wait_event("probed", "Killing: Container app failed liveness probe, will be restarted").await;
        let pod = c
            .wait_pod("probed", "running again", |p| {
                container_status(p, "app").state.is_some_and(|s| s.running.is_some())
            })
            .await;
        let last = container_status(&pod, "app").last_state.unwrap().terminated.unwrap();
        // httpd as PID 1 has no SIGTERM handler, so the kernel ignores SIGTERM: SIGKILL ends it.
        assert_eq!((last.exit_code, last.reason.as_deref()), (137, Some("Error")));
        c.delete_pod("probed").await;
        c.wait_gone("probed").await;
        c
    })
    .await;
}
