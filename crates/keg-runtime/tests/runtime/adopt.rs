//! A restarted runtime (keg restarted) finds and adopts running containers.

use std::time::Duration;

use keg_runtime::ContainerState;

use crate::common::with_env;

#[tokio::test]
async fn a_restarted_runtime_adopts_running_containers() {
    with_env(
        "a_restarted_runtime_adopts_running_containers",
        |env| async move {
            let sandbox = env.sandbox("adopted").await;
            let id = env
                .run(&sandbox, "app", "echo before; while true; do sleep 1; done")
                .await;
            env.wait_for_log(&id, "before").await;
            let before = env.runtime.container_status(&id).unwrap();
            // The monitor is no child of this process, so nothing of it dies with keg.
            let (monitor, _) = keg_runtime::testing::monitor_of(&env.root(), &id).unwrap();
            let stat = std::fs::read_to_string(format!("/proc/{monitor}/stat")).unwrap();
            let ppid: u32 = stat[stat.rfind(')').unwrap() + 2..]
                .split(' ')
                .nth(1)
                .unwrap()
                .parse()
                .unwrap();
            assert_ne!(ppid, std::process::id());

            // Only the state on disk carries over: a fresh instance, as after a keg restart.
            let again = env.restarted().await;
            assert_eq!(
                again.list_pod_sandboxes().unwrap(),
                vec![env.runtime.pod_sandbox_status(&sandbox.id).unwrap()]
            );
            let listed = again.list_containers().unwrap();
            assert_eq!(listed.len(), 1);
            assert_eq!(listed[0].id, id);
            assert_eq!(listed[0].state, ContainerState::Running);
            assert_eq!(listed[0].pid, before.pid);
            assert_eq!(listed[0].config.name, "app");

            let out = again
                .exec(&id, &["sh", "-c", "echo after"], Duration::from_secs(10))
                .await
                .unwrap();
            assert_eq!(out.stdout, b"after\n");
            again
                .stop_container(&id, Duration::from_secs(1))
                .await
                .unwrap();
            assert!(matches!(
                again.container_status(&id).unwrap().state,
                ContainerState::Exited { exit_code: 137, .. }
            ));
            // The old instance sees the same.
            assert!(matches!(
                env.runtime.container_status(&id).unwrap().state,
                ContainerState::Exited { .. }
            ));
        },
    )
    .await;
}
