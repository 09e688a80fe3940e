//! strait-ebpf entry points. Each attach point is a thin wrapper: the work lives in one module per concern,
//! and every outcome, forward or drop, carries a `strait_abi::Reason` that is counted before the verdict is returned.
#![no_std]
#![cfg_attr(target_arch = "bpf", no_main)]
#![expect(
    clippy::inline_always,
    reason = "eBPF: helpers are inlined into each program so the verifier sees one function per entry point"
)]

mod deliver;
mod maps;
mod parse;
mod stats;

use aya_ebpf::{macros::classifier, programs::TcContext};
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

#[cfg(target_arch = "bpf")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

/// Host builds (`cargo check --workspace`) compile this crate as an ordinary binary that does nothing.
#[cfg(not(target_arch = "bpf"))]
fn main() {}
