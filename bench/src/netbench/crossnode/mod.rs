//! `netbench cross-node`: throughput, latency and connection rate between two nodes, through every
//! stack of issue #11 in one run, and the time a joining node takes to become reachable.
//!
//! - Stacks ([`Stack`]): strait's VXLAN overlay, strait's direct routing, the Flannel stack (the lab's
//!   Flannel reference nodes: kernel `flannel.1`, `cni0` bridges, kube-proxy's iptables rules), the
//!   same nodes switched to Flannel's host-gw backend, and the underlay itself (node to node, no pods).
//! - Scenarios: pod-to-pod, pod-to-ClusterIP and external-to-NodePort, the endpoint always on the
//!   other node.
//! - Tests: netbench's load generator (`tcp-stream`, `tcp-rr`, `tcp-crr`, `udp-rr`), one client
//!   process per test in the client's namespace and cgroup, the server in the server pod.
//!
//! [`run::run`] builds the labs ([`labs`], with [`flannel_services`] and [`host_gw`] for the Flannel
//! ones), checks every stack and scenario ([`rounds::check`]), measures in interleaved rounds
//! ([`rounds`]), then times node joins ([`join`]). [`summary`] reduces the rounds to medians, ranges
//! and the goal ratios; [`render`] writes them for the terminal and as `bench/RESULTS.md`'s cross-node
//! section. Every lab is torn down at the end, on failure, and on SIGINT, SIGTERM or SIGHUP
//! ([`signals`]).

pub mod error;
pub mod flannel_services;
pub mod host_gw;
pub mod join;
pub mod labs;
pub mod render;
pub mod rounds;
pub mod run;
pub mod signals;
pub mod stacks;
pub mod summary;

pub use error::CrossError;
pub use stacks::Stack;
pub use summary::CrossReport;
