//! A pod's status as the kubelet generates it (`generateAPIPodStatus`): phase by upstream's
//! `getPhase`, the PodReadyToStartContainers, Initialized, ContainersReady, Ready and
//! PodScheduled conditions with upstream's reasons and messages, and container statuses.

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStatus, HostIP, Pod, PodCondition, PodIP, PodStatus, VolumeMountStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::resources::qos_class;
use super::slot::{ID_PREFIX, Slot};

/// What a status is made from.
pub(crate) struct StatusInput<'a> {
    /// The pod (spec, and the conditions of other writers).
    pub(crate) pod: &'a Pod,
    /// The status last posted, whose transition times are kept.
    pub(crate) previous: Option<&'a PodStatus>,
    /// Its containers, init containers first.
    pub(crate) slots: &'a [Slot],
    /// The sandbox's address, while it has one.
    pub(crate) pod_ip: Option<String>,
    /// Whether the sandbox (network, cgroup) is in place.
    pub(crate) sandbox_ready: bool,
    /// The node's address.
    pub(crate) host_ip: Option<String>,
    /// When the agent took the pod on.
    pub(crate) start_time: Time,
    /// No container will run again (the pod finished or was stopped).
    pub(crate) terminal: bool,
    /// Why the agent failed the pod itself (reason, message), e.g. DeadlineExceeded.
    pub(crate) failure: Option<(String, String)>,
    /// Now.
    pub(crate) now: Time,
}

/// The status to post.
pub(crate) fn build(input: &StatusInput<'_>) -> PodStatus {
    let spec = input.pod.spec.clone().unwrap_or_default();
    let init: Vec<ContainerStatus> = input
        .slots
        .iter()
        .filter(|s| s.init)
        .map(container_status)
        .collect();
    let app: Vec<ContainerStatus> = input
        .slots
        .iter()
        .filter(|s| !s.init)
        .map(container_status)
        .collect();
    let old = input.previous.or(input.pod.status.as_ref());
    let old_phase = old.and_then(|s| s.phase.as_deref());
    let phase = match (old_phase, &input.failure) {
        // A pod never leaves a terminal phase.
        (Some(p @ ("Succeeded" | "Failed")), _) => p,
        (_, Some(_)) => "Failed",
        _ => phase(input.pod, &init, &app, input.terminal),
    };
    let (reason, message) = match &input.failure {
        Some((r, m)) => (Some(r.clone()), Some(m.clone())),
        None => (
            old.and_then(|s| s.reason.clone()),
            old.and_then(|s| s.message.clone()),
        ),
    };
    let conditions = conditions(input, &init, &app, phase, old);
    PodStatus {
        phase: Some(phase.into()),
        conditions: Some(conditions),
        host_ip: input.host_ip.clone(),
        host_ips: input.host_ip.clone().map(|ip| vec![HostIP { ip }]),
        pod_ip: input.pod_ip.clone(),
        pod_ips: input.pod_ip.clone().map(|ip| vec![PodIP { ip }]),
        start_time: Some(input.start_time.clone()),
        qos_class: Some(qos_class(&spec).into()),
        init_container_statuses: (!init.is_empty()).then_some(init),
        container_statuses: Some(app),
        // Kept as other writers (the scheduler, evictions) left them.
        nominated_node_name: old.and_then(|s| s.nominated_node_name.clone()),
        reason,
        message,
        ..Default::default()
    }
}

fn container_status(slot: &Slot) -> ContainerStatus {
    let spec = &slot.spec;
    let (image, image_id) = match &slot.image {
        Some(i) => image_names(i, spec.image.as_deref().unwrap_or_default()),
        None => (spec.image.clone().unwrap_or_default(), String::new()),
    };
    let container_id = match (&slot.state, &slot.id) {
        (
            ContainerState {
                waiting: Some(_), ..
            },
            _,
        ) => None,
        (_, Some(id)) => Some(format!("{ID_PREFIX}{id}")),
        _ => None,
    };
    let volume_mounts: Vec<VolumeMountStatus> = spec
        .volume_mounts
        .iter()
        .flatten()
        .map(|m| VolumeMountStatus {
            name: m.name.clone(),
            mount_path: m.mount_path.clone(),
            read_only: m.read_only.filter(|r| *r),
            recursive_read_only: m.read_only.filter(|r| *r).map(|_| "Disabled".into()),
        })
        .collect();
    ContainerStatus {
        name: spec.name.clone(),
        state: Some(slot.state.clone()),
        last_state: Some(ContainerState {
            terminated: slot.last_state.clone(),
            ..Default::default()
        }),
        ready: slot.ready && slot.is_running(),
        started: Some(slot.started && slot.is_running()),
        restart_count: slot.restart_count,
        image,
        image_id,
        container_id,
        volume_mounts: (!volume_mounts.is_empty()).then_some(volume_mounts),
        ..Default::default()
    }
}

/// The image as status shows it: the image's tag the spec named (normalised), and its
/// digest in the same repository, as containerd reports them.
fn image_names(image: &keg_runtime::Image, wanted: &str) -> (String, String) {
    let normalized = super::images::normalize(wanted);
    let repository = normalized
        .rsplit_once('@')
        .map(|(r, _)| r.to_string())
        .unwrap_or_else(|| match normalized.rsplit_once(':') {
            Some((r, tag)) if !tag.contains('/') => r.to_string(),
            _ => normalized.clone(),
        });
    let tag = image
        .repo_tags
        .iter()
        .find(|t| **t == normalized)
        .or(image.repo_tags.first())
        .cloned()
        .unwrap_or_else(|| wanted.to_string());
    let digest = image
        .repo_digests
        .iter()
        .find(|d| d.split('@').next() == Some(repository.as_str()))
        .or(image.repo_digests.first())
        .cloned()
        .unwrap_or_else(|| image.id.clone());
    (tag, digest)
}

/// Upstream `getPhase` (without restartable init containers).
fn phase(
    pod: &Pod,
    init: &[ContainerStatus],
    app: &[ContainerStatus],
    terminal: bool,
) -> &'static str {
    let policy = pod
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("Always");
    let (mut pending_init, mut failed_init, mut pending_sidecars) = (0, 0, 0);
    for status in init {
        if is_sidecar(pod, &status.name) {
            // A sidecar holds the pod pending only until it first started.
            let state = status.state.as_ref();
            let ran = status
                .last_state
                .as_ref()
                .is_some_and(|l| l.terminated.is_some());
            let never_started = state.is_none_or(|s| s.waiting.is_some()) && !ran;
            pending_sidecars += usize::from(never_started);
            continue;
        }
        let state = status.state.clone().unwrap_or_default();
        let last = status
            .last_state
            .as_ref()
            .and_then(|s| s.terminated.as_ref());
        match (&state.running, &state.terminated, &state.waiting) {
            (Some(_), _, _) => pending_init += 1,
            (_, Some(t), _) => failed_init += usize::from(t.exit_code != 0),
            (_, _, Some(_)) if last.is_some_and(|t| t.exit_code != 0) => failed_init += 1,
            _ => pending_init += 1,
        }
    }
    let (mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for status in app {
        let state = status.state.clone().unwrap_or_default();
        let last = status
            .last_state
            .as_ref()
            .and_then(|s| s.terminated.as_ref());
        match (&state.running, &state.terminated) {
            (Some(_), _) => running += 1,
            (_, Some(t)) => {
                stopped += 1;
                succeeded += usize::from(t.exit_code == 0);
            }
            _ if last.is_some() => stopped += 1,
            _ => waiting += 1,
        }
    }
    if failed_init > 0 && policy == "Never" {
        return "Failed";
    }
    if pending_init > 0 || (pending_sidecars > 0 && running == 0) || waiting > 0 {
        return "Pending";
    }
    if running > 0 {
        return "Running";
    }
    if stopped == 0 {
        return "Pending";
    }
    match (terminal, policy) {
        (true, _) | (false, "Never") if stopped == succeeded => "Succeeded",
        (true, _) | (false, "Never") => "Failed",
        (false, "Always") => "Running",
        _ if stopped == succeeded => "Succeeded",
        _ => "Running",
    }
}

/// Whether the pod's init container `name` is a sidecar (restartPolicy Always).
fn is_sidecar(pod: &Pod, name: &str) -> bool {
    pod.spec
        .iter()
        .flat_map(|s| s.init_containers.iter().flatten())
        .any(|c| c.name == name && c.restart_policy.as_deref() == Some("Always"))
}

/// Go's `fmt.Sprintf("%s", []string{...})`: `[a b]`.
fn go_list(names: &[String]) -> String {
    format!("[{}]", names.join(" "))
}

/// A condition's verdict: status, reason, message.
type Verdict = (bool, Option<&'static str>, Option<String>);

fn conditions(
    input: &StatusInput<'_>,
    init: &[ContainerStatus],
    app: &[ContainerStatus],
    phase: &str,
    old: Option<&PodStatus>,
) -> Vec<PodCondition> {
    let ready_to_start = (input.sandbox_ready && input.pod_ip.is_some(), None, None);
    let containers_ready = containers_ready(input.pod, init, app, phase);
    let ready = match containers_ready {
        (true, ..) => readiness_gates(input.pod),
        ref other => other.clone(),
    };
    let mine = [
        ("PodReadyToStartContainers", ready_to_start),
        ("Initialized", initialized(input.pod, init, app, phase)),
        ("Ready", ready),
        ("ContainersReady", containers_ready),
        ("PodScheduled", (true, None, None)),
    ];
    let previous: Vec<PodCondition> = old.and_then(|s| s.conditions.clone()).unwrap_or_default();
    let mut out: Vec<PodCondition> = Vec::new();
    for (type_, (ok, reason, message)) in mine {
        let status = if ok { "True" } else { "False" };
        let earlier = previous.iter().find(|c| c.type_ == type_);
        // The scheduler's PodScheduled stays as it wrote it.
        if type_ == "PodScheduled"
            && let Some(c) = earlier
        {
            out.push(c.clone());
            continue;
        }
        let since = earlier
            .filter(|c| c.status == status)
            .and_then(|c| c.last_transition_time.clone())
            .unwrap_or_else(|| input.now.clone());
        out.push(PodCondition {
            type_: type_.into(),
            status: status.into(),
            reason: reason.map(Into::into),
            message,
            last_transition_time: Some(since),
            ..Default::default()
        });
    }
    // Conditions of other writers (readiness gates, DisruptionTarget) are kept.
    let known = |t: &str| out.iter().any(|c| c.type_ == t);
    let others: Vec<PodCondition> = input
        .pod
        .status
        .iter()
        .flat_map(|s| s.conditions.iter().flatten())
        .filter(|c| !known(&c.type_))
        .cloned()
        .collect();
    out.extend(others);
    out
}

/// Upstream `GeneratePodInitializedCondition`.
fn initialized(
    pod: &Pod,
    init: &[ContainerStatus],
    app: &[ContainerStatus],
    phase: &str,
) -> Verdict {
    let incomplete: Vec<String> = init
        .iter()
        .filter(|s| {
            if is_sidecar(pod, &s.name) {
                return s.started != Some(true);
            }
            let terminated = s.state.as_ref().and_then(|s| s.terminated.as_ref());
            terminated.is_none_or(|t| t.exit_code != 0)
        })
        .map(|s| s.name.clone())
        .collect();
    let any_started = app.iter().any(|s| {
        let state = s.state.as_ref();
        state.is_some_and(|st| st.running.is_some() || st.terminated.is_some())
            || s.last_state
                .as_ref()
                .is_some_and(|l| l.terminated.is_some())
    });
    if init.is_empty() {
        (true, None, None)
    } else if phase == "Succeeded" {
        (true, Some("PodCompleted"), None)
    } else if any_started || incomplete.is_empty() {
        (true, None, None)
    } else {
        let message = format!(
            "containers with incomplete status: {}",
            go_list(&incomplete)
        );
        (false, Some("ContainersNotInitialized"), Some(message))
    }
}

/// Upstream `GenerateContainersReadyCondition`.
fn containers_ready(
    pod: &Pod,
    init: &[ContainerStatus],
    app: &[ContainerStatus],
    phase: &str,
) -> Verdict {
    let sidecars = init.iter().filter(|s| is_sidecar(pod, &s.name));
    let unready: Vec<String> = sidecars
        .chain(app.iter())
        .filter(|s| !s.ready)
        .map(|s| s.name.clone())
        .collect();
    match phase {
        "Succeeded" => (false, Some("PodCompleted"), None),
        "Failed" => (false, Some("PodFailed"), None),
        _ if unready.is_empty() => (true, None, None),
        _ => {
            let message = format!("containers with unready status: {}", go_list(&unready));
            (false, Some("ContainersNotReady"), Some(message))
        }
    }
}

/// The Ready condition when all containers are ready: the readiness gates decide.
fn readiness_gates(pod: &Pod) -> Verdict {
    let conditions: Vec<&PodCondition> = pod
        .status
        .iter()
        .flat_map(|s| s.conditions.iter().flatten())
        .collect();
    let mut unready = Vec::new();
    for gate in pod
        .spec
        .iter()
        .flat_map(|s| s.readiness_gates.iter().flatten())
    {
        let t = &gate.condition_type;
        match conditions.iter().find(|c| &c.type_ == t) {
            None => unready.push(format!(
                "corresponding condition of pod readiness gate \"{t}\" does not exist."
            )),
            Some(c) if c.status != "True" => unready.push(format!(
                "the status of pod readiness gate \"{t}\" is not \"True\", but {}",
                c.status
            )),
            Some(_) => {}
        }
    }
    if unready.is_empty() {
        (true, None, None)
    } else {
        (
            false,
            Some("ReadinessGatesNotReady"),
            Some(unready.join(", ")),
        )
    }
}

#[cfg(test)]
#[path = "status_tests.rs"]
mod tests;
