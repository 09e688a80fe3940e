//! Flow verdicts for operators (issue #12): the data path reports each NetworkPolicy judgement on the
//! POLICY_EVENTS_V1 ring buffer; [`run`] drains it (woken by the kernel through the ring buffer's
//! descriptor, see `strait_dataplane::policy_events`), names each verdict's ends and policy with the
//! policy module's latest [`names::NameView`], and hands it to the [`FlowHub`]: the last [`RECENT`]
//! verdicts in memory, live ones broadcast to followers, and a count per direction and verdict for
//! `/metrics` (`strait_policy_verdicts_total`). [`serve`] answers `GET /flows` with them as
//! newline-delimited JSON ([`record::FlowRecord`]), filtered as [`query`] reads the request.
//!
//! Verdicts the kernel could not queue (the buffer full because the agent was down or slow) are lost;
//! the programs count them (POLICY_EVENTS_LOST_V1), the hub reads that count for `/metrics`
//! (`strait_policy_verdicts_lost_total`) and [`run`] logs it when it grows.

pub mod names;
pub mod query;
pub mod record;
pub mod serve;

use std::{
    collections::{BTreeMap, VecDeque},
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use strait_dataplane::policy_events::{AsyncPolicyEvents, Decision, Direction, PolicyLostReader};
use tokio::sync::broadcast;

pub use names::{FlowNames, NameView};
pub use query::{FlowFilter, FlowQuery};
pub use record::{Clocks, FlowRecord};

/// How many verdicts the agent keeps for `/flows`.
pub const RECENT: usize = 4096;

/// How many live verdicts a follower may fall behind before it misses some.
pub const LIVE_BACKLOG: usize = 1024;

/// One verdict count of `strait_policy_verdicts_total`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerdictCount {
    pub direction: Direction,
    pub decision: Decision,
    /// The namespace of the pod judged (the destination for ingress, the source for egress); empty
    /// when no pod of this node's view holds the address.
    pub namespace: String,
    pub count: u64,
}

/// The verdicts this agent has read: the recent ones, the live feed and the counts. Cheap to clone.
#[derive(Clone, Debug)]
pub struct FlowHub {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    node: String,
    /// The recent verdicts, oldest first, and the last sequence number given.
    recent: Mutex<(VecDeque<Arc<FlowRecord>>, u64)>,
    live: broadcast::Sender<Arc<FlowRecord>>,
    /// By direction (egress, ingress), decision (allowed, denied, audit) and the judged pod's
    /// namespace.
    counts: Mutex<BTreeMap<(usize, usize, String), u64>>,
    /// The kernel's count of verdicts the ring buffer had no room for.
    lost: Option<PolicyLostReader>,
}

fn direction_index(direction: Direction) -> usize {
    match direction {
        Direction::Egress => 0,
        Direction::Ingress => 1,
    }
}

fn decision_index(decision: Decision) -> usize {
    match decision {
        Decision::Allowed => 0,
        Decision::Denied => 1,
        Decision::Audit => 2,
    }
}

impl FlowHub {
    /// An empty hub for the agent of `node`.
    pub fn new(node: &str) -> Self {
        Self::with_lost(node, None)
    }

    /// An empty hub for the agent of `node` that reads the verdicts lost in the kernel with `lost`.
    pub fn with_lost(node: &str, lost: Option<PolicyLostReader>) -> Self {
        let (live, _) = broadcast::channel(LIVE_BACKLOG);
        Self {
            inner: Arc::new(Inner {
                node: node.to_owned(),
                recent: Mutex::new((VecDeque::with_capacity(RECENT), 0)),
                live,
                counts: Mutex::default(),
                lost,
            }),
        }
    }

    /// Verdicts the kernel had no room for in the ring buffer (since the pinned map was made), read
    /// now; `None` without a reader or when the map cannot be read.
    pub fn lost(&self) -> Option<u64> {
        self.inner.lost.as_ref()?.read().ok()
    }

    /// The node whose verdicts these are.
    pub fn node(&self) -> &str {
        &self.inner.node
    }

    /// Records `records` (in order): each gets the next sequence number, is counted, kept among the
    /// recent ones and sent to the followers.
    pub fn record(&self, records: impl IntoIterator<Item = (Direction, Decision, FlowRecord)>) {
        let mut guard = self
            .inner
            .recent
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let (recent, seq) = &mut *guard;
        let mut counts = self
            .inner
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for (direction, decision, mut record) in records {
            let judged = match direction {
                Direction::Ingress => &record.to,
                Direction::Egress => &record.from,
            };
            let namespace = judged
                .pod
                .as_deref()
                .and_then(|pod| pod.split_once('/'))
                .map_or_else(String::new, |(ns, _)| ns.to_owned());
            *counts
                .entry((
                    direction_index(direction),
                    decision_index(decision),
                    namespace,
                ))
                .or_default() += 1;
            *seq += 1;
            record.seq = *seq;
            let record = Arc::new(record);
            if recent.len() == RECENT {
                recent.pop_front();
            }
            recent.push_back(Arc::clone(&record));
            // No follower is not an error.
            let _ = self.inner.live.send(record);
        }
    }

    /// The recent verdicts after `since` that `filter` passes, oldest first, at most the last `limit`;
    /// with the last sequence number given so far.
    pub fn recent(
        &self,
        since: u64,
        filter: &FlowFilter,
        limit: Option<usize>,
    ) -> (Vec<Arc<FlowRecord>>, u64) {
        let guard = self
            .inner
            .recent
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let (recent, last) = &*guard;
        let mut out: Vec<_> = recent
            .iter()
            .filter(|r| r.seq > since && filter.matches(r))
            .cloned()
            .collect();
        if let Some(limit) = limit {
            out.drain(..out.len().saturating_sub(limit));
        }
        (out, *last)
    }

    /// The live feed, and the recent verdicts as [`FlowHub::recent`] gives them, taken together so
    /// that every verdict after `since` is in exactly one of the two (skip live ones up to the
    /// returned sequence number).
    pub fn follow(
        &self,
        since: u64,
        filter: &FlowFilter,
        limit: Option<usize>,
    ) -> (
        broadcast::Receiver<Arc<FlowRecord>>,
        Vec<Arc<FlowRecord>>,
        u64,
    ) {
        // Subscribing first: a verdict recorded in between is in both, and skipped live by its number.
        let live = self.inner.live.subscribe();
        let (recent, last) = self.recent(since, filter, limit);
        (live, recent, last)
    }

    /// Every count of `strait_policy_verdicts_total`, zeros included.
    ///
    /// Every direction and decision has a row for the empty namespace (verdicts about addresses no
    /// known pod holds, zero when there are none), so the family's series exist from the start.
    pub fn counts(&self) -> Vec<VerdictCount> {
        let counts = self
            .inner
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut out = Vec::new();
        for direction in Direction::ALL {
            for decision in Decision::ALL {
                let (d, v) = (direction_index(direction), decision_index(decision));
                out.push(VerdictCount {
                    direction,
                    decision,
                    namespace: String::new(),
                    count: counts.get(&(d, v, String::new())).copied().unwrap_or(0),
                });
                out.extend(
                    counts
                        .range((d, v, String::new())..(d, v + 1, String::new()))
                        .filter(|((_, _, ns), _)| !ns.is_empty())
                        .map(|((_, _, ns), count)| VerdictCount {
                            direction,
                            decision,
                            namespace: ns.clone(),
                            count: *count,
                        }),
                );
            }
        }
        out
    }
}

/// How long the reader lets verdicts gather after a batch before it waits for the next: the kernel
/// wakes the reader for the first verdict after it caught up, so without a pause each new connection
/// would cost the agent a wake-up (at 5,000 connections a second, a tenth of a 2-core node's CPU);
/// with it, a busy node's verdicts are read in at most 20 batches a second, and `strait flows
/// --follow` shows a verdict at most this much later. The buffer holds far more than a pause's worth.
pub const GATHER: Duration = Duration::from_millis(50);

/// How long the reader waits for the first names before it reads verdicts anyway (with policy off none
/// come: pods and policies are then not named).
pub const NAMES_PATIENCE: Duration = Duration::from_secs(15);

/// Drains the verdict ring buffer into `hub` until the task is dropped, a batch at most every
/// [`GATHER`], naming each verdict with the current view of `names`; starts once the first view is there (or after [`NAMES_PATIENCE`]), so
/// verdicts waiting from before a restart are named too. A read error (which epoll on a map
/// descriptor does not give in practice) ends it, logged.
pub async fn run(mut events: AsyncPolicyEvents, names: FlowNames, hub: FlowHub) {
    if !names.first(NAMES_PATIENCE).await {
        tracing::info!(
            "reading policy verdicts without names for pods and policies (network policy is off, or \
             the cluster's objects have not come yet)"
        );
    }
    let mut batch = Vec::new();
    let mut undecodable = 0;
    let mut lost = LostLog::new(hub.lost().unwrap_or(0));
    loop {
        batch.clear();
        if let Err(error) = events.next_batch(&mut batch).await {
            tracing::error!(%error, "reading the policy verdict ring buffer failed; flow verdicts stop");
            return;
        }
        let view = names.snapshot();
        let clocks = Clocks::now();
        hub.record(batch.iter().map(|verdict| {
            (
                verdict.direction,
                verdict.decision,
                FlowRecord::resolve(verdict, &view, hub.node(), &clocks),
            )
        }));
        if events.undecodable() != undecodable {
            undecodable = events.undecodable();
            tracing::warn!(
                undecodable,
                "policy verdicts this agent cannot read were skipped (is the eBPF object newer than \
                 the agent?)"
            );
        }
        if let Some(count) = hub.lost() {
            lost.observe(count);
        }
        tokio::time::sleep(GATHER).await;
    }
}

/// How often, at most, a growing count of lost verdicts is logged.
const LOST_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Logs the kernel's count of lost verdicts when it has grown, at most every [`LOST_LOG_INTERVAL`].
struct LostLog {
    logged: u64,
    at: Option<std::time::Instant>,
}

impl LostLog {
    /// Starting from `count` (lost before this agent started reading: not news).
    fn new(count: u64) -> Self {
        Self {
            logged: count,
            at: None,
        }
    }

    fn observe(&mut self, count: u64) {
        if count <= self.logged || self.at.is_some_and(|at| at.elapsed() < LOST_LOG_INTERVAL) {
            return;
        }
        tracing::warn!(
            lost = count - self.logged,
            total = count,
            "policy verdicts were lost: the ring buffer was full (the agent was down or slow); \
             strait_policy_verdicts_lost_total counts them"
        );
        self.logged = count;
        self.at = Some(std::time::Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(verdict: &'static str, port: u16) -> FlowRecord {
        record::example(Some("x/a"), Some("x/a"), verdict, port)
    }

    #[test]
    fn the_hub_numbers_counts_keeps_and_broadcasts() {
        let hub = FlowHub::new("n");
        let (mut live, recent, last) = hub.follow(0, &FlowFilter::default(), None);
        assert!(recent.is_empty());
        assert_eq!(last, 0);
        hub.record([
            (Direction::Egress, Decision::Allowed, record("allowed", 80)),
            (Direction::Ingress, Decision::Denied, record("denied", 81)),
        ]);
        assert_eq!(live.try_recv().unwrap().seq, 1);
        assert_eq!(live.try_recv().unwrap().seq, 2);
        let counts = hub.counts();
        // A zero row for every direction and decision, and one per namespace judged.
        assert_eq!(counts.len(), 6 + 2, "{counts:?}");
        let count = |direction, decision, namespace: &str| {
            counts
                .iter()
                .find(|c| {
                    c.direction == direction && c.decision == decision && c.namespace == namespace
                })
                .map(|c| c.count)
        };
        assert_eq!(count(Direction::Ingress, Decision::Denied, "x"), Some(1));
        assert_eq!(count(Direction::Ingress, Decision::Denied, ""), Some(0));
        assert_eq!(count(Direction::Egress, Decision::Allowed, "x"), Some(1));
        assert_eq!(count(Direction::Egress, Decision::Denied, ""), Some(0));
        assert_eq!(count(Direction::Egress, Decision::Denied, "x"), None);
        let denied = FlowFilter {
            verdict: Some("denied".into()),
            ..FlowFilter::default()
        };
        let (found, last) = hub.recent(0, &denied, None);
        assert_eq!((found.len(), found[0].seq, last), (1, 2, 2));
        assert_eq!(hub.recent(2, &FlowFilter::default(), None).0.len(), 0);
        let (limited, _) = hub.recent(0, &FlowFilter::default(), Some(1));
        assert_eq!(limited[0].seq, 2, "the last ones");
    }

    #[test]
    fn only_the_most_recent_are_kept() {
        let hub = FlowHub::new("n");
        hub.record(
            (0..RECENT + 10).map(|_| (Direction::Egress, Decision::Allowed, record("allowed", 80))),
        );
        let (recent, last) = hub.recent(0, &FlowFilter::default(), None);
        assert_eq!(recent.len(), RECENT);
        assert_eq!(recent[0].seq, 11);
        assert_eq!(last, u64::try_from(RECENT + 10).unwrap());
    }
}
