//! cgroup v2 for the lab: finds the cgroup2 mount (never hard-coded), creates and removes the lab's
//! cgroups, and prepares the fd a child uses to move itself into one before it executes.

use std::{
    fs,
    path::{Path, PathBuf},
};

use crate::LabError;

/// The cgroup2 mount point, from /proc/self/mountinfo.
pub fn mount_point() -> Result<PathBuf, LabError> {
    let info = fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| LabError::io("reading /proc/self/mountinfo", e))?;
    info.lines()
        .find_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let sep = fields.iter().position(|f| *f == "-")?;
            (fields.get(sep + 1) == Some(&"cgroup2")).then(|| PathBuf::from(fields[4]))
        })
        .ok_or_else(|| LabError::Environment("no cgroup2 filesystem is mounted".into()))
}

/// Absolute path of `relative` under the cgroup2 mount.
pub fn path(relative: &str) -> Result<PathBuf, LabError> {
    Ok(mount_point()?.join(relative))
}

/// Creates the cgroup `relative` (and parents).
pub fn create(relative: &str) -> Result<PathBuf, LabError> {
    let dir = path(relative)?;
    fs::create_dir_all(&dir)
        .map_err(|e| LabError::io(format!("creating cgroup {}", dir.display()), e))?;
    Ok(dir)
}

/// Removes the cgroup tree `relative`, children first. Processes must be gone already.
pub fn remove_tree(relative: &str) -> Result<(), LabError> {
    let root = path(relative)?;
    remove_dir_tree(&root)
}

fn remove_dir_tree(dir: &Path) -> Result<(), LabError> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            remove_dir_tree(&entry.path())?;
        }
    }
    // A killed process stays in its cgroup until its parent reaps it, so give the reaper a moment.
    let mut attempts = 0;
    loop {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && attempts < 150 => {
                attempts += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => {
                return Err(LabError::io(
                    format!("removing cgroup {}", dir.display()),
                    e,
                ));
            }
        }
    }
}

/// PIDs in the cgroup tree `relative`.
pub fn pids(relative: &str) -> Vec<i32> {
    let Ok(root) = path(relative) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    collect_pids(&root, &mut out);
    out
}

fn collect_pids(dir: &Path, out: &mut Vec<i32>) {
    if let Ok(text) = fs::read_to_string(dir.join("cgroup.procs")) {
        out.extend(text.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
    }
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                collect_pids(&entry.path(), out);
            }
        }
    }
}
