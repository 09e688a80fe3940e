//! sysctl reads and writes for the calling thread's network namespace (/proc/sys/net is per namespace).
//!
//! The files are found under a procfs root, `/proc` unless [`set_proc_root`] says otherwise: a
//! container runtime mounts its containers' `/proc/sys` read-only, so the agent in a DaemonSet reaches
//! the node's sysctls through the host's procfs mounted elsewhere (`/host/proc`). `/proc/sys/net`
//! shows the network namespace of the thread that opens it, whichever procfs mount it is reached by.

use std::fs;
use std::path::PathBuf;
use std::sync::OnceLock;

use crate::DataplaneError;

/// Where procfs is mounted; set once at start.
static PROC_ROOT: OnceLock<PathBuf> = OnceLock::new();

/// Reads sysctls under `root` (a procfs mount) instead of `/proc`. Only the first call counts; `false`
/// when a root was set before.
pub fn set_proc_root(root: PathBuf) -> bool {
    PROC_ROOT.set(root).is_ok()
}

/// The file of sysctl `key` (dotted form, or a path relative to `sys/`).
fn sysctl_path(key: &str) -> PathBuf {
    PROC_ROOT
        .get()
        .map_or_else(|| PathBuf::from("/proc"), Clone::clone)
        .join("sys")
        .join(key.replace('.', "/"))
}

/// Writes `value` to the sysctl `key` (dotted form, e.g. `net.ipv4.ip_forward`).
pub fn write(key: &str, value: &str) -> Result<(), DataplaneError> {
    fs::write(sysctl_path(key), value)
        .map_err(|e| DataplaneError::io(format!("writing sysctl {key}={value}"), e))
}

/// Reads the sysctl `key`, trimmed.
pub fn read(key: &str) -> Result<String, DataplaneError> {
    fs::read_to_string(sysctl_path(key))
        .map(|v| v.trim().to_owned())
        .map_err(|e| DataplaneError::io(format!("reading sysctl {key}"), e))
}

/// Turns IPv6 off on interface `ifname` (`net.ipv6.conf.<ifname>.disable_ipv6 = 1`): no link-local
/// address, no router advertisements accepted, nothing sent or received over IPv6. `Ok(false)` when the
/// kernel has no IPv6 at all (nothing to turn off).
pub fn disable_ipv6(ifname: &str) -> Result<bool, DataplaneError> {
    if !sysctl_path("net/ipv6/conf").exists() {
        return Ok(false);
    }
    let path = sysctl_path("net/ipv6/conf")
        .join(ifname)
        .join("disable_ipv6");
    fs::write(&path, "1").map_err(|e| {
        DataplaneError::io(
            format!("turning IPv6 off on {ifname} ({})", path.display()),
            e,
        )
    })?;
    Ok(true)
}

/// Whether the port list `list` (the format of `net.ipv4.ip_local_reserved_ports`: comma-separated
/// ports and `a-b` ranges) covers every port of `first..=last`.
pub fn ports_cover(list: &str, first: u16, last: u16) -> bool {
    let mut ranges: Vec<(u16, u16)> = list
        .split(',')
        .filter_map(|part| {
            let part = part.trim();
            let (a, b) = part.split_once('-').unwrap_or((part, part));
            Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
        })
        .collect();
    ranges.sort_unstable();
    let mut next = u32::from(first);
    for (a, b) in ranges {
        if u32::from(a) > next {
            break;
        }
        next = next.max(u32::from(b) + 1);
    }
    next > u32::from(last)
}

/// Keeps the node's own connections off `first..=last` (the data path's SNAT ports) by adding the range
/// to `net.ipv4.ip_local_reserved_ports`, keeping what is reserved already. `Ok(false)` when it was
/// reserved before.
pub fn reserve_local_ports(first: u16, last: u16) -> Result<bool, DataplaneError> {
    const KEY: &str = "net.ipv4.ip_local_reserved_ports";
    let current = read(KEY)?;
    if ports_cover(&current, first, last) {
        return Ok(false);
    }
    let range = format!("{first}-{last}");
    let new = if current.is_empty() {
        range
    } else {
        format!("{current},{range}")
    };
    write(KEY, &new)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::ports_cover;

    #[test]
    fn port_lists_cover_ranges_as_the_kernel_writes_them() {
        assert!(ports_cover("61000-65535", 61000, 65535));
        assert!(ports_cover("8080,60000-62000,62001-65535", 61000, 65535));
        assert!(!ports_cover("", 61000, 65535));
        assert!(!ports_cover("61000-65534", 61000, 65535));
        assert!(!ports_cover("61001-65535", 61000, 65535));
        assert!(!ports_cover("61000-62000,62002-65535", 61000, 65535));
        assert!(ports_cover("65535,61000-65534", 61000, 65535));
    }
}
