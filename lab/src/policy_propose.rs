//! `strait policy propose`: NetworkPolicies that allow exactly the traffic a lab's agents observed
//! (verdicts `allowed` or `audit`: what actually happened, typically gathered in audit mode), by label
//! rather than by address (see `strait_k8s::netpol::propose`). Both ends are named by the agents: an end
//! with a pod of the lab becomes that pod's identity (namespace and labels), any other end its address
//! (`ipBlock` `/32`). Verdicts without a port (ICMP) cannot be said by a policy port and are left out.
//!
//! Every pod identity of the selected namespaces (`--namespace`, repeatable; by default every namespace
//! holding a pod of the lab) gets an ingress and an egress policy; one seen with nobody in a direction
//! gets that direction's policy with no rules, so what was never seen is denied.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::networking::v1::NetworkPolicy;
use strait_k8s::netpol::{
    PolicyPod, Protocol,
    propose::{Identity, Observed, Peer, Scope, propose, to_json, to_yaml},
};

use crate::{
    LabError,
    cluster::Lab,
    flows::{Flow, FlowQuery},
    publish::pod_object,
};

/// How the proposal is printed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// YAML documents separated by `---`, ready for `kubectl apply -f`.
    #[default]
    Yaml,
    /// A `v1` `List` of the policies.
    Json,
}

/// The observed flows among `flows` (allowed or audited, with a port and a known protocol), ends
/// resolved against `pods`.
pub fn observed(flows: &[Flow], pods: &[PolicyPod]) -> Vec<Observed> {
    let by_key: BTreeMap<String, &PolicyPod> = pods.iter().map(|p| (p.key(), p)).collect();
    let peer = |end: &crate::flows::End| match end.pod.as_ref().and_then(|k| by_key.get(k)) {
        Some(pod) => Peer::Pod(Identity::of(pod)),
        None => Peer::Address(end.ip),
    };
    let mut out: BTreeSet<Observed> = BTreeSet::new();
    for flow in flows {
        if flow.verdict != "allowed" && flow.verdict != "audit" {
            continue;
        }
        let protocol = match flow.protocol.as_str() {
            "TCP" => Protocol::Tcp,
            "UDP" => Protocol::Udp,
            "SCTP" => Protocol::Sctp,
            _ => continue,
        };
        let Some(port) = flow.to.port else { continue };
        out.insert(Observed {
            from: peer(&flow.from),
            to: peer(&flow.to),
            port,
            protocol,
        });
    }
    out.into_iter().collect()
}

/// The proposal for the lab `name` from every verdict its agents remember, for the pods of
/// `namespaces` (empty: every namespace with a pod).
pub fn propose_lab(name: &str, namespaces: &[String]) -> Result<Vec<NetworkPolicy>, LabError> {
    let lab = Lab::open(name)?;
    let pods: Vec<PolicyPod> = lab
        .state
        .pods
        .iter()
        .map(|pod| PolicyPod::from_pod(&pod_object(pod), Some(pod.ip)))
        .collect();
    let flows = lab.flows(&FlowQuery::default())?;
    let observed = observed(&flows, &pods);
    let selected: BTreeSet<String> = namespaces.iter().cloned().collect();
    Ok(propose(
        &observed,
        Scope {
            pods: &pods,
            namespaces: (!selected.is_empty()).then_some(&selected),
        },
    ))
}

/// `policies` as `format` says.
pub fn render(policies: &[NetworkPolicy], format: Format) -> String {
    match format {
        Format::Yaml => to_yaml(policies),
        Format::Json => to_json(policies),
    }
}
