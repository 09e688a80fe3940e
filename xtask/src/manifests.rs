//! Checks the committed install manifests (`deploy/kubernetes/`) against the Kubernetes API's own
//! OpenAPI schemas with `kubernetes-validate` (PyPI), strictly (an unknown field fails), for the
//! minor version k8s-openapi's `latest` targets and the oldest one strait supports. The tool is
//! installed once into a virtual environment under `target/`.

use std::{fs, path::Path, process::Command};

use anyhow::{Context as _, Result, bail};

use crate::cmd;

/// The validator release (its schemas cover Kubernetes up to 1.37).
pub const VALIDATOR: &str = "kubernetes-validate==1.37.0";
/// The Kubernetes versions checked: k8s-openapi's `latest` (v1_37) and the oldest supported (1.33:
/// every field the manifests use exists there, `appArmorProfile` since 1.30).
pub const VERSIONS: [&str; 2] = ["1.37.0", "1.33.0"];
/// The manifests, relative to the repository root (the ServiceMonitor, a custom resource, has no
/// schema there; a typed test checks it).
pub const DIR: &str = "deploy/kubernetes";

/// Installs the validator (when missing) and checks every manifest file against each version.
pub fn check(root: &Path, target: &Path) -> Result<()> {
    let venv = target.join("kubernetes-validate");
    let stamp = venv.join("installed");
    if fs::read_to_string(&stamp).ok().as_deref() != Some(VALIDATOR) {
        let _ = fs::remove_dir_all(&venv);
        cmd::run(Command::new("python3").args(["-m", "venv"]).arg(&venv))
            .context("creating a Python virtual environment for kubernetes-validate")?;
        cmd::run(Command::new(venv.join("bin").join("pip")).args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            VALIDATOR,
        ]))
        .context("installing kubernetes-validate from PyPI")?;
        fs::write(&stamp, VALIDATOR)?;
    }
    let dir = root.join(DIR);
    let mut files: Vec<_> = fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("no manifests in {}", dir.display());
    }
    for version in VERSIONS {
        cmd::run(
            Command::new(venv.join("bin").join("kubernetes-validate"))
                .args(["--strict", "--quiet", "-k", version])
                .args(&files),
        )
        .with_context(|| format!("the manifests do not validate against Kubernetes {version}"))?;
        println!(
            "{} manifest files valid against Kubernetes {version} (strict)",
            files.len()
        );
    }
    Ok(())
}
