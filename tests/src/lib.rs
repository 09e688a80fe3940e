//! Shared helpers for strait's root-only test suites: the root check, run-unique names, finding the built
//! binaries, RAII guards that tear down labs and namespaces even when a test fails, and a stand-in
//! Kubernetes API server on loopback.

use std::{
    path::PathBuf,
    sync::atomic::{AtomicU32, Ordering},
};

use strait_dataplane::netns;

pub mod frames;
pub mod stand_in_api;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Panics with a clear message unless running as root (the suites need namespaces and BPF).
pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "strait's kernel tests need root (network namespaces, BPF); run them through `cargo xtask test` as root"
    );
}

/// A name unique to this test process and call, short enough for lab and interface names.
pub fn unique(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    format!("{prefix}{:x}x{n}", std::process::id())
}

/// The directory with the built binaries; also exported as STRAIT_BIN_DIR for the lab library.
pub fn bin_dir() -> PathBuf {
    let dir = std::env::var_os("STRAIT_BIN_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/debug"),
        PathBuf::from,
    );
    for bin in ["strait", "straitd", "strait-cni"] {
        assert!(
            dir.join(bin).exists(),
            "{bin} is not built in {}; run `cargo build --bins` first (cargo xtask test does)",
            dir.display()
        );
    }
    // SAFETY: set once, before any thread of ours reads the environment concurrently with it.
    unsafe { std::env::set_var("STRAIT_BIN_DIR", &dir) };
    dir
}

/// Tears the lab down on drop.
pub struct LabGuard {
    pub name: String,
}

impl LabGuard {
    /// A guard for a new, run-unique lab name.
    pub fn new(prefix: &str) -> Self {
        let name = unique(prefix);
        let _ = strait_lab::down(&name);
        Self { name }
    }
}

impl Drop for LabGuard {
    fn drop(&mut self) {
        if let Err(error) = strait_lab::down(&self.name) {
            eprintln!("cleaning up lab {}: {error}", self.name);
        }
    }
}

/// A server the test runs inside a lab through `strait lab exec LAB WHERE -- ARGV` (unbound, knot,
/// Prometheus), stopped when dropped: `strait lab exec` runs it as its child, so it is found by its
/// run-unique configuration file.
pub struct InLab {
    exec: std::process::Child,
    conf: PathBuf,
}

impl InLab {
    /// Starts `argv` in `place` (`external`, `node/NAME` or `NS/POD`) of lab `lab`; `conf` is the
    /// run-unique file named in `argv` by which it is stopped.
    pub fn start(lab: &str, place: &str, argv: &[&str], conf: PathBuf) -> Self {
        let exec = std::process::Command::new(bin_dir().join("strait"))
            .args(["lab", "exec", "--name", lab, place, "--"])
            .args(argv)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("strait lab exec starts");
        Self { exec, conf }
    }
}

impl Drop for InLab {
    fn drop(&mut self) {
        let _ = std::process::Command::new("pkill")
            .arg("-f")
            .arg(self.conf.as_os_str())
            .status();
        // `strait lab exec` reaps the server and exits; killed only if it does not.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while matches!(self.exec.try_wait(), Ok(None)) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = self.exec.kill();
        let _ = self.exec.wait();
    }
}

/// A named network namespace deleted on drop.
pub struct NetnsGuard {
    pub name: String,
    pub path: PathBuf,
}

impl NetnsGuard {
    /// Creates a run-unique namespace.
    pub fn new(prefix: &str) -> Self {
        let name = unique(prefix);
        let path = netns::create(&name).expect("creating a test namespace");
        Self { name, path }
    }
}

impl Drop for NetnsGuard {
    fn drop(&mut self) {
        let _ = netns::delete(&self.name);
    }
}
