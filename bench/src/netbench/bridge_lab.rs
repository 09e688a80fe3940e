//! The standard stack netbench compares strait against, built the way the reference `bridge` CNI plugin
//! and kube-proxy lay out a node: pods are namespaces with a veth whose node end is enslaved to the
//! Linux bridge `cni0` (the pods' gateway, 10.244.1.1), IP forwarding on, bridged traffic through
//! netfilter (`bridge-nf-call-iptables`, as kube-proxy requires), and services as kube-proxy's iptables
//! or nftables rules loaded into the node's namespace. The underlay (one bridge in its own namespace,
//! the external client and the node plugged into it) is the strait lab's own, so both stacks see the
//! same wires outside the node.
//!
//! It uses the lab's names (`st-<lab>.*` namespaces, the `STRAIT_LAB` process marker), so
//! `strait_lab::down` removes it, also after a crash; [`BridgeLab`] does so when dropped.

use std::{
    io::Write as _,
    net::Ipv4Addr,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use strait_dataplane::{netlink::Netlink, netns, sysctl};
use strait_lab::{LabError, names::LabNames, network, process::Placement};

/// The node's bridge and the pods' gateway.
pub const BRIDGE: &str = "cni0";
/// The node's address on `cni0`.
pub const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 244, 1, 1);
/// The client pod's address.
pub const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(10, 244, 1, 2);
/// The server pod's address.
pub const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 244, 1, 3);
/// The pod subnet's prefix length (the node's pod CIDR, 10.244.1.0/24).
const POD_PREFIX: u8 = 24;
/// The cluster's pod CIDR, routed from the external namespace to the node for the `direct` path.
const CLUSTER_CIDR: (Ipv4Addr, u8) = (Ipv4Addr::new(10, 244, 0, 0), 16);

/// A bridge-CNI node with two pods, `netbench/client` and `netbench/server`, and an external client.
pub struct BridgeLab {
    names: LabNames,
    node: PathBuf,
    client: PathBuf,
    server: PathBuf,
    external: PathBuf,
}

/// How long loading a ruleset took.
#[derive(Clone, Copy, Debug)]
pub struct Loaded {
    pub took: Duration,
}

impl BridgeLab {
    /// Builds the lab `lab` (a name valid for [`LabNames`]). On failure everything made is removed.
    pub fn up(lab: &str) -> Result<Self, LabError> {
        let names = LabNames::new(lab)?;
        strait_lab::down(lab)?;
        let made = Self {
            node: netns::path(&names.node_netns(1)),
            client: netns::path(&names.pod_netns("netbench", "client")),
            server: netns::path(&names.pod_netns("netbench", "server")),
            external: netns::path(&names.external_netns()),
            names,
        };
        made.build()?;
        Ok(made)
    }

    fn build(&self) -> Result<(), LabError> {
        let underlay = netns::create(&self.names.underlay_netns())?;
        for ns in [&self.external, &self.node, &self.client, &self.server] {
            let name = ns
                .file_name()
                .and_then(|n| n.to_str())
                .ok_or_else(|| LabError::Environment(format!("bad netns {}", ns.display())))?;
            netns::create(name)?;
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| LabError::io("starting a runtime", e))?;
        runtime.block_on(async {
            let nl = network::create_underlay(&underlay).await?;
            network::plug(&nl, "ext", &self.external, network::EXTERNAL_IP).await?;
            network::plug(&nl, "n1", &self.node, network::node_ip(1)).await?;
            let node = Netlink::connect_in(&self.node)?;
            node.create_bridge(BRIDGE).await?;
            let bridge = node.require_link(BRIDGE).await?;
            node.add_address(bridge, GATEWAY, POD_PREFIX).await?;
            node.set_up(bridge).await?;
            plug_pod(&node, bridge, "vethclient", &self.client, CLIENT_IP).await?;
            plug_pod(&node, bridge, "vethserver", &self.server, SERVER_IP).await?;
            // The external client reaches pod addresses through the node (the `direct` path).
            let external = Netlink::connect_in(&self.external)?;
            let eth0 = external.require_link("eth0").await?;
            external
                .add_route(
                    CLUSTER_CIDR.0,
                    CLUSTER_CIDR.1,
                    eth0,
                    Some(network::node_ip(1)),
                )
                .await?;
            Ok::<_, LabError>(())
        })?;
        netns::run_in(&self.node, || {
            sysctl::write("net.ipv4.ip_forward", "1")?;
            sysctl::write("net.bridge.bridge-nf-call-iptables", "1")
        })??;
        Ok(())
    }

    /// The lab's name.
    pub fn name(&self) -> &str {
        &self.names.lab
    }

    /// The node's namespace.
    pub fn node_netns(&self) -> &Path {
        &self.node
    }

    /// Where the client pod's processes run (no cgroup: nothing here hooks sockets).
    pub fn client(&self) -> Placement {
        Placement {
            netns: self.client.clone(),
            cgroup: None,
            resolv_conf: None,
        }
    }

    /// Where the server pod's processes run.
    pub fn server(&self) -> Placement {
        Placement {
            netns: self.server.clone(),
            cgroup: None,
            resolv_conf: None,
        }
    }

    /// Where the external client runs.
    pub fn external(&self) -> Placement {
        Placement {
            netns: self.external.clone(),
            cgroup: None,
            resolv_conf: None,
        }
    }

    /// Loads an `iptables-restore` input into the node's namespace, timing the whole command.
    pub fn load_iptables(&self, rules: &str) -> Result<Loaded, LabError> {
        self.load_with(&["iptables-restore"], rules)
    }

    /// Loads an `nft -f -` input into the node's namespace, timing the whole command.
    pub fn load_nftables(&self, rules: &str) -> Result<Loaded, LabError> {
        self.load_with(&["nft", "-f", "-"], rules)
    }

    fn load_with(&self, argv: &[&str], rules: &str) -> Result<Loaded, LabError> {
        let took = run_in_netns(&self.names.lab, &self.node, argv, rules)?.took;
        Ok(Loaded { took })
    }
}

/// What a command run by [`run_in_netns`] printed, and how long it took.
#[derive(Clone, Debug)]
pub struct Ran {
    pub took: Duration,
    pub stdout: String,
}

/// Runs `argv` inside the namespace `netns` of lab `lab` (marked as the lab's, so `strait_lab::down`
/// finds it) with `input` on its stdin, timing the whole command; fails with its stderr unless it
/// succeeds.
pub fn run_in_netns(lab: &str, netns: &Path, argv: &[&str], input: &str) -> Result<Ran, LabError> {
    let placement = Placement {
        netns: netns.to_path_buf(),
        cgroup: None,
        resolv_conf: None,
    };
    let mut command = Command::new(argv[0]);
    command
        .args(&argv[1..])
        .env("STRAIT_LAB", lab)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = strait_lab::process::spawn_in(&placement, &mut command, false)?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| LabError::Environment(format!("{} has no stdin", argv[0])))?;
    let written = stdin.write_all(input.as_bytes());
    drop(stdin);
    let output = child
        .wait_with_output()
        .map_err(|e| LabError::io(format!("running {}", argv[0]), e))?;
    let took = started.elapsed();
    written.map_err(|e| LabError::io(format!("writing the input of {}", argv[0]), e))?;
    if !output.status.success() {
        return Err(LabError::Environment(format!(
            "`{}` in {} failed ({}): {}",
            argv.join(" "),
            netns.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok(Ran {
        took,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
    })
}

impl Drop for BridgeLab {
    fn drop(&mut self) {
        if let Err(error) = strait_lab::down(&self.names.lab) {
            eprintln!("netbench: cleaning up lab {}: {error}", self.names.lab);
        }
    }
}

/// Creates a pod's veth pair: the node end `host` on the bridge, the other end moved into `pod` as `eth0`
/// with `ip`/24 and a default route via the bridge (the route stays inside the lab: the node has none).
async fn plug_pod(
    node: &Netlink,
    bridge: u32,
    host: &str,
    pod: &Path,
    ip: Ipv4Addr,
) -> Result<(), LabError> {
    let peer = format!("{host}p");
    node.create_veth(host, &peer).await?;
    let host_index = node.require_link(host).await?;
    node.set_master(host_index, bridge).await?;
    node.set_up(host_index).await?;
    let peer_index = node.require_link(&peer).await?;
    let file = std::fs::File::open(pod)
        .map_err(|e| LabError::io(format!("opening {}", pod.display()), e))?;
    node.move_to_netns(peer_index, std::os::fd::AsRawFd::as_raw_fd(&file))
        .await?;
    let nl = Netlink::connect_in(pod)?;
    let index = nl.require_link(&peer).await?;
    nl.rename_up(index, "eth0").await?;
    nl.add_address(index, ip, POD_PREFIX).await?;
    if let Some(lo) = nl.link_index("lo").await? {
        nl.set_up(lo).await?;
    }
    nl.add_route(Ipv4Addr::UNSPECIFIED, 0, index, Some(GATEWAY))
        .await?;
    Ok(())
}
