//! The audit on hand-made clusters whose findings are known: one scenario per finding kind, a clean
//! cluster with none, and the upstream x/y/z model with a few policies. Shadowing, the subtlest, has
//! its own file.

use super::*;
use crate::{Kind, ParseOptions, manifest::parse_str};

mod model;
mod ranges;
mod shadowing;

/// The cluster the manifests in `yaml` describe.
pub(super) fn cluster(yaml: &str) -> AuditCluster {
    let options = ParseOptions {
        kinds: &Kind::ALL,
        skip_other_kinds: false,
        strict: true,
        validate: false,
    };
    let loaded = parse_str(std::path::Path::new("test.yaml"), yaml, &options).unwrap();
    AuditCluster::from_objects(&loaded.into_objects()).unwrap()
}

/// (kind, subject) of each finding, in report order.
pub(super) fn found(report: &Report) -> Vec<(&'static str, &str)> {
    report
        .findings
        .iter()
        .map(|f| (f.kind.id(), f.subject.as_str()))
        .collect()
}

/// The messages of the findings of `kind`.
pub(super) fn messages(report: &Report, kind: FindingKind) -> Vec<&str> {
    report
        .findings
        .iter()
        .filter(|f| f.kind == kind)
        .map(|f| f.message.as_str())
        .collect()
}

/// `shop`: pods api (port http 8080/TCP) and web, isolated both ways; api takes web on http; web
/// reaches api on http and the internet but not the cluster's 10/8 on 443.
const CLEAN: &str = "apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: Node
metadata: {name: node-1}
status: {addresses: [{type: InternalIP, address: 10.0.0.5}]}
---
apiVersion: v1
kind: Pod
metadata: {name: api, namespace: shop, labels: {app: api}}
spec: {containers: [{name: c, image: i, ports: [{name: http, containerPort: 8080}]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop, labels: {app: web}}
spec: {containers: [{name: c, image: i}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny, namespace: shop}
spec: {podSelector: {}, policyTypes: [Ingress, Egress]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: api-from-web, namespace: shop}
spec:
  podSelector: {matchLabels: {app: api}}
  ingress: [{from: [{podSelector: {matchLabels: {app: web}}}], ports: [{port: http}]}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-out, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Egress]
  egress:
  - to: [{podSelector: {matchLabels: {app: api}}}]
    ports: [{port: http}]
  - to: [{ipBlock: {cidr: 0.0.0.0/0, except: [10.0.0.0/8]}}]
    ports: [{port: 443}]
";

#[test]
fn a_clean_cluster_has_no_findings() {
    let report = audit(&cluster(CLEAN), &ClusterRanges::default());
    assert_eq!(report.findings, []);
    assert_eq!(report.count(Severity::Warning), 0);
}

#[test]
fn pods_isolated_in_neither_direction() {
    let report = audit(
        &cluster(
            "apiVersion: v1
kind: Pod
metadata: {name: a, labels: {app: a}}
spec: {containers: [{name: c, image: i}]}
---
apiVersion: v1
kind: Pod
metadata: {name: b, labels: {app: b}}
spec: {containers: [{name: c, image: i}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: c, image: i}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: b-ingress}
spec: {podSelector: {matchLabels: {app: b}}, ingress: [{}]}
",
        ),
        &ClusterRanges::default(),
    );
    assert_eq!(
        found(&report),
        [
            ("pod-not-isolated", "default/a"),
            ("pod-not-isolated", "default/web-*"),
        ]
    );
    assert_eq!(report.count(Severity::Warning), 2);
}

#[test]
fn namespaces_without_any_ingress_policy() {
    let report = audit(
        &cluster(
            "apiVersion: v1
kind: Namespace
metadata: {name: empty}
---
apiVersion: v1
kind: Pod
metadata: {name: a, namespace: open}
spec: {containers: [{name: c, image: i}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: egress-only, namespace: open}
spec: {podSelector: {}, policyTypes: [Egress]}
",
        ),
        &ClusterRanges::default(),
    );
    assert_eq!(
        found(&report),
        [("namespace-without-ingress-policy", "open")]
    );
    assert_eq!(
        messages(&report, FindingKind::NamespaceWithoutIngressPolicy),
        [
            "no NetworkPolicy of namespace open applies to ingress: its pod accepts connections from anywhere"
        ]
    );
}

#[test]
fn namespaces_a_policy_opens_to_everything() {
    let policy = |ns: &str, selector: &str, ingress: &str| {
        format!(
            "apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: p, namespace: {ns}}}
spec: {{podSelector: {selector}, ingress: {ingress}}}
---
"
        )
    };
    let yaml = [
        policy("any", "{}", "[{}]"),
        policy("world", "{}", "[{from: [{ipBlock: {cidr: 0.0.0.0/0}}]}]"),
        // Not everything: some pods, pods only, one port.
        policy("some", "{matchLabels: {app: web}}", "[{}]"),
        policy("pods", "{}", "[{from: [{namespaceSelector: {}}]}]"),
        policy("port", "{}", "[{ports: [{port: 80}]}]"),
    ]
    .concat();
    let report = audit(&cluster(&yaml), &ClusterRanges::default());
    let open: Vec<_> = found(&report)
        .into_iter()
        .filter(|(kind, _)| *kind == "namespace-allows-all-ingress")
        .collect();
    assert_eq!(
        open,
        [
            ("namespace-allows-all-ingress", "any"),
            ("namespace-allows-all-ingress", "world"),
        ]
    );
    assert!(
        messages(&report, FindingKind::NamespaceAllowsAllIngress)[0]
            .starts_with("any/p rule 0 selects every pod of namespace any")
    );
}

#[test]
fn policies_that_select_no_pod() {
    let report = audit(
        &cluster(
            "apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop, labels: {app: web}}
spec: {containers: [{name: c, image: i}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: typo, namespace: shop}
spec: {podSelector: {matchLabels: {app: wbe}}, policyTypes: [Egress]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: all, namespace: shop}
spec: {podSelector: {}, policyTypes: [Egress]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web, namespace: elsewhere}
spec: {podSelector: {matchLabels: {app: web}}}
",
        ),
        &ClusterRanges::default(),
    );
    let none: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.kind == FindingKind::PolicySelectsNoPod)
        .map(|f| (f.subject.as_str(), f.message.as_str()))
        .collect();
    assert_eq!(
        none,
        [
            (
                "elsewhere/web",
                "it selects no pod: namespace elsewhere has no pods"
            ),
            (
                "shop/typo",
                "it selects no pod: podSelector app=wbe matches none of the 1 pod of namespace shop"
            ),
        ]
    );
}

#[test]
fn named_ports_that_resolve_to_nothing() {
    let report = audit(
        &cluster(
            "apiVersion: v1
kind: Pod
metadata: {name: api, labels: {app: api}}
spec: {containers: [{name: c, image: i, ports: [{name: http, containerPort: 8080}]}]}
status: {podIP: 10.244.1.5}
---
apiVersion: v1
kind: Pod
metadata: {name: web, labels: {app: web}}
spec: {containers: [{name: c, image: i}]}
status: {podIP: 10.244.1.6}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: api-in}
spec:
  podSelector: {matchLabels: {app: api}}
  ingress: [{ports: [{port: http}, {port: http, protocol: UDP}, {port: metrics}]}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-out}
spec:
  podSelector: {matchLabels: {app: web}}
  egress:
  - to: [{podSelector: {matchLabels: {app: api}}}]
    ports: [{port: http}, {port: grpc}]
  - to: [{ipBlock: {cidr: 203.0.113.0/24}}]
    ports: [{port: https}]
",
        ),
        &ClusterRanges::default(),
    );
    assert_eq!(
        messages(&report, FindingKind::NamedPortUnresolved),
        [
            "ingress rule 0 port \"http\"/UDP: none of the pods it selects (default/api) declares a \
             UDP port named \"http\", so that entry allows nothing; default/api has it for TCP",
            "ingress rule 0 port \"metrics\"/TCP: none of the pods it selects (default/api) declares \
             a TCP port named \"metrics\", so that entry allows nothing",
            "egress rule 0 port \"grpc\"/TCP: none of the pods the rule reaches (default/api) \
             declares a TCP port named \"grpc\", so that entry allows nothing",
            "egress rule 1 port \"https\"/TCP: the rule reaches no pod, and addresses outside the \
             cluster have no named ports, so that entry allows nothing",
        ]
    );
}
