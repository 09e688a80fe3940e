//! What the service sync loop reports to `/metrics`: how long syncs take (from the source hearing of a
//! change to the last map write, and the map writes alone), what went wrong (objects skipped, writes
//! that failed, frontends the kernel refused), and the size of the model it keeps in the kernel.

use std::{
    fmt::Write as _,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use super::{
    escape, family,
    histogram::{AGENT_WORK_BOUNDS, Histogram},
};

/// Kinds of sync error, as the `kind` label names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncError {
    /// An object the source could not read (a bad manifest, a bad object from the API).
    Source,
    /// A write into the kernel that failed as a whole (retried).
    Write,
    /// A frontend the kernel refused (a full map; retried).
    Refused,
}

impl SyncError {
    const ALL: [Self; 3] = [Self::Source, Self::Write, Self::Refused];

    fn label(self) -> &'static str {
        match self {
            Self::Source => "source",
            Self::Write => "write",
            Self::Refused => "refused",
        }
    }
}

/// The model's size in the kernel after the last sync.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ModelSize {
    pub services: usize,
    pub frontends: usize,
    pub backends: usize,
}

#[derive(Debug)]
struct Inner {
    latency: Histogram,
    write: Histogram,
    errors: [AtomicU64; 3],
    services: AtomicU64,
    frontends: AtomicU64,
    backends: AtomicU64,
}

impl Default for Inner {
    fn default() -> Self {
        Self {
            latency: Histogram::new(&AGENT_WORK_BOUNDS),
            write: Histogram::new(&AGENT_WORK_BOUNDS),
            errors: Default::default(),
            services: AtomicU64::new(0),
            frontends: AtomicU64::new(0),
            backends: AtomicU64::new(0),
        }
    }
}

/// Shared between the sync loop (which records) and the HTTP server (which renders).
#[derive(Clone, Debug, Default)]
pub struct SyncMetrics {
    inner: Arc<Inner>,
}

impl SyncMetrics {
    /// One sync that wrote to the kernel: `latency` from the first change heard, `write` the writes.
    pub fn synced(&self, latency: Duration, write: Duration) {
        self.inner.latency.observe(latency);
        self.inner.write.observe(write);
    }

    /// `count` errors of `kind`.
    pub fn failed(&self, kind: SyncError, count: usize) {
        let index = SyncError::ALL.iter().position(|k| *k == kind).unwrap_or(0);
        self.inner.errors[index].fetch_add(count as u64, Ordering::Relaxed);
    }

    /// The model's size now.
    pub fn set_size(&self, size: ModelSize) {
        self.inner
            .services
            .store(size.services as u64, Ordering::Relaxed);
        self.inner
            .frontends
            .store(size.frontends as u64, Ordering::Relaxed);
        self.inner
            .backends
            .store(size.backends as u64, Ordering::Relaxed);
    }

    /// Syncs recorded so far.
    pub fn syncs(&self) -> u64 {
        self.inner.latency.count()
    }

    /// Appends the sync families for `node`.
    pub fn render(&self, out: &mut String, node: &str) {
        let labels = format!("node=\"{}\"", escape(node));
        for (name, help, histogram) in [
            (
                "strait_sync_duration_seconds",
                "Service syncs that wrote to the kernel: from the object source hearing of the first \
                 change to the last map write, seconds.",
                &self.inner.latency,
            ),
            (
                "strait_sync_write_duration_seconds",
                "The map writes of each service sync alone, seconds.",
                &self.inner.write,
            ),
        ] {
            family(out, name, "histogram", help);
            histogram.render(out, name, &labels);
        }
        family(
            out,
            "strait_sync_errors_total",
            "counter",
            "Service sync errors by kind: source (an object that could not be read, skipped), write \
             (a kernel write that failed as a whole, retried), refused (a frontend the kernel refused, \
             retried).",
        );
        for (kind, counter) in SyncError::ALL.iter().zip(&self.inner.errors) {
            let _ = writeln!(
                out,
                "strait_sync_errors_total{{{labels},kind=\"{}\"}} {}",
                kind.label(),
                counter.load(Ordering::Relaxed)
            );
        }
        for (name, help, value) in [
            (
                "strait_services",
                "Services the node's model holds (every kind, headless and ExternalName included).",
                &self.inner.services,
            ),
            (
                "strait_service_frontends",
                "Service frontends (address, port, protocol) in the kernel's SVC map.",
                &self.inner.frontends,
            ),
            (
                "strait_service_backends",
                "Backends summed over the frontends in the kernel.",
                &self.inner.backends,
            ),
        ] {
            family(out, name, "gauge", help);
            let _ = writeln!(out, "{name}{{{labels}}} {}", value.load(Ordering::Relaxed));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syncs_errors_and_sizes_are_rendered() {
        let metrics = SyncMetrics::default();
        metrics.synced(Duration::from_millis(2), Duration::from_micros(300));
        metrics.failed(SyncError::Refused, 2);
        metrics.failed(SyncError::Source, 1);
        metrics.set_size(ModelSize {
            services: 3,
            frontends: 5,
            backends: 9,
        });
        let mut out = String::new();
        metrics.render(&mut out, "n1");
        assert_eq!(metrics.syncs(), 1);
        for line in [
            "strait_sync_duration_seconds_count{node=\"n1\"} 1\n",
            "strait_sync_write_duration_seconds_bucket{node=\"n1\",le=\"0.0005\"} 1\n",
            "strait_sync_errors_total{node=\"n1\",kind=\"refused\"} 2\n",
            "strait_sync_errors_total{node=\"n1\",kind=\"source\"} 1\n",
            "strait_sync_errors_total{node=\"n1\",kind=\"write\"} 0\n",
            "strait_services{node=\"n1\"} 3\n",
            "strait_service_frontends{node=\"n1\"} 5\n",
            "strait_service_backends{node=\"n1\"} 9\n",
        ] {
            assert!(out.contains(line), "{line} missing from\n{out}");
        }
    }
}
