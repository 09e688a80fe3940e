//! Builds the eBPF object (`strait-ebpf`) with aya-build and the nightly toolchain. With `AYA_BUILD_SKIP=1`
//! an empty placeholder is written instead, so `cargo check`, clippy and docs work without bpf-linker; the
//! loader then reports that the object is missing.

use std::{env, fs, path::PathBuf};

use anyhow::{Context as _, anyhow};
use aya_build::{Package, Toolchain};

fn main() -> anyhow::Result<()> {
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").ok_or_else(|| anyhow!("OUT_DIR not set"))?);
    let object = out_dir.join("strait-ebpf");
    let skip = env::var("AYA_BUILD_SKIP").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
    println!("cargo:rerun-if-env-changed=AYA_BUILD_SKIP");
    if skip {
        fs::write(&object, []).context("writing the placeholder eBPF object")?;
        return Ok(());
    }
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?);
    let ebpf_dir = manifest_dir.join("../ebpf/programs");
    let abi_dir = manifest_dir.join("../ebpf/abi");
    println!("cargo:rerun-if-changed={}", abi_dir.display());
    let root_dir = ebpf_dir
        .to_str()
        .context("non-UTF-8 path to the eBPF crate")?;
    aya_build::build_ebpf(
        [Package {
            name: "strait-ebpf",
            root_dir,
            ..Package::default()
        }],
        Toolchain::Nightly,
    )
}
