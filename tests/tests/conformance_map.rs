//! The sig-network conformance map (`docs/conformance/sig-network.tsv`, read in
//! `docs/conformance.md`) against the tree: every row has a known status and a note, no upstream
//! codename is listed twice, `covered` and `partial` rows name lab tests, every named lab test is a
//! `#[test]` function in the file its path points to under `tests/tests/` (through modules its parents
//! declare), and the document's counts and table agree with the map. Reads files only: no root.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Path, PathBuf},
};

/// The statuses a row may have, in the order the document counts them.
const STATUSES: [&str; 4] = ["covered", "partial", "control-plane", "not-covered"];

/// The TSV's header line.
const HEADER: &str = "codename\tstatus\tlab tests\tnote";

/// One upstream test as the map has it.
struct Row {
    /// 1-based line in the TSV.
    line: usize,
    codename: String,
    status: String,
    tests: Vec<String>,
    note: String,
}

/// The repository root (the parent of this crate's directory).
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the crate sits in the repository")
        .to_path_buf()
}

fn read(path: &Path) -> Result<String, String> {
    fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// Parses the map: the header, then one row of exactly four tab-separated fields a line.
fn parse(text: &str) -> Result<Vec<Row>, String> {
    let mut lines = text.lines().enumerate();
    match lines.next() {
        Some((_, HEADER)) => {}
        other => {
            return Err(format!(
                "the first line is not the header {HEADER:?}: {other:?}"
            ));
        }
    }
    let mut rows = Vec::new();
    for (index, line) in lines {
        let fields: Vec<&str> = line.split('\t').collect();
        let [codename, status, tests, note] = fields.as_slice() else {
            return Err(format!(
                "line {}: {} fields, not 4: {line:?}",
                index + 1,
                fields.len()
            ));
        };
        rows.push(Row {
            line: index + 1,
            codename: (*codename).to_owned(),
            status: (*status).to_owned(),
            tests: tests
                .split(',')
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
                .collect(),
            note: (*note).to_owned(),
        });
    }
    Ok(rows)
}

fn rows() -> Vec<Row> {
    let path = repo().join("docs/conformance/sig-network.tsv");
    parse(&read(&path).unwrap()).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The codename without `[sig-network]` and the other bracketed tags, as the document's table shows it.
fn short(codename: &str) -> String {
    let mut out = String::new();
    let mut depth = 0usize;
    for c in codename.chars() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn is_identifier(text: &str) -> bool {
    !text.is_empty()
        && !text.starts_with(|c: char| c.is_ascii_digit())
        && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The root file of test crate `name` under `tests/tests/` (`name.rs` or `name/main.rs`) and the
/// directory its `mod` declarations resolve in.
fn crate_root(tests: &Path, name: &str) -> Result<(PathBuf, PathBuf), String> {
    let single = tests.join(format!("{name}.rs"));
    let directory = tests.join(name);
    if single.is_file() {
        Ok((single, tests.to_path_buf()))
    } else if directory.join("main.rs").is_file() {
        Ok((directory.join("main.rs"), directory))
    } else {
        Err(format!(
            "no test crate {name}: neither {} nor {}/main.rs",
            single.display(),
            directory.display()
        ))
    }
}

/// Whether `text` declares `mod module;` (with any visibility).
fn declares_module(text: &str, module: &str) -> bool {
    let declaration = format!("mod {module};");
    text.lines().any(|line| {
        line.trim()
            .strip_suffix(declaration.as_str())
            .is_some_and(|before| before.trim().is_empty() || before.starts_with("pub"))
    })
}

/// The file of `module` declared in a file whose modules resolve in `dir` (`module.rs` or
/// `module/mod.rs`), and the directory its own modules resolve in.
fn module_file(dir: &Path, module: &str) -> Result<(PathBuf, PathBuf), String> {
    let single = dir.join(format!("{module}.rs"));
    let nested = dir.join(module).join("mod.rs");
    if single.is_file() {
        Ok((single, dir.join(module)))
    } else if nested.is_file() {
        Ok((nested, dir.join(module)))
    } else {
        Err(format!(
            "no module {module}: neither {} nor {}",
            single.display(),
            nested.display()
        ))
    }
}

/// Whether `text` has `fn name(` under a `#[test]` (or `#[tokio::test]`) attribute, looking up past
/// doc comments and other attributes.
fn has_test_function(text: &str, name: &str) -> bool {
    let signature = format!("fn {name}(");
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    lines.iter().enumerate().any(|(index, line)| {
        let line = line.strip_prefix("pub ").unwrap_or(line);
        let line = line.strip_prefix("async ").unwrap_or(line);
        line.starts_with(&signature)
            && lines[..index]
                .iter()
                .rev()
                .take_while(|l| l.starts_with("#[") || l.starts_with("///"))
                .any(|l| *l == "#[test]" || l.starts_with("#[tokio::test"))
    })
}

/// Checks that `path` (`crate::module::...::function`, as the map names lab tests) is a test
/// function under `tests` (the `tests/tests` directory); the file it is in.
fn find_test(tests: &Path, path: &str) -> Result<PathBuf, String> {
    let segments: Vec<&str> = path.split("::").collect();
    let [krate, modules @ .., function] = segments.as_slice() else {
        return Err(format!("{path:?}: not crate::...::function"));
    };
    if !segments.iter().all(|s| is_identifier(s)) {
        return Err(format!("{path:?}: not crate::...::function"));
    }
    let (mut file, mut dir) = crate_root(tests, krate)?;
    for module in modules {
        if !declares_module(&read(&file)?, module) {
            return Err(format!("{}: no `mod {module};`", file.display()));
        }
        (file, dir) = module_file(&dir, module)?;
    }
    if has_test_function(&read(&file)?, function) {
        Ok(file)
    } else {
        Err(format!(
            "{path}: {} has no #[test] fn {function}(",
            file.display()
        ))
    }
}

#[test]
fn every_row_has_a_known_status_a_note_and_lab_tests_where_it_claims_coverage() {
    let rows = rows();
    assert!(!rows.is_empty(), "the map is empty");
    for row in &rows {
        let at = format!("line {} ({})", row.line, row.codename);
        assert!(
            STATUSES.contains(&row.status.as_str()),
            "{at}: unknown status {:?}, not one of {STATUSES:?}",
            row.status
        );
        assert!(
            row.codename.starts_with("[sig-network] ") && row.codename.contains("[Conformance]"),
            "{at}: not a [sig-network] conformance codename"
        );
        assert!(!row.note.trim().is_empty(), "{at}: no note");
        if row.status == "covered" || row.status == "partial" {
            assert!(
                !row.tests.is_empty(),
                "{at}: {} names no lab test",
                row.status
            );
        }
        for test in &row.tests {
            assert_eq!(test.trim(), test, "{at}: spaces around {test:?}");
        }
    }
}

#[test]
fn no_codename_is_listed_twice() {
    let mut seen = BTreeMap::new();
    for row in rows() {
        if let Some(first) = seen.insert(row.codename.clone(), row.line) {
            panic!(
                "{} is on line {first} and again on line {}",
                row.codename, row.line
            );
        }
    }
    let shorts: BTreeSet<String> = seen.keys().map(|c| short(c)).collect();
    assert_eq!(
        shorts.len(),
        seen.len(),
        "two codenames read alike in the table"
    );
}

#[test]
fn every_named_lab_test_is_a_test_function_where_its_path_points() {
    let tests = repo().join("tests/tests");
    let mut missing = Vec::new();
    for row in rows() {
        for test in &row.tests {
            if let Err(why) = find_test(&tests, test) {
                missing.push(format!("line {}: {why}", row.line));
            }
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

/// The checker itself refuses what is not there: a missing function, a missing module, a helper
/// that is no `#[test]`, and a path without a crate.
#[test]
fn the_lab_test_lookup_refuses_what_does_not_exist() {
    let tests = repo().join("tests/tests");
    let found = find_test(
        &tests,
        "e2e::services::client_ip_affinity_sticks_and_expires",
    )
    .unwrap();
    assert!(found.ends_with("e2e/services.rs"), "{}", found.display());
    let nested = find_test(
        &tests,
        "e2e::overlay::pods_and_services_span_three_nodes_through_vxlan",
    )
    .unwrap();
    assert!(nested.ends_with("e2e/overlay.rs"), "{}", nested.display());
    let single = find_test(&tests, "fixtures::from_pod_fixture_table").unwrap();
    assert!(
        single.ends_with("tests/fixtures.rs"),
        "{}",
        single.display()
    );
    for wrong in [
        "e2e::services::no_such_test",
        "e2e::nowhere::client_ip_affinity_sticks_and_expires",
        "nowhere::client_ip_affinity_sticks_and_expires",
        // A helper of a test, not a test.
        "e2e::overlay::services::maglev_agrees_whichever_node_receives_a_flow",
        "e2e::services::cluster_ip",
        "client_ip_affinity_sticks_and_expires",
        "e2e::services::client ip",
    ] {
        assert!(find_test(&tests, wrong).is_err(), "{wrong} was accepted");
    }
}

/// The cells of a Markdown table row (`| a | b |`), trimmed; `None` for any other line.
fn cells(line: &str) -> Option<Vec<&str>> {
    let inner = line.trim().strip_prefix('|')?.strip_suffix('|')?;
    Some(inner.split('|').map(str::trim).collect())
}

/// The lab tests of a row as the document's table shows them.
fn rendered_tests(tests: &[String]) -> String {
    if tests.is_empty() {
        return "-".to_owned();
    }
    tests
        .iter()
        .map(|t| format!("`{t}`"))
        .collect::<Vec<_>>()
        .join("<br>")
}

#[test]
fn the_document_counts_and_table_match_the_map() {
    let rows = rows();
    let doc = read(&repo().join("docs/conformance.md")).unwrap();
    // The counts table: `| status | n |` lines, one per status, and the total.
    let mut counts = BTreeMap::new();
    for cells in doc.lines().filter_map(cells) {
        if let [status, count] = cells.as_slice()
            && (STATUSES.contains(status) || *status == "total")
            && let Ok(count) = count.parse::<usize>()
        {
            assert!(
                counts.insert((*status).to_owned(), count).is_none(),
                "{status} is counted twice"
            );
        }
    }
    for status in STATUSES {
        let in_map = rows.iter().filter(|r| r.status == status).count();
        assert_eq!(
            counts.get(status),
            Some(&in_map),
            "docs/conformance.md counts for {status}"
        );
    }
    assert_eq!(counts.get("total"), Some(&rows.len()), "the total");

    // The map table: `| # | test | status | lab tests | note |`, one row per line of the TSV, in order.
    let table: Vec<Vec<&str>> = doc
        .lines()
        .filter_map(cells)
        .filter(|c| c.len() == 5 && c[0].parse::<usize>().is_ok())
        .collect();
    assert_eq!(table.len(), rows.len(), "rows in the document's table");
    for (index, (row, cells)) in rows.iter().zip(&table).enumerate() {
        let expected = [
            (index + 1).to_string(),
            short(&row.codename),
            row.status.clone(),
            rendered_tests(&row.tests),
            row.note.clone(),
        ];
        assert_eq!(
            cells.as_slice(),
            expected.as_slice(),
            "document table row {} against TSV line {}",
            index + 1,
            row.line
        );
    }
}
