//! Tests of [`service_entries`](translate::service_entries) and [`diff`], on objects built from YAML.
//! Every translation is also made by the incremental [`ServiceIndex`], once rebuilt from the whole
//! store and once fed the objects one event at a time (in an order that puts slices before their
//! Services and pods before their Node), and all three must agree.

use std::net::Ipv4Addr;
use std::path::Path;

use strait_dataplane::services::{
    Backend, ExternalAccess, L4Proto, Prefix, ServiceEntry, ServiceKey,
};
use strait_k8s::manifest::{ParseOptions, parse_str};
use strait_k8s::{Change, Kind, ObjectStore};

use crate::model::service_index::ServiceIndex;
use crate::model::translate::{self, ReservedAddresses, ServiceDiff, diff};

pub(super) fn objects(yaml: &str) -> ObjectStore {
    let loaded = parse_str(Path::new("test.yaml"), yaml, &ParseOptions::AGENT).unwrap();
    let mut store = ObjectStore::new();
    store.apply_all(loaded.into_objects().into_iter().map(Change::Upsert));
    store
}

/// The ranges the tests' agent refuses as external addresses (straitd's defaults).
fn reserved() -> ReservedAddresses {
    ReservedAddresses::defaults()
}

/// The full translation, checked against the incremental index.
pub(super) fn service_entries(store: &ObjectStore, node: &str) -> Vec<ServiceEntry> {
    service_entries_refusing(store, node, &reserved())
}

/// [`service_entries`] with other reserved ranges.
fn service_entries_refusing(
    store: &ObjectStore,
    node: &str,
    reserved: &ReservedAddresses,
) -> Vec<ServiceEntry> {
    let full = translate::service_entries(store, node, reserved);
    let mut rebuilt = ServiceIndex::new(node).with_reserved(reserved.clone());
    rebuilt.rebuild(store);
    assert_eq!(rebuilt.entries(), full, "rebuilt index");

    let mut incremental = ServiceIndex::new(node).with_reserved(reserved.clone());
    let mut growing = ObjectStore::new();
    let mut objects: Vec<_> = [Kind::EndpointSlice, Kind::Node, Kind::Service, Kind::Pod]
        .into_iter()
        .flat_map(|kind| {
            store
                .of_kind(kind)
                .map(|(_, o)| o.clone())
                .collect::<Vec<_>>()
        })
        .collect();
    objects.reverse();
    for object in objects {
        let events: Vec<_> = growing.apply(Change::Upsert(object)).into_iter().collect();
        incremental.update(&growing, &events);
    }
    assert_eq!(incremental.entries(), full, "index fed one event at a time");
    full
}

fn ip(text: &str) -> Ipv4Addr {
    text.parse().unwrap()
}

fn key(vip: &str, port: u16, proto: L4Proto) -> ServiceKey {
    ServiceKey {
        vip: ip(vip),
        port,
        proto,
    }
}

fn backends(list: &[(&str, u16)]) -> Vec<Backend> {
    list.iter()
        .map(|&(addr, port)| Backend {
            addr: ip(addr),
            port,
        })
        .collect()
}

fn entry(key: ServiceKey, list: &[(&str, u16)]) -> ServiceEntry {
    ServiceEntry {
        affinity_timeout_s: None,
        key,
        backends: backends(list),
        external: None,
        endpoints_elsewhere: false,
    }
}

/// A Service in namespace `shop` with the given spec lines (indented by two).
fn service(name: &str, spec: &str) -> String {
    format!(
        "---\napiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: shop}}\nspec:\n{spec}"
    )
}

/// An EndpointSlice in namespace `shop` for Service `service`.
fn slice(name: &str, service: &str, address_type: &str, rest: &str) -> String {
    format!(
        "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: {name}\n  namespace: shop\n  \
         labels: {{kubernetes.io/service-name: {service}}}\naddressType: {address_type}\n{rest}"
    )
}

const WEB_PORTS: &str = "\
ports:
- {name: http, port: 8080, protocol: TCP}
- {name: dns, port: 5353, protocol: UDP}
- {name: sctp, port: 9, protocol: SCTP}
";

fn web() -> ObjectStore {
    let mut yaml = service(
        "web",
        "  clusterIP: 10.96.0.10\n  ports:\n  - {name: http, port: 80, targetPort: 8080}\n  \
         - {name: dns, port: 53, protocol: UDP, targetPort: 5353}\n  - {name: sctp, port: 9, protocol: SCTP}\n",
    );
    yaml += &slice(
        "web-abc",
        "web",
        "IPv4",
        &format!(
            "{WEB_PORTS}endpoints:\n\
             - {{addresses: [10.244.1.5], conditions: {{ready: true}}, nodeName: node-1}}\n\
             - {{addresses: [10.244.2.7], nodeName: node-2}}\n\
             - {{addresses: [10.244.1.9], conditions: {{ready: false, serving: true, terminating: true}}, nodeName: node-1}}\n\
             - {{addresses: [10.244.1.3], conditions: {{ready: false}}}}\n"
        ),
    );
    // A second slice repeating one endpoint (as during a slice migration) and adding another.
    yaml += &slice(
        "web-def",
        "web",
        "IPv4",
        &format!(
            "{WEB_PORTS}endpoints:\n\
             - {{addresses: [10.244.3.2], conditions: {{ready: true, serving: true, terminating: false}}}}\n\
             - {{addresses: [10.244.1.5], conditions: {{ready: true}}, nodeName: node-1}}\n"
        ),
    );
    // The IPv6 slice of a dual-stack Service is not this proxier's.
    yaml += &slice(
        "web-v6",
        "web",
        "IPv6",
        "ports: [{name: http, port: 8080}]\nendpoints: [{addresses: ['fd00::5']}]\n",
    );
    // A slice of another Service, and a same-named Service's slice in another namespace.
    yaml += &slice(
        "other-1",
        "other",
        "IPv4",
        "ports: [{name: http, port: 1}]\nendpoints: [{addresses: [10.9.9.9]}]\n",
    );
    yaml += "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: web-x\n  namespace: elsewhere\n  \
             labels: {kubernetes.io/service-name: web}\naddressType: IPv4\nports: [{name: http, port: 1}]\n\
             endpoints: [{addresses: [10.8.8.8]}]\n";
    objects(&yaml)
}

#[test]
fn named_tcp_and_udp_ports_take_the_ready_endpoints() {
    let entries = service_entries(&web(), "node-1");
    let ready = ["10.244.1.5", "10.244.2.7", "10.244.3.2"];
    let with_port = |port| ready.iter().map(|&a| (a, port)).collect::<Vec<_>>();
    assert_eq!(
        entries,
        [
            entry(key("10.96.0.10", 53, L4Proto::Udp), &with_port(5353)),
            entry(key("10.96.0.10", 80, L4Proto::Tcp), &with_port(8080)),
        ],
        "sorted by key; SCTP skipped; not-ready and terminating endpoints left out; \
         duplicates merged; backends sorted; IPv6 and foreign slices ignored"
    );
}

#[test]
fn translation_is_deterministic() {
    let objects = web();
    assert_eq!(
        service_entries(&objects, "n"),
        service_entries(&objects.clone(), "n")
    );
}

#[test]
fn headless_and_external_name_services_have_no_frontends() {
    let mut yaml = service(
        "headless",
        "  clusterIP: None\n  ports: [{name: http, port: 80}]\n",
    );
    yaml += &slice(
        "headless-1",
        "headless",
        "IPv4",
        "ports: [{name: http, port: 80}]\nendpoints: [{addresses: [10.244.1.5]}]\n",
    );
    yaml += &service(
        "ext",
        "  type: ExternalName\n  externalName: example.com\n  ports: [{port: 80}]\n",
    );
    yaml += &service(
        "ext-with-ip",
        "  type: ExternalName\n  clusterIP: 10.96.0.11\n  ports: [{port: 80}]\n",
    );
    yaml += &service("empty-ip", "  clusterIP: ''\n  ports: [{port: 80}]\n");
    yaml += &service("no-spec-ip", "  ports: [{port: 80}]\n");
    assert_eq!(service_entries(&objects(&yaml), "n"), []);
}

#[test]
fn cluster_ips_are_used_when_cluster_ip_is_unset_and_only_ipv4_is_served() {
    let mut yaml = service(
        "from-list",
        "  clusterIPs: [10.96.0.20]\n  ports: [{port: 80}]\n",
    );
    yaml += &service(
        "v6-primary",
        "  clusterIP: fd00::30\n  clusterIPs: [fd00::30, 10.96.0.30]\n  ports: [{port: 80}]\n",
    );
    yaml += &service(
        "v6-only",
        "  clusterIP: fd00::40\n  clusterIPs: [fd00::40]\n  ports: [{port: 80}]\n",
    );
    yaml += &service(
        "headless-list",
        "  clusterIPs: [None]\n  ports: [{port: 80}]\n",
    );
    let keys: Vec<ServiceKey> = service_entries(&objects(&yaml), "n")
        .iter()
        .map(|e| e.key)
        .collect();
    assert_eq!(
        keys,
        [
            key("10.96.0.20", 80, L4Proto::Tcp),
            key("10.96.0.30", 80, L4Proto::Tcp)
        ]
    );
}

#[test]
fn terminating_endpoints_are_used_only_when_none_is_ready() {
    let mut yaml = service(
        "drain",
        "  clusterIP: 10.96.0.12\n  ports: [{name: http, port: 80}]\n",
    );
    yaml += &slice(
        "drain-1",
        "drain",
        "IPv4",
        "ports: [{name: http, port: 8080}]\nendpoints:\n\
         - {addresses: [10.244.1.2], conditions: {ready: false, serving: true, terminating: true}}\n\
         - {addresses: [10.244.1.3], conditions: {ready: false, terminating: true}}\n\
         - {addresses: [10.244.1.4], conditions: {ready: false, serving: false, terminating: true}}\n\
         - {addresses: [10.244.1.5], conditions: {ready: false, serving: true}}\n\
         - {addresses: [10.244.1.6], conditions: {ready: false}}\n",
    );
    let entries = service_entries(&objects(&yaml), "n");
    assert_eq!(
        entries,
        [entry(
            key("10.96.0.12", 80, L4Proto::Tcp),
            &[("10.244.1.2", 8080), ("10.244.1.3", 8080)]
        )],
        "serving unset counts as serving; not serving or not terminating is never used"
    );
}

fn local_service() -> ObjectStore {
    let mut yaml = service(
        "local",
        "  clusterIP: 10.96.0.13\n  internalTrafficPolicy: Local\n  ports: [{name: http, port: 80}]\n",
    );
    yaml += &slice(
        "local-1",
        "local",
        "IPv4",
        "ports: [{name: http, port: 8080}]\nendpoints:\n\
         - {addresses: [10.244.1.2], nodeName: node-1}\n\
         - {addresses: [10.244.1.3], nodeName: node-1, conditions: {ready: false, serving: true, terminating: true}}\n\
         - {addresses: [10.244.2.2], nodeName: node-2}\n\
         - {addresses: [10.244.3.3], nodeName: node-3, conditions: {ready: false, serving: true, terminating: true}}\n\
         - {addresses: [10.244.9.9]}\n",
    );
    objects(&yaml)
}

#[test]
fn internal_traffic_policy_local_uses_only_this_nodes_endpoints() {
    let objects = local_service();
    let frontend = key("10.96.0.13", 80, L4Proto::Tcp);
    assert_eq!(
        service_entries(&objects, "node-1"),
        [entry(frontend, &[("10.244.1.2", 8080)])]
    );
    assert_eq!(
        service_entries(&objects, "node-2"),
        [entry(frontend, &[("10.244.2.2", 8080)])]
    );
    // Node 3 has only a terminating endpoint: the fallback applies to the local endpoints (as in
    // kube-proxy), even though other nodes have ready ones.
    assert_eq!(
        service_entries(&objects, "node-3"),
        [entry(frontend, &[("10.244.3.3", 8080)])]
    );
    // No local endpoint: the frontend stays, without backends, marked so that its packets are dropped
    // (kube-proxy's DROP) rather than refused: the Service has endpoints, on other nodes.
    let elsewhere = ServiceEntry {
        endpoints_elsewhere: true,
        ..entry(frontend, &[])
    };
    assert_eq!(service_entries(&objects, "node-4"), [elsewhere]);
}

#[test]
fn a_local_policy_without_any_endpoint_is_refused_not_dropped() {
    let yaml = service(
        "nobody",
        "  type: NodePort\n  clusterIP: 10.96.0.18\n  internalTrafficPolicy: Local\n  externalTrafficPolicy: Local\n  ports: [{port: 80, nodePort: 30081}]\n",
    );
    let entries = service_entries(&objects(&yaml), "node-1");
    assert!(!entries.is_empty());
    for entry in &entries {
        assert!(entry.backends.is_empty(), "{entry:?}");
        assert!(
            !entry.endpoints_elsewhere,
            "no endpoint anywhere: {entry:?}"
        );
    }
}

#[test]
fn cluster_policy_ignores_the_node() {
    let mut objects = local_service();
    let mut service = objects.service("shop", "local").unwrap().clone();
    service.spec.as_mut().unwrap().internal_traffic_policy = Some("Cluster".to_owned());
    objects.apply(Change::Upsert(service.into()));
    let entries = service_entries(&objects, "node-4");
    assert_eq!(
        entries[0].backends,
        backends(&[
            ("10.244.1.2", 8080),
            ("10.244.2.2", 8080),
            ("10.244.9.9", 8080)
        ])
    );
}

#[test]
fn an_unnamed_single_port_matches_unnamed_slice_ports() {
    let mut yaml = service("single", "  clusterIP: 10.96.0.14\n  ports: [{port: 80}]\n");
    yaml += &slice(
        "single-1",
        "single",
        "IPv4",
        "ports: [{port: 8080}]\nendpoints: [{addresses: [10.244.1.2]}]\n",
    );
    yaml += &slice(
        "single-2",
        "single",
        "IPv4",
        "ports: [{name: '', port: 8080, protocol: TCP}]\nendpoints: [{addresses: [10.244.1.3]}]\n",
    );
    // A named slice port is a different service port.
    yaml += &slice(
        "single-3",
        "single",
        "IPv4",
        "ports: [{name: http, port: 8080}]\nendpoints: [{addresses: [10.244.1.4]}]\n",
    );
    assert_eq!(
        service_entries(&objects(&yaml), "n"),
        [entry(
            key("10.96.0.14", 80, L4Proto::Tcp),
            &[("10.244.1.2", 8080), ("10.244.1.3", 8080)]
        )]
    );
}

#[test]
fn slice_ports_must_match_the_protocol_and_have_a_port() {
    let mut yaml = service(
        "dns",
        "  clusterIP: 10.96.0.15\n  ports:\n  - {name: dns, port: 53, protocol: UDP}\n  - {name: dns-tcp, port: 53}\n",
    );
    yaml += &slice(
        "dns-1",
        "dns",
        "IPv4",
        "ports:\n- {name: dns, port: 53}\n- {name: dns-tcp}\nendpoints: [{addresses: [10.244.1.2]}]\n",
    );
    assert_eq!(
        service_entries(&objects(&yaml), "n"),
        [
            entry(key("10.96.0.15", 53, L4Proto::Tcp), &[]),
            entry(key("10.96.0.15", 53, L4Proto::Udp), &[]),
        ],
        "the UDP port's slice port is TCP; the TCP port's slice port has no number"
    );
}

#[test]
fn every_address_of_an_endpoint_is_a_backend() {
    let mut yaml = service("multi", "  clusterIP: 10.96.0.16\n  ports: [{port: 80}]\n");
    yaml += &slice(
        "multi-1",
        "multi",
        "IPv4",
        "ports: [{port: 80}]\nendpoints: [{addresses: [10.244.1.3, 10.244.1.2, not-an-ip]}]\n",
    );
    assert_eq!(
        service_entries(&objects(&yaml), "n")[0].backends,
        backends(&[("10.244.1.2", 80), ("10.244.1.3", 80)])
    );
}

#[test]
fn a_frontend_without_endpoints_has_no_backends() {
    let yaml = service(
        "lonely",
        "  clusterIP: 10.96.0.17\n  ports: [{port: 80}, {port: 81, name: b}]\n",
    );
    let entries = service_entries(&objects(&yaml), "n");
    assert_eq!(
        entries,
        [
            entry(key("10.96.0.17", 80, L4Proto::Tcp), &[]),
            entry(key("10.96.0.17", 81, L4Proto::Tcp), &[]),
        ]
    );
}

#[test]
fn the_first_service_keeps_a_contested_frontend() {
    let mut yaml = service("a", "  clusterIP: 10.96.0.18\n  ports: [{port: 80}]\n");
    yaml += &slice(
        "a-1",
        "a",
        "IPv4",
        "ports: [{port: 1}]\nendpoints: [{addresses: [10.244.1.1]}]\n",
    );
    yaml += &service("b", "  clusterIP: 10.96.0.18\n  ports: [{port: 80}]\n");
    yaml += &slice(
        "b-1",
        "b",
        "IPv4",
        "ports: [{port: 2}]\nendpoints: [{addresses: [10.244.2.2]}]\n",
    );
    assert_eq!(
        service_entries(&objects(&yaml), "n"),
        [entry(
            key("10.96.0.18", 80, L4Proto::Tcp),
            &[("10.244.1.1", 1)]
        )]
    );
}

/// A Service cannot take another's ClusterIP over by naming it in its externalIPs (or as its
/// LoadBalancer ingress), whatever the names' order: the ClusterIP keeps it (the CVE-2020-8554 class),
/// even with no range reserved (a service CIDR set wrong).
#[test]
fn a_cluster_ip_outranks_the_same_address_as_an_external_ip() {
    let mut yaml = service(
        "a-hijack",
        "  clusterIP: 10.96.0.30
  externalIPs: [10.96.0.10]
  ports: [{port: 53, protocol: UDP}]
",
    );
    yaml += &slice(
        "a-hijack-1",
        "a-hijack",
        "IPv4",
        "ports: [{port: 9053, protocol: UDP}]\nendpoints: [{addresses: [10.244.9.9]}]\n",
    );
    yaml += &service(
        "z-dns",
        "  clusterIP: 10.96.0.10
  ports: [{port: 53, protocol: UDP}]
",
    );
    yaml += &slice(
        "z-dns-1",
        "z-dns",
        "IPv4",
        "ports: [{port: 53, protocol: UDP}]\nendpoints: [{addresses: [10.244.1.53]}]\n",
    );
    let entries = service_entries_refusing(&objects(&yaml), "n", &ReservedAddresses::default());
    let dns = entries
        .iter()
        .find(|e| e.key == key("10.96.0.10", 53, L4Proto::Udp))
        .unwrap();
    assert_eq!(dns.backends, backends(&[("10.244.1.53", 53)]));
    assert!(dns.external.is_none(), "{dns:?}");
    // The hijacker keeps its own ClusterIP.
    assert!(
        entries
            .iter()
            .any(|e| e.key == key("10.96.0.30", 53, L4Proto::Udp))
    );
}

/// externalIPs and ingress addresses inside the cluster's ranges, or equal to this node's address, are
/// refused; the others stay.
#[test]
fn external_addresses_inside_the_clusters_ranges_or_on_the_node_are_refused() {
    let yaml = [
        "---\napiVersion: v1\nkind: Node\nmetadata: {name: n1}\nstatus:\n  addresses:\n    - {type: InternalIP, address: 172.30.0.11}\n".to_owned(),
        service(
            "greedy",
            "  type: LoadBalancer\n  clusterIP: 10.96.0.40\n  externalIPs: [10.96.0.10, 10.244.3.3, 172.30.0.11, 192.0.2.7]\n  ports: [{port: 80, nodePort: 30081}]\nstatus:\n  loadBalancer: {ingress: [{ip: 10.244.9.9}, {ip: 198.51.100.7}]}\n",
        ),
    ]
    .concat();
    let store = objects(&yaml);
    let vips: Vec<(Ipv4Addr, u16)> = service_entries(&store, "n1")
        .iter()
        .map(|e| (e.key.vip, e.key.port))
        .collect();
    assert_eq!(
        vips,
        [
            (ip("10.96.0.40"), 80),
            (ip("172.30.0.11"), 30081),
            (ip("192.0.2.7"), 80),
            (ip("198.51.100.7"), 80),
        ],
        "only the ClusterIP, the node port and the outside addresses"
    );
    let service = store.service("shop", "greedy").unwrap();
    let refused: Vec<(Ipv4Addr, String)> =
        translate::refused_external(&service, &reserved(), &[ip("172.30.0.11")]);
    let addresses: Vec<Ipv4Addr> = refused.iter().map(|(a, _)| *a).collect();
    assert_eq!(
        addresses,
        [
            ip("10.96.0.10"),
            ip("10.244.3.3"),
            ip("172.30.0.11"),
            ip("10.244.9.9")
        ]
    );
    assert!(refused[0].1.contains("10.96.0.0/12"), "{refused:?}");
    assert!(refused[2].1.contains("this node"), "{refused:?}");
}

#[test]
fn diff_reports_only_changes() {
    let k = |port| key("10.96.0.1", port, L4Proto::Tcp);
    let old = [
        entry(k(1), &[("10.0.0.1", 80)]),
        entry(k(2), &[("10.0.0.1", 80)]),
        entry(k(3), &[("10.0.0.1", 80), ("10.0.0.2", 80)]),
        entry(k(4), &[("10.0.0.1", 80)]),
    ];
    let new = [
        entry(k(5), &[]),
        entry(k(3), &[("10.0.0.2", 80), ("10.0.0.1", 80)]),
        entry(k(1), &[("10.0.0.1", 80)]),
        entry(k(2), &[("10.0.0.1", 81)]),
    ];
    let changes = diff(&old, &new);
    assert_eq!(
        changes,
        ServiceDiff {
            upserts: vec![
                entry(k(2), &[("10.0.0.1", 81)]),
                entry(k(3), &[("10.0.0.2", 80), ("10.0.0.1", 80)]),
                entry(k(5), &[]),
            ],
            removals: vec![k(4)],
        },
        "unchanged 1 omitted; changed port and changed order (the slots) upserted; new 5 added; 4 removed"
    );
    assert!(!changes.is_empty());
    assert!(diff(&new, &new).is_empty());
    assert_eq!(diff(&[], &new).upserts.len(), 4);
    assert_eq!(diff(&new, &[]).removals, [k(1), k(2), k(3), k(5)]);
}

#[test]
fn node_ports_external_ips_and_load_balancer_ips_are_frontends_too() {
    let yaml = [
        "---\napiVersion: v1\nkind: Node\nmetadata: {name: n1}\nstatus:\n  addresses:\n    - {type: InternalIP, address: 172.30.0.11}\n    - {type: Hostname, address: n1}\n".to_owned(),
        service(
            "lb",
            "  type: LoadBalancer\n  clusterIP: 10.96.0.20\n  externalIPs: [192.0.2.5]\n  externalTrafficPolicy: Local\n  ports: [{port: 80, nodePort: 30080}]\nstatus:\n  loadBalancer: {ingress: [{ip: 198.51.100.1}]}\n",
        ),
        slice(
            "lb-1",
            "lb",
            "IPv4",
            "ports: [{port: 8080}]\nendpoints:\n  - {addresses: [10.244.1.2], nodeName: n1}\n  - {addresses: [10.244.2.2], nodeName: n2}\n",
        ),
    ]
    .concat();
    let entries = service_entries(&objects(&yaml), "n1");
    let both = [("10.244.1.2", 8080), ("10.244.2.2", 8080)];
    let local = [("10.244.1.2", 8080)];
    let external = |key, ranges: Vec<Prefix>| ServiceEntry {
        external: Some(ExternalAccess {
            local: true,
            source_ranges: ranges,
        }),
        ..entry(key, &local)
    };
    assert_eq!(
        entries,
        vec![
            entry(key("10.96.0.20", 80, L4Proto::Tcp), &both),
            external(key("172.30.0.11", 30080, L4Proto::Tcp), vec![]),
            external(key("192.0.2.5", 80, L4Proto::Tcp), vec![]),
            external(key("198.51.100.1", 80, L4Proto::Tcp), vec![]),
        ]
    );
    // Without this node's Node object there is no address to serve the node port on.
    let other_node = service_entries(&objects(&yaml), "n9");
    assert!(other_node.iter().all(|e| e.key.port != 30080));
}

#[test]
fn load_balancer_source_ranges_restrict_only_the_ingress_ips() {
    let yaml = [
        "---\napiVersion: v1\nkind: Node\nmetadata: {name: n1}\nstatus:\n  addresses:\n    - {type: InternalIP, address: 172.30.0.11}\n".to_owned(),
        service(
            "lb",
            "  type: LoadBalancer\n  clusterIP: 10.96.0.20\n  externalIPs: [192.0.2.5]\n  loadBalancerSourceRanges: [10.1.2.3/16, 172.30.0.0/24, 'fd00::/8', bogus]\n  ports: [{port: 80, nodePort: 30080}]\nstatus:\n  loadBalancer: {ingress: [{ip: 198.51.100.1}]}\n",
        ),
    ]
    .concat();
    let entries = service_entries(&objects(&yaml), "n1");
    let access = |vip: &str| {
        entries
            .iter()
            .find(|e| e.key.vip.to_string() == vip)
            .unwrap_or_else(|| panic!("no frontend on {vip}"))
            .external
            .clone()
    };
    assert_eq!(access("10.96.0.20"), None, "the ClusterIP is internal");
    let open = Some(ExternalAccess {
        local: false,
        source_ranges: vec![],
    });
    assert_eq!(access("172.30.0.11"), open, "node ports are not restricted");
    assert_eq!(access("192.0.2.5"), open, "externalIPs are not restricted");
    assert_eq!(
        access("198.51.100.1"),
        Some(ExternalAccess {
            local: false,
            source_ranges: vec![
                Prefix {
                    addr: "10.1.0.0".parse().unwrap(),
                    len: 16
                },
                Prefix {
                    addr: "172.30.0.0".parse().unwrap(),
                    len: 24
                },
            ],
        }),
        "host bits cleared; IPv6 and malformed ranges skipped"
    );
}
