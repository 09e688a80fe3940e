//! The Grafana dashboards in `deploy/grafana/` proven against a live Prometheus: Debian's real
//! `prometheus` runs in the lab's external namespace and scrapes both agents over the underlay (in
//! OpenMetrics, as it asks by default); the test drives traffic through Services (socket LB and a
//! NodePort from outside), a flow that policy denies, and DNS (kernel fast path, server, forwarded
//! to an upstream it starts in the lab); then every query of every panel is evaluated through
//! Prometheus's HTTP API with the dashboards' variables set to "All", and must give a plausible,
//! non-empty result: above zero where the test sent traffic, a ratio within 0..1 for fills.

use std::{
    collections::BTreeMap,
    io::{Read as _, Write as _},
    net::{SocketAddr, SocketAddrV4, TcpStream},
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use serde_json::Value;
use strait_lab::{
    cluster::Lab,
    network::{EXTERNAL_IP, node_ip},
    state::LabOptions,
};
use strait_tests::{InLab, LabGuard};

/// Where Prometheus listens, inside the external namespace.
const PROMETHEUS: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, 9090));
/// Where the test's DNS upstream (unbound) listens in the external namespace.
const UPSTREAM_PORT: u16 = 5300;
/// The window `$__rate_interval` and `$__range` stand for: the whole run.
const WINDOW: &str = "3m";

/// What a panel query must give.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// Some series, at least one above zero: the test made this happen.
    Positive,
    /// Some series, none negative: nothing the test does makes it move (errors, losses, audit).
    NonNegative,
    /// Some series, every value within 0..1.
    Ratio,
}

/// Every panel query (dashboard uid, panel title, legend) and what proves it. A panel missing here
/// fails the test: every panel has to be proven.
const EXPECTED: &[(&str, &str, &str, Expect)] = {
    use Expect::{NonNegative, Positive, Ratio};
    &[
        ("strait-overview", "Nodes reporting", "nodes", Positive),
        ("strait-overview", "Pod endpoints", "pods", Positive),
        ("strait-overview", "Services", "services", Positive),
        ("strait-overview", "Drops per second", "drops/s", Positive),
        (
            "strait-overview",
            "Packets per second by node",
            "{{node}}",
            Positive,
        ),
        (
            "strait-overview",
            "Bytes per second by node",
            "{{node}}",
            Positive,
        ),
        (
            "strait-overview",
            "Packets per second by program",
            "{{program}}",
            Positive,
        ),
        (
            "strait-overview",
            "Drops per second by reason",
            "{{reason}}",
            Positive,
        ),
        (
            "strait-overview",
            "Policy verdicts per second",
            "{{verdict}}",
            Positive,
        ),
        (
            "strait-overview",
            "DNS questions per second by path",
            "kernel fast path",
            Positive,
        ),
        (
            "strait-overview",
            "DNS questions per second by path",
            "DNS server",
            Positive,
        ),
        ("strait-services", "Services", "services", Positive),
        ("strait-services", "Frontends", "frontends", Positive),
        ("strait-services", "Backends", "backends", Positive),
        (
            "strait-services",
            "Service translations per second",
            "{{program}} {{reason}}",
            Positive,
        ),
        (
            "strait-services",
            "Service drops per second",
            "{{reason}}",
            NonNegative,
        ),
        (
            "strait-services",
            "Conntrack entries",
            "{{node}} entries",
            NonNegative,
        ),
        (
            "strait-services",
            "Conntrack entries",
            "{{node}} capacity",
            Positive,
        ),
        (
            "strait-services",
            "Conntrack expiries per second",
            "{{node}}",
            NonNegative,
        ),
        ("strait-services", "SNAT port use", "{{node}}", Ratio),
        ("strait-services", "Sync latency", "p50", Positive),
        ("strait-services", "Sync latency", "p99", Positive),
        ("strait-services", "Syncs per second", "{{node}}", Positive),
        (
            "strait-policy",
            "Denied flows in the window",
            "denied",
            Positive,
        ),
        (
            "strait-policy",
            "Audit verdicts in the window",
            "audit",
            NonNegative,
        ),
        ("strait-policy", "Verdicts lost", "lost", NonNegative),
        (
            "strait-policy",
            "Verdicts per second by verdict",
            "{{verdict}}",
            Positive,
        ),
        (
            "strait-policy",
            "Verdicts per second by direction",
            "{{direction}} {{verdict}}",
            Positive,
        ),
        (
            "strait-policy",
            "Denied per second by namespace",
            "{{namespace}}",
            Positive,
        ),
        (
            "strait-policy",
            "Policy drops per second",
            "{{program}} {{direction}}",
            Positive,
        ),
        ("strait-policy", "Policy map fill", "{{map}}", Ratio),
        ("strait-dns", "Zone records", "records", Positive),
        ("strait-dns", "Answered in the kernel", "kernel", Ratio),
        ("strait-dns", "Forward cache entries", "entries", Positive),
        (
            "strait-dns",
            "Server requests per second by type",
            "{{type}}",
            Positive,
        ),
        (
            "strait-dns",
            "Responses per second by rcode",
            "{{rcode}}",
            Positive,
        ),
        ("strait-dns", "Server response time", "p50", Positive),
        ("strait-dns", "Server response time", "p99", Positive),
        (
            "strait-dns",
            "Kernel fast path per second",
            "{{reason}}",
            Positive,
        ),
        (
            "strait-dns",
            "Cache hits and misses per second",
            "hits",
            Positive,
        ),
        (
            "strait-dns",
            "Cache hits and misses per second",
            "misses",
            Positive,
        ),
        (
            "strait-dns",
            "Upstream questions and failures per second",
            "sent",
            Positive,
        ),
        (
            "strait-dns",
            "Upstream questions and failures per second",
            "failed",
            NonNegative,
        ),
        (
            "strait-dns",
            "Upstream questions and failures per second",
            "TCP retries",
            NonNegative,
        ),
        ("strait-agent", "Agents up", "up", Positive),
        ("strait-agent", "Uptime", "uptime", Positive),
        (
            "strait-agent",
            "Sync errors in the window",
            "errors",
            NonNegative,
        ),
        ("strait-agent", "Fullest map", "fill", Ratio),
        ("strait-agent", "CPU", "{{node}}", Positive),
        ("strait-agent", "Resident memory", "{{node}}", Positive),
        (
            "strait-agent",
            "Open file descriptors",
            "{{node}} open",
            Positive,
        ),
        (
            "strait-agent",
            "Open file descriptors",
            "{{node}} limit",
            Positive,
        ),
        (
            "strait-agent",
            "Program attachments",
            "{{program}}",
            Positive,
        ),
        ("strait-agent", "Map fill", "{{map}}", Ratio),
        (
            "strait-agent",
            "Endpoint and address use",
            "{{node}} allocated",
            Positive,
        ),
        (
            "strait-agent",
            "Endpoint and address use",
            "{{node}} deleting",
            NonNegative,
        ),
        (
            "strait-agent",
            "Sync errors per second by kind",
            "{{kind}}",
            NonNegative,
        ),
        (
            "strait-agent",
            "Map writes per sync",
            "sync writes p99",
            Positive,
        ),
        ("strait-agent", "Map writes per sync", "census", Positive),
    ]
};

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
metadata: {{name: a, namespace: x, labels: {{app: a}}}}
spec:
  nodeName: {node_a}
  containers: [{{name: serve, image: agnhost, ports: [{{containerPort: 80}}]}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: b, namespace: y, labels: {{app: b}}}}
spec:
  nodeName: {node_b}
  containers: [{{name: serve, image: agnhost, ports: [{{containerPort: 80}}, {{containerPort: 81}}]}}]
---
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: y}}
spec:
  type: NodePort
  selector: {{app: b}}
  ports: [{{name: http, port: 80, targetPort: 80}}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: deny-all, namespace: y}}
spec: {{podSelector: {{}}, policyTypes: [Ingress]}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: allow-80, namespace: y}}
spec:
  podSelector: {{}}
  ingress: [{{ports: [{{port: 80, protocol: TCP}}]}}]
"
    )
}

fn prometheus_conf(nodes: usize) -> String {
    let targets: Vec<String> = (1..=nodes)
        .map(|i| format!("'{}:9962'", node_ip(i)))
        .collect();
    format!(
        "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\nscrape_configs:\n  - job_name: strait\n    static_configs: [{{targets: [{}]}}]\n",
        targets.join(", ")
    )
}

fn unbound_conf() -> String {
    format!(
        "server:\n  interface: {EXTERNAL_IP}\n  port: {UPSTREAM_PORT}\n  do-daemonize: no\n  username: \"\"\n  chroot: \"\"\n  pidfile: \"\"\n  use-syslog: no\n  logfile: \"\"\n  do-ip6: no\n  module-config: \"iterator\"\n  access-control: 0.0.0.0/0 allow\n  local-zone: \"example.test.\" static\n  local-data: \"www.example.test. 300 IN A 192.0.2.53\"\n"
    )
}

/// `GET path` from Prometheus in the external namespace; the decoded JSON body.
fn prometheus_get(lab: &Lab, path: String) -> Result<Value, String> {
    let external = strait_dataplane::netns::path(&lab.names.external_netns());
    let text = strait_dataplane::netns::run_in(&external, move || -> std::io::Result<String> {
        let mut stream = TcpStream::connect_timeout(&PROMETHEUS, Duration::from_secs(2))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(
            stream,
            "GET {path} HTTP/1.0\r\nHost: prometheus\r\nConnection: close\r\n\r\n"
        )?;
        let mut text = String::new();
        stream.read_to_string(&mut text)?;
        Ok(text)
    })
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())?;
    let body = text.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    serde_json::from_str(body).map_err(|e| format!("{e}: {text}"))
}

/// Evaluates `expr` now: the values of the result (a vector's samples, or a scalar).
fn evaluate(lab: &Lab, expr: &str) -> Result<Vec<(String, f64)>, String> {
    let answer = prometheus_get(
        lab,
        format!(
            "/api/v1/query?query={}",
            strait_lab::report::prometheus::encode(expr)
        ),
    )?;
    if answer["status"] != "success" {
        return Err(format!("{answer}"));
    }
    let data = &answer["data"];
    let value = |v: &Value| v[1].as_str().and_then(|s| s.parse::<f64>().ok());
    match data["resultType"].as_str() {
        Some("vector") => Ok(data["result"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| Some((s["metric"].to_string(), value(&s["value"])?)))
            .collect()),
        Some("scalar") => Ok(value(&data["result"])
            .map(|v| vec![("scalar".to_owned(), v)])
            .unwrap_or_default()),
        other => Err(format!("unexpected result type {other:?}: {answer}")),
    }
}

/// The dashboards' variables as Grafana sets them with "All" chosen, over the run's window.
fn with_variables(expr: &str) -> String {
    expr.replace("$__rate_interval", WINDOW)
        .replace("$__range", WINDOW)
        .replace("$node", ".*")
        .replace("$namespace", ".*")
}

fn judge(values: &[(String, f64)], expect: Expect) -> Result<(), String> {
    if values.is_empty() {
        return Err("no series".into());
    }
    if let Some((series, v)) = values.iter().find(|(_, v)| !v.is_finite() || *v < 0.0) {
        return Err(format!("{series} = {v}"));
    }
    match expect {
        Expect::Positive if !values.iter().any(|(_, v)| *v > 0.0) => {
            Err("every series is zero".into())
        }
        Expect::Ratio if values.iter().any(|(_, v)| *v > 1.0) => Err("a ratio above 1".into()),
        _ => Ok(()),
    }
}

/// One round of traffic: a Service through the socket LB, a NodePort from outside, a flow policy
/// denies, DNS questions for the fast path, the server and the upstream.
fn traffic(lab: &Lab, web: &str, node_port: &str) {
    let probe = |who: &str, target: &str, ms| {
        lab.probe(who, target, false, Duration::from_millis(ms))
            .expect("probe runs")
    };
    assert_eq!(probe("x/a", web, 2000).as_deref(), Ok("y/b"));
    assert!(probe("x/a", "y/b:81", 300).is_err(), "port 81 is denied");
    assert_eq!(probe("external", node_port, 2000).as_deref(), Ok("y/b"));
    let name = lab.state.name.as_str();
    let dig = |args: &[&str]| {
        let out = Command::new(strait_tests::bin_dir().join("strait"))
            .args(["lab", "exec", "--name", name, "x/a", "--"])
            .args(["dig", "+tries=1", "+time=2", "+short"])
            .args(args)
            .output()
            .expect("dig runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(!dig(&["web.y.svc.cluster.local"]).is_empty());
    assert!(!dig(&["_http._tcp.web.y.svc.cluster.local", "SRV"]).is_empty());
    assert_eq!(dig(&["www.example.test"]).trim(), "192.0.2.53");
}

/// Debian's Prometheus and unbound in the lab's external namespace (stopped when dropped), once
/// Prometheus has scraped every agent successfully.
fn start_observers(lab: &Lab, dir: &Path) -> (InLab, InLab) {
    let name = lab.state.name.as_str();
    let unbound = dir.join("unbound.conf");
    std::fs::write(&unbound, unbound_conf()).unwrap();
    let upstream = InLab::start(
        name,
        "external",
        &["unbound", "-d", "-c", unbound.to_str().unwrap()],
        unbound.clone(),
    );
    let conf = dir.join("prometheus.yml");
    std::fs::write(&conf, prometheus_conf(lab.state.nodes.len())).unwrap();
    let data = dir.join("tsdb");
    let prometheus = InLab::start(
        name,
        "external",
        &[
            "prometheus",
            &format!("--config.file={}", conf.display()),
            &format!("--storage.tsdb.path={}", data.display()),
            &format!("--web.listen-address={PROMETHEUS}"),
            "--log.level=warn",
        ],
        conf.clone(),
    );
    // Both agents scraped successfully (their OpenMetrics parsed).
    let started = Instant::now();
    loop {
        let up = evaluate(lab, "up == 1").unwrap_or_default();
        if up.len() == lab.state.nodes.len() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "Prometheus never scraped both agents: {up:?} {:?}",
            prometheus_get(lab, "/api/v1/targets".into())
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    (prometheus, upstream)
}

/// Eight rounds of [`traffic`], a second Service applied in the middle (so syncs fall inside the
/// window), then time for the census and the conntrack sweep (every 10 s) to be scraped.
fn drive(lab: &mut Lab) {
    let spec = lab.state.services["y/web"].spec.clone().unwrap();
    let web = format!("{}:80", spec.cluster_ip.unwrap());
    let node_port = format!(
        "{}:{}",
        node_ip(1),
        spec.ports.unwrap()[0].node_port.unwrap()
    );
    for round in 0..8 {
        traffic(lab, &web, &node_port);
        if round == 3 {
            lab.apply_str(
                Path::new("more"),
                "apiVersion: v1\nkind: Service\nmetadata: {name: more, namespace: y}\nspec:\n  selector: {app: b}\n  ports: [{port: 8080, targetPort: 80}]\n",
            )
            .expect("a second Service");
        }
        std::thread::sleep(Duration::from_millis(700));
    }
    ct_listing(lab, &node_port);
    std::thread::sleep(Duration::from_secs(12));
}

/// `strait ct list`: the NodePort flows from outside are tracked on the node they entered,
/// filtered by the agent; a bad filter is refused with what is accepted.
fn ct_listing(lab: &Lab, node_port: &str) {
    let strait = |args: &[&str]| {
        Command::new(strait_tests::bin_dir().join("strait"))
            .args(["ct", "list", "--name", &lab.state.name])
            .args(args)
            .output()
            .expect("strait ct list runs")
    };
    let (ip, port) = node_port.split_once(':').unwrap();
    let out = strait(&[
        "--src",
        &EXTERNAL_IP.to_string(),
        "--port",
        port,
        "-o",
        "json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let flows: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let flows = flows.as_array().unwrap();
    let entered = flows
        .iter()
        .find(|f| f["destination"] == node_port && f["direction"] == "forward")
        .unwrap_or_else(|| panic!("no tracked NodePort flow to {node_port}: {flows:?}"));
    assert_eq!(entered["protocol"], "TCP");
    assert_eq!(
        entered["node"],
        lab.state.nodes[0].name.as_str(),
        "tracked where it entered ({ip})"
    );
    assert!(
        entered["new_destination"]
            .as_str()
            .unwrap()
            .ends_with(":80"),
        "translated to the backend: {entered}"
    );
    assert!(
        flows.iter().all(|f| f["source"]
            .as_str()
            .unwrap()
            .starts_with(&EXTERNAL_IP.to_string())
            || f["new_source"]
                .as_str()
                .unwrap()
                .starts_with(&EXTERNAL_IP.to_string())
            || f["destination"]
                .as_str()
                .unwrap()
                .starts_with(&EXTERNAL_IP.to_string())
            || f["new_destination"]
                .as_str()
                .unwrap()
                .starts_with(&EXTERNAL_IP.to_string())),
        "only flows of the external client: {flows:?}"
    );
    let table = String::from_utf8_lossy(&strait(&["-o", "wide"]).stdout).into_owned();
    assert!(
        table.starts_with("NODE") && table.contains("FLAGS"),
        "{table}"
    );
    let refused = strait(&["--proto", "sctp"]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("tcp, udp or icmp"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}

/// What each panel query gave, by (dashboard, panel title, legend).
type Proven = BTreeMap<(String, String, String), String>;

/// Evaluates every query of every dashboard in `deploy/grafana`: what each gave, by (dashboard,
/// panel, legend), and what failed.
fn evaluate_every_panel(lab: &Lab) -> (Proven, Vec<String>) {
    let mut proven = BTreeMap::new();
    let mut failures = Vec::new();
    for entry in std::fs::read_dir(crate::examples().join("../deploy/grafana")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let uid = dashboard["uid"].as_str().unwrap().to_owned();
        let panels = dashboard["panels"].as_array().unwrap();
        for panel in panels.iter().filter(|p| p["type"] != "row") {
            let title = panel["title"].as_str().unwrap();
            for target in panel["targets"].as_array().unwrap() {
                let legend = target["legendFormat"].as_str().unwrap_or("");
                let expr = with_variables(target["expr"].as_str().unwrap());
                let Some(&(.., expect)) = EXPECTED
                    .iter()
                    .find(|(u, t, l, _)| *u == uid && *t == title && *l == legend)
                else {
                    failures.push(format!("{uid} / {title} / {legend}: not in EXPECTED"));
                    continue;
                };
                match evaluate(lab, &expr)
                    .and_then(|values| judge(&values, expect).map(|()| values))
                {
                    Ok(values) => {
                        let shown: Vec<String> = values
                            .iter()
                            .take(3)
                            .map(|(_, v)| format!("{v:.4}"))
                            .collect();
                        proven.insert(
                            (uid.clone(), title.to_owned(), legend.to_owned()),
                            format!("{expect:?}: {} series, {}", values.len(), shown.join(" ")),
                        );
                    }
                    Err(why) => {
                        failures.push(format!("{uid} / {title} / {legend}: {why}\n  {expr}"));
                    }
                }
            }
        }
    }
    (proven, failures)
}

/// `strait policy get`: the node of y/b enforces both policies and says they isolate y/b for
/// ingress; x/a is isolated by nothing.
fn policies_listing(lab: &Lab) {
    let out = Command::new(strait_tests::bin_dir().join("strait"))
        .args(["policy", "get", "--name", &lab.state.name, "-o", "json"])
        .output()
        .expect("strait policy get runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let per_node: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let node_b = &lab.state.nodes[1].name;
    let b = per_node
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node"] == node_b.as_str())
        .expect("the node of y/b");
    let names: Vec<&str> = b["policies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"y/deny-all") && names.contains(&"y/allow-80"),
        "{b}"
    );
    let isolated = b["isolated"].as_array().unwrap();
    assert!(
        isolated.iter().any(|i| i["pod"] == "y/b"
            && i["direction"] == "ingress"
            && i["isolated_by"] == serde_json::json!(["y/allow-80", "y/deny-all"])),
        "{b}"
    );
    assert!(
        per_node.as_array().unwrap().iter().all(|n| n["isolated"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["pod"] != "x/a")),
        "{per_node}"
    );
}

/// `strait status`: both agents healthy, with their pods, Services and a recent sync.
fn agents_status(lab: &Lab) {
    let out = Command::new(strait_tests::bin_dir().join("strait"))
        .args(["status", "--name", &lab.state.name, "-o", "json"])
        .output()
        .expect("strait status runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(
        rows.as_array().unwrap().len(),
        lab.state.nodes.len(),
        "{rows}"
    );
    for row in rows.as_array().unwrap() {
        assert_eq!(row["healthy"], true, "{row}");
        assert_eq!(row["endpoints"], 1.0, "one pod per node: {row}");
        assert!(row["services"].as_f64().unwrap() >= 3.0, "{row}");
        assert!(row["last_sync_age_s"].as_u64().unwrap() < 60, "{row}");
        assert!(row["version"].is_string(), "{row}");
    }
}

/// `strait services`: every node's kernel holds y/web's ClusterIP frontend leading to y/b, and its
/// NodePort frontends reached from outside.
fn services_listing(lab: &Lab) {
    let out = Command::new(strait_tests::bin_dir().join("strait"))
        .args(["services", "--name", &lab.state.name, "-o", "json"])
        .output()
        .expect("strait services runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let b = lab.state.pod("y/b").expect("y/b").ip;
    let cluster_ip = lab.state.services["y/web"]
        .spec
        .as_ref()
        .unwrap()
        .cluster_ip
        .clone()
        .unwrap();
    for node in &lab.state.nodes {
        let mine: Vec<&Value> = list
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["node"] == node.name.as_str() && e["service"] == "y/web")
            .collect();
        let cluster = mine
            .iter()
            .find(|e| e["frontend"] == format!("{cluster_ip}:80").as_str())
            .unwrap_or_else(|| panic!("{}: no ClusterIP frontend: {mine:?}", node.name));
        assert_eq!(cluster["backends"], serde_json::json!([format!("{b}:80")]));
        assert_eq!(cluster["external"], false);
        assert!(
            mine.iter().any(|e| e["external"] == true),
            "{}: no NodePort frontend",
            node.name
        );
    }
}

/// `strait dns records`: the zone as each agent answers it; the Service's A record is held by
/// the kernel fast path, its SRV record only by the server.
fn dns_records(lab: &Lab) {
    let out = Command::new(strait_tests::bin_dir().join("strait"))
        .args([
            "dns",
            "records",
            "--name",
            &lab.state.name,
            "--filter",
            "web.y",
            "-o",
            "json",
        ])
        .output()
        .expect("strait dns records runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let records: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let records = records.as_array().unwrap();
    for node in &lab.state.nodes {
        let find = |record_type: &str| {
            records
                .iter()
                .find(|r| r["node"] == node.name.as_str() && r["type"] == record_type)
                .unwrap_or_else(|| {
                    panic!("no {record_type} for web.y on {}: {records:?}", node.name)
                })
        };
        let a = find("A");
        assert_eq!(a["name"], "web.y.svc.cluster.local.");
        assert_eq!(a["fast_path"], true, "{a}");
        assert_eq!(find("SRV")["fast_path"], false);
    }
    assert!(
        records
            .iter()
            .all(|r| r["name"].as_str().unwrap().contains("web.y"))
    );
}

/// `strait maps`: each node's census as JSON (the SVC map holds the Services' frontends, every
/// pod's veth runs from_pod) and as a table.
fn maps_listing(lab: &Lab) {
    let strait = |args: &[&str]| {
        let out = Command::new(strait_tests::bin_dir().join("strait"))
            .args(["maps", "--name", &lab.state.name])
            .args(args)
            .output()
            .expect("strait maps runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let json: Value = serde_json::from_str(&strait(&["-o", "json"])).expect("JSON");
    let per_node = json.as_array().expect("one census per node");
    assert_eq!(per_node.len(), lab.state.nodes.len());
    for census in per_node {
        let map = |name: &str| {
            census["maps"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["name"] == name)
                .unwrap_or_else(|| panic!("{name} missing: {census}"))
                .clone()
        };
        // kube-dns (UDP and TCP), web, its node port, more: at least five frontends.
        assert!(map("SVC_V1")["entries"].as_u64().unwrap() >= 5, "{census}");
        assert_eq!(map("CT_V1")["kind"], "lru_hash");
        let from_pod = census["programs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["program"] == "from_pod")
            .expect("from_pod");
        assert!(from_pod["links"].as_u64().unwrap() >= 1, "{census}");
    }
    let table = strait(&[]);
    assert!(table.starts_with("NODE"), "{table}");
    assert!(table.contains("SVC_V1") && table.contains('%'), "{table}");
}

/// `strait report` against the same Prometheus: a PNG per time-series panel and a Markdown
/// summary naming every dashboard. With `STRAIT_REPORT_EXAMPLE=DIR`, the report is also copied
/// there (how `docs/report-example/` was made).
fn report(lab: &Lab, dir: &Path) {
    let out = dir.join("report");
    let root = crate::examples().join("..").canonicalize().unwrap();
    let dashboards = root.join("deploy/grafana");
    let run = Command::new(strait_tests::bin_dir().join("strait"))
        .args(["report", "--lab", &lab.state.name, "--since", "90s"])
        .args(["--step", "2", "--dashboards", "deploy/grafana", "-o"])
        .current_dir(&root)
        .arg(&out)
        .output()
        .expect("strait report runs");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let summary = std::fs::read_to_string(out.join("README.md")).expect("README.md");
    let mut timeseries = 0;
    for entry in std::fs::read_dir(&dashboards).unwrap() {
        let dashboard: Value =
            serde_json::from_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap()).unwrap();
        let title = dashboard["title"].as_str().unwrap();
        assert!(summary.contains(&format!("## {title}")), "{title} missing");
        timeseries += dashboard["panels"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["type"] == "timeseries")
            .count();
    }
    let pngs: Vec<PathBuf> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("png"))
        .collect();
    assert_eq!(
        pngs.len(),
        timeseries,
        "a chart per time-series panel: {stdout}"
    );
    for png in &pngs {
        let bytes = std::fs::read(png).unwrap();
        assert_eq!(&bytes[1..4], b"PNG", "{}", png.display());
        assert!(bytes.len() > 10_000, "{} is nearly empty", png.display());
    }
    if let Some(keep) = std::env::var_os("STRAIT_REPORT_EXAMPLE") {
        let keep = PathBuf::from(keep);
        std::fs::create_dir_all(&keep).unwrap();
        for entry in std::fs::read_dir(&out).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(&path, keep.join(path.file_name().unwrap())).unwrap();
        }
    }
}

#[test]
fn every_dashboard_panel_shows_data_from_a_live_prometheus() {
    strait_tests::require_root();
    strait_tests::bin_dir();
    let guard = LabGuard::new("gf");
    let options = LabOptions {
        dns_upstream: Some(SocketAddrV4::new(EXTERNAL_IP, UPSTREAM_PORT)),
        ..LabOptions::default()
    };
    let mut lab = Lab::up_with(&guard.name, 2, None, options).expect("lab up");
    let (node_a, node_b) = (
        lab.state.nodes[0].name.clone(),
        lab.state.nodes[1].name.clone(),
    );
    lab.apply_str(Path::new("objects"), &manifest(&node_a, &node_b))
        .expect("objects");
    let dir = tempfile::tempdir().unwrap();
    let _observers = start_observers(&lab, dir.path());
    drive(&mut lab);
    maps_listing(&lab);
    dns_records(&lab);
    services_listing(&lab);
    agents_status(&lab);
    policies_listing(&lab);
    let (proven, failures) = evaluate_every_panel(&lab);
    report(&lab, dir.path());
    for ((uid, title, legend), shown) in &proven {
        println!("{uid} | {title} | {legend} | {shown}");
    }
    assert!(
        failures.is_empty(),
        "panels without plausible data:\n{}",
        failures.join("\n")
    );
    assert_eq!(
        proven.len(),
        EXPECTED.len(),
        "every expected query was found in the dashboards"
    );
}
