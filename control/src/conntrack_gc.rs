//! The conntrack sweeper: every [`SWEEP_INTERVAL`] it deletes the CT entries (and their partners) that
//! have been idle longer than their state's timeout. The programs already ignore such entries; the sweep
//! frees their room before the LRU map would have to evict live flows.

use std::{sync::Arc, time::Duration};

use strait_dataplane::conntrack::monotonic_ns;
use tokio::sync::Mutex;

use crate::endpoints::EndpointManager;

/// How often the CT map is swept.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(10);

/// Runs until aborted.
pub async fn run(manager: Arc<Mutex<EndpointManager>>) {
    let mut ticker = tokio::time::interval(SWEEP_INTERVAL);
    loop {
        ticker.tick().await;
        let result = manager
            .lock()
            .await
            .dataplane_mut()
            .sweep_conntrack(monotonic_ns());
        match result {
            Ok(report) if report.expired > 0 => tracing::debug!(
                live = report.live,
                expired = report.expired,
                "conntrack swept"
            ),
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "conntrack sweep failed"),
        }
    }
}
