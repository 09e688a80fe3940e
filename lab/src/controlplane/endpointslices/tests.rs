//! Tests of the EndpointSlice controller.
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::ServiceSpec;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::*;
use crate::manifests::{PodDns, PodPort, Protocol};

fn pod(
    namespace: &str,
    name: &str,
    ip: &str,
    labels: &[(&str, &str)],
    ports: &[(&str, u16, Protocol)],
) -> PodRecord {
    PodRecord {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        node: "node-0".to_owned(),
        container_id: format!("cid-{name}"),
        netns: format!("netns-{name}"),
        cgroup: format!("cg-{name}"),
        ip: ip.parse::<Ipv4Addr>().unwrap(),
        ports: ports
            .iter()
            .map(|(n, port, protocol)| PodPort {
                name: Some((*n).to_owned()),
                port: *port,
                protocol: *protocol,
                host_port: None,
                host_ip: None,
            })
            .collect(),
        labels: labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        owner: None,
        template_hash: None,
        workload_pid: 1,
        dns: PodDns::default(),
    }
}

fn port(
    name: Option<&str>,
    port: i32,
    target: Option<IntOrString>,
    protocol: Option<&str>,
) -> ServicePort {
    ServicePort {
        name: name.map(str::to_owned),
        port,
        target_port: target,
        protocol: protocol.map(str::to_owned),
        ..ServicePort::default()
    }
}

fn service(
    namespace: &str,
    name: &str,
    selector: Option<&[(&str, &str)]>,
    ports: Vec<ServicePort>,
) -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            selector: selector.map(|s| {
                s.iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect()
            }),
            ports: Some(ports),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

fn none() -> BTreeSet<String> {
    BTreeSet::new()
}

fn ips(slice: &EndpointSlice) -> Vec<&str> {
    slice
        .endpoints
        .iter()
        .flatten()
        .map(|e| e.addresses[0].as_str())
        .collect()
}

fn port_numbers(slice: &EndpointSlice) -> Vec<(Option<&str>, Option<i32>, Option<&str>)> {
    slice
        .ports
        .iter()
        .flatten()
        .map(|p| (p.name.as_deref(), p.port, p.protocol.as_deref()))
        .collect()
}

const WEB: &[(&str, &str)] = &[("app", "web")];

#[test]
fn numeric_target_port_one_slice_sorted_by_ip() {
    let svc = service(
        "shop",
        "web",
        Some(WEB),
        vec![
            port(Some("http"), 80, Some(IntOrString::Int(8080)), None),
            port(Some("dns"), 53, None, Some("UDP")),
        ],
    );
    let pods = [
        pod(
            "shop",
            "web-b",
            "10.244.1.5",
            &[("app", "web"), ("x", "y")],
            &[],
        ),
        pod("shop", "web-a", "10.244.0.7", WEB, &[]),
        pod("shop", "db", "10.244.0.8", &[("app", "db")], &[]),
    ];
    let slices = endpoint_slices(&svc, &pods, &none());
    assert_eq!(slices.len(), 1);
    let slice = &slices[0];
    assert_eq!(slice.address_type, "IPv4");
    assert_eq!(ips(slice), ["10.244.0.7", "10.244.1.5"]);
    assert_eq!(
        port_numbers(slice),
        [
            (Some("http"), Some(8080), Some("TCP")),
            (Some("dns"), Some(53), Some("UDP"))
        ]
    );
    let meta = &slice.metadata;
    assert_eq!(meta.namespace.as_deref(), Some("shop"));
    let name = meta.name.as_deref().unwrap();
    assert!(
        name.starts_with("web-") && name.len() == "web-".len() + NAME_HASH_LEN,
        "{name}"
    );
    let labels = meta.labels.as_ref().unwrap();
    assert_eq!(labels[SERVICE_NAME_LABEL], "web");
    assert_eq!(labels[MANAGED_BY_LABEL], MANAGED_BY);
    assert!(!labels.contains_key(HEADLESS_LABEL));

    let ep = &slice.endpoints.as_ref().unwrap()[0];
    assert_eq!(ep.node_name.as_deref(), Some("node-0"));
    let target = ep.target_ref.as_ref().unwrap();
    assert_eq!(target.kind.as_deref(), Some("Pod"));
    assert_eq!(target.namespace.as_deref(), Some("shop"));
    assert_eq!(target.name.as_deref(), Some("web-a"));
    let c = ep.conditions.as_ref().unwrap();
    assert_eq!(
        (c.ready, c.serving, c.terminating),
        (Some(true), Some(true), Some(false))
    );
}

#[test]
fn named_target_port_splits_pods_by_resolved_ports() {
    let svc = service(
        "shop",
        "web",
        Some(WEB),
        vec![port(
            None,
            80,
            Some(IntOrString::String("http".into())),
            None,
        )],
    );
    let pods = [
        pod(
            "shop",
            "old-1",
            "10.244.0.3",
            WEB,
            &[("http", 8080, Protocol::Tcp)],
        ),
        pod(
            "shop",
            "new-1",
            "10.244.0.2",
            WEB,
            &[("http", 9090, Protocol::Tcp)],
        ),
        pod(
            "shop",
            "old-2",
            "10.244.1.3",
            WEB,
            &[("http", 8080, Protocol::Tcp)],
        ),
    ];
    let slices = endpoint_slices(&svc, &pods, &none());
    assert_eq!(slices.len(), 2);
    let by_port: BTreeMap<i32, Vec<&str>> = slices
        .iter()
        .map(|s| (s.ports.as_ref().unwrap()[0].port.unwrap(), ips(s)))
        .collect();
    assert_eq!(by_port[&8080], ["10.244.0.3", "10.244.1.3"]);
    assert_eq!(by_port[&9090], ["10.244.0.2"]);
    assert_ne!(slices[0].metadata.name, slices[1].metadata.name);
    // Unnamed service port: name "" as Kubernetes writes it.
    assert_eq!(
        slices[0].ports.as_ref().unwrap()[0].name.as_deref(),
        Some("")
    );
}

#[test]
fn pods_without_the_named_port_are_left_out_of_that_port() {
    let svc = service(
        "shop",
        "web",
        Some(WEB),
        vec![
            port(
                Some("http"),
                80,
                Some(IntOrString::String("http".into())),
                None,
            ),
            port(Some("metrics"), 9100, None, None),
        ],
    );
    let pods = [
        pod(
            "shop",
            "a",
            "10.244.0.2",
            WEB,
            &[("http", 8080, Protocol::Tcp)],
        ),
        // Same name but UDP: does not match a TCP service port.
        pod(
            "shop",
            "b",
            "10.244.0.3",
            WEB,
            &[("http", 8080, Protocol::Udp)],
        ),
        pod("shop", "c", "10.244.0.4", WEB, &[]),
    ];
    let slices = endpoint_slices(&svc, &pods, &none());
    assert_eq!(slices.len(), 2);
    let full = slices
        .iter()
        .find(|s| s.ports.as_ref().unwrap().len() == 2)
        .unwrap();
    let partial = slices
        .iter()
        .find(|s| s.ports.as_ref().unwrap().len() == 1)
        .unwrap();
    assert_eq!(ips(full), ["10.244.0.2"]);
    assert_eq!(ips(partial), ["10.244.0.3", "10.244.0.4"]);
    assert_eq!(
        port_numbers(partial),
        [(Some("metrics"), Some(9100), Some("TCP"))]
    );
}

#[test]
fn no_selector_no_slices() {
    let pods = [pod("shop", "a", "10.244.0.2", WEB, &[])];
    let svc = service("shop", "web", None, vec![port(None, 80, None, None)]);
    assert!(endpoint_slices(&svc, &pods, &none()).is_empty());
    let svc = service("shop", "web", Some(&[]), vec![port(None, 80, None, None)]);
    assert!(endpoint_slices(&svc, &pods, &none()).is_empty());
    let mut svc = service("shop", "web", Some(WEB), vec![]);
    svc.spec.as_mut().unwrap().type_ = Some("ExternalName".into());
    assert!(endpoint_slices(&svc, &pods, &none()).is_empty());
    assert!(endpoint_slices(&Service::default(), &pods, &none()).is_empty());
}

#[test]
fn no_matching_pods_yields_one_empty_slice_with_ports() {
    let svc = service(
        "shop",
        "web",
        Some(WEB),
        vec![
            port(Some("http"), 80, Some(IntOrString::Int(8080)), None),
            port(
                Some("named"),
                81,
                Some(IntOrString::String("x".into())),
                None,
            ),
        ],
    );
    let pods = [pod("shop", "db", "10.244.0.2", &[("app", "db")], &[])];
    let slices = endpoint_slices(&svc, &pods, &none());
    assert_eq!(slices.len(), 1);
    assert_eq!(slices[0].endpoints, Some(vec![]));
    assert_eq!(
        port_numbers(&slices[0]),
        [(Some("http"), Some(8080), Some("TCP"))]
    );
    assert_eq!(
        slices[0].metadata.labels.as_ref().unwrap()[SERVICE_NAME_LABEL],
        "web"
    );
    // Serialized, consumers see an explicit empty list.
    let json = serde_json::to_value(&slices[0]).unwrap();
    assert_eq!(json["endpoints"], serde_json::json!([]));
}

#[test]
fn terminating_pods_are_not_ready_but_serving() {
    let mut svc = service("shop", "web", Some(WEB), vec![port(None, 80, None, None)]);
    let pods = [
        pod("shop", "a", "10.244.0.2", WEB, &[]),
        pod("shop", "b", "10.244.0.3", WEB, &[]),
    ];
    let terminating: BTreeSet<String> = ["shop/b".to_owned()].into();
    let conditions = |slices: &[EndpointSlice]| -> Vec<(Option<bool>, Option<bool>, Option<bool>)> {
        slices[0]
            .endpoints
            .iter()
            .flatten()
            .map(|e| {
                let c = e.conditions.as_ref().unwrap();
                (c.ready, c.serving, c.terminating)
            })
            .collect()
    };
    let slices = endpoint_slices(&svc, &pods, &terminating);
    assert_eq!(slices.len(), 1);
    assert_eq!(
        conditions(&slices),
        [
            (Some(true), Some(true), Some(false)),
            (Some(false), Some(true), Some(true))
        ]
    );
    svc.spec.as_mut().unwrap().publish_not_ready_addresses = Some(true);
    let slices = endpoint_slices(&svc, &pods, &terminating);
    assert_eq!(
        conditions(&slices),
        [
            (Some(true), Some(true), Some(false)),
            (Some(true), Some(true), Some(true))
        ]
    );
}

#[test]
fn selector_does_not_leak_across_namespaces() {
    let svc = service("shop", "web", Some(WEB), vec![port(None, 80, None, None)]);
    let pods = [
        pod("shop", "a", "10.244.0.2", WEB, &[]),
        pod("other", "a", "10.244.0.3", WEB, &[]),
    ];
    let slices = endpoint_slices(&svc, &pods, &none());
    assert_eq!(slices.len(), 1);
    assert_eq!(ips(&slices[0]), ["10.244.0.2"]);

    // A namespace-less Service lives in `default`.
    let mut svc = svc;
    svc.metadata.namespace = None;
    let slices = endpoint_slices(&svc, &pods, &none());
    assert_eq!(slices.len(), 1);
    assert!(ips(&slices[0]).is_empty());
    assert_eq!(slices[0].metadata.namespace.as_deref(), Some("default"));
}

#[test]
fn output_is_deterministic() {
    let svc = service(
        "shop",
        "web",
        Some(WEB),
        vec![port(
            None,
            80,
            Some(IntOrString::String("http".into())),
            None,
        )],
    );
    let mut pods = vec![
        pod(
            "shop",
            "a",
            "10.244.0.2",
            WEB,
            &[("http", 8080, Protocol::Tcp)],
        ),
        pod(
            "shop",
            "b",
            "10.244.0.3",
            WEB,
            &[("http", 9090, Protocol::Tcp)],
        ),
        pod(
            "shop",
            "c",
            "10.244.0.4",
            WEB,
            &[("http", 8080, Protocol::Tcp)],
        ),
    ];
    let first = endpoint_slices(&svc, &pods, &none());
    pods.reverse();
    assert_eq!(endpoint_slices(&svc, &pods, &none()), first);
    // Names depend only on the port list: dropping a pod keeps the other slice's name.
    pods.retain(|p| p.name != "b");
    let after = endpoint_slices(&svc, &pods, &none());
    assert_eq!(after.len(), 1);
    assert!(
        first
            .iter()
            .any(|s| s.metadata.name == after[0].metadata.name)
    );
}

#[test]
fn large_groups_are_split_at_the_slice_limit() {
    let svc = service("shop", "web", Some(WEB), vec![port(None, 80, None, None)]);
    let pods: Vec<PodRecord> = (0..250_u32)
        .map(|i| {
            let ip = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 244, 0, 2)) + i);
            pod("shop", &format!("p{i}"), &ip.to_string(), WEB, &[])
        })
        .collect();
    let slices = endpoint_slices(&svc, &pods, &none());
    let sizes: Vec<usize> = slices
        .iter()
        .map(|s| s.endpoints.as_ref().unwrap().len())
        .collect();
    assert_eq!(sizes.iter().sum::<usize>(), 250);
    assert!(
        sizes.iter().all(|&n| n <= MAX_ENDPOINTS_PER_SLICE),
        "{sizes:?}"
    );
    assert_eq!(slices.len(), 3);
    let names: BTreeSet<_> = slices.iter().map(|s| s.metadata.name.clone()).collect();
    assert_eq!(names.len(), 3);
}

#[test]
fn labels_follow_kubernetes() {
    let mut svc = service("shop", "web", Some(WEB), vec![]);
    svc.metadata.labels = Some(
        [
            ("team".to_owned(), "a".to_owned()),
            (SERVICE_NAME_LABEL.to_owned(), "spoof".to_owned()),
        ]
        .into(),
    );
    svc.metadata.uid = Some("1234".to_owned());
    svc.spec.as_mut().unwrap().cluster_ip = Some("None".to_owned());
    let slices = endpoint_slices(&svc, &[], &none());
    let meta = &slices[0].metadata;
    let labels = meta.labels.as_ref().unwrap();
    assert_eq!(labels["team"], "a");
    assert_eq!(labels[SERVICE_NAME_LABEL], "web");
    assert_eq!(labels[HEADLESS_LABEL], "");
    let owner = &meta.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str(), owner.uid.as_str()),
        ("Service", "web", "1234")
    );
    assert_eq!(slices[0].ports, Some(vec![]));
}

#[test]
fn short_hash_is_stable() {
    assert_eq!(short_hash(""), short_hash(""));
    assert_ne!(short_hash("a"), short_hash("b"));
    assert_eq!(short_hash("x").len(), NAME_HASH_LEN);
    assert!(
        short_hash("x")
            .bytes()
            .all(|b| crate::manifests::ALPHABET.contains(&b))
    );
}
