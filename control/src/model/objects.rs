//! [`ClusterObjects`]: the Kubernetes objects the agent acts on, keyed by namespace and name, and
//! [`parse_manifest`], which reads one manifest file's text into them.
//!
//! A file is YAML (several `---`-separated documents; empty documents are skipped) or, for a `.json`
//! extension, JSON (several concatenated values). `List` documents, and the typed lists of the four kinds
//! (`ServiceList`, ...), are expanded. Documents of other kinds are counted in
//! [`ParsedManifest::ignored`], not rejected. A document without `apiVersion`/`kind`, without
//! `metadata.name`, or that does not deserialize into its k8s-openapi type fails the whole file, with an
//! error naming the file and the 1-based document (and list item) number.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::{Metadata, Resource};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Namespace of namespaced objects whose `metadata.namespace` is unset or empty.
pub const DEFAULT_NAMESPACE: &str = "default";

/// The Kubernetes objects the agent acts on. Namespaced objects are keyed by `(namespace, name)`, Nodes
/// by name. Maps keep the keys sorted, so everything derived from them is deterministic.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ClusterObjects {
    pub services: BTreeMap<(String, String), Service>,
    pub endpoint_slices: BTreeMap<(String, String), EndpointSlice>,
    pub nodes: BTreeMap<String, Node>,
    pub pods: BTreeMap<(String, String), Pod>,
}

impl ClusterObjects {
    /// Number of objects of all kinds.
    pub fn len(&self) -> usize {
        self.services.len() + self.endpoint_slices.len() + self.nodes.len() + self.pods.len()
    }

    /// True when there are no objects at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds every object of `other`; an object with the same key as one already present replaces it.
    pub fn merge_from(&mut self, other: &ClusterObjects) {
        self.services.extend(other.services.clone());
        self.endpoint_slices.extend(other.endpoint_slices.clone());
        self.nodes.extend(other.nodes.clone());
        self.pods.extend(other.pods.clone());
    }
}

/// The result of parsing one file: its objects (a later document replaces an earlier one with the same
/// key) and how many documents (or list items) of other kinds were ignored.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ParsedManifest {
    pub objects: ClusterObjects,
    pub ignored: usize,
}

/// Where in a file a problem is: the 1-based document number and, inside a list, the 1-based item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    pub file: PathBuf,
    pub document: usize,
    pub item: Option<usize>,
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

/// Why a manifest file could not be parsed. Every variant says where.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    #[error("{at}: invalid YAML: {source}")]
    Yaml {
        at: Location,
        source: serde_yaml_ng::Error,
    },
    #[error("{at}: invalid JSON: {source}")]
    Json {
        at: Location,
        source: serde_json::Error,
    },
    #[error("{at}: document is not a mapping")]
    NotAMapping { at: Location },
    #[error("{at}: `{field}` is missing or not a string")]
    MissingTypeField { at: Location, field: &'static str },
    #[error("{at}: {kind}: `items` is missing or not a sequence")]
    BadList { at: Location, kind: String },
    #[error("{at}: a list inside a list is not supported")]
    NestedList { at: Location },
    #[error("{at}: {kind}: metadata.name is missing or empty")]
    MissingName { at: Location, kind: &'static str },
    #[error("{at}: {kind} {name}: {source}")]
    Decode {
        at: Location,
        kind: &'static str,
        name: String,
        source: serde_json::Error,
    },
}

impl ParseError {
    /// Where the problem is.
    pub fn location(&self) -> &Location {
        match self {
            ParseError::Yaml { at, .. }
            | ParseError::Json { at, .. }
            | ParseError::NotAMapping { at }
            | ParseError::MissingTypeField { at, .. }
            | ParseError::BadList { at, .. }
            | ParseError::NestedList { at }
            | ParseError::MissingName { at, .. }
            | ParseError::Decode { at, .. } => at,
        }
    }
}

/// Parses the text of one manifest file. `file` names the file in errors, and a `.json` extension
/// (any case) selects JSON; anything else is read as YAML.
pub fn parse_manifest(file: &Path, text: &str) -> Result<ParsedManifest, ParseError> {
    let mut out = ParsedManifest::default();
    let json = file
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let at = |index: usize| Location {
        file: file.to_path_buf(),
        document: index + 1,
        item: None,
    };
    if json {
        let stream = serde_json::Deserializer::from_str(text).into_iter::<Value>();
        for (index, doc) in stream.enumerate() {
            let value = doc.map_err(|source| ParseError::Json {
                at: at(index),
                source,
            })?;
            document(&at(index), value, &mut out)?;
        }
    } else {
        for (index, de) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
            let yaml_error = |source| ParseError::Yaml {
                at: at(index),
                source,
            };
            let mut yaml = serde_yaml_ng::Value::deserialize(de).map_err(yaml_error)?;
            yaml.apply_merge().map_err(yaml_error)?;
            let value = Value::deserialize(yaml).map_err(yaml_error)?;
            document(&at(index), value, &mut out)?;
        }
    }
    Ok(out)
}

/// The kinds the model keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Service,
    EndpointSlice,
    Node,
    Pod,
}

impl Kind {
    const ALL: [Kind; 4] = [Kind::Service, Kind::EndpointSlice, Kind::Node, Kind::Pod];

    fn api_version_and_kind(self) -> (&'static str, &'static str) {
        match self {
            Kind::Service => (Service::API_VERSION, Service::KIND),
            Kind::EndpointSlice => (EndpointSlice::API_VERSION, EndpointSlice::KIND),
            Kind::Node => (Node::API_VERSION, Node::KIND),
            Kind::Pod => (Pod::API_VERSION, Pod::KIND),
        }
    }

    fn of(api_version: &str, kind: &str) -> Option<Kind> {
        Kind::ALL
            .into_iter()
            .find(|k| k.api_version_and_kind() == (api_version, kind))
    }

    /// The kind whose typed list (`<Kind>List`, same apiVersion) this is.
    fn of_list(api_version: &str, kind: &str) -> Option<Kind> {
        Kind::of(api_version, kind.strip_suffix("List")?)
    }
}

fn document(at: &Location, value: Value, out: &mut ParsedManifest) -> Result<(), ParseError> {
    let Value::Object(map) = &value else {
        return if value.is_null() {
            Ok(()) // an empty document
        } else {
            Err(ParseError::NotAMapping { at: at.clone() })
        };
    };
    let type_field = |field: &'static str| {
        map.get(field)
            .and_then(Value::as_str)
            .ok_or_else(|| ParseError::MissingTypeField {
                at: at.clone(),
                field,
            })
    };
    let (api_version, kind) = (type_field("apiVersion")?, type_field("kind")?);
    if let Some(kind) = Kind::of(api_version, kind) {
        return insert(at, kind, value, &mut out.objects);
    }
    let item_kind = Kind::of_list(api_version, kind);
    if kind != "List" && item_kind.is_none() {
        out.ignored += 1;
        return Ok(());
    }
    if at.item.is_some() {
        return Err(ParseError::NestedList { at: at.clone() });
    }
    let kind = kind.to_owned();
    let items = match value {
        Value::Object(mut map) => map.remove("items"),
        _ => None,
    };
    let items = match items {
        Some(Value::Array(items)) => items,
        Some(Value::Null) | None if item_kind.is_some() => Vec::new(), // an empty typed list
        _ => {
            return Err(ParseError::BadList {
                at: at.clone(),
                kind,
            });
        }
    };
    for (index, mut item) in items.into_iter().enumerate() {
        // Items of a typed list (as the API server returns them) may leave out their type fields.
        if let (Some(item_kind), Value::Object(fields)) = (item_kind, &mut item) {
            let (api_version, kind) = item_kind.api_version_and_kind();
            fields
                .entry("apiVersion")
                .or_insert_with(|| api_version.into());
            fields.entry("kind").or_insert_with(|| kind.into());
        }
        let item_at = Location {
            item: Some(index + 1),
            ..at.clone()
        };
        document(&item_at, item, out)?;
    }
    Ok(())
}

fn insert(
    at: &Location,
    kind: Kind,
    value: Value,
    objects: &mut ClusterObjects,
) -> Result<(), ParseError> {
    match kind {
        Kind::Service => {
            let (key, object) = namespaced::<Service>(at, value)?;
            objects.services.insert(key, object);
        }
        Kind::EndpointSlice => {
            let (key, object) = namespaced::<EndpointSlice>(at, value)?;
            objects.endpoint_slices.insert(key, object);
        }
        Kind::Pod => {
            let (key, object) = namespaced::<Pod>(at, value)?;
            objects.pods.insert(key, object);
        }
        Kind::Node => {
            let (name, object) = typed::<Node>(at, value)?;
            objects.nodes.insert(name, object);
        }
    }
    Ok(())
}

/// Deserializes a namespaced object and returns its `(namespace, name)` key.
fn namespaced<T>(at: &Location, value: Value) -> Result<((String, String), T), ParseError>
where
    T: DeserializeOwned + Resource + Metadata<Ty = ObjectMeta>,
{
    let (name, object) = typed::<T>(at, value)?;
    let namespace = object
        .metadata()
        .namespace
        .as_deref()
        .filter(|ns| !ns.is_empty())
        .unwrap_or(DEFAULT_NAMESPACE)
        .to_owned();
    Ok(((namespace, name), object))
}

/// Deserializes an object into its k8s-openapi type and returns its name.
fn typed<T>(at: &Location, value: Value) -> Result<(String, T), ParseError>
where
    T: DeserializeOwned + Resource + Metadata<Ty = ObjectMeta>,
{
    let name = value
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("<unnamed>")
        .to_owned();
    let object: T = serde_json::from_value(value).map_err(|source| ParseError::Decode {
        at: at.clone(),
        kind: T::KIND,
        name,
        source,
    })?;
    match object.metadata().name.as_deref() {
        Some(name) if !name.is_empty() => Ok((name.to_owned(), object)),
        _ => Err(ParseError::MissingName {
            at: at.clone(),
            kind: T::KIND,
        }),
    }
}
