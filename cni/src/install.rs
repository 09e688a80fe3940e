//! Installing the plugin on a node, as the DaemonSet's init container does: the `strait-cni` binary
//! into the host's CNI binary directory and the network configuration list into its configuration
//! directory, under a host root (`/host` in the container, where the node's directories are mounted).
//!
//! Each file is written to a temporary name in its directory and renamed over the old one, so kubelet
//! (or the runtime) never execs a half-written plugin nor reads a half-written configuration; a file
//! whose content and mode are already right is left alone, so running the step again changes nothing.
//! The configuration is checked before anything is written: a list the plugin would refuse is an
//! error, and nothing changes on the node.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use crate::config::NetworkConfig;

/// Where kubelet and the container runtimes look, relative to the host root.
pub const BIN_DIR: &str = "opt/cni/bin";
/// The runtimes' configuration directory, relative to the host root.
pub const CONF_DIR: &str = "etc/cni/net.d";
/// The plugin's file name (the conflist's `type`).
pub const PLUGIN_NAME: &str = "strait-cni";
/// The configuration's file name: runtimes use the first file by name, so `05-` comes before the
/// `10-flannel.conflist` or `10-containerd-net.conflist` a node may still hold.
pub const DEFAULT_CONFLIST_NAME: &str = "05-strait.conflist";

/// What to install where.
#[derive(Clone, Debug)]
pub struct InstallPlan {
    /// The node's root as the installer sees it (`/` on the node itself).
    pub host_root: PathBuf,
    /// The plugin binary to copy.
    pub plugin: PathBuf,
    /// The network configuration list's text.
    pub conflist: Vec<u8>,
    /// Its file name in the configuration directory.
    pub conflist_name: String,
}

/// What happened to one file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileOutcome {
    /// Written (new or changed).
    Written,
    /// Already as it should be; not touched.
    Unchanged,
    /// Removed (uninstall).
    Removed,
    /// Not there (uninstall).
    Absent,
}

/// What an install or uninstall did, file by file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstallReport {
    pub files: Vec<(PathBuf, FileOutcome)>,
}

/// Why installing failed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("the network configuration list is not valid: {0}")]
    BadConflist(String),
    #[error("the file name {0:?} is not a plain .conflist file name")]
    BadConflistName(String),
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl InstallError {
    fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> Self + 'a {
        move |source| Self::Io {
            what,
            path: path.to_owned(),
            source,
        }
    }
}

impl InstallPlan {
    /// The plugin's place on the node.
    pub fn plugin_target(&self) -> PathBuf {
        self.host_root.join(BIN_DIR).join(PLUGIN_NAME)
    }

    /// The configuration's place on the node.
    pub fn conflist_target(&self) -> PathBuf {
        self.host_root.join(CONF_DIR).join(&self.conflist_name)
    }

    fn check(&self) -> Result<(), InstallError> {
        let name = &self.conflist_name;
        if name.contains('/') || name.starts_with('.') || !name.ends_with(".conflist") {
            return Err(InstallError::BadConflistName(name.clone()));
        }
        check_conflist(&self.conflist)
    }
}

/// Checks a network configuration list as a runtime and the plugin read it: JSON with `cniVersion`,
/// `name` and `plugins`, whose `strait-cni` entry the plugin itself accepts.
pub fn check_conflist(text: &[u8]) -> Result<(), InstallError> {
    let bad = |why: String| InstallError::BadConflist(why);
    let list: serde_json::Value =
        serde_json::from_slice(text).map_err(|e| bad(format!("not JSON: {e}")))?;
    let version = list["cniVersion"]
        .as_str()
        .ok_or_else(|| bad("no cniVersion".into()))?;
    let name = list["name"]
        .as_str()
        .ok_or_else(|| bad("no network name".into()))?;
    let plugins = list["plugins"]
        .as_array()
        .ok_or_else(|| bad("no plugins list".into()))?;
    let ours = plugins
        .iter()
        .find(|p| p["type"] == PLUGIN_NAME)
        .ok_or_else(|| bad(format!("no plugin of type {PLUGIN_NAME}")))?;
    // The runtime hands each plugin its entry with the list's version and name added.
    let mut entry = ours.clone();
    entry["cniVersion"] = version.into();
    entry["name"] = name.into();
    let stdin = serde_json::to_vec(&entry).map_err(|e| bad(e.to_string()))?;
    NetworkConfig::parse(&stdin).map_err(|e| bad(format!("{PLUGIN_NAME}: {e}")))?;
    Ok(())
}

/// Installs the plugin and the configuration (checked first; nothing is written when it is bad).
pub fn install(plan: &InstallPlan) -> Result<InstallReport, InstallError> {
    plan.check()?;
    let plugin = fs::read(&plan.plugin).map_err(InstallError::io("reading", &plan.plugin))?;
    let mut files = Vec::new();
    for (target, bytes, mode) in [
        (plan.plugin_target(), plugin.as_slice(), 0o755),
        (plan.conflist_target(), plan.conflist.as_slice(), 0o644),
    ] {
        let outcome = write_if_changed(&target, bytes, mode)?;
        files.push((target, outcome));
    }
    Ok(InstallReport { files })
}

/// Removes the plugin and the configuration (the configuration first: from then on the runtime
/// starts no new pod with strait).
pub fn uninstall(plan: &InstallPlan) -> Result<InstallReport, InstallError> {
    let mut files = Vec::new();
    for target in [plan.conflist_target(), plan.plugin_target()] {
        let outcome = match fs::remove_file(&target) {
            Ok(()) => FileOutcome::Removed,
            Err(e) if e.kind() == io::ErrorKind::NotFound => FileOutcome::Absent,
            Err(e) => return Err(InstallError::io("removing", &target)(e)),
        };
        files.push((target, outcome));
    }
    Ok(InstallReport { files })
}

/// Writes `bytes` with `mode` to `target` through a temporary file and a rename, unless it holds them
/// already.
fn write_if_changed(target: &Path, bytes: &[u8], mode: u32) -> Result<FileOutcome, InstallError> {
    if let Ok(current) = fs::read(target) {
        let current_mode = fs::metadata(target)
            .map(|m| m.permissions().mode() & 0o7777)
            .unwrap_or_default();
        if current == bytes && current_mode == mode {
            return Ok(FileOutcome::Unchanged);
        }
    }
    let dir = target.parent().unwrap_or(Path::new("/"));
    fs::create_dir_all(dir).map_err(InstallError::io("creating", dir))?;
    let name = target.file_name().unwrap_or_default().to_string_lossy();
    let temporary = dir.join(format!(".{name}.strait-tmp-{}", std::process::id()));
    let written = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&temporary)?;
        file.write_all(bytes)?;
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.sync_all()?;
        fs::rename(&temporary, target)?;
        File::open(dir)?.sync_all()
    })();
    if let Err(error) = written {
        let _ = fs::remove_file(&temporary);
        return Err(InstallError::io("writing", target)(error));
    }
    Ok(FileOutcome::Written)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFLIST: &str = r#"{"cniVersion":"1.1.0","name":"strait","plugins":[{"type":"strait-cni","agentSocket":"/run/strait/agent.sock"}]}"#;

    fn plan(root: &Path, conflist: &str) -> InstallPlan {
        let plugin = root.join("image-strait-cni");
        fs::write(&plugin, b"\x7fELF plugin v1").unwrap();
        InstallPlan {
            host_root: root.join("host"),
            plugin,
            conflist: conflist.as_bytes().to_vec(),
            conflist_name: DEFAULT_CONFLIST_NAME.into(),
        }
    }

    #[test]
    fn a_conflist_the_plugin_refuses_is_an_error_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        for (text, why) in [
            ("{", "not JSON"),
            (
                r#"{"cniVersion":"1.1.0","name":"x","plugins":[{"type":"bridge"}]}"#,
                "no plugin of type",
            ),
            (
                r#"{"cniVersion":"1.1.0","name":"x","plugins":[{"type":"strait-cni","agentSocket":7}]}"#,
                "strait-cni",
            ),
        ] {
            let error = install(&plan(dir.path(), text)).unwrap_err();
            assert!(error.to_string().contains(why), "{text}: {error}");
        }
        let mut bad_name = plan(dir.path(), CONFLIST);
        bad_name.conflist_name = "../evil.conflist".into();
        assert!(matches!(
            install(&bad_name),
            Err(InstallError::BadConflistName(_))
        ));
        assert!(!dir.path().join("host").exists());
    }

    #[test]
    fn a_second_install_changes_nothing_and_a_new_plugin_replaces_the_old() {
        let dir = tempfile::tempdir().unwrap();
        let plan = plan(dir.path(), CONFLIST);
        let first = install(&plan).unwrap();
        assert!(first.files.iter().all(|(_, o)| *o == FileOutcome::Written));
        let again = install(&plan).unwrap();
        assert!(
            again
                .files
                .iter()
                .all(|(_, o)| *o == FileOutcome::Unchanged)
        );
        fs::write(&plan.plugin, b"\x7fELF plugin v2").unwrap();
        let upgraded = install(&plan).unwrap();
        assert_eq!(upgraded.files[0].1, FileOutcome::Written);
        assert_eq!(upgraded.files[1].1, FileOutcome::Unchanged);
        assert_eq!(
            fs::read(plan.plugin_target()).unwrap(),
            b"\x7fELF plugin v2"
        );
        let leftovers: Vec<_> = fs::read_dir(plan.host_root.join(BIN_DIR))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, [PLUGIN_NAME], "no temporary file is left");
        let removed = uninstall(&plan).unwrap();
        assert!(
            removed
                .files
                .iter()
                .all(|(_, o)| *o == FileOutcome::Removed)
        );
        let again = uninstall(&plan).unwrap();
        assert!(again.files.iter().all(|(_, o)| *o == FileOutcome::Absent));
    }
}
