//! The demo's NetworkPolicy part: pod B isolated by a policy (A's connection now fails, and `strait
//! policy explain` says why), then a second policy lets A in again (explained rule by rule), the
//! verdicts the agents reported (`strait flows`), and both policies deleted so the lab is left as it
//! was.

use std::{collections::BTreeMap, fmt::Write as _};

use anyhow::{Context as _, Result, ensure};

use super::{Lab, Pod, heading};
use crate::cmd;

/// The policy that isolates B for ingress (no rule: every new connection in is denied).
const ISOLATE: &str = "demo-isolate";
/// The policy that allows A's pods in on B's TCP port.
const ALLOW: &str = "demo-allow-a";

/// Runs the part: `a` connects to `b`'s TCP port `port`.
pub(super) fn tour(lab: &Lab, a: &Pod, b: &Pod, port: u16) -> Result<()> {
    let (b_namespace, _) = b
        .key
        .split_once('/')
        .context("pod key without a namespace")?;
    let (a_namespace, _) = a
        .key
        .split_once('/')
        .context("pod key without a namespace")?;
    let target = format!("{}:{port}", b.ip);
    let explain_target = format!("{}:{port}", b.key);
    lab.apply_stdin(
        &format!(
            "NetworkPolicy: isolate {} for ingress (no rule allows anything in)",
            b.key
        ),
        &isolate(b_namespace, &b.labels),
        false,
    )?;
    heading(&format!(
        "{} to {} ({target}) is now denied in eBPF",
        a.key, b.key
    ));
    let mut probe = lab.command("probe", &[&a.key, &target]);
    println!("$ {}", cmd::display(&probe));
    ensure!(
        cmd::probe(&mut probe).is_none(),
        "the isolated pod {} still answered {}",
        b.key,
        a.key
    );
    println!(
        "(no answer: the connection was dropped at {}'s node)",
        b.key
    );
    explain(lab, &a.key, &explain_target, false)?;
    lab.apply_stdin(
        &format!(
            "NetworkPolicy: allow pods labelled like {} in on TCP {port}",
            a.key
        ),
        &allow(b_namespace, &b.labels, a_namespace, &a.labels, port),
        false,
    )?;
    lab.run(
        &format!("{} to {} ({target}) is allowed again", a.key, b.key),
        "probe",
        &[&a.key, &target],
    )?;
    explain(lab, &a.key, &explain_target, true)?;
    heading(&format!(
        "the verdicts the agents reported for {}: the drops, then the rule that let A in",
        b.key
    ));
    // The agents read verdicts in batches, at most every 50 ms: let the last one be read.
    std::thread::sleep(std::time::Duration::from_millis(150));
    let mut flows = std::process::Command::new(&lab.strait);
    flows.args([
        "flows",
        "--name",
        super::LAB,
        "--pod",
        &b.key,
        "--direction",
        "ingress",
        "--limit",
        "8",
    ]);
    cmd::run(&mut flows).context("demo step: strait flows")?;
    heading("the policies leave the lab as it was");
    for name in [ALLOW, ISOLATE] {
        cmd::run(&mut lab.command(
            "delete",
            &["networkpolicy", &format!("{b_namespace}/{name}")],
        ))?;
    }
    Ok(())
}

/// `strait policy explain --name LAB FROM TO`, which exits 0 when allowed and 1 when denied.
fn explain(lab: &Lab, from: &str, to: &str, allowed: bool) -> Result<()> {
    heading(&format!(
        "why: `strait policy explain` on the lab's objects ({})",
        if allowed { "allowed" } else { "denied" }
    ));
    let mut command = std::process::Command::new(&lab.strait);
    command.args(["policy", "explain", "--name", super::LAB, from, to]);
    println!("$ {}", cmd::display(&command));
    let status = command.status().context("running strait policy explain")?;
    ensure!(
        status.code() == Some(i32::from(!allowed)),
        "strait policy explain answered {status}, expected {}",
        if allowed { "allowed (0)" } else { "denied (1)" }
    );
    Ok(())
}

fn match_labels(labels: &BTreeMap<String, String>) -> String {
    let mut out = String::from("{matchLabels: {");
    for (i, (key, value)) in labels.iter().enumerate() {
        let _ = write!(out, "{}{key}: {value}", if i == 0 { "" } else { ", " });
    }
    out.push_str("}}");
    out
}

fn isolate(namespace: &str, labels: &BTreeMap<String, String>) -> String {
    format!(
        "apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: {ISOLATE}, namespace: {namespace}}}
spec:
  podSelector: {}
  policyTypes: [Ingress]
",
        match_labels(labels)
    )
}

fn allow(
    namespace: &str,
    labels: &BTreeMap<String, String>,
    from_namespace: &str,
    from_labels: &BTreeMap<String, String>,
    port: u16,
) -> String {
    format!(
        "apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: {ALLOW}, namespace: {namespace}}}
spec:
  podSelector: {}
  ingress:
  - from:
    - namespaceSelector: {{matchLabels: {{kubernetes.io/metadata.name: {from_namespace}}}}}
      podSelector: {}
    ports: [{{port: {port}, protocol: TCP}}]
",
        match_labels(labels),
        match_labels(from_labels)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policies_select_by_the_pods_labels() {
        let labels: BTreeMap<String, String> = [("app".to_owned(), "server".to_owned())].into();
        let client: BTreeMap<String, String> = [("app".to_owned(), "client".to_owned())].into();
        let isolate = isolate("default", &labels);
        assert!(
            isolate.contains("podSelector: {matchLabels: {app: server}}"),
            "{isolate}"
        );
        let allow = allow("default", &labels, "default", &client, 8080);
        assert!(
            allow.contains("podSelector: {matchLabels: {app: client}}"),
            "{allow}"
        );
        assert!(allow.contains("{port: 8080, protocol: TCP}"), "{allow}");
    }
}
