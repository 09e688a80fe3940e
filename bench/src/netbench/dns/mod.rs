//! `netbench dns`: how fast cluster names are answered from a pod (issue #13), in one run: strait's
//! kernel fast path, strait's server with the fast path off, and Debian's knot and unbound serving
//! the same records from the node's namespace.
//!
//! - [`records`]: the benchmark's Services, the names asked, and the same A records as a knot zone
//!   file and unbound `local-data`.
//! - [`servers`]: knot and unbound started inside the lab (their configuration in a directory of
//!   the run), stopped when dropped.
//! - [`client`]: the two clients run in the client pod: `dnsperf` for queries per second at
//!   saturation, and netbench's own one-query-in-flight client for the latency percentiles;
//!   [`batch_client`], a second, cheaper load generator (batched system calls) that checks
//!   dnsperf's figures and tells whether a target outruns the client.
//! - [`run`]: two one-node strait labs (fast path on and off), the reference servers in the second,
//!   the interleaved rounds; [`summary`] reduces them to medians, ranges and the ratios against the
//!   issue's goals; [`render`] writes them for the terminal and as `bench/RESULTS.md`'s DNS section.

pub mod batch_client;
pub mod client;
pub mod records;
pub mod render;
pub mod run;
pub mod servers;
pub mod summary;

pub use summary::DnsReport;
