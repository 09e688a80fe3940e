//! bpffs: makes sure a BPF filesystem is mounted where pins go, mounting one if the node has none.

use std::{fs, path::Path};

use nix::mount::{MsFlags, mount};

use crate::DataplaneError;

/// Default bpffs mount point.
pub const DEFAULT_BPFFS: &str = "/sys/fs/bpf";

/// Whether a filesystem of type `bpf` is mounted exactly at `path` (read from /proc/self/mountinfo).
pub fn is_mounted(path: &Path) -> Result<bool, DataplaneError> {
    let info = fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| DataplaneError::io("reading /proc/self/mountinfo", e))?;
    let wanted = path.to_string_lossy();
    Ok(info.lines().any(|line| {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(sep) = fields.iter().position(|f| *f == "-") else {
            return false;
        };
        fields.get(4) == Some(&wanted.as_ref()) && fields.get(sep + 1) == Some(&"bpf")
    }))
}

/// Mounts bpffs at `path` unless one is already there.
pub fn ensure_mounted(path: &Path) -> Result<(), DataplaneError> {
    if is_mounted(path)? {
        return Ok(());
    }
    fs::create_dir_all(path)
        .map_err(|e| DataplaneError::io(format!("creating {}", path.display()), e))?;
    mount(
        Some("bpf"),
        path,
        Some("bpf"),
        MsFlags::empty(),
        None::<&str>,
    )
    .map_err(|e| DataplaneError::io(format!("mounting bpffs at {}", path.display()), e.into()))?;
    tracing::info!(path = %path.display(), "mounted bpffs");
    Ok(())
}
