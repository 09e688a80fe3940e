//! Rejections on the XDP path: the frame is turned into its refusal in place (see `reject`) — a TCP
//! RST, or an ICMP destination-unreachable (port) for a UDP datagram — and trimmed to it, for `XDP_TX`.

use aya_ebpf::{
    helpers::{bpf_xdp_adjust_head, bpf_xdp_adjust_tail},
    programs::XdpContext,
};

use crate::{
    parse::ETH_LEN,
    reject::{ICMP_LEN, ICMP_PREFIX, RST_LEN, write_port_unreachable, write_reset},
};

/// The head adjustment that makes room for the ICMP error's headers ([`ICMP_PREFIX`] bytes).
const ICMP_GROW: i32 = -28;

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
        // The old Ethernet header now sits ICMP_PREFIX bytes in: bring it to the front.
        core::ptr::copy(frame.add(ICMP_PREFIX), frame, ETH_LEN);
        write_port_unreachable(frame);
    }
    let Ok(excess) = i32::try_from(end - start - ICMP_LEN) else {
        return false;
    };
    // SAFETY: shrinking the frame to the ICMP message just written.
    excess == 0 || unsafe { bpf_xdp_adjust_tail(ctx.ctx, -excess) } == 0
}
