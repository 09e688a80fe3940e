//! Where the agent's objects come from. [`ObjectSource`] is the interface the sync loop reads: it hands
//! out batches of [`SourceChange`]s for the [`ObjectStore`](strait_k8s::ObjectStore).
//! [`ManifestDirSource`] implements it over a directory of manifest files; the kube-API source
//! ([`KubeSource`](super::kube_source::KubeSource)) over the API server's watches.
//!
//! The directory source is incremental: inotify tells it which files changed, and only those are
//! read again; each file's objects are compared by key with what the file held before, so a file that
//! drops an object yields a delete. It keeps no copy of any object — only, per file, the keys it
//! defined. It is tolerant: a file that fails to read or parse is reported in
//! [`SourceBatch::errors`] and its last good objects stay in effect, so a half-edited file never takes
//! services away; a file that disappears takes its objects with it. When two files define the same
//! object, the later file (in name order) wins. [`ObjectSource::resync`] lists the directory and reads
//! every file whose (mtime, length, inode) differs from when it was last read — the safety net for a
//! missed or overflowed notification, and the whole mechanism where inotify is not available.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use strait_k8s::manifest::{ParseOptions, is_manifest_file, parse_str};
use strait_k8s::{Change, Kind, Object, ObjectKey};

/// One step for the store.
#[derive(Clone, Debug, PartialEq)]
pub enum SourceChange {
    /// Apply one change.
    Change(Change),
    /// Replace one kind's contents (a relist).
    Replace(Kind, Vec<Object>),
}

/// What a source has seen since the previous batch. Changes go to the batch's sink as the source
/// finds them (the agent applies each to its store at once, so a first sync of thousands of objects
/// never holds them all decoded), or, for a batch without a sink, are collected in `changes`.
#[derive(Default)]
pub struct SourceBatch<'s> {
    /// Changes, in the order they are to be applied (only for a batch without a sink).
    pub changes: Vec<SourceChange>,
    /// How many changes the batch carried.
    pub count: usize,
    /// One message per problem, naming the file (and document) or watch concerned.
    pub errors: Vec<String>,
    /// When the source heard of the first change of the batch (for latency figures).
    pub noticed: Option<Instant>,
    sink: Option<&'s mut dyn FnMut(SourceChange)>,
}

impl<'s> SourceBatch<'s> {
    /// A batch that hands every change to `sink`.
    pub fn with_sink(sink: &'s mut dyn FnMut(SourceChange)) -> Self {
        Self {
            sink: Some(sink),
            ..Self::default()
        }
    }

    /// Adds a change.
    pub fn push(&mut self, change: SourceChange) {
        self.count += 1;
        match &mut self.sink {
            Some(sink) => sink(change),
            None => self.changes.push(change),
        }
    }

    /// True when the batch carries neither changes nor errors.
    pub fn is_empty(&self) -> bool {
        self.count == 0 && self.errors.is_empty()
    }
}

impl std::fmt::Debug for SourceBatch<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceBatch")
            .field("changes", &self.changes)
            .field("count", &self.count)
            .field("errors", &self.errors)
            .field("noticed", &self.noticed)
            .finish_non_exhaustive()
    }
}

/// A source of cluster objects, read by the agent's sync loop (on a blocking thread).
pub trait ObjectSource: Send {
    /// Waits up to `timeout` for something to happen and puts what did into `batch` (nothing when
    /// nothing did). The first call gives the source's initial view.
    fn next_batch(&mut self, timeout: Duration, batch: &mut SourceBatch<'_>);

    /// True once the source holds a complete view (before that, a partial view could take services
    /// away, so the agent programs nothing).
    fn is_ready(&self) -> bool;

    /// The safety net: looks at everything again and puts what the incremental path missed
    /// (normally nothing) into `batch`.
    fn resync(&mut self, batch: &mut SourceBatch<'_>);

    /// [`next_batch`](Self::next_batch) into a batch that collects its changes.
    fn collect(&mut self, timeout: Duration) -> SourceBatch<'static> {
        let mut batch = SourceBatch::default();
        self.next_batch(timeout, &mut batch);
        batch
    }

    /// [`resync`](Self::resync) into a batch that collects its changes.
    fn collect_resync(&mut self) -> SourceBatch<'static> {
        let mut batch = SourceBatch::default();
        self.resync(&mut batch);
        batch
    }
}

/// Why a file or the directory could not be read. Reported as text in [`SourceBatch::errors`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    #[error("cannot list manifest directory {}: {source}", dir.display())]
    ListDir { dir: PathBuf, source: io::Error },
    #[error("cannot read manifest {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error(transparent)]
    Parse(#[from] strait_k8s::ManifestError),
}

/// What a file looked like when it was read. A change of any field means the file may have changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

/// What the source remembers of one file: its stamp when last read successfully (`None` while it
/// fails) and the keys of the objects it defined then.
#[derive(Clone, Debug, Default)]
struct FileState {
    stamp: Option<FileStamp>,
    keys: BTreeSet<ObjectKey>,
}

/// The inotify events that mean a directory entry may have new content or be gone. Creation is left
/// out: a file being written is read once its writer closes it (or renames it into place).
fn watch_flags() -> AddWatchFlags {
    AddWatchFlags::IN_CLOSE_WRITE
        | AddWatchFlags::IN_MOVED_TO
        | AddWatchFlags::IN_MOVED_FROM
        | AddWatchFlags::IN_DELETE
        | AddWatchFlags::IN_ATTRIB
        | AddWatchFlags::IN_DELETE_SELF
        | AddWatchFlags::IN_MOVE_SELF
}

/// Cluster objects from the manifest files (`*.yaml`, `*.yml`, `*.json`) directly in one directory.
/// Hidden files (a leading `.`) and `*.tmp` files, which are atomic writes in progress, are skipped;
/// symbolic links are followed (as in a mounted ConfigMap).
#[derive(Debug)]
pub struct ManifestDirSource {
    dir: PathBuf,
    files: BTreeMap<PathBuf, FileState>,
    /// Every file that defines each key; the last one in name order is the one in effect.
    defined_by: HashMap<ObjectKey, BTreeSet<PathBuf>>,
    /// The directory's listing error, reported once until it changes.
    list_error: Option<io::ErrorKind>,
    inotify: Option<Inotify>,
    started: bool,
}

impl ManifestDirSource {
    /// A source over `dir`; nothing is read until the first [`next_batch`](ObjectSource::next_batch).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            files: BTreeMap::new(),
            defined_by: HashMap::new(),
            list_error: None,
            inotify: None,
            started: false,
        }
    }

    /// The directory this source reads.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether changes are noticed through inotify (else only [`resync`](ObjectSource::resync) and
    /// the timeout-driven rescans see them).
    pub fn is_watching(&self) -> bool {
        self.inotify.is_some()
    }

    /// Starts (or restarts) the inotify watch on the directory; without it the source rescans.
    fn watch(&mut self) {
        self.inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
            .ok()
            .filter(|inotify| inotify.add_watch(&self.dir, watch_flags()).is_ok());
    }

    /// The files whose names inotify reported within `timeout` (`None`: rescan everything, because
    /// the queue overflowed, the directory itself moved, or there is no watch).
    fn wait_for_names(&mut self, timeout: Duration) -> Option<BTreeSet<PathBuf>> {
        let Some(inotify) = &self.inotify else {
            std::thread::sleep(timeout);
            return None;
        };
        let millis = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(inotify.as_fd(), PollFlags::POLLIN)];
        if !matches!(poll(&mut fds, PollTimeout::from(millis)), Ok(n) if n > 0) {
            return Some(BTreeSet::new());
        }
        let mut names = BTreeSet::new();
        let (mut rewatch, mut rescan) = (false, false);
        loop {
            match inotify.read_events() {
                Ok(events) if !events.is_empty() => {
                    for event in events {
                        if event.mask.intersects(
                            AddWatchFlags::IN_Q_OVERFLOW
                                | AddWatchFlags::IN_DELETE_SELF
                                | AddWatchFlags::IN_MOVE_SELF
                                | AddWatchFlags::IN_IGNORED,
                        ) {
                            rewatch = true;
                        }
                        if let Some(name) = event.name {
                            // A mounted ConfigMap swaps its `..data` link: every file may have changed.
                            rescan |= name.to_string_lossy().starts_with("..");
                            names.insert(self.dir.join(name));
                        }
                    }
                }
                _ => break,
            }
        }
        if rewatch {
            self.watch();
        }
        (!rewatch && !rescan).then_some(names)
    }

    /// Reads the named files again (those that exist and are manifests) and drops the ones that are
    /// gone, adding what changed to `batch`.
    fn refresh(&mut self, paths: &BTreeSet<PathBuf>, batch: &mut SourceBatch<'_>) {
        for path in paths {
            if !is_manifest_file(path) {
                continue;
            }
            match stamp_of(path) {
                Some(stamp) => self.read_file(path, stamp, batch),
                None => self.drop_file(path, batch),
            }
        }
    }

    /// Lists the directory and refreshes every file that is new, gone, changed since it was read, or
    /// failed last time.
    fn rescan(&mut self, batch: &mut SourceBatch<'_>) {
        let listed = match list(&self.dir) {
            Ok(listed) => {
                self.list_error = None;
                if self.inotify.is_none() {
                    self.watch(); // the directory may have appeared since
                }
                listed
            }
            Err(source) => {
                if self.list_error != Some(source.kind()) {
                    self.list_error = Some(source.kind());
                    let error = SourceError::ListDir {
                        dir: self.dir.clone(),
                        source,
                    };
                    batch.errors.push(error.to_string());
                }
                return;
            }
        };
        let gone: Vec<PathBuf> = self
            .files
            .keys()
            .filter(|p| !listed.contains_key(*p))
            .cloned()
            .collect();
        for path in gone {
            self.drop_file(&path, batch);
        }
        for (path, stamp) in listed {
            if self.files.get(&path).and_then(|f| f.stamp) != Some(stamp) {
                self.read_file(&path, stamp, batch);
            }
        }
    }

    /// Reads one file and records the difference with what it defined before.
    fn read_file(&mut self, path: &Path, stamp: FileStamp, batch: &mut SourceBatch<'_>) {
        let parsed = fs::read_to_string(path)
            .map_err(|source| SourceError::Read {
                path: path.to_path_buf(),
                source,
            })
            .and_then(|text| Ok(parse_str(path, &text, &ParseOptions::AGENT)?));
        let objects = match parsed {
            Ok(loaded) => loaded.into_objects(),
            Err(error) => {
                // Keep the last good objects; read again on the next look (the error is reported
                // until the file is fixed).
                batch.errors.push(error.to_string());
                self.files.entry(path.to_path_buf()).or_default().stamp = None;
                return;
            }
        };
        let mut now: BTreeMap<ObjectKey, Object> = BTreeMap::new();
        for object in objects {
            now.insert(object.key(), object); // a later document with the same key wins
        }
        let before = std::mem::take(&mut self.files.entry(path.to_path_buf()).or_default().keys);
        for key in before.iter().filter(|k| !now.contains_key(*k)) {
            self.undefine(key, path, batch);
        }
        let keys: BTreeSet<ObjectKey> = now.keys().cloned().collect();
        for (key, object) in now {
            let files = self.defined_by.entry(key).or_default();
            files.insert(path.to_path_buf());
            if files.last().map(PathBuf::as_path) == Some(path) {
                batch.push(SourceChange::Change(Change::Upsert(object)));
            }
        }
        let state = self.files.entry(path.to_path_buf()).or_default();
        state.stamp = Some(stamp);
        state.keys = keys;
    }

    /// Forgets a file that is gone: its objects go, unless another file defines them too.
    fn drop_file(&mut self, path: &Path, batch: &mut SourceBatch<'_>) {
        let Some(state) = self.files.remove(path) else {
            return;
        };
        for key in &state.keys {
            self.undefine(key, path, batch);
        }
    }

    /// `path` no longer defines `key`: delete it, or fall back to the next file that defines it.
    fn undefine(&mut self, key: &ObjectKey, path: &Path, batch: &mut SourceBatch<'_>) {
        let Some(files) = self.defined_by.get_mut(key) else {
            return;
        };
        let was_in_effect = files.last().map(PathBuf::as_path) == Some(path);
        files.remove(path);
        let fallback = files.last().cloned();
        if files.is_empty() {
            self.defined_by.remove(key);
        }
        if !was_in_effect {
            return;
        }
        let object = fallback.and_then(|file| {
            let text = fs::read_to_string(&file).ok()?;
            let loaded = parse_str(&file, &text, &ParseOptions::AGENT).ok()?;
            loaded.into_objects().into_iter().rfind(|o| o.key() == *key)
        });
        batch.push(SourceChange::Change(match object {
            Some(object) => Change::Upsert(object),
            None => Change::Delete(key.clone()),
        }));
    }

    /// Files that failed last time.
    fn failed(&self) -> BTreeSet<PathBuf> {
        self.files
            .iter()
            .filter(|(_, f)| f.stamp.is_none())
            .map(|(p, _)| p.clone())
            .collect()
    }
}

impl ObjectSource for ManifestDirSource {
    fn next_batch(&mut self, timeout: Duration, batch: &mut SourceBatch<'_>) {
        if !self.started {
            self.started = true;
            // Watch before the first listing, so nothing written in between is missed.
            self.watch();
            batch.noticed = Some(Instant::now());
            self.rescan(batch);
            return;
        }
        let names = self.wait_for_names(timeout);
        let noticed = Instant::now();
        match names {
            Some(names) if names.is_empty() => {}
            Some(mut names) => {
                names.extend(self.failed());
                self.refresh(&names, batch);
            }
            None => self.rescan(batch),
        }
        if !batch.is_empty() {
            batch.noticed = Some(noticed);
        }
    }

    fn is_ready(&self) -> bool {
        self.started
    }

    fn resync(&mut self, batch: &mut SourceBatch<'_>) {
        self.rescan(batch);
    }
}

/// The stamp of `path` (following links) if it is a regular file.
fn stamp_of(path: &Path) -> Option<FileStamp> {
    let meta = fs::metadata(path).ok()?;
    meta.is_file().then(|| FileStamp {
        modified: meta.modified().ok(),
        len: meta.len(),
        inode: meta.ino(),
    })
}

/// Every manifest file in `dir` with its stamp, sorted by path. Entries that vanish while being listed,
/// and names that are not UTF-8, are skipped.
fn list(dir: &Path) -> io::Result<BTreeMap<PathBuf, FileStamp>> {
    let mut files = BTreeMap::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.file_name().and_then(|n| n.to_str()).is_none() || !is_manifest_file(&path) {
            continue;
        }
        if let Some(stamp) = stamp_of(&path) {
            files.insert(path, stamp);
        }
    }
    Ok(files)
}
