//! Container settings the node agent passes through: user, environment, working directory,
//! bind mounts, capabilities, privileged mode, CPU limits, and a pod's second sandbox.

use keg_runtime::{Capabilities, ContainerConfig, Mount, User};

use crate::common::with_env;

#[tokio::test]
async fn honours_user_env_mounts_and_capabilities() {
    with_env(
        "honours_user_env_mounts_and_capabilities",
        |env| async move {
            let sandbox = env.sandbox("settings").await;
            let shared = env.dir.path().join("shared");
            std::fs::create_dir_all(&shared).unwrap();
            std::fs::write(shared.join("greeting"), "hi from the host\n").unwrap();
            let mut config: ContainerConfig =
                env.container_config("app", "while true; do sleep 1; done");
            config.user = Some(User {
                uid: 65534,
                gid: None,
            });
            config.env = vec![("GREETING".into(), "hello".into())];
            config.working_dir = Some("/tmp".into());
            config.mounts = vec![
                Mount {
                    host_path: shared.clone(),
                    container_path: "/data".into(),
                    readonly: false,
                },
                Mount {
                    host_path: shared.clone(),
                    container_path: "/ro".into(),
                    readonly: true,
                },
            ];
            config.capabilities = Capabilities {
                add: vec!["NET_ADMIN".into()],
                drop: vec!["ALL".into()],
            };
            config.resources.cpu_limit_millis = Some(250);
            let id = env.run_with(&sandbox, config).await;

            assert_eq!(env.exec(&id, &["id", "-u"]).await.1, "65534\n");
            assert_eq!(
                env.exec(&id, &["id", "-g"]).await.1,
                "65534\n",
                "gid from the image's /etc/passwd"
            );
            assert_eq!(env.exec(&id, &["pwd"]).await.1, "/tmp\n");
            assert_eq!(
                env.exec(&id, &["sh", "-c", "echo $GREETING $HOSTNAME"])
                    .await
                    .1,
                "hello settings\n"
            );
            assert_eq!(
                env.exec(&id, &["cat", "/data/greeting"]).await.1,
                "hi from the host\n"
            );
            std::fs::set_permissions(&shared, std::os::unix::fs::PermissionsExt::from_mode(0o777))
                .unwrap();
            assert_eq!(env.exec(&id, &["touch", "/data/written"]).await.0, 0);
            assert!(shared.join("written").exists());
            assert_ne!(
                env.exec(&id, &["touch", "/ro/nope"]).await.0,
                0,
                "read-only mount"
            );
            let (_, caps) = env
                .exec(&id, &["grep", "CapBnd", "/proc/self/status"])
                .await;
            assert_eq!(
                caps.split_whitespace().nth(1),
                Some("0000000000001000"),
                "only CAP_NET_ADMIN"
            );
            let quota =
                "cat /sys/fs/cgroup/cpu.max 2>/dev/null || cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us";
            let (_, quota) = env.exec(&id, &["sh", "-c", quota]).await;
            assert!(quota.starts_with("25000"), "{quota}");
            assert_ne!(
                env.exec(
                    &id,
                    &["sh", "-c", "mkdir -p /tmp/m && mount -t tmpfs none /tmp/m"]
                )
                .await
                .0,
                0
            );

            let mut privileged = env.container_config("admin", "while true; do sleep 1; done");
            privileged.privileged = true;
            let admin = env.run_with(&sandbox, privileged).await;
            let (code, _) = env
                .exec(
                    &admin,
                    &["sh", "-c", "mkdir -p /tmp/m && mount -t tmpfs none /tmp/m"],
                )
                .await;
            assert_eq!(code, 0, "a privileged container may mount");

            // A second sandbox of the same pod shares the pod cgroup, which outlives the first.
            let second = env.sandbox("settings").await;
            assert_eq!(second.cgroup_path, sandbox.cgroup_path);
            env.runtime.remove_pod_sandbox(&sandbox.id).await.unwrap();
            assert!(
                env.runtime
                    .cgroup_memory_limit(&second.cgroup_path)
                    .is_some(),
                "pod cgroup kept"
            );
        },
    )
    .await;
}
