//! `hostPort`: a pod's container port reached at its node's address, translated into the same
//! frontends as Services ([`ServiceEntry`]), so the socket hooks and the per-packet path serve them
//! with no code of their own. This replaces the CNI `portmap` plugin, which would need iptables.
//!
//! The rules, as kubelet and `portmap` apply them:
//! - Only pods on this node (`spec.nodeName`) that are not `hostNetwork` (their ports are the node's
//!   own already), have an IPv4 `status.podIP` and have not finished (`Succeeded`, `Failed`).
//! - Each port of `spec.containers[].ports` with a `hostPort` is one frontend per address: its
//!   `hostIP` when set (IPv4 only), else every address of this node and `127.0.0.1` (`portmap`
//!   maps every local address, loopback included). TCP (the default) and UDP; SCTP is skipped.
//! - The one backend is the pod's address and `containerPort`. The frontend is external with the
//!   `Local` policy: a client keeps its address (no SNAT), as with `portmap`.
//! - A Service's frontend wins over a host port on the same address, port and protocol; between
//!   pods, the first in (namespace, name) order keeps it (the scheduler keeps two pods on one node
//!   from asking for the same one).

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::Pod;
use strait_dataplane::services::{Backend, ExternalAccess, ServiceEntry, ServiceKey};
use strait_k8s::{Kind, ObjectStore};

use super::translate::{l4_proto, port_number};

/// What the host port rules read of a Pod: a view the store decodes without the rest of the pod
/// ([`ObjectStore::views`]), and what a decoded Pod is turned into.
#[derive(Debug, Default, serde::Deserialize)]
pub struct HostPortPod {
    #[serde(default)]
    spec: Option<ViewSpec>,
    #[serde(default)]
    status: Option<ViewStatus>,
}

#[derive(Debug, Default, serde::Deserialize)]
struct ViewSpec {
    #[serde(default, rename = "nodeName")]
    node_name: Option<String>,
    #[serde(default, rename = "hostNetwork")]
    host_network: Option<bool>,
    #[serde(default)]
    containers: Vec<ViewContainer>,
}

#[derive(Debug, Default, serde::Deserialize)]
struct ViewContainer {
    #[serde(default)]
    ports: Option<Vec<ViewPort>>,
}

#[derive(Debug, Default, serde::Deserialize)]
struct ViewPort {
    #[serde(rename = "containerPort")]
    container_port: i32,
    #[serde(default, rename = "hostPort")]
    host_port: Option<i32>,
    #[serde(default, rename = "hostIP")]
    host_ip: Option<String>,
    #[serde(default)]
    protocol: Option<String>,
}

#[derive(Debug, Default, serde::Deserialize)]
struct ViewStatus {
    #[serde(default, rename = "podIP")]
    pod_ip: Option<String>,
    #[serde(default)]
    phase: Option<String>,
}

impl HostPortPod {
    /// The view of a decoded Pod when it runs on `node_name` (the one field read before converting,
    /// so pods of other nodes cost nothing); `None` for a pod elsewhere.
    pub fn of_pod_on(pod: &Pod, node_name: &str) -> Option<Self> {
        let on_node = pod.spec.as_ref()?.node_name.as_deref() == Some(node_name);
        let has_host_port = pod
            .spec
            .iter()
            .flat_map(|s| &s.containers)
            .flat_map(|c| c.ports.iter().flatten())
            .any(|p| p.host_port.is_some_and(|h| h != 0));
        if !on_node || !has_host_port {
            return None;
        }
        // Through JSON so both readings are the same code: only this node's pods with host ports
        // get here.
        serde_json::to_value(pod)
            .ok()
            .and_then(|value| serde_json::from_value(value).ok())
    }

    fn on(&self, node_name: &str) -> bool {
        self.spec
            .as_ref()
            .is_some_and(|s| s.node_name.as_deref() == Some(node_name))
    }
}

/// The host port frontends of one pod for node `node_name` with addresses `node_ips`, sorted by key
/// (see the module documentation for the rules).
pub fn host_port_entries(
    pod: &HostPortPod,
    node_name: &str,
    node_ips: &[Ipv4Addr],
) -> Vec<ServiceEntry> {
    let Some(spec) = pod.spec.as_ref().filter(|_| pod.on(node_name)) else {
        return Vec::new();
    };
    let status = pod.status.as_ref();
    let finished = matches!(
        status.and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    );
    let pod_ip = status
        .and_then(|s| s.pod_ip.as_deref())
        .and_then(|ip| ip.parse::<Ipv4Addr>().ok());
    let (Some(pod_ip), false, false) = (pod_ip, finished, spec.host_network == Some(true)) else {
        return Vec::new();
    };
    let every_address: Vec<Ipv4Addr> = node_ips
        .iter()
        .copied()
        .chain([Ipv4Addr::LOCALHOST])
        .collect();
    let mut entries: BTreeMap<ServiceKey, ServiceEntry> = BTreeMap::new();
    for port in spec
        .containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
    {
        let (Some(proto), Some(host_port), Some(container_port)) = (
            l4_proto(port.protocol.as_deref()),
            port.host_port.and_then(port_number),
            port_number(port.container_port),
        ) else {
            continue;
        };
        let addresses = match port.host_ip.as_deref().map(str::trim) {
            None | Some("" | "0.0.0.0") => every_address.clone(),
            Some(ip) => match ip.parse::<Ipv4Addr>() {
                Ok(ip) => vec![ip],
                Err(_) => continue,
            },
        };
        for vip in addresses {
            let key = ServiceKey {
                vip,
                port: host_port,
                proto,
            };
            entries.entry(key).or_insert_with(|| ServiceEntry {
                key,
                backends: vec![Backend {
                    addr: pod_ip,
                    port: container_port,
                }],
                affinity_timeout_s: None,
                external: Some(ExternalAccess {
                    local: true,
                    source_ranges: Vec::new(),
                }),
                endpoints_elsewhere: false,
            });
        }
    }
    entries.into_values().collect()
}

/// The field every pod with a host port has in its encoding: pods without it are not parsed.
pub const HOST_PORT_FIELD: &[u8] = b"\"hostPort\"";

/// A pod's `(namespace, name)`.
pub type PodName = (Box<str>, Box<str>);

/// The host port frontends of this node's pods, and per frontend the pods that ask for it.
#[derive(Debug, Default)]
pub struct HostPortIndex {
    /// Pods with at least one frontend, each with its frontends sorted by key.
    pods: BTreeMap<PodName, Vec<ServiceEntry>>,
    /// Frontend -> the pods asking for it, in (namespace, name) order.
    claims: BTreeMap<ServiceKey, BTreeSet<PodName>>,
}

impl HostPortIndex {
    /// Indexes every pod of `store` on `node_name`: only pods whose encoding names a host port are
    /// parsed, and only as views (100,000 pods without one: 19 ms, release build, where parsing
    /// every pod as a view took 89 ms).
    pub fn rebuild(store: &ObjectStore, node_name: &str, node_ips: &[Ipv4Addr]) -> Self {
        let mut index = Self::default();
        for (key, pod) in store.views_containing::<HostPortPod>(Kind::Pod, HOST_PORT_FIELD) {
            index.set(
                &key.namespace,
                &key.name,
                host_port_entries(&pod, node_name, node_ips),
            );
        }
        index
    }

    /// Sets the frontends of pod `namespace/name` (empty: it has none, or is gone); returns the
    /// frontends whose entry may have changed.
    pub fn set(
        &mut self,
        namespace: &str,
        name: &str,
        entries: Vec<ServiceEntry>,
    ) -> BTreeSet<ServiceKey> {
        if entries.is_empty() && self.pods.is_empty() {
            // The usual case (no pod here has a host port): nothing to look up or allocate.
            return BTreeSet::new();
        }
        let pod: PodName = (namespace.into(), name.into());
        let old = if entries.is_empty() {
            self.pods.remove(&pod).unwrap_or_default()
        } else {
            self.pods.insert(pod.clone(), entries).unwrap_or_default()
        };
        let new = self.pods.get(&pod).map_or(&[][..], Vec::as_slice);
        let mut touched: BTreeSet<ServiceKey> = new
            .iter()
            .filter(|e| !old.contains(e))
            .map(|e| e.key)
            .collect();
        let new_keys: BTreeSet<ServiceKey> = new.iter().map(|e| e.key).collect();
        for key in &new_keys {
            self.claims.entry(*key).or_default().insert(pod.clone());
        }
        for entry in old.iter().filter(|e| !new_keys.contains(&e.key)) {
            touched.insert(entry.key);
            if let Some(pods) = self.claims.get_mut(&entry.key) {
                pods.remove(&pod);
                if pods.is_empty() {
                    self.claims.remove(&entry.key);
                }
            }
        }
        touched
    }

    /// The pods with frontends, by name.
    pub fn pods(&self) -> impl Iterator<Item = &PodName> {
        self.pods.keys()
    }

    /// Every frontend some pod asks for, sorted.
    pub fn keys(&self) -> impl Iterator<Item = &ServiceKey> {
        self.claims.keys()
    }

    /// The pod whose entry `key` holds: the first asking for it.
    pub fn owner(&self, key: &ServiceKey) -> Option<&PodName> {
        self.claims.get(key)?.first()
    }

    /// The entry for `key`: the first pod's.
    pub fn entry(&self, key: &ServiceKey) -> Option<&ServiceEntry> {
        let entries = self.pods.get(self.owner(key)?)?;
        entries
            .binary_search_by(|e| e.key.cmp(key))
            .ok()
            .map(|i| &entries[i])
    }
}
