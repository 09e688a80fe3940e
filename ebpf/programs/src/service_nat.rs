//! The per-packet service path shared by `from_pod` and `from_uplink`: tracked flows are rewritten from
//! their CT entry (forward: to the backend; reply: back to the service address); a first packet to a
//! frontend picks a backend, decides on SNAT (external clients of `externalTrafficPolicy: Cluster`
//! frontends get the node's address; a pod reaching itself gets the hairpin address), records both
//! directions and is rewritten.

use aya_ebpf::{helpers::bpf_ktime_get_ns, programs::TcContext};
use strait_abi::{
    BackendAddr, CtEntry, EndpointKey, Reason,
    conntrack::{
        CT_DIR_FORWARD, CT_DIR_REPLY, CT_F_SNAT, CT_F_TO_UPLINK, CT_STATE_NEW, HAIRPIN_SNAT_ADDR,
    },
    endpoint::ENDPOINT_F_TRACKED,
    service::{SVC_F_ENDPOINTS_ELSEWHERE, SVC_F_LOCAL},
};

use crate::{
    conntrack, lb,
    maps::{ENDPOINT_V1, NODE_V1},
    nat::{Tuple, rewrite},
    node_local,
    parse::{Ipv4, L4, TCP_RST},
};

/// Where the packet came from.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A pod on this node (from_pod).
    Pod,
    /// Outside the node (from_uplink).
    Uplink,
}

/// A translated packet: why, its new destination, and whether it must leave through the uplink.
pub struct Translated {
    pub reason: Reason,
    pub daddr: u32,
    pub to_uplink: bool,
}

/// Translates the packet if it belongs to a tracked flow or opens one to a frontend; `None` when it is
/// not service traffic.
#[inline(always)]
pub fn translate(
    ctx: &TcContext,
    ip: &Ipv4,
    l4: &L4,
    origin: Origin,
) -> Result<Option<Translated>, Reason> {
    if let Some(translated) = tracked(ctx, ip, l4)? {
        return Ok(Some(translated));
    }
    open(ctx, ip, l4, origin)
}

/// The packet's flow as seen on the wire.
#[inline(always)]
fn tuple_of(ip: &Ipv4, l4: &L4) -> Tuple {
    Tuple {
        saddr: ip.src,
        daddr: ip.dst,
        sport: l4.sport,
        dport: l4.dport,
    }
}

/// Rewrites the packet from its live CT entry (reply direction first); `None` without one.
#[inline(always)]
pub fn tracked(ctx: &TcContext, ip: &Ipv4, l4: &L4) -> Result<Option<Translated>, Reason> {
    // SAFETY: helper without arguments.
    let now = unsafe { bpf_ktime_get_ns() };
    let tuple = tuple_of(ip, l4);
    for dir in [CT_DIR_REPLY, CT_DIR_FORWARD] {
        let key = conntrack::key(&tuple, ip.proto, dir);
        if let Some(entry) = conntrack::track(&key, l4, now)? {
            let new = conntrack::rewritten(&entry);
            rewrite(ctx, ip, &tuple, &new)?;
            let reason = if dir == CT_DIR_FORWARD {
                Reason::ServiceNat
            } else {
                Reason::ReverseNat
            };
            return Ok(Some(Translated {
                reason,
                daddr: new.daddr,
                to_uplink: entry.flags & CT_F_TO_UPLINK != 0,
            }));
        }
    }
    Ok(None)
}

/// Opens a flow to the frontend the packet is addressed to; `None` when it is addressed to none.
#[inline(always)]
pub fn open(
    ctx: &TcContext,
    ip: &Ipv4,
    l4: &L4,
    origin: Origin,
) -> Result<Option<Translated>, Reason> {
    if ip.later_fragment {
        // Only a datagram's first fragment (the one with the ports) may open a flow.
        return Ok(None);
    }
    let Some(frontend) = lb::frontend(ip.dst, l4.dport, ip.proto) else {
        return Ok(None);
    };
    if !lb::source_allowed(&frontend, ip.src) {
        return Err(Reason::DropSourceRange);
    }
    if frontend.backend_count == 0 {
        if frontend.flags & SVC_F_ENDPOINTS_ELSEWHERE != 0 {
            return Err(Reason::DropNoLocalBackend);
        }
        return Err(Reason::DropNoBackend);
    }
    if l4.tcp_flags & TCP_RST != 0 {
        // A reset for a flow nobody tracks: nothing to open.
        return Err(Reason::DropNoBackend);
    }

    // SAFETY: helper without arguments.
    let now = unsafe { bpf_ktime_get_ns() };
    let tuple = tuple_of(ip, l4);
    let backend = lb::pick(&frontend, &tuple, ip.proto, now).ok_or(Reason::DropNoBackend)?;
    let snat_addr = match origin {
        Origin::Uplink if frontend.flags & SVC_F_LOCAL == 0 => Some(node_address(ip.dst)),
        Origin::Pod if backend.addr == ip.src => Some(u32::from_ne_bytes(HAIRPIN_SNAT_ADDR)),
        _ => None,
    };
    // Pods of the flow are marked before its entries exist, so none of their packets skips conntrack.
    let backend_local = mark_tracked(backend.addr);
    if origin == Origin::Pod {
        mark_tracked(ip.src);
    }
    let flow = Flow {
        target: backend,
        snat_addr,
        service_id: frontend.service_id,
        target_outside: !backend_local,
        client_outside: origin == Origin::Uplink,
    };
    let new = start(ctx, ip, l4, &tuple, &flow, now)?;
    Ok(Some(Translated {
        reason: Reason::ServiceNat,
        daddr: new.daddr,
        to_uplink: !backend_local,
    }))
}

/// A flow about to be recorded: where it goes, from which address, and which sides are off the node.
struct Flow {
    target: BackendAddr,
    snat_addr: Option<u32>,
    service_id: u32,
    /// The target is reached through the uplink (or the overlay).
    target_outside: bool,
    /// The client is: replies go back out.
    client_outside: bool,
}

/// Records both directions of `flow` (taking an SNAT port when it has an SNAT address) and rewrites
/// the packet; its new tuple.
#[inline(always)]
fn start(
    ctx: &TcContext,
    ip: &Ipv4,
    l4: &L4,
    tuple: &Tuple,
    flow: &Flow,
    now: u64,
) -> Result<Tuple, Reason> {
    let snat_flag = if flow.snat_addr.is_some() {
        CT_F_SNAT
    } else {
        0
    };
    let outside = |yes: bool| if yes { CT_F_TO_UPLINK } else { 0 };
    // The reply entry does not depend on the SNAT port (the port is in its key), so it can reserve it.
    let reply = CtEntry {
        last_seen_ns: now,
        new_saddr: tuple.daddr,
        new_sport: tuple.dport,
        new_daddr: tuple.saddr,
        new_dport: tuple.sport,
        state: CT_STATE_NEW,
        flags: snat_flag | outside(flow.client_outside),
        seq_seen: 0,
        pad: 0,
        service_id: flow.service_id,
        seq_end: 0,
    };
    let (saddr, sport) = match flow.snat_addr {
        Some(addr) => (
            addr,
            lb::snat_port(&flow.target, addr, ip.proto, now, &reply)
                .ok_or(Reason::DropNatFailed)?,
        ),
        None => (ip.src, l4.sport),
    };
    let new = Tuple {
        saddr,
        daddr: flow.target.addr,
        sport,
        dport: flow.target.port,
    };
    let forward = CtEntry {
        new_saddr: new.saddr,
        new_sport: new.sport,
        new_dport: new.dport,
        new_daddr: new.daddr,
        flags: snat_flag | outside(flow.target_outside),
        seq_seen: u8::from(l4.has_seq),
        seq_end: l4.seq_end,
        ..reply
    };
    let forward_key = conntrack::key(tuple, ip.proto, CT_DIR_FORWARD);
    let reply_key = conntrack::partner(&forward_key, &forward);
    conntrack::create((&forward_key, &forward), (&reply_key, &reply))
        .map_err(|_| Reason::DropNatFailed)?;
    rewrite(ctx, ip, tuple, &new)?;
    Ok(new)
}

/// Whether pods' traffic leaving the cluster is masqueraded (a load-time constant, set by the agent).
#[unsafe(no_mangle)]
static MASQUERADE: u8 = 0;
/// The cluster's pod range (network byte order), load-time constants: traffic to it is never
/// masqueraded (an address there that no node owns goes to the stack, which has no route for it).
#[unsafe(no_mangle)]
static CLUSTER_NET: u32 = 0;
#[unsafe(no_mangle)]
static CLUSTER_MASK: u32 = 0;

/// A pod's first packet to an address outside the cluster (outside its pod range, no frontend, not
/// this node): recorded as a flow from the node's address and sent out of the uplink, so
/// the answer comes back to the node, which reverses it to the pod; `None` when masquerading is off,
/// the node has no address or uplink yet, or the packet cannot open a flow (a later fragment, a RST).
#[inline(always)]
pub fn masquerade(ctx: &TcContext, ip: &Ipv4, l4: &L4) -> Result<Option<Translated>, Reason> {
    // SAFETY: a constant the loader may have rewritten; read it as the kernel sees it.
    if unsafe { core::ptr::read_volatile(&raw const MASQUERADE) } == 0
        || in_cluster(ip.dst)
        || ip.later_fragment
        || l4.tcp_flags & TCP_RST != 0
        || node_local::is_node_local(ip.dst)
    {
        return Ok(None);
    }
    let Some(node) = NODE_V1.get(0).copied() else {
        return Ok(None);
    };
    if node.node_ip == 0 || node.uplink_ifindex == 0 {
        return Ok(None);
    }
    mark_tracked(ip.src);
    // SAFETY: helper without arguments.
    let now = unsafe { bpf_ktime_get_ns() };
    let tuple = tuple_of(ip, l4);
    let flow = Flow {
        target: BackendAddr {
            addr: ip.dst,
            port: l4.dport,
            pad: 0,
        },
        snat_addr: Some(node.node_ip),
        service_id: 0,
        target_outside: true,
        client_outside: false,
    };
    let new = start(ctx, ip, l4, &tuple, &flow, now)?;
    Ok(Some(Translated {
        reason: Reason::Masquerade,
        daddr: new.daddr,
        to_uplink: true,
    }))
}

/// Whether `addr` (network byte order) is in the cluster's pod range.
#[inline(always)]
fn in_cluster(addr: u32) -> bool {
    // SAFETY: constants the loader may have rewritten; read them as the kernel sees them.
    let (net, mask) = unsafe {
        (
            core::ptr::read_volatile(&raw const CLUSTER_NET),
            core::ptr::read_volatile(&raw const CLUSTER_MASK),
        )
    };
    addr & mask == net
}

/// Sets ENDPOINT_F_TRACKED on the pod owning `addr`; false when no pod on this node owns it.
#[inline(always)]
fn mark_tracked(addr: u32) -> bool {
    let Some(endpoint) = ENDPOINT_V1.get_ptr_mut(EndpointKey { addr }) else {
        return false;
    };
    // SAFETY: a pointer into the map value; setting a bit that nobody else clears.
    unsafe {
        if (*endpoint).flags & ENDPOINT_F_TRACKED == 0 {
            (*endpoint).flags |= ENDPOINT_F_TRACKED;
        }
    }
    true
}

/// The SNAT source for external flows: the node's address once the agent has set it, else the address
/// the client asked for.
#[inline(always)]
fn node_address(asked: u32) -> u32 {
    match NODE_V1.get(0) {
        Some(node) if node.node_ip != 0 => node.node_ip,
        _ => asked,
    }
}
