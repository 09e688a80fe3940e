//! What a run records about the machine it ran on, and the packet-level table it takes from `pktcost`.

use std::{
    fs,
    path::Path,
    process::{Command, Stdio},
};

use super::{
    results::{Machine, PacketCost},
    run::{RunError, progress},
};
use crate::svcscale::status_kib;

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().trim().to_owned()
}

fn command_output(program: &str, args: &[&str]) -> String {
    Command::new(program).args(args).output().ok().map_or_else(
        || "not installed".to_owned(),
        |o| first_line(&String::from_utf8_lossy(&o.stdout)),
    )
}

/// KiB as MiB, for display.
#[expect(
    clippy::cast_precision_loss,
    reason = "memory sizes for display, far below 2^52"
)]
pub fn kib_to_mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// The CPU, memory, kernel and firewall tools of this machine.
pub fn machine() -> Machine {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")?
                .split_once(':')
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    let memory_kib = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| status_kib(&m, "MemTotal"))
        .unwrap_or_default();
    Machine {
        cpu_model,
        cpus: std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
        memory_gib: (kib_to_mib(memory_kib) / 1024.0 * 10.0).round() / 10.0,
        kernel: first_line(&fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default()),
        iptables_version: command_output("iptables", &["--version"]),
        nft_version: command_output("nft", &["--version"]),
    }
}

/// The current time in UTC, `YYYY-MM-DDTHH:MM:SSZ`.
pub fn utc_now() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .ok()
        .map(|o| first_line(&String::from_utf8_lossy(&o.stdout)))
        .unwrap_or_default()
}

/// The packet-level table: `pktcost --json`, run from the same directory as this binary (else from
/// `bin_dir`); `quick` makes it a short pass.
pub fn packet_costs(bin_dir: &Path, quick: bool) -> Result<Vec<PacketCost>, RunError> {
    let pktcost = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join("pktcost")))
        .filter(|p| p.exists())
        .unwrap_or_else(|| bin_dir.join("pktcost"));
    if !pktcost.exists() {
        return Err(RunError::Pktcost(
            "pktcost is not next to netbench: build it (`cargo build -p strait-bench --bins`) or \
             pass --no-pktcost"
                .to_owned(),
        ));
    }
    let mut command = Command::new(&pktcost);
    command.arg("--json");
    if quick {
        command.args([
            "--repeat",
            "100000",
            "--rounds",
            "3",
            "--single-runs",
            "5000",
            "--services",
            "1000",
        ]);
    }
    progress(format_args!(
        "measuring packet-level costs ({})",
        pktcost.display()
    ));
    let output = command
        .stderr(Stdio::inherit())
        .output()
        .map_err(|source| RunError::Io {
            what: format!("running {}", pktcost.display()),
            source,
        })?;
    if !output.status.success() {
        return Err(RunError::Pktcost(format!("failed ({})", output.status)));
    }
    let value: serde_json::Value = serde_json::from_slice(&output.stdout)
        .map_err(|e| RunError::Pktcost(format!("its JSON does not parse: {e}")))?;
    Ok(parse_packet_costs(&value))
}

/// The rows of `pktcost --json`: `paths` as they are, `service_paths` prefixed `single call: `.
fn parse_packet_costs(value: &serde_json::Value) -> Vec<PacketCost> {
    let mut costs = Vec::new();
    for (key, prefix) in [("paths", ""), ("service_paths", "single call: ")] {
        for row in value[key].as_array().into_iter().flatten() {
            if let (Some(path), Some(ns)) = (row["path"].as_str(), row["ns_per_packet"].as_f64()) {
                costs.push(PacketCost {
                    path: format!("{prefix}{path}"),
                    ns_per_packet: ns,
                });
            }
        }
    }
    costs
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn pktcost_rows_are_read_from_both_tables() {
        let value = json!({
            "paths": [{"path": "to stack", "ns_per_packet": 12}, {"path": "broken"}],
            "service_paths": [{"path": "clusterip", "ns_per_packet": 541.5}],
        });
        let costs = parse_packet_costs(&value);
        assert_eq!(
            costs,
            [
                PacketCost {
                    path: "to stack".to_owned(),
                    ns_per_packet: 12.0
                },
                PacketCost {
                    path: "single call: clusterip".to_owned(),
                    ns_per_packet: 541.5
                },
            ]
        );
    }

    #[test]
    fn machine_reads_this_host() {
        let machine = machine();
        assert!(machine.cpus >= 1);
        assert!(machine.memory_gib > 0.0, "{machine:?}");
        assert!(!machine.kernel.is_empty());
    }
}
