//! Same-node delivery: a packet for a pod on this node goes straight into that pod's namespace with
//! `bpf_redirect_peer`, after the MACs are rewritten as if the node had routed it; anything else goes to the
//! node's stack unchanged. The sender must own its source address (anti-spoofing).

use aya_ebpf::{
    bindings::{TC_ACT_OK, TC_ACT_SHOT},
    helpers::bpf_redirect_peer,
    programs::TcContext,
};
use strait_abi::{EndpointInfo, EndpointKey, Reason};

use crate::{
    maps::ENDPOINT_V1,
    parse::{ETH_LEN, Frame, bytes_at, parse},
};

/// Verdict for a dropped packet.
pub const TC_DROP: i32 = TC_ACT_SHOT;
const TC_PASS: i32 = TC_ACT_OK;

/// Decides what happens to a packet a pod sent: (reason, tc verdict), or the drop reason.
#[inline(always)]
pub fn from_pod(ctx: &TcContext) -> Result<(Reason, i32), Reason> {
    let Frame::Ipv4(ip) = parse(ctx)? else {
        return Ok((Reason::PassNonIpv4, TC_PASS));
    };
    // SAFETY: the value is copied out at once; a concurrent update can at worst give a stale copy.
    let source = unsafe { ENDPOINT_V1.get(EndpointKey { addr: ip.src }) }.copied();
    match source {
        // SAFETY: reading the context's ifindex field.
        Some(src) if src.host_ifindex == unsafe { (*ctx.skb.skb).ifindex } => {}
        _ => return Err(Reason::DropSpoofedSource),
    }
    // SAFETY: as above.
    let Some(dst) = (unsafe { ENDPOINT_V1.get(EndpointKey { addr: ip.dst }) }).copied() else {
        return Ok((Reason::PassToStack, TC_PASS));
    };
    rewrite_macs(ctx, &dst)?;
    // SAFETY: helper call with a plain ifindex; it only records the redirect target.
    let verdict = unsafe { bpf_redirect_peer(dst.host_ifindex, 0) };
    Ok((Reason::DeliveredLocal, verdict as i32))
}

/// Writes destination = pod MAC, source = the pod's gateway MAC (its host-side veth), in place.
#[inline(always)]
fn rewrite_macs(ctx: &TcContext, dst: &EndpointInfo) -> Result<(), Reason> {
    let eth = bytes_at(ctx, 0, ETH_LEN).ok_or(Reason::DropRewriteFailed)?;
    // SAFETY: `bytes_at` checked the 14 Ethernet bytes are in bounds; tc makes the data writable.
    unsafe {
        core::ptr::write_unaligned(eth.cast::<[u8; 6]>(), dst.pod_mac);
        core::ptr::write_unaligned(eth.add(6).cast::<[u8; 6]>(), dst.host_mac);
    }
    Ok(())
}
