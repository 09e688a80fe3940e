//! Cluster DNS through a lab: pods on two nodes ask `dig` (and glibc, through the kubelet-style
//! resolv.conf) the specification's questions, each answered by the pod's own node, with the kernel
//! fast path on and off; a Service created and deleted is answered accordingly within a second on
//! every node (by the fast path's map too).

use std::{
    process::Command,
    time::{Duration, Instant},
};

use strait_lab::{cluster::Lab, state::LabOptions};
use strait_tests::LabGuard;

/// A ClusterIP Service with a named port, a headless one whose pod has `hostname`/`subdomain`, and an
/// ExternalName; the pods are pinned so each node has one.
const MANIFEST: &str = "apiVersion: v1
kind: Pod
metadata: {name: client, namespace: default, labels: {app: client}}
spec: {nodeName: NODE1, containers: [{name: c, image: busybox}]}
---
apiVersion: v1
kind: Pod
metadata: {name: web-0, namespace: default, labels: {app: web}}
spec:
  nodeName: NODE2
  hostname: web-0
  subdomain: web-h
  containers: [{name: c, image: busybox, ports: [{name: http, containerPort: 8080}]}]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: web-h, namespace: default}
spec:
  clusterIP: None
  selector: {app: web}
  ports: [{name: http, port: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: nobody, namespace: default}
spec:
  clusterIP: None
  selector: {app: nobody}
  ports: [{port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: ext, namespace: default}
spec: {type: ExternalName, externalName: www.example.com}
";

/// Runs `argv` in `pod` of lab `name` through the CLI; its standard output.
fn run_in(name: &str, pod: &str, argv: &[&str]) -> String {
    let out = Command::new(strait_tests::bin_dir().join("strait"))
        .args(["lab", "exec", "--name", name, pod, "--"])
        .args(argv)
        .output()
        .expect("strait lab exec runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `dig` from `pod`: the answer section, one record a line (`name ttl IN type data`, tabs as spaces).
pub(crate) fn dig(name: &str, pod: &str, args: &[&str]) -> Vec<String> {
    let mut argv = vec!["dig", "+noall", "+answer", "+tries=1", "+time=2"];
    argv.extend(args);
    run_in(name, pod, &argv)
        .lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

/// The status and the authority section of a `dig` from `pod`.
fn status(name: &str, pod: &str, question: &[&str]) -> (String, Vec<String>) {
    let mut argv = vec!["dig", "+tries=1", "+time=2"];
    argv.extend(question);
    let text = run_in(name, pod, &argv);
    let status = text
        .split("status: ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .unwrap_or("no answer")
        .to_owned();
    let authority = text
        .split(";; AUTHORITY SECTION:")
        .nth(1)
        .map(|rest| {
            rest.lines()
                .skip(1)
                .take_while(|l| !l.is_empty())
                .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
                .collect()
        })
        .unwrap_or_default();
    (status, authority)
}

fn cluster_ip(lab: &Lab, service: &str) -> String {
    let spec = lab.state.services[service].spec.as_ref().expect("spec");
    spec.cluster_ip.clone().expect("a ClusterIP")
}

#[test]
fn pods_resolve_the_cluster_zone_through_the_kernel_fast_path() {
    resolve_the_cluster_zone("dk", true);
}

#[test]
fn pods_resolve_the_cluster_zone_through_the_server() {
    resolve_the_cluster_zone("ds", false);
}

/// Every question of the specification, asked with the kernel fast path on (the hot A records
/// answered by `dns_fast`, everything else by the server) or off (everything by the server).
fn resolve_the_cluster_zone(prefix: &str, fast_path: bool) {
    strait_tests::require_root();
    strait_tests::bin_dir();
    let guard = LabGuard::new(prefix);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dns.yaml");
    let manifest = MANIFEST
        .replace("NODE1", &format!("{}-node-1", guard.name))
        .replace("NODE2", &format!("{}-node-2", guard.name));
    std::fs::write(&file, manifest).unwrap();
    let options = LabOptions {
        no_dns_fast_path: !fast_path,
        ..LabOptions::default()
    };
    let mut lab = Lab::up_with(&guard.name, 2, Some(&file), options).expect("lab up");
    let name = guard.name.as_str();
    let web_ip = cluster_ip(&lab, "default/web");
    let pod_ip = lab
        .state
        .pod("default/web-0")
        .expect("web-0")
        .ip
        .to_string();
    assert_eq!(cluster_ip(&lab, "kube-system/kube-dns"), "10.96.0.10");

    // The kubelet's resolv.conf, and glibc following its search path to a short name.
    assert_eq!(
        run_in(name, "default/client", &["cat", "/etc/resolv.conf"]),
        "nameserver 10.96.0.10\nsearch default.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n"
    );
    let hosts = run_in(name, "default/client", &["getent", "hosts", "web"]);
    assert_eq!(
        hosts.split_whitespace().collect::<Vec<_>>(),
        [web_ip.as_str(), "web.default.svc.cluster.local"]
    );

    spec_answers(name, &web_ip, &pod_ip);
    // `strait lab probe` takes a name, resolved inside the pod through cluster DNS.
    assert_eq!(
        lab.probe("default/client", "web:80", false, Duration::from_secs(2))
            .expect("probe runs"),
        Ok("default/web-0".to_owned())
    );
    answers_follow_changes(&mut lab, dir.path());
    counted_under_coredns_names(&lab);
    answered_in_the_kernel(&lab, fast_path);
}

/// With the fast path on, each node's `dns_fast` answered A queries itself (and handed the rest to
/// the server); off, it answered none.
fn answered_in_the_kernel(lab: &Lab, fast_path: bool) {
    for node in &lab.state.nodes {
        let answered = crate::counter(lab, &node.name, ("dns-fast", "dns_answered", "egress"));
        let handed_on = crate::counter(lab, &node.name, ("dns-fast", "dns_not_held", "egress"))
            + crate::counter(lab, &node.name, ("dns-fast", "dns_not_handled", "egress"));
        if fast_path {
            assert!(
                answered > 0,
                "{}: the fast path answered nothing",
                node.name
            );
            assert!(
                handed_on > 0,
                "{}: the fast path handed nothing on",
                node.name
            );
        } else {
            assert_eq!(
                answered + handed_on,
                0,
                "{}: the fast path is off",
                node.name
            );
        }
    }
}

/// The agents' `/metrics` count what they answered, under CoreDNS's names.
fn counted_under_coredns_names(lab: &Lab) {
    for node in &lab.state.nodes {
        let text = lab.agent_get(&node.name, "/metrics").expect("metrics");
        let value = |prefix: &str| -> u64 {
            text.lines()
                .filter(|l| l.starts_with(prefix))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
                .sum()
        };
        let server = format!("server=\"dns://{}:53\"", node.ip);
        assert!(
            value(&format!(
                "coredns_dns_requests_total{{{server},zone=\".\",view=\"\",proto=\"udp\",family=\"1\",type=\"A\"}}"
            )) > 0,
            "{}: A requests over UDP counted:\n{text}",
            node.name
        );
        assert!(
            value(&format!(
                "coredns_dns_responses_total{{{server},zone=\".\",view=\"\",rcode=\"NXDOMAIN\""
            )) > 0,
            "{}: NXDOMAIN answers counted",
            node.name
        );
        assert!(value(&format!("strait_dns_zone_records{{{server}}}")) > 5);
    }
}

/// The specification's questions, asked from pods on both nodes.
/// What upstream's DNS conformance tests ask beyond the specification's examples: headless names over
/// TCP (Subdomain), the headless SRV and a pod's own a-b-c-d record (services), and partly qualified
/// names through the search path (partial qualified names).
fn upstream_questions(name: &str, pod_ip: &str) {
    // Over TCP too, as upstream's Subdomain test digs them.
    for fqdn in [
        "web-h.default.svc.cluster.local",
        "web-0.web-h.default.svc.cluster.local",
    ] {
        assert_eq!(
            dig(name, "default/client", &["+tcp", fqdn]),
            [format!("{fqdn}. 30 IN A {pod_ip}")]
        );
    }
    // The headless Service's SRV names its pod by hostname.
    assert_eq!(
        dig(
            name,
            "default/client",
            &["_http._tcp.web-h.default.svc.cluster.local", "SRV"]
        ),
        [
            "_http._tcp.web-h.default.svc.cluster.local. 30 IN SRV 0 100 8080 web-0.web-h.default.svc.cluster.local."
        ]
    );
    // A pod's own a-b-c-d name (kubeadm's `pods insecure`), over UDP and TCP.
    let pod_name = format!("{}.default.pod.cluster.local", pod_ip.replace('.', "-"));
    for transport in ["+notcp", "+tcp"] {
        assert_eq!(
            dig(name, "default/client", &[transport, &pod_name]),
            [format!("{pod_name}. 30 IN A {pod_ip}")]
        );
    }
    // Partly qualified names through the search path, A and SRV, as upstream's partial names test.
    for partial in ["web-h", "web-h.default", "web-h.default.svc"] {
        assert_eq!(
            dig(name, "default/client", &["+search", partial]),
            [format!("web-h.default.svc.cluster.local. 30 IN A {pod_ip}")],
            "{partial}"
        );
    }
    for partial in ["_http._tcp.web.default", "_http._tcp.web.default.svc"] {
        assert_eq!(
            dig(name, "default/client", &["+search", partial, "SRV"]),
            [
                "_http._tcp.web.default.svc.cluster.local. 30 IN SRV 0 100 80 web.default.svc.cluster.local."
            ],
            "{partial}"
        );
    }
}

fn spec_answers(name: &str, web_ip: &str, pod_ip: &str) {
    // Both nodes answer, each from its own agent.
    for pod in ["default/client", "default/web-0"] {
        assert_eq!(
            dig(name, pod, &["web.default.svc.cluster.local"]),
            [format!("web.default.svc.cluster.local. 30 IN A {web_ip}")],
            "asked from {pod}"
        );
    }
    // Case kept from the question; TCP too.
    assert_eq!(
        dig(
            name,
            "default/client",
            &["+tcp", "WeB.DeFault.svc.cluster.local"]
        ),
        [format!("WeB.DeFault.svc.cluster.local. 30 IN A {web_ip}")]
    );
    assert_eq!(
        dig(
            name,
            "default/client",
            &["_http._tcp.web.default.svc.cluster.local", "SRV"]
        ),
        [
            "_http._tcp.web.default.svc.cluster.local. 30 IN SRV 0 100 80 web.default.svc.cluster.local."
        ]
    );
    assert_eq!(
        dig(name, "default/client", &["-x", web_ip]),
        [format!(
            "{}. 30 IN PTR web.default.svc.cluster.local.",
            web_ip.split('.').rev().collect::<Vec<_>>().join(".") + ".in-addr.arpa"
        )]
    );
    // Headless: the ready endpoint, and the pod's hostname.subdomain name.
    assert_eq!(
        dig(name, "default/client", &["web-h.default.svc.cluster.local"]),
        [format!("web-h.default.svc.cluster.local. 30 IN A {pod_ip}")]
    );
    assert_eq!(
        dig(
            name,
            "default/client",
            &["web-0.web-h.default.svc.cluster.local"]
        ),
        [format!(
            "web-0.web-h.default.svc.cluster.local. 30 IN A {pod_ip}"
        )]
    );
    upstream_questions(name, pod_ip);
    assert_eq!(
        dig(name, "default/client", &["ext.default.svc.cluster.local"]),
        ["ext.default.svc.cluster.local. 30 IN CNAME www.example.com."]
    );
    assert_eq!(
        dig(
            name,
            "default/client",
            &["dns-version.cluster.local", "TXT"]
        ),
        ["dns-version.cluster.local. 28800 IN TXT \"1.1.0\""]
    );
    // Negative answers carry the zone's SOA; a headless Service without ready endpoints is NXDOMAIN.
    for missing in [
        "nope.default.svc.cluster.local",
        "web.nowhere.svc.cluster.local",
        "nobody.default.svc.cluster.local",
    ] {
        let (status, authority) = status(name, "default/client", &[missing]);
        assert_eq!(status, "NXDOMAIN", "{missing}");
        assert_eq!(authority.len(), 1, "{missing}: {authority:?}");
        assert!(
            authority[0].starts_with(
                "cluster.local. 30 IN SOA ns.dns.cluster.local. hostmaster.cluster.local."
            ),
            "{missing}: {authority:?}"
        );
    }
    // AAAA for an IPv4-only Service: the name exists, no data, SOA.
    let (code, authority) = status(
        name,
        "default/client",
        &["web.default.svc.cluster.local", "AAAA"],
    );
    assert_eq!(
        (code.as_str(), authority.len()),
        ("NOERROR", 1),
        "{authority:?}"
    );
}

/// A Service created, then deleted: answered accordingly on both nodes within a second.
fn answers_follow_changes(lab: &mut Lab, dir: &std::path::Path) {
    let name = lab.state.name.clone();
    let name = name.as_str();
    let added = dir.join("late.yaml");
    std::fs::write(
        &added,
        "apiVersion: v1\nkind: Service\nmetadata: {name: late, namespace: default}\nspec: {selector: {app: web}, ports: [{port: 81, targetPort: 8080}]}\n",
    )
    .unwrap();
    lab.apply(&added).expect("apply late");
    let late_ip = cluster_ip(lab, "default/late");
    let want = [format!("late.default.svc.cluster.local. 30 IN A {late_ip}")];
    for pod in ["default/client", "default/web-0"] {
        let started = Instant::now();
        while dig(name, pod, &["late.default.svc.cluster.local"]) != want {
            assert!(
                started.elapsed() < Duration::from_secs(1),
                "{pod}: late not answered within a second"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    lab.delete(&added).expect("delete late");
    for pod in ["default/client", "default/web-0"] {
        let started = Instant::now();
        while status(name, pod, &["late.default.svc.cluster.local"]).0 != "NXDOMAIN" {
            assert!(
                started.elapsed() < Duration::from_secs(1),
                "{pod}: late still answered a second after its deletion"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
