//! What policy reads of the store's Pods and Namespaces: every pod of the cluster that holds an address
//! (as a [`PolicyPod`]), which of them run on this node, each namespace's labels, and which namespaces
//! ask for audit mode. Also [`trim`], what the agent keeps of each Pod it watches.
//!
//! A pod counts while it may hold its address: it has an IPv4 address, does not share the node's
//! network (`hostNetwork` pods have the node's address, which is the node's identity, not theirs), and
//! has not finished (`Succeeded` or `Failed` pods gave their address back). When two pods claim one
//! address (a pod being deleted and the one that got its address), the one not being deleted wins, else
//! the first by name.

use std::{
    collections::{BTreeMap, BTreeSet, btree_map::Entry},
    net::Ipv4Addr,
};

use k8s_openapi::api::core::v1::{Container, ContainerPort, Pod, PodSpec, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use strait_k8s::{Labels, ObjectStore, netpol::PolicyPod};

/// The Namespace annotation that puts its pods' policies in audit mode (`"true"`).
pub const AUDIT_ANNOTATION: &str = "strait.io/policy-audit";

/// The pods policies see.
#[derive(Clone, Debug, Default)]
pub struct ClusterPods {
    /// Every pod of the cluster holding an address, by namespace and name.
    pub all: Vec<PolicyPod>,
    /// Those on this node.
    pub local: Vec<PolicyPod>,
}

/// The store's pods, `node`'s marked local.
pub fn cluster_pods(store: &ObjectStore, node: &str) -> ClusterPods {
    // address -> (being deleted, local, pod)
    let mut by_ip: BTreeMap<Ipv4Addr, (bool, bool, PolicyPod)> = BTreeMap::new();
    for (_, pod) in store.pods() {
        let Some(ip) = address(&pod) else { continue };
        let deleting = pod.metadata.deletion_timestamp.is_some();
        let local = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node);
        let policy_pod = PolicyPod::from_pod(&pod, Some(ip));
        match by_ip.entry(ip) {
            Entry::Vacant(slot) => {
                slot.insert((deleting, local, policy_pod));
            }
            Entry::Occupied(mut slot) if slot.get().0 && !deleting => {
                slot.insert((deleting, local, policy_pod));
            }
            Entry::Occupied(_) => {}
        }
    }
    let mut out = ClusterPods::default();
    for (_, local, pod) in by_ip.into_values() {
        if local {
            out.local.push(pod.clone());
        }
        out.all.push(pod);
    }
    let order = |p: &PolicyPod| (p.namespace.clone(), p.name.clone());
    out.all.sort_by_key(order);
    out.local.sort_by_key(order);
    out
}

/// The pod's IPv4 address, when it counts (see the module).
fn address(pod: &Pod) -> Option<Ipv4Addr> {
    if pod.spec.as_ref().and_then(|s| s.host_network) == Some(true) {
        return None;
    }
    let status = pod.status.as_ref()?;
    if matches!(status.phase.as_deref(), Some("Succeeded" | "Failed")) {
        return None;
    }
    let listed = status.pod_ips.iter().flatten().map(|p| p.ip.as_str());
    listed
        .chain(status.pod_ip.as_deref())
        .find_map(|ip| ip.parse().ok())
}

/// Namespaces as policies see them.
#[derive(Clone, Debug, Default)]
pub struct Namespaces {
    /// Each namespace's labels.
    pub labels: BTreeMap<String, Labels>,
    /// Namespaces annotated [`AUDIT_ANNOTATION`]`: "true"`.
    pub audited: BTreeSet<String>,
}

/// The store's namespaces.
pub fn namespaces(store: &ObjectStore) -> Namespaces {
    let mut out = Namespaces::default();
    for (key, namespace) in store.namespaces() {
        let meta = &namespace.metadata;
        out.labels
            .insert(key.name.clone(), meta.labels.clone().unwrap_or_default());
        let audit = meta
            .annotations
            .as_ref()
            .and_then(|a| a.get(AUDIT_ANNOTATION));
        if audit.is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            out.audited.insert(key.name.clone());
        }
    }
    out
}

/// What the agent keeps of a Pod: its name, namespace, labels and deletion mark, its node, whether it
/// shares the node's network, its containers' ports that are named (policy) or have a host port
/// ([`host_ports`](crate::model::host_ports)), its phase and addresses. Nothing else of a
/// Pod is read, and a cluster's Pods are many: this keeps the store small, and a Pod whose status
/// changes in anything else (conditions, container states) changes nothing in the store.
pub fn trim(pod: Pod) -> Pod {
    let Pod {
        metadata,
        spec,
        status,
        ..
    } = pod;
    let spec = spec.map(|spec| PodSpec {
        node_name: spec.node_name,
        host_network: spec.host_network,
        containers: spec
            .containers
            .into_iter()
            .map(|c| Container {
                name: c.name,
                ports: c.ports.map(|ports| {
                    ports
                        .into_iter()
                        .filter(|p| p.name.is_some() || p.host_port.is_some_and(|h| h != 0))
                        .map(|p| ContainerPort {
                            name: p.name,
                            container_port: p.container_port,
                            protocol: p.protocol,
                            host_port: p.host_port,
                            host_ip: p.host_ip,
                        })
                        .collect()
                }),
                ..Container::default()
            })
            .collect(),
        ..PodSpec::default()
    });
    let status = status.map(|status| PodStatus {
        phase: status.phase,
        pod_ip: status.pod_ip,
        pod_ips: status.pod_ips,
        ..PodStatus::default()
    });
    Pod {
        metadata: ObjectMeta {
            name: metadata.name,
            namespace: metadata.namespace,
            labels: metadata.labels,
            deletion_timestamp: metadata.deletion_timestamp,
            ..ObjectMeta::default()
        },
        spec,
        status,
    }
}
