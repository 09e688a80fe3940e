//! [`KubeSource`]: cluster objects from the Kubernetes API, as an [`ObjectSource`].
//!
//! One kube-runtime watcher per kind (Services, EndpointSlices, Nodes, and this node's Pods, selected by
//! `spec.nodeName`) runs in a background task and feeds a reflector store. The watcher lists, then
//! watches from the list's resource version; when a watch stream ends it resumes from the last version
//! seen, and when the API server answers `410 Gone` it lists again (the store keeps the old objects
//! until the new list is complete, then swaps them in whole). Errors are retried with the watcher's
//! default backoff.
//!
//! Polling is cheap: every event applied to a store bumps a shared generation, and
//! [`poll`](ObjectSource::poll) builds a snapshot from the stores only when the generation moved or a
//! watch error is waiting to be reported, and never before every watcher has completed its first list
//! (until then a partial view could take services away).

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use futures::StreamExt;
use k8s_openapi::Metadata;
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{self, Store, store::Writer};
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use serde::de::DeserializeOwned;
use tokio::task::JoinSet;

use super::objects::{ClusterObjects, DEFAULT_NAMESPACE};
use super::source::{LoadReport, ObjectSource};

#[cfg(test)]
mod mock_api;
#[cfg(test)]
mod tests;

/// Watch errors kept for the next report; later ones are only counted (each is logged as it happens).
const MAX_PENDING_ERRORS: usize = 16;

/// Cluster objects from the Kubernetes API, kept current by watchers running on the tokio runtime that
/// [`start`](Self::start) was called on. Dropping the source stops them.
#[derive(Debug)]
pub struct KubeSource {
    services: Store<Service>,
    endpoint_slices: Store<EndpointSlice>,
    nodes: Store<Node>,
    pods: Store<Pod>,
    shared: Arc<Shared>,
    /// The generation the last report was built at; `None` before the first report.
    reported: Option<u64>,
    /// Dropping the set aborts the watcher tasks.
    _tasks: JoinSet<()>,
}

impl KubeSource {
    /// Starts watching through `client`: every Service, EndpointSlice and Node, and the Pods scheduled
    /// to `node_name`.
    ///
    /// # Panics
    ///
    /// When called outside a tokio runtime.
    pub fn start(client: Client, node_name: &str) -> Self {
        let shared = Arc::new(Shared::new(4));
        let mut tasks = JoinSet::new();
        let all = watcher::Config::default();
        let this_node = all.clone().fields(&format!("spec.nodeName={node_name}"));
        let services = spawn(&mut tasks, &shared, Api::all(client.clone()), all.clone());
        let endpoint_slices = spawn(&mut tasks, &shared, Api::all(client.clone()), all.clone());
        let nodes = spawn(&mut tasks, &shared, Api::all(client.clone()), all);
        let pods = spawn(&mut tasks, &shared, Api::all(client), this_node);
        Self {
            services,
            endpoint_slices,
            nodes,
            pods,
            shared,
            reported: None,
            _tasks: tasks,
        }
    }

    /// [`start`](Self::start)s with the client `kube` infers from the environment: the in-cluster
    /// service account when running in a pod, else the current kubeconfig context.
    pub async fn try_default(node_name: &str) -> Result<Self, kube::Error> {
        Ok(Self::start(Client::try_default().await?, node_name))
    }

    /// True once every watcher has completed its first list.
    pub fn is_ready(&self) -> bool {
        self.shared.unlisted.load(Ordering::SeqCst) == 0
    }

    /// The objects in the stores now.
    fn snapshot(&self) -> ClusterObjects {
        ClusterObjects {
            services: namespaced(&self.services),
            endpoint_slices: namespaced(&self.endpoint_slices),
            nodes: self
                .nodes
                .state()
                .into_iter()
                .filter_map(|node| Some((name(&*node)?, Arc::unwrap_or_clone(node))))
                .collect(),
            pods: namespaced(&self.pods),
        }
    }
}

impl ObjectSource for KubeSource {
    /// `None` until every watcher has listed; then a report whenever a store changed or a watch error
    /// happened since the previous report. Each error is reported once.
    fn poll(&mut self) -> Option<LoadReport> {
        if !self.is_ready() {
            return None;
        }
        // Read the generation before the stores: an event applied in between is in this snapshot and
        // also triggers the next one, never neither.
        let generation = self.shared.generation.load(Ordering::SeqCst);
        let errors = self.shared.take_errors();
        if self.reported == Some(generation) && errors.is_empty() {
            return None;
        }
        self.reported = Some(generation);
        Some(LoadReport {
            objects: self.snapshot(),
            errors,
            ..LoadReport::default()
        })
    }
}

/// What the watcher tasks tell the source.
#[derive(Debug)]
struct Shared {
    /// Bumped after every change applied to a store.
    generation: AtomicU64,
    /// Watchers that have not yet completed their first list.
    unlisted: AtomicUsize,
    errors: Mutex<PendingErrors>,
}

#[derive(Debug, Default)]
struct PendingErrors {
    messages: Vec<String>,
    dropped: usize,
}

impl Shared {
    fn new(watchers: usize) -> Self {
        Self {
            generation: AtomicU64::new(0),
            unlisted: AtomicUsize::new(watchers),
            errors: Mutex::default(),
        }
    }

    fn changed(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    fn push_error(&self, message: String) {
        let mut pending = self.errors.lock().unwrap_or_else(PoisonError::into_inner);
        if pending.messages.len() < MAX_PENDING_ERRORS {
            pending.messages.push(message);
        } else {
            pending.dropped += 1;
        }
    }

    fn take_errors(&self) -> Vec<String> {
        let pending =
            std::mem::take(&mut *self.errors.lock().unwrap_or_else(PoisonError::into_inner));
        let mut messages = pending.messages;
        if pending.dropped > 0 {
            messages.push(format!(
                "{} more watch errors (see the log)",
                pending.dropped
            ));
        }
        messages
    }
}

/// Spawns the watcher of `api` into `tasks` and returns the store it fills.
fn spawn<K>(
    tasks: &mut JoinSet<()>,
    shared: &Arc<Shared>,
    api: Api<K>,
    config: watcher::Config,
) -> Store<K>
where
    K: kube::Resource<DynamicType = ()>
        + k8s_openapi::Resource
        + Clone
        + DeserializeOwned
        + Debug
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = reflector::store();
    tasks.spawn(run_watcher(api, config, writer, Arc::clone(shared)));
    store
}

/// Runs one watcher until aborted: applies its events to `writer`'s store and tells `shared`.
async fn run_watcher<K>(
    api: Api<K>,
    config: watcher::Config,
    writer: Writer<K>,
    shared: Arc<Shared>,
) where
    K: kube::Resource<DynamicType = ()>
        + k8s_openapi::Resource
        + Clone
        + DeserializeOwned
        + Debug
        + Send
        + Sync
        + 'static,
{
    let mut listed = false;
    let mut events = pin!(
        watcher::watcher(api, config)
            .default_backoff()
            .reflect(writer)
    );
    while let Some(event) = events.next().await {
        match event {
            // The store has already applied the event.
            Ok(Event::Apply(_) | Event::Delete(_)) => shared.changed(),
            Ok(Event::InitDone) => {
                if !listed {
                    listed = true;
                    shared.unlisted.fetch_sub(1, Ordering::SeqCst);
                }
                shared.changed();
            }
            // A list in progress fills a buffer; the store changes at `InitDone`.
            Ok(Event::Init | Event::InitApply(_)) => {}
            Err(error) => {
                tracing::warn!(kind = K::KIND, %error, "watch failed; retrying");
                shared.push_error(format!("{} watch: {error}", K::KIND));
            }
        }
    }
}

/// `metadata.name`, when set and not empty.
fn name<K: Metadata<Ty = ObjectMeta>>(object: &K) -> Option<String> {
    object
        .metadata()
        .name
        .clone()
        .filter(|name| !name.is_empty())
}

/// The store's objects keyed by `(namespace, name)`, as [`ClusterObjects`] keys them.
fn namespaced<K>(store: &Store<K>) -> BTreeMap<(String, String), K>
where
    K: kube::Resource<DynamicType = ()> + Metadata<Ty = ObjectMeta> + Clone,
{
    store
        .state()
        .into_iter()
        .filter_map(|object| {
            let name = name(&*object)?;
            let namespace = object
                .metadata()
                .namespace
                .clone()
                .filter(|ns| !ns.is_empty())
                .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned());
            Some(((namespace, name), Arc::unwrap_or_clone(object)))
        })
        .collect()
}
