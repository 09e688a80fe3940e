//! `strait policy audit`: what a set of NetworkPolicies leaves open, never selects, says twice or says
//! about the cluster's own addresses (see `strait_k8s::netpol::audit`), from manifests before anything
//! is applied (Namespaces, Nodes, Pods, Deployments, NetworkPolicies; other kinds are skipped) or from
//! a running lab or a live cluster's API server (`--kube`); printed as a table, Markdown or JSON.

use std::{fmt::Write as _, path::PathBuf};

use serde_json::json;
use strait_k8s::{
    Kind, ParseOptions,
    manifest::load_path,
    netpol::{
        Policy, PolicyPod,
        audit::{AuditCluster, ClusterRanges, Report, Severity, audit},
    },
};

use crate::{LabError, apply::known_namespaces, cluster::Lab, listing, publish::pod_object};

/// Where the objects come from.
#[derive(Clone, Debug)]
pub enum Source {
    /// Manifest files or directories, read together.
    Manifests(Vec<PathBuf>),
    /// The running lab of this name.
    Lab(String),
    /// The cluster of the environment's kubeconfig or service account.
    Kube,
}

/// How the report is printed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// An aligned table (SEVERITY KIND SUBJECT MESSAGE) and a count.
    #[default]
    Table,
    /// A Markdown table and a count, for pull requests and issues.
    #[value(alias = "md")]
    Markdown,
    /// `{"findings": [{kind, severity, subject, message}], "warnings": N, "info": N}`.
    Json,
}

/// Audits the objects of `source` against the cluster's `ranges`.
pub fn audit_source(source: &Source, ranges: &ClusterRanges) -> Result<Report, LabError> {
    let cluster = match source {
        Source::Manifests(paths) => from_manifests(paths)?,
        Source::Lab(name) => from_lab(&Lab::open(name)?)?,
        Source::Kube => from_kube()?,
    };
    Ok(audit(&cluster, ranges))
}

/// The objects of the manifest files or directories `paths`.
pub fn from_manifests(paths: &[PathBuf]) -> Result<AuditCluster, LabError> {
    let options = ParseOptions {
        kinds: &[
            Kind::Namespace,
            Kind::Node,
            Kind::Pod,
            Kind::Deployment,
            Kind::NetworkPolicy,
        ],
        skip_other_kinds: true,
        strict: true,
        validate: true,
    };
    let mut objects = Vec::new();
    for path in paths {
        let loaded = load_path(path, &options).map_err(|e| LabError::Usage(e.to_string()))?;
        objects.extend(loaded.into_objects());
    }
    AuditCluster::from_objects(&objects).map_err(|e| LabError::Usage(e.to_string()))
}

/// The cluster's API server's Namespaces, Nodes, Pods (with their addresses) and NetworkPolicies.
pub fn from_kube() -> Result<AuditCluster, LabError> {
    let objects = crate::kube_objects::read_cluster(&[
        Kind::Namespace,
        Kind::Node,
        Kind::Pod,
        Kind::NetworkPolicy,
    ])?;
    AuditCluster::from_objects(&objects).map_err(|e| LabError::Usage(e.to_string()))
}

/// The lab as its agents see it: pods with their addresses, namespaces, nodes, policies.
pub fn from_lab(lab: &Lab) -> Result<AuditCluster, LabError> {
    let state = &lab.state;
    let policies = state
        .policies
        .iter()
        .map(|(key, policy)| {
            Policy::parse(policy).map_err(|e| {
                LabError::Environment(format!("NetworkPolicy {key} of the lab's state: {e}"))
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(AuditCluster {
        pods: state
            .pods
            .iter()
            .map(|pod| PolicyPod::from_pod(&pod_object(pod), Some(pod.ip)))
            .collect(),
        policies,
        namespaces: known_namespaces(state)
            .into_iter()
            .map(|(name, ns)| (name, ns.metadata.labels.unwrap_or_default()))
            .collect(),
        nodes: state.nodes.iter().map(|n| n.ip).collect(),
    })
}

/// `report` as `format` says.
pub fn render(report: &Report, format: Format) -> String {
    match format {
        Format::Table => table(report),
        Format::Markdown => markdown(report),
        Format::Json => {
            let value = json!({
                "findings": report.findings,
                "warnings": report.count(Severity::Warning),
                "info": report.count(Severity::Info),
            });
            let mut text = serde_json::to_string_pretty(&value).unwrap_or_default();
            text.push('\n');
            text
        }
    }
}

fn severity(severity: Severity) -> &'static str {
    match severity {
        Severity::Warning => "warning",
        Severity::Info => "info",
    }
}

/// `2 warnings, 1 info`.
fn summary(report: &Report) -> String {
    let warnings = report.count(Severity::Warning);
    format!(
        "{warnings} warning{}, {} info",
        if warnings == 1 { "" } else { "s" },
        report.count(Severity::Info)
    )
}

fn table(report: &Report) -> String {
    if report.findings.is_empty() {
        return "No findings.\n".to_owned();
    }
    let rows: Vec<Vec<String>> = report
        .findings
        .iter()
        .map(|f| {
            vec![
                severity(f.severity).to_owned(),
                f.kind.id().to_owned(),
                f.subject.clone(),
                f.message.clone(),
            ]
        })
        .collect();
    let mut text = listing::table(&["SEVERITY", "KIND", "SUBJECT", "MESSAGE"], &rows);
    let _ = writeln!(text, "\n{}", summary(report));
    text
}

fn markdown(report: &Report) -> String {
    let mut text = String::from("## NetworkPolicy audit\n\n");
    if report.findings.is_empty() {
        text.push_str("No findings.\n");
        return text;
    }
    text.push_str("| Severity | Kind | Subject | Message |\n|---|---|---|---|\n");
    for f in &report.findings {
        let _ = writeln!(
            text,
            "| {} | `{}` | `{}` | {} |",
            severity(f.severity),
            f.kind.id(),
            f.subject,
            cell(&f.message)
        );
    }
    let _ = writeln!(text, "\n{}.", summary(report));
    text
}

/// A table cell: pipes escaped, so a message cannot end its cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = "apiVersion: v1
kind: Pod
metadata: {name: api, namespace: shop, labels: {app: api}}
spec: {containers: [{name: c, image: i}]}
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: shop}
spec: {selector: {app: api}, ports: [{port: 80}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: typo, namespace: shop}
spec: {podSelector: {matchLabels: {app: apj}}, ingress: [{ports: [{port: 80}]}, {ports: [{port: 80}]}]}
";

    #[test]
    fn audits_manifests_and_renders_each_format() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("shop.yaml");
        std::fs::write(&file, MANIFEST).unwrap();
        let report = audit_source(
            &Source::Manifests(vec![file.clone(), file]),
            &ClusterRanges::default(),
        )
        .unwrap();
        // The file read twice: every object twice, so every finding twice.
        assert_eq!(report.count(Severity::Warning), 4, "{report:#?}");
        let table = render(&report, Format::Table);
        assert!(table.starts_with("SEVERITY   KIND"), "{table}");
        assert!(table.ends_with("4 warnings, 3 info\n"), "{table}");
        let markdown = render(&report, Format::Markdown);
        assert!(markdown.contains("| Severity | Kind | Subject | Message |\n|---|---|---|---|\n"));
        assert!(
            markdown
                .contains("| warning | `policy-selects-no-pod` | `shop/typo` | it selects no pod")
        );
        let json: serde_json::Value = serde_json::from_str(&render(&report, Format::Json)).unwrap();
        assert_eq!(json["warnings"], 4);
        assert_eq!(json["findings"][0]["kind"], "pod-not-isolated");
        assert_eq!(render(&Report::default(), Format::Table), "No findings.\n");
    }

    #[test]
    fn a_policy_that_does_not_parse_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("bad.yaml"),
            "apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: bad}
spec: {podSelector: {}, ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/33}}]}]}
",
        )
        .unwrap();
        let error = audit_source(
            &Source::Manifests(vec![dir.path().to_path_buf()]),
            &ClusterRanges::default(),
        )
        .unwrap_err();
        assert!(error.to_string().contains("10.0.0.0/33"), "{error}");
    }
}
