//! Network namespaces: named ones under /run/netns (the iproute2 convention, so `ip netns` sees them),
//! entering one from the calling thread, and running a closure inside one on a dedicated thread so no
//! pooled thread is ever left in the wrong namespace.

use std::{
    fs::{self, File},
    path::{Path, PathBuf},
};

use nix::{
    mount::{MntFlags, MsFlags, mount, umount2},
    sched::{CloneFlags, setns, unshare},
};

use crate::DataplaneError;

/// Where named namespaces are bind-mounted.
pub const NETNS_RUN_DIR: &str = "/run/netns";

/// Path of the named namespace `name`.
pub fn path(name: &str) -> PathBuf {
    Path::new(NETNS_RUN_DIR).join(name)
}

fn netns_error(path: &Path, source: impl Into<std::io::Error>) -> DataplaneError {
    DataplaneError::Netns {
        path: path.to_path_buf(),
        source: source.into(),
    }
}

/// Makes [`NETNS_RUN_DIR`] a shared mount point of its own, as `ip netns add` does (a bind mount of
/// itself, then shared). Namespaces bound under the plain directory were hidden, and could no longer
/// be removed, once an `ip netns add` running beside a lab made that mount point over them.
fn share_run_dir() -> Result<(), nix::Error> {
    let shared = || {
        mount(
            None::<&str>,
            NETNS_RUN_DIR,
            None::<&str>,
            MsFlags::MS_SHARED | MsFlags::MS_REC,
            None::<&str>,
        )
    };
    match shared() {
        // Not a mount point yet: bind it onto itself first.
        Err(nix::Error::EINVAL) => {
            mount(
                Some(NETNS_RUN_DIR),
                NETNS_RUN_DIR,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )?;
            shared()
        }
        other => other,
    }
}

/// Creates the named namespace `name` and returns its path. Fails if it exists.
pub fn create(name: &str) -> Result<PathBuf, DataplaneError> {
    static SHARED: std::sync::Mutex<bool> = std::sync::Mutex::new(false);
    let target = path(name);
    fs::create_dir_all(NETNS_RUN_DIR).map_err(|e| netns_error(&target, e))?;
    {
        let mut shared = SHARED
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !*shared {
            share_run_dir().map_err(|e| netns_error(Path::new(NETNS_RUN_DIR), e))?;
            *shared = true;
        }
    }
    File::options()
        .write(true)
        .create_new(true)
        .open(&target)
        .map_err(|e| netns_error(&target, e))?;
    let bind_target = target.clone();
    let made = std::thread::spawn(move || -> Result<(), DataplaneError> {
        unshare(CloneFlags::CLONE_NEWNET).map_err(|e| netns_error(&bind_target, e))?;
        mount(
            Some("/proc/thread-self/ns/net"),
            &bind_target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| netns_error(&bind_target, e))
    })
    .join()
    .map_err(|_| netns_error(&target, std::io::Error::other("namespace thread panicked")))?;
    if let Err(e) = made {
        let _ = fs::remove_file(&target);
        return Err(e);
    }
    Ok(target)
}

/// Deletes the named namespace (unmounts and removes its file). Missing is not an error.
pub fn delete(name: &str) -> Result<(), DataplaneError> {
    delete_path(&path(name))
}

/// Deletes a namespace bind mount at `target`. Missing is not an error.
pub fn delete_path(target: &Path) -> Result<(), DataplaneError> {
    if !target.exists() {
        return Ok(());
    }
    let _ = umount2(target, MntFlags::MNT_DETACH);
    match fs::remove_file(target) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(netns_error(target, e)),
    }
}

/// Names of every named namespace.
pub fn list() -> Vec<String> {
    fs::read_dir(NETNS_RUN_DIR)
        .map(|dir| {
            dir.filter_map(Result::ok)
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Moves the calling thread into the namespace at `ns_path`.
pub fn enter(ns_path: &Path) -> Result<(), DataplaneError> {
    let file = File::open(ns_path).map_err(|e| netns_error(ns_path, e))?;
    setns(&file, CloneFlags::CLONE_NEWNET).map_err(|e| netns_error(ns_path, e))
}

/// Runs `f` on a fresh thread inside the namespace at `ns_path` and returns its result.
pub fn run_in<T, F>(ns_path: &Path, f: F) -> Result<T, DataplaneError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let owned = ns_path.to_path_buf();
    std::thread::spawn(move || {
        enter(&owned)?;
        Ok(f())
    })
    .join()
    .map_err(|_| {
        netns_error(
            ns_path,
            std::io::Error::other("thread inside the namespace panicked"),
        )
    })?
}
