//! The evaluator on the upstream e2e model (namespaces x, y, z labelled `ns`; pods a, b, c labelled
//! `pod`, serving 80 and 81 on TCP and UDP with ports named `serve-<port>-<proto>`), with the verdicts
//! the Kubernetes documentation and the upstream suite give for each policy shape.

use std::{collections::BTreeMap, net::Ipv4Addr};

use k8s_openapi::api::networking::v1::NetworkPolicy;

use super::*;

struct Model {
    pods: Vec<PolicyPod>,
    namespaces: BTreeMap<String, Labels>,
}

fn model() -> Model {
    let (pods, namespaces) = upstream::model();
    Model { pods, namespaces }
}

impl Model {
    fn pod(&self, key: &str) -> &PolicyPod {
        self.pods.iter().find(|p| p.key() == key).unwrap()
    }

    fn evaluator(&self, yaml: &str) -> Evaluator {
        let policies = yaml
            .split("\n---\n")
            .filter(|d| !d.trim().is_empty())
            .map(|doc| {
                let policy: NetworkPolicy = serde_yaml_ng::from_str(doc).unwrap();
                Policy::parse(&policy).unwrap()
            })
            .collect();
        Evaluator::new(policies, self.namespaces.clone())
    }

    /// The keys of the (from, to) pod pairs `evaluator` denies on `port`/`protocol`, loopback aside.
    fn denied(&self, evaluator: &Evaluator, port: u16, protocol: Protocol) -> Vec<String> {
        let mut out = Vec::new();
        for from in &self.pods {
            for to in &self.pods {
                let flow = Flow {
                    from: Party::Pod(from),
                    to: Party::Pod(to),
                    port,
                    protocol,
                };
                if !evaluator.verdict(&flow).allowed() {
                    out.push(format!("{}->{}", from.key(), to.key()));
                }
            }
        }
        out
    }
}

/// Every (from, to) pair whose destination is one of `to` and whose source is not the destination.
fn into(model: &Model, to: &[&str], except_from: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for from in &model.pods {
        for target in to {
            let from = from.key();
            if from != *target && !except_from.contains(&from.as_str()) {
                out.push(format!("{from}->{target}"));
            }
        }
    }
    out.sort();
    out
}

fn sorted(mut list: Vec<String>) -> Vec<String> {
    list.sort();
    list
}

#[test]
fn without_policies_everything_is_allowed() {
    let model = model();
    let evaluator = model.evaluator("");
    assert!(model.denied(&evaluator, 80, Protocol::Tcp).is_empty());
}

#[test]
fn default_deny_ingress_isolates_every_pod_of_its_namespace_but_not_loopback() {
    let model = model();
    let evaluator = model.evaluator(
        "metadata: {name: deny, namespace: x}\nspec: {podSelector: {}, policyTypes: [Ingress]}\n",
    );
    assert_eq!(
        sorted(model.denied(&evaluator, 80, Protocol::Tcp)),
        into(&model, &["x/a", "x/b", "x/c"], &[])
    );
    // The decision names the isolating policy.
    let flow = Flow {
        from: Party::Pod(model.pod("y/a")),
        to: Party::Pod(model.pod("x/a")),
        port: 80,
        protocol: Protocol::Tcp,
    };
    let verdict = evaluator.verdict(&flow);
    assert_eq!(verdict.ingress, Decision::Denied(vec!["x/deny".to_owned()]));
    assert_eq!(verdict.egress, Decision::NotIsolated);
}

#[test]
fn a_pod_selector_peer_means_pods_of_the_policys_namespace() {
    let model = model();
    let evaluator = model.evaluator(
        "metadata: {name: from-b, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress: [{from: [{podSelector: {matchLabels: {pod: b}}}]}]
",
    );
    assert_eq!(
        sorted(model.denied(&evaluator, 80, Protocol::Tcp)),
        into(&model, &["x/a"], &["x/b"])
    );
}

#[test]
fn pod_and_namespace_selectors_in_one_peer_are_anded_in_two_peers_ored() {
    let model = model();
    let and = model.evaluator(
        "metadata: {name: and, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress: [{from: [{namespaceSelector: {matchLabels: {ns: y}}, podSelector: {matchLabels: {pod: b}}}]}]
",
    );
    assert_eq!(
        sorted(model.denied(&and, 80, Protocol::Tcp)),
        into(&model, &["x/a"], &["y/b"])
    );
    let or = model.evaluator(
        "metadata: {name: or, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress: [{from: [{namespaceSelector: {matchLabels: {ns: y}}}, {podSelector: {matchLabels: {pod: b}}}]}]
",
    );
    assert_eq!(
        sorted(model.denied(&or, 80, Protocol::Tcp)),
        into(&model, &["x/a"], &["y/a", "y/b", "y/c", "x/b"])
    );
}

#[test]
fn match_expressions_and_the_default_namespace_label_select() {
    let model = model();
    let evaluator = model.evaluator(
        "metadata: {name: exprs, namespace: x}
spec:
  podSelector: {matchExpressions: [{key: pod, operator: In, values: [a, b]}]}
  ingress:
  - from: [{namespaceSelector: {matchExpressions: [{key: kubernetes.io/metadata.name, operator: NotIn, values: [x, y]}]}}]
",
    );
    assert_eq!(
        sorted(model.denied(&evaluator, 80, Protocol::Tcp)),
        into(&model, &["x/a", "x/b"], &["z/a", "z/b", "z/c"])
    );
}

#[test]
fn named_ports_resolve_on_the_destination_with_the_protocol() {
    let model = model();
    let evaluator = model.evaluator(
        "metadata: {name: named, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress: [{ports: [{port: serve-81-tcp}]}]
",
    );
    assert!(model.denied(&evaluator, 81, Protocol::Tcp).is_empty());
    assert_eq!(
        sorted(model.denied(&evaluator, 80, Protocol::Tcp)),
        into(&model, &["x/a"], &[])
    );
    // serve-81-tcp is no UDP port.
    assert_eq!(
        sorted(model.denied(&evaluator, 81, Protocol::Udp)),
        into(&model, &["x/a"], &[])
    );
}

#[test]
fn end_port_ranges_and_protocol_only_rules() {
    let model = model();
    let range = model.evaluator(
        "metadata: {name: range, namespace: x}
spec:
  podSelector: {}
  ingress: [{ports: [{port: 81, endPort: 90, protocol: UDP}]}]
",
    );
    assert!(model.denied(&range, 81, Protocol::Udp).is_empty());
    assert_eq!(model.denied(&range, 80, Protocol::Udp).len(), 24);
    assert_eq!(model.denied(&range, 81, Protocol::Tcp).len(), 24);
    let udp_only = model.evaluator(
        "metadata: {name: udp, namespace: x}
spec:
  podSelector: {}
  ingress: [{ports: [{protocol: UDP}]}]
",
    );
    assert!(model.denied(&udp_only, 80, Protocol::Udp).is_empty());
    assert_eq!(
        sorted(model.denied(&udp_only, 80, Protocol::Tcp)),
        into(&model, &["x/a", "x/b", "x/c"], &[])
    );
}

#[test]
fn a_policy_naming_only_sctp_still_isolates_tcp_and_udp() {
    let model = model();
    let evaluator = model.evaluator(
        "metadata: {name: sctp, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress: [{ports: [{port: 80, protocol: SCTP}]}]
",
    );
    for protocol in [Protocol::Tcp, Protocol::Udp] {
        assert_eq!(
            sorted(model.denied(&evaluator, 80, protocol)),
            into(&model, &["x/a"], &[])
        );
    }
}

#[test]
fn egress_is_isolated_only_when_the_policy_says_so() {
    let model = model();
    // Egress rules without policyTypes: Ingress and Egress.
    let both = model.evaluator(
        "metadata: {name: both, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  egress: [{to: [{podSelector: {matchLabels: {pod: b}}}]}]
",
    );
    let denied = model.denied(&both, 80, Protocol::Tcp);
    assert!(denied.contains(&"x/a->x/c".to_owned()), "egress isolated");
    assert!(denied.contains(&"x/b->x/a".to_owned()), "ingress isolated");
    assert!(
        !denied.contains(&"x/a->x/b".to_owned()),
        "egress allowed to b"
    );
    // `egress: []` without policyTypes is no egress section: ingress only.
    let empty = model.evaluator(
        "metadata: {name: empty, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  egress: []
",
    );
    let denied = model.denied(&empty, 80, Protocol::Tcp);
    assert!(
        !denied.contains(&"x/a->x/c".to_owned()),
        "egress not isolated"
    );
    assert!(denied.contains(&"x/b->x/a".to_owned()));
    // Client egress denies even if the server allows.
    let egress_deny = model.evaluator(
        "metadata: {name: deny-egress, namespace: x}
spec: {podSelector: {matchLabels: {pod: a}}, policyTypes: [Egress]}
",
    );
    let flow = Flow {
        from: Party::Pod(model.pod("x/a")),
        to: Party::Pod(model.pod("y/b")),
        port: 80,
        protocol: Protocol::Tcp,
    };
    let verdict = egress_deny.verdict(&flow);
    assert_eq!(verdict.ingress, Decision::NotIsolated);
    assert!(!verdict.allowed());
}

#[test]
fn stacked_policies_are_additive() {
    let model = model();
    let evaluator = model.evaluator(
        "metadata: {name: deny-all, namespace: x}
spec: {podSelector: {}, ingress: []}
---
metadata: {name: allow-all-to-a, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress: [{}]
",
    );
    assert_eq!(
        sorted(model.denied(&evaluator, 80, Protocol::Tcp)),
        into(&model, &["x/b", "x/c"], &[])
    );
    let flow = Flow {
        from: Party::Pod(model.pod("z/c")),
        to: Party::Pod(model.pod("x/a")),
        port: 80,
        protocol: Protocol::Tcp,
    };
    assert_eq!(
        evaluator.verdict(&flow).ingress,
        Decision::Allowed(vec![RuleRef {
            policy: "x/allow-all-to-a".to_owned(),
            rule: 0
        }])
    );
}

#[test]
fn ip_blocks_cover_pods_and_outside_addresses_with_exceptions() {
    let model = model();
    let evaluator = model.evaluator(
        "metadata: {name: block, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  policyTypes: [Egress]
  egress: [{to: [{ipBlock: {cidr: 10.244.2.0/24, except: [10.244.2.3/32]}}, {ipBlock: {cidr: 192.0.2.0/24}}]}]
",
    );
    let a = model.pod("x/a");
    let to = |party: Party<'_>| {
        evaluator
            .verdict(&Flow {
                from: Party::Pod(a),
                to: party,
                port: 80,
                protocol: Protocol::Tcp,
            })
            .allowed()
    };
    assert!(to(Party::Pod(model.pod("y/a"))), "10.244.2.2 in the block");
    assert!(!to(Party::Pod(model.pod("y/b"))), "10.244.2.3 excepted");
    assert!(!to(Party::Pod(model.pod("z/a"))), "10.244.3.2 outside");
    assert!(to(Party::External(Ipv4Addr::new(192, 0, 2, 9))));
    assert!(!to(Party::External(Ipv4Addr::new(198, 51, 100, 9))));
}

#[test]
fn outside_clients_match_only_rules_without_pod_peers() {
    let model = model();
    let evaluator = model.evaluator(
        "metadata: {name: pods-only, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress: [{from: [{namespaceSelector: {}}]}]
",
    );
    let outside = Flow {
        from: Party::External(Ipv4Addr::new(172, 30, 0, 2)),
        to: Party::Pod(model.pod("x/a")),
        port: 80,
        protocol: Protocol::Tcp,
    };
    assert!(!evaluator.verdict(&outside).allowed());
    let inside = Flow {
        from: Party::Pod(model.pod("z/c")),
        ..outside
    };
    assert!(evaluator.verdict(&inside).allowed());
}

#[test]
fn what_the_api_server_refuses_does_not_parse() {
    let parse = |spec: &str| {
        let policy: NetworkPolicy = serde_yaml_ng::from_str(&format!(
            "metadata: {{name: p, namespace: x}}\nspec:\n{spec}"
        ))
        .unwrap();
        Policy::parse(&policy).unwrap_err().to_string()
    };
    assert_eq!(
        parse("  podSelector: {}\n  ingress: [{ports: [{port: http, endPort: 90}]}]\n"),
        "spec.ingress[0].ports[0]: endPort needs a numeric port, not a name"
    );
    assert_eq!(
        parse("  podSelector: {}\n  egress: [{to: [{ipBlock: {cidr: 10.0.0.0/33}}]}]\n"),
        "spec.egress[0].to[0].ipBlock.cidr: \"10.0.0.0/33\" is not a CIDR"
    );
    assert_eq!(
        parse("  podSelector: {}\n  ingress: [{ports: [{protocol: ICMP}]}]\n"),
        "spec.ingress[0].ports[0].protocol: \"ICMP\" is not a protocol (TCP, UDP or SCTP)"
    );
    assert_eq!(
        parse("  podSelector: {}\n  policyTypes: [Sideways]\n"),
        "spec.policyTypes[0]: must be Ingress or Egress, got \"Sideways\""
    );
}

/// Namespaces, pods and a policy in one manifest, as `strait policy explain --manifests` reads them.
const OFFLINE: &str = "apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {team: web}}
---
apiVersion: v1
kind: Pod
metadata: {name: api, namespace: shop, labels: {app: api}}
spec:
  containers: [{name: c, image: i, ports: [{name: http, containerPort: 8080}]}]
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop, labels: {app: web}}
spec: {containers: [{name: c, image: i}]}
---
apiVersion: v1
kind: Pod
metadata: {name: batch, namespace: shop, labels: {app: batch}}
spec: {containers: [{name: c, image: i}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: api-from-web, namespace: shop}
spec:
  podSelector: {matchLabels: {app: api}}
  ingress: [{from: [{podSelector: {matchLabels: {app: web}}}], ports: [{port: http}]}]
";

fn offline() -> explain::PolicyCluster {
    use crate::{Kind, ParseOptions, manifest::parse_str};
    let options = ParseOptions {
        kinds: &[Kind::Namespace, Kind::Pod, Kind::NetworkPolicy],
        skip_other_kinds: false,
        strict: true,
        validate: true,
    };
    let loaded = parse_str(std::path::Path::new("shop.yaml"), OFFLINE, &options).unwrap();
    let objects = loaded.into_objects();
    explain::PolicyCluster::from_objects(&objects).unwrap()
}

#[test]
fn explain_tells_the_verdict_and_each_rule_in_words() {
    let cluster = offline();
    let web = cluster.party("shop/web").unwrap();
    let batch = cluster.party("shop/batch").unwrap();
    let api = cluster.party("shop/api").unwrap();

    let allowed = cluster.explain(&explain::flow(web, api, 8080, Protocol::Tcp));
    assert!(allowed.verdict.allowed());
    assert_eq!(
        allowed.text,
        "shop/web -> shop/api on 8080/TCP: ALLOWED
  egress of shop/web: allowed, no NetworkPolicy selects it for egress
  ingress of shop/api: allowed by shop/api-from-web rule 0
"
    );

    let denied = cluster.explain(&explain::flow(batch, api, 8080, Protocol::Tcp));
    assert!(!denied.verdict.allowed());
    assert_eq!(
        denied.text,
        "shop/batch -> shop/api on 8080/TCP: DENIED
  egress of shop/batch: allowed, no NetworkPolicy selects it for egress
  ingress of shop/api: denied, selected by shop/api-from-web and no rule allows it
    shop/api-from-web rule 0: from shop/batch: matches no peer; 8080/TCP: a listed port
"
    );

    // The named port resolves to 8080 only: 9090 is no listed port, whoever asks.
    let other_port = cluster.explain(&explain::flow(web, api, 9090, Protocol::Tcp));
    assert!(
        other_port
            .text
            .contains("from shop/web: matches a peer; 9090/TCP: no listed port")
    );

    // An address outside the cluster, and names that are no pod.
    let outside = cluster.party("192.0.2.1").unwrap();
    let from_outside = cluster.explain(&explain::flow(outside, api, 8080, Protocol::Tcp));
    assert!(
        from_outside
            .text
            .contains("egress of 192.0.2.1: outside the cluster, no policy applies")
    );
    assert!(!from_outside.verdict.allowed());
    assert_eq!(
        cluster.party("shop/nobody").unwrap_err().to_string(),
        "no pod shop/nobody (give NAMESPACE/POD, or an IPv4 address)"
    );
}

#[test]
fn destinations_parse_with_a_port_and_an_optional_protocol() {
    use explain::parse_destination;
    assert_eq!(
        parse_destination("x/a:80").unwrap(),
        ("x/a".to_owned(), 80, Protocol::Tcp)
    );
    assert_eq!(
        parse_destination("10.0.0.1:53/udp").unwrap(),
        ("10.0.0.1".to_owned(), 53, Protocol::Udp)
    );
    for bad in ["x/a", "x/a:0", "x/a:80/icmp", ":80", "x/a:http"] {
        assert!(
            parse_destination(bad)
                .unwrap_err()
                .to_string()
                .contains("NAMESPACE/POD:PORT"),
            "{bad}"
        );
    }
}
