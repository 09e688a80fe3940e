//! netbench: throughput, latency and connection rate through strait and through the standard stack
//! (a bridge CNI with kube-proxy's iptables or nftables rules), measured side by side in the same run.
//! The binary (`src/bin/netbench.rs`) orchestrates; these modules are its parts.

pub mod catalog;
pub mod results;
