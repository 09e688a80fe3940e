//! The kube-proxy rule generators against the real tools: each ruleset is loaded into a throwaway
//! network namespace (`iptables-restore`, `nft -f -`) and read back from the kernel. Runs as root; fails
//! when `ip`, `iptables-restore`/`iptables-save` or `nft` is missing.

use std::{
    io::Write as _,
    net::Ipv4Addr,
    process::{Command, Output, Stdio},
    sync::atomic::{AtomicUsize, Ordering},
};

use strait_bench::netbench::{
    catalog::{Catalog, Frontend, Protocol, TargetPosition},
    kube_iptables::{KubeProxyConfig, ext_chain, iptables_restore, sep_chain, svc_chain},
    kube_nftables::{endpoint_chain, nft_ruleset, service_chain},
};

/// A network namespace that is deleted when dropped, also when the test panics.
struct Netns(String);

impl Netns {
    fn new() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "nbtest-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let out = run(&["ip", "netns", "add", &name], None);
        assert!(out.status.success(), "ip netns add {name}: {out:?}");
        Self(name)
    }

    /// Runs `command` inside the namespace, feeding it `stdin`; panics unless it succeeds.
    fn exec(&self, command: &[&str], stdin: Option<&str>) -> String {
        let mut args = vec!["ip", "netns", "exec", self.0.as_str()];
        args.extend_from_slice(command);
        let out = run(&args, stdin);
        assert!(
            out.status.success(),
            "{command:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("tool output is UTF-8")
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.0])
            .status();
    }
}

fn run(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {} (is it installed?): {e}", args[0]));
    let mut pipe = child.stdin.take().expect("stdin is piped");
    if let Some(input) = stdin {
        pipe.write_all(input.as_bytes()).expect("write stdin");
    }
    drop(pipe);
    child.wait_with_output().expect("wait for the tool")
}

/// The target Service (NodePort, TCP and UDP, three servers; first, so `frontends[0]` is its TCP
/// port), two ClusterIP fillers with three endpoints, and a ClusterIP service without endpoints.
fn frontends() -> Vec<Frontend> {
    let servers = [
        Ipv4Addr::new(10, 244, 1, 3),
        Ipv4Addr::new(10, 244, 1, 4),
        Ipv4Addr::new(10, 244, 2, 3),
    ];
    let mut frontends = Catalog::new(
        Ipv4Addr::new(10, 96, 0, 10),
        &servers,
        2,
        3,
        TargetPosition::First,
    )
    .frontends();
    frontends.push(Frontend {
        namespace: "netbench".to_owned(),
        name: "empty".to_owned(),
        port_name: String::new(),
        protocol: Protocol::Tcp,
        cluster_ip: Ipv4Addr::new(10, 96, 0, 11),
        port: 80,
        node_port: Some(30081),
        backends: Vec::new(),
    });
    frontends
}

#[test]
fn iptables_rules_load_into_the_kernel() {
    let frontends = frontends();
    let ruleset = iptables_restore(&frontends, &KubeProxyConfig::default());
    let ns = Netns::new();
    ns.exec(&["iptables-restore"], Some(&ruleset.text));

    let nat = ns.exec(&["iptables-save", "-t", "nat"], None);
    let target = &frontends[0];
    let svc = svc_chain(target);
    let ext = ext_chain(target);
    assert!(nat.contains(&format!(":{svc} - ")), "{nat}");
    assert!(
        nat.contains(&format!(
            "-A KUBE-SERVICES -d 10.96.0.10/32 -p tcp -m comment --comment \"netbench/server:tcp cluster IP\" -m tcp --dport 80 -j {svc}"
        )),
        "{nat}"
    );
    assert!(
        nat.contains(&format!("-m tcp --dport 30080 -j {ext}")),
        "{nat}"
    );
    let svc_rules: Vec<&str> = nat
        .lines()
        .filter(|l| l.starts_with(&format!("-A {svc} ")))
        .collect();
    assert_eq!(svc_rules.len(), 4, "{svc_rules:#?}");
    assert!(
        svc_rules[0].contains("! -s 10.244.0.0/16") && svc_rules[0].ends_with("-j KUBE-MARK-MASQ")
    );
    // The kernel keeps the probability as a 32-bit fraction; iptables-save prints it back rounded.
    assert!(svc_rules[1].contains("-m statistic --mode random --probability 0.3333333"));
    assert!(svc_rules[2].contains("-m statistic --mode random --probability 0.5"));
    assert!(!svc_rules[3].contains("statistic"));
    for (rule, server) in svc_rules[1..]
        .iter()
        .zip(["10.244.1.3", "10.244.1.4", "10.244.2.3"])
    {
        let backend = target
            .backends
            .iter()
            .find(|b| b.ip.to_string() == server)
            .expect("server is a backend");
        let sep = sep_chain(target, backend);
        assert!(rule.ends_with(&format!("-j {sep}")), "{rule}");
        assert!(
            nat.contains(&format!(
                "-A {sep} -p tcp -m comment --comment \"netbench/server:tcp\" -m tcp -j DNAT --to-destination {server}:5201"
            )),
            "{nat}"
        );
    }
    assert!(
        nat.contains("-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000"),
        "{nat}"
    );
    assert!(nat.contains("-A POSTROUTING -m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING"), "{nat}");
    assert!(nat.contains("-j MASQUERADE --random-fully"), "{nat}");

    let filter = ns.exec(&["iptables-save", "-t", "filter"], None);
    assert!(
        filter.contains("-A KUBE-SERVICES -d 10.96.0.11/32 -p tcp -m comment --comment \"netbench/empty has no endpoints\" -m tcp --dport 80 -j REJECT"),
        "{filter}"
    );
    assert!(filter.contains("--dport 30081 -j REJECT"), "{filter}");

    let loaded = nat
        .lines()
        .chain(filter.lines())
        .filter(|l| l.starts_with("-A "))
        .count();
    assert_eq!(loaded, ruleset.rules);
}

#[test]
fn nftables_rules_load_into_the_kernel() {
    let frontends = frontends();
    let ruleset = nft_ruleset(&frontends, &KubeProxyConfig::default());
    let ns = Netns::new();
    ns.exec(&["nft", "-f", "-"], Some(&ruleset.text));
    // Loading again replaces the table rather than failing or doubling it.
    ns.exec(&["nft", "-f", "-"], Some(&ruleset.text));

    let table = ns.exec(&["nft", "list", "table", "ip", "kube-proxy"], None);
    let target = &frontends[0];
    let svc = service_chain(target);
    assert!(table.contains(&format!("chain {svc} {{")), "{table}");
    let mut backends = target.backends.clone();
    backends.sort_by_key(ToString::to_string);
    let vmap = backends
        .iter()
        .enumerate()
        .map(|(i, b)| format!("{i} : goto {}", endpoint_chain(target, b)))
        .collect::<Vec<_>>()
        .join(", ");
    assert!(
        table.contains(&format!("numgen random mod 3 vmap {{ {vmap} }}")),
        "{table}"
    );
    assert!(
        table.contains(&format!("10.96.0.10 . tcp . 80 : goto {svc}")),
        "{table}"
    );
    assert!(
        table.contains("ip daddr . meta l4proto . th dport vmap @service-ips"),
        "{table}"
    );
    assert!(
        table.contains("meta l4proto tcp dnat to 10.244.1.3:5201"),
        "{table}"
    );
    assert!(
        table.contains("10.96.0.11 . tcp . 80 comment \"netbench/empty\" : goto reject-chain"),
        "{table}"
    );
    assert!(table.contains("masquerade fully-random"), "{table}");
    assert_eq!(
        table.matches("\n\tchain ").count(),
        ruleset.text.matches("add chain ").count(),
        "{table}"
    );
}
