//! Turning Pods and Deployments into [`PodSpecLite`] records, including
//! Kubernetes-style pod-template hashes and generated Pod names.

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, PodSpec, PodTemplateSpec};
use serde::{Deserialize, Serialize};

use strait_k8s::object::namespace_of;

/// Label Kubernetes puts on Pods of a Deployment (holds [`pod_template_hash`]).
pub const TEMPLATE_HASH_LABEL: &str = "pod-template-hash";

/// Kubernetes' "safe" alphabet (no vowels, no look-alikes), used both for
/// encoding the pod-template hash and for the random 5-character name suffix.
pub const ALPHABET: &[u8; 27] = b"bcdfghjklmnpqrstvwxz2456789";

/// Length of the random suffix of generated Pod names.
const SUFFIX_LEN: usize = 5;
/// Kubernetes truncates the `generateName` prefix to 63 - 5 characters.
const MAX_PREFIX_LEN: usize = 63 - SUFFIX_LEN;

/// Transport protocol of a port. Serialized and displayed as `TCP` / `UDP`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    /// `"TCP"` or `"UDP"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
        }
    }

    /// Kubernetes' `protocol` field: unset means TCP; anything else is `None`.
    fn from_k8s(protocol: Option<&str>) -> Option<Self> {
        match protocol {
            None | Some("TCP") => Some(Protocol::Tcp),
            Some("UDP") => Some(Protocol::Udp),
            Some(_) => None,
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One container port of a Pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodPort {
    pub name: Option<String>,
    pub port: u16,
    pub protocol: Protocol,
    /// `hostPort`: the node's port that leads to this one (the agent maps it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_port: Option<u16>,
    /// `hostIP`: the node address the host port is on (every one when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
}

/// The controller a Pod was generated from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    /// Always `"Deployment"` for now.
    pub kind: String,
    pub name: String,
    pub template_hash: String,
}

/// A Pod's own DNS name parts (`spec.hostname`, `spec.subdomain`): with a headless Service named
/// like the subdomain in its namespace, the pod is `<hostname>.<subdomain>.<ns>.svc.<zone>`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodDns {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subdomain: Option<String>,
}

impl PodDns {
    /// The parts of `spec`.
    pub fn of(spec: Option<&PodSpec>) -> Self {
        Self {
            hostname: spec.and_then(|s| s.hostname.clone()),
            subdomain: spec.and_then(|s| s.subdomain.clone()),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.hostname.is_none() && self.subdomain.is_none()
    }
}

/// What the lab needs to know about one Pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodSpecLite {
    pub namespace: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// Ports of all containers, deduplicated by (port, protocol), first name wins.
    pub ports: Vec<PodPort>,
    pub owner: Option<Owner>,
    /// `spec.nodeName`: the node the pod must run on (else the least loaded one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    #[serde(default, skip_serializing_if = "PodDns::is_empty")]
    pub dns: PodDns,
}

/// Collects the ports of all containers. Ports that validation would reject
/// (out of range, unsupported protocol) are left out.
fn ports_of(spec: Option<&PodSpec>) -> Vec<PodPort> {
    let mut seen = BTreeSet::new();
    let mut ports = Vec::new();
    let all = spec
        .into_iter()
        .flat_map(|s| &s.containers)
        .flat_map(|c| c.ports.iter().flatten());
    for port in all {
        let Ok(number) = u16::try_from(port.container_port) else {
            continue;
        };
        let Some(protocol) = Protocol::from_k8s(port.protocol.as_deref()) else {
            continue;
        };
        if number != 0 && seen.insert((number, protocol)) {
            ports.push(PodPort {
                name: port.name.clone(),
                port: number,
                protocol,
                host_port: port
                    .host_port
                    .and_then(|p| u16::try_from(p).ok())
                    .filter(|&p| p != 0),
                host_ip: port.host_ip.clone().filter(|ip| !ip.is_empty()),
            });
        }
    }
    ports
}

/// The [`PodSpecLite`] of a bare Pod (no owner).
pub fn pod_from_pod(pod: &Pod) -> PodSpecLite {
    PodSpecLite {
        namespace: namespace_of(&pod.metadata).to_owned(),
        name: pod.metadata.name.clone().unwrap_or_default(),
        labels: pod.metadata.labels.clone().unwrap_or_default(),
        ports: ports_of(pod.spec.as_ref()),
        owner: None,
        node_name: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
        dns: PodDns::of(pod.spec.as_ref()),
    }
}

/// `spec.replicas`, defaulting to 1 (negative values count as 0).
pub fn deployment_replicas(deployment: &Deployment) -> usize {
    let replicas = deployment.spec.replicas.unwrap_or(1);
    usize::try_from(replicas).unwrap_or(0)
}

/// FNV-1a, 32 bits (what Kubernetes' `ComputeHash` uses).
fn fnv1a_32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5_u32, |hash, &b| {
        (hash ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// Kubernetes' `rand.SafeEncodeString`: each byte mapped into [`ALPHABET`].
fn safe_encode(s: &str) -> String {
    s.bytes()
        .map(|b| char::from(ALPHABET[usize::from(b) % ALPHABET.len()]))
        .collect()
}

/// The `pod-template-hash` of a template, computed like Kubernetes does:
/// FNV-1a 32 over a stable serialization (here: JSON) of the template, its
/// decimal form safe-encoded into [`ALPHABET`] (1 to 10 characters). The
/// value differs from a real cluster's, which hashes Go's printed struct.
pub fn pod_template_hash(template: &PodTemplateSpec) -> String {
    let json = serde_json::to_vec(template).unwrap_or_default();
    safe_encode(&fnv1a_32(&json).to_string())
}

/// Five random characters from [`ALPHABET`], from std's randomly keyed
/// SipHash (fresh keys per `RandomState`) mixed with a counter and the clock.
fn random_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    if let Ok(now) = SystemTime::now().duration_since(UNIX_EPOCH) {
        hasher.write_u128(now.as_nanos());
    }
    alphabet_digits(hasher.finish(), SUFFIX_LEN)
}

/// The low `len` base-27 digits of `bits`, in Kubernetes' safe alphabet (no vowels, no look-alikes).
pub fn alphabet_digits(mut bits: u64, len: usize) -> String {
    let base = ALPHABET.len() as u64;
    (0..len)
        .map(|_| {
            let c = ALPHABET[(bits % base) as usize];
            bits /= base;
            char::from(c)
        })
        .collect()
}

/// `count` new Pods for `deployment`, named `<deployment>-<hash>-<suffix>`
/// like Kubernetes (the `<deployment>-<hash>-` prefix is cut to 58
/// characters if longer). Names never collide with `existing_names` nor with
/// each other. Labels are the template's plus `pod-template-hash`.
pub fn pods_for_deployment(
    deployment: &Deployment,
    existing_names: &BTreeSet<String>,
    count: usize,
) -> Vec<PodSpecLite> {
    let name = deployment.metadata.name.clone().unwrap_or_default();
    let namespace = namespace_of(&deployment.metadata).to_owned();
    let template = &deployment.spec.template;
    let hash = pod_template_hash(template);
    let mut labels = template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    labels.insert(TEMPLATE_HASH_LABEL.to_owned(), hash.clone());
    let ports = ports_of(template.spec.as_ref());
    let node_name = template.spec.as_ref().and_then(|s| s.node_name.clone());
    let dns = PodDns::of(template.spec.as_ref());

    let mut prefix = format!("{name}-{hash}-");
    if prefix.len() > MAX_PREFIX_LEN {
        let mut cut = MAX_PREFIX_LEN;
        while !prefix.is_char_boundary(cut) {
            cut -= 1;
        }
        prefix.truncate(cut);
    }

    let mut taken: BTreeSet<String> = BTreeSet::new();
    let mut pods = Vec::with_capacity(count);
    while pods.len() < count {
        let pod_name = format!("{prefix}{}", random_suffix());
        if existing_names.contains(&pod_name) || !taken.insert(pod_name.clone()) {
            continue;
        }
        pods.push(PodSpecLite {
            namespace: namespace.clone(),
            name: pod_name,
            labels: labels.clone(),
            ports: ports.clone(),
            owner: Some(Owner {
                kind: "Deployment".to_owned(),
                name: name.clone(),
                template_hash: hash.clone(),
            }),
            node_name: node_name.clone(),
            dns: dns.clone(),
        });
    }
    pods
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_reference_vectors() {
        assert_eq!(fnv1a_32(b""), 0x811c_9dc5);
        assert_eq!(fnv1a_32(b"a"), 0xe40c_292c);
        assert_eq!(fnv1a_32(b"foobar"), 0xbf9c_f968);
    }

    #[test]
    fn safe_encode_maps_digits_like_kubernetes() {
        // '0' is byte 48 -> 48 % 27 = 21 -> '4'; '9' is 57 -> 3 -> 'f'.
        assert_eq!(safe_encode("0"), "4");
        assert_eq!(safe_encode("9"), "f");
        assert_eq!(safe_encode("4294967295").len(), 10);
    }

    #[test]
    fn random_suffix_uses_alphabet() {
        for _ in 0..100 {
            let s = random_suffix();
            assert_eq!(s.len(), SUFFIX_LEN);
            assert!(s.bytes().all(|b| ALPHABET.contains(&b)), "{s}");
        }
    }
}
