//! A policy sweep from start to end: checks and defaults, one lab per stack and policy count with its
//! policies in force, the check that every client still reaches its server, the interleaved rounds,
//! the enforcement timing in each stack's lab with the most policies, and writing the results
//! ([`publish`]).

use std::{fs, path::Path, time::Instant};

use strait_lab::state::LabXdp;

use super::{
    enforce, manifest,
    measure::{self, CountLab},
    render,
    summary::{PolicyReport, PolicyStack},
};
use crate::netbench::{
    crossnode::{CrossError, rounds::error_chain, run as cross_run, run::load_average, signals},
    host,
    results::Test,
    run::progress,
};

/// Rounds and seconds per test of a full run.
pub const FULL_ROUNDS: usize = 5;
pub const FULL_SECONDS: f64 = 2.0;
/// Rounds and seconds per test of a quick run (CI: does it work; figures not to quote).
pub const QUICK_ROUNDS: usize = 2;
pub const QUICK_SECONDS: f64 = 0.2;
/// The policy counts of a run, full or quick.
pub const COUNTS: [usize; 3] = [0, 100, 1000];
/// The tests of a run.
pub const TESTS: [Test; 2] = [Test::TcpRr, Test::TcpCrr];

/// What to run; `None` takes the full or quick default.
#[derive(Clone, Debug, Default)]
pub struct Options {
    pub quick: bool,
    pub rounds: Option<usize>,
    pub seconds: Option<f64>,
    pub counts: Option<Vec<usize>>,
    /// Time the enforcement of a policy change too.
    pub enforce: bool,
    /// The stacks to measure (empty: both).
    pub stacks: Vec<PolicyStack>,
    /// The strait agents' `--xdp-mode`.
    pub xdp: LabXdp,
    /// The command line, for the report.
    pub command: String,
}

/// A run's settings after defaults, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub rounds: usize,
    pub seconds: f64,
    pub counts: Vec<usize>,
}

/// Checks the options and fills in the defaults.
pub fn plan(options: &Options) -> Result<Plan, CrossError> {
    let (rounds, seconds) = cross_run::plan_rounds(
        &cross_run::Options {
            quick: options.quick,
            rounds: options.rounds,
            seconds: options.seconds,
            ..cross_run::Options::default()
        },
        (FULL_ROUNDS, FULL_SECONDS),
        (QUICK_ROUNDS, QUICK_SECONDS),
    )?;
    let counts = options.counts.clone().unwrap_or_else(|| COUNTS.to_vec());
    if counts.is_empty() || counts.len() > 6 {
        return Err(CrossError::Invalid(
            "--counts takes one to six policy counts".into(),
        ));
    }
    let mut distinct = counts.clone();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() != counts.len() {
        return Err(CrossError::Invalid("--counts names a count twice".into()));
    }
    if let Some(n) = counts.iter().find(|&&n| n > manifest::MAX_POLICIES) {
        return Err(CrossError::Invalid(format!(
            "--counts: {n} is more than {} policies",
            manifest::MAX_POLICIES
        )));
    }
    Ok(Plan {
        rounds,
        seconds,
        counts,
    })
}

/// Runs everything and returns the report (not yet written anywhere). A failed enforcement
/// measurement is in [`PolicyReport::enforce_error`], not an error: publish the figures, then fail.
/// After a stop signal it does not return: the signal watcher removes the labs and ends the process.
pub fn run(options: &Options) -> Result<PolicyReport, CrossError> {
    let result = run_all(options);
    if signals::stopping() {
        signals::wait_for_stop();
    }
    result
}

fn run_all(options: &Options) -> Result<PolicyReport, CrossError> {
    let plan = plan(options)?;
    cross_run::preflight()?;
    signals::install()?;
    let started = Instant::now();
    let mut report = PolicyReport {
        machine: host::machine(),
        command: options.command.clone(),
        started_at: host::utc_now(),
        quick: options.quick,
        rounds: plan.rounds,
        test_seconds: plan.seconds,
        xdp_mode: options.xdp.flag().to_owned(),
        counts: plan.counts.clone(),
        load_before: load_average(),
        ..PolicyReport::default()
    };
    progress(format_args!(
        "policy: {} round(s) of {} s per test with {:?} policies; load average {}",
        plan.rounds, plan.seconds, plan.counts, report.load_before
    ));
    let stacks = stacks(options, &mut report);
    if stacks.is_empty() {
        return Err(CrossError::Invalid(
            report
                .kube_router_note
                .clone()
                .unwrap_or_else(|| "no stack to measure".to_owned()),
        ));
    }
    let mut labs: Vec<CountLab> = Vec::with_capacity(plan.counts.len() * stacks.len());
    for (index, &count) in plan.counts.iter().enumerate() {
        if stacks.contains(&PolicyStack::Strait) {
            labs.push(measure::build(count, index, options.xdp)?);
        }
        if stacks.contains(&PolicyStack::KubeRouter) {
            labs.push(measure::build_kube_router(count, index)?);
        }
    }
    report.setups = labs.iter().map(|l| l.setup.clone()).collect();
    measure::check(&labs)?;
    report.settled_s = measure::settle(&labs).as_secs_f64();
    report.cells = measure::rounds(&mut labs, &TESTS, plan.rounds, plan.seconds)?;
    report.load_after = load_average();
    // The enforcement timing changes policies: after the rounds, in the lab with the most.
    for stack in stacks.iter().filter(|_| options.enforce) {
        let Some(lab) = labs
            .iter_mut()
            .filter(|l| l.stack == *stack && l.policies > 0)
            .max_by_key(|l| l.policies)
        else {
            continue;
        };
        match enforce::measure(lab, plan.rounds) {
            Ok(enforce) => report.enforce.push(enforce),
            Err(error) => {
                let text = format!("{}: {}", stack.name(), error_chain(&error));
                progress(format_args!(
                    "policy: the enforcement measurement failed: {text}"
                ));
                report.enforce_error = Some(text);
            }
        }
    }
    drop(labs);
    report.duration_s = started.elapsed().as_secs_f64().round();
    progress(format_args!("policy: done in {:.0} s", report.duration_s));
    Ok(report)
}

/// The stacks to measure: those asked for (both by default), kube-router only when `ipset` is
/// installed (else the report says why it is missing). Also notes the kernel's initial ipset
/// table size.
fn stacks(options: &Options, report: &mut PolicyReport) -> Vec<PolicyStack> {
    let mut stacks = if options.stacks.is_empty() {
        PolicyStack::ALL.to_vec()
    } else {
        options.stacks.clone()
    };
    if stacks.contains(&PolicyStack::KubeRouter) {
        if which::which("ipset").is_err() || which::which("iptables-save").is_err() {
            let note = "kube-router baseline: not measured: `ipset` or `iptables-save` is not installed \
                        (Debian: `apt-get install ipset iptables`)";
            progress(format_args!("policy: {note}"));
            report.kube_router_note = Some(note.to_owned());
            stacks.retain(|s| *s != PolicyStack::KubeRouter);
        } else {
            report.ip_set_max = ip_set_max();
        }
    }
    stacks
}

/// `CONFIG_IP_SET_MAX` of the running kernel (the initial size of each namespace's set table) and
/// `max_sets` of the `ip_set` module, as text, if they can be read.
fn ip_set_max() -> Option<String> {
    let config = std::process::Command::new("zcat")
        .arg("/proc/config.gz")
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&config.stdout);
    let line = text.lines().find(|l| l.starts_with("CONFIG_IP_SET_MAX="))?;
    let module = fs::read_to_string("/sys/module/ip_set/parameters/max_sets").unwrap_or_default();
    Some(format!("{line}, max_sets={}", module.trim()))
}

/// Reads a saved run.
pub fn load(path: &Path) -> Result<PolicyReport, CrossError> {
    cross_run::load_json(path)
}

/// Writes the JSON (with `json`) and the section into `markdown` (kept beside whatever else the file
/// holds), then prints the tables.
pub fn publish(
    report: &PolicyReport,
    json: Option<&Path>,
    markdown: Option<&Path>,
) -> Result<(), CrossError> {
    let section = cross_run::Section {
        name: "policy",
        text: render::section(report),
        splice: render::splice,
    };
    cross_run::publish_section(report, json, markdown, section, &render::terminal(report))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_refusals() {
        let full = plan(&Options::default()).unwrap();
        assert_eq!(
            full,
            Plan {
                rounds: FULL_ROUNDS,
                seconds: FULL_SECONDS,
                counts: COUNTS.to_vec()
            }
        );
        let quick = plan(&Options {
            quick: true,
            ..Options::default()
        })
        .unwrap();
        assert_eq!((quick.rounds, quick.seconds), (QUICK_ROUNDS, QUICK_SECONDS));
        for counts in [vec![], vec![0, 0], vec![0, manifest::MAX_POLICIES + 1]] {
            assert!(
                plan(&Options {
                    counts: Some(counts.clone()),
                    ..Options::default()
                })
                .is_err(),
                "{counts:?}"
            );
        }
        assert!(
            plan(&Options {
                rounds: Some(0),
                ..Options::default()
            })
            .is_err()
        );
    }
}
