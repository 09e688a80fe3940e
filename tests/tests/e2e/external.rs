//! Services for clients outside the cluster, through the uplink's XDP + tc programs and the per-packet
//! service path: NodePort, LoadBalancer ingress IPs and externalIPs from the external namespace with
//! `externalTrafficPolicy` Cluster (SNAT to the node) and Local (client address kept),
//! `loadBalancerSourceRanges`, fast refusal without endpoints, `healthCheckNodePort`, the per-packet
//! ClusterIP path for sockets the cgroup hooks never saw (including hairpin), and tracked flows that
//! survive an agent restart.

use std::{
    io::Read,
    net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket},
    path::PathBuf,
    time::{Duration, Instant},
};

use strait_dataplane::netns;
use strait_lab::{cluster::Lab, network::EXTERNAL_IP, state::NodeRecord};
use strait_tests::LabGuard;

use crate::examples;

const SERVICES: &str = "apiVersion: v1
kind: Service
metadata: {name: web-lb, namespace: default}
spec:
  type: LoadBalancer
  selector: {app: web}
  externalIPs: [192.0.2.50]
  ports: [{name: http, port: 80, targetPort: http}]
status:
  loadBalancer: {ingress: [{ip: 198.51.100.7}]}
---
apiVersion: v1
kind: Service
metadata: {name: web-local, namespace: default}
spec:
  type: LoadBalancer
  externalTrafficPolicy: Local
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
status:
  loadBalancer: {ingress: [{ip: 198.51.100.8}]}
---
apiVersion: v1
kind: Service
metadata: {name: web-ranges, namespace: default}
spec:
  type: LoadBalancer
  selector: {app: web}
  loadBalancerSourceRanges: [10.0.0.0/8]
  ports: [{name: http, port: 80, targetPort: http}]
status:
  loadBalancer: {ingress: [{ip: 198.51.100.9}]}
---
apiVersion: v1
kind: Service
metadata: {name: web-sticky, namespace: default}
spec:
  type: NodePort
  sessionAffinity: ClientIP
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: Service
metadata: {name: server-udp, namespace: default}
spec:
  type: NodePort
  selector: {app: server}
  ports: [{name: dns, port: 53, targetPort: dns, protocol: UDP}]
---
apiVersion: v1
kind: Service
metadata: {name: nobody, namespace: default}
spec:
  type: LoadBalancer
  externalTrafficPolicy: Local
  selector: {app: nobody}
  ports: [{name: http, port: 80, targetPort: 8080}, {name: dns, port: 53, targetPort: 5353, protocol: UDP}]
";

fn lab_with(prefix: &str, manifest: &str) -> (LabGuard, Lab, tempfile::TempDir) {
    strait_tests::require_root();
    strait_tests::bin_dir();
    let guard = LabGuard::new(prefix);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("services.yaml");
    std::fs::write(&file, manifest).unwrap();
    // The XDP fast path is on, so that the tracked-flow translation in XDP is driven by real packets.
    let options = strait_lab::state::LabOptions {
        xdp_fast_path: true,
        ..strait_lab::state::LabOptions::default()
    };
    let mut lab = Lab::up_with(&guard.name, 1, Some(&examples()), options).unwrap();
    if !manifest.is_empty() {
        lab.apply(&file).unwrap();
    }
    (guard, lab, dir)
}

fn spec_of(lab: &Lab, service: &str) -> k8s_openapi::api::core::v1::ServiceSpec {
    lab.state.services[service].spec.clone().unwrap()
}

fn node_port(lab: &Lab, service: &str) -> u16 {
    let port = spec_of(lab, service).ports.unwrap()[0]
        .node_port
        .expect("a node port");
    u16::try_from(port).unwrap()
}

/// Probes `target` from the external namespace: (answering pod, client address it saw). Every use
/// expects an answer, so the probe waits long enough for two SYN retransmissions (1 s and 3 s): a SYN
/// lost while the whole suite loads the machine is not a failure of the data path.
fn from_outside(lab: &Lab, target: &str) -> Result<(String, SocketAddr), String> {
    lab.probe_with_peer("external", target, false, Duration::from_secs(5))
        .unwrap()
        .map(|(who, peer)| {
            (
                who,
                peer.expect("the pod names its client").parse().unwrap(),
            )
        })
}

fn metric(lab: &Lab, node: &str, program: &str, reason: &str) -> u64 {
    crate::counter(lab, node, (program, reason, "ingress"))
}

#[test]
fn node_ports_and_load_balancer_ips_serve_outside_clients() {
    let (_guard, mut lab, dir) = lab_with("ext", SERVICES);
    let node = lab.state.nodes[0].clone();
    traffic_policies_and_affinity(&lab, &node);
    source_ranges(&mut lab, &node, dir.path());
    refusals(&lab, &node);
    fragmented_datagrams(&lab, &node);
    status_and_health_checks(&lab, &node);
}

/// A UDP datagram larger than the path's MTU reaches a NodePort's pod in fragments: the first is
/// translated by its ports, the later ones by the ports the first left behind (before, only the first
/// fragment was translated and the pod never saw a whole datagram).
fn fragmented_datagrams(lab: &Lab, node: &NodeRecord) {
    let target = SocketAddr::from((node.ip, node_port(lab, "default/server-udp")));
    let external = netns::path(&lab.names.external_netns());
    let answer = netns::run_in(&external, move || -> std::io::Result<String> {
        let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
        socket.connect(target)?;
        socket.set_read_timeout(Some(Duration::from_millis(500)))?;
        let mut buf = [0u8; 512];
        // The stack splits 4,000 bytes into three fragments at the link's 1,500-byte MTU.
        for _ in 0..4 {
            socket.send(&[b'x'; 4000])?;
            if let Ok(n) = socket.recv(&mut buf) {
                return Ok(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
        Err(std::io::Error::other("no answer to a fragmented datagram"))
    })
    .unwrap()
    .unwrap_or_else(|e| panic!("{target}: {e}"));
    assert!(
        answer.starts_with("default/server\n"),
        "{target}: {answer:?}"
    );
}

fn traffic_policies_and_affinity(lab: &Lab, node: &NodeRecord) {
    // externalTrafficPolicy Cluster: the pod sees the node as its client (SNAT, from the SNAT range).
    let cluster_targets = [
        format!("{}:{}", node.ip, node_port(lab, "default/web-lb")),
        "198.51.100.7:80".to_owned(),
        "192.0.2.50:80".to_owned(),
    ];
    for target in &cluster_targets {
        let mut pods = std::collections::BTreeSet::new();
        for _ in 0..12 {
            let (who, peer) = from_outside(lab, target).unwrap_or_else(|e| panic!("{target}: {e}"));
            assert!(who.starts_with("default/web-"), "{target}: {who}");
            assert_eq!(
                peer.ip(),
                std::net::IpAddr::V4(node.ip),
                "{target}: SNAT to the node"
            );
            assert!(peer.port() >= 61_000, "{target}: SNAT port {peer}");
            pods.insert(who);
        }
        assert!(
            pods.len() > 1,
            "{target}: Maglev spreads new flows: {pods:?}"
        );
    }
    // externalTrafficPolicy Local: the client's own address arrives.
    for target in [
        format!("{}:{}", node.ip, node_port(lab, "default/web-local")),
        "198.51.100.8:80".to_owned(),
    ] {
        let (who, peer) = from_outside(lab, &target).unwrap();
        assert!(who.starts_with("default/web-"), "{target}: {who}");
        assert_eq!(
            peer.ip(),
            std::net::IpAddr::V4(EXTERNAL_IP),
            "{target}: source kept"
        );
    }
    // A flow's first packet is translated by tc, the rest of it by XDP.
    assert!(metric(lab, &node.name, "from-uplink", "service_nat") > 0);
    assert!(metric(lab, &node.name, "xdp-uplink", "service_nat") > 0);
    // sessionAffinity ClientIP: every new flow of the external client goes to one pod.
    let sticky = format!("{}:{}", node.ip, node_port(lab, "default/web-sticky"));
    let sticky_pods: std::collections::BTreeSet<String> = (0..8)
        .map(|_| from_outside(lab, &sticky).unwrap().0)
        .collect();
    assert_eq!(sticky_pods.len(), 1, "{sticky_pods:?}");
    assert!(crate::packets(lab, &node.name, "reverse_nat") > 0);
}

fn source_ranges(lab: &mut Lab, node: &NodeRecord, dir: &std::path::Path) {
    // loadBalancerSourceRanges: the external client (172.30.0.2) is outside 10.0.0.0/8, so XDP drops it;
    // the node port of the same service is not restricted.
    let dropped_before = metric(lab, &node.name, "xdp-uplink", "source_range");
    let blocked = lab
        .probe(
            "external",
            "198.51.100.9:80",
            false,
            Duration::from_millis(600),
        )
        .unwrap();
    assert!(blocked.is_err(), "outside the source ranges: {blocked:?}");
    assert!(metric(lab, &node.name, "xdp-uplink", "source_range") > dropped_before);
    let ranged_port = format!("{}:{}", node.ip, node_port(lab, "default/web-ranges"));
    assert!(from_outside(lab, &ranged_port).is_ok());
    // A pod (10.244.0.0/16, inside 10.0.0.0/8) is judged by its own address too.
    let from_pod = |lab: &Lab| {
        lab.probe(
            "default/client",
            "198.51.100.9:80",
            false,
            Duration::from_millis(600),
        )
        .unwrap()
    };
    assert!(from_pod(lab).is_ok(), "a pod inside the source ranges");
    let file = dir.join("ranges.yaml");
    std::fs::write(
        &file,
        SERVICES
            .split("---\n")
            .find(|doc| doc.contains("web-ranges"))
            .unwrap()
            .replace("10.0.0.0/8", "172.30.0.0/24"),
    )
    .unwrap();
    lab.apply(&file).unwrap();
    assert!(
        from_outside(lab, "198.51.100.9:80").is_ok(),
        "inside the new range"
    );
    // Now the pod is outside the ranges: its connect is not translated by the socket hook, and the
    // per-packet path drops it (before, the socket hook let any pod through).
    let from_pod_before = crate::packets(lab, &node.name, "source_range");
    let blocked = from_pod(lab);
    assert!(
        blocked.is_err(),
        "a pod outside the source ranges: {blocked:?}"
    );
    assert!(crate::packets(lab, &node.name, "source_range") > from_pod_before);
}

fn refusals(lab: &Lab, node: &NodeRecord) {
    // No endpoints: refused at once (RST from XDP), not a timeout.
    let started = Instant::now();
    let refused = lab
        .probe(
            "external",
            &format!("{}:{}", node.ip, node_port(lab, "default/nobody")),
            false,
            Duration::from_secs(3),
        )
        .unwrap()
        .unwrap_err();
    assert!(refused.contains("refused"), "{refused}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // UDP: an ICMP port unreachable from XDP, which the client's socket reports as a refusal.
    let udp_port = spec_of(lab, "default/nobody").ports.unwrap()[1]
        .node_port
        .expect("a UDP node port");
    let started = Instant::now();
    let refused = lab
        .probe(
            "external",
            &format!("{}:{udp_port}", node.ip),
            true,
            Duration::from_secs(3),
        )
        .unwrap()
        .unwrap_err();
    assert!(refused.contains("refused"), "{refused}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

fn status_and_health_checks(lab: &Lab, node: &NodeRecord) {
    // `lab status -o json` shows what outside clients use.
    let status = strait_lab::status::to_json(lab);
    let local = status["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "web-local")
        .unwrap();
    assert_eq!(
        local["load_balancer_ips"],
        serde_json::json!(["198.51.100.8"])
    );
    assert_eq!(local["external_traffic_policy"], "Local");
    assert!(
        local["health_check_node_port"].as_u64().is_some(),
        "{local}"
    );
    assert_eq!(local["ports"][0]["endpoints"].as_array().unwrap().len(), 3);
    // The table shows them the way kubectl does.
    let table = strait_lab::status::to_table(lab);
    let row = table
        .lines()
        .find(|l| l.starts_with("default/web-local "))
        .unwrap_or_else(|| panic!("{table}"));
    let ports = format!("80:{}/TCP", node_port(lab, "default/web-local"));
    assert!(
        row.contains("198.51.100.8") && row.contains(&ports),
        "{row}"
    );

    // healthCheckNodePort: 200 with local endpoints, 503 without.
    for (service, status, count) in [
        ("default/web-local", "200", 3),
        ("default/nobody", "503", 0),
    ] {
        let port = spec_of(lab, service)
            .health_check_node_port
            .expect("a health check node port");
        let addr = SocketAddr::from((node.ip, u16::try_from(port).unwrap()));
        let (line, body) = crate::healthz_from_outside(lab, addr);
        assert!(line.contains(status), "{service}: {line}");
        assert!(
            body.contains(&format!("\"localEndpoints\":{count}")),
            "{service}: {body}"
        );
    }
}

/// The network namespace file of pod `key`.
fn pod_netns(lab: &Lab, key: &str) -> PathBuf {
    netns::path(&lab.state.pod(key).expect("pod").netns)
}

/// Connects to `target` from inside `ns` with a socket of the test process, which is in no lab cgroup,
/// so the socket hooks never see it: only the per-packet path can translate. Returns (pod, peer seen).
fn untranslated_ask(ns: &std::path::Path, target: SocketAddr) -> (String, String) {
    let stream = netns::run_in(ns, move || {
        TcpStream::connect_timeout(&target, Duration::from_secs(2))
    })
    .unwrap()
    .unwrap_or_else(|e| panic!("connect {target}: {e}"));
    let mut stream = stream;
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let mut lines = text.lines();
    (
        lines.next().unwrap_or_default().to_owned(),
        lines.next().unwrap_or_default().to_owned(),
    )
}

#[test]
fn the_per_packet_path_serves_sockets_the_hooks_never_saw() {
    let (_guard, lab, _dir) = lab_with(
        "pkt",
        "apiVersion: v1
kind: Service
metadata: {name: nobody, namespace: default}
spec:
  selector: {app: nobody}
  ports: [{name: http, port: 80, targetPort: 8080}, {name: dns, port: 53, protocol: UDP}]
",
    );
    let node = lab.state.nodes[0].name.clone();
    let vip: Ipv4Addr = spec_of(&lab, "default/web")
        .cluster_ip
        .unwrap()
        .parse()
        .unwrap();
    let target = SocketAddr::from((vip, 80));
    let client = lab.state.pod("default/client").unwrap().ip;
    let translated_before = crate::packets(&lab, &node, "service_nat");
    let (who, peer) = untranslated_ask(&pod_netns(&lab, "default/client"), target);
    assert!(who.starts_with("default/web-"), "{who}");
    assert!(
        peer.starts_with(&format!("{client}:")),
        "the client keeps its address: {peer}"
    );
    assert!(crate::packets(&lab, &node, "service_nat") > translated_before);
    // A service without endpoints refuses the untranslated socket at once (a RST from tc).
    let empty: Ipv4Addr = spec_of(&lab, "default/nobody")
        .cluster_ip
        .unwrap()
        .parse()
        .unwrap();
    let empty = SocketAddr::from((empty, 80));
    let started = Instant::now();
    let refused = netns::run_in(&pod_netns(&lab, "default/client"), move || {
        TcpStream::connect_timeout(&empty, Duration::from_secs(3))
    })
    .unwrap()
    .expect_err("no endpoints");
    assert_eq!(
        refused.kind(),
        std::io::ErrorKind::ConnectionRefused,
        "{refused}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    // UDP: an ICMP port unreachable from tc, which the connected socket reports as a refusal.
    let empty_dns = SocketAddr::new(empty.ip(), 53);
    let started = Instant::now();
    let answer = netns::run_in(&pod_netns(&lab, "default/client"), move || {
        let socket = UdpSocket::bind("0.0.0.0:0")?;
        socket.connect(empty_dns)?;
        socket.set_read_timeout(Some(Duration::from_secs(3)))?;
        socket.send(b"who\n")?;
        socket.recv(&mut [0u8; 64])
    })
    .unwrap()
    .expect_err("no endpoints");
    assert_eq!(
        answer.kind(),
        std::io::ErrorKind::ConnectionRefused,
        "{answer}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));

    // Hairpin: a backend reaching its own service lands on itself now and then; it then sees the
    // hairpin address, else its own.
    let web = lab
        .state
        .pods
        .iter()
        .find(|p| p.namespace == "default" && p.name.starts_with("web-"))
        .expect("a web pod")
        .clone();
    let me = format!("{}/{}", web.namespace, web.name);
    let ns = pod_netns(&lab, &me);
    let mut self_hits = 0;
    for _ in 0..40 {
        let (who, peer) = untranslated_ask(&ns, target);
        if who == me {
            self_hits += 1;
            assert!(
                peer.starts_with("169.254.42.1:"),
                "hairpin is SNATed: {peer}"
            );
        } else {
            assert!(peer.starts_with(&format!("{}:", web.ip)), "{peer}");
        }
        if self_hits >= 2 {
            break;
        }
    }
    assert!(
        self_hits > 0,
        "40 tries over 3 backends never hit the client itself"
    );
}

const UDP_ECHO: &str = "apiVersion: apps/v1
kind: Deployment
metadata: {name: echo, namespace: default}
spec:
  replicas: 3
  selector: {matchLabels: {app: echo}}
  template:
    metadata: {labels: {app: echo}}
    spec:
      containers: [{name: echo, image: busybox, ports: [{name: dns, containerPort: 5353, protocol: UDP}]}]
---
apiVersion: v1
kind: Service
metadata: {name: echo, namespace: default}
spec:
  type: NodePort
  selector: {app: echo}
  ports: [{name: dns, port: 53, targetPort: dns, protocol: UDP}]
";

/// Sends one datagram on `socket` and returns the answer's (pod, peer) lines.
fn udp_ask(socket: &UdpSocket) -> (String, String) {
    socket.send(b"who\n").unwrap();
    let mut buf = [0u8; 512];
    let n = socket.recv(&mut buf).expect("a UDP answer");
    let text = String::from_utf8_lossy(&buf[..n]).to_string();
    let mut lines = text.lines();
    (
        lines.next().unwrap_or_default().to_owned(),
        lines.next().unwrap_or_default().to_owned(),
    )
}

/// `--xdp-mode auto` (the default) on a veth uplink runs no XDP program: an agent restarted with it
/// unpins the uplink's XDP link, so the program leaves the device, and tc alone serves the uplink: a
/// NodePort answers with SNAT to the node, and a frontend without endpoints is still refused at once
/// (RST, port unreachable), now by tc. (`--xdp-mode off` takes the same path.)
#[test]
fn without_xdp_tc_alone_serves_and_refuses_on_the_uplink() {
    let (_guard, mut lab, _dir) = lab_with("nox", SERVICES);
    let node = lab.state.nodes[0].clone();
    assert!(uplink_runs_xdp(&node), "generic XDP to begin with");
    lab.state.options.xdp_mode = strait_lab::state::LabXdp::Auto;
    lab.restart_agent(&node.name).unwrap();
    assert!(
        !uplink_runs_xdp(&node),
        "auto on a veth: no XDP program after the restart"
    );
    let refused_before = metric(&lab, &node.name, "from-uplink", "no_backend");
    refusals(&lab, &node);
    assert!(
        metric(&lab, &node.name, "from-uplink", "no_backend") >= refused_before + 2,
        "tc refused the TCP and the UDP probe"
    );
    let target = format!("{}:{}", node.ip, node_port(&lab, "default/web-sticky"));
    let (who, peer) = from_outside(&lab, &target).unwrap();
    assert!(who.starts_with("default/web-"), "{who}");
    assert_eq!(peer.ip(), std::net::IpAddr::V4(node.ip), "SNAT to the node");
}

/// Whether the uplink (`eth0` in the node's namespace) has an XDP program attached.
fn uplink_runs_xdp(node: &NodeRecord) -> bool {
    let out = std::process::Command::new("ip")
        .args(["-n", &node.netns, "-d", "link", "show", "eth0"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).contains("prog/xdp")
}

#[test]
fn tracked_flows_survive_an_agent_restart() {
    let (_guard, mut lab, _dir) = lab_with("ctr", UDP_ECHO);
    let node = lab.state.nodes[0].clone();
    let target = SocketAddr::from((node.ip, node_port(&lab, "default/echo")));
    let external = netns::path(&lab.names.external_netns());
    let socket = netns::run_in(&external, move || {
        let socket = UdpSocket::bind("0.0.0.0:0")?;
        socket.connect(target)?;
        Ok::<_, std::io::Error>(socket)
    })
    .unwrap()
    .unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let first = udp_ask(&socket);
    assert!(first.0.starts_with("default/echo-"), "{first:?}");
    assert!(
        first.1.starts_with(&format!("{}:", node.ip)),
        "SNAT: {first:?}"
    );
    lab.restart_agent(&node.name).unwrap();
    // Same flow after the restart: same backend and the same SNAT port, so the conntrack entry (in the
    // pinned map) was kept, not re-created.
    for _ in 0..3 {
        assert_eq!(udp_ask(&socket), first);
    }
}
