//! Shadowed rules: reported when the selectors and ports prove it, for any pods; not reported when
//! only today's pods would make it true (a named port against a number, another protocol, a peer
//! broader in one way and narrower in another).

use super::{cluster, messages};
use crate::netpol::audit::{ClusterRanges, FindingKind, audit};

fn policy(name: &str, selector: &str, direction: &str, rules: &str) -> String {
    format!(
        "apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: {name}, namespace: shop}}
spec: {{podSelector: {selector}, policyTypes: [{direction}], {}: {rules}}}
---
",
        direction.to_lowercase()
    )
}

const PODS: &str = "apiVersion: v1
kind: Pod
metadata: {name: api, namespace: shop, labels: {app: api, tier: back}}
spec: {containers: [{name: c, image: i, ports: [{name: http, containerPort: 8080}]}]}
---
";

/// The shadowing messages of a cluster of `PODS` and `policies`.
fn shadowed(policies: &[String]) -> Vec<String> {
    let yaml = format!("{PODS}{}", policies.concat());
    let report = audit(&cluster(&yaml), &ClusterRanges::default());
    messages(&report, FindingKind::RuleShadowed)
        .into_iter()
        .map(|m| m.split(':').next().unwrap().to_owned())
        .collect()
}

#[test]
fn a_rule_inside_a_broader_rule_for_the_same_pods_is_shadowed() {
    let narrow = policy(
        "narrow",
        "{matchLabels: {app: api, tier: back}}",
        "Ingress",
        "[{from: [{podSelector: {matchLabels: {app: web}}}], ports: [{port: 8080}]}]",
    );
    let broad = policy(
        "broad",
        "{matchLabels: {app: api}}",
        "Ingress",
        "[{from: [{podSelector: {}}], ports: [{port: 8000, endPort: 9000}]}]",
    );
    assert_eq!(
        shadowed(&[narrow.clone(), broad.clone()]),
        ["ingress rule 0 is shadowed by shop/broad rule 0"]
    );
    // The broad policy selects more pods, so its rule is not shadowed the other way round.
    assert_eq!(
        shadowed(&[broad, narrow]),
        ["ingress rule 0 is shadowed by shop/broad rule 0"]
    );
    let report = audit(
        &cluster(&format!(
            "{PODS}{}",
            policy(
                "a",
                "{}",
                "Egress",
                "[{ports: [{port: 53, protocol: UDP}]}]"
            )
        )),
        &ClusterRanges::default(),
    );
    assert!(messages(&report, FindingKind::RuleShadowed).is_empty());
}

#[test]
fn of_two_identical_rules_the_later_is_reported() {
    let rules =
        "[{from: [{namespaceSelector: {matchLabels: {team: ops}}}], ports: [{port: http}]}]";
    let first = policy("first", "{matchLabels: {app: api}}", "Ingress", rules);
    let second = policy("second", "{matchLabels: {app: api}}", "Ingress", rules);
    assert_eq!(
        shadowed(&[first.clone(), second.clone()]),
        ["ingress rule 0 is shadowed by shop/first rule 0"]
    );
    let twice = policy(
        "twice",
        "{}",
        "Egress",
        "[{ports: [{port: 53, protocol: UDP}]}, {ports: [{port: 53, protocol: UDP}]}]",
    );
    assert_eq!(
        shadowed(&[twice]),
        ["egress rule 1 is shadowed by shop/twice rule 0"]
    );
}

#[test]
fn namespaces_blocks_and_port_unions_are_compared_exactly() {
    // Whether the narrow rule is reported as shadowed by the broad one.
    let shadows = |narrow: &str, broad: &str| {
        shadowed(&[
            policy("n", "{}", "Egress", &format!("[{narrow}]")),
            policy("b", "{}", "Egress", &format!("[{broad}]")),
        ]) == ["egress rule 0 is shadowed by shop/b rule 0"]
    };
    // `namespaceSelector: {}` covers every namespace, the policy's own among them.
    assert!(shadows(
        "{to: [{podSelector: {matchLabels: {app: db}}}]}",
        "{to: [{namespaceSelector: {}}]}"
    ));
    // The immutable name label pins the policy's own namespace: these two say the same, so the
    // later is reported.
    let own = "{to: [{podSelector: {}}]}";
    let by_name = "{to: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: shop}}}]}";
    assert_eq!(
        shadowed(&[
            policy("n", "{}", "Egress", &format!("[{by_name}]")),
            policy("b", "{}", "Egress", &format!("[{own}]")),
        ]),
        ["egress rule 0 is shadowed by shop/n rule 0"]
    );
    assert!(!shadows(
        "{to: [{namespaceSelector: {matchLabels: {team: ops}}}]}",
        "{to: [{podSelector: {}}]}"
    ));
    // `In` with fewer values, `Exists` from `In`.
    assert!(shadows(
        "{to: [{podSelector: {matchExpressions: [{key: app, operator: In, values: [db]}]}}]}",
        "{to: [{podSelector: {matchExpressions: [{key: app, operator: In, values: [db, cache]}]}}]}"
    ));
    assert!(shadows(
        "{to: [{podSelector: {matchLabels: {app: db}}}]}",
        "{to: [{podSelector: {matchExpressions: [{key: app, operator: Exists}]}}]}"
    ));
    // ipBlocks: inside, and the broad one's except outside the narrow one.
    assert!(shadows(
        "{to: [{ipBlock: {cidr: 10.1.0.0/16}}]}",
        "{to: [{ipBlock: {cidr: 10.0.0.0/8, except: [10.2.0.0/16]}}]}"
    ));
    assert!(!shadows(
        "{to: [{ipBlock: {cidr: 10.1.0.0/16}}]}",
        "{to: [{ipBlock: {cidr: 10.0.0.0/8, except: [10.1.5.0/24]}}]}"
    ));
    assert!(shadows(
        "{to: [{ipBlock: {cidr: 10.1.0.0/16, except: [10.1.0.0/20]}}]}",
        "{to: [{ipBlock: {cidr: 10.0.0.0/8, except: [10.1.5.0/24]}}]}"
    ));
    // Pods and addresses are never compared; no peers are only inside no peers.
    assert!(!shadows(
        "{to: [{podSelector: {}}]}",
        "{to: [{ipBlock: {cidr: 0.0.0.0/0}}]}"
    ));
    assert!(!shadows("{}", "{to: [{ipBlock: {cidr: 0.0.0.0/0}}]}"));
    // Ports: the union of the broad rule's ranges; not across protocols; a name only by itself.
    assert!(shadows(
        "{ports: [{port: 85, endPort: 95}]}",
        "{ports: [{port: 80, endPort: 89}, {port: 90, endPort: 100}]}"
    ));
    assert!(!shadows(
        "{ports: [{port: 85, endPort: 95}]}",
        "{ports: [{port: 80, endPort: 89}, {port: 91, endPort: 100}]}"
    ));
    assert!(!shadows(
        "{ports: [{port: 53, protocol: UDP}]}",
        "{ports: [{port: 53}]}"
    ));
    assert!(!shadows(
        "{ports: [{port: http}]}",
        "{ports: [{port: 8080}]}"
    ));
    assert!(shadows(
        "{ports: [{port: http}]}",
        "{ports: [{protocol: TCP}]}"
    ));
    assert!(!shadows("{}", "{ports: [{protocol: TCP}]}"));
}
