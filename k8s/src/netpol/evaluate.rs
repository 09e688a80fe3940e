//! The specification's verdict on one flow: the destination's ingress and the source's egress are each
//! decided on their own (a pod no policy selects for a direction is not isolated there; an isolated
//! pod lets through what any rule of any policy selecting it allows), and the flow passes when both
//! do. A pod talking to itself is not judged. Outside parties are never isolated.

use std::collections::BTreeMap;

use super::{
    Flow, Party, PolicyPod, Protocol,
    rules::{Peer, Policy, PortMatch, Rule},
};
use crate::selector::Labels;

/// A rule that allowed a flow: the policy's `namespace/name`, and the rule's index in its direction.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct RuleRef {
    pub policy: String,
    pub rule: usize,
}

/// How one direction decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// No policy selects the pod for this direction (or the party is no pod of the cluster).
    NotIsolated,
    /// Isolated, and these rules allow the flow.
    Allowed(Vec<RuleRef>),
    /// Isolated by these policies, none of whose rules allows the flow.
    Denied(Vec<String>),
    /// A pod reaching itself: never judged.
    Loopback,
}

impl Decision {
    pub fn allows(&self) -> bool {
        !matches!(self, Decision::Denied(_))
    }
}

/// Both directions' decisions on a flow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// The source's egress.
    pub egress: Decision,
    /// The destination's ingress.
    pub ingress: Decision,
}

impl Verdict {
    pub fn allowed(&self) -> bool {
        self.egress.allows() && self.ingress.allows()
    }
}

/// What a rule made of a flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RuleOutcome {
    /// One of its peers (or all, with none listed) is the flow's other party.
    pub peer: bool,
    /// One of its ports (or all, with none listed) is the flow's port and protocol.
    pub port: bool,
}

/// Which side of a flow a rule is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Direction {
    Ingress,
    Egress,
}

/// The policies of a cluster and the labels of its namespaces.
#[derive(Clone, Debug, Default)]
pub struct Evaluator {
    policies: Vec<Policy>,
    namespaces: BTreeMap<String, Labels>,
}

impl Evaluator {
    /// An evaluator for `policies`; `namespaces` maps each namespace to its labels (a namespace
    /// missing here has none).
    pub fn new(policies: Vec<Policy>, namespaces: BTreeMap<String, Labels>) -> Self {
        Self {
            policies,
            namespaces,
        }
    }

    pub fn policies(&self) -> &[Policy] {
        &self.policies
    }

    /// The specification's verdict on `flow`.
    pub fn verdict(&self, flow: &Flow<'_>) -> Verdict {
        if let (Party::Pod(from), Party::Pod(to)) = (&flow.from, &flow.to)
            && from.namespace == to.namespace
            && from.name == to.name
        {
            return Verdict {
                egress: Decision::Loopback,
                ingress: Decision::Loopback,
            };
        }
        Verdict {
            egress: self.decide(Direction::Egress, flow),
            ingress: self.decide(Direction::Ingress, flow),
        }
    }

    fn decide(&self, direction: Direction, flow: &Flow<'_>) -> Decision {
        let (subject, peer) = match direction {
            Direction::Ingress => (&flow.to, &flow.from),
            Direction::Egress => (&flow.from, &flow.to),
        };
        let Party::Pod(subject) = subject else {
            return Decision::NotIsolated;
        };
        let mut isolating = Vec::new();
        let mut allowing = Vec::new();
        for policy in &self.policies {
            let rules = match direction {
                Direction::Ingress => policy.ingress.as_ref(),
                Direction::Egress => policy.egress.as_ref(),
            };
            let Some(rules) = rules else { continue };
            if policy.namespace != subject.namespace || !policy.selector.matches(&subject.labels) {
                continue;
            }
            isolating.push(policy.key());
            for (index, rule) in rules.iter().enumerate() {
                if self.rule_allows(policy, rule, peer, flow) {
                    allowing.push(RuleRef {
                        policy: policy.key(),
                        rule: index,
                    });
                }
            }
        }
        if isolating.is_empty() {
            Decision::NotIsolated
        } else if allowing.is_empty() {
            Decision::Denied(isolating)
        } else {
            Decision::Allowed(allowing)
        }
    }

    fn rule_allows(&self, policy: &Policy, rule: &Rule, peer: &Party<'_>, flow: &Flow<'_>) -> bool {
        let outcome = self.rule_outcome(policy, rule, peer, flow);
        outcome.peer && outcome.port
    }

    /// Whether `rule` of `policy` admits the flow's other party (`peer`) and its port and protocol.
    pub fn rule_outcome(
        &self,
        policy: &Policy,
        rule: &Rule,
        peer: &Party<'_>,
        flow: &Flow<'_>,
    ) -> RuleOutcome {
        RuleOutcome {
            peer: rule
                .peers
                .as_ref()
                .is_none_or(|peers| peers.iter().any(|p| self.peer_matches(policy, p, peer))),
            port: rule
                .ports
                .as_ref()
                .is_none_or(|ports| ports.iter().any(|p| port_matches(p, flow))),
        }
    }

    /// Whether peer `rule` of `policy` names `party`.
    pub fn peer_matches(&self, policy: &Policy, rule: &Peer, party: &Party<'_>) -> bool {
        match (rule, party) {
            (Peer::Block(block), party) => party.ip().is_some_and(|ip| block.covers(ip)),
            (Peer::Pods { .. }, Party::External(_)) => false,
            (Peer::Pods { pods, namespaces }, Party::Pod(pod)) => {
                let namespace_ok = match namespaces {
                    None => pod.namespace == policy.namespace,
                    Some(selector) => {
                        let labels = self.namespace_labels(&pod.namespace);
                        selector.matches(&labels)
                    }
                };
                namespace_ok && pods.as_ref().is_none_or(|s| s.matches(&pod.labels))
            }
        }
    }

    /// A namespace's labels, with `kubernetes.io/metadata.name`, which the API server always sets.
    fn namespace_labels(&self, namespace: &str) -> Labels {
        let mut labels = self.namespaces.get(namespace).cloned().unwrap_or_default();
        labels
            .entry("kubernetes.io/metadata.name".to_owned())
            .or_insert_with(|| namespace.to_owned());
        labels
    }
}

/// Whether a port entry allows the flow's destination port and protocol; a named port is looked up
/// in the destination pod's container ports of the flow's protocol.
fn port_matches(port: &super::rules::Port, flow: &Flow<'_>) -> bool {
    if port.protocol != flow.protocol {
        return false;
    }
    match &port.port {
        PortMatch::Any => true,
        PortMatch::Range(first, last) => (*first..=*last).contains(&flow.port),
        PortMatch::Named(name) => match &flow.to {
            Party::Pod(to) => to.named_port(name, flow.protocol) == Some(flow.port),
            Party::External(_) => false,
        },
    }
}

impl PolicyPod {
    /// The number of the container port called `name` for `protocol`.
    pub fn named_port(&self, name: &str, protocol: Protocol) -> Option<u16> {
        self.ports
            .iter()
            .find(|p| p.name == name && p.protocol == protocol)
            .map(|p| p.port)
    }
}
