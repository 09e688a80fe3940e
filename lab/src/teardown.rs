//! `strait lab down`: removes every trace of a lab from its names alone, so it also cleans up after a
//! crashed lab: processes (by environment marker and cgroup), namespaces (and with them every link), pins,
//! cgroups and the state directory.

use std::{collections::BTreeSet, fs, path::Path, time::Duration};

use strait_dataplane::{Dataplane, bpffs, netns};

use crate::{LabError, cgroup, names::LabNames, process};

/// What `down` removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DownReport {
    pub processes: usize,
    pub namespaces: usize,
    pub pin_dirs: usize,
    pub existed: bool,
}

/// Removes every trace of lab `name`: processes, namespaces (and with them every link), pins, cgroups and
/// the state directory. Works from the names alone, so it also cleans up after a crashed lab.
pub fn down(name: &str) -> Result<DownReport, LabError> {
    let names = LabNames::new(name)?;
    let mut report = DownReport {
        existed: names.run_dir().exists(),
        ..DownReport::default()
    };
    // Agents first (SIGTERM), then everything else carrying the lab's marker or living in its cgroups.
    let mut pids: BTreeSet<i32> = process::with_marker(&names.process_marker())
        .into_iter()
        .collect();
    pids.extend(cgroup::pids(&names.cgroup()));
    pids.remove(&i32::try_from(std::process::id()).unwrap_or_default());
    for pid in &pids {
        process::stop(*pid, Duration::from_secs(2));
    }
    report.processes = pids.len();
    let prefix = names.netns_prefix();
    for ns in netns::list().into_iter().filter(|n| n.starts_with(&prefix)) {
        netns::delete(&ns)?;
        report.namespaces += 1;
    }
    let pin_root = Path::new(bpffs::DEFAULT_BPFFS).join("strait");
    if let Ok(entries) = fs::read_dir(&pin_root) {
        for entry in entries.flatten() {
            if entry
                .file_name()
                .to_str()
                .is_some_and(|n| names.owns_pin_dir(n))
            {
                Dataplane::remove_pins(&entry.path())?;
                report.pin_dirs += 1;
            }
        }
    }
    cgroup::remove_tree(&names.cgroup())?;
    match fs::remove_dir_all(names.run_dir()) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(LabError::io("removing the lab directory", e)),
    }
    Ok(report)
}
