//! Manifests: reading YAML/JSON files into typed k8s-openapi [`Object`]s, with the file, document and
//! list item of every problem.
//!
//! A file is YAML (several `---`-separated documents; empty documents are skipped) or, for a `.json`
//! extension, JSON (several concatenated values). `v1 List` documents, and the typed lists of the kinds
//! strait knows (`ServiceList`, ...), are expanded. [`ParseOptions`] say what to do with kinds outside
//! the caller's set (skip or refuse), whether to refuse unknown fields as the API server's strict
//! field validation does, and whether to [`validate`](crate::validate) objects.

mod load;
mod strict;
#[cfg(test)]
mod tests;

use std::fmt;
use std::path::{Path, PathBuf};

pub use load::{Loaded, is_manifest_file, load_path, parse_str};

use crate::object::Kind;

/// Where in the input an object came from: a file, the 1-based document number inside it, and for
/// `List` documents the 1-based item number.
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

/// What a caller reads from manifests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParseOptions<'a> {
    /// The kinds the caller acts on; documents of other kinds are [`ManifestError::UnknownKind`]
    /// (a kind Kubernetes serves) or [`ManifestError::NoSuchKind`] (a kind no API server knows).
    pub kinds: &'a [Kind],
    /// Skip documents of kinds Kubernetes serves but the caller does not act on (reported in
    /// [`Loaded::skipped`]) instead of failing the load. A kind no API server knows always fails in
    /// strict mode and is skipped otherwise.
    pub skip_other_kinds: bool,
    /// Refuse fields the object's type does not have (`kubectl apply --validate=strict`), and kinds
    /// no API server knows.
    pub strict: bool,
    /// Check each object with [`validate`](crate::validate::validate).
    pub validate: bool,
}

impl ParseOptions<'_> {
    /// What the agent reads from a manifest directory: the kinds its features use, anything else
    /// skipped, no validation (objects come from a trusted writer, as from an API server).
    pub const AGENT: ParseOptions<'static> = ParseOptions {
        kinds: &[
            Kind::Namespace,
            Kind::Node,
            Kind::Service,
            Kind::EndpointSlice,
            Kind::Pod,
            Kind::NetworkPolicy,
        ],
        skip_other_kinds: true,
        strict: false,
        validate: false,
    };
}

/// Why a manifest could not be loaded. Every variant but [`ManifestError::Read`] carries a (boxed, to
/// keep the error small) [`Location`]; the message always says what is wrong.
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

    #[error("{at}: {kind} (apiVersion {api_version}) is not read here (supported: {supported})")]
    UnknownKind {
        at: Box<Location>,
        api_version: String,
        kind: String,
        supported: String,
    },

    #[error("{at}: no kind {kind:?} is known in version {api_version:?} (supported: {supported})")]
    NoSuchKind {
        at: Box<Location>,
        api_version: String,
        kind: String,
        supported: String,
    },

    #[error("{at}: {kind}: `items` is missing or not a sequence")]
    BadList { at: Box<Location>, kind: String },

    #[error("{at}: a List inside a List is not supported")]
    NestedList { at: Box<Location> },

    #[error("{at}: {kind}: metadata.name is missing or empty")]
    MissingName {
        at: Box<Location>,
        kind: &'static str,
    },

    #[error("{at}: {kind} {name}: {error}")]
    Decode {
        at: Box<Location>,
        kind: &'static str,
        name: String,
        error: serde_json::Error,
    },

    #[error("{at}: {kind} {name}: unknown field {field:?}")]
    UnknownField {
        at: Box<Location>,
        kind: &'static str,
        name: String,
        field: String,
    },

    #[error("{at}: {kind} {name}: {field} {problem}")]
    Invalid {
        at: Box<Location>,
        kind: &'static str,
        name: String,
        field: String,
        problem: String,
    },

    #[error("{at}: {kind} {name}: {field}: {what} is not supported (supported: {supported})")]
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
            | ManifestError::NoSuchKind { at, .. }
            | ManifestError::BadList { at, .. }
            | ManifestError::NestedList { at }
            | ManifestError::MissingName { at, .. }
            | ManifestError::Decode { at, .. }
            | ManifestError::UnknownField { at, .. }
            | ManifestError::Invalid { at, .. }
            | ManifestError::Unsupported { at, .. } => Some(at),
        }
    }

    /// True for [`ManifestError::UnknownKind`]: a kind Kubernetes serves that the caller skipped.
    pub fn is_unknown_kind(&self) -> bool {
        matches!(self, ManifestError::UnknownKind { .. })
    }
}
