//! `strait lab status`: the lab's nodes, pods and services as a table for people or JSON for machines.

use std::{collections::BTreeSet, fmt::Write as _};

use k8s_openapi::api::core::v1::Service;
use serde_json::{Value, json};

use crate::{cluster::Lab, controlplane::endpoint_slices, process, state::LabState};

/// The JSON view of a lab.
pub fn to_json(lab: &Lab) -> Value {
    let state = &lab.state;
    json!({
        "name": state.name,
        "nodes": state.nodes.iter().map(|n| json!({
            "name": n.name,
            "ip": n.ip,
            "pod_cidr": n.pod_cidr,
            "netns": n.netns,
            "agent_pid": n.agent_pid,
            "agent_running": process::alive(n.agent_pid),
        })).collect::<Vec<_>>(),
        "pods": state.pods.iter().map(|p| json!({
            "namespace": p.namespace,
            "name": p.name,
            "ip": p.ip,
            "node": p.node,
            "netns": p.netns,
            "labels": p.labels,
            "ports": p.ports,
            "owner": p.owner,
        })).collect::<Vec<_>>(),
        "services": services_json(state),
    })
}

fn services_json(state: &LabState) -> Vec<Value> {
    state
        .services
        .iter()
        .map(|(key, svc)| {
            let (namespace, name) = key.split_once('/').unwrap_or(("default", key));
            let spec = svc.spec.clone().unwrap_or_default();
            json!({
                "namespace": namespace,
                "name": name,
                "type": spec.type_.unwrap_or_else(|| "ClusterIP".into()),
                "cluster_ip": spec.cluster_ip,
                "external_ips": spec.external_ips.clone().unwrap_or_default(),
                "load_balancer_ips": svc.status.iter()
                    .flat_map(|s| s.load_balancer.iter())
                    .flat_map(|lb| lb.ingress.iter().flatten())
                    .filter_map(|i| i.ip.clone())
                    .collect::<Vec<_>>(),
                "external_traffic_policy": spec.external_traffic_policy,
                "health_check_node_port": spec.health_check_node_port,
                "load_balancer_source_ranges": spec.load_balancer_source_ranges.clone().unwrap_or_default(),
                "selector": spec.selector,
                "ports": spec.ports.unwrap_or_default().iter().map(|p| json!({
                    "name": p.name,
                    "port": p.port,
                    "protocol": p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                    "target_port": p.target_port.as_ref().map(|t| match t {
                        k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(i) => json!(i),
                        k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(s) => json!(s),
                    }),
                    "node_port": p.node_port,
                    "endpoints": endpoints_of(svc, state, p.name.as_deref()),
                })).collect::<Vec<_>>(),
            })
        })
        .collect()
}

/// `IP:PORT` of every ready endpoint behind the service port named `port_name`, from the EndpointSlices
/// the lab publishes.
fn endpoints_of(service: &Service, state: &LabState, port_name: Option<&str>) -> Vec<String> {
    let mut out = Vec::new();
    for slice in endpoint_slices(service, &state.pods, &BTreeSet::new()) {
        let port = slice
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref().unwrap_or_default() == port_name.unwrap_or_default())
            .and_then(|p| p.port);
        let Some(port) = port else { continue };
        for endpoint in slice.endpoints.iter().flatten() {
            if endpoint.conditions.as_ref().and_then(|c| c.ready) != Some(false) {
                out.extend(endpoint.addresses.iter().map(|a| format!("{a}:{port}")));
            }
        }
    }
    out.sort();
    out
}

/// The table view of a lab.
pub fn to_table(lab: &Lab) -> String {
    let state = &lab.state;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "lab {}: {} node(s), {} pod(s), {} service(s)\n",
        state.name,
        state.nodes.len(),
        state.pods.len(),
        state.services.len()
    );
    let _ = writeln!(out, "{:<20} {:<14} {:<16} AGENT", "NODE", "IP", "POD CIDR");
    for n in &state.nodes {
        let agent = if process::alive(n.agent_pid) {
            format!("running (pid {})", n.agent_pid)
        } else {
            "NOT RUNNING".to_owned()
        };
        let _ = writeln!(
            out,
            "{:<20} {:<14} {:<16} {agent}",
            n.name,
            n.ip.to_string(),
            n.pod_cidr
        );
    }
    let _ = writeln!(out, "\n{:<40} {:<14} {:<20} PORTS", "POD", "IP", "NODE");
    for p in &state.pods {
        let ports: Vec<String> = p
            .ports
            .iter()
            .map(|port| format!("{}/{}", port.port, port.protocol))
            .collect();
        let _ = writeln!(
            out,
            "{:<40} {:<14} {:<20} {}",
            p.id(),
            p.ip.to_string(),
            p.node,
            ports.join(",")
        );
    }
    if !state.services.is_empty() {
        let _ = writeln!(
            out,
            "\n{:<36} {:<13} {:<14} {:<28} PORTS",
            "SERVICE", "TYPE", "CLUSTER-IP", "EXTERNAL-IP"
        );
        for svc in services_json(state) {
            let ports: Vec<String> = svc["ports"]
                .as_array()
                .map(|ps| ps.iter().map(port_text).collect())
                .unwrap_or_default();
            let strings = |key: &str| -> Vec<String> {
                svc[key]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default()
            };
            let external = [strings("load_balancer_ips"), strings("external_ips")].concat();
            let _ = writeln!(
                out,
                "{:<36} {:<13} {:<14} {:<28} {}",
                format!(
                    "{}/{}",
                    svc["namespace"].as_str().unwrap_or_default(),
                    svc["name"].as_str().unwrap_or_default()
                ),
                svc["type"].as_str().unwrap_or_default(),
                svc["cluster_ip"].as_str().unwrap_or("<none>"),
                if external.is_empty() {
                    "<none>".to_owned()
                } else {
                    external.join(",")
                },
                ports.join(",")
            );
        }
    }
    out
}

/// A service port as kubectl shows it: `80/TCP`, or `80:30000/TCP` with a node port.
fn port_text(port: &Value) -> String {
    let protocol = port["protocol"].as_str().unwrap_or("TCP");
    match port["node_port"].as_i64() {
        Some(node_port) => format!("{}:{node_port}/{protocol}", port["port"]),
        None => format!("{}/{protocol}", port["port"]),
    }
}
