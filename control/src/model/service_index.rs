//! [`ServiceIndex`]: the services feature's subscription to the object store. It keeps, per Service,
//! its EndpointSlices and its translated frontends, and per frontend the Services that claim it, so
//! that a change re-translates only the Services it touches: one EndpointSlice event costs one
//! Service's translation, and yields only the frontends whose entry really changed.
//!
//! Which events touch what:
//! - a Service: that Service;
//! - an EndpointSlice: the Service it was labelled for before and the one it is labelled for now;
//! - this node's Node: every Service with node ports, when the node's addresses changed;
//! - a Pod: its host ports ([`HostPortIndex`]), when it is (or was) on this node;
//! - anything else: nothing.
//!
//! The DNS Service this node answers itself ([`NodeLocalDns`]) has its port 53 frontends led to the
//! node's own DNS server, whatever its EndpointSlices say.
//!
//! When two Services claim one frontend, a ClusterIP claim beats an external one (externalIPs,
//! LoadBalancer ingress), then the first in (namespace, name) order keeps it, as in the full
//! translation ([`service_entries`](super::translate::service_entries)); the periodic resync compares
//! the two and logs any difference. A Service's frontend wins over a pod's host port.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;

use strait_dataplane::services::{ServiceEntry, ServiceKey};
use strait_k8s::{Event, Kind, Object, ObjectStore};

use super::batch_objects::BatchObjects;
use super::health::{HealthCheck, health_check, health_check_port};
use super::host_ports::{HostPortIndex, HostPortPod, host_port_entries};
use super::translate::{
    ReservedAddresses, SliceOwner, ipv4_slice_service, node_addresses, precedence,
    refused_external, service_frontends,
};
use crate::dns::NodeLocalDns;

/// A Service's number in the index (interned `(namespace, name)`; numbers are not reused).
type ServiceId = u32;

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

impl Touched {
    /// Adds what another update touched.
    pub fn merge(&mut self, other: Touched) {
        self.frontends.extend(other.frontends);
        self.services += other.services;
        self.health |= other.health;
    }
}

/// What the index keeps of one Service (present or not: its slices may come first).
#[derive(Debug, Default)]
struct ServiceState {
    namespace: Box<str>,
    name: Box<str>,
    /// Its IPv4 EndpointSlices' names, sorted.
    slices: Vec<Box<str>>,
    /// Its frontends, sorted by key.
    frontends: Vec<ServiceEntry>,
    /// Whether it has a health check node port.
    health: bool,
}

/// Values by `(namespace, name)`, looked up by `&str` without allocating (a first sync looks up every
/// Service and slice name a few times).
#[derive(Debug)]
struct Namespaced<V>(HashMap<Box<str>, HashMap<Box<str>, V>>);

impl<V> Default for Namespaced<V> {
    fn default() -> Self {
        Self(HashMap::new())
    }
}

impl<V: Copy> Namespaced<V> {
    fn get(&self, namespace: &str, name: &str) -> Option<V> {
        self.0.get(namespace)?.get(name).copied()
    }

    fn insert(&mut self, namespace: &str, name: &str, value: V) {
        match self.0.get_mut(namespace) {
            Some(names) => names.insert(name.into(), value),
            None => self
                .0
                .entry(namespace.into())
                .or_default()
                .insert(name.into(), value),
        };
    }

    fn remove(&mut self, namespace: &str, name: &str) -> Option<V> {
        let names = self.0.get_mut(namespace)?;
        let value = names.remove(name);
        if names.is_empty() {
            self.0.remove(namespace);
        }
        value
    }
}

/// The Services claiming one frontend, in (namespace, name) order; almost always exactly one.
#[derive(Debug)]
enum Claimants {
    One(ServiceId),
    Many(Vec<ServiceId>),
}

impl Claimants {
    fn first(&self) -> ServiceId {
        match self {
            Claimants::One(id) => *id,
            Claimants::Many(ids) => ids[0],
        }
    }
}

/// The incremental translation of Services into frontends for one node.
#[derive(Debug, Default)]
pub struct ServiceIndex {
    node_name: String,
    node_ips: Vec<Ipv4Addr>,
    /// `(namespace, name)` -> number.
    ids: Namespaced<ServiceId>,
    /// By number.
    states: Vec<ServiceState>,
    /// IPv4 EndpointSlice `(namespace, name)` -> the Service it is labelled for.
    slice_owner: Namespaced<ServiceId>,
    /// Frontend -> the Services that claim it.
    claims: BTreeMap<ServiceKey, Claimants>,
    /// Addresses no Service may claim as external.
    reserved: ReservedAddresses,
    /// The DNS Service this node answers itself.
    local_dns: Option<NodeLocalDns>,
    /// This node's pods' host ports.
    host_ports: HostPortIndex,
}

/// Whose entry a frontend holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrontendOwner<'a> {
    /// A Service `(namespace, name)`.
    Service(&'a str, &'a str),
    /// A pod's host port, the pod `(namespace, name)`.
    HostPort(&'a str, &'a str),
}

impl std::fmt::Display for FrontendOwner<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrontendOwner::Service(namespace, name) => write!(f, "{namespace}/{name}"),
            FrontendOwner::HostPort(namespace, name) => write!(f, "pod {namespace}/{name}"),
        }
    }
}

impl ServiceIndex {
    /// An empty index for node `node_name`.
    pub fn new(node_name: &str) -> Self {
        Self {
            node_name: node_name.to_owned(),
            ..Self::default()
        }
    }

    /// The index with `reserved` refused as externalIPs and ingress addresses.
    #[must_use]
    pub fn with_reserved(mut self, reserved: ReservedAddresses) -> Self {
        self.reserved = reserved;
        self
    }

    /// The index with the DNS Service's port 53 frontends led to this node's own DNS server.
    #[must_use]
    pub fn with_local_dns(mut self, local_dns: Option<NodeLocalDns>) -> Self {
        self.local_dns = local_dns;
        self
    }

    /// Number of Services with frontends.
    pub fn services(&self) -> usize {
        self.states
            .iter()
            .filter(|s| !s.frontends.is_empty())
            .count()
    }

    /// The number of `(namespace, name)`, given one if it has none.
    fn intern(&mut self, namespace: &str, name: &str) -> ServiceId {
        if let Some(id) = self.ids.get(namespace, name) {
            return id;
        }
        let id = ServiceId::try_from(self.states.len()).expect("fewer than 2^32 Services");
        self.ids.insert(namespace, name, id);
        self.states.push(ServiceState {
            namespace: namespace.into(),
            name: name.into(),
            ..ServiceState::default()
        });
        id
    }

    fn order(&self, id: ServiceId) -> (&str, &str) {
        let state = &self.states[id as usize];
        (&state.namespace, &state.name)
    }

    /// Indexes the whole store from scratch; every frontend is touched.
    pub fn rebuild(&mut self, store: &ObjectStore) -> Touched {
        let mut touched = Touched {
            frontends: self
                .claims
                .keys()
                .chain(self.host_ports.keys())
                .copied()
                .collect(),
            ..Touched::default()
        };
        *self = Self::new(&self.node_name)
            .with_reserved(std::mem::take(&mut self.reserved))
            .with_local_dns(self.local_dns.take());
        self.node_ips = node_addresses(store, &self.node_name);
        self.host_ports = HostPortIndex::rebuild(store, &self.node_name, &self.node_ips);
        touched.frontends.extend(self.host_ports.keys().copied());
        for (key, slice) in store.views::<SliceOwner>(Kind::EndpointSlice) {
            if let Some(service) = slice.ipv4_service() {
                let id = self.intern(&key.namespace, service);
                self.link_slice(&key.namespace, &key.name, id);
            }
        }
        let services: Vec<ServiceId> = store
            .keys(Kind::Service)
            .map(|k| (k.namespace.clone(), k.name.clone()))
            .collect::<Vec<_>>()
            .into_iter()
            .map(|(namespace, name)| self.intern(&namespace, &name))
            .collect();
        let objects = BatchObjects::store_only(store);
        for id in services {
            self.retranslate(&objects, id, &mut touched);
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
                    dirty.insert(self.intern(&key.namespace, &key.name));
                }
                Kind::EndpointSlice => {
                    if let Some(old) = self.slice_owner.remove(&key.namespace, &key.name) {
                        let slices = &mut self.states[old as usize].slices;
                        slices.retain(|s| **s != *key.name);
                        dirty.insert(old);
                    }
                    if let Some(Object::EndpointSlice(slice)) = event.new.as_deref()
                        && let Some(service) = ipv4_slice_service(slice)
                    {
                        let id = self.intern(&key.namespace, service);
                        self.link_slice(&key.namespace, &key.name, id);
                        dirty.insert(id);
                    }
                }
                Kind::Pod => {
                    let entries = event
                        .new
                        .as_deref()
                        .and_then(|object| match object {
                            Object::Pod(pod) => HostPortPod::of_pod_on(pod, &self.node_name),
                            _ => None,
                        })
                        .map(|pod| host_port_entries(&pod, &self.node_name, &self.node_ips))
                        .unwrap_or_default();
                    touched.frontends.extend(self.host_ports.set(
                        &key.namespace,
                        &key.name,
                        entries,
                    ));
                }
                Kind::Node if key.name == self.node_name => {
                    let ips = node_addresses(store, &self.node_name);
                    if ips != self.node_ips {
                        self.node_ips = ips;
                        touched.frontends.extend(self.rederive_host_ports(store));
                        dirty.extend(
                            (0..self.states.len())
                                .filter(|i| !self.states[*i].frontends.is_empty())
                                .filter_map(|i| ServiceId::try_from(i).ok()),
                        );
                    }
                }
                _ => {}
            }
        }
        let objects = BatchObjects::new(store, events);
        for id in dirty {
            self.retranslate(&objects, id, &mut touched);
        }
        touched
    }

    /// The entry the data path should hold for `key`: the first claimant's, else the first pod's
    /// that asks for it as a host port.
    pub fn entry(&self, key: &ServiceKey) -> Option<&ServiceEntry> {
        let Some(claimants) = self.claims.get(key) else {
            return self.host_ports.entry(key);
        };
        let frontends = &self.states[claimants.first() as usize].frontends;
        frontends
            .binary_search_by(|e| e.key.cmp(key))
            .ok()
            .map(|i| &frontends[i])
    }

    /// Whose entry `key` holds: the first claimant Service, else the pod whose host port it is.
    pub fn owner(&self, key: &ServiceKey) -> Option<FrontendOwner<'_>> {
        if let Some(claimants) = self.claims.get(key) {
            let (namespace, name) = self.order(claimants.first());
            return Some(FrontendOwner::Service(namespace, name));
        }
        let (namespace, name) = self.host_ports.owner(key)?;
        Some(FrontendOwner::HostPort(namespace, name))
    }

    /// Every effective entry, sorted by key.
    pub fn entries(&self) -> Vec<ServiceEntry> {
        let keys: BTreeSet<&ServiceKey> =
            self.claims.keys().chain(self.host_ports.keys()).collect();
        keys.into_iter()
            .filter_map(|key| self.entry(key).cloned())
            .collect()
    }

    /// Derives every known pod's host ports again (this node's addresses changed); returns the
    /// frontends that may have changed.
    fn rederive_host_ports(&mut self, store: &ObjectStore) -> BTreeSet<ServiceKey> {
        let pods: Vec<(Box<str>, Box<str>)> = self.host_ports.pods().cloned().collect();
        let mut touched = BTreeSet::new();
        for (namespace, name) in pods {
            let entries = store
                .pod(&namespace, &name)
                .and_then(|pod| HostPortPod::of_pod_on(&pod, &self.node_name))
                .map(|pod| host_port_entries(&pod, &self.node_name, &self.node_ips))
                .unwrap_or_default();
            touched.extend(self.host_ports.set(&namespace, &name, entries));
        }
        touched
    }

    /// The health checks this node serves, sorted by (namespace, name): only the Services known to
    /// have a health check node port are read.
    pub fn health_checks(&self, store: &ObjectStore) -> Vec<HealthCheck> {
        let mut checks: Vec<HealthCheck> = self
            .states
            .iter()
            .filter(|s| s.health)
            .filter_map(|s| {
                let service = store.service(&s.namespace, &s.name)?;
                let slices: Vec<_> = s
                    .slices
                    .iter()
                    .filter_map(|slice| store.endpoint_slice(&s.namespace, slice))
                    .collect();
                health_check(&s.namespace, &s.name, &service, &slices, &self.node_name)
            })
            .collect();
        checks.sort();
        checks
    }

    fn link_slice(&mut self, namespace: &str, slice: &str, id: ServiceId) {
        self.slice_owner.insert(namespace, slice, id);
        let slices = &mut self.states[id as usize].slices;
        if let Err(at) = slices.binary_search_by(|s| (**s).cmp(slice)) {
            slices.insert(at, slice.into());
        }
    }

    fn claim(&mut self, key: ServiceKey, id: ServiceId) {
        // A ClusterIP claim first, then (namespace, name): as the full translation decides.
        let order = |index: &Self, id: ServiceId| {
            let frontends = &index.states[id as usize].frontends;
            let rank = frontends
                .binary_search_by(|e| e.key.cmp(&key))
                .map_or(u8::MAX, |i| precedence(&frontends[i]));
            let (namespace, name) = index.order(id);
            (rank, namespace.to_owned(), name.to_owned())
        };
        let current = self.claims.remove(&key);
        let claimants = match current {
            None => Claimants::One(id),
            Some(Claimants::One(other)) if other == id => Claimants::One(id),
            Some(Claimants::One(other)) => {
                let mut ids = vec![other, id];
                ids.sort_by_key(|i| order(self, *i));
                Claimants::Many(ids)
            }
            Some(Claimants::Many(mut ids)) => {
                if !ids.contains(&id) {
                    let new_order = order(self, id);
                    let at = ids
                        .iter()
                        .position(|i| order(self, *i) > new_order)
                        .unwrap_or(ids.len());
                    ids.insert(at, id);
                }
                Claimants::Many(ids)
            }
        };
        self.claims.insert(key, claimants);
    }

    fn unclaim(&mut self, key: ServiceKey, id: ServiceId) {
        let Some(current) = self.claims.remove(&key) else {
            return;
        };
        match current {
            Claimants::One(other) if other == id => {}
            Claimants::One(other) => {
                self.claims.insert(key, Claimants::One(other));
            }
            Claimants::Many(mut ids) => {
                ids.retain(|i| *i != id);
                let rest = if ids.len() == 1 {
                    Claimants::One(ids[0])
                } else {
                    Claimants::Many(ids)
                };
                self.claims.insert(key, rest);
            }
        }
    }

    /// Translates one Service again and records which frontends changed.
    fn retranslate(&mut self, objects: &BatchObjects<'_>, id: ServiceId, touched: &mut Touched) {
        let state = &self.states[id as usize];
        let service = objects.service(&state.namespace, &state.name);
        let new = match &service {
            Some(service) => {
                let slices: Vec<_> = state
                    .slices
                    .iter()
                    .filter_map(|slice| objects.endpoint_slice(&state.namespace, slice))
                    .collect();
                let slices: Vec<&_> = slices.iter().map(|s| &**s).collect();
                for (ip, why) in refused_external(service, &self.reserved, &self.node_ips) {
                    tracing::warn!(
                        service = %format!("{}/{}", state.namespace, state.name),
                        address = %ip,
                        "externalIP or LoadBalancer ingress refused: {why}"
                    );
                }
                let mut frontends = service_frontends(
                    service,
                    &slices,
                    &self.node_ips,
                    &self.node_name,
                    &self.reserved,
                );
                if let Some(local) = &self.local_dns
                    && local.is(&state.namespace, &state.name)
                {
                    local.redirect(&mut frontends);
                }
                frontends
            }
            None => Vec::new(),
        };
        touched.services += 1;
        let has_health = service.as_deref().and_then(health_check_port).is_some();
        let state = &mut self.states[id as usize];
        touched.health |= state.health || has_health;
        state.health = has_health;
        let old = std::mem::replace(&mut state.frontends, new);
        let new_keys: Vec<ServiceKey> = state.frontends.iter().map(|e| e.key).collect();
        let changed: Vec<ServiceKey> = state
            .frontends
            .iter()
            .filter(|e| {
                old.binary_search_by(|o| o.key.cmp(&e.key))
                    .map_or(true, |i| old[i] != **e)
            })
            .map(|e| e.key)
            .collect();
        touched.frontends.extend(changed);
        for key in &new_keys {
            self.claim(*key, id);
        }
        for entry in &old {
            if new_keys.binary_search(&entry.key).is_err() {
                touched.frontends.insert(entry.key);
                self.unclaim(entry.key, id);
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
    fn the_dns_service_leads_to_this_nodes_server_on_port_53_only() {
        let Object::Service(mut dns) = service("dns", "10.96.0.10") else {
            unreachable!("service() makes a Service");
        };
        dns.spec.as_mut().unwrap().ports = Some(
            [(53, "UDP"), (53, "TCP"), (9153, "TCP")]
                .map(|(port, protocol)| ServicePort {
                    port,
                    protocol: Some(protocol.into()),
                    ..ServicePort::default()
                })
                .to_vec(),
        );
        let mut store = ObjectStore::new();
        store.apply(Change::Upsert(Object::Service(dns)));
        store.apply(Change::Upsert(service("web", "10.96.0.11")));
        let listen = "172.30.0.11:53".parse().unwrap();
        let local = NodeLocalDns {
            namespace: "shop".into(),
            name: "dns".into(),
            listen,
        };
        let mut index = ServiceIndex::new("n1").with_local_dns(Some(local));
        index.rebuild(&store);
        let by_port: Vec<(u16, Vec<String>)> = index
            .entries()
            .iter()
            .filter(|e| e.key.vip.to_string() == "10.96.0.10")
            .map(|e| {
                let backends = e.backends.iter().map(|b| format!("{}:{}", b.addr, b.port));
                (e.key.port, backends.collect())
            })
            .collect();
        let here = vec!["172.30.0.11:53".to_owned()];
        assert_eq!(
            by_port,
            [(53, here.clone()), (53, here), (9153, Vec::new())],
            "UDP and TCP 53 answered here, the metrics port left to the Service's endpoints"
        );
        assert!(index.entry(&key("10.96.0.11")).unwrap().backends.is_empty());
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
        assert_eq!(
            index.entries(),
            service_entries(&store, "n1", &ReservedAddresses::default())
        );
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

    #[test]
    fn health_checks_from_the_index_match_the_full_scan() {
        let mut store = ObjectStore::new();
        let mut index = ServiceIndex::new("n1");
        let mut lb = match service("lb", "10.96.0.5") {
            Object::Service(s) => *s,
            _ => unreachable!(),
        };
        let spec = lb.spec.as_mut().unwrap();
        spec.type_ = Some("LoadBalancer".into());
        spec.external_traffic_policy = Some("Local".into());
        spec.health_check_node_port = Some(31_000);
        let mut local = match slice("lb-x", "lb", "10.244.1.7") {
            Object::EndpointSlice(s) => *s,
            _ => unreachable!(),
        };
        local.endpoints.as_mut().unwrap()[0].node_name = Some("n1".into());
        for change in [
            Change::Upsert(lb.into()),
            Change::Upsert(local.into()),
            Change::Upsert(service("plain", "10.96.0.6")),
            Change::Upsert(slice("lb-y", "lb", "10.244.2.7")),
        ] {
            apply(&mut store, &mut index, change);
        }
        let checks = index.health_checks(&store);
        assert_eq!(checks, crate::model::health::health_checks(&store, "n1"));
        assert_eq!(checks.len(), 1);
        assert_eq!((checks[0].port, checks[0].local_endpoints), (31_000, 1));
        let touched = apply(
            &mut store,
            &mut index,
            Change::Delete(ObjectKey::namespaced(Kind::EndpointSlice, "shop", "lb-x")),
        );
        assert!(
            touched.health,
            "a change to a health-checked Service's slices says so"
        );
        assert_eq!(index.health_checks(&store)[0].local_endpoints, 0);
    }
}
