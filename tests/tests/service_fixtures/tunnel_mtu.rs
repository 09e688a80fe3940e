//! The tunnel's MTU under test-run: a packet bound for the VXLAN tunnel but longer than the VXLAN
//! device's MTU, with Don't Fragment set, comes back as ICMP fragmentation needed naming that MTU and
//! quoting the packet as its sender sent it (before the NodePort's translation), sent back out of the
//! interface it came in on; without DF, as a GSO-sized packet that fits, or in direct mode, it goes on.
//!
//! `bpf_check_mtu` reads the real device's MTU, so each case runs on a thread of its own in a fresh
//! network namespace holding a port-less bridge with the tunnel's MTU (1450) in the VXLAN device's place;
//! the namespace goes with the thread.

use std::process::Command;

use strait_dataplane::overlay::{RemoteMode, RemoteRoute};

use crate::harness::*;

const REMOTE_POD: Ipv4Addr = Ipv4Addr::new(10, 244, 2, 7);
const NODE_2: Ipv4Addr = Ipv4Addr::new(172, 30, 0, 12);
const NODE_2_VTEP: [u8; 6] = [0x0e, 0x53, 172, 30, 0, 12];
const THIS_VTEP: [u8; 6] = [0x0e, 0x53, 172, 30, 0, 11];
/// The tunnel's MTU: a 1500-byte underlay's minus VXLAN's 50.
const TUNNEL_MTU: u16 = 1450;
const TOO_BIG: Outcome = (TC_ACT_REDIRECT, Reason::DropTooBigForTunnel);
const ENCAP: Outcome = (TC_ACT_REDIRECT, Reason::OverlayEncap);

/// Runs `case` on a new thread inside a new network namespace; a panic in it fails the test.
fn in_own_namespace(case: impl FnOnce() + Send + 'static) {
    require_root();
    let outcome = std::thread::spawn(move || {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
            .expect("a network namespace for this thread");
        case();
    })
    .join();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// The stand-in for the VXLAN device in this thread's namespace: its ifindex.
fn tunnel_device() -> u32 {
    let status = Command::new("ip")
        .args([
            "link",
            "add",
            "tunnel0",
            "mtu",
            &TUNNEL_MTU.to_string(),
            "type",
            "bridge",
        ])
        .status()
        .expect("running ip");
    assert!(status.success(), "ip link add tunnel0: {status}");
    nix::net::if_::if_nametoindex("tunnel0").expect("tunnel0's ifindex")
}

/// A node with node 2 (pod CIDR 10.244.2.0/24) reached in `mode` and the tunnel device in place.
fn node_with_tunnel(services: &[ServiceEntry], mode: RemoteMode) -> Node {
    let vxlan = tunnel_device();
    let mut node = Node::with_node_ip(services);
    node.dp.set_overlay(vxlan, 1, THIS_VTEP).unwrap();
    node.dp.sync_remote_routes(&[node_2(mode)]).unwrap();
    node
}

/// Node 2's pod CIDR, reached in `mode`.
fn node_2(mode: RemoteMode) -> RemoteRoute {
    RemoteRoute {
        prefix: Ipv4Addr::new(10, 244, 2, 0),
        prefix_len: 24,
        node_ip: NODE_2,
        vtep_mac: NODE_2_VTEP,
        mode,
    }
}

/// A UDP datagram of `total` IPv4 bytes with DF set or clear (header checksum recomputed).
fn datagram(macs: Macs, src: SocketAddrV4, dst: SocketAddrV4, total: usize, df: bool) -> Vec<u8> {
    let mut frame = udp_datagram(macs, src, dst, &vec![b'x'; total - 28]);
    frame[20] = if df { 0x40 } else { 0 };
    frame[24..26].copy_from_slice(&[0, 0]);
    let sum = !ones_sum(&[&frame[14..34]]);
    frame[24..26].copy_from_slice(&sum.to_be_bytes());
    frame
}

/// Checks that `out` is the fragmentation needed answering `sent` (as sent), from `from`, with the
/// tunnel's MTU, addressed back the way `sent` came.
fn assert_frag_needed(out: &[u8], sent: &[u8], from: Ipv4Addr) {
    assert_eq!(out.len(), 14 + 20 + 8 + 28, "Ethernet, IPv4, ICMP, quote");
    let came = macs(sent);
    assert_eq!(
        macs(out),
        Macs {
            dst: came.src,
            src: came.dst
        },
        "MACs swapped"
    );
    assert!(ip_checksum_ok(out), "IPv4 header checksum");
    assert_eq!(out[23], 1, "ICMP");
    assert_eq!(out[26..30], from.octets(), "from the node");
    assert_eq!(out[30..34], sent[26..30], "to the packet's sender");
    assert_eq!(
        (out[34], out[35]),
        (3, 4),
        "destination unreachable, fragmentation needed"
    );
    assert_eq!(
        u16::from_be_bytes([out[40], out[41]]),
        TUNNEL_MTU,
        "next-hop MTU"
    );
    assert_eq!(ones_sum(&[&out[34..]]), 0xffff, "ICMP checksum");
    assert_eq!(
        out[42..70],
        sent[14..42],
        "quotes the packet's header and 8 bytes as sent"
    );
}

#[test]
fn a_full_size_datagram_to_a_node_port_with_a_remote_backend_gets_fragmentation_needed() {
    in_own_namespace(|| {
        let node_port = sock(NODE_IP, 30080);
        let entry = service(
            node_port,
            L4Proto::Udp,
            &[sock(REMOTE_POD, 8080)],
            Some(cluster_policy()),
        );
        let mut node = node_with_tunnel(&[entry], RemoteMode::Vxlan);
        let client = sock(CLIENT, 50000);

        let full = datagram(FROM_ROUTER, client, node_port, 1500, true);
        let out = node.run_from_uplink(&full, TOO_BIG);
        assert_frag_needed(&out, &full, NODE_IP);

        // Once the client sends what the tunnel carries, the datagram crosses.
        let fitting = datagram(FROM_ROUTER, client, node_port, 1450, true);
        let out = node.run_from_uplink(&fitting, (TC_ACT_REDIRECT, Reason::ServiceNat));
        assert_eq!(destination(&out), sock(REMOTE_POD, 8080));

        // Without DF the sender allows fragmentation: it enters the tunnel whole (the outer packet
        // is fragmented on the underlay).
        let allowed = datagram(FROM_ROUTER, client, node_port, 1500, false);
        let out = node.run_from_uplink(&allowed, (TC_ACT_REDIRECT, Reason::ServiceNat));
        assert_eq!(out.len(), allowed.len());
        assert_eq!(
            macs(&out),
            Macs {
                dst: NODE_2_VTEP,
                src: THIS_VTEP
            }
        );
    });
}

#[test]
fn a_pod_sending_past_the_tunnels_mtu_is_told_the_mtu() {
    in_own_namespace(|| {
        let mut node = node_with_tunnel(&[], RemoteMode::Vxlan);
        let to_remote = sock(REMOTE_POD, 8080);
        let big = datagram(SENT_BY_SRC, sock(SRC, 40000), to_remote, 1480, true);
        let out = node.run_from_pod(&big, TOO_BIG);
        assert_frag_needed(&out, &big, NODE_IP);

        let fitting = datagram(SENT_BY_SRC, sock(SRC, 40000), to_remote, 1450, true);
        node.run_from_pod(&fitting, ENCAP);

        // Direct routing adds no header: the same packet goes to the uplink as it is.
        let mut direct = node_with_direct_route();
        direct.run_from_pod(&big, ENCAP);
    });
}

/// A second node in the same namespace, reaching node 2 by direct routing.
fn node_with_direct_route() -> Node {
    let mut node = Node::with_node_ip(&[]);
    let vxlan = nix::net::if_::if_nametoindex("tunnel0").unwrap();
    node.dp.set_overlay(vxlan, 1, THIS_VTEP).unwrap();
    node.dp.set_node(NODE_IP, TEST_RUN_IFINDEX).unwrap();
    node.dp
        .sync_remote_routes(&[node_2(RemoteMode::Direct)])
        .unwrap();
    node
}
