//! `strait policy propose` end to end: on the upstream model (two nodes, no policies), a handful of
//! connections are made; the proposal from the agents' verdicts, applied to the lab, must leave open
//! exactly those cells of the whole table (and each pod to itself, which is never judged).

use std::{
    collections::BTreeSet,
    fs,
    process::Command,
    time::{Duration, Instant},
};

use strait_lab::{
    cluster::Lab,
    flows::FlowQuery,
    manifests::netpol_model_manifest,
    reachability::{ReachabilityOptions, Via},
};
use strait_tests::LabGuard;

type Cell = (String, String, u16, String);

/// (from, to, port, UDP).
const PROBES: [(&str, &str, u16, bool); 4] = [
    ("x/a", "y/b", 80, false),
    ("x/b", "y/b", 80, false),
    ("z/c", "x/a", 81, true),
    ("y/a", "z/b", 80, false),
];

fn cell(from: &str, to: &str, port: u16, udp: bool) -> Cell {
    let protocol = if udp { "UDP" } else { "TCP" };
    (from.to_owned(), to.to_owned(), port, protocol.to_owned())
}

/// The pod-to-pod cells the agents reported allowed.
fn reported(lab: &Lab) -> BTreeSet<Cell> {
    lab.flows(&FlowQuery::default())
        .expect("flows")
        .into_iter()
        .filter(|f| f.verdict == "allowed")
        .filter_map(|f| Some((f.from.pod?, f.to.pod?, f.to.port?, f.protocol)))
        .collect()
}

#[test]
fn the_proposal_allows_exactly_the_observed_connections() {
    strait_tests::require_root();
    let bin = strait_tests::bin_dir();
    let guard = LabGuard::new("prp");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("model.yaml");
    fs::write(&file, netpol_model_manifest()).unwrap();
    let mut lab = Lab::up(&guard.name, 2, Some(&file)).expect("lab up with the model");

    let mut seen = BTreeSet::new();
    for (from, to, port, udp) in PROBES {
        lab.probe(from, &format!("{to}:{port}"), udp, Duration::from_secs(2))
            .expect("probe ran")
            .unwrap_or_else(|why| panic!("{from} -> {to}:{port} blocked: {why}"));
        seen.insert(cell(from, to, port, udp));
    }
    // The agents report what they judged shortly after.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let reported = reported(&lab);
        if reported == seen {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the agents reported {reported:?}, the probes were {seen:?}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }

    let output = Command::new(bin.join("strait"))
        .args(["policy", "propose", "--name", &guard.name, "-o", "yaml"])
        .output()
        .expect("strait policy propose");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "propose failed: {stderr}");
    let yaml = String::from_utf8(output.stdout).unwrap();
    assert_eq!(
        yaml.matches("kind: NetworkPolicy").count(),
        18,
        "an ingress and an egress policy per pod:\n{yaml}"
    );
    assert!(
        !yaml.contains("ipBlock"),
        "every peer is a pod, named by label:\n{yaml}"
    );
    lab.apply_str(std::path::Path::new("proposed.yaml"), &yaml)
        .unwrap_or_else(|e| panic!("applying the proposal: {e}\n{yaml}"));

    let options = ReachabilityOptions {
        via: Via::Pod,
        ..ReachabilityOptions::default()
    };
    let probed = lab.reachability(&options).expect("reachability");
    let allowed: BTreeSet<Cell> = probed
        .probes()
        .into_iter()
        .filter(|p| p.allowed)
        .map(|p| {
            let protocol = format!("{:?}", p.protocol).to_uppercase();
            (p.from, p.to, p.port, protocol)
        })
        .collect();
    let mut expected = seen.clone();
    for p in probed.probes() {
        if p.from == p.to {
            expected.insert((
                p.from.clone(),
                p.to.clone(),
                p.port,
                format!("{:?}", p.protocol).to_uppercase(),
            ));
        }
    }
    let missing: Vec<_> = expected.difference(&allowed).collect();
    let extra: Vec<_> = allowed.difference(&expected).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "with the proposal applied: missing {missing:?}, extra {extra:?}\n{}\n{yaml}",
        probed.render()
    );
    // The specification agrees with the data path.
    let spec = lab.expected_reachability(&probed).unwrap();
    let spec_allowed: BTreeSet<Cell> = spec
        .probes()
        .into_iter()
        .filter(|p| p.allowed && p.from != p.to)
        .map(|p| {
            let protocol = format!("{:?}", p.protocol).to_uppercase();
            (p.from, p.to, p.port, protocol)
        })
        .collect();
    assert_eq!(spec_allowed, seen);
}
