//! svcscale's agent-start run: the first full sync of an agent that starts with the manifest directory
//! already full (a restart, a node booting), the counterpart of the kube run's first sync. The agent's
//! own sync loop ([`services::run`]) reads a run-unique directory of one JSON file per object through
//! its real [`ManifestDirSource`] and writes fresh kernel maps (pinned in a run-unique bpffs directory,
//! removed afterwards); timed from the loop's start to the sync that reaches every frontend, over a few
//! rounds, each with new maps. The files were just written, so they are in the page cache, as they
//! are for an agent restarting on a running node.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::Serialize;
use strait_bench::svcscale::{self as synth, Variant};
use strait_control::model::ManifestDirSource;
use strait_control::services::{self, SyncClock};
use tokio::sync::Mutex;

use super::kube_run::{load, settings, wait_for};
use super::{ms, progress};

/// Rounds of the measurement.
const ROUNDS: usize = 5;

/// What the agent-start run measured.
#[derive(Clone, Debug, Serialize)]
pub struct StartRun {
    pub files: usize,
    /// Each round's first full sync (start to the last map write of the sync reaching every
    /// frontend), ms.
    pub rounds_ms: Vec<f64>,
    /// Their median, ms.
    pub median_ms: f64,
}

/// Writes the objects of `services` x `per_service` into a fresh directory and times the agent's first
/// sync over it [`ROUNDS`] times.
pub fn run(services: usize, per_service: usize, timeout: Duration) -> anyhow::Result<StartRun> {
    let dir = tempfile::Builder::new()
        .prefix("svcscale-start-")
        .tempdir()
        .context("creating the manifest directory")?;
    let files = synth::object_files(services, per_service, Variant::Original, None)
        .map_err(anyhow::Error::msg)?;
    for (name, text) in &files {
        std::fs::write(dir.path().join(name), text).with_context(|| format!("writing {name}"))?;
    }
    let mut rounds_ms = Vec::with_capacity(ROUNDS);
    for round in 0..ROUNDS {
        super::checkpoint()?;
        let took = one_round(dir.path(), services, per_service, round, timeout)?;
        progress(format_args!(
            "agent start over {} files, round {}/{ROUNDS}: first full sync {:.0} ms",
            files.len(),
            round + 1,
            ms(took)
        ));
        rounds_ms.push(ms(took));
    }
    let mut sorted = rounds_ms.clone();
    sorted.sort_by(f64::total_cmp);
    Ok(StartRun {
        files: files.len(),
        median_ms: sorted[sorted.len() / 2],
        rounds_ms,
    })
}

fn one_round(
    dir: &std::path::Path,
    services: usize,
    per_service: usize,
    round: usize,
    timeout: Duration,
) -> anyhow::Result<Duration> {
    let (_pins, dataplane) = load(services, per_service, &format!("start{round}"))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let clock = SyncClock::default();
    let started = Instant::now();
    let task = runtime.spawn(services::run(
        Box::new(ManifestDirSource::new(dir)),
        dir.display().to_string(),
        settings(),
        Arc::new(Mutex::new(dataplane)),
        clock.clone(),
    ));
    let synced = wait_for(&clock, timeout, "the first full sync", |records| {
        records.last().is_some_and(|r| r.frontends >= services)
    });
    let took = started.elapsed();
    task.abort();
    drop(runtime);
    synced?;
    Ok(took)
}
