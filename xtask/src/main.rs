//! `cargo xtask`: strait's project tasks. `bootstrap` installs the tools the build and the tests need,
//! `test` runs every check the CI runs, `demo` builds release binaries and tours a one-node lab.
//!
//! Every task runs from the workspace root and prints each command before running it.

mod bootstrap;
mod cmd;
mod dashboards;
mod demo;
mod manifests;
mod parallel;
mod test;

use std::{
    env,
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::{Context as _, Result};
use clap::{Parser, Subcommand};

/// strait project tasks (run as `cargo xtask <task>`).
#[derive(Parser)]
#[command(name = "xtask", bin_name = "cargo xtask", version)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install the tools strait needs that are missing (idempotent).
    ///
    /// Checks, and installs only when missing: rust-src for the nightly toolchain; bpf-linker 0.13 built
    /// against the nightly toolchain's own libLLVM (no system LLVM); the Debian packages the lab and the
    /// tests use (iproute2, iputils-ping, bpftool). Prints one line per item; a second run installs
    /// nothing and says so. Installing Debian packages needs root.
    Bootstrap {
        /// Only what building the binaries needs (rust-src and bpf-linker): the container image's
        /// builder stage, which runs no test.
        #[arg(long)]
        build_only: bool,
    },
    /// Run every check the CI runs, stopping at the first failure.
    ///
    /// Bootstraps, then in order: `cargo fmt --check`, host clippy, eBPF clippy (nightly,
    /// bpfel-unknown-none, build-std=core), build every binary, and `cargo test --workspace` with
    /// STRAIT_BIN_DIR=target/debug (the tests need root). Prints each step's duration and a summary
    /// table. Arguments after `--` go to the final `cargo test`.
    Test(test::Args),
    /// Build release binaries and tour a one-node lab named `demo` (needs root).
    ///
    /// Bootstraps, runs `cargo build --release --bins`, then with target/release/strait: brings up a
    /// one-node lab from `examples/`, shows its status, probes TCP between the first two pods both ways
    /// (and UDP when the second pod has a UDP port), pings from one pod to the other, and shows the
    /// agent's endpoints and counters. Every command is printed before it runs. The lab is left up;
    /// the end of the output says how to explore it and how to tear it down.
    Demo,
    /// Write strait's Grafana dashboards into deploy/grafana/ from their definitions.
    ///
    /// The five dashboards (overview, Services, policy, DNS, agent health) are defined in
    /// xtask/src/dashboards and written as Grafana's dashboard JSON model. With --check, nothing is
    /// written: any difference between a committed file and its definition is an error. With
    /// --schema, each file is also type-checked against Grafana's published dashboard schema
    /// (npm's @grafana/schema, installed under target/ with TypeScript). CI runs both.
    Dashboards {
        /// Only compare; fail when a committed dashboard differs from its definition.
        #[arg(long)]
        check: bool,
        /// Also check every dashboard against Grafana's dashboard schema (needs npm).
        #[arg(long)]
        schema: bool,
    },
    /// Check the install manifests in deploy/kubernetes/ against the Kubernetes API's schemas.
    ///
    /// Runs `kubernetes-validate --strict` (PyPI, installed into a virtual environment under
    /// target/) for Kubernetes 1.37 and 1.33. The manifests themselves are written by `strait install
    /// --out deploy/kubernetes`; a test fails when the committed files differ from that rendering.
    Manifests,
}

/// Where the workspace lives and where cargo puts its build output.
pub struct Workspace {
    /// The workspace root (the directory holding the top-level `Cargo.toml`).
    pub root: PathBuf,
    /// Cargo's target directory: `CARGO_TARGET_DIR` when set, else `<root>/target`.
    pub target: PathBuf,
}

impl Workspace {
    fn locate() -> Result<Self> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .context("the xtask crate has no parent directory")?
            .to_path_buf();
        let target = match env::var_os("CARGO_TARGET_DIR") {
            Some(dir) if !dir.is_empty() => root.join(dir),
            _ => root.join("target"),
        };
        Ok(Self { root, target })
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    let ws = Workspace::locate()?;
    env::set_current_dir(&ws.root)
        .with_context(|| format!("cannot enter the workspace root {}", ws.root.display()))?;
    match cli.task {
        Task::Bootstrap { build_only: true } => bootstrap::run_build_only(&ws),
        Task::Bootstrap { build_only: false } => bootstrap::run(&ws),
        Task::Test(args) => test::run(&ws, &args),
        Task::Demo => demo::run(&ws),
        Task::Manifests => manifests::check(&ws.root, &ws.target),
        Task::Dashboards { check, schema } => {
            dashboards::run(&ws.root, check)?;
            if schema {
                dashboards::schema::check(&ws.root, &ws.target)?;
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::*;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn test_passes_everything_after_the_separator_to_cargo_test() {
        let cli =
            Cli::try_parse_from(["xtask", "test", "--", "a_filter", "--", "--nocapture"]).unwrap();
        let Task::Test(args) = cli.task else {
            panic!("not the test task");
        };
        assert_eq!(args.cargo_test_args, ["a_filter", "--", "--nocapture"]);
    }
}
