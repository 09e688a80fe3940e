//! Services across the three nodes of `spans_three_nodes`: a NodePort on node 1 served by endpoints on
//! the others (SNAT to node 1, `Local` keeping the client's address), reached from outside and from a
//! pod on another node, a full-size datagram from outside
//! meeting the tunnel's MTU, Maglev giving a flow the same endpoint through every node, ClientIP affinity
//! through a node without endpoints, and `Local` answering only where its endpoint is.

use std::{
    collections::BTreeSet,
    net::{Ipv4Addr, SocketAddr, UdpSocket},
    time::Duration,
};

use strait_dataplane::netns;
use strait_lab::{
    cluster::Lab,
    network::EXTERNAL_IP,
    state::{LabOverlay, NodeRecord},
};

const NODE_PORT_SERVICES: &str = "apiVersion: v1
kind: Service
metadata: {name: server-udp, namespace: default}
spec:
  type: NodePort
  selector: {app: server}
  ports: [{name: dns, port: 53, targetPort: dns, protocol: UDP}]
---
apiVersion: v1
kind: Service
metadata: {name: web-np, namespace: default}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: Service
metadata: {name: web-np-local, namespace: default}
spec:
  type: NodePort
  externalTrafficPolicy: Local
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
";

pub(super) fn node_ports_serve_endpoints_on_other_nodes(lab: &mut Lab) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("node-ports.yaml");
    std::fs::write(&file, NODE_PORT_SERVICES).unwrap();
    lab.apply(&file).unwrap();
    let node = lab.state.nodes[0].clone();
    let port = |service: &str| {
        lab.state.services[service]
            .spec
            .as_ref()
            .unwrap()
            .ports
            .as_ref()
            .unwrap()[0]
            .node_port
            .unwrap()
    };
    // Cluster: the chosen endpoint may sit on any node; the pod sees node 1 as its client.
    let target = format!("{}:{}", node.ip, port("default/web-np"));
    let mut nodes = BTreeSet::new();
    for client_port in 0..24 {
        let (who, peer) = lab
            .probe_with_peer("external", &target, false, Duration::from_secs(2))
            .unwrap()
            .unwrap_or_else(|e| panic!("{target} (try {client_port}): {e}"));
        let peer: SocketAddr = peer.unwrap().parse().unwrap();
        assert_eq!(
            peer.ip(),
            std::net::IpAddr::V4(node.ip),
            "{target}: SNAT to node 1"
        );
        nodes.insert(lab.state.pod(&who).unwrap().node.clone());
    }
    assert!(
        nodes.len() > 1,
        "{target}: endpoints on other nodes serve too: {nodes:?}"
    );
    full_size_udp_from_outside_to_a_remote_pod(lab);
    // Local: only node 1's own endpoint, and the client's address kept.
    let target = format!("{}:{}", node.ip, port("default/web-np-local"));
    for _ in 0..6 {
        let (who, peer) = lab
            .probe_with_peer("external", &target, false, Duration::from_secs(2))
            .unwrap()
            .unwrap();
        assert_eq!(lab.state.pod(&who).unwrap().node, node.name, "{target}");
        let peer: SocketAddr = peer.unwrap().parse().unwrap();
        assert_eq!(peer.ip(), std::net::IpAddr::V4(EXTERNAL_IP));
    }
    node_ports_from_pods_on_other_nodes(
        lab,
        &node,
        port("default/web-np"),
        port("default/web-np-local"),
    );
}

/// A pod on another node reaches node 1's NodePorts, as upstream's NodePort conformance test asks of
/// every node's address: its node's socket hooks know only their own node's frontends, so the packet
/// crosses to node 1 (through the tunnel, or directly) and node 1 translates it there.
fn node_ports_from_pods_on_other_nodes(lab: &Lab, node: &NodeRecord, cluster: i32, local: i32) {
    let client = lab
        .state
        .pods
        .iter()
        .find(|p| p.node != node.name)
        .expect("a pod on another node");
    let from = client.id();
    let target = format!("{}:{cluster}", node.ip);
    let answered = lab
        .probe(&from, &target, false, Duration::from_secs(2))
        .unwrap();
    assert!(answered.is_ok(), "{from} -> {target}: {answered:?}");
    let target = format!("{}:{local}", node.ip);
    for _ in 0..3 {
        let (who, peer) = lab
            .probe_with_peer(&from, &target, false, Duration::from_secs(2))
            .unwrap()
            .unwrap_or_else(|e| panic!("{from} -> {target}: {e}"));
        assert_eq!(lab.state.pod(&who).unwrap().node, node.name, "{target}");
        let peer: SocketAddr = peer.unwrap().parse().unwrap();
        assert_eq!(
            peer.ip(),
            std::net::IpAddr::V4(client.ip),
            "Local keeps the pod's address"
        );
    }
}

/// A 1,472-byte datagram (a full 1,500-byte packet on the underlay) from outside to a NodePort on a node
/// other than its pod's. Under VXLAN that is 50 bytes more than the underlay carries once tunnelled: the
/// client's datagram has DF set (Linux's default), so the node answers with ICMP fragmentation needed
/// naming the tunnel's MTU; the client's connected socket reports EMSGSIZE, learns the MTU, and its next
/// datagram, fragmented by the client's kernel, reaches the pod, which answers. By direct routing the
/// datagram fits and is answered at once. A datagram without DF is answered either way (under VXLAN its
/// outer packet is fragmented).
fn full_size_udp_from_outside_to_a_remote_pod(lab: &Lab) {
    let server = lab.state.pod("default/server").unwrap().clone();
    let node = lab
        .state
        .nodes
        .iter()
        .find(|n| n.name != server.node)
        .unwrap()
        .clone();
    let port = lab.state.services["default/server-udp"]
        .spec
        .as_ref()
        .unwrap()
        .ports
        .as_ref()
        .unwrap()[0]
        .node_port
        .unwrap();
    let target = SocketAddr::from((node.ip, u16::try_from(port).unwrap()));
    let tunnelled = lab.state.options.overlay == LabOverlay::Vxlan;
    let refused_before = from_uplink(lab, &node.name, "too_big_for_tunnel");
    let (told, mtu, answer) = netns::run_in(&netns::path(&lab.names.external_netns()), move || {
        let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).unwrap();
        socket.connect(target).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let mut told = false;
        let mut buf = [0u8; 512];
        for _ in 0..6 {
            socket.send(&[b'x'; 1472]).unwrap();
            match socket.recv(&mut buf) {
                Ok(n) => {
                    let answer = String::from_utf8_lossy(&buf[..n]).into_owned();
                    return (told, path_mtu(&socket), Some(answer));
                }
                Err(e) if e.raw_os_error() == Some(libc::EMSGSIZE) => told = true,
                Err(_) => {}
            }
        }
        (told, path_mtu(&socket), None)
    })
    .unwrap();
    let answer = answer.unwrap_or_else(|| panic!("no answer to a full-size datagram at {target}"));
    assert!(answer.starts_with("default/server\n"), "{answer:?}");
    if tunnelled {
        assert!(
            told,
            "{target}: the client was told its datagram was too big"
        );
        assert_eq!(mtu, 1450, "{target}: the client learned the tunnel's MTU");
        assert!(
            from_uplink(lab, &node.name, "too_big_for_tunnel") > refused_before,
            "counted as too_big_for_tunnel"
        );
    } else {
        assert!(!told, "{target}: nothing to refuse by direct routing");
        assert_eq!(mtu, 1500, "{target}: the underlay's MTU");
    }
    let answered = netns::run_in(&netns::path(&lab.names.external_netns()), move || {
        let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).unwrap();
        set_pmtu_discovery(&socket, libc::IP_PMTUDISC_DONT);
        socket
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let mut buf = [0u8; 512];
        (0..4).any(|_| {
            socket.send_to(&[b'y'; 1472], target).unwrap();
            socket.recv(&mut buf).is_ok()
        })
    })
    .unwrap();
    assert!(
        answered,
        "{target}: a full-size datagram without DF is answered"
    );
}

/// The path MTU the kernel knows for a connected socket's destination (`IP_MTU`).
fn path_mtu(socket: &UdpSocket) -> i32 {
    use std::os::fd::AsRawFd;
    let mut mtu: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: an int-sized option read into an int with its length.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_MTU,
            (&raw mut mtu).cast(),
            &raw mut len,
        )
    };
    assert_eq!(rc, 0, "IP_MTU: {}", std::io::Error::last_os_error());
    mtu
}

/// Sets `IP_MTU_DISCOVER` (whether the kernel sets DF) on `socket`.
fn set_pmtu_discovery(socket: &UdpSocket, mode: libc::c_int) {
    use std::os::fd::AsRawFd;
    // SAFETY: an int-sized option written from an int with its length.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_MTU_DISCOVER,
            (&raw const mode).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(
        rc,
        0,
        "IP_MTU_DISCOVER: {}",
        std::io::Error::last_os_error()
    );
}

/// `strait_packets_total` of the uplink's tc program on `node` for `reason`.
fn from_uplink(lab: &Lab, node: &str, reason: &str) -> u64 {
    crate::counter(lab, node, ("from-uplink", reason, "ingress"))
}

/// Two UDP echo pods on nodes 2 and 3, behind a LoadBalancer IP (Maglev) and a sticky one (ClientIP
/// affinity); the `server` pod behind a `Local` LoadBalancer.
const ACROSS_NODES: &str = "apiVersion: v1
kind: Pod
metadata: {name: echo-a, namespace: default, labels: {app: echo}}
spec:
  nodeName: NODE_2
  containers: [{name: c, image: busybox, ports: [{name: dns, containerPort: 5353, protocol: UDP}]}]
---
apiVersion: v1
kind: Pod
metadata: {name: echo-b, namespace: default, labels: {app: echo}}
spec:
  nodeName: NODE_3
  containers: [{name: c, image: busybox, ports: [{name: dns, containerPort: 5353, protocol: UDP}]}]
---
apiVersion: v1
kind: Service
metadata: {name: echo-lb, namespace: default}
spec:
  type: LoadBalancer
  selector: {app: echo}
  ports: [{name: dns, port: 53, targetPort: dns, protocol: UDP}]
status:
  loadBalancer: {ingress: [{ip: 198.51.100.31}]}
---
apiVersion: v1
kind: Service
metadata: {name: echo-sticky, namespace: default}
spec:
  type: LoadBalancer
  sessionAffinity: ClientIP
  selector: {app: echo}
  ports: [{name: dns, port: 53, targetPort: dns, protocol: UDP}]
status:
  loadBalancer: {ingress: [{ip: 198.51.100.32}]}
---
apiVersion: v1
kind: Service
metadata: {name: server-local, namespace: default}
spec:
  type: LoadBalancer
  externalTrafficPolicy: Local
  selector: {app: server}
  ports: [{name: http, port: 80, targetPort: http}]
status:
  loadBalancer: {ingress: [{ip: 198.51.100.33}]}
";

/// Services whose endpoints sit on other nodes than the one a client comes in through: Maglev gives a
/// flow the same endpoint whichever node receives it, ClientIP affinity holds through a node with no
/// endpoint of its own, and with `externalTrafficPolicy: Local` only the node with an endpoint answers
/// (its health check says 200, the others' 503) while the others drop the traffic without an answer.
pub(super) fn services_agree_across_nodes(lab: &mut Lab) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("across.yaml");
    let manifest = ACROSS_NODES
        .replace("NODE_2", &lab.state.nodes[1].name)
        .replace("NODE_3", &lab.state.nodes[2].name);
    std::fs::write(&file, manifest).unwrap();
    lab.apply(&file).unwrap();
    maglev_agrees_whichever_node_receives_a_flow(lab);
    affinity_holds_through_a_node_without_endpoints(lab);
    local_policy_answers_only_where_its_endpoint_is(lab);
}

/// Routes `addr` from the external client through `node` (the lab's stand-in for an LB or ECMP router
/// choosing a node).
fn route_through(lab: &Lab, addr: &str, node: &NodeRecord) {
    let status = std::process::Command::new("ip")
        .args(["-n", &lab.names.external_netns(), "route", "replace"])
        .arg(format!("{addr}/32"))
        .args(["via", &node.ip.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "routing {addr} through {}", node.name);
}

/// A UDP socket of the external client on a port the kernel picks: one client flow, whichever node
/// the route sends it through. (Fixed ports were once taken by another socket of the namespace.)
fn external_flow(lab: &Lab) -> UdpSocket {
    netns::run_in(&netns::path(&lab.names.external_netns()), || {
        let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        socket
    })
    .unwrap()
}

/// Asks `target` over UDP on the flow `socket`; the answering pod.
fn ask_on_flow(socket: &UdpSocket, target: SocketAddr) -> String {
    let mut buf = [0u8; 256];
    for _ in 0..4 {
        socket.send_to(b"who", target).unwrap();
        if let Ok(n) = socket.recv(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            return text.lines().next().unwrap_or_default().to_owned();
        }
    }
    panic!(
        "no answer from {target} to source port {}",
        socket.local_addr().unwrap().port()
    )
}

fn maglev_agrees_whichever_node_receives_a_flow(lab: &Lab) {
    let target: SocketAddr = "198.51.100.31:53".parse().unwrap();
    let nodes = lab.state.nodes.clone();
    let mut chosen = BTreeSet::new();
    // 16 flows on two endpoints: all on one by chance once in 2^15 runs.
    for _ in 0..16 {
        let flow = external_flow(lab);
        let port = flow.local_addr().unwrap().port();
        let answers: Vec<String> = nodes
            .iter()
            .map(|node| {
                route_through(lab, "198.51.100.31", node);
                ask_on_flow(&flow, target)
            })
            .collect();
        assert!(
            answers.iter().all(|a| *a == answers[0]),
            "source port {port}: the same endpoint through every node: {answers:?}"
        );
        chosen.insert(answers[0].clone());
    }
    assert_eq!(
        chosen.len(),
        2,
        "flows spread over both endpoints: {chosen:?}"
    );
}

fn affinity_holds_through_a_node_without_endpoints(lab: &Lab) {
    let target: SocketAddr = "198.51.100.32:53".parse().unwrap();
    let entry = lab.state.nodes[0].clone();
    route_through(lab, "198.51.100.32", &entry);
    let answers: BTreeSet<String> = (0..12)
        .map(|_| ask_on_flow(&external_flow(lab), target))
        .collect();
    assert_eq!(answers.len(), 1, "one endpoint for the client: {answers:?}");
    let pod = answers.first().unwrap();
    assert_ne!(
        lab.state.pod(pod).unwrap().node,
        entry.name,
        "the endpoint is on another node"
    );
}

fn local_policy_answers_only_where_its_endpoint_is(lab: &Lab) {
    let server_node = lab.state.pod("default/server").unwrap().node.clone();
    let spec = lab.state.services["default/server-local"]
        .spec
        .clone()
        .unwrap();
    let health_port = spec
        .health_check_node_port
        .expect("a health check node port");
    let node_port = spec.ports.unwrap()[0].node_port.expect("a node port");
    for node in lab.state.nodes.clone() {
        let has_endpoint = node.name == server_node;
        let (status, body) = crate::healthz_from_outside(
            lab,
            SocketAddr::from((node.ip, u16::try_from(health_port).unwrap())),
        );
        let (want_status, want_count) = if has_endpoint { ("200", 1) } else { ("503", 0) };
        assert!(status.contains(want_status), "{}: {status}", node.name);
        assert!(
            body.contains(&format!("\"localEndpoints\":{want_count}")),
            "{}: {body}",
            node.name
        );
        let target = format!("{}:{node_port}", node.ip);
        let dropped_before = no_local_backend(lab, &node.name);
        let answer = lab
            .probe("external", &target, false, Duration::from_millis(500))
            .unwrap();
        if has_endpoint {
            assert_eq!(answer.unwrap(), "default/server", "{target}");
        } else {
            let error = answer.unwrap_err();
            assert!(
                !error.contains("refused"),
                "{target}: dropped, not refused: {error}"
            );
            assert!(
                no_local_backend(lab, &node.name) > dropped_before,
                "{target}: counted as no_local_backend"
            );
        }
    }
}

/// Packets dropped on `node`'s uplink (by XDP or tc) for a `Local` frontend without endpoints there.
fn no_local_backend(lab: &Lab, node: &str) -> u64 {
    crate::counter(lab, node, ("xdp-uplink", "no_local_backend", "ingress"))
        + from_uplink(lab, node, "no_local_backend")
}
