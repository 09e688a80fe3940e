//! tcx ingress on the node's uplink: traffic from outside the node. TCP/UDP to a frontend (NodePort,
//! LoadBalancer ingress IP, externalIP) or of a tracked flow goes through the per-packet service path and
//! on to its pod (or back out of the uplink); a packet for a pod on this node is delivered to it; the
//! rest goes to the node's stack. Later fragments of translated datagrams and ICMP errors about translated
//! flows are translated like their flows (`fragments`, `icmp_nat`). A source address that exists only inside the node is forged
//! ([`node_local`]) and dropped.

use aya_ebpf::programs::TcContext;
use strait_abi::Reason;

use crate::{
    deliver::{TC_PASS, deliver_local, forward},
    fragments, icmp_nat, node_local,
    parse::{Frame, parse, parse_l4},
    service_nat::{self, Origin},
    tunnel_mtu,
};

/// Decides what happens to a packet that arrived on the uplink: (reason, tc verdict), or the drop reason.
#[inline(always)]
pub fn from_uplink(ctx: &TcContext) -> Result<(Reason, i32), Reason> {
    let Frame::Ipv4(ip) = parse(ctx)? else {
        return Ok((Reason::PassNonIpv4, TC_PASS));
    };
    if node_local::is_node_local(ip.src) {
        return Err(Reason::DropSpoofedSource);
    }
    if let Some(translated) = icmp_nat::translate(ctx, &ip, Origin::Uplink)? {
        return forward(ctx, &translated, None);
    }
    // Judged before translation: an ICMP error about it must quote it as the client sent it.
    let oversize = tunnel_mtu::oversize(ctx, &ip);
    let l4 = match parse_l4(ctx, &ip)? {
        Some(l4) => Some(l4),
        None => fragments::ports(&ip),
    };
    if let Some(l4) = l4
        && let Some(translated) = service_nat::translate(ctx, &ip, &l4, Origin::Uplink)?
    {
        fragments::remember(&ip, &l4);
        return forward(ctx, &translated, oversize.as_ref());
    }
    Ok(deliver_local(ctx, ip.dst)?.unwrap_or((Reason::PassToStack, TC_PASS)))
}
