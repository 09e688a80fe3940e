//! The endpoint manager's counts (endpoints, endpoints being deleted, pod addresses in use and
//! available), published after every change so readers such as `/metrics` never wait for the manager
//! (whose lock serialises CNI calls).

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

/// One published set of counts; every clone reads the same values.
#[derive(Clone, Debug, Default)]
pub struct EndpointGauges {
    inner: Arc<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    endpoints: AtomicUsize,
    deleting: AtomicUsize,
    ipam_used: AtomicUsize,
    ipam_capacity: AtomicUsize,
}

/// The counts as one reader sees them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EndpointCounts {
    /// Attachments in service.
    pub endpoints: usize,
    /// Attachments whose removal began but has not finished.
    pub deleting: usize,
    /// Pod addresses taken (those of attachments being deleted included).
    pub ipam_used: usize,
    /// Pod addresses the node's pod CIDR can hold.
    pub ipam_capacity: usize,
}

impl EndpointGauges {
    /// Publishes `counts` (the manager calls this after each change).
    pub fn publish(&self, counts: EndpointCounts) {
        let inner = &self.inner;
        inner.endpoints.store(counts.endpoints, Ordering::Relaxed);
        inner.deleting.store(counts.deleting, Ordering::Relaxed);
        inner.ipam_used.store(counts.ipam_used, Ordering::Relaxed);
        inner
            .ipam_capacity
            .store(counts.ipam_capacity, Ordering::Relaxed);
    }

    /// The last published counts.
    pub fn read(&self) -> EndpointCounts {
        let inner = &self.inner;
        EndpointCounts {
            endpoints: inner.endpoints.load(Ordering::Relaxed),
            deleting: inner.deleting.load(Ordering::Relaxed),
            ipam_used: inner.ipam_used.load(Ordering::Relaxed),
            ipam_capacity: inner.ipam_capacity.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_clone_reads_what_was_published_last() {
        let gauges = EndpointGauges::default();
        let reader = gauges.clone();
        assert_eq!(reader.read(), EndpointCounts::default());
        let counts = EndpointCounts {
            endpoints: 3,
            deleting: 1,
            ipam_used: 4,
            ipam_capacity: 254,
        };
        gauges.publish(counts);
        assert_eq!(reader.read(), counts);
    }
}
