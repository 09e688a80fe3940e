//! The service sync loop: polls the object source, translates Services and EndpointSlices into service
//! entries and programs the difference into the data path, and keeps the node's health check node ports
//! ([`HealthServer`]) in step. A bad file is logged by name and the rest of the state is kept.

use std::{
    net::{IpAddr, Ipv4Addr},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use tokio::sync::Mutex;

use crate::{
    endpoints::EndpointManager,
    healthcheck::HealthServer,
    model::{health::health_checks, source::ObjectSource, translate::service_entries},
};

/// How often the source is polled for changes.
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// Wall-clock time (ms since the epoch) at which the last poll that left nothing pending *started*: a
/// publisher that wrote its objects before that time knows they are in the data path. 0 until then.
#[derive(Clone, Debug, Default)]
pub struct SyncClock(Arc<AtomicU64>);

impl SyncClock {
    /// The last successful sync's start, in ms since the epoch.
    pub fn last_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Where the agent's objects come from.
pub type BoxedSource = Box<dyn ObjectSource + Send>;

/// Runs until aborted. `origin` names the source in logs (a directory, or the API server).
pub async fn run(
    mut source: BoxedSource,
    origin: String,
    node: String,
    manager: Arc<Mutex<EndpointManager>>,
    clock: SyncClock,
) {
    let mut table = match manager.lock().await.dataplane_mut().read_services() {
        Ok(table) => {
            tracing::info!(
                frontends = table.len(),
                "adopted service entries from the kernel"
            );
            table
        }
        Err(error) => {
            tracing::error!(%error, "cannot read the service maps; service sync is off");
            return;
        }
    };
    // The agent runs in the node's network namespace: health checks are answered on every node address.
    let mut health = HealthServer::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    // Entries not yet in the kernel: set on every change, cleared once a sync succeeds, so a failed sync
    // is retried on the next tick.
    let mut pending = None;
    loop {
        let poll_started = now_ms();
        // Reading, parsing and translating can take seconds at 10k services: off the runtime's thread, so
        // the CNI socket and HTTP keep answering meanwhile.
        let node_name = node.clone();
        let polled = tokio::task::spawn_blocking(move || {
            let report = source.poll();
            let entries = report.as_ref().map(|r| {
                (
                    service_entries(&r.objects, &node_name),
                    health_checks(&r.objects, &node_name),
                )
            });
            (source, report, entries)
        })
        .await;
        let Ok((returned, report, entries)) = polled else {
            tracing::error!("the object source panicked; service sync stops");
            return;
        };
        source = returned;
        let mut new_checks = None;
        if let (Some(report), Some((entries, checks))) = (report, entries) {
            for error in &report.errors {
                tracing::warn!(source = %origin, "skipped: {error}");
            }
            pending = Some(entries);
            new_checks = Some(checks);
        }
        if let Some(entries) = &pending {
            let started = std::time::Instant::now();
            let result = manager
                .lock()
                .await
                .dataplane_mut()
                .sync_services(&mut table, entries);
            match result {
                Ok(sync) => {
                    tracing::info!(
                        frontends = entries.len(),
                        added = sync.added,
                        updated = sync.updated,
                        removed = sync.removed,
                        unchanged = sync.unchanged,
                        took_ms = started.elapsed().as_millis(),
                        "services synced"
                    );
                    pending = None;
                }
                Err(error) => tracing::error!(%error, "service sync failed; retrying"),
            }
        }
        // After the data path, as kube-proxy updates its health server after its rules: a load balancer
        // hears of local endpoints once they can be reached.
        match new_checks {
            Some(checks) => health.reconcile(&checks).await,
            None => health.retry().await,
        }
        // Nothing pending: everything written before this poll began is in the data path, whether this
        // poll found a change or not.
        if pending.is_none() {
            clock.0.store(poll_started, Ordering::SeqCst);
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}
