//! The `strait lab` command line as a user drives it: `apply` and `delete` print kubectl's per-object
//! lines (also from standard input), refuse what an API server refuses with exit code 1 and change
//! nothing; `exec` exits as a shell would; `list`, `status`, `endpoints` and `metrics` print tables by
//! default and JSON, YAML or wide tables with `-o`.

use std::{
    io::Write as _,
    process::{Command, Output, Stdio},
};

use serde_json::Value;
use strait_lab::cluster::Lab;
use strait_tests::LabGuard;

use crate::examples;

/// Runs `strait lab SUBCOMMAND --name LAB ARGS...`, with `stdin` as standard input.
fn strait(lab: &str, subcommand: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let mut command = Command::new(strait_tests::bin_dir().join("strait"));
    command.args(["lab", subcommand]);
    if !lab.is_empty() {
        command.args(["--name", lab]);
    }
    command
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("strait runs");
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    child.wait_with_output().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Applies `text` from standard input and expects success with exactly `lines` on stdout.
fn apply_ok(lab: &str, text: &str, lines: &[&str]) {
    let out = strait(lab, "apply", &["-f", "-"], Some(text));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).lines().collect::<Vec<_>>(), lines);
}

/// Applies `text` from standard input and expects a refusal naming `why`, with nothing applied.
fn apply_refused(lab: &str, text: &str, why: &str) {
    let before = Lab::open(lab).unwrap().state;
    let out = strait(lab, "apply", &["-f", "-"], Some(text));
    let error = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{error}");
    assert!(error.contains(why), "expected {why:?} in: {error}");
    assert!(error.contains("<stdin> document"), "{error}");
    assert_eq!(stdout(&out), "", "nothing is reported applied");
    let after = Lab::open(lab).unwrap().state;
    assert_eq!(
        serde_json::to_value(&before.services).unwrap(),
        serde_json::to_value(&after.services).unwrap()
    );
    assert_eq!(before.pods.len(), after.pods.len());
    assert_eq!(before.namespaces.len(), after.namespaces.len());
}

const SHOP: &str = "apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: Service
metadata: {name: cart, namespace: shop}
spec: {selector: {app: cart}, ports: [{port: 80}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: nginx, ports: [{name: http, containerPort: 8080}]}]}
";

fn node_port(name: &str, protocol: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\n\
         spec: {{type: NodePort, selector: {{app: web}}, \
         ports: [{{port: 80, targetPort: 8080, nodePort: 30080, protocol: {protocol}}}]}}\n"
    )
}

#[test]
fn apply_and_delete_answer_as_kubectl_and_refuse_what_an_api_server_refuses() {
    strait_tests::require_root();
    strait_tests::bin_dir();
    let guard = LabGuard::new("cl");
    let name = guard.name.as_str();
    Lab::up(name, 1, Some(&examples().join("pods.yaml"))).unwrap();

    apply_ok(
        name,
        SHOP,
        &[
            "namespace/shop created",
            "service/cart created",
            "deployment.apps/web created",
        ],
    );
    apply_ok(
        name,
        SHOP,
        &[
            "namespace/shop unchanged",
            "service/cart unchanged",
            "deployment.apps/web unchanged",
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let pods = examples().join("pods.yaml");
    let out = strait(name, "apply", &["-f", pods.to_str().unwrap()], None);
    assert_eq!(
        stdout(&out).lines().collect::<Vec<_>>(),
        ["pod/client unchanged", "pod/server unchanged"]
    );
    apply_ok(
        name,
        &node_port("web-tcp", "TCP"),
        &["service/web-tcp created"],
    );

    let service = "apiVersion: v1\nkind: Service\nmetadata: {name: first}\n\
                   spec: {selector: {app: web}, ports: [{port: 80}]}\n---\n";
    apply_refused(
        name,
        &service.replace("kind: Service", "kind: Servise"),
        "no kind \"Servise\"",
    );
    apply_refused(name, &service.replace("selector:", "selecter:"), "selecter");
    apply_refused(
        name,
        &service.replace("[{port: 80}]", "[{name: a, port: 80}, {name: b, port: 80}]"),
        "duplicate",
    );
    // One valid object before a refused one: neither is applied.
    apply_refused(
        name,
        &format!(
            "{service}{}",
            service.replace("name: first}", "name: cart, namespace: nowhere}")
        ),
        "<stdin> document 2: service/cart: namespaces \"nowhere\" not found",
    );
    apply_refused(
        name,
        &node_port("web-udp", "UDP"),
        "30080: provided port is already allocated",
    );

    // Delete: what exists is deleted, a missing object is an error (exit 1) after the rest.
    let file = dir.path().join("gone.yaml");
    std::fs::write(
        &file,
        format!(
            "{}---\n{}",
            node_port("web-tcp", "TCP"),
            node_port("ghost", "TCP")
        ),
    )
    .unwrap();
    let out = strait(name, "delete", &["-f", file.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out), "service \"web-tcp\" deleted\n");
    assert_eq!(
        stderr(&out).trim(),
        "Error from server (NotFound): services \"ghost\" not found"
    );
    // Deleting a namespace deletes what is in it; a built-in one may not be deleted.
    let out = strait(
        name,
        "delete",
        &["-f", "-"],
        Some("apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "namespace \"shop\" deleted\n");
    let lab = Lab::open(name).unwrap();
    assert!(!lab.state.services.contains_key("shop/cart"));
    assert!(lab.state.namespaces.is_empty());
    let out = strait(
        name,
        "delete",
        &["-f", "-"],
        Some("apiVersion: v1\nkind: Namespace\nmetadata: {name: default}\n"),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("namespaces \"default\" is forbidden"));
}

#[test]
fn exec_exits_as_a_shell_and_listings_take_output_formats() {
    strait_tests::require_root();
    strait_tests::bin_dir();
    let guard = LabGuard::new("co");
    let name = guard.name.as_str();
    Lab::up(name, 1, Some(&examples().join("pods.yaml"))).unwrap();

    let exec = |argv: &[&str]| {
        let mut args = vec!["default/client", "--"];
        args.extend(argv);
        strait(name, "exec", &args, None)
    };
    let missing = exec(&["no-such-command-strait"]);
    assert_eq!(missing.status.code(), Some(127));
    let error = stderr(&missing);
    assert!(error.contains("no-such-command-strait"), "{error}");
    assert_eq!(
        error.matches("No such file or directory").count(),
        1,
        "the OS error is said once: {error}"
    );
    assert_eq!(exec(&["sh", "-c", "exit 3"]).status.code(), Some(3));
    assert_eq!(
        exec(&["sh", "-c", "kill -TERM $$"]).status.code(),
        Some(128 + 15)
    );
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("not-a-program");
    std::fs::write(&plain, "data").unwrap();
    let not_executable = exec(&[plain.to_str().unwrap()]);
    assert_eq!(
        not_executable.status.code(),
        Some(126),
        "{}",
        stderr(&not_executable)
    );

    // list: the lab with its node count; a missing lab's error names `strait lab list`.
    let out = strait("", "list", &["-o", "json"], None);
    let labs: Value = serde_json::from_slice(&out.stdout).unwrap();
    let me = labs
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == name)
        .unwrap_or_else(|| panic!("{labs}"));
    assert_eq!(me["nodes"], 1);
    assert_eq!(me["pods"], 2);
    let table = stdout(&strait("", "list", &[], None));
    assert!(table.starts_with("NAME "), "{table}");
    assert!(
        table.lines().any(|l| l.starts_with(&format!("{name} "))),
        "{table}"
    );
    let out = strait("nosuchlab", "status", &[], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("strait lab list"), "{}", stderr(&out));

    // status: table (with endpoint counts), wide, JSON and YAML.
    let table = stdout(&strait(name, "status", &[], None));
    assert!(table.contains("default/client"), "{table}");
    let wide = stdout(&strait(name, "status", &["-o", "wide"], None));
    assert!(
        wide.contains("LABELS") && wide.contains("app=client"),
        "{wide}"
    );
    let yaml = stdout(&strait(name, "status", &["-o", "yaml"], None));
    assert!(yaml.lines().any(|l| l == format!("name: {name}")), "{yaml}");
    let out = strait(name, "status", &["-o", "xml"], None);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains("json, yaml or wide"),
        "{}",
        stderr(&out)
    );

    // endpoints: one row per pod; JSON with the node of each.
    let table = stdout(&strait(name, "endpoints", &[], None));
    assert!(table.starts_with("NODE "), "{table}");
    assert_eq!(table.lines().count(), 3, "{table}");
    let json: Value =
        serde_json::from_slice(&strait(name, "endpoints", &["-o", "json"], None).stdout).unwrap();
    let pods: Vec<&str> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pod_name"].as_str().unwrap())
        .collect();
    assert_eq!(pods.len(), 2);
    assert!(
        pods.contains(&"client") && pods.contains(&"server"),
        "{json}"
    );
    assert!(json[0]["node"].as_str().unwrap().starts_with(name));

    // metrics: a row per non-zero series; JSON with numeric values.
    let table = stdout(&strait(name, "metrics", &[], None));
    assert!(table.starts_with("NODE "), "{table}");
    assert!(table.contains("strait_"), "{table}");
    let json: Value =
        serde_json::from_slice(&strait(name, "metrics", &["-o", "json"], None).stdout).unwrap();
    let series = json.as_array().unwrap();
    assert!(!series.is_empty());
    assert!(
        series
            .iter()
            .all(|s| s["value"].as_f64().is_some_and(|v| v != 0.0)),
        "{json}"
    );
}

/// `strait policy explain` on manifests, before anything is applied: the verdict in words, and an exit
/// status scripts can test (0 allowed, 1 denied, 2 not answerable).
#[test]
fn policy_explain_answers_from_manifests_with_an_exit_status() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("shop.yaml"),
        "apiVersion: v1
kind: Pod
metadata: {name: api, namespace: default, labels: {app: api}}
spec: {containers: [{name: c, image: i, ports: [{name: http, containerPort: 8080}]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: default, labels: {app: web}}
spec: {containers: [{name: c, image: i}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: api-from-web, namespace: default}
spec:
  podSelector: {matchLabels: {app: api}}
  ingress: [{from: [{podSelector: {matchLabels: {app: web}}}], ports: [{port: http}]}]
",
    )
    .unwrap();
    let explain = |from: &str, to: &str| {
        Command::new(strait_tests::bin_dir().join("strait"))
            .args(["policy", "explain", "--manifests"])
            .arg(dir.path())
            .args([from, to])
            .output()
            .unwrap()
    };
    let allowed = explain("default/web", "default/api:8080");
    assert_eq!(allowed.status.code(), Some(0), "{allowed:?}");
    assert!(
        String::from_utf8_lossy(&allowed.stdout)
            .contains("ingress of default/api: allowed by default/api-from-web rule 0")
    );
    let itself = explain("default/api", "default/api:8080/udp");
    assert_eq!(
        itself.status.code(),
        Some(0),
        "a pod reaching itself is not judged"
    );
    let denied = explain("192.0.2.7", "default/api:8080");
    assert_eq!(denied.status.code(), Some(1), "{denied:?}");
    assert!(String::from_utf8_lossy(&denied.stdout).contains("matches no peer"));
    let unknown = explain("default/web", "default/db:5432");
    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no pod default/db"));
}
