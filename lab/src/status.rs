//! `strait lab status`: the lab's nodes, pods and services (with each one's count of ready endpoints, so
//! an empty Service stands out) as a table for people, a wide table, or JSON for machines.

use std::{collections::BTreeSet, fmt::Write as _};

use k8s_openapi::api::core::v1::Service;
use serde_json::{Value, json};

use crate::{cluster::Lab, listing::table, process, state::LabState};

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
        "namespaces": crate::apply::known_namespaces(state).iter().map(|(name, ns)| json!({
            "name": name,
            "labels": ns.metadata.labels.clone().unwrap_or_default(),
        })).collect::<Vec<_>>(),
        "services": services_json(state),
        "external": json!({
            "ip": crate::network::EXTERNAL_IP,
            "netns": lab.names.external_netns(),
            "server_pid": state.external_pid,
            "server_running": lab.external_server_running(),
            "identity": crate::external::EXTERNAL_IDENTITY,
            "ports": crate::external::EXTERNAL_PORTS,
        }),
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
                "endpoint_count": ready_addresses(svc, state),
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
    for slice in crate::publish::service_slices(state, service) {
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

/// How many distinct pod addresses are ready endpoints of the service.
fn ready_addresses(service: &Service, state: &LabState) -> usize {
    let mut addresses = BTreeSet::new();
    for slice in crate::publish::service_slices(state, service) {
        for endpoint in slice.endpoints.iter().flatten() {
            if endpoint.conditions.as_ref().and_then(|c| c.ready) != Some(false) {
                addresses.extend(endpoint.addresses.iter().cloned());
            }
        }
    }
    addresses.len()
}

/// The table view of a lab.
pub fn to_table(lab: &Lab) -> String {
    render_table(&lab.state, false)
}

/// The table view of a lab with more columns (pod namespaces and labels, service selectors and
/// endpoint addresses).
pub fn to_wide_table(lab: &Lab) -> String {
    render_table(&lab.state, true)
}

fn render_table(state: &LabState, wide: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "lab {}: {} node(s), {} pod(s), {} service(s)\n",
        state.name,
        state.nodes.len(),
        state.pods.len(),
        state.services.len()
    );
    out.push_str(&nodes_table(state, wide));
    let pods = pods_table(state, wide);
    if !pods.is_empty() {
        out.push('\n');
        out.push_str(&pods);
    }
    if !state.services.is_empty() {
        out.push('\n');
        out.push_str(&services_table(state, wide));
    }
    let namespaces: Vec<&str> = state.namespaces.keys().map(String::as_str).collect();
    if !namespaces.is_empty() {
        let _ = writeln!(out, "\nnamespaces applied: {}", namespaces.join(", "));
    }
    out
}

fn nodes_table(state: &LabState, wide: bool) -> String {
    let mut headers = vec!["NODE", "IP", "POD CIDR", "AGENT"];
    if wide {
        headers.push("NETNS");
    }
    let rows: Vec<Vec<String>> = state
        .nodes
        .iter()
        .map(|n| {
            let agent = if !n.runs_strait() {
                "none (Flannel reference node)".to_owned()
            } else if process::alive(n.agent_pid) {
                format!("running (pid {})", n.agent_pid)
            } else {
                "NOT RUNNING".to_owned()
            };
            let mut row = vec![n.name.clone(), n.ip.to_string(), n.pod_cidr.clone(), agent];
            if wide {
                row.push(n.netns.clone());
            }
            row
        })
        .collect();
    table(&headers, &rows)
}

/// The pods' table; empty without pods.
fn pods_table(state: &LabState, wide: bool) -> String {
    let mut headers = vec!["POD", "IP", "NODE", "PORTS"];
    if wide {
        headers.extend(["LABELS", "OWNER"]);
    }
    let rows: Vec<Vec<String>> = state
        .pods
        .iter()
        .map(|p| {
            let ports: Vec<String> = p
                .ports
                .iter()
                .map(|port| match (port.host_port, port.host_ip.as_deref()) {
                    // As `docker ps` shows a published port: the node's side first.
                    (Some(host), Some(ip)) => {
                        format!("{ip}:{host}->{}/{}", port.port, port.protocol)
                    }
                    (Some(host), None) => format!("{host}->{}/{}", port.port, port.protocol),
                    (None, _) => format!("{}/{}", port.port, port.protocol),
                })
                .collect();
            let mut row = vec![
                p.id(),
                p.ip.to_string(),
                p.node.clone(),
                or_none(ports.join(",")),
            ];
            if wide {
                let labels: Vec<String> =
                    p.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                row.push(or_none(labels.join(",")));
                row.push(p.owner.clone().unwrap_or_else(|| "<none>".into()));
            }
            row
        })
        .collect();
    if rows.is_empty() {
        return String::new();
    }
    table(&headers, &rows)
}

/// The services' table, with a note for each one whose selector matches no ready pod.
fn services_table(state: &LabState, wide: bool) -> String {
    let services = services_json(state);
    let mut headers = vec![
        "SERVICE",
        "TYPE",
        "CLUSTER-IP",
        "EXTERNAL-IP",
        "PORTS",
        "ENDPOINTS",
    ];
    if wide {
        headers.extend(["SELECTOR", "ENDPOINT ADDRESSES"]);
    }
    let mut empty = Vec::new();
    let rows: Vec<Vec<String>> = services
        .iter()
        .map(|svc| {
            let ports: Vec<String> = svc["ports"]
                .as_array()
                .map(|ps| ps.iter().map(port_text).collect())
                .unwrap_or_default();
            let external = [
                strings(svc, "load_balancer_ips"),
                strings(svc, "external_ips"),
            ]
            .concat();
            let id = format!(
                "{}/{}",
                svc["namespace"].as_str().unwrap_or_default(),
                svc["name"].as_str().unwrap_or_default()
            );
            let count = svc["endpoint_count"].as_u64().unwrap_or_default();
            if count == 0 && !svc["selector"].is_null() {
                empty.push(id.clone());
            }
            let mut row = vec![
                id,
                svc["type"].as_str().unwrap_or_default().to_owned(),
                svc["cluster_ip"].as_str().unwrap_or("<none>").to_owned(),
                or_none(external.join(",")),
                ports.join(","),
                count.to_string(),
            ];
            if wide {
                let selector: Vec<String> = svc["selector"]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                            .collect()
                    })
                    .unwrap_or_default();
                row.push(or_none(selector.join(",")));
                row.push(or_none(endpoint_addresses(svc).join(",")));
            }
            row
        })
        .collect();
    let mut out = table(&headers, &rows);
    for id in empty {
        let _ = writeln!(
            out,
            "note: service {id} has no endpoints: no ready pod matches its selector"
        );
    }
    out
}

/// `<none>` for an empty cell, as kubectl shows it.
fn or_none(text: String) -> String {
    if text.is_empty() {
        "<none>".to_owned()
    } else {
        text
    }
}

/// The strings of the array `key` of a service's JSON view.
fn strings(svc: &Value, key: &str) -> Vec<String> {
    svc[key]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Every `IP:PORT` endpoint of a service's JSON view, over all its ports.
fn endpoint_addresses(svc: &Value) -> Vec<String> {
    let mut all: Vec<String> = svc["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|p| strings(p, "endpoints"))
        .collect();
    all.sort();
    all.dedup();
    all
}

/// A service port as kubectl shows it: `80/TCP`, or `80:30000/TCP` with a node port.
fn port_text(port: &Value) -> String {
    let protocol = port["protocol"].as_str().unwrap_or("TCP");
    match port["node_port"].as_i64() {
        Some(node_port) => format!("{}:{node_port}/{protocol}", port["port"]),
        None => format!("{}/{protocol}", port["port"]),
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::{manifests::PodDns, state::PodRecord};

    fn service(name: &str, app: &str) -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"selector": {"app": app}, "clusterIP": "10.96.0.10",
                     "ports": [{"port": 80, "targetPort": 8080}]},
        }))
        .unwrap()
    }

    fn state() -> LabState {
        let mut state = LabState {
            name: "t".into(),
            ..LabState::default()
        };
        state.pods.push(PodRecord {
            namespace: "default".into(),
            name: "web-1".into(),
            node: "t-node-1".into(),
            container_id: String::new(),
            netns: String::new(),
            cgroup: String::new(),
            ip: Ipv4Addr::new(10, 244, 1, 4),
            ports: Vec::new(),
            labels: [("app".to_owned(), "web".to_owned())].into(),
            owner: None,
            template_hash: None,
            workload_pid: 0,
            dns: PodDns::default(),
        });
        state
            .services
            .insert("default/web".into(), service("web", "web"));
        state
            .services
            .insert("default/lost".into(), service("lost", "nobody"));
        state
    }

    #[test]
    fn services_show_their_endpoint_counts_and_empty_ones_stand_out() {
        let state = state();
        let json = services_json(&state);
        let count =
            |name: &str| json.iter().find(|s| s["name"] == name).unwrap()["endpoint_count"].clone();
        assert_eq!(count("web"), 1);
        assert_eq!(count("lost"), 0);

        let text = render_table(&state, false);
        let row = |id: &str| {
            text.lines()
                .find(|l| l.starts_with(&format!("{id} ")))
                .unwrap_or_else(|| panic!("{text}"))
                .to_owned()
        };
        assert!(text.contains("ENDPOINTS"), "{text}");
        assert!(row("default/web").ends_with(" 1"), "{text}");
        assert!(row("default/lost").ends_with(" 0"), "{text}");
        assert!(
            text.contains("note: service default/lost has no endpoints"),
            "{text}"
        );
        assert!(!text.contains("service default/web has no"), "{text}");

        let wide = render_table(&state, true);
        let web = wide
            .lines()
            .find(|l| l.starts_with("default/web "))
            .unwrap();
        assert!(
            web.contains("app=web") && web.ends_with("10.244.1.4:8080"),
            "{wide}"
        );
        assert!(wide.contains("web-1") && wide.contains("LABELS"), "{wide}");
    }

    #[test]
    fn host_ports_and_applied_slices_show() {
        let mut state = state();
        state.pods[0].ports = vec![
            crate::manifests::PodPort {
                name: None,
                port: 8080,
                protocol: crate::manifests::Protocol::Tcp,
                host_port: Some(54323),
                host_ip: Some("127.0.0.1".into()),
            },
            crate::manifests::PodPort {
                name: None,
                port: 53,
                protocol: crate::manifests::Protocol::Udp,
                host_port: Some(5353),
                host_ip: None,
            },
        ];
        let mut manual = service("manual", "x");
        manual.spec.as_mut().unwrap().selector = None;
        state.services.insert("default/manual".into(), manual);
        state.endpoint_slices.insert(
            "default/manual-1".into(),
            serde_json::from_value(json!({
                "metadata": {"name": "manual-1", "namespace": "default",
                             "labels": {"kubernetes.io/service-name": "manual"}},
                "addressType": "IPv4",
                "ports": [{"port": 9090}],
                "endpoints": [{"addresses": ["10.244.1.9"]}, {"addresses": ["10.244.1.10"]}],
            }))
            .unwrap(),
        );
        let text = render_table(&state, false);
        assert!(
            text.contains("127.0.0.1:54323->8080/TCP,5353->53/UDP"),
            "{text}"
        );
        let json = services_json(&state);
        let manual = json.iter().find(|s| s["name"] == "manual").unwrap();
        assert_eq!(manual["endpoint_count"], 2, "{manual}");
        assert!(!text.contains("service default/manual has no"), "{text}");
    }
}
