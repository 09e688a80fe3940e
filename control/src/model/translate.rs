//! The pure translation of Services and EndpointSlices into the data path's [`ServiceEntry`] list, with
//! kube-proxy's semantics for ClusterIP services (IPv4 only, for now), and the [`diff`] between two lists.
//!
//! - A Service gets frontends when it has an IPv4 cluster IP: `spec.clusterIP`, or when that is unset
//!   the first of `spec.clusterIPs`; a dual-stack Service whose primary address is IPv6 uses its IPv4
//!   cluster IP. Headless Services (`clusterIP: None`) and `type: ExternalName` get none.
//! - Each TCP (the default) or UDP service port is one frontend, [`ServiceKey`] `{vip, port, proto}`;
//!   SCTP ports are skipped.
//! - Backends come from the IPv4 EndpointSlices of the same namespace labelled
//!   `kubernetes.io/service-name: <service>`: the slice port with the service port's name (unset and
//!   empty are the same name) and protocol gives the backend port; every address of a chosen endpoint is
//!   a backend.
//! - Endpoints are chosen as kube-proxy does: the ready ones (`ready` unset or true); when there are
//!   none, those that are serving (`serving` unset or true) and terminating (`terminating: true`). With
//!   `internalTrafficPolicy: Local` only endpoints on this node are considered, and the same rule is
//!   applied to them.
//! - `type: NodePort` / `LoadBalancer` ports with a `nodePort` are also frontends on each of this node's
//!   addresses (its Node object's InternalIP/ExternalIP); `spec.externalIPs` and
//!   `status.loadBalancer.ingress[].ip` are frontends on the service port. With
//!   `externalTrafficPolicy: Local` these use only this node's endpoints. These frontends are marked
//!   external (Maglev selection, SNAT unless Local); `loadBalancerSourceRanges` restrict the
//!   LoadBalancer ingress IPs only, as in kube-proxy.
//! - A frontend without backends is still emitted, with an empty list, so the data path can reject its
//!   connections instead of passing them on.
//!
//! Backends are deduplicated and sorted by (address, port), so the same endpoints always give the same
//! slots; entries are sorted by key. When two Services claim the same frontend, a ClusterIP beats an
//! address reached from outside (externalIPs, LoadBalancer ingress: see [`precedence`]), then the first
//! in (namespace, name) order keeps it.
//!
//! Pods' host ports ([`host_ports`](super::host_ports)) take the frontends no Service holds.
//!
//! [`service_frontends`] translates one Service (what [`ServiceIndex`](super::service_index::ServiceIndex)
//! calls per change); [`service_entries`] translates the whole store (the first sync and the periodic
//! resync that checks the incremental path).

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::{Service, ServiceSpec};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointSlice};
use strait_dataplane::services::{
    Backend, ExternalAccess, L4Proto, Prefix, ServiceEntry, ServiceKey,
};
use strait_k8s::service::{cluster_ipv4, external_addresses, slice_service};
use strait_k8s::{Kind, ObjectStore};

use super::host_ports::{HOST_PORT_FIELD, HostPortPod, host_port_entries};

pub use strait_k8s::service::SERVICE_NAME_LABEL;

/// What changed between two entry lists: entries to write (new, or with different backends) and
/// frontends to delete. Unchanged entries appear in neither list. Both lists are sorted by key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceDiff {
    pub upserts: Vec<ServiceEntry>,
    pub removals: Vec<ServiceKey>,
}

impl ServiceDiff {
    /// True when nothing changed.
    pub fn is_empty(&self) -> bool {
        self.upserts.is_empty() && self.removals.is_empty()
    }
}

/// The service entries for node `node_name`, sorted by key (see the module documentation for the rules).
pub fn service_entries(
    store: &ObjectStore,
    node_name: &str,
    reserved: &ReservedAddresses,
) -> Vec<ServiceEntry> {
    let slices = slices_by_service(store);
    let node_ips = node_addresses(store, node_name);
    let mut entries: BTreeMap<ServiceKey, ServiceEntry> = BTreeMap::new();
    for (key, service) in store.services() {
        let slices: Vec<&EndpointSlice> = slices
            .get(&(key.namespace.clone(), key.name.clone()))
            .into_iter()
            .flatten()
            .collect();
        for entry in service_frontends(&service, &slices, &node_ips, node_name, reserved) {
            match entries.get(&entry.key) {
                // A ClusterIP outranks an address reached from outside (externalIPs, ingress), so no
                // Service can take another's ClusterIP over; among equals the first Service keeps it.
                Some(held) if precedence(held) <= precedence(&entry) => {}
                _ => {
                    entries.insert(entry.key, entry);
                }
            }
        }
    }
    // A host port takes only a frontend no Service holds; among pods the first in (namespace, name)
    // order keeps it.
    for (_, pod) in store.views_containing::<HostPortPod>(Kind::Pod, HOST_PORT_FIELD) {
        for entry in host_port_entries(&pod, node_name, &node_ips) {
            entries.entry(entry.key).or_insert(entry);
        }
    }
    entries.into_values().collect()
}

/// Addresses no Service may claim as an externalIP or LoadBalancer ingress: the cluster's own ranges
/// (pod and service CIDRs). This node's addresses are refused too (see [`refused_external`]). Empty by
/// default (nothing refused but the node's addresses).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReservedAddresses {
    pub cidrs: Vec<Ipv4Net>,
}

impl ReservedAddresses {
    /// Kubernetes' usual ranges, straitd's defaults: pods 10.244.0.0/16 (`--cluster-cidr`) and
    /// Services 10.96.0.0/12 (`--service-cidr`).
    pub const DEFAULT_CLUSTER_CIDR: &'static str = "10.244.0.0/16";
    pub const DEFAULT_SERVICE_CIDR: &'static str = "10.96.0.0/12";

    /// The default ranges.
    pub fn defaults() -> Self {
        Self {
            cidrs: [Self::DEFAULT_CLUSTER_CIDR, Self::DEFAULT_SERVICE_CIDR]
                .iter()
                .map(|cidr| cidr.parse().expect("a valid default range"))
                .collect(),
        }
    }

    /// The range `ip` falls in, if any.
    pub fn range_of(&self, ip: Ipv4Addr) -> Option<Ipv4Net> {
        self.cidrs.iter().copied().find(|net| net.contains(&ip))
    }
}

/// The externalIPs and ingress addresses of `service` that are refused, with why: inside a reserved
/// range, or one of this node's addresses (a Service there would capture the node's own traffic).
pub fn refused_external(
    service: &Service,
    reserved: &ReservedAddresses,
    node_ips: &[Ipv4Addr],
) -> Vec<(Ipv4Addr, String)> {
    let external = external_addresses(service);
    external
        .external_ips
        .iter()
        .chain(&external.load_balancer_ips)
        .filter_map(|ip| {
            if let Some(range) = reserved.range_of(*ip) {
                Some((*ip, format!("inside the cluster's range {range}")))
            } else if node_ips.contains(ip) {
                Some((*ip, "an address of this node".to_owned()))
            } else {
                None
            }
        })
        .collect()
}

/// How strongly an entry claims its frontend when two Services name the same one (lower wins): a
/// ClusterIP before an address reached from outside the cluster (externalIPs, LoadBalancer ingress),
/// which any Service can write into its spec (the CVE-2020-8554 class).
pub fn precedence(entry: &ServiceEntry) -> u8 {
    u8::from(entry.external.is_some())
}

/// The frontends of one Service, sorted by key, given its IPv4 EndpointSlices (in slice-name order)
/// and this node's addresses. When the Service lists the same frontend twice, the first one counts.
pub fn service_frontends(
    service: &Service,
    slices: &[&EndpointSlice],
    node_ips: &[Ipv4Addr],
    node_name: &str,
    reserved: &ReservedAddresses,
) -> Vec<ServiceEntry> {
    let mut entries: BTreeMap<ServiceKey, ServiceEntry> = BTreeMap::new();
    let Some(spec) = service.spec.as_ref() else {
        return Vec::new();
    };
    let Some(vip) = cluster_ipv4(service) else {
        return Vec::new();
    };
    let internal_local =
        (spec.internal_traffic_policy.as_deref() == Some("Local")).then_some(node_name);
    let external_local =
        (spec.external_traffic_policy.as_deref() == Some("Local")).then_some(node_name);
    let affinity = affinity_timeout(spec);
    let mut external = external_addresses(service);
    let refused: Vec<Ipv4Addr> = refused_external(service, reserved, node_ips)
        .into_iter()
        .map(|(ip, _)| ip)
        .collect();
    external.external_ips.retain(|ip| !refused.contains(ip));
    external
        .load_balancer_ips
        .retain(|ip| !refused.contains(ip));
    let external_access = |source_ranges: Vec<Prefix>| {
        Some(ExternalAccess {
            local: external_local.is_some(),
            source_ranges,
        })
    };
    let node_port_type = matches!(spec.type_.as_deref(), Some("NodePort" | "LoadBalancer"));
    for port in spec.ports.iter().flatten() {
        let (Some(proto), Some(number)) =
            (l4_proto(port.protocol.as_deref()), port_number(port.port))
        else {
            continue;
        };
        let mut add = |vip: Ipv4Addr,
                       port_number: u16,
                       local: Option<&str>,
                       external: Option<ExternalAccess>| {
            let key = ServiceKey {
                vip,
                port: port_number,
                proto,
            };
            entries.entry(key).or_insert_with(|| {
                let here = backends(slices, port.name.as_deref(), proto, local);
                // kube-proxy drops (rather than refuses) a Local policy's traffic when the Service's
                // endpoints are all on other nodes.
                let endpoints_elsewhere = local.is_some()
                    && here.is_empty()
                    && !backends(slices, port.name.as_deref(), proto, None).is_empty();
                ServiceEntry {
                    key,
                    backends: here,
                    affinity_timeout_s: affinity,
                    external,
                    endpoints_elsewhere,
                }
            });
        };
        add(vip, number, internal_local, None);
        for ip in &external.external_ips {
            add(*ip, number, external_local, external_access(Vec::new()));
        }
        for ip in &external.load_balancer_ips {
            add(
                *ip,
                number,
                external_local,
                external_access(source_ranges(spec)),
            );
        }
        if node_port_type && let Some(node_port) = port.node_port.and_then(port_number) {
            for ip in node_ips {
                add(*ip, node_port, external_local, external_access(Vec::new()));
            }
        }
    }
    entries.into_values().collect()
}

/// This node's IPv4 addresses (InternalIP and ExternalIP) from its Node object: NodePorts are served on
/// them.
pub fn node_addresses(store: &ObjectStore, node_name: &str) -> Vec<Ipv4Addr> {
    let Some(node) = store.node("", node_name) else {
        return Vec::new();
    };
    let mut out: Vec<Ipv4Addr> = node
        .status
        .iter()
        .flat_map(|s| s.addresses.iter().flatten())
        .filter(|a| a.type_ == "InternalIP" || a.type_ == "ExternalIP")
        .filter_map(|a| a.address.parse().ok())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// `spec.loadBalancerSourceRanges` as IPv4 prefixes (host bits cleared), sorted; entries that are not
/// IPv4 CIDRs are skipped (the API server validates them; IPv6 ranges do not apply to IPv4 frontends).
fn source_ranges(spec: &ServiceSpec) -> Vec<Prefix> {
    let mut out: Vec<Prefix> = spec
        .load_balancer_source_ranges
        .iter()
        .flatten()
        .filter_map(|range| {
            let (addr, len) = range.trim().split_once('/')?;
            let addr: Ipv4Addr = addr.parse().ok()?;
            let len: u8 = len.parse().ok().filter(|l| *l <= 32)?;
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            Some(Prefix {
                addr: Ipv4Addr::from(u32::from(addr) & mask),
                len,
            })
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Kubernetes' default `sessionAffinityConfig.clientIP.timeoutSeconds` (3 hours).
pub const DEFAULT_AFFINITY_TIMEOUT_S: u32 = 10_800;

/// `sessionAffinity: ClientIP` -> its timeout in seconds (Kubernetes allows 1..=86400).
fn affinity_timeout(spec: &k8s_openapi::api::core::v1::ServiceSpec) -> Option<u32> {
    if spec.session_affinity.as_deref() != Some("ClientIP") {
        return None;
    }
    let configured = spec
        .session_affinity_config
        .as_ref()
        .and_then(|c| c.client_ip.as_ref())
        .and_then(|c| c.timeout_seconds)
        .and_then(|t| u32::try_from(t).ok())
        .filter(|t| (1..=86_400).contains(t));
    Some(configured.unwrap_or(DEFAULT_AFFINITY_TIMEOUT_S))
}

/// The changes that turn `old` into `new`. Inputs need not be sorted; if a key appears twice in one
/// list, its last entry counts.
pub fn diff(old: &[ServiceEntry], new: &[ServiceEntry]) -> ServiceDiff {
    let old: BTreeMap<ServiceKey, &ServiceEntry> = old.iter().map(|e| (e.key, e)).collect();
    let new: BTreeMap<ServiceKey, &ServiceEntry> = new.iter().map(|e| (e.key, e)).collect();
    ServiceDiff {
        upserts: new
            .values()
            .filter(|e| old.get(&e.key) != Some(e))
            .map(|e| (*e).clone())
            .collect(),
        removals: old
            .keys()
            .filter(|k| !new.contains_key(k))
            .copied()
            .collect(),
    }
}

/// The IPv4 EndpointSlices of each Service, by (namespace, service name), in slice-name order.
fn slices_by_service(store: &ObjectStore) -> BTreeMap<(String, String), Vec<EndpointSlice>> {
    let mut by_service: BTreeMap<(String, String), Vec<EndpointSlice>> = BTreeMap::new();
    for (key, slice) in store.endpoint_slices() {
        if let Some(service) = ipv4_slice_service(&slice).map(str::to_owned) {
            by_service
                .entry((key.namespace.clone(), service))
                .or_default()
                .push(slice);
        }
    }
    by_service
}

/// The Service an IPv4 EndpointSlice belongs to; `None` for other families and unlabelled slices.
pub fn ipv4_slice_service(slice: &EndpointSlice) -> Option<&str> {
    (slice.address_type == "IPv4")
        .then(|| slice_service(slice))
        .flatten()
}

/// What [`ipv4_slice_service`] reads of an EndpointSlice, as a view the store decodes without the
/// slice's endpoints ([`ObjectStore::views`](strait_k8s::ObjectStore::views)): rebuilding the index
/// learns each slice's Service at the cost of a scan, and decodes the slice in full only once, when
/// its Service is translated.
#[derive(Debug, serde::Deserialize)]
pub struct SliceOwner {
    #[serde(rename = "addressType")]
    address_type: String,
    #[serde(default)]
    metadata: SliceOwnerMeta,
}

#[derive(Debug, Default, serde::Deserialize)]
struct SliceOwnerMeta {
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
}

impl SliceOwner {
    /// The Service of an IPv4 slice, as [`ipv4_slice_service`] says.
    pub fn ipv4_service(&self) -> Option<&str> {
        (self.address_type == "IPv4")
            .then(|| self.metadata.labels.as_ref()?.get(SERVICE_NAME_LABEL))
            .flatten()
            .map(String::as_str)
    }
}

/// The protocol of a service or slice port (`None` means TCP); `None` for protocols the data path
/// does not balance (SCTP, unknown).
pub(super) fn l4_proto(protocol: Option<&str>) -> Option<L4Proto> {
    match protocol.unwrap_or("TCP") {
        "TCP" => Some(L4Proto::Tcp),
        "UDP" => Some(L4Proto::Udp),
        _ => None,
    }
}

/// A valid port number (1..=65535).
pub(super) fn port_number(port: i32) -> Option<u16> {
    u16::try_from(port).ok().filter(|&p| p != 0)
}

/// Unset and empty port names are the same name.
fn port_name(name: Option<&str>) -> &str {
    name.unwrap_or_default()
}

/// The backends for the service port named `name` with protocol `proto`, from the Service's slices.
/// With `local_node`, only endpoints on that node count.
fn backends(
    slices: &[&EndpointSlice],
    name: Option<&str>,
    proto: L4Proto,
    local_node: Option<&str>,
) -> Vec<Backend> {
    // Every candidate backend with the endpoint it comes from.
    let mut candidates: Vec<(Backend, &Endpoint)> = Vec::new();
    for slice in slices {
        let ports = slice.ports.iter().flatten().filter(|p| {
            port_name(p.name.as_deref()) == port_name(name)
                && l4_proto(p.protocol.as_deref()) == Some(proto)
        });
        for port in ports.filter_map(|p| p.port.and_then(port_number)) {
            let endpoints = slice
                .endpoints
                .iter()
                .flatten()
                .filter(|e| local_node.is_none_or(|node| e.node_name.as_deref() == Some(node)));
            for endpoint in endpoints {
                let addrs = endpoint
                    .addresses
                    .iter()
                    .filter_map(|a| a.parse::<Ipv4Addr>().ok());
                candidates.extend(addrs.map(|addr| (Backend { addr, port }, endpoint)));
            }
        }
    }
    let usable: fn(&Endpoint) -> bool = if candidates.iter().any(|(_, e)| is_ready(e)) {
        is_ready
    } else {
        is_serving_terminating
    };
    let unique: BTreeSet<Backend> = candidates
        .into_iter()
        .filter(|(_, e)| usable(e))
        .map(|(backend, _)| backend)
        .collect();
    unique.into_iter().collect()
}

/// kube-proxy's "ready": `conditions.ready` unset or true.
pub(crate) fn is_ready(endpoint: &Endpoint) -> bool {
    endpoint
        .conditions
        .as_ref()
        .and_then(|c| c.ready)
        .unwrap_or(true)
}

/// kube-proxy's terminating fallback: serving (unset or true) and terminating (true).
fn is_serving_terminating(endpoint: &Endpoint) -> bool {
    let conditions = endpoint.conditions.as_ref();
    conditions.and_then(|c| c.serving).unwrap_or(true)
        && conditions.and_then(|c| c.terminating) == Some(true)
}
