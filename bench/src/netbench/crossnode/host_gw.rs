//! Flannel's host-gw backend on the lab's Flannel reference nodes: flanneld in host-gw mode routes each
//! other node's pod CIDR via that node's address on the uplink instead of through `flannel.1`, and the
//! pods keep the uplink's MTU (no tunnel overhead). [`convert`] does both on two Flannel nodes of a
//! lab, then checks that the kernel now routes the other node's pods through `eth0`.

use std::path::Path;

use strait_dataplane::netns;
use strait_lab::{
    cluster::Lab,
    flannel,
    state::{NodeRecord, PodRecord},
};

use super::{CrossError, error};
use crate::netbench::bridge_lab;

/// The underlay's MTU in the lab, which host-gw leaves the pods.
const UPLINK_MTU: &str = "1500";

/// Runs `ip ARGS` in `netns` of `lab`; returns what it printed.
fn ip(lab: &Lab, netns: &Path, args: &[&str]) -> Result<String, CrossError> {
    let argv: Vec<&str> = std::iter::once("ip").chain(args.iter().copied()).collect();
    bridge_lab::run_in_netns(&lab.names.lab, netns, &argv, "")
        .map(|ran| ran.stdout)
        .map_err(error::lab(format!(
            "`ip {}` in {}",
            args.join(" "),
            netns.display()
        )))
}

/// Switches Flannel nodes `a` and `b` of `lab` to host-gw: each routes the other's pod CIDR via the
/// other's address on `eth0`, and the pods on them (`pods`) and their bridge get MTU 1500.
pub fn convert(
    lab: &Lab,
    a: &NodeRecord,
    b: &NodeRecord,
    pods: &[&PodRecord],
) -> Result<(), CrossError> {
    for (node, other) in [(a, b), (b, a)] {
        if node.runs_strait() {
            return Err(CrossError::Invalid(format!(
                "host-gw: {} is a strait node, not a Flannel reference node",
                node.name
            )));
        }
        let path = netns::path(&node.netns);
        let via = other.ip.to_string();
        ip(
            lab,
            &path,
            &[
                "route",
                "replace",
                &other.pod_cidr,
                "via",
                &via,
                "dev",
                "eth0",
            ],
        )?;
        for pod in pods.iter().filter(|p| p.node == node.name) {
            let veth = flannel::host_veth(&pod.container_id);
            ip(lab, &path, &["link", "set", &veth, "mtu", UPLINK_MTU])?;
            ip(
                lab,
                &netns::path(&pod.netns),
                &["link", "set", "eth0", "mtu", UPLINK_MTU],
            )?;
        }
        ip(
            lab,
            &path,
            &["link", "set", flannel::BRIDGE, "mtu", UPLINK_MTU],
        )?;
        let first_host = other
            .pod_cidr
            .split_once('/')
            .map_or(other.pod_cidr.as_str(), |(network, _)| network);
        let route = ip(lab, &path, &["route", "get", first_host])?;
        if !route.contains("dev eth0") || route.contains(flannel::DEVICE) {
            return Err(CrossError::Invalid(format!(
                "host-gw: {} still routes {} through {}: {}",
                node.name,
                other.pod_cidr,
                flannel::DEVICE,
                route.trim()
            )));
        }
    }
    Ok(())
}
