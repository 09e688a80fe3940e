//! A fixed-bucket histogram of durations that any thread can observe without a lock, rendered as a
//! Prometheus histogram in seconds.

use std::{
    fmt::Write as _,
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

/// Bucket bounds in seconds for the agent's own work (syncs, censuses): 100 µs to 10 s.
pub const AGENT_WORK_BOUNDS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 1.0, 10.0,
];

/// Counts of observations at or below each bound, their number and their sum.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    sum_ns: AtomicU64,
}

impl Histogram {
    /// An empty histogram over `bounds` (ascending, seconds).
    pub fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            buckets: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_ns: AtomicU64::new(0),
        }
    }

    /// Records one duration.
    pub fn observe(&self, took: Duration) {
        let seconds = took.as_secs_f64();
        if let Some(i) = self.bounds.iter().position(|&bound| seconds <= bound) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.sum_ns.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Appends the `_bucket`, `_sum` and `_count` samples of `name` with `labels` (`k="v",...`,
    /// without braces; may be empty). The family's HELP and TYPE are the caller's.
    pub fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (bound, bucket) in self.bounds.iter().zip(self.buckets.iter()) {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {cumulative}"
            );
        }
        let count = self.count();
        let sum = Duration::from_nanos(self.sum_ns.load(Ordering::Relaxed)).as_secs_f64();
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
        let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_the_sum_is_in_seconds() {
        let histogram = Histogram::new(&AGENT_WORK_BOUNDS);
        histogram.observe(Duration::from_micros(80));
        histogram.observe(Duration::from_millis(3));
        histogram.observe(Duration::from_secs(20));
        let mut out = String::new();
        histogram.render(&mut out, "x_seconds", "node=\"n\"");
        for line in [
            "x_seconds_bucket{node=\"n\",le=\"0.0001\"} 1\n",
            "x_seconds_bucket{node=\"n\",le=\"0.0025\"} 1\n",
            "x_seconds_bucket{node=\"n\",le=\"0.005\"} 2\n",
            "x_seconds_bucket{node=\"n\",le=\"10\"} 2\n",
            "x_seconds_bucket{node=\"n\",le=\"+Inf\"} 3\n",
            "x_seconds_sum{node=\"n\"} 20.00308\n",
            "x_seconds_count{node=\"n\"} 3\n",
        ] {
            assert!(out.contains(line), "{line} missing from\n{out}");
        }
    }
}
