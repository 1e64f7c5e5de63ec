//! A container's life: create, start, logs, exec, status, stop, exit codes, remove.

use std::time::{Duration, Instant};

use keg_runtime::{ContainerState, PodSandboxConfig, Resources};

use crate::common::with_env;

const RESOLV_CONF: &str = "search demo.svc.cluster.local svc.cluster.local cluster.local\n\
                           nameserver 10.43.0.10\noptions ndots:5\n";
const MEMORY_LIMIT: &str =
    "cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes";
/// Logs SIGTERM but goes on: only SIGKILL ends it.
const STUBBORN: &str = "trap 'echo got TERM' TERM; echo ready; while true; do sleep 1; done";
/// Ends on SIGTERM.
const POLITE: &str = "trap 'echo bye; exit 0' TERM; echo ready; while true; do sleep 1; done";

#[tokio::test]
async fn runs_a_container_in_a_pod() {
    with_env("runs_a_container_in_a_pod", |env| async move {
        let sandbox = env
            .sandbox_with(PodSandboxConfig {
                uid: "0b9c1c8e-1111-2222-3333-444455556666".into(),
                name: "web-1".into(),
                namespace: "demo".into(),
                dns: keg_runtime::DnsConfig::cluster_first(
                    "demo",
                    "cluster.local",
                    vec!["10.43.0.10".into()],
                ),
                resources: Resources {
                    memory_limit_bytes: Some(256 << 20),
                    cpu_limit_millis: Some(500),
                    ..Default::default()
                },
                ..Default::default()
            })
            .await;
        assert_eq!(
            env.runtime.cgroup_memory_limit(&sandbox.cgroup_path),
            Some(256 << 20)
        );
        // A loop, so that sh stays PID 1 instead of exec-ing its last command.
        let mut config = env.container_config("app", "echo hello; while true; do sleep 3600; done");
        config.resources.memory_limit_bytes = Some(64 << 20);
        let id = env.run_with(&sandbox, config).await;
        env.wait_for_log(&id, "hello").await;
        let status = env.runtime.container_status(&id).unwrap();
        assert_eq!(status.state, ContainerState::Running);
        assert!(status.pid.is_some() && status.started_at.is_some());
        assert_eq!(status.image_id, env.image.id);

        assert_eq!(
            env.exec(&id, &["cat", "/proc/1/comm"]).await,
            (0, "sh\n".into()),
            "PID 1 is sh"
        );
        assert_eq!(env.exec(&id, &["hostname"]).await, (0, "web-1\n".into()));
        let (_, resolv) = env.exec(&id, &["cat", "/etc/resolv.conf"]).await;
        assert_eq!(resolv, RESOLV_CONF);
        let (_, hosts) = env.exec(&id, &["cat", "/etc/hosts"]).await;
        assert!(hosts.contains(&format!("{}\tweb-1", sandbox.ip)), "{hosts}");
        assert_eq!(
            env.exec(&id, &["sh", "-c", MEMORY_LIMIT]).await,
            (0, format!("{}\n", 64 << 20))
        );
        assert_eq!(
            env.exec(&id, &["ls", "/opt/old"]).await,
            (0, "new\n".into()),
            "opaque whiteout"
        );
        assert_eq!(
            env.exec(&id, &["test", "-e", "/etc/motd"]).await.0,
            1,
            "file whiteout"
        );
        assert_eq!(env.exec(&id, &["sh", "-c", "exit 7"]).await.0, 7);
        let (_, caps) = env
            .exec(&id, &["sh", "-c", "grep CapBnd /proc/self/status"])
            .await;
        assert_eq!(
            caps.split_whitespace().nth(1),
            Some("00000000a80425fb"),
            "containerd's default capabilities"
        );

        // sh as PID 1 ignores SIGTERM, so stop escalates to SIGKILL.
        env.runtime
            .stop_container(&id, Duration::from_millis(500))
            .await
            .unwrap();
        match env.runtime.container_status(&id).unwrap().state {
            ContainerState::Exited {
                exit_code, reason, ..
            } => assert_eq!((exit_code, reason.as_str()), (137, "Error")),
            other => panic!("expected exited, got {other:?}"),
        }
        assert_eq!(env.runtime.list_containers().unwrap().len(), 1);
        env.runtime.remove_container(&id).await.unwrap();
        assert!(env.runtime.list_containers().unwrap().is_empty());
        assert!(env.log_path_exists("app"), "the log outlives the container");
        env.runtime.remove_pod_sandbox(&sandbox.id).await.unwrap();
        assert!(env.runtime.list_pod_sandboxes().unwrap().is_empty());
    })
    .await;
}

#[tokio::test]
async fn reports_exit_codes_and_stops_with_sigterm_then_sigkill() {
    with_env(
        "reports_exit_codes_and_stops_with_sigterm_then_sigkill",
        |env| async move {
            let sandbox = env.sandbox("exits").await;
            let failing = env.run(&sandbox, "fail", "echo bye >&2; exit 3").await;
            assert_eq!(
                exit_of(&env.wait_exited(&failing).await),
                (3, "Error".into())
            );
            assert_eq!(env.log_lines(&failing), ["bye"]);
            let done = env.run(&sandbox, "done", "true").await;
            assert_eq!(
                exit_of(&env.wait_exited(&done).await),
                (0, "Completed".into())
            );

            let stubborn = env.run(&sandbox, "stubborn", STUBBORN).await;
            env.wait_for_log(&stubborn, "ready").await;
            let begun = Instant::now();
            env.runtime
                .stop_container(&stubborn, Duration::from_secs(3))
                .await
                .unwrap();
            assert!(
                begun.elapsed() >= Duration::from_secs(3),
                "SIGKILL only after the timeout"
            );
            let lines = env.log_lines(&stubborn);
            assert!(lines.contains(&"got TERM".to_string()), "{lines:?}");
            assert_eq!(exit_of(&env.state(&stubborn)), (137, "Error".into()));

            let polite = env.run(&sandbox, "polite", POLITE).await;
            env.wait_for_log(&polite, "ready").await;
            env.runtime
                .stop_container(&polite, Duration::from_secs(30))
                .await
                .unwrap();
            assert_eq!(exit_of(&env.state(&polite)), (0, "Completed".into()));

            // A created container that never started can be removed too.
            let idle = env.container_config("idle", "true");
            let created = env
                .runtime
                .create_container(&sandbox.id, idle)
                .await
                .unwrap();
            assert_eq!(env.state(&created), ContainerState::Created);
            env.runtime.remove_container(&created).await.unwrap();

            // Stopping the sandbox stops what still runs, and takes no new containers.
            let sleeper = env.run(&sandbox, "sleeper", "sleep 3600").await;
            env.runtime
                .stop_pod_sandbox(&sandbox.id, Duration::from_secs(1))
                .await
                .unwrap();
            assert!(matches!(env.state(&sleeper), ContainerState::Exited { .. }));
            let late = env.container_config("late", "true");
            assert!(
                env.runtime
                    .create_container(&sandbox.id, late)
                    .await
                    .is_err()
            );
        },
    )
    .await;
}

/// Exit code and reason of an exited container.
fn exit_of(state: &ContainerState) -> (i32, String) {
    match state {
        ContainerState::Exited {
            exit_code, reason, ..
        } => (*exit_code, reason.clone()),
        other => panic!("expected an exited container, got {other:?}"),
    }
}

#[tokio::test]
async fn reports_oom_kills_and_exec_timeouts() {
    with_env("reports_oom_kills_and_exec_timeouts", |env| async move {
        let sandbox = env.sandbox("hungry").await;
        let mut config = env.container_config("hog", "x=0123456789; while true; do x=$x$x; done");
        config.resources.memory_limit_bytes = Some(32 << 20);
        let hog = env.run_with(&sandbox, config).await;
        match env.wait_exited(&hog).await {
            ContainerState::Exited {
                exit_code, reason, ..
            } => {
                assert_eq!((exit_code, reason.as_str()), (137, "OOMKilled"))
            }
            other => panic!("{other:?}"),
        }

        let app = env
            .run(&sandbox, "app", "while true; do sleep 1; done")
            .await;
        let begun = Instant::now();
        let result = env
            .runtime
            .exec(&app, &["sleep", "60"], Duration::from_secs(1))
            .await;
        assert!(
            matches!(result, Err(keg_runtime::Error::Timeout { .. })),
            "{result:?}"
        );
        assert!(begun.elapsed() < Duration::from_secs(10));
        let (_, ps) = env.exec(&app, &["ps", "-o", "args"]).await;
        assert!(
            !ps.contains("sleep 60"),
            "the timed-out command was killed: {ps}"
        );
        assert!(
            env.runtime
                .exec(&hog, &["true"], Duration::from_secs(1))
                .await
                .is_err(),
            "no exec into exited containers"
        );
    })
    .await;
}

#[tokio::test]
async fn reopens_a_rotated_log() {
    with_env("reopens_a_rotated_log", |env| async move {
        let sandbox = env.sandbox("chatty").await;
        let script = "i=0; while true; do echo line$i; i=$((i+1)); sleep 0.1; done";
        let id = env.run(&sandbox, "chatty", script).await;
        env.wait_for_log(&id, "line2").await;
        let log = env.runtime.container_status(&id).unwrap().config.log_path;
        let rotated = log.with_extension("log.1");
        std::fs::rename(&log, &rotated).unwrap();
        env.wait_for_log(&id, "line").await;
        let read =
            |p: &std::path::Path| keg_runtime::logs::read_log(p, &Default::default()).unwrap();
        let (old, new) = (read(&rotated), read(&log));
        assert!(old[0].content == b"line0" && !new.is_empty());
        let last_old: u32 = String::from_utf8_lossy(&old.last().unwrap().content)[4..]
            .parse()
            .unwrap();
        let first_new: u32 = String::from_utf8_lossy(&new[0].content)[4..]
            .parse()
            .unwrap();
        assert_eq!(
            first_new,
            last_old + 1,
            "no line lost or repeated across the rotation"
        );
    })
    .await;
}
