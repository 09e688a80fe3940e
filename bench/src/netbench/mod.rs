//! netbench: throughput, latency and connection rate through strait and through the standard stack
//! (a bridge CNI with kube-proxy's iptables or nftables rules), measured side by side in the same run.
//! [`run`] orchestrates a run and [`publish`] writes its results; the binary (`src/bin/netbench.rs`)
//! is only the command line. The other modules are their parts; [`crossnode`] is `netbench cross-node`,
//! the same load generator between two nodes; [`policy`] is `netbench policy`, the same between two
//! nodes with many NetworkPolicies.

pub mod bridge_lab;
pub mod catalog;
pub mod charts;
pub mod crossnode;
pub mod dns;
pub mod headlines;
pub mod host;
pub mod kube_common;
pub mod kube_iptables;
pub mod kube_nftables;
pub mod load;
pub mod memory;
pub mod policy;
pub mod publish;
pub mod report;
pub mod results;
pub mod run;
pub mod sections;
pub mod spin;
pub mod stats;
pub mod strait_stack;
pub mod wiring;
