//! The DaemonSet's agent, started from its manifest alone: `straitd` runs in a node namespace with
//! the arguments and environment `deploy/kubernetes/30-agent.yaml` gives it (the ConfigMap's keys, the
//! downward API's node name and host IP), against the stand-in API server, and must find its pod CIDR
//! on its Node, its uplink by the node's address, publish its Flannel annotations, become ready on
//! the probe's path and port, and serve `kube-system/kube-dns` from `40-services.yaml`.
//!
//! Only the container's mounts are replaced by run-unique places (the socket and state directories,
//! the cgroup), and names are never forwarded to the machine's resolver (`--dns-upstream none`).

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{ConfigMap, Container, Service};
use serde::Deserialize as _;
use serde_json::{Value, json};
use strait_dataplane::netns;
use strait_lab::install::{self, InstallValues};
use strait_tests::NetnsGuard;
use strait_tests::stand_in_api::MockApiServer;

const NODE_IP: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);

/// Every object of the default rendering, as JSON.
/// The host port of the stand-in cluster's pod.
const HOST_PORT: u16 = 8443;

fn rendered() -> Vec<Value> {
    install::render(&InstallValues::default())
        .unwrap()
        .iter()
        .flat_map(|f| {
            serde_yaml_ng::Deserializer::from_str(&f.text)
                .map(|d| Value::deserialize(d).unwrap())
                .filter(|v| !v.is_null())
                .collect::<Vec<_>>()
        })
        .collect()
}

fn find<T: serde::de::DeserializeOwned>(objects: &[Value], kind: &str, name: &str) -> T {
    let object = objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap();
    serde_json::from_value(object.clone()).unwrap()
}

/// The agent container's environment as the kubelet would set it: values with `$(VAR)` expanded,
/// ConfigMap keys looked up, the downward API's fields filled in.
fn environment(container: &Container, config: &ConfigMap, node: &str) -> BTreeMap<String, String> {
    let data = config.data.clone().unwrap();
    let mut env = BTreeMap::new();
    for variable in container.env.iter().flatten() {
        let value = if let Some(value) = &variable.value {
            env.iter()
                .fold(value.clone(), |text, (name, value): (&String, &String)| {
                    text.replace(&format!("$({name})"), value)
                })
        } else {
            let source = variable.value_from.as_ref().unwrap();
            if let Some(field) = &source.field_ref {
                match field.field_path.as_str() {
                    "spec.nodeName" => node.to_owned(),
                    "status.hostIP" => NODE_IP.to_string(),
                    other => panic!("no downward API value for {other}"),
                }
            } else {
                let key = &source.config_map_key_ref.as_ref().unwrap().key;
                data[key].clone()
            }
        };
        env.insert(variable.name.clone(), value);
    }
    env
}

/// One HTTP GET from inside the node namespace: status code and body.
fn get(ns: &std::path::Path, path: &str) -> Option<(u16, String)> {
    let path = path.to_owned();
    netns::run_in(ns, move || {
        let mut stream = TcpStream::connect_timeout(
            &SocketAddrV4::new(NODE_IP, 9962).into(),
            Duration::from_secs(1),
        )
        .ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: node\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut reply = String::new();
        stream.read_to_string(&mut reply).ok()?;
        let code = reply.split_whitespace().nth(1)?.parse().ok()?;
        Some((code, reply.split_once("\r\n\r\n")?.1.to_owned()))
    })
    .ok()
    .flatten()
}

/// The agent process, its pins and its cgroup, removed on drop.
struct Agent {
    child: Child,
    pins: std::path::PathBuf,
    cgroup: String,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.pins);
        let _ = strait_lab::cgroup::remove_tree(&self.cgroup);
    }
}

/// Runs `ip` with the words of `line`.
fn ip(line: &str) {
    let args: Vec<&str> = line.split_whitespace().collect();
    let status = Command::new("ip").args(&args).status().unwrap();
    assert!(status.success(), "ip {line}");
}

/// A node namespace whose uplink `up0` (holding [`NODE_IP`]) is a veth to a neighbour namespace;
/// nothing leads out of the two.
fn node_with_uplink() -> (NetnsGuard, NetnsGuard) {
    let node_ns = NetnsGuard::new("sti-node");
    let peer_ns = NetnsGuard::new("sti-peer");
    let (node, peer) = (&node_ns.name, &peer_ns.name);
    ip(&format!("-n {node} link set lo up"));
    ip(&format!(
        "-n {node} link add up0 type veth peer name up0 netns {peer}"
    ));
    ip(&format!("-n {node} addr add {NODE_IP}/24 dev up0"));
    ip(&format!("-n {node} link set up0 up"));
    ip(&format!("-n {peer} addr add 10.99.0.2/24 dev up0"));
    ip(&format!("-n {peer} link set up0 up"));
    (node_ns, peer_ns)
}

/// The stand-in API server inside the node namespace (the agent reaches it on loopback) serving this
/// Node, kube-system and the rendered kube-dns Service; and a kubeconfig for it in `dir`.
fn stand_in_cluster(
    node: &str,
    node_ns: &NetnsGuard,
    objects: &[Value],
    dir: &std::path::Path,
) -> (MockApiServer, std::path::PathBuf) {
    // The cluster: this Node (its pod CIDR assigned by the controller manager), kube-system and the
    // kube-dns Service as 40-services.yaml installs it.
    let mut kube_dns = objects
        .iter()
        .find(|o| o["kind"] == "Service" && o["metadata"]["name"] == "kube-dns")
        .unwrap()
        .clone();
    kube_dns["metadata"]["resourceVersion"] = json!("1");
    let cluster = vec![
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": node, "resourceVersion": "1"},
               "spec": {"podCIDR": "10.244.7.0/24", "podCIDRs": ["10.244.7.0/24"]},
               "status": {"addresses": [{"type": "InternalIP", "address": NODE_IP.to_string()}]}}),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kube-system", "resourceVersion": "1"}}),
        kube_dns,
        // A pod of this node with a host port: the agent maps it from the trimmed Pod it watches.
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "web", "namespace": "default", "resourceVersion": "1"},
               "spec": {"nodeName": node, "containers": [{"name": "web", "image": "web",
                        "ports": [{"containerPort": 8080, "hostPort": HOST_PORT}]}]},
               "status": {"phase": "Running", "podIP": "10.244.7.9", "podIPs": [{"ip": "10.244.7.9"}]}}),
    ];
    let server = netns::run_in(&node_ns.path, move || {
        MockApiServer::start_paginated(cluster)
    })
    .unwrap()
    .unwrap();
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {{server: \"{}\"}}\n\
             users:\n- name: u\n  user: {{}}\ncontexts:\n- name: x\n  context: {{cluster: c, user: u}}\n\
             current-context: x\n",
            server.url()
        ),
    )
    .unwrap();
    (server, kubeconfig)
}

#[test]
fn the_daemonsets_agent_boots_from_its_manifest_alone() {
    strait_tests::require_root();
    let bin = strait_tests::bin_dir();
    let node = strait_tests::unique("sti");
    let (node_ns, _peer_ns) = node_with_uplink();
    let objects = rendered();
    let scratch = tempfile::tempdir().unwrap();
    let (server, kubeconfig) = stand_in_cluster(&node, &node_ns, &objects, scratch.path());

    let daemon_set: DaemonSet = find(&objects, "DaemonSet", install::NAME);
    let pod = daemon_set.spec.template.spec.unwrap();
    let container = pod.containers.iter().find(|c| c.name == "agent").unwrap();
    let config: ConfigMap = find(&objects, "ConfigMap", install::config::CONFIG_NAME);
    let mut env = environment(container, &config, &node);
    // The container's mounts, made run-unique.
    let cgroup = node.clone();
    let cgroup_dir = strait_lab::cgroup::create(&cgroup).unwrap();
    let agent_cgroup = strait_lab::cgroup::create(&format!("{cgroup}/agent")).unwrap();
    env.insert("STRAIT_CGROUP".into(), cgroup_dir.display().to_string());
    env.insert("STRAIT_PROCFS".into(), "/proc".into());
    let log = std::fs::File::create(scratch.path().join("agent.log")).unwrap();
    let mut command = Command::new(bin.join(&container.command.as_ref().unwrap()[0]));
    command
        .args(container.args.iter().flatten())
        .arg("--socket")
        .arg(scratch.path().join("run/agent.sock"))
        .arg("--state-dir")
        .arg(scratch.path().join("state"))
        .args(["--dns-upstream", "none"])
        .envs(&env)
        .env("KUBECONFIG", &kubeconfig)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log);
    let placement = strait_lab::process::Placement {
        netns: node_ns.path.clone(),
        cgroup: Some(agent_cgroup),
        resolv_conf: None,
    };
    let agent = Agent {
        child: strait_lab::process::spawn_in(&placement, &mut command, false).unwrap(),
        pins: std::path::PathBuf::from("/sys/fs/bpf/strait").join(&node),
        cgroup,
    };
    let log_text = || std::fs::read_to_string(scratch.path().join("agent.log")).unwrap_or_default();

    // Ready on the readiness probe's path and port, once the first sync reached the kernel.
    let deadline = Instant::now() + Duration::from_mins(1);
    loop {
        if let Some((200, _)) = get(&node_ns.path, "/readyz") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the agent never became ready; its log:\n{}",
            log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(get(&node_ns.path, "/healthz").map(|r| r.0), Some(200));
    let log = log_text();
    assert!(log.contains("pod CIDR read from the Node"), "{log}");
    assert!(log.contains("uplink found by the node's address"), "{log}");

    // Its end of the overlay, published on its Node as flanneld would.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let published = server.object("/api/v1/nodes", &node).unwrap();
        if published["metadata"]["annotations"]["flannel.alpha.coreos.com/public-ip"]
            == NODE_IP.to_string()
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no Flannel annotations on the Node: {published:#}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // kube-dns from the manifests is served by this agent: its frontends are in the kernel.
    let (code, services) = get(&node_ns.path, "/services").unwrap();
    assert_eq!(code, 200, "{services}");
    let dns: Service = find(&objects, "Service", "kube-dns");
    let dns_ip = dns.spec.unwrap().cluster_ip.unwrap();
    assert!(
        services.contains(&dns_ip) && services.contains("kube-dns"),
        "{services}"
    );
    // The pod's host port is a frontend on the node's address, led to the pod.
    let host_port = format!("{NODE_IP}:{HOST_PORT}");
    assert!(
        services.lines().any(|l| l.contains(&host_port)
            && l.contains("pod default/web")
            && l.contains("10.244.7.9:8080")),
        "{services}"
    );
    let (_, metrics) = get(&node_ns.path, "/metrics").unwrap();
    assert!(
        metrics.contains(&format!("strait_build_info{{node=\"{node}\"")),
        "the node name from the downward API"
    );
    drop(agent);
}
