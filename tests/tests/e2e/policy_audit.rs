//! `strait policy audit` on manifests, before anything is applied: the findings as JSON (kinds and
//! subjects), as a Markdown table, and an exit status scripts can test (0 no warnings, 1 warnings, 2
//! the audit could not run). No lab: the built binary on a temporary directory.

use std::{
    path::Path,
    process::{Command, Output},
};

use serde_json::Value;

/// `shop`: api takes web on a port name it does not declare, a second rule inside the first, an
/// ipBlock over everything; a policy for pods that do not exist; web open both ways. `ops` has a pod
/// and no policy.
const SHOP: &str = "apiVersion: v1
kind: Namespace
metadata: {name: shop}
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
apiVersion: v1
kind: Pod
metadata: {name: tool, namespace: ops}
spec: {containers: [{name: c, image: i}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: api-in, namespace: shop}
spec:
  podSelector: {matchLabels: {app: api}}
  ingress:
  - from: [{podSelector: {}}]
    ports: [{port: http}, {port: grpc}]
  - from: [{podSelector: {matchLabels: {app: web}}}]
    ports: [{port: http}]
  - from: [{ipBlock: {cidr: 0.0.0.0/0}}]
    ports: [{port: 443}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: legacy, namespace: shop}
spec: {podSelector: {matchLabels: {app: legacy}}}
";

/// One pod, isolated both ways, let in by one rule on its declared port.
const CLEAN: &str = "apiVersion: v1
kind: Pod
metadata: {name: api, labels: {app: api}}
spec: {containers: [{name: c, image: i, ports: [{name: http, containerPort: 8080}]}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: api}
spec:
  podSelector: {}
  policyTypes: [Ingress, Egress]
  ingress: [{from: [{podSelector: {}}], ports: [{port: http}]}]
";

fn audit(path: &Path, args: &[&str]) -> Output {
    Command::new(strait_tests::bin_dir().join("strait"))
        .args(["policy", "audit", "--manifests"])
        .arg(path)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn policy_audit_reports_findings_from_manifests_with_an_exit_status() {
    let dir = tempfile::tempdir().unwrap();
    let shop = dir.path().join("shop");
    std::fs::create_dir(&shop).unwrap();
    std::fs::write(shop.join("shop.yaml"), SHOP).unwrap();

    let json = audit(&shop, &["-o", "json"]);
    assert_eq!(json.status.code(), Some(1), "{json:?}");
    let report: Value = serde_json::from_slice(&json.stdout).unwrap();
    let found: Vec<(&str, &str)> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["kind"].as_str().unwrap(), f["subject"].as_str().unwrap()))
        .collect();
    assert_eq!(
        found,
        [
            ("pod-not-isolated", "ops/tool"),
            ("pod-not-isolated", "shop/web"),
            ("namespace-without-ingress-policy", "ops"),
            ("policy-selects-no-pod", "shop/legacy"),
            ("named-port-unresolved", "shop/api-in"),
            ("ip-block-covers-pod-range", "shop/api-in"),
            ("ip-block-covers-service-range", "shop/api-in"),
            ("rule-shadowed", "shop/api-in"),
        ],
        "{report:#}"
    );
    assert_eq!(report["warnings"], 7);
    assert_eq!(report["info"], 1);
    let shadowed = &report["findings"][7];
    assert_eq!(shadowed["severity"], "info");
    assert!(
        shadowed["message"]
            .as_str()
            .unwrap()
            .starts_with("ingress rule 1 is shadowed by shop/api-in rule 0"),
        "{shadowed}"
    );

    let markdown = audit(&shop, &["-o", "markdown"]);
    assert_eq!(markdown.status.code(), Some(1));
    let text = String::from_utf8_lossy(&markdown.stdout);
    assert!(
        text.contains("| Severity | Kind | Subject | Message |\n|---|---|---|---|\n"),
        "{text}"
    );
    assert!(
        text.contains("| warning | `pod-not-isolated` | `shop/web` |"),
        "{text}"
    );
    assert!(text.contains("7 warnings, 1 info."), "{text}");

    // A node range: the ipBlock over everything covers it too (info, not a warning).
    let nodes = audit(&shop, &["-o", "json", "--node-cidr", "192.168.0.0/24"]);
    let nodes: Value = serde_json::from_slice(&nodes.stdout).unwrap();
    let node = nodes["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "ip-block-covers-node-range")
        .unwrap_or_else(|| panic!("{nodes:#}"));
    assert_eq!(node["severity"], "info");
    assert_eq!(nodes["warnings"], 7);

    let clean = dir.path().join("clean.yaml");
    std::fs::write(&clean, CLEAN).unwrap();
    let quiet = Command::new(strait_tests::bin_dir().join("strait"))
        .args(["policy", "audit", "-f"])
        .arg(&clean)
        .output()
        .unwrap();
    assert_eq!(quiet.status.code(), Some(0), "{quiet:?}");
    assert_eq!(String::from_utf8_lossy(&quiet.stdout), "No findings.\n");

    let missing = audit(&dir.path().join("nothing-here"), &[]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).starts_with("strait policy audit: "));
}
