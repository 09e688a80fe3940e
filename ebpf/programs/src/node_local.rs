//! Addresses that exist only inside this node: its pods' addresses, the hairpin SNAT source and the
//! node's own address. A packet from the uplink claiming one of them as its source is forged (it could
//! otherwise pose as a backend's reply to a tracked flow, whose reply entries are looked up first), so
//! both uplink programs drop it.

use strait_abi::{EndpointKey, conntrack::HAIRPIN_SNAT_ADDR};

use crate::maps::{ENDPOINT_V1, NODE_V1};

/// Whether `saddr` (network byte order) is an address that exists only inside this node.
#[inline(always)]
pub fn is_node_local(saddr: u32) -> bool {
    if saddr == u32::from_ne_bytes(HAIRPIN_SNAT_ADDR) {
        return true;
    }
    if NODE_V1
        .get(0)
        .is_some_and(|node| node.node_ip != 0 && node.node_ip == saddr)
    {
        return true;
    }
    // SAFETY: only whether an entry exists is read.
    unsafe { ENDPOINT_V1.get(EndpointKey { addr: saddr }) }.is_some()
}

/// Whether `addr` (network byte order) is this node's own address, or the hairpin SNAT source (a pod
/// reaching itself through a Service).
#[inline(always)]
pub fn is_node_address(addr: u32) -> bool {
    addr == u32::from_ne_bytes(HAIRPIN_SNAT_ADDR)
        || NODE_V1
            .get(0)
            .is_some_and(|node| node.node_ip != 0 && node.node_ip == addr)
}
