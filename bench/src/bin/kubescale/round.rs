//! One kubescale round: a fresh stand-in server process and a fresh source. The first sync (time to
//! ready, peak and settled heap, RSS), a sustained stream of changes in segments (the heap settled after
//! each), the periodic relist (its peak, and that it finds nothing the watches missed), then a check
//! of every object in the store and of what is left once the source is gone.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use serde::Serialize;
use strait_control::model::KubeSource;
use strait_control::model::kube_source::KubeSourceOptions;
use strait_k8s::{Kind, ObjectStore};

use crate::agent::Consumer;
use crate::cluster::{self, Change, Scale};
use crate::heap::{self, Resident};
use crate::serve::ServerProcess;

/// The node the source plays (in policy mode it watches every Pod anyway).
const NODE: &str = "node-0000";
/// How long the agent side is left alone before a settled figure is read.
const SETTLE: Duration = Duration::from_millis(500);

/// What a round does.
#[derive(Clone, Debug)]
pub struct Settings {
    pub scale: Scale,
    pub options: KubeSourceOptions,
    pub segments: usize,
    pub changes_per_segment: usize,
    pub rate_hz: f64,
    pub timeout: Duration,
}

/// Heap (above what was live before the source started) and the process's resident set.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Memory {
    /// The most heap live at once during the phase.
    pub peak_heap: usize,
    /// Heap live once the phase was over and the agent side quiet.
    pub settled_heap: usize,
    pub resident: Resident,
}

/// One segment of the stream of changes.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Segment {
    pub changes: usize,
    /// Watch events (a re-created Pod is two).
    pub events: usize,
    pub sent_hz: f64,
    /// From the last send until every event was in the store.
    pub caught_up_ms: f64,
    pub memory: Memory,
}

/// The periodic relist of every kind.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Relist {
    /// From the end of the stream until every kind had relisted.
    pub after_s: f64,
    /// Store events the relists yielded (nothing was missed: 0).
    pub events: usize,
    pub memory: Memory,
}

/// What one round measured.
#[derive(Clone, Debug, Serialize)]
pub struct Round {
    pub objects: usize,
    pub ready_s: f64,
    pub first_sync: Memory,
    /// The store's encoded objects.
    pub store_bytes: usize,
    pub max_queued: usize,
    /// The most keys of unfinished lists the source tracked at once (it holds no listed object).
    pub max_listing: usize,
    pub stream: Vec<Segment>,
    pub relist: Relist,
    /// Heap still live (above the start) once the source, its runtime and the store were dropped.
    pub after_teardown_heap: isize,
}

impl Round {
    /// Settled heap per object after the first sync.
    pub fn bytes_per_object(&self) -> f64 {
        crate::count_f64(self.first_sync.settled_heap) / crate::count_f64(self.objects.max(1))
    }
}

/// Waits (polling every 5 ms) until `done` gives a value, up to `timeout`.
fn wait_for<T>(
    timeout: Duration,
    what: &str,
    mut done: impl FnMut() -> Option<T>,
) -> anyhow::Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = done() {
            return Ok(value);
        }
        if Instant::now() > deadline {
            bail!("not {what} within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Waits until the source has nothing queued or half-listed, lets it rest, and reads the memory.
fn settle(consumer: &Consumer, baseline: usize, timeout: Duration) -> anyhow::Result<Memory> {
    wait_for(timeout, "quiet", || {
        let seen = consumer.seen();
        (seen.queued == 0 && seen.listing == 0).then_some(())
    })?;
    std::thread::sleep(SETTLE);
    Ok(Memory {
        peak_heap: heap::peak().saturating_sub(baseline),
        settled_heap: heap::current().saturating_sub(baseline),
        resident: heap::resident(),
    })
}

/// Runs one round.
pub fn run(settings: &Settings) -> anyhow::Result<Round> {
    let scale = &settings.scale;
    let mut server = ServerProcess::start(scale)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let config = kube::Config::new(server.url.parse().context("the server's URL")?);
    let client = {
        let _guard = runtime.enter();
        kube::Client::try_from(config).context("building the kube client")?
    };
    let baseline = heap::current();
    heap::reset_peak();
    let started = Instant::now();
    let source = {
        let _guard = runtime.enter();
        KubeSource::with_options(client, NODE, true, &settings.options)
    };
    let consumer = Consumer::start(source, started);
    let ready = wait_for(settings.timeout, "ready", || consumer.seen().ready_after)?;
    check_counts(&consumer.seen().store, scale)?;
    let first_sync = settle(&consumer, baseline, settings.timeout)?;
    let lists_at_ready = consumer.seen().lists.clone();

    let stream = run_stream(settings, &mut server, &consumer, baseline)?;
    ensure!(
        consumer.seen().lists == lists_at_ready,
        "a periodic relist came during the stream (the stand-in server does not replay a watch from \
         its version, so changes could be lost): raise --relist-s"
    );
    let relist = run_relist(settings, &consumer, baseline, &lists_at_ready)?;
    let changes = settings.segments * settings.changes_per_segment;
    let (store_bytes, max_queued, max_listing) = {
        let seen = consumer.seen();
        verify(&seen.store, scale, changes)?;
        ensure!(
            seen.errors.is_empty(),
            "the source reported {:?}",
            seen.errors
        );
        (
            seen.store.encoded_bytes(),
            seen.max_queued,
            seen.max_listing,
        )
    };
    drop(consumer);
    drop(runtime);
    drop(server);
    let after = heap::current();
    Ok(Round {
        objects: scale.objects(),
        ready_s: ready.as_secs_f64(),
        first_sync,
        store_bytes,
        max_queued,
        max_listing,
        stream,
        relist,
        after_teardown_heap: isize::try_from(after).unwrap_or(isize::MAX)
            - isize::try_from(baseline).unwrap_or(isize::MAX),
    })
}

/// The stream of changes, segment by segment.
fn run_stream(
    settings: &Settings,
    server: &mut ServerProcess,
    consumer: &Consumer,
    baseline: usize,
) -> anyhow::Result<Vec<Segment>> {
    let mut segments = Vec::new();
    for segment in 0..settings.segments {
        heap::reset_peak();
        let before = consumer.seen().change_events;
        let first = segment * settings.changes_per_segment;
        let (events, seconds) =
            server.stream(first, settings.changes_per_segment, settings.rate_hz)?;
        let sent = Instant::now();
        wait_for(settings.timeout, "every change applied", || {
            (consumer.seen().change_events >= before + events).then_some(())
        })?;
        let caught_up = sent.elapsed();
        let applied = consumer.seen().change_events - before;
        ensure!(
            applied == events,
            "{events} watch events made {applied} store events"
        );
        segments.push(Segment {
            changes: settings.changes_per_segment,
            events,
            sent_hz: crate::count_f64(settings.changes_per_segment) / seconds.max(1e-9),
            caught_up_ms: caught_up.as_secs_f64() * 1e3,
            memory: settle(consumer, baseline, settings.timeout)?,
        });
    }
    Ok(segments)
}

/// Waits for every kind's periodic relist.
fn run_relist(
    settings: &Settings,
    consumer: &Consumer,
    baseline: usize,
    lists_at_ready: &BTreeMap<Kind, usize>,
) -> anyhow::Result<Relist> {
    heap::reset_peak();
    let events_before = consumer.seen().list_events;
    let start = Instant::now();
    let timeout = settings.options.relist_every.mul_f64(1.2) + settings.timeout;
    wait_for(timeout, "relisted", || {
        let seen = consumer.seen();
        lists_at_ready
            .iter()
            .all(|(kind, n)| seen.lists.get(kind).copied().unwrap_or(0) > *n)
            .then_some(())
    })?;
    let after = start.elapsed();
    let memory = settle(consumer, baseline, settings.timeout)?;
    let events = consumer.seen().list_events - events_before;
    ensure!(
        events == 0,
        "the relists found {events} differences the watches had missed"
    );
    Ok(Relist {
        after_s: after.as_secs_f64(),
        events,
        memory,
    })
}

/// Fails unless the store holds every object of `scale`.
fn check_counts(store: &ObjectStore, scale: &Scale) -> anyhow::Result<()> {
    let want = [
        (Kind::Service, scale.services),
        (Kind::EndpointSlice, scale.services),
        (Kind::Node, scale.nodes),
        (Kind::Pod, scale.pods),
        (Kind::Namespace, scale.namespaces),
        (Kind::NetworkPolicy, scale.policies.min(scale.namespaces)),
    ];
    for (kind, count) in want {
        let have = store.count(kind);
        ensure!(have == count, "the store holds {have} of {count} {kind:?}s");
    }
    Ok(())
}

/// The index in a generated name's last `-`-separated part.
fn index_of(name: &str, suffix: &str) -> Option<usize> {
    name.strip_suffix(suffix)?.rsplit('-').next()?.parse().ok()
}

fn rev_of(labels: Option<&BTreeMap<String, String>>) -> Option<usize> {
    labels?.get("rev")?.parse().ok()
}

/// Fails unless the store holds every object of `scale` at the revision the first `changes` changes
/// left it at.
fn verify(store: &ObjectStore, scale: &Scale, changes: usize) -> anyhow::Result<()> {
    check_counts(store, scale)?;
    let (mut pods, mut slices, mut services) = (BTreeMap::new(), BTreeMap::new(), BTreeMap::new());
    for k in 0..changes {
        match cluster::change(k, scale) {
            Change::Pod(i) | Change::PodRecreated(i) => pods.insert(i, k + 1),
            Change::Slice(i) => slices.insert(i, k + 1),
            Change::Service(i) => services.insert(i, k + 1),
        };
    }
    let mut wrong = Vec::new();
    let mut check = |what: &str,
                     name: &str,
                     index: Option<usize>,
                     rev: Option<usize>,
                     want: &BTreeMap<usize, usize>| {
        let expected = index.map(|i| want.get(&i).copied().unwrap_or(0));
        if expected.is_none() || rev != expected {
            wrong.push(format!("{what} {name}: rev {rev:?}, expected {expected:?}"));
        }
    };
    for (key, pod) in store.pods() {
        let index = index_of(&key.name, "");
        check(
            "Pod",
            &key.name,
            index,
            rev_of(pod.metadata.labels.as_ref()),
            &pods,
        );
    }
    for (key, slice) in store.endpoint_slices() {
        let index = index_of(&key.name, "-bench");
        check(
            "EndpointSlice",
            &key.name,
            index,
            rev_of(slice.metadata.labels.as_ref()),
            &slices,
        );
    }
    for (key, service) in store.services() {
        let index = index_of(&key.name, "");
        check(
            "Service",
            &key.name,
            index,
            rev_of(service.metadata.labels.as_ref()),
            &services,
        );
    }
    ensure!(
        wrong.is_empty(),
        "{} objects differ from what the API server holds, e.g. {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(5)]
    );
    Ok(())
}
