//! `ipBlock`s over the cluster's own addresses. The specification lets an `ipBlock` match pods, but
//! pods' addresses come and go (the documentation: "these should be cluster-external IPs"); a policy
//! judges a connection after Service translation, so a ClusterIP never meets one; and a pod's own node
//! is always allowed. Each peer is compared with each range exactly: what its CIDR leaves after its
//! `except`s covers all of a range, part of it, or none (`0.0.0.0/0 except 10.0.0.0/8` covers no
//! 10.x range).

use ipnet::Ipv4Net;

use super::{
    AuditCluster, ClusterRanges, Finding, FindingKind,
    words::{self, Direction},
};
use crate::netpol::rules::{IpBlock, Peer, v4};

/// How much of a range a block covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Coverage {
    Nothing,
    Part,
    All,
}

/// How much of `range` the addresses of `block` (its CIDR less its `except`s) cover.
pub(super) fn coverage(block: &IpBlock, range: Ipv4Net) -> Coverage {
    let Some(cidr) = v4(&block.cidr) else {
        return Coverage::Nothing;
    };
    let common = if cidr.contains(&range) {
        range
    } else if range.contains(&cidr) {
        cidr
    } else {
        return Coverage::Nothing;
    };
    let excepts: Vec<Ipv4Net> = block.except.iter().filter_map(v4).collect();
    if excepted(common, &excepts) {
        Coverage::Nothing
    } else if common == range && !excepts.iter().any(|e| overlap(*e, range)) {
        Coverage::All
    } else {
        Coverage::Part
    }
}

/// Whether the `excepts` together cover all of `net`.
fn excepted(net: Ipv4Net, excepts: &[Ipv4Net]) -> bool {
    if excepts.iter().any(|e| e.contains(&net)) {
        return true;
    }
    if net.prefix_len() == 32 || !excepts.iter().any(|e| net.contains(e)) {
        return false;
    }
    net.subnets(net.prefix_len() + 1)
        .is_ok_and(|mut halves| halves.all(|half| excepted(half, excepts)))
}

/// Prefixes overlap when one contains the other.
fn overlap(a: Ipv4Net, b: Ipv4Net) -> bool {
    a.contains(&b) || b.contains(&a)
}

/// Each `ipBlock` peer that covers any of the pod, service or node ranges: one finding per peer and
/// kind of range.
pub(super) fn covering(cluster: &AuditCluster, ranges: &ClusterRanges) -> Vec<Finding> {
    let nodes: Vec<Ipv4Net> = ranges
        .nodes
        .iter()
        .copied()
        .chain(cluster.nodes.iter().map(|ip| Ipv4Net::from(*ip)))
        .collect();
    let kinds = [
        (
            FindingKind::IpBlockCoversPodRange,
            &ranges.pods,
            "pod range",
        ),
        (
            FindingKind::IpBlockCoversServiceRange,
            &ranges.services,
            "service range",
        ),
        (FindingKind::IpBlockCoversNodeRange, &nodes, "node range"),
    ];
    let mut findings = Vec::new();
    for policy in &cluster.policies {
        for direction in Direction::BOTH {
            for (index, rule) in direction
                .rules(policy)
                .unwrap_or_default()
                .iter()
                .enumerate()
            {
                for (at, peer) in rule.peers.iter().flatten().enumerate() {
                    let Peer::Block(block) = peer else { continue };
                    for (kind, nets, what) in &kinds {
                        let covered: Vec<String> = nets
                            .iter()
                            .filter_map(|net| match coverage(block, *net) {
                                Coverage::Nothing => None,
                                Coverage::All
                                    if net.prefix_len() == 32
                                        && *kind == FindingKind::IpBlockCoversNodeRange =>
                                {
                                    Some(format!("node address {}", net.addr()))
                                }
                                Coverage::All => Some(format!("all of the {what} {net}")),
                                Coverage::Part => Some(format!("part of the {what} {net}")),
                            })
                            .collect();
                        if covered.is_empty() {
                            continue;
                        }
                        let field = match direction {
                            Direction::Ingress => "from",
                            Direction::Egress => "to",
                        };
                        findings.push(Finding::new(
                            *kind,
                            policy.key(),
                            format!(
                                "{} rule {index} {field}[{at}]: ipBlock {} covers {}: {}",
                                direction.word(),
                                block_text(block),
                                words::list(&covered),
                                why(*kind)
                            ),
                        ));
                    }
                }
            }
        }
    }
    findings
}

/// `10.0.0.0/8 except 10.1.0.0/16, 10.2.0.0/16`.
fn block_text(block: &IpBlock) -> String {
    if block.except.is_empty() {
        return block.cidr.to_string();
    }
    let excepts: Vec<String> = block.except.iter().map(ToString::to_string).collect();
    format!("{} except {}", block.cidr, excepts.join(", "))
}

fn why(kind: FindingKind) -> &'static str {
    match kind {
        FindingKind::IpBlockCoversPodRange => {
            "it takes in pods by their addresses, which change as pods come and go; select pods \
             with podSelector/namespaceSelector (ipBlock is meant for addresses outside the cluster)"
        }
        FindingKind::IpBlockCoversServiceRange => {
            "a policy judges a connection after Service translation, on the backend pod's address, \
             so a ClusterIP never matches it"
        }
        _ => {
            "it takes in nodes' own traffic (host-network pods, node-originated connections); a \
             pod's own node is always allowed anyway"
        }
    }
}
