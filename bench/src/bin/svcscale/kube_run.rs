//! svcscale's kube-source run: the agent's own sync loop ([`services::run`]) with its real
//! [`KubeSource`], talking HTTP to a [`MockApiServer`] on loopback, writing real kernel maps (pinned in
//! a run-unique bpffs directory, removed afterwards). It measures the first full sync (from the source's
//! start: list, translation and map writes), one EndpointSlice change at a time (the agent's own figure
//! from the watch event's arrival to the last map write, and the wall time from the benchmark's send
//! until the sync is recorded), and a sustained stream of changes at a fixed rate; then it checks the
//! kernel's maps hold every change.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use serde::Serialize;
use serde_json::Value;
use strait_bench::svcscale::{self as synth, Variant};
use strait_control::model::KubeSource;
use strait_control::model::translate::ReservedAddresses;
use strait_control::services::{self, SyncClock, SyncRecord};
use strait_dataplane::services::ServiceKey;
use strait_dataplane::{Dataplane, LoadOptions};
use strait_tests::stand_in_api::MockApiServer;
use tokio::sync::Mutex;

/// The node the run plays.
pub(super) const NODE: &str = "svcscale-node";

/// What the kube-source run measured.
#[derive(Clone, Debug, Serialize)]
pub struct KubeRun {
    pub services: usize,
    pub endpoints_per_service: usize,
    /// From the source's start to the sync that reached every frontend.
    pub full_sync_ms: f64,
    /// The agent's own figure for that sync: from the batch that completed its lists to the last map
    /// write (translation and map writes, without the lists' transfer).
    pub full_sync_agent_ms: f64,
    /// One change at a time: the agent's figure (watch event to last map write), in µs.
    pub change_latency_us: Vec<u64>,
    /// One change at a time: from the benchmark's send to the recorded sync, in µs.
    pub change_wall_us: Vec<u64>,
    pub sustained: Sustained,
    /// Services whose kernel entry was read back and found to hold their last change.
    pub verified_services: usize,
}

/// A stream of changes at a fixed rate.
#[derive(Clone, Debug, Serialize)]
pub struct Sustained {
    pub rate_hz: f64,
    pub changes: usize,
    /// The rate the sends achieved.
    pub sent_hz: f64,
    /// From the last send until every change was in the kernel.
    pub lag_ms: f64,
    /// The agent's per-sync latencies during the stream, in µs.
    pub latency_us: Vec<u64>,
    /// Syncs that carried the stream (fewer than changes when the agent batched them).
    pub syncs: usize,
}

/// A pin directory on bpffs, removed on drop.
pub(super) struct Pins(PathBuf);

impl Drop for Pins {
    fn drop(&mut self) {
        let _ = Dataplane::remove_pins(&self.0);
    }
}

fn with_type(mut value: Value, api_version: &str, kind: &str) -> Value {
    value["apiVersion"] = Value::String(api_version.to_owned());
    value["kind"] = Value::String(kind.to_owned());
    value
}

fn slice_json(index: usize, per_service: usize, variant: Variant) -> anyhow::Result<Value> {
    let slice = synth::endpoint_slice(index, per_service, variant);
    Ok(with_type(
        serde_json::to_value(slice)?,
        "discovery.k8s.io/v1",
        "EndpointSlice",
    ))
}

fn node_json() -> Value {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": NODE},
        "status": {"addresses": [{"type": "InternalIP", "address": "192.0.2.1"}]},
    })
}

/// Waits until `done` holds for the clock's records (polled every 100 µs) or `timeout` passes.
pub(super) fn wait_for(
    clock: &SyncClock,
    timeout: Duration,
    what: &str,
    done: impl Fn(&[SyncRecord]) -> bool,
) -> anyhow::Result<Vec<SyncRecord>> {
    let deadline = Instant::now() + timeout;
    loop {
        let records = clock.records();
        if done(&records) {
            return Ok(records);
        }
        if Instant::now() > deadline {
            bail!(
                "the agent's loop did not record {what} within {timeout:?} (last: {:?})",
                records.last()
            );
        }
        std::thread::sleep(Duration::from_micros(100));
    }
}

/// Sends EndpointSlice changes to the stand-in server and waits for the agent's loop to record them.
struct Changer<'a> {
    server: &'a MockApiServer,
    clock: &'a SyncClock,
    /// Whether each Service has its changed endpoints now.
    current: Vec<bool>,
    per_service: usize,
    timeout: Duration,
}

impl Changer<'_> {
    /// The slice of Service `index` with its endpoints flipped.
    fn flip(&mut self, index: usize) -> anyhow::Result<Value> {
        self.current[index] = !self.current[index];
        slice_json(index, self.per_service, self.variant(index))
    }

    fn variant(&self, index: usize) -> Variant {
        if self.current[index] {
            Variant::Changed(index)
        } else {
            Variant::Original
        }
    }

    /// `changes` changes, each waited for: (agent latency, wall time), µs.
    fn one_at_a_time(&mut self, changes: usize) -> anyhow::Result<(Vec<u64>, Vec<u64>)> {
        let services = self.current.len();
        let (mut latency, mut wall) = (Vec::new(), Vec::new());
        for round in 0..changes {
            let slice = self.flip((round * 7_919) % services)?;
            let before = self.clock.records().len();
            let sent = Instant::now();
            self.server.send("MODIFIED", slice);
            let records = wait_for(self.clock, self.timeout, "a change", |r| r.len() > before)?;
            wall.push(u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX));
            let record = records[before];
            ensure!(record.updated >= 1, "a change updated nothing: {record:?}");
            latency.push(record.latency_us);
            std::thread::sleep(Duration::from_millis(2));
        }
        Ok((latency, wall))
    }

    /// A stream of changes at `rate_hz` for `seconds`, each to another Service, not waited for one
    /// by one; then until every one is in.
    fn stream(&mut self, offset: usize, rate_hz: f64, seconds: f64) -> anyhow::Result<Sustained> {
        let services = self.current.len();
        let count = super::whole((rate_hz * seconds).round()).max(1);
        let interval = Duration::from_secs_f64(1.0 / rate_hz);
        let before = self.clock.records().len();
        let start = Instant::now();
        for k in 0..count {
            let slice = self.flip((offset * 7_919 + k * 104_729) % services)?;
            let due = start + interval * u32::try_from(k).unwrap_or(u32::MAX);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            self.server.send("MODIFIED", slice);
        }
        let last_sent = Instant::now();
        let sent_secs = start.elapsed().as_secs_f64();
        let records = wait_for(self.clock, self.timeout, "the stream", |r| {
            r.iter().skip(before).map(|x| x.updated).sum::<usize>() >= count
        })?;
        let lag = last_sent.elapsed();
        let stream = &records[before..];
        Ok(Sustained {
            rate_hz,
            changes: count,
            sent_hz: super::count_f64(count) / sent_secs.max(1e-9),
            lag_ms: lag.as_secs_f64() * 1e3,
            latency_us: stream.iter().map(|r| r.latency_us).collect(),
            syncs: stream.len(),
        })
    }

    /// How many Services the kernel's table holds with their last endpoints.
    fn verify(&self, dataplane: &mut Dataplane) -> anyhow::Result<usize> {
        let table = dataplane.read_services()?;
        let mut verified = 0;
        for index in 0..self.current.len() {
            let key = ServiceKey {
                vip: synth::vip(index),
                port: 80,
                proto: strait_dataplane::services::L4Proto::Tcp,
            };
            let variant = self.variant(index);
            let want: Vec<Ipv4Addr> = (0..self.per_service)
                .map(|e| synth::endpoint_ip(index, e, self.per_service, variant))
                .collect();
            let mut have: Vec<Ipv4Addr> = table
                .get(&key)
                .map(|e| e.backends.iter().map(|b| b.addr).collect())
                .unwrap_or_default();
            have.sort();
            verified += usize::from(have == want);
        }
        Ok(verified)
    }
}

/// Loads the data path with room for `services` x `per_service`, pinned under a run-unique directory.
/// The sync loop's settings for the benchmark's node: the default ranges refused as external
/// addresses, no resync during the run, no overlay (one node).
pub(super) fn settings() -> services::SyncSettings {
    services::SyncSettings {
        node: NODE.to_owned(),
        reserved: ReservedAddresses::defaults(),
        resync_every: Duration::from_hours(1),
        overlay: None,
        dns: None,
    }
}

/// A fresh data path sized for `services` x `per_service`, pinned under a directory named for this
/// process and `run`.
pub(super) fn load(
    services: usize,
    per_service: usize,
    run: &str,
) -> anyhow::Result<(Pins, Dataplane)> {
    strait_dataplane::bpffs::ensure_mounted(std::path::Path::new("/sys/fs/bpf"))
        .context("mounting bpffs")?;
    let pins = Pins(
        PathBuf::from("/sys/fs/bpf").join(format!("strait-svcscale-{}-{run}", std::process::id())),
    );
    let capacity = u32::try_from(services.saturating_mul(2).max(65_536)).unwrap_or(u32::MAX);
    let backends = services
        .saturating_mul(per_service)
        .saturating_mul(2)
        .max(262_144);
    let dataplane = Dataplane::load(&LoadOptions {
        pin_dir: Some(pins.0.clone()),
        service_capacity: capacity,
        backend_capacity: u32::try_from(backends).unwrap_or(u32::MAX),
        ..LoadOptions::default()
    })
    .context("loading the data path")?;
    Ok((pins, dataplane))
}

/// The node, and every Service with its EndpointSlice, as the API server serves them.
fn objects(services: usize, per_service: usize) -> anyhow::Result<Vec<Value>> {
    let mut objects = vec![node_json()];
    for index in 0..services {
        objects.push(with_type(
            serde_json::to_value(synth::service(index))?,
            "v1",
            "Service",
        ));
        objects.push(slice_json(index, per_service, Variant::Original)?);
    }
    Ok(objects)
}

/// Runs the kube-source measurement.
pub fn run(
    services: usize,
    per_service: usize,
    changes: usize,
    rate_hz: f64,
    seconds: f64,
    timeout: Duration,
) -> anyhow::Result<KubeRun> {
    ensure!(services > 0, "--services must be at least 1");
    let (_pins, dataplane) = load(services, per_service, "kube")?;
    let server = MockApiServer::start(objects(services, per_service)?)
        .context("starting the stand-in API server")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let _guard = runtime.enter();
    let config = kube::Config::new(server.url().parse().context("the server's URL")?);
    let client = kube::Client::try_from(config).context("building the kube client")?;
    let clock = SyncClock::default();
    let dataplane = Arc::new(Mutex::new(dataplane));
    let started = Instant::now();
    let task = runtime.spawn(services::run(
        Box::new(KubeSource::start(client, NODE)),
        "stand-in-api".to_owned(),
        settings(),
        Arc::clone(&dataplane),
        clock.clone(),
    ));
    let records = wait_for(&clock, timeout, "the first full sync", |r| {
        r.last().is_some_and(|l| l.frontends >= services)
    })?;
    let full_sync = started.elapsed();
    let full_agent_us = records.last().map_or(0, |r| r.latency_us);

    let mut changer = Changer {
        server: &server,
        clock: &clock,
        current: vec![false; services],
        per_service,
        timeout,
    };
    let (change_latency_us, change_wall_us) = changer.one_at_a_time(changes)?;
    let sustained = changer.stream(changes, rate_hz, seconds)?;
    task.abort();
    let _ = runtime.block_on(task);
    let verified = runtime.block_on(async { changer.verify(&mut *dataplane.lock().await) })?;
    ensure!(
        verified == services,
        "only {verified} of {services} Services hold their last endpoints in the kernel"
    );
    Ok(KubeRun {
        services,
        endpoints_per_service: per_service,
        full_sync_ms: full_sync.as_secs_f64() * 1e3,
        full_sync_agent_ms: super::us_to_ms(full_agent_us),
        change_latency_us,
        change_wall_us,
        sustained,
        verified_services: verified,
    })
}
