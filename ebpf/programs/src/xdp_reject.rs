//! Rejections on the XDP path: the frame is turned into its refusal in place (see `reject`) — a TCP
//! RST, or an ICMP destination-unreachable (port) for a UDP datagram — and trimmed to it, for `XDP_TX`.

use aya_ebpf::{
    helpers::{bpf_xdp_adjust_head, bpf_xdp_adjust_tail},
    programs::XdpContext,
};

use crate::{
    parse::ETH_LEN,
    reject::{RST_LEN, fold, ipv4_header, sum_words, swap_macs, write_reset},
};

/// Bytes an ICMP error puts before the offending datagram's headers: IPv4 header and ICMP header.
const ICMP_PREFIX: usize = 20 + 8;
/// The same, as the (negative) head adjustment that makes room for it.
const ICMP_GROW: i32 = -28;
/// Bytes of the ICMP error frame: Ethernet, IPv4, ICMP, then the datagram's IPv4 header and 8 bytes.
const ICMP_LEN: usize = ETH_LEN + ICMP_PREFIX + 20 + 8;
const PROTO_ICMP: u8 = 1;

/// Turns the TCP segment into the RST that refuses it. False when the segment is itself a RST or
/// cannot be turned around (then it is just dropped).
#[inline(always)]
pub fn reset(ctx: &XdpContext) -> bool {
    let start = ctx.data();
    let end = ctx.data_end();
    if start + RST_LEN > end {
        return false;
    }
    // SAFETY: RST_LEN bytes were bounds-checked above; XDP frames are writable.
    if !unsafe { write_reset(start as *mut u8) } {
        return false;
    }
    let Ok(excess) = i32::try_from(end - start - RST_LEN) else {
        return false;
    };
    // SAFETY: shrinking the frame to the headers just written.
    excess == 0 || unsafe { bpf_xdp_adjust_tail(ctx.ctx, -excess) } == 0
}

/// Turns the UDP datagram into the ICMP port-unreachable that refuses it, addressed back to its sender:
/// 28 bytes of room are made in front (IPv4 + ICMP headers), so the datagram's own IPv4 header and first
/// 8 bytes are already where the ICMP payload goes; the rest is cut off.
#[inline(always)]
pub fn port_unreachable(ctx: &XdpContext) -> bool {
    // SAFETY: growing the frame at its head; the kernel checks the headroom.
    if unsafe { bpf_xdp_adjust_head(ctx.ctx, ICMP_GROW) } != 0 {
        return false;
    }
    let start = ctx.data();
    let end = ctx.data_end();
    if start + ICMP_LEN > end {
        return false;
    }
    let frame = start as *mut u8;
    // SAFETY: ICMP_LEN bytes were bounds-checked above; XDP frames are writable.
    unsafe {
        // The old Ethernet header now sits ICMP_PREFIX bytes in: bring it to the front, swapped.
        core::ptr::copy(frame.add(ICMP_PREFIX), frame, ETH_LEN);
        swap_macs(frame);
        let inner = frame.add(ETH_LEN + ICMP_PREFIX);
        let saddr = core::ptr::read_unaligned(inner.add(12).cast::<[u8; 4]>());
        let daddr = core::ptr::read_unaligned(inner.add(16).cast::<[u8; 4]>());
        let total = u16::try_from(ICMP_LEN - ETH_LEN).unwrap_or(56);
        core::ptr::write_unaligned(
            frame.add(ETH_LEN).cast::<[u8; 20]>(),
            ipv4_header(daddr, saddr, PROTO_ICMP, total),
        );
        // Type 3 (destination unreachable), code 3 (port), checksum over the ICMP message.
        let icmp = frame.add(ETH_LEN + 20);
        core::ptr::write_unaligned(icmp.cast::<[u8; 8]>(), [3, 3, 0, 0, 0, 0, 0, 0]);
        let message = core::ptr::read_unaligned(icmp.cast::<[u8; 36]>());
        let sum = fold(sum_words(&message, 0));
        core::ptr::write_unaligned(icmp.add(2).cast::<[u8; 2]>(), sum.to_be_bytes());
    }
    let Ok(excess) = i32::try_from(end - start - ICMP_LEN) else {
        return false;
    };
    // SAFETY: shrinking the frame to the ICMP message just written.
    excess == 0 || unsafe { bpf_xdp_adjust_tail(ctx.ctx, -excess) } == 0
}
