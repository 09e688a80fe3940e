//! `netbench policy`: TCP RR and TCP CRR between two pods on different nodes with 0, 100 and 1,000
//! NetworkPolicies in the cluster (issue #12: the per-packet cost should not grow with the number of
//! policies), strait against kube-router's iptables + ipset rules for the same policies, and the
//! time a policy change takes to be enforced with 1,000 in force.
//!
//! - [`manifest`]: the policies of a count (about half select the server pod, one allows the client).
//! - [`kube_router`]: the baseline's rules, kube-router's iptables + ipset layout for the same
//!   policies; [`kube_router_lab`] syncs them onto cross-node's Flannel lab.
//! - [`measure`]: one two-node strait VXLAN lab per count (cross-node's builder and load runner), its
//!   policies applied before the rounds; the rounds interleave the labs.
//! - [`enforce`]: with the most policies in force, the client is denied and allowed again by
//!   re-applying one policy while it probes the server; apply and enforcement times.
//! - [`summary`] reduces the rounds to medians, ranges and the ratios against no policy (goal: within
//!   5%); [`render`] writes them for the terminal and as `bench/RESULTS.md`'s policy section.
//!
//! Every lab is torn down at the end, on failure, and on SIGINT, SIGTERM or SIGHUP (cross-node's
//! [`signals`](super::crossnode::signals)).

pub mod enforce;
pub mod kube_router;
pub mod kube_router_lab;
pub mod manifest;
pub mod measure;
pub mod render;
pub mod run;
pub mod summary;

pub use summary::PolicyReport;
