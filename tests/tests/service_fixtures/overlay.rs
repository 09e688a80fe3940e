//! The overlay under test-run: a packet for a pod on another node (directly, or as a service's
//! translated packet) gets the remote VTEP's MAC as inner destination and this node's as source and is
//! redirected to the VXLAN device (the tunnel key is set on the way); in direct mode it goes to the
//! uplink untouched; a destination no node owns goes to the stack; and a packet on the VXLAN device
//! without tunnel metadata (not from the tunnel) is dropped as not from a known node.

use strait_dataplane::overlay::{RemoteMode, RemoteRoute};

use crate::harness::*;

/// A pod on node 2 of the overlay.
const REMOTE_POD: Ipv4Addr = Ipv4Addr::new(10, 244, 2, 7);
const NODE_2: Ipv4Addr = Ipv4Addr::new(172, 30, 0, 12);
const NODE_2_VTEP: [u8; 6] = [0x0e, 0x53, 172, 30, 0, 12];
const THIS_VTEP: [u8; 6] = [0x0e, 0x53, 172, 30, 0, 11];
/// The VXLAN device's ifindex as this node's overlay map says (any index redirects under test-run).
const VXLAN_IFINDEX: u32 = 1;

const ENCAP: Outcome = (TC_ACT_REDIRECT, Reason::OverlayEncap);
const NOT_FROM_THE_TUNNEL: Outcome = (TC_ACT_SHOT, Reason::DropOverlaySource);

/// Node 2's pod CIDR and address, reached in `mode`.
fn routes(mode: RemoteMode) -> Vec<RemoteRoute> {
    [(Ipv4Addr::new(10, 244, 2, 0), 24), (NODE_2, 32)]
        .map(|(prefix, prefix_len)| RemoteRoute {
            prefix,
            prefix_len,
            node_ip: NODE_2,
            vtep_mac: NODE_2_VTEP,
            mode,
        })
        .to_vec()
}

fn overlay_node(services: &[ServiceEntry], mode: RemoteMode) -> Node {
    let mut node = Node::with_node_ip(services);
    node.dp.set_overlay(VXLAN_IFINDEX, 1, THIS_VTEP).unwrap();
    let report = node.dp.sync_remote_routes(&routes(mode)).unwrap();
    assert_eq!((report.written, report.removed), (2, 0));
    node
}

#[test]
fn a_packet_for_a_remote_pod_enters_the_tunnel_with_flannels_inner_macs() {
    let mut node = overlay_node(&[], RemoteMode::Vxlan);
    let frame = tcp(
        SENT_BY_SRC,
        sock(SRC, 40000),
        sock(REMOTE_POD, 8080),
        TCP_SYN,
    );
    let out = node.run_from_pod(&frame, ENCAP);
    assert_eq!(
        macs(&out),
        Macs {
            dst: NODE_2_VTEP,
            src: THIS_VTEP
        },
        "inner Ethernet: the remote VTEP from this node's"
    );
    assert_eq!(
        &out[12..],
        &frame[12..],
        "the IPv4 packet itself is untouched"
    );

    // A destination no node owns (and no local pod) goes to the node's stack, unchanged.
    let elsewhere = tcp(
        SENT_BY_SRC,
        sock(SRC, 40000),
        sock(Ipv4Addr::new(10, 244, 9, 9), 80),
        TCP_SYN,
    );
    let out = node.run_from_pod(&elsewhere, TO_STACK);
    assert_eq!(out, elsewhere);

    // Once node 2 leaves the cluster, its pods are no longer sent anywhere.
    let report = node.dp.sync_remote_routes(&[]).unwrap();
    assert_eq!((report.written, report.removed), (0, 2));
    node.run_from_pod(&frame, TO_STACK);
}

#[test]
fn a_service_packet_for_a_backend_on_another_node_is_translated_then_tunnelled() {
    let node_port = sock(NODE_IP, 30080);
    let backend = sock(REMOTE_POD, 8080);
    let entry = service(node_port, L4Proto::Tcp, &[backend], Some(cluster_policy()));
    let mut node = overlay_node(&[entry], RemoteMode::Vxlan);
    let syn = tcp(FROM_ROUTER, sock(CLIENT, 50000), node_port, TCP_SYN);
    let out = node.run_from_uplink(&syn, (TC_ACT_REDIRECT, Reason::ServiceNat));
    assert_checksums(&out, "SNATed SYN into the tunnel");
    assert_eq!(destination(&out), backend);
    assert_eq!(*source(&out).ip(), NODE_IP, "SNAT to this node");
    assert_eq!(
        macs(&out),
        Macs {
            dst: NODE_2_VTEP,
            src: THIS_VTEP
        }
    );
}

#[test]
fn direct_routing_sends_the_packet_to_the_uplink_unencapsulated() {
    let mut node = overlay_node(&[], RemoteMode::Direct);
    node.dp.set_node(NODE_IP, TEST_RUN_IFINDEX).unwrap();
    let frame = udp(SENT_BY_SRC, sock(SRC, 40000), sock(REMOTE_POD, 53));
    let out = node.run_from_pod(&frame, ENCAP);
    assert_eq!(
        out, frame,
        "the kernel writes the next hop's MAC after the program"
    );
}

#[test]
fn a_packet_on_the_vxlan_device_without_a_tunnel_is_not_from_a_node() {
    let mut node = overlay_node(&[], RemoteMode::Vxlan);
    let forged = tcp(
        FROM_ROUTER,
        sock(REMOTE_POD, 8080),
        sock(SRC, 40000),
        TCP_SYN,
    );
    node.send(Hook::FromOverlay, &forged, NOT_FROM_THE_TUNNEL);
}
