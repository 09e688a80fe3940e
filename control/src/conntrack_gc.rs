//! The conntrack sweeper: every [`SWEEP_INTERVAL`] it deletes the CT entries (and their partners) that
//! have been idle longer than their state's timeout. The programs already ignore such entries; the sweep
//! frees their room before the LRU map would have to evict live flows.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use strait_dataplane::conntrack::monotonic_ns;
use tokio::sync::Mutex;

use crate::endpoints::EndpointManager;

/// How often the CT map is swept.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(10);

/// What the sweeper last saw, for `/metrics`.
#[derive(Clone, Debug, Default)]
pub struct ConntrackStats {
    live: Arc<AtomicU64>,
    expired_total: Arc<AtomicU64>,
    snat_flows: Arc<AtomicU64>,
    snat_busiest: Arc<AtomicU64>,
}

impl ConntrackStats {
    /// Tracked flow directions after the last sweep.
    pub fn live(&self) -> u64 {
        self.live.load(Ordering::Relaxed)
    }

    /// Entries deleted as expired since the agent started.
    pub fn expired_total(&self) -> u64 {
        self.expired_total.load(Ordering::Relaxed)
    }

    /// Live SNATed flows (one SNAT port each) at the last sweep.
    pub fn snat_flows(&self) -> u64 {
        self.snat_flows.load(Ordering::Relaxed)
    }

    /// SNAT ports held towards the busiest destination at the last sweep.
    pub fn snat_busiest(&self) -> u64 {
        self.snat_busiest.load(Ordering::Relaxed)
    }
}

/// Runs until aborted.
pub async fn run(manager: Arc<Mutex<EndpointManager>>, stats: ConntrackStats) {
    let mut ticker = tokio::time::interval(SWEEP_INTERVAL);
    loop {
        ticker.tick().await;
        let result = manager
            .lock()
            .await
            .dataplane_mut()
            .sweep_conntrack(monotonic_ns());
        match result {
            Ok(report) => {
                stats.live.store(report.live as u64, Ordering::Relaxed);
                stats
                    .snat_flows
                    .store(report.snat_flows as u64, Ordering::Relaxed);
                stats
                    .snat_busiest
                    .store(report.snat_busiest as u64, Ordering::Relaxed);
                stats
                    .expired_total
                    .fetch_add(report.expired as u64, Ordering::Relaxed);
                if report.expired > 0 {
                    tracing::debug!(
                        live = report.live,
                        expired = report.expired,
                        "conntrack swept"
                    );
                }
            }
            Err(error) => tracing::warn!(%error, "conntrack sweep failed"),
        }
    }
}
