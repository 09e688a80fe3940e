//! strait as netbench runs it: a one-node strait lab (agent, eBPF programs, CNI plugin) with the pods
//! `netbench/client` and `netbench/server`, and the run's Services published to the agent the way the
//! lab's control plane publishes objects (one file in the cluster directory), timed from the file's
//! rename until the agent's `/syncz` shows a sync that began after it. [`StraitStack`] tears the lab
//! down when dropped.

use std::{
    fs,
    net::Ipv4Addr,
    path::PathBuf,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use strait_lab::{LabError, cluster::Lab, process::Placement};

use super::{
    catalog::{Catalog, TARGET_NAME, TARGET_NAMESPACE},
    memory,
    results::Programming,
};
use crate::svcscale::sync_lines;

/// The file the run's Services and EndpointSlices are published in.
const SERVICES_FILE: &str = "netbench-services.json";
/// How often `/syncz` is polled while waiting for a sync.
const SYNC_POLL: Duration = Duration::from_millis(10);
/// When the log shows the sync but `/syncz` does not pass the rename for this long, the log's time is
/// used (a poll that began in the rename's millisecond is stamped before it).
const SYNCZ_STALL: Duration = Duration::from_secs(2);

/// The client and server pods (the lab runs its own workload in them; netbench adds its server).
fn pods_manifest() -> String {
    let pod = |name: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: {TARGET_NAMESPACE}\n  \
             labels:\n    app: {name}\nspec:\n  containers:\n    - name: {name}\n      image: netbench\n"
        )
    };
    // The lab, like an API server, refuses objects in a namespace that does not exist.
    format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {TARGET_NAMESPACE}\n---\n{}---\n{}",
        pod("client"),
        pod(TARGET_NAME)
    )
}

/// A strait lab set up for one netbench cell.
pub struct StraitStack {
    lab: Lab,
}

impl StraitStack {
    /// Brings up the one-node lab `name` with the client and server pods.
    pub fn up(name: &str) -> Result<Self, LabError> {
        let manifest = std::env::temp_dir().join(format!("{name}-pods.yaml"));
        fs::write(&manifest, pods_manifest())
            .map_err(|e| LabError::io(format!("writing {}", manifest.display()), e))?;
        let lab = Lab::up(name, 1, Some(&manifest));
        let _ = fs::remove_file(&manifest);
        Ok(Self { lab: lab? })
    }

    /// The lab's name.
    pub fn name(&self) -> &str {
        &self.lab.names.lab
    }

    /// The address of pod `netbench/<pod>`.
    pub fn pod_ip(&self, pod: &str) -> Result<Ipv4Addr, LabError> {
        self.lab
            .state
            .pod(&format!("{TARGET_NAMESPACE}/{pod}"))
            .map(|p| p.ip)
            .ok_or_else(|| {
                LabError::Environment(format!("lab has no pod {TARGET_NAMESPACE}/{pod}"))
            })
    }

    /// The node's underlay address.
    pub fn node_ip(&self) -> Ipv4Addr {
        self.lab.state.nodes[0].ip
    }

    /// Where a process of `who` (`netbench/client`, `netbench/server` or `external`) runs: the pods'
    /// placements include their cgroup, where strait's socket hooks translate service addresses.
    pub fn placement(&self, who: &str) -> Result<Placement, LabError> {
        self.lab.placement(who)
    }

    /// Publishes `catalog` to the agent and waits until it is in the kernel: the time that took, the
    /// kernel memory it cost, the agent's RSS and its BPF maps' locked memory afterwards.
    pub fn program(&self, catalog: &Catalog, timeout: Duration) -> Result<Programming, LabError> {
        let node = &self.lab.state.nodes[0];
        let dir = self.lab.cluster_dir();
        let log = self.lab.names.node_dir(&node.name).join("agent.log");
        let mut text = String::with_capacity(catalog.services.len() * 1200);
        let json = |value: serde_json::Result<String>| {
            value.map_err(|e| LabError::Environment(format!("serializing the services: {e}")))
        };
        for (service, slice) in catalog.services.iter().zip(&catalog.slices) {
            text.push_str(&json(serde_json::to_string(service))?);
            text.push('\n');
            text.push_str(&json(serde_json::to_string(slice))?);
            text.push('\n');
        }
        let tmp = dir.join(format!(".{SERVICES_FILE}.tmp"));
        let target = dir.join(SERVICES_FILE);
        fs::write(&tmp, &text)
            .map_err(|e| LabError::io(format!("writing {}", tmp.display()), e))?;

        let log_offset = fs::metadata(&log).map_or(0, |m| m.len());
        let kernel_before = memory::kernel_kib();
        let started = Instant::now();
        fs::rename(&tmp, &target)
            .map_err(|e| LabError::io(format!("renaming to {}", target.display()), e))?;
        let renamed_ms = now_ms();
        let wall = self.wait_synced(renamed_ms, started, &log, log_offset, timeout)?;
        let kernel_after = memory::kernel_kib();
        let frontends = last_sync_frontends(&log, log_offset).unwrap_or_default();
        Ok(Programming {
            wall_ms: wall.as_secs_f64() * 1000.0,
            kernel_kib: signed_delta(kernel_before, kernel_after),
            agent_rss_kib: memory::rss_kib(node.agent_pid),
            bpf_map_kib: memory::bpf_map_kib(node.agent_pid),
            objects: frontends,
        })
    }

    fn syncz(&self) -> Option<u64> {
        let node = &self.lab.state.nodes[0].name;
        self.lab
            .agent_get(node, "/syncz")
            .ok()
            .and_then(|body| body.trim().parse().ok())
    }

    /// Waits until `/syncz` passes `renamed_ms` (or, when it stalls, the log shows the sync).
    fn wait_synced(
        &self,
        renamed_ms: u64,
        started: Instant,
        log: &std::path::Path,
        log_offset: u64,
        timeout: Duration,
    ) -> Result<Duration, LabError> {
        let mut logged: Option<(Instant, Duration)> = None;
        loop {
            if self.syncz().is_some_and(|at| at > renamed_ms) {
                return Ok(started.elapsed());
            }
            match logged {
                None => {
                    if let Some(at_ms) = last_sync_at(log, log_offset) {
                        let since = Duration::from_millis(at_ms.saturating_sub(renamed_ms));
                        logged = Some((Instant::now(), since));
                    }
                }
                Some((seen, since)) if seen.elapsed() > SYNCZ_STALL => return Ok(since),
                Some(_) => {}
            }
            if started.elapsed() > timeout {
                return Err(LabError::Environment(format!(
                    "the agent of lab {} did not sync {SERVICES_FILE} within {} s (see {})",
                    self.name(),
                    timeout.as_secs(),
                    log.display()
                )));
            }
            std::thread::sleep(SYNC_POLL);
        }
    }

    /// The lab's state directory (logs are under it).
    pub fn run_dir(&self) -> PathBuf {
        self.lab.names.run_dir()
    }
}

impl Drop for StraitStack {
    fn drop(&mut self) {
        if let Err(error) = strait_lab::down(&self.lab.names.lab) {
            eprintln!("netbench: cleaning up lab {}: {error}", self.lab.names.lab);
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// `after - before` in KiB, 0 when either is unknown.
pub fn signed_delta(before: Option<u64>, after: Option<u64>) -> i64 {
    match (before, after) {
        (Some(b), Some(a)) => {
            i64::try_from(a).unwrap_or(i64::MAX) - i64::try_from(b).unwrap_or(i64::MAX)
        }
        _ => 0,
    }
}

/// When the last sync logged after `offset` finished (ms since the epoch), if it added anything.
fn last_sync_at(log: &std::path::Path, offset: u64) -> Option<u64> {
    sync_lines(log, offset)
        .into_iter()
        .rfind(|l| l.added + l.updated + l.removed > 0)
        .and_then(|l| l.at_ms)
}

/// The frontend count of the last sync logged after `offset`.
fn last_sync_frontends(log: &std::path::Path, offset: u64) -> Option<u64> {
    sync_lines(log, offset).last().map(|l| l.frontends)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pods_manifest_parses_as_the_benchmark_namespace_and_two_pods_in_it() {
        let objects =
            strait_lab::manifests::parse_str(std::path::Path::new("pods.yaml"), &pods_manifest())
                .unwrap();
        let names: Vec<String> = objects
            .iter()
            .map(|o| format!("{} {}/{}", o.kind(), o.namespace(), o.name()))
            .collect();
        assert_eq!(
            names,
            [
                "Namespace netbench/netbench",
                "Pod netbench/client",
                "Pod netbench/server"
            ]
        );
    }

    #[test]
    fn deltas_are_signed_and_unknown_is_zero() {
        assert_eq!(signed_delta(Some(10), Some(4)), -6);
        assert_eq!(signed_delta(Some(4), Some(10)), 6);
        assert_eq!(signed_delta(None, Some(10)), 0);
    }
}
