//! Names outside the cluster zone: the agents forward them to an upstream the test starts inside the
//! lab (Debian's unbound in the external namespace, serving a zone of its own), cache the answers,
//! retry truncated answers over TCP, and answer SERVFAIL without hanging once the upstream is gone.

use std::{
    fmt::Write as _,
    net::SocketAddrV4,
    process::Command,
    time::{Duration, Instant},
};

use strait_lab::{cluster::Lab, network::EXTERNAL_IP, state::LabOptions};
use strait_tests::{InLab, LabGuard};

use crate::examples;

/// Where unbound listens in the external namespace.
const UPSTREAM_PORT: u16 = 5300;
/// TXT records of `big.example.test`: far more than a 1232-byte UDP answer holds.
const BIG_TXT: usize = 40;

fn unbound_conf() -> String {
    let mut conf = format!(
        "server:\n  interface: {EXTERNAL_IP}\n  port: {UPSTREAM_PORT}\n  do-daemonize: no\n  username: \"\"\n  chroot: \"\"\n  pidfile: \"\"\n  use-syslog: no\n  logfile: \"\"\n  do-ip6: no\n  module-config: \"iterator\"\n  access-control: 0.0.0.0/0 allow\n  local-zone: \"example.test.\" static\n  local-data: \"www.example.test. 300 IN A 192.0.2.53\"\n"
    );
    for i in 0..BIG_TXT {
        let _ = writeln!(
            conf,
            "  local-data: 'big.example.test. 300 IN TXT \"{i:03}-{}\"'",
            "x".repeat(96)
        );
    }
    conf
}

fn strait(args: &[&str]) -> Command {
    let mut command = Command::new(strait_tests::bin_dir().join("strait"));
    command.args(args);
    command
}

/// `dig` from `default/client` with `args`: its whole output.
fn dig(name: &str, args: &[&str]) -> String {
    let out = strait(&["lab", "exec", "--name", name, "default/client", "--"])
        .args(["dig", "+tries=1", "+time=4"])
        .args(args)
        .output()
        .expect("dig runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn status(text: &str) -> &str {
    text.split("status: ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .unwrap_or("no answer")
}

#[test]
fn names_outside_the_zone_are_forwarded_cached_and_fail_fast() {
    strait_tests::require_root();
    strait_tests::bin_dir();
    let guard = LabGuard::new("df");
    let options = LabOptions {
        dns_upstream: Some(SocketAddrV4::new(EXTERNAL_IP, UPSTREAM_PORT)),
        ..LabOptions::default()
    };
    let lab =
        Lab::up_with(&guard.name, 1, Some(&examples().join("pods.yaml")), options).expect("lab up");
    let name = lab.state.name.as_str();
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("unbound.conf");
    std::fs::write(&conf, unbound_conf()).unwrap();
    let upstream = InLab::start(
        name,
        "external",
        &["unbound", "-d", "-c", conf.to_str().unwrap()],
        conf.clone(),
    );
    let started = Instant::now();
    let www = loop {
        let text = dig(name, &["www.example.test"]);
        if status(&text) == "NOERROR" {
            break text;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "unbound never answered through the agent: {text}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(www.contains("192.0.2.53"), "{www}");
    assert!(www.contains(" ra"), "recursion available: {www}");
    assert!(
        !www.contains(" aa"),
        "a forwarded answer is not authoritative: {www}"
    );

    // Truncated over UDP upstream, so the agent asked again over TCP; the client gets every record
    // (dig itself retries over TCP when the agent's UDP answer is truncated).
    let big = dig(name, &["big.example.test", "TXT", "+noall", "+answer"]);
    assert_eq!(
        big.lines().filter(|l| l.contains("TXT")).count(),
        BIG_TXT,
        "{big}"
    );

    let missing = dig(name, &["nope.example.test"]);
    assert_eq!(status(&missing), "NXDOMAIN", "{missing}");

    // The upstream gone: what was cached still answers; a new name fails at once with SERVFAIL.
    drop(upstream);
    let cached = dig(name, &["www.example.test", "+noall", "+answer"]);
    assert!(cached.contains("192.0.2.53"), "the cached answer: {cached}");
    let asked = Instant::now();
    let down = dig(name, &["other.example.test"]);
    assert_eq!(status(&down), "SERVFAIL", "{down}");
    assert!(
        asked.elapsed() < Duration::from_secs(4),
        "SERVFAIL took {:?}",
        asked.elapsed()
    );
}
