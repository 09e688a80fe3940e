//! The service sync loop: owns the [`ObjectStore`], feeds it the source's batches, lets the
//! [`ServiceIndex`] re-translate only the Services each batch touches, and writes only the frontends
//! whose entry changed into the data path; keeps the node's health check node ports
//! ([`HealthServer`]) in step. A bad file is logged by name and the rest of the state is kept.
//!
//! Every `resync_every`, the loop asks the source to look at everything again and compares the
//! incremental result with a full translation of the store and with the kernel's table: both must be
//! no-ops, and any difference is logged as drift and repaired.
//!
//! With NetworkPolicy on, a turn whose batch changed Pods, Namespaces or NetworkPolicies (and the first
//! sync, and every resync) rebuilds the policy tables and writes them before the sync clock moves
//! ([`crate::policy::sync`]).

use std::{
    collections::{BTreeSet, HashMap},
    net::{IpAddr, Ipv4Addr},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use strait_dataplane::overlay::RemoteRoute;
use strait_dataplane::service_maps::{ServiceTable, SyncReport};
use strait_dataplane::services::{ServiceEntry, ServiceKey};
use strait_dataplane::{Dataplane, dns_fast::HotRecord};
use strait_k8s::{Kind, ObjectStore};
use tokio::sync::Mutex;

use crate::{
    dns::{DnsIndex, DnsMapWriter, DnsSettings, NodeLocalDns},
    endpoints::EndpointManager,
    flows::FlowNames,
    healthcheck::HealthServer,
    metrics::sync::{ModelSize, SyncError, SyncMetrics},
    model::{
        HealthCheck, ServiceIndex, Touched,
        nodes::{Routing, remote_routes},
        source::ObjectSource,
        source::SourceBatch,
        source::SourceChange,
        translate::ReservedAddresses,
    },
    policy::{Built, PolicySettings, PolicyState, sync::PolicyWriter},
    service_list::ServiceBoard,
};

/// How long a quiet source is waited on before the loop goes round again.
pub const WAIT: Duration = Duration::from_millis(200);

/// After a busy turn the source is asked again at once, then once more after this pause, then waited on
/// for [`WAIT`]: the quick turns start (and so stamp `/syncz`, whose resolution is a millisecond) after
/// a publisher's write within a few milliseconds, instead of after the next full wait.
const SETTLE: Duration = Duration::from_millis(2);

/// Once this many store events (a first sync, a relist) have passed and a turn finds nothing new, the
/// memory they freed is handed back to the system.
const TRIM_AFTER_EVENTS: usize = 1_000;

/// Gives memory the allocator holds but no longer uses back to the system. A first sync of 10,000
/// Services decodes every object once on its way into the (encoded) store; glibc keeps the freed
/// pages, which left the agent at 129 MiB RSS for 35 MiB of live data.
fn release_freed_memory() {
    // SAFETY: malloc_trim only releases free memory of the allocator's own arenas; it takes no
    // pointers and is safe to call at any time from any thread.
    let released = unsafe { libc::malloc_trim(0) };
    tracing::debug!(released = released != 0, "freed memory handed back");
}

/// Store events handed to the index at a time within one batch.
const EVENT_CHUNK: usize = 256;

/// How soon the loop asks the source again.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Pace {
    /// At once, without waiting: the last turn was busy.
    Now,
    /// After [`SETTLE`], without waiting.
    Settle,
    /// Waiting up to [`WAIT`] for something to happen.
    Idle,
}

impl Pace {
    /// How long the source may take to answer.
    fn wait(self) -> Duration {
        if self == Pace::Idle {
            WAIT
        } else {
            Duration::ZERO
        }
    }

    /// The pace after `turn`: a busy source is asked again at once, then briefly, so a publisher
    /// learns quickly that its change is in.
    fn after(self, turn: &Turn) -> Pace {
        if turn.events > 0 || !turn.errors.is_empty() {
            Pace::Now
        } else if self == Pace::Now {
            Pace::Settle
        } else {
            Pace::Idle
        }
    }
}

/// Wall-clock time (ms since the epoch) at which the last loop turn that left nothing pending *started*:
/// a publisher that wrote its objects before that time knows they are in the data path. 0 until then.
/// It also keeps the last [`SYNC_RECORDS`] syncs that wrote to the kernel, for benchmarks and metrics.
#[derive(Clone, Debug, Default)]
pub struct SyncClock {
    last_ms: Arc<AtomicU64>,
    records: Arc<std::sync::Mutex<std::collections::VecDeque<SyncRecord>>>,
    metrics: SyncMetrics,
    services: ServiceBoard,
}

/// How many [`SyncRecord`]s a [`SyncClock`] keeps.
pub const SYNC_RECORDS: usize = 4096;

/// One sync that wrote to the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncRecord {
    /// When it finished, ms since the epoch.
    pub at_ms: u64,
    /// From the source hearing of the batch's first change to the last map write, in µs.
    pub latency_us: u64,
    /// The map writes alone, in µs.
    pub write_us: u64,
    /// Store events in the batch.
    pub events: usize,
    /// Services translated again.
    pub services: usize,
    pub added: usize,
    pub updated: usize,
    pub removed: usize,
    /// Frontends in the kernel afterwards.
    pub frontends: usize,
}

impl SyncClock {
    /// The last successful sync's start, in ms since the epoch.
    pub fn last_ms(&self) -> u64 {
        self.last_ms.load(Ordering::SeqCst)
    }

    /// Whether a sync has completed since the agent started (its readiness).
    pub fn has_synced(&self) -> bool {
        self.last_ms() > 0
    }

    #[cfg(test)]
    pub(crate) fn set_last_ms(&self, ms: u64) {
        self.last_ms.store(ms, Ordering::SeqCst);
    }

    /// The frontends in the kernel as `/services` shows them.
    pub fn services(&self) -> &ServiceBoard {
        &self.services
    }

    /// What `/metrics` shows of the syncs.
    pub fn metrics(&self) -> &SyncMetrics {
        &self.metrics
    }

    /// The syncs recorded so far (oldest first, at most [`SYNC_RECORDS`]).
    pub fn records(&self) -> Vec<SyncRecord> {
        let records = self
            .records
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        records.iter().copied().collect()
    }

    fn record(&self, record: SyncRecord) {
        let mut records = self
            .records
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if records.len() == SYNC_RECORDS {
            records.pop_front();
        }
        records.push_back(record);
    }
}

/// What owns the data path the loop writes into: the agent's endpoint manager, or a bare
/// [`Dataplane`] (benchmarks).
pub trait DataplaneOwner: Send + 'static {
    fn dataplane_mut(&mut self) -> &mut Dataplane;
}

impl DataplaneOwner for EndpointManager {
    fn dataplane_mut(&mut self) -> &mut Dataplane {
        EndpointManager::dataplane_mut(self)
    }
}

impl DataplaneOwner for Dataplane {
    fn dataplane_mut(&mut self) -> &mut Dataplane {
        self
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Where the agent's objects come from.
pub type BoxedSource = Box<dyn ObjectSource + Send>;

/// The store, the source feeding it and the services feature's index: moved to a blocking thread for
/// each turn (reading and parsing files can take a while) and back.
struct Model {
    source: BoxedSource,
    store: ObjectStore,
    index: ServiceIndex,
    /// Whether the index has been built (it is, once the source is ready).
    built: bool,
    node: String,
    /// Addresses no Service may claim as external.
    reserved: ReservedAddresses,
    /// How remote nodes are reached (`None`: the overlay is off).
    overlay: Option<Routing>,
    /// NetworkPolicy's identities and numbers (`None`: policy is off).
    policy: Option<PolicyState>,
    /// The cluster DNS zone (`None`: this node serves no DNS).
    dns: Option<DnsIndex>,
    local_dns: Option<NodeLocalDns>,
}

/// What the kernel needs: entries to write, frontends to remove, and how many looked at were right.
#[derive(Default)]
struct Writes {
    upserts: Vec<ServiceEntry>,
    removals: Vec<ServiceKey>,
    unchanged: usize,
}

/// What one turn found.
#[derive(Default)]
struct Turn {
    errors: Vec<String>,
    /// Store events the batch caused.
    events: usize,
    /// Frontends whose entry may have changed.
    touched: BTreeSet<ServiceKey>,
    /// Services re-translated.
    retranslated: usize,
    /// New health checks, when they may have changed.
    health: Option<Vec<HealthCheck>>,
    /// When the source heard of the batch's first change.
    noticed: Option<Instant>,
    /// On a resync: entries where the index and a full translation disagree.
    drift: Option<usize>,
    /// The overlay's prefixes, when Nodes changed (or on the first sync and every resync).
    remote_routes: Option<Vec<RemoteRoute>>,
    /// The DNS fast path's records, when the zone changed (and the fast path is on).
    dns_records: Option<Vec<HotRecord>>,
    /// The policy tables, when Pods, Namespaces or NetworkPolicies changed (or on the first sync and
    /// every resync).
    policy: Option<Built>,
}

/// Whether a store event may change the policy tables.
fn policy_kind(kind: Kind) -> bool {
    matches!(kind, Kind::Pod | Kind::Namespace | Kind::NetworkPolicy)
}

impl Model {
    fn new(source: BoxedSource, settings: SyncSettings, policy: Option<PolicyState>) -> Self {
        let SyncSettings {
            node,
            reserved,
            overlay,
            dns,
            ..
        } = settings;
        let (dns, local_dns) = match dns {
            Some((settings, local)) => (Some(DnsIndex::new(settings)), Some(local)),
            None => (None, None),
        };
        Self {
            source,
            store: ObjectStore::new(),
            index: ServiceIndex::new(&node)
                .with_reserved(reserved.clone())
                .with_local_dns(local_dns.clone()),
            built: false,
            node,
            reserved,
            overlay,
            policy,
            dns,
            local_dns,
        }
    }

    /// Brings the DNS zone up to date: all of it on the first sync and every resync, else the
    /// Services the turn's events touched. The fast path's records when the zone changed.
    fn update_dns(&mut self, everything: bool) -> Option<Vec<HotRecord>> {
        let dns = self.dns.as_mut()?;
        if everything {
            dns.rebuild(&self.store)
        } else {
            dns.publish(&self.store)
        }
    }

    fn turn(&mut self, wait: Duration, resync: bool) -> Turn {
        // Each change goes into the store as the source finds it, and the index hears of the events
        // in chunks, so a large batch (a first sync, a relist) never holds its objects all at once.
        let Self {
            source,
            store,
            index,
            built,
            dns,
            ..
        } = self;
        let indexing = *built && source.is_ready();
        let mut events = Vec::new();
        let mut event_count = 0;
        let mut touched = Touched::default();
        let (mut nodes_changed, mut policy_changed) = (false, false);
        let mut sink = |change: SourceChange| {
            let before = events.len();
            match change {
                SourceChange::Change(change) => events.extend(store.apply(change)),
                SourceChange::Replace(kind, objects) => events.extend(store.replace(kind, objects)),
            }
            nodes_changed |= events[before..].iter().any(|e| e.key.kind == Kind::Node);
            if let Some(dns) = dns.as_mut() {
                dns.note(&events[before..]);
            }
            policy_changed |= events[before..].iter().any(|e| policy_kind(e.key.kind));
            event_count += events.len() - before;
            if events.len() >= EVENT_CHUNK {
                if indexing {
                    touched.merge(index.update(store, &events));
                }
                events.clear();
            }
        };
        let mut batch = SourceBatch::with_sink(&mut sink);
        if resync {
            source.resync(&mut batch);
        } else {
            source.next_batch(wait, &mut batch);
        }
        let (errors, noticed) = (batch.errors, batch.noticed);
        if indexing {
            touched.merge(index.update(store, &events));
        }
        drop(events);
        let mut turn = Turn {
            errors,
            events: event_count,
            noticed,
            ..Turn::default()
        };
        if !self.source.is_ready() {
            return turn;
        }
        turn.dns_records = self.update_dns(!self.built || resync);
        if !self.built {
            self.built = true;
            touched = self.index.rebuild(&self.store);
            touched.health = true;
            nodes_changed = true;
            policy_changed = true;
        }
        if let Some(routing) = self.overlay
            && (nodes_changed || resync)
        {
            turn.remote_routes = Some(remote_routes(&self.store, &self.node, routing));
        }
        if let Some(policy) = &mut self.policy
            && (policy_changed || resync)
        {
            turn.policy = Some(policy.build(&self.store));
        }
        turn.touched = touched.frontends;
        turn.retranslated = touched.services;
        if touched.health {
            turn.health = Some(self.index.health_checks(&self.store));
        }
        if resync {
            // A fresh index built from the whole store (decoding one Service at a time, so the
            // check costs no more memory than the index itself).
            let mut fresh = ServiceIndex::new(&self.node)
                .with_reserved(self.reserved.clone())
                .with_local_dns(self.local_dns.clone());
            fresh.rebuild(&self.store);
            let full = fresh.entries();
            let incremental = self.index.entries();
            let drift = full.len().abs_diff(incremental.len())
                + full
                    .iter()
                    .zip(&incremental)
                    .filter(|(a, b)| a != b)
                    .count();
            if drift > 0 {
                tracing::warn!(
                    drift,
                    "resync: the incremental translation drifted; rebuilding"
                );
                turn.touched
                    .extend(self.index.rebuild(&self.store).frontends);
            }
            turn.drift = Some(drift);
            turn.health = Some(self.index.health_checks(&self.store));
        }
        turn
    }

    /// The writes that make the kernel's table hold the index's entry for each of `keys`.
    fn writes(&self, table: &ServiceTable, keys: impl IntoIterator<Item = ServiceKey>) -> Writes {
        let mut writes = Writes::default();
        let Writes {
            upserts,
            removals,
            unchanged,
        } = &mut writes;
        for key in keys {
            match (self.index.entry(&key), table.get(&key)) {
                (Some(want), Some(have)) if want == have => *unchanged += 1,
                (Some(want), _) => upserts.push(want.clone()),
                (None, Some(_)) => removals.push(key),
                (None, None) => {}
            }
        }
        writes
    }
}

/// What the sync loop translates for: this node, the addresses no Service may claim as external, and
/// how often the safety net runs.
#[derive(Clone, Debug)]
pub struct SyncSettings {
    pub node: String,
    pub reserved: ReservedAddresses,
    pub resync_every: Duration,
    /// How remote nodes are reached; `None` when the overlay is off (REMOTE_V1 is left alone).
    pub overlay: Option<Routing>,
    /// The cluster DNS zone this node serves, and the Service it answers itself (`None`: no DNS).
    pub dns: Option<(DnsSettings, NodeLocalDns)>,
}

/// Runs until aborted, NetworkPolicy off (the policy maps emptied). `origin` names the source in logs
/// (a directory, or the API server).
pub async fn run<M: DataplaneOwner>(
    source: BoxedSource,
    origin: String,
    settings: SyncSettings,
    manager: Arc<Mutex<M>>,
    clock: SyncClock,
) {
    run_with_policy(
        source,
        origin,
        settings,
        None,
        FlowNames::default(),
        manager,
        clock,
    )
    .await;
}

/// Runs until aborted, enforcing NetworkPolicy with `policy` (`None`: off, and the policy maps are
/// emptied). The source must then carry every Pod of the cluster, the Namespaces and the
/// NetworkPolicies. Each rebuild of the policy tables publishes the names flow verdicts are told
/// with to `names`.
pub async fn run_with_policy<M: DataplaneOwner>(
    source: BoxedSource,
    origin: String,
    settings: SyncSettings,
    policy: Option<PolicySettings>,
    names: FlowNames,
    manager: Arc<Mutex<M>>,
    clock: SyncClock,
) {
    let resync_every = settings.resync_every;
    let Some(mut table) = adopt_kernel_table(&manager).await else {
        return;
    };
    let mut policy_writer = PolicyWriter::start(policy.is_some(), &manager).await;
    // The agent runs in the node's network namespace: health checks are answered on every node address.
    let mut health = HealthServer::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let policy = policy.map(|settings| PolicyState::new(settings).publishing(names));
    let mut model = Some(Model::new(source, settings, policy));
    // Frontends not yet written: kept across turns when a write fails, so it is retried.
    let mut pending: BTreeSet<ServiceKey> = BTreeSet::new();
    let mut pace = Pace::Idle;
    let mut last_resync = Instant::now();
    let (mut events_since_trim, mut dns_writer) = (0, DnsMapWriter::default());
    // Frontends the kernel refused, with the last error logged for each.
    let mut refusing: HashMap<ServiceKey, String> = HashMap::new();
    // The kernel's table changed since `/services` was last published: it is rebuilt once a burst
    // of changes is over, not on every turn of it (the listing is O(frontends)).
    let mut listing_stale = false;
    loop {
        if pace == Pace::Settle {
            tokio::time::sleep(SETTLE).await;
        }
        let wait = pace.wait();
        // The batch holds every change the source had heard of when it was asked, so once it is in
        // the data path, everything written before this instant is.
        let turn_started = now_ms();
        let resync = last_resync.elapsed() >= resync_every;
        if resync {
            last_resync = Instant::now();
        }
        let Some(mut current) = model.take() else {
            return;
        };
        let turned = tokio::task::spawn_blocking(move || {
            let turn = current.turn(wait, resync);
            (current, turn)
        })
        .await;
        let Ok((mut current, turn)) = turned else {
            tracing::error!("the object source panicked; service sync stops");
            return;
        };
        for error in &turn.errors {
            tracing::warn!(source = %origin, "skipped: {error}");
        }
        clock.metrics.failed(SyncError::Source, turn.errors.len());
        pace = pace.after(&turn);
        pending.extend(turn.touched.iter().copied());
        if turn.drift.is_some() {
            // The kernel's table is checked in full too.
            pending.extend(table.entries().map(|e| e.key));
            pending.extend(current.index.entries().iter().map(|e| e.key));
        }
        if !pending.is_empty() {
            let writes = current.writes(&table, pending.iter().copied());
            if let Some(refused) = write_pending(&manager, &mut table, writes, &turn, &clock).await
            {
                pending.clear();
                pending.extend(refused.iter().map(|(key, _)| *key));
                clock.metrics.failed(SyncError::Refused, refused.len());
                report_refused(&current.index, refused, &mut refusing);
            } else {
                clock.metrics.failed(SyncError::Write, 1);
            }
            listing_stale = true;
            clock.metrics.set_size(ModelSize {
                services: current.index.services(),
                frontends: table.len(),
                backends: table.entries().map(|e| e.backends.len()).sum(),
            });
        }
        if let Some(drift) = turn.drift {
            tracing::info!(drift, frontends = table.len(), "resync done");
        }
        write_side_tables(&manager, &turn, &mut dns_writer).await;
        if !policy_writer.step(turn.policy, &manager).await {
            // Nothing can enforce policy here: stop building tables.
            current.policy = None;
        }
        // After the data path, as kube-proxy updates its health server after its rules: a load balancer
        // hears of local endpoints once they can be reached.
        match turn.health {
            Some(checks) => health.reconcile(&checks).await,
            None => health.retry().await,
        }
        // Nothing pending but what the kernel refuses (logged by Service, retried): everything else
        // written before this turn began is in the data path.
        if current.built
            && pending.iter().all(|key| refusing.contains_key(key))
            && !policy_writer.is_pending()
        {
            clock.last_ms.store(turn_started, Ordering::SeqCst);
        }
        // Once a burst of events (a first sync arrives over many turns) has passed.
        events_since_trim += turn.events;
        if turn.events == 0 && events_since_trim >= TRIM_AFTER_EVENTS {
            release_freed_memory();
            events_since_trim = 0;
        }
        if listing_stale && pace != Pace::Now {
            clock.services.publish(table.entries().map(|e| {
                let owner = current.index.owner(&e.key);
                (e, owner.map(|owner| owner.to_string()))
            }));
            listing_stale = false;
        }
        model = Some(current);
        if pace == Pace::Now {
            tokio::task::yield_now().await;
        }
    }
}

/// Writes the tables a turn rebuilt besides the services': the overlay's routes, the DNS fast path's
/// records.
async fn write_side_tables<M: DataplaneOwner>(
    manager: &Mutex<M>,
    turn: &Turn,
    dns_writer: &mut DnsMapWriter,
) {
    if let Some(routes) = &turn.remote_routes {
        write_remote_routes(manager, routes).await;
    }
    if let Some(records) = &turn.dns_records {
        let resync = turn.drift.is_some();
        dns_writer.write(manager.lock().await.dataplane_mut(), records, resync);
    }
}

/// Makes REMOTE_V1 lead to the nodes the store holds; logs what changed (a failure is logged, and the
/// next Node event or resync writes again).
async fn write_remote_routes<M: DataplaneOwner>(manager: &Mutex<M>, routes: &[RemoteRoute]) {
    match manager
        .lock()
        .await
        .dataplane_mut()
        .sync_remote_routes(routes)
    {
        Ok(report) if report.written + report.removed > 0 => {
            tracing::info!(
                prefixes = routes.len(),
                written = report.written,
                removed = report.removed,
                "overlay routes to the other nodes updated"
            );
        }
        Ok(_) => {}
        Err(error) => {
            tracing::warn!(%error, "writing the overlay routes failed; retried on the next change");
        }
    }
}

/// The service entries already in the kernel (a restart adopts them); `None` (logged) when the maps
/// cannot be read, and service sync is off.
async fn adopt_kernel_table<M: DataplaneOwner>(manager: &Mutex<M>) -> Option<ServiceTable> {
    match manager.lock().await.dataplane_mut().read_services() {
        Ok(table) => {
            tracing::info!(
                frontends = table.len(),
                "adopted service entries from the kernel"
            );
            Some(table)
        }
        Err(error) => {
            tracing::error!(%error, "cannot read the service maps; service sync is off");
            None
        }
    }
}

/// Logs the frontends the kernel refused, by Service, once per distinct error (they are retried every
/// turn), and the ones that went in after all.
fn report_refused(
    index: &ServiceIndex,
    refused: Vec<(ServiceKey, String)>,
    refusing: &mut HashMap<ServiceKey, String>,
) {
    let name = |key: &ServiceKey| {
        index
            .owner(key)
            .map_or_else(|| "(none)".to_owned(), |owner| owner.to_string())
    };
    let now: HashMap<ServiceKey, String> = refused.into_iter().collect();
    for (key, error) in &now {
        if refusing.get(key) != Some(error) {
            tracing::warn!(
                service = %name(key),
                frontend = ?key,
                %error,
                "cannot write this frontend into the data path; every other one is in place, retrying"
            );
        }
    }
    for key in refusing.keys().filter(|k| !now.contains_key(*k)) {
        tracing::info!(service = %name(key), frontend = ?key, "frontend written after all");
    }
    *refusing = now;
}

/// Writes the index's entries for pending frontends into the kernel; `None` when the write failed as a
/// whole (the loop keeps them all pending and tries again), else the frontends the kernel refused (with
/// why), the others being in place.
async fn write_pending<M: DataplaneOwner>(
    manager: &Mutex<M>,
    table: &mut ServiceTable,
    writes: Writes,
    turn: &Turn,
    clock: &SyncClock,
) -> Option<Vec<(ServiceKey, String)>> {
    let Writes {
        upserts,
        removals,
        unchanged,
    } = writes;
    let started = Instant::now();
    let result = if upserts.is_empty() && removals.is_empty() {
        Ok(SyncReport::default())
    } else {
        manager
            .lock()
            .await
            .dataplane_mut()
            .apply_services(table, &upserts, &removals)
    };
    match result {
        Ok(sync) => {
            let micros = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
            let write_us = micros(started.elapsed());
            let latency_us = turn.noticed.map_or(write_us, |n| micros(n.elapsed()));
            if sync.added + sync.updated + sync.removed > 0 {
                clock.metrics.synced(
                    Duration::from_micros(latency_us),
                    Duration::from_micros(write_us),
                );
            }
            clock.record(SyncRecord {
                at_ms: now_ms(),
                latency_us,
                write_us,
                events: turn.events,
                services: turn.retranslated,
                added: sync.added,
                updated: sync.updated,
                removed: sync.removed,
                frontends: table.len(),
            });
            tracing::info!(
                frontends = table.len(),
                added = sync.added,
                updated = sync.updated,
                removed = sync.removed,
                unchanged,
                events = turn.events,
                services = turn.retranslated,
                took_ms = started.elapsed().as_millis(),
                latency_us,
                refused = sync.failed.len(),
                "services synced"
            );
            Some(
                sync.failed
                    .into_iter()
                    .map(|(key, error)| (key, error.to_string()))
                    .collect(),
            )
        }
        Err(error) => {
            tracing::error!(%error, "service sync failed; retrying");
            None
        }
    }
}
