//! The truth tables of a reachability run: one cell per (from, to, port, protocol), rendered as the
//! upstream NetworkPolicy e2e suite prints them, listed as JSON, and compared cell by cell with an
//! expected table (computed, in tests, by a specification evaluator).

use std::{
    collections::BTreeMap,
    fmt::{self, Write as _},
    time::Duration,
};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::manifests::Protocol;

/// One cell: from, to, port, protocol.
pub(crate) type Cell = (String, String, u16, Protocol);

/// One probe's result, as `-o json` lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeResult {
    pub from: String,
    pub to: String,
    pub port: u16,
    pub protocol: Protocol,
    pub allowed: bool,
}

/// A cell where a table differs from the expected one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mismatch {
    pub from: String,
    pub to: String,
    pub port: u16,
    pub protocol: Protocol,
    /// `None`: the cell is missing from that table.
    pub expected: Option<bool>,
    pub observed: Option<bool>,
    /// What the probe client said, for a probed cell that came out blocked.
    pub reason: Option<String>,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let word = |v: Option<bool>| match v {
            Some(true) => "allowed",
            Some(false) => "blocked",
            None => "missing",
        };
        write!(
            f,
            "{} -> {} {}/{}: expected {}, got {}",
            self.from,
            self.to,
            self.port,
            self.protocol,
            word(self.expected),
            word(self.observed)
        )?;
        if let Some(reason) = &self.reason {
            write!(f, " ({reason})")?;
        }
        Ok(())
    }
}

/// Truth tables: for each (port, protocol), whether each `from` reaches each `to`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reachability {
    /// Row names (`ns/pod`), in order.
    pub from: Vec<String>,
    /// Column names (`ns/pod`), in order.
    pub to: Vec<String>,
    /// One table per (port, protocol), in order.
    pub cases: Vec<(u16, Protocol)>,
    pub(crate) cells: BTreeMap<Cell, bool>,
    /// Why each probed blocked cell was blocked (what the probe client said).
    pub reasons: BTreeMap<Cell, String>,
    /// How long probing took (zero for a computed table).
    pub elapsed: Duration,
}

impl Reachability {
    /// A table with every cell from `allowed(from, to, port, protocol)` (an expected table).
    pub fn from_fn(
        from: &[String],
        to: &[String],
        cases: &[(u16, Protocol)],
        mut allowed: impl FnMut(&str, &str, u16, Protocol) -> bool,
    ) -> Self {
        let mut table = Self {
            from: from.to_vec(),
            to: to.to_vec(),
            cases: cases.to_vec(),
            ..Self::default()
        };
        for &(port, protocol) in cases {
            for f in from {
                for t in to {
                    table.set(f, t, port, protocol, allowed(f, t, port, protocol));
                }
            }
        }
        table
    }

    /// Sets one cell.
    pub fn set(&mut self, from: &str, to: &str, port: u16, protocol: Protocol, allowed: bool) {
        self.cells
            .insert((from.to_owned(), to.to_owned(), port, protocol), allowed);
    }

    /// One cell; `None` when it was not probed (or computed).
    pub fn get(&self, from: &str, to: &str, port: u16, protocol: Protocol) -> Option<bool> {
        self.cells
            .get(&(from.to_owned(), to.to_owned(), port, protocol))
            .copied()
    }

    /// Every cell in table order (cases, then rows, then columns).
    pub fn probes(&self) -> Vec<ProbeResult> {
        let mut out = Vec::new();
        for &(port, protocol) in &self.cases {
            for f in &self.from {
                for t in &self.to {
                    if let Some(allowed) = self.get(f, t, port, protocol) {
                        out.push(ProbeResult {
                            from: f.clone(),
                            to: t.clone(),
                            port,
                            protocol,
                            allowed,
                        });
                    }
                }
            }
        }
        out
    }

    /// `-o json`: the list of [`ProbeResult`]s.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self.probes()).unwrap_or_default()
    }

    /// (allowed, cells) over every table.
    pub fn counts(&self) -> (usize, usize) {
        let allowed = self.cells.values().filter(|a| **a).count();
        (allowed, self.cells.len())
    }

    /// The tables as the upstream suite prints them: per (port, protocol) a title, then a header row
    /// of destinations and one row per source, `.` allowed, `X` blocked, `?` not probed.
    pub fn render(&self) -> String {
        self.render_with(
            |f, t, port, protocol| match self.get(f, t, port, protocol) {
                Some(true) => '.',
                Some(false) => 'X',
                None => '?',
            },
        )
    }

    /// The comparison with `expected` as tables: `.` where they agree, `X` where they differ; then
    /// each wrong cell on its own line.
    pub fn render_comparison(&self, expected: &Reachability) -> String {
        let mut out = self.render_with(|f, t, port, protocol| {
            if self.get(f, t, port, protocol) == expected.get(f, t, port, protocol) {
                '.'
            } else {
                'X'
            }
        });
        for mismatch in self.compare(expected) {
            let _ = writeln!(out, "{mismatch}");
        }
        out
    }

    fn render_with(&self, mark: impl Fn(&str, &str, u16, Protocol) -> char) -> String {
        let width = self
            .from
            .iter()
            .chain(&self.to)
            .map(String::len)
            .max()
            .unwrap_or(1)
            .max(1);
        let mut out = String::new();
        for &(port, protocol) in &self.cases {
            let (mut allowed, mut all) = (0, 0);
            let mut rows = String::new();
            let _ = write!(rows, "{:<width$}", "-");
            for t in &self.to {
                let _ = write!(rows, " {t:<width$}");
            }
            rows = rows.trim_end().to_owned();
            rows.push('\n');
            for f in &self.from {
                let mut row = format!("{f:<width$}");
                for t in &self.to {
                    let m = mark(f, t, port, protocol);
                    all += 1;
                    if self.get(f, t, port, protocol) == Some(true) {
                        allowed += 1;
                    }
                    let _ = write!(row, " {m:<width$}");
                }
                rows.push_str(row.trim_end());
                rows.push('\n');
            }
            let _ = writeln!(out, "{port}/{protocol}: {allowed} of {all} allowed");
            out.push_str(&rows);
            out.push('\n');
        }
        out
    }

    /// Every cell where this table and `expected` differ (including cells only one of them has), in
    /// `expected`'s order, then this table's extra cells.
    pub fn compare(&self, expected: &Reachability) -> Vec<Mismatch> {
        let mut keys: Vec<&Cell> = Vec::new();
        for &(port, protocol) in &expected.cases {
            for f in &expected.from {
                for t in &expected.to {
                    if let Some((key, _)) =
                        expected
                            .cells
                            .get_key_value(&(f.clone(), t.clone(), port, protocol))
                    {
                        keys.push(key);
                    }
                }
            }
        }
        keys.extend(
            self.cells
                .keys()
                .filter(|k| !expected.cells.contains_key(*k)),
        );
        keys.into_iter()
            .filter_map(|key| {
                let (observed, wanted) = (self.cells.get(key), expected.cells.get(key));
                (observed != wanted).then(|| Mismatch {
                    from: key.0.clone(),
                    to: key.1.clone(),
                    port: key.2,
                    protocol: key.3,
                    expected: wanted.copied(),
                    observed: observed.copied(),
                    reason: self.reasons.get(key).cloned(),
                })
            })
            .collect()
    }
}
