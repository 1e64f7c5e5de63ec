//! What running containers use, sampled from their cgroups every second (the kubelet's
//! resource metrics): CPU as the rate over the last ten seconds of samples, memory as the
//! working set now. Served to the API server as its `UsageSource` (metrics.k8s.io).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use keg_apiserver::{ContainerUsage, PodUsage, UsageSource};
use keg_runtime::cgroup::CgroupUsage;
use keg_runtime::{ContainerState, Runtime, SandboxState};

/// How often containers are sampled.
const PERIOD: Duration = Duration::from_secs(1);
/// The span CPU rates average over (metrics-server's default resolution is 15 s; the
/// kubelet's summary uses ~10 s).
const WINDOW: jiff::SignedDuration = jiff::SignedDuration::from_secs(10);

/// One container's samples.
struct History {
    pod_uid: String,
    name: String,
    samples: VecDeque<(Timestamp, CgroupUsage)>,
}

/// Samples the runtime's containers; the API server reads the figures.
pub(crate) struct Sampler {
    runtime: Arc<Runtime>,
    containers: Mutex<HashMap<String, History>>,
}

impl Sampler {
    /// Starts sampling `runtime` until the process ends.
    pub(crate) fn start(runtime: Arc<Runtime>) -> Arc<Sampler> {
        let sampler = Arc::new(Sampler {
            runtime,
            containers: Mutex::default(),
        });
        let weak = Arc::downgrade(&sampler);
        tokio::spawn(async move {
            while let Some(sampler) = weak.upgrade() {
                sampler.sample();
                drop(sampler);
                tokio::time::sleep(PERIOD).await;
            }
        });
        sampler
    }

    fn sample(&self) {
        let (Ok(sandboxes), Ok(containers)) = (
            self.runtime.list_pod_sandboxes(),
            self.runtime.list_containers(),
        ) else {
            return;
        };
        let sandboxes: HashMap<String, _> = sandboxes
            .into_iter()
            .filter(|s| s.state == SandboxState::Ready)
            .map(|s| (s.id.clone(), s))
            .collect();
        let now = Timestamp::now();
        let mut histories = self.containers.lock().expect("usage lock");
        let mut seen = Vec::new();
        for c in containers {
            let (ContainerState::Running, Some(sandbox)) = (&c.state, sandboxes.get(&c.sandbox_id))
            else {
                continue;
            };
            let Some(usage) = self
                .runtime
                .cgroup_usage(&format!("{}/{}", sandbox.cgroup_path, c.id))
            else {
                continue;
            };
            let history = histories.entry(c.id.clone()).or_insert_with(|| History {
                pod_uid: sandbox.config.uid.clone(),
                name: c.config.name.clone(),
                samples: VecDeque::new(),
            });
            history.samples.push_back((now, usage));
            while history.samples.len() > 2
                && history
                    .samples
                    .front()
                    .is_some_and(|(t, _)| now.duration_since(*t) > WINDOW)
            {
                history.samples.pop_front();
            }
            seen.push(c.id);
        }
        histories.retain(|id, _| seen.contains(id));
    }
}

impl UsageSource for Sampler {
    fn pods(&self) -> Vec<PodUsage> {
        let histories = self.containers.lock().expect("usage lock");
        let mut pods: HashMap<String, PodUsage> = HashMap::new();
        for history in histories.values() {
            let (Some((t0, first)), Some((t1, last))) =
                (history.samples.front(), history.samples.back())
            else {
                continue;
            };
            let span = Duration::try_from(t1.duration_since(*t0)).unwrap_or_default();
            if span.is_zero() {
                continue;
            }
            let used = last.cpu_nanos.saturating_sub(first.cpu_nanos);
            let nano_cores =
                u64::try_from(u128::from(used) * 1_000_000_000 / span.as_nanos().max(1))
                    .unwrap_or(u64::MAX);
            let pod = pods
                .entry(history.pod_uid.clone())
                .or_insert_with(|| PodUsage {
                    uid: history.pod_uid.clone(),
                    timestamp: *t1,
                    window: span,
                    containers: Vec::new(),
                });
            pod.timestamp = pod.timestamp.max(*t1);
            pod.containers.push(ContainerUsage {
                name: history.name.clone(),
                nano_cores,
                memory_bytes: last.memory_working_set,
                cpu_seconds: last.cpu_nanos as f64 / 1e9,
            });
        }
        let mut pods: Vec<PodUsage> = pods.into_values().collect();
        for pod in &mut pods {
            pod.containers.sort_by(|a, b| a.name.cmp(&b.name));
        }
        pods
    }
}
