//! The Kubernetes cluster DNS zone, built from Services and EndpointSlices and answered from memory.
//!
//! It follows the Kubernetes DNS-Based Service Discovery specification 1.1.0 and, where the
//! specification is silent, CoreDNS's `kubernetes` plugin as kubeadm configures it (`pods insecure`,
//! `fallthrough in-addr.arpa ip6.arpa`, `ttl 30`). The zone is pure data; [`server`] serves it.
//!
//! - [`config`]: [`ZoneConfig`] (domain, TTL, [`PodRecords`]).
//! - [`service_records`]: [`ServiceRecords`], what one Service and its EndpointSlices contribute.
//! - [`zone`]: [`Zone`], the immutable snapshot of every Service's records.
//! - [`lookup`]: [`Lookup`], the answer to one question.
//! - [`issue`]: [`RecordIssue`], the Kubernetes data a build skipped and why.
//! - [`server`]: the hickory-server UDP/TCP server answering from the newest zone.
//! - [`forward`]: other names sent on to upstream servers, with a cache.
//! - [`metrics`]: the server's counters under CoreDNS's metric names.
//! - [`batch`]: UDP datagrams many per system call (`recvmmsg`, `sendmmsg`), for the server's UDP
//!   threads and for load generators.
//!
//! Internals, one concern each: `names` (owner names and labels), `addressing` (a Service's kind
//! and cluster IPs), `endpoints` (published headless endpoints), `records` (record constructors,
//! SRV weights), `apex` (SOA, NS, schema TXT), `pods` (dashed pod names), `capture` (a response
//! handler that keeps the answer's bytes, for [`server::answer_bytes`] and the UDP loops), `udp` (the
//! server's UDP sockets, one per thread, and their receive loops), `answer_memo` (a UDP thread's
//! zone answers remembered by the exact question).

mod addressing;
mod answer_memo;
mod apex;
pub mod batch;
mod capture;
pub mod config;
mod endpoints;
pub mod forward;
pub mod issue;
pub mod lookup;
pub mod metrics;
mod names;
mod pods;
mod records;
pub mod server;
pub mod service_records;
mod udp;
pub mod zone;

pub use addressing::ServiceKind;
pub use config::{ConfigError, PodRecords, ZoneConfig};
pub use issue::RecordIssue;
pub use lookup::Lookup;
pub use service_records::ServiceRecords;
pub use zone::Zone;

/// The schema version the zone publishes at `dns-version.<zone>` (specification §2.2).
pub const SCHEMA_VERSION: &str = "1.1.0";

#[cfg(test)]
mod tests;
