//! Flow verdicts end to end: a two-node lab with pod x/a on one node and y/b (serving 80 and 81) on the
//! other, namespace y isolated for ingress (`deny-all`) and opened to namespace x on port 80
//! (`allow-x-80`). One connection allowed (x/a → y/b:80) and one denied (x/a → y/b:81); then
//! `strait flows -o json` must report, from the nodes that judged them, the destination's ingress
//! verdicts with both pods, the port, the protocol and what decided (the rule of `y/allow-x-80`; the
//! default deny of the policies isolating y/b), and the source's egress (x/a is not isolated); the
//! filters must keep only what they ask for; the text output must read as one line per verdict;
//! `--follow` must print a verdict made after it started; and `strait_policy_verdicts_total` for
//! denied ingress must have moved on y/b's node.

use std::{
    io::{BufRead as _, BufReader},
    path::Path,
    process::{Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use serde_json::Value;
use strait_lab::cluster::Lab;
use strait_tests::LabGuard;

fn manifest(node_a: &str, node_b: &str) -> String {
    format!(
        "apiVersion: v1
kind: Namespace
metadata: {{name: x, labels: {{ns: x}}}}
---
apiVersion: v1
kind: Namespace
metadata: {{name: y, labels: {{ns: y}}}}
---
apiVersion: v1
kind: Pod
metadata: {{name: a, namespace: x, labels: {{pod: a}}}}
spec:
  nodeName: {node_a}
  containers:
  - name: serve
    image: agnhost
    ports: [{{name: serve-80, containerPort: 80, protocol: TCP}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: b, namespace: y, labels: {{pod: b}}}}
spec:
  nodeName: {node_b}
  containers:
  - name: serve
    image: agnhost
    ports:
    - {{name: serve-80, containerPort: 80, protocol: TCP}}
    - {{name: serve-81, containerPort: 81, protocol: TCP}}
"
    )
}

const POLICIES: &str = "apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-all, namespace: y}
spec: {podSelector: {}, policyTypes: [Ingress]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-x-80, namespace: y}
spec:
  podSelector: {}
  ingress:
  - from: [{namespaceSelector: {matchLabels: {ns: x}}}]
    ports: [{port: 80, protocol: TCP}]
";

/// Runs `strait flows --name LAB ARGS...`; its standard output.
fn strait_flows(lab: &str, args: &[&str]) -> String {
    let out = Command::new(strait_tests::bin_dir().join("strait"))
        .args(["flows", "--name", lab])
        .args(args)
        .output()
        .expect("strait runs");
    assert!(
        out.status.success(),
        "strait flows {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// The first verdict of `flows` matching `(direction, verdict, destination port)`.
fn find<'a>(
    flows: &'a [Value],
    (direction, verdict, port): (&str, &str, u16),
) -> Option<&'a Value> {
    flows
        .iter()
        .find(|f| f["direction"] == direction && f["verdict"] == verdict && f["to"]["port"] == port)
}

/// `strait flows -o json` until it reports `(direction, verdict, port)` (verdicts reach the agent's
/// memory a few milliseconds after the packet), at most 10 s; every verdict reported then.
fn flows_with(lab: &str, wanted: &[(&str, &str, u16)]) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let flows = json_lines(&strait_flows(lab, &["-o", "json"]));
        if wanted.iter().all(|w| find(&flows, *w).is_some()) || Instant::now() > deadline {
            return flows;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `strait_policy_verdicts_total{direction, verdict}` on `node`, summed over namespaces.
fn verdicts_total(lab: &Lab, node: &str, direction: &str, verdict: &str) -> u64 {
    let text = lab.agent_get(node, "/metrics").expect("metrics");
    let needle = format!("direction=\"{direction}\",verdict=\"{verdict}\",");
    let values: Vec<u64> = text
        .lines()
        .filter(|l| l.starts_with("strait_policy_verdicts_total{") && l.contains(&needle))
        .map(|l| l.rsplit_once(' ').unwrap().1.parse().unwrap())
        .collect();
    assert!(
        !values.is_empty(),
        "no strait_policy_verdicts_total {needle} in:\n{text}"
    );
    values.iter().sum()
}

#[test]
fn flows_report_allowed_and_denied_connections_with_pods_ports_and_policies() {
    strait_tests::require_root();
    strait_tests::bin_dir();
    let guard = LabGuard::new("fl");
    let mut lab = Lab::up(&guard.name, 2, None).expect("lab up");
    let (node_a, node_b) = (
        lab.state.nodes[0].name.clone(),
        lab.state.nodes[1].name.clone(),
    );
    lab.apply_str(Path::new("pods"), &manifest(&node_a, &node_b))
        .expect("pods");
    lab.apply_str(Path::new("policies"), POLICIES)
        .expect("policies");
    let denied_before = verdicts_total(&lab, &node_b, "ingress", "denied");

    let probe = |port: u16, timeout_ms| {
        lab.probe(
            "x/a",
            &format!("y/b:{port}"),
            false,
            Duration::from_millis(timeout_ms),
        )
        .expect("probe ran")
    };
    assert_eq!(probe(80, 2000).as_deref(), Ok("y/b"), "port 80 is allowed");
    assert!(probe(81, 1000).is_err(), "port 81 is denied");

    let flows = flows_with(
        &guard.name,
        &[
            ("ingress", "allowed", 80),
            ("ingress", "denied", 81),
            ("egress", "allowed", 81),
        ],
    );
    let shown = || serde_json::to_string_pretty(&flows).unwrap();

    let allowed = find(&flows, ("ingress", "allowed", 80)).unwrap_or_else(|| panic!("{}", shown()));
    assert_eq!(allowed["node"], node_b.as_str(), "judged where y/b runs");
    assert_eq!(allowed["from"]["pod"], "x/a");
    assert_eq!(allowed["to"]["pod"], "y/b");
    assert_eq!(allowed["protocol"], "TCP");
    assert_eq!(allowed["by"], "rule");
    assert_eq!(allowed["policy"], "y/allow-x-80");
    assert_eq!(allowed["rule"], 0);

    let denied = find(&flows, ("ingress", "denied", 81)).unwrap_or_else(|| panic!("{}", shown()));
    assert_eq!(denied["node"], node_b.as_str());
    assert_eq!(
        (&denied["from"]["pod"], &denied["to"]["pod"]),
        (&"x/a".into(), &"y/b".into())
    );
    assert_eq!(denied["by"], "default-deny");
    assert_eq!(denied["policy"], Value::Null);
    assert_eq!(
        denied["isolated_by"],
        serde_json::json!(["y/allow-x-80", "y/deny-all"]),
        "the policies isolating y/b for ingress"
    );
    assert!(denied["from"]["port"].as_u64().unwrap() > 1023, "{denied}");
    assert!(denied["time"].as_str().unwrap().ends_with('Z'));

    let egress = find(&flows, ("egress", "allowed", 81)).unwrap_or_else(|| panic!("{}", shown()));
    assert_eq!(egress["node"], node_a.as_str(), "judged where x/a runs");
    assert_eq!(egress["by"], "not-isolated");

    filters_and_text(&guard.name, &node_b);
    follow_prints_new_verdicts(&guard.name, &probe);

    let denied_after = verdicts_total(&lab, &node_b, "ingress", "denied");
    assert!(
        denied_after > denied_before,
        "denied ingress verdicts counted: {denied_before} -> {denied_after}"
    );
}

/// The filters are the agents' and ANDed; the text output is one line per verdict.
fn filters_and_text(lab: &str, node_b: &str) {
    // Filters are the agents' and ANDed.
    let only = json_lines(&strait_flows(
        lab,
        &[
            "-o",
            "json",
            "--verdict",
            "denied",
            "--port",
            "81",
            "--pod",
            "y/b",
        ],
    ));
    assert!(!only.is_empty());
    assert!(
        only.iter()
            .all(|f| f["verdict"] == "denied" && f["to"]["port"] == 81),
        "{only:#?}"
    );
    assert!(
        json_lines(&strait_flows(lab, &["-o", "json", "--namespace", "z"])).is_empty(),
        "no pod of namespace z"
    );
    let text = strait_flows(lab, &["--verdict", "denied", "--direction", "ingress"]);
    assert!(
        text.lines()
            .any(|l| l.contains(&format!(" {node_b} DENIED  ingress x/a:"))
                && l.contains(
                    " -> y/b:81 TCP  default deny (isolated by y/allow-x-80, y/deny-all)"
                )),
        "{text}"
    );
}

/// `strait flows --follow` prints a denied verdict made after it started.
fn follow_prints_new_verdicts(lab: &str, probe: &dyn Fn(u16, u64) -> Result<String, String>) {
    let mut child = Command::new(strait_tests::bin_dir().join("strait"))
        .args([
            "flows",
            "--name",
            lab,
            "--follow",
            "-o",
            "json",
            "--verdict",
            "denied",
            "--limit",
            "0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("strait flows --follow runs");
    let stdout = child.stdout.take().unwrap();
    let (lines, received) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    // The follower is in place once the agents have answered its request; a probe now is live.
    std::thread::sleep(Duration::from_millis(500));
    let started_ms = u64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap();
    assert!(probe(81, 500).is_err());
    let line = received.recv_timeout(Duration::from_secs(10));
    let _ = child.kill();
    let _ = child.wait();
    let line = line.expect("a live verdict within 10 s");
    let flow: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(flow["verdict"], "denied", "{flow}");
    assert_eq!(flow["to"]["port"], 81);
    assert!(
        flow["time_ms"].as_u64().unwrap() + 1000 >= started_ms,
        "a verdict made after the follower started: {flow}"
    );
}
