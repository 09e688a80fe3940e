//! The benchmark binaries piped into a reader that has gone (`| head -1`): they stop quietly, with
//! status 0 and no panic, instead of panicking on the broken pipe. `pktcost` loads eBPF programs, so
//! this test runs as root, like the others in this directory.

use std::{
    fs,
    process::{Command, Output, Stdio},
};

/// Runs `command` with its stdout a pipe whose read end is already closed.
fn run_into_closed_pipe(mut command: Command) -> Output {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    command
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .expect("the binary runs")
}

fn assert_quiet(output: &Output, what: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("panicked"),
        "{what} panicked on the closed pipe:\n{stderr}"
    );
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{stderr}",
        output.status
    );
}

#[test]
fn netbench_report_stops_quietly_and_still_writes_its_files() {
    let dir = tempfile::TempDir::new().unwrap();
    let from = dir.path().join("run.json");
    fs::write(
        &from,
        r#"{"machine":{"cpu_model":"x","cpus":2,"memory_gib":1.0,"kernel":"k",
            "iptables_version":"i","nft_version":"n"},
            "config":{"quick":true,"test_seconds":1.0,"services":[1],"endpoints_per_service":3,
            "started_at":"t","duration_s":1.0},"cells":[],"packet_costs":[]}"#,
    )
    .unwrap();
    let out = dir.path().join("out");
    let mut command = Command::new(env!("CARGO_BIN_EXE_netbench"));
    command
        .args(["report", "--from"])
        .arg(&from)
        .arg("--out")
        .arg(&out);
    assert_quiet(&run_into_closed_pipe(command), "netbench report");
    // The files come before the tables, so a closed stdout loses nothing else.
    assert!(out.join("netbench.json").exists());
}

#[test]
fn pktcost_stops_quietly() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "pktcost loads eBPF programs: run this test as root"
    );
    let mut command = Command::new(env!("CARGO_BIN_EXE_pktcost"));
    command.args([
        "--repeat",
        "1000",
        "--rounds",
        "1",
        "--single-runs",
        "50",
        "--services",
        "2",
    ]);
    assert_quiet(&run_into_closed_pipe(command), "pktcost");
}
