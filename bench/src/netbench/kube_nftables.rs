//! kube-proxy's nftables mode, reproduced for netbench's baseline: turns a set of [`Frontend`]s into an
//! `nft -f` script with the structure of kube-proxy's `pkg/proxy/nftables/proxier.go` — one
//! `table ip kube-proxy` with its base chains, the `services` chain dispatching through the
//! `service-ips` / `service-nodeports` verdict maps, per service port `service-*` and `external-*`
//! chains balancing with `numgen random mod N vmap`, per endpoint `endpoint-*` chains doing the DNAT,
//! the `mark-for-masquerade` / `masquerading` chains, and the `no-endpoint-*` verdict maps that reject
//! traffic to services without endpoints.
//!
//! Like kube-proxy, the script touches only its own table: it starts with `add table` + `delete table`,
//! so it loads the same way into a fresh namespace and over a previous run. The configuration, result
//! type, hashing and endpoint order are shared with [`super::kube_iptables`] (in [`super::kube_common`]).

use std::fmt::{self, Write as _};

use super::{
    catalog::{Backend, Frontend},
    kube_common::{KubeProxyConfig, Ruleset, hash8, kube_endpoint_order},
};

/// knftables' `NameLengthMax` minus kube-proxy's `chainNamePrefixLengthMax`: the longest chain-name
/// base `hashAndTruncate` returns.
const CHAIN_NAME_BASE_MAX: usize = 256 - 16;

/// kube-proxy's `hashAndTruncate`: `HASH-name`, HASH the first 8 base32 characters of sha256(name),
/// cut to [`CHAIN_NAME_BASE_MAX`] with a `...` tail.
fn hash_and_truncate(name: &str) -> String {
    let hash = hash8(name);
    let mut out = String::with_capacity(hash.len() + 1 + name.len());
    out.push_str(std::str::from_utf8(&hash).unwrap_or_default());
    out.push('-');
    out.push_str(name);
    if out.len() > CHAIN_NAME_BASE_MAX {
        let mut cut = CHAIN_NAME_BASE_MAX - 3;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push_str("...");
    }
    out
}

/// kube-proxy's `servicePortChainNameBase`: `HASH-namespace/name/protocol/port`.
fn service_base(frontend: &Frontend) -> String {
    hash_and_truncate(&format!(
        "{}/{}/{}/{}",
        frontend.namespace,
        frontend.name,
        frontend.protocol.lower(),
        frontend.port_name
    ))
}

/// The `service-*` chain of a frontend (its Cluster traffic policy chain).
pub fn service_chain(frontend: &Frontend) -> String {
    format!("service-{}", service_base(frontend))
}

/// The `external-*` chain of a frontend (NodePort traffic).
pub fn external_chain(frontend: &Frontend) -> String {
    format!("external-{}", service_base(frontend))
}

/// The `endpoint-*` chain of one endpoint of a frontend (kube-proxy's
/// `servicePortEndpointChainNameBase`: `HASH-namespace/name/protocol/port__ip/port`).
pub fn endpoint_chain(frontend: &Frontend, backend: &Backend) -> String {
    let base = hash_and_truncate(&format!(
        "{}/{}/{}/{}__{}/{}",
        frontend.namespace,
        frontend.name,
        frontend.protocol.lower(),
        frontend.port_name,
        backend.ip,
        backend.port
    ));
    format!("endpoint-{base}")
}

/// The script being written, with its rule and element count.
struct Script {
    text: String,
    rules: usize,
}

impl Script {
    /// `add <object> ip kube-proxy <args>`.
    fn add(&mut self, object: &str, args: fmt::Arguments<'_>) {
        self.text.push_str("add ");
        self.text.push_str(object);
        self.text.push_str(" ip kube-proxy ");
        let _ = self.text.write_fmt(args);
        self.text.push('\n');
        if object == "rule" || object == "element" {
            self.rules += 1;
        }
    }

    fn chain(&mut self, name: &str) {
        self.add("chain", format_args!("{name}"));
    }

    fn rule(&mut self, chain: &str, rule: fmt::Arguments<'_>) {
        self.add("rule", format_args!("{chain} {rule}"));
    }
}

/// kube-proxy's base chains: name, type, hook, priority (`dstnat-10` = -110, `filter` = 0,
/// `dstnat` = -100, `srcnat` = 100; written as numbers, which every nft accepts on every hook).
const BASE_CHAINS: [(&str, &str, &str, i32); 8] = [
    ("filter-prerouting-pre-dnat", "filter", "prerouting", -110),
    ("filter-output-pre-dnat", "filter", "output", -110),
    ("filter-input", "filter", "input", 0),
    ("filter-forward", "filter", "forward", 0),
    ("filter-output", "filter", "output", 0),
    ("nat-prerouting", "nat", "prerouting", -100),
    ("nat-output", "nat", "output", -100),
    ("nat-postrouting", "nat", "postrouting", 100),
];

/// kube-proxy's `nftablesJumpChains`: destination, source base chain, match.
const JUMP_CHAINS: [(&str, &str, &str); 11] = [
    ("nodeport-endpoints-check", "filter-input", "ct state new "),
    ("service-endpoints-check", "filter-input", "ct state new "),
    ("service-endpoints-check", "filter-forward", "ct state new "),
    ("service-endpoints-check", "filter-output", "ct state new "),
    (
        "firewall-check",
        "filter-prerouting-pre-dnat",
        "ct state new ",
    ),
    ("firewall-check", "filter-output-pre-dnat", "ct state new "),
    ("services", "nat-output", ""),
    ("services", "nat-prerouting", ""),
    ("masquerading", "nat-postrouting", ""),
    ("cluster-ips-check", "filter-forward", "ct state new "),
    ("cluster-ips-check", "filter-output", "ct state new "),
];

/// The table-wide part kube-proxy writes on a full sync (`setupNFTables`), with NodePorts accepted on
/// every local address but loopback (`--nodeport-addresses` matching all).
fn write_setup(out: &mut Script, mark: &str) {
    const VMAP: &str = "ipv4_addr . inet_proto . inet_service : verdict";
    const PORT_VMAP: &str = "inet_proto . inet_service : verdict";
    out.text
        .push_str("add table ip kube-proxy\ndelete table ip kube-proxy\n");
    out.text
        .push_str("add table ip kube-proxy { comment \"rules for kube-proxy\" ; }\n");
    for (name, kind, hook, priority) in BASE_CHAINS {
        out.add(
            "chain",
            format_args!("{name} {{ type {kind} hook {hook} priority {priority} ; }}"),
        );
    }
    let mut created: Vec<&str> = Vec::new();
    for (dst, src, matches) in JUMP_CHAINS {
        if !created.contains(&dst) {
            out.chain(dst);
            created.push(dst);
        }
        out.rule(src, format_args!("{matches}jump {dst}"));
    }
    out.chain("mark-for-masquerade");
    out.rule(
        "mark-for-masquerade",
        format_args!("mark set mark or {mark}"),
    );
    out.rule("masquerading", format_args!("mark and {mark} == 0 return"));
    out.rule("masquerading", format_args!("mark set mark xor {mark}"));
    out.rule("masquerading", format_args!("masquerade fully-random"));

    out.add(
        "set",
        format_args!("cluster-ips {{ type ipv4_addr ; comment \"Active ClusterIPs\" ; }}"),
    );
    out.rule(
        "cluster-ips-check",
        format_args!(
            "ip daddr @cluster-ips reject comment \"Reject traffic to invalid ports of ClusterIPs\""
        ),
    );

    out.add("map", format_args!("no-endpoint-services {{ type {VMAP} ; comment \"vmap to drop or reject packets to services with no endpoints\" ; }}"));
    out.add("map", format_args!("no-endpoint-nodeports {{ type {PORT_VMAP} ; comment \"vmap to drop or reject packets to service nodeports with no endpoints\" ; }}"));
    out.add(
        "chain",
        format_args!(
            "reject-chain {{ comment \"helper for @no-endpoint-services / @no-endpoint-nodeports\" ; }}"
        ),
    );
    out.rule("reject-chain", format_args!("reject"));
    out.rule(
        "service-endpoints-check",
        format_args!("ip daddr . meta l4proto . th dport vmap @no-endpoint-services"),
    );
    out.rule(
        "nodeport-endpoints-check",
        format_args!("ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @no-endpoint-nodeports"),
    );

    out.add("map", format_args!("firewall-ips {{ type {VMAP} ; comment \"destinations that are subject to LoadBalancerSourceRanges\" ; }}"));
    out.rule(
        "firewall-check",
        format_args!("ip daddr . meta l4proto . th dport vmap @firewall-ips"),
    );

    out.add(
        "map",
        format_args!(
            "service-ips {{ type {VMAP} ; comment \"ClusterIP, ExternalIP and LoadBalancer IP traffic\" ; }}"
        ),
    );
    out.add(
        "map",
        format_args!("service-nodeports {{ type {PORT_VMAP} ; comment \"NodePort traffic\" ; }}"),
    );
    out.rule(
        "services",
        format_args!("ip daddr . meta l4proto . th dport vmap @service-ips"),
    );
    out.rule("services", format_args!("fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @service-nodeports"));
}

/// The `nft -f` script kube-proxy's nftables mode amounts to for `frontends` (in their order).
pub fn nft_ruleset(frontends: &[Frontend], config: &KubeProxyConfig) -> Ruleset {
    let mark = config.masquerade_mark();
    let cidr = config.cluster_cidr.as_str();
    let mut out = Script {
        text: String::with_capacity(4096 + frontends.len() * 2048),
        rules: 0,
    };
    write_setup(&mut out, &mark);

    let mut vmap = String::new();
    for frontend in frontends {
        let name = frontend.service_port_name();
        let p = frontend.protocol.lower();
        let (ip, port) = (frontend.cluster_ip, frontend.port);
        if frontend.backends.is_empty() {
            out.add("element", format_args!("cluster-ips {{ {ip} }}"));
            out.add("element", format_args!("no-endpoint-services {{ {ip} . {p} . {port} comment \"{name}\" : goto reject-chain }}"));
            if let Some(node_port) = frontend.node_port {
                out.add("element", format_args!("no-endpoint-nodeports {{ {p} . {node_port} comment \"{name}\" : goto reject-chain }}"));
            }
            continue;
        }
        let endpoints = kube_endpoint_order(frontend);
        let endpoint_chains: Vec<String> = endpoints
            .iter()
            .map(|ep| endpoint_chain(frontend, ep))
            .collect();
        for chain in &endpoint_chains {
            out.chain(chain);
        }
        let base = service_base(frontend);
        let svc = format!("service-{base}");
        let ext = format!("external-{base}");
        out.chain(&svc);
        if frontend.node_port.is_some() {
            out.chain(&ext);
        }
        out.add("element", format_args!("cluster-ips {{ {ip} }}"));
        out.add(
            "element",
            format_args!("service-ips {{ {ip} . {p} . {port} : goto {svc} }}"),
        );
        if let Some(node_port) = frontend.node_port {
            out.add(
                "element",
                format_args!("service-nodeports {{ {p} . {node_port} : goto {ext} }}"),
            );
        }
        if !cidr.is_empty() {
            out.rule(
                &svc,
                format_args!("ip daddr {ip} ip saddr != {cidr} jump mark-for-masquerade"),
            );
        }
        if frontend.node_port.is_some() {
            out.rule(&ext, format_args!("jump mark-for-masquerade"));
            out.rule(&ext, format_args!("goto {svc}"));
        }
        vmap.clear();
        for (i, chain) in endpoint_chains.iter().enumerate() {
            let sep = if i == 0 { "" } else { " ," };
            let _ = write!(vmap, "{sep} {i} : goto {chain}");
        }
        let n = endpoints.len();
        out.rule(&svc, format_args!("numgen random mod {n} vmap {{{vmap} }}"));
        for (ep, chain) in endpoints.iter().zip(&endpoint_chains) {
            let ep_ip = ep.ip;
            out.rule(
                chain,
                format_args!("ip saddr {ep_ip} jump mark-for-masquerade"),
            );
            out.rule(chain, format_args!("meta l4proto {p} dnat to {ep}"));
        }
    }
    Ruleset {
        text: out.text,
        rules: out.rules,
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::netbench::catalog::Protocol;

    fn frontend(ns: &str, name: &str, backends: &[[u8; 4]]) -> Frontend {
        Frontend {
            namespace: ns.to_owned(),
            name: name.to_owned(),
            port_name: "p80".to_owned(),
            protocol: Protocol::Tcp,
            cluster_ip: Ipv4Addr::new(10, 96, 0, 10),
            port: 80,
            node_port: None,
            backends: backends
                .iter()
                .map(|ip| Backend {
                    ip: Ipv4Addr::from(*ip),
                    port: 80,
                })
                .collect(),
        }
    }

    /// Pairs from kube-proxy's own expected dumps (`TestOverallNFTablesRules` in
    /// `pkg/proxy/nftables/proxier_test.go`).
    #[test]
    fn chain_names_match_kube_proxy() {
        for (ns, name, hash, endpoints) in [
            (
                "ns1",
                "svc1",
                "ULMVA6XW",
                &[([10, 180, 0, 1], "5OJB2KTY")][..],
            ),
            ("ns2", "svc2", "42NFTM6N", &[([10, 180, 0, 2], "SGOXE6O3")]),
            ("ns3", "svc3", "4AT6LBPK", &[([10, 180, 0, 3], "UEIP74TE")]),
            (
                "ns4",
                "svc4",
                "LAUZTJTB",
                &[([10, 180, 0, 4], "UNZV3OEC"), ([10, 180, 0, 5], "5RFCDDV7")],
            ),
            ("ns5", "svc5", "HVFWP5L3", &[([10, 180, 0, 3], "GTK6MW7G")]),
        ] {
            let ips: Vec<[u8; 4]> = endpoints.iter().map(|(ip, _)| *ip).collect();
            let f = frontend(ns, name, &ips);
            assert_eq!(
                service_chain(&f),
                format!("service-{hash}-{ns}/{name}/tcp/p80")
            );
            assert_eq!(
                external_chain(&f),
                format!("external-{hash}-{ns}/{name}/tcp/p80")
            );
            for (backend, (ip, ep_hash)) in f.backends.iter().zip(endpoints) {
                let ip = Ipv4Addr::from(*ip);
                assert_eq!(
                    endpoint_chain(&f, backend),
                    format!("endpoint-{ep_hash}-{ns}/{name}/tcp/p80__{ip}/80")
                );
            }
        }
    }

    #[test]
    fn overlong_names_are_truncated_like_kube_proxy() {
        let long = "x".repeat(300);
        let base = hash_and_truncate(&long);
        assert_eq!(base.len(), CHAIN_NAME_BASE_MAX);
        assert!(base.ends_with("..."));
        assert_eq!(base.as_bytes()[8], b'-');
    }

    /// A NodePort service with three endpoints and a ClusterIP service with none.
    fn small_case() -> Vec<Frontend> {
        let mut web = frontend(
            "ns1",
            "web",
            &[[10, 244, 1, 3], [10, 244, 2, 3], [10, 244, 1, 4]],
        );
        web.node_port = Some(30080);
        let mut empty = frontend("ns1", "empty", &[]);
        empty.cluster_ip = Ipv4Addr::new(10, 96, 0, 11);
        vec![web, empty]
    }

    /// The script's `add rule` lines for `chain`, without the prefix.
    fn rules<'a>(text: &'a str, chain: &str) -> Vec<&'a str> {
        let prefix = format!("add rule ip kube-proxy {chain} ");
        text.lines()
            .filter_map(|l| l.strip_prefix(prefix.as_str()))
            .collect()
    }

    fn elements<'a>(text: &'a str, set: &str) -> Vec<&'a str> {
        let prefix = format!("add element ip kube-proxy {set} ");
        text.lines()
            .filter_map(|l| l.strip_prefix(prefix.as_str()))
            .collect()
    }

    #[test]
    fn small_case_adds_every_chain_before_using_it() {
        let ruleset = nft_ruleset(&small_case(), &KubeProxyConfig::default());
        let text = ruleset.text.as_str();
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("add table ip kube-proxy"));
        assert_eq!(lines.next(), Some("delete table ip kube-proxy"));
        assert_eq!(
            ruleset.rules,
            text.lines()
                .filter(|l| l.starts_with("add rule ") || l.starts_with("add element "))
                .count()
        );

        // Every chain is added before anything jumps to it, and everything is in our table.
        let mut chains: Vec<&str> = Vec::new();
        for line in text.lines() {
            assert!(line.contains(" ip kube-proxy"), "{line}");
            if let Some(rest) = line.strip_prefix("add chain ip kube-proxy ") {
                chains.push(rest.split(' ').next().unwrap());
            }
            for verb in ["jump ", "goto "] {
                for (_, after) in line
                    .match_indices(verb)
                    .map(|(i, _)| line.split_at(i + verb.len()))
                {
                    let target = after.split([' ', '}']).next().unwrap();
                    assert!(
                        chains.contains(&target),
                        "{target} used before it is added: {line}"
                    );
                }
            }
        }
    }

    #[test]
    fn small_case_table_setup_is_kube_proxys() {
        let text = &nft_ruleset(&small_case(), &KubeProxyConfig::default()).text;
        for (name, kind, hook, priority) in [
            ("filter-prerouting-pre-dnat", "filter", "prerouting", -110),
            ("filter-input", "filter", "input", 0),
            ("nat-prerouting", "nat", "prerouting", -100),
            ("nat-output", "nat", "output", -100),
            ("nat-postrouting", "nat", "postrouting", 100),
        ] {
            let line = format!(
                "add chain ip kube-proxy {name} {{ type {kind} hook {hook} priority {priority} ; }}"
            );
            assert!(text.lines().any(|l| l == line), "{line}");
        }
        assert_eq!(rules(text, "nat-prerouting"), ["jump services"]);
        assert_eq!(rules(text, "nat-output"), ["jump services"]);
        assert_eq!(rules(text, "nat-postrouting"), ["jump masquerading"]);
        assert_eq!(
            rules(text, "services"),
            [
                "ip daddr . meta l4proto . th dport vmap @service-ips",
                "fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @service-nodeports",
            ]
        );
        assert_eq!(
            rules(text, "mark-for-masquerade"),
            ["mark set mark or 0x00004000"]
        );
        assert_eq!(
            rules(text, "masquerading"),
            [
                "mark and 0x00004000 == 0 return",
                "mark set mark xor 0x00004000",
                "masquerade fully-random",
            ]
        );
    }

    #[test]
    fn small_case_services_are_kube_proxys() {
        let frontends = small_case();
        let text = &nft_ruleset(&frontends, &KubeProxyConfig::default()).text;
        let web = &frontends[0];
        let (svc, ext) = (service_chain(web), external_chain(web));
        let order = [[10, 244, 1, 3], [10, 244, 1, 4], [10, 244, 2, 3]];
        let endpoints: Vec<String> = order
            .iter()
            .map(|ip| {
                endpoint_chain(
                    web,
                    &Backend {
                        ip: Ipv4Addr::from(*ip),
                        port: 80,
                    },
                )
            })
            .collect();
        assert_eq!(
            elements(text, "cluster-ips"),
            ["{ 10.96.0.10 }", "{ 10.96.0.11 }"]
        );
        assert_eq!(
            elements(text, "service-ips"),
            [format!("{{ 10.96.0.10 . tcp . 80 : goto {svc} }}")]
        );
        assert_eq!(
            elements(text, "service-nodeports"),
            [format!("{{ tcp . 30080 : goto {ext} }}")]
        );
        assert_eq!(
            rules(text, &svc),
            [
                "ip daddr 10.96.0.10 ip saddr != 10.244.0.0/16 jump mark-for-masquerade".to_owned(),
                format!(
                    "numgen random mod 3 vmap {{ 0 : goto {} , 1 : goto {} , 2 : goto {} }}",
                    endpoints[0], endpoints[1], endpoints[2]
                ),
            ]
        );
        assert_eq!(
            rules(text, &ext),
            ["jump mark-for-masquerade".to_owned(), format!("goto {svc}")]
        );
        for (chain, ip) in endpoints.iter().zip(order) {
            let ip = Ipv4Addr::from(ip);
            assert_eq!(
                rules(text, chain),
                [
                    format!("ip saddr {ip} jump mark-for-masquerade"),
                    format!("meta l4proto tcp dnat to {ip}:80"),
                ]
            );
        }

        // The service without endpoints: rejected through the no-endpoint verdict map, no chains.
        assert_eq!(
            elements(text, "no-endpoint-services"),
            ["{ 10.96.0.11 . tcp . 80 comment \"ns1/empty:p80\" : goto reject-chain }"]
        );
        assert!(elements(text, "no-endpoint-nodeports").is_empty());
        assert_eq!(rules(text, "reject-chain"), ["reject"]);
        assert!(!text.contains(&service_chain(&frontends[1])));
    }

    #[test]
    fn the_target_position_moves_elements_of_a_verdict_map_and_nothing_else() {
        use crate::netbench::catalog::{Catalog, TargetPosition};
        let script = |position| {
            let catalog = Catalog::new(
                Ipv4Addr::new(10, 96, 0, 10),
                &[Ipv4Addr::new(10, 244, 1, 3)],
                6,
                3,
                position,
            );
            nft_ruleset(&catalog.frontends(), &KubeProxyConfig::default()).text
        };
        let (first, last) = (script(TargetPosition::First), script(TargetPosition::Last));
        assert_ne!(first, last, "the objects come in another order");
        let sorted = |text: &str| {
            let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
            lines.sort();
            lines
        };
        // The same statements: the target's `service-ips` element is looked up by hash wherever it
        // stands, so in nftables mode the position costs nothing.
        assert_eq!(sorted(&first), sorted(&last));
        let target = "10.96.0.10 . tcp . 80";
        let index = |text: &str| {
            elements(text, "service-ips")
                .iter()
                .position(|e| e.contains(target))
        };
        assert_eq!(index(&first), Some(0));
        assert_eq!(index(&last), Some(6));
    }
}
