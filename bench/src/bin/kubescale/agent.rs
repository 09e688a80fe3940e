//! The agent side of a round: the real [`KubeSource`] (policy mode: every Pod of the cluster) feeding
//! a real [`ObjectStore`] on a thread of its own, as the agent's sync loop does: each turn takes one
//! batch ([`ObjectSource::next_batch`], 100 ms wait), every change applied to the store as the source
//! hands it over, the store's events held in chunks of 256 (what the loop hands its indexes) and then
//! let go. What the thread saw is shared for the round to read.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use strait_control::model::{KubeSource, ObjectSource, SourceBatch, SourceChange};
use strait_k8s::{Kind, ObjectStore};

/// Events held before they are let go (the sync loop's chunk).
const EVENT_CHUNK: usize = 256;

/// What the consumer has seen.
#[derive(Debug, Default)]
pub struct Seen {
    pub store: ObjectStore,
    /// From the source's start until the batch that made it ready was applied.
    pub ready_after: Option<Duration>,
    /// Store events from watch changes (upserts and deletes).
    pub change_events: usize,
    /// Store events from `Replace`s (lists), and the lists per kind.
    pub list_events: usize,
    pub lists: BTreeMap<Kind, usize>,
    /// Messages queued ahead of the consumer and objects of unfinished lists held, after the last
    /// batch; and the most of each.
    pub queued: usize,
    pub listing: usize,
    pub max_queued: usize,
    pub max_listing: usize,
    /// The first few source errors.
    pub errors: Vec<String>,
}

/// The consumer thread; dropping it stops the thread and drops the source.
pub struct Consumer {
    seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Consumer {
    /// Starts consuming `source` (started at `started`).
    pub fn start(source: KubeSource, started: Instant) -> Self {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (seen, stop) = (Arc::clone(&seen), Arc::clone(&stop));
            std::thread::spawn(move || consume(source, started, &seen, &stop))
        };
        Self {
            seen,
            stop,
            thread: Some(thread),
        }
    }

    /// What the consumer has seen so far (it waits while this is held).
    pub fn seen(&self) -> MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn lock(seen: &Mutex<Seen>) -> MutexGuard<'_, Seen> {
    seen.lock().unwrap_or_else(PoisonError::into_inner)
}

fn consume(mut source: KubeSource, started: Instant, seen: &Mutex<Seen>, stop: &AtomicBool) {
    let mut events = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        {
            let mut seen = lock(seen);
            seen.max_queued = seen.max_queued.max(source.queued());
            seen.max_listing = seen.max_listing.max(source.listing());
        }
        let mut sink = |change: SourceChange| {
            let mut seen = lock(seen);
            let before = events.len();
            match change {
                SourceChange::Change(change) => {
                    events.extend(seen.store.apply(change));
                    seen.change_events += events.len() - before;
                }
                SourceChange::Replace(kind, objects) => {
                    events.extend(seen.store.replace(kind, objects));
                    seen.list_events += events.len() - before;
                    *seen.lists.entry(kind).or_default() += 1;
                }
            }
            if events.len() >= EVENT_CHUNK {
                events.clear();
            }
        };
        let mut batch = SourceBatch::with_sink(&mut sink);
        source.next_batch(Duration::from_millis(100), &mut batch);
        let errors = batch.errors;
        events.clear();
        let mut seen = lock(seen);
        (seen.queued, seen.listing) = (source.queued(), source.listing());
        seen.max_queued = seen.max_queued.max(seen.queued);
        seen.max_listing = seen.max_listing.max(seen.listing);
        if seen.ready_after.is_none() && source.is_ready() {
            seen.ready_after = Some(started.elapsed());
        }
        for error in errors {
            tracing::warn!("source: {error}");
            if seen.errors.len() < 8 {
                seen.errors.push(error);
            }
        }
    }
}
