//! `strait policy audit`'s analysis: what a cluster's NetworkPolicies leave open, never select, say
//! twice, or say about the wrong addresses. Pure: it reads pods, namespaces, nodes and policies
//! ([`AuditCluster`]) and the cluster's address ranges ([`ClusterRanges`]) and returns findings, each
//! with a stable kebab-case [`FindingKind`], a [`Severity`], a subject and a message in words.
//!
//! Shadowing is proven from the selectors and ports themselves (true whatever pods come and go), never
//! guessed from the pods there are now; the other checks are about the pods the input has. The checks
//! live in submodules: `isolation` (who is open, what selects nothing), `shadow` (rules another rule
//! contains), `ports` (named ports nothing declares), `ranges` (`ipBlock`s over the cluster's own
//! addresses).

mod isolation;
mod ports;
mod ranges;
mod shadow;
#[cfg(test)]
mod tests;
mod words;

use std::{
    collections::{BTreeMap, BTreeSet},
    net::Ipv4Addr,
};

use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::{Node, Pod};

use super::{
    PolicyPod,
    evaluate::Evaluator,
    rules::{Policy, PolicyError},
};
use crate::{object::Object, selector::Labels};

/// Why a cluster cannot be audited.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    #[error("NetworkPolicy {policy}: {source}")]
    Policy { policy: String, source: PolicyError },
}

/// How much a finding matters: a warning makes `strait policy audit` exit 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Info,
}

/// What a finding is about; [`FindingKind::id`] is its stable name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FindingKind {
    /// A pod no policy selects for ingress nor for egress.
    PodNotIsolated,
    /// A namespace with pods and no policy that applies to ingress: all of them take any connection.
    NamespaceWithoutIngressPolicy,
    /// A policy selecting every pod of its namespace with an ingress rule that allows every peer on
    /// every port.
    NamespaceAllowsAllIngress,
    /// A policy whose `podSelector` matches no pod of its namespace.
    PolicySelectsNoPod,
    /// A named port in a rule that no pod it could resolve on declares with that protocol.
    NamedPortUnresolved,
    /// An `ipBlock` that covers (part of) the pod range.
    IpBlockCoversPodRange,
    /// An `ipBlock` that covers (part of) the service range.
    IpBlockCoversServiceRange,
    /// An `ipBlock` that covers nodes' addresses or range.
    IpBlockCoversNodeRange,
    /// A rule that allows nothing another rule for the same pods does not already allow.
    RuleShadowed,
}

impl FindingKind {
    /// Every kind, in report order.
    pub const ALL: [FindingKind; 9] = [
        FindingKind::PodNotIsolated,
        FindingKind::NamespaceWithoutIngressPolicy,
        FindingKind::NamespaceAllowsAllIngress,
        FindingKind::PolicySelectsNoPod,
        FindingKind::NamedPortUnresolved,
        FindingKind::IpBlockCoversPodRange,
        FindingKind::IpBlockCoversServiceRange,
        FindingKind::IpBlockCoversNodeRange,
        FindingKind::RuleShadowed,
    ];

    /// The stable kebab-case name (`pod-not-isolated`).
    pub fn id(self) -> &'static str {
        match self {
            FindingKind::PodNotIsolated => "pod-not-isolated",
            FindingKind::NamespaceWithoutIngressPolicy => "namespace-without-ingress-policy",
            FindingKind::NamespaceAllowsAllIngress => "namespace-allows-all-ingress",
            FindingKind::PolicySelectsNoPod => "policy-selects-no-pod",
            FindingKind::NamedPortUnresolved => "named-port-unresolved",
            FindingKind::IpBlockCoversPodRange => "ip-block-covers-pod-range",
            FindingKind::IpBlockCoversServiceRange => "ip-block-covers-service-range",
            FindingKind::IpBlockCoversNodeRange => "ip-block-covers-node-range",
            FindingKind::RuleShadowed => "rule-shadowed",
        }
    }

    /// Warnings are what is open that may not be meant to be, or written and doing nothing (or not
    /// what it seems); infos are redundancy and what the node exception already allows.
    pub fn severity(self) -> Severity {
        match self {
            FindingKind::IpBlockCoversNodeRange | FindingKind::RuleShadowed => Severity::Info,
            _ => Severity::Warning,
        }
    }
}

/// One thing the audit found.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    pub kind: FindingKind,
    pub severity: Severity,
    /// `namespace/name` of the pod or policy, or the namespace's name.
    pub subject: String,
    /// What is wrong, in words.
    pub message: String,
}

impl Finding {
    fn new(kind: FindingKind, subject: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            kind,
            severity: kind.severity(),
            subject: subject.into(),
            message: message.into(),
        }
    }
}

/// The cluster's own address ranges, which `ipBlock`s are checked against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterRanges {
    /// Where pods' addresses come from (`--cluster-cidr`).
    pub pods: Vec<Ipv4Net>,
    /// Where ClusterIPs come from (`--service-cidr`).
    pub services: Vec<Ipv4Net>,
    /// Nodes' networks, besides the nodes' own addresses ([`AuditCluster::nodes`]).
    pub nodes: Vec<Ipv4Net>,
}

impl Default for ClusterRanges {
    /// kubeadm's and the lab's: pods 10.244.0.0/16, services 10.96.0.0/12, no node range.
    fn default() -> Self {
        Self {
            pods: vec![Ipv4Net::new_assert(Ipv4Addr::new(10, 244, 0, 0), 16)],
            services: vec![Ipv4Net::new_assert(Ipv4Addr::new(10, 96, 0, 0), 12)],
            nodes: Vec::new(),
        }
    }
}

/// What the audit reads: pods, namespaces' labels, nodes' addresses and policies.
#[derive(Clone, Debug, Default)]
pub struct AuditCluster {
    pub pods: Vec<PolicyPod>,
    pub policies: Vec<Policy>,
    /// Declared namespaces and their labels; namespaces only named by pods or policies count too.
    pub namespaces: BTreeMap<String, Labels>,
    /// Nodes' addresses.
    pub nodes: Vec<Ipv4Addr>,
}

impl AuditCluster {
    /// The Namespaces, Nodes, Pods, Deployments and NetworkPolicies among `objects` (other kinds are
    /// ignored). A Deployment counts as one pod named `NAME-*` with its template's labels and ports; a
    /// Node brings its `status.addresses` that are IPv4.
    pub fn from_objects<'a>(
        objects: impl IntoIterator<Item = &'a Object>,
    ) -> Result<Self, AuditError> {
        let mut cluster = Self::default();
        for object in objects {
            match object {
                Object::Namespace(ns) => {
                    let name = ns.metadata.name.clone().unwrap_or_default();
                    let labels = ns.metadata.labels.clone().unwrap_or_default();
                    cluster.namespaces.insert(name, labels);
                }
                Object::Node(node) => cluster.nodes.extend(node_addresses(node)),
                Object::Pod(pod) => cluster.pods.push(PolicyPod::from_pod(pod, None)),
                Object::Deployment(deployment) => {
                    let template = &deployment.spec.template;
                    let pod = Pod {
                        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                            name: Some(format!(
                                "{}-*",
                                deployment.metadata.name.as_deref().unwrap_or_default()
                            )),
                            namespace: deployment.metadata.namespace.clone(),
                            labels: template.metadata.as_ref().and_then(|m| m.labels.clone()),
                            ..Default::default()
                        },
                        spec: template.spec.clone(),
                        status: None,
                    };
                    cluster.pods.push(PolicyPod::from_pod(&pod, None));
                }
                Object::NetworkPolicy(policy) => {
                    let parsed = Policy::parse(policy).map_err(|source| AuditError::Policy {
                        policy: format!(
                            "{}/{}",
                            policy
                                .metadata
                                .namespace
                                .as_deref()
                                .unwrap_or(crate::DEFAULT_NAMESPACE),
                            policy.metadata.name.as_deref().unwrap_or_default()
                        ),
                        source,
                    })?;
                    cluster.policies.push(parsed);
                }
                _ => {}
            }
        }
        Ok(cluster)
    }

    /// Every namespace: declared, or named by a pod or a policy.
    pub fn namespace_names(&self) -> BTreeSet<String> {
        let mut names: BTreeSet<String> = self.namespaces.keys().cloned().collect();
        names.extend(self.pods.iter().map(|p| p.namespace.clone()));
        names.extend(self.policies.iter().map(|p| p.namespace.clone()));
        names
    }

    /// The pods of `namespace` that `policy` selects.
    fn selected<'a>(&'a self, policy: &'a Policy) -> impl Iterator<Item = &'a PolicyPod> + 'a {
        self.pods
            .iter()
            .filter(|p| p.namespace == policy.namespace && policy.selector.matches(&p.labels))
    }

    fn evaluator(&self) -> Evaluator {
        Evaluator::new(self.policies.clone(), self.namespaces.clone())
    }
}

/// A Node's IPv4 addresses, of any type (InternalIP, ExternalIP).
fn node_addresses(node: &Node) -> impl Iterator<Item = Ipv4Addr> + '_ {
    node.status
        .iter()
        .flat_map(|s| s.addresses.iter().flatten())
        .filter_map(|a| a.address.parse::<Ipv4Addr>().ok())
}

/// What the audit found.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Report {
    /// In [`FindingKind::ALL`] order, then by subject.
    pub findings: Vec<Finding>,
}

impl Report {
    /// The number of findings of `severity`.
    pub fn count(&self, severity: Severity) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity == severity)
            .count()
    }

    /// The kinds found, each once, in report order.
    pub fn kinds(&self) -> Vec<FindingKind> {
        let mut kinds: Vec<FindingKind> = self.findings.iter().map(|f| f.kind).collect();
        kinds.dedup();
        kinds
    }
}

/// Audits `cluster` whose own addresses are `ranges` (plus its nodes' addresses).
pub fn audit(cluster: &AuditCluster, ranges: &ClusterRanges) -> Report {
    let mut findings = Vec::new();
    findings.extend(isolation::pods_not_isolated(cluster));
    findings.extend(isolation::namespaces_open(cluster));
    findings.extend(isolation::policies_selecting_nothing(cluster));
    findings.extend(ports::unresolved(cluster));
    findings.extend(ranges::covering(cluster, ranges));
    findings.extend(shadow::shadowed(cluster));
    // Stable: within a kind, subjects in order, and each subject's findings as the checks found them.
    findings.sort_by(|a, b| (a.kind, &a.subject).cmp(&(b.kind, &b.subject)));
    Report { findings }
}
