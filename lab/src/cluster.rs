//! The lab orchestrator: `up`, `down`, `exec`, `probe` and the agent queries (`apply` and `delete` are in
//! [`crate::apply`]). It plays the control plane's part (scheduling pods onto nodes) and the container
//! runtime's part (namespaces, cgroups, CNI calls, workload processes).

use std::{
    fs,
    io::{Read, Write},
    net::{Ipv4Addr, SocketAddr, TcpStream},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::json;
use strait_cni::protocol::AttachmentList;
use strait_dataplane::{bpffs, netns};

use crate::{
    LabError, cgroup, cni_exec, flannel,
    names::LabNames,
    network,
    process::{self, Placement},
    state::{LabOptions, LabState, NodeRecord},
};

/// Port of each agent's HTTP server inside its node namespace.
pub const AGENT_HTTP_PORT: u16 = 9962;
const AGENT_READY_TIMEOUT: Duration = Duration::from_secs(30);
pub(crate) const POD_READY_TIMEOUT: Duration = Duration::from_secs(15);

/// An existing lab, loaded from its state.
pub struct Lab {
    pub names: LabNames,
    pub state: LabState,
    pub(crate) bin_dir: PathBuf,
}

fn state_path(names: &LabNames) -> PathBuf {
    names.run_dir().join("state.json")
}

impl Lab {
    /// Opens the lab `name`.
    pub fn open(name: &str) -> Result<Self, LabError> {
        let names = LabNames::new(name)?;
        let path = state_path(&names);
        if !path.exists() {
            return Err(LabError::NoSuchLab(name.to_owned()));
        }
        Ok(Self {
            state: LabState::load(&path)?,
            names,
            bin_dir: cni_exec::binary_dir()?,
        })
    }

    /// Names of every lab with a state directory.
    pub fn list() -> Vec<String> {
        let mut out: Vec<String> = fs::read_dir(crate::names::LAB_RUN_DIR)
            .map(|d| {
                d.flatten()
                    .filter_map(|e| e.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default();
        out.sort();
        out
    }

    /// Builds a lab with `nodes` nodes and applies `manifests` if given. Returns once every agent is
    /// healthy and every pod answers; on failure everything made so far is removed.
    pub fn up(name: &str, nodes: usize, manifests: Option<&Path>) -> Result<Self, LabError> {
        Self::up_with(name, nodes, manifests, LabOptions::default())
    }

    /// [`Lab::up`] with non-default [`LabOptions`].
    pub fn up_with(
        name: &str,
        nodes: usize,
        manifests: Option<&Path>,
        options: LabOptions,
    ) -> Result<Self, LabError> {
        let names = LabNames::new(name)?;
        if !(1..=200).contains(&nodes) {
            return Err(LabError::Usage(format!(
                "--nodes must be between 1 and 200, not {nodes}"
            )));
        }
        if state_path(&names).exists() {
            return Err(LabError::Exists(name.to_owned()));
        }
        // Leftovers of a crashed lab of the same name go first.
        crate::teardown::down(name)?;
        let bin_dir = cni_exec::binary_dir()?;
        let mut lab = Self {
            state: LabState {
                name: name.to_owned(),
                options,
                ..LabState::default()
            },
            names,
            bin_dir,
        };
        let built = lab
            .build(nodes)
            .and_then(|()| lab.add_cluster_dns())
            .and_then(|()| match manifests {
                Some(path) => lab.apply(path).map(drop),
                None => Ok(()),
            });
        if let Err(error) = built {
            tracing::warn!(%error, "lab up failed; removing what was built");
            let _ = crate::teardown::down(name);
            return Err(error);
        }
        Ok(lab)
    }

    /// Creates the `kube-system/kube-dns` Service every node's agent answers, unless the lab has no
    /// cluster DNS.
    fn add_cluster_dns(&mut self) -> Result<(), LabError> {
        if self.state.options.no_cluster_dns {
            return Ok(());
        }
        let source = Path::new(crate::cluster_dns::SOURCE);
        self.apply_str(source, crate::cluster_dns::KUBE_DNS_SERVICE)
            .map(drop)
    }

    /// The directory where the lab publishes the cluster's objects for the agents (as an API server would
    /// serve them).
    pub fn cluster_dir(&self) -> PathBuf {
        self.names.run_dir().join("cluster")
    }

    pub(crate) fn save(&self) -> Result<(), LabError> {
        self.state.save(&state_path(&self.names))
    }

    fn build(&mut self, nodes: usize) -> Result<(), LabError> {
        fs::create_dir_all(self.cluster_dir())
            .map_err(|e| LabError::io("creating the lab directory", e))?;
        self.save()?;
        bpffs::ensure_mounted(Path::new(bpffs::DEFAULT_BPFFS))?;
        cgroup::create(&self.names.cgroup())?;
        let underlay = netns::create(&self.names.underlay_netns())?;
        let external = netns::create(&self.names.external_netns())?;
        let mut node_paths = Vec::new();
        let flannel_nodes = self.state.options.flannel_nodes;
        for index in 1..=nodes + flannel_nodes {
            node_paths.push((index, netns::create(&self.names.node_netns(index))?));
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| LabError::io("starting a runtime", e))?;
        runtime.block_on(async {
            let nl = network::create_underlay(&underlay).await?;
            network::plug(&nl, "ext", &external, network::EXTERNAL_IP).await?;
            for (index, path) in &node_paths {
                network::plug(&nl, &format!("n{index}"), path, network::node_ip(*index)).await?;
            }
            Ok::<_, LabError>(())
        })?;
        self.start_external_server()?;
        for (index, path) in node_paths.iter().take(nodes) {
            network::configure_node(path)?;
            let record = self.start_agent(*index, path)?;
            self.state.nodes.push(record);
            self.save()?;
        }
        for (index, path) in node_paths.iter().skip(nodes) {
            let record = runtime.block_on(self.start_flannel_node(*index, path))?;
            self.state.nodes.push(record);
            self.save()?;
        }
        for node in self.state.nodes.iter().filter(|n| !n.runs_strait()) {
            let path = netns::path(&node.netns);
            runtime.block_on(flannel::route_to_others(
                &path,
                &node.name,
                &self.state.nodes,
            ))?;
        }
        for node in self.state.nodes.iter().filter(|n| n.runs_strait()) {
            self.wait_agent_healthy(node)?;
        }
        self.publish()
    }

    /// Sets node `index` up as a Flannel reference node (see [`flannel`]).
    pub(crate) async fn start_flannel_node(
        &self,
        index: usize,
        path: &Path,
    ) -> Result<NodeRecord, LabError> {
        let ip = network::node_ip(index);
        let pod_cidr = network::pod_cidr(index);
        let subnet = pod_cidr
            .parse()
            .map_err(|_| LabError::Environment(format!("pod CIDR {pod_cidr}")))?;
        let vtep_mac = flannel::set_up_node(path, ip, subnet).await?;
        tracing::info!(node = %self.names.node_name(index), %ip, %pod_cidr, "Flannel reference node set up");
        Ok(NodeRecord {
            name: self.names.node_name(index),
            index,
            netns: self.names.node_netns(index),
            ip,
            pod_cidr,
            agent_pid: 0,
            agent_socket: String::new(),
            http_port: 0,
            flannel: Some(flannel::FlannelNode { vtep_mac }),
        })
    }

    pub(crate) fn start_agent(&self, index: usize, node_ns: &Path) -> Result<NodeRecord, LabError> {
        let node = self.names.node_name(index);
        let dir = self.names.node_dir(&node);
        let socket = dir.join("agent.sock");
        fs::create_dir_all(dir.join("cni"))
            .map_err(|e| LabError::io("creating the node directory", e))?;
        let conflist = json!({
            "cniVersion": "1.1.0",
            "name": "strait",
            "plugins": [{ "type": "strait-cni", "agentSocket": socket }],
        });
        fs::write(
            dir.join("cni/10-strait.conflist"),
            serde_json::to_vec_pretty(&conflist).unwrap_or_default(),
        )
        .map_err(|e| LabError::io("writing the CNI config", e))?;
        cgroup::create(&format!("{}/{node}/host", self.names.cgroup()))?;
        let agent_cgroup = cgroup::create(&format!("{}/{node}/agent", self.names.cgroup()))?;
        let log = process::log_file(&dir.join("agent.log"))?;
        let log_err = log
            .try_clone()
            .map_err(|e| LabError::io("duplicating the log handle", e))?;
        let pod_cidr = network::pod_cidr(index);
        let mut command = Command::new(self.bin_dir.join("straitd"));
        command
            .arg("--node-name")
            .arg(&node)
            .arg("--pod-cidr")
            .arg(&pod_cidr)
            .arg("--socket")
            .arg(&socket)
            .arg("--state-dir")
            .arg(dir.join("state"))
            .arg("--http-addr")
            .arg(format!("0.0.0.0:{AGENT_HTTP_PORT}"))
            .arg("--cgroup")
            .arg(cgroup::path(&format!("{}/{node}", self.names.cgroup()))?)
            .arg("--manifests")
            .arg(self.cluster_dir())
            .arg("--uplink")
            .arg("eth0")
            .arg("--node-ip")
            .arg(network::node_ip(index).to_string())
            // The underlay side of the node's veth runs no XDP program, so native XDP_TX (the RST that
            // refuses a connection to a service without endpoints) could not transmit: generic or off.
            .args(["--xdp-mode", self.state.options.xdp_mode.flag()])
            // Never the machine's resolver: only an upstream the lab was given, inside the lab.
            .arg("--dns-upstream")
            .arg(
                self.state
                    .options
                    .dns_upstream
                    .map_or_else(|| "none".to_owned(), |addr| addr.to_string()),
            )
            .args([
                "--dns-fast-path",
                if self.state.options.no_dns_fast_path {
                    "false"
                } else {
                    "true"
                },
            ])
            .arg("--overlay")
            .arg(self.state.options.overlay.flag())
            .arg("--xdp-fast-path")
            .arg(if self.state.options.xdp_fast_path {
                "on"
            } else {
                "auto"
            })
            .env("STRAIT_LAB", &self.names.lab)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        let placement = Placement {
            netns: node_ns.to_path_buf(),
            cgroup: Some(agent_cgroup),
            resolv_conf: None,
        };
        let child = process::spawn_in(&placement, &mut command, true)?;
        Ok(NodeRecord {
            name: node,
            index,
            netns: self.names.node_netns(index),
            ip: network::node_ip(index),
            pod_cidr,
            agent_pid: i32::try_from(child.id()).unwrap_or_default(),
            agent_socket: socket.display().to_string(),
            http_port: AGENT_HTTP_PORT,
            flannel: None,
        })
    }

    /// Stops the agent of `node` (SIGTERM) and starts a new one, as an upgrade or crash-restart would.
    /// Pods keep their data path throughout; returns once the new agent is healthy.
    pub fn restart_agent(&mut self, node: &str) -> Result<(), LabError> {
        let index = self
            .state
            .nodes
            .iter()
            .position(|n| n.name == node)
            .ok_or_else(|| LabError::Usage(format!("lab {} has no node {node}", self.names.lab)))?;
        let old = self.state.nodes[index].clone();
        if !old.runs_strait() {
            return Err(LabError::Usage(format!(
                "{node} is a Flannel reference node: no strait agent runs there"
            )));
        }
        process::stop(old.agent_pid, Duration::from_secs(5));
        let record = self.start_agent(old.index, &netns::path(&old.netns))?;
        self.state.nodes[index] = record;
        self.save()?;
        self.wait_agent_healthy(&self.state.nodes[index])
    }

    pub(crate) fn wait_agent_healthy(&self, node: &NodeRecord) -> Result<(), LabError> {
        let deadline = Instant::now() + AGENT_READY_TIMEOUT;
        loop {
            if self.agent_get(&node.name, "/healthz").is_ok() {
                return Ok(());
            }
            if !process::alive(node.agent_pid) || Instant::now() > deadline {
                let log = self.names.node_dir(&node.name).join("agent.log");
                let tail = fs::read_to_string(&log).unwrap_or_default();
                let tail: Vec<&str> = tail.lines().rev().take(10).collect();
                return Err(LabError::Environment(format!(
                    "agent of {} did not become healthy; last log lines ({}):\n{}",
                    node.name,
                    log.display(),
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// GETs `path` from the agent of `node` (inside its namespace); returns the body of a 200 answer.
    pub fn agent_get(&self, node: &str, path: &str) -> Result<String, LabError> {
        let record = self
            .state
            .node(node)
            .ok_or_else(|| LabError::Usage(format!("lab {} has no node {node}", self.names.lab)))?;
        let ns = netns::path(&record.netns);
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        let port = record.http_port;
        let answer = netns::run_in(&ns, move || -> std::io::Result<String> {
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
            let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
            stream.set_read_timeout(Some(Duration::from_secs(5)))?;
            stream.write_all(request.as_bytes())?;
            let mut text = String::new();
            stream.read_to_string(&mut text)?;
            Ok(text)
        })?
        .map_err(|e| LabError::io(format!("asking the agent of {node} for {path}"), e))?;
        let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
        if head.starts_with("HTTP/1.1 200") {
            Ok(body.to_owned())
        } else {
            Err(LabError::Environment(format!(
                "agent of {node} answered {path} with {}: {}",
                head.lines().next().unwrap_or_default(),
                body.trim()
            )))
        }
    }

    /// The attachments of `node`'s agent, asked on its unix socket (the agent serves the list only
    /// there, to root).
    pub fn agent_attachments(&self, node: &str) -> Result<AttachmentList, LabError> {
        let record = self
            .state
            .node(node)
            .ok_or_else(|| LabError::Usage(format!("lab {} has no node {node}", self.names.lab)))?;
        strait_cni::client::attachments(Path::new(&record.agent_socket), Duration::from_secs(5))
            .map_err(|e| {
                LabError::Environment(format!("asking the agent of {node} for its endpoints: {e}"))
            })
    }

    /// Where `who` runs: `NS/POD`, `node/NAME` or `external`.
    pub fn placement(&self, who: &str) -> Result<Placement, LabError> {
        if who == "external" {
            return Ok(Placement {
                netns: netns::path(&self.names.external_netns()),
                cgroup: Some(cgroup::path(&format!("{}/external", self.names.cgroup()))?),
                resolv_conf: None,
            });
        }
        if let Some(node) = who.strip_prefix("node/") {
            let record = self.state.node(node).ok_or_else(|| {
                LabError::Usage(format!("lab {} has no node {node}", self.names.lab))
            })?;
            return Ok(Placement {
                netns: netns::path(&record.netns),
                cgroup: Some(cgroup::path(&format!(
                    "{}/{node}/host",
                    self.names.cgroup()
                ))?),
                resolv_conf: None,
            });
        }
        let pod = self.state.pod(who).ok_or_else(|| {
            LabError::Usage(format!(
                "{who:?} is not a pod of lab {} (expected NS/POD, node/NAME or external)",
                self.names.lab
            ))
        })?;
        let resolv_conf = self.resolv_conf_path(&pod.node, &pod.namespace, &pod.name);
        Ok(Placement {
            netns: netns::path(&pod.netns),
            cgroup: Some(cgroup::path(&pod.cgroup)?),
            resolv_conf: resolv_conf.exists().then_some(resolv_conf),
        })
    }

    /// Runs `argv` in `who`'s namespace and cgroup with inherited stdio; returns its exit status as a
    /// shell gives it (128 + the signal for a command killed by one). A command that cannot be run is
    /// [`LabError::Exec`] (see [`LabError::exit_code`]).
    pub fn exec(&self, who: &str, argv: &[String]) -> Result<i32, LabError> {
        let (program, args) = argv
            .split_first()
            .ok_or_else(|| LabError::Usage("exec needs a command after --".into()))?;
        let placement = self.placement(who)?;
        let mut command = Command::new(program);
        command.args(args).env("STRAIT_LAB", &self.names.lab);
        let mut child = process::spawn_in(&placement, &mut command, false)?;
        let status = child
            .wait()
            .map_err(|e| LabError::io(format!("waiting for {program}"), e))?;
        Ok(exit_code(status))
    }

    /// Resolves `HOST:PORT`, where HOST is an IPv4 address or a pod `NS/NAME`.
    pub fn resolve_target(&self, target: &str) -> Result<SocketAddr, LabError> {
        let (host, port) = target
            .rsplit_once(':')
            .ok_or_else(|| LabError::Usage(format!("target {target:?} must be HOST:PORT")))?;
        let port: u16 = port
            .parse()
            .map_err(|_| LabError::Usage(format!("target {target:?}: {port:?} is not a port")))?;
        let ip = match host.parse::<Ipv4Addr>() {
            Ok(ip) => ip,
            Err(_) => self.state.pod(host).map(|p| p.ip).ok_or_else(|| {
                LabError::Usage(format!(
                    "target host {host:?} is neither an IPv4 address nor a pod"
                ))
            })?,
        };
        Ok(SocketAddr::from((ip, port)))
    }

    /// Probes `target` from `who`; returns the answering pod's `NS/NAME`, or the reason nobody answered.
    pub fn probe(
        &self,
        who: &str,
        target: &str,
        udp: bool,
        timeout: Duration,
    ) -> Result<Result<String, String>, LabError> {
        Ok(self
            .probe_with_peer(who, target, udp, timeout)?
            .map(|(name, _)| name))
    }

    /// Like [`Lab::probe`], also returning the client address the answering pod saw (`IP:PORT`), when it
    /// said.
    pub fn probe_with_peer(
        &self,
        who: &str,
        target: &str,
        udp: bool,
        timeout: Duration,
    ) -> Result<Result<(String, Option<String>), String>, LabError> {
        // A DNS name is resolved inside the prober, by its own resolver and resolv.conf (cluster DNS
        // for a pod), as any program there would.
        let target = match dns_name_target(target) {
            Some(named) => named.to_owned(),
            None => self.resolve_target(target)?.to_string(),
        };
        let placement = self.placement(who)?;
        let mut command = Command::new(self.bin_dir.join("strait"));
        command
            .args(["lab", "probe-client", "--target"])
            .arg(target)
            .arg("--timeout-ms")
            .arg(timeout.as_millis().to_string())
            .env("STRAIT_LAB", &self.names.lab)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if udp {
            command.arg("--udp");
        }
        let child = process::spawn_in(&placement, &mut command, false)?;
        let output = child
            .wait_with_output()
            .map_err(|e| LabError::io("waiting for the probe", e))?;
        if output.status.success() {
            let text = String::from_utf8_lossy(&output.stdout);
            let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
            let name = lines.next().unwrap_or_default().to_owned();
            Ok(Ok((name, lines.next().map(str::to_owned))))
        } else {
            Ok(Err(String::from_utf8_lossy(&output.stderr)
                .trim()
                .to_owned()))
        }
    }
}

/// `target` when it is `NAME:PORT` with a DNS name (letters, digits, `-`, `.`, at least one letter)
/// rather than an address or a pod.
fn dns_name_target(target: &str) -> Option<&str> {
    let (host, port) = target.rsplit_once(':')?;
    let is_name = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        && host.chars().any(|c| c.is_ascii_alphabetic());
    (is_name && port.parse::<u16>().is_ok()).then_some(target)
}

/// A finished command's status as a shell reports it: its exit code, or 128 + the signal that ended it.
pub fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt as _;
    status
        .code()
        .or_else(|| status.signal().map(|signal| 128 + signal))
        .unwrap_or(128)
}

#[cfg(test)]
mod tests {
    use super::dns_name_target;

    #[test]
    fn only_names_with_a_port_are_left_to_the_probers_resolver() {
        assert_eq!(dns_name_target("web:80"), Some("web:80"));
        assert_eq!(
            dns_name_target("web.default.svc.cluster.local:8080"),
            Some("web.default.svc.cluster.local:8080")
        );
        assert_eq!(dns_name_target("10.96.0.11:80"), None);
        assert_eq!(dns_name_target("default/web:80"), None);
        assert_eq!(dns_name_target("web"), None);
        assert_eq!(dns_name_target("web:http"), None);
    }
}
