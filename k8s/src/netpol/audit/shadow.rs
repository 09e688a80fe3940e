//! Rules shadowed by broader ones. Rule A of policy P is shadowed by rule B of policy Q (same
//! direction) when Q applies to every pod P selects and B allows every peer, port and protocol A
//! does: then A adds nothing, for any pods. Everything is proven from the selectors, never from the
//! pods there are now, and conservatively (a containment not proven is not reported):
//! - selectors: each requirement of the broader one follows from one requirement of the narrower
//!   (`app=web` from `app=web,tier=front`; `tier in (a,b)` from `tier=a`; `{}` from anything);
//! - namespaces: the policy's own (no `namespaceSelector`) is one namespace; a selector on the
//!   immutable `kubernetes.io/metadata.name` label pins names; `namespaceSelector: {}` is every one;
//! - peers: no `from`/`to` is every peer and is only contained in itself; each peer of A must lie in one
//!   peer of B; an `ipBlock` in another when its CIDR is inside and B's `except`s are outside it or
//!   within A's own; pods and addresses are never compared with each other;
//! - ports: no `ports` is every port and is only contained in itself; each entry of A must be covered
//!   by B's entries of its protocol (a port-less entry, the union of B's ranges, or the same name).
//!
//! Two rules that contain each other: the later one (policy order, then rule order) is reported.

use super::{AuditCluster, Finding, FindingKind, words::Direction};
use crate::{
    netpol::rules::{IpBlock, Peer, Policy, Port, PortMatch, Rule},
    selector::{Labels, Requirement, Selector},
};

/// The label the API server sets on every Namespace to its name; it cannot be changed.
const NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// Every rule shadowed by another, with the first rule that shadows it.
pub(super) fn shadowed(cluster: &AuditCluster) -> Vec<Finding> {
    let mut findings = Vec::new();
    for direction in Direction::BOTH {
        let rules: Vec<(usize, &Policy, usize, &Rule)> = cluster
            .policies
            .iter()
            .enumerate()
            .flat_map(|(p, policy)| {
                direction
                    .rules(policy)
                    .unwrap_or_default()
                    .iter()
                    .enumerate()
                    .map(move |(r, rule)| (p, policy, r, rule))
            })
            .collect();
        for &(p, policy, r, rule) in &rules {
            let by = rules.iter().find(|&&(q, other, s, broader)| {
                (q, s) != (p, r)
                    && covers((other, broader), (policy, rule))
                    && !((q, s) > (p, r) && covers((policy, rule), (other, broader)))
            });
            if let Some(&(_, other, s, _)) = by {
                findings.push(Finding::new(
                    FindingKind::RuleShadowed,
                    policy.key(),
                    format!(
                        "{word} rule {r} is shadowed by {} rule {s}: that {word} rule applies to \
                         every pod this policy selects and allows every peer, port and protocol \
                         this one allows",
                        other.key(),
                        word = direction.word(),
                    ),
                ));
            }
        }
    }
    findings
}

/// Whether rule `broad` (of its policy) allows all that rule `narrow` (of its) allows, to every pod
/// the narrow one's policy selects.
fn covers(
    (broad_policy, broad): (&Policy, &Rule),
    (narrow_policy, narrow): (&Policy, &Rule),
) -> bool {
    broad_policy.namespace == narrow_policy.namespace
        && implies(&narrow_policy.selector, &broad_policy.selector)
        && peers_within(narrow, broad, &narrow_policy.namespace)
        && ports_within(narrow.ports.as_deref(), broad.ports.as_deref())
}

/// Whether everything `narrow` selects, `broad` selects.
pub(super) fn implies(narrow: &Selector, broad: &Selector) -> bool {
    broad.requirements().iter().all(|b| {
        narrow
            .requirements()
            .iter()
            .any(|n| requirement_implies(n, b))
    })
}

fn requirement_implies(narrow: &Requirement, broad: &Requirement) -> bool {
    use Requirement::{DoesNotExist, Exists, In, NotIn};
    match (narrow, broad) {
        (In(k1, v1), In(k2, v2)) => k1 == k2 && v1.iter().all(|v| v2.contains(v)),
        (In(k1, v1), NotIn(k2, v2)) => k1 == k2 && v1.iter().all(|v| !v2.contains(v)),
        (In(k1, _) | Exists(k1), Exists(k2))
        | (DoesNotExist(k1), DoesNotExist(k2) | NotIn(k2, _)) => k1 == k2,
        (NotIn(k1, v1), NotIn(k2, v2)) => k1 == k2 && v2.iter().all(|v| v1.contains(v)),
        _ => false,
    }
}

/// Whether every peer of `narrow` is a peer of `broad`; both rules' policies are in `namespace`.
fn peers_within(narrow: &Rule, broad: &Rule, namespace: &str) -> bool {
    let Some(broad) = &broad.peers else {
        return true;
    };
    let Some(narrow) = &narrow.peers else {
        return false;
    };
    narrow
        .iter()
        .all(|n| broad.iter().any(|b| peer_within(n, b, namespace)))
}

fn peer_within(narrow: &Peer, broad: &Peer, namespace: &str) -> bool {
    let empty = Selector::default();
    match (narrow, broad) {
        (Peer::Block(n), Peer::Block(b)) => block_within(n, b),
        (
            Peer::Pods {
                pods: n_pods,
                namespaces: n_ns,
            },
            Peer::Pods {
                pods: b_pods,
                namespaces: b_ns,
            },
        ) => {
            namespaces_within(n_ns.as_ref(), b_ns.as_ref(), namespace)
                && implies(
                    n_pods.as_ref().unwrap_or(&empty),
                    b_pods.as_ref().unwrap_or(&empty),
                )
        }
        _ => false,
    }
}

/// Whether the namespaces `narrow` names (`None`: the policy's own) are among those `broad` names.
fn namespaces_within(narrow: Option<&Selector>, broad: Option<&Selector>, own: &str) -> bool {
    let names = match narrow {
        None => Some(vec![own.to_owned()]),
        Some(selector) => pinned_names(selector),
    };
    if let Some(names) = names {
        let by_name = |name: &String| match broad {
            None => name == own,
            Some(selector) => selects_by_name(selector, name),
        };
        if names.iter().all(by_name) {
            return true;
        }
    }
    matches!((narrow, broad), (Some(n), Some(b)) if implies(n, b))
}

/// The names a namespace selector is limited to, if it has an `In` on the name label.
fn pinned_names(selector: &Selector) -> Option<Vec<String>> {
    selector.requirements().iter().find_map(|r| match r {
        Requirement::In(key, values) if key == NAME_LABEL => Some(values.clone()),
        _ => None,
    })
}

/// Whether `selector` selects the namespace `name` whatever its other labels: every requirement is on
/// the name label and holds.
fn selects_by_name(selector: &Selector, name: &str) -> bool {
    let labels = Labels::from([(NAME_LABEL.to_owned(), name.to_owned())]);
    selector.requirements().iter().all(|r| match r {
        Requirement::In(key, _)
        | Requirement::NotIn(key, _)
        | Requirement::Exists(key)
        | Requirement::DoesNotExist(key) => key == NAME_LABEL,
    }) && selector.matches(&labels)
}

/// Whether every address of `narrow` is one of `broad`: its CIDR inside, and each of `broad`'s
/// `except`s outside it or inside one of its own.
fn block_within(narrow: &IpBlock, broad: &IpBlock) -> bool {
    let overlap = |a: &ipnet::IpNet, b: &ipnet::IpNet| a.contains(b) || b.contains(a);
    broad.cidr.contains(&narrow.cidr)
        && broad
            .except
            .iter()
            .all(|e| !overlap(e, &narrow.cidr) || narrow.except.iter().any(|own| own.contains(e)))
}

/// Whether every (port, protocol) `narrow` lists is one `broad` lists; `None` is every one.
fn ports_within(narrow: Option<&[Port]>, broad: Option<&[Port]>) -> bool {
    let Some(broad) = broad else {
        return true;
    };
    let Some(narrow) = narrow else {
        return false;
    };
    narrow.iter().all(|port| {
        let same: Vec<&PortMatch> = broad
            .iter()
            .filter(|b| b.protocol == port.protocol)
            .map(|b| &b.port)
            .collect();
        if same.contains(&&PortMatch::Any) {
            return true;
        }
        match &port.port {
            PortMatch::Any => false,
            PortMatch::Named(name) => same
                .iter()
                .any(|b| matches!(b, PortMatch::Named(n) if n == name)),
            PortMatch::Range(first, last) => {
                let mut ranges: Vec<(u32, u32)> = same
                    .iter()
                    .filter_map(|b| match b {
                        PortMatch::Range(a, z) => Some((u32::from(*a), u32::from(*z))),
                        _ => None,
                    })
                    .collect();
                ranges.sort_unstable();
                // Sweep: the first port not yet covered, from `first` up.
                let mut next = u32::from(*first);
                for (a, z) in ranges {
                    if a <= next && z >= next {
                        next = z + 1;
                    }
                }
                next > u32::from(*last)
            }
        }
    })
}
