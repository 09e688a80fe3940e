//! Fixture frames and endpoints shared by the packet-fixture tests and the per-packet cost benchmark:
//! two pods' addresses and MACs, and builders for TCP, UDP and ARP frames between them (or between any
//! addresses, for the service fixtures).

use std::net::{Ipv4Addr, SocketAddrV4};

use etherparse::{PacketBuilder, TcpHeader};
use strait_dataplane::{Dataplane, endpoints::Endpoint};

/// Under BPF_PROG_TEST_RUN the skb's device is the namespace's loopback.
pub const TEST_RUN_IFINDEX: u32 = 1;
pub const SRC: Ipv4Addr = Ipv4Addr::new(10, 244, 0, 2);
pub const DST: Ipv4Addr = Ipv4Addr::new(10, 244, 0, 3);
pub const POD_MAC_SRC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
pub const GW_MAC_SRC: [u8; 6] = [0x02, 0, 0, 0, 1, 0x02];
pub const POD_MAC_DST: [u8; 6] = [0x02, 0, 0, 0, 0, 0x03];
pub const GW_MAC_DST: [u8; 6] = [0x02, 0, 0, 0, 1, 0x03];

/// Registers SRC (behind the test-run device) and DST (behind ifindex 77) in the ENDPOINT map.
pub fn register_pods(dataplane: &mut Dataplane) {
    for (addr, host_ifindex, pod_mac, host_mac) in [
        (SRC, TEST_RUN_IFINDEX, POD_MAC_SRC, GW_MAC_SRC),
        (DST, 77, POD_MAC_DST, GW_MAC_DST),
    ] {
        dataplane
            .upsert_endpoint(&Endpoint {
                addr,
                host_ifindex,
                pod_mac,
                host_mac,
            })
            .expect("registering a fixture endpoint");
    }
}

/// A TCP segment with a 5-byte payload from `src` to `dst`, as the source pod sends it.
pub fn tcp(src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
    let builder = PacketBuilder::ethernet2(POD_MAC_SRC, GW_MAC_SRC)
        .ipv4(src.octets(), dst.octets(), 64)
        .tcp(40000, 8080, 1, 64000);
    let mut frame = Vec::new();
    builder
        .write(&mut frame, b"hello")
        .expect("building a TCP frame");
    frame
}

/// A UDP datagram from `src` to `dst`.
pub fn udp(src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
    let builder = PacketBuilder::ethernet2(POD_MAC_SRC, GW_MAC_SRC)
        .ipv4(src.octets(), dst.octets(), 64)
        .udp(40000, 53);
    let mut frame = Vec::new();
    builder
        .write(&mut frame, b"query")
        .expect("building a UDP frame");
    frame
}

/// A broadcast ARP frame (zeroed payload).
pub fn arp() -> Vec<u8> {
    let mut frame = vec![0xff; 6];
    frame.extend_from_slice(&POD_MAC_SRC);
    frame.extend_from_slice(&[0x08, 0x06]);
    frame.extend_from_slice(&[0u8; 28]);
    frame
}

/// An ICMPv6 router advertisement (fe80::1 to all nodes, router lifetime 1800 s), as a pod with
/// CAP_NET_RAW could send one to make itself the node's IPv6 default router.
pub fn ipv6_router_advertisement() -> Vec<u8> {
    let mut frame = vec![0x33, 0x33, 0, 0, 0, 1];
    frame.extend_from_slice(&POD_MAC_SRC);
    frame.extend_from_slice(&[0x86, 0xdd]);
    // IPv6: version 6, payload 16 bytes, next header ICMPv6 (58), hop limit 255.
    frame.extend_from_slice(&[0x60, 0, 0, 0, 0, 16, 58, 255]);
    let mut link_local = [0u8; 16];
    link_local[..2].copy_from_slice(&[0xfe, 0x80]);
    link_local[15] = 1;
    frame.extend_from_slice(&link_local);
    let mut all_nodes = [0u8; 16];
    all_nodes[..2].copy_from_slice(&[0xff, 0x02]);
    all_nodes[15] = 1;
    frame.extend_from_slice(&all_nodes);
    // ICMPv6 type 134 (router advertisement), code 0, checksum left 0, hop limit 64, no flags,
    // router lifetime 1800 s, reachable time and retransmit timer unset.
    frame.extend_from_slice(&[134, 0, 0, 0, 64, 0, 0x07, 0x08, 0, 0, 0, 0, 0, 0, 0, 0]);
    frame
}

/// `frame` with the byte at `offset` into the IPv4 header replaced.
pub fn with_ip_byte(mut frame: Vec<u8>, offset: usize, value: u8) -> Vec<u8> {
    frame[14 + offset] = value;
    frame
}

/// Source and destination MAC of a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Macs {
    pub src: [u8; 6],
    pub dst: [u8; 6],
}

/// A frame pod SRC sends (to its gateway).
pub const SENT_BY_SRC: Macs = Macs {
    src: POD_MAC_SRC,
    dst: GW_MAC_SRC,
};
/// A frame pod DST sends (to its gateway).
pub const SENT_BY_DST: Macs = Macs {
    src: POD_MAC_DST,
    dst: GW_MAC_DST,
};
/// A frame as delivered to pod SRC (from its gateway).
pub const DELIVERED_TO_SRC: Macs = Macs {
    src: GW_MAC_SRC,
    dst: POD_MAC_SRC,
};
/// A frame as delivered to pod DST (from its gateway).
pub const DELIVERED_TO_DST: Macs = Macs {
    src: GW_MAC_DST,
    dst: POD_MAC_DST,
};
/// A frame arriving on the node's uplink from its router.
pub const FROM_ROUTER: Macs = Macs {
    src: [0x02, 0, 0, 0, 2, 0x01],
    dst: [0x02, 0, 0, 0, 2, 0x02],
};

/// TCP flag bits, as in the header's flags byte.
pub const TCP_FIN: u8 = 0x01;
pub const TCP_SYN: u8 = 0x02;
pub const TCP_RST: u8 = 0x04;
pub const TCP_PSH: u8 = 0x08;
pub const TCP_ACK: u8 = 0x10;

/// A TCP segment `src` -> `dst` with the `TCP_*` bits in `flags` and sequence number `seq` (the
/// acknowledgment number is 1 when ACK is set), no options, and correct IPv4 and TCP checksums.
pub fn tcp_segment(
    macs: Macs,
    src: SocketAddrV4,
    dst: SocketAddrV4,
    flags: u8,
    seq: u32,
    payload: &[u8],
) -> Vec<u8> {
    tcp_segment_acking(
        macs,
        src,
        dst,
        flags,
        (seq, u32::from(flags & TCP_ACK != 0)),
        payload,
    )
}

/// As [`tcp_segment`], with the sequence and acknowledgment numbers given as `(seq, ack)` (the
/// acknowledgment number is sent whether or not ACK is set).
pub fn tcp_segment_acking(
    macs: Macs,
    src: SocketAddrV4,
    dst: SocketAddrV4,
    flags: u8,
    (seq, ack): (u32, u32),
    payload: &[u8],
) -> Vec<u8> {
    let mut header = TcpHeader::new(src.port(), dst.port(), seq, 64000);
    header.fin = flags & TCP_FIN != 0;
    header.syn = flags & TCP_SYN != 0;
    header.rst = flags & TCP_RST != 0;
    header.psh = flags & TCP_PSH != 0;
    header.ack = flags & TCP_ACK != 0;
    header.acknowledgment_number = ack;
    let builder = PacketBuilder::ethernet2(macs.src, macs.dst)
        .ipv4(src.ip().octets(), dst.ip().octets(), 64)
        .tcp_header(header);
    let mut frame = Vec::new();
    builder
        .write(&mut frame, payload)
        .expect("building a TCP frame");
    frame
}

/// A UDP datagram `src` -> `dst` with correct IPv4 and UDP checksums.
pub fn udp_datagram(macs: Macs, src: SocketAddrV4, dst: SocketAddrV4, payload: &[u8]) -> Vec<u8> {
    let builder = PacketBuilder::ethernet2(macs.src, macs.dst)
        .ipv4(src.ip().octets(), dst.ip().octets(), 64)
        .udp(src.port(), dst.port());
    let mut frame = Vec::new();
    builder
        .write(&mut frame, payload)
        .expect("building a UDP frame");
    frame
}
