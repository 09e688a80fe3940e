//! strait-bench: the pieces of strait's benchmarks that are worth unit-testing on their own. The
//! benchmarks themselves are the binaries (`pktcost`, `svcscale`, `netbench`).

pub mod netbench;
pub mod stdout;
pub mod svcscale;
