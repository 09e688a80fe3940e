//! XDP on the node's uplink: the fast path for what can be decided before an skb exists. A packet to a
//! frontend from outside its `loadBalancerSourceRanges` is dropped; a TCP packet to a frontend without
//! backends is answered with a RST sent straight back (`XDP_TX`), as kube-proxy's reject does; everything
//! else goes on to the tc program (`from_uplink`), which does the translation.

use aya_ebpf::{
    bindings::xdp_action::{XDP_DROP, XDP_PASS, XDP_TX},
    helpers::bpf_xdp_adjust_tail,
    programs::XdpContext,
};
use strait_abi::Reason;

use crate::{
    lb,
    parse::{ETH_LEN, PROTO_TCP, PROTO_UDP, TCP_RST},
};

/// Bytes of a reset frame: Ethernet, IPv4 without options, TCP without options.
const RST_LEN: usize = ETH_LEN + 20 + 20;
const TCP_SYN: u8 = 0x02;
const TCP_FIN: u8 = 0x01;
const TCP_ACK: u8 = 0x10;

/// (reason, XDP verdict) for a frame that arrived on the uplink.
#[inline(always)]
pub fn xdp_uplink(ctx: &XdpContext) -> (Reason, u32) {
    let start = ctx.data();
    let end = ctx.data_end();
    if start + ETH_LEN + 20 + 8 > end {
        return (Reason::PassToTc, XDP_PASS);
    }
    let eth = start as *const u8;
    // SAFETY: the 42 bytes read below were bounds-checked above.
    let (ethertype, vihl, frag, proto, saddr, daddr, dport) = unsafe {
        let ip = eth.add(ETH_LEN);
        (
            [*eth.add(12), *eth.add(13)],
            *ip,
            u16::from_be_bytes([*ip.add(6), *ip.add(7)]) & 0x3fff,
            *ip.add(9),
            core::ptr::read_unaligned(ip.add(12).cast::<u32>()),
            core::ptr::read_unaligned(ip.add(16).cast::<u32>()),
            core::ptr::read_unaligned(ip.add(20 + 2).cast::<u16>()),
        )
    };
    // Only option-less IPv4 TCP/UDP first fragments are decided here; tc handles the rest.
    if ethertype != [0x08, 0x00]
        || vihl != 0x45
        || frag != 0
        || (proto != PROTO_TCP && proto != PROTO_UDP)
    {
        return (Reason::PassToTc, XDP_PASS);
    }
    let Some(frontend) = lb::frontend(daddr, dport, proto) else {
        return (Reason::PassToTc, XDP_PASS);
    };
    if !lb::source_allowed(&frontend, saddr) {
        return (Reason::DropSourceRange, XDP_DROP);
    }
    if frontend.backend_count != 0 {
        return (Reason::PassToTc, XDP_PASS);
    }
    if proto == PROTO_TCP && reset(ctx) {
        return (Reason::DropNoBackend, XDP_TX);
    }
    (Reason::DropNoBackend, XDP_DROP)
}

/// Turns the TCP segment into the RST that refuses it, addressed back to its sender. False when the
/// segment is itself a RST or cannot be turned around (then it is just dropped).
#[inline(always)]
fn reset(ctx: &XdpContext) -> bool {
    let start = ctx.data();
    let end = ctx.data_end();
    if start + RST_LEN > end {
        return false;
    }
    let frame = start as *mut u8;
    // SAFETY: RST_LEN bytes were bounds-checked above; XDP frames are writable.
    unsafe {
        let ip = frame.add(ETH_LEN);
        let tcp = ip.add(20);
        let flags = *tcp.add(13);
        if flags & TCP_RST != 0 {
            return false;
        }
        let total = u32::from(u16::from_be_bytes([*ip.add(2), *ip.add(3)]));
        let tcp_header = u32::from(*tcp.add(12) >> 4) * 4;
        let payload = total.saturating_sub(20 + tcp_header);
        let seq = u32::from_be_bytes([*tcp.add(4), *tcp.add(5), *tcp.add(6), *tcp.add(7)]);
        let ack = u32::from_be_bytes([*tcp.add(8), *tcp.add(9), *tcp.add(10), *tcp.add(11)]);
        let (new_seq, new_ack, new_flags) = if flags & TCP_ACK != 0 {
            (ack, 0, TCP_RST)
        } else {
            let consumed =
                payload + u32::from(flags & TCP_SYN != 0) + u32::from(flags & TCP_FIN != 0);
            (0, seq.wrapping_add(consumed), TCP_RST | TCP_ACK)
        };
        // Ethernet: back to where it came from.
        let mut mac = [0u8; 6];
        core::ptr::copy_nonoverlapping(frame, mac.as_mut_ptr(), 6);
        core::ptr::copy_nonoverlapping(frame.add(6), frame, 6);
        core::ptr::copy_nonoverlapping(mac.as_ptr(), frame.add(6), 6);
        // IPv4: swapped addresses, fresh header.
        let saddr = core::ptr::read_unaligned(ip.add(12).cast::<[u8; 4]>());
        let daddr = core::ptr::read_unaligned(ip.add(16).cast::<[u8; 4]>());
        let mut ip_header = [
            0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, PROTO_TCP, 0, 0, daddr[0], daddr[1], daddr[2],
            daddr[3], saddr[0], saddr[1], saddr[2], saddr[3],
        ];
        let ip_sum = fold(sum_words(&ip_header, 0));
        ip_header[10..12].copy_from_slice(&ip_sum.to_be_bytes());
        core::ptr::write_unaligned(ip.cast::<[u8; 20]>(), ip_header);
        // TCP: swapped ports, no options, zero window.
        let sport = core::ptr::read_unaligned(tcp.cast::<[u8; 2]>());
        let dport = core::ptr::read_unaligned(tcp.add(2).cast::<[u8; 2]>());
        let s = new_seq.to_be_bytes();
        let a = new_ack.to_be_bytes();
        let mut tcp_header = [
            dport[0], dport[1], sport[0], sport[1], s[0], s[1], s[2], s[3], a[0], a[1], a[2], a[3],
            0x50, new_flags, 0, 0, 0, 0, 0, 0,
        ];
        let pseudo = sum_words(&daddr, 0) + sum_words(&saddr, 0) + u32::from(PROTO_TCP) + 20;
        let tcp_sum = fold(sum_words(&tcp_header, pseudo));
        tcp_header[16..18].copy_from_slice(&tcp_sum.to_be_bytes());
        core::ptr::write_unaligned(tcp.cast::<[u8; 20]>(), tcp_header);
    }
    let Ok(excess) = i32::try_from(end - start - RST_LEN) else {
        return false;
    };
    // SAFETY: shrinking the frame to the headers just written.
    excess == 0 || unsafe { bpf_xdp_adjust_tail(ctx.ctx, -excess) } == 0
}

/// One's-complement sum of big-endian 16-bit words, added to `initial`.
#[inline(always)]
fn sum_words<const N: usize>(bytes: &[u8; N], initial: u32) -> u32 {
    let mut sum = initial;
    let mut i = 0;
    while i + 1 < N {
        sum += u32::from(u16::from_be_bytes([bytes[i], bytes[i + 1]]));
        i += 2;
    }
    sum
}

/// Folds a 32-bit sum into the 16-bit checksum field value.
#[inline(always)]
fn fold(mut sum: u32) -> u16 {
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    !(sum as u16)
}
