//! Delivery: a packet for a pod on this node goes straight into that pod's namespace with
//! `bpf_redirect_peer`, after the MACs are rewritten as if the node had routed it; a translated packet
//! whose destination is outside the node leaves through the uplink with `bpf_redirect_neigh`; anything
//! else goes to the node's stack unchanged. A pod may send only IPv4 (no IPv6, no ARP: see
//! [`Reason::DropNonIpv4`]) and must own its source address (anti-spoofing), and its
//! TCP/UDP packets go through the per-packet service path first (tracked flows, and service addresses the
//! socket hooks did not translate), as do later fragments of translated datagrams (`fragments`) and ICMP
//! errors about translated flows (`icmp_nat`).

use aya_ebpf::{
    bindings::{TC_ACT_OK, TC_ACT_SHOT},
    helpers::{bpf_redirect_neigh, bpf_redirect_peer},
    programs::TcContext,
};
use strait_abi::{EndpointInfo, EndpointKey, Reason, endpoint::ENDPOINT_F_TRACKED};

use crate::{
    fragments, icmp_nat,
    maps::{ENDPOINT_V1, NODE_V1},
    overlay,
    parse::{ETH_LEN, Frame, bytes_at, parse, parse_l4},
    policy::{self, Seen},
    service_nat::{self, Origin, Translated},
    tc_reject,
    tunnel_mtu::{self, Oversize},
};

/// Verdict for a dropped packet.
pub const TC_DROP: i32 = TC_ACT_SHOT;
/// Verdict that hands the packet to the stack.
pub const TC_PASS: i32 = TC_ACT_OK;

/// Decides what happens to a packet a pod sent: (reason, tc verdict), or the drop reason.
#[inline(always)]
pub fn from_pod(ctx: &TcContext) -> Result<(Reason, i32), Reason> {
    // Pods speak IPv4 only; their neighbour entries are permanent, so not even ARP is needed.
    let Frame::Ipv4(ip) = parse(ctx)? else {
        return Err(Reason::DropNonIpv4);
    };
    // SAFETY: the value is copied out at once; a concurrent update can at worst give a stale copy.
    let source = unsafe { ENDPOINT_V1.get(EndpointKey { addr: ip.src }) }.copied();
    let source = match source {
        // SAFETY: reading the context's ifindex field.
        Some(src) if src.host_ifindex == unsafe { (*ctx.skb.skb).ifindex } => src,
        _ => return Err(Reason::DropSpoofedSource),
    };
    // Only a pod that is part of a tracked flow can send a packet conntrack must rewrite: a packet
    // of the flow, a later fragment of one of its datagrams, or an ICMP error about one.
    let tracked = source.flags & ENDPOINT_F_TRACKED != 0;
    let seen = Seen::now(ctx, &ip);
    if tracked && let Some(translated) = icmp_nat::translate(ctx, &ip, Origin::Pod)? {
        seen.related();
        return forward(ctx, &translated, None, &seen, true);
    }
    // Judged before any translation: an ICMP error about it must quote it as the pod sent it.
    let oversize = tunnel_mtu::oversize(ctx, &ip);
    let l4 = match parse_l4(ctx, &ip)? {
        Some(l4) => Some(l4),
        None if tracked => fragments::ports(&ip),
        None => None,
    };
    if let Some(l4) = &l4
        && tracked
        && let Some(translated) = service_nat::tracked(ctx, &ip, l4)?
    {
        fragments::remember(&ip, l4);
        return forward(ctx, &translated, oversize.as_ref(), &seen, true);
    }
    // A pod address is never a service address: pod-to-pod traffic goes straight on, to a pod here or
    // through the overlay to a pod on another node.
    if let Some(delivered) = deliver_local(ctx, ip.dst, &seen, true)? {
        return Ok(delivered);
    }
    if let Some(sent) = overlay::send(ctx, ip.dst, oversize.as_ref(), Some(&seen))? {
        return Ok(sent);
    }
    if let Some(l4) = &l4 {
        match service_nat::open(ctx, &ip, l4, Origin::Pod) {
            Ok(Some(translated)) => {
                fragments::remember(&ip, l4);
                return forward(ctx, &translated, oversize.as_ref(), &seen, true);
            }
            Ok(None) => {
                // Not service traffic, and no pod of the cluster: out of the node from its address.
                if let Some(translated) = service_nat::masquerade(ctx, &ip, l4)? {
                    fragments::remember(&ip, l4);
                    return forward(ctx, &translated, oversize.as_ref(), &seen, true);
                }
            }
            // A service without endpoints refuses at once: a RST (TCP) or an ICMP port unreachable
            // (UDP) back into the pod.
            Err(Reason::DropNoBackend) => {
                let back = tc_reject::Back::IntoPod(source.host_ifindex);
                return match tc_reject::refuse(ctx, &ip, back) {
                    Some(verdict) => Ok((Reason::DropNoBackend, verdict?)),
                    None => Err(Reason::DropNoBackend),
                };
            }
            Err(reason) => return Err(reason),
        }
    }
    policy::egress(ctx, &seen)?;
    Ok((Reason::PassToStack, TC_PASS))
}

/// Sends a translated packet on: through the overlay to another node's pod (or address), out of the
/// uplink, to a local pod, or to the node's stack; (reason, tc verdict). `oversize` is the packet as
/// judged on arrival, answered with ICMP fragmentation needed if it is bound for the tunnel; `seen` the
/// packet as it arrived, for policy, whose egress judgement it first passes when a pod sent it.
#[inline(always)]
pub fn forward(
    ctx: &TcContext,
    translated: &Translated,
    oversize: Option<&Oversize>,
    seen: &Seen,
    from_pod: bool,
) -> Result<(Reason, i32), Reason> {
    if from_pod {
        policy::egress(ctx, seen)?;
    }
    let (daddr, to_uplink, reason) = (translated.daddr, translated.to_uplink, translated.reason);
    if to_uplink && let Some(sent) = overlay::send(ctx, daddr, oversize, None)? {
        return Ok(match sent {
            (Reason::DropTooBigForTunnel, verdict) => (Reason::DropTooBigForTunnel, verdict),
            (_, verdict) => (reason, verdict),
        });
    }
    if to_uplink && let Some(node) = NODE_V1.get(0) {
        let uplink = node.uplink_ifindex;
        if uplink != 0 {
            // SAFETY: no neighbour parameters: the kernel routes the (rewritten) destination and resolves
            // the next hop's MAC itself.
            let verdict = unsafe { bpf_redirect_neigh(uplink, core::ptr::null_mut(), 0, 0) };
            return Ok((reason, verdict as i32));
        }
    }
    let verdict = deliver_local(ctx, daddr, seen, false)?.map_or(TC_PASS, |(_, verdict)| verdict);
    Ok((reason, verdict))
}

/// Delivers to the pod owning `daddr` if it is on this node, once policy allows the packet (`seen`:
/// as it arrived at the program): the sending pod's egress first when `egress` (a pod on this node
/// sent it, untranslated), then the destination's ingress.
#[inline(always)]
pub fn deliver_local(
    ctx: &TcContext,
    daddr: u32,
    seen: &Seen,
    egress: bool,
) -> Result<Option<(Reason, i32)>, Reason> {
    // SAFETY: the value is copied out at once.
    let Some(dst) = (unsafe { ENDPOINT_V1.get(EndpointKey { addr: daddr }) }).copied() else {
        return Ok(None);
    };
    if egress {
        policy::egress(ctx, seen)?;
    }
    policy::ingress(ctx, seen)?;
    rewrite_macs(ctx, &dst)?;
    // SAFETY: helper call with a plain ifindex; it only records the redirect target.
    let verdict = unsafe { bpf_redirect_peer(dst.host_ifindex, 0) };
    Ok(Some((Reason::DeliveredLocal, verdict as i32)))
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
