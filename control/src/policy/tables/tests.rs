//! The tables against the specification, in the kernel's own terms: the upstream x/y/z model spread
//! over two nodes, each node's tables built from a store of manifests, and every flow judged as the
//! data path will judge it (egress on the source's node, ingress on the destination's: the subject's
//! entry, the peer's identity from the IPCACHE, an exact then an any-peer allow entry by longest port
//! prefix, then the peer's address in the `ipBlock` entries) must get the evaluator's verdict; flows to
//! and from addresses outside the cluster too. Then audit mode, which pods count, and numbers that stay.

use std::{collections::BTreeMap, net::Ipv4Addr};

use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use serde_json::json;
use strait_dataplane::policy::{AllowKey as KernelAllowKey, CidrKey as KernelCidrKey};
use strait_k8s::{
    Change, Labels, Object, ObjectStore,
    netpol::{Evaluator, Flow, Party, PolicyPod, Protocol, upstream},
};

use super::*;
use crate::policy::compile::protocol_number;

const NODES: [&str; 2] = ["node-1", "node-2"];

/// Pods alternate between the two nodes.
fn node_of(index: usize) -> &'static str {
    NODES[index % 2]
}

fn pod_object(pod: &PolicyPod, node: &str) -> Pod {
    let ports: Vec<_> = pod
        .ports
        .iter()
        .map(|p| json!({"name": p.name, "containerPort": p.port, "protocol": p.protocol.name()}))
        .collect();
    serde_json::from_value(json!({
        "metadata": {"name": pod.name, "namespace": pod.namespace, "labels": pod.labels},
        "spec": {"nodeName": node, "containers": [{"name": "workload", "ports": ports}]},
        "status": {"phase": "Running", "podIP": pod.ip.unwrap().to_string()},
    }))
    .unwrap()
}

fn namespace_object(name: &str, labels: &Labels, audit: bool) -> Namespace {
    let annotations = if audit {
        json!({"strait.io/policy-audit": "true"})
    } else {
        json!({})
    };
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels, "annotations": annotations},
    }))
    .unwrap()
}

fn policies(yaml: &str) -> Vec<NetworkPolicy> {
    yaml.split("\n---\n")
        .filter(|d| !d.trim().is_empty())
        .map(|doc| serde_yaml_ng::from_str(doc).unwrap())
        .collect()
}

/// The model's namespaces, pods (alternating nodes) and `yaml`'s policies.
fn store(yaml: &str) -> ObjectStore {
    let (pods, namespaces) = upstream::model();
    let mut store = ObjectStore::new();
    for (name, labels) in &namespaces {
        store.apply(Change::Upsert(Object::from(namespace_object(
            name, labels, false,
        ))));
    }
    for (index, pod) in pods.iter().enumerate() {
        store.apply(Change::Upsert(Object::from(pod_object(
            pod,
            node_of(index),
        ))));
    }
    for policy in policies(yaml) {
        store.apply(Change::Upsert(Object::from(policy)));
    }
    store
}

fn settings(node: &str) -> PolicySettings {
    PolicySettings {
        node: node.to_owned(),
        audit: false,
    }
}

fn mask(addr: Ipv4Addr, len: u8) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(addr) & u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0))
}

/// The data path's judgement of one direction of a flow, on the node whose tables these are.
fn judge(
    tables: &PolicyTables,
    (subject, direction): (Ipv4Addr, u8),
    peer: Ipv4Addr,
    protocol: u8,
    port: u16,
) -> bool {
    let isolation = if direction == abi::POLICY_INGRESS {
        SUBJECT_F_INGRESS_ISOLATED
    } else {
        SUBJECT_F_EGRESS_ISOLATED
    };
    let Some(entry) = tables.subjects.get(&subject) else {
        return true;
    };
    if entry.flags & isolation == 0 {
        return true;
    }
    let identity = tables
        .ipcache
        .get(&peer)
        .copied()
        .unwrap_or(abi::IDENTITY_WORLD);
    for peer_identity in [identity, abi::IDENTITY_ANY] {
        for prefix in (0..=16u8).rev() {
            let key = KernelAllowKey {
                subject,
                direction,
                protocol,
                peer: peer_identity,
                port: if prefix == 0 {
                    0
                } else {
                    port & !(u16::MAX.checked_shr(u32::from(prefix)).unwrap_or(0))
                },
                port_prefix: prefix,
            };
            if tables.allow.contains_key(&key) {
                return true;
            }
        }
    }
    let best = (0..=32u8).rev().find_map(|len| {
        tables.cidr.get(&KernelCidrKey {
            subject,
            direction,
            protocol,
            prefix: mask(peer, len),
            prefix_len: len,
        })
    });
    best.is_some_and(|allow| {
        allow.ranges[..allow.count as usize]
            .iter()
            .any(|r| (r.first..=r.last).contains(&port))
    })
}

/// Policy sets: the upstream suite's shapes, with `ipBlock`s (`except`, overlaps, blocks that cover
/// pods) and ports (ranges, named ports).
const CASES: &[&str] = &[
    "",
    "metadata: {name: deny-all, namespace: x}\nspec: {podSelector: {}, policyTypes: [Ingress, Egress]}",
    "metadata: {name: from-yb, namespace: x}\nspec:\n  podSelector: {matchLabels: {pod: a}}\n  ingress: [{from: [{namespaceSelector: {matchLabels: {ns: y}}, podSelector: {matchLabels: {pod: b}}}], ports: [{port: 80}]}]",
    "metadata: {name: block, namespace: x}\nspec:\n  podSelector: {}\n  ingress:\n  - {from: [{ipBlock: {cidr: 10.244.0.0/16, except: [10.244.2.0/24]}}], ports: [{port: 80}]}\n  - {from: [{ipBlock: {cidr: 192.168.0.0/16}}], ports: [{port: 81, protocol: UDP}]}",
    "metadata: {name: egress-world, namespace: y}\nspec:\n  podSelector: {}\n  policyTypes: [Egress]\n  egress: [{to: [{ipBlock: {cidr: 0.0.0.0/0, except: [10.244.3.0/24, 192.168.1.0/24]}}]}]",
    "metadata: {name: mixed, namespace: y}\nspec:\n  podSelector: {matchLabels: {pod: b}}\n  policyTypes: [Egress]\n  egress: [{to: [{ipBlock: {cidr: 10.244.1.0/24, except: [10.244.1.2/32]}}, {podSelector: {matchLabels: {pod: c}}}], ports: [{port: 80, endPort: 81, protocol: UDP}]}]",
    "metadata: {name: wide, namespace: z}\nspec:\n  podSelector: {}\n  ingress: [{from: [{ipBlock: {cidr: 10.244.0.0/16}}], ports: [{port: 80}]}]\n---\nmetadata: {name: narrow, namespace: z}\nspec:\n  podSelector: {matchLabels: {pod: a}}\n  ingress:\n  - {from: [{ipBlock: {cidr: 10.244.1.0/24, except: [10.244.1.3/32]}}], ports: [{port: 81, protocol: UDP}, {port: 80, protocol: UDP}]}\n  - {from: [{namespaceSelector: {matchLabels: {ns: x}}}], ports: [{port: 82}]}",
    "metadata: {name: named, namespace: x}\nspec:\n  podSelector: {matchLabels: {pod: a}}\n  ingress: [{from: [{ipBlock: {cidr: 10.244.0.0/16}}], ports: [{port: serve-81-udp, protocol: UDP}]}]",
    "metadata: {name: dns-only, namespace: z}\nspec:\n  podSelector: {matchLabels: {pod: c}}\n  policyTypes: [Egress]\n  egress: [{to: [{ipBlock: {cidr: 192.168.1.0/24}}], ports: [{port: 81, protocol: UDP}]}, {to: [{podSelector: {}}], ports: [{port: 80}]}]",
];

const OUTSIDE: [Ipv4Addr; 4] = [
    Ipv4Addr::new(192, 168, 1, 1),
    Ipv4Addr::new(192, 168, 2, 1),
    Ipv4Addr::new(10, 244, 9, 9),
    Ipv4Addr::new(8, 8, 8, 8),
];

#[test]
fn the_kernels_lookup_over_each_nodes_tables_gives_the_specifications_verdict() {
    let (pods, namespaces) = upstream::model();
    for case in CASES {
        let store = store(case);
        let tables: BTreeMap<&str, PolicyTables> = NODES
            .iter()
            .map(|node| (*node, PolicyState::new(settings(node)).build(&store).tables))
            .collect();
        let parsed = policies(case)
            .iter()
            .map(|p| strait_k8s::netpol::Policy::parse(p).unwrap())
            .collect();
        let evaluator = Evaluator::new(parsed, namespaces.clone());
        let node_tables = |pod: &PolicyPod| {
            let index = pods.iter().position(|p| p.key() == pod.key()).unwrap();
            &tables[node_of(index)]
        };
        let mut wrong = Vec::new();
        let mut check = |from: Party<'_>, to: Party<'_>| {
            let (src, dst) = (from.ip().unwrap(), to.ip().unwrap());
            for port in [80, 81, 82] {
                for protocol in [Protocol::Tcp, Protocol::Udp] {
                    let number = protocol_number(protocol);
                    let egress = match from {
                        Party::Pod(pod) => judge(
                            node_tables(pod),
                            (src, abi::POLICY_EGRESS),
                            dst,
                            number,
                            port,
                        ),
                        Party::External(_) => true,
                    };
                    let ingress = match to {
                        Party::Pod(pod) => judge(
                            node_tables(pod),
                            (dst, abi::POLICY_INGRESS),
                            src,
                            number,
                            port,
                        ),
                        Party::External(_) => true,
                    };
                    let flow = Flow {
                        from,
                        to,
                        port,
                        protocol,
                    };
                    if egress && ingress != evaluator.verdict(&flow).allowed() {
                        wrong.push(format!(
                            "{} -> {} {port}/{}",
                            from.describe(),
                            to.describe(),
                            protocol.name()
                        ));
                    }
                }
            }
        };
        for from in &pods {
            for to in pods.iter().filter(|t| t.key() != from.key()) {
                check(Party::Pod(from), Party::Pod(to));
            }
            for outside in OUTSIDE {
                check(Party::Pod(from), Party::External(outside));
                check(Party::External(outside), Party::Pod(from));
            }
        }
        assert!(wrong.is_empty(), "{case}\nwrong cells: {wrong:#?}");
    }
}

#[test]
fn audit_mode_comes_from_the_flag_or_the_namespace_annotation() {
    let mut store = store(
        "metadata: {name: deny, namespace: x}\nspec: {podSelector: {}, policyTypes: [Ingress]}",
    );
    let y = Labels::from([("ns".to_owned(), "y".to_owned())]);
    store.apply(Change::Upsert(Object::from(namespace_object(
        "y", &y, true,
    ))));
    let tables = PolicyState::new(settings("node-1")).build(&store).tables;
    let flags = |ip: [u8; 4]| tables.subjects.get(&Ipv4Addr::from(ip)).map(|s| s.flags);
    // Node 1 runs x/a, x/c, y/b, z/a, z/c.
    assert_eq!(flags([10, 244, 1, 2]), Some(SUBJECT_F_INGRESS_ISOLATED));
    assert_eq!(
        flags([10, 244, 2, 3]),
        Some(SUBJECT_F_AUDIT),
        "y is audited"
    );
    assert_eq!(flags([10, 244, 3, 2]), None, "neither isolated nor audited");
    assert_eq!(flags([10, 244, 1, 3]), None, "x/b runs on node 2");

    let audited = PolicyState::new(PolicySettings {
        audit: true,
        ..settings("node-1")
    })
    .build(&store)
    .tables;
    assert_eq!(audited.subjects.len(), 5);
    assert!(
        audited
            .subjects
            .values()
            .all(|s| s.flags & SUBJECT_F_AUDIT != 0)
    );
    let subject = audited.subjects[&Ipv4Addr::new(10, 244, 1, 2)];
    assert_eq!(
        subject.identity,
        audited.ipcache[&Ipv4Addr::new(10, 244, 1, 2)]
    );
}

#[test]
fn finished_host_network_and_unaddressed_pods_hold_no_address() {
    let mut store = store("");
    let add = |store: &mut ObjectStore, value: serde_json::Value| {
        let pod: Pod = serde_json::from_value(value).unwrap();
        store.apply(Change::Upsert(Object::from(pod)));
    };
    add(
        &mut store,
        json!({"metadata": {"name": "done", "namespace": "x"}, "spec": {"nodeName": "node-1", "containers": []},
               "status": {"phase": "Succeeded", "podIP": "10.244.1.50"}}),
    );
    add(
        &mut store,
        json!({"metadata": {"name": "host", "namespace": "x"}, "spec": {"nodeName": "node-1", "hostNetwork": true, "containers": []},
               "status": {"phase": "Running", "podIP": "172.30.0.11"}}),
    );
    add(
        &mut store,
        json!({"metadata": {"name": "pending", "namespace": "x"}, "spec": {"containers": []}, "status": {"phase": "Pending"}}),
    );
    // A pod being deleted gave its address to a new one, whose identity wins.
    add(
        &mut store,
        json!({"metadata": {"name": "aa-old", "namespace": "x", "labels": {"pod": "old"}, "deletionTimestamp": "2026-01-01T00:00:00Z"},
               "spec": {"nodeName": "node-2", "containers": []}, "status": {"phase": "Running", "podIP": "10.244.1.60"}}),
    );
    add(
        &mut store,
        json!({"metadata": {"name": "zz-new", "namespace": "x", "labels": {"pod": "new"}},
               "spec": {"nodeName": "node-1", "containers": []}, "status": {"phase": "Running", "podIP": "10.244.1.60"}}),
    );
    let built = PolicyState::new(settings("node-1")).build(&store);
    assert_eq!(built.pods, 10);
    assert_eq!(built.local_pods, 6);
    assert_eq!(built.tables.ipcache.len(), 10);
    for gone in [[10, 244, 1, 50], [172, 30, 0, 11]] {
        assert!(!built.tables.ipcache.contains_key(&Ipv4Addr::from(gone)));
    }
    let new_identity = built.tables.ipcache[&Ipv4Addr::new(10, 244, 1, 60)];
    let x_a = built.tables.ipcache[&Ipv4Addr::new(10, 244, 1, 2)];
    assert_ne!(new_identity, x_a);
    assert_eq!(
        built.identities, 10,
        "the model's nine, and the new pod's (the old one holds none)"
    );
}

#[test]
fn numbers_stay_when_other_things_change_and_name_the_policies() {
    let mut store = store(
        "metadata: {name: one, namespace: x}\nspec: {podSelector: {}, ingress: [{from: [{podSelector: {matchLabels: {pod: b}}}]}]}",
    );
    let mut state = PolicyState::new(settings("node-1"));
    let first = state.build(&store);
    assert_eq!(first.policies, BTreeMap::from([(1, "x/one".to_owned())]));
    for policy in policies(
        "metadata: {name: another, namespace: x}\nspec: {podSelector: {}, ingress: [{from: [{podSelector: {matchLabels: {pod: c}}}]}]}",
    ) {
        store.apply(Change::Upsert(Object::from(policy)));
    }
    // Pod y/a relabelled: its address gets a new identity; every other entry keeps its numbers.
    let (pods, _) = upstream::model();
    let mut relabelled = pods[3].clone();
    relabelled.labels.insert("tier".to_owned(), "1".to_owned());
    store.apply(Change::Upsert(Object::from(pod_object(
        &relabelled,
        node_of(3),
    ))));
    let second = state.build(&store);
    assert_eq!(
        second.policies,
        BTreeMap::from([(1, "x/one".to_owned()), (2, "x/another".to_owned())]),
        "a new policy gets the next number; the old one keeps its own"
    );
    let changed: Vec<&Ipv4Addr> = second
        .tables
        .ipcache
        .iter()
        .filter(|(ip, id)| first.tables.ipcache.get(ip) != Some(id))
        .map(|(ip, _)| ip)
        .collect();
    assert_eq!(changed, [&Ipv4Addr::new(10, 244, 2, 2)]);
    for (key, rule) in &first.tables.allow {
        assert_eq!(second.tables.allow.get(key), Some(rule), "{key:?}");
    }
    assert!(second.tables.allow.values().any(|r| r.policy == 2));
}

#[test]
fn a_publishing_state_names_pods_policies_and_what_isolates_each_local_pod() {
    use strait_dataplane::policy_events::Direction as Way;
    let store = store(
        "metadata: {name: deny, namespace: x}\nspec: {podSelector: {}, policyTypes: [Ingress]}\n---\n\
         metadata: {name: out, namespace: x}\nspec: {podSelector: {matchLabels: {pod: a}}, policyTypes: [Egress, Ingress]}",
    );
    let names = crate::flows::FlowNames::default();
    let built = PolicyState::new(settings("node-1"))
        .publishing(names.clone())
        .build(&store);
    let view = names.snapshot();
    let (x_a, x_b) = (Ipv4Addr::new(10, 244, 1, 2), Ipv4Addr::new(10, 244, 1, 3));
    assert_eq!(view.pod(x_a).map(|p| &**p), Some("x/a"));
    assert_eq!(
        view.pod(x_b).map(|p| &**p),
        Some("x/b"),
        "pods of other nodes too"
    );
    for (number, name) in &built.policies {
        assert_eq!(view.policy(*number).map(|p| &**p), Some(name.as_str()));
    }
    let isolating = |ip, way| -> Vec<String> {
        view.isolating(ip, way)
            .iter()
            .map(ToString::to_string)
            .collect()
    };
    assert_eq!(isolating(x_a, Way::Ingress), ["x/deny", "x/out"]);
    assert_eq!(isolating(x_a, Way::Egress), ["x/out"]);
    assert!(
        isolating(x_b, Way::Ingress).is_empty(),
        "x/b runs on node 2"
    );
}
