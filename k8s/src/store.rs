//! [`ObjectStore`]: the one copy of the cluster's objects a node keeps, and the change events every
//! feature subscribes to.
//!
//! Sources (a manifest directory, the API server's watches) feed it [`Change`]s: an upsert or a delete
//! by key. Each change that does something yields one [`Event`] with the object before and after;
//! an upsert of an object equal to the stored one, or a delete of an absent key, yields nothing. A
//! relist ([`ObjectStore::replace`], after `410 Gone` or a periodic resync) replaces one kind's
//! contents and yields only the difference, so a resync that finds nothing new costs consumers
//! nothing.
//!
//! Objects are [slimmed](Object::slim) on the way in and kept encoded (their JSON, which leaves out
//! every unset field): a k8s-openapi EndpointSlice with five endpoints takes about 3.5 KiB as a Rust
//! value (every `Option` of every struct has its room) and about 0.7 KiB encoded, and 10,000 Services
//! with their slices took 76 MiB decoded. Readers decode what they ask for (a few microseconds per
//! object); equality on upsert is a byte comparison. Events carry decoded objects, shared by [`Arc`].

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use serde::de::DeserializeOwned;

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

/// The cluster's objects by key, each encoded.
#[derive(Clone, Debug, Default)]
pub struct ObjectStore {
    objects: BTreeMap<ObjectKey, Box<[u8]>>,
    /// Encoded bytes held.
    bytes: usize,
}

macro_rules! typed_getter {
    ($(#[$doc:meta])* $fn:ident, $iter:ident, $variant:ident, $ty:ty) => {
        $(#[$doc])*
        pub fn $fn(&self, namespace: &str, name: &str) -> Option<$ty> {
            let key = if Kind::$variant.is_namespaced() {
                ObjectKey::namespaced(Kind::$variant, namespace, name)
            } else {
                ObjectKey::cluster(Kind::$variant, name)
            };
            match self.get(&key)? {
                Object::$variant(object) => Some(*object),
                _ => None,
            }
        }

        /// Every object of the kind, in key order, decoded one at a time.
        pub fn $iter(&self) -> impl Iterator<Item = (&ObjectKey, $ty)> {
            self.of_kind(Kind::$variant).filter_map(|(key, object)| match object {
                Object::$variant(typed) => Some((key, *typed)),
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

    /// Bytes the encoded objects take.
    pub fn encoded_bytes(&self) -> usize {
        self.bytes
    }

    /// Number of objects of one kind.
    pub fn count(&self, kind: Kind) -> usize {
        self.keys(kind).count()
    }

    /// Whether an object with this key exists.
    pub fn contains(&self, key: &ObjectKey) -> bool {
        self.objects.contains_key(key)
    }

    /// The object with this key, decoded.
    pub fn get(&self, key: &ObjectKey) -> Option<Object> {
        decode(key.kind, self.objects.get(key)?)
    }

    /// The keys of one kind, in order.
    pub fn keys(&self, kind: Kind) -> impl Iterator<Item = &ObjectKey> {
        self.encoded(kind).map(|(key, _)| key)
    }

    fn encoded(&self, kind: Kind) -> impl Iterator<Item = (&ObjectKey, &[u8])> {
        let start = ObjectKey {
            kind,
            namespace: String::new(),
            name: String::new(),
        };
        self.objects
            .range((Bound::Included(start), Bound::Unbounded))
            .take_while(move |(key, _)| key.kind == kind)
            .map(|(key, bytes)| (key, &**bytes))
    }

    /// Every object of one kind, in key order, decoded one at a time.
    pub fn of_kind(&self, kind: Kind) -> impl Iterator<Item = (&ObjectKey, Object)> {
        self.encoded(kind)
            .filter_map(move |(key, bytes)| Some((key, decode(kind, bytes)?)))
    }

    /// Every object of one kind, in key order, decoded one at a time as `T`: a view with only the
    /// fields its caller reads (serde skips the rest), which costs a scan of each encoding instead of
    /// a full decode. Objects that do not decode as `T` are left out.
    pub fn views<'s, T: DeserializeOwned + 's>(
        &'s self,
        kind: Kind,
    ) -> impl Iterator<Item = (&'s ObjectKey, T)> + 's {
        self.encoded(kind)
            .filter_map(|(key, bytes)| Some((key, serde_json::from_slice(bytes).ok()?)))
    }

    /// [`ObjectStore::views`] of only the objects whose encoding holds `needle` (a field's name, say):
    /// a byte search passes over the others without parsing them, so a scan for a field few objects
    /// have costs little more than reading the bytes.
    pub fn views_containing<'s, T: DeserializeOwned + 's>(
        &'s self,
        kind: Kind,
        needle: &'s [u8],
    ) -> impl Iterator<Item = (&'s ObjectKey, T)> + 's {
        let finder = memchr::memmem::Finder::new(needle);
        self.encoded(kind)
            .filter(move |(_, bytes)| finder.find(bytes).is_some())
            .filter_map(|(key, bytes)| Some((key, serde_json::from_slice(bytes).ok()?)))
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
                let bytes = encode(&object)?;
                if self.objects.get(&key).is_some_and(|old| **old == *bytes) {
                    return None;
                }
                self.bytes += bytes.len();
                let old = self.objects.insert(key.clone(), bytes);
                let old = old.and_then(|old| {
                    self.bytes -= old.len();
                    decode(key.kind, &old)
                });
                Some(Event {
                    key,
                    old: old.map(Arc::new),
                    new: Some(Arc::new(object)),
                })
            }
            Change::Delete(key) => {
                let old = self.objects.remove(&key)?;
                self.bytes -= old.len();
                Some(Event {
                    old: decode(key.kind, &old).map(Arc::new),
                    key,
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
            .keys(kind)
            .filter(|key| !listed.contains(*key))
            .cloned()
            .collect();
        changes.extend(gone.into_iter().map(Change::Delete));
        self.apply_all(changes)
    }
}

/// The object's JSON (unset fields left out); `None` only if serialization fails, which k8s-openapi
/// types do not.
fn encode(object: &Object) -> Option<Box<[u8]>> {
    let bytes = match object {
        Object::Namespace(o) => serde_json::to_vec(o),
        Object::Node(o) => serde_json::to_vec(o),
        Object::Service(o) => serde_json::to_vec(o),
        Object::EndpointSlice(o) => serde_json::to_vec(o),
        Object::Pod(o) => serde_json::to_vec(o),
        Object::Deployment(o) => serde_json::to_vec(o),
        Object::NetworkPolicy(o) => serde_json::to_vec(o),
    };
    bytes.ok().map(Vec::into_boxed_slice)
}

/// Decodes what [`encode`] wrote for an object of `kind`.
fn decode(kind: Kind, bytes: &[u8]) -> Option<Object> {
    Some(match kind {
        Kind::Namespace => serde_json::from_slice::<Namespace>(bytes).ok()?.into(),
        Kind::Node => serde_json::from_slice::<Node>(bytes).ok()?.into(),
        Kind::Service => serde_json::from_slice::<Service>(bytes).ok()?.into(),
        Kind::EndpointSlice => serde_json::from_slice::<EndpointSlice>(bytes).ok()?.into(),
        Kind::Pod => serde_json::from_slice::<Pod>(bytes).ok()?.into(),
        Kind::Deployment => serde_json::from_slice::<k8s_openapi::api::apps::v1::Deployment>(bytes)
            .ok()?
            .into(),
        Kind::NetworkPolicy => serde_json::from_slice::<NetworkPolicy>(bytes).ok()?.into(),
    })
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
    fn views_containing_a_field_skip_the_objects_without_it() {
        #[derive(serde::Deserialize)]
        struct Named {
            metadata: ObjectMeta,
        }
        let mut with_node_port = service("a", "np", 80);
        if let Object::Service(svc) = &mut with_node_port {
            svc.spec.as_mut().unwrap().ports.as_mut().unwrap()[0].node_port = Some(30080);
        }
        let mut store = ObjectStore::new();
        store.apply_all([
            Change::Upsert(service("a", "web", 80)),
            Change::Upsert(with_node_port),
            Change::Upsert(node("n1")),
        ]);
        let names: Vec<String> = store
            .views_containing::<Named>(Kind::Service, b"\"nodePort\"")
            .map(|(_, v)| v.metadata.name.unwrap())
            .collect();
        assert_eq!(names, ["np"]);
        assert_eq!(
            store
                .views_containing::<Named>(Kind::Service, b"\"spec\"")
                .count(),
            2
        );
    }

    #[test]
    fn upserts_and_deletes_yield_events_only_when_something_changed() {
        let mut store = ObjectStore::new();
        let added = store
            .apply(Change::Upsert(service("a", "web", 80)))
            .unwrap();
        assert!(added.old.is_none() && added.new.is_some());
        assert_eq!(store.apply(Change::Upsert(service("a", "web", 80))), None);
        assert_eq!(
            store.get(&added.key).as_ref(),
            Some(&service("a", "web", 80))
        );
        assert!(store.encoded_bytes() > 0);
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
        assert_eq!(store.encoded_bytes(), 0);
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
