//! `cargo xtask bootstrap`: installs what the build and the tests need, and only what is missing, so a
//! second run changes nothing. One line per item: `ok: ...` when present, `installing: ...` otherwise.
//!
//! - `rust-src` for the nightly toolchain (the eBPF crate is built with `-Z build-std=core`);
//! - bpf-linker, built against the libLLVM that ships inside the nightly toolchain (no system LLVM);
//! - cargo-fuzz, which runs the DNS server's fuzz target (`dns/fuzz`);
//! - the Debian packages whose commands the lab and the tests run (needs root to install).

use std::{
    env,
    ffi::OsString,
    fs, io,
    os::unix::fs::symlink,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail, ensure};

use crate::{Workspace, cmd};

/// The bpf-linker release to install; any release with the same major.minor is accepted as present.
const BPF_LINKER_VERSION: &str = "0.13.0";
/// bpf-linker's cargo feature matching the nightly toolchain's LLVM major version.
const BPF_LINKER_LLVM_FEATURE: &str = "llvm-22";
/// The nightly toolchain's libLLVM: `$SYSROOT/lib/libLLVM.so.22*-nightly`.
const NIGHTLY_LLVM_PREFIX: &str = "libLLVM.so.22";
const NIGHTLY_LLVM_SUFFIX: &str = "-nightly";

/// (command or absolute file, Debian package providing it): a package is installed when its command is
/// not on PATH (or its file does not exist). iptables and nftables are netbench's kube-proxy baselines,
/// ipset its kube-router (NetworkPolicy) baseline; dig asks the cluster DNS in tests, unbound is the
/// forwarding tests' upstream and with knot `netbench dns`'s reference servers, dnsperf its load;
/// the font is what netbench's charts are drawn with.
const PACKAGES: &[(&str, &str)] = &[
    ("ip", "iproute2"),
    ("ping", "iputils-ping"),
    ("iptables-restore", "iptables"),
    ("nft", "nftables"),
    ("ipset", "ipset"),
    ("dig", "bind9-dnsutils"),
    ("unbound", "unbound"),
    ("knotd", "knot"),
    ("dnsperf", "dnsperf"),
    ("prometheus", "prometheus"),
    ("npm", "npm"),
    (
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
        "fonts-dejavu-core",
    ),
];

/// Where `check` (a command, or an absolute path) is, if it is present.
fn present(check: &str) -> Option<PathBuf> {
    if check.starts_with('/') {
        let path = PathBuf::from(check);
        return path.exists().then_some(path);
    }
    cmd::find_in_path(check)
}

/// Installs whatever is missing and says what it did.
pub fn run(ws: &Workspace) -> Result<()> {
    let mut installed = 0;
    installed += usize::from(rust_src()?);
    installed += usize::from(bpf_linker(ws)?);
    installed += usize::from(cargo_fuzz()?);
    installed += debian_packages()?;
    if installed == 0 {
        println!("bootstrap: everything present, nothing to do");
    } else {
        println!("bootstrap: installed {installed} item(s)");
    }
    Ok(())
}

/// Only what building the binaries needs: rust-src for nightly and bpf-linker (the Containerfile's
/// builder stage).
pub fn run_build_only(ws: &Workspace) -> Result<()> {
    let installed = usize::from(rust_src()?) + usize::from(bpf_linker(ws)?);
    println!("bootstrap (build only): installed {installed} item(s)");
    Ok(())
}

/// The cargo-fuzz release installed when none is on PATH (the DNS handler's fuzz target,
/// `dns/fuzz`).
const CARGO_FUZZ_VERSION: &str = "0.13.2";

/// cargo-fuzz, which runs `dns/fuzz`'s target. Returns whether it had to be installed.
fn cargo_fuzz() -> Result<bool> {
    let found = cmd::find_in_path("cargo-fuzz").or_else(|| {
        cargo_bin_dir()
            .map(|dir| dir.join("cargo-fuzz"))
            .filter(|path| cmd::is_executable(path))
    });
    if let Some(path) = found {
        println!("ok: cargo-fuzz present ({})", path.display());
        return Ok(false);
    }
    println!("installing: cargo-fuzz {CARGO_FUZZ_VERSION}");
    cmd::run(Command::new("cargo").args([
        "install",
        "cargo-fuzz",
        "--locked",
        "--version",
        CARGO_FUZZ_VERSION,
    ]))?;
    Ok(true)
}

/// `rust-src` for nightly. Returns whether it had to be installed.
fn rust_src() -> Result<bool> {
    let installed = cmd::probe(Command::new("rustup").args([
        "+nightly",
        "component",
        "list",
        "--installed",
    ]))
    .context(
        "`rustup +nightly component list --installed` failed: is rustup on PATH and the nightly \
         toolchain installed?",
    )?;
    if installed
        .lines()
        .any(|line| line.trim() == "rust-src" || line.starts_with("rust-src-"))
    {
        println!("ok: rust-src (nightly) present");
        return Ok(false);
    }
    println!("installing: rust-src (nightly)");
    cmd::run(Command::new("rustup").args([
        "component",
        "add",
        "rust-src",
        "--toolchain",
        "nightly",
    ]))?;
    Ok(true)
}

/// bpf-linker linked against the nightly toolchain's libLLVM. Returns whether it had to be installed.
fn bpf_linker(ws: &Workspace) -> Result<bool> {
    let sysroot = nightly_sysroot()?;
    let lib_dir = sysroot.join("lib");
    match find_bpf_linker() {
        Some(path) => match bpf_linker_version(&path, &lib_dir) {
            Some(version) if same_minor(&version, BPF_LINKER_VERSION) => {
                println!("ok: bpf-linker {version} present");
                return Ok(false);
            }
            Some(version) => println!(
                "installing: bpf-linker {BPF_LINKER_VERSION} ({} is version {version})",
                path.display()
            ),
            None => println!(
                "installing: bpf-linker {BPF_LINKER_VERSION} ({} does not run)",
                path.display()
            ),
        },
        None => println!("installing: bpf-linker {BPF_LINKER_VERSION} (not found)"),
    }

    let llvm = nightly_libllvm(&lib_dir)?;
    let prefix = ws.target.join("xtask").join("llvm");
    let prefix_lib = prefix.join("lib");
    fs::create_dir_all(&prefix_lib)
        .with_context(|| format!("cannot create {}", prefix_lib.display()))?;
    let link = prefix_lib.join("libLLVM.so");
    match fs::remove_file(&link) {
        Ok(()) => {}
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(err) => return Err(err).with_context(|| format!("cannot replace {}", link.display())),
    }
    symlink(&llvm, &link)
        .with_context(|| format!("cannot link {} to {}", link.display(), llvm.display()))?;
    println!("linked {} -> {}", link.display(), llvm.display());

    // --force: an existing but unusable bpf-linker of the same version would otherwise be kept.
    cmd::run(Command::new("cargo").env("LLVM_PREFIX", &prefix).args([
        "install",
        "bpf-linker",
        "--locked",
        "--force",
        "--version",
        BPF_LINKER_VERSION,
        "--no-default-features",
        "--features",
        BPF_LINKER_LLVM_FEATURE,
    ]))?;

    let path = find_bpf_linker().context("bpf-linker was installed but cannot be found")?;
    let version = bpf_linker_version(&path, &lib_dir).with_context(|| {
        format!(
            "bpf-linker was installed but `{} --version` fails",
            path.display()
        )
    })?;
    ensure!(
        same_minor(&version, BPF_LINKER_VERSION),
        "bpf-linker was installed but reports version {version}, not {BPF_LINKER_VERSION}"
    );
    if cmd::find_in_path("bpf-linker").is_none() {
        println!(
            "note: {} is not on PATH; add its directory so the eBPF build finds it",
            path.display()
        );
    }
    Ok(true)
}

/// The Debian packages whose command is missing. Returns how many were installed.
fn debian_packages() -> Result<usize> {
    let mut missing = Vec::new();
    for &(command, package) in PACKAGES {
        if let Some(path) = present(command) {
            println!("ok: {package} present ({})", path.display());
        } else {
            println!("missing: {package} (no `{command}`)");
            missing.push(package);
        }
    }
    if missing.is_empty() {
        return Ok(0);
    }
    let list = missing.join(" ");
    if !cmd::is_root()? {
        bail!(
            "installing Debian packages ({list}) needs root: run `cargo xtask bootstrap` as root, or \
             install them yourself with `sudo apt-get install {list}`"
        );
    }
    println!("installing: {list}");
    cmd::run(Command::new("apt-get").arg("update"))?;
    cmd::run(
        Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y"])
            .args(&missing),
    )?;
    for &(command, package) in PACKAGES {
        if missing.contains(&package) {
            ensure!(
                present(command).is_some(),
                "{package} was installed but `{command}` is still missing"
            );
        }
    }
    Ok(missing.len())
}

fn nightly_sysroot() -> Result<PathBuf> {
    let out = cmd::probe(Command::new("rustc").args(["+nightly", "--print", "sysroot"]))
        .context("`rustc +nightly --print sysroot` failed: is the nightly toolchain installed?")?;
    let sysroot = PathBuf::from(out.trim());
    ensure!(
        sysroot.is_dir(),
        "the nightly sysroot {} is not a directory",
        sysroot.display()
    );
    Ok(sysroot)
}

/// `$SYSROOT/lib/libLLVM.so.22*-nightly`, the first in name order.
fn nightly_libllvm(lib_dir: &Path) -> Result<PathBuf> {
    let mut found: Vec<PathBuf> = fs::read_dir(lib_dir)
        .with_context(|| format!("cannot list {}", lib_dir.display()))?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| {
                    name.starts_with(NIGHTLY_LLVM_PREFIX) && name.ends_with(NIGHTLY_LLVM_SUFFIX)
                })
        })
        .collect();
    found.sort();
    found.into_iter().next().with_context(|| {
        format!(
            "no {NIGHTLY_LLVM_PREFIX}*{NIGHTLY_LLVM_SUFFIX} in {}: the nightly toolchain's LLVM \
             is not LLVM 22, update BPF_LINKER_LLVM_FEATURE in xtask",
            lib_dir.display()
        )
    })
}

/// bpf-linker on PATH, else in cargo's install directory.
fn find_bpf_linker() -> Option<PathBuf> {
    cmd::find_in_path("bpf-linker").or_else(|| {
        cargo_bin_dir()
            .map(|dir| dir.join("bpf-linker"))
            .filter(|path| cmd::is_executable(path))
    })
}

/// Where `cargo install` puts binaries: `$CARGO_INSTALL_ROOT/bin`, `$CARGO_HOME/bin` or `~/.cargo/bin`.
fn cargo_bin_dir() -> Option<PathBuf> {
    let non_empty = |key: &str| env::var_os(key).filter(|value| !value.is_empty());
    non_empty("CARGO_INSTALL_ROOT")
        .map(PathBuf::from)
        .or_else(|| non_empty("CARGO_HOME").map(PathBuf::from))
        .or_else(|| non_empty("HOME").map(|home| PathBuf::from(home).join(".cargo")))
        .map(|root| root.join("bin"))
}

/// The version `bpf-linker --version` prints (`bpf-linker 0.13.0`), run with the nightly libLLVM on
/// the library path; `None` when it does not run.
fn bpf_linker_version(path: &Path, lib_dir: &Path) -> Option<String> {
    let mut library_path = OsString::from(lib_dir);
    if let Some(existing) = env::var_os("LD_LIBRARY_PATH").filter(|value| !value.is_empty()) {
        library_path.push(":");
        library_path.push(existing);
    }
    let out = cmd::probe(
        Command::new(path)
            .arg("--version")
            .env("LD_LIBRARY_PATH", library_path),
    )?;
    out.split_whitespace().nth(1).map(str::to_owned)
}

/// Whether two `major.minor.patch` versions share major and minor.
fn same_minor(a: &str, b: &str) -> bool {
    a.split('.').take(2).eq(b.split('.').take(2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_major_and_minor() {
        assert!(same_minor("0.13.0", BPF_LINKER_VERSION));
        assert!(same_minor("0.13.2", BPF_LINKER_VERSION));
        assert!(!same_minor("0.12.0", BPF_LINKER_VERSION));
        assert!(!same_minor("0.1", BPF_LINKER_VERSION));
    }
}
