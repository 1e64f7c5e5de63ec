//! The replica count one resource metric asks for, as upstream's replica calculator works it
//! out: pods are grouped into ready, unready (still starting), missing (no sample yet) and
//! ignored (failed or being deleted); the ratio of use to target over the ready pods decides,
//! within a tolerance; and where pods are missing or unready, the proposal is checked again
//! assuming the least favourable value for them, so that a missing sample never causes a
//! scale in the wrong direction.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};

/// What the calculator needs of one pod.
#[derive(Debug, Clone)]
pub(crate) struct PodFacts {
    /// The pod's name.
    pub name: String,
    /// `status.phase`.
    pub phase: String,
    /// Whether the pod is being deleted.
    pub deleting: bool,
    /// The Ready condition: whether true, and when it last changed.
    pub ready: Option<(bool, Timestamp)>,
    /// `status.startTime`.
    pub started: Option<Timestamp>,
    /// The pod's request of the resource in milli-units (summed over its containers, or the
    /// one container a ContainerResource metric names); `Err` names a container without one.
    pub request: Result<i64, String>,
}

/// One pod's measured use.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample {
    /// Use in milli-units (millicores, or milli-bytes for memory, as upstream counts).
    pub milli: i64,
    /// When it was measured.
    pub timestamp: Timestamp,
    /// The span CPU use was averaged over.
    pub window: SignedDuration,
}

/// Knobs of the calculation (upstream's controller-manager flags).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tuning {
    /// The ratio's distance from 1.0 under which nothing changes (0.1).
    pub tolerance: f64,
    /// How long after its start a pod's CPU samples may still reflect its start-up (5 min).
    pub cpu_initialization_period: SignedDuration,
    /// How long after start a readiness change still counts as the initial one (30 s).
    pub initial_readiness_delay: SignedDuration,
}

/// What a metric proposes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Proposal {
    /// The replica count it asks for.
    pub replicas: i32,
    /// For utilization targets: the pods' use as a percentage of their requests.
    pub utilization: Option<i32>,
    /// The average use per pod, in milli-units.
    pub average_milli: i64,
}

struct Groups {
    ready: usize,
    unready: Vec<String>,
    missing: Vec<String>,
    ignored: Vec<String>,
}

fn group(
    pods: &[PodFacts],
    samples: &BTreeMap<String, Sample>,
    cpu: bool,
    tuning: &Tuning,
    now: Timestamp,
) -> Groups {
    let mut groups = Groups {
        ready: 0,
        unready: Vec::new(),
        missing: Vec::new(),
        ignored: Vec::new(),
    };
    for pod in pods {
        if pod.deleting || pod.phase == "Failed" || pod.phase == "Succeeded" {
            groups.ignored.push(pod.name.clone());
            continue;
        }
        if pod.phase == "Pending" {
            groups.unready.push(pod.name.clone());
            continue;
        }
        let Some(sample) = samples.get(&pod.name) else {
            groups.missing.push(pod.name.clone());
            continue;
        };
        if cpu {
            let unready = match (pod.ready, pod.started) {
                (Some((ready, changed)), Some(started)) => {
                    if started + tuning.cpu_initialization_period > now {
                        // Still starting: a sample taken (partly) before it was ready shows
                        // start-up work, not load.
                        !ready || sample.timestamp < changed + sample.window
                    } else {
                        !ready && started + tuning.initial_readiness_delay > changed
                    }
                }
                _ => true,
            };
            if unready {
                groups.unready.push(pod.name.clone());
                continue;
            }
        }
        groups.ready += 1;
    }
    groups
}

/// Use over requests of the pods that have samples: (ratio to the target, utilization in
/// percent, average use).
fn utilization_ratio(
    samples: &BTreeMap<String, Sample>,
    requests: &BTreeMap<String, i64>,
    target: i32,
) -> Result<(f64, i32, i64), String> {
    let (mut used, mut requested, mut counted) = (0i64, 0i64, 0i64);
    for (name, sample) in samples {
        if let Some(request) = requests.get(name) {
            used += sample.milli;
            requested += request;
            counted += 1;
        }
    }
    if requested == 0 {
        return Err("no metrics returned matched known pods".to_string());
    }
    let utilization = i32::try_from(used * 100 / requested).unwrap_or(i32::MAX);
    Ok((
        f64::from(utilization) / f64::from(target),
        utilization,
        used / counted,
    ))
}

fn ceil(ratio: f64, pods: usize) -> i32 {
    (ratio * pods as f64).ceil() as i32
}

/// The shared second pass: with missing and unready pods filled in pessimistically, the
/// proposal stands only if it still points the same way.
fn settle(current: i32, ratio: f64, new_ratio: f64, counted: usize, tolerance: f64) -> i32 {
    if (1.0 - new_ratio).abs() <= tolerance
        || (ratio < 1.0 && new_ratio > 1.0)
        || (ratio > 1.0 && new_ratio < 1.0)
    {
        return current;
    }
    let replicas = ceil(new_ratio, counted);
    if (new_ratio < 1.0 && replicas > current) || (new_ratio > 1.0 && replicas < current) {
        return current;
    }
    replicas
}

/// What a metric aims at.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Target {
    /// Use as a percentage of the pods' requests.
    Utilization(i32),
    /// Average use per pod, in milli-units.
    AverageValue(i64),
}

/// The replicas a metric asks for (upstream's GetResourceReplicas and
/// GetRawResourceReplicas, which differ only in how use compares with the target).
pub(crate) fn calculate(
    current: i32,
    target: Target,
    pods: &[PodFacts],
    mut samples: BTreeMap<String, Sample>,
    cpu: bool,
    tuning: &Tuning,
    now: Timestamp,
) -> Result<Proposal, String> {
    let groups = group(pods, &samples, cpu, tuning, now);
    for name in groups.ignored.iter().chain(&groups.unready) {
        samples.remove(name);
    }
    let mut requests = BTreeMap::new();
    if let Target::Utilization(_) = target {
        for pod in pods {
            requests.insert(pod.name.clone(), pod.request.clone()?);
        }
    }
    if samples.is_empty() {
        return Err("did not receive metrics for targeted pods (pods might be unready)".into());
    }
    // (ratio to the target, utilization, average use)
    let measure = |samples: &BTreeMap<String, Sample>| match target {
        Target::Utilization(percent) => utilization_ratio(samples, &requests, percent)
            .map(|(ratio, utilization, average)| (ratio, Some(utilization), average)),
        Target::AverageValue(milli) => {
            let total: i64 = samples.values().map(|s| s.milli).sum();
            let average = total / samples.len() as i64;
            Ok((average as f64 / milli as f64, None, average))
        }
    };
    let (ratio, utilization, average_milli) = measure(&samples)?;
    let proposal = |replicas| Proposal {
        replicas,
        utilization,
        average_milli,
    };
    let scale_up_with_unready = !groups.unready.is_empty() && ratio > 1.0;
    if !scale_up_with_unready && groups.missing.is_empty() {
        if (1.0 - ratio).abs() <= tuning.tolerance {
            return Ok(proposal(current));
        }
        return Ok(proposal(ceil(ratio, groups.ready)));
    }
    let assumed = |milli: i64| Sample {
        milli,
        timestamp: now,
        window: SignedDuration::ZERO,
    };
    for name in &groups.missing {
        // Scaling in: a missing pod counts as using the target (for utilization: its whole
        // request, or the target if higher); scaling out: as using nothing.
        let milli = match target {
            _ if ratio >= 1.0 => 0,
            Target::Utilization(percent) => requests[name] * i64::from(percent.max(100)) / 100,
            Target::AverageValue(milli) => milli,
        };
        samples.insert(name.clone(), assumed(milli));
    }
    if scale_up_with_unready {
        for name in &groups.unready {
            samples.insert(name.clone(), assumed(0));
        }
    }
    let (new_ratio, _, _) = measure(&samples)?;
    Ok(proposal(settle(
        current,
        ratio,
        new_ratio,
        samples.len(),
        tuning.tolerance,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TUNING: Tuning = Tuning {
        tolerance: 0.1,
        cpu_initialization_period: SignedDuration::from_mins(5),
        initial_readiness_delay: SignedDuration::from_secs(30),
    };

    fn now() -> Timestamp {
        "2026-12-07T12:00:00Z".parse().unwrap()
    }

    /// A pod running and ready for ten minutes, requesting `request` millicores.
    fn pod(name: &str, request: i64) -> PodFacts {
        let long_ago = now() - SignedDuration::from_mins(10);
        PodFacts {
            name: name.into(),
            phase: "Running".into(),
            deleting: false,
            ready: Some((true, long_ago)),
            started: Some(long_ago),
            request: Ok(request),
        }
    }

    fn samples(values: &[(&str, i64)]) -> BTreeMap<String, Sample> {
        values
            .iter()
            .map(|(name, milli)| {
                let sample = Sample {
                    milli: *milli,
                    timestamp: now(),
                    window: SignedDuration::from_secs(10),
                };
                (name.to_string(), sample)
            })
            .collect()
    }

    fn cpu(current: i32, target: i32, pods: &[PodFacts], s: &[(&str, i64)]) -> Proposal {
        calculate(
            current,
            Target::Utilization(target),
            pods,
            samples(s),
            true,
            &TUNING,
            now(),
        )
        .unwrap()
    }

    #[test]
    fn busy_pods_ask_for_more_in_proportion() {
        // 250m requested, 375m used: 150% against a 50% target is three times as many.
        let p = cpu(1, 50, &[pod("a", 250)], &[("a", 375)]);
        assert_eq!(
            p,
            Proposal {
                replicas: 3,
                utilization: Some(150),
                average_milli: 375
            }
        );
        let p = cpu(
            4,
            50,
            &[pod("a", 250), pod("b", 250), pod("c", 250), pod("d", 250)],
            &[("a", 10), ("b", 10), ("c", 10), ("d", 10)],
        );
        assert_eq!(p.replicas, 1);
        assert_eq!(p.utilization, Some(4));
    }

    #[test]
    fn within_tolerance_nothing_changes() {
        let p = cpu(
            2,
            50,
            &[pod("a", 100), pod("b", 100)],
            &[("a", 54), ("b", 54)],
        );
        assert_eq!(p.replicas, 2);
    }

    #[test]
    fn a_missing_sample_never_turns_a_scale_in_into_a_scale_out() {
        // Two pods idle, one without a sample: scaling in assumes it uses its request, so
        // (5+5+100)/300 = 36% of a 50% target: still in, to ceil(0.72 * 3) = 3 -> stays.
        let pods = [pod("a", 100), pod("b", 100), pod("c", 100)];
        let p = cpu(3, 50, &pods, &[("a", 5), ("b", 5)]);
        assert_eq!(p.replicas, 3);
        // Scaling out assumes it uses nothing: (200+200+0)/300 = 133% of 50%: 3 * 2.66 -> 8.
        let p = cpu(3, 50, &pods, &[("a", 200), ("b", 200)]);
        assert_eq!(p.replicas, 8);
    }

    #[test]
    fn starting_pods_do_not_count_until_ready_for_a_window() {
        let mut fresh = pod("b", 100);
        fresh.started = Some(now() - SignedDuration::from_secs(20));
        fresh.ready = Some((true, now() - SignedDuration::from_secs(5)));
        // b's sample covers its start-up: it is unready and counts as 0 when scaling out.
        let p = cpu(2, 50, &[pod("a", 100), fresh], &[("a", 100), ("b", 100)]);
        assert_eq!(p.utilization, Some(100));
        // (100 + 0) / 200 = 50% -> within tolerance of the target when b counts as idle.
        assert_eq!(p.replicas, 2);
    }

    #[test]
    fn failed_and_deleting_pods_are_ignored_and_requests_are_required() {
        let mut gone = pod("b", 100);
        gone.deleting = true;
        let p = cpu(2, 50, &[pod("a", 100), gone], &[("a", 100), ("b", 900)]);
        assert_eq!(p.utilization, Some(100));
        let mut no_request = pod("a", 0);
        no_request.request = Err("missing request for cpu in container web of Pod a".into());
        let err = calculate(
            1,
            Target::Utilization(50),
            &[no_request],
            samples(&[("a", 1)]),
            true,
            &TUNING,
            now(),
        )
        .unwrap_err();
        assert_eq!(err, "missing request for cpu in container web of Pod a");
        let err = calculate(
            1,
            Target::Utilization(50),
            &[pod("a", 1)],
            samples(&[]),
            true,
            &TUNING,
            now(),
        )
        .unwrap_err();
        assert_eq!(
            err,
            "did not receive metrics for targeted pods (pods might be unready)"
        );
    }

    #[test]
    fn average_values_compare_use_per_pod() {
        let pods = [pod("a", 0), pod("b", 0)];
        let p = calculate(
            2,
            Target::AverageValue(100_000),
            &pods,
            samples(&[("a", 300_000), ("b", 100_000)]),
            false,
            &TUNING,
            now(),
        )
        .unwrap();
        assert_eq!(p.replicas, 4);
        assert_eq!(p.average_milli, 200_000);
    }
}
