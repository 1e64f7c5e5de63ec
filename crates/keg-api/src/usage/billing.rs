//! AWS's billing rules, applied to usage records.
//!
//! Fargate bills a pod "from the time you start to download your container image until the
//! Amazon EKS pod terminates, rounded up to the nearest second", with a one-minute minimum
//! (aws.amazon.com/fargate/pricing). EC2 bills Linux on-demand instances per second with a
//! 60-second minimum (aws.amazon.com/ec2/pricing/on-demand). Both come down to one rule:
//! whole seconds rounded up, never less than a minute.
//!
//! A record's bill is laid out as the interval `[start, start + billed seconds]`, so the
//! minute's minimum sits right after the start; the spend "since T" is the part of that
//! interval after T. Windows that tile time therefore add up to the whole bill.

use jiff::{SignedDuration, Timestamp};

use super::UsageRecordSpec;

/// The least a started pod or instance is billed for.
pub const MINIMUM_SECONDS: u64 = 60;

/// Seconds billed for running `duration`: per second, rounded up, at least a minute.
pub fn billed_seconds(duration: SignedDuration) -> u64 {
    let nanos = u128::try_from(duration.as_nanos()).unwrap_or(0);
    let seconds = u64::try_from(nanos.div_ceil(1_000_000_000)).unwrap_or(u64::MAX);
    seconds.max(MINIMUM_SECONDS)
}

/// What `seconds` cost at `hourly` USD an hour.
pub fn cost(hourly: f64, seconds: f64) -> f64 {
    hourly * seconds / 3600.0
}

/// Seconds of `[from, to]` that fall at or after `since` (all of them without a `since`).
pub fn seconds_since(from: Timestamp, to: Timestamp, since: Option<Timestamp>) -> f64 {
    let from = since.map_or(from, |s| from.max(s));
    if to <= from {
        return 0.0;
    }
    to.duration_since(from).as_secs_f64()
}

impl UsageRecordSpec {
    /// When the record stops (or stopped) running: its end, else `now`.
    pub fn end_or(&self, now: Timestamp) -> Timestamp {
        self.end.unwrap_or(now).max(self.start)
    }

    /// Whether it still runs.
    pub fn is_open(&self) -> bool {
        self.end.is_none()
    }

    /// Seconds billed so far: its whole run once it ended, else the run up to `now`.
    pub fn billed_seconds(&self, now: Timestamp) -> u64 {
        billed_seconds(self.end_or(now).duration_since(self.start))
    }

    /// The interval the bill covers: the start, plus the billed seconds.
    pub fn billed_interval(&self, now: Timestamp) -> (Timestamp, Timestamp) {
        let billed = SignedDuration::from_secs(self.billed_seconds(now) as i64);
        (
            self.start,
            self.start.saturating_add(billed).unwrap_or(self.start),
        )
    }

    /// Billed seconds after `since` (all of them without a `since`).
    pub fn billed_seconds_since(&self, since: Option<Timestamp>, now: Timestamp) -> f64 {
        let (from, to) = self.billed_interval(now);
        seconds_since(from, to, since)
    }

    /// USD billed so far.
    pub fn cost(&self, now: Timestamp) -> f64 {
        cost(self.hourly_rate, self.billed_seconds(now) as f64)
    }

    /// USD billed after `since` (all of it without a `since`).
    pub fn cost_since(&self, since: Option<Timestamp>, now: Timestamp) -> f64 {
        cost(self.hourly_rate, self.billed_seconds_since(since, now))
    }

    /// What it adds to the hourly run rate: its rate while it runs, else nothing.
    pub fn run_rate(&self) -> f64 {
        if self.is_open() {
            self.hourly_rate
        } else {
            0.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fargate::FargateSize;
    use crate::prices::PriceTable;
    use crate::usage::{Compute, Subject};

    fn secs(s: f64) -> SignedDuration {
        SignedDuration::from_secs_f64(s)
    }

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    /// A Fargate pod of the smallest size in us-east-1, started at `start`.
    fn record(start: &str, end: Option<&str>) -> UsageRecordSpec {
        let size = FargateSize::SMALLEST;
        UsageRecordSpec {
            subject: Subject::Pod,
            compute: Compute::Fargate,
            region: "us-east-1".into(),
            namespace: Some("ns".into()),
            name: "p".into(),
            uid: "u".into(),
            node: None,
            profile: None,
            node_group: None,
            instance_type: None,
            capacity: Some(size.to_string()),
            cpu_millis: 250,
            memory_mib: 512,
            requests: None,
            hourly_rate: PriceTable::aws()
                .fargate_hourly("us-east-1", &size)
                .unwrap(),
            start: t(start),
            end: end.map(t),
            end_reason: None,
            pod_labels: Default::default(),
        }
    }

    #[test]
    fn the_smallest_pod_costs_a_published_0_01234_an_hour_in_us_east_1() {
        let pod = record("2025-01-01T00:00:00Z", Some("2025-01-01T01:00:00Z"));
        assert_eq!(pod.billed_seconds(Timestamp::MAX), 3600);
        assert_eq!((pod.cost(Timestamp::MAX) * 1e5).round() / 1e5, 0.01234);
        // 0.25 * 0.04048 + 0.5 * 0.004445, to the last digit.
        assert!((pod.hourly_rate - 0.0123425).abs() < 1e-12);
    }

    #[test]
    fn a_ten_second_pod_is_billed_one_minute() {
        assert_eq!(billed_seconds(secs(10.0)), 60);
        let pod = record("2025-01-01T00:00:00Z", Some("2025-01-01T00:00:10Z"));
        assert_eq!(pod.billed_seconds(Timestamp::MAX), 60);
        assert!((pod.cost(Timestamp::MAX) - 0.0123425 / 60.0).abs() < 1e-12);
    }

    #[test]
    fn seconds_are_rounded_up_past_the_minimum() {
        assert_eq!(billed_seconds(secs(61.2)), 62);
        assert_eq!(billed_seconds(secs(61.0)), 61);
        assert_eq!(
            billed_seconds(SignedDuration::from_nanos(61_000_000_001)),
            62
        );
        assert_eq!(billed_seconds(secs(60.0)), 60);
        assert_eq!(billed_seconds(secs(0.0)), 60);
        // A clock that went backwards still bills the minimum, never a negative.
        assert_eq!(billed_seconds(secs(-5.0)), 60);
        let pod = record("2025-01-01T00:00:00Z", Some("2025-01-01T00:01:01.2Z"));
        assert_eq!(pod.billed_seconds(Timestamp::MAX), 62);
    }

    #[test]
    fn a_running_pod_is_billed_up_to_now_and_adds_to_the_run_rate() {
        let pod = record("2025-01-01T00:00:00Z", None);
        assert_eq!(pod.billed_seconds(t("2025-01-01T00:00:30Z")), 60);
        assert_eq!(pod.billed_seconds(t("2025-01-01T00:10:00.1Z")), 601);
        assert_eq!(pod.run_rate(), pod.hourly_rate);
        let ended = record("2025-01-01T00:00:00Z", Some("2025-01-01T00:02:00Z"));
        assert_eq!(ended.billed_seconds(t("2025-01-02T00:00:00Z")), 120);
        assert_eq!(ended.run_rate(), 0.0);
    }

    #[test]
    fn spend_since_counts_only_the_bill_after_the_cut() {
        let pod = record("2025-01-01T00:00:00Z", Some("2025-01-01T00:10:00Z"));
        let now = t("2025-01-01T01:00:00Z");
        let cut = t("2025-01-01T00:04:00Z");
        assert_eq!(pod.billed_seconds_since(Some(cut), now), 360.0);
        assert_eq!(
            pod.billed_seconds_since(Some(t("2025-01-01T00:20:00Z")), now),
            0.0
        );
        assert_eq!(pod.billed_seconds_since(None, now), 600.0);
        // The minute's minimum lies right after the start, so a cut splits it too.
        let short = record("2025-01-01T00:00:00Z", Some("2025-01-01T00:00:10Z"));
        assert_eq!(
            short.billed_seconds_since(Some(t("2025-01-01T00:00:45Z")), now),
            15.0
        );
        let before_cut = pod.cost(now) - pod.cost_since(Some(cut), now);
        assert!((before_cut - cost(pod.hourly_rate, 240.0)).abs() < 1e-15);
    }
}
