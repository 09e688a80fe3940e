//! The lab orchestrator: `up`, `apply`, `delete`, `down`, `exec`, `probe` and the agent queries. It plays
//! the control plane's part (scheduling pods onto nodes, expanding Deployments) and the container
//! runtime's part (namespaces, cgroups, CNI calls, workload processes).

use std::{
    collections::BTreeSet,
    fs,
    io::{Read, Write},
    net::{Ipv4Addr, SocketAddr, TcpStream},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use std::fmt::Write as _;

use serde_json::json;
use strait_dataplane::{Dataplane, bpffs, netns};

use crate::{
    LabError, cgroup,
    cni_exec::{self, CniCall},
    manifests::{self, Object, PodSpecLite, Protocol},
    names::LabNames,
    network,
    process::{self, Placement},
    state::{LabState, NodeRecord, PodRecord},
};

/// Port of each agent's HTTP server inside its node namespace.
pub const AGENT_HTTP_PORT: u16 = 9962;
const AGENT_READY_TIMEOUT: Duration = Duration::from_secs(30);
const POD_READY_TIMEOUT: Duration = Duration::from_secs(15);

/// An existing lab, loaded from its state.
pub struct Lab {
    pub names: LabNames,
    pub state: LabState,
    bin_dir: PathBuf,
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
        down(name)?;
        let bin_dir = cni_exec::binary_dir()?;
        let mut lab = Self {
            state: LabState {
                name: name.to_owned(),
                ..LabState::default()
            },
            names,
            bin_dir,
        };
        let built = lab.build(nodes).and_then(|()| match manifests {
            Some(path) => lab.apply(path),
            None => Ok(()),
        });
        if let Err(error) = built {
            tracing::warn!(%error, "lab up failed; removing what was built");
            let _ = down(name);
            return Err(error);
        }
        Ok(lab)
    }

    fn save(&self) -> Result<(), LabError> {
        self.state.save(&state_path(&self.names))
    }

    fn build(&mut self, nodes: usize) -> Result<(), LabError> {
        fs::create_dir_all(self.names.run_dir())
            .map_err(|e| LabError::io("creating the lab directory", e))?;
        self.save()?;
        bpffs::ensure_mounted(Path::new(bpffs::DEFAULT_BPFFS))?;
        cgroup::create(&self.names.cgroup())?;
        cgroup::create(&format!("{}/external", self.names.cgroup()))?;
        let underlay = netns::create(&self.names.underlay_netns())?;
        let external = netns::create(&self.names.external_netns())?;
        let mut node_paths = Vec::new();
        for index in 1..=nodes {
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
        for (index, path) in &node_paths {
            network::configure_node(path)?;
            let record = self.start_agent(*index, path)?;
            self.state.nodes.push(record);
            self.save()?;
        }
        for node in &self.state.nodes {
            self.wait_agent_healthy(node)?;
        }
        Ok(())
    }

    fn start_agent(&self, index: usize, node_ns: &Path) -> Result<NodeRecord, LabError> {
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
        process::stop(old.agent_pid, Duration::from_secs(5));
        let record = self.start_agent(old.index, &netns::path(&old.netns))?;
        self.state.nodes[index] = record;
        self.save()?;
        self.wait_agent_healthy(&self.state.nodes[index])
    }

    fn wait_agent_healthy(&self, node: &NodeRecord) -> Result<(), LabError> {
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
                "agent of {node} answered {path} with {}",
                head.lines().next().unwrap_or_default()
            )))
        }
    }

    /// Applies every object in `path` (file or directory). Pods are created and waited for.
    pub fn apply(&mut self, path: &Path) -> Result<(), LabError> {
        let loaded = manifests::load_path_skipping_unknown(path)?;
        for skipped in &loaded.skipped {
            tracing::warn!("skipped: {skipped}");
        }
        for object in &loaded.objects {
            match object {
                Object::Namespace(_) => {}
                Object::Service(service) => {
                    let key = format!("{}/{}", object.namespace(), object.name());
                    self.state.services.insert(key, service.clone());
                    self.save()?;
                }
                Object::Pod(pod) => {
                    let spec = manifests::pod_from_pod(pod);
                    if self
                        .state
                        .pod(&format!("{}/{}", spec.namespace, spec.name))
                        .is_none()
                    {
                        self.create_pod(&spec)?;
                    }
                }
                Object::Deployment(deployment) => {
                    let key = format!("{}/{}", object.namespace(), object.name());
                    let replicas = manifests::deployment_replicas(deployment);
                    let hash = manifests::pod_template_hash(&deployment.spec.template);
                    let outdated: Vec<PodRecord> = self
                        .state
                        .pods
                        .iter()
                        .filter(|p| {
                            p.owner.as_deref() == Some(&key)
                                && p.template_hash.as_deref() != Some(&hash)
                        })
                        .cloned()
                        .collect();
                    for pod in outdated {
                        self.delete_pod(&pod)?;
                    }
                    let current: Vec<PodRecord> = self
                        .state
                        .pods
                        .iter()
                        .filter(|p| p.owner.as_deref() == Some(&key))
                        .cloned()
                        .collect();
                    for surplus in current.iter().skip(replicas) {
                        self.delete_pod(surplus)?;
                    }
                    let existing: BTreeSet<String> =
                        self.state.pods.iter().map(|p| p.name.clone()).collect();
                    for spec in manifests::pods_for_deployment(
                        deployment,
                        &existing,
                        replicas.saturating_sub(current.len()),
                    ) {
                        self.create_pod(&spec)?;
                    }
                    self.state.deployments.insert(key, (replicas, hash));
                    self.save()?;
                }
            }
        }
        Ok(())
    }

    /// Deletes every object named in `path`.
    pub fn delete(&mut self, path: &Path) -> Result<(), LabError> {
        let loaded = manifests::load_path_skipping_unknown(path)?;
        for object in &loaded.objects {
            let key = format!("{}/{}", object.namespace(), object.name());
            match object {
                Object::Namespace(_) => {}
                Object::Service(_) => {
                    self.state.services.remove(&key);
                }
                Object::Pod(_) => {
                    if let Some(pod) = self.state.pod(&key).cloned() {
                        self.delete_pod(&pod)?;
                    }
                }
                Object::Deployment(_) => {
                    let owned: Vec<PodRecord> = self
                        .state
                        .pods
                        .iter()
                        .filter(|p| p.owner.as_deref() == Some(&key))
                        .cloned()
                        .collect();
                    for pod in owned {
                        self.delete_pod(&pod)?;
                    }
                    self.state.deployments.remove(&key);
                }
            }
            self.save()?;
        }
        Ok(())
    }

    fn pick_node(&self) -> Result<NodeRecord, LabError> {
        self.state
            .nodes
            .iter()
            .min_by_key(|n| self.state.pods.iter().filter(|p| p.node == n.name).count())
            .cloned()
            .ok_or_else(|| LabError::Environment("the lab has no nodes".into()))
    }

    fn create_pod(&mut self, spec: &PodSpecLite) -> Result<(), LabError> {
        let node = self.pick_node()?;
        let id = format!("{}/{}", spec.namespace, spec.name);
        let container_id = random_container_id()?;
        let netns_name = self.names.pod_netns(&spec.namespace, &spec.name);
        let ns_path = netns::create(&netns_name)?;
        let cgroup_rel = format!(
            "{}/{}/pods/{}_{}",
            self.names.cgroup(),
            node.name,
            spec.namespace,
            spec.name
        );
        let made = self.attach_and_start(spec, &node, &container_id, &ns_path, &cgroup_rel);
        let (ip, pid) = match made {
            Ok(v) => v,
            Err(error) => {
                let _ = netns::delete(&netns_name);
                let _ = cgroup::remove_tree(&cgroup_rel);
                return Err(error);
            }
        };
        tracing::info!(pod = %id, node = %node.name, %ip, "pod running");
        self.state.pods.push(PodRecord {
            namespace: spec.namespace.clone(),
            name: spec.name.clone(),
            node: node.name.clone(),
            container_id,
            netns: netns_name,
            cgroup: cgroup_rel,
            ip,
            ports: spec.ports.clone(),
            labels: spec.labels.clone(),
            owner: spec
                .owner
                .as_ref()
                .map(|o| format!("{}/{}", spec.namespace, o.name)),
            template_hash: spec.owner.as_ref().map(|o| o.template_hash.clone()),
            workload_pid: pid,
        });
        self.save()
    }

    fn attach_and_start(
        &self,
        spec: &PodSpecLite,
        node: &NodeRecord,
        container_id: &str,
        ns_path: &Path,
        cgroup_rel: &str,
    ) -> Result<(Ipv4Addr, i32), LabError> {
        let node_dir = self.names.node_dir(&node.name);
        let conflist = node_dir.join("cni/10-strait.conflist");
        let node_ns = netns::path(&node.netns);
        let call = CniCall {
            command: "ADD",
            container_id,
            netns: Some(ns_path),
            ifname: "eth0",
            pod_namespace: &spec.namespace,
            pod_name: &spec.name,
        };
        let result = cni_exec::invoke(&self.bin_dir, &conflist, &node_ns, &call, None)?;
        let ip = cni_exec::result_address(&result)?;
        let started = (|| {
            let cgroup_dir = cgroup::create(cgroup_rel)?;
            let file_stem = format!("{}_{}", spec.namespace, spec.name);
            let ready = node_dir.join("pods").join(format!("{file_stem}.ready"));
            let _ = fs::remove_file(&ready);
            let log = process::log_file(&node_dir.join("pods").join(format!("{file_stem}.log")))?;
            let log_err = log
                .try_clone()
                .map_err(|e| LabError::io("duplicating the log handle", e))?;
            let mut command = Command::new(self.bin_dir.join("strait"));
            command
                .args(["lab", "workload", "--identity"])
                .arg(format!("{}/{}", spec.namespace, spec.name))
                .arg("--ready-file")
                .arg(&ready);
            for port in &spec.ports {
                let proto = if port.protocol == Protocol::Udp {
                    "udp"
                } else {
                    "tcp"
                };
                command
                    .arg("--listen")
                    .arg(format!("{proto}:{}", port.port));
            }
            command
                .env("STRAIT_LAB", &self.names.lab)
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(log_err);
            let placement = Placement {
                netns: ns_path.to_path_buf(),
                cgroup: Some(cgroup_dir),
            };
            let child = process::spawn_in(&placement, &mut command, true)?;
            let pid = i32::try_from(child.id()).unwrap_or_default();
            let deadline = Instant::now() + POD_READY_TIMEOUT;
            while !ready.exists() {
                if !process::alive(pid) || Instant::now() > deadline {
                    process::stop(pid, Duration::from_millis(100));
                    return Err(LabError::Environment(format!(
                        "workload of pod {}/{} did not become ready",
                        spec.namespace, spec.name
                    )));
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Ok(pid)
        })();
        match started {
            Ok(pid) => Ok((ip, pid)),
            Err(error) => {
                let del = CniCall {
                    command: "DEL",
                    ..call
                };
                let _ = cni_exec::invoke(&self.bin_dir, &conflist, &node_ns, &del, None);
                Err(error)
            }
        }
    }

    fn delete_pod(&mut self, pod: &PodRecord) -> Result<(), LabError> {
        process::stop(pod.workload_pid, Duration::from_millis(500));
        let node = self.state.node(&pod.node).cloned().ok_or_else(|| {
            LabError::Environment(format!("pod {} is on unknown node {}", pod.id(), pod.node))
        })?;
        let conflist = self
            .names
            .node_dir(&node.name)
            .join("cni/10-strait.conflist");
        let ns_path = netns::path(&pod.netns);
        let call = CniCall {
            command: "DEL",
            container_id: &pod.container_id,
            netns: Some(&ns_path),
            ifname: "eth0",
            pod_namespace: &pod.namespace,
            pod_name: &pod.name,
        };
        cni_exec::invoke(
            &self.bin_dir,
            &conflist,
            &netns::path(&node.netns),
            &call,
            None,
        )?;
        netns::delete(&pod.netns)?;
        cgroup::remove_tree(&pod.cgroup)?;
        self.state.pods.retain(|p| p.id() != pod.id());
        self.save()?;
        tracing::info!(pod = %pod.id(), "pod deleted");
        Ok(())
    }

    /// Where `who` runs: `NS/POD`, `node/NAME` or `external`.
    pub fn placement(&self, who: &str) -> Result<Placement, LabError> {
        if who == "external" {
            return Ok(Placement {
                netns: netns::path(&self.names.external_netns()),
                cgroup: Some(cgroup::path(&format!("{}/external", self.names.cgroup()))?),
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
            });
        }
        let pod = self.state.pod(who).ok_or_else(|| {
            LabError::Usage(format!(
                "{who:?} is not a pod of lab {} (expected NS/POD, node/NAME or external)",
                self.names.lab
            ))
        })?;
        Ok(Placement {
            netns: netns::path(&pod.netns),
            cgroup: Some(cgroup::path(&pod.cgroup)?),
        })
    }

    /// Runs `argv` in `who`'s namespace and cgroup with inherited stdio; returns its exit code.
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
        Ok(status.code().unwrap_or(128))
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
        let addr = self.resolve_target(target)?;
        let placement = self.placement(who)?;
        let mut command = Command::new(self.bin_dir.join("strait"));
        command
            .args(["lab", "probe-client", "--target"])
            .arg(addr.to_string())
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
            Ok(Ok(String::from_utf8_lossy(&output.stdout)
                .trim()
                .to_owned()))
        } else {
            Ok(Err(String::from_utf8_lossy(&output.stderr)
                .trim()
                .to_owned()))
        }
    }
}

fn random_container_id() -> Result<String, LabError> {
    let mut bytes = [0u8; 32];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| LabError::io("reading /dev/urandom", e))?;
    Ok(bytes.iter().fold(String::with_capacity(64), |mut id, b| {
        let _ = write!(id, "{b:02x}");
        id
    }))
}

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
