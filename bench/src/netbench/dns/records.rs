//! What every server answers in a DNS run: `count` ClusterIP Services `svc-N` in namespace
//! `default` (their addresses from the lab), asked as A questions for their full names. The same
//! records are written as a knot zone file and as unbound `local-data`, with strait's TTL (30 s).

use std::{fmt::Write as _, net::Ipv4Addr};

/// The cluster domain of every lab.
pub const DOMAIN: &str = "cluster.local";
/// The records' TTL (strait's default, kubeadm's CoreDNS setting).
pub const TTL: u32 = 30;
/// The client pod, in namespace `default`.
pub const CLIENT_POD: &str = "default/dns-client";
/// Services in a run by default, and at most.
pub const DEFAULT_NAMES: usize = 100;
pub const MAX_NAMES: usize = 5000;

/// The name of Service `n`.
pub fn service(n: usize) -> String {
    format!("svc-{n}")
}

/// The full name asked for Service `n`.
pub fn fqdn(n: usize) -> String {
    format!("{}.default.svc.{DOMAIN}", service(n))
}

/// The client pod and `count` Services (no selector: a name and a ClusterIP is all DNS needs).
pub fn manifest(count: usize) -> String {
    let name = CLIENT_POD.trim_start_matches("default/");
    let mut text = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: default}}\n\
         spec: {{containers: [{{name: c, image: dnsperf}}]}}\n"
    );
    for n in 0..count {
        let _ = write!(
            text,
            "---\napiVersion: v1\nkind: Service\nmetadata: {{name: {}, namespace: default}}\n\
             spec: {{ports: [{{port: 80}}]}}\n",
            service(n)
        );
    }
    text
}

/// dnsperf's input: one `NAME A` line per Service.
pub fn query_file(count: usize) -> String {
    (0..count).fold(String::new(), |mut text, n| {
        let _ = writeln!(text, "{} A", fqdn(n));
        text
    })
}

/// The zone as knot serves it: SOA and NS at the apex (the NS with its glue), one A per Service.
pub fn knot_zone(addresses: &[Ipv4Addr], dns_ip: Ipv4Addr) -> String {
    let mut text = format!(
        "$ORIGIN {DOMAIN}.\n$TTL {TTL}\n\
         @ IN SOA ns.dns.{DOMAIN}. hostmaster.{DOMAIN}. 1 7200 1800 86400 {TTL}\n\
         @ IN NS ns.dns.{DOMAIN}.\nns.dns IN A {dns_ip}\n"
    );
    for (n, address) in addresses.iter().enumerate() {
        let _ = writeln!(text, "{}.default.svc IN A {address}", service(n));
    }
    text
}

/// knotd's configuration: `workers` UDP workers listening on `listen`, the zone in `dir`.
pub fn knot_config(dir: &str, listen: std::net::SocketAddr, workers: usize) -> String {
    format!(
        "server:\n    rundir: \"{dir}\"\n    listen: {}@{}\n    udp-workers: {workers}\n    \
         tcp-workers: 1\n    background-workers: 1\n\
         database:\n    storage: \"{dir}\"\n\
         log:\n  - target: stderr\n    any: warning\n\
         zone:\n  - domain: {DOMAIN}\n    file: \"{dir}/{DOMAIN}.zone\"\n    \
         journal-content: none\n    zonefile-sync: -1\n",
        listen.ip(),
        listen.port()
    )
}

/// unbound's configuration: `threads` threads listening on `listen`, answering the zone from
/// `local-data` only (no recursion, no cache to warm).
pub fn unbound_config(
    listen: std::net::SocketAddr,
    threads: usize,
    addresses: &[Ipv4Addr],
) -> String {
    let mut text = format!(
        "server:\n  interface: {}\n  port: {}\n  do-daemonize: no\n  username: \"\"\n  chroot: \"\"\n  \
         pidfile: \"\"\n  use-syslog: no\n  logfile: \"\"\n  verbosity: 0\n  do-ip6: no\n  \
         num-threads: {threads}\n  so-reuseport: yes\n  module-config: \"iterator\"\n  \
         access-control: 0.0.0.0/0 allow\n  local-zone: \"{DOMAIN}.\" static\n",
        listen.ip(),
        listen.port()
    );
    for (n, address) in addresses.iter().enumerate() {
        let _ = writeln!(text, "  local-data: \"{}. {TTL} IN A {address}\"", fqdn(n));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_records_for_every_server() {
        let addresses = [Ipv4Addr::new(10, 96, 0, 20), Ipv4Addr::new(10, 96, 0, 21)];
        let zone = knot_zone(&addresses, Ipv4Addr::new(10, 96, 0, 10));
        assert!(
            zone.contains("svc-1.default.svc IN A 10.96.0.21\n"),
            "{zone}"
        );
        let unbound = unbound_config("172.30.0.11:5302".parse().unwrap(), 2, &addresses);
        assert!(
            unbound.contains("local-data: \"svc-1.default.svc.cluster.local. 30 IN A 10.96.0.21\"")
        );
        assert!(unbound.contains("interface: 172.30.0.11\n  port: 5302\n"));
        assert_eq!(
            query_file(2),
            "svc-0.default.svc.cluster.local A\nsvc-1.default.svc.cluster.local A\n"
        );
        let manifest = manifest(2);
        assert_eq!(manifest.matches("kind: Service").count(), 2);
        let knot = knot_config("/tmp/x", "172.30.0.11:5301".parse().unwrap(), 2);
        assert!(knot.contains("listen: 172.30.0.11@5301"), "{knot}");
    }
}
