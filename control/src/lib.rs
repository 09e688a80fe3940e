//! strait-control: the node agent `straitd` as a library. It owns the node's endpoints (IPAM, pod
//! plumbing, the ENDPOINT map), serves the CNI plugin and the endpoint listing over a root-only unix
//! socket, spans nodes with the overlay, exposes health, metrics and NetworkPolicy flow verdicts over HTTP, and answers load balancers' health checks on `healthCheckNodePort`s. It
//! holds no kernel types: the dataplane crate does the kernel work.

pub mod agent;
pub mod api;
pub mod census;
pub mod config;
pub mod conntrack_gc;
pub mod ct_query;
pub mod dns;
pub mod dns_records;
pub mod endpoints;
pub mod flows;
pub mod gauges;
pub mod healthcheck;
pub mod http;
pub mod ipam;
pub mod metrics;
pub mod model;
pub mod naming;
pub mod node_annotations;
pub mod node_discovery;
pub mod overlay;
pub mod policy;
pub mod service_list;
pub mod services;
pub mod store;

pub use agent::run;
pub use config::AgentConfig;
