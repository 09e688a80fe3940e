//! Kubernetes manifests for the lab: reading YAML/JSON files into typed
//! k8s-openapi objects (`v1 Pod`, `apps/v1 Deployment`, `v1 Service`,
//! `v1 Namespace`, with `v1 List` expanded), validating them the way the
//! Kubernetes API server would for the fields this lab uses, and expanding
//! Pods and Deployments into [`PodSpecLite`] records (with Kubernetes-style
//! `<deployment>-<pod-template-hash>-<suffix>` names).
//!
//! Everything here is pure except for reading the manifest files themselves.

mod expand;
mod load;
mod validate;

#[cfg(test)]
mod tests;

use std::fmt;
use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

pub use expand::{
    ALPHABET, Owner, PodPort, PodSpecLite, Protocol, TEMPLATE_HASH_LABEL, alphabet_digits,
    deployment_replicas, pod_from_pod, pod_template_hash, pods_for_deployment,
};
pub use load::{Loaded, load_path, load_path_skipping_unknown, parse_str};
pub use validate::{Violation, validate};

/// Namespace used for namespaced objects whose `metadata.namespace` is unset.
pub const DEFAULT_NAMESPACE: &str = "default";

/// One supported Kubernetes object, as read from a manifest.
#[derive(Debug, Clone, PartialEq)]
pub enum Object {
    Pod(Pod),
    Deployment(Deployment),
    Service(Service),
    Namespace(Namespace),
}

impl Object {
    /// The Kubernetes kind: `"Pod"`, `"Deployment"`, `"Service"` or `"Namespace"`.
    pub fn kind(&self) -> &'static str {
        match self {
            Object::Pod(_) => "Pod",
            Object::Deployment(_) => "Deployment",
            Object::Service(_) => "Service",
            Object::Namespace(_) => "Namespace",
        }
    }

    /// The object's metadata.
    pub fn metadata(&self) -> &ObjectMeta {
        match self {
            Object::Pod(o) => &o.metadata,
            Object::Deployment(o) => &o.metadata,
            Object::Service(o) => &o.metadata,
            Object::Namespace(o) => &o.metadata,
        }
    }

    /// `metadata.name` (never empty for objects returned by the loaders).
    pub fn name(&self) -> &str {
        self.metadata().name.as_deref().unwrap_or_default()
    }

    /// Whether the kind lives inside a namespace (everything but `Namespace`).
    pub fn is_namespaced(&self) -> bool {
        !matches!(self, Object::Namespace(_))
    }

    /// The namespace the object belongs to: `metadata.namespace`, or
    /// [`DEFAULT_NAMESPACE`] when unset. A `Namespace` is cluster-scoped;
    /// for it this returns the name of the namespace it defines.
    pub fn namespace(&self) -> &str {
        if let Object::Namespace(ns) = self {
            return ns.metadata.name.as_deref().unwrap_or_default();
        }
        namespace_of(self.metadata())
    }
}

pub(crate) fn namespace_of(meta: &ObjectMeta) -> &str {
    meta.namespace
        .as_deref()
        .filter(|ns| !ns.is_empty())
        .unwrap_or(DEFAULT_NAMESPACE)
}

/// Where in the input an object came from: a file, the 1-based document
/// number inside it, and for `List` documents the 1-based item number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: PathBuf,
    pub document: usize,
    pub item: Option<usize>,
}

impl Location {
    fn new(file: &Path, document: usize) -> Self {
        Location {
            file: file.to_path_buf(),
            document,
            item: None,
        }
    }

    fn boxed(&self) -> Box<Location> {
        Box::new(self.clone())
    }

    fn with_item(&self, item: usize) -> Self {
        Location {
            item: Some(item),
            ..self.clone()
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} document {}", self.file.display(), self.document)?;
        if let Some(item) = self.item {
            write!(f, " item {item}")?;
        }
        Ok(())
    }
}

/// Why a manifest could not be loaded. Every variant but [`ManifestError::Read`]
/// carries a (boxed, to keep the error small) [`Location`]; the message
/// always says what is wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    #[error("{}: cannot read: {error}", path.display())]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },

    #[error("{at}: invalid YAML: {error}")]
    Yaml {
        at: Box<Location>,
        error: serde_yaml_ng::Error,
    },

    #[error("{at}: invalid JSON: {error}")]
    Json {
        at: Box<Location>,
        error: serde_json::Error,
    },

    #[error("{at}: document is not a mapping")]
    NotAMapping { at: Box<Location> },

    #[error("{at}: `{field}` is missing or not a string")]
    MissingTypeField {
        at: Box<Location>,
        field: &'static str,
    },

    #[error(
        "{at}: unsupported kind {kind} (apiVersion {api_version}); this lab understands \
         v1 Pod, apps/v1 Deployment, v1 Service, v1 Namespace and v1 List"
    )]
    UnknownKind {
        at: Box<Location>,
        api_version: String,
        kind: String,
    },

    #[error("{at}: List `items` is missing or not a sequence")]
    BadList { at: Box<Location> },

    #[error("{at}: a List inside a List is not supported")]
    NestedList { at: Box<Location> },

    #[error("{at}: {kind} {name}: {error}")]
    Decode {
        at: Box<Location>,
        kind: &'static str,
        name: String,
        error: serde_json::Error,
    },

    #[error("{at}: {kind} {name}: {field} {problem}")]
    Invalid {
        at: Box<Location>,
        kind: &'static str,
        name: String,
        field: String,
        problem: String,
    },

    #[error(
        "{at}: {kind} {name}: {field}: {what} is not supported by this lab (supported: {supported})"
    )]
    Unsupported {
        at: Box<Location>,
        kind: &'static str,
        name: String,
        field: String,
        what: String,
        supported: &'static str,
    },
}

impl ManifestError {
    /// Where the problem is, unless the file itself could not be read.
    pub fn location(&self) -> Option<&Location> {
        match self {
            ManifestError::Read { .. } => None,
            ManifestError::Yaml { at, .. }
            | ManifestError::Json { at, .. }
            | ManifestError::NotAMapping { at }
            | ManifestError::MissingTypeField { at, .. }
            | ManifestError::UnknownKind { at, .. }
            | ManifestError::BadList { at }
            | ManifestError::NestedList { at }
            | ManifestError::Decode { at, .. }
            | ManifestError::Invalid { at, .. }
            | ManifestError::Unsupported { at, .. } => Some(at),
        }
    }

    /// True for [`ManifestError::UnknownKind`], which callers may choose to skip.
    pub fn is_unknown_kind(&self) -> bool {
        matches!(self, ManifestError::UnknownKind { .. })
    }
}
