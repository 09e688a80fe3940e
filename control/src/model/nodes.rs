//! The overlay feature's translation: every other Node's pod CIDRs and address, as the prefixes of
//! REMOTE_V1 that lead to it. A node's underlay address is its InternalIP (Flannel's `public-ip`
//! annotation wins where a Flannel node set one); its VTEP MAC is the one its Flannel `backend-data`
//! annotation names (a Flannel node's random `flannel.1` MAC), else the one strait derives from its
//! address ([`vtep_mac`]), which every strait node computes alike.

use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::Node;
use strait_dataplane::{
    netlink::vxlan::vtep_mac,
    overlay::{RemoteMode, RemoteRoute},
};
use strait_k8s::{
    Kind, Object, ObjectStore,
    flannel::{self, parse_mac},
    node_ipv4,
};

/// How the other nodes are reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Routing {
    /// The mode for every node (outside `direct_subnet`).
    pub mode: RemoteMode,
    /// The `auto` mode's on-link test: this node's underlay subnet, whose nodes are reached directly.
    pub direct_subnet: Option<ipnet::Ipv4Net>,
}

impl Routing {
    /// Every node in `mode`.
    pub fn all(mode: RemoteMode) -> Self {
        Self {
            mode,
            direct_subnet: None,
        }
    }

    /// The mode for the node at `node_ip`.
    pub fn mode_for(&self, node_ip: Ipv4Addr) -> RemoteMode {
        match self.direct_subnet {
            Some(subnet) if subnet.contains(&node_ip) => RemoteMode::Direct,
            _ => self.mode,
        }
    }
}

/// The REMOTE_V1 prefixes for every Node but `self_name`, sorted: each node's IPv4 pod CIDRs and its
/// address as a /32, in the mode `routing` gives the node. A node without an IPv4 address or pod CIDR is
/// skipped (it cannot be reached yet; its routes appear once the node IPAM controller and the kubelet
/// have filled them in).
pub fn remote_routes(store: &ObjectStore, self_name: &str, routing: Routing) -> Vec<RemoteRoute> {
    let mut routes = Vec::new();
    for (key, object) in store.of_kind(Kind::Node) {
        if key.name == self_name {
            continue;
        }
        let Object::Node(node) = object else {
            continue;
        };
        routes.extend(node_routes(&node, routing));
    }
    routes.sort();
    routes.dedup_by_key(|r| (r.prefix, r.prefix_len));
    routes
}

/// The prefixes leading to one node.
fn node_routes(node: &Node, routing: Routing) -> Vec<RemoteRoute> {
    let Some(node_ip) = underlay_address(node) else {
        return Vec::new();
    };
    let mode = routing.mode_for(node_ip);
    let mac = annotated_vtep_mac(node).unwrap_or_else(|| vtep_mac(node_ip));
    let route = |prefix, prefix_len| RemoteRoute {
        prefix,
        prefix_len,
        node_ip,
        vtep_mac: mac,
        mode,
    };
    let cidrs = pod_cidrs(node);
    if cidrs.is_empty() {
        return Vec::new();
    }
    let mut routes: Vec<RemoteRoute> = cidrs
        .into_iter()
        .map(|net| route(net.network(), net.prefix_len()))
        .collect();
    routes.push(route(node_ip, 32));
    routes
}

/// The node's assigned pod ranges as written (`spec.podCIDRs`, else `spec.podCIDR`).
pub(crate) fn assigned_pod_ranges(node: &Node) -> Vec<String> {
    let spec = node.spec.as_ref();
    let listed = spec.and_then(|s| s.pod_cidrs.clone()).unwrap_or_default();
    if listed.is_empty() {
        spec.and_then(|s| s.pod_cidr.clone()).into_iter().collect()
    } else {
        listed
    }
}

/// The node's IPv4 pod CIDRs (of [`assigned_pod_ranges`]), host bits cleared.
pub(crate) fn pod_cidrs(node: &Node) -> Vec<ipnet::Ipv4Net> {
    assigned_pod_ranges(node)
        .iter()
        .filter_map(|text| text.trim().parse::<ipnet::Ipv4Net>().ok())
        .map(|net| net.trunc())
        .collect()
}

/// The node's address for tunnels: Flannel's `public-ip` annotation, else its first IPv4 InternalIP.
fn underlay_address(node: &Node) -> Option<Ipv4Addr> {
    let annotated = node
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(flannel::PUBLIC_IP))
        .and_then(|ip| ip.parse().ok());
    annotated.or_else(|| node_ipv4(node, &["InternalIP"]))
}

/// The VTEP MAC of the node's Flannel `backend-data` annotation, if it names a valid one.
fn annotated_vtep_mac(node: &Node) -> Option<[u8; 6]> {
    let data = node
        .metadata
        .annotations
        .as_ref()?
        .get(flannel::BACKEND_DATA)?;
    let value: serde_json::Value = serde_json::from_str(data).ok()?;
    parse_mac(value.get("VtepMAC")?.as_str()?)
}
