//! Publishing the cluster's objects for the agents, as the API server and the endpoints controller would:
//! every Service gets a ClusterIP (kept across re-applies) and node ports, EndpointSlices are computed from
//! the pods, and the whole set (with the Node, Namespace, Pod and NetworkPolicy objects: pods with their
//! labels, node, address and named container ports; and the EndpointSlices applied for Services without
//! a selector) is written to the lab's cluster directory, which
//! every agent watches: every agent sees every object, whichever node it is about.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

/// How long `publish` waits for the agents to pick up a change.
const SYNC_TIMEOUT: Duration = Duration::from_secs(15);

use k8s_openapi::{
    api::core::v1::{
        Container, ContainerPort, Node, NodeAddress, NodeSpec, NodeStatus, Pod, PodCondition,
        PodIP, PodSpec, PodStatus, Service, ServicePort,
    },
    api::discovery::v1::EndpointSlice,
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use strait_k8s::flannel;

use crate::{
    LabError,
    cluster::Lab,
    controlplane::{
        ClusterIpAllocator, ObjectFile, assign, endpoint_slices,
        nodeport::{assign_node_ports, keep_health_check_node_port},
        write_objects,
    },
    state::{LabState, NodeRecord, PodRecord},
};

/// Completes a Service as the API server would before storing it under `key`: a ClusterIP unless it asks
/// for one (or is headless), node ports for NodePort and LoadBalancer ports, and a healthCheckNodePort
/// for a LoadBalancer with externalTrafficPolicy Local; a re-applied Service keeps what it was given
/// unless the manifest asks for something else. `services` are the stored Services (this one's earlier
/// version included). The error names the service and what is wrong; nothing is changed.
pub(crate) fn admit_service(
    services: &BTreeMap<String, Service>,
    key: &str,
    mut service: Service,
) -> Result<Service, String> {
    let old = services.get(key);
    keep_allocations(old, &mut service);
    let others: Vec<&Service> = services
        .iter()
        .filter(|(k, _)| k.as_str() != key)
        .map(|(_, s)| s)
        .collect();
    let has_ip = service
        .spec
        .as_ref()
        .and_then(|s| s.cluster_ip.as_deref())
        .is_some_and(|ip| !ip.is_empty());
    let mut allocator = ClusterIpAllocator::from_services(others.iter().copied());
    // An explicit (or kept) address is validated (range, duplicates) and completed the same way, so
    // a re-applied Service equals its stored self.
    if let Some(ip) = allocator.allocate(&service).map_err(|e| e.to_string())? {
        assign(&mut service, ip);
        if !has_ip {
            tracing::info!(service = %key, %ip, "assigned ClusterIP");
        }
    }
    keep_health_check_node_port(old, &mut service);
    assign_node_ports(&mut service, key, others.iter().copied()).map_err(|e| e.to_string())?;
    Ok(service)
}

/// A re-applied Service keeps the ClusterIP and node ports it was given unless the manifest asks for
/// others, as long as its (new) type has them: an ExternalName Service has no ClusterIP, and only
/// NodePort and LoadBalancer Services have node ports (the API server releases them on such a type
/// change).
fn keep_allocations(old: Option<&Service>, new: &mut Service) {
    let Some(old_spec) = old.and_then(|s| s.spec.as_ref()) else {
        return;
    };
    let Some(spec) = new.spec.as_mut() else {
        return;
    };
    let type_ = spec.type_.as_deref().unwrap_or("ClusterIP");
    let keeps_ip = type_ != "ExternalName";
    let keeps_node_ports = matches!(type_, "NodePort" | "LoadBalancer");
    if keeps_ip && spec.cluster_ip.as_deref().is_none_or(str::is_empty) {
        spec.cluster_ip.clone_from(&old_spec.cluster_ip);
        spec.cluster_ips.clone_from(&old_spec.cluster_ips);
    }
    if !keeps_node_ports {
        return;
    }
    for port in spec
        .ports
        .iter_mut()
        .flatten()
        .filter(|p| p.node_port.is_none())
    {
        port.node_port = old_spec
            .ports
            .iter()
            .flatten()
            .find(|o| o.port == port.port && protocol(o) == protocol(port))
            .and_then(|o| o.node_port);
    }
}

fn protocol(port: &ServicePort) -> &str {
    port.protocol.as_deref().unwrap_or("TCP")
}

impl Lab {
    /// Recomputes EndpointSlices and writes every object (Nodes, Namespaces, Pods, Services,
    /// EndpointSlices, NetworkPolicies) for the agents, then, when a file changed, waits until every
    /// agent has run a sync that began after the write.
    pub(crate) fn publish(&mut self) -> Result<(), LabError> {
        let none = BTreeSet::new();
        let mut objects: Vec<ObjectFile> = self
            .state
            .nodes
            .iter()
            .map(|n| node_object(n).into())
            .collect();
        objects.extend(
            crate::apply::known_namespaces(&self.state)
                .into_values()
                .map(ObjectFile::from),
        );
        objects.extend(self.state.pods.iter().map(|p| pod_object(p).into()));
        objects.extend(self.state.policies.values().cloned().map(ObjectFile::from));
        objects.extend(
            self.state
                .endpoint_slices
                .values()
                .cloned()
                .map(ObjectFile::from),
        );
        for service in self.state.services.values() {
            objects.push(service.clone().into());
            objects.extend(
                computed_slices(&self.state, service, &none)
                    .into_iter()
                    .map(ObjectFile::from),
            );
        }
        let report = write_objects(&self.cluster_dir(), &objects)
            .map_err(|e| LabError::Environment(e.to_string()))?;
        // Taken after the files are in place: a sync that began later has read them.
        let published_ms = now_ms();
        self.save()?;
        if report.changed() {
            self.wait_synced(published_ms)?;
        }
        Ok(())
    }

    /// Waits until every agent has run a sync turn that began after `published_ms` (`/syncz`: the start
    /// of its last turn that left nothing pending; the turn writes every feature's maps).
    fn wait_synced(&self, published_ms: u64) -> Result<(), LabError> {
        let deadline = Instant::now() + SYNC_TIMEOUT;
        for node in self.state.nodes.iter().filter(|n| n.runs_strait()) {
            loop {
                let synced = self
                    .agent_get(&node.name, "/syncz")
                    .ok()
                    .and_then(|body| body.trim().parse::<u64>().ok())
                    .unwrap_or(0);
                if synced > published_ms {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(LabError::Environment(format!(
                        "agent of {} did not sync the published objects within {} s",
                        node.name,
                        SYNC_TIMEOUT.as_secs()
                    )));
                }
                std::thread::sleep(Duration::from_millis(25));
            }
        }
        Ok(())
    }
}

/// The EndpointSlices the lab's controller computes for `service` (see [`endpoint_slices`]), less
/// any named like an applied one: the controller's names are generated, so in a cluster they never
/// meet one that exists.
pub(crate) fn computed_slices(
    state: &LabState,
    service: &Service,
    terminating: &BTreeSet<String>,
) -> Vec<EndpointSlice> {
    let mut slices = endpoint_slices(service, &state.pods, terminating);
    slices.retain(|slice| {
        let key = format!(
            "{}/{}",
            slice.metadata.namespace.as_deref().unwrap_or_default(),
            slice.metadata.name.as_deref().unwrap_or_default()
        );
        !state.endpoint_slices.contains_key(&key)
    });
    slices
}

/// Every EndpointSlice the agents get for `service`: the computed ones and the applied ones labelled
/// for it.
pub(crate) fn service_slices(state: &LabState, service: &Service) -> Vec<EndpointSlice> {
    let namespace = strait_k8s::object::namespace_of(&service.metadata);
    let name = service.metadata.name.as_deref().unwrap_or_default();
    let mut slices = computed_slices(state, service, &BTreeSet::new());
    slices.extend(
        state
            .endpoint_slices
            .values()
            .filter(|s| strait_k8s::object::namespace_of(&s.metadata) == namespace)
            .filter(|s| {
                s.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(strait_k8s::service::SERVICE_NAME_LABEL))
                    .is_some_and(|owner| owner == name)
            })
            .cloned(),
    );
    slices
}

/// The Node object of a lab node: its name, pod CIDR and underlay address (InternalIP), with the Flannel
/// annotations its agent's VXLAN end stands for (VNI 1, the VTEP MAC strait derives from the address),
/// as strait publishes them in a real cluster.
fn node_object(node: &NodeRecord) -> Node {
    let annotations = flannel::flannel_annotations(node.ip, crate::flannel::node_vtep_mac(node), 1);
    Node {
        metadata: ObjectMeta {
            name: Some(node.name.clone()),
            annotations: Some(annotations.into_iter().collect()),
            ..ObjectMeta::default()
        },
        spec: Some(NodeSpec {
            pod_cidr: Some(node.pod_cidr.clone()),
            pod_cidrs: Some(vec![node.pod_cidr.clone()]),
            ..NodeSpec::default()
        }),
        status: Some(NodeStatus {
            addresses: Some(vec![NodeAddress {
                address: node.ip.to_string(),
                type_: "InternalIP".into(),
            }]),
            ..NodeStatus::default()
        }),
    }
}

/// The Pod object of a lab pod as the API server would serve it once running: labels, node, one
/// container with the pod's (named) ports and their host ports, phase Running, Ready, and its address.
pub(crate) fn pod_object(pod: &PodRecord) -> Pod {
    let ports: Vec<ContainerPort> = pod
        .ports
        .iter()
        .map(|p| ContainerPort {
            name: p.name.clone(),
            container_port: i32::from(p.port),
            protocol: Some(p.protocol.as_str().to_owned()),
            host_port: p.host_port.map(i32::from),
            host_ip: p.host_ip.clone(),
        })
        .collect();
    let ip = pod.ip.to_string();
    Pod {
        metadata: ObjectMeta {
            name: Some(pod.name.clone()),
            namespace: Some(pod.namespace.clone()),
            labels: (!pod.labels.is_empty()).then(|| pod.labels.clone()),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            node_name: Some(pod.node.clone()),
            containers: vec![Container {
                name: "workload".into(),
                image: Some("strait-lab-workload".into()),
                ports: (!ports.is_empty()).then_some(ports),
                ..Container::default()
            }],
            ..PodSpec::default()
        }),
        status: Some(PodStatus {
            phase: Some("Running".into()),
            pod_ip: Some(ip.clone()),
            pod_ips: Some(vec![PodIP { ip }]),
            conditions: Some(vec![PodCondition {
                type_: "Ready".into(),
                status: "True".into(),
                ..PodCondition::default()
            }]),
            ..PodStatus::default()
        }),
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
