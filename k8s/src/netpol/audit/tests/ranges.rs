//! `ipBlock`s over the pod, service and node ranges: exactly how much of each range the block leaves
//! after its `except`s, with nodes from Node objects and from `--node-cidr`.

use ipnet::Ipv4Net;

use super::{cluster, found, messages};
use crate::netpol::{
    audit::{
        ClusterRanges, FindingKind, audit,
        ranges::{Coverage, coverage},
    },
    rules::IpBlock,
};

fn block(cidr: &str, except: &[&str]) -> IpBlock {
    IpBlock {
        cidr: cidr.parse().unwrap(),
        except: except.iter().map(|e| e.parse().unwrap()).collect(),
    }
}

#[test]
fn coverage_is_exact_with_excepts() {
    let pods: Ipv4Net = "10.244.0.0/16".parse().unwrap();
    let cases = [
        (block("0.0.0.0/0", &[]), Coverage::All),
        (block("10.244.0.0/16", &[]), Coverage::All),
        (block("10.244.1.0/24", &[]), Coverage::Part),
        (block("10.0.0.0/8", &["10.244.3.0/24"]), Coverage::Part),
        (block("0.0.0.0/0", &["10.0.0.0/8"]), Coverage::Nothing),
        (
            block("10.244.0.0/16", &["10.244.0.0/17", "10.244.128.0/17"]),
            Coverage::Nothing,
        ),
        (block("192.168.0.0/16", &[]), Coverage::Nothing),
        (block("::/0", &[]), Coverage::Nothing),
    ];
    for (block, expected) in cases {
        assert_eq!(coverage(&block, pods), expected, "{block:?}");
    }
}

#[test]
fn ip_blocks_over_the_pod_service_and_node_ranges() {
    let yaml = "apiVersion: v1
kind: Node
metadata: {name: node-1}
status: {addresses: [{type: InternalIP, address: 192.168.0.10}, {type: Hostname, address: node-1}]}
---
apiVersion: v1
kind: Pod
metadata: {name: api}
spec: {containers: [{name: c, image: i}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: cluster-wide}
spec:
  podSelector: {}
  ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/8}}]}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: internet}
spec:
  podSelector: {}
  egress:
  - to: [{ipBlock: {cidr: 0.0.0.0/0, except: [10.244.0.0/16]}}]
  - to: [{ipBlock: {cidr: 10.244.1.0/24}}, {ipBlock: {cidr: 172.16.0.0/12}}]
";
    let ranges = ClusterRanges {
        nodes: vec!["172.20.0.0/24".parse().unwrap()],
        ..ClusterRanges::default()
    };
    let report = audit(&cluster(yaml), &ranges);
    assert_eq!(
        found(&report),
        [
            ("ip-block-covers-pod-range", "default/cluster-wide"),
            ("ip-block-covers-pod-range", "default/internet"),
            ("ip-block-covers-service-range", "default/cluster-wide"),
            ("ip-block-covers-service-range", "default/internet"),
            ("ip-block-covers-node-range", "default/internet"),
            ("ip-block-covers-node-range", "default/internet"),
        ]
    );
    let message = |kind| messages(&report, kind).join("\n");
    assert_eq!(
        message(FindingKind::IpBlockCoversPodRange),
        "ingress rule 0 from[0]: ipBlock 10.0.0.0/8 covers all of the pod range 10.244.0.0/16: it \
         takes in pods by their addresses, which change as pods come and go; select pods with \
         podSelector/namespaceSelector (ipBlock is meant for addresses outside the cluster)\n\
         egress rule 1 to[0]: ipBlock 10.244.1.0/24 covers part of the pod range 10.244.0.0/16: it \
         takes in pods by their addresses, which change as pods come and go; select pods with \
         podSelector/namespaceSelector (ipBlock is meant for addresses outside the cluster)"
    );
    let nodes = message(FindingKind::IpBlockCoversNodeRange);
    assert!(
        nodes.starts_with(
            "egress rule 0 to[0]: ipBlock 0.0.0.0/0 except 10.244.0.0/16 covers all of the node \
             range 172.20.0.0/24, node address 192.168.0.10: "
        ),
        "{nodes}"
    );
    assert!(
        nodes.contains("egress rule 1 to[1]: ipBlock 172.16.0.0/12 covers all of the node range"),
        "{nodes}"
    );
    assert!(
        message(FindingKind::IpBlockCoversServiceRange)
            .contains("egress rule 0 to[0]: ipBlock 0.0.0.0/0 except 10.244.0.0/16 covers all of the service range 10.96.0.0/12")
    );
    assert!(
        report
            .findings
            .iter()
            .any(|f| f.kind.severity() == super::Severity::Info)
    );
}
