//! The kubelet's back-off (client-go `flowcontrol.Backoff`): 10 s doubling to 5 min, for
//! restarting crashed containers and for pulling images. Time is tokio's, so tests can run
//! it on a paused clock.

use std::time::Duration;

use tokio::time::Instant;

/// First delay.
pub(crate) const INITIAL: Duration = Duration::from_secs(10);
/// Longest delay.
pub(crate) const MAX: Duration = Duration::from_secs(300);

/// One back-off entry (upstream keeps one per pod and container or image).
#[derive(Clone, Debug, Default)]
pub(crate) struct Backoff {
    /// The current delay, once something failed.
    delay: Option<Duration>,
    /// When the delay was last raised.
    updated: Option<Instant>,
}

impl Backoff {
    /// The delay in force (10 s before the first failure).
    pub(crate) fn delay(&self) -> Duration {
        self.delay.unwrap_or(INITIAL)
    }

    /// An entry unused for twice the longest delay is forgotten, as upstream's GC does.
    fn expired(&self, now: Instant) -> bool {
        self.updated
            .is_some_and(|u| now.duration_since(u) > 2 * MAX)
    }

    /// Upstream `IsInBackOffSince`: how long is left of the delay counted from `event` (e.g.
    /// when the container exited); none when there is no delay in force or it has passed.
    pub(crate) fn remaining_since(&self, event: Instant, now: Instant) -> Option<Duration> {
        let delay = self.delay.filter(|_| !self.expired(now))?;
        let passed = now.saturating_duration_since(event);
        (passed < delay).then(|| delay - passed)
    }

    /// Upstream `IsInBackOffSinceUpdate`: how long is left counted from the last failure.
    pub(crate) fn remaining(&self, now: Instant) -> Option<Duration> {
        self.remaining_since(self.updated?, now)
    }

    /// Upstream `Next`: the first failure sets 10 s, each later one doubles it up to 5 min.
    pub(crate) fn next(&mut self, now: Instant) {
        self.delay = Some(match self.delay {
            Some(d) if !self.expired(now) => (d * 2).min(MAX),
            _ => INITIAL,
        });
        self.updated = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn doubles_to_five_minutes_and_resets_when_idle() {
        let mut b = Backoff::default();
        let start = Instant::now();
        assert_eq!(
            b.remaining_since(start, start),
            None,
            "no delay before a failure"
        );
        b.next(start);
        assert_eq!(b.delay(), INITIAL);
        assert_eq!(
            b.remaining_since(start, start + Duration::from_secs(4)),
            Some(Duration::from_secs(6))
        );
        assert_eq!(b.remaining_since(start, start + INITIAL), None);
        let delays: Vec<u64> = (0..6)
            .map(|_| {
                b.next(Instant::now());
                b.delay().as_secs()
            })
            .collect();
        assert_eq!(delays, [20, 40, 80, 160, 300, 300]);
        tokio::time::advance(2 * MAX + Duration::from_secs(1)).await;
        assert_eq!(b.remaining(Instant::now()), None);
        b.next(Instant::now());
        assert_eq!(b.delay(), INITIAL, "an idle entry starts over");
    }
}
