//! The baseline's rules: what kube-router's network policy controller (iptables mode, IPv4, default
//! settings: no `--netpol-default-deny`) writes on a node for the sweep's policies, generated from
//! its own layout (`pkg/controllers/netpol`: `npc_iptables.go`, `policy.go`, `pod.go`,
//! `utils/ipset.go`) as netbench's kube-proxy baseline is from kube-proxy's.
//!
//! A full sync, as kube-router runs one on every change:
//! - every policy of the cluster gets a chain `KUBE-NWPLCY-<hash>` and an ipset of the pods it selects
//!   (`KUBE-DST-<hash>` for ingress, `KUBE-SRC-<hash>` for egress); each rule with matching peer pods
//!   an ipset of their addresses, each `ipBlock` a `hash:net` set; each (rule, port) two iptables rules:
//!   `-m set src -m set dst -p P --dport N -j MARK --set-xmark 0x10000/0x10000`, then the same `-m mark
//!   --mark 0x10000/0x10000 -j RETURN`. A rule whose peers match no pod writes nothing.
//! - every pod on the node gets a chain `KUBE-POD-FW-<hash>`: the common chain (INVALID dropped,
//!   RELATED/ESTABLISHED accepted, three ICMP types accepted), the node's own traffic accepted, a jump
//!   to each policy selecting the pod (else to `KUBE-NWPLCY-DEFAULT`, which marks 0x10000), then
//!   NFLOG and REJECT of what no policy marked, and the 0x20000 "netpol ok" mark.
//! - `KUBE-ROUTER-INPUT/FORWARD/OUTPUT` (jumped to first from the built-in chains) send traffic to or
//!   from each local pod through its chain, then to `KUBE-NWPLCY-TAIL` and an explicit ACCEPT of the
//!   0x20000 mark.
//!
//! Chain names carry the sync's version (kube-router's start time), so each sync writes new chains and
//! drops the old ones; sets are filled through a temporary set and `swap` (`ipset restore -exist`); the
//! filter table is read with `iptables-save` and written back whole with `iptables-restore` ([`merge`]).

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt::Write as _,
    net::Ipv4Addr,
};

use sha2::{Digest, Sha256};

use super::manifest::{Labels, Peer, PolicySpec, Rule};
use crate::netbench::kube_common::base32_chars;

/// kube-router's defaults the rules depend on.
pub const SERVICE_CIDR: &str = "10.96.0.0/12";
pub const NODE_PORT_RANGE: &str = "30000:32767";

const POD_FW_PREFIX: &str = "KUBE-POD-FW-";
const POLICY_PREFIX: &str = "KUBE-NWPLCY-";
const INPUT: &str = "KUBE-ROUTER-INPUT";
const FORWARD: &str = "KUBE-ROUTER-FORWARD";
const OUTPUT: &str = "KUBE-ROUTER-OUTPUT";
const DEFAULT: &str = "KUBE-NWPLCY-DEFAULT";
const COMMON: &str = "KUBE-NWPLCY-COMMON";
const TAIL: &str = "KUBE-NWPLCY-TAIL";
/// kube-router's top-level chains and the built-in chain each is jumped to from.
const TOP: [(&str, &str); 3] = [("INPUT", INPUT), ("FORWARD", FORWARD), ("OUTPUT", OUTPUT)];
/// The options of every set kube-router creates, by type.
const HASH_IP: &str = "hash:ip family inet hashsize 1024 maxelem 65536 timeout 0";
const HASH_NET: &str = "hash:net family inet hashsize 1024 maxelem 65536 timeout 0";

/// A pod as kube-router sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pod {
    pub namespace: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub ip: Ipv4Addr,
}

/// The cluster's pods and namespaces (each namespace's labels include
/// `kubernetes.io/metadata.name`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cluster {
    pub pods: Vec<Pod>,
    pub namespaces: BTreeMap<String, BTreeMap<String, String>>,
}

fn matches(selector: &Labels, labels: &BTreeMap<String, String>) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

impl Cluster {
    /// The pods `spec` selects (its namespace, its pod selector).
    fn targets(&self, spec: &PolicySpec) -> Vec<&Pod> {
        self.pods
            .iter()
            .filter(|p| p.namespace == spec.namespace && matches(&spec.pod_selector, &p.labels))
            .collect()
    }

    /// kube-router's `evalPodPeer`: the pods a peer of `spec` matches.
    fn peer_pods(&self, spec: &PolicySpec, peer: &Peer) -> Vec<&Pod> {
        let Peer::Pods { namespaces, pods } = peer else {
            return Vec::new();
        };
        let pod_matches = |p: &Pod| pods.as_ref().is_none_or(|s| matches(s, &p.labels));
        self.pods
            .iter()
            .filter(|p| match namespaces {
                Some(selector) => self
                    .namespaces
                    .get(&p.namespace)
                    .is_some_and(|labels| matches(selector, labels)),
                None => pods.is_some() && p.namespace == spec.namespace,
            })
            .filter(|p| pod_matches(p))
            .collect()
    }
}

/// The first 16 base32 characters of sha256(`text`), as kube-router names its chains and sets.
fn hash16(text: &str) -> String {
    let chars: [u8; 16] = base32_chars(&Sha256::digest(text.as_bytes()));
    chars.iter().map(|&c| char::from(c)).collect()
}

/// `KUBE-POD-FW-…` of a pod in sync `version`.
pub fn pod_chain(pod: &Pod, version: &str) -> String {
    format!(
        "{POD_FW_PREFIX}{}",
        hash16(&format!("{}{}{version}", pod.namespace, pod.name))
    )
}

/// `KUBE-NWPLCY-…` of a policy in sync `version`.
pub fn policy_chain(spec: &PolicySpec, version: &str) -> String {
    format!(
        "{POLICY_PREFIX}{}",
        hash16(&format!("{}{}{version}IPv4", spec.namespace, spec.name))
    )
}

fn set_name(prefix: &str, text: &str) -> String {
    format!("{prefix}{}", hash16(text))
}

/// One node's sync: the `ipset restore` input and kube-router's part of the filter table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeSync {
    /// `ipset restore -exist` input (temporary set per type, `swap`, then destroyed).
    pub ipsets: String,
    /// Sets the sync keeps.
    pub sets: usize,
    /// Chain declarations (`:NAME - [0:0]`) of kube-router's chains.
    pub chains: Vec<String>,
    /// Rules (`-A`/`-I` lines) of kube-router's chains, and the jumps into them.
    pub rules: Vec<String>,
}

/// Sets by name: (options, entries).
type Sets = BTreeMap<String, (&'static str, Vec<String>)>;

/// The two rules kube-router writes for one (rule, port): mark, then return on the mark.
fn mark_and_return(
    out: &mut Vec<String>,
    chain: &str,
    comment: &str,
    (src, dst): (Option<&str>, Option<&str>),
    rule: &Rule,
) {
    let mut args = format!("-A {chain} -m comment --comment \"{comment}\"");
    if let Some(src) = src {
        let _ = write!(args, " -m set --match-set {src} src");
    }
    if let Some(dst) = dst {
        let _ = write!(args, " -m set --match-set {dst} dst");
    }
    let _ = write!(args, " -p {} --dport {}", rule.protocol, rule.port);
    out.push(format!("{args} -j MARK --set-xmark 0x10000/0x10000"));
    out.push(format!("{args} -m mark --mark 0x10000/0x10000 -j RETURN"));
}

/// One policy's chain, sets and rules (`syncNetworkPolicyChains`, `processIngressRules`,
/// `processEgressRules`, for the sweep's rule shapes: peers with one numeric port each).
fn policy_rules(
    cluster: &Cluster,
    spec: &PolicySpec,
    version: &str,
    sets: &mut Sets,
) -> Vec<String> {
    let chain = policy_chain(spec, version);
    let key = format!("{}{}", spec.namespace, spec.name);
    let targets: Vec<String> = cluster
        .targets(spec)
        .iter()
        .map(|p| p.ip.to_string())
        .collect();
    let mut out = Vec::new();
    let directions = [
        ("ingress", "KUBE-DST-", "KUBE-SRC-", &spec.ingress),
        ("egress", "KUBE-SRC-", "KUBE-DST-", &spec.egress),
    ];
    for (direction, target_prefix, peer_prefix, rules) in directions {
        if direction == "egress" && !spec.has_egress() {
            continue;
        }
        let target_set = set_name(target_prefix, &format!("{key}IPv4"));
        sets.insert(target_set.clone(), (HASH_IP, targets.clone()));
        for (index, rule) in rules.iter().enumerate() {
            let peer_ips: BTreeSet<String> = rule
                .peers
                .iter()
                .flat_map(|peer| cluster.peer_pods(spec, peer))
                .map(|p| p.ip.to_string())
                .collect();
            let blocks: Vec<String> = rule
                .peers
                .iter()
                .filter_map(|peer| match peer {
                    Peer::Block(cidr) => Some(cidr.clone()),
                    Peer::Pods { .. } => None,
                })
                .collect();
            let ends = |peer_set: &str| -> (Option<String>, Option<String>) {
                if direction == "ingress" {
                    (Some(peer_set.to_owned()), Some(target_set.clone()))
                } else {
                    (Some(target_set.clone()), Some(peer_set.to_owned()))
                }
            };
            let rule_key = format!("{key}{direction}rule{index}IPv4");
            if !peer_ips.is_empty() {
                let peer_set = set_name(peer_prefix, &format!("{rule_key}pod"));
                sets.insert(peer_set.clone(), (HASH_IP, peer_ips.into_iter().collect()));
                let (src, dst) = ends(&peer_set);
                let comment = format!("{}/{} {direction} pods", spec.namespace, spec.name);
                mark_and_return(
                    &mut out,
                    &chain,
                    &comment,
                    (src.as_deref(), dst.as_deref()),
                    rule,
                );
            }
            if !blocks.is_empty() {
                let block_set = set_name(peer_prefix, &format!("{rule_key}ipblock"));
                sets.insert(block_set.clone(), (HASH_NET, blocks));
                let (src, dst) = ends(&block_set);
                let comment = format!("{}/{} {direction} cidr", spec.namespace, spec.name);
                mark_and_return(
                    &mut out,
                    &chain,
                    &comment,
                    (src.as_deref(), dst.as_deref()),
                    rule,
                );
            }
        }
    }
    out
}

/// A local pod's chain (`syncPodFirewallChains`, `setupPodNetpolRules`) and the top-level jumps into
/// it (`interceptPodInboundTraffic`, `interceptPodOutboundTraffic`), as `(chain rules, top rules)`.
fn pod_rules(
    cluster: &Cluster,
    pod: &Pod,
    specs: &[&PolicySpec],
    version: &str,
) -> (Vec<String>, Vec<String>) {
    let chain = pod_chain(pod, version);
    let ip = pod.ip;
    let mut rules = Vec::new();
    let (mut ingress, mut egress) = (false, false);
    for spec in specs {
        if !cluster.targets(spec).iter().any(|p| p.ip == ip) {
            continue;
        }
        ingress = true;
        let direction = if spec.has_egress() {
            egress = true;
            String::new()
        } else {
            format!("-d {ip} ")
        };
        rules.push(format!(
            "-I {chain} 1 {direction}-m comment --comment \"{}/{} policy\" -j {}",
            spec.namespace,
            spec.name,
            policy_chain(spec, version)
        ));
    }
    if !ingress {
        rules.push(format!(
            "-I {chain} 1 -d {ip} -m comment --comment \"default ingress\" -j {DEFAULT}"
        ));
    }
    if !egress {
        rules.push(format!(
            "-I {chain} 1 -s {ip} -m comment --comment \"default egress\" -j {DEFAULT}"
        ));
    }
    rules.push(format!(
        "-I {chain} 1 -m comment --comment \"from local node\" -m addrtype --src-type LOCAL -d {ip} -j ACCEPT"
    ));
    rules.push(format!(
        "-I {chain} 1 -m comment --comment \"common netpol rules\" -j {COMMON}"
    ));
    let id = format!("{}/{}", pod.namespace, pod.name);
    rules.push(format!(
        "-A {chain} -m comment --comment \"{id} log-drop\" -m mark ! --mark 0x10000/0x10000 -j NFLOG --nflog-group 100 -m limit --limit 10/minute --limit-burst 10"
    ));
    rules.push(format!(
        "-A {chain} -m comment --comment \"{id} reject\" -m mark ! --mark 0x10000/0x10000 -j REJECT"
    ));
    rules.push(format!("-A {chain} -j MARK --set-mark 0/0x10000"));
    rules.push(format!(
        "-A {chain} -m comment --comment \"set netpol-ok mark\" -j MARK --set-mark 0x20000/0x20000"
    ));
    let top = vec![
        format!("-A {FORWARD} -m comment --comment \"{id} in\" -d {ip} -j {chain}"),
        format!("-A {OUTPUT} -m comment --comment \"{id} in\" -d {ip} -j {chain}"),
        format!(
            "-A {FORWARD} -m physdev --physdev-is-bridged -m comment --comment \"{id} in\" -d {ip} -j {chain}"
        ),
        format!("-A {INPUT} -m comment --comment \"{id} out\" -s {ip} -j {chain}"),
        format!("-A {FORWARD} -m comment --comment \"{id} out\" -s {ip} -j {chain}"),
        format!("-A {OUTPUT} -m comment --comment \"{id} out\" -s {ip} -j {chain}"),
        format!(
            "-A {FORWARD} -m physdev --physdev-is-bridged -m comment --comment \"{id} out\" -s {ip} -j {chain}"
        ),
    ];
    (rules, top)
}

/// The rule kube-router positions with a uuid comment (`ensureTopLevelChains`): the first 16
/// base32 characters of sha256(chain + the rule's arguments) appended to its comment.
fn with_uuid(chain: &str, before: &str, comment: &str, after: &str) -> String {
    let uuid = hash16(&format!(
        "{chain}{}",
        format!("{before}-m comment --comment {comment}{after}").replace(' ', "")
    ));
    format!("{before}-m comment --comment \"{comment} - {uuid}\"{after}")
}

/// The chains every sync keeps the same: DEFAULT, COMMON, TAIL, and the head of KUBE-ROUTER-INPUT
/// (the service range and node ports pass to the host's own rules).
fn fixed_rules() -> Vec<String> {
    let mut out = vec![
        format!(
            "-A {DEFAULT} -j MARK -m comment --comment \"rule to mark traffic matching a network policy\" --set-xmark 0x10000/0x10000"
        ),
        format!(
            "-A {COMMON} -m comment --comment \"rule to drop invalid state for pod\" -m conntrack --ctstate INVALID -j DROP"
        ),
        format!(
            "-A {COMMON} -m comment --comment \"rule for stateful firewall for pod\" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"
        ),
    ];
    for (kind, comment) in [
        ("echo-request", "allow icmp echo requests"),
        (
            "destination-unreachable",
            "allow icmp destination unreachable messages",
        ),
        ("time-exceeded", "allow icmp time exceeded messages"),
    ] {
        out.push(format!(
            "-A {COMMON} -m comment --comment \"{comment}\" -p icmp --icmp-type {kind} -j ACCEPT"
        ));
    }
    out.push(format!(
        "-A {TAIL} -m comment --comment \"accept netpol-ok\" -m mark --mark 0x20000/0x20000 -j ACCEPT"
    ));
    out.push(format!(
        "-A {INPUT} {}",
        with_uuid(
            INPUT,
            "",
            "allow traffic to primary/secondary cluster IP range",
            &format!(" -d {SERVICE_CIDR} -j RETURN")
        )
    ));
    for protocol in ["tcp", "udp", "sctp"] {
        out.push(format!(
            "-A {INPUT} {}",
            with_uuid(
                INPUT,
                &format!("-p {protocol} "),
                &format!("allow LOCAL {} traffic to node ports", protocol.to_uppercase()),
                &format!(" -m addrtype --dst-type LOCAL -m multiport --dports {NODE_PORT_RANGE} -j RETURN")
            )
        ));
    }
    out
}

/// One node's sync in `version` for the cluster's `specs`, the node running `local` pods.
pub fn node_sync(
    cluster: &Cluster,
    specs: &[PolicySpec],
    local: &[&Pod],
    version: &str,
) -> NodeSync {
    let mut sets = Sets::new();
    let mut chains: Vec<String> = [INPUT, FORWARD, OUTPUT, DEFAULT, COMMON, TAIL]
        .iter()
        .map(|c| (*c).to_owned())
        .collect();
    let mut rules = fixed_rules();
    for spec in specs {
        chains.push(policy_chain(spec, version));
        rules.extend(policy_rules(cluster, spec, version, &mut sets));
    }
    let refs: Vec<&PolicySpec> = specs.iter().collect();
    let mut top = Vec::new();
    for pod in local {
        chains.push(pod_chain(pod, version));
        let (pod_rules, jumps) = pod_rules(cluster, pod, &refs, version);
        rules.extend(pod_rules);
        top.extend(jumps);
    }
    rules.extend(top);
    for (_, chain) in TOP {
        rules.push(format!(
            "-A {chain} -m comment --comment \"rule to explicitly handle traffic for network policies ACCEPT/REJECT decision\" -j {TAIL}"
        ));
        rules.push(format!(
            "-A {chain} -m comment --comment \"rule to explicitly ACCEPT traffic that comply to network policies\" -m mark --mark 0x20000/0x20000 -j ACCEPT"
        ));
    }
    for (builtin, chain) in TOP {
        rules.push(format!(
            "-I {builtin} 1 {}",
            with_uuid(builtin, "", "kube-router netpol", &format!(" -j {chain}"))
        ));
    }
    NodeSync {
        ipsets: ipset_restore(&sets),
        sets: sets.len(),
        chains: chains.iter().map(|c| format!(":{c} - [0:0]")).collect(),
        rules,
    }
}

/// kube-router's `BuildIPSetRestore`: per set type a temporary set, filled, swapped in, flushed; the
/// temporary sets destroyed at the end.
fn ipset_restore(sets: &Sets) -> String {
    let mut out = String::new();
    let mut temporary: BTreeMap<&str, String> = BTreeMap::new();
    for (name, (options, entries)) in sets {
        let count = temporary.len();
        let tmp = temporary.entry(options).or_insert_with(|| {
            let tmp = format!("TMP-KR{count}");
            let _ = writeln!(out, "create {tmp} {options}\nflush {tmp}");
            tmp
        });
        let tmp = tmp.clone();
        for entry in entries {
            let _ = writeln!(out, "add {tmp} {entry} timeout 0");
        }
        let _ = writeln!(
            out,
            "create {name} {options}\nswap {tmp} {name}\nflush {tmp}"
        );
    }
    for tmp in temporary.values() {
        let _ = writeln!(out, "destroy {tmp}");
    }
    out
}

/// Whether `name` is one of kube-router's chains.
fn is_kube_router_chain(name: &str) -> bool {
    name.starts_with(POD_FW_PREFIX)
        || name.starts_with(POLICY_PREFIX)
        || name.starts_with("KUBE-ROUTER-")
}

/// The filter table to restore: `saved` (an `iptables-save -t filter`) without kube-router's chains
/// and the rules in or into them, then `sync`'s. Old versions' chains are dropped, as kube-router's
/// `cleanupStaleRules` does.
pub fn merge(saved: &str, sync: &NodeSync) -> String {
    let mut chains = Vec::new();
    let mut rules = Vec::new();
    for line in saved.lines() {
        if let Some(declaration) = line.strip_prefix(':') {
            let name = declaration.split_whitespace().next().unwrap_or_default();
            if !is_kube_router_chain(name) {
                chains.push(line.to_owned());
            }
        } else if line.starts_with("-A ") {
            let mut words = line.split_whitespace();
            let chain = words.nth(1).unwrap_or_default();
            let target = line
                .rsplit(" -j ")
                .next()
                .and_then(|t| t.split_whitespace().next());
            if !is_kube_router_chain(chain) && !target.is_some_and(is_kube_router_chain) {
                rules.push(line.to_owned());
            }
        }
    }
    let mut out = String::from("*filter\n");
    for line in chains.iter().chain(&sync.chains) {
        out.push_str(line);
        out.push('\n');
    }
    for line in rules.iter().chain(&sync.rules) {
        out.push_str(line);
        out.push('\n');
    }
    out.push_str("COMMIT\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netbench::policy::manifest;

    fn cluster() -> Cluster {
        let pod = |name: &str, ip: [u8; 4]| Pod {
            namespace: "default".to_owned(),
            name: name.to_owned(),
            labels: [("app".to_owned(), name.to_owned())].into(),
            ip: Ipv4Addr::from(ip),
        };
        let mut namespaces = BTreeMap::new();
        namespaces.insert(
            "default".to_owned(),
            [(
                "kubernetes.io/metadata.name".to_owned(),
                "default".to_owned(),
            )]
            .into(),
        );
        for k in 0..manifest::NAMESPACES {
            namespaces.insert(
                manifest::namespace(k),
                manifest::namespace_labels(k).into_iter().collect(),
            );
        }
        Cluster {
            pods: vec![
                pod("bench-client", [10, 244, 2, 2]),
                pod("bench-server", [10, 244, 3, 2]),
            ],
            namespaces,
        }
    }

    #[test]
    fn the_server_chain_jumps_to_every_policy_selecting_it_after_the_common_chain() {
        let cluster = cluster();
        let specs = manifest::specs(100);
        let server = &cluster.pods[1];
        let sync = node_sync(&cluster, &specs, &[server], "1");
        let chain = pod_chain(server, "1");
        let jumps = sync
            .rules
            .iter()
            .filter(|r| {
                r.starts_with(&format!(
                    "-I {chain} 1 -d 10.244.3.2 -m comment --comment \"default/"
                ))
            })
            .count();
        assert_eq!(jumps, manifest::selecting_server(100));
        // The last -I 1 is the first rule: the common chain (conntrack) comes before any policy.
        let last_insert = sync
            .rules
            .iter()
            .rfind(|r| r.starts_with(&format!("-I {chain} 1")))
            .unwrap();
        assert!(
            last_insert.ends_with(&format!("-j {COMMON}")),
            "{last_insert}"
        );
        // The allowing policy's rule: the client's set, the server's set, the server's port.
        let allow = policy_chain(&specs[0], "1");
        let rule = sync
            .rules
            .iter()
            .find(|r| r.starts_with(&format!("-A {allow} ")))
            .unwrap();
        assert!(
            rule.contains("-p TCP --dport 5201 -j MARK --set-xmark 0x10000/0x10000"),
            "{rule}"
        );
        assert!(
            sync.ipsets.contains("add TMP-KR0 10.244.2.2 timeout 0"),
            "{}",
            sync.ipsets
        );
        // A set per policy target, one per rule with pods or blocks.
        assert!(sync.sets > 100, "{}", sync.sets);
    }

    #[test]
    fn merging_drops_the_old_version_and_keeps_the_rest() {
        let cluster = cluster();
        let specs = manifest::specs(3);
        let old = node_sync(&cluster, &specs, &[&cluster.pods[1]], "1");
        let saved = format!(
            "# generated\n*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:KUBE-FORWARD - [0:0]\n{}\n-A FORWARD -j KUBE-FORWARD\n{}\nCOMMIT\n",
            old.chains.join("\n"),
            old.rules
                .iter()
                .map(|r| r.replacen("-I INPUT 1", "-A INPUT", 1))
                .collect::<Vec<_>>()
                .join("\n")
        );
        let new = node_sync(&cluster, &specs, &[&cluster.pods[1]], "2");
        let text = merge(&saved, &new);
        assert!(
            text.contains(":KUBE-FORWARD - [0:0]") && text.contains("-A FORWARD -j KUBE-FORWARD")
        );
        assert!(!text.contains(&pod_chain(&cluster.pods[1], "1")), "{text}");
        assert!(text.contains(&pod_chain(&cluster.pods[1], "2")));
        assert_eq!(text.matches(":KUBE-ROUTER-FORWARD").count(), 1);
        assert!(text.starts_with("*filter\n") && text.ends_with("COMMIT\n"));
    }

    #[test]
    fn peers_are_evaluated_as_kube_router_does() {
        let cluster = cluster();
        let spec = &manifest::specs(1)[0];
        let Peer::Pods { .. } = &spec.ingress[0].peers[0] else {
            panic!()
        };
        let matched = cluster.peer_pods(spec, &spec.ingress[0].peers[0]);
        assert_eq!(matched.len(), 1);
        assert_eq!(matched[0].name, "bench-client");
        let all = Peer::Pods {
            namespaces: None,
            pods: Some(Vec::new()),
        };
        assert_eq!(cluster.peer_pods(spec, &all).len(), 2);
        let team = Peer::Pods {
            namespaces: Some(manifest::namespace_labels(1)),
            pods: None,
        };
        assert!(cluster.peer_pods(spec, &team).is_empty());
    }
}
