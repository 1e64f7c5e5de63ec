use k8s_openapi::api::core::v1::{Container, ContainerStateTerminated, PodSpec};

use super::*;
use crate::pod::slot::{Slot, waiting};
use crate::util::now;

fn pod(policy: &str, init: usize) -> Pod {
    let c = |n: String| Container {
        name: n,
        image: Some("busybox".into()),
        ..Default::default()
    };
    Pod {
        spec: Some(PodSpec {
            containers: vec![c("app".into())],
            init_containers: Some((0..init).map(|i| c(format!("init{i}"))).collect()),
            restart_policy: Some(policy.into()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn slots(pod: &Pod) -> Vec<Slot> {
    let spec = pod.spec.clone().unwrap();
    let has_init = !spec.init_containers.clone().unwrap_or_default().is_empty();
    let reason = if has_init {
        "PodInitializing"
    } else {
        "ContainerCreating"
    };
    spec.init_containers
        .unwrap_or_default()
        .into_iter()
        .map(|c| Slot::new(c, true, "PodInitializing"))
        .chain(
            spec.containers
                .into_iter()
                .map(|c| Slot::new(c, false, reason)),
        )
        .collect()
}

fn run(slot: &mut Slot) {
    slot.id = Some("a".repeat(64));
    slot.state = ContainerState {
        running: Some(Default::default()),
        ..Default::default()
    };
    slot.ready = true;
    slot.started = true;
}

fn exit(slot: &mut Slot, code: i32) {
    slot.id = Some("b".repeat(64));
    slot.exit(ContainerStateTerminated {
        exit_code: code,
        reason: Some(if code == 0 { "Completed" } else { "Error" }.into()),
        ..Default::default()
    });
}

fn status(pod: &Pod, slots: &[Slot], terminal: bool) -> PodStatus {
    build(&StatusInput {
        pod,
        previous: None,
        slots,
        pod_ip: Some("10.42.0.5".into()),
        sandbox_ready: true,
        host_ip: Some("192.168.1.1".into()),
        start_time: now(),
        terminal,
        failure: None,
        now: now(),
    })
}

fn condition<'a>(s: &'a PodStatus, t: &str) -> &'a PodCondition {
    s.conditions
        .as_ref()
        .unwrap()
        .iter()
        .find(|c| c.type_ == t)
        .unwrap()
}

#[test]
fn creating_then_running() {
    let pod = pod("Always", 0);
    let mut slots = slots(&pod);
    let s = status(&pod, &slots, false);
    assert_eq!(s.phase.as_deref(), Some("Pending"));
    let ready = condition(&s, "Ready");
    assert_eq!(ready.status, "False");
    assert_eq!(ready.reason.as_deref(), Some("ContainersNotReady"));
    assert_eq!(
        ready.message.as_deref(),
        Some("containers with unready status: [app]")
    );
    let cs = &s.container_statuses.as_ref().unwrap()[0];
    assert_eq!(
        cs.state
            .as_ref()
            .unwrap()
            .waiting
            .as_ref()
            .unwrap()
            .reason
            .as_deref(),
        Some("ContainerCreating")
    );
    assert_eq!(cs.container_id, None);
    run(&mut slots[0]);
    let s = status(&pod, &slots, false);
    assert_eq!(s.phase.as_deref(), Some("Running"));
    for t in [
        "PodReadyToStartContainers",
        "Initialized",
        "Ready",
        "ContainersReady",
        "PodScheduled",
    ] {
        assert_eq!(condition(&s, t).status, "True", "{t}");
    }
    let cs = &s.container_statuses.as_ref().unwrap()[0];
    assert!(cs.ready && cs.started == Some(true));
    assert_eq!(
        cs.container_id.as_deref(),
        Some(format!("crun://{}", "a".repeat(64)).as_str())
    );
    assert_eq!(s.qos_class.as_deref(), Some("BestEffort"));
    assert_eq!(s.pod_ips.as_ref().unwrap()[0].ip, "10.42.0.5");
}

#[test]
fn init_containers_hold_the_pod_pending() {
    let pod = pod("Always", 2);
    let mut slots = slots(&pod);
    exit(&mut slots[0], 0);
    run(&mut slots[1]);
    let s = status(&pod, &slots, false);
    assert_eq!(s.phase.as_deref(), Some("Pending"));
    let init = condition(&s, "Initialized");
    assert_eq!(init.reason.as_deref(), Some("ContainersNotInitialized"));
    assert_eq!(
        init.message.as_deref(),
        Some("containers with incomplete status: [init1]")
    );
    assert_eq!(s.init_container_statuses.as_ref().unwrap().len(), 2);
}

#[test]
fn failed_init_fails_the_pod_under_never() {
    let pod = pod("Never", 1);
    let mut slots = slots(&pod);
    exit(&mut slots[0], 1);
    assert_eq!(status(&pod, &slots, false).phase.as_deref(), Some("Failed"));
    let pod = self::pod("Always", 1);
    let mut slots = self::slots(&pod);
    exit(&mut slots[0], 1);
    assert_eq!(
        status(&pod, &slots, false).phase.as_deref(),
        Some("Pending")
    );
}

#[test]
fn phases_after_exit_follow_the_restart_policy() {
    for (policy, code, terminal, want) in [
        ("Always", 0, false, "Running"),
        ("Always", 1, false, "Running"),
        ("OnFailure", 0, false, "Succeeded"),
        ("OnFailure", 1, false, "Running"),
        ("Never", 0, false, "Succeeded"),
        ("Never", 1, false, "Failed"),
        ("Always", 143, true, "Failed"),
        ("Always", 0, true, "Succeeded"),
    ] {
        let pod = pod(policy, 0);
        let mut slots = slots(&pod);
        exit(&mut slots[0], code);
        let s = status(&pod, &slots, terminal);
        assert_eq!(s.phase.as_deref(), Some(want), "{policy} {code} {terminal}");
        if want == "Succeeded" {
            assert_eq!(
                condition(&s, "Ready").reason.as_deref(),
                Some("PodCompleted")
            );
        }
    }
}

#[test]
fn crash_loop_counts_as_stopped() {
    let pod = pod("Always", 0);
    let mut slots = slots(&pod);
    exit(&mut slots[0], 1);
    slots[0].retire();
    slots[0].state = waiting("CrashLoopBackOff", Some("back-off 10s".into()));
    let s = status(&pod, &slots, false);
    assert_eq!(s.phase.as_deref(), Some("Running"));
    let cs = &s.container_statuses.as_ref().unwrap()[0];
    assert_eq!(
        cs.last_state
            .as_ref()
            .unwrap()
            .terminated
            .as_ref()
            .unwrap()
            .exit_code,
        1
    );
}

#[test]
fn transition_times_are_kept_and_foreign_conditions_too() {
    let mut pod = pod("Always", 0);
    let earlier = Time("2024-01-01T00:00:00Z".parse().unwrap());
    pod.status = Some(PodStatus {
        conditions: Some(vec![
            PodCondition {
                type_: "PodScheduled".into(),
                status: "True".into(),
                last_transition_time: Some(earlier.clone()),
                ..Default::default()
            },
            PodCondition {
                type_: "example.com/gate".into(),
                status: "True".into(),
                ..Default::default()
            },
        ]),
        ..Default::default()
    });
    let slots = slots(&pod);
    let s = status(&pod, &slots, false);
    assert_eq!(
        condition(&s, "PodScheduled").last_transition_time,
        Some(earlier)
    );
    assert_eq!(condition(&s, "example.com/gate").status, "True");
}
