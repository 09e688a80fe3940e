//! Socket-level service load balancing: at connect (TCP, connected UDP) and sendmsg (unconnected UDP) a
//! service address is replaced by a backend chosen at random among the frontend's slots, once per
//! connection, so no packet is ever translated. What was replaced is remembered per socket, so recvmsg and
//! getpeername show the service address again. A frontend without backends fails the call at once with
//! ECONNREFUSED, the error a kube-proxy client sees. A frontend with `loadBalancerSourceRanges` is left
//! alone here: at connect time the socket has no source address yet, so its packets go on to the
//! per-packet path, which judges the pod's own address against the ranges (and drops it outside them, as
//! kube-proxy does); the node's own processes reach such an address the way outside clients do.

use aya_ebpf::{
    helpers::{
        bpf_get_netns_cookie, bpf_get_prandom_u32, bpf_get_socket_cookie, bpf_ktime_get_ns,
        bpf_set_retval,
    },
    programs::SockAddrContext,
};
use strait_abi::{
    BackendAddr, Direction, Program, Reason, ServiceFrontend, ServiceFrontendKey, SockRevNatKey,
    SockRevNatValue,
    service::{AffinityKey, SVC_F_ENDPOINTS_ELSEWHERE, SVC_F_SOURCE_RANGES},
};

use crate::{
    affinity,
    maps::{SOCK_REVNAT_V1, SVC_V1},
    stats,
};

/// Verdict that lets the socket call proceed.
pub const ALLOW: i32 = 1;
/// Verdict that fails the socket call: with the errno set by [`refuse`], else EPERM.
pub const REJECT: i32 = 0;
/// `ECONNREFUSED` (Linux errno 111).
const ECONNREFUSED: i32 = 111;

/// Fails the connect or sendmsg with ECONNREFUSED rather than the EPERM a bare [`REJECT`] gives,
/// which reads as a policy denial. kube-proxy's REJECT rule (an ICMP port unreachable) makes a TCP
/// connect fail with ECONNREFUSED; a connected UDP socket sees the same on its next call. An
/// unconnected UDP sendto also gets ECONNREFUSED here, at once: under kube-proxy the datagram would
/// be sent and the ICMP answer ignored (a pod) or the send fail with EPERM (the node's own
/// processes), and neither silence nor a permission error tells the sender that the Service has no
/// endpoints. `bpf_set_retval` is available to connect4 and sendmsg4 programs since Linux 5.18;
/// the kernel hands a negative errno set there to the caller when the program rejects.
#[inline(always)]
fn refuse() -> i32 {
    // SAFETY: the helper takes a plain integer and is valid in cgroup connect4/sendmsg4 programs.
    unsafe { bpf_set_retval(-ECONNREFUSED) };
    REJECT
}

/// Translates a service address to a backend; used by connect4 and sendmsg4.
#[inline(always)]
pub fn translate(ctx: &SockAddrContext) -> i32 {
    // SAFETY: the kernel passes a valid bpf_sock_addr; these fields are readable in connect/sendmsg hooks.
    let (vip, port, proto) = unsafe {
        let sa = &*ctx.sock_addr;
        (sa.user_ip4, sa.user_port as u16, sa.protocol as u8)
    };
    let key = ServiceFrontendKey {
        vip,
        port,
        proto,
        pad: 0,
    };
    // SAFETY: the value is copied out at once.
    let Some(frontend) = (unsafe { SVC_V1.get(key) }).copied() else {
        return ALLOW;
    };
    if frontend.flags & (SVC_F_SOURCE_RANGES | SVC_F_ENDPOINTS_ELSEWHERE) != 0 {
        // The client's address decides, and only the packets carry it; or the packets are to be dropped
        // without an answer (a Local policy with no endpoint here), which only tc can do.
        return ALLOW;
    }
    if frontend.backend_count == 0 {
        stats::count(Program::SockLb, Reason::DropNoBackend, Direction::Egress, 0);
        return refuse();
    }
    let Some(backend) = pick_backend(ctx, &frontend) else {
        stats::count(Program::SockLb, Reason::DropNoBackend, Direction::Egress, 0);
        return refuse();
    };
    // SAFETY: the socket context is valid for the helper.
    let cookie = unsafe { bpf_get_socket_cookie(ctx.sock_addr.cast()) };
    let revnat_key = SockRevNatKey {
        cookie,
        addr: backend.addr,
        port: backend.port,
        pad: 0,
    };
    let revnat = SockRevNatValue { vip, port, pad: 0 };
    // An LRU map makes room by itself; a failed insert only costs the reverse view of this socket.
    let _ = SOCK_REVNAT_V1.insert(revnat_key, revnat, 0);
    // SAFETY: user_ip4 and user_port are writable in connect4/sendmsg4.
    unsafe {
        (*ctx.sock_addr).user_ip4 = backend.addr;
        (*ctx.sock_addr).user_port = u32::from(backend.port);
    }
    stats::count(
        Program::SockLb,
        Reason::ServiceTranslated,
        Direction::Egress,
        0,
    );
    ALLOW
}

/// Chooses a backend: the client's affine one while it is fresh and still in its slot, else a random slot.
#[inline(always)]
fn pick_backend(ctx: &SockAddrContext, frontend: &ServiceFrontend) -> Option<BackendAddr> {
    // SAFETY: helpers valid in cgroup sock_addr programs.
    let (now, netns) = unsafe {
        (
            bpf_ktime_get_ns(),
            bpf_get_netns_cookie(ctx.sock_addr.cast()),
        )
    };
    let key = AffinityKey {
        netns_cookie: netns,
        service_id: frontend.service_id,
        pad: 0,
    };
    // SAFETY: helper without arguments.
    affinity::choose(&key, frontend, now, || {
        Some(unsafe { bpf_get_prandom_u32() })
    })
}

/// Shows the service address instead of the backend; used by recvmsg4 and getpeername4.
#[inline(always)]
pub fn reverse(ctx: &SockAddrContext) -> i32 {
    // SAFETY: valid context; the fields are readable in recvmsg/getpeername hooks.
    let (addr, port) = unsafe {
        let sa = &*ctx.sock_addr;
        (sa.user_ip4, sa.user_port as u16)
    };
    // SAFETY: the socket context is valid for the helper.
    let cookie = unsafe { bpf_get_socket_cookie(ctx.sock_addr.cast()) };
    let key = SockRevNatKey {
        cookie,
        addr,
        port,
        pad: 0,
    };
    // SAFETY: the value is copied out at once.
    if let Some(original) = (unsafe { SOCK_REVNAT_V1.get(key) }).copied() {
        // SAFETY: user_ip4 and user_port are writable in recvmsg4/getpeername4.
        unsafe {
            (*ctx.sock_addr).user_ip4 = original.vip;
            (*ctx.sock_addr).user_port = u32::from(original.port);
        }
    }
    ALLOW
}
