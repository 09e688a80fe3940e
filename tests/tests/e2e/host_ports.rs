//! `hostPort`, as the upstream conformance test "HostPort validates that there is no conflict between
//! pods with same hostPort but different hostIP and protocol" runs it: three pods on one node share
//! host port 54323, told apart by hostIP (loopback, the node's address) and protocol (TCP, UDP). Each
//! is reached at its own address and protocol from the node itself (socket hooks, loopback included),
//! from the external namespace (the uplink's per-packet path, the client's address kept), from a pod
//! on the other node (through the tunnel) and from the other node; a fourth pod asking for a held port is not placed on that node; a pod deleted takes
//! its host port with it.

use std::{path::Path, time::Duration};

use strait_lab::{cluster::Lab, network::EXTERNAL_IP};
use strait_tests::LabGuard;

const HOST_PORT: u16 = 54323;

/// A pod on `node` with one container port published as host port [`HOST_PORT`].
fn pod(node: &str, name: &str, port: u16, host_ip: &str, protocol: &str) -> String {
    format!(
        "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  \
         nodeName: {node}\n  containers:\n  - name: agnhost\n    image: agnhost\n    \
         ports: [{{containerPort: {port}, hostPort: {HOST_PORT}, hostIP: '{host_ip}', protocol: {protocol}}}]\n"
    )
}

fn ask(lab: &Lab, who: &str, target: &str, udp: bool) -> Result<String, String> {
    lab.probe(who, target, udp, Duration::from_secs(2)).unwrap()
}

#[test]
fn pods_sharing_a_host_port_are_told_apart_by_host_ip_and_protocol() {
    strait_tests::require_root();
    strait_tests::bin_dir();
    let guard = LabGuard::new("hpt");
    let mut lab = Lab::up(&guard.name, 2, None).expect("lab up");
    let (a, b) = (lab.state.nodes[0].clone(), lab.state.nodes[1].clone());
    let node_ip = a.ip.to_string();
    let pod2 = pod(&a.name, "pod2", 8080, &node_ip, "TCP");
    let three = pod(&a.name, "pod1", 8080, "127.0.0.1", "TCP")
        + &pod2
        + &pod(&a.name, "pod3", 8081, &node_ip, "UDP");
    let client = format!(
        "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: client, namespace: default}}\nspec:\n  \
         nodeName: {}\n  containers: [{{name: c, image: i, ports: [{{containerPort: 80}}]}}]\n",
        b.name
    );
    lab.apply_str(Path::new("pods"), &(three + &client))
        .expect("the three pods and a client on the other node");
    let on_node = format!("node/{}", a.name);
    let loopback = format!("127.0.0.1:{HOST_PORT}");
    let node_address = format!("{}:{HOST_PORT}", a.ip);

    // From the node itself: the socket hooks, loopback included.
    assert_eq!(
        ask(&lab, &on_node, &loopback, false).as_deref(),
        Ok("default/pod1")
    );
    assert_eq!(
        ask(&lab, &on_node, &node_address, false).as_deref(),
        Ok("default/pod2")
    );
    assert_eq!(
        ask(&lab, &on_node, &node_address, true).as_deref(),
        Ok("default/pod3")
    );
    // Loopback over UDP is nobody's.
    assert!(ask(&lab, &on_node, &loopback, true).is_err());

    // From outside the cluster, through the uplink: the pod sees the client's own address.
    for (udp, pod) in [(false, "default/pod2"), (true, "default/pod3")] {
        let (who, peer) = lab
            .probe_with_peer("external", &node_address, udp, Duration::from_secs(2))
            .unwrap()
            .unwrap_or_else(|e| panic!("external, udp {udp}: {e}"));
        assert_eq!(who, pod);
        let peer = peer.expect("the pod names its client");
        assert!(
            peer.starts_with(&format!("{EXTERNAL_IP}:")),
            "the client keeps its address (no SNAT), as with portmap: {peer}"
        );
    }
    // From a pod on the other node: its node's hooks know only their own node's frontends, so the
    // packet crosses to the pods' node (through the tunnel), which translates it; no SNAT.
    let client_ip = lab.state.pod("default/client").unwrap().ip;
    for (udp, pod) in [(false, "default/pod2"), (true, "default/pod3")] {
        let (who, peer) = lab
            .probe_with_peer("default/client", &node_address, udp, Duration::from_secs(2))
            .unwrap()
            .unwrap_or_else(|e| panic!("from a pod on the other node, udp {udp}: {e}"));
        assert_eq!(who, pod);
        assert!(peer.unwrap().starts_with(&format!("{client_ip}:")));
    }
    // From the other node, over the underlay.
    let other_node = format!("node/{}", b.name);
    assert_eq!(
        ask(&lab, &other_node, &node_address, false).as_deref(),
        Ok("default/pod2")
    );
    assert_eq!(
        ask(&lab, &other_node, &node_address, true).as_deref(),
        Ok("default/pod3")
    );

    // A fourth pod asking for the port on every address of that node is not placed there.
    let clash = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: pod4, namespace: default}}\nspec:\n  nodeName: {}\n  \
         containers: [{{name: c, image: i, ports: [{{containerPort: 80, hostPort: {HOST_PORT}}}]}}]\n",
        a.name
    );
    let refused = lab
        .apply_str(Path::new("clash"), &clash)
        .expect_err("a held host port");
    assert!(
        refused.to_string().contains("held by pod default/pod"),
        "{refused}"
    );

    // Deleting pod2 takes its frontend away; the others stay.
    lab.delete_str(Path::new("pod2"), &pod2)
        .expect("pod2 deleted");
    assert!(ask(&lab, &on_node, &node_address, false).is_err());
    assert_eq!(
        ask(&lab, &on_node, &node_address, true).as_deref(),
        Ok("default/pod3")
    );
    assert_eq!(
        ask(&lab, &on_node, &loopback, false).as_deref(),
        Ok("default/pod1")
    );
}
