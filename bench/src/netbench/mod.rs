//! netbench: throughput, latency and connection rate through strait and through the standard stack
//! (a bridge CNI with kube-proxy's iptables or nftables rules), measured side by side in the same run.
//! The binary (`src/bin/netbench.rs`) orchestrates; these modules are its parts.

pub mod bridge_lab;
pub mod catalog;
pub mod charts;
pub mod headlines;
pub mod kube_common;
pub mod kube_iptables;
pub mod kube_nftables;
pub mod load;
pub mod memory;
pub mod report;
pub mod results;
pub mod strait_stack;
