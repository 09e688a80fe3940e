//! The `ipBlock` entries: excepts carved out, overlapping blocks' ports united, redundant prefixes left
//! out, rules refused whole when an entry would overflow, egress named ports left out.

use std::collections::BTreeMap;

use super::*;
use crate::policy::compile::{ICMP, TCP, UDP};

const POD: Ipv4Addr = Ipv4Addr::new(10, 244, 1, 2);

fn net(text: &str) -> Ipv4Net {
    text.parse().unwrap()
}

fn rule(index: usize, blocks: &[(&str, &[&str])], ports: &[(u8, &[PortSpan])]) -> BlockRule {
    BlockRule {
        subject: POD,
        direction: Direction::Ingress,
        origin: RuleRef {
            policy: "x/p".to_owned(),
            rule: index,
        },
        blocks: blocks
            .iter()
            .map(|(cidr, except)| (net(cidr), except.iter().map(|e| net(e)).collect()))
            .collect(),
        ports: ports
            .iter()
            .map(|(protocol, spans)| (*protocol, spans.to_vec()))
            .collect(),
    }
}

/// The ranges the kernel's lookup finds for a TCP peer at `addr` (none without a match).
fn tcp_ranges(compiled: &CidrCompiled, addr: [u8; 4]) -> Vec<PortSpan> {
    longest_match(
        &compiled.entries,
        (POD, Direction::Ingress, TCP),
        Ipv4Addr::from(addr),
    )
    .map(|v| v.ranges.clone())
    .unwrap_or_default()
}

#[test]
fn an_except_carries_only_the_other_rules_ports() {
    let compiled = compile(&[
        rule(
            0,
            &[("10.0.0.0/8", &["10.1.0.0/16"])],
            &[(TCP, &[(80, 80)])],
        ),
        rule(1, &[("10.1.2.0/24", &[])], &[(TCP, &[(443, 443)])]),
        rule(2, &[("10.0.0.0/8", &[])], &[(UDP, &[(53, 53)])]),
    ]);
    assert!(compiled.refused.is_empty());
    assert_eq!(tcp_ranges(&compiled, [10, 9, 0, 1]), [(80, 80)]);
    assert_eq!(tcp_ranges(&compiled, [10, 1, 9, 1]), []);
    assert_eq!(tcp_ranges(&compiled, [10, 1, 2, 1]), [(443, 443)]);
    assert_eq!(tcp_ranges(&compiled, [11, 0, 0, 1]), []);
    // The except is an entry of its own, with no ports, and names no rule.
    let except = &compiled.entries[&(POD, Direction::Ingress, TCP, net("10.1.0.0/16"))];
    assert_eq!((except.rule.as_ref(), except.ranges.len()), (None, 0));
    // UDP's entries are its own: rule 0's except does not apply to rule 2.
    let udp = longest_match(
        &compiled.entries,
        (POD, Direction::Ingress, UDP),
        Ipv4Addr::new(10, 1, 9, 1),
    );
    assert_eq!(udp.unwrap().ranges, [(53, 53)]);
    assert_eq!(udp.unwrap().rule.as_ref().unwrap().rule, 2);
}

#[test]
fn overlapping_blocks_unite_their_ports_and_redundant_prefixes_are_left_out() {
    let compiled = compile(&[
        rule(0, &[("10.0.0.0/8", &[])], &[(TCP, &[(80, 80)])]),
        rule(1, &[("10.5.0.0/16", &[])], &[(TCP, &[(81, 90)])]),
        rule(2, &[("10.6.0.0/16", &[])], &[(TCP, &[(80, 80)])]),
    ]);
    assert_eq!(tcp_ranges(&compiled, [10, 5, 0, 1]), [(80, 90)], "merged");
    assert_eq!(tcp_ranges(&compiled, [10, 6, 0, 1]), [(80, 80)]);
    let prefixes: Vec<Ipv4Net> = compiled.entries.keys().map(|k| k.3).collect();
    assert_eq!(
        prefixes,
        [net("10.0.0.0/8"), net("10.5.0.0/16")],
        "10.6/16 says what 10/8 says"
    );
}

#[test]
fn a_rule_that_would_overflow_an_entry_is_refused_whole() {
    let many: Vec<PortSpan> = (0..5).map(|i| (1000 + 10 * i, 1000 + 10 * i)).collect();
    let more: Vec<PortSpan> = (0..5).map(|i| (2000 + 10 * i, 2000 + 10 * i)).collect();
    let adjacent: Vec<PortSpan> = (0..20).map(|i| (3000 + i, 3000 + i)).collect();
    let compiled = compile(&[
        rule(0, &[("10.0.0.0/8", &[])], &[(TCP, &many)]),
        rule(
            1,
            &[("10.1.0.0/16", &[])],
            &[(TCP, &more), (UDP, &[(53, 53)])],
        ),
        rule(2, &[("10.2.0.0/16", &[])], &[(TCP, &more[..2])]),
        rule(3, &[("10.0.0.0/8", &[])], &[(TCP, &adjacent)]),
    ]);
    let refused: Vec<usize> = compiled.refused.iter().map(|r| r.rule).collect();
    assert_eq!(
        refused,
        [1],
        "5 + 5 ranges on 10.1/16; 20 adjacent ports are one"
    );
    assert_eq!(
        tcp_ranges(&compiled, [10, 1, 0, 1]).len(),
        6,
        "10/8's: rules 0 and 3"
    );
    assert_eq!(tcp_ranges(&compiled, [10, 2, 0, 1]).len(), 8);
    assert!(
        longest_match(
            &compiled.entries,
            (POD, Direction::Ingress, UDP),
            Ipv4Addr::new(10, 1, 0, 1)
        )
        .is_none(),
        "a refused rule allows no protocol"
    );
    let nine: Vec<PortSpan> = (0..9).map(|i| (100 + 2 * i, 100 + 2 * i)).collect();
    let alone = compile(&[rule(0, &[("0.0.0.0/0", &[])], &[(TCP, &nine)])]);
    assert_eq!(alone.refused.len(), 1);
    assert!(alone.entries.is_empty());
}

#[test]
fn ranges_merge_when_they_overlap_or_touch() {
    assert_eq!(
        merge([(5, 9), (1, 3), (4, 4), (20, 30), (25, 26), (65535, 65535)]),
        [(1, 9), (20, 30), (65535, 65535)]
    );
    assert_eq!(merge([(0, 65535), (7, 7)]), [(0, 65535)]);
}

#[test]
fn named_ports_resolve_on_the_local_pod_for_ingress_and_are_skipped_for_egress() {
    let (pods, _) = strait_k8s::netpol::upstream::model();
    let pod = &pods[0];
    let policy: strait_k8s::netpol::Policy = strait_k8s::netpol::Policy::parse(
        &serde_yaml_ng::from_str(
            "metadata: {name: p, namespace: x}\nspec:\n  podSelector: {}\n  policyTypes: [Ingress, Egress]\n  ingress: [{from: [{ipBlock: {cidr: 0.0.0.0/0}}], ports: [{port: serve-81-tcp}, {port: 82}]}]\n  egress: [{to: [{ipBlock: {cidr: 0.0.0.0/0}}], ports: [{port: serve-81-tcp}, {port: 82}]}]",
        )
        .unwrap(),
    )
    .unwrap();
    let origin = |rule| RuleRef {
        policy: "x/p".to_owned(),
        rule,
    };
    let mut skipped = Vec::new();
    let at = |direction| (pod, pod.ip.unwrap(), direction);
    let rules = |direction| match direction {
        Direction::Ingress => &policy.ingress.as_ref().unwrap()[0],
        Direction::Egress => &policy.egress.as_ref().unwrap()[0],
    };
    let ingress = block_rule(
        at(Direction::Ingress),
        rules(Direction::Ingress),
        &origin(0),
        &mut skipped,
    )
    .unwrap();
    assert_eq!(
        ingress.ports,
        BTreeMap::from([(TCP, vec![(81, 81), (82, 82)])])
    );
    assert!(skipped.is_empty());
    let egress = block_rule(
        at(Direction::Egress),
        rules(Direction::Egress),
        &origin(0),
        &mut skipped,
    )
    .unwrap();
    assert_eq!(egress.ports, BTreeMap::from([(TCP, vec![(82, 82)])]));
    assert_eq!(skipped, [origin(0)]);
    assert_eq!(ingress.blocks, [(net("0.0.0.0/0"), vec![])]);
    // Without ports: every port of TCP, UDP, SCTP and ICMP.
    let open = Rule {
        peers: rules(Direction::Ingress).peers.clone(),
        ports: None,
    };
    let all = block_rule(at(Direction::Ingress), &open, &origin(1), &mut skipped).unwrap();
    assert_eq!(all.ports.len(), 4);
    assert_eq!(all.ports[&ICMP], [(0, u16::MAX)]);
}
