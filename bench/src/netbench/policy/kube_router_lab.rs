//! The baseline's labs: cross-node's Flannel lab (two Flannel reference nodes: kernel VXLAN, `cni0`
//! bridges, kube-proxy's iptables rules for the benchmark Service on the client's node), with
//! kube-router's filter rules and ipsets ([`super::kube_router`]) for the sweep's policies on both
//! nodes, each node given the chains of its own pods, as kube-router's agent on it would write them.
//! A sync runs on both nodes at once, each as kube-router's does: `ipset restore -exist`, then
//! `iptables-save -t filter`, then `iptables-restore` of the whole table.

use std::{collections::BTreeMap, path::PathBuf, thread, time::Instant};

use strait_dataplane::netns;
use strait_lab::{apply::NAMESPACE_NAME_LABEL, cluster::Lab};

use super::{
    kube_router::{self, Cluster, Pod},
    manifest::{self, PolicySpec},
};
use crate::netbench::{
    bridge_lab,
    crossnode::{CrossError, error, labs},
};

/// One node of the baseline: its namespace and the pods it runs.
struct Node {
    name: String,
    netns: PathBuf,
    local: Vec<Pod>,
}

/// What one sync did.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Synced {
    /// The slowest node's sync, in milliseconds.
    pub ms: f64,
    /// Sets on a node.
    pub sets: usize,
    /// Rules of kube-router's chains on the server's node.
    pub rules: usize,
}

/// A Flannel lab's two nodes under kube-router's rules.
pub struct KubeRouterNodes {
    lab: String,
    cluster: Cluster,
    nodes: Vec<Node>,
    version: u64,
}

/// The cluster's namespaces as kube-router's informer has them: the built-in ones and the sweep's,
/// each labelled with its name.
fn namespaces() -> BTreeMap<String, BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let names = strait_lab::apply::BUILTIN_NAMESPACES
        .iter()
        .map(|n| ((*n).to_owned(), Vec::new()))
        .chain(
            (0..manifest::NAMESPACES)
                .map(|k| (manifest::namespace(k), manifest::namespace_labels(k))),
        );
    for (name, labels) in names {
        let mut labels: BTreeMap<String, String> = labels.into_iter().collect();
        labels.insert(NAMESPACE_NAME_LABEL.to_owned(), name.clone());
        out.insert(name, labels);
    }
    out
}

/// kube-router's policy order is its informer cache's (arbitrary, changing); the sweep puts the
/// allowing policy in the middle of the server's jumps, where an average policy stands.
pub fn in_jump_order(specs: &[PolicySpec]) -> Vec<PolicySpec> {
    let Some((first, rest)) = specs.split_first() else {
        return Vec::new();
    };
    let middle = rest.len() / 2;
    let mut out = rest.to_vec();
    out.insert(middle, first.clone());
    out
}

impl KubeRouterNodes {
    /// The two benchmark pods' nodes of `lab` (a Flannel lab from [`labs::flannel`]).
    pub fn new(lab: &Lab) -> Result<Self, CrossError> {
        let pods: Vec<Pod> = [labs::CLIENT_POD, labs::SERVER_POD]
            .iter()
            .map(|key| {
                let record = lab.state.pod(key).ok_or_else(|| {
                    CrossError::Invalid(format!("lab {} has no {key}", lab.names.lab))
                })?;
                Ok(Pod {
                    namespace: record.namespace.clone(),
                    name: record.name.clone(),
                    labels: record.labels.clone(),
                    ip: record.ip,
                })
            })
            .collect::<Result<_, CrossError>>()?;
        let mut nodes = Vec::new();
        for key in [labs::CLIENT_POD, labs::SERVER_POD] {
            let record = lab.state.pod(key).expect("found above");
            let node = lab
                .state
                .nodes
                .iter()
                .find(|n| n.name == record.node)
                .ok_or_else(|| CrossError::Invalid(format!("{key} runs on no node of the lab")))?;
            nodes.push(Node {
                name: node.name.clone(),
                netns: netns::path(&node.netns),
                local: pods.iter().filter(|p| p.ip == record.ip).cloned().collect(),
            });
        }
        Ok(Self {
            lab: lab.names.lab.clone(),
            cluster: Cluster {
                pods,
                namespaces: namespaces(),
            },
            nodes,
            version: 0,
        })
    }

    /// One full sync of `specs` on both nodes at once.
    pub fn sync(&mut self, specs: &[PolicySpec]) -> Result<Synced, CrossError> {
        self.version += 1;
        let version = format!("{}{}", std::process::id(), self.version);
        let ordered = in_jump_order(specs);
        let results: Vec<Result<(f64, kube_router::NodeSync), CrossError>> =
            thread::scope(|scope| {
                let handles: Vec<_> = self
                    .nodes
                    .iter()
                    .map(|node| {
                        let (cluster, lab, version, ordered) =
                            (&self.cluster, &self.lab, &version, &ordered);
                        scope.spawn(move || sync_node(lab, cluster, node, ordered, version))
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join().unwrap_or_else(|_| {
                            Err(CrossError::Invalid("a sync thread panicked".into()))
                        })
                    })
                    .collect()
            });
        let mut synced = Synced::default();
        for result in results {
            let (ms, sync) = result?;
            synced.ms = synced.ms.max(ms);
            synced.sets = synced.sets.max(sync.sets);
            synced.rules = synced.rules.max(sync.rules.len());
        }
        Ok(synced)
    }
}

/// One node's sync, timed from its start to the end of the restore.
fn sync_node(
    lab: &str,
    cluster: &Cluster,
    node: &Node,
    specs: &[PolicySpec],
    version: &str,
) -> Result<(f64, kube_router::NodeSync), CrossError> {
    let started = Instant::now();
    let local: Vec<&Pod> = node.local.iter().collect();
    let sync = kube_router::node_sync(cluster, specs, &local, version);
    let run = |argv: &[&str], input: &str| {
        bridge_lab::run_in_netns(lab, &node.netns, argv, input)
            .map_err(error::lab(format!("running {} on {}", argv[0], node.name)))
    };
    run(&["ipset", "restore", "-exist"], &sync.ipsets)?;
    let saved = run(&["iptables-save", "-t", "filter"], "")?.stdout;
    run(
        &["iptables-restore", "-w"],
        &kube_router::merge(&saved, &sync),
    )?;
    Ok((started.elapsed().as_secs_f64() * 1000.0, sync))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_allowing_policy_stands_in_the_middle() {
        let specs = manifest::specs(5);
        let ordered = in_jump_order(&specs);
        assert_eq!(ordered.len(), 5);
        assert_eq!(ordered[2].name, manifest::ALLOW_CLIENT);
        assert!(in_jump_order(&[]).is_empty());
        assert_eq!(namespaces()["default"][NAMESPACE_NAME_LABEL], "default");
    }
}
