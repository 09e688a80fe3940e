//! Audit mode end to end: on the upstream model (two nodes), namespace y is put in audit mode with the
//! Namespace annotation `strait.io/policy-audit: "true"` and isolated by policies. Every probe must then
//! pass (audit drops nothing), and the verdicts the agents report as `audit` must be exactly the cells
//! the specification denies (the would-be drops), each once, and nothing may be reported `denied`.
//! Taking the annotation away enforces the same policies.

use std::{collections::BTreeSet, fs};

use strait_lab::{
    cluster::Lab,
    flows::FlowQuery,
    manifests::{Protocol, netpol_model_manifest},
    reachability::{ReachabilityOptions, Via},
};
use strait_tests::LabGuard;

/// Namespace y (with the model's label), in audit mode or not.
fn namespace_y(audit: bool) -> String {
    let annotations = if audit {
        "\n  annotations: {strait.io/policy-audit: \"true\"}"
    } else {
        "\n  annotations: {}"
    };
    format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: y\n  labels: {{ns: y}}{annotations}\n"
    )
}

/// y's pods take ingress only from x on port 80 (TCP); y/a sends nothing out but to z.
const POLICIES: &str = "apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: from-x-80, namespace: y}
spec:
  podSelector: {}
  ingress:
  - from: [{namespaceSelector: {matchLabels: {ns: x}}}]
    ports: [{port: 80, protocol: TCP}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: a-to-z, namespace: y}
spec:
  podSelector: {matchLabels: {pod: a}}
  policyTypes: [Egress]
  egress:
  - to: [{namespaceSelector: {matchLabels: {ns: z}}}]
";

type Cell = (String, String, u16, String);

fn protocol_name(protocol: Protocol) -> String {
    format!("{protocol:?}").to_uppercase()
}

#[test]
fn audit_mode_lets_everything_through_and_reports_exactly_the_would_be_drops() {
    strait_tests::require_root();
    strait_tests::bin_dir();
    let guard = LabGuard::new("aud");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("model.yaml");
    fs::write(&file, netpol_model_manifest()).unwrap();
    let mut lab = Lab::up(&guard.name, 2, Some(&file)).expect("lab up with the model");
    let apply = |lab: &mut Lab, step: &str, manifest: &str| {
        lab.apply_str(std::path::Path::new(step), manifest)
            .unwrap_or_else(|e| panic!("{step}: {e}"));
    };
    apply(&mut lab, "audit", &namespace_y(true));
    apply(&mut lab, "policies", POLICIES);

    let options = ReachabilityOptions {
        via: Via::Pod,
        ..ReachabilityOptions::default()
    };
    let probed = lab.reachability(&options).expect("reachability");
    assert_eq!(
        probed.counts(),
        (324, 324),
        "audit mode drops nothing:\n{}",
        probed.render()
    );
    let expected = lab.expected_reachability(&probed).unwrap();
    let would_drop: BTreeSet<Cell> = expected
        .probes()
        .into_iter()
        .filter(|p| !p.allowed)
        .map(|p| (p.from, p.to, p.port, protocol_name(p.protocol)))
        .collect();
    assert!(
        would_drop.len() > 50,
        "the policies deny something: {}",
        would_drop.len()
    );

    // The agents read verdicts in batches (a pause of `GATHER` between them): wait until every would-be
    // drop is reported, or the deadline, then compare.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let (flows, audited) = loop {
        let flows = lab.flows(&FlowQuery::default()).expect("flows");
        let audited: Vec<Cell> = flows
            .iter()
            .filter(|f| f.verdict == "audit")
            .map(|f| {
                (
                    f.from.pod.clone().unwrap_or_default(),
                    f.to.pod.clone().unwrap_or_default(),
                    f.to.port.unwrap_or_default(),
                    f.protocol.clone(),
                )
            })
            .collect();
        let all_in = would_drop.iter().all(|cell| audited.contains(cell));
        if all_in || std::time::Instant::now() > deadline {
            break (flows, audited);
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let denied: Vec<_> = flows.iter().filter(|f| f.verdict == "denied").collect();
    assert!(denied.is_empty(), "audit mode denied: {denied:#?}");
    let audited_set: BTreeSet<Cell> = audited.iter().cloned().collect();
    let missing: Vec<_> = would_drop.difference(&audited_set).collect();
    let extra: Vec<_> = audited_set.difference(&would_drop).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "audit verdicts differ from the would-be drops: missing {missing:?}, extra {extra:?}"
    );
    // A cell denied in both directions (y/a's egress and a y pod's ingress) is audited twice, once
    // per judgement; every other would-be drop once.
    assert!(
        audited.len() >= would_drop.len() && audited.len() <= 2 * would_drop.len(),
        "{} audit verdicts for {} would-be drops",
        audited.len(),
        would_drop.len()
    );

    // Without the annotation the same policies are enforced.
    apply(&mut lab, "enforce", &namespace_y(false));
    let probed = lab.reachability(&options).expect("reachability");
    let wrong = probed.compare(&expected);
    assert!(
        wrong.is_empty(),
        "enforced:\n{}",
        probed.render_comparison(&expected)
    );
}
