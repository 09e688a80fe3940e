//! Who is open and what selects nothing: pods no policy isolates in either direction, namespaces with
//! pods and no ingress policy at all, namespaces one of whose policies lets everything in (every pod
//! selected, a rule with every peer and every port), and policies whose `podSelector` matches no pod.

use super::{
    AuditCluster, Finding, FindingKind,
    words::{self, Direction},
};
use crate::netpol::rules::{Peer, Policy, Rule};

/// A pod selected by no policy for ingress and by none for egress.
pub(super) fn pods_not_isolated(cluster: &AuditCluster) -> Vec<Finding> {
    cluster
        .pods
        .iter()
        .filter(|pod| {
            !cluster.policies.iter().any(|policy| {
                // Every policy applies to ingress, egress or both.
                policy.namespace == pod.namespace && policy.selector.matches(&pod.labels)
            })
        })
        .map(|pod| {
            Finding::new(
                FindingKind::PodNotIsolated,
                pod.key(),
                "no NetworkPolicy selects it for ingress or egress: every connection to and from it \
                 is allowed",
            )
        })
        .collect()
}

/// Both ways a namespace lets everything in: no policy of it applies to ingress (reported for
/// namespaces with pods: an empty one has nothing to reach), or a policy selecting all its pods has a
/// rule from every peer on every port (reported whatever its pods).
pub(super) fn namespaces_open(cluster: &AuditCluster) -> Vec<Finding> {
    let mut findings = Vec::new();
    for namespace in cluster.namespace_names() {
        let policies: Vec<&Policy> = cluster
            .policies
            .iter()
            .filter(|p| p.namespace == namespace)
            .collect();
        let pods = cluster
            .pods
            .iter()
            .filter(|p| p.namespace == namespace)
            .count();
        if pods > 0 && !policies.iter().any(|p| p.ingress.is_some()) {
            findings.push(Finding::new(
                FindingKind::NamespaceWithoutIngressPolicy,
                namespace.clone(),
                format!(
                    "no NetworkPolicy of namespace {namespace} applies to ingress: {} \
                     connections from anywhere",
                    if pods == 1 {
                        "its pod accepts".to_owned()
                    } else {
                        format!("its {pods} pods accept")
                    }
                ),
            ));
        }
        let open: Vec<String> = policies
            .iter()
            .filter(|p| p.selector.is_empty())
            .flat_map(|p| {
                Direction::Ingress
                    .rules(p)
                    .unwrap_or_default()
                    .iter()
                    .enumerate()
                    .filter(|(_, rule)| allows_everything(rule))
                    .map(|(index, _)| format!("{} rule {index}", p.key()))
            })
            .collect();
        if !open.is_empty() {
            findings.push(Finding::new(
                FindingKind::NamespaceAllowsAllIngress,
                namespace.clone(),
                format!(
                    "{} selects every pod of namespace {namespace} and allows ingress from every \
                     peer (any pod, any address) on every port and protocol: the namespace accepts \
                     connections from anywhere",
                    open.join(", ")
                ),
            ));
        }
    }
    findings
}

/// A rule with every port, and every peer: no `from`/`to`, or an `ipBlock` of all IPv4 addresses
/// with no `except` (which covers pods' addresses too).
pub(super) fn allows_everything(rule: &Rule) -> bool {
    rule.ports.is_none()
        && rule.peers.as_ref().is_none_or(|peers| {
            peers.iter().any(|peer| {
                matches!(peer, Peer::Block(block)
                    if block.except.is_empty()
                        && crate::netpol::rules::v4(&block.cidr).is_some_and(|n| n.prefix_len() == 0))
            })
        })
}

/// A policy whose `podSelector` matches none of its namespace's pods.
pub(super) fn policies_selecting_nothing(cluster: &AuditCluster) -> Vec<Finding> {
    cluster
        .policies
        .iter()
        .filter(|policy| cluster.selected(policy).next().is_none())
        .map(|policy| {
            let pods = cluster
                .pods
                .iter()
                .filter(|p| p.namespace == policy.namespace)
                .count();
            let message = if pods == 0 {
                format!(
                    "it selects no pod: namespace {} has no pods",
                    policy.namespace
                )
            } else {
                format!(
                    "it selects no pod: podSelector {} matches none of the {} of namespace {}",
                    words::selector(&policy.selector),
                    words::pods(pods),
                    policy.namespace
                )
            };
            Finding::new(FindingKind::PolicySelectsNoPod, policy.key(), message)
        })
        .collect()
}
