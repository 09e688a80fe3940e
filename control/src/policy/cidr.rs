//! `ipBlock` peers compiled into address-prefix entries (POLICY_CIDR_V1). The kernel looks up the peer's
//! address (a pod's too: an `ipBlock` covers pods' addresses as well) in the entries of (local pod,
//! direction, protocol) and takes the longest match, whose port ranges decide. So, per (local pod,
//! direction, protocol), every `cidr` and `except` of the rules is a boundary, and the entry for a
//! boundary P carries the union of the port ranges of the rules that cover P: one of the rule's blocks
//! contains P and none of that block's `except`s does (an `except` is a boundary of its own, so its
//! entry carries only the other rules' ports, possibly none). Addresses whose longest match is P are
//! covered by exactly those rules, whatever longer boundaries lie inside P. An entry that says what its
//! nearest enclosing boundary says (or, with none, allows nothing) is left out.
//!
//! Ports are inclusive ranges, host order; a rule without ports allows 0-65535 of TCP, UDP, SCTP and
//! ICMP. A named port is resolved on the local pod for ingress; for egress it names a port of each
//! destination pod, which a block cannot say, so it is left out and the rule reported as enforced in
//! part. An entry holds at most [`POLICY_CIDR_RANGES`] ranges (overlapping and adjacent ones merged):
//! rules are taken in order, and one that would make an entry overflow is refused whole (its `ipBlock`
//! peers allow nothing, and it is reported) rather than cut short.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::Ipv4Addr,
};

use ipnet::{IpNet, Ipv4Net};
use strait_dataplane::policy::POLICY_CIDR_RANGES;
use strait_k8s::netpol::{
    PolicyPod, RuleRef,
    rules::{Peer, PortMatch, Rule},
};

use super::compile::{Direction, EVERY_PROTOCOL, protocol_number};

/// An inclusive port range, host order.
pub type PortSpan = (u16, u16);

/// One rule's `ipBlock` peers as they apply to one local pod in one direction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockRule {
    pub subject: Ipv4Addr,
    pub direction: Direction,
    pub origin: RuleRef,
    /// Each IPv4 block with its IPv4 `except`s, host bits cleared (an IPv6 block covers no IPv4 address,
    /// an IPv6 `except` none of an IPv4 block).
    pub blocks: Vec<(Ipv4Net, Vec<Ipv4Net>)>,
    /// The ports it allows, by protocol number (named ports resolved).
    pub ports: BTreeMap<u8, Vec<PortSpan>>,
}

impl BlockRule {
    /// Whether the rule covers every address whose longest match among the boundaries is `prefix`.
    fn covers(&self, prefix: Ipv4Net) -> bool {
        self.blocks.iter().any(|(cidr, except)| {
            cidr.contains(&prefix) && !except.iter().any(|e| e.contains(&prefix))
        })
    }
}

/// The `ipBlock` part of `rule` for local pod `pod` at `subject` in `direction`; `None` without
/// `ipBlock` peers. An egress named port is left out and `origin` pushed to `skipped`.
pub fn block_rule(
    (pod, subject, direction): (&PolicyPod, Ipv4Addr, Direction),
    rule: &Rule,
    origin: &RuleRef,
    skipped: &mut Vec<RuleRef>,
) -> Option<BlockRule> {
    let blocks: Vec<(Ipv4Net, Vec<Ipv4Net>)> = rule
        .peers
        .iter()
        .flatten()
        .filter_map(|peer| match peer {
            Peer::Block(block) => Some(block),
            Peer::Pods { .. } => None,
        })
        .filter_map(|block| {
            let IpNet::V4(cidr) = block.cidr else {
                return None;
            };
            let except = block
                .except
                .iter()
                .filter_map(|e| match e {
                    IpNet::V4(v4) => Some(v4.trunc()),
                    IpNet::V6(_) => None,
                })
                .collect();
            Some((cidr.trunc(), except))
        })
        .collect();
    let has_blocks = rule
        .peers
        .iter()
        .flatten()
        .any(|p| matches!(p, Peer::Block(_)));
    if !has_blocks {
        return None;
    }
    let mut ports: BTreeMap<u8, Vec<PortSpan>> = BTreeMap::new();
    match &rule.ports {
        None => {
            for protocol in EVERY_PROTOCOL {
                ports.insert(protocol, vec![(0, u16::MAX)]);
            }
        }
        Some(list) => {
            for port in list {
                let span = match &port.port {
                    PortMatch::Any => Some((0, u16::MAX)),
                    PortMatch::Range(first, last) => Some((*first, *last)),
                    PortMatch::Named(name) if direction == Direction::Ingress => pod
                        .named_port(name, port.protocol)
                        .map(|number| (number, number)),
                    PortMatch::Named(_) => {
                        if !skipped.contains(origin) {
                            skipped.push(origin.clone());
                        }
                        None
                    }
                };
                if let Some(span) = span {
                    ports
                        .entry(protocol_number(port.protocol))
                        .or_default()
                        .push(span);
                }
            }
        }
    }
    Some(BlockRule {
        subject,
        direction,
        origin: origin.clone(),
        blocks,
        ports,
    })
}

/// Where an entry applies: (local pod, direction, protocol number, peer prefix).
pub type CidrKey = (Ipv4Addr, Direction, u8, Ipv4Net);

/// What an entry allows: the merged port ranges (none: nothing), and the first rule giving any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CidrValue {
    pub rule: Option<RuleRef>,
    pub ranges: Vec<PortSpan>,
}

impl CidrValue {
    pub fn allows(&self, port: u16) -> bool {
        self.ranges.iter().any(|(f, l)| (*f..=*l).contains(&port))
    }
}

/// The entries of every (local pod, direction), and the rules refused.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CidrCompiled {
    pub entries: BTreeMap<CidrKey, CidrValue>,
    pub refused: Vec<RuleRef>,
}

/// Compiles `rules` (in policy order: that is the order in which rules are refused).
pub fn compile(rules: &[BlockRule]) -> CidrCompiled {
    let mut groups: BTreeMap<(Ipv4Addr, Direction), Vec<&BlockRule>> = BTreeMap::new();
    for rule in rules {
        groups
            .entry((rule.subject, rule.direction))
            .or_default()
            .push(rule);
    }
    let mut out = CidrCompiled::default();
    for ((subject, direction), group) in groups {
        let mut accepted: Vec<&BlockRule> = Vec::new();
        for rule in group {
            accepted.push(rule);
            let fits = entries(&accepted)
                .values()
                .all(|v| v.ranges.len() <= POLICY_CIDR_RANGES);
            if !fits {
                accepted.pop();
                if !out.refused.contains(&rule.origin) {
                    out.refused.push(rule.origin.clone());
                }
            }
        }
        for ((protocol, prefix), value) in entries(&accepted) {
            out.entries
                .insert((subject, direction, protocol, prefix), value);
        }
    }
    out
}

/// The entries of one (local pod, direction)'s rules, by (protocol, prefix).
fn entries(rules: &[&BlockRule]) -> BTreeMap<(u8, Ipv4Net), CidrValue> {
    let protocols: BTreeSet<u8> = rules.iter().flat_map(|r| r.ports.keys().copied()).collect();
    let mut out = BTreeMap::new();
    for protocol in protocols {
        let relevant: Vec<&BlockRule> = rules
            .iter()
            .copied()
            .filter(|r| r.ports.get(&protocol).is_some_and(|p| !p.is_empty()))
            .collect();
        let boundaries: BTreeSet<Ipv4Net> = relevant
            .iter()
            .flat_map(|r| r.blocks.iter())
            .flat_map(|(cidr, except)| std::iter::once(*cidr).chain(except.iter().copied()))
            .collect();
        let values: BTreeMap<Ipv4Net, CidrValue> = boundaries
            .iter()
            .map(|prefix| {
                let covering: Vec<&BlockRule> = relevant
                    .iter()
                    .copied()
                    .filter(|r| r.covers(*prefix))
                    .collect();
                let ranges = merge(
                    covering
                        .iter()
                        .flat_map(|r| r.ports[&protocol].iter().copied()),
                );
                let rule = covering.first().map(|r| r.origin.clone());
                (*prefix, CidrValue { rule, ranges })
            })
            .collect();
        for (prefix, value) in &values {
            let enclosing = std::iter::successors(prefix.supernet(), Ipv4Net::supernet)
                .find_map(|p| values.get(&p));
            let inherited = enclosing.map_or(&[][..], |v| &v.ranges[..]);
            if value.ranges != inherited {
                out.insert((protocol, *prefix), value.clone());
            }
        }
    }
    out
}

/// Sorted ranges, overlapping and adjacent ones merged.
pub fn merge(spans: impl IntoIterator<Item = PortSpan>) -> Vec<PortSpan> {
    let mut spans: Vec<PortSpan> = spans.into_iter().collect();
    spans.sort_unstable();
    let mut out: Vec<PortSpan> = Vec::with_capacity(spans.len());
    for (first, last) in spans {
        match out.last_mut() {
            Some((_, end)) if u32::from(first) <= u32::from(*end) + 1 => *end = (*end).max(last),
            _ => out.push((first, last)),
        }
    }
    out
}

/// The entry the kernel's longest-prefix lookup finds for a peer at `addr`.
pub fn longest_match(
    entries: &BTreeMap<CidrKey, CidrValue>,
    (subject, direction, protocol): (Ipv4Addr, Direction, u8),
    addr: Ipv4Addr,
) -> Option<&CidrValue> {
    (0..=32u8).rev().find_map(|len| {
        let prefix = Ipv4Net::new(addr, len).ok()?.trunc();
        entries.get(&(subject, direction, protocol, prefix))
    })
}

#[cfg(test)]
mod tests;
