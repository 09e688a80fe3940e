//! `cargo xtask test`: bootstrap, then every check in order, stopping at the first failure: rustfmt,
//! host clippy, eBPF clippy, the Grafana dashboards (definitions and schema), build (binaries and test binaries), the DNS handler's fuzz target (20 s), tests, `netbench --quick`,
//! `netbench cross-node --quick`, `netbench policy --quick`, `netbench dns --quick`, `svcscale --quick`. Each step prints its name and duration; a
//! summary table of the durations closes the run, whether it passed or not. The test step runs the
//! lab suite beside the other test binaries ([`crate::parallel`]), unless arguments for `cargo test`
//! were given, which then runs as before.

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Result, bail};

use crate::{Workspace, bootstrap, cmd, parallel};

/// Options of `cargo xtask test`.
#[derive(clap::Args)]
pub struct Args {
    /// Extra arguments for the final `cargo test --workspace`, after `--`: e.g. a test name filter,
    /// or `-- -- --nocapture`.
    #[arg(last = true, value_name = "CARGO_TEST_ARGS")]
    pub cargo_test_args: Vec<String>,
}

/// One check: a command, run from the workspace root unless it sets its own directory.
struct Step {
    name: &'static str,
    about: &'static str,
    needs_root: bool,
    /// Whether the step is `cargo test`, whose `test result:` lines are added up.
    counts_tests: bool,
    command: Command,
    /// Run the test binaries with [`parallel`] instead of `command` (which stays the fallback shown).
    parallel_tests: Option<PathBuf>,
}

/// Test counts added up over every `test result:` line of `cargo test`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Tally {
    passed: u64,
    failed: u64,
    ignored: u64,
}

impl Tally {
    /// Adds a libtest summary line (`test result: ok. 8 passed; 0 failed; 1 ignored; ...`).
    fn add_line(&mut self, line: &str) {
        let Some(rest) = line.trim().strip_prefix("test result:") else {
            return;
        };
        for part in rest.split(';') {
            let mut words = part.split_whitespace().rev();
            let (Some(label), Some(count)) = (words.next(), words.next()) else {
                continue;
            };
            let Ok(count) = count.parse::<u64>() else {
                continue;
            };
            match label {
                "passed" => self.passed += count,
                "failed" => self.failed += count,
                "ignored" => self.ignored += count,
                _ => {}
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Outcome {
    Passed(Duration),
    Failed(Duration),
    NotRun,
}

/// Runs bootstrap and the steps; the error names the failed step.
pub fn run(ws: &Workspace, args: &Args) -> Result<()> {
    let mut steps = steps(ws, args);
    let mut outcomes: Vec<(&str, Outcome)> = vec![("bootstrap", Outcome::NotRun)];
    outcomes.extend(steps.iter().map(|step| (step.name, Outcome::NotRun)));
    let total = Instant::now();

    println!("==> bootstrap: install what is missing");
    let started = Instant::now();
    let result = bootstrap::run(ws);
    if let Err(err) = finish(&mut outcomes[0], started, result) {
        summary(&outcomes, total.elapsed());
        return Err(err);
    }

    let mut tally = None;
    for (index, step) in steps.iter_mut().enumerate() {
        println!("\n==> {}: {}", step.name, step.about);
        let started = Instant::now();
        let result = step.execute(&mut tally);
        if let Err(err) = finish(&mut outcomes[index + 1], started, result) {
            summary(&outcomes, total.elapsed());
            print_tally(tally);
            return Err(err);
        }
    }
    summary(&outcomes, total.elapsed());
    println!("all steps passed");
    print_tally(tally);
    Ok(())
}

/// The closing line: `tests: N passed, N failed, N skipped`.
fn print_tally(tally: Option<Tally>) {
    if let Some(t) = tally {
        println!(
            "tests: {} passed, {} failed, {} skipped",
            t.passed, t.failed, t.ignored
        );
    }
}

impl Step {
    fn execute(&mut self, tally: &mut Option<Tally>) -> Result<()> {
        if self.needs_root && !cmd::is_root()? {
            bail!(
                "the tests need root (they create network namespaces and load eBPF programs): run \
                 `cargo xtask test` as root"
            );
        }
        if !self.counts_tests {
            return cmd::run(&mut self.command);
        }
        let counted = match &self.parallel_tests {
            Some(root) => run_parallel(root, &self.command)?,
            None => run_counting(&mut self.command)?,
        };
        *tally = Some(counted);
        if counted.passed == 0 {
            bail!("cargo test ran no test");
        }
        Ok(())
    }
}

/// Builds the test binaries once and runs them with [`parallel::run`] (the lab suite beside the rest),
/// printing each one's output as it ends and adding up the `test result:` lines. `template` supplies
/// the environment.
fn run_parallel(root: &std::path::Path, template: &Command) -> Result<Tally> {
    let binaries = parallel::build(root)?;
    let envs: Vec<(String, PathBuf)> = template
        .get_envs()
        .filter_map(|(k, v)| Some((k.to_string_lossy().into_owned(), PathBuf::from(v?))))
        .collect();
    println!(
        "running {} test binaries: the lab suite (e2e) beside the others",
        binaries.len()
    );
    let mut tally = Tally::default();
    let mut failed = Vec::new();
    let ran = parallel::run(
        &binaries,
        |b| b.name.ends_with("/e2e"),
        &envs,
        |ran| {
            println!(
                "\n--- {} ({}, {})",
                ran.binary.name,
                cmd::format_duration(ran.took),
                if ran.ok { "ok" } else { "FAILED" }
            );
            print!("{}", ran.output);
            for line in ran.output.lines() {
                tally.add_line(line);
            }
            if !ran.ok {
                failed.push(ran.binary.name.clone());
            }
        },
    )?;
    println!("\ntest binaries by duration:");
    let mut by_time: Vec<_> = ran.iter().collect();
    by_time.sort_by_key(|r| std::cmp::Reverse(r.took));
    for r in by_time {
        println!("  {:>8}  {}", cmd::format_duration(r.took), r.binary.name);
    }
    if !failed.is_empty() {
        bail!("test binaries failed: {}", failed.join(", "));
    }
    Ok(tally)
}

/// Runs `cargo test`, echoing its output while adding up its `test result:` lines.
fn run_counting(command: &mut Command) -> Result<Tally> {
    println!("$ {}", cmd::display(command));
    let mut child = command.stdout(Stdio::piped()).spawn()?;
    let mut tally = Tally::default();
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines() {
            let line = line?;
            println!("{line}");
            tally.add_line(&line);
        }
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("`cargo test` failed ({status}): {} failed", tally.failed);
    }
    Ok(tally)
}

/// Records a step's outcome and prints `ok: ...` or `FAILED: ...`.
fn finish(slot: &mut (&str, Outcome), started: Instant, result: Result<()>) -> Result<()> {
    let elapsed = started.elapsed();
    let name = slot.0;
    match result {
        Ok(()) => {
            slot.1 = Outcome::Passed(elapsed);
            println!("ok: {name} ({})", cmd::format_duration(elapsed));
            Ok(())
        }
        Err(err) => {
            slot.1 = Outcome::Failed(elapsed);
            println!(
                "FAILED: {name} after {}: {err:#}",
                cmd::format_duration(elapsed)
            );
            bail!("`cargo xtask test` stopped at step `{name}`")
        }
    }
}

fn steps(ws: &Workspace, args: &Args) -> Vec<Step> {
    let cargo = |args: &[&str]| {
        let mut command = Command::new("cargo");
        command.args(args);
        command
    };

    let ebpf_clippy = ebpf_clippy(ws);

    let mut tests = cargo(&["test", "--workspace", "--exclude", "strait-ebpf"]);
    tests
        .args(&args.cargo_test_args)
        .env("STRAIT_BIN_DIR", ws.target.join("debug"))
        .env("RUST_BACKTRACE", "1");

    let mut netbench = Command::new(ws.target.join("debug").join("netbench"));
    netbench
        .args(["--quick", "--out"])
        .arg(ws.target.join("netbench-quick"))
        .env("STRAIT_BIN_DIR", ws.target.join("debug"));

    let mut svcscale = Command::new(ws.target.join("debug").join("svcscale"));
    svcscale
        .arg("--quick")
        .env("STRAIT_BIN_DIR", ws.target.join("debug"));

    let mut steps = vec![
        Step {
            name: "fmt",
            about: "check formatting",
            needs_root: false,
            counts_tests: false,
            command: cargo(&["fmt", "--all", "--", "--check"]),
            parallel_tests: None,
        },
        Step {
            name: "clippy (host)",
            about: "lint every host crate and target",
            needs_root: false,
            counts_tests: false,
            command: cargo(&[
                "clippy",
                "--workspace",
                "--exclude",
                "strait-ebpf",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ]),
            parallel_tests: None,
        },
        Step {
            name: "clippy (ebpf)",
            about: "lint strait-ebpf for bpfel-unknown-none with nightly",
            needs_root: false,
            counts_tests: false,
            command: ebpf_clippy,
            parallel_tests: None,
        },
        dashboards_step(),
        manifests_step(),
        Step {
            name: "build",
            about: "build every binary (the tests run them from target/debug)",
            needs_root: false,
            counts_tests: false,
            command: cargo(&["build", "--workspace", "--exclude", "strait-ebpf", "--bins"]),
            parallel_tests: None,
        },
        fuzz_step(ws),
        Step {
            name: "test",
            about: "run the workspace tests (needs root): the lab suite beside the other test binaries",
            needs_root: true,
            counts_tests: true,
            command: tests,
            parallel_tests: args.cargo_test_args.is_empty().then(|| ws.root.clone()),
        },
        Step {
            name: "netbench (quick)",
            about: "strait against kube-proxy and the direct path, a bounded subset (figures printed, not asserted)",
            needs_root: true,
            counts_tests: false,
            command: netbench,
            parallel_tests: None,
        },
    ];
    steps.extend(netbench_quick_steps(ws));
    steps.push(kubescale_quick_step(ws));
    steps.push(Step {
            name: "svcscale (quick)",
            about: "1,000 Services through both agent sources, changes one by one and sustained, beside kube-proxy's syncs (figures printed, not asserted)",
            needs_root: true,
            counts_tests: false,
            command: svcscale,
            parallel_tests: None,
    });
    steps
}

/// The Grafana dashboards: the committed JSON is what xtask/src/dashboards defines, and it matches
/// Grafana's dashboard schema.
fn dashboards_step() -> Step {
    let mut command = Command::new(std::env::current_exe().unwrap_or_else(|_| "xtask".into()));
    command.args(["dashboards", "--check", "--schema"]);
    Step {
        name: "dashboards",
        about: "deploy/grafana matches its definitions and Grafana's dashboard schema (@grafana/schema, tsc)",
        needs_root: false,
        counts_tests: false,
        command,
        parallel_tests: None,
    }
}

/// The kube source at scale, quick: no root, no eBPF.
fn kubescale_quick_step(ws: &Workspace) -> Step {
    let mut command = Command::new(ws.target.join("debug").join("kubescale"));
    command.arg("--quick");
    Step {
        name: "kubescale (quick)",
        about: "the kube source at 1,000 Services and 10,000 Pods against the stand-in API: every object arrives, the queue stays bounded, memory settles within bounds (figures printed, timings not asserted)",
        needs_root: false,
        counts_tests: false,
        command,
        parallel_tests: None,
    }
}

/// The install manifests against the Kubernetes API's schemas.
fn manifests_step() -> Step {
    let mut command = Command::new(std::env::current_exe().unwrap_or_else(|_| "xtask".into()));
    command.arg("manifests");
    Step {
        name: "manifests",
        about: "deploy/kubernetes against the Kubernetes 1.37 and 1.33 API schemas (kubernetes-validate --strict)",
        needs_root: false,
        counts_tests: false,
        command,
        parallel_tests: None,
    }
}

/// clippy for the eBPF crate (its own target, nightly, build-std).
fn ebpf_clippy(ws: &Workspace) -> Command {
    let mut command = Command::new("cargo");
    command
        .args([
            "+nightly",
            "clippy",
            "--target",
            "bpfel-unknown-none",
            "-Z",
            "build-std=core",
            "--",
            "-D",
            "warnings",
        ])
        .current_dir(ws.root.join("ebpf").join("programs"));
    command
}

/// The DNS server's handler under libFuzzer for 20 s (`dns/fuzz`, from an empty corpus on a fresh
/// checkout): fails on a crash, a panic or a leak.
fn fuzz_step(ws: &Workspace) -> Step {
    let mut command = Command::new("cargo");
    command
        .args([
            "+nightly",
            "fuzz",
            "run",
            "handler",
            "--",
            "-max_total_time=20",
        ])
        .current_dir(ws.root.join("dns"));
    Step {
        name: "fuzz (dns handler, 20 s)",
        about: "arbitrary bytes through the DNS server's real handler under libFuzzer (fails on a crash)",
        needs_root: false,
        counts_tests: false,
        command,
        parallel_tests: None,
    }
}

/// A `netbench SUBCOMMAND --quick` step: fails when a stack or target does not work; its figures
/// are printed, never judged. Its JSON and Markdown go to target/netbench-quick/.
fn netbench_quick_step(
    ws: &Workspace,
    subcommand: &str,
    name: &'static str,
    about: &'static str,
) -> Step {
    let out = ws.target.join("netbench-quick");
    let mut command = Command::new(ws.target.join("debug").join("netbench"));
    command
        .args([subcommand, "--quick", "--json"])
        .arg(out.join(format!("{subcommand}.json")))
        .arg("--markdown")
        .arg(out.join(format!("{subcommand}.md")))
        .env("STRAIT_BIN_DIR", ws.target.join("debug"));
    Step {
        name,
        about,
        needs_root: true,
        counts_tests: false,
        command,
        parallel_tests: None,
    }
}

/// The quick runs of netbench's subcommands: cross-node (about a minute), policy (about 20 s), dns
/// (about 40 s).
fn netbench_quick_steps(ws: &Workspace) -> [Step; 3] {
    [
        netbench_quick_step(
            ws,
            "cross-node",
            "netbench cross-node (quick)",
            "two nodes: strait VXLAN and direct against Flannel, host-gw and the underlay, pod-to-pod, pod-to-clusterip and external-to-nodeport, and a node join; fails if a stack does not work (ratios printed, not asserted)",
        ),
        netbench_quick_step(
            ws,
            "policy",
            "netbench policy (quick)",
            "two nodes with 0, 100 and 1,000 NetworkPolicies: RR and CRR, and how long a policy change takes to be enforced (figures printed, not asserted)",
        ),
        netbench_quick_step(
            ws,
            "dns",
            "netbench dns (quick)",
            "cluster DNS from a pod: strait's kernel fast path and server against knot and unbound, queries/s, p50/p99 and CPU per query; fails if a target does not answer correctly (figures printed, not asserted)",
        ),
    ]
}

fn summary(outcomes: &[(&str, Outcome)], total: Duration) {
    let width = outcomes
        .iter()
        .map(|(name, _)| name.len())
        .chain(["total".len()])
        .max()
        .unwrap_or(0);
    println!("\n{:<width$}  {:>8}  result", "step", "duration");
    for (name, outcome) in outcomes {
        let (duration, result) = match *outcome {
            Outcome::Passed(d) => (cmd::format_duration(d), "ok"),
            Outcome::Failed(d) => (cmd::format_duration(d), "FAILED"),
            Outcome::NotRun => ("-".to_owned(), "not run"),
        };
        println!("{name:<width$}  {duration:>8}  {result}");
    }
    println!("{:<width$}  {:>8}", "total", cmd::format_duration(total));
}

#[cfg(test)]
mod tests {
    use super::Tally;

    #[test]
    fn tally_adds_up_libtest_summaries_and_ignores_other_lines() {
        let mut tally = Tally::default();
        for line in [
            "test result: ok. 8 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 2.18s",
            "test result: FAILED. 3 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.1s",
            "test foo ... ok",
            "running 4 tests",
        ] {
            tally.add_line(line);
        }
        assert_eq!(
            tally,
            Tally {
                passed: 11,
                failed: 2,
                ignored: 1
            }
        );
    }
}
