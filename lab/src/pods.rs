//! The lab's container runtime part: scheduling a pod onto the least loaded node, creating its namespace
//! and cgroup, calling the CNI plugin, starting the workload and waiting for it; and the reverse.

use std::{fmt::Write as _, fs, io::Read, net::Ipv4Addr, path::Path, time::Duration};

use strait_dataplane::netns;

use crate::{
    LabError, cgroup,
    cluster::{Lab, POD_READY_TIMEOUT},
    cni_exec::{self, CniCall},
    flannel,
    manifests::{PodSpecLite, Protocol},
    process::{self, Placement},
    state::{NodeRecord, PodRecord},
    workload::{self, Listen},
};

impl Lab {
    /// The node a pod runs on: the one its `spec.nodeName` names, else the least loaded, as
    /// kube-scheduler's NodePorts filter has it: never one where another pod holds one of its host
    /// ports.
    fn pick_node(&self, spec: &PodSpecLite) -> Result<NodeRecord, LabError> {
        let id = format!("{}/{}", spec.namespace, spec.name);
        if let Some(name) = &spec.node_name {
            let node = self.state.node(name).cloned().ok_or_else(|| {
                LabError::Usage(format!(
                    "pod {id}: spec.nodeName {name} is no node of lab {}",
                    self.names.lab
                ))
            })?;
            if let Some(taken) = self.host_port_taken(spec, name) {
                return Err(LabError::Usage(format!(
                    "pod {id}: {taken} on node {name} (a cluster would leave the pod Pending)"
                )));
            }
            return Ok(node);
        }
        let free: Vec<&NodeRecord> = self
            .state
            .nodes
            .iter()
            .filter(|n| self.host_port_taken(spec, &n.name).is_none())
            .collect();
        if free.is_empty() && !self.state.nodes.is_empty() {
            return Err(LabError::Usage(format!(
                "pod {id}: its host ports are taken on every node (a cluster would leave the pod Pending)"
            )));
        }
        free.into_iter()
            .min_by_key(|n| self.state.pods.iter().filter(|p| p.node == n.name).count())
            .cloned()
            .ok_or_else(|| LabError::Environment("the lab has no nodes".into()))
    }

    /// Which of `spec`'s host ports another pod on `node` holds, said as a sentence: same port and
    /// protocol, and addresses that overlap (equal, or either one every address).
    fn host_port_taken(&self, spec: &PodSpecLite, node: &str) -> Option<String> {
        let every = |ip: Option<&str>| matches!(ip, None | Some("0.0.0.0"));
        let overlap = |a: Option<&str>, b: Option<&str>| every(a) || every(b) || a == b;
        self.state
            .pods
            .iter()
            .filter(|p| p.node == node && (p.namespace != spec.namespace || p.name != spec.name))
            .find_map(|other| {
                spec.ports.iter().find_map(|mine| {
                    let host_port = mine.host_port?;
                    let held = other.ports.iter().any(|theirs| {
                        theirs.host_port == Some(host_port)
                            && theirs.protocol == mine.protocol
                            && overlap(theirs.host_ip.as_deref(), mine.host_ip.as_deref())
                    });
                    held.then(|| {
                        format!(
                            "host port {host_port}/{} on {} is held by pod {}",
                            mine.protocol.as_str(),
                            mine.host_ip.as_deref().unwrap_or("every address"),
                            other.id()
                        )
                    })
                })
            })
    }

    pub(crate) fn create_pod(&mut self, spec: &PodSpecLite) -> Result<(), LabError> {
        let node = self.pick_node(spec)?;
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
            dns: spec.dns.clone(),
        });
        self.save()
    }

    /// Plumbs the pod's network: through strait's CNI plugin on a strait node, as the bridge plugin
    /// would on a Flannel reference node; returns its address.
    fn plumb(
        &self,
        spec: &PodSpecLite,
        node: &NodeRecord,
        container_id: &str,
        ns_path: &Path,
    ) -> Result<Ipv4Addr, LabError> {
        if !node.runs_strait() {
            let taken: Vec<Ipv4Addr> = self
                .state
                .pods
                .iter()
                .filter(|p| p.node == node.name)
                .map(|p| p.ip)
                .collect();
            let ip = flannel::next_address(node, &taken)?;
            block_on(flannel::plumb_pod(node, ns_path, container_id, ip))?;
            return Ok(ip);
        }
        let conflist = self
            .names
            .node_dir(&node.name)
            .join("cni/10-strait.conflist");
        let call = CniCall {
            command: "ADD",
            container_id,
            netns: Some(ns_path),
            ifname: "eth0",
            pod_namespace: &spec.namespace,
            pod_name: &spec.name,
        };
        let result = cni_exec::invoke(
            &self.bin_dir,
            &conflist,
            &netns::path(&node.netns),
            &call,
            None,
        )?;
        cni_exec::result_address(&result)
    }

    /// Undoes [`Lab::plumb`].
    /// Where the resolv.conf of pod `namespace/name` on `node` is kept.
    pub(crate) fn resolv_conf_path(
        &self,
        node: &str,
        namespace: &str,
        name: &str,
    ) -> std::path::PathBuf {
        self.names
            .node_dir(node)
            .join("pods")
            .join(format!("{namespace}_{name}.resolv.conf"))
    }

    fn unplumb(
        &self,
        node: &NodeRecord,
        container_id: &str,
        ns_path: &Path,
        pod: (&str, &str),
    ) -> Result<(), LabError> {
        if !node.runs_strait() {
            return block_on(flannel::unplumb_pod(node, container_id));
        }
        let conflist = self
            .names
            .node_dir(&node.name)
            .join("cni/10-strait.conflist");
        let call = CniCall {
            command: "DEL",
            container_id,
            netns: Some(ns_path),
            ifname: "eth0",
            pod_namespace: pod.0,
            pod_name: pod.1,
        };
        cni_exec::invoke(
            &self.bin_dir,
            &conflist,
            &netns::path(&node.netns),
            &call,
            None,
        )
        .map(drop)
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
        let ip = self.plumb(spec, node, container_id, ns_path)?;
        let started = (|| {
            let cgroup_dir = cgroup::create(cgroup_rel)?;
            let file_stem = format!("{}_{}", spec.namespace, spec.name);
            let listen: Vec<Listen> = spec
                .ports
                .iter()
                .map(|port| match port.protocol {
                    Protocol::Udp => Listen::Udp(port.port),
                    Protocol::Tcp => Listen::Tcp(port.port),
                })
                .collect();
            let resolv_conf = (!self.state.options.no_cluster_dns)
                .then(|| self.resolv_conf_path(&node.name, &spec.namespace, &spec.name));
            if let Some(path) = &resolv_conf {
                crate::cluster_dns::write_resolv_conf(path, &spec.namespace)?;
            }
            workload::spawn(&workload::Start {
                bin_dir: &self.bin_dir,
                lab: &self.names.lab,
                identity: &format!("{}/{}", spec.namespace, spec.name),
                listen: &listen,
                placement: Placement {
                    netns: ns_path.to_path_buf(),
                    cgroup: Some(cgroup_dir),
                    resolv_conf,
                },
                ready_file: node_dir.join("pods").join(format!("{file_stem}.ready")),
                log_file: node_dir.join("pods").join(format!("{file_stem}.log")),
                timeout: POD_READY_TIMEOUT,
            })
        })();
        match started {
            Ok(pid) => Ok((ip, pid)),
            Err(error) => {
                let _ = self.unplumb(node, container_id, ns_path, (&spec.namespace, &spec.name));
                Err(error)
            }
        }
    }

    pub(crate) fn delete_pod(&mut self, pod: &PodRecord) -> Result<(), LabError> {
        process::stop(pod.workload_pid, Duration::from_millis(500));
        let node = self.state.node(&pod.node).cloned().ok_or_else(|| {
            LabError::Environment(format!("pod {} is on unknown node {}", pod.id(), pod.node))
        })?;
        let ns_path = netns::path(&pod.netns);
        self.unplumb(
            &node,
            &pod.container_id,
            &ns_path,
            (&pod.namespace, &pod.name),
        )?;
        netns::delete(&pod.netns)?;
        cgroup::remove_tree(&pod.cgroup)?;
        self.state.pods.retain(|p| p.id() != pod.id());
        self.save()?;
        tracing::info!(pod = %pod.id(), "pod deleted");
        Ok(())
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

/// Runs a netlink future of the Flannel node's plumbing to completion.
fn block_on<T>(
    future: impl std::future::Future<Output = Result<T, LabError>>,
) -> Result<T, LabError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| LabError::io("starting a runtime", e))?
        .block_on(future)
}
