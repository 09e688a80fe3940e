//! Checks the dashboards against Grafana's published dashboard schema: the TypeScript types of the
//! classic dashboard JSON model in npm's `@grafana/schema` (generated from Grafana's own CUE kind).
//! Each dashboard's JSON becomes the value of a `const d: Dashboard` in a `.ts` file, and `tsc
//! --strict` checks it: a missing field, a wrong type, an unknown key or a value outside an enum
//! (a variable type, a hide mode) fails. The packages are installed once under `target/`.

use std::{fs, path::Path, process::Command};

use anyhow::{Context as _, Result};

use super::{DIR, all};
use crate::cmd;

/// The `@grafana/schema` release checked against (Grafana 13.2's dashboard model).
pub const GRAFANA_SCHEMA: &str = "@grafana/schema@13.2.3";
/// The TypeScript compiler that checks.
pub const TYPESCRIPT: &str = "typescript@5.9.3";

/// Installs the packages (when missing) into `target/grafana-schema` and type-checks every
/// dashboard in `root/deploy/grafana`.
pub fn check(root: &Path, target: &Path) -> Result<()> {
    let dir = target.join("grafana-schema");
    let stamp = dir.join("installed");
    let wanted = format!("{GRAFANA_SCHEMA} {TYPESCRIPT}\n");
    if fs::read_to_string(&stamp).ok().as_deref() != Some(wanted.as_str()) {
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        fs::write(dir.join("package.json"), "{\"private\": true}\n")?;
        cmd::run(
            Command::new("npm")
                .args(["install", "--no-audit", "--no-fund", "--silent"])
                .args([GRAFANA_SCHEMA, TYPESCRIPT])
                .current_dir(&dir),
        )
        .context("installing Grafana's dashboard schema and TypeScript with npm")?;
        fs::write(&stamp, &wanted)?;
    }
    let checks = dir.join("dashboards");
    let _ = fs::remove_dir_all(&checks);
    fs::create_dir_all(&checks)?;
    let mut files = Vec::new();
    for dashboard in all() {
        let source = root.join(DIR).join(dashboard.file_name());
        let json =
            fs::read_to_string(&source).with_context(|| format!("reading {}", source.display()))?;
        let file = checks.join(format!("{}.ts", dashboard.uid));
        fs::write(
            &file,
            format!(
                "// {}\nimport type {{ Dashboard }} from '@grafana/schema';\nexport const d: Dashboard = {};\n",
                source.display(),
                json.trim_end()
            ),
        )?;
        files.push(file);
    }
    cmd::run(
        Command::new(dir.join("node_modules").join(".bin").join("tsc"))
            .args([
                "--strict",
                "--noEmit",
                "--module",
                "nodenext",
                "--moduleResolution",
                "nodenext",
                "--target",
                "es2022",
                "--skipLibCheck",
            ])
            .args(&files)
            .current_dir(&dir),
    )
    .context(
        "a dashboard does not match Grafana's dashboard schema (tsc's errors above name the field)",
    )?;
    println!(
        "{} dashboards match {GRAFANA_SCHEMA}'s Dashboard type",
        files.len()
    );
    Ok(())
}
