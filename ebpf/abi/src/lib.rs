//! strait-abi: every type and constant that both the eBPF programs and user space read.
//!
//! Each struct is `#[repr(C)]` with explicit padding and a compile-time size assertion, so the kernel and
//! user-space views cannot drift. Byte order is stated per field. With the `user` feature the types also
//! implement `aya::Pod` so user space can read and write them through aya's typed maps.
#![no_std]

pub mod conntrack;
pub mod dns;
pub mod endpoint;
pub mod fragment;
pub mod maps;
pub mod node;
pub mod overlay;
pub mod policy;
pub mod service;
pub mod stats;

pub use conntrack::{CtEntry, CtKey};
pub use endpoint::{EndpointInfo, EndpointKey};
pub use node::NodeConfig;
pub use service::{
    BackendAddr, BackendSlotKey, ServiceFrontend, ServiceFrontendKey, SockRevNatKey,
    SockRevNatValue,
};
pub use stats::{Direction, Program, Reason, StatsValue, stats_index};
