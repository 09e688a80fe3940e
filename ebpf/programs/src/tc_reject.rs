//! Rejections on the tc path, for pod sockets the socket hooks never saw that reach a service without
//! endpoints: the TCP segment becomes its RST in place (see `reject`), is trimmed to it and goes back
//! into the pod with `bpf_redirect_peer`, as kube-proxy's REJECT answers.

use aya_ebpf::{
    helpers::{bpf_redirect_peer, bpf_skb_change_tail},
    programs::TcContext,
};
use strait_abi::Reason;

use crate::{
    parse::bytes_at,
    reject::{RST_LEN, write_reset},
};

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
