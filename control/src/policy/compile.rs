//! Policies compiled into the entries the data path will look up, per local pod: whether it is isolated
//! in a direction, the (protocol, peer identity, port prefix) entries that allow traffic to or from it,
//! and the (protocol, peer address prefix) entries of its `ipBlock` peers ([`cidr`](super::cidr)). A
//! peer of "anyone" is identity 0; a port range becomes the few prefixes that cover it exactly; a named
//! port is resolved on the pod that receives the traffic. [`Compiled::allows`] is the lookup the kernel
//! will make (exact peer, then any peer; longest port prefix; then the peer's address in the `ipBlock`
//! entries), so the compiled form can be checked against the specification's evaluator before any of
//! it runs in the kernel.
//!
//! A rule without ports allows every protocol: its entries name TCP, UDP and SCTP with any port, and
//! ICMP (protocol 1, port prefix 0), so a ping the rule allows passes. Protocols beyond those four are
//! left to the data path (it judges only these).

use std::{
    collections::{BTreeMap, BTreeSet},
    net::Ipv4Addr,
};

use strait_k8s::netpol::{
    Evaluator, Party, PolicyPod, Protocol, RuleRef,
    rules::{Peer, Policy, PortMatch, Rule},
};

use super::{
    cidr::{self, CidrValue},
    identity::{IdentityKey, IpCache},
};

/// IANA protocol numbers, as the maps key traffic.
pub const ICMP: u8 = 1;
pub const TCP: u8 = 6;
pub const UDP: u8 = 17;
pub const SCTP: u8 = 132;

/// The IANA number of a policy protocol.
pub fn protocol_number(protocol: Protocol) -> u8 {
    match protocol {
        Protocol::Tcp => TCP,
        Protocol::Udp => UDP,
        Protocol::Sctp => SCTP,
    }
}

/// The protocols a rule without ports allows.
pub const EVERY_PROTOCOL: [u8; 4] = [TCP, UDP, SCTP, ICMP];

/// Which way traffic goes, seen from the local pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Direction {
    Ingress,
    Egress,
}

/// One allow entry: traffic of `protocol` (IANA number) between local pod `subject` and a peer of
/// identity `peer` (0: any peer) on a port whose first `port_prefix` bits are those of `port`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AllowKey {
    pub subject: Ipv4Addr,
    pub direction: Direction,
    pub protocol: u8,
    pub peer: u32,
    pub port: u16,
    pub port_prefix: u8,
}

/// What the data path needs to judge the local pods' traffic.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Compiled {
    /// (local pod, direction) pairs some policy isolates.
    pub isolated: BTreeSet<(Ipv4Addr, Direction)>,
    /// Allow entries, each with one rule that produced it (for flow verdicts).
    pub allow: BTreeMap<AllowKey, RuleRef>,
    /// The `ipBlock` entries.
    pub cidr: BTreeMap<cidr::CidrKey, CidrValue>,
    /// Rules enforced in part only, to report: an egress `ipBlock` rule's named ports (the name means a
    /// port of each destination pod, which an address block cannot say).
    pub skipped: Vec<RuleRef>,
    /// Rules whose `ipBlock` peers are not enforced at all (their traffic is denied), to report: with
    /// the rules before them, they need more port ranges on one prefix than an entry holds.
    pub refused: Vec<RuleRef>,
}

impl Compiled {
    /// Whether the entries allow `protocol` traffic on `port` between `subject` and a peer of identity
    /// `peer` at address `peer_addr`, in `direction`.
    pub fn allows(
        &self,
        (subject, direction): (Ipv4Addr, Direction),
        protocol: u8,
        (peer, peer_addr): (u32, Ipv4Addr),
        port: u16,
    ) -> bool {
        if !self.isolated.contains(&(subject, direction)) {
            return true;
        }
        let by_identity = [peer, 0].into_iter().any(|peer| {
            (0..=16u8).rev().any(|prefix| {
                let key = AllowKey {
                    subject,
                    direction,
                    protocol,
                    peer,
                    port: masked(port, prefix),
                    port_prefix: prefix,
                };
                self.allow.contains_key(&key)
            })
        });
        by_identity
            || cidr::longest_match(&self.cidr, (subject, direction, protocol), peer_addr)
                .is_some_and(|value| value.allows(port))
    }
}

/// `port` with all but its first `prefix` bits cleared.
fn masked(port: u16, prefix: u8) -> u16 {
    match prefix {
        0 => 0,
        p if p >= 16 => port,
        p => port & !(u16::MAX >> p),
    }
}

/// The prefixes (port, prefix length) that cover `first..=last` exactly.
pub fn port_prefixes(first: u16, last: u16) -> Vec<(u16, u8)> {
    let mut out = Vec::new();
    let mut start = u32::from(first);
    let end = u32::from(last);
    while start <= end {
        // The largest aligned block starting at `start` that stays within the range.
        let mut size = 1u32 << start.trailing_zeros().min(16);
        while start + size - 1 > end {
            size >>= 1;
        }
        let prefix = 16 - u8::try_from(size.trailing_zeros()).unwrap_or(16);
        out.push((u16::try_from(start).unwrap_or(u16::MAX), prefix));
        start += size;
    }
    out
}

/// Compiles `evaluator`'s policies for the `local` pods; `cluster` holds every pod whose identity a
/// rule may name, `cache` their identities.
pub fn compile(
    evaluator: &Evaluator,
    cluster: &[PolicyPod],
    local: &[PolicyPod],
    cache: &IpCache,
) -> Compiled {
    let mut out = Compiled::default();
    let context = Context {
        evaluator,
        cluster,
        cache,
    };
    let mut blocks = Vec::new();
    for pod in local {
        let Some(subject) = pod.ip else { continue };
        for policy in evaluator.policies() {
            if policy.namespace != pod.namespace || !policy.selector.matches(&pod.labels) {
                continue;
            }
            for (direction, rules) in [
                (Direction::Ingress, &policy.ingress),
                (Direction::Egress, &policy.egress),
            ] {
                let Some(rules) = rules else { continue };
                out.isolated.insert((subject, direction));
                for (index, rule) in rules.iter().enumerate() {
                    let origin = RuleRef {
                        policy: policy.key(),
                        rule: index,
                    };
                    let at = (pod, subject, direction);
                    if let Some(block) = cidr::block_rule(at, rule, &origin, &mut out.skipped) {
                        blocks.push(block);
                    }
                    context.rule(&mut out, at, policy, rule, &origin);
                }
            }
        }
    }
    let compiled = cidr::compile(&blocks);
    out.cidr = compiled.entries;
    out.refused = compiled.refused;
    out
}

struct Context<'a> {
    evaluator: &'a Evaluator,
    cluster: &'a [PolicyPod],
    cache: &'a IpCache,
}

impl Context<'_> {
    fn rule(
        &self,
        out: &mut Compiled,
        (pod, subject, direction): (&PolicyPod, Ipv4Addr, Direction),
        policy: &Policy,
        rule: &Rule,
        origin: &RuleRef,
    ) {
        // `ipBlock` peers are the address entries' (see `cidr`); the peers here are pods.
        // The peers as (identity, the pod when it is one): identity 0 is "anyone". Anyone's egress to a
        // named port is the exception: the name means a port on each destination pod, so each gets
        // its own entries.
        let named = rule
            .ports
            .iter()
            .flatten()
            .any(|p| matches!(p.port, PortMatch::Named(_)));
        let peers: Vec<(u32, Option<&PolicyPod>)> = match &rule.peers {
            None if direction == Direction::Egress && named => self
                .cluster
                .iter()
                .filter_map(|p| Some((self.identity(p)?, Some(p))))
                .chain([(0, None)])
                .collect(),
            None => vec![(0, None)],
            Some(list) => self
                .cluster
                .iter()
                .filter(|p| {
                    list.iter().any(|peer| {
                        matches!(peer, Peer::Pods { .. })
                            && self.evaluator.peer_matches(policy, peer, &Party::Pod(p))
                    })
                })
                .filter_map(|p| Some((self.identity(p)?, Some(p))))
                .collect(),
        };
        for (peer, peer_pod) in peers {
            // A named port is resolved on the pod that receives the traffic.
            let receiver = match direction {
                Direction::Ingress => Some(pod),
                Direction::Egress => peer_pod,
            };
            for (protocol, port, prefix) in ports(rule, receiver) {
                let key = AllowKey {
                    subject,
                    direction,
                    protocol,
                    peer,
                    port,
                    port_prefix: prefix,
                };
                out.allow.entry(key).or_insert_with(|| origin.clone());
            }
        }
    }

    /// The identity of `pod`; `None` for a pod without an address (in no map yet).
    fn identity(&self, pod: &PolicyPod) -> Option<u32> {
        let key = IdentityKey {
            namespace: pod.namespace.clone(),
            labels: pod.labels.clone(),
        };
        self.cache.identities().number(&key)
    }
}

/// The (protocol, port, prefix) entries of a rule's ports, named ports resolved on `receiver` (none
/// when there is no receiving pod to resolve them on).
fn ports(rule: &Rule, receiver: Option<&PolicyPod>) -> Vec<(u8, u16, u8)> {
    let Some(list) = &rule.ports else {
        return EVERY_PROTOCOL.iter().map(|p| (*p, 0, 0)).collect();
    };
    let mut out = Vec::new();
    for port in list {
        let protocol = protocol_number(port.protocol);
        match &port.port {
            PortMatch::Any => out.push((protocol, 0, 0)),
            PortMatch::Range(first, last) => out.extend(
                port_prefixes(*first, *last)
                    .into_iter()
                    .map(|(p, len)| (protocol, p, len)),
            ),
            PortMatch::Named(name) => {
                if let Some(number) = receiver.and_then(|r| r.named_port(name, port.protocol)) {
                    out.push((protocol, number, 16));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
