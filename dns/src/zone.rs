//! The zone: an immutable snapshot of the apex records and every Service's records, keyed by
//! canonical name, with the empty non-terminals between them (`svc.<zone>`, `pod.<zone>`,
//! `<ns>.svc.<zone>`, `_<proto>.<svc>...`) and the PTR records of the addresses it names.

use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::time::{SystemTime, UNIX_EPOCH};

use hickory_proto::rr::{Name, RData, Record, RecordType};

use crate::addressing::ServiceKind;
use crate::apex;
use crate::config::ZoneConfig;
use crate::names::{self, PODS_LABEL, SERVICES_LABEL};
use crate::records;
use crate::service_records::ServiceRecords;

/// An immutable snapshot of the cluster zone, cheap to look up; see [`Zone::lookup`].
#[derive(Clone, Debug)]
pub struct Zone {
    config: ZoneConfig,
    soa: Record,
    /// `pod.<zone>`, under which pod names are synthesised.
    pods: Option<Name>,
    /// Every name under the zone that exists, empty non-terminals included.
    nodes: HashMap<Name, Node>,
    /// PTR RRsets by reverse name.
    reverse: HashMap<Name, Vec<Record>>,
    /// ClusterIP Services' names and IPv4 addresses, in name order.
    hot_a: Vec<(Name, Vec<Ipv4Addr>)>,
    record_count: usize,
}

/// The RRsets at one name; none for an empty non-terminal.
#[derive(Clone, Debug, Default)]
pub(crate) struct Node {
    rrsets: Vec<Vec<Record>>,
}

impl Node {
    pub(crate) fn rrset(&self, record_type: RecordType) -> Option<&[Record]> {
        self.rrsets
            .iter()
            .find(|rrset| rrset.first().map(Record::record_type) == Some(record_type))
            .map(Vec::as_slice)
    }

    pub(crate) fn rrsets(&self) -> impl Iterator<Item = &[Record]> {
        self.rrsets.iter().map(Vec::as_slice)
    }

    fn add(&mut self, record: Record) {
        let record_type = record.record_type();
        match self
            .rrsets
            .iter_mut()
            .find(|rrset| rrset.first().map(Record::record_type) == Some(record_type))
        {
            Some(rrset) => rrset.push(record),
            None => self.rrsets.push(vec![record]),
        }
    }
}

impl Zone {
    /// The zone of these Services' records (built with the same `config`), its SOA serial the
    /// current Unix time (as CoreDNS's last-modified time), truncated to 32 bits.
    pub fn new<'a>(
        config: ZoneConfig,
        services: impl IntoIterator<Item = &'a ServiceRecords>,
    ) -> Self {
        let serial = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs() as u32);
        Self::with_serial(config, serial, services)
    }

    /// [`Zone::new`] with a given SOA serial (a generation counter, or a fixed one in tests).
    /// Records outside the configured domain are ignored.
    pub fn with_serial<'a>(
        mut config: ZoneConfig,
        serial: u32,
        services: impl IntoIterator<Item = &'a ServiceRecords>,
    ) -> Self {
        config.domain = config.canonical_domain();
        let domain = config.domain.clone();
        let soa = apex::soa(&domain, config.ttl, serial);
        let mut zone = Self {
            pods: names::fixed_child(&domain, PODS_LABEL),
            soa: soa.clone(),
            nodes: HashMap::new(),
            reverse: HashMap::new(),
            hot_a: Vec::new(),
            record_count: 0,
            config,
        };
        zone.add(soa);
        zone.add(apex::ns(&domain, zone.config.ttl));
        zone.add_all(apex::schema_version(&domain));
        if let Some(services) = names::fixed_child(&domain, SERVICES_LABEL) {
            zone.add_name(&services);
        }
        if let Some(pods) = zone.pods.clone() {
            zone.add_name(&pods);
        }
        let mut cluster_ip_names = BTreeSet::new();
        for service in services {
            zone.add_service(service, &mut cluster_ip_names);
        }
        zone.finish(&cluster_ip_names);
        zone
    }

    /// The configuration, its domain canonical (lowercase, fully qualified).
    pub fn config(&self) -> &ZoneConfig {
        &self.config
    }

    /// The SOA, as negative answers carry it in their authority section.
    pub fn soa(&self) -> &Record {
        &self.soa
    }

    /// How many records the zone holds (apex, Services, endpoints, PTR; not synthesised pod names).
    pub fn record_count(&self) -> usize {
        self.record_count
    }

    /// Every ClusterIP Service's A RRset: canonical name, addresses, TTL (for a kernel fast path).
    pub fn hot_a_records(&self) -> impl Iterator<Item = (&Name, &[Ipv4Addr], u32)> {
        let ttl = self.config.ttl;
        self.hot_a
            .iter()
            .map(move |(name, addresses)| (name, addresses.as_slice(), ttl))
    }

    /// Every record the zone holds (forward and reverse; not synthesised pod names), in name and
    /// type order: for listing.
    pub fn records(&self) -> Vec<&Record> {
        let mut records: Vec<&Record> = self
            .nodes
            .values()
            .flat_map(Node::rrsets)
            .chain(self.reverse.values().map(Vec::as_slice))
            .flatten()
            .collect();
        records.sort_by(|a, b| {
            a.name
                .cmp(&b.name)
                .then_with(|| u16::from(a.record_type()).cmp(&u16::from(b.record_type())))
                .then_with(|| a.data.to_string().cmp(&b.data.to_string()))
        });
        records
    }

    pub(crate) fn node(&self, name: &Name) -> Option<&Node> {
        self.nodes.get(name)
    }

    pub(crate) fn reverse_rrset(&self, name: &Name) -> Option<&[Record]> {
        self.reverse.get(name).map(Vec::as_slice)
    }

    /// `pod.<zone>`, unless the domain is too long to have one.
    pub(crate) fn pods_name(&self) -> Option<&Name> {
        self.pods.as_ref()
    }

    fn add_service(&mut self, service: &ServiceRecords, cluster_ip_names: &mut BTreeSet<Name>) {
        if let Some(namespace) = service.namespace_name() {
            self.add_name(namespace);
        }
        for record in service.records() {
            self.add(record.clone());
        }
        for record in service.reverse_records() {
            self.reverse
                .entry(record.name.clone())
                .or_default()
                .push(record.clone());
        }
        if service.kind() == ServiceKind::ClusterIp
            && let Some(name) = service.name()
        {
            cluster_ip_names.insert(name.clone());
        }
    }

    fn add_all(&mut self, records: impl IntoIterator<Item = Record>) {
        for record in records {
            self.add(record);
        }
    }

    /// Adds a record under the zone (and the names between it and the apex); others are ignored.
    fn add(&mut self, record: Record) {
        if !self.config.domain.zone_of(&record.name) {
            return;
        }
        let name = record.name.clone();
        self.add_name(&name);
        if let Some(node) = self.nodes.get_mut(&name) {
            node.add(record);
        }
    }

    /// Makes the name exist, with every name between it and the apex.
    fn add_name(&mut self, name: &Name) {
        if !self.config.domain.zone_of(name) {
            return;
        }
        let mut current = names::canonical(name);
        while !self.nodes.contains_key(&current) {
            self.nodes.insert(current.clone(), Node::default());
            if current == self.config.domain || current.is_root() {
                break;
            }
            current = current.base_name();
        }
    }

    /// Sorts and deduplicates every RRset, shares SRV weights, and indexes the ClusterIP A RRsets.
    fn finish(&mut self, cluster_ip_names: &BTreeSet<Name>) {
        for node in self.nodes.values_mut() {
            node.rrsets.iter_mut().for_each(records::normalise);
        }
        self.reverse.values_mut().for_each(records::normalise);
        self.hot_a = cluster_ip_names
            .iter()
            .filter_map(|name| {
                let node = self.nodes.get(name)?;
                if node.rrset(RecordType::CNAME).is_some() {
                    return None;
                }
                let addresses: Vec<Ipv4Addr> = node
                    .rrset(RecordType::A)?
                    .iter()
                    .filter_map(|record| match &record.data {
                        RData::A(a) => Some(a.0),
                        _ => None,
                    })
                    .collect();
                Some((name.clone(), addresses))
            })
            .collect();
        let forward: usize = self
            .nodes
            .values()
            .flat_map(Node::rrsets)
            .map(<[Record]>::len)
            .sum();
        let reverse: usize = self.reverse.values().map(Vec::len).sum();
        self.record_count = forward + reverse;
    }
}
