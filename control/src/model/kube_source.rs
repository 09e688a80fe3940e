//! [`KubeSource`]: cluster objects from the Kubernetes API, as an [`ObjectSource`].
//!
//! One kube-runtime watcher per kind (Services, EndpointSlices, Nodes, and this node's Pods, selected by
//! `spec.nodeName`; for NetworkPolicy, every Pod of the cluster, the Namespaces and the
//! NetworkPolicies) runs in a background task and sends what it sees down one channel: an object
//! applied or deleted on the open watch becomes a [`Change`]; a list (the first one, and the relist
//! after `410 Gone`) is collected until it is complete and becomes one [`SourceChange::Replace`], so
//! the store swaps the kind's contents in whole and yields only the difference. The watcher lists,
//! then watches from the list's resource version; when a watch stream ends it resumes from the last
//! version seen. Errors are retried with the watcher's default backoff and reported once each. Pods
//! are kept as [`trim`](crate::policy::pods::trim) leaves them: a cluster has many, and nothing else of
//! them is read.
//!
//! The source is not [ready](ObjectSource::is_ready) before every watcher has completed its first
//! list (until then a partial view could take services away).

use std::fmt::Debug;
use std::pin::pin;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use serde::de::DeserializeOwned;
use strait_k8s::{Change, Kind, Object};
use tokio::task::JoinSet;

use super::source::{ObjectSource, SourceBatch, SourceChange};
use crate::policy::pods::trim;

#[cfg(test)]
mod mock_api;
#[cfg(test)]
mod tests;

/// Watch errors kept for one batch; later ones are only counted (each is logged as it happens).
const MAX_BATCH_ERRORS: usize = 16;

/// What a watcher task tells the source.
#[derive(Debug)]
enum Message {
    Applied(Object),
    Deleted(Object),
    ListStarted(Kind),
    Listed(Kind, Object),
    ListDone(Kind),
    Failed(String),
}

/// Cluster objects from the Kubernetes API, kept current by watchers running on the tokio runtime that
/// [`start`](Self::start) was called on. Dropping the source stops them.
#[derive(Debug)]
pub struct KubeSource {
    messages: Receiver<Message>,
    /// Kinds whose first list has not completed yet.
    unlisted: Vec<Kind>,
    /// Lists in progress, by kind.
    listing: Vec<(Kind, Vec<Object>)>,
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
        Self::start_with(client, node_name, false)
    }

    /// [`start`](Self::start), and what NetworkPolicy needs besides: every Pod of the cluster (a
    /// policy names pods anywhere), every Namespace and every NetworkPolicy.
    ///
    /// # Panics
    ///
    /// When called outside a tokio runtime.
    pub fn start_for_policy(client: Client, node_name: &str) -> Self {
        Self::start_with(client, node_name, true)
    }

    fn start_with(client: Client, node_name: &str, policy: bool) -> Self {
        let (sender, messages) = mpsc::channel();
        let mut tasks = JoinSet::new();
        let all = watcher::Config::default();
        let pods = if policy {
            all.clone()
        } else {
            all.clone().fields(&format!("spec.nodeName={node_name}"))
        };
        spawn::<Service>(
            &mut tasks,
            &sender,
            Api::all(client.clone()),
            &all,
            unchanged,
        );
        spawn::<EndpointSlice>(
            &mut tasks,
            &sender,
            Api::all(client.clone()),
            &all,
            unchanged,
        );
        spawn::<Node>(
            &mut tasks,
            &sender,
            Api::all(client.clone()),
            &all,
            unchanged,
        );
        spawn::<Pod>(&mut tasks, &sender, Api::all(client.clone()), &pods, trim);
        let mut unlisted = vec![Kind::Service, Kind::EndpointSlice, Kind::Node, Kind::Pod];
        if policy {
            spawn::<Namespace>(
                &mut tasks,
                &sender,
                Api::all(client.clone()),
                &all,
                unchanged,
            );
            spawn::<NetworkPolicy>(&mut tasks, &sender, Api::all(client), &all, unchanged);
            unlisted.extend([Kind::Namespace, Kind::NetworkPolicy]);
        }
        Self {
            messages,
            unlisted,
            listing: Vec::new(),
            _tasks: tasks,
        }
    }

    /// [`start`](Self::start)s (with `policy`, [`start_for_policy`](Self::start_for_policy)) with the
    /// client `kube` infers from the environment: the in-cluster service account when running in a
    /// pod, else the current kubeconfig context.
    pub async fn try_default(node_name: &str, policy: bool) -> Result<Self, kube::Error> {
        Ok(Self::start_with(
            Client::try_default().await?,
            node_name,
            policy,
        ))
    }

    fn take(&mut self, message: Message, batch: &mut SourceBatch<'_>, dropped: &mut usize) {
        match message {
            Message::Applied(object) => batch.push(SourceChange::Change(Change::Upsert(object))),
            Message::Deleted(object) => {
                batch.push(SourceChange::Change(Change::Delete(object.key())));
            }
            Message::ListStarted(kind) => {
                self.listing.retain(|(k, _)| *k != kind);
                self.listing.push((kind, Vec::new()));
            }
            Message::Listed(kind, object) => {
                if let Some((_, objects)) = self.listing.iter_mut().find(|(k, _)| *k == kind) {
                    objects.push(object);
                }
            }
            Message::ListDone(kind) => {
                let position = self.listing.iter().position(|(k, _)| *k == kind);
                let objects = position.map_or_else(Vec::new, |i| self.listing.remove(i).1);
                self.unlisted.retain(|k| *k != kind);
                batch.push(SourceChange::Replace(kind, objects));
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
    /// Waits for the first message, then takes every message already queued.
    fn next_batch(&mut self, timeout: Duration, batch: &mut SourceBatch<'_>) {
        let mut dropped = 0;
        let first = match self.messages.recv_timeout(timeout) {
            Ok(message) => message,
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return,
        };
        batch.noticed = Some(Instant::now());
        self.take(first, batch, &mut dropped);
        while let Ok(message) = self.messages.try_recv() {
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

    /// The watchers relist on their own after `410 Gone`; between those, the watch is the truth, so
    /// there is nothing to look at again here.
    fn resync(&mut self, _batch: &mut SourceBatch<'_>) {}
}

/// What the store keeps of most kinds: the object as served (slimmed by the store).
fn unchanged<K>(object: K) -> K {
    object
}

/// Spawns the watcher of `api` into `tasks`; `prepare` makes each object what the store keeps.
fn spawn<K>(
    tasks: &mut JoinSet<()>,
    sender: &Sender<Message>,
    api: Api<K>,
    config: &watcher::Config,
    prepare: fn(K) -> K,
) where
    K: kube::Resource<DynamicType = ()>
        + k8s_openapi::Resource
        + Clone
        + DeserializeOwned
        + Debug
        + Send
        + Sync
        + Into<Object>
        + 'static,
{
    tasks.spawn(run_watcher(api, config.clone(), sender.clone(), prepare));
}

/// Runs one watcher until aborted (or until the source is dropped), sending what it sees.
async fn run_watcher<K>(
    api: Api<K>,
    config: watcher::Config,
    sender: Sender<Message>,
    prepare: fn(K) -> K,
) where
    K: kube::Resource<DynamicType = ()>
        + k8s_openapi::Resource
        + Clone
        + DeserializeOwned
        + Debug
        + Send
        + Sync
        + Into<Object>
        + 'static,
{
    let Some(kind) = Kind::of(K::API_VERSION, K::KIND) else {
        return;
    };
    let mut events = pin!(watcher::watcher(api, config).default_backoff());
    while let Some(event) = events.next().await {
        let message = match event {
            Ok(Event::Apply(object)) => Message::Applied(prepare(object).into()),
            Ok(Event::Delete(object)) => Message::Deleted(prepare(object).into()),
            Ok(Event::Init) => Message::ListStarted(kind),
            Ok(Event::InitApply(object)) => Message::Listed(kind, prepare(object).into()),
            Ok(Event::InitDone) => Message::ListDone(kind),
            Err(error) => {
                tracing::warn!(kind = K::KIND, %error, "watch failed; retrying");
                Message::Failed(format!("{} watch: {error}", K::KIND))
            }
        };
        if sender.send(message).is_err() {
            return;
        }
    }
}
