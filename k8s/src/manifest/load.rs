//! Reading manifest files and directories into typed [`Object`]s, as [`ParseOptions`] say.

use std::borrow::Cow;
use std::fs;
use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use serde::Deserialize;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use serde_json::value::RawValue;

use super::{Location, ManifestError, ParseOptions, strict};
use crate::object::{Kind, Object};
use crate::validate::{Violation, validate};

/// What a load produced: the objects with where each came from, and one
/// [`ManifestError::UnknownKind`] (or, when not strict, [`ManifestError::NoSuchKind`]) per document
/// or list item that was skipped.
#[derive(Debug, Default)]
pub struct Loaded {
    pub objects: Vec<(Location, Object)>,
    pub skipped: Vec<ManifestError>,
}

impl Loaded {
    /// The objects without their locations.
    pub fn into_objects(self) -> Vec<Object> {
        self.objects.into_iter().map(|(_, o)| o).collect()
    }
}

/// Reads every object from `path`: a file, or a directory whose `*.yaml`, `*.yml` and `*.json` files
/// (non-recursive, hidden files skipped) are read in file-name order.
pub fn load_path(path: &Path, options: &ParseOptions<'_>) -> Result<Loaded, ManifestError> {
    let meta = fs::metadata(path).map_err(read_error(path))?;
    let mut loaded = Loaded::default();
    if !meta.is_dir() {
        let text = fs::read_to_string(path).map_err(read_error(path))?;
        parse_into(path, &text, options, &mut loaded)?;
        return Ok(loaded);
    }
    let mut files: Vec<PathBuf> = Vec::new();
    for entry in fs::read_dir(path).map_err(read_error(path))? {
        let entry = entry.map_err(read_error(path))?;
        let file = entry.path();
        if is_manifest_file(&file) && fs::metadata(&file).is_ok_and(|m| m.is_file()) {
            files.push(file);
        }
    }
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    for file in files {
        let text = fs::read_to_string(&file).map_err(read_error(&file))?;
        parse_into(&file, &text, options, &mut loaded)?;
    }
    Ok(loaded)
}

/// Parses manifest text as if it had been read from `file` (which names the file in errors; a `.json`
/// extension, any case, selects JSON, anything else YAML).
pub fn parse_str(
    file: &Path,
    text: &str,
    options: &ParseOptions<'_>,
) -> Result<Loaded, ManifestError> {
    let mut loaded = Loaded::default();
    parse_into(file, text, options, &mut loaded)?;
    Ok(loaded)
}

fn read_error(path: &Path) -> impl FnOnce(std::io::Error) -> ManifestError + '_ {
    move |error| ManifestError::Read {
        path: path.to_path_buf(),
        error,
    }
}

fn extension_is(path: &Path, wanted: &str) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case(wanted))
}

/// Whether `path` names a manifest file: `*.yaml`, `*.yml` or `*.json` (any case), not hidden.
pub fn is_manifest_file(path: &Path) -> bool {
    let hidden = path
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('.'));
    !hidden
        && ["yaml", "yml", "json"]
            .iter()
            .any(|ext| extension_is(path, ext))
}

fn parse_into(
    file: &Path,
    text: &str,
    options: &ParseOptions<'_>,
    out: &mut Loaded,
) -> Result<(), ManifestError> {
    if extension_is(file, "json") {
        let stream = serde_json::Deserializer::from_str(text).into_iter::<&RawValue>();
        for (index, doc) in stream.enumerate() {
            let at = Location::new(file, index + 1);
            let json_error = |error| ManifestError::Json {
                at: at.boxed(),
                error,
            };
            let raw = doc.map_err(json_error)?;
            if let Some(object) = direct(raw.get(), options) {
                out.objects.push((at, object));
                continue;
            }
            let value = serde_json::from_str(raw.get()).map_err(json_error)?;
            document(&at, value, options, out)?;
        }
        return Ok(());
    }
    for (index, de) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let at = Location::new(file, index + 1);
        let yaml_error = |error| ManifestError::Yaml {
            at: at.boxed(),
            error,
        };
        let mut yaml = serde_yaml_ng::Value::deserialize(de).map_err(yaml_error)?;
        yaml.apply_merge().map_err(yaml_error)?;
        let value = Value::deserialize(yaml).map_err(yaml_error)?;
        document(&at, value, options, out)?;
    }
    Ok(())
}

/// A document's type fields, read without building the document.
#[derive(Deserialize)]
struct TypeFields<'a> {
    #[serde(rename = "apiVersion", borrow)]
    api_version: Option<Cow<'a, str>>,
    #[serde(borrow)]
    kind: Option<Cow<'a, str>>,
}

/// The fast path for a JSON document that needs no field-by-field checks (not strict, not validated):
/// an object of a kind the caller reads, decoded straight from its text into its type, without the
/// intermediate [`Value`] (which made parsing most of an agent's first sync). `None` for anything
/// else (another kind, a list, an error), which the general path then handles and reports.
fn direct(json: &str, options: &ParseOptions<'_>) -> Option<Object> {
    if options.strict || options.validate {
        return None;
    }
    let fields: TypeFields<'_> = serde_json::from_str(json).ok()?;
    let kind =
        Kind::of(&fields.api_version?, &fields.kind?).filter(|k| options.kinds.contains(k))?;
    let object = match kind {
        Kind::Namespace => from::<Namespace>(json),
        Kind::Node => from::<Node>(json),
        Kind::Service => from::<Service>(json),
        Kind::EndpointSlice => from::<EndpointSlice>(json),
        Kind::Pod => from::<Pod>(json),
        Kind::Deployment => from::<Deployment>(json),
        Kind::NetworkPolicy => from::<NetworkPolicy>(json),
    }?;
    (!object.name().is_empty()).then_some(object)
}

/// `json` decoded as a `T`, as an [`Object`].
fn from<T: DeserializeOwned + Into<Object>>(json: &str) -> Option<Object> {
    serde_json::from_str::<T>(json).ok().map(Into::into)
}

fn supported(kinds: &[Kind]) -> String {
    let names: Vec<String> = kinds
        .iter()
        .map(|k| {
            let (api_version, kind) = k.api_version_and_kind();
            format!("{api_version} {kind}")
        })
        .collect();
    format!("{} and v1 List", names.join(", "))
}

fn document(
    at: &Location,
    value: Value,
    options: &ParseOptions<'_>,
    out: &mut Loaded,
) -> Result<(), ManifestError> {
    let Value::Object(map) = &value else {
        return if value.is_null() {
            Ok(()) // an empty document
        } else {
            Err(ManifestError::NotAMapping { at: at.boxed() })
        };
    };
    let type_field = |field: &'static str| {
        map.get(field)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| ManifestError::MissingTypeField {
                at: at.boxed(),
                field,
            })
    };
    let api_version = type_field("apiVersion")?;
    let kind_name = type_field("kind")?;
    if let Some(kind) = Kind::of(&api_version, &kind_name).filter(|k| options.kinds.contains(k)) {
        let object = typed(at, kind, &value, options)?;
        out.objects.push((at.clone(), object));
        return Ok(());
    }
    let list_of = kind_name
        .strip_suffix("List")
        .and_then(|item| Kind::of(&api_version, item))
        .filter(|k| options.kinds.contains(k));
    let is_list = (api_version == "v1" && kind_name == "List") || list_of.is_some();
    if !is_list {
        return other_kind(at, api_version, kind_name, options, out);
    }
    if at.item.is_some() {
        return Err(ManifestError::NestedList { at: at.boxed() });
    }
    let items = match value {
        Value::Object(mut map) => map.remove("items"),
        _ => None,
    };
    let items = match items {
        Some(Value::Array(items)) => items,
        Some(Value::Null) | None if list_of.is_some() => Vec::new(), // an empty typed list
        _ => {
            return Err(ManifestError::BadList {
                at: at.boxed(),
                kind: kind_name,
            });
        }
    };
    for (index, mut item) in items.into_iter().enumerate() {
        // Items of a typed list (as the API server returns them) may leave out their type fields.
        if let (Some(item_kind), Value::Object(fields)) = (list_of, &mut item) {
            let (api_version, kind) = item_kind.api_version_and_kind();
            fields
                .entry("apiVersion")
                .or_insert_with(|| api_version.into());
            fields.entry("kind").or_insert_with(|| kind.into());
        }
        document(&at.with_item(index + 1), item, options, out)?;
    }
    Ok(())
}

/// A document of a kind outside the caller's set: skipped or refused, as the options say.
fn other_kind(
    at: &Location,
    api_version: String,
    kind: String,
    options: &ParseOptions<'_>,
    out: &mut Loaded,
) -> Result<(), ManifestError> {
    let supported = supported(options.kinds);
    if crate::builtin::is_unknown_builtin(&api_version, &kind) {
        let error = ManifestError::NoSuchKind {
            at: at.boxed(),
            api_version,
            kind,
            supported,
        };
        if options.strict || !options.skip_other_kinds {
            return Err(error);
        }
        out.skipped.push(error);
        return Ok(());
    }
    let error = ManifestError::UnknownKind {
        at: at.boxed(),
        api_version,
        kind,
        supported,
    };
    if options.skip_other_kinds {
        out.skipped.push(error);
        Ok(())
    } else {
        Err(error)
    }
}

fn display_name(value: &Value) -> String {
    match value.pointer("/metadata/name").and_then(Value::as_str) {
        Some(name) if !name.is_empty() => name.to_owned(),
        _ => "<unnamed>".to_owned(),
    }
}

fn typed(
    at: &Location,
    kind: Kind,
    value: &Value,
    options: &ParseOptions<'_>,
) -> Result<Object, ManifestError> {
    let object: Object = match kind {
        Kind::Namespace => decode::<Namespace>(at, kind, value, options)?.into(),
        Kind::Node => decode::<Node>(at, kind, value, options)?.into(),
        Kind::Service => decode::<Service>(at, kind, value, options)?.into(),
        Kind::EndpointSlice => decode::<EndpointSlice>(at, kind, value, options)?.into(),
        Kind::Pod => decode::<Pod>(at, kind, value, options)?.into(),
        Kind::Deployment => decode::<Deployment>(at, kind, value, options)?.into(),
        Kind::NetworkPolicy => decode::<NetworkPolicy>(at, kind, value, options)?.into(),
    };
    if options.validate
        && let Err(violation) = validate(&object)
    {
        let (kind, name, at) = (kind.name(), display_name(value), at.boxed());
        return Err(match violation {
            Violation::Invalid { field, problem } => ManifestError::Invalid {
                at,
                kind,
                name,
                field,
                problem,
            },
            Violation::Unsupported {
                field,
                what,
                supported,
            } => ManifestError::Unsupported {
                at,
                kind,
                name,
                field,
                what,
                supported,
            },
        });
    }
    if object.name().is_empty() {
        return Err(ManifestError::MissingName {
            at: at.boxed(),
            kind: kind.name(),
        });
    }
    Ok(object)
}

fn decode<T: DeserializeOwned + Serialize>(
    at: &Location,
    kind: Kind,
    value: &Value,
    options: &ParseOptions<'_>,
) -> Result<T, ManifestError> {
    let object: T = T::deserialize(value).map_err(|error| ManifestError::Decode {
        at: at.boxed(),
        kind: kind.name(),
        name: display_name(value),
        error,
    })?;
    if options.strict
        && let Some(field) = strict::first_unknown_field(value, &object)
    {
        return Err(ManifestError::UnknownField {
            at: at.boxed(),
            kind: kind.name(),
            name: display_name(value),
            field,
        });
    }
    Ok(object)
}
