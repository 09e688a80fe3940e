//! Policies and labels changing under running pods: a pod relabelled in place becomes a peer and
//! another becomes isolated (and both go back); a namespace relabelled in place; a policy re-applied
//! with other rules; a policy deleted, which restores access. Each state is checked whole against the
//! specification (see the parent module).

use strait_lab::{cluster::Lab, manifests::netpol_model_manifest};

use super::{Expect, Findings, netpol};

/// Runs every change scenario, in order.
pub fn run(lab: &mut Lab, findings: &mut Findings) {
    pod_labels(lab, findings);
    namespace_labels(lab, findings);
    policy_update(lab, findings);
    deletion(lab, findings);
}

/// The model's Pod document of `namespace/pod`, with `extra` (`"    key: value\n"` lines) added to its
/// labels: applied, it relabels the running pod in place.
fn model_pod(namespace: &str, pod: &str, extra: &str) -> String {
    let manifest = netpol_model_manifest();
    let head = format!("kind: Pod\nmetadata:\n  name: {pod}\n  namespace: {namespace}\n");
    let doc = manifest
        .split("---\n")
        .find(|d| d.contains(&head))
        .unwrap_or_else(|| panic!("{namespace}/{pod} in the model"));
    let label = format!("    pod: {pod}\n");
    format!("{}---\n", doc.replace(&label, &format!("{label}{extra}")))
}

/// Namespace `name` of the model with `extra` labels (`", key: value"`).
fn model_namespace(name: &str, extra: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {name}, labels: {{ns: {name}{extra}}}}}\n---\n"
    )
}

/// x takes ingress only from pods labelled `role: client`, in any namespace; z's pods labelled
/// `isolated: "yes"` take none. Then y/c gets the role and z/b the label, then both lose them.
fn pod_labels(lab: &mut Lab, findings: &mut Findings) {
    let step = "pod labels";
    let policies = [
        netpol(
            "x",
            "from-clients",
            "
  podSelector: {}
  ingress:
  - from:
    - namespaceSelector: {}
      podSelector: {matchLabels: {role: client}}",
        ),
        netpol(
            "z",
            "isolated",
            "
  podSelector: {matchLabels: {isolated: \"yes\"}}
  policyTypes: [Ingress]",
        ),
    ]
    .concat();
    if findings.apply(lab, step, &policies) {
        findings.check(
            lab,
            "pod labels: no client, nobody isolated in z",
            Expect::SomeBlocked,
        );
        let relabel = [
            model_pod("y", "c", "    role: client\n"),
            model_pod("z", "b", "    isolated: \"yes\"\n"),
        ]
        .concat();
        if findings.apply(lab, step, &relabel) {
            assert_eq!(lab.state.pod("y/c").unwrap().labels["role"], "client");
            findings.check(
                lab,
                "pod labels: y/c a client, z/b isolated",
                Expect::SomeBlocked,
            );
        }
        let back = [model_pod("y", "c", ""), model_pod("z", "b", "")].concat();
        if findings.apply(lab, step, &back) {
            findings.check(lab, "pod labels: back as they were", Expect::SomeBlocked);
        }
    }
    findings.delete(lab, step, &policies);
}

/// x/a takes ingress from namespaces labelled `team: blue`: none, then z, then none again.
fn namespace_labels(lab: &mut Lab, findings: &mut Findings) {
    let step = "namespace labels";
    let policy = netpol(
        "x",
        "a-from-blue",
        "
  podSelector: {matchLabels: {pod: a}}
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {team: blue}}",
    );
    if findings.apply(lab, step, &policy) {
        findings.check(
            lab,
            "namespace labels: no blue namespace",
            Expect::SomeBlocked,
        );
        if findings.apply(lab, step, &model_namespace("z", ", team: blue")) {
            findings.check(lab, "namespace labels: z blue", Expect::SomeBlocked);
        }
        if findings.apply(lab, step, &model_namespace("z", "")) {
            findings.check(lab, "namespace labels: z back", Expect::SomeBlocked);
        }
    }
    findings.delete(lab, step, &policy);
}

/// One policy re-applied with other peers and ports replaces its rules.
fn policy_update(lab: &mut Lab, findings: &mut Findings) {
    let step = "policy update";
    let first = netpol(
        "y",
        "a-ingress",
        "
  podSelector: {matchLabels: {pod: a}}
  ingress:
  - from:
    - podSelector: {matchLabels: {pod: b}}",
    );
    let second = netpol(
        "y",
        "a-ingress",
        "
  podSelector: {matchLabels: {pod: a}}
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {ns: z}}
      podSelector: {matchLabels: {pod: c}}
    ports: [{port: 81, protocol: UDP}]",
    );
    if findings.apply(lab, step, &first) {
        findings.check(lab, "policy update: from y/b", Expect::SomeBlocked);
        if findings.apply(lab, step, &second) {
            assert_eq!(lab.state.policies.len(), 1, "re-applied, replaced");
            findings.check(
                lab,
                "policy update: from z/c on 81/UDP",
                Expect::SomeBlocked,
            );
        }
    }
    findings.delete(lab, step, &second);
}

/// Deny-all in both directions for x, then deleted: every cell allowed again.
fn deletion(lab: &mut Lab, findings: &mut Findings) {
    let step = "deletion";
    let policy = netpol(
        "x",
        "deny-all",
        "
  podSelector: {}
  policyTypes: [Ingress, Egress]",
    );
    let published = lab.cluster_dir().join("networkpolicy_x_deny-all.json");
    if findings.apply(lab, step, &policy) {
        assert!(published.exists(), "{} published", published.display());
        findings.check(lab, "deletion: x denies all", Expect::SomeBlocked);
    }
    findings.delete(lab, step, &policy);
    assert!(lab.state.policies.is_empty());
    assert!(!published.exists(), "{} removed", published.display());
    findings.check(lab, "deletion: deleted", Expect::AllAllowed);
}
