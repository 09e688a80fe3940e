//! Tests of [`ManifestDirSource`]: incremental changes by file, tolerance of bad files, removal,
//! skipped names, the later file winning, the resync safety net, all through a real [`ObjectStore`].

use std::fs;
use std::path::Path;
use std::time::Duration;

use strait_k8s::{Event, Kind, ObjectStore};

use crate::model::source::{ManifestDirSource, ObjectSource, SourceBatch, SourceChange};

/// Long enough for inotify to report a write on a loaded machine; a batch returns as soon as it does.
const WAIT: Duration = Duration::from_secs(5);

fn node(name: &str) -> String {
    format!("apiVersion: v1\nkind: Node\nmetadata: {{name: {name}}}\n")
}

fn node_with_label(name: &str, label: &str) -> String {
    format!("apiVersion: v1\nkind: Node\nmetadata: {{name: {name}, labels: {{l: {label}}}}}\n")
}

/// Writes `text` the way a careful writer does: to a hidden `.tmp` file, then renamed into place.
fn write_atomic(dir: &Path, name: &str, text: &str) {
    let tmp = dir.join(format!(".{name}.tmp"));
    fs::write(&tmp, text).unwrap();
    fs::rename(&tmp, dir.join(name)).unwrap();
}

/// A source and the store its batches are applied to.
struct Harness {
    source: ManifestDirSource,
    store: ObjectStore,
}

impl Harness {
    fn new(dir: &Path) -> Self {
        Self {
            source: ManifestDirSource::new(dir),
            store: ObjectStore::new(),
        }
    }

    /// Applies one batch; returns it with the store events it caused.
    fn apply(&mut self, batch: SourceBatch<'static>) -> (SourceBatch<'static>, Vec<Event>) {
        let mut events = Vec::new();
        for change in batch.changes.clone() {
            match change {
                SourceChange::Change(change) => events.extend(self.store.apply(change)),
                SourceChange::Replace(kind, objects) => {
                    events.extend(self.store.replace(kind, objects));
                }
            }
        }
        (batch, events)
    }

    /// The next non-empty batch (fails after [`WAIT`]).
    fn step(&mut self) -> (SourceBatch<'static>, Vec<Event>) {
        let batch = self.source.collect(WAIT);
        assert!(!batch.is_empty(), "no batch within {WAIT:?}");
        self.apply(batch)
    }

    /// Asserts nothing arrives within a short while.
    fn quiet(&mut self) {
        let batch = self.source.collect(Duration::from_millis(100));
        assert!(batch.is_empty(), "{batch:?}");
    }

    fn nodes(&self) -> Vec<String> {
        self.store.nodes().map(|(k, _)| k.name.clone()).collect()
    }
}

#[test]
fn first_batch_loads_everything_and_later_ones_only_what_changed() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("b.yaml"), node("b")).unwrap();
    fs::write(
        dir.path().join("a.json"),
        r#"{"apiVersion": "v1", "kind": "Node", "metadata": {"name": "a"}}"#,
    )
    .unwrap();
    fs::write(
        dir.path().join("c.yml"),
        format!(
            "{}---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: x}}\n",
            node("c")
        ),
    )
    .unwrap();
    fs::write(dir.path().join("README.md"), "not a manifest").unwrap();

    let mut h = Harness::new(dir.path());
    assert!(!h.source.is_ready());
    let (batch, events) = h.step();
    assert!(h.source.is_ready() && h.source.is_watching());
    assert_eq!(h.nodes(), ["a", "b", "c"]);
    assert!(batch.errors.is_empty(), "{:?}", batch.errors);
    assert_eq!(events.len(), 3);
    h.quiet();

    // One file rewritten: one change, for the one object that changed.
    write_atomic(dir.path(), "b.yaml", &node_with_label("b", "x"));
    let (batch, events) = h.step();
    assert_eq!(batch.changes.len(), 1, "{batch:?}");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].key.to_string(), "node/b");
    assert!(batch.noticed.is_some());
    // The same content again: the source reads it, the store sees no change.
    write_atomic(dir.path(), "b.yaml", &node_with_label("b", "x"));
    let (_, events) = h.step();
    assert!(events.is_empty(), "{events:?}");
    // The resync finds nothing the notifications missed.
    assert!(h.source.collect_resync().is_empty());
}

#[test]
fn a_bad_rewrite_keeps_the_previous_objects_and_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nodes.yaml");
    fs::write(&path, node("good")).unwrap();
    let mut h = Harness::new(dir.path());
    h.step();
    assert_eq!(h.nodes(), ["good"]);

    fs::write(
        &path,
        "apiVersion: v1\nkind: Node\nmetadata: {name: [oops\n",
    )
    .unwrap();
    let (batch, events) = h.step();
    assert_eq!(h.nodes(), ["good"], "the last good objects stay in effect");
    assert!(events.is_empty());
    assert_eq!(batch.errors.len(), 1);
    assert!(batch.errors[0].contains("nodes.yaml"), "{:?}", batch.errors);
    // The resync reports the bad file again until it is fixed.
    assert_eq!(h.source.collect_resync().errors.len(), 1);

    // Fixed: the new objects replace the old ones and the error is gone.
    write_atomic(dir.path(), "nodes.yaml", &node("fixed"));
    let (batch, _) = h.step();
    assert_eq!(h.nodes(), ["fixed"]);
    assert!(batch.errors.is_empty(), "{:?}", batch.errors);
    assert!(h.source.collect_resync().is_empty());
}

#[test]
fn a_bad_new_file_contributes_nothing_but_its_error() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("a.yaml"), node("a")).unwrap();
    fs::write(
        dir.path().join("b.yaml"),
        "apiVersion: v1\nkind: Node\nmetadata: {}\n",
    )
    .unwrap();
    let mut h = Harness::new(dir.path());
    let (batch, _) = h.step();
    assert_eq!(h.nodes(), ["a"]);
    assert_eq!(batch.errors.len(), 1);
    assert!(
        batch.errors[0].contains("b.yaml document 1"),
        "{:?}",
        batch.errors
    );
}

#[test]
fn a_removed_file_drops_its_objects_and_a_dropped_document_deletes_one() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("a.yaml"), node("a")).unwrap();
    fs::write(
        dir.path().join("b.yaml"),
        format!("{}---\n{}", node("b1"), node("b2")),
    )
    .unwrap();
    let mut h = Harness::new(dir.path());
    h.step();
    assert_eq!(h.nodes(), ["a", "b1", "b2"]);
    fs::remove_file(dir.path().join("a.yaml")).unwrap();
    h.step();
    assert_eq!(h.nodes(), ["b1", "b2"]);
    write_atomic(dir.path(), "b.yaml", &node("b2"));
    let (_, events) = h.step();
    assert_eq!(h.nodes(), ["b2"]);
    assert_eq!(events.len(), 1);
    assert!(events[0].new.is_none(), "b1 deleted: {events:?}");
}

#[test]
fn tmp_and_hidden_files_are_ignored() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("a.yaml"), node("a")).unwrap();
    fs::write(dir.path().join(".hidden.yaml"), node("hidden")).unwrap();
    fs::write(dir.path().join("b.yaml.tmp"), node("tmp")).unwrap();
    let mut h = Harness::new(dir.path());
    h.step();
    assert_eq!(h.nodes(), ["a"]);
    fs::write(dir.path().join("c.yaml.tmp"), node("c")).unwrap();
    h.quiet();
}

#[test]
fn the_later_file_wins_and_the_earlier_takes_over_when_it_lets_go() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("a.yaml"), node_with_label("n", "from-a")).unwrap();
    fs::write(dir.path().join("b.yaml"), node_with_label("n", "from-b")).unwrap();
    let mut h = Harness::new(dir.path());
    h.step();
    let label = |h: &Harness| {
        h.store
            .node("", "n")
            .unwrap()
            .metadata
            .labels
            .as_ref()
            .unwrap()["l"]
            .clone()
    };
    assert_eq!(label(&h), "from-b");
    // Rewriting the earlier file changes nothing in effect.
    write_atomic(dir.path(), "a.yaml", &node_with_label("n", "from-a2"));
    let batch = h.source.collect(WAIT);
    assert!(batch.changes.is_empty(), "{batch:?}");
    assert_eq!(label(&h), "from-b");
    // The later file lets go: the earlier file's object takes over.
    fs::remove_file(dir.path().join("b.yaml")).unwrap();
    h.step();
    assert_eq!(label(&h), "from-a2");
    fs::remove_file(dir.path().join("a.yaml")).unwrap();
    h.step();
    assert!(h.nodes().is_empty());
}

#[test]
fn a_missing_directory_is_reported_once_and_picked_up_by_the_resync() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("objects");
    let mut h = Harness::new(&dir);
    let batch = h.source.collect(WAIT);
    assert_eq!(batch.errors.len(), 1, "{batch:?}");
    assert!(batch.errors[0].contains("objects"), "{:?}", batch.errors);
    assert!(!h.source.is_watching());
    assert!(h.source.collect_resync().is_empty(), "reported once");
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join("a.yaml"), node("a")).unwrap();
    let batch = h.source.collect_resync();
    h.apply(batch);
    assert_eq!(h.nodes(), ["a"]);
    assert_eq!(h.store.count(Kind::Node), 1);
}

/// Many files are read several windows at a time on a few threads; what the batch carries must be what
/// reading them one by one in name order gives: every object, bad files named, the later file winning
/// across windows, and a change after it seen as one.
#[test]
fn many_files_read_in_parallel_windows_apply_in_name_order() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..700 {
        fs::write(
            dir.path().join(format!("n{i:04}.yaml")),
            node(&format!("n{i:04}")),
        )
        .unwrap();
    }
    // The same Node in the first and the last file: the last (another window) wins.
    fs::write(
        dir.path().join("a-first.yaml"),
        node_with_label("dup", "first"),
    )
    .unwrap();
    fs::write(
        dir.path().join("z-last.yaml"),
        node_with_label("dup", "last"),
    )
    .unwrap();
    fs::write(dir.path().join("n0350-bad.yaml"), "kind: [").unwrap();

    let mut h = Harness::new(dir.path());
    let (batch, _) = h.step();
    assert_eq!(h.store.count(Kind::Node), 701);
    assert_eq!(batch.errors.len(), 1, "{:?}", batch.errors);
    assert!(
        batch.errors[0].contains("n0350-bad.yaml"),
        "{:?}",
        batch.errors
    );
    let dup = h.store.node("", "dup").unwrap();
    assert_eq!(dup.metadata.labels.unwrap()["l"], "last");

    // The last file goes: the first one's Node takes its place.
    fs::remove_file(dir.path().join("z-last.yaml")).unwrap();
    let (_, events) = h.step();
    assert_eq!(events.len(), 1, "{events:?}");
    let dup = h.store.node("", "dup").unwrap();
    assert_eq!(dup.metadata.labels.unwrap()["l"], "first");
}
