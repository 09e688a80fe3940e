//! End-to-end suites on real namespaces, veths and eBPF programs: a lab cluster per test (unique names,
//! torn down by guards even on failure). One test binary; each file is one concern.

mod agent_api;
mod apply;
mod audit_mode;
mod cli;
mod cni;
mod custom_slices;
mod dashboards;
mod datapath;
mod dns;
mod dns_forward;
mod egress;
mod external;
mod flannel;
mod flows;
mod host_ports;
mod in_cluster;
mod lifecycle;
mod malformed;
mod node_ports;
mod overlay;
mod policy;
mod policy_audit;
mod policy_kube;
mod policy_propose;
mod reachability;
mod service_changes;
mod services;

use std::{net::Ipv4Addr, path::PathBuf, time::Duration};

use serde_json::Value;
use strait_lab::cluster::Lab;

/// The repository's example manifests.
pub fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

/// Brings up a one-node lab from `examples/pods.yaml` (pods `default/client` and `default/server`).
pub fn two_pod_lab(name: &str) -> Lab {
    strait_tests::require_root();
    strait_tests::bin_dir();
    Lab::up(name, 1, Some(&examples().join("pods.yaml"))).expect("lab up")
}

/// The value of `strait_packets_total{program, reason, direction}` on `node`; 0 when the agent has not
/// counted any.
pub fn counter(lab: &Lab, node: &str, (program, reason, direction): (&str, &str, &str)) -> u64 {
    let text = lab.agent_get(node, "/metrics").expect("metrics");
    let needle = format!("program=\"{program}\",reason=\"{reason}\",direction=\"{direction}\"}} ");
    text.lines()
        .filter(|l| l.starts_with("strait_packets_total{"))
        .find_map(|l| {
            l.split_once(&needle)
                .map(|(_, v)| v.trim().parse::<u64>().expect("counter value"))
        })
        .unwrap_or(0)
}

/// The value of `strait_packets_total` for from-pod egress with `reason` on `node`.
pub fn packets(lab: &Lab, node: &str, reason: &str) -> u64 {
    let text = lab.agent_get(node, "/metrics").expect("metrics");
    let needle = format!("program=\"from-pod\",reason=\"{reason}\",direction=\"egress\"}} ");
    text.lines()
        .filter(|l| l.starts_with("strait_packets_total{"))
        .find_map(|l| {
            l.split_once(&needle)
                .map(|(_, v)| v.trim().parse::<u64>().expect("counter value"))
        })
        .unwrap_or_else(|| panic!("no from-pod {reason} counter in:\n{text}"))
}

/// The agent's endpoint list of `node` (attachments in service), asked on its unix socket.
pub fn endpoints(lab: &Lab, node: &str) -> Vec<Value> {
    let list = lab.agent_attachments(node).expect("endpoints");
    list.attachments
        .iter()
        .map(|a| serde_json::to_value(a).expect("endpoint JSON"))
        .collect()
}

/// Probes over TCP and returns who answered (panics with the reason when nobody did).
pub fn who_answers(lab: &Lab, from: &str, ip: Ipv4Addr, port: u16) -> String {
    lab.probe(from, &format!("{ip}:{port}"), false, Duration::from_secs(2))
        .expect("probe ran")
        .unwrap_or_else(|why| panic!("{from} -> {ip}:{port} blocked: {why}"))
}

/// `GET /healthz` from the lab's external client to `addr` (a `healthCheckNodePort`); the status line
/// and the body.
pub fn healthz_from_outside(lab: &Lab, addr: std::net::SocketAddr) -> (String, String) {
    use std::io::{Read as _, Write as _};
    let external = strait_dataplane::netns::path(&lab.names.external_netns());
    strait_dataplane::netns::run_in(&external, move || {
        let mut stream =
            std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(2))
                .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: lb\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).unwrap();
        let status = text.lines().next().unwrap_or_default().to_owned();
        let body = text.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
        (status, body)
    })
    .unwrap()
}
