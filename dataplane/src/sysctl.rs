//! sysctl reads and writes for the calling thread's network namespace (/proc/sys/net is per namespace).

use std::fs;

use crate::DataplaneError;

/// Writes `value` to the sysctl `key` (dotted form, e.g. `net.ipv4.ip_forward`).
pub fn write(key: &str, value: &str) -> Result<(), DataplaneError> {
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    fs::write(&path, value)
        .map_err(|e| DataplaneError::io(format!("writing sysctl {key}={value}"), e))
}

/// Reads the sysctl `key`, trimmed.
pub fn read(key: &str) -> Result<String, DataplaneError> {
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    fs::read_to_string(&path)
        .map(|v| v.trim().to_owned())
        .map_err(|e| DataplaneError::io(format!("reading sysctl {key}"), e))
}
