//! [`KubeSource`]: cluster objects from the Kubernetes API, as an [`ObjectSource`].
//!
//! One kube-runtime watcher per kind (Services, EndpointSlices, Nodes, and this node's Pods, selected by
//! `spec.nodeName`; for NetworkPolicy, every Pod of the cluster, the Namespaces and the
//! NetworkPolicies) runs in a background task and sends what it sees down one bounded queue: an object
//! applied or deleted on the open watch becomes a [`Change`]; a list (the first one, the relist after
//! `410 Gone`, and the periodic relist) is streamed ([`lists`]): each listed object goes on as an
//! upsert as it arrives, and when the list completes the objects of its kind it did not name go on as
//! deletes, so the store ends where a whole-list replace would have left it and yields only the
//! difference. Pods are kept as [`trim`](crate::policy::pods::trim) leaves them: a cluster has many,
//! and nothing else of them is read.
//!
//! Built for large clusters ([`KubeSourceOptions`] holds the values; [`Default`] is what the agent
//! runs with):
//!
//! - **Lists come in pages** of 500 (`limit=500`, client-go's size), so a watcher holds one page
//!   decoded at a time, never a whole 100,000-Pod response; each list is a consistent read
//!   (`resourceVersion` unset), then the watch starts from the list's version.
//! - **Watch bookmarks** are asked for (`allowWatchBookmarks=true`): the server moves a quiet watch's
//!   resource version along, so a watch that ends (every 290 s, the server's timeout, or a dropped
//!   connection) resumes from a recent version instead of one compacted away, which would cost a
//!   full relist.
//! - **Failures back off** with jitter ([`RetryPolicy`]: 0.8 s doubling to 30 s, each wait drawn
//!   between half of its step and all of it, the count reset after 2 min without a failure). The
//!   backoff is this module's own, not kube-runtime's `StreamBackoff`: that one resets on every
//!   successful event, and the watcher emits one (`Init`) before every list attempt, so a list the
//!   server keeps refusing would be retried at the first step forever. Every error is reported once.
//! - **Every kind is relisted** every 30 min, ±10 % drawn per kind and per relist (so the kinds, and
//!   a cluster's nodes, do not list together), by starting the kind's watcher over: the relist
//!   is streamed like the first, and whatever a broken watch missed (a delete, say) is corrected. A relist
//!   never interrupts a list in progress or a backoff. The cost is one paged list per kind and node
//!   per interval (served from the API server's watch cache where consistent reads from cache are
//!   on, Kubernetes 1.31 and later).
//! - **The queue is bounded**: it holds at most 4096 messages (one decoded object each, at most). A
//!   watcher waits for room without blocking its runtime thread, so a slow consumer holds the watchers
//!   back (and the API server's stream with them) instead of the queue growing. One batch takes at
//!   most as many changes as the queue holds; a list spans as many batches as it needs.
//!
//! What a list costs: the source keeps only keys (about 60 bytes each) and the queue at most 4096
//! decoded objects, so a list's transient heap does not grow with the cluster. `kubescale` (bench/)
//! measures it at 10,000 Services and 100,000 Pods (bench/RESULTS.md, "Kube source at scale"). An
//! earlier form collected each list whole into one replace: its objects waited decoded (some 12 KiB
//! per trimmed Pod, against 0.5 KiB encoded in the store), and the first sync and every relist peaked
//! at about 1.3 GiB of heap.
//!
//! The source is not [ready](ObjectSource::is_ready) before every watcher has completed its first
//! list (until then a partial view could take services away).

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::runtime::watcher::{self, InitialListStrategy, ListSemantic};
use kube::{Api, Client};
use strait_k8s::{Change, Kind, Object};
use tokio::task::JoinSet;

use super::source::{ObjectSource, SourceBatch, SourceChange};
use crate::policy::pods::trim;
use lists::ListTracker;

mod lists;
#[cfg(test)]
mod mock_api;
mod queue;
mod retry;
#[cfg(test)]
mod tests;
mod watch;

pub use retry::RetryPolicy;

/// Watch errors kept for one batch; later ones are only counted (each is logged as it happens).
const MAX_BATCH_ERRORS: usize = 16;

/// What a watcher task tells the source.
#[derive(Debug)]
enum Message {
    Applied(Object),
    Deleted(Object),
    ListStarted(Kind),
    Listed(Object),
    ListDone(Kind),
    Failed(String),
}

/// How the watchers list, retry and relist, and how much they may queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KubeSourceOptions {
    /// Objects per list page (`limit`).
    pub page_size: u32,
    /// How long the server keeps a watch open before ending it (the watcher then resumes from its last
    /// version), in seconds.
    pub watch_timeout_s: u32,
    /// How often each kind is listed again, ±10 %.
    pub relist_every: Duration,
    /// Waiting after a failed list or watch.
    pub retry: RetryPolicy,
    /// Messages (an object each, or a list's start or end, or an error) the watchers may queue ahead of
    /// the consumer; also the most changes one batch takes.
    pub queue_capacity: usize,
}

impl Default for KubeSourceOptions {
    fn default() -> Self {
        Self {
            page_size: 500,
            watch_timeout_s: 290,
            relist_every: Duration::from_mins(30),
            retry: RetryPolicy::default(),
            queue_capacity: 4096,
        }
    }
}

impl KubeSourceOptions {
    /// The watcher configuration every kind shares (the pod watcher adds its field selector), every
    /// value spelled out rather than left to kube-runtime's defaults.
    fn watcher_config(&self) -> watcher::Config {
        watcher::Config {
            label_selector: None,
            field_selector: None,
            timeout: Some(self.watch_timeout_s),
            list_semantic: ListSemantic::MostRecent,
            initial_list_strategy: InitialListStrategy::ListWatch,
            page_size: Some(self.page_size),
            bookmarks: true,
        }
    }
}

/// Cluster objects from the Kubernetes API, kept current by watchers running on the tokio runtime that
/// [`start`](Self::start) was called on. Dropping the source stops them.
#[derive(Debug)]
pub struct KubeSource {
    messages: queue::QueueReceiver<Message>,
    /// Kinds whose first list has not completed yet.
    unlisted: Vec<Kind>,
    /// The keys handed on, and those named by lists in progress.
    lists: ListTracker,
    /// Dropping the set aborts the watcher tasks.
    _tasks: JoinSet<()>,
}

impl KubeSource {
    /// Starts watching through `client`: every Service, EndpointSlice and Node, and the Pods scheduled
    /// to `node_name` (what Services need; no NetworkPolicy).
    ///
    /// # Panics
    ///
    /// When called outside a tokio runtime.
    pub fn start(client: Client, node_name: &str) -> Self {
        Self::with_options(client, node_name, false, &KubeSourceOptions::default())
    }

    /// [`start`](Self::start), and what NetworkPolicy needs besides: every Pod of the cluster (a
    /// policy names pods anywhere), every Namespace and every NetworkPolicy.
    ///
    /// # Panics
    ///
    /// When called outside a tokio runtime.
    pub fn start_for_policy(client: Client, node_name: &str) -> Self {
        Self::with_options(client, node_name, true, &KubeSourceOptions::default())
    }

    /// [`start`](Self::start) (with `policy`, [`start_for_policy`](Self::start_for_policy)) with
    /// `options` instead of the defaults.
    ///
    /// # Panics
    ///
    /// When called outside a tokio runtime.
    pub fn with_options(
        client: Client,
        node_name: &str,
        policy: bool,
        options: &KubeSourceOptions,
    ) -> Self {
        let (sender, messages) = queue::bounded(options.queue_capacity);
        let mut tasks = JoinSet::new();
        let all = options.watcher_config();
        let pods = if policy {
            all.clone()
        } else {
            all.clone().fields(&format!("spec.nodeName={node_name}"))
        };
        let watchers = watch::Watchers {
            queue: sender,
            retry: options.retry,
            relist_every: options.relist_every,
        };
        watchers.spawn::<Service>(&mut tasks, Api::all(client.clone()), &all, unchanged);
        watchers.spawn::<EndpointSlice>(&mut tasks, Api::all(client.clone()), &all, unchanged);
        watchers.spawn::<Node>(&mut tasks, Api::all(client.clone()), &all, unchanged);
        watchers.spawn::<Pod>(&mut tasks, Api::all(client.clone()), &pods, trim);
        let mut unlisted = vec![Kind::Service, Kind::EndpointSlice, Kind::Node, Kind::Pod];
        if policy {
            watchers.spawn::<Namespace>(&mut tasks, Api::all(client.clone()), &all, unchanged);
            watchers.spawn::<NetworkPolicy>(&mut tasks, Api::all(client), &all, unchanged);
            unlisted.extend([Kind::Namespace, Kind::NetworkPolicy]);
        }
        Self {
            messages,
            unlisted,
            lists: ListTracker::default(),
            _tasks: tasks,
        }
    }

    /// [`start`](Self::start)s (with `policy`, [`start_for_policy`](Self::start_for_policy)) with the
    /// client `kube` infers from the environment: the in-cluster service account when running in a
    /// pod, else the current kubeconfig context.
    pub async fn try_default(node_name: &str, policy: bool) -> Result<Self, kube::Error> {
        Ok(Self::with_options(
            Client::try_default().await?,
            node_name,
            policy,
            &KubeSourceOptions::default(),
        ))
    }

    /// Messages the watchers have queued and the consumer not yet taken (at most
    /// [`KubeSourceOptions::queue_capacity`]).
    pub fn queued(&self) -> usize {
        self.messages.len()
    }

    /// Keys named so far by the lists in progress (the objects themselves went on as they came).
    pub fn listing(&self) -> usize {
        self.lists.in_progress()
    }

    fn take(&mut self, message: Message, batch: &mut SourceBatch<'_>, dropped: &mut usize) {
        match message {
            Message::Applied(object) => {
                self.lists.applied(object.key());
                batch.push(SourceChange::Change(Change::Upsert(object)));
            }
            Message::Deleted(object) => {
                let key = object.key();
                self.lists.deleted(&key);
                batch.push(SourceChange::Change(Change::Delete(key)));
            }
            Message::ListStarted(kind) => self.lists.started(kind),
            Message::Listed(object) => {
                self.lists.listed(object.key());
                batch.push(SourceChange::Change(Change::Upsert(object)));
            }
            Message::ListDone(kind) => {
                for key in self.lists.done(kind) {
                    batch.push(SourceChange::Change(Change::Delete(key)));
                }
                self.unlisted.retain(|k| *k != kind);
            }
            Message::Failed(error) => {
                if batch.errors.len() < MAX_BATCH_ERRORS {
                    batch.errors.push(error);
                } else {
                    *dropped += 1;
                }
            }
        }
    }
}

impl ObjectSource for KubeSource {
    /// Waits for the first message, then takes the messages already queued, up to as many changes as
    /// the queue holds (a list longer than that spans several batches).
    fn next_batch(&mut self, timeout: Duration, batch: &mut SourceBatch<'_>) {
        let mut dropped = 0;
        let Some(first) = self.messages.recv_timeout(timeout) else {
            return;
        };
        batch.noticed = Some(Instant::now());
        let (start, limit) = (batch.count, self.messages.capacity());
        self.take(first, batch, &mut dropped);
        while batch.count - start < limit {
            let Some(message) = self.messages.try_recv() else {
                break;
            };
            self.take(message, batch, &mut dropped);
        }
        if dropped > 0 {
            batch
                .errors
                .push(format!("{dropped} more watch errors (see the log)"));
        }
    }

    fn is_ready(&self) -> bool {
        self.unlisted.is_empty()
    }

    /// The watchers relist on their own (periodically, and after `410 Gone`); between those, the
    /// watch is the truth, so there is nothing to look at again here.
    fn resync(&mut self, _batch: &mut SourceBatch<'_>) {}
}

/// What the store keeps of most kinds: the object as served (slimmed by the store).
fn unchanged<K>(object: K) -> K {
    object
}
