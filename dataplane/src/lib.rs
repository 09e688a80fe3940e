//! strait-dataplane: the kernel side of strait as a library. Loads and pins the eBPF object, attaches its
//! programs, reads and writes its maps through typed wrappers, and sets up links and namespaces over
//! netlink. It knows nothing about Kubernetes.

pub mod attach;
pub mod bpffs;
pub mod census;
pub mod conntrack;
pub mod conntrack_view;
pub mod dns_fast;
pub mod endpoints;
pub mod error;
pub mod loader;
pub mod maglev;
pub mod netlink;
pub mod netns;
pub mod node;
pub mod overlay;
pub mod policy;
pub mod policy_events;
pub mod service_maps;
pub mod services;
pub mod stats;
pub mod sysctl;

pub use aya::programs::XdpMode;
pub use error::DataplaneError;
pub use loader::{Dataplane, LoadOptions};

/// The compiled eBPF object (empty when built with `AYA_BUILD_SKIP=1`).
pub static EBPF_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/strait-ebpf"));
