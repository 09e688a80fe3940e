//! `cargo xtask dashboards`: strait's Grafana dashboards, defined once in [`catalog`] and written as
//! Grafana's dashboard JSON model (classic, schemaVersion 41) into `deploy/grafana/`. `--check` only
//! compares (CI runs it, so the committed JSON never drifts from its definition). Layout is computed:
//! panels flow left to right in rows of 24 grid columns.

mod catalog;
pub mod schema;

use std::{fs, path::Path};

use anyhow::{Context as _, Result, bail};
use serde_json::{Value, json};

pub use catalog::all;

/// Where the dashboards are written, from the workspace root.
pub const DIR: &str = "deploy/grafana";

/// The dashboard JSON model version written.
const SCHEMA_VERSION: u32 = 41;

/// How a panel draws its queries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Viz {
    Timeseries,
    Stat,
}

/// One query of a panel.
#[derive(Clone, Debug)]
pub struct Query {
    pub expr: &'static str,
    pub legend: &'static str,
}

/// One panel.
#[derive(Clone, Debug)]
pub struct Panel {
    pub title: &'static str,
    pub description: &'static str,
    pub viz: Viz,
    /// Grafana's unit id (`pps`, `Bps`, `s`, `percentunit`, `short`, `bytes`).
    pub unit: &'static str,
    /// Grid columns, of 24.
    pub width: u32,
    pub queries: Vec<Query>,
}

/// A row of panels under a collapsible heading.
#[derive(Clone, Debug)]
pub struct Row {
    pub title: &'static str,
    pub panels: Vec<Panel>,
}

/// One dashboard.
#[derive(Clone, Debug)]
pub struct Dashboard {
    pub uid: &'static str,
    pub title: &'static str,
    pub description: &'static str,
    /// Whether it offers the namespace variable (its queries use `$namespace`).
    pub namespace_variable: bool,
    pub rows: Vec<Row>,
}

impl Dashboard {
    /// The file it is written to.
    pub fn file_name(&self) -> String {
        format!("{}.json", self.uid)
    }

    /// The dashboard JSON model.
    pub fn to_json(&self) -> Value {
        let mut panels = Vec::new();
        let (mut id, mut y) = (1u32, 0u32);
        for row in &self.rows {
            panels.push(json!({
                "type": "row",
                "id": id,
                "title": row.title,
                "collapsed": false,
                "panels": [],
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
            }));
            id += 1;
            y += 1;
            let mut x = 0;
            let mut row_height = 0;
            for panel in &row.panels {
                let height = if panel.viz == Viz::Stat { 4 } else { 8 };
                if x + panel.width > 24 {
                    x = 0;
                    y += row_height;
                    row_height = 0;
                }
                panels.push(panel_json(panel, id, x, y, height));
                id += 1;
                x += panel.width;
                row_height = row_height.max(height);
            }
            y += row_height;
        }
        json!({
            "uid": self.uid,
            "title": self.title,
            "description": self.description,
            "tags": ["strait", "network"],
            "timezone": "browser",
            "editable": true,
            "graphTooltip": 1,
            "refresh": "30s",
            "schemaVersion": SCHEMA_VERSION,
            "version": 1,
            "time": {"from": "now-1h", "to": "now"},
            "timepicker": {},
            "fiscalYearStartMonth": 0,
            "liveNow": false,
            "weekStart": "",
            "links": [],
            "annotations": {"list": []},
            "templating": {"list": self.variables()},
            "panels": panels,
        })
    }

    fn variables(&self) -> Vec<Value> {
        let mut list = vec![
            json!({
                "type": "datasource",
                "name": "datasource",
                "label": "Data source",
                "query": "prometheus",
                "hide": 0,
                "skipUrlSync": false,
                "multi": false,
                "includeAll": false,
                "refresh": 1,
                "regex": "",
                "options": [],
                "current": {"text": "Prometheus", "value": "prometheus"},
            }),
            query_variable("node", "Node", "label_values(strait_build_info, node)"),
        ];
        if self.namespace_variable {
            list.push(query_variable(
                "namespace",
                "Namespace",
                "label_values(strait_policy_verdicts_total, namespace)",
            ));
        }
        list
    }
}

fn datasource() -> Value {
    json!({"type": "prometheus", "uid": "${datasource}"})
}

fn query_variable(name: &str, label: &str, query: &str) -> Value {
    json!({
        "type": "query",
        "name": name,
        "label": label,
        "datasource": datasource(),
        "query": {"query": query, "refId": format!("{name}-values")},
        "hide": 0,
        "skipUrlSync": false,
        "multi": true,
        "includeAll": true,
        "allValue": ".*",
        "refresh": 2,
        "regex": "",
        "sort": 1,
        "options": [],
        "current": {"text": ["All"], "value": ["$__all"]},
    })
}

fn panel_json(panel: &Panel, id: u32, x: u32, y: u32, height: u32) -> Value {
    let targets: Vec<Value> = panel
        .queries
        .iter()
        .zip('A'..)
        .map(|(query, ref_id)| {
            json!({
                "datasource": datasource(),
                "refId": ref_id.to_string(),
                "expr": query.expr,
                "legendFormat": query.legend,
                "range": true,
                "editorMode": "code",
            })
        })
        .collect();
    let (kind, options, custom) = match panel.viz {
        Viz::Timeseries => (
            "timeseries",
            json!({
                "legend": {"displayMode": "list", "placement": "bottom", "showLegend": true},
                "tooltip": {"mode": "multi", "sort": "desc"},
            }),
            json!({"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10, "showPoints": "never"}),
        ),
        Viz::Stat => (
            "stat",
            json!({
                "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": false},
                "colorMode": "value",
                "graphMode": "area",
                "justifyMode": "auto",
                "orientation": "auto",
                "textMode": "auto",
            }),
            json!({}),
        ),
    };
    json!({
        "type": kind,
        "id": id,
        "title": panel.title,
        "description": panel.description,
        "datasource": datasource(),
        "gridPos": {"h": height, "w": panel.width, "x": x, "y": y},
        "targets": targets,
        "options": options,
        "fieldConfig": {
            "defaults": {"unit": panel.unit, "custom": custom},
            "overrides": [],
        },
    })
}

/// The JSON text of `dashboard` as committed (pretty, trailing newline).
pub fn render(dashboard: &Dashboard) -> Result<String> {
    let mut text = serde_json::to_string_pretty(&dashboard.to_json())?;
    text.push('\n');
    Ok(text)
}

/// Writes every dashboard into `root/deploy/grafana`, or with `check` only compares and fails on any
/// difference.
pub fn run(root: &Path, check: bool) -> Result<()> {
    let dir = root.join(DIR);
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut stale = Vec::new();
    for dashboard in all() {
        let path = dir.join(dashboard.file_name());
        let text = render(&dashboard)?;
        let current = fs::read_to_string(&path).unwrap_or_default();
        if current == text {
            println!("{}: up to date", path.display());
        } else if check {
            stale.push(path.display().to_string());
        } else {
            fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
            println!("{}: written", path.display());
        }
    }
    if !stale.is_empty() {
        bail!(
            "dashboards differ from their definitions in xtask/src/dashboards: {}; run `cargo xtask dashboards`",
            stale.join(", ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_committed_dashboards_are_their_definitions() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        run(&root, true).unwrap();
    }

    #[test]
    fn panels_have_unique_titles_queries_and_a_place_on_the_grid() {
        for dashboard in all() {
            let json = dashboard.to_json();
            let panels = json["panels"].as_array().unwrap();
            let mut titles = std::collections::HashSet::new();
            for panel in panels {
                let title = panel["title"].as_str().unwrap();
                assert!(titles.insert(title), "{}: {title} twice", dashboard.uid);
                let grid = &panel["gridPos"];
                let right = grid["x"].as_u64().unwrap() + grid["w"].as_u64().unwrap();
                assert!(right <= 24, "{title} overflows the grid");
                if panel["type"] != "row" {
                    assert!(!panel["targets"].as_array().unwrap().is_empty(), "{title}");
                    assert!(
                        !panel["description"].as_str().unwrap().is_empty(),
                        "{title}"
                    );
                }
            }
            for query in dashboard
                .rows
                .iter()
                .flat_map(|r| &r.panels)
                .flat_map(|p| &p.queries)
            {
                assert!(
                    query.expr.contains("$node"),
                    "{}: every query follows the node variable: {}",
                    dashboard.uid,
                    query.expr
                );
                if query.expr.contains("$namespace") {
                    assert!(dashboard.namespace_variable, "{}", dashboard.uid);
                }
            }
        }
    }
}
