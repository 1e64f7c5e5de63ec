//! From the replicas the metrics ask for to the replicas set, as upstream's controller
//! normalizes them: recommendations are stabilized over a window (scale-down waits until every
//! recent recommendation agrees), the rate of change is limited (by `behavior` policies over
//! the recent scale events, or without `behavior` by upstream's fixed rule of doubling, at
//! least to 4), and the result is kept within minReplicas..maxReplicas. Each step says why,
//! as the conditions AbleToScale and ScalingLimited report it.

use jiff::{SignedDuration, Timestamp};

/// One policy: change by `value` pods or percent per `period`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Policy {
    /// Pods or Percent.
    pub percent: bool,
    /// How many pods, or what percentage.
    pub value: i32,
    /// The span the change is allowed within.
    pub period: SignedDuration,
}

/// How to pick among policies.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Select {
    /// The policy allowing the most change.
    Max,
    /// The policy allowing the least change.
    Min,
    /// No change in this direction.
    Disabled,
}

/// The rules of one direction (`behavior.scaleUp` or `behavior.scaleDown`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Rules {
    /// How far back recommendations are considered.
    pub window: SignedDuration,
    /// How policies combine.
    pub select: Select,
    /// The policies.
    pub policies: Vec<Policy>,
}

/// What the controller remembers of one autoscaler between syncs.
#[derive(Debug, Default)]
pub(crate) struct History {
    recommendations: Vec<(Timestamp, i32)>,
    scale_ups: Vec<(Timestamp, i32)>,
    scale_downs: Vec<(Timestamp, i32)>,
}

/// A condition's verdict: (reason, message).
pub(crate) type Why = (&'static str, &'static str);

const READY: Why = ("ReadyForNewScale", "recommended size matches current size");
const UP_STABILIZED: Why = (
    "ScaleUpStabilized",
    "recent recommendations were lower than current one, applying the lowest recent recommendation",
);
const DOWN_STABILIZED: Why = (
    "ScaleDownStabilized",
    "recent recommendations were higher than current one, applying the highest recent recommendation",
);
const UP_LIMIT: Why = (
    "ScaleUpLimit",
    "the desired replica count is increasing faster than the maximum scale rate",
);
const DOWN_LIMIT: Why = (
    "ScaleDownLimit",
    "the desired replica count is decreasing faster than the maximum scale rate",
);
const TOO_MANY: Why = (
    "TooManyReplicas",
    "the desired replica count is more than the maximum replica count",
);
const TOO_FEW: Why = (
    "TooFewReplicas",
    "the desired replica count is less than the minimum replica count",
);
const WITHIN: Why = (
    "DesiredWithinRange",
    "the desired count is within the acceptable range",
);

/// The outcome of normalization.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Normalized {
    /// The replicas to set.
    pub replicas: i32,
    /// Why AbleToScale says what it says.
    pub able: Why,
    /// Whether the result was limited, and why (ScalingLimited).
    pub limited: (bool, Why),
}

/// The bounds and the current state the normalization works within.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bounds {
    /// The target's replicas now.
    pub current: i32,
    /// minReplicas.
    pub min: i32,
    /// maxReplicas.
    pub max: i32,
}

impl History {
    /// Without `behavior`: only scale-down is stabilized (over `down_window`), and growth is
    /// capped at doubling (at least to 4).
    pub(crate) fn normalize_default(
        &mut self,
        desired: i32,
        bounds: Bounds,
        down_window: SignedDuration,
        now: Timestamp,
    ) -> Normalized {
        let cutoff = now - down_window;
        let stabilized = self
            .recommendations
            .iter()
            .filter(|(at, _)| *at >= cutoff)
            .map(|(_, r)| *r)
            .fold(desired, i32::max);
        self.record(desired, cutoff, cutoff, now);
        let able = if stabilized == desired {
            READY
        } else {
            DOWN_STABILIZED
        };
        let up_limit = (2 * bounds.current).max(4);
        let (maximum, over) = if bounds.max > up_limit {
            (up_limit, UP_LIMIT)
        } else {
            (bounds.max, TOO_MANY)
        };
        let (replicas, why) = if stabilized < bounds.min {
            (bounds.min, TOO_FEW)
        } else if stabilized > maximum {
            (maximum, over)
        } else {
            (stabilized, WITHIN)
        };
        Normalized {
            replicas,
            able,
            limited: (replicas != stabilized, why),
        }
    }

    /// With `behavior`: both directions stabilized over their windows, then limited by their
    /// policies over the scale events within each policy's period.
    pub(crate) fn normalize(
        &mut self,
        desired: i32,
        bounds: Bounds,
        up: &Rules,
        down: &Rules,
        now: Timestamp,
    ) -> Normalized {
        let (up_cutoff, down_cutoff) = (now - up.window, now - down.window);
        let (mut up_rec, mut down_rec) = (desired, desired);
        for (at, r) in &self.recommendations {
            if *at > up_cutoff {
                up_rec = up_rec.min(*r);
            }
            if *at > down_cutoff {
                down_rec = down_rec.max(*r);
            }
        }
        let stabilized = bounds.current.max(up_rec).min(down_rec);
        self.record(desired, up_cutoff, down_cutoff, now);
        let able = if stabilized == desired {
            READY
        } else if desired >= bounds.current {
            UP_STABILIZED
        } else {
            DOWN_STABILIZED
        };
        let (replicas, why) = if stabilized > bounds.current {
            let limit = up_limit(bounds.current, &self.scale_ups, up, now).max(bounds.current);
            let (maximum, over) = if bounds.max > limit {
                (limit, UP_LIMIT)
            } else {
                (bounds.max, TOO_MANY)
            };
            if stabilized > maximum {
                (maximum, over)
            } else {
                (stabilized, WITHIN)
            }
        } else if stabilized < bounds.current {
            let limit =
                down_limit(bounds.current, &self.scale_downs, down, now).min(bounds.current);
            let (minimum, under) = if bounds.min < limit {
                (limit, DOWN_LIMIT)
            } else {
                (bounds.min, TOO_FEW)
            };
            if stabilized < minimum {
                (minimum, under)
            } else {
                (stabilized, WITHIN)
            }
        } else {
            (stabilized, WITHIN)
        };
        Normalized {
            replicas,
            able,
            limited: (replicas != stabilized, why),
        }
    }

    /// Keeps `desired` as a recommendation, dropping those older than both cutoffs.
    fn record(&mut self, desired: i32, a: Timestamp, b: Timestamp, now: Timestamp) {
        let oldest = a.min(b);
        self.recommendations.retain(|(at, _)| *at >= oldest);
        self.recommendations.push((now, desired));
    }

    /// Remembers a rescale, for the policies' periods. Events older than `keep` are dropped.
    pub(crate) fn scaled(&mut self, from: i32, to: i32, keep: SignedDuration, now: Timestamp) {
        let events = if to > from {
            &mut self.scale_ups
        } else {
            &mut self.scale_downs
        };
        events.retain(|(at, _)| *at > now - keep);
        events.push((now, (to - from).abs()));
    }
}

fn changed_within(events: &[(Timestamp, i32)], period: SignedDuration, now: Timestamp) -> i32 {
    events
        .iter()
        .filter(|(at, _)| *at > now - period)
        .map(|(_, n)| n)
        .sum()
}

fn up_limit(current: i32, events: &[(Timestamp, i32)], rules: &Rules, now: Timestamp) -> i32 {
    let proposals = rules.policies.iter().map(|p| {
        let start = current - changed_within(events, p.period, now);
        if p.percent {
            (f64::from(start) * (1.0 + f64::from(p.value) / 100.0)).ceil() as i32
        } else {
            start + p.value
        }
    });
    match rules.select {
        Select::Disabled => current,
        Select::Min => proposals.min().unwrap_or(i32::MAX),
        Select::Max => proposals.max().unwrap_or(i32::MIN),
    }
}

fn down_limit(current: i32, events: &[(Timestamp, i32)], rules: &Rules, now: Timestamp) -> i32 {
    let proposals = rules.policies.iter().map(|p| {
        let start = current + changed_within(events, p.period, now);
        if p.percent {
            (f64::from(start) * (1.0 - f64::from(p.value) / 100.0)) as i32
        } else {
            start - p.value
        }
    });
    match rules.select {
        Select::Disabled => current,
        // Min allows the least change: the highest floor.
        Select::Min => proposals.max().unwrap_or(i32::MIN),
        Select::Max => proposals.min().unwrap_or(i32::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    fn bounds(current: i32) -> Bounds {
        Bounds {
            current,
            min: 1,
            max: 10,
        }
    }

    fn rules(window: i64, policies: &[(bool, i32, i64)]) -> Rules {
        Rules {
            window: SignedDuration::from_secs(window),
            select: Select::Max,
            policies: policies
                .iter()
                .map(|(percent, value, period)| Policy {
                    percent: *percent,
                    value: *value,
                    period: SignedDuration::from_secs(*period),
                })
                .collect(),
        }
    }

    #[test]
    fn without_behavior_scale_down_waits_for_the_window() {
        let window = SignedDuration::from_mins(5);
        let mut h = History::default();
        assert_eq!(h.normalize_default(4, bounds(1), window, t(0)).replicas, 4);
        let n = h.normalize_default(1, bounds(4), window, t(60));
        assert_eq!((n.replicas, n.able), (4, DOWN_STABILIZED));
        assert_eq!(
            h.normalize_default(1, bounds(4), window, t(301)).replicas,
            1
        );
    }

    #[test]
    fn without_behavior_growth_is_capped_at_doubling() {
        let mut h = History::default();
        let n = h.normalize_default(30, bounds(3), SignedDuration::ZERO, t(0));
        assert_eq!(n.replicas, 6);
        assert_eq!(n.limited, (true, UP_LIMIT));
        let n = h.normalize_default(30, bounds(6), SignedDuration::ZERO, t(1));
        assert_eq!(n.replicas, 10);
        assert_eq!(n.limited, (true, TOO_MANY));
    }

    #[test]
    fn behavior_policies_limit_each_period() {
        let up = rules(0, &[(false, 2, 60)]);
        let down = rules(0, &[(true, 50, 60)]);
        let mut h = History::default();
        let n = h.normalize(9, bounds(1), &up, &down, t(0));
        assert_eq!((n.replicas, n.limited), (3, (true, UP_LIMIT)));
        h.scaled(1, 3, SignedDuration::from_secs(60), t(0));
        // Within the same minute the 2 pods are used up.
        assert_eq!(h.normalize(9, bounds(3), &up, &down, t(30)).replicas, 3);
        assert_eq!(h.normalize(9, bounds(3), &up, &down, t(61)).replicas, 5);
        // Down by half a minute.
        let n = h.normalize(1, bounds(8), &up, &down, t(200));
        assert_eq!((n.replicas, n.limited), (4, (true, DOWN_LIMIT)));
    }

    #[test]
    fn behavior_windows_stabilize_both_ways() {
        let up = rules(30, &[(false, 10, 15)]);
        let down = rules(60, &[(true, 100, 15)]);
        let mut h = History::default();
        h.normalize(2, bounds(2), &up, &down, t(0));
        // A spike to 6 is held at the lowest recommendation of the last 30 s.
        let n = h.normalize(6, bounds(2), &up, &down, t(10));
        assert_eq!((n.replicas, n.able), (2, UP_STABILIZED));
        assert_eq!(h.normalize(6, bounds(2), &up, &down, t(45)).replicas, 6);
        // A drop waits for the 60 s of higher recommendations to pass.
        let n = h.normalize(1, bounds(6), &up, &down, t(50));
        assert_eq!((n.replicas, n.able), (6, DOWN_STABILIZED));
        assert_eq!(h.normalize(1, bounds(6), &up, &down, t(111)).replicas, 1);
    }

    #[test]
    fn disabled_direction_never_moves() {
        let mut up = rules(0, &[(true, 100, 15)]);
        up.select = Select::Disabled;
        let down = rules(0, &[(true, 100, 15)]);
        let n = History::default().normalize(5, bounds(2), &up, &down, t(0));
        assert_eq!((n.replicas, n.limited.0), (2, true));
    }
}
