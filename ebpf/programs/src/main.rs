//! strait-ebpf entry points. Each attach point is a thin wrapper: the work lives in one module per concern,
//! and every outcome, forward or drop, carries a `strait_abi::Reason` that is counted before the verdict is returned.
#![no_std]
#![cfg_attr(target_arch = "bpf", no_main)]
#![expect(
    clippy::inline_always,
    reason = "eBPF: helpers are inlined into each program so the verifier sees one function per entry point"
)]

mod affinity;
mod conntrack;
mod csum;
mod deliver;
mod dns_fast;
mod fragments;
mod icmp_nat;
mod lb;
mod maps;
mod nat;
mod node_local;
mod overlay;
mod parse;
mod policy;
mod reject;
mod service_nat;
mod sock_lb;
mod stats;
mod tc_reject;
mod tunnel_mtu;
mod uplink;
mod xdp_nat;
mod xdp_reject;
mod xdp_uplink;

use aya_ebpf::{
    macros::{cgroup_sock_addr, classifier, xdp},
    programs::{SockAddrContext, TcContext, XdpContext},
};
use strait_abi::{Direction, Program};

/// tcx ingress on the host side of every pod veth: traffic leaving a pod.
#[classifier]
#[expect(
    clippy::needless_pass_by_value,
    reason = "aya's classifier macro hands the context over by value"
)]
pub fn from_pod(ctx: TcContext) -> i32 {
    let (reason, verdict) = match deliver::from_pod(&ctx) {
        Ok(outcome) => outcome,
        Err(reason) => (reason, deliver::TC_DROP),
    };
    stats::count(Program::FromPod, reason, Direction::Egress, ctx.len());
    verdict
}

/// tcx ingress on the host side of a pod's veth, ahead of `from_pod`: the kernel DNS fast path.
#[classifier]
#[expect(
    clippy::needless_pass_by_value,
    reason = "aya's classifier macro hands the context over by value"
)]
pub fn dns_fast(ctx: TcContext) -> i32 {
    dns_fast::run(&ctx)
}

/// tcx ingress on the node's uplink: traffic from outside the node.
#[classifier]
#[expect(
    clippy::needless_pass_by_value,
    reason = "aya's classifier macro hands the context over by value"
)]
pub fn from_uplink(ctx: TcContext) -> i32 {
    let (reason, verdict) = match uplink::from_uplink(&ctx) {
        Ok(outcome) => outcome,
        Err(reason) => (reason, deliver::TC_DROP),
    };
    stats::count(Program::FromUplink, reason, Direction::Ingress, ctx.len());
    verdict
}

/// tcx ingress on the node's VXLAN device: packets other nodes sent through the tunnel.
#[classifier]
#[expect(
    clippy::needless_pass_by_value,
    reason = "aya's classifier macro hands the context over by value"
)]
pub fn from_overlay(ctx: TcContext) -> i32 {
    let (reason, verdict) = match overlay::from_overlay(&ctx) {
        Ok(outcome) => outcome,
        Err(reason) => (reason, deliver::TC_DROP),
    };
    stats::count(Program::FromOverlay, reason, Direction::Ingress, ctx.len());
    verdict
}

/// tcx egress on the node's VXLAN device: the node's own packets into the overlay get their tunnel.
#[classifier]
#[expect(
    clippy::needless_pass_by_value,
    reason = "aya's classifier macro hands the context over by value"
)]
pub fn to_overlay(ctx: TcContext) -> i32 {
    let (reason, verdict) = match overlay::to_overlay(&ctx) {
        Ok(outcome) => outcome,
        Err(reason) => (reason, deliver::TC_DROP),
    };
    stats::count(Program::ToOverlay, reason, Direction::Egress, ctx.len());
    verdict
}

/// XDP on the node's uplink: early drops (source ranges) and rejections (no backend).
#[xdp]
#[expect(
    clippy::needless_pass_by_value,
    reason = "aya's xdp macro hands the context over by value"
)]
pub fn xdp_uplink(ctx: XdpContext) -> u32 {
    let len = (ctx.data_end() - ctx.data()) as u32;
    let (reason, verdict) = xdp_uplink::xdp_uplink(&ctx);
    stats::count(Program::XdpUplink, reason, Direction::Ingress, len);
    verdict
}

/// cgroup connect4: TCP and connected UDP to a service address go to a backend.
#[cgroup_sock_addr(connect4)]
#[expect(
    clippy::needless_pass_by_value,
    reason = "aya's macro hands the context over by value"
)]
pub fn sock_connect4(ctx: SockAddrContext) -> i32 {
    sock_lb::translate(&ctx)
}

/// cgroup sendmsg4: unconnected UDP to a service address goes to a backend.
#[cgroup_sock_addr(sendmsg4)]
#[expect(
    clippy::needless_pass_by_value,
    reason = "aya's macro hands the context over by value"
)]
pub fn sock_sendmsg4(ctx: SockAddrContext) -> i32 {
    sock_lb::translate(&ctx)
}

/// cgroup recvmsg4: UDP replies from a backend appear to come from the service address.
#[cgroup_sock_addr(recvmsg4)]
#[expect(
    clippy::needless_pass_by_value,
    reason = "aya's macro hands the context over by value"
)]
pub fn sock_recvmsg4(ctx: SockAddrContext) -> i32 {
    sock_lb::reverse(&ctx)
}

/// cgroup getpeername4: a connected socket's peer is the service address it asked for.
#[cgroup_sock_addr(getpeername4)]
#[expect(
    clippy::needless_pass_by_value,
    reason = "aya's macro hands the context over by value"
)]
pub fn sock_getpeername4(ctx: SockAddrContext) -> i32 {
    sock_lb::reverse(&ctx)
}

#[cfg(target_arch = "bpf")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

/// Host builds (`cargo check --workspace`) compile this crate as an ordinary binary that does nothing.
#[cfg(not(target_arch = "bpf"))]
fn main() {}
