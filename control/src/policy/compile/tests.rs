//! The compiled entries against the specification: on the upstream x/y/z model (every pod local), for
//! each policy set, the lookup the kernel will make gives the evaluator's verdict on every flow between
//! two pods, on ports 80 and 81 over TCP and UDP. (`tables`' tests do the same over the kernel's own
//! key layout, with `ipBlock`s and parties outside the cluster.)

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::NetworkPolicy;
use strait_k8s::netpol::{Flow, Party};

use super::*;
use crate::policy::identity::IDENTITY_WORLD;

fn model() -> (Vec<PolicyPod>, BTreeMap<String, strait_k8s::Labels>) {
    strait_k8s::netpol::upstream::model()
}

/// Policy shapes of the upstream suite.
const CASES: &[&str] = &[
    "",
    "metadata: {name: deny, namespace: x}\nspec: {podSelector: {}, policyTypes: [Ingress]}",
    "metadata: {name: deny-all, namespace: x}\nspec: {podSelector: {}, policyTypes: [Ingress, Egress]}",
    "metadata: {name: from-b, namespace: x}\nspec:\n  podSelector: {matchLabels: {pod: a}}\n  ingress: [{from: [{podSelector: {matchLabels: {pod: b}}}]}]",
    "metadata: {name: and, namespace: x}\nspec:\n  podSelector: {matchLabels: {pod: a}}\n  ingress: [{from: [{namespaceSelector: {matchLabels: {ns: y}}, podSelector: {matchLabels: {pod: b}}}]}]",
    "metadata: {name: or, namespace: x}\nspec:\n  podSelector: {matchLabels: {pod: a}}\n  ingress: [{from: [{namespaceSelector: {matchLabels: {ns: y}}}, {podSelector: {matchLabels: {pod: b}}}]}]",
    "metadata: {name: exprs, namespace: x}\nspec:\n  podSelector: {matchExpressions: [{key: pod, operator: In, values: [a, b]}]}\n  ingress: [{from: [{namespaceSelector: {matchExpressions: [{key: kubernetes.io/metadata.name, operator: NotIn, values: [x, y]}]}}]}]",
    "metadata: {name: named, namespace: x}\nspec:\n  podSelector: {matchLabels: {pod: a}}\n  ingress: [{ports: [{port: serve-81-tcp}]}]",
    "metadata: {name: range, namespace: x}\nspec:\n  podSelector: {}\n  ingress: [{ports: [{port: 81, endPort: 90, protocol: UDP}]}]",
    "metadata: {name: udp, namespace: y}\nspec:\n  podSelector: {}\n  ingress: [{ports: [{protocol: UDP}]}]",
    "metadata: {name: sctp, namespace: x}\nspec:\n  podSelector: {matchLabels: {pod: a}}\n  ingress: [{ports: [{port: 80, protocol: SCTP}]}]",
    "metadata: {name: egress, namespace: x}\nspec:\n  podSelector: {matchLabels: {pod: a}}\n  egress: [{to: [{podSelector: {matchLabels: {pod: b}}}]}]",
    "metadata: {name: egress-named, namespace: z}\nspec:\n  podSelector: {}\n  policyTypes: [Egress]\n  egress: [{ports: [{port: serve-80-udp, protocol: UDP}]}]",
    "metadata: {name: egress-ns, namespace: y}\nspec:\n  podSelector: {matchLabels: {pod: c}}\n  policyTypes: [Egress]\n  egress: [{to: [{namespaceSelector: {matchLabels: {ns: z}}, podSelector: {matchLabels: {pod: a}}}], ports: [{port: 80}]}]",
    "metadata: {name: deny-all, namespace: x}\nspec: {podSelector: {}, ingress: []}\n---\nmetadata: {name: allow-a, namespace: x}\nspec:\n  podSelector: {matchLabels: {pod: a}}\n  ingress: [{}]",
    "metadata: {name: block, namespace: x}\nspec:\n  podSelector: {}\n  ingress: [{from: [{ipBlock: {cidr: 10.244.0.0/16, except: [10.244.2.0/24]}}], ports: [{port: 80}]}]",
    "metadata: {name: mixed, namespace: y}\nspec:\n  podSelector: {matchLabels: {pod: b}}\n  policyTypes: [Egress]\n  egress: [{to: [{ipBlock: {cidr: 10.244.1.0/24, except: [10.244.1.2/32]}}, {podSelector: {matchLabels: {pod: c}}}]}]",
];

fn parse(yaml: &str) -> Vec<Policy> {
    yaml.split("\n---\n")
        .filter(|d| !d.trim().is_empty())
        .map(|doc| Policy::parse(&serde_yaml_ng::from_str::<NetworkPolicy>(doc).unwrap()).unwrap())
        .collect()
}

#[test]
fn the_compiled_lookup_gives_the_specifications_verdict_on_every_flow() {
    let (pods, namespaces) = model();
    let mut cache = IpCache::default();
    for pod in &pods {
        let key = IdentityKey {
            namespace: pod.namespace.clone(),
            labels: pod.labels.clone(),
        };
        cache.set(pod.ip.unwrap(), &key);
    }
    for case in CASES {
        let evaluator = Evaluator::new(parse(case), namespaces.clone());
        let compiled = compile(&evaluator, &pods, &pods, &cache);
        assert!(compiled.skipped.is_empty() && compiled.refused.is_empty());
        let mut wrong = Vec::new();
        for from in &pods {
            for to in pods.iter().filter(|t| t.key() != from.key()) {
                for port in [80, 81] {
                    for protocol in [Protocol::Tcp, Protocol::Udp] {
                        let flow = Flow {
                            from: Party::Pod(from),
                            to: Party::Pod(to),
                            port,
                            protocol,
                        };
                        let (src, dst) = (from.ip.unwrap(), to.ip.unwrap());
                        let number = protocol_number(protocol);
                        let compiled_verdict = compiled.allows(
                            (src, Direction::Egress),
                            number,
                            (cache.identity(dst), dst),
                            port,
                        ) && compiled.allows(
                            (dst, Direction::Ingress),
                            number,
                            (cache.identity(src), src),
                            port,
                        );
                        if compiled_verdict != evaluator.verdict(&flow).allowed() {
                            wrong.push(format!(
                                "{} -> {} {port}/{}",
                                from.key(),
                                to.key(),
                                protocol.name()
                            ));
                        }
                    }
                }
            }
        }
        assert!(wrong.is_empty(), "{case}\nwrong cells: {wrong:?}");
    }
}

#[test]
fn a_port_range_becomes_the_prefixes_that_cover_it_exactly() {
    assert_eq!(port_prefixes(80, 80), [(80, 16)]);
    assert_eq!(port_prefixes(0, 65535), [(0, 0)]);
    assert_eq!(
        port_prefixes(81, 90),
        [(81, 16), (82, 15), (84, 14), (88, 15), (90, 16)]
    );
    for (first, last) in [(1, 1000), (1024, 65535), (30000, 32767), (5, 6)] {
        let mut covered = 0u32;
        for (port, prefix) in port_prefixes(first, last) {
            let size = 1u32 << (16 - u32::from(prefix));
            assert_eq!(u32::from(port) % size, 0, "aligned");
            assert!(u32::from(port) >= u32::from(first));
            assert!(u32::from(port) + size - 1 <= u32::from(last));
            covered += size;
        }
        assert_eq!(
            covered,
            u32::from(last) - u32::from(first) + 1,
            "{first}-{last}"
        );
    }
}

#[test]
fn a_rule_without_ports_allows_icmp_too_and_ip_blocks_get_address_entries() {
    let (pods, namespaces) = model();
    let policies = parse(
        "metadata: {name: block, namespace: x}\nspec:\n  podSelector: {matchLabels: {pod: a}}\n  ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/8}}, {podSelector: {}}]}]",
    );
    let evaluator = Evaluator::new(policies, namespaces.clone());
    let mut cache = IpCache::default();
    for pod in &pods {
        let key = IdentityKey {
            namespace: pod.namespace.clone(),
            labels: pod.labels.clone(),
        };
        cache.set(pod.ip.unwrap(), &key);
    }
    let compiled = compile(&evaluator, &pods, &pods, &cache);
    let a = Ipv4Addr::new(10, 244, 1, 2);
    let b = Ipv4Addr::new(10, 244, 1, 3);
    assert!(compiled.isolated.contains(&(a, Direction::Ingress)));
    assert!(compiled.skipped.is_empty() && compiled.refused.is_empty());
    let icmp = AllowKey {
        subject: a,
        direction: Direction::Ingress,
        protocol: ICMP,
        peer: cache.identity(b),
        port: 0,
        port_prefix: 0,
    };
    assert!(compiled.allow.contains_key(&icmp), "{:?}", compiled.allow);
    let block = (
        a,
        Direction::Ingress,
        ICMP,
        "10.0.0.0/8".parse::<ipnet::Ipv4Net>().unwrap(),
    );
    assert_eq!(compiled.cidr[&block].ranges, [(0, u16::MAX)]);
    let outside = Ipv4Addr::new(10, 9, 9, 9);
    assert!(compiled.allows((a, Direction::Ingress), ICMP, (IDENTITY_WORLD, outside), 0));
    assert!(compiled.allows((a, Direction::Ingress), SCTP, (IDENTITY_WORLD, outside), 9));
    assert!(!compiled.allows(
        (a, Direction::Ingress),
        TCP,
        (IDENTITY_WORLD, Ipv4Addr::new(192, 168, 0, 1)),
        80
    ));
}
