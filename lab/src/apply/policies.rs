//! NetworkPolicies in the lab. Apply admits one as the API server would, and more: it must parse as the
//! specification reads it (`strait_k8s::netpol::rules::Policy::parse`: selectors, CIDRs, protocols,
//! `endPort` with a numeric `port`), so a policy the agents are handed always means one thing. Admitted
//! policies are kept in the lab's state by `namespace/name` (a re-applied one replaces the old) and
//! published to every agent with every Pod and Namespace.
//!
//! [`Lab::policy_cluster`] is the lab as the specification sees it (its pods with their addresses,
//! labels and named ports; its namespaces' labels; its policies), and [`Lab::expected_reachability`] the
//! truth table that gives: what a probed table ([`Lab::reachability`]) must equal.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::NetworkPolicy;
use strait_k8s::netpol::{
    Flow, Party, Policy, PolicyPod, Protocol as PolicyProtocol, explain::PolicyCluster,
};

use super::known_namespaces;
use crate::{
    LabError, cluster::Lab, manifests::Protocol, publish::pod_object, reachability::Reachability,
    state::LabState,
};

/// `policy` as the lab stores it (its namespace, `namespace`, written out), if it parses; else what is
/// wrong with it (`spec.ingress[0].from[0].ipBlock.cidr: "10.0.0.0/33" is not a CIDR`).
pub(crate) fn admit(policy: &NetworkPolicy, namespace: &str) -> Result<NetworkPolicy, String> {
    let mut policy = policy.clone();
    policy.metadata.namespace = Some(namespace.to_owned());
    Policy::parse(&policy).map_err(|e| e.to_string())?;
    Ok(policy)
}

/// The cluster of `state` as the specification sees it.
pub fn policy_cluster(state: &LabState) -> Result<PolicyCluster, LabError> {
    let pods = state
        .pods
        .iter()
        .map(|pod| PolicyPod::from_pod(&pod_object(pod), Some(pod.ip)))
        .collect();
    let namespaces = known_namespaces(state)
        .into_iter()
        .map(|(name, namespace)| (name, namespace.metadata.labels.unwrap_or_default()))
        .collect();
    let policies = state
        .policies
        .iter()
        .map(|(key, policy)| {
            Policy::parse(policy).map_err(|e| {
                LabError::Environment(format!("NetworkPolicy {key} of the lab's state: {e}"))
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(PolicyCluster::new(pods, policies, namespaces))
}

/// The specification's table for every cell of `like` (its rows, columns and cases): whether each
/// flow from pod to pod, on the destination's port, is allowed. A pod `cluster` does not have is
/// blocked.
pub fn expected_reachability(cluster: &PolicyCluster, like: &Reachability) -> Reachability {
    let pods: BTreeMap<String, &PolicyPod> =
        cluster.pods().iter().map(|pod| (pod.key(), pod)).collect();
    Reachability::from_fn(
        &like.from,
        &like.to,
        &like.cases,
        |from, to, port, protocol| {
            let (Some(from), Some(to)) = (pods.get(from), pods.get(to)) else {
                return false;
            };
            let flow = Flow {
                from: Party::Pod(from),
                to: Party::Pod(to),
                port,
                protocol: policy_protocol(protocol),
            };
            cluster.evaluator().verdict(&flow).allowed()
        },
    )
}

fn policy_protocol(protocol: Protocol) -> PolicyProtocol {
    match protocol {
        Protocol::Tcp => PolicyProtocol::Tcp,
        Protocol::Udp => PolicyProtocol::Udp,
    }
}

impl Lab {
    /// The lab as the NetworkPolicy specification sees it now: its pods, namespaces and policies.
    pub fn policy_cluster(&self) -> Result<PolicyCluster, LabError> {
        policy_cluster(&self.state)
    }

    /// The table the specification gives for the lab as it is now, for every cell of `like` (a probed
    /// table, say).
    pub fn expected_reachability(&self, like: &Reachability) -> Result<Reachability, LabError> {
        Ok(expected_reachability(&self.policy_cluster()?, like))
    }

    /// The specification's verdict on one flow between pods of the lab (`ns/pod`), in words, as
    /// `strait policy explain` tells it.
    pub fn explain_flow(
        &self,
        from: &str,
        to: &str,
        port: u16,
        protocol: Protocol,
    ) -> Result<String, LabError> {
        let cluster = self.policy_cluster()?;
        let usage = |e: strait_k8s::netpol::explain::ExplainError| LabError::Usage(e.to_string());
        let flow = Flow {
            from: cluster.party(from).map_err(usage)?,
            to: cluster.party(to).map_err(usage)?,
            port,
            protocol: policy_protocol(protocol),
        };
        Ok(cluster.explain(&flow).text)
    }
}
