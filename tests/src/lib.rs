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
