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

mod files;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use strait_k8s::manifest::is_manifest_file;
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
    /// Sorted. A boxed slice, not a set: almost every file defines one object, and a set's node
    /// would hold room for eleven (20,000 files kept 13 MB of them).
    keys: Box<[ObjectKey]>,
}

/// Files read (in parallel) before their objects are applied: a first sync of 20,000 files holds
/// only this many files' objects decoded at a time.
const READ_WINDOW: usize = 256;

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

/// A file's name in the directory (UTF-8; other names are skipped). Files are known by name, not by
/// path: comparing paths component by component cost a first sync of 20,000 files a third of a second.
type FileName = Box<str>;

/// Cluster objects from the manifest files (`*.yaml`, `*.yml`, `*.json`) directly in one directory.
/// Hidden files (a leading `.`) and `*.tmp` files, which are atomic writes in progress, are skipped;
/// symbolic links are followed (as in a mounted ConfigMap).
#[derive(Debug)]
pub struct ManifestDirSource {
    dir: PathBuf,
    files: BTreeMap<FileName, FileState>,
    /// Every file that defines each key; the last one in name order is the one in effect.
    /// (Sorted by name; almost always exactly one.)
    defined_by: HashMap<ObjectKey, Vec<FileName>>,
    /// The files that failed to read or parse last time (read again on every turn until they work).
    failing: BTreeSet<FileName>,
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
            failing: BTreeSet::new(),
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
    fn wait_for_names(&mut self, timeout: Duration) -> Option<BTreeSet<FileName>> {
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
                        if let Some(name) = event.name.as_deref().and_then(|n| n.to_str()) {
                            // A mounted ConfigMap swaps its `..data` link: every file may have changed.
                            rescan |= name.starts_with("..");
                            names.insert(name.into());
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
    fn refresh(&mut self, names: &BTreeSet<FileName>, batch: &mut SourceBatch<'_>) {
        let mut present = Vec::new();
        for name in names {
            if !is_manifest_file(Path::new(&**name)) {
                continue;
            }
            match stamp_of(&self.dir.join(&**name)) {
                Some(stamp) => present.push((name.clone(), stamp)),
                None => self.drop_file(name, batch),
            }
        }
        self.read_files(&present, batch);
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
        let gone: Vec<FileName> = self
            .files
            .keys()
            .filter(|name| !listed.contains_key(*name))
            .cloned()
            .collect();
        for name in gone {
            self.drop_file(&name, batch);
        }
        let changed: Vec<(FileName, FileStamp)> = listed
            .into_iter()
            .filter(|(name, stamp)| self.files.get(name).and_then(|f| f.stamp) != Some(*stamp))
            .collect();
        self.read_files(&changed, batch);
    }

    /// Reads the files (in name order) and records what each defines. They are read
    /// [`READ_WINDOW`] at a time, in parallel, and the next windows are read while one is recorded, so
    /// a first sync holds only a few windows' objects decoded.
    fn read_files(&mut self, files: &[(FileName, FileStamp)], batch: &mut SourceBatch<'_>) {
        let dir = self.dir.clone();
        let load = |window: &[(FileName, FileStamp)]| {
            files::load_all(&dir, window.iter().map(|(name, _)| &**name))
        };
        if files.len() <= READ_WINDOW {
            for ((name, stamp), parsed) in files.iter().zip(load(files)) {
                self.record_file(name, *stamp, parsed, batch);
            }
            return;
        }
        // A pipeline: the next windows are read while this one is recorded (at most two ahead).
        std::thread::scope(|scope| {
            let (loaded_tx, loaded_rx) = std::sync::mpsc::sync_channel(1);
            scope.spawn(move || {
                for window in files.chunks(READ_WINDOW) {
                    if loaded_tx.send(load(window)).is_err() {
                        return;
                    }
                }
            });
            for (window, loaded) in files.chunks(READ_WINDOW).zip(loaded_rx) {
                for ((name, stamp), parsed) in window.iter().zip(loaded) {
                    self.record_file(name, *stamp, parsed, batch);
                }
            }
        });
    }

    /// Records what a file read as `parsed` defines now: the difference with what it defined before.
    fn record_file(
        &mut self,
        name: &FileName,
        stamp: FileStamp,
        parsed: Result<Vec<Object>, SourceError>,
        batch: &mut SourceBatch<'_>,
    ) {
        let objects = match parsed {
            Ok(objects) => objects,
            Err(error) => {
                // Keep the last good objects; read again on the next look (the error is reported
                // until the file is fixed).
                batch.errors.push(error.to_string());
                self.files.entry(name.clone()).or_default().stamp = None;
                self.failing.insert(name.clone());
                return;
            }
        };
        let mut now: BTreeMap<ObjectKey, Object> = BTreeMap::new();
        for object in objects {
            now.insert(object.key(), object); // a later document with the same key wins
        }
        let before = std::mem::take(&mut self.files.entry(name.clone()).or_default().keys);
        for key in before.iter().filter(|k| !now.contains_key(k)) {
            self.undefine(key, name, batch);
        }
        let keys: Box<[ObjectKey]> = now.keys().cloned().collect();
        for (key, object) in now {
            let files = self.defined_by.entry(key).or_default();
            if let Err(at) = files.binary_search(name) {
                files.insert(at, name.clone());
            }
            if files.last() == Some(name) {
                batch.push(SourceChange::Change(Change::Upsert(object)));
            }
        }
        self.failing.remove(name);
        let state = self.files.entry(name.clone()).or_default();
        state.stamp = Some(stamp);
        state.keys = keys;
    }

    /// Forgets a file that is gone: its objects go, unless another file defines them too.
    fn drop_file(&mut self, name: &FileName, batch: &mut SourceBatch<'_>) {
        self.failing.remove(name);
        let Some(state) = self.files.remove(name) else {
            return;
        };
        for key in &state.keys {
            self.undefine(key, name, batch);
        }
    }

    /// File `name` no longer defines `key`: delete it, or fall back to the next file that defines it.
    fn undefine(&mut self, key: &ObjectKey, name: &FileName, batch: &mut SourceBatch<'_>) {
        let Some(files) = self.defined_by.get_mut(key) else {
            return;
        };
        let was_in_effect = files.last() == Some(name);
        if let Ok(at) = files.binary_search(name) {
            files.remove(at);
        }
        let fallback = files.last().cloned();
        if files.is_empty() {
            self.defined_by.remove(key);
        }
        if !was_in_effect {
            return;
        }
        let object = fallback.and_then(|file| {
            let objects = files::load(&self.dir.join(&*file)).ok()?;
            objects.into_iter().rfind(|o| o.key() == *key)
        });
        batch.push(SourceChange::Change(match object {
            Some(object) => Change::Upsert(object),
            None => Change::Delete(key.clone()),
        }));
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
                names.extend(self.failing.iter().cloned());
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

/// Every manifest file in `dir` with its stamp, by name. Entries that vanish while being listed, and
/// names that are not UTF-8, are skipped.
fn list(dir: &Path) -> io::Result<BTreeMap<FileName, FileStamp>> {
    let mut files = BTreeMap::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().map(FileName::from) else {
            continue;
        };
        if !is_manifest_file(Path::new(&*name)) {
            continue;
        }
        if let Some(stamp) = stamp_of(&entry.path()) {
            files.insert(name, stamp);
        }
    }
    Ok(files)
}
