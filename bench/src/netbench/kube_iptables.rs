//! kube-proxy's iptables mode, reproduced for netbench's baseline: turns a set of [`Frontend`]s into the
//! `iptables-restore` input (filter and nat tables) with the rule structure of upstream kube-proxy
//! (`pkg/proxy/iptables/proxier.go`): the jumps from the built-in chains, `KUBE-SERVICES`,
//! `KUBE-NODEPORTS`, `KUBE-EXT-*`, `KUBE-SVC-*` with `statistic` load balancing, `KUBE-SEP-*` with the
//! DNAT, masquerading through `KUBE-MARK-MASQ`/`KUBE-POSTROUTING`, and the filter-table `REJECT`s of
//! services without endpoints. The configuration and result type live in [`super::kube_common`] and are
//! re-exported here.
//!
//! The text is meant for a fresh network namespace: plain `iptables-restore` flushes the two tables
//! first. kube-proxy itself restores with `--noflush` and installs the built-in-chain jumps with
//! separate `iptables -I` calls; here they are `-A` lines in the order those calls leave them.

use std::{fmt, fmt::Write as _};

pub use super::kube_common::{KubeProxyConfig, Ruleset, base32_std};
use super::{
    catalog::{Backend, Frontend},
    kube_common::{kube_endpoint_order, port_proto_hash, write_service_port_name},
};

/// Above this many endpoints in all, kube-proxy drops the per-endpoint comments
/// (`largeClusterEndpointsThreshold`).
const LARGE_CLUSTER_ENDPOINTS_THRESHOLD: usize = 1000;

/// An iptables chain name: a `KUBE-XXX-` prefix and a 16-character hash, formatted without allocating.
#[derive(Clone, Copy)]
struct Chain {
    prefix: &'static str,
    hash: [u8; 16],
}

impl fmt::Display for Chain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.prefix)?;
        f.write_str(std::str::from_utf8(&self.hash).unwrap_or_default())
    }
}

/// The `KUBE-SVC-*` chain of a frontend (kube-proxy's `servicePortPolicyClusterChain`).
pub fn svc_chain(frontend: &Frontend) -> String {
    Chain {
        prefix: "KUBE-SVC-",
        hash: port_proto_hash(frontend, None),
    }
    .to_string()
}

/// The `KUBE-EXT-*` chain of a frontend (kube-proxy's `serviceExternalChainName`).
pub fn ext_chain(frontend: &Frontend) -> String {
    Chain {
        prefix: "KUBE-EXT-",
        hash: port_proto_hash(frontend, None),
    }
    .to_string()
}

/// The `KUBE-SEP-*` chain of one endpoint of a frontend (kube-proxy's `servicePortEndpointChainName`).
pub fn sep_chain(frontend: &Frontend, backend: &Backend) -> String {
    Chain {
        prefix: "KUBE-SEP-",
        hash: port_proto_hash(frontend, Some(backend)),
    }
    .to_string()
}

/// kube-proxy's `computeProbability`: `1/n` formatted as Go's `%0.10f` (both round the exact binary
/// value half-to-even, so the digits agree).
pub fn probability(n: usize) -> String {
    #[allow(clippy::cast_precision_loss)] // n is an endpoint count, far below 2^52
    let value = 1.0 / n as f64;
    format!("{value:.10}")
}

/// One table's text: chain declarations, then rules, counted.
#[derive(Default)]
struct Table {
    chains: String,
    rules: String,
    count: usize,
}

impl Table {
    fn chain(&mut self, chain: impl fmt::Display) {
        let _ = writeln!(self.chains, ":{chain} - [0:0]");
    }

    fn rule(&mut self, args: fmt::Arguments<'_>) {
        self.rules.push_str("-A ");
        let _ = self.rules.write_fmt(args);
        self.rules.push('\n');
        self.count += 1;
    }
}

/// The `iptables-restore` input kube-proxy's iptables mode writes for `frontends` (in their order),
/// with the jumps from the built-in chains that it installs around the restore.
pub fn iptables_restore(frontends: &[Frontend], config: &KubeProxyConfig) -> Ruleset {
    let mark = config.masquerade_mark();
    let total_endpoints: usize = frontends.iter().map(|f| f.backends.len()).sum();
    // kube-proxy's largeClusterMode: no comments on the per-endpoint rules.
    let comments = total_endpoints <= LARGE_CLUSTER_ENDPOINTS_THRESHOLD;
    let most_endpoints = frontends
        .iter()
        .map(|f| f.backends.len())
        .max()
        .unwrap_or(0);
    let probabilities: Vec<String> = (0..=most_endpoints).map(probability).collect();

    let mut filter = Table::default();
    let mut nat = Table {
        chains: String::with_capacity(frontends.len() * 128),
        rules: String::with_capacity(frontends.len() * 1024),
        count: 0,
    };
    for chain in [
        "KUBE-SERVICES",
        "KUBE-EXTERNAL-SERVICES",
        "KUBE-FORWARD",
        "KUBE-NODEPORTS",
        "KUBE-PROXY-FIREWALL",
        "KUBE-FIREWALL",
    ] {
        filter.chain(chain);
    }
    for chain in [
        "KUBE-SERVICES",
        "KUBE-NODEPORTS",
        "KUBE-POSTROUTING",
        "KUBE-MARK-MASQ",
    ] {
        nat.chain(chain);
    }
    write_builtin_jumps(&mut filter, &mut nat);

    nat.rule(format_args!(
        "KUBE-POSTROUTING -m mark ! --mark {mark}/{mark} -j RETURN"
    ));
    nat.rule(format_args!("KUBE-POSTROUTING -j MARK --xor-mark {mark}"));
    nat.rule(format_args!("KUBE-POSTROUTING -m comment --comment \"kubernetes service traffic requiring SNAT\" -j MASQUERADE --random-fully"));
    nat.rule(format_args!("KUBE-MARK-MASQ -j MARK --or-mark {mark}"));
    // kube-proxy's copy of kubelet's anti-martian rule (written when localhost NodePorts are on, the
    // default).
    filter.rule(format_args!("KUBE-FIREWALL -m comment --comment \"block incoming localnet connections\" -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP"));

    let services = Services {
        cidr: &config.cluster_cidr,
        comments,
        probabilities: &probabilities,
    };
    let mut name = String::new();
    for frontend in frontends {
        name.clear();
        write_service_port_name(&mut name, frontend);
        services.write(frontend, &name, &mut filter, &mut nat);
    }

    nat.rule(format_args!("KUBE-SERVICES -m comment --comment \"kubernetes service nodeports; NOTE: this must be the last rule in this chain\" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS"));
    filter.rule(format_args!(
        "KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP"
    ));
    filter.rule(format_args!("KUBE-FORWARD -m comment --comment \"kubernetes forwarding rules\" -m mark --mark {mark}/{mark} -j ACCEPT"));
    filter.rule(format_args!("KUBE-FORWARD -m comment --comment \"kubernetes forwarding conntrack rule\" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"));

    let mut text = String::with_capacity(
        filter.chains.len() + filter.rules.len() + nat.chains.len() + nat.rules.len() + 32,
    );
    for (header, table) in [("*filter\n", &filter), ("*nat\n", &nat)] {
        text.push_str(header);
        text.push_str(&table.chains);
        text.push_str(&table.rules);
        text.push_str("COMMIT\n");
    }
    Ruleset {
        text,
        rules: filter.count + nat.count,
    }
}

/// What the per-service rules depend on besides the frontend.
struct Services<'a> {
    cidr: &'a str,
    /// Comments on the per-endpoint rules (off in kube-proxy's large-cluster mode).
    comments: bool,
    /// `probability(n)` by `n`.
    probabilities: &'a [String],
}

impl Services<'_> {
    /// One frontend's rules, in kube-proxy's order; `name` is its `ServicePortName` string.
    fn write(&self, frontend: &Frontend, name: &str, filter: &mut Table, nat: &mut Table) {
        let p = frontend.protocol.lower();
        let (ip, port, cidr) = (frontend.cluster_ip, frontend.port, self.cidr);
        if frontend.backends.is_empty() {
            filter.rule(format_args!("KUBE-SERVICES -m comment --comment \"{name} has no endpoints\" -m {p} -p {p} -d {ip} --dport {port} -j REJECT"));
            if let Some(node_port) = frontend.node_port {
                filter.rule(format_args!("KUBE-EXTERNAL-SERVICES -m comment --comment \"{name} has no endpoints\" -m addrtype --dst-type LOCAL -m {p} -p {p} --dport {node_port} -j REJECT"));
            }
            return;
        }
        let hash = port_proto_hash(frontend, None);
        let svc = Chain {
            prefix: "KUBE-SVC-",
            hash,
        };
        let ext = Chain {
            prefix: "KUBE-EXT-",
            hash,
        };
        nat.rule(format_args!("KUBE-SERVICES -m comment --comment \"{name} cluster IP\" -m {p} -p {p} -d {ip} --dport {port} -j {svc}"));
        if let Some(node_port) = frontend.node_port {
            nat.rule(format_args!(
                "KUBE-NODEPORTS -m comment --comment {name} -m {p} -p {p} --dport {node_port} -j {ext}"
            ));
        }
        if !cidr.is_empty() {
            nat.rule(format_args!("{svc} -m comment --comment \"{name} cluster IP\" -m {p} -p {p} -d {ip} --dport {port} ! -s {cidr} -j KUBE-MARK-MASQ"));
        }
        if frontend.node_port.is_some() {
            nat.chain(ext);
            nat.rule(format_args!("{ext} -m comment --comment \"masquerade traffic for {name} external destinations\" -j KUBE-MARK-MASQ"));
            nat.rule(format_args!("{ext} -j {svc}"));
        }
        nat.chain(svc);
        let endpoints = kube_endpoint_order(frontend);
        let seps: Vec<Chain> = endpoints
            .iter()
            .map(|ep| Chain {
                prefix: "KUBE-SEP-",
                hash: port_proto_hash(frontend, Some(ep)),
            })
            .collect();
        let n = endpoints.len();
        for (i, (ep, sep)) in endpoints.iter().zip(&seps).enumerate() {
            let comment = Comment {
                on: self.comments,
                name,
                endpoint: Some(ep),
            };
            if i + 1 < n {
                let probability = &self.probabilities[n - i];
                nat.rule(format_args!(
                    "{svc}{comment} -m statistic --mode random --probability {probability} -j {sep}"
                ));
            } else {
                nat.rule(format_args!("{svc}{comment} -j {sep}"));
            }
        }
        let comment = Comment {
            on: self.comments,
            name,
            endpoint: None,
        };
        for (ep, sep) in endpoints.iter().zip(&seps) {
            nat.chain(sep);
            let ep_ip = ep.ip;
            nat.rule(format_args!("{sep}{comment} -s {ep_ip} -j KUBE-MARK-MASQ"));
            nat.rule(format_args!(
                "{sep}{comment} -m {p} -p {p} -j DNAT --to-destination {ep}"
            ));
        }
    }
}

/// The comment of a per-endpoint rule: ` -m comment --comment "NAME -> IP:PORT"` on the `KUBE-SVC-*`
/// rules, ` -m comment --comment NAME` on the `KUBE-SEP-*` ones, nothing in large-cluster mode.
struct Comment<'a> {
    on: bool,
    name: &'a str,
    endpoint: Option<&'a Backend>,
}

impl fmt::Display for Comment<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.on, self.endpoint) {
            (false, _) => Ok(()),
            (true, Some(ep)) => write!(f, " -m comment --comment \"{} -> {ep}\"", self.name),
            (true, None) => write!(f, " -m comment --comment {}", self.name),
        }
    }
}

/// The jumps from the built-in chains, in the order kube-proxy's `iptablesJumpChains` (each prepended
/// with `iptables -I`) leave them after kubelet installed its `KUBE-FIREWALL` jumps.
fn write_builtin_jumps(filter: &mut Table, nat: &mut Table) {
    const NEW: &str = "-m conntrack --ctstate NEW ";
    const FIREWALL: &str =
        "-m comment --comment \"kubernetes load balancer firewall\" -j KUBE-PROXY-FIREWALL";
    const EXTERNAL: &str = "-m comment --comment \"kubernetes externally-visible service portals\" -j KUBE-EXTERNAL-SERVICES";
    const PORTALS: &str = "-m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES";
    filter.rule(format_args!("INPUT {NEW}{FIREWALL}"));
    filter.rule(format_args!(
        "INPUT -m comment --comment \"kubernetes health check service ports\" -j KUBE-NODEPORTS"
    ));
    filter.rule(format_args!("INPUT {NEW}{EXTERNAL}"));
    filter.rule(format_args!("INPUT -j KUBE-FIREWALL"));
    filter.rule(format_args!("FORWARD {NEW}{FIREWALL}"));
    filter.rule(format_args!(
        "FORWARD -m comment --comment \"kubernetes forwarding rules\" -j KUBE-FORWARD"
    ));
    filter.rule(format_args!("FORWARD {NEW}{PORTALS}"));
    filter.rule(format_args!("FORWARD {NEW}{EXTERNAL}"));
    filter.rule(format_args!("OUTPUT {NEW}{FIREWALL}"));
    filter.rule(format_args!("OUTPUT {NEW}{PORTALS}"));
    filter.rule(format_args!("OUTPUT -j KUBE-FIREWALL"));
    nat.rule(format_args!("PREROUTING {PORTALS}"));
    nat.rule(format_args!("OUTPUT {PORTALS}"));
    nat.rule(format_args!(
        "POSTROUTING -m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING"
    ));
}

#[cfg(test)]
mod tests {
    use std::{collections::BTreeMap, net::Ipv4Addr};

    use super::*;
    use crate::netbench::catalog::Protocol;

    fn backend(ip: [u8; 4], port: u16) -> Backend {
        Backend {
            ip: Ipv4Addr::from(ip),
            port,
        }
    }

    fn frontend(ns: &str, name: &str, port_name: &str, backends: Vec<Backend>) -> Frontend {
        Frontend {
            namespace: ns.to_owned(),
            name: name.to_owned(),
            port_name: port_name.to_owned(),
            protocol: Protocol::Tcp,
            cluster_ip: Ipv4Addr::new(10, 96, 0, 10),
            port: 80,
            node_port: None,
            backends,
        }
    }

    /// Pairs from kube-proxy's own expected dumps (`TestOverallIPTablesRules` in
    /// `pkg/proxy/iptables/proxier_test.go`).
    #[test]
    fn chain_names_match_kube_proxy() {
        for (service, svc, endpoints) in [
            (
                "svc1",
                "XPGD46QRK7WJZT7O",
                &[([10, 180, 0, 1], "SXIVWICOYRO3J4NJ")][..],
            ),
            (
                "svc2",
                "GNZBNJ2PO5MGZ6GT",
                &[([10, 180, 0, 2], "RS4RBKLTHTF2IUXJ")],
            ),
            (
                "svc3",
                "X27LE4BHSL4DOUIK",
                &[([10, 180, 0, 3], "OYPFS5VJICHGATKP")],
            ),
            (
                "svc4",
                "4SW47YFZTEDKD3PK",
                &[
                    ([10, 180, 0, 4], "UKSFD7AGPMPPLUHC"),
                    ([10, 180, 0, 5], "C6EBXVWJJZMIWKLZ"),
                ],
            ),
            (
                "svc5",
                "NUKIZ6OKUXPJNT4C",
                &[([10, 180, 0, 3], "I77PXRDZVX7PMWMN")],
            ),
        ] {
            let ns = format!("ns{}", &service[3..]);
            let f = frontend(&ns, service, "p80", Vec::new());
            assert_eq!(svc_chain(&f), format!("KUBE-SVC-{svc}"));
            assert_eq!(ext_chain(&f), format!("KUBE-EXT-{svc}"));
            for (ip, sep) in endpoints {
                assert_eq!(sep_chain(&f, &backend(*ip, 80)), format!("KUBE-SEP-{sep}"));
            }
        }
    }

    #[test]
    fn probabilities_are_formatted_like_go() {
        assert_eq!(probability(3), "0.3333333333");
        assert_eq!(probability(2), "0.5000000000");
        assert_eq!(probability(1), "1.0000000000");
        assert_eq!(probability(7), "0.1428571429");
        // An exact tie: Go's strconv rounds half to even, and so does Rust.
        assert_eq!(probability(2048), "0.0004882812");
    }

    /// The two frontends of the structure tests: a NodePort service with three endpoints and a
    /// ClusterIP service with none.
    fn small_case() -> Vec<Frontend> {
        let mut web = frontend(
            "ns1",
            "web",
            "http",
            vec![
                backend([10, 244, 1, 3], 8080),
                backend([10, 244, 2, 3], 8080),
                backend([10, 244, 1, 4], 8080),
            ],
        );
        web.node_port = Some(30080);
        let mut empty = frontend("ns1", "empty", "p80", Vec::new());
        empty.cluster_ip = Ipv4Addr::new(10, 96, 0, 11);
        vec![web, empty]
    }

    /// `-A` rules of each table, by chain, in order; and the declared chains of each table.
    type Tables = BTreeMap<String, (Vec<String>, BTreeMap<String, Vec<String>>)>;

    fn parse(text: &str) -> Tables {
        let mut tables = Tables::new();
        let mut current = String::new();
        for line in text.lines() {
            if let Some(table) = line.strip_prefix('*') {
                current = table.to_owned();
                tables.entry(current.clone()).or_default();
            } else if let Some(chain) = line.strip_prefix(':') {
                let name = chain.split(' ').next().unwrap().to_owned();
                tables.get_mut(&current).unwrap().0.push(name);
            } else if let Some(rule) = line.strip_prefix("-A ") {
                let (chain, rest) = rule.split_once(' ').unwrap();
                let table = tables.get_mut(&current).unwrap();
                table
                    .1
                    .entry(chain.to_owned())
                    .or_default()
                    .push(rest.to_owned());
            } else {
                assert_eq!(line, "COMMIT", "unexpected line");
            }
        }
        tables
    }

    /// The target of each rule (what follows `-j`).
    fn targets(rules: &[String]) -> Vec<String> {
        rules
            .iter()
            .map(|r| r.rsplit_once("-j ").unwrap().1.to_owned())
            .collect()
    }

    #[test]
    fn small_case_declares_every_chain_it_uses() {
        let ruleset = iptables_restore(&small_case(), &KubeProxyConfig::default());
        let text = &ruleset.text;
        assert_eq!(
            ruleset.rules,
            text.lines().filter(|l| l.starts_with("-A ")).count()
        );
        let tables = parse(text);
        assert_eq!(tables.keys().collect::<Vec<_>>(), ["filter", "nat"]);
        let builtin = ["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"];
        for (declared, rules) in tables.values() {
            for (chain, chain_rules) in rules {
                assert!(
                    builtin.contains(&chain.as_str()) || declared.contains(chain),
                    "{chain} used but not declared"
                );
                for rule in chain_rules {
                    let target = rule
                        .rsplit_once("-j ")
                        .unwrap()
                        .1
                        .split(' ')
                        .next()
                        .unwrap();
                    if target.starts_with("KUBE-") {
                        assert!(declared.iter().any(|d| d == target), "{target}");
                    }
                }
            }
        }
    }

    #[test]
    fn small_case_filter_table_has_kube_proxys_structure() {
        let tables = parse(&iptables_restore(&small_case(), &KubeProxyConfig::default()).text);
        let (filter_chains, filter) = &tables["filter"];
        for chain in [
            "KUBE-SERVICES",
            "KUBE-EXTERNAL-SERVICES",
            "KUBE-FORWARD",
            "KUBE-NODEPORTS",
            "KUBE-PROXY-FIREWALL",
        ] {
            assert!(filter_chains.iter().any(|c| c == chain), "{chain}");
        }
        assert_eq!(
            targets(&filter["INPUT"]),
            [
                "KUBE-PROXY-FIREWALL",
                "KUBE-NODEPORTS",
                "KUBE-EXTERNAL-SERVICES",
                "KUBE-FIREWALL"
            ]
        );
        assert_eq!(
            targets(&filter["FORWARD"]),
            [
                "KUBE-PROXY-FIREWALL",
                "KUBE-FORWARD",
                "KUBE-SERVICES",
                "KUBE-EXTERNAL-SERVICES"
            ]
        );
        assert_eq!(
            targets(&filter["OUTPUT"]),
            ["KUBE-PROXY-FIREWALL", "KUBE-SERVICES", "KUBE-FIREWALL"]
        );
        assert_eq!(
            filter["KUBE-SERVICES"],
            [
                "-m comment --comment \"ns1/empty:p80 has no endpoints\" -m tcp -p tcp -d 10.96.0.11 --dport 80 -j REJECT"
            ]
        );
        assert!(!filter.contains_key("KUBE-EXTERNAL-SERVICES"));
        assert_eq!(filter["KUBE-FORWARD"].len(), 3);
    }

    #[test]
    fn small_case_nat_table_has_kube_proxys_structure() {
        let frontends = small_case();
        let text = iptables_restore(&frontends, &KubeProxyConfig::default()).text;
        let tables = parse(&text);
        let (nat_chains, nat) = &tables["nat"];
        let web = &frontends[0];
        let (svc, ext) = (svc_chain(web), ext_chain(web));
        assert_eq!(targets(&nat["PREROUTING"]), ["KUBE-SERVICES"]);
        assert_eq!(targets(&nat["OUTPUT"]), ["KUBE-SERVICES"]);
        assert_eq!(targets(&nat["POSTROUTING"]), ["KUBE-POSTROUTING"]);
        assert_eq!(nat["KUBE-MARK-MASQ"], ["-j MARK --or-mark 0x00004000"]);
        assert_eq!(
            nat["KUBE-POSTROUTING"],
            [
                "-m mark ! --mark 0x00004000/0x00004000 -j RETURN",
                "-j MARK --xor-mark 0x00004000",
                "-m comment --comment \"kubernetes service traffic requiring SNAT\" -j MASQUERADE --random-fully",
            ]
        );
        assert_eq!(
            nat["KUBE-SERVICES"],
            [
                format!("-m comment --comment \"ns1/web:http cluster IP\" -m tcp -p tcp -d 10.96.0.10 --dport 80 -j {svc}"),
                "-m comment --comment \"kubernetes service nodeports; NOTE: this must be the last rule in this chain\" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS".to_owned(),
            ]
        );
        assert_eq!(
            nat["KUBE-NODEPORTS"],
            [format!(
                "-m comment --comment ns1/web:http -m tcp -p tcp --dport 30080 -j {ext}"
            )]
        );
        assert_eq!(
            nat[&ext],
            [
                "-m comment --comment \"masquerade traffic for ns1/web:http external destinations\" -j KUBE-MARK-MASQ".to_owned(),
                format!("-j {svc}"),
            ]
        );
        let order = ["10.244.1.3:8080", "10.244.1.4:8080", "10.244.2.3:8080"];
        let seps: Vec<String> = kube_endpoint_order(web)
            .iter()
            .map(|b| sep_chain(web, b))
            .collect();
        assert_eq!(
            nat[&svc],
            [
                "-m comment --comment \"ns1/web:http cluster IP\" -m tcp -p tcp -d 10.96.0.10 --dport 80 ! -s 10.244.0.0/16 -j KUBE-MARK-MASQ".to_owned(),
                format!("-m comment --comment \"ns1/web:http -> {}\" -m statistic --mode random --probability 0.3333333333 -j {}", order[0], seps[0]),
                format!("-m comment --comment \"ns1/web:http -> {}\" -m statistic --mode random --probability 0.5000000000 -j {}", order[1], seps[1]),
                format!("-m comment --comment \"ns1/web:http -> {}\" -j {}", order[2], seps[2]),
            ]
        );
        for (sep, ep) in seps.iter().zip(order) {
            let ip = ep.split(':').next().unwrap();
            assert_eq!(
                nat[sep],
                [
                    format!("-m comment --comment ns1/web:http -s {ip} -j KUBE-MARK-MASQ"),
                    format!(
                        "-m comment --comment ns1/web:http -m tcp -p tcp -j DNAT --to-destination {ep}"
                    ),
                ]
            );
        }
        // The service without endpoints has no nat chains and no nat rules.
        let empty_svc = svc_chain(&frontends[1]);
        assert!(!nat_chains.contains(&empty_svc));
        assert!(!text.contains("ns1/empty:p80 cluster IP"));
    }

    #[test]
    fn large_clusters_drop_the_endpoint_comments() {
        let frontends: Vec<Frontend> = (0..=LARGE_CLUSTER_ENDPOINTS_THRESHOLD / 2)
            .map(|i| {
                let i = u8::try_from(i % 250).unwrap();
                frontend(
                    "ns",
                    &format!("svc{i}"),
                    "",
                    vec![backend([10, 1, 0, i], 80), backend([10, 2, 0, i], 80)],
                )
            })
            .collect();
        let text = iptables_restore(&frontends, &KubeProxyConfig::default()).text;
        let sep_rules: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("-A KUBE-SEP-") || l.contains("-j KUBE-SEP-"))
            .collect();
        assert!(!sep_rules.is_empty());
        assert!(
            sep_rules.iter().all(|l| !l.contains("--comment")),
            "{sep_rules:?}"
        );
        // The cluster IP rules keep theirs.
        assert!(text.contains("\"ns/svc0 cluster IP\""));
    }

    #[test]
    fn empty_cluster_cidr_writes_no_masquerade_rule() {
        let config = KubeProxyConfig {
            cluster_cidr: String::new(),
            ..KubeProxyConfig::default()
        };
        let text = iptables_restore(&small_case(), &config).text;
        assert!(text.contains("-A KUBE-SVC-"));
        assert!(
            !text
                .lines()
                .any(|l| l.ends_with("-j KUBE-MARK-MASQ") && l.contains("! -s "))
        );
    }

    #[test]
    fn the_targets_jump_lands_at_the_requested_index_of_kube_services() {
        use crate::netbench::catalog::{Catalog, TARGET_NAME, TargetPosition};
        let fillers = 6;
        for (position, index) in [
            (TargetPosition::First, 0),
            (TargetPosition::Middle, 3),
            (TargetPosition::Last, 6),
        ] {
            let catalog = Catalog::new(
                Ipv4Addr::new(10, 96, 0, 10),
                &[Ipv4Addr::new(10, 244, 1, 3)],
                fillers,
                3,
                position,
            );
            let frontends = catalog.frontends();
            let target = frontends.iter().find(|f| f.name == TARGET_NAME).unwrap();
            let text = iptables_restore(&frontends, &KubeProxyConfig::default()).text;
            let services = targets(&parse(&text)["nat"].1["KUBE-SERVICES"]);
            // One jump per filler, two for the target (TCP, UDP), then the node ports.
            assert_eq!(services.len(), fillers + 3, "{services:?}");
            assert_eq!(
                services.iter().position(|t| *t == svc_chain(target)),
                Some(index),
                "{position:?}: {services:?}"
            );
            assert_eq!(services.last().map(String::as_str), Some("KUBE-NODEPORTS"));
        }
    }
}
