//! The labs of a cross-node run and what each stack needs from them ([`Endpoint`]): two strait labs
//! (VXLAN and direct routing, two strait nodes each, the benchmark Service applied through the lab)
//! and two Flannel labs (one strait node and two Flannel reference nodes, kube-proxy's rules loaded
//! on the client's node; one of them switched to host-gw). In every lab the client pod runs on one
//! node and the server pod, with netbench's server, on the other.

use std::{
    fmt::Write as _,
    net::{Ipv4Addr, SocketAddr},
    path::Path,
};

use strait_dataplane::netns;
use strait_lab::{
    cluster::Lab,
    process::Placement,
    state::{LabOptions, LabOverlay, LabXdp, NodeRecord},
};
use strait_tests::LabGuard;

use super::{CrossError, Stack, error, flannel_services, host_gw, signals};
use crate::netbench::{
    catalog::{SERVER_PORT, TARGET_NODE_PORT, TARGET_PORT},
    results::Scenario,
    run::progress,
    wiring::{ServerGuard, Wiring},
};

/// The client and server pods, in namespace `default`.
pub const CLIENT_POD: &str = "default/bench-client";
pub const SERVER_POD: &str = "default/bench-server";
/// The benchmark Service on the strait labs.
pub const SERVICE: &str = "default/bench-server";

/// One stack in one scenario, ready to measure.
pub struct Endpoint {
    pub stack: Stack,
    pub scenario: Scenario,
    /// The lab's name (the marker of every process started in it).
    pub lab: String,
    pub wiring: Wiring,
}

/// A lab with its benchmark servers; the servers stop and the lab is removed when dropped.
pub struct BuiltLab {
    pub lab: Lab,
    /// Dropped before the guard.
    servers: Vec<ServerGuard>,
    _guard: LabGuard,
}

impl BuiltLab {
    /// Checks that every server is still running.
    pub fn ensure_alive(&mut self) -> Result<(), CrossError> {
        for server in &mut self.servers {
            server
                .ensure_alive()
                .map_err(error::run(format!("lab {}", self.lab.names.lab)))?;
        }
        Ok(())
    }
}

/// The two pods (client on `a`, server on `b`) and, with `service`, the benchmark Service: NodePort,
/// TCP and UDP port 80 to the server's 5201, node port 30080, externalTrafficPolicy Cluster.
pub fn manifest(a: &str, b: &str, service: bool) -> String {
    let pod = |key: &str, node: &str| {
        let name = key.trim_start_matches("default/");
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: default, labels: {{app: {name}}}}}\n\
             spec: {{nodeName: {node}, containers: [{{name: c, image: netbench}}]}}\n"
        )
    };
    let mut text = format!("{}---\n{}", pod(CLIENT_POD, a), pod(SERVER_POD, b));
    if service {
        let name = SERVICE.trim_start_matches("default/");
        let port = |protocol: &str| {
            format!(
                "  - {{name: {}, port: {TARGET_PORT}, targetPort: {SERVER_PORT}, nodePort: {TARGET_NODE_PORT}, protocol: {protocol}}}\n",
                protocol.to_lowercase()
            )
        };
        let _ = write!(
            text,
            "---\napiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  \
             type: NodePort\n  externalTrafficPolicy: Cluster\n  selector: {{app: {name}}}\n  ports:\n{}{}",
            port("TCP"),
            port("UDP")
        );
    }
    text
}

/// Brings up lab `prefix…` (run-unique) with `strait` strait nodes (their agents in `xdp` mode) and
/// `flannel` Flannel nodes.
fn up(
    prefix: &str,
    strait: usize,
    flannel: usize,
    overlay: LabOverlay,
    xdp: LabXdp,
) -> Result<(Lab, LabGuard), CrossError> {
    let guard = LabGuard::new(prefix);
    signals::register(&guard.name)?;
    let options = LabOptions {
        overlay,
        flannel_nodes: flannel,
        xdp_mode: xdp,
        ..LabOptions::default()
    };
    let lab = Lab::up_with(&guard.name, strait, None, options)
        .map_err(error::lab(format!("bringing up lab {}", guard.name)))?;
    Ok((lab, guard))
}

/// Applies the pods (and the Service) with the client on `a` and the server on `b`.
fn apply(lab: &mut Lab, a: &NodeRecord, b: &NodeRecord, service: bool) -> Result<(), CrossError> {
    let text = manifest(&a.name, &b.name, service);
    lab.apply_str(Path::new("cross-node.yaml"), &text)
        .map_err(error::lab(format!(
            "applying the benchmark pods to lab {}",
            lab.names.lab
        )))?;
    Ok(())
}

/// Where a process runs in node `node`'s namespace (no cgroup: a Flannel node has none of its own).
fn on_node(node: &NodeRecord) -> Placement {
    Placement {
        netns: netns::path(&node.netns),
        cgroup: None,
        resolv_conf: None,
    }
}

/// Builds everything a stack's endpoints share in one lab: the server pod's address and placement,
/// the client pod's placement and the external client's.
struct Parts {
    client: Placement,
    server: Placement,
    external: Placement,
    server_ip: Ipv4Addr,
}

fn parts(lab: &Lab) -> Result<Parts, CrossError> {
    let placement = |who: &str| {
        lab.placement(who)
            .map_err(error::lab(format!("placing {who}")))
    };
    let server_ip =
        lab.state.pod(SERVER_POD).map(|p| p.ip).ok_or_else(|| {
            CrossError::Invalid(format!("lab {} has no {SERVER_POD}", lab.names.lab))
        })?;
    Ok(Parts {
        client: placement(CLIENT_POD)?,
        server: placement(SERVER_POD)?,
        external: placement("external")?,
        server_ip,
    })
}

/// The three scenarios of `stack`: pod to the server pod, pod to `cluster_ip`, external to node
/// `a`'s node port.
fn service_endpoints(
    stack: Stack,
    lab: &Lab,
    parts: &Parts,
    cluster_ip: Ipv4Addr,
    a: &NodeRecord,
) -> Vec<Endpoint> {
    let endpoint = |scenario, client: &Placement, target: SocketAddr| Endpoint {
        stack,
        scenario,
        lab: lab.names.lab.clone(),
        wiring: Wiring {
            client: client.clone(),
            server: parts.server.clone(),
            target,
            programming: None,
        },
    };
    vec![
        endpoint(
            Scenario::PodToPod,
            &parts.client,
            (parts.server_ip, SERVER_PORT).into(),
        ),
        endpoint(
            Scenario::PodToClusterIp,
            &parts.client,
            (cluster_ip, TARGET_PORT).into(),
        ),
        endpoint(
            Scenario::ExternalToNodePort,
            &parts.external,
            (a.ip, TARGET_NODE_PORT).into(),
        ),
    ]
}

/// Starts netbench's server at `placement` in `lab`.
fn serve(placement: &Placement, lab: &Lab) -> Result<ServerGuard, CrossError> {
    ServerGuard::start(placement, &lab.names.lab).map_err(error::run(format!(
        "starting the server in lab {}",
        lab.names.lab
    )))
}

/// Node `a` to node `b` of `lab`, no pods: the server in `b`'s namespace, the client in `a`'s.
fn underlay(
    stack: Stack,
    lab: &Lab,
    a: &NodeRecord,
    b: &NodeRecord,
) -> Result<(Endpoint, ServerGuard), CrossError> {
    let server = on_node(b);
    let guard = serve(&server, lab)?;
    let endpoint = Endpoint {
        stack,
        scenario: Scenario::PodToPod,
        lab: lab.names.lab.clone(),
        wiring: Wiring {
            client: on_node(a),
            server,
            target: (b.ip, SERVER_PORT).into(),
            programming: None,
        },
    };
    Ok((endpoint, guard))
}

/// A lab of two strait nodes in `overlay` mode for `stack`, with the Service applied through the lab
/// (the agents program it); the direct lab also serves [`Stack::UnderlayStraitNodes`].
pub fn strait(
    stack: Stack,
    prefix: &str,
    overlay: LabOverlay,
    xdp: LabXdp,
) -> Result<(BuiltLab, Vec<Endpoint>), CrossError> {
    let (mut lab, guard) = up(prefix, 2, 0, overlay, xdp)?;
    let (a, b) = (lab.state.nodes[0].clone(), lab.state.nodes[1].clone());
    apply(&mut lab, &a, &b, true)?;
    let cluster_ip = lab
        .state
        .services
        .get(SERVICE)
        .and_then(|s| s.spec.as_ref()?.cluster_ip.as_deref()?.parse().ok())
        .ok_or_else(|| {
            CrossError::Invalid(format!("lab {} gave {SERVICE} no ClusterIP", lab.names.lab))
        })?;
    let parts = parts(&lab)?;
    let mut servers = vec![serve(&parts.server, &lab)?];
    let mut endpoints = service_endpoints(stack, &lab, &parts, cluster_ip, &a);
    if overlay == LabOverlay::Direct {
        let (endpoint, server) = underlay(Stack::UnderlayStraitNodes, &lab, &a, &b)?;
        endpoints.push(endpoint);
        servers.push(server);
    }
    let what = format!("ClusterIP {cluster_ip}");
    Ok(built(
        stack,
        (lab, guard),
        servers,
        endpoints,
        (&a, &b),
        &what,
    ))
}

/// A lab of one strait node and two Flannel reference nodes for `stack` (Flannel, or host-gw after
/// [`host_gw::convert`]), with kube-proxy's rules on the client's node; the Flannel lab also serves
/// [`Stack::Underlay`].
pub fn flannel(stack: Stack, prefix: &str) -> Result<(BuiltLab, Vec<Endpoint>), CrossError> {
    let (mut lab, guard) = up(prefix, 1, 2, LabOverlay::Vxlan, LabXdp::default())?;
    let (a, b) = (lab.state.nodes[1].clone(), lab.state.nodes[2].clone());
    apply(&mut lab, &a, &b, false)?;
    if stack == Stack::HostGw {
        let pods: Vec<_> = [CLIENT_POD, SERVER_POD]
            .iter()
            .filter_map(|p| lab.state.pod(p))
            .collect();
        host_gw::convert(&lab, &a, &b, &pods)?;
    }
    let parts = parts(&lab)?;
    let cluster_ip =
        flannel_services::load(&lab.names.lab, &netns::path(&a.netns), parts.server_ip)?;
    let mut servers = vec![serve(&parts.server, &lab)?];
    let mut endpoints = service_endpoints(stack, &lab, &parts, cluster_ip, &a);
    if stack == Stack::Flannel {
        let (endpoint, server) = underlay(Stack::Underlay, &lab, &a, &b)?;
        endpoints.push(endpoint);
        servers.push(server);
    }
    let what = format!("kube-proxy ClusterIP {cluster_ip}");
    Ok(built(
        stack,
        (lab, guard),
        servers,
        endpoints,
        (&a, &b),
        &what,
    ))
}

/// Says what was built for `stack` (client node `a`, server node `b`) and hands it over.
fn built(
    stack: Stack,
    (lab, guard): (Lab, LabGuard),
    servers: Vec<ServerGuard>,
    endpoints: Vec<Endpoint>,
    (a, b): (&NodeRecord, &NodeRecord),
    what: &str,
) -> (BuiltLab, Vec<Endpoint>) {
    progress(format_args!(
        "cross-node: {} in lab {} ({} to {}, {what})",
        stack.name(),
        lab.names.lab,
        a.name,
        b.name
    ));
    (
        BuiltLab {
            lab,
            servers,
            _guard: guard,
        },
        endpoints,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_manifest_pins_the_pods_and_the_service_targets_the_server_port() {
        let text = manifest("lab-node-1", "lab-node-2", true);
        let objects = strait_lab::manifests::parse_str(Path::new("x.yaml"), &text).unwrap();
        let names: Vec<String> = objects
            .iter()
            .map(|o| format!("{} {}/{}", o.kind(), o.namespace(), o.name()))
            .collect();
        assert_eq!(
            names,
            [
                "Pod default/bench-client",
                "Pod default/bench-server",
                "Service default/bench-server"
            ]
        );
        assert!(text.contains("nodeName: lab-node-2"), "{text}");
        assert!(
            text.contains("targetPort: 5201, nodePort: 30080, protocol: UDP"),
            "{text}"
        );
        assert_eq!(
            strait_lab::manifests::parse_str(Path::new("x.yaml"), &manifest("a", "b", false))
                .unwrap()
                .len(),
            2
        );
    }
}
