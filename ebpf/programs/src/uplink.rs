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
    policy::Seen,
    service_nat::{self, Origin},
    tc_reject, tunnel_mtu,
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
    let seen = Seen::now(ctx, &ip);
    if let Some(translated) = icmp_nat::translate(ctx, &ip, Origin::Uplink)? {
        seen.related();
        return forward(ctx, &translated, None, &seen, false);
    }
    // Judged before translation: an ICMP error about it must quote it as the client sent it.
    let oversize = tunnel_mtu::oversize(ctx, &ip);
    let l4 = match parse_l4(ctx, &ip)? {
        Some(l4) => Some(l4),
        None => fragments::ports(&ip),
    };
    if let Some(l4) = l4 {
        match service_nat::translate(ctx, &ip, &l4, Origin::Uplink) {
            Ok(Some(translated)) => {
                fragments::remember(&ip, &l4);
                return forward(ctx, &translated, oversize.as_ref(), &seen, false);
            }
            Ok(None) => {}
            // No endpoints: refused at once (XDP answers first where it runs).
            Err(Reason::DropNoBackend) => {
                return match tc_reject::refuse(ctx, &ip, tc_reject::Back::OutOfArrival) {
                    Some(verdict) => Ok((Reason::DropNoBackend, verdict?)),
                    None => Err(Reason::DropNoBackend),
                };
            }
            Err(reason) => return Err(reason),
        }
    }
    Ok(deliver_local(ctx, ip.dst, &seen, false)?.unwrap_or((Reason::PassToStack, TC_PASS)))
}
