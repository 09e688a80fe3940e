//! `strait policy explain --kube`, `strait policy audit --kube` and `strait flows --kube` against an
//! API server: the stand-in server of `strait_tests` on loopback, reached through a kubeconfig as a
//! user's would be. The pods span several list pages (the CLI follows `continue`), their addresses
//! come from `status.podIP`, and a finished pod's address belongs to nobody; `flows` asks each Node's
//! agent at the Node's address.

use std::{path::Path, process::Command};

use serde_json::{Value, json};
use strait_tests::stand_in_api::MockApiServer;

/// More pods than one list page (500) holds, so the pods come in three pages.
const FILLER_PODS: usize = 1_100;

fn namespace(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace",
           "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}}})
}

fn pod(namespace: &str, name: &str, app: &str, ip: &str, phase: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "namespace": namespace, "labels": {"app": app}},
           "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "i",
                    "ports": [{"name": "http", "containerPort": 8080}]}]},
           "status": {"phase": phase, "podIP": ip}})
}

/// The cluster: `shop/api` lets `app: web` in on its named port `http`; `shop/web` is a web pod;
/// `shop/old-web` was a web pod and has finished; fillers in namespace `fill`; the last pod (by
/// name) is `zz/last`, on the third page; one Node; `shop/everyone` lets 0.0.0.0/0 reach `app: open`.
fn objects() -> Vec<Value> {
    let mut objects = vec![
        namespace("shop"),
        namespace("fill"),
        namespace("zz"),
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1"},
               "spec": {"podCIDR": "10.244.1.0/24"},
               "status": {"addresses": [{"type": "InternalIP", "address": "172.31.0.11"}]}}),
        pod("shop", "api", "api", "10.244.1.2", "Running"),
        pod("shop", "web", "web", "10.244.1.3", "Running"),
        pod("shop", "old-web", "web", "10.244.1.9", "Succeeded"),
        pod("zz", "last", "web", "10.244.1.200", "Running"),
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
               "metadata": {"name": "api-from-web", "namespace": "shop"},
               "spec": {"podSelector": {"matchLabels": {"app": "api"}},
                        "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "web"}},
                                               "namespaceSelector": {}}],
                                     "ports": [{"port": "http"}]}]}}),
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
               "metadata": {"name": "everyone", "namespace": "shop"},
               "spec": {"podSelector": {"matchLabels": {"app": "open"}},
                        "ingress": [{"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}]}}),
    ];
    for i in 0..FILLER_PODS {
        let ip = format!("10.244.{}.{}", 10 + i / 250, 1 + i % 250);
        objects.push(pod("fill", &format!("p{i:04}"), "filler", &ip, "Running"));
    }
    objects
}

/// A kubeconfig whose current context is the stand-in server at `url`, without credentials.
fn kubeconfig(dir: &Path, url: &str) -> std::path::PathBuf {
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: stand-in\n\
             clusters: [{{name: stand-in, cluster: {{server: \"{url}\"}}}}]\n\
             users: [{{name: nobody, user: {{}}}}]\n\
             contexts: [{{name: stand-in, context: {{cluster: stand-in, user: nobody}}}}]\n"
        ),
    )
    .unwrap();
    path
}

/// Runs `strait ARGS...` with `kubeconfig` as KUBECONFIG (and no in-cluster service account).
fn strait_kube(kubeconfig: &Path, args: &[&str]) -> std::process::Output {
    Command::new(strait_tests::bin_dir().join("strait"))
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .unwrap()
}

#[test]
fn policy_explain_and_audit_read_a_live_cluster_through_its_api_server() {
    let server = MockApiServer::start_paginated(objects()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = kubeconfig(dir.path(), &server.url());

    // By name and by address (status.podIP), to a named port resolved on the API's pod.
    let allowed = strait_kube(
        &config,
        &["policy", "explain", "--kube", "shop/web", "shop/api:8080"],
    );
    assert_eq!(allowed.status.code(), Some(0), "{allowed:?}");
    let text = String::from_utf8_lossy(&allowed.stdout);
    assert!(
        text.contains("ingress of shop/api: allowed by shop/api-from-web rule 0"),
        "{text}"
    );
    let by_address = strait_kube(
        &config,
        &[
            "policy",
            "explain",
            "--kube",
            "10.244.1.3",
            "shop/api:8080",
            "-o",
            "json",
        ],
    );
    assert_eq!(by_address.status.code(), Some(0), "{by_address:?}");
    let answer: Value = serde_json::from_slice(&by_address.stdout).unwrap();
    assert_eq!(answer["allowed"], true, "{answer}");
    // The last pod, on the third page of pods: found, and a web pod in any namespace.
    let last = strait_kube(
        &config,
        &["policy", "explain", "--kube", "zz/last", "shop/api:8080"],
    );
    assert_eq!(last.status.code(), Some(0), "{last:?}");
    // Another port: the rule's named port does not match.
    let other_port = strait_kube(
        &config,
        &["policy", "explain", "--kube", "shop/web", "shop/api:9090"],
    );
    assert_eq!(other_port.status.code(), Some(1), "{other_port:?}");
    // A finished web pod's address is nobody's: outside the cluster, denied.
    let finished = strait_kube(
        &config,
        &["policy", "explain", "--kube", "10.244.1.9", "shop/api:8080"],
    );
    assert_eq!(finished.status.code(), Some(1), "{finished:?}");
    assert!(String::from_utf8_lossy(&finished.stdout).contains("matches no peer"));
    let gone = strait_kube(
        &config,
        &[
            "policy",
            "explain",
            "--kube",
            "shop/old-web",
            "shop/api:8080",
        ],
    );
    assert_eq!(gone.status.code(), Some(2), "{gone:?}");
    assert!(String::from_utf8_lossy(&gone.stderr).contains("no pod shop/old-web"));

    let requests = server.requests();
    let pod_pages = requests
        .iter()
        .filter(|r| r.starts_with("/api/v1/pods?"))
        .count();
    assert!(
        requests
            .iter()
            .any(|r| r.starts_with("/api/v1/pods?") && r.contains("continue=")),
        "the pods were listed page by page: {requests:?}"
    );
    // Six explains that read the cluster, three pages each.
    assert_eq!(pod_pages, 6 * 3, "{requests:?}");

    // The audit reads Nodes too: the ipBlock over everything covers the node's address.
    let audit = strait_kube(&config, &["policy", "audit", "--kube", "-o", "json"]);
    assert_eq!(audit.status.code(), Some(1), "{audit:?}");
    let report: Value = serde_json::from_slice(&audit.stdout).unwrap();
    let found: Vec<(&str, &str)> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["kind"].as_str().unwrap(), f["subject"].as_str().unwrap()))
        .collect();
    for expected in [
        ("policy-selects-no-pod", "shop/everyone"),
        ("ip-block-covers-node-range", "shop/everyone"),
        ("pod-not-isolated", "shop/web"),
        ("namespace-without-ingress-policy", "fill"),
    ] {
        assert!(found.contains(&expected), "{expected:?} in {report:#}");
    }
    assert!(
        !found.iter().any(|(_, subject)| *subject == "shop/old-web"),
        "a finished pod is no subject: {report:#}"
    );
}

/// A port free on 127.0.0.1 a moment ago (bound, then released).
fn free_loopback_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An agent's `/flows` stand-in on `ip:port`: answers one request with `lines` (NDJSON) and hands
/// back the request line.
fn fake_agent(
    ip: std::net::Ipv4Addr,
    port: u16,
    lines: Vec<String>,
) -> std::thread::JoinHandle<String> {
    use std::io::{BufRead as _, Write as _};
    let listener = std::net::TcpListener::bind((ip, port)).unwrap();
    std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
        let mut request = String::new();
        reader.read_line(&mut request).unwrap();
        let mut writer = stream;
        write!(writer, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n").unwrap();
        for line in lines {
            writeln!(writer, "{line}").unwrap();
        }
        request
    })
}

/// A verdict as an agent serves it, made on `node` at `time_ms`.
fn verdict(node: &str, time_ms: u64, port: u16) -> String {
    json!({"seq": 1, "time": "2026-12-02T00:00:00.000Z", "time_ms": time_ms, "node": node,
           "direction": "ingress", "verdict": "denied", "by": "default-deny", "protocol": "TCP",
           "from": {"ip": "10.244.1.3", "port": 40000, "pod": "shop/web"},
           "to": {"ip": "10.244.2.2", "port": port, "pod": "shop/api"},
           "policy": null, "rule": null})
    .to_string()
}

#[test]
fn strait_flows_kube_asks_the_agent_of_every_node_at_its_internal_ip() {
    // Two agents on two loopback addresses, one port: the port is free on 127.0.0.1, and almost
    // surely on 127.0.0.2.
    let port = free_loopback_port();
    let one = fake_agent([127, 0, 0, 1].into(), port, vec![verdict("node-1", 30, 81)]);
    let two = fake_agent([127, 0, 0, 2].into(), port, vec![verdict("node-2", 20, 80)]);
    let node = |name: &str, addresses: Value| {
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
               "status": {"addresses": addresses}})
    };
    let server = MockApiServer::start(vec![
        node(
            "node-1",
            json!([{"type": "Hostname", "address": "node-1"},
                   {"type": "InternalIP", "address": "127.0.0.1"}]),
        ),
        node(
            "node-2",
            json!([{"type": "ExternalIP", "address": "127.0.0.2"}]),
        ),
        node("node-3", json!([{"type": "Hostname", "address": "node-3"}])),
    ])
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = kubeconfig(dir.path(), &server.url());
    let port_text = port.to_string();
    let output = strait_kube(
        &config,
        &[
            "flows",
            "--kube",
            "--agent-port",
            &port_text,
            "--verdict",
            "denied",
            "-o",
            "json",
        ],
    );
    assert!(output.status.success(), "{output:?}");
    let nodes: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["node"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    // Merged in time order: node-2's verdict (20 ms) before node-1's (30 ms); node-3 has no address.
    assert_eq!(nodes, ["node-2", "node-1"]);
    for agent in [one, two] {
        let request = agent.join().unwrap();
        assert!(request.starts_with("GET /flows?"), "{request}");
        assert!(request.contains("verdict=denied"), "{request}");
    }
}

#[test]
fn policy_explain_kube_without_an_api_server_says_so_and_exits_2() {
    // A port nothing listens on.
    let port = free_loopback_port();
    let dir = tempfile::tempdir().unwrap();
    let config = kubeconfig(dir.path(), &format!("http://127.0.0.1:{port}"));
    let output = strait_kube(
        &config,
        &["policy", "explain", "--kube", "shop/web", "shop/api:8080"],
    );
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with("strait policy explain: --kube: listing namespaces from the API server"),
        "{stderr}"
    );
    let neither = Command::new(strait_tests::bin_dir().join("strait"))
        .args(["policy", "explain", "shop/web", "shop/api:8080"])
        .output()
        .unwrap();
    assert_eq!(neither.status.code(), Some(2), "{neither:?}");
    assert!(
        String::from_utf8_lossy(&neither.stderr).contains("--manifests"),
        "{neither:?}"
    );
}
