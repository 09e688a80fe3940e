//! The upstream x/y/z model (pods a, b, c in namespaces x, y, z, serving `serve-80-tcp` and friends)
//! with a few policies: x isolated with two rules, one inside the other; y's egress on a port name no
//! pod has; z left alone. Also the findings as JSON.

use k8s_openapi::api::networking::v1::NetworkPolicy;

use super::found;
use crate::netpol::{
    Policy,
    audit::{AuditCluster, ClusterRanges, FindingKind, Severity, audit},
    upstream,
};

const POLICIES: &str = "metadata: {name: deny-all, namespace: x}
spec: {podSelector: {}}
---
metadata: {name: allow-from-y, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress: [{from: [{namespaceSelector: {matchLabels: {ns: y}}}], ports: [{port: serve-80-tcp}]}]
---
metadata: {name: allow-from-y-b, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress:
  - from: [{namespaceSelector: {matchLabels: {ns: y}}, podSelector: {matchLabels: {pod: b}}}]
    ports: [{port: serve-80-tcp}]
---
metadata: {name: egress-to-x, namespace: y}
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress:
  - to: [{namespaceSelector: {matchLabels: {ns: x}}}]
    ports: [{port: serve-82-tcp}, {port: serve-81-udp, protocol: UDP}]
";

fn model() -> AuditCluster {
    let (pods, namespaces) = upstream::model();
    let policies = POLICIES
        .split("\n---\n")
        .map(|doc| Policy::parse(&serde_yaml_ng::from_str::<NetworkPolicy>(doc).unwrap()).unwrap())
        .collect();
    AuditCluster {
        pods,
        policies,
        namespaces,
        nodes: Vec::new(),
    }
}

#[test]
fn the_upstream_model_with_a_few_policies() {
    let report = audit(&model(), &ClusterRanges::default());
    assert_eq!(
        found(&report),
        [
            ("pod-not-isolated", "z/a"),
            ("pod-not-isolated", "z/b"),
            ("pod-not-isolated", "z/c"),
            ("namespace-without-ingress-policy", "y"),
            ("namespace-without-ingress-policy", "z"),
            ("named-port-unresolved", "y/egress-to-x"),
            ("rule-shadowed", "x/allow-from-y-b"),
        ]
    );
    let shadowed = &report.findings[6];
    assert_eq!(shadowed.severity, Severity::Info);
    assert_eq!(
        shadowed.message,
        "ingress rule 0 is shadowed by x/allow-from-y rule 0: that ingress rule applies to every pod \
         this policy selects and allows every peer, port and protocol this one allows"
    );
    assert!(
        report.findings[5]
            .message
            .starts_with("egress rule 0 port \"serve-82-tcp\"/TCP: none of the pods the rule reaches (x/a, x/b, x/c)"),
        "{}",
        report.findings[5].message
    );
    assert_eq!(report.count(Severity::Warning), 6);
    assert_eq!(report.count(Severity::Info), 1);
}

#[test]
fn findings_as_json_name_kinds_in_kebab_case() {
    let report = audit(&model(), &ClusterRanges::default());
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["findings"][0]["kind"], "pod-not-isolated");
    assert_eq!(json["findings"][0]["severity"], "warning");
    assert_eq!(json["findings"][0]["subject"], "z/a");
    assert_eq!(json["findings"][6]["kind"], "rule-shadowed");
    assert_eq!(json["findings"][6]["severity"], "info");
    for kind in FindingKind::ALL {
        assert_eq!(serde_json::to_value(kind).unwrap(), kind.id());
    }
}
