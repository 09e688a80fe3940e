//! [`BatchObjects`]: the objects a chunk of store events brought, looked up before the store, so a
//! subscriber translating what the events touched reads the objects it was just handed instead of
//! decoding them again from the store's encoding (in a first sync, every object).

use std::borrow::Cow;
use std::collections::HashMap;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use strait_k8s::{Event, Kind, Object, ObjectKey, ObjectStore};

/// The latest Services and EndpointSlices of a chunk of events, over the store they were applied to.
#[derive(Debug)]
pub struct BatchObjects<'a> {
    store: &'a ObjectStore,
    latest: HashMap<ObjectKey, &'a Object>,
}

impl<'a> BatchObjects<'a> {
    /// The objects `events` (already applied to `store`, in order) left in place; a later event for a
    /// key replaces an earlier one, and a delete removes it.
    pub fn new(store: &'a ObjectStore, events: &'a [Event]) -> Self {
        let mut latest = HashMap::new();
        for event in events {
            if !matches!(event.key.kind, Kind::Service | Kind::EndpointSlice) {
                continue;
            }
            match event.new.as_deref() {
                Some(object) => latest.insert(event.key.clone(), object),
                None => latest.remove(&event.key),
            };
        }
        Self { store, latest }
    }

    /// Only the store (nothing recent).
    pub fn store_only(store: &'a ObjectStore) -> Self {
        Self {
            store,
            latest: HashMap::new(),
        }
    }

    /// The Service `namespace/name`.
    pub fn service(&self, namespace: &str, name: &str) -> Option<Cow<'a, Service>> {
        let key = ObjectKey::namespaced(Kind::Service, namespace, name);
        match self.latest.get(&key) {
            Some(Object::Service(service)) => Some(Cow::Borrowed(&**service)),
            _ => self.store.service(namespace, name).map(Cow::Owned),
        }
    }

    /// The EndpointSlice `namespace/name`.
    pub fn endpoint_slice(&self, namespace: &str, name: &str) -> Option<Cow<'a, EndpointSlice>> {
        let key = ObjectKey::namespaced(Kind::EndpointSlice, namespace, name);
        match self.latest.get(&key) {
            Some(Object::EndpointSlice(slice)) => Some(Cow::Borrowed(&**slice)),
            _ => self.store.endpoint_slice(namespace, name).map(Cow::Owned),
        }
    }
}
