//! The overlay between nodes. A packet for a pod on another node (or for another node's address) is
//! found in REMOTE_V1 by its destination and sent to that node: into the VXLAN tunnel, Flannel's wire
//! format (the tunnel key names the node's underlay address and the VNI; the inner Ethernet header
//! carries the remote VTEP's MAC as destination and this node's as source, as `flannel.<VNI>` expects),
//! or, in direct mode, straight to the node's underlay address. What arrives through the tunnel is
//! checked against its sender (the inner source must be the sending node's pod or the node itself) and
//! delivered: to a local pod, through the per-packet service path (a remote pod opening a flow to one
//! of this node's frontends on its address, NodePort or host port, and replies of flows this node
//! translated), or to the node's stack.

use aya_ebpf::{
    bindings::{BPF_F_ZERO_CSUM_TX, bpf_redir_neigh, bpf_tunnel_key},
    helpers::{bpf_redirect, bpf_redirect_neigh, bpf_skb_get_tunnel_key, bpf_skb_set_tunnel_key},
    maps::lpm_trie::Key,
    programs::TcContext,
};
use strait_abi::{
    EndpointKey, Reason,
    endpoint::ENDPOINT_F_TRACKED,
    overlay::{OVERLAY_MODE_DIRECT, RemoteNode, RemotePrefix},
};

use crate::{
    deliver::{TC_PASS, deliver_local, forward},
    fragments,
    maps::{ENDPOINT_V1, NODE_V1, OVERLAY_V1, REMOTE_V1},
    parse::{ETH_LEN, Frame, bytes_at, parse, parse_l4},
    policy::Seen,
    service_nat::{self, Origin},
    tunnel_mtu::{self, Oversize},
};

/// `AF_INET`, for `bpf_redirect_neigh`'s next hop.
const AF_INET: u32 = 2;
/// Size of `bpf_redir_neigh` (20 bytes: family and an IPv6-sized address), as `bpf_redirect_neigh` takes it.
const NEXT_HOP_SIZE: i32 = 20;
const _: () = assert!(core::mem::size_of::<bpf_redir_neigh>() == NEXT_HOP_SIZE as usize);
/// TTL of the outer IPv4 header.
const TUNNEL_TTL: u8 = 64;

/// The remote node owning `addr` (network byte order): its pod CIDR holds it, or it is its address.
#[inline(always)]
pub fn remote(addr: u32) -> Option<RemoteNode> {
    REMOTE_V1.get(Key::new(32, RemotePrefix { addr })).copied()
}

/// Sends the packet to the remote node owning `daddr`: (reason, tc verdict), `None` when no remote node
/// owns it (or the overlay is off). A packet judged too big for the tunnel when it arrived (`oversize`)
/// is answered with ICMP fragmentation needed instead of entering it; `egress`, when a pod on this
/// node sent it untranslated, has its egress policy judged once the destination is known to be remote.
#[inline(always)]
pub fn send(
    ctx: &TcContext,
    daddr: u32,
    oversize: Option<&Oversize>,
    egress: Option<&Seen>,
) -> Result<Option<(Reason, i32)>, Reason> {
    let Some(node) = remote(daddr) else {
        return Ok(None);
    };
    // A pod's untranslated packet passes its egress policy first (`seen`: as it arrived).
    if let Some(seen) = egress {
        crate::policy::egress(ctx, seen)?;
    }
    if node.mode == OVERLAY_MODE_DIRECT {
        return Ok(send_direct(&node).map(|verdict| (Reason::OverlayEncap, verdict)));
    }
    let Some(config) = OVERLAY_V1.get(0) else {
        return Ok(None);
    };
    if config.vxlan_ifindex == 0 {
        return Ok(None);
    }
    if let Some(oversize) = oversize {
        return tunnel_mtu::refuse(ctx, oversize).map(Some);
    }
    encapsulate(ctx, &node)?;
    // SAFETY: helper call with a plain ifindex.
    let verdict = unsafe { bpf_redirect(config.vxlan_ifindex, 0) };
    Ok(Some((Reason::OverlayEncap, verdict as i32)))
}

/// Direct routing: out of the uplink to the node's underlay address as next hop (the kernel resolves its
/// MAC); `None` without an uplink.
#[inline(always)]
fn send_direct(node: &RemoteNode) -> Option<i32> {
    let uplink = NODE_V1.get(0)?.uplink_ifindex;
    if uplink == 0 {
        return None;
    }
    let mut next_hop = bpf_redir_neigh {
        nh_family: AF_INET,
        __bindgen_anon_1: aya_ebpf::bindings::bpf_redir_neigh__bindgen_ty_1 {
            ipv4_nh: node.node_ip,
        },
    };
    // SAFETY: the next hop lives on the stack for the call; the helper copies it.
    let verdict = unsafe { bpf_redirect_neigh(uplink, &raw mut next_hop, NEXT_HOP_SIZE, 0) };
    Some(verdict as i32)
}

/// Gives the packet its tunnel (the remote node's address, the VNI; no outer UDP checksum, as the
/// kernel's VXLAN sends by default over IPv4) and the inner MACs Flannel expects.
#[inline(always)]
pub fn encapsulate(ctx: &TcContext, node: &RemoteNode) -> Result<(), Reason> {
    let config = OVERLAY_V1.get(0).ok_or(Reason::DropRewriteFailed)?;
    // SAFETY: an all-zero bpf_tunnel_key is a valid value (plain integers and unions of integers).
    let mut key: bpf_tunnel_key = unsafe { core::mem::zeroed() };
    key.tunnel_id = config.vni;
    // The helper takes the remote address in host byte order.
    key.__bindgen_anon_1.remote_ipv4 = u32::from_be(node.node_ip);
    key.tunnel_ttl = TUNNEL_TTL;
    let size = core::mem::size_of::<bpf_tunnel_key>() as u32;
    // SAFETY: the key lives on the stack for the call; the helper copies it into the skb's metadata.
    let rc = unsafe {
        bpf_skb_set_tunnel_key(
            ctx.skb.skb,
            &raw mut key,
            size,
            u64::from(BPF_F_ZERO_CSUM_TX),
        )
    };
    if rc != 0 {
        return Err(Reason::DropRewriteFailed);
    }
    let eth = bytes_at(ctx, 0, ETH_LEN).ok_or(Reason::DropRewriteFailed)?;
    // SAFETY: `bytes_at` checked the 14 Ethernet bytes are in bounds; tc makes the data writable.
    unsafe {
        core::ptr::write_unaligned(eth.cast::<[u8; 6]>(), node.vtep_mac);
        core::ptr::write_unaligned(eth.add(6).cast::<[u8; 6]>(), config.vtep_mac);
    }
    Ok(())
}

/// tcx egress of the VXLAN device: the node's own packets routed into the overlay (to remote pods, from
/// its overlay address) get their tunnel here, or in direct mode leave through the uplink; packets the
/// programs already tunnelled pass; anything else is left to the device, which drops a packet without
/// a tunnel.
#[inline(always)]
pub fn to_overlay(ctx: &TcContext) -> Result<(Reason, i32), Reason> {
    let Frame::Ipv4(ip) = parse(ctx)? else {
        return Ok((Reason::PassNonIpv4, TC_PASS));
    };
    match remote(ip.dst) {
        Some(node) if node.mode == OVERLAY_MODE_DIRECT => match send_direct(&node) {
            Some(verdict) => Ok((Reason::OverlayEncap, verdict)),
            None => Ok((Reason::PassToStack, TC_PASS)),
        },
        // `from_pod` and `forward` tunnel their packets before redirecting them here (the inner
        // destination is already the remote VTEP, where the node's own packets carry this device's
        // MAC): they pass unchanged rather than being given the same tunnel twice.
        Some(node) if inner_destination(ctx) == Some(node.vtep_mac) => {
            Ok((Reason::PassToStack, TC_PASS))
        }
        Some(node) => {
            encapsulate(ctx, &node)?;
            Ok((Reason::OverlayEncap, TC_PASS))
        }
        None => Ok((Reason::PassToStack, TC_PASS)),
    }
}

/// The frame's destination MAC.
#[inline(always)]
fn inner_destination(ctx: &TcContext) -> Option<[u8; 6]> {
    let eth = bytes_at(ctx, 0, ETH_LEN)?;
    // SAFETY: `bytes_at` checked the Ethernet header is in bounds.
    Some(unsafe { core::ptr::read_unaligned(eth.cast::<[u8; 6]>()) })
}

/// tcx ingress of the VXLAN device: a packet another node sent through the tunnel (on this overlay's
/// VNI, from the node owning its source).
#[inline(always)]
pub fn from_overlay(ctx: &TcContext) -> Result<(Reason, i32), Reason> {
    let Frame::Ipv4(ip) = parse(ctx)? else {
        return Ok((Reason::PassNonIpv4, TC_PASS));
    };
    // SAFETY: an all-zero bpf_tunnel_key is a valid value.
    let mut key: bpf_tunnel_key = unsafe { core::mem::zeroed() };
    let size = core::mem::size_of::<bpf_tunnel_key>() as u32;
    // SAFETY: the key lives on the stack; the helper fills it from the skb's tunnel metadata.
    let rc = unsafe { bpf_skb_get_tunnel_key(ctx.skb.skb, &raw mut key, size, 0) };
    if rc != 0 {
        return Err(Reason::DropOverlaySource);
    }
    // Another VNI is another network that shares the port.
    if OVERLAY_V1
        .get(0)
        .is_none_or(|config| config.vni != key.tunnel_id)
    {
        return Err(Reason::DropOverlaySource);
    }
    // SAFETY: reading the IPv4 member the helper filled.
    let sender = u32::to_be(unsafe { key.__bindgen_anon_1.remote_ipv4 });
    match remote(ip.src) {
        Some(owner) if owner.node_ip == sender => {}
        _ => return Err(Reason::DropOverlaySource),
    }
    // Only packets to the node's own address (a remote pod opening a NodePort or host port flow here,
    // or a reply to this node's SNAT address) and to a local pod that is the client of a tracked flow
    // need the service path. Plain pod-to-pod traffic skips the lookups.
    let seen = Seen::now(ctx, &ip);
    let to_node = is_node_address(ip.dst);
    if to_node || is_tracked_pod(ip.dst) {
        let l4 = match parse_l4(ctx, &ip)? {
            Some(l4) => Some(l4),
            None => fragments::ports(&ip),
        };
        if let Some(l4) = &l4 {
            // A remote pod is outside this node, as a client on the uplink is: the frontend's policy
            // decides SNAT, and replies go back the way the packet came (the tunnel).
            let translated = if to_node {
                match service_nat::translate(ctx, &ip, l4, Origin::Uplink) {
                    // No endpoints: the node's stack answers (RST, port unreachable) through the tunnel.
                    Err(Reason::DropNoBackend) => None,
                    other => other?,
                }
            } else {
                service_nat::tracked(ctx, &ip, l4)?
            };
            if let Some(translated) = translated {
                fragments::remember(&ip, l4);
                return forward(ctx, &translated, None, &seen, false);
            }
        }
    }
    if let Some((_, verdict)) = deliver_local(ctx, ip.dst, &seen, false)? {
        return Ok((Reason::OverlayDecap, verdict));
    }
    Ok((Reason::OverlayDecap, TC_PASS))
}

/// Whether `daddr` is the node's own address: a frontend's (NodePort, host port) and the SNAT source of
/// the flows it translated.
#[inline(always)]
fn is_node_address(daddr: u32) -> bool {
    NODE_V1.get(0).is_some_and(|node| node.node_ip == daddr)
}

/// Whether `daddr` is a local pod marked as part of a tracked flow.
#[inline(always)]
fn is_tracked_pod(daddr: u32) -> bool {
    // SAFETY: the value is copied out at once.
    unsafe { ENDPOINT_V1.get(EndpointKey { addr: daddr }) }
        .is_some_and(|pod| pod.flags & ENDPOINT_F_TRACKED != 0)
}
