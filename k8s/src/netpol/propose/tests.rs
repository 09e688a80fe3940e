//! The proposal for a handful of flows on the upstream model, judged by the crate's own evaluator over
//! every pair of model pods, ports 80 and 81, TCP and UDP: it allows exactly the observed cells (a pod
//! to itself aside, which is never judged).

use std::{collections::BTreeSet, net::Ipv4Addr};

use k8s_openapi::api::networking::v1::NetworkPolicy;

use super::*;
use crate::netpol::{Evaluator, Flow, Party, Policy, upstream};

fn pod_peer(pods: &[PolicyPod], key: &str) -> Peer {
    Peer::Pod(Identity::of(pods.iter().find(|p| p.key() == key).unwrap()))
}

/// (from, to, port, protocol) by pod key.
const SEEN: [(&str, &str, u16, Protocol); 5] = [
    ("x/a", "y/b", 80, Protocol::Tcp),
    ("x/b", "y/b", 80, Protocol::Tcp),
    ("z/c", "x/a", 81, Protocol::Udp),
    ("y/a", "z/b", 80, Protocol::Tcp),
    ("x/a", "y/b", 81, Protocol::Udp),
];

fn evaluator(policies: &[NetworkPolicy]) -> Evaluator {
    let (_, namespaces) = upstream::model();
    let namespaces = namespaces
        .into_iter()
        .map(|(name, mut labels)| {
            labels.insert(NAMESPACE_NAME_LABEL.to_owned(), name.clone());
            (name, labels)
        })
        .collect();
    // Through YAML, as `kubectl apply` would read it.
    let yaml = to_yaml(policies);
    let parsed: Vec<Policy> = yaml
        .split("---\n")
        .filter(|d| !d.trim().is_empty())
        .map(|doc| {
            let policy: NetworkPolicy = serde_yaml_ng::from_str(doc).unwrap();
            Policy::parse(&policy).unwrap()
        })
        .collect();
    assert_eq!(parsed.len(), policies.len());
    Evaluator::new(parsed, namespaces)
}

#[test]
fn the_proposal_allows_exactly_what_was_seen() {
    let (pods, _) = upstream::model();
    let mut observed: Vec<Observed> = SEEN
        .iter()
        .map(|(from, to, port, protocol)| Observed {
            from: pod_peer(&pods, from),
            to: pod_peer(&pods, to),
            port: *port,
            protocol: *protocol,
        })
        .collect();
    // Reported twice (egress and ingress judgements): no difference.
    observed.extend(observed.clone());
    let policies = propose(
        &observed,
        Scope {
            pods: &pods,
            namespaces: None,
        },
    );
    assert_eq!(policies.len(), 18, "one ingress and one egress per pod");
    let evaluator = evaluator(&policies);
    let seen: BTreeSet<(String, String, u16, Protocol)> = SEEN
        .iter()
        .map(|(f, t, p, pr)| ((*f).to_owned(), (*t).to_owned(), *p, *pr))
        .collect();
    let mut allowed = BTreeSet::new();
    for from in &pods {
        for to in &pods {
            if from.key() == to.key() {
                continue;
            }
            for port in upstream::PORTS {
                for protocol in [Protocol::Tcp, Protocol::Udp] {
                    let flow = Flow {
                        from: Party::Pod(from),
                        to: Party::Pod(to),
                        port,
                        protocol,
                    };
                    if evaluator.verdict(&flow).allowed() {
                        allowed.insert((from.key(), to.key(), port, protocol));
                    }
                }
            }
        }
    }
    assert_eq!(allowed, seen);

    // Deterministic: the same flows in another order give the same YAML.
    let mut reversed = observed.clone();
    reversed.reverse();
    let again = propose(
        &reversed,
        Scope {
            pods: &pods,
            namespaces: None,
        },
    );
    assert_eq!(to_yaml(&again), to_yaml(&policies));
}

#[test]
fn selected_namespaces_addresses_and_names() {
    let (pods, _) = upstream::model();
    let outside = Ipv4Addr::new(192, 0, 2, 7);
    let observed = vec![
        Observed {
            from: Peer::Address(outside),
            to: pod_peer(&pods, "y/a"),
            port: 80,
            protocol: Protocol::Tcp,
        },
        Observed {
            from: pod_peer(&pods, "y/a"),
            to: Peer::Address(outside),
            port: 53,
            protocol: Protocol::Udp,
        },
        Observed {
            from: pod_peer(&pods, "x/a"),
            to: pod_peer(&pods, "y/a"),
            port: 81,
            protocol: Protocol::Tcp,
        },
    ];
    let only_y = BTreeSet::from(["y".to_owned()]);
    let policies = propose(
        &observed,
        Scope {
            pods: &pods,
            namespaces: Some(&only_y),
        },
    );
    assert_eq!(policies.len(), 6, "y's three pods, both directions");
    assert!(
        policies
            .iter()
            .all(|p| p.metadata.namespace.as_deref() == Some("y"))
    );
    let yaml = to_yaml(&policies);
    assert!(yaml.contains("cidr: 192.0.2.7/32"), "{yaml}");
    assert!(
        yaml.starts_with("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"),
        "{yaml}"
    );
    assert!(yaml.contains("kubernetes.io/metadata.name: x"), "{yaml}");
    let name = policies[0].metadata.name.clone().unwrap();
    assert!(name.starts_with("propose-ingress-pod-a-"), "{name}");
    let evaluator = evaluator(&policies);
    let y_a = pods.iter().find(|p| p.key() == "y/a").unwrap();
    let x_a = pods.iter().find(|p| p.key() == "x/a").unwrap();
    let verdict = |from: Party<'_>, to: Party<'_>, port, protocol| {
        evaluator
            .verdict(&Flow {
                from,
                to,
                port,
                protocol,
            })
            .allowed()
    };
    assert!(verdict(
        Party::External(outside),
        Party::Pod(y_a),
        80,
        Protocol::Tcp
    ));
    assert!(!verdict(
        Party::External(outside),
        Party::Pod(y_a),
        81,
        Protocol::Tcp
    ));
    assert!(verdict(
        Party::Pod(y_a),
        Party::External(outside),
        53,
        Protocol::Udp
    ));
    assert!(verdict(Party::Pod(x_a), Party::Pod(y_a), 81, Protocol::Tcp));
    // x is not selected: x/a's egress is not restricted.
    assert!(verdict(
        Party::Pod(x_a),
        Party::External(outside),
        443,
        Protocol::Tcp
    ));
}

#[test]
fn a_superset_of_labels_is_excluded() {
    let (mut pods, _) = upstream::model();
    let mut web = pods[0].clone();
    web.name = "web".to_owned();
    web.labels.insert("tier".to_owned(), "front".to_owned());
    pods.push(web);
    let policies = propose(
        &[],
        Scope {
            pods: &pods,
            namespaces: None,
        },
    );
    let yaml = to_yaml(&policies);
    assert!(yaml.contains("operator: DoesNotExist"), "{yaml}");
    assert_eq!(policies.len(), 20);
}
