//! Fixture frames and endpoints shared by the packet-fixture tests and the per-packet cost benchmark:
//! two pods' addresses and MACs, and builders for TCP, UDP and ARP frames between them.

use std::net::Ipv4Addr;

use etherparse::PacketBuilder;
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

/// `frame` with the byte at `offset` into the IPv4 header replaced.
pub fn with_ip_byte(mut frame: Vec<u8>, offset: usize, value: u8) -> Vec<u8> {
    frame[14 + offset] = value;
    frame
}
