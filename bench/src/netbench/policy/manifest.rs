//! The NetworkPolicies of a sweep: `count` policies, about half of them selecting the server pod, the
//! rest other labels in other namespaces, every one with an ingress rule of its own (a distinct
//! port, and a peer of one of several shapes). Exactly one, [`ALLOW_CLIENT`], lets the client reach
//! the server's port; [`flipped_allow`] is the same policy moved to another port, which leaves the
//! client denied (NetworkPolicy only allows, so "a policy that denies" is one that stops allowing).
//!
//! The peer shapes (policy `i`, port `10000 + i`; none of them allows the server's own port):
//! - the client by its label (it matches: the kernel's policy map gets an entry per such policy),
//! - a namespace by a label of one of [`NAMESPACES`] (namespaces without pods),
//! - a pod label no pod has, ANDed with the server's namespace by name,
//! - an `ipBlock` of one address outside the cluster,
//! - every pod of the namespace (`podSelector: {}`), over UDP.
//!
//! The policies that do not select the server select `app: other-<i>` in one of [`NAMESPACES`],
//! every fourth with an egress rule too.

use std::fmt::Write as _;

use crate::netbench::{catalog::SERVER_PORT, crossnode::labs};

/// The policy that lets the client reach the server (in the server's namespace, `default`).
pub const ALLOW_CLIENT: &str = "allow-bench-client";
/// Namespaces created for the policies that do not select the server (labelled `bench-team: t<k>`).
pub const NAMESPACES: usize = 10;
/// The first port of the other policies' rules; policy `i` names port `FIRST_PORT + i`.
pub const FIRST_PORT: u32 = 10_000;
/// The most policies a sweep may apply (the ports stay below 65536).
pub const MAX_POLICIES: usize = 50_000;

/// The name of the `k`th extra namespace.
pub fn namespace(k: usize) -> String {
    format!("policy-bench-{k}")
}

/// The labels of the `k`th extra namespace.
pub fn namespace_labels(k: usize) -> Labels {
    vec![("bench-team".to_owned(), format!("t{k}"))]
}

/// The label value of the server and client pods (`app: <name>`), as the cross-node manifest sets it.
pub fn app(pod: &str) -> &str {
    pod.trim_start_matches("default/")
}

/// A `matchLabels` selector (empty: everything).
pub type Labels = Vec<(String, String)>;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// A peer of a rule, as the sweep writes them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Peer {
    /// Pods by `podSelector` (in the policy's namespace unless `namespaces` is set) and/or namespaces
    /// by `namespaceSelector`; both `None` is not written.
    Pods {
        namespaces: Option<Labels>,
        pods: Option<Labels>,
    },
    /// An `ipBlock` without exceptions.
    Block(String),
}

/// One ingress or egress rule: its peers and one port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub peers: Vec<Peer>,
    pub protocol: &'static str,
    pub port: u32,
}

/// One NetworkPolicy of the sweep. Its `policyTypes` are the API server's default: Ingress, and
/// Egress when it has egress rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicySpec {
    pub namespace: String,
    pub name: String,
    pub pod_selector: Labels,
    pub ingress: Vec<Rule>,
    pub egress: Vec<Rule>,
}

fn selector_yaml(labels: &Labels) -> String {
    if labels.is_empty() {
        return "{}".to_owned();
    }
    let pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    format!("{{matchLabels: {{{}}}}}", pairs.join(", "))
}

fn peer_yaml(peer: &Peer) -> String {
    match peer {
        Peer::Pods { namespaces, pods } => {
            let mut parts = Vec::new();
            if let Some(namespaces) = namespaces {
                parts.push(format!("namespaceSelector: {}", selector_yaml(namespaces)));
            }
            if let Some(pods) = pods {
                parts.push(format!("podSelector: {}", selector_yaml(pods)));
            }
            format!("{{{}}}", parts.join(", "))
        }
        Peer::Block(cidr) => format!("{{ipBlock: {{cidr: {cidr}}}}}"),
    }
}

impl PolicySpec {
    /// The policy as a manifest document (without a `---` separator).
    pub fn yaml(&self) -> String {
        let mut text = format!(
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: {}, namespace: {}}}\nspec:\n  podSelector: {}\n",
            self.name,
            self.namespace,
            selector_yaml(&self.pod_selector)
        );
        for (key, peers_key, rules) in [
            ("ingress", "from", &self.ingress),
            ("egress", "to", &self.egress),
        ] {
            if rules.is_empty() {
                continue;
            }
            let _ = writeln!(text, "  {key}:");
            for rule in rules {
                let peers: Vec<String> = rule.peers.iter().map(peer_yaml).collect();
                let _ = write!(
                    text,
                    "  - {peers_key}: [{}]\n    ports: [{{protocol: {}, port: {}}}]\n",
                    peers.join(", "),
                    rule.protocol,
                    rule.port
                );
            }
        }
        text
    }

    /// Whether the policy isolates the pods it selects for egress too.
    pub fn has_egress(&self) -> bool {
        !self.egress.is_empty()
    }
}

/// The allowing policy, on `port`: the server pod, from the client pod.
fn allow_client(port: u16) -> PolicySpec {
    PolicySpec {
        namespace: "default".to_owned(),
        name: ALLOW_CLIENT.to_owned(),
        pod_selector: labels(&[("app", app(labs::SERVER_POD))]),
        ingress: vec![Rule {
            peers: vec![Peer::Pods {
                namespaces: None,
                pods: Some(labels(&[("app", app(labs::CLIENT_POD))])),
            }],
            protocol: "TCP",
            port: u32::from(port),
        }],
        egress: Vec::new(),
    }
}

/// [`ALLOW_CLIENT`] as a sweep applies it: the client may reach the server's port.
pub fn allowing_spec() -> PolicySpec {
    allow_client(SERVER_PORT)
}

/// [`ALLOW_CLIENT`] moved to the next port: applied over [`allowing`], the client's connections to
/// the server's port are denied (every other policy selecting the server allows other ports only).
pub fn flipped_spec() -> PolicySpec {
    allow_client(SERVER_PORT + 1)
}

/// [`allowing_spec`] as a manifest.
pub fn allowing() -> String {
    allowing_spec().yaml()
}

/// [`flipped_spec`] as a manifest.
pub fn flipped_allow() -> String {
    flipped_spec().yaml()
}

/// Whether policy `i` (`i >= 1`) selects the server pod.
pub fn selects_server(i: usize) -> bool {
    i % 2 == 1
}

/// Policy `i` (`i >= 1`).
fn policy(i: usize) -> PolicySpec {
    let port = FIRST_PORT + u32::try_from(i).unwrap_or(u32::MAX - FIRST_PORT);
    let team = i % NAMESPACES;
    let team_labels = namespace_labels(team);
    if !selects_server(i) {
        let egress = if i.is_multiple_of(4) {
            vec![Rule {
                peers: vec![Peer::Pods {
                    namespaces: Some(team_labels),
                    pods: None,
                }],
                protocol: "TCP",
                port,
            }]
        } else {
            Vec::new()
        };
        return PolicySpec {
            namespace: namespace(team),
            name: format!("other-{i}"),
            pod_selector: vec![("app".to_owned(), format!("other-{i}"))],
            ingress: vec![Rule {
                peers: vec![Peer::Pods {
                    namespaces: None,
                    pods: Some(vec![("app".to_owned(), format!("client-{i}"))]),
                }],
                protocol: "TCP",
                port,
            }],
            egress,
        };
    }
    let shape = (i / 2) % 5;
    let peer = match shape {
        0 => Peer::Pods {
            namespaces: None,
            pods: Some(labels(&[("app", app(labs::CLIENT_POD))])),
        },
        1 => Peer::Pods {
            namespaces: Some(team_labels),
            pods: None,
        },
        2 => Peer::Pods {
            namespaces: Some(labels(&[("kubernetes.io/metadata.name", "default")])),
            pods: Some(vec![("peer".to_owned(), format!("p{i}"))]),
        },
        3 => Peer::Block(format!("172.16.{}.{}/32", i / 256 % 256, i % 256)),
        _ => Peer::Pods {
            namespaces: None,
            pods: Some(Vec::new()),
        },
    };
    PolicySpec {
        namespace: "default".to_owned(),
        name: format!("server-{i}"),
        pod_selector: labels(&[("app", app(labs::SERVER_POD))]),
        ingress: vec![Rule {
            peers: vec![peer],
            protocol: if shape == 4 { "UDP" } else { "TCP" },
            port,
        }],
        egress: Vec::new(),
    }
}

/// The `count` policies of a sweep ([`ALLOW_CLIENT`] first).
pub fn specs(count: usize) -> Vec<PolicySpec> {
    if count == 0 {
        return Vec::new();
    }
    std::iter::once(allowing_spec())
        .chain((1..count).map(policy))
        .collect()
}

/// The namespaces and `count` policies as one manifest (empty for 0).
pub fn policies(count: usize) -> String {
    if count == 0 {
        return String::new();
    }
    let mut text = String::new();
    for k in 0..NAMESPACES {
        let pairs: Vec<String> = namespace_labels(k)
            .iter()
            .map(|(key, v)| format!("{key}: {v}"))
            .collect();
        let _ = write!(
            text,
            "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {}, labels: {{{}}}}}\n---\n",
            namespace(k),
            pairs.join(", ")
        );
    }
    let documents: Vec<String> = specs(count).iter().map(PolicySpec::yaml).collect();
    text.push_str(&documents.join("---\n"));
    text
}

/// How many of `count` policies select the server pod ([`ALLOW_CLIENT`] included).
pub fn selecting_server(count: usize) -> usize {
    if count == 0 {
        return 0;
    }
    1 + (1..count).filter(|&i| selects_server(i)).count()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn kinds(text: &str) -> Vec<(String, String)> {
        strait_lab::manifests::parse_str(Path::new("p.yaml"), text)
            .unwrap()
            .iter()
            .map(|o| {
                (
                    o.kind().to_string(),
                    format!("{}/{}", o.namespace(), o.name()),
                )
            })
            .collect()
    }

    #[test]
    fn every_policy_parses_and_names_are_distinct() {
        let objects = kinds(&policies(100));
        assert_eq!(objects.len(), NAMESPACES + 100);
        let policies: Vec<_> = objects
            .iter()
            .filter(|(kind, _)| kind == "NetworkPolicy")
            .map(|(_, key)| key.clone())
            .collect();
        assert_eq!(policies.len(), 100);
        let distinct: std::collections::BTreeSet<_> = policies.iter().collect();
        assert_eq!(distinct.len(), 100);
        assert_eq!(policies[0], format!("default/{ALLOW_CLIENT}"));
        assert!(super::policies(0).is_empty());
    }

    #[test]
    fn half_select_the_server_and_only_one_names_its_port() {
        assert_eq!(selecting_server(0), 0);
        assert_eq!(selecting_server(1), 1);
        assert_eq!(selecting_server(100), 51);
        assert_eq!(selecting_server(1000), 501);
        let text = policies(1000);
        assert_eq!(text.matches(&format!("port: {SERVER_PORT}}}")).count(), 1);
        // Every peer shape is there.
        for shape in [
            "ipBlock",
            "kubernetes.io/metadata.name",
            "bench-team",
            "UDP",
            "egress",
        ] {
            assert!(text.contains(shape), "{shape}");
        }
    }

    #[test]
    fn the_flip_moves_the_allowing_policy_off_the_server_port() {
        let allow = kinds(&allowing());
        let flip = kinds(&flipped_allow());
        assert_eq!(allow, flip);
        assert!(allowing().contains(&format!("port: {SERVER_PORT}}}")));
        assert!(flipped_allow().contains(&format!("port: {}}}", SERVER_PORT + 1)));
    }
}
