//! Publishing a run: the JSON (with the ratios derived again), the charts and optionally the Markdown
//! report are written first, then the tables go to stdout, so a reader that closes stdout early
//! (`| head`) loses nothing but the rest of the tables. Rewriting the Markdown report keeps the
//! cross-node and policy sections an earlier `netbench cross-node|policy --markdown` put in the same file.

use std::{
    fs,
    path::{Path, PathBuf},
};

use super::{
    charts, crossnode, dns, headlines, policy, report, results::RunReport, run::progress, sections,
};
use crate::stdout::{self, OutputError};

/// Why publishing failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    #[error("{what} {}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Charts(#[from] charts::ChartError),
    #[error("printing the tables")]
    Output(#[from] OutputError),
}

/// Writes `<out>/netbench.json`, the charts in `out` and (with `markdown`) the Markdown report, then
/// prints the tables.
pub fn publish(
    report: &mut RunReport,
    out: &Path,
    markdown: Option<&Path>,
) -> Result<(), PublishError> {
    let io = |what, path: &Path| {
        let path = path.to_path_buf();
        move |source| PublishError::Io { what, path, source }
    };
    fs::create_dir_all(out).map_err(io("creating", out))?;
    report.ratios = report::ratio_records(report);
    let json = out.join("netbench.json");
    report::write_json(report, &json).map_err(io("writing", &json))?;
    let charts = charts::write_charts(report, out)?;
    progress(format_args!(
        "wrote {} and {} chart(s) in {}",
        json.display(),
        charts.len(),
        out.display()
    ));
    if let Some(markdown) = markdown {
        let base = markdown.parent().unwrap_or(Path::new("."));
        let links: Vec<(String, String)> = charts
            .iter()
            .map(|(title, path)| (title.clone(), relative(path, base)))
            .collect();
        // The cross-node, policy and DNS sections (`netbench cross-node|policy|dns --markdown`) and
        // kubescale's stay, after the new figures.
        let old = fs::read_to_string(markdown).ok();
        let cross_node = old
            .as_deref()
            .and_then(|old| crossnode::render::section_of(old).map(str::to_owned));
        let policy = old
            .as_deref()
            .and_then(|old| policy::render::section_of(old).map(str::to_owned));
        let dns = old
            .as_deref()
            .and_then(|old| dns::render::MARKERS.section_of(old).map(str::to_owned));
        let kubescale = old
            .as_deref()
            .and_then(|old| sections::KUBESCALE.section_of(old).map(str::to_owned));
        let mut document = headlines::results_document(report, &links);
        if let Some(section) = cross_node {
            document = crossnode::render::splice(Some(&document), &section);
        }
        if let Some(section) = policy {
            document = policy::render::splice(Some(&document), &section);
        }
        if let Some(section) = dns {
            document = dns::render::MARKERS.splice(Some(&document), &section);
        }
        if let Some(section) = kubescale {
            document = sections::KUBESCALE.splice(Some(&document), &section);
        }
        fs::write(markdown, document).map_err(io("writing", markdown))?;

        progress(format_args!("wrote {}", markdown.display()));
    }
    stdout::print(report::terminal_table(report))?;
    Ok(())
}

/// `path` relative to `base` when it is under it, else as given.
fn relative(path: &Path, base: &Path) -> String {
    let absolute = |p: &Path| fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let (path_abs, base_abs) = (absolute(path), absolute(base));
    path_abs
        .strip_prefix(&base_abs)
        .map_or_else(|_| path.display().to_string(), |p| p.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_under_the_base_become_relative() {
        let dir = tempfile::TempDir::new().unwrap();
        let chart = dir.path().join("results/crr.png");
        fs::create_dir_all(chart.parent().unwrap()).unwrap();
        fs::write(&chart, b"png").unwrap();
        assert_eq!(relative(&chart, dir.path()), "results/crr.png");
        assert_eq!(
            relative(Path::new("/elsewhere/x.png"), dir.path()),
            "/elsewhere/x.png"
        );
    }
}
