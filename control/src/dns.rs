//! Cluster DNS on this node: which Service the node answers itself ([`NodeLocalDns`]: the
//! `kube-dns` Service's port 53 frontends lead to this node's own DNS server), the zone kept from
//! the store's events ([`DnsIndex`]: a Service's records are rebuilt when the Service or one of
//! its EndpointSlices changes), and the handle through which the DNS server reads the newest zone.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::SocketAddrV4,
    sync::{
        Arc, RwLock,
        atomic::{AtomicU64, Ordering},
    },
};

use strait_dataplane::{
    dns_fast::HotRecord,
    services::{Backend, ServiceEntry},
};
use strait_dns::{ServiceRecords, Zone, ZoneConfig};
use strait_k8s::{Event, Kind, Object, ObjectStore, service::slice_service};

/// The DNS port every resolver asks.
pub const DNS_PORT: u16 = 53;

/// The Service this node answers with its own DNS server, and where that server listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeLocalDns {
    pub namespace: String,
    pub name: String,
    pub listen: SocketAddrV4,
}

impl NodeLocalDns {
    /// Whether `namespace/name` is the DNS Service.
    pub fn is(&self, namespace: &str, name: &str) -> bool {
        self.namespace == namespace && self.name == name
    }

    /// Points the DNS Service's ClusterIP frontends on port 53 (UDP and TCP) at this node's server:
    /// whichever node a pod is on, its queries never leave the node.
    pub fn redirect(&self, entries: &mut [ServiceEntry]) {
        for entry in entries
            .iter_mut()
            .filter(|e| e.external.is_none() && e.key.port == DNS_PORT)
        {
            entry.backends = vec![Backend {
                addr: *self.listen.ip(),
                port: self.listen.port(),
            }];
            entry.endpoints_elsewhere = false;
        }
    }
}

/// The newest zone, shared by the sync loop (which replaces it) and the DNS server (which reads it
/// once per query).
/// A generation counter moves after each publish, so the server's threads fetch the zone only
/// when it changed.
#[derive(Clone, Debug)]
pub struct ZoneHandle {
    zone: Arc<RwLock<Arc<Zone>>>,
    generation: Arc<AtomicU64>,
}

impl ZoneHandle {
    /// An empty zone until the first sync.
    pub fn new(config: ZoneConfig) -> Self {
        Self {
            zone: Arc::new(RwLock::new(Arc::new(Zone::new(config, [])))),
            generation: Arc::default(),
        }
    }

    /// The zone as it is now.
    pub fn current(&self) -> Arc<Zone> {
        self.zone
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn publish(&self, zone: Zone) {
        *self
            .zone
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(zone);
        self.generation.fetch_add(1, Ordering::Release);
    }
}

impl strait_dns::server::ZoneSource for ZoneHandle {
    fn zone(&self) -> Arc<Zone> {
        self.current()
    }

    fn generation(&self) -> Option<u64> {
        Some(self.generation.load(Ordering::Acquire))
    }
}

/// What `/metrics` shows of the node's DNS server.
#[derive(Clone)]
pub struct DnsObserved {
    /// CoreDNS's `server` label: `dns://IP:PORT`.
    pub server: String,
    pub counters: Arc<strait_dns::metrics::ServerCounters>,
    pub forward: Arc<strait_dns::forward::ForwardCounters>,
    pub forwarder: Arc<strait_dns::forward::Forwarder>,
    pub zone: ZoneHandle,
}

impl DnsObserved {
    /// Appends the DNS metrics.
    pub fn render(&self, out: &mut String) {
        strait_dns::metrics::DnsScrape {
            server: &self.server,
            counters: &self.counters,
            forward: &self.forward,
            zone_records: self.zone.current().record_count(),
            cache_entries: self.forwarder.cache_len(),
        }
        .render(out);
    }
}

/// What the sync loop needs to keep the zone.
#[derive(Clone, Debug)]
pub struct DnsSettings {
    pub zone: ZoneConfig,
    pub handle: ZoneHandle,
    /// Whether the kernel fast path answers (its hot records are then kept in DNS_A_V1).
    pub fast_path: bool,
}

/// The zone's hot records for the kernel fast path: every ClusterIP A record, by its name in wire
/// format.
pub fn hot_records(zone: &Zone) -> Vec<HotRecord> {
    zone.hot_a_records()
        .map(|(name, addrs, ttl)| {
            let mut wire_name = Vec::with_capacity(64);
            for label in name {
                wire_name.push(label.len() as u8);
                wire_name.extend_from_slice(label);
            }
            wire_name.push(0);
            HotRecord {
                wire_name,
                ttl,
                addrs: addrs.to_vec(),
            }
        })
        .collect()
}

/// `(namespace, service name)`.
type ServiceName = (String, String);

/// The DNS feature's subscription to the store: per Service its EndpointSlices' names and its
/// records. A Service event rebuilds that Service's records; an EndpointSlice event the Services it
/// was labelled for before and after.
pub struct DnsIndex {
    settings: DnsSettings,
    slices: BTreeMap<ServiceName, BTreeSet<String>>,
    records: BTreeMap<ServiceName, ServiceRecords>,
    touched: BTreeSet<ServiceName>,
}

impl DnsIndex {
    pub fn new(settings: DnsSettings) -> Self {
        Self {
            settings,
            slices: BTreeMap::new(),
            records: BTreeMap::new(),
            touched: BTreeSet::new(),
        }
    }

    /// Notes what `events` touch; nothing is rebuilt before [`DnsIndex::publish`].
    pub fn note(&mut self, events: &[Event]) {
        for event in events {
            match event.key.kind {
                Kind::Service => {
                    self.touched
                        .insert((event.key.namespace.clone(), event.key.name.clone()));
                }
                Kind::EndpointSlice => {
                    for (object, present) in [(&event.old, false), (&event.new, true)] {
                        let Some(Object::EndpointSlice(slice)) = object.as_deref() else {
                            continue;
                        };
                        let Some(service) = slice_service(slice) else {
                            continue;
                        };
                        let key = (event.key.namespace.clone(), service.to_owned());
                        let names = self.slices.entry(key.clone()).or_default();
                        if present {
                            names.insert(event.key.name.clone());
                        } else {
                            names.remove(&event.key.name);
                        }
                        self.touched.insert(key);
                    }
                }
                _ => {}
            }
        }
    }

    /// Learns every Service and slice of the store again (the first sync, a resync); the fast path's
    /// records when it is on.
    pub fn rebuild(&mut self, store: &ObjectStore) -> Option<Vec<HotRecord>> {
        self.slices.clear();
        self.records.clear();
        for (key, slice) in store.endpoint_slices() {
            if let Some(service) = slice_service(&slice) {
                self.slices
                    .entry((key.namespace.clone(), service.to_owned()))
                    .or_default()
                    .insert(key.name.clone());
            }
        }
        self.touched = store
            .keys(Kind::Service)
            .map(|key| (key.namespace.clone(), key.name.clone()))
            .chain(self.slices.keys().cloned())
            .collect();
        self.publish(store)
    }

    /// Rebuilds the records of the Services touched since the last call and, if any, hands the
    /// server a new zone; then the fast path's records, when it is on.
    pub fn publish(&mut self, store: &ObjectStore) -> Option<Vec<HotRecord>> {
        if self.touched.is_empty() {
            return None;
        }
        let touched = std::mem::take(&mut self.touched);
        for key in &touched {
            let (namespace, name) = key;
            match store.service(namespace, name) {
                Some(service) => {
                    let slices: Vec<_> = self
                        .slices
                        .get(key)
                        .into_iter()
                        .flatten()
                        .filter_map(|slice| store.endpoint_slice(namespace, slice))
                        .collect();
                    let slices: Vec<&_> = slices.iter().collect();
                    let records = ServiceRecords::build(&self.settings.zone, &service, &slices);
                    self.records.insert(key.clone(), records);
                }
                None => {
                    self.records.remove(key);
                }
            }
            if self.slices.get(key).is_some_and(BTreeSet::is_empty) {
                self.slices.remove(key);
            }
        }
        let zone = Zone::new(self.settings.zone.clone(), self.records.values());
        tracing::debug!(
            services = touched.len(),
            records = zone.record_count(),
            "cluster DNS zone updated"
        );
        let hot = self.settings.fast_path.then(|| hot_records(&zone));
        self.settings.handle.publish(zone);
        hot
    }
}

/// Keeps DNS_A_V1 in step with the zone's hot records from the sync loop. It remembers what it wrote,
/// so a change writes only the names that changed; the first write, a resync and the write after a
/// failure compare with the kernel's map itself.
#[derive(Default)]
pub struct DnsMapWriter {
    written: Option<BTreeMap<Vec<u8>, HotRecord>>,
}

impl DnsMapWriter {
    /// Makes the map hold `records`; `full` compares with the kernel's map (a resync). A failure is
    /// logged and the next write compares in full.
    pub fn write(
        &mut self,
        dataplane: &mut strait_dataplane::Dataplane,
        records: &[HotRecord],
        full: bool,
    ) {
        let wanted: BTreeMap<Vec<u8>, HotRecord> = records
            .iter()
            .map(|r| (r.wire_name.clone(), r.clone()))
            .collect();
        let result = match self.written.take().filter(|_| !full) {
            None => dataplane.sync_dns_records(records),
            Some(written) => {
                let upserts: Vec<HotRecord> = wanted
                    .values()
                    .filter(|r| written.get(&r.wire_name) != Some(*r))
                    .cloned()
                    .collect();
                let removals: Vec<Vec<u8>> = written
                    .keys()
                    .filter(|name| !wanted.contains_key(*name))
                    .cloned()
                    .collect();
                dataplane.apply_dns_changes(&upserts, &removals)
            }
        };
        match result {
            Ok(report) => {
                tracing::debug!(
                    names = records.len(),
                    written = report.written,
                    removed = report.removed,
                    skipped = report.skipped,
                    "DNS fast path records updated"
                );
                self.written = Some(wanted);
            }
            Err(error) => tracing::warn!(
                %error,
                "writing the DNS fast path records failed; retried on the next change"
            ),
        }
    }
}
