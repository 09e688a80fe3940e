//! A NetworkPolicy parsed into what decides traffic: the pods it selects, and per direction either
//! nothing (the policy does not apply to that direction) or its rules (none: everything denied). The
//! parse applies the API server's defaults (`policyTypes`, protocol TCP) and refuses what it refuses
//! (bad selectors, CIDRs, `endPort` without a numeric `port`), so a policy that parses means one thing.

use std::net::Ipv4Addr;

use ipnet::{IpNet, Ipv4Net};
use k8s_openapi::{
    api::networking::v1::{
        IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule,
        NetworkPolicyPeer, NetworkPolicyPort,
    },
    apimachinery::pkg::util::intstr::IntOrString,
};

use super::Protocol;
use crate::selector::{Selector, SelectorError};

/// Why a NetworkPolicy cannot be used; `at` names the field (`spec.ingress[0].from[1].ipBlock.cidr`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    #[error("{at}: {source}")]
    Selector { at: String, source: SelectorError },
    #[error("{at}: {value:?} is not a CIDR")]
    Cidr { at: String, value: String },
    #[error("{at}: {value:?} is not a protocol (TCP, UDP or SCTP)")]
    Protocol { at: String, value: String },
    #[error("{at}: {message}")]
    Port { at: String, message: String },
    #[error("{at}: must be Ingress or Egress, got {value:?}")]
    PolicyType { at: String, value: String },
}

/// Addresses an `ipBlock` peer covers: in `cidr` and in none of `except`. IPv6 blocks cover no IPv4
/// address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpBlock {
    pub cidr: IpNet,
    pub except: Vec<IpNet>,
}

impl IpBlock {
    /// Whether `addr` is covered.
    pub fn covers(&self, addr: Ipv4Addr) -> bool {
        let inside = |net: &IpNet| matches!(net, IpNet::V4(v4) if v4.contains(&addr));
        inside(&self.cidr) && !self.except.iter().any(inside)
    }
}

/// One element of `from`/`to`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Peer {
    /// Pods: in the policy's namespace when `namespaces` is `None`, else in every namespace it selects;
    /// `pods: None` takes every pod of those namespaces.
    Pods {
        pods: Option<Selector>,
        namespaces: Option<Selector>,
    },
    /// Addresses, of pods or of anything outside the cluster.
    Block(IpBlock),
}

/// Which destination ports a port entry allows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PortMatch {
    /// Every port of the protocol.
    Any,
    /// `port` to `endPort` (both included; one port when there is no `endPort`).
    Range(u16, u16),
    /// A container port name, resolved against the destination pod's ports of the same protocol.
    Named(String),
}

/// One element of `ports`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Port {
    pub protocol: Protocol,
    pub port: PortMatch,
}

/// One ingress or egress rule: `peers: None` allows every peer (no `from`/`to`, or an empty list),
/// `ports: None` every port and protocol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub peers: Option<Vec<Peer>>,
    pub ports: Option<Vec<Port>>,
}

/// A NetworkPolicy as it decides traffic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    pub namespace: String,
    pub name: String,
    /// The pods of `namespace` it selects.
    pub selector: Selector,
    /// `None`: the policy does not isolate for ingress; `Some(rules)`: it does, and allows what any
    /// of `rules` allows.
    pub ingress: Option<Vec<Rule>>,
    pub egress: Option<Vec<Rule>>,
}

impl Policy {
    /// Parses `policy`, applying the API server's defaults.
    pub fn parse(policy: &NetworkPolicy) -> Result<Self, PolicyError> {
        let namespace = policy
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| crate::DEFAULT_NAMESPACE.to_owned());
        let name = policy.metadata.name.clone().unwrap_or_default();
        let spec = policy.spec.clone().unwrap_or_default();
        let selector =
            selector(spec.pod_selector.as_ref(), "spec.podSelector")?.unwrap_or_default();
        let ingress_rules = spec.ingress.unwrap_or_default();
        let egress_rules = spec.egress.unwrap_or_default();
        // The API server's default: Ingress, and Egress when there are egress rules.
        let types = match spec.policy_types.filter(|t| !t.is_empty()) {
            Some(types) => types,
            None if egress_rules.is_empty() => vec!["Ingress".to_owned()],
            None => vec!["Ingress".to_owned(), "Egress".to_owned()],
        };
        let mut ingress = None;
        let mut egress = None;
        for (index, kind) in types.iter().enumerate() {
            match kind.as_str() {
                "Ingress" => ingress = Some(ingress_list(&ingress_rules)?),
                "Egress" => egress = Some(egress_list(&egress_rules)?),
                other => {
                    return Err(PolicyError::PolicyType {
                        at: format!("spec.policyTypes[{index}]"),
                        value: other.to_owned(),
                    });
                }
            }
        }
        Ok(Self {
            namespace,
            name,
            selector,
            ingress,
            egress,
        })
    }

    /// `namespace/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

fn ingress_list(rules: &[NetworkPolicyIngressRule]) -> Result<Vec<Rule>, PolicyError> {
    rules
        .iter()
        .enumerate()
        .map(|(i, r)| {
            rule(
                r.from.as_deref(),
                r.ports.as_deref(),
                &format!("spec.ingress[{i}]"),
                "from",
            )
        })
        .collect()
}

fn egress_list(rules: &[NetworkPolicyEgressRule]) -> Result<Vec<Rule>, PolicyError> {
    rules
        .iter()
        .enumerate()
        .map(|(i, r)| {
            rule(
                r.to.as_deref(),
                r.ports.as_deref(),
                &format!("spec.egress[{i}]"),
                "to",
            )
        })
        .collect()
}

fn rule(
    peers: Option<&[NetworkPolicyPeer]>,
    ports: Option<&[NetworkPolicyPort]>,
    at: &str,
    peers_field: &str,
) -> Result<Rule, PolicyError> {
    let peers = match peers.filter(|p| !p.is_empty()) {
        None => None,
        Some(list) => Some(
            list.iter()
                .enumerate()
                .map(|(i, p)| peer(p, &format!("{at}.{peers_field}[{i}]")))
                .collect::<Result<_, _>>()?,
        ),
    };
    let ports = match ports.filter(|p| !p.is_empty()) {
        None => None,
        Some(list) => Some(
            list.iter()
                .enumerate()
                .map(|(i, p)| port(p, &format!("{at}.ports[{i}]")))
                .collect::<Result<_, _>>()?,
        ),
    };
    Ok(Rule { peers, ports })
}

fn selector(
    selector: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector>,
    at: &str,
) -> Result<Option<Selector>, PolicyError> {
    selector
        .map(Selector::new)
        .transpose()
        .map_err(|source| PolicyError::Selector {
            at: at.to_owned(),
            source,
        })
}

fn peer(peer: &NetworkPolicyPeer, at: &str) -> Result<Peer, PolicyError> {
    if let Some(block) = &peer.ip_block {
        return ip_block(block, &format!("{at}.ipBlock")).map(Peer::Block);
    }
    Ok(Peer::Pods {
        pods: selector(peer.pod_selector.as_ref(), &format!("{at}.podSelector"))?,
        namespaces: selector(
            peer.namespace_selector.as_ref(),
            &format!("{at}.namespaceSelector"),
        )?,
    })
}

fn ip_block(block: &IPBlock, at: &str) -> Result<IpBlock, PolicyError> {
    let net = |value: &str, at: String| {
        value
            .trim()
            .parse::<IpNet>()
            .map_err(|_| PolicyError::Cidr {
                at,
                value: value.to_owned(),
            })
    };
    Ok(IpBlock {
        cidr: net(&block.cidr, format!("{at}.cidr"))?,
        except: block
            .except
            .iter()
            .flatten()
            .enumerate()
            .map(|(i, e)| net(e, format!("{at}.except[{i}]")))
            .collect::<Result<_, _>>()?,
    })
}

fn port(port: &NetworkPolicyPort, at: &str) -> Result<Port, PolicyError> {
    let protocol = match port.protocol.as_deref().unwrap_or("TCP") {
        "TCP" => Protocol::Tcp,
        "UDP" => Protocol::Udp,
        "SCTP" => Protocol::Sctp,
        other => {
            return Err(PolicyError::Protocol {
                at: format!("{at}.protocol"),
                value: other.to_owned(),
            });
        }
    };
    let bad = |message: String| PolicyError::Port {
        at: at.to_owned(),
        message,
    };
    let number = |n: i32| {
        u16::try_from(n)
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| bad(format!("port {n} is not in 1-65535")))
    };
    let port = match (&port.port, port.end_port) {
        (None, None) => PortMatch::Any,
        (None, Some(_)) => return Err(bad("endPort needs a numeric port".to_owned())),
        (Some(IntOrString::String(name)), None) => PortMatch::Named(name.clone()),
        (Some(IntOrString::String(_)), Some(_)) => {
            return Err(bad("endPort needs a numeric port, not a name".to_owned()));
        }
        (Some(IntOrString::Int(n)), end) => {
            let first = number(*n)?;
            let last = end.map(number).transpose()?.unwrap_or(first);
            if last < first {
                return Err(bad(format!("endPort {last} is below port {first}")));
            }
            PortMatch::Range(first, last)
        }
    };
    Ok(Port { protocol, port })
}

/// An IPv4 network, for callers that compare blocks with the cluster's ranges.
pub fn v4(net: &IpNet) -> Option<Ipv4Net> {
    match net {
        IpNet::V4(v4) => Some(*v4),
        IpNet::V6(_) => None,
    }
}
