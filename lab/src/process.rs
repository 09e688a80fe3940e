//! Starting processes inside a lab namespace and cgroup, the way a container runtime places a container's
//! process: the child joins the network namespace (only that one, so cgroupfs and bpffs stay visible) and
//! moves itself into its cgroup before it executes. A pod's process also gets a mount namespace of its
//! own in which the pod's resolv.conf is bound over `/etc/resolv.conf` (what `ip netns exec` does with
//! `/etc/netns/NAME/resolv.conf`). Also finding and stopping lab processes.

use std::{
    ffi::CString,
    fs::{self, File},
    io,
    os::{
        fd::AsRawFd,
        unix::{ffi::OsStrExt, process::CommandExt},
    },
    path::{Path, PathBuf},
    process::{Child, Command},
    time::{Duration, Instant},
};

use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};

use crate::LabError;

/// Where a process runs.
#[derive(Clone, Debug)]
pub struct Placement {
    /// Network namespace file.
    pub netns: PathBuf,
    /// Absolute cgroup directory, if any.
    pub cgroup: Option<PathBuf>,
    /// A pod's resolv.conf, seen by the process as `/etc/resolv.conf`.
    pub resolv_conf: Option<PathBuf>,
}

/// Where the host's resolver configuration is, which a pod's own file covers.
const RESOLV_CONF: &std::ffi::CStr = c"/etc/resolv.conf";

/// In the child before exec: a mount namespace of its own (private, so nothing propagates back to the
/// host) with `source` bound over `/etc/resolv.conf`. Only async-signal-safe system calls.
fn bind_resolv_conf(source: &CString) -> io::Result<()> {
    let none = std::ptr::null();
    // SAFETY: plain system calls on NUL-terminated strings that outlive them.
    unsafe {
        if libc::unshare(libc::CLONE_NEWNS) != 0
            || libc::mount(
                c"none".as_ptr(),
                c"/".as_ptr(),
                none,
                libc::MS_REC | libc::MS_PRIVATE,
                none.cast(),
            ) != 0
            || libc::mount(
                source.as_ptr(),
                RESOLV_CONF.as_ptr(),
                none,
                libc::MS_BIND,
                none.cast(),
            ) != 0
        {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Spawns `command` inside `placement`. With `detach`, the child gets its own session so it outlives us.
pub fn spawn_in(
    placement: &Placement,
    command: &mut Command,
    detach: bool,
) -> Result<Child, LabError> {
    let netns = File::open(&placement.netns)
        .map_err(|e| LabError::io(format!("opening {}", placement.netns.display()), e))?;
    let procs = match &placement.cgroup {
        Some(dir) => {
            let procs = dir.join("cgroup.procs");
            Some(
                File::options()
                    .write(true)
                    .open(&procs)
                    .map_err(|e| LabError::io(format!("opening {}", procs.display()), e))?,
            )
        }
        None => None,
    };
    let resolv_conf = match &placement.resolv_conf {
        Some(file) if Path::new("/etc/resolv.conf").exists() => Some(
            CString::new(file.as_os_str().as_bytes())
                .map_err(|_| LabError::Usage(format!("{} has a NUL byte", file.display())))?,
        ),
        Some(file) => {
            tracing::warn!(
                file = %file.display(),
                "this host has no /etc/resolv.conf to cover: the pod's process sees none"
            );
            None
        }
        None => None,
    };
    let netns_fd = netns.as_raw_fd();
    let procs_fd = procs.as_ref().map(AsRawFd::as_raw_fd);
    // SAFETY: the closure only makes async-signal-safe system calls on fds that stay open until spawn returns.
    unsafe {
        command.pre_exec(move || {
            if libc::setns(netns_fd, libc::CLONE_NEWNET) != 0 {
                return Err(io::Error::last_os_error());
            }
            if let Some(source) = &resolv_conf {
                bind_resolv_conf(source)?;
            }
            if let Some(fd) = procs_fd
                && libc::write(fd, b"0".as_ptr().cast(), 1) != 1
            {
                return Err(io::Error::last_os_error());
            }
            if detach && libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = command.spawn().map_err(|error| {
        let program = command.get_program().display().to_string();
        if is_command_error(&error) {
            LabError::Exec { program, error }
        } else {
            LabError::io(format!("starting {program}"), error)
        }
    })?;
    drop((netns, procs));
    Ok(child)
}

/// Whether a spawn error is about the command itself (what a shell reports with 127 or 126: not found,
/// not executable), not about placing it in its namespace and cgroup.
fn is_command_error(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::ENOENT | libc::EACCES | libc::ENOEXEC | libc::EISDIR | libc::ENOTDIR)
    )
}

/// Whether `pid` is alive (and not a zombie).
pub fn alive(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// Sends SIGTERM, waits up to `grace`, then SIGKILL. Returns once the process is gone.
pub fn stop(pid: i32, grace: Duration) {
    let target = Pid::from_raw(pid);
    if kill(target, Signal::SIGTERM).is_err() {
        return;
    }
    let deadline = Instant::now() + grace;
    while alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    if alive(pid) {
        let _ = kill(target, Signal::SIGKILL);
        let deadline = Instant::now() + Duration::from_secs(2);
        while alive(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// PIDs of processes whose environment contains `marker` (e.g. `STRAIT_LAB=demo`).
pub fn with_marker(marker: &str) -> Vec<i32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|b| *b == 0).any(|var| var == marker.as_bytes()))
        })
        .collect()
}

/// Opens (creating) a log file for a daemon's output.
pub fn log_file(path: &Path) -> Result<File, LabError> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)
            .map_err(|e| LabError::io(format!("creating {}", dir.display()), e))?;
    }
    File::options()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| LabError::io(format!("opening log {}", path.display()), e))
}
