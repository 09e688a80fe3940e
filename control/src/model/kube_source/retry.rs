//! When a watcher tries again: [`Backoff`], the jittered exponential delay after a failed list or
//! watch, and [`relist_delay`], the jittered time until a kind's next periodic relist. Owns the
//! little random source both draw from.

use std::hash::{BuildHasher as _, RandomState};
use std::time::{Duration, Instant};

/// How a watcher backs off after failures: the `n`-th failure in a row waits a random time in
/// `[b/2, b]` with `b = min(first · factor^(n-1), max)` ("equal jitter": never less than half the
/// step, never more than `max`). The count starts again once no failure has happened for
/// `reset_after` (as client-go's reflector does); a success alone does not reset it, so a list that
/// keeps being refused keeps backing off even though each attempt starts the watcher over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The first step (the first retry waits between half of it and all of it).
    pub first: Duration,
    /// The largest step.
    pub max: Duration,
    /// Each further failure in a row multiplies the step by this.
    pub factor: u32,
    /// A failure after this long without one starts from `first` again.
    pub reset_after: Duration,
}

impl Default for RetryPolicy {
    /// client-go's reflector values: 0.8 s doubling to 30 s, reset after 2 min without a failure.
    fn default() -> Self {
        Self {
            first: Duration::from_millis(800),
            max: Duration::from_secs(30),
            factor: 2,
            reset_after: Duration::from_mins(2),
        }
    }
}

/// The failures in a row of one watcher and when the last one happened.
#[derive(Debug)]
pub(super) struct Backoff {
    policy: RetryPolicy,
    /// The current step (`None` before the first failure, or after a quiet period).
    step: Option<Duration>,
    last_failure: Option<Instant>,
    random: Random,
}

impl Backoff {
    pub(super) fn new(policy: RetryPolicy, random: Random) -> Self {
        Self {
            policy,
            step: None,
            last_failure: None,
            random,
        }
    }

    /// How long to wait after a failure at `now`.
    pub(super) fn next_delay(&mut self, now: Instant) -> Duration {
        let quiet = self
            .last_failure
            .is_none_or(|last| now.saturating_duration_since(last) >= self.policy.reset_after);
        let max = self.policy.max.max(self.policy.first);
        let step = match self.step {
            Some(step) if !quiet => step.saturating_mul(self.policy.factor.max(1)).min(max),
            _ => self.policy.first.min(max),
        };
        self.step = Some(step);
        self.last_failure = Some(now);
        step.mul_f64(0.5 + 0.5 * self.random.unit())
    }
}

/// The time until the next periodic relist: `every`, give or take 10 %, drawn anew each time so the
/// kinds (and the nodes of a cluster) drift apart instead of relisting together.
pub(super) fn relist_delay(every: Duration, random: &mut Random) -> Duration {
    every.mul_f64(0.9 + 0.2 * random.unit())
}

/// A small pseudo-random source (splitmix64) for jitter: seeded from the process's hash keys, or
/// from a fixed seed in tests. Nothing here needs to be unpredictable, only spread.
#[derive(Clone, Debug)]
pub(super) struct Random(u64);

impl Random {
    /// A source seeded differently each time (each `RandomState` has new keys).
    pub(super) fn new() -> Self {
        Self(RandomState::new().hash_one(0x5eed_u64))
    }

    #[cfg(test)]
    pub(super) fn with_seed(seed: u64) -> Self {
        Self(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `[0, 1)`.
    pub(super) fn unit(&mut self) -> f64 {
        // The top 53 bits, exactly representable.
        #[allow(clippy::cast_precision_loss)]
        let unit = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        unit
    }
}
