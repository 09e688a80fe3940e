//! [`ObjectStore`]: the one copy of the cluster's objects a node keeps, and the change events every
//! feature subscribes to.
//!
//! Sources (a manifest directory, the API server's watches) feed it [`Change`]s: an upsert or a delete
//! by key. Each change that does something yields one [`Event`] with the object before and after;
//! an upsert of an object equal to the stored one, or a delete of an absent key, yields nothing. A
//! relist ([`ObjectStore::replace`], after `410 Gone` or a periodic resync) replaces one kind's
//! contents and yields only the difference, so a resync that finds nothing new costs consumers
//! nothing. Objects are [slimmed](Object::slim) on the way in and shared by [`Arc`], so an event
//! hands consumers the objects without copying them.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::NetworkPolicy;

use crate::object::{Kind, Object, ObjectKey};

/// What a source saw.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    /// The object exists with this content (added or changed).
    Upsert(Object),
    /// The object no longer exists.
    Delete(ObjectKey),
}

impl Change {
    /// The key of the object the change is about.
    pub fn key(&self) -> ObjectKey {
        match self {
            Change::Upsert(object) => object.key(),
            Change::Delete(key) => key.clone(),
        }
    }
}

/// What a change did to the store: the object before (`None`: it was added) and after (`None`: it
/// was deleted). Never both `None`, and never two equal objects.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub key: ObjectKey,
    pub old: Option<Arc<Object>>,
    pub new: Option<Arc<Object>>,
}

impl Event {
    /// The object after the change, or before it for a delete.
    pub fn latest(&self) -> &Object {
        self.new
            .as_deref()
            .or(self.old.as_deref())
            .expect("an event has an old or a new object")
    }
}

/// The cluster's objects by key.
#[derive(Clone, Debug, Default)]
pub struct ObjectStore {
    objects: BTreeMap<ObjectKey, Arc<Object>>,
}

macro_rules! typed_getter {
    ($(#[$doc:meta])* $fn:ident, $iter:ident, $variant:ident, $ty:ty) => {
        $(#[$doc])*
        pub fn $fn(&self, namespace: &str, name: &str) -> Option<&$ty> {
            let key = if Kind::$variant.is_namespaced() {
                ObjectKey::namespaced(Kind::$variant, namespace, name)
            } else {
                ObjectKey::cluster(Kind::$variant, name)
            };
            match self.objects.get(&key).map(|o| &**o) {
                Some(Object::$variant(object)) => Some(&**object),
                _ => None,
            }
        }

        /// Every object of the kind, in key order.
        pub fn $iter(&self) -> impl Iterator<Item = (&ObjectKey, &$ty)> {
            self.of_kind(Kind::$variant).filter_map(|(key, object)| match object {
                Object::$variant(typed) => Some((key, &**typed)),
                _ => None,
            })
        }
    };
}

impl ObjectStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of objects of every kind.
    pub fn len(&self) -> usize {
        self.objects.len()
    }

    /// True when the store holds nothing.
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    /// Number of objects of one kind.
    pub fn count(&self, kind: Kind) -> usize {
        self.of_kind(kind).count()
    }

    /// The object with this key.
    pub fn get(&self, key: &ObjectKey) -> Option<&Arc<Object>> {
        self.objects.get(key)
    }

    /// Every object of one kind, in key order.
    pub fn of_kind(&self, kind: Kind) -> impl Iterator<Item = (&ObjectKey, &Object)> {
        let start = ObjectKey {
            kind,
            namespace: String::new(),
            name: String::new(),
        };
        self.objects
            .range((Bound::Included(start), Bound::Unbounded))
            .take_while(move |(key, _)| key.kind == kind)
            .map(|(key, object)| (key, &**object))
    }

    typed_getter!(
        /// The Service `namespace/name`.
        service, services, Service, Service
    );
    typed_getter!(
        /// The EndpointSlice `namespace/name`.
        endpoint_slice, endpoint_slices, EndpointSlice, EndpointSlice
    );
    typed_getter!(
        /// The Pod `namespace/name`.
        pod, pods, Pod, Pod
    );
    typed_getter!(
        /// The NetworkPolicy `namespace/name`.
        network_policy, network_policies, NetworkPolicy, NetworkPolicy
    );
    typed_getter!(
        /// The Namespace `name` (the first argument is ignored).
        namespace, namespaces, Namespace, Namespace
    );
    typed_getter!(
        /// The Node `name` (the first argument is ignored).
        node, nodes, Node, Node
    );

    /// Applies one change; `None` when it changed nothing.
    pub fn apply(&mut self, change: Change) -> Option<Event> {
        match change {
            Change::Upsert(mut object) => {
                object.slim();
                let key = object.key();
                if self.objects.get(&key).is_some_and(|old| **old == object) {
                    return None;
                }
                let new = Arc::new(object);
                let old = self.objects.insert(key.clone(), Arc::clone(&new));
                Some(Event {
                    key,
                    old,
                    new: Some(new),
                })
            }
            Change::Delete(key) => {
                let old = self.objects.remove(&key)?;
                Some(Event {
                    key,
                    old: Some(old),
                    new: None,
                })
            }
        }
    }

    /// Applies changes in order and returns what they did.
    pub fn apply_all(&mut self, changes: impl IntoIterator<Item = Change>) -> Vec<Event> {
        changes.into_iter().filter_map(|c| self.apply(c)).collect()
    }

    /// Makes `kind`'s contents exactly `objects` (a relist) and returns the difference: upserts for
    /// new and changed objects, deletes for the ones missing from the list. Objects of other kinds in
    /// `objects` are ignored. A later object with the same key as an earlier one wins.
    pub fn replace(&mut self, kind: Kind, objects: Vec<Object>) -> Vec<Event> {
        let mut listed = BTreeSet::new();
        let mut changes = Vec::new();
        for object in objects.into_iter().filter(|o| o.kind_of() == kind) {
            listed.insert(object.key());
            changes.push(Change::Upsert(object));
        }
        let gone: Vec<ObjectKey> = self
            .of_kind(kind)
            .map(|(key, _)| key)
            .filter(|key| !listed.contains(*key))
            .cloned()
            .collect();
        changes.extend(gone.into_iter().map(Change::Delete));
        self.apply_all(changes)
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn service(namespace: &str, name: &str, port: i32) -> Object {
        Object::from(Service {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(namespace.into()),
                ..ObjectMeta::default()
            },
            spec: Some(k8s_openapi::api::core::v1::ServiceSpec {
                ports: Some(vec![k8s_openapi::api::core::v1::ServicePort {
                    port,
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Service::default()
        })
    }

    fn node(name: &str) -> Object {
        Object::from(Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..ObjectMeta::default()
            },
            ..Node::default()
        })
    }

    #[test]
    fn upserts_and_deletes_yield_events_only_when_something_changed() {
        let mut store = ObjectStore::new();
        let added = store
            .apply(Change::Upsert(service("a", "web", 80)))
            .unwrap();
        assert!(added.old.is_none() && added.new.is_some());
        assert_eq!(store.apply(Change::Upsert(service("a", "web", 80))), None);
        let changed = store
            .apply(Change::Upsert(service("a", "web", 81)))
            .unwrap();
        assert_eq!(changed.old.as_deref(), Some(&service("a", "web", 80)));
        assert_eq!(changed.latest(), &service("a", "web", 81));
        let key = ObjectKey::namespaced(Kind::Service, "a", "web");
        let deleted = store.apply(Change::Delete(key.clone())).unwrap();
        assert!(deleted.new.is_none());
        assert_eq!(store.apply(Change::Delete(key)), None);
        assert!(store.is_empty());
    }

    #[test]
    fn replace_yields_the_difference_and_leaves_other_kinds_alone() {
        let mut store = ObjectStore::new();
        store.apply_all([
            Change::Upsert(service("a", "keep", 80)),
            Change::Upsert(service("a", "change", 80)),
            Change::Upsert(service("a", "gone", 80)),
            Change::Upsert(node("n1")),
        ]);
        let events = store.replace(
            Kind::Service,
            vec![
                service("a", "keep", 80),
                service("a", "change", 90),
                service("b", "new", 80),
            ],
        );
        let summary: Vec<(String, bool, bool)> = events
            .iter()
            .map(|e| (e.key.to_string(), e.old.is_some(), e.new.is_some()))
            .collect();
        assert_eq!(
            summary,
            [
                ("service/a/change".to_owned(), true, true),
                ("service/b/new".to_owned(), false, true),
                ("service/a/gone".to_owned(), true, false),
            ]
        );
        assert_eq!(store.count(Kind::Service), 3);
        assert!(store.node("", "n1").is_some());
        assert_eq!(
            store
                .services()
                .map(|(k, _)| k.name.as_str())
                .collect::<Vec<_>>(),
            ["change", "keep", "new"]
        );
        assert!(
            store
                .replace(Kind::Service, store_services(&store))
                .is_empty()
        );
    }

    fn store_services(store: &ObjectStore) -> Vec<Object> {
        store
            .services()
            .map(|(_, s)| Object::from(s.clone()))
            .collect()
    }
}
