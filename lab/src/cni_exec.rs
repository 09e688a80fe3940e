//! Invoking the CNI plugin exactly as a container runtime does: the plugin binary from CNI_PATH, the
//! CNI_* environment, the network configuration (the conflist's plugin entry with `name` and `cniVersion`
//! injected) on stdin, run in the node's network namespace; its stdout is the result or the error.

use std::{
    io::Write,
    net::Ipv4Addr,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use serde_json::Value;

use crate::{
    LabError,
    process::{Placement, spawn_in},
};

/// One CNI invocation's parameters.
pub struct CniCall<'a> {
    pub command: &'a str,
    pub container_id: &'a str,
    pub netns: Option<&'a Path>,
    pub ifname: &'a str,
    pub pod_namespace: &'a str,
    pub pod_name: &'a str,
}

/// Runs the plugin; returns its parsed stdout (Null when empty) or the plugin's error.
pub fn invoke(
    plugin_dir: &Path,
    conflist: &Path,
    node_netns: &Path,
    call: &CniCall<'_>,
    extra_config: Option<(&str, Value)>,
) -> Result<Value, LabError> {
    let list: Value = serde_json::from_slice(
        &std::fs::read(conflist)
            .map_err(|e| LabError::io(format!("reading {}", conflist.display()), e))?,
    )
    .map_err(|e| LabError::Environment(format!("{} is not valid JSON: {e}", conflist.display())))?;
    let mut config = list["plugins"][0].clone();
    config["name"] = list["name"].clone();
    config["cniVersion"] = list["cniVersion"].clone();
    if let Some((key, value)) = extra_config {
        config[key] = value;
    }
    let plugin_type = config["type"].as_str().unwrap_or("strait-cni").to_owned();
    let plugin = plugin_dir.join(&plugin_type);
    let mut command = Command::new(&plugin);
    command
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("CNI_COMMAND", call.command)
        .env("CNI_CONTAINERID", call.container_id)
        .env("CNI_IFNAME", call.ifname)
        .env("CNI_PATH", plugin_dir)
        .env(
            "CNI_ARGS",
            format!(
                "IgnoreUnknown=1;K8S_POD_NAMESPACE={};K8S_POD_NAME={};K8S_POD_INFRA_CONTAINER_ID={}",
                call.pod_namespace, call.pod_name, call.container_id
            ),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(netns) = call.netns {
        command.env("CNI_NETNS", netns);
    }
    let placement = Placement {
        netns: node_netns.to_path_buf(),
        cgroup: None,
        resolv_conf: None,
    };
    let mut child = spawn_in(&placement, &mut command, false)?;
    if let Some(mut stdin) = child.stdin.take() {
        let body = serde_json::to_vec(&config).map_err(|e| LabError::Environment(e.to_string()))?;
        stdin
            .write_all(&body)
            .map_err(|e| LabError::io("writing the CNI config to the plugin", e))?;
    }
    let output = child
        .wait_with_output()
        .map_err(|e| LabError::io(format!("waiting for {}", plugin.display()), e))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let parsed: Value = if stdout.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&stdout).map_err(|e| LabError::Cni {
            command: call.command.to_owned(),
            code: None,
            message: format!("plugin printed something that is not JSON ({e}): {stdout}"),
        })?
    };
    if output.status.success() {
        Ok(parsed)
    } else {
        Err(LabError::Cni {
            command: call.command.to_owned(),
            code: parsed["code"].as_u64(),
            message: format!(
                "{} {}",
                parsed["msg"].as_str().unwrap_or("plugin failed"),
                parsed["details"].as_str().unwrap_or_default()
            )
            .trim()
            .to_owned(),
        })
    }
}

/// The pod address from an ADD result (`ips[0].address`, without the prefix length).
pub fn result_address(result: &Value) -> Result<Ipv4Addr, LabError> {
    result["ips"][0]["address"]
        .as_str()
        .and_then(|a| a.split('/').next())
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| LabError::Environment(format!("CNI result has no IPv4 address: {result}")))
}

/// Directory holding the strait binaries (the plugin, the agent, this CLI).
pub fn binary_dir() -> Result<PathBuf, LabError> {
    if let Some(dir) = std::env::var_os("STRAIT_BIN_DIR") {
        return Ok(PathBuf::from(dir));
    }
    let exe =
        std::env::current_exe().map_err(|e| LabError::io("finding the current executable", e))?;
    let mut candidates = Vec::new();
    if let Some(dir) = exe.parent() {
        candidates.push(dir.to_path_buf());
        if let Some(up) = dir.parent() {
            candidates.push(up.to_path_buf());
        }
    }
    candidates
        .into_iter()
        .find(|dir| dir.join("straitd").exists() && dir.join("strait-cni").exists())
        .ok_or_else(|| {
            LabError::Environment(format!(
                "cannot find straitd and strait-cni next to {}; build them (cargo build --bins) or set STRAIT_BIN_DIR",
                exe.display()
            ))
        })
}
