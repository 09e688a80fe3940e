//! The XDP fast path of tracked external flows: a packet of a flow tc has already opened (a CT forward
//! entry) whose backend is a pod on this node is rewritten right here — addresses, ports, checksums by
//! RFC 1624 arithmetic, MACs — and redirected to the pod's veth, without an skb being built for the
//! uplink or tc running. First packets, flows to backends elsewhere and everything unusual stay with tc.
//!
//! Checksums are updated as full checksums, which is what frames from a NIC carry. A frame whose
//! checksum the sender left to offload (CHECKSUM_PARTIAL, e.g. from a veth under generic XDP) is trusted
//! by the receiving pod as it was before.

use aya_ebpf::{
    EbpfContext as _,
    bindings::xdp_action::XDP_REDIRECT,
    helpers::{bpf_check_mtu, bpf_ktime_get_ns, bpf_redirect},
    programs::XdpContext,
};
use strait_abi::{EndpointKey, conntrack::CT_DIR_FORWARD, conntrack::CT_F_TO_UPLINK};

use crate::{
    conntrack,
    csum::{read16, replace16, replace32, write16},
    maps::ENDPOINT_V1,
    nat::Tuple,
    parse::{ETH_LEN, L4, PROTO_TCP, TCP_RST, tcp_seq_end},
};

/// Bytes the fast path reads and writes: Ethernet, option-less IPv4, the first 20 bytes of TCP (UDP
/// needs 8).
const TCP_HEADERS: usize = ETH_LEN + 20 + 20;
const UDP_HEADERS: usize = ETH_LEN + 20 + 8;

/// Rewrites and redirects a packet of a tracked flow to its local backend; `None` leaves it to tc.
/// The caller checked that the frame holds a whole option-less IPv4 TCP/UDP packet.
#[inline(always)]
pub fn forward_tracked(ctx: &XdpContext, tuple: &Tuple, proto: u8) -> Option<u32> {
    let start = ctx.data();
    let end = ctx.data_end();
    let need = if proto == PROTO_TCP {
        TCP_HEADERS
    } else {
        UDP_HEADERS
    };
    if start + need > end || start + TCP_HEADERS.min(need) > end {
        return None;
    }
    let frame = start as *mut u8;
    let l4 = if proto == PROTO_TCP {
        if start + TCP_HEADERS > end {
            return None;
        }
        // SAFETY: TCP_HEADERS bytes are in bounds.
        let segment = unsafe { tcp_segment(frame, tuple) };
        // A reset is judged by tc (it may be dropped with a counted reason).
        if segment.tcp_flags & TCP_RST != 0 {
            return None;
        }
        segment
    } else {
        L4::ports(tuple.sport, tuple.dport)
    };
    // SAFETY: helper without arguments.
    let now = unsafe { bpf_ktime_get_ns() };
    let entry = conntrack::track(&conntrack::key(tuple, proto, CT_DIR_FORWARD), &l4, now)
        .ok()
        .flatten()?;
    if entry.flags & CT_F_TO_UPLINK != 0 {
        return None;
    }
    // SAFETY: the value is copied out at once.
    let pod = unsafe {
        ENDPOINT_V1.get(EndpointKey {
            addr: entry.new_daddr,
        })
    }
    .copied()?;
    // A pod some policy isolates for ingress is judged by tc at delivery (the flow may have been
    // opened and then denied).
    if crate::policy::ingress_isolated(entry.new_daddr) {
        return None;
    }
    // An XDP redirect cannot carry more than the pod link's MTU: a larger frame (a GRO/GSO aggregate, which
    // generic XDP sees) goes to tc, whose redirect keeps the aggregate whole.
    let mut mtu_len = 0u32;
    // SAFETY: helper call with the program's own context and a stack slot for the MTU it reports.
    if unsafe { bpf_check_mtu(ctx.as_ptr(), pod.host_ifindex, &raw mut mtu_len, 0, 0) } != 0 {
        return None;
    }
    let new = conntrack::rewritten(&entry);
    if start + UDP_HEADERS > end {
        return None;
    }
    // SAFETY: at least UDP_HEADERS bytes are in bounds (TCP_HEADERS for TCP, checked above); XDP frames
    // are writable.
    unsafe {
        let ip = frame.add(ETH_LEN);
        let l4 = ip.add(20);
        let l4_check = if proto == PROTO_TCP {
            l4.add(16)
        } else {
            l4.add(6)
        };
        let mut ip_sum = read16(ip.add(10));
        let mut l4_sum = read16(l4_check);
        let udp_unsummed = proto != PROTO_TCP && l4_sum == 0;
        for (offset, old, new) in [(12, tuple.saddr, new.saddr), (16, tuple.daddr, new.daddr)] {
            if old != new {
                ip_sum = replace32(ip_sum, old, new);
                l4_sum = replace32(l4_sum, old, new);
                core::ptr::write_unaligned(ip.add(offset).cast::<u32>(), new);
            }
        }
        for (offset, old, new) in [(0, tuple.sport, new.sport), (2, tuple.dport, new.dport)] {
            if old != new {
                l4_sum = replace16(l4_sum, old, new);
                core::ptr::write_unaligned(l4.add(offset).cast::<u16>(), new);
            }
        }
        write16(ip.add(10), ip_sum);
        if !udp_unsummed {
            // A UDP checksum that comes out as zero is sent as all ones (zero means "none").
            let l4_sum = if proto != PROTO_TCP && l4_sum == 0 {
                0xffff
            } else {
                l4_sum
            };
            write16(l4_check, l4_sum);
        }
        core::ptr::write_unaligned(frame.cast::<[u8; 6]>(), pod.pod_mac);
        core::ptr::write_unaligned(frame.add(6).cast::<[u8; 6]>(), pod.host_mac);
    }
    // SAFETY: helper call with a plain ifindex.
    let verdict = unsafe { bpf_redirect(pod.host_ifindex, 0) };
    u32::try_from(verdict).ok().filter(|v| *v == XDP_REDIRECT)
}

/// The TCP segment at the start of the option-less IPv4 packet in `frame`, as conntrack reads it.
///
/// # Safety
/// `frame` must hold [`TCP_HEADERS`] readable bytes.
#[inline(always)]
unsafe fn tcp_segment(frame: *const u8, tuple: &Tuple) -> L4 {
    // SAFETY: guaranteed by the caller.
    unsafe {
        let ip = frame.add(ETH_LEN);
        let tcp = ip.add(20);
        let total = u16::from_be_bytes([*ip.add(2), *ip.add(3)]);
        let header = [
            *tcp.add(4),
            *tcp.add(5),
            *tcp.add(6),
            *tcp.add(7),
            *tcp.add(8),
            *tcp.add(9),
            *tcp.add(10),
            *tcp.add(11),
            *tcp.add(12),
            *tcp.add(13),
        ];
        let seq = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
        let ack = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
        let flags = header[9];
        let payload = usize::from(total).saturating_sub(20 + usize::from(header[8] >> 4) * 4);
        L4 {
            sport: tuple.sport,
            dport: tuple.dport,
            tcp_flags: flags,
            seq,
            ack,
            seq_end: tcp_seq_end(seq, payload, flags),
            has_seq: true,
        }
    }
}
