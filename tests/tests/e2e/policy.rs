//! NetworkPolicy enforcement against the specification, on the upstream x/y/z model (namespaces x, y, z
//! labelled `ns`; pods a, b, c labelled `pod`, serving 80 and 81 over TCP and UDP on ports named
//! `serve-<port>-<proto>`; one Service per pod) in a three-node lab where every namespace has a pod on
//! every node. Scenarios run one after another on one lab: each applies its policies (and label
//! changes), probes the whole table (9 x 9 pods, 80 and 81, TCP and UDP) by pod IP and by each pod's own
//! Service, and compares both with the table the specification's evaluator gives for the lab's objects
//! as they are then (`Lab::expected_reachability`); then it deletes its policies. Every scenario runs
//! even when an earlier one failed, and the test fails at the end with each difference: the expected
//! and observed tables, the differing cells, and the first few explained rule by rule.
//!
//! [`rules`] holds the policies' shapes (selectors, ports, blocks, directions); [`changes`] what
//! happens when labels and policies change.

mod changes;
mod rules;

use std::{
    fmt::Write as _,
    fs,
    path::Path,
    time::{Duration, Instant},
};

use strait_lab::{
    cluster::Lab,
    manifests::netpol_model_manifest,
    reachability::{Reachability, ReachabilityOptions, Via},
};
use strait_tests::LabGuard;

/// How many differing cells of a table are explained rule by rule in a report.
const EXPLAINED: usize = 3;

/// A three-node lab with the model.
fn model_lab(guard: &LabGuard) -> Lab {
    strait_tests::require_root();
    strait_tests::bin_dir();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("model.yaml");
    fs::write(&file, netpol_model_manifest()).unwrap();
    Lab::up(&guard.name, 3, Some(&file)).expect("lab up with the model")
}

/// A NetworkPolicy document in `namespace`; `spec` is its spec as YAML, each line indented two spaces.
pub fn netpol(namespace: &str, name: &str, spec: &str) -> String {
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: {name}\n  \
         namespace: {namespace}\nspec:\n{}\n---\n",
        spec.trim_matches('\n')
    )
}

/// What the specification's table must look like, so a scenario cannot pass by testing nothing (its
/// policies missing from the lab, say).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Every cell allowed.
    AllAllowed,
    /// At least one cell blocked.
    SomeBlocked,
}

/// One scenario of fixed policies.
pub struct Scenario {
    pub name: &'static str,
    /// The NetworkPolicies, one document each.
    pub policies: Vec<String>,
    pub expect: Expect,
}

/// What the scenarios of one test found, reported when the test ends.
pub struct Findings {
    failures: Vec<String>,
    checks: usize,
    started: Instant,
}

impl Findings {
    pub fn new() -> Self {
        Self {
            failures: Vec::new(),
            checks: 0,
            started: Instant::now(),
        }
    }

    /// Applies `manifest`; false (and a failure recorded) when the lab refused it or the agents did
    /// not sync it.
    pub fn apply(&mut self, lab: &mut Lab, step: &str, manifest: &str) -> bool {
        match lab.apply_str(Path::new(step), manifest) {
            Ok(_) => true,
            Err(error) => {
                self.failures.push(format!("{step}: apply: {error}"));
                false
            }
        }
    }

    /// Deletes the objects of `manifest` (those that exist).
    pub fn delete(&mut self, lab: &mut Lab, step: &str, manifest: &str) {
        if let Err(error) = lab.delete_str(Path::new(step), manifest) {
            self.failures.push(format!("{step}: delete: {error}"));
        }
    }

    /// Applies the scenario's policies, checks the table, deletes them.
    pub fn scenario(&mut self, lab: &mut Lab, scenario: &Scenario) {
        let manifest = scenario.policies.concat();
        if manifest.is_empty() {
            self.check(lab, scenario.name, scenario.expect);
            return;
        }
        if self.apply(lab, scenario.name, &manifest) {
            self.check(lab, scenario.name, scenario.expect);
        }
        self.delete(lab, scenario.name, &manifest);
    }

    /// Probes the whole model by pod IP and by Service and compares each table with the specification's
    /// for the lab as it is; records each difference.
    pub fn check(&mut self, lab: &Lab, step: &str, expect: Expect) {
        self.checks += 1;
        for via in [Via::Pod, Via::Service] {
            let options = ReachabilityOptions {
                via,
                ..ReachabilityOptions::default()
            };
            let probed = match lab.reachability(&options) {
                Ok(probed) => probed,
                Err(error) => {
                    self.failures
                        .push(format!("{step}, via {via:?}: probing: {error}"));
                    continue;
                }
            };
            let expected = lab
                .expected_reachability(&probed)
                .expect("the specification's table");
            let (allowed, cells) = expected.counts();
            assert_eq!(cells, 324, "{step}: the whole model is probed");
            let sane = match expect {
                Expect::AllAllowed => allowed == cells,
                Expect::SomeBlocked => allowed < cells,
            };
            if !sane {
                self.failures.push(format!(
                    "{step}: the specification allows {allowed} of {cells} cells, the scenario \
                     expects {expect:?} (policies in force: {:?})",
                    lab.state.policies.keys().collect::<Vec<_>>()
                ));
            }
            let wrong = probed.compare(&expected).len();
            println!(
                "{step}, via {via:?}: {} of {cells} allowed (specification: {allowed}), {wrong} \
                 differ, probed in {:.1} s",
                probed.counts().0,
                probed.elapsed.as_secs_f64()
            );
            if wrong > 0 {
                self.failures
                    .push(report(lab, step, via, &probed, &expected));
            }
        }
    }

    /// Fails the test with every difference found, or prints how long it took.
    pub fn finish(self, test: &str) {
        let elapsed = self.started.elapsed();
        println!(
            "{test}: {} checks in {:.1} s",
            self.checks,
            elapsed.as_secs_f64()
        );
        assert!(
            self.failures.is_empty(),
            "{test}: {} failures (a table that differs from the specification's, or a step that \
             failed):\n\n{}",
            self.failures.len(),
            self.failures.join("\n\n")
        );
        assert!(elapsed < Duration::from_mins(4), "{test} took {elapsed:?}");
    }
}

/// Both tables, the differing cells, and the first few of them as the specification explains them.
fn report(
    lab: &Lab,
    step: &str,
    via: Via,
    probed: &Reachability,
    expected: &Reachability,
) -> String {
    let wrong = probed.compare(expected);
    let mut out = format!(
        "{step}, via {via:?}: {} cells differ (policies in force: {:?})\n\
         --- expected (the specification)\n{}--- observed\n{}--- comparison (X: differs)\n{}",
        wrong.len(),
        lab.state.policies.keys().collect::<Vec<_>>(),
        expected.render(),
        probed.render(),
        probed.render_comparison(expected)
    );
    for cell in wrong.iter().take(EXPLAINED) {
        match lab.explain_flow(&cell.from, &cell.to, cell.port, cell.protocol) {
            Ok(text) => out.push_str(&text),
            Err(error) => {
                let _ = writeln!(out, "{cell}: cannot explain: {error}");
            }
        }
    }
    out
}

/// Every policy shape of [`rules`], one scenario after another, on one lab.
#[test]
fn rules_match_the_specification_by_pod_ip_and_service() {
    let guard = LabGuard::new("pr");
    let mut lab = model_lab(&guard);
    let mut findings = Findings::new();
    for scenario in rules::scenarios(&lab) {
        findings.scenario(&mut lab, &scenario);
    }
    findings.finish("rules");
}

/// Labels and policies changing under a running lab ([`changes`]).
#[test]
fn changes_match_the_specification_by_pod_ip_and_service() {
    let guard = LabGuard::new("pc");
    let mut lab = model_lab(&guard);
    let mut findings = Findings::new();
    changes::run(&mut lab, &mut findings);
    findings.finish("changes");
}
