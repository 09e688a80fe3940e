//! svcscale's directory run: a lab with the real agent, the real ClusterIP Service, N synthetic
//! Services published into the lab's object directory, the first sync, changes one by one and as a
//! stream, the agent's memory and ClusterIP connection latency with 1 and N+1 Services.

use std::{
    io::{Read as _, Seek as _, SeekFrom},
    time::Instant,
};

use anyhow::bail;
use serde_json::json;
use strait_bench::svcscale::{self as synth, Variant, parse_sync_line};

use super::*;

pub(super) fn run(args: &Args, name: &str, bin_dir: &Path) -> anyhow::Result<DirRun> {
    let pods = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/pods.yaml");
    progress(format_args!(
        "bringing up lab {name} (1 node, {}; binaries from {})",
        pods.display(),
        bin_dir.display()
    ));
    // No cluster DNS: its kube-dns Service would add frontends the counts below do not expect, and
    // it has no part in programming Services.
    let options = strait_lab::state::LabOptions {
        no_cluster_dns: true,
        ..strait_lab::state::LabOptions::default()
    };
    let mut lab = Lab::up_with(name, 1, Some(&pods), options).context("bringing up the lab")?;
    checkpoint()?;
    let agent_pid = lab.state.nodes[0].agent_pid;
    let (vip, server_ip) = real_service(&mut lab)?;
    let latency_1 = measure_phase(&lab, 1, vip, server_ip, args.connects)?;
    let memory_before = agent_memory(agent_pid)?;
    checkpoint()?;

    // N synthetic services, one file, first sync.
    let frontends = args.services + 1;
    let publisher = Publisher::new(&lab, args);
    progress(format_args!(
        "generating {} Services x {} endpoints ({})",
        args.services, args.endpoints, args.format
    ));
    let files = publication(args, Variant::Original, None)?;
    let file_bytes = files.iter().map(|(_, text)| text.len()).sum();
    progress(format_args!(
        "publishing {} file(s) ({:.1} MB) and waiting for the first full sync",
        files.len(),
        megabytes(file_bytes)
    ));
    // With one file per object the agent may pick the files up over several polls: the sync that
    // reaches every frontend ends it, whatever it added itself.
    let whole = args.format != Format::Files;
    let first_sync = publisher.publish(&files, |l| {
        l.frontends == frontends as u64 && (!whole || l.added >= args.services as u64)
    })?;
    progress(format_args!(
        "first full sync: {:.0} ms (the renames took {:.0} ms; agent log: {} frontends, {} added, \
         kernel maps took {} ms)",
        first_sync.wall_ms,
        first_sync.renames_ms,
        first_sync.agent.frontends,
        first_sync.agent.added,
        first_sync.agent.took_ms
    ));
    let memory_after_sync = agent_memory(agent_pid)?;
    let latency_n = measure_phase(&lab, frontends, vip, server_ip, args.connects)?;

    let change_rounds = measure_changes(&publisher, args)?;
    let change_rounds_copy = change_rounds.clone();
    let mut by_wall = change_rounds.clone();
    by_wall.sort_by(|a, b| a.wall_ms.total_cmp(&b.wall_ms));
    let one_change = by_wall[by_wall.len() / 2];
    let sustained = if args.format == Format::Files {
        Some(measure_sustained(&publisher, args)?)
    } else {
        None
    };
    let memory_after_change = agent_memory(agent_pid)?;
    // The real Service still works with everything in place.
    expect_server(&lab, vip, "after the changes")?;

    Ok(DirRun {
        lab: name.to_owned(),
        bin_dir: bin_dir.display().to_string(),
        services: args.services,
        endpoints_per_service: args.endpoints,
        frontends,
        connects: args.connects,
        format: args.format.to_string(),
        file_bytes,
        cluster_ip: vip,
        server_ip,
        first_sync,
        one_change,
        change_rounds,
        memory_before,
        memory_after_sync,
        memory_after_change,
        cluster_ip_ratios: Ratios::of(&latency_1, &latency_n),
        latency_1,
        latency_n,
        change_latency_us: change_rounds_latency(&change_rounds_copy),
        sustained,
    })
}

fn change_rounds_latency(rounds: &[SyncTiming]) -> Vec<u64> {
    rounds.iter().map(|t| t.agent.latency_us).collect()
}

/// Writes one Service's EndpointSlice file after another at `--rate` for `--sustain-s`, each to
/// another Service, without waiting; then waits until the agent has synced past the last rename.
fn measure_sustained(
    publisher: &Publisher<'_>,
    args: &Args,
) -> anyhow::Result<kube_run::Sustained> {
    let count = whole((args.rate * args.sustain_s).round()).max(1);
    let interval = Duration::from_secs_f64(1.0 / args.rate);
    progress(format_args!(
        "sustained: {count} changes at {} per second, each to another Service",
        args.rate
    ));
    let log_offset = fs::metadata(&publisher.log).map_or(0, |m| m.len());
    let start = Instant::now();
    for k in 0..count {
        checkpoint()?;
        let index = (args.changes * 7_919 + k * 104_729) % args.services;
        let files = synth::object_files(
            args.services,
            args.endpoints,
            Variant::Changed(index),
            Some(index),
        )
        .map_err(anyhow::Error::msg)?;
        let due = start + interval * u32::try_from(k).unwrap_or(u32::MAX);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        publisher.write_now(&files)?;
    }
    let sent_secs = start.elapsed().as_secs_f64();
    let last = Instant::now();
    let last_ms = now_ms();
    while publisher.syncz().unwrap_or(0) <= last_ms {
        checkpoint()?;
        ensure!(
            last.elapsed() < publisher.timeout,
            "the agent did not catch up with the stream within {:?}",
            publisher.timeout
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let lag = last.elapsed();
    let lines = synth::sync_lines(&publisher.log, log_offset);
    let updated: u64 = lines.iter().map(|l| l.updated).sum();
    if updated < count as u64 {
        progress(format_args!(
            "note: the stream's syncs updated {updated} frontends for {count} changes (some changes \
             flipped a Service back to where an earlier one had left it)"
        ));
    }
    Ok(kube_run::Sustained {
        rate_hz: args.rate,
        changes: count,
        sent_hz: count_f64(count) / sent_secs.max(1e-9),
        lag_ms: ms(lag),
        syncs: lines.len(),
        latency_us: lines.iter().map(|l| l.latency_us).collect(),
    })
}

/// Applies the one real Service (for the server pod) as a user would and checks that the client reaches
/// the server through it. Returns (ClusterIP, server pod IP).
fn real_service(lab: &mut Lab) -> anyhow::Result<(Ipv4Addr, Ipv4Addr)> {
    let server_ip = lab
        .state
        .pod(SERVER)
        .map(|p| p.ip)
        .context("the lab has no default/server pod")?;
    let manifest = lab.names.run_dir().join("svcscale-server.json");
    fs::write(&manifest, server_service_json()?)
        .with_context(|| format!("writing {}", manifest.display()))?;
    lab.apply(&manifest)
        .context("applying the server's Service")?;
    let vip: Ipv4Addr = lab
        .state
        .services
        .get(SERVER)
        .and_then(|s| s.spec.as_ref()?.cluster_ip.as_deref()?.parse().ok())
        .context("the server's Service got no ClusterIP")?;
    expect_server(lab, vip, "with one service")?;
    progress(format_args!(
        "Service {SERVER} has ClusterIP {vip}:80 -> {server_ip}:8080; {CLIENT} reaches it"
    ));
    Ok((vip, server_ip))
}

/// Fails unless a probe from the client to `vip:80` is answered by the server.
fn expect_server(lab: &Lab, vip: Ipv4Addr, when: &str) -> anyhow::Result<()> {
    let answer = lab.probe(CLIENT, &format!("{vip}:80"), false, Duration::from_secs(2))?;
    ensure!(
        answer.as_deref() == Ok(SERVER),
        "{when}, {CLIENT} -> ClusterIP {vip}:80 should reach {SERVER}, got {answer:?}"
    );
    Ok(())
}

/// Rewrites the file `args.changes` times, each time with one service's endpoints different from the
/// previous round (alternately changed and restored), and times each sync.
fn measure_changes(publisher: &Publisher<'_>, args: &Args) -> anyhow::Result<Vec<SyncTiming>> {
    let changed = args.services / 2;
    let frontends = args.services as u64 + 1;
    let mut rounds = Vec::new();
    for round in 0..args.changes {
        checkpoint()?;
        let (variant, what) = if round % 2 == 0 {
            (Variant::Changed(changed), "changed")
        } else {
            (Variant::Original, "restored")
        };
        let files = publication(args, variant, Some(changed))?;
        progress(format_args!(
            "change {}/{}: rewriting {} file(s) with the endpoints of {}/{} {what}",
            round + 1,
            args.changes,
            files.len(),
            synth::NAMESPACE,
            synth::service_name(changed),
        ));
        let timing = publisher.publish(&files, |l| l.frontends == frontends && l.updated >= 1)?;
        progress(format_args!(
            "one change applied: {:.0} ms (agent log: {} updated, {} unchanged, kernel maps took {} ms)",
            timing.wall_ms, timing.agent.updated, timing.agent.unchanged, timing.agent.took_ms
        ));
        rounds.push(timing);
    }
    Ok(rounds)
}

/// The files to publish for `variant`: the whole single file, or (per-object layout) every object's
/// file — only service `changed`'s files when it is given.
fn publication(
    args: &Args,
    variant: Variant,
    changed: Option<usize>,
) -> anyhow::Result<Vec<(String, String)>> {
    if args.format == Format::Files {
        return synth::object_files(args.services, args.endpoints, variant, changed)
            .map_err(anyhow::Error::msg);
    }
    let text = synth::manifest(args.services, args.endpoints, variant, args.format)
        .map_err(anyhow::Error::msg)?;
    Ok(vec![(args.format.file_name().to_owned(), text)])
}

/// The ClusterIP Service for the server pod: port 80 to the pod's named port `http`.
fn server_service_json() -> anyhow::Result<String> {
    let service = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": { "name": "server", "namespace": "default" },
        "spec": {
            "type": "ClusterIP",
            "selector": { "app": "server" },
            "ports": [{ "name": "http", "port": 80, "targetPort": "http", "protocol": "TCP" }],
        },
    });
    Ok(serde_json::to_string_pretty(&service)?)
}

/// Direct and ClusterIP latency from the client, `connects` connections each, made in `BLOCKS`
/// alternating blocks (direct, ClusterIP, direct, ...) so a burst of load elsewhere on the machine hits
/// both alike.
fn measure_phase(
    lab: &Lab,
    services: usize,
    vip: Ipv4Addr,
    server_ip: Ipv4Addr,
    connects: usize,
) -> anyhow::Result<Phase> {
    progress(format_args!(
        "{connects} connects each {CLIENT} -> {server_ip}:8080 (direct) and -> {vip}:80 (ClusterIP), \
         {services} service(s), in {BLOCKS} alternating blocks"
    ));
    let blocks = BLOCKS.min(connects);
    let (mut direct, mut cluster_ip) = (Vec::new(), Vec::new());
    for block in 0..blocks {
        checkpoint()?;
        // Spread the remainder over the first blocks.
        let count = connects / blocks + usize::from(block < connects % blocks);
        direct.push(lab.connect_bench(CLIENT, &format!("{server_ip}:8080"), count)?);
        cluster_ip.push(lab.connect_bench(CLIENT, &format!("{vip}:80"), count)?);
    }
    let (direct, cluster_ip) = (combine(&direct), combine(&cluster_ip));
    for (what, stats) in [("direct", &direct), ("ClusterIP", &cluster_ip)] {
        if stats.failures > 0 {
            progress(format_args!(
                "warning: {} of {} {what} connections failed",
                stats.failures, stats.count
            ));
        }
    }
    Ok(Phase {
        services,
        direct,
        cluster_ip,
    })
}

/// One figure from the blocks of a phase: counts and failures summed, the maximum of the maxima, the
/// median of the blocks' p50, p99 and mean.
fn combine(blocks: &[ConnStats]) -> ConnStats {
    let median = |f: fn(&ConnStats) -> u64| {
        let mut values: Vec<u64> = blocks.iter().map(f).collect();
        values.sort_unstable();
        values.get(values.len() / 2).copied().unwrap_or_default()
    };
    ConnStats {
        count: blocks.iter().map(|b| b.count).sum(),
        failures: blocks.iter().map(|b| b.failures).sum(),
        p50_us: median(|b| b.p50_us),
        p99_us: median(|b| b.p99_us),
        mean_us: median(|b| b.mean_us),
        max_us: blocks.iter().map(|b| b.max_us).max().unwrap_or_default(),
    }
}

/// Publishes the benchmark's file into the lab's cluster directory and times the agent's sync.
struct Publisher<'a> {
    lab: &'a Lab,
    node: String,
    log: PathBuf,
    dir: PathBuf,
    timeout: Duration,
}

impl<'a> Publisher<'a> {
    fn new(lab: &'a Lab, args: &Args) -> Self {
        let node = lab.state.nodes[0].name.clone();
        let dir = lab.cluster_dir();
        Self {
            lab,
            log: lab.names.node_dir(&node).join("agent.log"),
            node,
            dir,
            timeout: Duration::from_secs(args.sync_timeout_s),
        }
    }

    /// Writes `files` (hidden temporary file, then renamed into place) without waiting for the agent.
    fn write_now(&self, files: &[(String, String)]) -> anyhow::Result<()> {
        for (name, text) in files {
            let tmp = self.dir.join(format!(".{name}.tmp"));
            fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
            fs::rename(&tmp, self.dir.join(name))
                .with_context(|| format!("renaming {}", tmp.display()))?;
        }
        Ok(())
    }

    fn syncz(&self) -> Option<u64> {
        self.lab
            .agent_get(&self.node, "/syncz")
            .ok()
            .and_then(|body| body.trim().parse::<u64>().ok())
    }

    /// Writes `files` (each as a hidden temporary file first, then all renamed into place; timing starts
    /// at the first rename) and waits until the agent has synced them: `/syncz` past the last rename,
    /// and a `services synced` line accepted by `expected` in the agent log.
    fn publish(
        &self,
        files: &[(String, String)],
        expected: impl Fn(&SyncLine) -> bool,
    ) -> anyhow::Result<SyncTiming> {
        let log = &self.log;
        let file = self
            .dir
            .join(files.first().map_or("(none)", |(name, _)| name.as_str()));
        for (name, text) in files {
            let tmp = self.dir.join(format!(".{name}.tmp"));
            fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
        }
        let log_offset = fs::metadata(log).map_or(0, |m| m.len());
        let syncz_before = self.syncz().unwrap_or(0);
        let renamed = Instant::now();
        let renamed_ms = now_ms();
        for (name, _) in files {
            let (tmp, target) = (self.dir.join(format!(".{name}.tmp")), self.dir.join(name));
            fs::rename(&tmp, &target)
                .with_context(|| format!("renaming to {}", target.display()))?;
        }
        // A sync counts once it began after the last rename (a poll in between may see only part).
        let all_renamed_ms = now_ms();
        let renames = renamed.elapsed();

        let mut syncz_last = syncz_before;
        let mut slowest_syncz = Duration::ZERO;
        let mut logged_at: Option<Instant> = None;
        let (wall, syncz_stalled) = loop {
            checkpoint()?;
            let asked = Instant::now();
            let synced = self.syncz().unwrap_or(0);
            slowest_syncz = slowest_syncz.max(asked.elapsed());
            syncz_last = syncz_last.max(synced);
            if synced > all_renamed_ms {
                break (renamed.elapsed(), false);
            }
            // The agent stamps a sync with the time its poll began; a poll that began in the same
            // millisecond as the rename (or just before it) but listed the directory after it syncs
            // the file without ever moving /syncz past the rename. The log line shows it.
            match logged_at {
                None if last_sync_line(log, log_offset, &expected).is_some() => {
                    logged_at = Some(Instant::now());
                }
                Some(at) if at.elapsed() > SYNCZ_STALL => break (Duration::ZERO, true),
                _ => {}
            }
            if renamed.elapsed() > self.timeout {
                bail!(
                    "the agent of {} did not sync {} within {} s; last log lines:\n{}",
                    self.node,
                    file.display(),
                    self.timeout.as_secs(),
                    log_tail(log, 10)
                );
            }
            std::thread::sleep(SYNC_POLL);
        };
        let agent = last_sync_line(log, log_offset, &expected).with_context(|| {
            format!(
                "/syncz moved but the agent logged no matching `services synced` line; last log lines:\n{}",
                log_tail(log, 10)
            )
        })?;
        let signed = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let log_ms = agent.at_ms.map(|at| signed(at) - signed(renamed_ms));
        let mut timing = SyncTiming {
            wall_ms: ms(wall),
            renames_ms: ms(renames),
            log_ms,
            agent,
            before_map_sync_ms: log_ms.map(|l| l - signed(agent.took_ms)),
            slowest_syncz_ms: ms(slowest_syncz),
            syncz_stalled,
            stalled_syncz_minus_rename_ms: None,
            stalled_syncz_moved: None,
        };
        if syncz_stalled {
            let gap = signed(syncz_last) - signed(renamed_ms);
            let moved = syncz_last != syncz_before;
            progress(format_args!(
                "note: /syncz never passed the rename (last /syncz - rename = {gap} ms, moved: {moved}); \
                 using the agent log's time"
            ));
            timing.wall_ms = log_ms.map_or(f64::NAN, |l| {
                f64::from(i32::try_from(l).unwrap_or(i32::MAX))
            });
            timing.stalled_syncz_minus_rename_ms = Some(gap);
            timing.stalled_syncz_moved = Some(moved);
        }
        Ok(timing)
    }
}

/// The last `services synced` line written to `log` after `offset` that `expected` accepts.
fn last_sync_line(
    log: &Path,
    offset: u64,
    expected: &impl Fn(&SyncLine) -> bool,
) -> Option<SyncLine> {
    let mut file = fs::File::open(log).ok()?;
    file.seek(SeekFrom::Start(offset)).ok()?;
    let mut text = String::new();
    file.read_to_string(&mut text).ok()?;
    text.lines()
        .filter_map(parse_sync_line)
        .filter(|l| expected(l))
        .last()
}

fn log_tail(log: &Path, lines: usize) -> String {
    let text = fs::read_to_string(log).unwrap_or_default();
    let tail: Vec<&str> = text.lines().rev().take(lines).collect();
    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
}
