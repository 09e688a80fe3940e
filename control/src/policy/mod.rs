//! NetworkPolicy on the node (see ARCHITECTURE.md, "NetworkPolicy"). [`identity`] numbers each
//! distinct (namespace, pod labels) and maps every pod address of the cluster to its number, the index
//! the policy maps are keyed by; [`pods`] reads the store's Pods and Namespaces as policies see them;
//! [`compile`] turns policies into each local pod's allow entries by peer identity, and [`cidr`] its
//! `ipBlock` peers into entries by peer address prefix; [`tables`] puts it all together into the
//! complete content of the kernel's policy maps, which [`sync`] writes from the agent's sync loop.
//! The semantics themselves live in `strait_k8s::netpol`.

pub mod cidr;
pub mod compile;
pub mod identity;
pub mod pods;
pub mod sync;
pub mod tables;

pub use tables::{Built, PolicySettings, PolicyState};
