//! One kind's watcher task: runs kube-runtime's watcher, turns its events into the source's
//! messages, backs off after failures, and starts the watcher over (a full relist) when the kind's
//! relist is due.

use std::fmt::Debug;
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::Api;
use kube::runtime::watcher::{self, Event};
use serde::de::DeserializeOwned;
use strait_k8s::{Kind, Object};
use tokio::task::JoinSet;

use super::Message;
use super::queue::QueueSender;
use super::retry::{Backoff, Random, RetryPolicy, relist_delay};

/// What every watcher task of one source shares.
#[derive(Clone, Debug)]
pub(super) struct Watchers {
    pub(super) queue: QueueSender<Message>,
    pub(super) retry: RetryPolicy,
    pub(super) relist_every: Duration,
}

/// What a watcher needs of its resource type.
pub(super) trait Watched:
    kube::Resource<DynamicType = ()>
    + k8s_openapi::Resource
    + Clone
    + DeserializeOwned
    + Debug
    + Send
    + Sync
    + Into<Object>
    + 'static
{
}

impl<K> Watched for K where
    K: kube::Resource<DynamicType = ()>
        + k8s_openapi::Resource
        + Clone
        + DeserializeOwned
        + Debug
        + Send
        + Sync
        + Into<Object>
        + 'static
{
}

impl Watchers {
    /// Spawns the watcher of `api` into `tasks`; `prepare` makes each object what the store keeps.
    pub(super) fn spawn<K: Watched>(
        &self,
        tasks: &mut JoinSet<()>,
        api: Api<K>,
        config: &watcher::Config,
        prepare: fn(K) -> K,
    ) {
        tasks.spawn(self.clone().run(api, config.clone(), prepare));
    }

    /// Runs one watcher until aborted (or until the source is dropped), sending what it sees.
    async fn run<K: Watched>(self, api: Api<K>, config: watcher::Config, prepare: fn(K) -> K) {
        let Some(kind) = Kind::of(K::API_VERSION, K::KIND) else {
            return;
        };
        let mut random = Random::new();
        let mut backoff = Backoff::new(self.retry, Random::new());
        let mut events = Box::pin(watcher::watcher(api.clone(), config.clone()));
        let relist = tokio::time::sleep(relist_delay(self.relist_every, &mut random));
        tokio::pin!(relist);
        // Between a list's start and its end (the relist waits for neither to be cut short).
        let mut listing = true;
        loop {
            let event = tokio::select! {
                // The relist first: a watch that always has an event ready must not put it off.
                biased;
                () = relist.as_mut(), if !listing => {
                    tracing::debug!(kind = K::KIND, "periodic relist");
                    events.set(watcher::watcher(api.clone(), config.clone()));
                    listing = true;
                    continue;
                }
                event = events.next() => event,
            };
            // The watcher's stream never ends; if it did, there would be nothing more to watch.
            let Some(event) = event else {
                return;
            };
            match &event {
                Ok(Event::Init) => listing = true,
                Ok(Event::InitDone) => {
                    listing = false;
                    let next = relist_delay(self.relist_every, &mut random);
                    relist.as_mut().reset(tokio::time::Instant::now() + next);
                }
                _ => {}
            }
            let (message, retry_in) = match event {
                Ok(event) => (message(kind, event, prepare), None),
                Err(error) => {
                    let delay = backoff.next_delay(Instant::now());
                    tracing::warn!(kind = K::KIND, %error, retry_in = ?delay, "watch failed");
                    let message = Message::Failed(format!("{} watch: {error}", K::KIND));
                    (message, Some(delay))
                }
            };
            if self.queue.send(message).await.is_err() {
                return;
            }
            if let Some(delay) = retry_in {
                // Nothing is polled meanwhile: no request, and no relist, before the delay is over.
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// What the source is told of `event`.
fn message<K: Into<Object>>(kind: Kind, event: Event<K>, prepare: fn(K) -> K) -> Message {
    match event {
        Event::Apply(object) => Message::Applied(prepare(object).into()),
        Event::Delete(object) => Message::Deleted(prepare(object).into()),
        Event::Init => Message::ListStarted(kind),
        Event::InitApply(object) => Message::Listed(prepare(object).into()),
        Event::InitDone => Message::ListDone(kind),
    }
}
