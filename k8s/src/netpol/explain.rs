//! `strait policy explain`'s reasoning: a cluster's pods, namespaces and policies as the evaluator sees
//! them ([`PolicyCluster`], from objects or built by a caller that knows the pods' addresses), and the
//! verdict on one flow told in words: for each side, which policies select it for that direction and,
//! rule by rule, whether the peer and the port matched.

use std::{collections::BTreeMap, fmt::Write as _, net::Ipv4Addr};

use super::{
    Flow, Party, PolicyPod, Protocol,
    evaluate::{Decision, Evaluator, Verdict},
    rules::{Policy, PolicyError},
};
use crate::{object::Object, selector::Labels};

/// Why a cluster or a flow cannot be explained.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExplainError {
    #[error("NetworkPolicy {policy}: {source}")]
    Policy { policy: String, source: PolicyError },
    #[error("no pod {0} (give NAMESPACE/POD, or an IPv4 address)")]
    UnknownPod(String),
    #[error(
        "{0:?}: give the destination as NAMESPACE/POD:PORT or ADDRESS:PORT, with /TCP, /UDP or /SCTP after the port if not TCP"
    )]
    Destination(String),
}

/// A destination as `strait policy explain` takes it: `NAMESPACE/POD:PORT[/PROTO]` or
/// `ADDRESS:PORT[/PROTO]` (protocol TCP unless named, any case); (party, port, protocol).
pub fn parse_destination(text: &str) -> Result<(String, u16, Protocol), ExplainError> {
    let bad = || ExplainError::Destination(text.to_owned());
    let (party, rest) = text.rsplit_once(':').ok_or_else(bad)?;
    let (port, protocol) = match rest.split_once('/') {
        None => (rest, Protocol::Tcp),
        Some((port, protocol)) => {
            let protocol = match protocol.to_ascii_uppercase().as_str() {
                "TCP" => Protocol::Tcp,
                "UDP" => Protocol::Udp,
                "SCTP" => Protocol::Sctp,
                _ => return Err(bad()),
            };
            (port, protocol)
        }
    };
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(bad)?;
    if party.is_empty() {
        return Err(bad());
    }
    Ok((party.to_owned(), port, protocol))
}

/// The pods, namespace labels and policies of a cluster.
#[derive(Clone, Debug, Default)]
pub struct PolicyCluster {
    pods: Vec<PolicyPod>,
    evaluator: Evaluator,
}

impl PolicyCluster {
    /// A cluster of `pods`, `policies` and namespaces with their labels.
    pub fn new(
        pods: Vec<PolicyPod>,
        policies: Vec<Policy>,
        namespaces: BTreeMap<String, Labels>,
    ) -> Self {
        Self {
            pods,
            evaluator: Evaluator::new(policies, namespaces),
        }
    }

    /// The Namespaces, Pods and NetworkPolicies among `objects` (other kinds are ignored); a pod's
    /// address is its `status.podIP`, if any.
    pub fn from_objects<'a>(
        objects: impl IntoIterator<Item = &'a Object>,
    ) -> Result<Self, ExplainError> {
        let mut pods = Vec::new();
        let mut policies = Vec::new();
        let mut namespaces = BTreeMap::new();
        for object in objects {
            match object {
                Object::Namespace(ns) => {
                    let name = ns.metadata.name.clone().unwrap_or_default();
                    namespaces.insert(name, ns.metadata.labels.clone().unwrap_or_default());
                }
                Object::Pod(pod) => pods.push(PolicyPod::from_pod(pod, None)),
                Object::NetworkPolicy(policy) => {
                    let parsed = Policy::parse(policy).map_err(|source| ExplainError::Policy {
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
                    policies.push(parsed);
                }
                _ => {}
            }
        }
        Ok(Self::new(pods, policies, namespaces))
    }

    pub fn evaluator(&self) -> &Evaluator {
        &self.evaluator
    }

    pub fn pods(&self) -> &[PolicyPod] {
        &self.pods
    }

    /// `NAMESPACE/POD`, or an address: the pod that has it, else a party outside the cluster.
    pub fn party(&self, text: &str) -> Result<Party<'_>, ExplainError> {
        if let Ok(ip) = text.parse::<Ipv4Addr>() {
            return Ok(self
                .pods
                .iter()
                .find(|p| p.ip == Some(ip))
                .map_or(Party::External(ip), Party::Pod));
        }
        self.pods
            .iter()
            .find(|p| p.key() == text)
            .map(Party::Pod)
            .ok_or_else(|| ExplainError::UnknownPod(text.to_owned()))
    }

    /// The verdict on `flow`, with its reasons in words.
    pub fn explain(&self, flow: &Flow<'_>) -> Explanation {
        let verdict = self.evaluator.verdict(flow);
        let mut text = String::new();
        let _ = writeln!(
            text,
            "{} -> {} on {}/{}: {}",
            flow.from.describe(),
            flow.to.describe(),
            flow.port,
            flow.protocol.name(),
            if verdict.allowed() {
                "ALLOWED"
            } else {
                "DENIED"
            }
        );
        self.side(
            &mut text,
            "egress of",
            &flow.from,
            &flow.to,
            flow,
            &verdict.egress,
        );
        self.side(
            &mut text,
            "ingress of",
            &flow.to,
            &flow.from,
            flow,
            &verdict.ingress,
        );
        Explanation { verdict, text }
    }

    fn side(
        &self,
        text: &mut String,
        what: &str,
        subject: &Party<'_>,
        peer: &Party<'_>,
        flow: &Flow<'_>,
        decision: &Decision,
    ) {
        let name = subject.describe();
        let _ = match decision {
            Decision::Loopback => {
                writeln!(text, "  {what} {name}: a pod reaching itself is not judged")
            }
            Decision::NotIsolated if matches!(subject, Party::External(_)) => {
                writeln!(
                    text,
                    "  {what} {name}: outside the cluster, no policy applies"
                )
            }
            Decision::NotIsolated => writeln!(
                text,
                "  {what} {name}: allowed, no NetworkPolicy selects it for {}",
                direction_word(what)
            ),
            Decision::Allowed(rules) => {
                let by: Vec<String> = rules
                    .iter()
                    .map(|r| format!("{} rule {}", r.policy, r.rule))
                    .collect();
                writeln!(text, "  {what} {name}: allowed by {}", by.join(", "))
            }
            Decision::Denied(policies) => writeln!(
                text,
                "  {what} {name}: denied, selected by {} and no rule allows it",
                policies.join(", ")
            ),
        };
        if let Decision::Denied(keys) = decision {
            self.rules_in_words(text, what, keys, peer, flow);
        }
    }

    /// For each policy in `keys`, each rule of the direction and what it made of the flow.
    fn rules_in_words(
        &self,
        text: &mut String,
        what: &str,
        keys: &[String],
        peer: &Party<'_>,
        flow: &Flow<'_>,
    ) {
        let ingress = what.starts_with("ingress");
        for policy in self
            .evaluator
            .policies()
            .iter()
            .filter(|p| keys.contains(&p.key()))
        {
            let rules = if ingress {
                &policy.ingress
            } else {
                &policy.egress
            };
            let rules = rules.as_deref().unwrap_or_default();
            if rules.is_empty() {
                let _ = writeln!(
                    text,
                    "    {}: no {} rules, so it allows nothing",
                    policy.key(),
                    direction_word(what)
                );
            }
            for (index, rule) in rules.iter().enumerate() {
                let outcome = self.evaluator.rule_outcome(policy, rule, peer, flow);
                let _ = writeln!(
                    text,
                    "    {} rule {index}: {} {}: {}; {}/{}: {}",
                    policy.key(),
                    if ingress { "from" } else { "to" },
                    peer.describe(),
                    yes_no(outcome.peer, "matches a peer", "matches no peer"),
                    flow.port,
                    flow.protocol.name(),
                    yes_no(outcome.port, "a listed port", "no listed port"),
                );
            }
        }
    }
}

fn direction_word(what: &str) -> &'static str {
    if what.starts_with("ingress") {
        "ingress"
    } else {
        "egress"
    }
}

fn yes_no(value: bool, yes: &'static str, no: &'static str) -> &'static str {
    if value { yes } else { no }
}

/// A verdict and its reasons.
#[derive(Clone, Debug)]
pub struct Explanation {
    pub verdict: Verdict,
    /// Lines of prose: the verdict, then each side's decision and the rules behind a denial.
    pub text: String,
}

/// A flow between two parties on `port`/`protocol`.
pub fn flow<'a>(from: Party<'a>, to: Party<'a>, port: u16, protocol: Protocol) -> Flow<'a> {
    Flow {
        from,
        to,
        port,
        protocol,
    }
}
