//! A cross-node run from start to end: checks and defaults, the labs, the check of every stack, the
//! interleaved rounds, the joins, and writing the results ([`publish`]).

use std::{fs, path::Path, time::Instant};

use strait_lab::state::{LabOverlay, LabXdp};

use super::{CrossError, Stack, join, labs, render, rounds, signals, summary::CrossReport};
use crate::{
    netbench::{
        host,
        results::Test,
        run::{self as netbench_run, RunError, progress},
    },
    stdout,
};

/// Rounds and seconds per test of a full run.
pub const FULL_ROUNDS: usize = 5;
pub const FULL_SECONDS: f64 = 2.0;
/// Rounds and seconds per test of a quick run (CI: does every stack work; figures not to quote).
pub const QUICK_ROUNDS: usize = 2;
pub const QUICK_SECONDS: f64 = 0.2;

/// What to run; `None` takes the full or quick default.
#[derive(Clone, Debug, Default)]
pub struct Options {
    pub quick: bool,
    pub rounds: Option<usize>,
    pub seconds: Option<f64>,
    /// Measure node joins too.
    pub join: bool,
    /// The strait agents' `--xdp-mode` (the lab's uplinks are veths: generic XDP, or none).
    pub xdp: LabXdp,
    /// The command line, for the report.
    pub command: String,
}

/// Rounds and seconds after defaults, checked.
pub fn plan(options: &Options) -> Result<(usize, f64), CrossError> {
    plan_rounds(
        options,
        (FULL_ROUNDS, FULL_SECONDS),
        (QUICK_ROUNDS, QUICK_SECONDS),
    )
}

/// Rounds and seconds after a subcommand's own defaults (`full`, or `quick` with --quick), checked.
pub fn plan_rounds(
    options: &Options,
    full: (usize, f64),
    quick: (usize, f64),
) -> Result<(usize, f64), CrossError> {
    let (default_rounds, default_seconds) = if options.quick { quick } else { full };
    let rounds = options.rounds.unwrap_or(default_rounds);
    let seconds = options.seconds.unwrap_or(default_seconds);
    if !(1..=20).contains(&rounds) {
        return Err(CrossError::Invalid(
            "--rounds must be between 1 and 20".into(),
        ));
    }
    if !(0.2..=120.0).contains(&seconds) {
        return Err(CrossError::Invalid(
            "--seconds must be between 0.2 and 120".into(),
        ));
    }
    Ok((rounds, seconds))
}

pub fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Checks what the run needs before it builds anything: root, the lab's binaries, `ip` and
/// `iptables-restore`.
pub fn preflight() -> Result<(), CrossError> {
    let setup = |source| CrossError::Run {
        what: "preparing the run".to_owned(),
        source: Box::new(source),
    };
    if !nix::unistd::geteuid().is_root() {
        return Err(setup(RunError::NotRoot));
    }
    netbench_run::export_bin_dir().map_err(setup)?;
    for (command, package) in [("iptables-restore", "iptables"), ("ip", "iproute2")] {
        if which::which(command).is_err() {
            return Err(setup(RunError::MissingTool { command, package }));
        }
    }
    Ok(())
}

/// Builds the four labs, checks every stack and scenario, measures the rounds; the labs are removed
/// on return.
fn measure_stacks(
    rounds: usize,
    seconds: f64,
    xdp: LabXdp,
) -> Result<Vec<super::summary::CrossCell>, CrossError> {
    let mut built = Vec::new();
    let mut endpoints = Vec::new();
    progress("cross-node: building the labs (strait VXLAN, strait direct, Flannel, host-gw)");
    for (lab, mut more) in [
        labs::strait(Stack::StraitVxlan, "cnv", LabOverlay::Vxlan, xdp)?,
        labs::strait(Stack::StraitDirect, "cnd", LabOverlay::Direct, xdp)?,
        labs::flannel(Stack::Flannel, "cnf")?,
        labs::flannel(Stack::HostGw, "cnh")?,
    ] {
        built.push(lab);
        endpoints.append(&mut more);
    }
    rounds::check(&endpoints)?;
    rounds::measure(&endpoints, &mut built, &Test::ALL, rounds, seconds)
}

/// Runs everything and returns the report (not yet written anywhere). A failed join measurement is
/// in [`CrossReport::join_error`], not an error: publish the figures, then fail. After a stop signal
/// it does not return: the signal watcher removes the labs and ends the process.
pub fn run(options: &Options) -> Result<CrossReport, CrossError> {
    let result = run_all(options);
    if signals::stopping() {
        signals::wait_for_stop();
    }
    result
}

fn run_all(options: &Options) -> Result<CrossReport, CrossError> {
    let (rounds, seconds) = plan(options)?;
    preflight()?;
    signals::install()?;
    let started = Instant::now();
    let mut report = CrossReport {
        machine: host::machine(),
        command: options.command.clone(),
        started_at: host::utc_now(),
        quick: options.quick,
        rounds,
        test_seconds: seconds,
        load_before: load_average(),
        xdp_mode: options.xdp.flag().to_owned(),
        ..CrossReport::default()
    };
    progress(format_args!(
        "cross-node: {rounds} round(s) of {seconds} s per test; load average {}",
        report.load_before
    ));
    report.cells = measure_stacks(rounds, seconds, options.xdp)?;
    report.load_after = load_average();
    if options.join {
        // A failed join keeps the figures: the caller publishes them, then reports the failure.
        match join::measure(rounds, options.xdp) {
            Ok(join) => report.join = Some(join),
            Err(error) => {
                let text = rounds::error_chain(&error);
                progress(format_args!(
                    "cross-node: the join measurement failed: {text}"
                ));
                report.join_error = Some(text);
            }
        }
    }
    report.duration_s = started.elapsed().as_secs_f64().round();
    progress(format_args!(
        "cross-node: done in {:.0} s",
        report.duration_s
    ));
    Ok(report)
}

/// Reads a saved run.
pub fn load(path: &Path) -> Result<CrossReport, CrossError> {
    load_json(path)
}

/// Reads a saved run of any of the benchmarks that share this one's error type (JSON).
pub fn load_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, CrossError> {
    let text = fs::read_to_string(path).map_err(|source| CrossError::Io {
        what: "reading",
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| CrossError::Json {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes the JSON (with `json`) and the section into `markdown` (kept beside whatever else the file
/// holds), then prints the tables.
pub fn publish(
    report: &CrossReport,
    json: Option<&Path>,
    markdown: Option<&Path>,
) -> Result<(), CrossError> {
    let section = Section {
        name: "cross-node",
        text: render::section(report),
        splice: render::splice,
    };
    publish_section(report, json, markdown, section, &render::terminal(report))
}

/// Writes `report` as JSON (with `json`) and `section` into `markdown` (kept beside whatever else
/// the file holds), then prints `terminal`: the last step of every netbench subcommand.
pub fn publish_section<T: serde::Serialize>(
    report: &T,
    json: Option<&Path>,
    markdown: Option<&Path>,
    section: Section,
    terminal: &str,
) -> Result<(), CrossError> {
    write_report(report, json, markdown.map(|path| (path, section)))?;
    stdout::print(terminal)?;
    Ok(())
}

/// A benchmark's Markdown section: its name (for the log), its text, and how it goes into a file.
pub struct Section {
    pub name: &'static str,
    pub text: String,
    pub splice: fn(Option<&str>, &str) -> String,
}

/// Writes `report` as JSON to `json` (creating its directory) and its section into the Markdown file,
/// kept beside whatever else the file holds.
pub fn write_report<T: serde::Serialize>(
    report: &T,
    json: Option<&Path>,
    markdown: Option<(&Path, Section)>,
) -> Result<(), CrossError> {
    let io = |what, path: &Path| {
        let path = path.to_path_buf();
        move |source| CrossError::Io { what, path, source }
    };
    if let Some(path) = json {
        let text = serde_json::to_string_pretty(report).map_err(|source| CrossError::Json {
            path: path.to_path_buf(),
            source,
        })?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(io("creating", dir))?;
        }
        fs::write(path, text + "\n").map_err(io("writing", path))?;
        progress(format_args!("wrote {}", path.display()));
    }
    if let Some((path, section)) = markdown {
        let existing = fs::read_to_string(path).ok();
        let text = (section.splice)(existing.as_deref(), &section.text);
        fs::write(path, text).map_err(io("writing", path))?;
        progress(format_args!(
            "wrote the {} section of {}",
            section.name,
            path.display()
        ));
    }
    Ok(())
}
