//! Rejections on the tc path, for pod sockets the socket hooks never saw that reach a service without
//! endpoints: a TCP segment becomes its RST in place, a UDP datagram its ICMP port unreachable (room for
//! the error's headers is made after the Ethernet header) — see `reject` — and either is trimmed and
//! goes back into the pod with `bpf_redirect_peer`, as kube-proxy's REJECT answers.

use aya_ebpf::{
    bindings::bpf_adj_room_mode::BPF_ADJ_ROOM_MAC,
    helpers::{bpf_redirect_peer, bpf_skb_change_tail},
    programs::TcContext,
};
use strait_abi::Reason;

use crate::{
    parse::bytes_at,
    reject::{ICMP_LEN, ICMP_PREFIX, RST_LEN, write_port_unreachable, write_reset},
};

/// The room made after the Ethernet header for the ICMP error's headers ([`ICMP_PREFIX`] bytes).
const ICMP_ROOM: i32 = 28;
const _: () = assert!(ICMP_ROOM as usize == ICMP_PREFIX);

/// Answers the segment with a RST sent back through `host_ifindex`'s peer (the pod); the tc verdict, or
/// the drop reason when it cannot (a RST itself, or too short).
#[inline(always)]
pub fn reset(ctx: &TcContext, host_ifindex: u32) -> Result<i32, Reason> {
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
    // SAFETY: helper call with a plain ifindex.
    Ok(unsafe { bpf_redirect_peer(host_ifindex, 0) } as i32)
}

/// Answers the datagram with an ICMP port unreachable sent back through `host_ifindex`'s peer (the pod);
/// the tc verdict, or the drop reason when it cannot.
#[inline(always)]
pub fn port_unreachable(ctx: &TcContext, host_ifindex: u32) -> Result<i32, Reason> {
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
    // SAFETY: helper call with a plain ifindex.
    Ok(unsafe { bpf_redirect_peer(host_ifindex, 0) } as i32)
}
