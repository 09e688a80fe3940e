//! Named ports that resolve to nothing. A named port is looked up on the destination, by name and
//! protocol: for an ingress rule on the pods the policy selects, for an egress rule on the pods its
//! peers take in (outside addresses have no named ports). A port entry no such pod declares allows
//! nothing. A policy selecting no pod is left to `policy-selects-no-pod`; a pod whose address is not
//! known counts as inside every `ipBlock`, so an unknown address never makes a finding.

use super::{
    AuditCluster, Finding, FindingKind,
    words::{self, Direction},
};
use crate::netpol::{
    Party, PolicyPod, Protocol,
    evaluate::Evaluator,
    rules::{Peer, Policy, PortMatch, Rule},
};

/// Each named port entry of each rule that resolves on none of the pods it can apply to.
pub(super) fn unresolved(cluster: &AuditCluster) -> Vec<Finding> {
    let evaluator = cluster.evaluator();
    let mut findings = Vec::new();
    for policy in &cluster.policies {
        for direction in Direction::BOTH {
            for (index, rule) in direction
                .rules(policy)
                .unwrap_or_default()
                .iter()
                .enumerate()
            {
                let candidates: Vec<&PolicyPod> = match direction {
                    Direction::Ingress => cluster.selected(policy).collect(),
                    Direction::Egress => cluster
                        .pods
                        .iter()
                        .filter(|pod| reaches(&evaluator, policy, rule, pod))
                        .collect(),
                };
                if direction == Direction::Ingress && candidates.is_empty() {
                    continue;
                }
                let what = format!("{} rule {index}", direction.word());
                findings.extend(unresolved_in_rule(rule, &candidates).into_iter().map(
                    |(name, protocol)| {
                        let what = format!("{what} port {name:?}/{}", protocol.name());
                        let message = if candidates.is_empty() {
                            format!(
                                "{what}: the rule reaches no pod, and addresses outside the \
                                     cluster have no named ports, so that entry allows nothing"
                            )
                        } else {
                            missing(&what, direction, &candidates, name, protocol)
                        };
                        Finding::new(FindingKind::NamedPortUnresolved, policy.key(), message)
                    },
                ));
            }
        }
    }
    findings
}

/// The (name, protocol) of each named port entry of `rule` that none of `candidates` declares, once.
fn unresolved_in_rule<'a>(rule: &'a Rule, candidates: &[&PolicyPod]) -> Vec<(&'a str, Protocol)> {
    let mut out: Vec<(&str, Protocol)> = Vec::new();
    for port in rule.ports.iter().flatten() {
        let PortMatch::Named(name) = &port.port else {
            continue;
        };
        let entry = (name.as_str(), port.protocol);
        if !out.contains(&entry)
            && !candidates
                .iter()
                .any(|pod| pod.named_port(name, port.protocol).is_some())
        {
            out.push(entry);
        }
    }
    out
}

/// `WHAT: none of the pods ... declares a PROTO port named NAME`, with the pods that have the name
/// for another protocol.
fn missing(
    what: &str,
    direction: Direction,
    candidates: &[&PolicyPod],
    name: &str,
    protocol: Protocol,
) -> String {
    let whose = match direction {
        Direction::Ingress => "none of the pods it selects",
        Direction::Egress => "none of the pods the rule reaches",
    };
    let keys: Vec<String> = candidates.iter().map(|p| p.key()).collect();
    let elsewhere: Vec<String> = candidates
        .iter()
        .filter_map(|pod| {
            let other = pod.ports.iter().find(|p| p.name == name)?;
            Some(format!(
                "{} has it for {}",
                pod.key(),
                other.protocol.name()
            ))
        })
        .collect();
    let hint = if elsewhere.is_empty() {
        String::new()
    } else {
        format!("; {}", words::list(&elsewhere))
    };
    let protocol = protocol.name();
    format!(
        "{what}: {whose} ({}) declares a {protocol} port named {name:?}, so that entry allows \
         nothing{hint}",
        words::list(&keys)
    )
}

/// Whether egress `rule` of `policy` can take in `pod`; an unknown address may be in any `ipBlock`.
fn reaches(evaluator: &Evaluator, policy: &Policy, rule: &Rule, pod: &PolicyPod) -> bool {
    rule.peers.as_ref().is_none_or(|peers| {
        peers.iter().any(|peer| match peer {
            Peer::Block(block) => pod.ip.is_none_or(|ip| block.covers(ip)),
            Peer::Pods { .. } => evaluator.peer_matches(policy, peer, &Party::Pod(pod)),
        })
    })
}
