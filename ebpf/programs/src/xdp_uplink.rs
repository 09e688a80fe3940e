//! XDP on the node's uplink: the fast path for what can be decided before an skb exists. A packet to a
//! frontend from outside its `loadBalancerSourceRanges` is dropped; a packet of a tracked flow to a pod
//! on this node is translated and redirected to the pod here (`xdp_nat`); a TCP packet to a frontend without
//! backends is answered with a RST (UDP: an ICMP port unreachable) sent straight back (`XDP_TX`), as
//! kube-proxy's reject does; everything
//! else goes on to the tc program (`from_uplink`), which does the translation.

use aya_ebpf::{
    bindings::xdp_action::{XDP_DROP, XDP_PASS, XDP_TX},
    programs::XdpContext,
};
use strait_abi::{Reason, service::SVC_F_ENDPOINTS_ELSEWHERE};

use crate::{
    lb,
    nat::Tuple,
    node_local,
    parse::{ETH_LEN, PROTO_TCP, PROTO_UDP},
    xdp_nat, xdp_reject,
};

/// Whether tracked flows to local pods are translated and redirected here (1) or left to tc (0). The
/// loader sets it: in generic (skb) mode an XDP redirect to a veth queues the packet for another softirq
/// pass, which costs more than tc's `bpf_redirect_peer`, so the agent turns the fast path off there.
#[unsafe(no_mangle)]
static XDP_FAST_PATH: u8 = 1;

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
    let (ethertype, vihl, total, frag, proto, saddr, daddr, sport, dport) = unsafe {
        let ip = eth.add(ETH_LEN);
        (
            [*eth.add(12), *eth.add(13)],
            *ip,
            usize::from(u16::from_be_bytes([*ip.add(2), *ip.add(3)])),
            u16::from_be_bytes([*ip.add(6), *ip.add(7)]) & 0x3fff,
            *ip.add(9),
            core::ptr::read_unaligned(ip.add(12).cast::<u32>()),
            core::ptr::read_unaligned(ip.add(16).cast::<u32>()),
            core::ptr::read_unaligned(ip.add(20).cast::<u16>()),
            core::ptr::read_unaligned(ip.add(20 + 2).cast::<u16>()),
        )
    };
    // A forged node-local source is dropped first, whatever the packet carries (tc drops the IPv4
    // packets this program passes on).
    if ethertype == [0x08, 0x00] && node_local::is_node_local(saddr) {
        return (Reason::DropSpoofedSource, XDP_DROP);
    }
    // Only whole, option-less IPv4 TCP/UDP packets are decided here (the transport header inside the IP
    // packet, not in Ethernet padding); tc handles, or drops, the rest.
    let l4_need = if proto == PROTO_TCP { 20 } else { 8 };
    if ethertype != [0x08, 0x00]
        || vihl != 0x45
        || frag != 0
        || (proto != PROTO_TCP && proto != PROTO_UDP)
        || total < 20 + l4_need
        || ETH_LEN + total > end - start
    {
        return (Reason::PassToTc, XDP_PASS);
    }
    let Some(frontend) = lb::frontend(daddr, dport, proto) else {
        return (Reason::PassToTc, XDP_PASS);
    };
    if !lb::source_allowed(&frontend, saddr) {
        return (Reason::DropSourceRange, XDP_DROP);
    }
    if frontend.backend_count == 0 && frontend.flags & SVC_F_ENDPOINTS_ELSEWHERE != 0 {
        return (Reason::DropNoLocalBackend, XDP_DROP);
    }
    if frontend.backend_count != 0 {
        // SAFETY: a constant the loader may have rewritten; read it as the kernel sees it.
        if unsafe { core::ptr::read_volatile(&raw const XDP_FAST_PATH) } == 0 {
            return (Reason::PassToTc, XDP_PASS);
        }
        let tuple = Tuple {
            saddr,
            daddr,
            sport,
            dport,
        };
        return match xdp_nat::forward_tracked(ctx, &tuple, proto) {
            Some(verdict) => (Reason::ServiceNat, verdict),
            None => (Reason::PassToTc, XDP_PASS),
        };
    }
    let answered = if proto == PROTO_TCP {
        xdp_reject::reset(ctx)
    } else {
        xdp_reject::port_unreachable(ctx)
    };
    if answered {
        (Reason::DropNoBackend, XDP_TX)
    } else {
        (Reason::DropNoBackend, XDP_DROP)
    }
}
