//! Host ports as frontends: which pods get them, at which addresses, and how they yield to Services;
//! every case through the full translation and both ways of building the index (see
//! [`service_entries`]), plus the index's events for a pod that goes away.

use std::net::Ipv4Addr;

use strait_dataplane::services::{Backend, ExternalAccess, L4Proto, ServiceEntry, ServiceKey};
use strait_k8s::{Change, Kind, ObjectKey};

use super::translate::{objects, service_entries};
use crate::model::service_index::{FrontendOwner, ServiceIndex};

const NODE: &str = "---
apiVersion: v1
kind: Node
metadata: {name: node-1}
status:
  addresses: [{type: InternalIP, address: 192.168.5.10}, {type: Hostname, address: node-1}]
";

/// A pod in namespace `shop` on `node` with address `ip` and the given container ports (a YAML
/// flow list) and extra spec/status lines.
fn pod(name: &str, node: &str, ip: &str, ports: &str, spec: &str, phase: &str) -> String {
    format!(
        "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: shop}}\nspec:\n  nodeName: {node}\n{spec}  \
         containers: [{{name: c, image: i, ports: {ports}}}]\nstatus: {{phase: {phase}, podIP: '{ip}'}}\n"
    )
}

fn key(vip: &str, port: u16, proto: L4Proto) -> ServiceKey {
    ServiceKey {
        vip: vip.parse().unwrap(),
        port,
        proto,
    }
}

fn host_port(key: ServiceKey, backend: &str, port: u16) -> ServiceEntry {
    ServiceEntry {
        key,
        backends: vec![Backend {
            addr: backend.parse().unwrap(),
            port,
        }],
        affinity_timeout_s: None,
        external: Some(ExternalAccess {
            local: true,
            source_ranges: Vec::new(),
        }),
        endpoints_elsewhere: false,
    }
}

/// The upstream conformance test's three pods: one host port, told apart by hostIP and protocol.
fn conformance_pods() -> String {
    let mut yaml = NODE.to_owned();
    yaml += &pod(
        "pod1",
        "node-1",
        "10.244.1.11",
        "[{containerPort: 8080, hostPort: 54323, hostIP: 127.0.0.1}]",
        "",
        "Running",
    );
    yaml += &pod(
        "pod2",
        "node-1",
        "10.244.1.12",
        "[{containerPort: 8080, hostPort: 54323, hostIP: 192.168.5.10, protocol: TCP}]",
        "",
        "Running",
    );
    yaml += &pod(
        "pod3",
        "node-1",
        "10.244.1.13",
        "[{containerPort: 8081, hostPort: 54323, hostIP: 192.168.5.10, protocol: UDP}]",
        "",
        "Pending",
    );
    yaml
}

#[test]
fn one_host_port_is_told_apart_by_host_ip_and_protocol() {
    let entries = service_entries(&objects(&conformance_pods()), "node-1");
    assert_eq!(
        entries,
        [
            host_port(key("127.0.0.1", 54323, L4Proto::Tcp), "10.244.1.11", 8080),
            host_port(
                key("192.168.5.10", 54323, L4Proto::Tcp),
                "10.244.1.12",
                8080
            ),
            host_port(
                key("192.168.5.10", 54323, L4Proto::Udp),
                "10.244.1.13",
                8081
            ),
        ]
    );
    assert_eq!(
        service_entries(&objects(&conformance_pods()), "node-2"),
        [],
        "another node maps none of them"
    );
}

#[test]
fn without_a_host_ip_every_node_address_and_loopback_lead_to_the_pod() {
    let mut yaml = NODE.to_owned();
    yaml += &pod(
        "web",
        "node-1",
        "10.244.1.20",
        "[{containerPort: 80, hostPort: 8080}, {containerPort: 53, hostPort: 5353, protocol: UDP, hostIP: 0.0.0.0}, \
         {containerPort: 9, hostPort: 9, protocol: SCTP}, {containerPort: 81}]",
        "",
        "Running",
    );
    assert_eq!(
        service_entries(&objects(&yaml), "node-1"),
        [
            host_port(key("127.0.0.1", 5353, L4Proto::Udp), "10.244.1.20", 53),
            host_port(key("127.0.0.1", 8080, L4Proto::Tcp), "10.244.1.20", 80),
            host_port(key("192.168.5.10", 5353, L4Proto::Udp), "10.244.1.20", 53),
            host_port(key("192.168.5.10", 8080, L4Proto::Tcp), "10.244.1.20", 80),
        ]
    );
}

#[test]
fn host_network_finished_and_unaddressed_pods_map_nothing() {
    let ports = "[{containerPort: 80, hostPort: 80}]";
    let mut yaml = NODE.to_owned();
    yaml += &pod(
        "host",
        "node-1",
        "192.168.5.10",
        ports,
        "  hostNetwork: true\n",
        "Running",
    );
    yaml += &pod("done", "node-1", "10.244.1.30", ports, "", "Succeeded");
    yaml += &pod("failed", "node-1", "10.244.1.31", ports, "", "Failed");
    yaml += &pod("starting", "node-1", "", ports, "", "Pending");
    yaml += &pod("v6", "node-1", "fd00::1", ports, "", "Running");
    assert_eq!(service_entries(&objects(&yaml), "node-1"), []);
}

#[test]
fn a_services_frontend_wins_and_the_first_pod_keeps_a_shared_one() {
    let mut yaml = NODE.to_owned();
    // A NodePort on the same address, port and protocol as a host port.
    yaml += "---\napiVersion: v1\nkind: Service\nmetadata: {name: edge, namespace: shop}\nspec:\n  \
             type: NodePort\n  clusterIP: 10.96.0.40\n  ports: [{port: 80, nodePort: 30080}]\n";
    yaml += &pod(
        "b-pod",
        "node-1",
        "10.244.1.41",
        "[{containerPort: 80, hostPort: 30080, hostIP: 192.168.5.10}, {containerPort: 80, hostPort: 7000, hostIP: 192.168.5.10}]",
        "",
        "Running",
    );
    yaml += &pod(
        "a-pod",
        "node-1",
        "10.244.1.40",
        "[{containerPort: 80, hostPort: 7000, hostIP: 192.168.5.10}]",
        "",
        "Running",
    );
    let entries = service_entries(&objects(&yaml), "node-1");
    let at = |k: ServiceKey| entries.iter().find(|e| e.key == k).cloned();
    let node_port = at(key("192.168.5.10", 30080, L4Proto::Tcp)).unwrap();
    assert!(
        node_port.backends.is_empty(),
        "the Service (no endpoints) keeps its NodePort: {node_port:?}"
    );
    assert_eq!(
        at(key("192.168.5.10", 7000, L4Proto::Tcp)),
        Some(host_port(
            key("192.168.5.10", 7000, L4Proto::Tcp),
            "10.244.1.40",
            80
        )),
        "a-pod comes first"
    );
}

#[test]
fn a_pod_going_away_frees_its_frontends_and_one_it_lost_to_a_service_comes_back() {
    let store = &mut objects(&conformance_pods());
    let mut index = ServiceIndex::new("node-1");
    index.rebuild(store);
    let udp = key("192.168.5.10", 54323, L4Proto::Udp);
    assert_eq!(
        index.owner(&udp),
        Some(FrontendOwner::HostPort("shop", "pod3"))
    );

    let gone = ObjectKey::namespaced(Kind::Pod, "shop", "pod3");
    let events: Vec<_> = store.apply(Change::Delete(gone)).into_iter().collect();
    let touched = index.update(store, &events);
    assert_eq!(touched.frontends.into_iter().collect::<Vec<_>>(), [udp]);
    assert_eq!(index.entry(&udp), None);

    // A UDP NodePort on the freed frontend is the Service's; pod2's TCP one stays the pod's.
    let service = objects(
        "---\napiVersion: v1\nkind: Service\nmetadata: {name: dns, namespace: shop}\nspec:\n  \
         type: NodePort\n  clusterIP: 10.96.0.41\n  ports: [{port: 53, protocol: UDP, nodePort: 54323}]\n",
    );
    let (_, object) = service.of_kind(Kind::Service).next().unwrap();
    let events: Vec<_> = store.apply(Change::Upsert(object)).into_iter().collect();
    index.update(store, &events);
    assert_eq!(
        index.owner(&udp),
        Some(FrontendOwner::Service("shop", "dns"))
    );
    assert_eq!(
        index.owner(&key("192.168.5.10", 54323, L4Proto::Tcp)),
        Some(FrontendOwner::HostPort("shop", "pod2"))
    );
    assert_eq!(
        FrontendOwner::HostPort("shop", "pod2").to_string(),
        "pod shop/pod2"
    );
}

#[test]
fn a_new_node_address_moves_the_host_ports_without_a_host_ip() {
    let mut yaml = NODE.to_owned();
    yaml += &pod(
        "web",
        "node-1",
        "10.244.1.20",
        "[{containerPort: 80, hostPort: 8080}]",
        "",
        "Running",
    );
    let store = &mut objects(&yaml);
    let mut index = ServiceIndex::new("node-1");
    index.rebuild(store);
    let moved = objects(&NODE.replace("192.168.5.10", "192.168.5.11"));
    let (_, node) = moved.of_kind(Kind::Node).next().unwrap();
    let events: Vec<_> = store.apply(Change::Upsert(node)).into_iter().collect();
    let touched = index.update(store, &events);
    let old = key("192.168.5.10", 8080, L4Proto::Tcp);
    let new = key("192.168.5.11", 8080, L4Proto::Tcp);
    assert!(
        touched.frontends.contains(&old) && touched.frontends.contains(&new),
        "{:?}",
        touched.frontends
    );
    let vips: Vec<Ipv4Addr> = index.entries().iter().map(|e| e.key.vip).collect();
    assert_eq!(vips, [Ipv4Addr::LOCALHOST, "192.168.5.11".parse().unwrap()]);
}
