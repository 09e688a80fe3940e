//! The lab's side of manifests: what it reads ([`LAB`]: v1 Pod, apps/v1 Deployment, v1 Service, v1
//! Namespace and networking.k8s.io/v1 NetworkPolicy, strictly, validated as the API server would;
//! parsing itself is `strait-k8s`'s), and
//! expanding Pods and Deployments into [`PodSpecLite`] records (with Kubernetes-style
//! `<deployment>-<pod-template-hash>-<suffix>` names), the lab's stand-in for the Deployment
//! controller.

mod expand;
mod netpol_model;

#[cfg(test)]
mod tests;

pub use expand::{
    ALPHABET, Owner, PodDns, PodPort, PodSpecLite, Protocol, TEMPLATE_HASH_LABEL, alphabet_digits,
    deployment_replicas, pod_from_pod, pod_template_hash, pods_for_deployment,
};
pub use netpol_model::{
    MODEL_NAMESPACES, MODEL_PODS, MODEL_PORTS, model_pod_ids, netpol_model_manifest,
};
pub use strait_k8s::{DEFAULT_NAMESPACE, Loaded, Location, ManifestError, Object};

use strait_k8s::{Kind, ParseOptions};

/// What `strait lab apply` reads: the kinds the lab acts on, unknown fields and kinds no API server
/// knows refused, other Kubernetes kinds skipped with a warning, every object validated.
pub const LAB: ParseOptions<'static> = ParseOptions {
    kinds: &[
        Kind::Namespace,
        Kind::Service,
        Kind::Pod,
        Kind::Deployment,
        Kind::NetworkPolicy,
        Kind::EndpointSlice,
    ],
    skip_other_kinds: true,
    strict: true,
    validate: true,
};

/// Parses manifest text as the lab reads it ([`LAB`]); `file` names the file in errors.
pub fn parse_str(file: &std::path::Path, text: &str) -> Result<Vec<Object>, ManifestError> {
    strait_k8s::manifest::parse_str(file, text, &LAB).map(Loaded::into_objects)
}

/// Parses manifest text as the lab reads it ([`LAB`]), keeping each object's location and the
/// documents that were skipped; `file` names the input in errors (`<stdin>` for standard input).
pub fn parse_loaded(file: &std::path::Path, text: &str) -> Result<Loaded, ManifestError> {
    strait_k8s::manifest::parse_str(file, text, &LAB)
}

/// Reads a manifest file or directory as the lab reads it ([`LAB`]).
pub fn load_path(path: &std::path::Path) -> Result<Loaded, ManifestError> {
    strait_k8s::manifest::load_path(path, &LAB)
}
