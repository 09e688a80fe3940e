//! kube-proxy's own sync costs at svcscale's scale, measured on this machine in the same run: the
//! netbench generators write kube-proxy's iptables-mode `iptables-restore` input and nftables-mode
//! `nft -f` script for the same synthetic Services, and the real tools load them into a run-unique
//! network namespace (deleted afterwards, also on failure).
//!
//! - Full sync: the whole input, as kube-proxy writes it at start and on every periodic full sync
//!   (iptables: once into an empty namespace, then again over the loaded rules, which is what a
//!   steady-state full sync costs).
//! - Partial sync after one EndpointSlice change (one Service's endpoints replaced). iptables: what
//!   kube-proxy's partial sync (`MinimizeIPTablesRestore`) restores with `--noflush`: the table headers,
//!   every top-level chain in full (`KUBE-SERVICES` names every Service, so it is rewritten each time),
//!   and only the changed Service's `KUBE-SVC-`/`KUBE-SEP-` chains, plus `-X` for its old endpoint
//!   chains. nftables: one transaction that adds the new endpoint chains, flushes and refills the
//!   service chain, and deletes the old endpoint chains.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde::Serialize;
use strait_bench::netbench::catalog::{Catalog, Frontend, TargetPosition};
use strait_bench::netbench::kube_iptables::{
    KubeProxyConfig, ext_chain, iptables_restore, sep_chain, svc_chain,
};
use strait_bench::netbench::kube_nftables::{endpoint_chain, nft_ruleset, service_chain};
use strait_bench::svcscale::{self as synth, Variant};

/// kube-proxy's figures (ms); `None` where the tool is missing, was not asked for, or ran past
/// `limit_s` (then also named in `timed_out`).
#[derive(Clone, Debug, Default, Serialize)]
pub struct KubeProxySync {
    pub limit_s: u64,
    pub timed_out: Vec<String>,
    pub iptables_rules: usize,
    /// The same input loaded as netbench loads it (`iptables-restore` without `--noflush`: whole
    /// tables replaced), for comparison with kube-proxy's own flags below.
    pub iptables_replace_ms: Option<f64>,
    /// kube-proxy's own invocation (`iptables-restore --noflush --counters`).
    pub iptables_full_cold_ms: Option<f64>,
    pub iptables_full_ms: Option<f64>,
    pub iptables_partial_ms: Option<f64>,
    pub iptables_partial_bytes: usize,
    pub nft_rules: usize,
    pub nft_full_ms: Option<f64>,
    pub nft_partial_ms: Option<f64>,
}

/// A network namespace deleted when dropped.
struct Netns(String);

impl Netns {
    fn new(role: &str) -> anyhow::Result<Self> {
        let name = format!("svcscale-{role}-{}", std::process::id());
        let status = Command::new("ip").args(["netns", "add", &name]).status()?;
        if !status.success() {
            bail!("ip netns add {name} failed");
        }
        Ok(Self(name))
    }

    /// Runs `command` in the namespace with `input` on stdin and returns how long it took; `None`
    /// when it ran past `limit` (it is killed then). Stops early when the run is interrupted.
    fn time(
        &self,
        command: &[&str],
        input: &str,
        limit: Duration,
    ) -> anyhow::Result<Option<Duration>> {
        let started = Instant::now();
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.0])
            .args(command)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("running {command:?}"))?;
        // Fed from a thread: a slow tool reads its input slowly, and the limit must hold meanwhile.
        let mut stdin = child.stdin.take().context("stdin")?;
        let input = input.to_owned();
        let feeder = std::thread::spawn(move || {
            let _ = stdin.write_all(input.as_bytes());
        });
        let result = wait_limited(&mut child, command, started, limit);
        let _ = feeder.join();
        result
    }
}

/// Waits for `child` until `limit` has passed since `started` (then kills it and returns `None`) or
/// the run is interrupted.
fn wait_limited(
    child: &mut std::process::Child,
    command: &[&str],
    started: Instant,
    limit: Duration,
) -> anyhow::Result<Option<Duration>> {
    loop {
        if let Some(status) = child.try_wait()? {
            let took = started.elapsed();
            if !status.success() {
                let mut stderr = String::new();
                if let Some(mut pipe) = child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
                }
                let first: Vec<&str> = stderr.lines().take(5).collect();
                bail!("{command:?} failed: {}", first.join("; "));
            }
            return Ok(Some(took));
        }
        if started.elapsed() > limit || super::checkpoint().is_err() {
            let _ = child.kill();
            let _ = child.wait();
            super::checkpoint()?;
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.0])
            .status();
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The frontends of `services` synthetic Services (no target Service: svcscale's own set).
fn frontends(services: usize, per_service: usize, changed: Option<usize>) -> Vec<Frontend> {
    let mut catalog = Catalog::new(
        Ipv4Addr::new(10, 96, 0, 10),
        &[Ipv4Addr::new(10, 244, 1, 3)],
        services,
        per_service,
        TargetPosition::Middle,
    );
    if let Some(index) = changed {
        let slice_index = catalog.slices.iter().position(|s| {
            s.metadata.name.as_deref() == Some(&format!("{}-bench", synth::service_name(index)))
        });
        if let Some(i) = slice_index {
            catalog.slices[i] = synth::endpoint_slice(index, per_service, Variant::Changed(index));
        }
    }
    catalog.frontends()
}

/// The per-Service chain a line declares or appends to, if it is one.
fn service_chain_of(line: &str) -> Option<&str> {
    let rest = line
        .strip_prefix(':')
        .or_else(|| line.strip_prefix("-A "))?;
    let chain = rest.split_whitespace().next()?;
    [
        "KUBE-SVC-",
        "KUBE-SEP-",
        "KUBE-EXT-",
        "KUBE-FW-",
        "KUBE-SVL-",
    ]
    .iter()
    .any(|p| chain.starts_with(p))
    .then_some(chain)
}

/// kube-proxy's partial `iptables-restore` input for the change from `old` to `new` of one Service.
fn iptables_partial(full_new: &str, old: &Frontend, new: &Frontend) -> String {
    let mut keep: BTreeSet<String> = BTreeSet::from([svc_chain(new), ext_chain(new)]);
    keep.extend(new.backends.iter().map(|b| sep_chain(new, b)));
    let stale: Vec<String> = old
        .backends
        .iter()
        .map(|b| sep_chain(old, b))
        .filter(|c| !keep.contains(c))
        .collect();
    let mut out = String::new();
    let mut table = "";
    for line in full_new.lines() {
        if line.starts_with('*') {
            table = line;
        }
        if table == "*nat" && line == "COMMIT" {
            // Stale chains are flushed by declaring them, then deleted.
            for chain in &stale {
                let _ = writeln!(out, "-X {chain}");
            }
        }
        match service_chain_of(line) {
            Some(chain) if !keep.contains(chain) => {}
            _ => {
                out.push_str(line);
                out.push('\n');
            }
        }
        if line == "*nat" {
            for chain in &stale {
                let _ = writeln!(out, ":{chain} - [0:0]");
            }
        }
    }
    out
}

/// kube-proxy's nftables transaction for the change from `old` to `new` of one Service.
fn nft_partial(full_new: &str, old: &Frontend, new: &Frontend) -> String {
    let svc = service_chain(new);
    let new_endpoints: Vec<String> = new
        .backends
        .iter()
        .map(|b| endpoint_chain(new, b))
        .collect();
    let old_endpoints: Vec<String> = old
        .backends
        .iter()
        .map(|b| endpoint_chain(old, b))
        .filter(|c| !new_endpoints.contains(c))
        .collect();
    let mentions = |line: &str, chain: &str| line.split_whitespace().nth(4) == Some(chain);
    let mut out = String::new();
    for chain in &new_endpoints {
        for line in full_new.lines().filter(|l| mentions(l, chain)) {
            out.push_str(line);
            out.push('\n');
        }
    }
    let _ = writeln!(out, "flush chain ip kube-proxy {svc}");
    for line in full_new
        .lines()
        .filter(|l| l.starts_with("add rule") && mentions(l, &svc))
    {
        out.push_str(line);
        out.push('\n');
    }
    for chain in &old_endpoints {
        let _ = writeln!(out, "flush chain ip kube-proxy {chain}");
        let _ = writeln!(out, "delete chain ip kube-proxy {chain}");
    }
    out
}

/// Measures kube-proxy's syncs for `services` x `per_service`; `nft` also times nftables mode (slow at
/// large counts: minutes at 10,000 Services here).
pub fn measure(
    services: usize,
    per_service: usize,
    nft: bool,
    limit: Duration,
) -> anyhow::Result<KubeProxySync> {
    let config = KubeProxyConfig::default();
    let changed = services / 2;
    let before = frontends(services, per_service, None);
    let after = frontends(services, per_service, Some(changed));
    let name = synth::service_name(changed);
    let (old, new) = (
        before
            .iter()
            .find(|f| f.name == name)
            .context("the changed frontend")?,
        after
            .iter()
            .find(|f| f.name == name)
            .context("the changed frontend")?,
    );
    let mut out = KubeProxySync {
        limit_s: limit.as_secs(),
        ..KubeProxySync::default()
    };
    let netns = Netns::new("kp")?;
    let mut timed_out = Vec::new();
    let mut time = |what: &str, command: &[&str], input: &str| -> anyhow::Result<Option<f64>> {
        super::progress(format_args!(
            "kube-proxy: {what} ({:.1} MB of input)",
            super::megabytes(input.len())
        ));
        let took = netns.time(command, input, limit)?;
        if took.is_none() {
            super::progress(format_args!(
                "kube-proxy: {what} ran past {limit:?}; stopped"
            ));
            timed_out.push(what.to_owned());
        }
        Ok(took.map(ms))
    };

    let full = iptables_restore(&before, &config);
    let full_after = iptables_restore(&after, &config);
    out.iptables_rules = full.rules;
    if which::which("iptables-restore").is_ok() {
        let restore = ["iptables-restore", "--noflush", "--counters"];

        out.iptables_full_cold_ms = time(
            "iptables-restore, full, into empty tables",
            &restore,
            &full.text,
        )?;
        if out.iptables_full_cold_ms.is_some() {
            out.iptables_full_ms = time(
                "iptables-restore, full, over the loaded rules",
                &restore,
                &full.text,
            )?;
        } else {
            // The rules are loaded the fast way (tables replaced) so the partial sync can still be
            // timed against a full ruleset.
            super::progress(format_args!(
                "kube-proxy: loading the rules with tables replaced, to time the partial sync"
            ));
            time(
                "iptables-restore, tables replaced (setup)",
                &["iptables-restore"],
                &full.text,
            )?;
        }
        let partial = iptables_partial(&full_after.text, old, new);
        out.iptables_partial_bytes = partial.len();
        out.iptables_partial_ms = time(
            "iptables-restore, partial, one Service changed",
            &restore,
            &partial,
        )?;
    }
    if nft && which::which("nft").is_ok() {
        let script = nft_ruleset(&before, &config);
        let script_after = nft_ruleset(&after, &config);
        out.nft_rules = script.rules;
        let nft_f = ["nft", "-f", "-"];
        out.nft_full_ms = time("nft -f, full", &nft_f, &script.text)?;
        if out.nft_full_ms.is_some() {
            let partial = nft_partial(&script_after.text, old, new);
            out.nft_partial_ms = time("nft -f, partial, one Service changed", &nft_f, &partial)?;
        }
    }
    if which::which("iptables-restore").is_ok() {
        // netbench's way, in a namespace of its own: whole tables replaced.
        let fresh = Netns::new("replace")?;
        super::progress(format_args!(
            "kube-proxy: iptables-restore, tables replaced as netbench loads them"
        ));
        match fresh.time(&["iptables-restore"], &full.text, limit)? {
            Some(took) => out.iptables_replace_ms = Some(ms(took)),
            None => timed_out.push("iptables-restore, tables replaced".to_owned()),
        }
    }
    out.timed_out = timed_out;
    Ok(out)
}
