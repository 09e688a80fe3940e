//! Kubernetes objects for strait, shared by the agent and the lab.
//!
//! - [`access`]: the API access the agent needs (its ClusterRole's rules).
//! - [`object`]: [`Object`] (the kinds strait reads, as k8s-openapi types), [`Kind`], [`ObjectKey`].
//! - [`manifest`]: YAML/JSON manifests into objects, with file/document/item locations, strict field
//!   checking and the choice of kinds a caller reads.
//! - [`validate`]: the API server's validation of the fields strait relies on.
//! - [`selector`]: label selectors (`matchLabels`, `matchExpressions`).
//! - [`netpol`]: NetworkPolicy semantics: parsed policies and the specification's verdict on a flow.
//! - [`service`]: cluster IP, external addresses, named target ports of a Service.
//! - [`store`]: [`ObjectStore`], the one copy of the cluster's objects, and the change events features
//!   subscribe to.

pub mod access;
mod builtin;
pub mod flannel;
pub mod manifest;
pub mod netpol;
pub mod object;
pub mod selector;
pub mod service;
pub mod store;
pub mod validate;

pub use manifest::{Loaded, Location, ManifestError, ParseOptions};
pub use object::{DEFAULT_NAMESPACE, Kind, Object, ObjectKey, node_ipv4};
pub use selector::{Labels, Selector};
pub use store::{Change, Event, ObjectStore};
