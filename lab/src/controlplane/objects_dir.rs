//! The objects directory: the lab's stand-in for the API server's watch. The cluster's Services,
//! EndpointSlices, Nodes, Namespaces, Pods and NetworkPolicies are published as one JSON file per object (the k8s-openapi
//! serialization, `apiVersion` and `kind` included), named `<kind>_<namespace>_<name>.json`, or
//! `<kind>_<name>.json` for cluster-scoped kinds, with `<kind>` in lowercase.
//!
//! [`write_objects`] makes the directory hold exactly the given objects: each changed file is
//! replaced atomically (written to `.<file>.tmp` in the same directory, fsynced, renamed over),
//! files whose content is unchanged are left alone so watchers see no event, and files of the
//! naming scheme for objects no longer present are deleted. Other files are never touched.

use std::{
    collections::BTreeMap,
    fs::{self, File},
    io::{self, Write},
    path::{Path, PathBuf},
};

use k8s_openapi::{
    Resource,
    api::{
        core::v1::{Namespace, Node, Pod, Service},
        discovery::v1::EndpointSlice,
        networking::v1::NetworkPolicy,
    },
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};

use crate::manifests::DEFAULT_NAMESPACE;

/// Kinds of object files, lowercase, with whether they are namespaced.
const KINDS: &[(&str, bool)] = &[
    ("service", true),
    ("endpointslice", true),
    ("node", false),
    ("pod", true),
    ("namespace", false),
    ("networkpolicy", true),
];

/// Longest Kubernetes object name (a DNS subdomain).
const MAX_NAME_LEN: usize = 253;

/// One object to publish (boxed: the k8s-openapi types are large and of very different sizes;
/// build one with `.into()`).
#[derive(Debug, Clone, PartialEq)]
pub enum ObjectFile {
    Service(Box<Service>),
    EndpointSlice(Box<EndpointSlice>),
    Node(Box<Node>),
    Pod(Box<Pod>),
    Namespace(Box<Namespace>),
    NetworkPolicy(Box<NetworkPolicy>),
}

impl From<NetworkPolicy> for ObjectFile {
    fn from(object: NetworkPolicy) -> Self {
        Self::NetworkPolicy(Box::new(object))
    }
}

impl From<Namespace> for ObjectFile {
    fn from(object: Namespace) -> Self {
        Self::Namespace(Box::new(object))
    }
}

impl From<Service> for ObjectFile {
    fn from(object: Service) -> Self {
        Self::Service(Box::new(object))
    }
}

impl From<EndpointSlice> for ObjectFile {
    fn from(object: EndpointSlice) -> Self {
        Self::EndpointSlice(Box::new(object))
    }
}

impl From<Node> for ObjectFile {
    fn from(object: Node) -> Self {
        Self::Node(Box::new(object))
    }
}

impl From<Pod> for ObjectFile {
    fn from(object: Pod) -> Self {
        Self::Pod(Box::new(object))
    }
}

impl ObjectFile {
    /// The Kubernetes kind, e.g. `"EndpointSlice"`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Service(_) => Service::KIND,
            Self::EndpointSlice(_) => EndpointSlice::KIND,
            Self::Node(_) => Node::KIND,
            Self::Pod(_) => Pod::KIND,
            Self::Namespace(_) => Namespace::KIND,
            Self::NetworkPolicy(_) => NetworkPolicy::KIND,
        }
    }

    /// The object's metadata.
    pub fn metadata(&self) -> &ObjectMeta {
        match self {
            Self::Service(o) => &o.metadata,
            Self::EndpointSlice(o) => &o.metadata,
            Self::Node(o) => &o.metadata,
            Self::Pod(o) => &o.metadata,
            Self::Namespace(o) => &o.metadata,
            Self::NetworkPolicy(o) => &o.metadata,
        }
    }

    /// The namespace (`default` when unset) of a namespaced object, `None` for cluster-scoped ones.
    pub fn namespace(&self) -> Option<&str> {
        if matches!(self, Self::Node(_) | Self::Namespace(_)) {
            return None;
        }
        Some(
            self.metadata()
                .namespace
                .as_deref()
                .unwrap_or(DEFAULT_NAMESPACE),
        )
    }

    /// The object's name (empty when unset).
    pub fn name(&self) -> &str {
        self.metadata().name.as_deref().unwrap_or_default()
    }

    /// `<kind>_<namespace>_<name>.json` or, cluster-scoped, `<kind>_<name>.json`.
    pub fn file_name(&self) -> Result<String, ObjectsDirError> {
        let kind = self.kind().to_ascii_lowercase();
        let name = checked(self.kind(), "name", self.name())?;
        Ok(match self.namespace() {
            Some(namespace) => {
                let namespace = checked(self.kind(), "namespace", namespace)?;
                format!("{kind}_{namespace}_{name}.json")
            }
            None => format!("{kind}_{name}.json"),
        })
    }

    /// The file content: pretty JSON with a final newline.
    fn content(&self) -> serde_json::Result<Vec<u8>> {
        let mut bytes = match self {
            Self::Service(o) => serde_json::to_vec_pretty(o),
            Self::EndpointSlice(o) => serde_json::to_vec_pretty(o),
            Self::Node(o) => serde_json::to_vec_pretty(o),
            Self::Pod(o) => serde_json::to_vec_pretty(o),
            Self::Namespace(o) => serde_json::to_vec_pretty(o),
            Self::NetworkPolicy(o) => serde_json::to_vec_pretty(o),
        }?;
        bytes.push(b'\n');
        Ok(bytes)
    }
}

/// What [`write_objects`] did, by file name (each list sorted).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteReport {
    /// Files created or replaced.
    pub written: Vec<String>,
    /// Files left alone because their content was already right.
    pub unchanged: Vec<String>,
    /// Files deleted: objects no longer present, and temporary files left by an interrupted write.
    pub removed: Vec<String>,
}

impl WriteReport {
    /// Whether any file was created, replaced or deleted.
    pub fn changed(&self) -> bool {
        !self.written.is_empty() || !self.removed.is_empty()
    }
}

/// Why the objects directory could not be brought up to date.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ObjectsDirError {
    // The underlying errors are part of the messages (not also `source`s, which would print them twice).
    #[error("{action} {}: {error}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        error: io::Error,
    },
    #[error("serializing {kind} {name}: {error}")]
    Serialize {
        kind: &'static str,
        name: String,
        error: serde_json::Error,
    },
    #[error(
        "{kind} {field} {value:?} cannot be used in a file name (expected a Kubernetes name: lowercase letters, digits, '-' and '.')"
    )]
    BadName {
        kind: &'static str,
        field: &'static str,
        value: String,
    },
    #[error("two objects would both be written to {0}")]
    Duplicate(String),
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> ObjectsDirError {
    let path = path.to_owned();
    move |error| ObjectsDirError::Io {
        action,
        path,
        error,
    }
}

/// `value` if it is a Kubernetes name that is also a safe file-name component.
fn checked<'a>(
    kind: &'static str,
    field: &'static str,
    value: &'a str,
) -> Result<&'a str, ObjectsDirError> {
    let ok = !value.is_empty()
        && value.len() <= MAX_NAME_LEN
        && !value.starts_with('.')
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    if ok {
        Ok(value)
    } else {
        Err(ObjectsDirError::BadName {
            kind,
            field,
            value: value.to_owned(),
        })
    }
}

/// Whether `file` is named like an object file (see the module documentation).
fn is_object_file_name(file: &str) -> bool {
    let Some(stem) = file.strip_suffix(".json") else {
        return false;
    };
    let parts: Vec<&str> = stem.split('_').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return false;
    }
    KINDS.iter().any(|&(kind, namespaced)| {
        parts[0] == kind && parts.len() == if namespaced { 3 } else { 2 }
    })
}

/// Whether `file` is a temporary file [`write_objects`] would create.
fn is_temp_file_name(file: &str) -> bool {
    file.strip_prefix('.')
        .and_then(|f| f.strip_suffix(".tmp"))
        .is_some_and(is_object_file_name)
}

/// Makes `dir` (created if missing) hold exactly `objects`, one file each; see the module
/// documentation. Every object is checked and serialized before anything is written, so bad
/// input leaves the directory as it was.
pub fn write_objects(dir: &Path, objects: &[ObjectFile]) -> Result<WriteReport, ObjectsDirError> {
    let mut files = BTreeMap::new();
    for object in objects {
        let file = object.file_name()?;
        let content = object
            .content()
            .map_err(|error| ObjectsDirError::Serialize {
                kind: object.kind(),
                name: object.name().to_owned(),
                error,
            })?;
        if files.insert(file.clone(), content).is_some() {
            return Err(ObjectsDirError::Duplicate(file));
        }
    }

    fs::create_dir_all(dir).map_err(io_error("creating", dir))?;
    let mut report = WriteReport::default();
    for (file, content) in &files {
        let path = dir.join(file);
        if fs::read(&path).is_ok_and(|existing| existing == *content) {
            report.unchanged.push(file.clone());
        } else {
            write_atomically(dir, file, content)?;
            report.written.push(file.clone());
        }
    }

    let entries = fs::read_dir(dir).map_err(io_error("listing", dir))?;
    let mut stale = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_error("listing", dir))?;
        let Ok(file) = entry.file_name().into_string() else {
            continue;
        };
        let ours =
            (is_object_file_name(&file) && !files.contains_key(&file)) || is_temp_file_name(&file);
        if ours {
            stale.push(file);
        }
    }
    stale.sort();
    for file in stale {
        let path = dir.join(&file);
        match fs::remove_file(&path) {
            Ok(()) => report.removed.push(file),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error("removing", &path)(e)),
        }
    }

    if report.changed() {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_error("syncing", dir))?;
    }
    Ok(report)
}

/// Writes `dir/.<file>.tmp`, fsyncs it and renames it to `dir/<file>`.
fn write_atomically(dir: &Path, file: &str, content: &[u8]) -> Result<(), ObjectsDirError> {
    let tmp = dir.join(format!(".{file}.tmp"));
    let path = dir.join(file);
    let result = File::create(&tmp)
        .and_then(|mut f| {
            f.write_all(content)?;
            f.sync_all()
        })
        .map_err(io_error("writing", &tmp))
        .and_then(|()| fs::rename(&tmp, &path).map_err(io_error("renaming into place", &path)));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use k8s_openapi::api::core::v1::ServiceSpec;

    use super::*;

    fn meta(namespace: Option<&str>, name: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.to_owned()),
            namespace: namespace.map(str::to_owned),
            ..ObjectMeta::default()
        }
    }

    fn service(name: &str, cluster_ip: &str) -> ObjectFile {
        Service {
            metadata: meta(Some("shop"), name),
            spec: Some(ServiceSpec {
                cluster_ip: Some(cluster_ip.to_owned()),
                ..ServiceSpec::default()
            }),
            ..Service::default()
        }
        .into()
    }

    fn objects() -> Vec<ObjectFile> {
        vec![
            service("web", "10.96.0.10"),
            EndpointSlice {
                address_type: "IPv4".into(),
                metadata: meta(Some("shop"), "web-abcde"),
                ..EndpointSlice::default()
            }
            .into(),
            Node {
                metadata: meta(None, "node-0"),
                ..Node::default()
            }
            .into(),
            Pod {
                metadata: meta(None, "solo"),
                ..Pod::default()
            }
            .into(),
            Namespace {
                metadata: meta(None, "shop"),
                ..Namespace::default()
            }
            .into(),
        ]
    }

    fn listing(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    fn json(dir: &Path, file: &str) -> serde_json::Value {
        serde_json::from_slice(&fs::read(dir.join(file)).unwrap()).unwrap()
    }

    #[test]
    fn writes_one_file_per_object_with_api_version_and_kind() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("objects");
        let report = write_objects(&dir, &objects()).unwrap();
        let expected = [
            "endpointslice_shop_web-abcde.json",
            "namespace_shop.json",
            "node_node-0.json",
            "pod_default_solo.json",
            "service_shop_web.json",
        ];
        assert_eq!(report.written, expected);
        assert!(report.unchanged.is_empty() && report.removed.is_empty());
        // Atomic writes leave no temporary files behind.
        assert_eq!(listing(&dir), expected);

        let svc = json(&dir, "service_shop_web.json");
        assert_eq!(svc["apiVersion"], "v1");
        assert_eq!(svc["kind"], "Service");
        assert_eq!(svc["spec"]["clusterIP"], "10.96.0.10");
        let slice = json(&dir, "endpointslice_shop_web-abcde.json");
        assert_eq!(slice["apiVersion"], "discovery.k8s.io/v1");
        assert_eq!(slice["kind"], "EndpointSlice");
        assert_eq!(json(&dir, "node_node-0.json")["kind"], "Node");
        assert_eq!(json(&dir, "pod_default_solo.json")["kind"], "Pod");
        assert_eq!(json(&dir, "namespace_shop.json")["kind"], "Namespace");
        // And they read back as the typed objects.
        let back: Service =
            serde_json::from_slice(&fs::read(dir.join("service_shop_web.json")).unwrap()).unwrap();
        assert_eq!(ObjectFile::from(back), objects()[0]);
    }

    #[test]
    fn unchanged_content_is_not_rewritten() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        write_objects(dir, &objects()).unwrap();
        let before = fs::metadata(dir.join("service_shop_web.json")).unwrap();
        let slice_before = fs::metadata(dir.join("node_node-0.json")).unwrap();

        let report = write_objects(dir, &objects()).unwrap();
        assert!(report.written.is_empty() && report.removed.is_empty());
        assert_eq!(report.unchanged.len(), 5);
        assert!(!report.changed());
        let after = fs::metadata(dir.join("service_shop_web.json")).unwrap();
        // Same inode (a rename would have replaced it) and same mtime.
        assert_eq!(before.ino(), after.ino());
        assert_eq!(before.modified().unwrap(), after.modified().unwrap());

        // Changing one object rewrites only that file.
        let mut changed = objects();
        changed[0] = service("web", "10.96.0.11");
        let report = write_objects(dir, &changed).unwrap();
        assert_eq!(report.written, ["service_shop_web.json"]);
        assert_eq!(report.unchanged.len(), 4);
        assert!(report.changed());
        assert_ne!(
            fs::metadata(dir.join("service_shop_web.json"))
                .unwrap()
                .ino(),
            before.ino()
        );
        assert_eq!(
            fs::metadata(dir.join("node_node-0.json")).unwrap().ino(),
            slice_before.ino()
        );
        assert_eq!(
            json(dir, "service_shop_web.json")["spec"]["clusterIP"],
            "10.96.0.11"
        );
        assert_eq!(listing(dir).len(), 5);
    }

    #[test]
    fn stale_object_files_are_removed_others_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        write_objects(dir, &objects()).unwrap();
        let foreign = [
            "README",
            "notes.json",
            "configmap_shop_x.json",
            "service_web.json",
            "node_a_b.json",
            "pod__x.json",
            ".hidden.tmp",
        ];
        for file in foreign {
            fs::write(dir.join(file), "x").unwrap();
        }
        // Left over by an interrupted write.
        fs::write(dir.join(".service_shop_old.json.tmp"), "partial").unwrap();

        let kept = &objects()[..2];
        let report = write_objects(dir, kept).unwrap();
        assert_eq!(
            report.removed,
            [
                ".service_shop_old.json.tmp",
                "namespace_shop.json",
                "node_node-0.json",
                "pod_default_solo.json"
            ]
        );
        assert_eq!(report.unchanged.len(), 2);
        let mut expected: Vec<String> = foreign.iter().map(|s| (*s).to_owned()).collect();
        expected.push("endpointslice_shop_web-abcde.json".into());
        expected.push("service_shop_web.json".into());
        expected.sort();
        assert_eq!(listing(dir), expected);

        // An empty set removes every object file.
        let report = write_objects(dir, &[]).unwrap();
        assert_eq!(report.removed.len(), 2);
        assert_eq!(listing(dir).len(), foreign.len());
    }

    #[test]
    fn bad_names_and_duplicates_write_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        for bad in ["../etc", "a_b", "Web", "", ".x"] {
            let objects = [objects()[0].clone(), service(bad, "10.96.0.12")];
            let err = write_objects(dir, &objects).unwrap_err();
            assert!(
                matches!(err, ObjectsDirError::BadName { .. }),
                "{bad}: {err:?}"
            );
        }
        let err = write_objects(
            dir,
            &[service("web", "10.96.0.1"), service("web", "10.96.0.2")],
        )
        .unwrap_err();
        assert!(matches!(err, ObjectsDirError::Duplicate(ref f) if f == "service_shop_web.json"));
        assert!(listing(dir).is_empty());
    }

    #[test]
    fn naming_scheme() {
        assert!(is_object_file_name("service_ns_name.json"));
        assert!(is_object_file_name("node_n.json"));
        assert!(is_object_file_name("networkpolicy_ns_deny.json"));
        assert!(!is_object_file_name("networkpolicy_deny.json"));
        assert!(!is_object_file_name("node_ns_n.json"));
        assert!(!is_object_file_name("pod_n.json"));
        assert!(!is_object_file_name("service_ns_name.yaml"));
        assert!(is_temp_file_name(".pod_ns_n.json.tmp"));
        assert!(!is_temp_file_name("pod_ns_n.json.tmp"));
    }
}
