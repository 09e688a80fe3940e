//! The policy tables written from the agent's sync loop ([`crate::services`]). The loop rebuilds the
//! tables when Pods, Namespaces or NetworkPolicies changed (and on its first sync and every resync) and
//! hands them to a [`PolicyWriter`], which writes them in the same turn, before the loop's sync clock
//! moves: a publisher that sees `/syncz` pass its write knows its policy is enforced. A write that fails
//! is retried (the newest tables only) after a pause that grows to [`MAX_BACKOFF`], and the clock waits
//! for it. A data path without the policy maps (an eBPF object older than the agent) is reported once,
//! and policy is then off: nothing can enforce it, and the rest of the agent goes on.

use std::time::{Duration, Instant};

use strait_dataplane::{
    DataplaneError,
    policy::{PolicySyncReport, PolicyTables},
};
use tokio::sync::Mutex;

use super::Built;
use crate::services::DataplaneOwner;

/// The first pause before a failed write is tried again.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest pause between tries.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The tables waiting to be written, and when to try again.
#[derive(Debug)]
pub struct PolicyWriter {
    pending: Option<Built>,
    retry_at: Option<Instant>,
    backoff: Duration,
    /// The data path has no policy maps: nothing is written.
    unsupported: bool,
}

impl Default for PolicyWriter {
    fn default() -> Self {
        Self {
            pending: None,
            retry_at: None,
            backoff: FIRST_BACKOFF,
            unsupported: false,
        }
    }
}

impl PolicyWriter {
    /// The writer of a sync loop that enforces policy (`enforce`), or that does not, in which case the
    /// policy maps an earlier agent may have filled are emptied now.
    pub async fn start<M: DataplaneOwner>(enforce: bool, manager: &Mutex<M>) -> Self {
        if !enforce {
            clear(manager).await;
        }
        Self::default()
    }

    /// One turn of the sync loop: takes the turn's new tables, if any (replacing any not yet
    /// written), and writes what is pending. False when the data path has no policy maps, so the loop
    /// can stop building tables.
    pub async fn step<M: DataplaneOwner>(
        &mut self,
        built: Option<Built>,
        manager: &Mutex<M>,
    ) -> bool {
        if let Some(built) = built {
            self.offer(built);
        }
        self.write(manager).await;
        !self.unsupported
    }

    /// New tables to write (replacing any not yet written).
    pub fn offer(&mut self, built: Built) {
        if !self.unsupported {
            self.pending = Some(built);
        }
    }

    /// Whether tables wait to be written (the sync clock waits with them).
    pub fn is_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// Whether the data path turned out to have no policy maps (nothing is written any more).
    pub fn is_unsupported(&self) -> bool {
        self.unsupported
    }

    /// Writes the pending tables, unless a failed write's pause is still running.
    pub async fn write<M: DataplaneOwner>(&mut self, manager: &Mutex<M>) {
        let Some(built) = &self.pending else { return };
        if self.retry_at.is_some_and(|at| Instant::now() < at) {
            return;
        }
        let started = Instant::now();
        let result = manager
            .lock()
            .await
            .dataplane_mut()
            .sync_policy(&built.tables);
        match result {
            Ok(report) => {
                if report.changed() {
                    log_synced(built, &report, started.elapsed());
                }
                self.pending = None;
                self.retry_at = None;
                self.backoff = FIRST_BACKOFF;
            }
            Err(DataplaneError::MapMissing { name }) => {
                tracing::error!(
                    map = name,
                    "the eBPF data path has no NetworkPolicy maps: NetworkPolicy is NOT enforced on \
                     this node (the agent and its eBPF object do not match)"
                );
                self.pending = None;
                self.unsupported = true;
            }
            Err(error) => {
                tracing::error!(
                    %error,
                    retry_in_s = self.backoff.as_secs(),
                    "writing the NetworkPolicy maps failed; the last enforced policy stays in place"
                );
                self.retry_at = Some(Instant::now() + self.backoff);
                self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

fn log_synced(built: &Built, report: &PolicySyncReport, took: Duration) {
    tracing::info!(
        pods = built.pods,
        local_pods = built.local_pods,
        identities = built.identities,
        policies = built.policies.len(),
        subjects = report.subjects.entries,
        allow_entries = report.allow.entries,
        cidr_entries = report.cidr.entries,
        refused_rules = built.refused.len(),
        written = report.ipcache.written
            + report.subjects.written
            + report.allow.written
            + report.cidr.written,
        removed = report.ipcache.removed
            + report.subjects.removed
            + report.allow.removed
            + report.cidr.removed,
        took_ms = took.as_millis(),
        "network policy synced"
    );
}

/// With policy off: empties the policy maps an earlier agent may have filled, so nothing stays
/// enforced. A data path without them has nothing to empty.
pub async fn clear<M: DataplaneOwner>(manager: &Mutex<M>) {
    let result = manager
        .lock()
        .await
        .dataplane_mut()
        .sync_policy(&PolicyTables::default());
    match result {
        Ok(report) if report.changed() => {
            tracing::info!(
                removed = report.ipcache.removed
                    + report.subjects.removed
                    + report.allow.removed
                    + report.cidr.removed,
                "network policy is off: emptied the policy maps"
            );
        }
        Ok(_) | Err(DataplaneError::MapMissing { .. }) => {}
        Err(error) => {
            tracing::warn!(%error, "network policy is off; emptying the policy maps failed");
        }
    }
}
