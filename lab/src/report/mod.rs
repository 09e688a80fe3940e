//! `strait report`: the dashboards' main panels without Grafana. Every panel of the dashboards in
//! `deploy/grafana/` is asked of Prometheus over a time range (`query_range`, the dashboard
//! variables set to "All"); time series become PNG line charts, stat panels values, and a
//! `README.md` beside them summarises it all in Markdown (each chart with its series' last and
//! highest values).

pub mod chart;
pub mod prometheus;

use std::{
    fmt::Write as _,
    fs,
    path::{Path, PathBuf},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use serde_json::Value;

pub use prometheus::{Prometheus, Series};

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{0}")]
    Usage(String),
    #[error("Prometheus: {0}")]
    Prometheus(String),
    #[error("chart: {0}")]
    Chart(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ReportError {
    let what = what.into();
    move |source| ReportError::Io { what, source }
}

/// What to report on.
#[derive(Clone, Debug)]
pub struct ReportOptions {
    pub prometheus: Prometheus,
    /// The dashboards' directory (`deploy/grafana`).
    pub dashboards: PathBuf,
    /// How far back from now.
    pub since: Duration,
    /// Seconds between points; `None`: the range over 120.
    pub step: Option<f64>,
    /// Where the PNGs and README.md go.
    pub out: PathBuf,
}

/// What was written.
#[derive(Clone, Debug, Default)]
pub struct Written {
    pub charts: usize,
    pub stats: usize,
    /// Panels that had no data over the range (named in the summary too).
    pub empty: Vec<String>,
}

/// The panels of one dashboard JSON.
struct PanelSpec {
    title: String,
    kind: String,
    unit: String,
    description: String,
    targets: Vec<(String, String)>,
}

fn panels(dashboard: &Value) -> Vec<PanelSpec> {
    dashboard["panels"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["type"] != "row")
        .map(|p| PanelSpec {
            title: p["title"].as_str().unwrap_or("?").to_owned(),
            kind: p["type"].as_str().unwrap_or("?").to_owned(),
            unit: p["fieldConfig"]["defaults"]["unit"]
                .as_str()
                .unwrap_or("short")
                .to_owned(),
            description: p["description"].as_str().unwrap_or("").to_owned(),
            targets: p["targets"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| {
                    Some((
                        t["expr"].as_str()?.to_owned(),
                        t["legendFormat"].as_str().unwrap_or("").to_owned(),
                    ))
                })
                .collect(),
        })
        .collect()
}

/// A legend format (`{{node}} open`) filled with a series' labels.
fn legend(format: &str, labels: &serde_json::Map<String, Value>) -> String {
    let mut text = format.to_owned();
    for (name, value) in labels {
        text = text.replace(
            &format!("{{{{{name}}}}}"),
            value.as_str().unwrap_or_default(),
        );
    }
    if text.is_empty() {
        Value::Object(labels.clone()).to_string()
    } else {
        text
    }
}

/// A file name from a title.
fn slug(title: &str) -> String {
    let mut out = String::new();
    for c in title.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_owned()
}

/// The dashboards' variables and Grafana's interval variables for a range of `range` seconds at
/// `step`.
fn with_variables(expr: &str, range: f64, step: f64) -> String {
    let window = (4.0 * step).max(60.0).round();
    expr.replace("$__rate_interval", &format!("{window}s"))
        .replace("$__range", &format!("{}s", range.round()))
        .replace("$node", ".*")
        .replace("$namespace", ".*")
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Makes the report.
pub fn run(options: &ReportOptions) -> Result<Written, ReportError> {
    let end = now().floor();
    let range = options.since.as_secs_f64().max(1.0);
    let start = end - range;
    let step = options.step.unwrap_or((range / 120.0).max(1.0)).max(0.1);
    let mut files: Vec<PathBuf> = fs::read_dir(&options.dashboards)
        .map_err(io(format!("reading {}", options.dashboards.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("json"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(ReportError::Usage(format!(
            "no dashboard JSON in {}",
            options.dashboards.display()
        )));
    }
    fs::create_dir_all(&options.out).map_err(io(format!("creating {}", options.out.display())))?;
    let mut written = Written::default();
    let mut summary = format!(
        "# strait report\n\nFrom {} to {} UTC ({} s), a point every {step} s, from the dashboards in `{}`.\n",
        chart_clock(start),
        chart_clock(end),
        range.round(),
        options.dashboards.display()
    );
    for file in files {
        let text = fs::read_to_string(&file).map_err(io(format!("reading {}", file.display())))?;
        let dashboard: Value = serde_json::from_str(&text)
            .map_err(|e| ReportError::Usage(format!("{}: {e}", file.display())))?;
        let uid = dashboard["uid"].as_str().unwrap_or("dashboard").to_owned();
        let _ = write!(
            summary,
            "\n## {}\n\n{}\n\n",
            dashboard["title"].as_str().unwrap_or(&uid),
            dashboard["description"].as_str().unwrap_or("")
        );
        let mut stats = String::new();
        let mut charts = String::new();
        for panel in panels(&dashboard) {
            let mut lines = Vec::new();
            for (expr, format) in &panel.targets {
                let expr = with_variables(expr, range, step);
                for series in options.prometheus.query_range(&expr, start, end, step)? {
                    if !series.points.is_empty() {
                        lines.push(chart::Line {
                            legend: legend(format, &series.labels),
                            points: series.points,
                        });
                    }
                }
            }
            if lines.is_empty() {
                written.empty.push(format!("{uid} / {}", panel.title));
                let _ = writeln!(charts, "- **{}**: no data in this range\n", panel.title);
                continue;
            }
            if panel.kind == "stat" {
                let values: Vec<String> = lines
                    .iter()
                    .filter_map(|l| l.points.last())
                    .map(|&(_, v)| chart::format_value(v, &panel.unit))
                    .collect();
                let _ = writeln!(stats, "| {} | {} |", panel.title, values.join(", "));
                written.stats += 1;
                continue;
            }
            let name = format!("{uid}-{}.png", slug(&panel.title));
            chart::draw(&options.out.join(&name), &panel.title, &panel.unit, &lines)?;
            written.charts += 1;
            let _ = writeln!(
                charts,
                "### {}\n\n{}\n\n![{}]({name})\n",
                panel.title, panel.description, panel.title
            );
            charts.push_str("| series | last | highest |\n|---|---:|---:|\n");
            for line in lines.iter().take(12) {
                let last = line.points.last().map_or(0.0, |p| p.1);
                let high = line.points.iter().map(|p| p.1).fold(f64::MIN, f64::max);
                let _ = writeln!(
                    charts,
                    "| {} | {} | {} |",
                    line.legend,
                    chart::format_value(last, &panel.unit),
                    chart::format_value(high, &panel.unit)
                );
            }
            charts.push('\n');
        }
        if !stats.is_empty() {
            summary.push_str("| at the end | value |\n|---|---:|\n");
            summary.push_str(&stats);
            summary.push('\n');
        }
        summary.push_str(&charts);
    }
    let readme = options.out.join("README.md");
    fs::write(&readme, summary).map_err(io(format!("writing {}", readme.display())))?;
    Ok(written)
}

fn chart_clock(t: f64) -> String {
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let secs = t.max(0.0) as u64;
    let days = secs / 86_400;
    let (y, m, d) = civil_from_days(i64::try_from(days).unwrap_or(0));
    let rest = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

/// Days since 1970-01-01 as a (year, month, day) of the proleptic Gregorian calendar.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Checks that `path` is a dashboards directory.
pub fn dashboards_dir(path: &Path) -> Result<PathBuf, ReportError> {
    if path.is_dir() {
        Ok(path.to_owned())
    } else {
        Err(ReportError::Usage(format!(
            "{} is not a directory of dashboard JSON (give --dashboards deploy/grafana)",
            path.display()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legends_slugs_variables_and_dates() {
        let labels = serde_json::json!({"node": "n1", "reason": "x"});
        assert_eq!(
            legend("{{node}} open", labels.as_object().unwrap()),
            "n1 open"
        );
        assert_eq!(
            slug("Packets per second by node"),
            "packets-per-second-by-node"
        );
        assert_eq!(
            with_variables(
                "rate(a{node=~\"$node\"}[$__rate_interval]) $__range",
                600.0,
                5.0
            ),
            "rate(a{node=~\".*\"}[60s]) 600s"
        );
        assert_eq!(chart_clock(1_764_700_000.0), "2025-12-02 18:26:40");
    }
}
