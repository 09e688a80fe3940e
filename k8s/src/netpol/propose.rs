//! NetworkPolicies proposed from observed traffic (`strait policy propose`): the smallest set that
//! allows exactly what was seen, by label rather than by address.
//!
//! Pods are grouped by identity: namespace and full label set. Every selected identity (a pod's
//! namespace is among the selected ones) gets one ingress policy, `propose-ingress-<name>`, and one
//! egress policy, `propose-egress-<name>`, in its namespace, selecting exactly its pods. Each has one
//! rule per peer it was seen with: a pod peer by `namespaceSelector` (`kubernetes.io/metadata.name`)
//! and `podSelector` (its full labels), an address that is no pod by `ipBlock` `IP/32`, with the
//! `(port, protocol)` pairs seen with that peer, sorted. An identity that was seen with nobody in a
//! direction still gets that direction's policy, with no rules: what was never seen is denied.
//!
//! A selector with a pod's full labels also selects pods carrying those labels and more; where the
//! namespace holds such a pod, the selector adds `DoesNotExist` for the extra keys, so each selects
//! exactly its identity among the pods known. Pods without labels cannot be told from the rest of
//! their namespace by a label selector other than by those expressions.
//!
//! `<name>` is the labels, `key-value` joined by `-` and cut to DNS-label characters (at most 40), then
//! an 8-hex-digit FNV-1a hash of the identity, so names are stable and distinct.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::Ipv4Addr,
};

use k8s_openapi::{
    api::networking::v1::{
        IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule,
        NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec,
    },
    apimachinery::pkg::{
        apis::meta::v1::{LabelSelector, LabelSelectorRequirement, ObjectMeta},
        util::intstr::IntOrString,
    },
};

use super::{PolicyPod, Protocol};
use crate::selector::Labels;

/// The label every namespace carries with its own name.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// A pod identity: namespace and full label set.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Identity {
    pub namespace: String,
    pub labels: Labels,
}

impl Identity {
    pub fn of(pod: &PolicyPod) -> Self {
        Self {
            namespace: pod.namespace.clone(),
            labels: pod.labels.clone(),
        }
    }
}

/// One end of an observed flow.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Peer {
    Pod(Identity),
    /// An address that is no pod.
    Address(Ipv4Addr),
}

/// A flow that happened (allowed, or audited), as the destination received it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Observed {
    pub from: Peer,
    pub to: Peer,
    pub port: u16,
    pub protocol: Protocol,
}

/// What a proposal is made for: the cluster's pods and which namespaces get policies.
#[derive(Clone, Copy, Debug)]
pub struct Scope<'a> {
    pub pods: &'a [PolicyPod],
    /// `None`: every namespace holding one of `pods`.
    pub namespaces: Option<&'a BTreeSet<String>>,
}

type Ports = BTreeSet<(u16, Protocol)>;

/// The policies allowing exactly `observed` to the identities of `scope`, ingress then egress, each in
/// namespace then name order.
pub fn propose(observed: &[Observed], scope: Scope<'_>) -> Vec<NetworkPolicy> {
    let identities: BTreeSet<Identity> = scope.pods.iter().map(Identity::of).collect();
    let selected = |identity: &Identity| {
        scope
            .namespaces
            .is_none_or(|namespaces| namespaces.contains(&identity.namespace))
    };
    // Per selected identity: per peer, the ports seen.
    let mut ingress: BTreeMap<Identity, BTreeMap<Peer, Ports>> = BTreeMap::new();
    let mut egress: BTreeMap<Identity, BTreeMap<Peer, Ports>> = BTreeMap::new();
    for identity in identities.iter().filter(|i| selected(i)) {
        ingress.insert(identity.clone(), BTreeMap::new());
        egress.insert(identity.clone(), BTreeMap::new());
    }
    for flow in observed {
        if let Peer::Pod(to) = &flow.to
            && let Some(peers) = ingress.get_mut(to)
        {
            peers
                .entry(flow.from.clone())
                .or_default()
                .insert((flow.port, flow.protocol));
        }
        if let Peer::Pod(from) = &flow.from
            && let Some(peers) = egress.get_mut(from)
        {
            peers
                .entry(flow.to.clone())
                .or_default()
                .insert((flow.port, flow.protocol));
        }
    }
    let mut out = Vec::new();
    for (identity, peers) in &ingress {
        let rules = peers
            .iter()
            .map(|(peer, ports)| NetworkPolicyIngressRule {
                from: Some(vec![policy_peer(peer, &identities)]),
                ports: Some(policy_ports(ports)),
            })
            .collect();
        let spec = NetworkPolicySpec {
            pod_selector: Some(selector(identity, &identities)),
            policy_types: Some(vec!["Ingress".to_owned()]),
            ingress: Some(rules),
            ..NetworkPolicySpec::default()
        };
        out.push(policy("ingress", identity, spec));
    }
    for (identity, peers) in &egress {
        let rules = peers
            .iter()
            .map(|(peer, ports)| NetworkPolicyEgressRule {
                to: Some(vec![policy_peer(peer, &identities)]),
                ports: Some(policy_ports(ports)),
            })
            .collect();
        let spec = NetworkPolicySpec {
            pod_selector: Some(selector(identity, &identities)),
            policy_types: Some(vec!["Egress".to_owned()]),
            egress: Some(rules),
            ..NetworkPolicySpec::default()
        };
        out.push(policy("egress", identity, spec));
    }
    out
}

fn policy(direction: &str, identity: &Identity, spec: NetworkPolicySpec) -> NetworkPolicy {
    NetworkPolicy {
        metadata: ObjectMeta {
            name: Some(format!("propose-{direction}-{}", identity_name(identity))),
            namespace: Some(identity.namespace.clone()),
            ..ObjectMeta::default()
        },
        spec: Some(spec),
    }
}

/// The labels as DNS-label characters (at most 40), then a hash of the identity.
pub fn identity_name(identity: &Identity) -> String {
    let mut slug = String::new();
    for (key, value) in &identity.labels {
        for part in [key.as_str(), value.as_str()] {
            let part: String = part
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() {
                        c.to_ascii_lowercase()
                    } else {
                        '-'
                    }
                })
                .collect();
            if !slug.is_empty() {
                slug.push('-');
            }
            slug.push_str(&part);
        }
    }
    let mut slug: String = slug.chars().take(40).collect();
    while slug.contains("--") {
        slug = slug.replace("--", "-");
    }
    let slug = slug.trim_matches('-');
    let hash = fnv1a(identity);
    if slug.is_empty() {
        format!("{hash:08x}")
    } else {
        format!("{slug}-{hash:08x}")
    }
}

/// FNV-1a (32 bits) over the namespace and the labels, each part ended by a zero byte.
fn fnv1a(identity: &Identity) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    let parts = std::iter::once(identity.namespace.as_str()).chain(
        identity
            .labels
            .iter()
            .flat_map(|(k, v)| [k.as_str(), v.as_str()]),
    );
    for part in parts {
        for byte in part.bytes().chain([0]) {
            hash ^= u32::from(byte);
            hash = hash.wrapping_mul(0x0100_0193);
        }
    }
    hash
}

/// Selects exactly `identity` among `identities` of its namespace: its labels, and `DoesNotExist` for
/// the keys of identities whose labels hold its own and more.
fn selector(identity: &Identity, identities: &BTreeSet<Identity>) -> LabelSelector {
    let extra: BTreeSet<&String> = identities
        .iter()
        .filter(|other| {
            other.namespace == identity.namespace
                && other.labels.len() > identity.labels.len()
                && identity
                    .labels
                    .iter()
                    .all(|(k, v)| other.labels.get(k) == Some(v))
        })
        .flat_map(|other| other.labels.keys())
        .filter(|key| !identity.labels.contains_key(*key))
        .collect();
    LabelSelector {
        match_labels: Some(identity.labels.clone()),
        match_expressions: (!extra.is_empty()).then(|| {
            extra
                .into_iter()
                .map(|key| LabelSelectorRequirement {
                    key: key.clone(),
                    operator: "DoesNotExist".to_owned(),
                    values: None,
                })
                .collect()
        }),
    }
}

fn policy_peer(peer: &Peer, identities: &BTreeSet<Identity>) -> NetworkPolicyPeer {
    match peer {
        Peer::Pod(identity) => NetworkPolicyPeer {
            namespace_selector: Some(LabelSelector {
                match_labels: Some(Labels::from([(
                    NAMESPACE_NAME_LABEL.to_owned(),
                    identity.namespace.clone(),
                )])),
                match_expressions: None,
            }),
            pod_selector: Some(selector(identity, identities)),
            ip_block: None,
        },
        Peer::Address(ip) => NetworkPolicyPeer {
            ip_block: Some(IPBlock {
                cidr: format!("{ip}/32"),
                except: None,
            }),
            ..NetworkPolicyPeer::default()
        },
    }
}

fn policy_ports(ports: &Ports) -> Vec<NetworkPolicyPort> {
    ports
        .iter()
        .map(|(port, protocol)| NetworkPolicyPort {
            port: Some(IntOrString::Int(i32::from(*port))),
            protocol: Some(protocol.name().to_owned()),
            end_port: None,
        })
        .collect()
}

/// The policies as YAML documents separated by `---`, ready for `kubectl apply -f`.
pub fn to_yaml(policies: &[NetworkPolicy]) -> String {
    policies
        .iter()
        .map(|policy| serde_yaml_ng::to_string(policy).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("---\n")
}

/// The policies as a `v1` `List`, pretty JSON.
pub fn to_json(policies: &[NetworkPolicy]) -> String {
    let list = serde_json::json!({
        "apiVersion": "v1",
        "kind": "List",
        "items": policies,
    });
    let mut text = serde_json::to_string_pretty(&list).unwrap_or_default();
    text.push('\n');
    text
}

#[cfg(test)]
mod tests;
