//! The agent's model of the cluster and its translation into data-path entries.
//!
//! Objects live once, in a [`strait_k8s::ObjectStore`] owned by the sync loop
//! ([`crate::services`]); sources feed it and features subscribe to its events.
//!
//! - [`source`]: where objects come from, as batches of changes. [`ManifestDirSource`] watches a
//!   directory of manifests (inotify, with a rescan as the safety net); [`KubeSource`] the API server.
//! - [`translate`]: the pure translation of Services and EndpointSlices into the data path's
//!   [`ServiceEntry`](strait_dataplane::services::ServiceEntry) list (kube-proxy semantics), one Service
//!   or the whole store, and the diff between two lists.
//! - [`service_index`]: the services feature's subscription: per-Service frontends and the
//!   EndpointSlices behind them, so an event re-translates only the Services it touches.
//! - [`batch_objects`]: the objects a chunk of events brought, read before the store's encoding.
//! - [`nodes`]: the overlay feature's translation of every other Node into the prefixes that lead to
//!   it (its pod CIDRs and address), with Flannel's annotations read and written.
//! - [`host_ports`]: pods' `hostPort`s as frontends of their own (what `portmap` does elsewhere),
//!   kept by the same index.
//! - [`health`]: the pure computation of the health check node ports this node serves for
//!   `externalTrafficPolicy: Local` LoadBalancer Services, with each one's local ready endpoint count.

pub mod batch_objects;
pub mod health;
pub mod host_ports;
pub mod kube_source;
pub mod nodes;
pub mod service_index;
pub mod source;
pub mod translate;

#[cfg(test)]
mod tests;

pub use health::{HealthCheck, health_checks};
pub use kube_source::KubeSource;
pub use service_index::{FrontendOwner, ServiceIndex, Touched};
pub use source::{ManifestDirSource, ObjectSource, SourceBatch, SourceChange, SourceError};
pub use translate::{ServiceDiff, diff, service_entries};
