//! Where the agent's [`ClusterObjects`] come from. [`ObjectSource`] is the interface the agent polls;
//! [`ManifestDirSource`] implements it over a directory of manifest files (a kube-API source will
//! implement it too).
//!
//! The directory source is tolerant: a file that fails to read or parse is reported in
//! [`LoadReport::errors`] and its last good objects stay in effect, so a half-edited file never takes
//! services away; a file that disappears takes its objects with it. Polling is cheap: each poll lists
//! the directory and compares every file's (mtime, length, inode) with the previous listing, and only
//! the files whose stamp differs (or that failed last time) are read again — with one file per object,
//! as the lab and a mounted ConfigMap write them, a change costs one file, not the whole directory.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::objects::{ClusterObjects, ParseError, ParsedManifest, parse_manifest};

/// A source of cluster objects, polled by the agent.
pub trait ObjectSource {
    /// The current objects when anything may have changed since the previous poll, `None` otherwise.
    /// The first poll always returns `Some`.
    fn poll(&mut self) -> Option<LoadReport>;
}

/// The outcome of one load: the merged objects and what went wrong on the way.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LoadReport {
    /// Every object of every file (for a file that failed, its last good objects).
    pub objects: ClusterObjects,
    /// One message per problem, naming the file (and document) concerned.
    pub errors: Vec<String>,
    /// Manifest files found in the directory.
    pub files: usize,
    /// Documents of kinds the model does not keep, over all files currently in effect.
    pub ignored: usize,
}

/// Why a file or the directory could not be read. Reported as text in [`LoadReport::errors`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    #[error("cannot list manifest directory {}: {source}", dir.display())]
    ListDir { dir: PathBuf, source: io::Error },
    #[error("cannot read manifest {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error(transparent)]
    Parse(#[from] ParseError),
}

/// What a file looked like when last listed. A change of any field means the file may have changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

/// The directory as last listed; an unreadable directory is remembered by its error kind, so a
/// persistent error is reported once rather than on every poll.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Fingerprint {
    Listed(BTreeMap<PathBuf, FileStamp>),
    Unreadable(io::ErrorKind),
}

/// Cluster objects from the manifest files (`*.yaml`, `*.yml`, `*.json`) directly in one directory.
/// Hidden files (a leading `.`) and `*.tmp` files, which are atomic writes in progress, are skipped;
/// symbolic links are followed (as in a mounted ConfigMap).
#[derive(Debug)]
pub struct ManifestDirSource {
    dir: PathBuf,
    fingerprint: Option<Fingerprint>,
    last_good: BTreeMap<PathBuf, ParsedManifest>,
    /// The stamp each file had when it was last read successfully.
    read_stamps: BTreeMap<PathBuf, FileStamp>,
}

impl ManifestDirSource {
    /// A source over `dir`; nothing is read until [`load`](Self::load) or [`poll`](ObjectSource::poll).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            fingerprint: None,
            last_good: BTreeMap::new(),
            read_stamps: BTreeMap::new(),
        }
    }

    /// The directory this source reads.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// True when the directory listing or any file's stamp differs from the last load (always true
    /// before the first load). Costs one directory listing and one `stat` per file.
    pub fn changed(&self) -> bool {
        self.fingerprint.as_ref() != Some(&self.scan().0)
    }

    /// Reads and parses every manifest file now, whether or not anything changed, in file-name order;
    /// for objects with the same key in several files the later file wins. When the directory itself
    /// cannot be listed, every file's last good objects are kept.
    pub fn load(&mut self) -> LoadReport {
        self.read_stamps.clear();
        let scan = self.scan();
        self.load_scanned(scan)
    }

    fn load_scanned(
        &mut self,
        (fingerprint, list_error): (Fingerprint, Option<io::Error>),
    ) -> LoadReport {
        let mut report = LoadReport::default();
        if let Some(source) = list_error {
            let error = SourceError::ListDir {
                dir: self.dir.clone(),
                source,
            };
            report.errors.push(error.to_string());
        }
        if let Fingerprint::Listed(files) = &fingerprint {
            report.files = files.len();
            self.last_good.retain(|path, _| files.contains_key(path));
            self.read_stamps.retain(|path, _| files.contains_key(path));
            for (path, stamp) in files {
                if self.read_stamps.get(path) == Some(stamp) {
                    continue;
                }
                match read_and_parse(path) {
                    Ok(parsed) => {
                        self.last_good.insert(path.clone(), parsed);
                        self.read_stamps.insert(path.clone(), *stamp);
                    }
                    Err(error) => {
                        // Read again on the next load: the error is reported until the file is fixed.
                        self.read_stamps.remove(path);
                        report.errors.push(error.to_string());
                    }
                }
            }
        }
        for parsed in self.last_good.values() {
            report.objects.merge_from(&parsed.objects);
            report.ignored += parsed.ignored;
        }
        self.fingerprint = Some(fingerprint);
        report
    }

    /// Lists the directory. The listing is taken before any file is read, so a file that changes while
    /// being loaded shows up as a change on the next poll rather than being missed.
    fn scan(&self) -> (Fingerprint, Option<io::Error>) {
        match list(&self.dir) {
            Ok(files) => (Fingerprint::Listed(files), None),
            Err(error) => (Fingerprint::Unreadable(error.kind()), Some(error)),
        }
    }
}

impl ObjectSource for ManifestDirSource {
    fn poll(&mut self) -> Option<LoadReport> {
        let scan = self.scan();
        if self.fingerprint.as_ref() == Some(&scan.0) {
            return None;
        }
        Some(self.load_scanned(scan))
    }
}

fn read_and_parse(path: &Path) -> Result<ParsedManifest, SourceError> {
    let text = fs::read_to_string(path).map_err(|source| SourceError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(parse_manifest(path, &text)?)
}

/// Whether a directory entry named `name` is a manifest file this source reads: `*.yaml`, `*.yml` or
/// `*.json` (any case), not hidden. `*.tmp` names fail the extension test.
fn is_manifest_name(name: &str) -> bool {
    let extension = Path::new(name).extension().and_then(|e| e.to_str());
    !name.starts_with('.')
        && extension.is_some_and(|ext| {
            ["yaml", "yml", "json"]
                .iter()
                .any(|wanted| ext.eq_ignore_ascii_case(wanted))
        })
}

/// Every manifest file in `dir` with its stamp, sorted by path. Entries that vanish while being listed,
/// and names that are not UTF-8, are skipped.
fn list(dir: &Path) -> io::Result<BTreeMap<PathBuf, FileStamp>> {
    let mut files = BTreeMap::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if !is_manifest_name(&name) {
            continue;
        }
        let path = entry.path();
        // `fs::metadata` follows symbolic links.
        let Ok(meta) = fs::metadata(&path) else {
            continue;
        };
        if meta.is_file() {
            let stamp = FileStamp {
                modified: meta.modified().ok(),
                len: meta.len(),
                inode: meta.ino(),
            };
            files.insert(path, stamp);
        }
    }
    Ok(files)
}
