//! Tests of [`ManifestDirSource`]: tolerance of bad files, removal, skipped names and change detection.

use std::fs;
use std::path::Path;

use crate::model::source::{LoadReport, ManifestDirSource, ObjectSource};

fn node(name: &str) -> String {
    format!("apiVersion: v1\nkind: Node\nmetadata: {{name: {name}}}\n")
}

/// Writes `text` the way a careful writer does: to a `.tmp` file, then renamed into place.
fn write_atomic(dir: &Path, name: &str, text: &str) {
    let tmp = dir.join(format!(".{name}.tmp"));
    fs::write(&tmp, text).unwrap();
    fs::rename(&tmp, dir.join(name)).unwrap();
}

fn node_names(report: &LoadReport) -> Vec<&str> {
    report.objects.nodes.keys().map(String::as_str).collect()
}

fn poll(source: &mut ManifestDirSource) -> LoadReport {
    source
        .poll()
        .expect("the directory changed, so poll must report")
}

#[test]
fn first_poll_loads_and_an_unchanged_directory_polls_none() {
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

    let mut source = ManifestDirSource::new(dir.path());
    assert!(source.changed());
    let report = poll(&mut source);
    assert_eq!(node_names(&report), ["a", "b", "c"]);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.files, 3);
    assert_eq!(report.ignored, 1);

    assert!(!source.changed());
    assert_eq!(source.poll(), None);
    assert_eq!(source.poll(), None);
    // `load` always reads.
    assert_eq!(node_names(&source.load()), ["a", "b", "c"]);
}

#[test]
fn a_bad_rewrite_keeps_the_previous_objects_and_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nodes.yaml");
    fs::write(&path, node("good")).unwrap();
    let mut source = ManifestDirSource::new(dir.path());
    assert_eq!(node_names(&poll(&mut source)), ["good"]);

    // Rewritten in place (a different length, so the change is seen even within one mtime tick).
    fs::write(
        &path,
        "apiVersion: v1\nkind: Node\nmetadata: {name: [oops\n",
    )
    .unwrap();
    assert!(source.changed());
    let report = poll(&mut source);
    assert_eq!(
        node_names(&report),
        ["good"],
        "the last good parse stays in effect"
    );
    assert_eq!(report.errors.len(), 1);
    assert!(
        report.errors[0].contains("nodes.yaml"),
        "{:?}",
        report.errors
    );
    assert_eq!(source.poll(), None);

    // Fixed: the new objects replace the old ones and the error is gone.
    write_atomic(dir.path(), "nodes.yaml", &node("fixed"));
    let report = poll(&mut source);
    assert_eq!(node_names(&report), ["fixed"]);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
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
    let mut source = ManifestDirSource::new(dir.path());
    let report = poll(&mut source);
    assert_eq!(node_names(&report), ["a"]);
    assert_eq!(report.errors.len(), 1);
    assert!(
        report.errors[0].contains("b.yaml document 1"),
        "{:?}",
        report.errors
    );
}

#[test]
fn a_removed_file_drops_its_objects() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("a.yaml"), node("a")).unwrap();
    fs::write(dir.path().join("b.yaml"), node("b")).unwrap();
    let mut source = ManifestDirSource::new(dir.path());
    assert_eq!(node_names(&poll(&mut source)), ["a", "b"]);

    fs::remove_file(dir.path().join("a.yaml")).unwrap();
    let report = poll(&mut source);
    assert_eq!(node_names(&report), ["b"]);
    assert_eq!(report.files, 1);
}

#[test]
fn a_removed_bad_file_drops_its_last_good_objects_too() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.yaml");
    fs::write(&path, node("a")).unwrap();
    let mut source = ManifestDirSource::new(dir.path());
    poll(&mut source);
    fs::write(&path, "{").unwrap();
    assert_eq!(node_names(&poll(&mut source)), ["a"]);
    fs::remove_file(&path).unwrap();
    let report = poll(&mut source);
    assert!(report.objects.is_empty());
    assert!(report.errors.is_empty());
}

#[test]
fn tmp_and_hidden_files_are_ignored() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("a.yaml"), node("a")).unwrap();
    let mut source = ManifestDirSource::new(dir.path());
    poll(&mut source);

    // An atomic write in progress, a hidden file and a half-written `.tmp` with a manifest-like name.
    fs::write(dir.path().join(".b.yaml.tmp"), node("b")).unwrap();
    fs::write(dir.path().join(".hidden.yaml"), node("hidden")).unwrap();
    fs::write(dir.path().join("c.yaml.tmp"), "{").unwrap();
    assert!(!source.changed());
    assert_eq!(source.poll(), None);
    assert_eq!(node_names(&source.load()), ["a"]);
}

#[test]
fn the_later_file_wins_for_the_same_key() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("1.yaml"),
        "apiVersion: v1\nkind: Node\nmetadata: {name: n, labels: {from: one}}\n",
    )
    .unwrap();
    fs::write(
        dir.path().join("2.yaml"),
        "apiVersion: v1\nkind: Node\nmetadata: {name: n, labels: {from: two}}\n",
    )
    .unwrap();
    let report = ManifestDirSource::new(dir.path()).load();
    assert_eq!(
        report.objects.nodes["n"].metadata.labels.as_ref().unwrap()["from"],
        "two"
    );
}

#[test]
fn a_missing_directory_is_reported_once_and_keeps_the_objects() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("manifests");
    let mut source = ManifestDirSource::new(&dir);
    let report = poll(&mut source);
    assert!(report.objects.is_empty());
    assert_eq!(report.errors.len(), 1);
    assert!(
        report.errors[0].contains("manifests"),
        "{:?}",
        report.errors
    );
    assert_eq!(source.poll(), None, "a persistent error is reported once");

    fs::create_dir(&dir).unwrap();
    fs::write(dir.join("a.yaml"), node("a")).unwrap();
    assert_eq!(node_names(&poll(&mut source)), ["a"]);

    // The directory goes away: the error is reported and the last good objects stay.
    fs::remove_file(dir.join("a.yaml")).unwrap();
    fs::remove_dir(&dir).unwrap();
    let report = poll(&mut source);
    assert_eq!(report.errors.len(), 1);
    assert_eq!(node_names(&report), ["a"]);
}

#[test]
fn a_poll_reads_only_the_files_whose_stamp_changed() {
    let dir = tempfile::tempdir().unwrap();
    let quiet = dir.path().join("quiet.yaml");
    fs::write(&quiet, node("q1")).unwrap();
    write_atomic(dir.path(), "busy.yaml", &node("b1"));
    let mut source = ManifestDirSource::new(dir.path());
    assert_eq!(node_names(&poll(&mut source)), ["b1", "q1"]);

    // Rewrite `quiet` in place with the same length and put its mtime back: its stamp is unchanged, so
    // a poll must not read it again (which is how the test can tell) while it reads the changed file.
    let modified = fs::metadata(&quiet).unwrap().modified().unwrap();
    fs::write(&quiet, node("q2")).unwrap();
    fs::File::options()
        .write(true)
        .open(&quiet)
        .unwrap()
        .set_modified(modified)
        .unwrap();
    write_atomic(dir.path(), "busy.yaml", &node("b2"));
    assert_eq!(node_names(&poll(&mut source)), ["b2", "q1"]);
    // `load` reads everything.
    assert_eq!(node_names(&source.load()), ["b2", "q2"]);
}

#[test]
fn a_bad_file_is_reported_on_every_load_until_fixed() {
    let dir = tempfile::tempdir().unwrap();
    write_atomic(dir.path(), "bad.yaml", "kind: [unclosed");
    write_atomic(dir.path(), "good.yaml", &node("g1"));
    let mut source = ManifestDirSource::new(dir.path());
    let first = poll(&mut source);
    assert_eq!(first.errors.len(), 1, "{:?}", first.errors);
    // Another file changes: the bad one is still bad and still reported.
    write_atomic(dir.path(), "good.yaml", &node("g2"));
    let second = poll(&mut source);
    assert_eq!(node_names(&second), ["g2"]);
    assert!(second.errors[0].contains("bad.yaml"), "{:?}", second.errors);
    write_atomic(dir.path(), "bad.yaml", &node("fixed"));
    let third = poll(&mut source);
    assert!(third.errors.is_empty(), "{:?}", third.errors);
    assert_eq!(node_names(&third), ["fixed", "g2"]);
}
