//! [`ServiceIndex`]: the services feature's subscription to the object store. It keeps, per Service,
//! its EndpointSlices and its translated frontends, and per frontend the Services that claim it, so
//! that a change re-translates only the Services it touches: one EndpointSlice event costs one
//! Service's translation, and yields only the frontends whose entry really changed.
//!
//! Which events touch what:
//! - a Service: that Service;
//! - an EndpointSlice: the Service it was labelled for before and the one it is labelled for now;
//! - this node's Node: every Service with node ports, when the node's addresses changed;
//! - anything else: nothing.
//!
//! When two Services claim one frontend, the first in (namespace, name) order keeps it, as in the full
//! translation ([`service_entries`](super::translate::service_entries)); the periodic resync compares
//! the two and logs any difference.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;

use strait_dataplane::services::{ServiceEntry, ServiceKey};
use strait_k8s::{Event, Kind, Object, ObjectStore};

use super::health::health_check_port;
use super::translate::{ipv4_slice_service, node_addresses, service_frontends};

/// `(namespace, name)` of a Service.
type ServiceId = (String, String);

/// What one update did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Touched {
    /// Frontends whose effective entry may differ from before.
    pub frontends: BTreeSet<ServiceKey>,
    /// Services re-translated.
    pub services: usize,
    /// Whether a Service with a health check node port (before or after) was re-translated.
    pub health: bool,
}

/// The incremental translation of Services into frontends for one node.
#[derive(Debug, Default)]
pub struct ServiceIndex {
    node_name: String,
    node_ips: Vec<Ipv4Addr>,
    /// IPv4 EndpointSlice `(namespace, name)` -> the Service name it is labelled for.
    slice_owner: HashMap<(String, String), String>,
    /// Service -> the names of its IPv4 EndpointSlices.
    slices: HashMap<ServiceId, BTreeSet<String>>,
    /// Service -> its frontends, sorted by key.
    frontends: HashMap<ServiceId, Vec<ServiceEntry>>,
    /// Frontend -> the Services that claim it.
    claims: BTreeMap<ServiceKey, BTreeSet<ServiceId>>,
    /// Services with a health check node port.
    health: BTreeSet<ServiceId>,
}

impl ServiceIndex {
    /// An empty index for node `node_name`.
    pub fn new(node_name: &str) -> Self {
        Self {
            node_name: node_name.to_owned(),
            ..Self::default()
        }
    }

    /// Number of Services indexed (with or without frontends).
    pub fn services(&self) -> usize {
        self.frontends.len()
    }

    /// Indexes the whole store from scratch; every frontend is touched.
    pub fn rebuild(&mut self, store: &ObjectStore) -> Touched {
        let mut touched = Touched {
            frontends: self.claims.keys().copied().collect(),
            ..Touched::default()
        };
        *self = Self::new(&self.node_name);
        self.node_ips = node_addresses(store, &self.node_name);
        for (key, slice) in store.endpoint_slices() {
            if let Some(service) = ipv4_slice_service(&slice) {
                self.link_slice(&key.namespace, &key.name, service);
            }
        }
        let services: Vec<ServiceId> = store
            .services()
            .map(|(k, _)| (k.namespace.clone(), k.name.clone()))
            .collect();
        for id in &services {
            self.retranslate(store, id, &mut touched);
        }
        touched
    }

    /// Brings the index up to date with `events` (already applied to `store`).
    pub fn update(&mut self, store: &ObjectStore, events: &[Event]) -> Touched {
        let mut dirty: BTreeSet<ServiceId> = BTreeSet::new();
        let mut touched = Touched::default();
        for event in events {
            let key = &event.key;
            match key.kind {
                Kind::Service => {
                    dirty.insert((key.namespace.clone(), key.name.clone()));
                }
                Kind::EndpointSlice => {
                    let slice_id = (key.namespace.clone(), key.name.clone());
                    if let Some(old) = self.slice_owner.remove(&slice_id) {
                        if let Some(names) =
                            self.slices.get_mut(&(key.namespace.clone(), old.clone()))
                        {
                            names.remove(&key.name);
                        }
                        dirty.insert((key.namespace.clone(), old));
                    }
                    if let Some(Object::EndpointSlice(slice)) = event.new.as_deref()
                        && let Some(service) = ipv4_slice_service(slice)
                    {
                        self.link_slice(&key.namespace, &key.name, service);
                        dirty.insert((key.namespace.clone(), service.to_owned()));
                    }
                }
                Kind::Node if key.name == self.node_name => {
                    let ips = node_addresses(store, &self.node_name);
                    if ips != self.node_ips {
                        self.node_ips = ips;
                        dirty.extend(self.frontends.keys().cloned());
                    }
                }
                _ => {}
            }
        }
        for id in &dirty {
            self.retranslate(store, id, &mut touched);
        }
        touched
    }

    /// The entry the data path should hold for `key`: the first claimant's.
    pub fn entry(&self, key: &ServiceKey) -> Option<&ServiceEntry> {
        let first = self.claims.get(key)?.first()?;
        self.frontends
            .get(first)?
            .binary_search_by(|e| e.key.cmp(key))
            .ok()
            .map(|i| &self.frontends[first][i])
    }

    /// Every effective entry, sorted by key.
    pub fn entries(&self) -> Vec<ServiceEntry> {
        self.claims
            .keys()
            .filter_map(|key| self.entry(key).cloned())
            .collect()
    }

    fn link_slice(&mut self, namespace: &str, slice: &str, service: &str) {
        self.slice_owner
            .insert((namespace.to_owned(), slice.to_owned()), service.to_owned());
        self.slices
            .entry((namespace.to_owned(), service.to_owned()))
            .or_default()
            .insert(slice.to_owned());
    }

    /// Translates one Service again and records which frontends changed.
    fn retranslate(&mut self, store: &ObjectStore, id: &ServiceId, touched: &mut Touched) {
        let (namespace, name) = (&id.0, &id.1);
        let service = store.service(namespace, name);
        let new = match &service {
            Some(service) => {
                let slices: Vec<_> = self
                    .slices
                    .get(id)
                    .into_iter()
                    .flatten()
                    .filter_map(|slice| store.endpoint_slice(namespace, slice))
                    .collect();
                let slices: Vec<&_> = slices.iter().collect();
                service_frontends(service, &slices, &self.node_ips, &self.node_name)
            }
            None => Vec::new(),
        };
        touched.services += 1;
        let had_health = self.health.contains(id);
        let has_health = service.as_ref().and_then(health_check_port).is_some();
        touched.health |= had_health || has_health;
        if has_health {
            self.health.insert(id.clone());
        } else {
            self.health.remove(id);
        }
        let old = if service.is_some() {
            self.frontends.insert(id.clone(), new.clone())
        } else {
            if self.slices.get(id).is_some_and(BTreeSet::is_empty) {
                self.slices.remove(id);
            }
            self.frontends.remove(id)
        }
        .unwrap_or_default();
        let old_by_key: BTreeMap<ServiceKey, &ServiceEntry> =
            old.iter().map(|e| (e.key, e)).collect();
        for entry in &new {
            if old_by_key.get(&entry.key) != Some(&entry) {
                touched.frontends.insert(entry.key);
            }
            self.claims.entry(entry.key).or_default().insert(id.clone());
        }
        let new_keys: BTreeSet<ServiceKey> = new.iter().map(|e| e.key).collect();
        for key in old_by_key.keys().filter(|k| !new_keys.contains(k)) {
            touched.frontends.insert(*key);
            if let Some(claimants) = self.claims.get_mut(key) {
                claimants.remove(id);
                if claimants.is_empty() {
                    self.claims.remove(key);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
    use k8s_openapi::api::discovery::v1::{Endpoint, EndpointPort, EndpointSlice};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use strait_k8s::{Change, ObjectKey};

    use super::*;
    use crate::model::translate::{SERVICE_NAME_LABEL, service_entries};

    fn service(name: &str, ip: &str) -> Object {
        Service {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("shop".into()),
                ..ObjectMeta::default()
            },
            spec: Some(ServiceSpec {
                cluster_ip: Some(ip.into()),
                ports: Some(vec![ServicePort {
                    port: 80,
                    ..ServicePort::default()
                }]),
                ..ServiceSpec::default()
            }),
            ..Service::default()
        }
        .into()
    }

    fn slice(name: &str, service: &str, address: &str) -> Object {
        EndpointSlice {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("shop".into()),
                labels: Some([(SERVICE_NAME_LABEL.to_owned(), service.to_owned())].into()),
                ..ObjectMeta::default()
            },
            address_type: "IPv4".into(),
            endpoints: Some(vec![Endpoint {
                addresses: vec![address.into()],
                ..Endpoint::default()
            }]),
            ports: Some(vec![EndpointPort {
                port: Some(8080),
                ..EndpointPort::default()
            }]),
        }
        .into()
    }

    fn apply(store: &mut ObjectStore, index: &mut ServiceIndex, change: Change) -> Touched {
        let events: Vec<Event> = store.apply(change).into_iter().collect();
        index.update(store, &events)
    }

    fn key(ip: &str) -> ServiceKey {
        ServiceKey {
            vip: ip.parse().unwrap(),
            port: 80,
            proto: strait_dataplane::services::L4Proto::Tcp,
        }
    }

    #[test]
    fn a_slice_event_retranslates_only_its_service() {
        let mut store = ObjectStore::new();
        for i in 0..50 {
            store.apply(Change::Upsert(service(
                &format!("s{i}"),
                &format!("10.96.0.{i}"),
            )));
            store.apply(Change::Upsert(slice(
                &format!("s{i}-x"),
                &format!("s{i}"),
                "10.244.1.1",
            )));
        }
        let mut index = ServiceIndex::new("n1");
        assert_eq!(index.rebuild(&store).services, 50);

        let touched = apply(
            &mut store,
            &mut index,
            Change::Upsert(slice("s7-x", "s7", "10.244.1.9")),
        );
        assert_eq!(touched.services, 1);
        assert_eq!(
            touched.frontends.into_iter().collect::<Vec<_>>(),
            [key("10.96.0.7")]
        );
        let backends = &index.entry(&key("10.96.0.7")).unwrap().backends;
        assert_eq!(backends[0].addr.to_string(), "10.244.1.9");

        // Relabelled to another Service: both are translated again.
        let touched = apply(
            &mut store,
            &mut index,
            Change::Upsert(slice("s7-x", "s8", "10.244.1.9")),
        );
        assert_eq!(touched.services, 2);
        assert!(index.entry(&key("10.96.0.7")).unwrap().backends.is_empty());
        assert_eq!(index.entry(&key("10.96.0.8")).unwrap().backends.len(), 2);

        // A slice for a Service that does not exist yet is kept for it.
        apply(
            &mut store,
            &mut index,
            Change::Upsert(slice("late-x", "late", "10.244.1.3")),
        );
        apply(
            &mut store,
            &mut index,
            Change::Upsert(service("late", "10.96.1.1")),
        );
        assert_eq!(index.entry(&key("10.96.1.1")).unwrap().backends.len(), 1);

        // An event that changes nothing touches nothing.
        let touched = apply(
            &mut store,
            &mut index,
            Change::Upsert(service("late", "10.96.1.1")),
        );
        assert_eq!(touched, Touched::default());
        assert_eq!(index.entries(), service_entries(&store, "n1"));
    }

    #[test]
    fn a_contested_frontend_passes_to_the_next_claimant() {
        let mut store = ObjectStore::new();
        let mut index = ServiceIndex::new("n1");
        apply(
            &mut store,
            &mut index,
            Change::Upsert(service("b", "10.96.0.1")),
        );
        apply(
            &mut store,
            &mut index,
            Change::Upsert(slice("b-x", "b", "10.244.1.2")),
        );
        apply(
            &mut store,
            &mut index,
            Change::Upsert(service("a", "10.96.0.1")),
        );
        assert!(
            index.entry(&key("10.96.0.1")).unwrap().backends.is_empty(),
            "a wins"
        );
        let a = ObjectKey::namespaced(Kind::Service, "shop", "a");
        let touched = apply(&mut store, &mut index, Change::Delete(a));
        assert!(touched.frontends.contains(&key("10.96.0.1")));
        assert_eq!(
            index.entry(&key("10.96.0.1")).unwrap().backends.len(),
            1,
            "b takes over"
        );
        let b = ObjectKey::namespaced(Kind::Service, "shop", "b");
        apply(&mut store, &mut index, Change::Delete(b));
        assert!(index.entry(&key("10.96.0.1")).is_none());
        assert!(index.entries().is_empty());
    }
}
