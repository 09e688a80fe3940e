//! Rejections on the tc path, for a service without endpoints reached by a pod socket the socket hooks
//! never saw, or from outside the node when no XDP program answered first: a TCP segment becomes its RST
//! in place, a UDP datagram its ICMP port unreachable (room for the error's headers is made after the
//! Ethernet header) — see `reject` — and either is trimmed and goes back the way it came ([`Back`]): into
//! the pod with `bpf_redirect_peer`, or out of the uplink, as kube-proxy's REJECT answers.

use aya_ebpf::{
    bindings::bpf_adj_room_mode::BPF_ADJ_ROOM_MAC,
    helpers::{bpf_redirect, bpf_redirect_peer, bpf_skb_change_tail},
    programs::TcContext,
};
use strait_abi::Reason;

use crate::{
    parse::{Ipv4, PROTO_TCP, bytes_at},
    reject::{ICMP_LEN, ICMP_PREFIX, RST_LEN, write_port_unreachable, write_reset},
};

/// The room made after the Ethernet header for the ICMP error's headers ([`ICMP_PREFIX`] bytes).
const ICMP_ROOM: i32 = 28;
const _: () = assert!(ICMP_ROOM as usize == ICMP_PREFIX);

/// Where an answer goes.
#[derive(Clone, Copy)]
pub enum Back {
    /// Into the pod behind this host-side veth (its ifindex).
    IntoPod(u32),
    /// Out of the interface the packet arrived on (the uplink).
    OutOfArrival,
}

impl Back {
    /// Redirects the answer; the tc verdict.
    #[inline(always)]
    fn send(self, ctx: &TcContext) -> i32 {
        // SAFETY: helper calls with a plain ifindex (read from the context for the arrival interface).
        unsafe {
            match self {
                Back::IntoPod(host_ifindex) => bpf_redirect_peer(host_ifindex, 0) as i32,
                Back::OutOfArrival => bpf_redirect((*ctx.skb.skb).ifindex, 0) as i32,
            }
        }
    }
}

/// Answers the segment with a RST sent `back`; the tc verdict, or the drop reason when it cannot (a RST
/// itself, or too short).
#[inline(always)]
pub fn reset(ctx: &TcContext, back: Back) -> Result<i32, Reason> {
    if ctx.len() as usize >= RST_LEN && bytes_at(ctx, 0, RST_LEN).is_none() {
        let _ = ctx.pull_data(RST_LEN as u32);
    }
    let frame = bytes_at(ctx, 0, RST_LEN).ok_or(Reason::DropNoBackend)?;
    // SAFETY: `bytes_at` checked RST_LEN bytes; tc makes the data writable.
    if !unsafe { write_reset(frame) } {
        return Err(Reason::DropNoBackend);
    }
    // SAFETY: shrinking the skb to the headers just written.
    if unsafe { bpf_skb_change_tail(ctx.skb.skb, RST_LEN as u32, 0) } != 0 {
        return Err(Reason::DropNoBackend);
    }
    Ok(back.send(ctx))
}

/// Answers the datagram with an ICMP port unreachable sent `back`; the tc verdict, or the drop reason
/// when it cannot.
#[inline(always)]
pub fn port_unreachable(ctx: &TcContext, back: Back) -> Result<i32, Reason> {
    // The datagram's IPv4 header and 8 bytes must be there to be quoted.
    if (ctx.len() as usize) < ICMP_LEN - ICMP_PREFIX {
        return Err(Reason::DropNoBackend);
    }
    ctx.adjust_room(ICMP_ROOM, BPF_ADJ_ROOM_MAC, 0)
        .map_err(|_| Reason::DropNoBackend)?;
    // SAFETY: trimming the skb to the error's length (it is at least that long now).
    if unsafe { bpf_skb_change_tail(ctx.skb.skb, ICMP_LEN as u32, 0) } != 0 {
        return Err(Reason::DropNoBackend);
    }
    if bytes_at(ctx, 0, ICMP_LEN).is_none() {
        let _ = ctx.pull_data(ICMP_LEN as u32);
    }
    let frame = bytes_at(ctx, 0, ICMP_LEN).ok_or(Reason::DropNoBackend)?;
    // SAFETY: `bytes_at` checked ICMP_LEN bytes; the layout is the one `write_port_unreachable` wants.
    unsafe { write_port_unreachable(frame) };
    Ok(back.send(ctx))
}

/// Answers a packet for a service without endpoints (TCP: RST, UDP: port unreachable) when it can be
/// answered (option-less IPv4, not a later fragment); the tc verdict.
#[inline(always)]
pub fn refuse(ctx: &TcContext, ip: &Ipv4, back: Back) -> Option<Result<i32, Reason>> {
    if ip.header_len != 20 || ip.later_fragment {
        return None;
    }
    Some(if ip.proto == PROTO_TCP {
        reset(ctx, back)
    } else {
        port_unreachable(ctx, back)
    })
}
