//! Nodes joining and leaving a running lab (`strait lab node add|remove`), as a cluster's nodes come
//! and go: a new node is plugged into the underlay, gets its agent (or Flannel's setup) and its Node
//! object, and every other node learns its pod CIDR from that object; a removed node's pods go with it,
//! its agent stops, its namespace, pins and cgroups are removed, and its Node object disappears, so the
//! other nodes drop their routes to it.

use std::{fs, path::Path, time::Duration};

use strait_dataplane::{Dataplane, bpffs, netlink::Netlink, netns};

use crate::{
    LabError, cgroup,
    cluster::Lab,
    flannel, network, process,
    state::{NodeRecord, PodRecord},
};

/// A runtime for the netlink calls of one node operation.
fn runtime() -> Result<tokio::runtime::Runtime, LabError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| LabError::io("starting a runtime", e))
}

impl Lab {
    /// Adds a node (a Flannel reference node with `flannel`) with the next free index; returns its name
    /// once it is ready and every agent has its Node object.
    pub fn add_node(&mut self, flannel: bool) -> Result<String, LabError> {
        let index = self.state.nodes.iter().map(|n| n.index).max().unwrap_or(0) + 1;
        let path = netns::create(&self.names.node_netns(index))?;
        let runtime = runtime()?;
        let underlay = netns::path(&self.names.underlay_netns());
        runtime.block_on(async {
            let nl = Netlink::connect_in(&underlay)?;
            network::plug(&nl, &format!("n{index}"), &path, network::node_ip(index)).await
        })?;
        let record = if flannel {
            runtime.block_on(self.start_flannel_node(index, &path))?
        } else {
            network::configure_node(&path)?;
            self.start_agent(index, &path)?
        };
        let name = record.name.clone();
        self.state.nodes.push(record);
        self.save()?;
        if let Some(node) = self.state.nodes.last().filter(|n| n.runs_strait()) {
            self.wait_agent_healthy(node)?;
        }
        self.route_flannel_nodes(&runtime)?;
        self.publish()?;
        tracing::info!(node = %name, "node added");
        Ok(name)
    }

    /// Removes node `name`: its pods, its agent, its namespace (and links), pins, cgroups and Node
    /// object; returns once every remaining agent has synced without it.
    pub fn remove_node(&mut self, name: &str) -> Result<(), LabError> {
        let node =
            self.state.node(name).cloned().ok_or_else(|| {
                LabError::Usage(format!("lab {} has no node {name}", self.names.lab))
            })?;
        if self.state.nodes.len() == 1 {
            return Err(LabError::Usage(format!(
                "{name} is the lab's last node: tear the lab down instead"
            )));
        }
        let pods: Vec<PodRecord> = self
            .state
            .pods
            .iter()
            .filter(|p| p.node == name)
            .cloned()
            .collect();
        for pod in &pods {
            self.delete_pod(pod)?;
        }
        if node.runs_strait() {
            process::stop(node.agent_pid, Duration::from_secs(5));
        }
        self.unplug(node.index)?;
        netns::delete(&node.netns)?;
        let pins = Path::new(bpffs::DEFAULT_BPFFS).join("strait").join(name);
        if pins.exists() {
            Dataplane::remove_pins(&pins)?;
        }
        cgroup::remove_tree(&format!("{}/{name}", self.names.cgroup()))?;
        match fs::remove_dir_all(self.names.node_dir(name)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(LabError::io("removing the node directory", e)),
        }
        self.state.nodes.retain(|n| n.name != name);
        self.forget_on_flannel_nodes(&node)?;
        self.save()?;
        self.publish()?;
        tracing::info!(node = %name, pods = pods.len(), "node removed");
        Ok(())
    }

    /// Deletes node `index`'s port on the underlay bridge (its veth pair goes with it) now: left to the
    /// namespace's teardown, the kernel removes it some time after the namespace file is gone, and a
    /// node added at once with the same index would find the name taken.
    fn unplug(&self, index: usize) -> Result<(), LabError> {
        let runtime = runtime()?;
        let underlay = netns::path(&self.names.underlay_netns());
        runtime.block_on(async {
            let nl = Netlink::connect_in(&underlay)?;
            if let Some(port) = nl.link_index(&format!("n{index}")).await? {
                nl.delete_link(port).await?;
            }
            Ok::<_, LabError>(())
        })
    }

    /// Removes `gone`'s entries from every remaining Flannel reference node, as flanneld does when a
    /// Node object is deleted.
    fn forget_on_flannel_nodes(&self, gone: &NodeRecord) -> Result<(), LabError> {
        let runtime = runtime()?;
        for node in self.state.nodes.iter().filter(|n| !n.runs_strait()) {
            runtime.block_on(flannel::forget(&netns::path(&node.netns), gone))?;
        }
        Ok(())
    }

    /// Gives every Flannel reference node flanneld's entries for every other node (idempotent).
    fn route_flannel_nodes(&self, runtime: &tokio::runtime::Runtime) -> Result<(), LabError> {
        let nodes: Vec<NodeRecord> = self.state.nodes.clone();
        for node in nodes.iter().filter(|n| !n.runs_strait()) {
            let path = netns::path(&node.netns);
            runtime.block_on(flannel::route_to_others(&path, &node.name, &nodes))?;
        }
        Ok(())
    }
}
