//! Reading manifest files and directories into typed, validated [`Object`]s.

use std::fs;
use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::validate::{Violation, validate};
use super::{Location, ManifestError, Object};

/// Result of [`load_path_skipping_unknown`]: the objects read, plus one
/// [`ManifestError::UnknownKind`] per document (or List item) that was skipped.
#[derive(Debug, Default)]
pub struct Loaded {
    pub objects: Vec<Object>,
    pub skipped: Vec<ManifestError>,
}

/// Reads every object from `path`: a file, or a directory whose `*.yaml`,
/// `*.yml` and `*.json` files (non-recursive) are read in file-name order.
/// YAML files may hold several `---`-separated documents (empty ones are
/// skipped); JSON files may hold several concatenated values. `v1 List`
/// documents are expanded. Every object is validated; the first problem,
/// including an unsupported kind, is returned as an error.
pub fn load_path(path: &Path) -> Result<Vec<Object>, ManifestError> {
    let mut sink = Sink::strict();
    load_into(path, &mut sink)?;
    Ok(sink.loaded.objects)
}

/// Like [`load_path`], but documents of unsupported kinds are skipped and
/// reported in [`Loaded::skipped`] instead of failing the whole load.
pub fn load_path_skipping_unknown(path: &Path) -> Result<Loaded, ManifestError> {
    let mut sink = Sink {
        loaded: Loaded::default(),
        skip_unknown: true,
    };
    load_into(path, &mut sink)?;
    Ok(sink.loaded)
}

/// Parses manifest text as if it had been read from `file` (used only for
/// error messages and to pick JSON for a `.json` extension, YAML otherwise).
pub fn parse_str(file: &Path, text: &str) -> Result<Vec<Object>, ManifestError> {
    let mut sink = Sink::strict();
    parse_into(file, text, &mut sink)?;
    Ok(sink.loaded.objects)
}

struct Sink {
    loaded: Loaded,
    skip_unknown: bool,
}

impl Sink {
    fn strict() -> Self {
        Sink {
            loaded: Loaded::default(),
            skip_unknown: false,
        }
    }
}

fn read_error(path: &Path) -> impl FnOnce(std::io::Error) -> ManifestError + '_ {
    move |error| ManifestError::Read {
        path: path.to_path_buf(),
        error,
    }
}

fn load_into(path: &Path, sink: &mut Sink) -> Result<(), ManifestError> {
    let meta = fs::metadata(path).map_err(read_error(path))?;
    if !meta.is_dir() {
        let text = fs::read_to_string(path).map_err(read_error(path))?;
        return parse_into(path, &text, sink);
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
        parse_into(&file, &text, sink)?;
    }
    Ok(())
}

fn extension_is(path: &Path, wanted: &str) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case(wanted))
}

fn is_manifest_file(path: &Path) -> bool {
    ["yaml", "yml", "json"]
        .iter()
        .any(|ext| extension_is(path, ext))
}

fn parse_into(file: &Path, text: &str, sink: &mut Sink) -> Result<(), ManifestError> {
    if extension_is(file, "json") {
        let stream = serde_json::Deserializer::from_str(text).into_iter::<Value>();
        for (index, doc) in stream.enumerate() {
            let at = Location::new(file, index + 1);
            let value = doc.map_err(|error| ManifestError::Json {
                at: at.boxed(),
                error,
            })?;
            document(&at, value, sink)?;
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
        document(&at, value, sink)?;
    }
    Ok(())
}

fn document(at: &Location, value: Value, sink: &mut Sink) -> Result<(), ManifestError> {
    let Value::Object(map) = &value else {
        return if value.is_null() {
            Ok(()) // empty document
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
    let kind = type_field("kind")?;
    let object = match (api_version.as_str(), kind.as_str()) {
        ("v1", "Pod") => Object::Pod(typed::<Pod>(at, "Pod", value)?),
        ("apps/v1", "Deployment") => {
            Object::Deployment(typed::<Deployment>(at, "Deployment", value)?)
        }
        ("v1", "Service") => Object::Service(typed::<Service>(at, "Service", value)?),
        ("v1", "Namespace") => Object::Namespace(typed::<Namespace>(at, "Namespace", value)?),
        ("v1", "List") if at.item.is_some() => {
            return Err(ManifestError::NestedList { at: at.boxed() });
        }
        ("v1", "List") => {
            let items = match value {
                Value::Object(mut map) => map.remove("items"),
                _ => None,
            };
            let Some(Value::Array(items)) = items else {
                return Err(ManifestError::BadList { at: at.boxed() });
            };
            for (index, item) in items.into_iter().enumerate() {
                document(&at.with_item(index + 1), item, sink)?;
            }
            return Ok(());
        }
        _ => {
            let error = ManifestError::UnknownKind {
                at: at.boxed(),
                api_version,
                kind,
            };
            if sink.skip_unknown {
                sink.loaded.skipped.push(error);
                return Ok(());
            }
            return Err(error);
        }
    };
    if let Err(violation) = validate(&object) {
        let (kind, name) = (object.kind(), display_name(object.name()));
        let at = at.boxed();
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
    sink.loaded.objects.push(object);
    Ok(())
}

fn display_name(name: &str) -> String {
    if name.is_empty() {
        "<unnamed>".to_owned()
    } else {
        name.to_owned()
    }
}

fn typed<T: DeserializeOwned>(
    at: &Location,
    kind: &'static str,
    value: Value,
) -> Result<T, ManifestError> {
    let name = display_name(
        value
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default(),
    );
    serde_json::from_value(value).map_err(|error| ManifestError::Decode {
        at: at.boxed(),
        kind,
        name,
        error,
    })
}
