//! The lab's stand-in for the parts of the Kubernetes control plane that Services need: the API
//! server's ClusterIP allocation ([`clusterip`]), kube-controller-manager's EndpointSlice
//! controller ([`endpointslices`]), and publishing the resulting objects as one JSON file per
//! object in a directory the node agents watch ([`objects_dir`]).
//!
//! Everything here is pure except [`objects_dir`], which only touches the directory it is given.

pub mod clusterip;
pub mod endpointslices;
pub mod nodeport;
pub mod objects_dir;

pub use clusterip::{ClusterIpAllocator, ClusterIpError, SERVICE_CIDR, assign};
pub use endpointslices::{
    HEADLESS_LABEL, MANAGED_BY, MANAGED_BY_LABEL, MAX_ENDPOINTS_PER_SLICE, SERVICE_NAME_LABEL,
    endpoint_slices,
};
pub use objects_dir::{ObjectFile, ObjectsDirError, WriteReport, write_objects};
