//! Pods reaching addresses outside the cluster: the lab's external namespace serves, and a pod's
//! connection to it leaves its node's uplink from the node's address (masquerade), its answers tracked
//! back to the pod, over TCP and UDP, on every node of a two-node lab.

use std::time::Duration;

use strait_lab::{cluster::Lab, network::EXTERNAL_IP};
use strait_tests::LabGuard;

use crate::examples;

#[test]
fn pods_reach_outside_the_cluster_from_their_nodes_address() {
    strait_tests::require_root();
    strait_tests::bin_dir();
    let guard = LabGuard::new("eg");
    let lab = Lab::up(&guard.name, 2, Some(&examples().join("pods.yaml"))).expect("lab up");
    for pod in lab.state.pods.clone() {
        let node = lab.state.node(&pod.node).unwrap().clone();
        let key = format!("{}/{}", pod.namespace, pod.name);
        let before = crate::packets(&lab, &node.name, "masquerade");
        for udp in [false, true] {
            let target = format!("{EXTERNAL_IP}:{}", if udp { 53 } else { 80 });
            let (who, peer) = lab
                .probe_with_peer(&key, &target, udp, Duration::from_secs(2))
                .unwrap()
                .unwrap_or_else(|e| panic!("{key} -> {target}: {e}"));
            assert_eq!(who, "external", "{key} -> {target}");
            let peer: std::net::SocketAddr = peer.unwrap().parse().unwrap();
            assert_eq!(
                peer.ip(),
                std::net::IpAddr::V4(node.ip),
                "{key} -> {target}: from its node's address"
            );
        }
        assert!(
            crate::packets(&lab, &node.name, "masquerade") >= before + 2,
            "{key}: counted as masquerade"
        );
    }
}
