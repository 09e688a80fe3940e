//! The agent's model of the cluster and its translation into data-path entries.
//!
//! - [`objects`]: [`ClusterObjects`], the Kubernetes objects the agent acts on (Services, EndpointSlices,
//!   Nodes, Pods as k8s-openapi types), and the parser that reads one manifest file into them.
//! - [`source`]: where objects come from. [`ManifestDirSource`] polls a directory of manifests; a
//!   kube-API source will implement the same [`ObjectSource`] trait.
//! - [`translate`]: the pure translation of Services and EndpointSlices into the data path's
//!   [`ServiceEntry`](strait_dataplane::services::ServiceEntry) list (kube-proxy semantics), and the diff
//!   between two such lists.
//! - [`health`]: the pure computation of the health check node ports this node serves for
//!   `externalTrafficPolicy: Local` LoadBalancer Services, with each one's local ready endpoint count.

pub mod health;
pub mod kube_source;
pub mod objects;
pub mod source;
pub mod translate;

#[cfg(test)]
mod tests;

pub use health::{HealthCheck, health_checks};
pub use objects::{
    ClusterObjects, DEFAULT_NAMESPACE, Location, ParseError, ParsedManifest, parse_manifest,
};
pub use source::{LoadReport, ManifestDirSource, ObjectSource, SourceError};
pub use translate::{ServiceDiff, diff, service_entries};
