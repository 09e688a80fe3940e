//! The overlay's translation of Nodes into REMOTE_V1 prefixes.

use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::{Node, NodeAddress, NodeSpec, NodeStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use strait_dataplane::overlay::{RemoteMode, RemoteRoute};
use strait_k8s::{Change, Object, ObjectStore};

use crate::model::nodes::{Routing, remote_routes};
use strait_k8s::flannel::{self, flannel_annotations, format_mac, parse_mac};

fn node(name: &str, ip: &str, cidrs: &[&str]) -> Node {
    Node {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..ObjectMeta::default()
        },
        spec: Some(NodeSpec {
            pod_cidrs: Some(cidrs.iter().map(|c| (*c).to_owned()).collect()),
            ..NodeSpec::default()
        }),
        status: Some(NodeStatus {
            addresses: Some(vec![NodeAddress {
                address: ip.into(),
                type_: "InternalIP".into(),
            }]),
            ..NodeStatus::default()
        }),
    }
}

fn store_of(nodes: Vec<Node>) -> ObjectStore {
    let mut store = ObjectStore::new();
    for node in nodes {
        store.apply(Change::Upsert(Object::Node(Box::new(node))));
    }
    store
}

fn route(prefix: [u8; 4], len: u8, ip: [u8; 4], mac: [u8; 6]) -> RemoteRoute {
    RemoteRoute {
        prefix: Ipv4Addr::from(prefix),
        prefix_len: len,
        node_ip: Ipv4Addr::from(ip),
        vtep_mac: mac,
        mode: RemoteMode::Vxlan,
    }
}

#[test]
fn every_other_node_is_reached_by_its_pod_cidr_and_its_address() {
    let store = store_of(vec![
        node("n1", "172.30.0.11", &["10.244.1.0/24"]),
        node("n2", "172.30.0.12", &["10.244.2.0/24", "fd00:2::/64"]),
        node("n3", "172.30.0.13", &["10.244.3.7/24"]),
    ]);
    let routes = remote_routes(&store, "n1", Routing::all(RemoteMode::Vxlan));
    let mac2 = [0x0e, 0x53, 172, 30, 0, 12];
    let mac3 = [0x0e, 0x53, 172, 30, 0, 13];
    assert_eq!(
        routes,
        vec![
            route([10, 244, 2, 0], 24, [172, 30, 0, 12], mac2),
            route([10, 244, 3, 0], 24, [172, 30, 0, 13], mac3),
            route([172, 30, 0, 12], 32, [172, 30, 0, 12], mac2),
            route([172, 30, 0, 13], 32, [172, 30, 0, 13], mac3),
        ],
        "this node is left out, IPv6 CIDRs are skipped, host bits are cleared"
    );
}

#[test]
fn a_flannel_nodes_annotations_name_its_vtep_mac_and_address() {
    let mut flannel_node = node("f1", "172.30.0.21", &["10.244.9.0/24"]);
    let annotations = flannel_annotations(Ipv4Addr::new(172, 30, 0, 99), [0x5a, 1, 2, 3, 4, 5], 1);
    flannel_node.metadata.annotations = Some(annotations.into_iter().collect());
    let routes = remote_routes(
        &store_of(vec![flannel_node]),
        "n1",
        Routing::all(RemoteMode::Vxlan),
    );
    let mac = [0x5a, 1, 2, 3, 4, 5];
    assert_eq!(
        routes,
        vec![
            route([10, 244, 9, 0], 24, [172, 30, 0, 99], mac),
            route([172, 30, 0, 99], 32, [172, 30, 0, 99], mac),
        ]
    );
}

#[test]
fn a_node_without_pod_cidr_or_address_is_not_reachable_yet() {
    let mut no_address = node("a", "172.30.0.31", &["10.244.31.0/24"]);
    no_address.status = None;
    let store = store_of(vec![no_address, node("b", "172.30.0.32", &[])]);
    assert!(remote_routes(&store, "n1", Routing::all(RemoteMode::Vxlan)).is_empty());
}

#[test]
fn flannel_backend_data_is_the_json_flannel_writes() {
    let [kind, data, ip, manager] = flannel_annotations(
        Ipv4Addr::new(172, 30, 0, 11),
        [0x0e, 0x53, 172, 30, 0, 11],
        1,
    );
    assert_eq!(kind, (flannel::BACKEND_TYPE.to_owned(), "vxlan".to_owned()));
    let value: serde_json::Value = serde_json::from_str(&data.1).unwrap();
    assert_eq!(
        value,
        serde_json::json!({"VNI": 1, "VtepMAC": "0e:53:ac:1e:00:0b"})
    );
    assert_eq!(ip.1, "172.30.0.11");
    assert_eq!(manager.1, "true");
    assert_eq!(
        parse_mac("0e:53:ac:1e:00:0b"),
        Some([0x0e, 0x53, 172, 30, 0, 11])
    );
    assert_eq!(parse_mac("0e:53:ac"), None);
    assert_eq!(
        format_mac([0x0e, 0x53, 172, 30, 0, 11]),
        "0e:53:ac:1e:00:0b"
    );
}

#[test]
fn auto_mode_reaches_on_link_nodes_directly_and_the_rest_through_the_tunnel() {
    let store = store_of(vec![
        node("near", "172.30.0.12", &["10.244.2.0/24"]),
        node("far", "192.168.7.3", &["10.244.3.0/24"]),
    ]);
    let routing = Routing {
        mode: RemoteMode::Vxlan,
        direct_subnet: Some("172.30.0.0/24".parse().unwrap()),
    };
    let modes: Vec<(Ipv4Addr, RemoteMode)> = remote_routes(&store, "n1", routing)
        .into_iter()
        .map(|r| (r.prefix, r.mode))
        .collect();
    assert_eq!(
        modes,
        vec![
            (Ipv4Addr::new(10, 244, 2, 0), RemoteMode::Direct),
            (Ipv4Addr::new(10, 244, 3, 0), RemoteMode::Vxlan),
            (Ipv4Addr::new(172, 30, 0, 12), RemoteMode::Direct),
            (Ipv4Addr::new(192, 168, 7, 3), RemoteMode::Vxlan),
        ]
    );
}
