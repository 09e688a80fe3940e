//! Services through strait's socket-level load balancing: the seed scenario (10 replicas behind a
//! ClusterIP, an even spread, scaling down and back), named target ports, UDP, services without endpoints,
//! hairpin, node clients, and endpoint removal.

use std::{
    collections::BTreeMap,
    fs::{self, File},
    io::ErrorKind,
    net::{Ipv4Addr, SocketAddrV4},
    os::{fd::AsRawFd, unix::process::CommandExt},
    path::Path,
    process::Command,
    time::Duration,
};

use strait_lab::cluster::Lab;
use strait_tests::LabGuard;

use crate::examples;

const CLIENT: &str = "apiVersion: v1
kind: Pod
metadata: {name: client, namespace: default, labels: {app: client}}
spec: {containers: [{name: c, image: busybox}]}
";

fn httpenv(replicas: usize) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata: {{name: httpenv, namespace: default}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: httpenv}}}}
  template:
    metadata: {{labels: {{app: httpenv}}}}
    spec:
      containers: [{{name: httpenv, image: jpetazzo/httpenv, ports: [{{containerPort: 8888}}]}}]
---
apiVersion: v1
kind: Service
metadata: {{name: httpenv, namespace: default}}
spec:
  selector: {{app: httpenv}}
  ports: [{{port: 8888}}]
"
    )
}

fn cluster_ip(lab: &Lab, service: &str) -> String {
    lab.state.services[service]
        .spec
        .as_ref()
        .and_then(|s| s.cluster_ip.clone())
        .unwrap_or_else(|| panic!("{service} has no ClusterIP"))
}

/// Probes `target` `count` times from `from`; returns how often each pod answered.
fn spread(lab: &Lab, from: &str, target: &str, udp: bool, count: usize) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for _ in 0..count {
        let who = lab
            .probe(from, target, udp, Duration::from_secs(2))
            .unwrap()
            .unwrap_or_else(|why| panic!("{from} -> {target}: {why}"));
        *seen.entry(who).or_insert(0) += 1;
    }
    seen
}

fn write(path: &Path, text: &str) {
    fs::write(path, text).unwrap();
}

/// A lab from `examples/` plus the objects in `extra`, torn down by the returned guard.
fn lab_with(prefix: &str, extra: &str) -> (LabGuard, Lab) {
    strait_tests::require_root();
    strait_tests::bin_dir();
    let guard = LabGuard::new(prefix);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("extra.yaml");
    write(&file, extra);
    let mut lab = Lab::up(&guard.name, 1, Some(&examples())).unwrap();
    lab.apply(&file).unwrap();
    (guard, lab)
}

#[test]
fn clusterip_spreads_over_ten_replicas_and_follows_scaling() {
    strait_tests::require_root();
    strait_tests::bin_dir();
    let guard = LabGuard::new("sv");
    let dir = tempfile::tempdir().unwrap();
    let (client, app) = (
        dir.path().join("client.yaml"),
        dir.path().join("httpenv.yaml"),
    );
    write(&client, CLIENT);
    write(&app, &httpenv(10));
    let mut lab = Lab::up(&guard.name, 1, Some(&client)).unwrap();
    lab.apply(&app).unwrap();
    let target = format!("{}:8888", cluster_ip(&lab, "default/httpenv"));

    let probes: u32 = 300;
    let seen = spread(&lab, "default/client", &target, false, probes as usize);
    assert_eq!(seen.len(), 10, "all 10 replicas answer: {seen:?}");
    // Pearson's chi-square against a uniform spread, 9 degrees of freedom: 27.88 is the 0.1% critical value.
    let expected = f64::from(probes) / 10.0;
    let chi2: f64 = seen
        .values()
        .map(|&n| (f64::from(u32::try_from(n).unwrap()) - expected).powi(2) / expected)
        .sum();
    assert!(
        chi2 < 27.88,
        "spread is not uniform (chi-square {chi2:.1}): {seen:?}"
    );
    eprintln!("spread of {probes} probes over 10 replicas: {seen:?}; chi-square {chi2:.2}");

    write(&app, &httpenv(3));
    lab.apply(&app).unwrap();
    let three: Vec<String> = lab
        .state
        .pods
        .iter()
        .filter(|p| p.name.starts_with("httpenv-"))
        .map(strait_lab::state::PodRecord::id)
        .collect();
    assert_eq!(three.len(), 3);
    let seen = spread(&lab, "default/client", &target, false, 60);
    assert!(
        seen.keys().all(|who| three.contains(who)),
        "a removed replica answered: {seen:?}"
    );
    assert_eq!(seen.len(), 3, "{seen:?}");

    write(&app, &httpenv(10));
    lab.apply(&app).unwrap();
    let seen = spread(&lab, "default/client", &target, false, 200);
    assert_eq!(seen.len(), 10, "scaled back to 10: {seen:?}");
}

const EXTRA: &str = "apiVersion: v1
kind: Service
metadata: {name: dns, namespace: default}
spec:
  selector: {app: server}
  ports: [{name: dns, port: 53, targetPort: dns, protocol: UDP}]
---
apiVersion: v1
kind: Service
metadata: {name: nobody, namespace: default}
spec:
  selector: {app: nothing-has-this-label}
  ports: [{name: http, port: 80, targetPort: 8080}, {name: dns, port: 53, protocol: UDP}]
";

#[test]
fn named_ports_udp_empty_services_hairpin_and_removal() {
    let (_guard, mut lab) = lab_with("sn", EXTRA);
    let dir = tempfile::tempdir().unwrap();
    let node = lab.state.nodes[0].name.clone();

    // `web` maps port 80 to the pods' port named `http` (8080).
    let web = format!("{}:80", cluster_ip(&lab, "default/web"));
    let seen = spread(&lab, "default/client", &web, false, 30);
    assert!(
        seen.keys().all(|w| w.starts_with("default/web-")),
        "{seen:?}"
    );
    assert_eq!(seen.len(), 3, "{seen:?}");
    // The node's own processes are served too.
    let from_node = spread(&lab, &format!("node/{node}"), &web, false, 5);
    assert!(
        from_node.keys().all(|w| w.starts_with("default/web-")),
        "{from_node:?}"
    );

    // UDP: port 53 of the service reaches the server's port named `dns` (5353), and the reply comes back.
    let dns = format!("{}:53", cluster_ip(&lab, "default/dns"));
    assert_eq!(
        spread(&lab, "default/client", &dns, true, 5)
            .keys()
            .collect::<Vec<_>>(),
        vec!["default/server"]
    );

    // A service without endpoints refuses at once (ECONNREFUSED, as kube-proxy's REJECT gives, not
    // an EPERM that reads as a policy denial) instead of letting the client time out: TCP connect,
    // UDP connect and an unconnected UDP sendto.
    let before = packets_sock(&lab, &node, "no_backend");
    let nobody_ip: Ipv4Addr = cluster_ip(&lab, "default/nobody").parse().unwrap();
    for (port, udp) in [(80, false), (53, true)] {
        let refused = lab
            .probe(
                "default/client",
                &format!("{nobody_ip}:{port}"),
                udp,
                Duration::from_secs(5),
            )
            .unwrap();
        let why = refused.expect_err("a service without endpoints answered");
        assert!(
            why.starts_with("connect ") && why.contains("(os error 111)"),
            "not refused at connect: {why}"
        );
    }
    let sent = sendto_from(&lab, "default/client", SocketAddrV4::new(nobody_ip, 53));
    assert_eq!(
        sent.map_err(|e| e.kind()),
        Err(ErrorKind::ConnectionRefused),
        "unconnected sendto"
    );
    assert_eq!(packets_sock(&lab, &node, "no_backend"), before + 3);

    // Hairpin: a web pod reaches itself through its own service.
    let web_pod = lab
        .state
        .pods
        .iter()
        .find(|p| p.name.starts_with("web-"))
        .unwrap()
        .id();
    let seen = spread(&lab, &web_pod, &web, false, 40);
    assert!(
        seen.contains_key(&web_pod),
        "{web_pod} never reached itself: {seen:?}"
    );

    // Removing an endpoint takes it out of rotation.
    let pods = dir.path().join("pods.yaml");
    fs::copy(examples().join("pods.yaml"), &pods).unwrap();
    let udp_before = spread(&lab, "default/client", &dns, true, 1);
    assert_eq!(udp_before.len(), 1);
    lab.delete(&pods).unwrap();
    let from_node = format!("node/{node}");
    let gone = lab
        .probe(&from_node, &dns, true, Duration::from_millis(500))
        .unwrap();
    assert!(gone.is_err(), "the deleted server still answers: {gone:?}");
}

/// Sends one datagram to `target` from an unconnected UDP socket in a child placed like `who`'s
/// processes (its network namespace and cgroup, where the sendmsg4 hook applies), and returns what
/// `sendto` returned. The child does the send between fork and exec, so a failed send fails the
/// spawn with the send's errno; a successful one goes on to exec `true`.
fn sendto_from(lab: &Lab, who: &str, target: SocketAddrV4) -> std::io::Result<()> {
    let placement = lab.placement(who).unwrap();
    let netns = File::open(&placement.netns).unwrap();
    let procs = File::options()
        .write(true)
        .open(placement.cgroup.unwrap().join("cgroup.procs"))
        .unwrap();
    let (netns_fd, procs_fd) = (netns.as_raw_fd(), procs.as_raw_fd());
    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: target.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*target.ip()).to_be(),
        },
        sin_zero: [0; 8],
    };
    let mut command = Command::new("true");
    // SAFETY: the closure makes only async-signal-safe system calls, on fds and memory that stay
    // valid until the spawn returns.
    unsafe {
        command.pre_exec(move || {
            if libc::setns(netns_fd, libc::CLONE_NEWNET) != 0
                || libc::write(procs_fd, b"0".as_ptr().cast(), 1) != 1
            {
                return Err(std::io::Error::last_os_error());
            }
            let socket = libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
            if socket < 0
                || libc::sendto(
                    socket,
                    b"who\n".as_ptr().cast(),
                    4,
                    0,
                    (&raw const addr).cast(),
                    size_of::<libc::sockaddr_in>() as libc::socklen_t,
                ) < 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let status = command.status()?;
    assert!(status.success(), "{status}");
    Ok(())
}

fn packets_sock(lab: &Lab, node: &str, reason: &str) -> u64 {
    let text = lab.agent_get(node, "/metrics").unwrap();
    let needle = format!("program=\"sock-lb\",reason=\"{reason}\",direction=\"egress\"}} ");
    text.lines()
        .filter(|l| l.starts_with("strait_packets_total{"))
        .find_map(|l| {
            l.split_once(&needle)
                .map(|(_, v)| v.trim().parse::<u64>().unwrap())
        })
        .unwrap_or_else(|| panic!("no sock-lb {reason} counter in:\n{text}"))
}

const STICKY: &str = "apiVersion: v1
kind: Service
metadata: {name: sticky, namespace: default}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: http}]
  sessionAffinity: ClientIP
  sessionAffinityConfig: {clientIP: {timeoutSeconds: 1}}
";

#[test]
fn client_ip_affinity_sticks_and_expires() {
    let (_guard, lab) = lab_with("sa", STICKY);
    let target = format!("{}:80", cluster_ip(&lab, "default/sticky"));

    // Back-to-back connections keep their backend (each one renews the timer).
    let seen = spread(&lab, "default/client", &target, false, 20);
    assert_eq!(seen.len(), 1, "affinity did not stick: {seen:?}");

    // After the timeout a new backend is chosen at random: over 8 expiries, 3 backends, a single answer
    // every time has a probability of (1/3)^7.
    let mut after_expiry = BTreeMap::new();
    for _ in 0..8 {
        std::thread::sleep(Duration::from_millis(1300));
        for (who, n) in spread(&lab, "default/client", &target, false, 1) {
            *after_expiry.entry(who).or_insert(0) += n;
        }
    }
    assert!(
        after_expiry.len() > 1,
        "affinity never expired: {after_expiry:?}"
    );
}

const EXPOSED: &str = "apiVersion: v1
kind: Service
metadata: {name: web-lb, namespace: default}
spec:
  type: LoadBalancer
  selector: {app: web}
  externalIPs: [192.0.2.50]
  ports: [{name: http, port: 80, targetPort: http}]
status:
  loadBalancer: {ingress: [{ip: 198.51.100.7}]}
";

#[test]
fn node_ports_load_balancer_and_external_ips_from_inside_the_cluster() {
    strait_tests::require_root();
    strait_tests::bin_dir();
    let guard = LabGuard::new("np");
    let dir = tempfile::tempdir().unwrap();
    let exposed = dir.path().join("exposed.yaml");
    write(&exposed, EXPOSED);
    let mut lab = Lab::up(&guard.name, 1, Some(&examples())).unwrap();
    lab.apply(&exposed).unwrap();
    let node = lab.state.nodes[0].clone();
    let node_port = lab.state.services["default/web-lb"]
        .spec
        .as_ref()
        .unwrap()
        .ports
        .as_ref()
        .unwrap()[0]
        .node_port
        .expect("a node port was allocated");
    assert!((30000..=32767).contains(&node_port), "{node_port}");

    for target in [
        format!("{}:{node_port}", node.ip),
        "198.51.100.7:80".to_owned(),
        "192.0.2.50:80".to_owned(),
    ] {
        for from in ["default/client".to_owned(), format!("node/{}", node.name)] {
            let seen = spread(&lab, &from, &target, false, 6);
            assert!(
                seen.keys().all(|w| w.starts_with("default/web-")),
                "{from} -> {target}: {seen:?}"
            );
        }
    }
    // Re-applying keeps the allocated node port; a port outside the range is refused by name.
    lab.apply(&exposed).unwrap();
    let again = lab.state.services["default/web-lb"]
        .spec
        .as_ref()
        .unwrap()
        .ports
        .as_ref()
        .unwrap()[0]
        .node_port;
    assert_eq!(again, Some(node_port));
    write(
        &exposed,
        &EXPOSED
            .replace("name: web-lb", "name: bad")
            .replace("targetPort: http}", "targetPort: http, nodePort: 8080}"),
    );
    let error = lab.apply(&exposed).unwrap_err().to_string();
    assert!(
        error.contains("default/bad") && error.contains("30000-32767"),
        "{error}"
    );
    assert!(!lab.state.services.contains_key("default/bad"));
}

#[test]
fn services_keep_working_across_agent_restarts() {
    use std::sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    };
    strait_tests::require_root();
    strait_tests::bin_dir();
    let guard = LabGuard::new("sr");
    let mut lab = Lab::up(&guard.name, 1, Some(&examples())).unwrap();
    let node = lab.state.nodes[0].name.clone();
    let target = format!("{}:80", cluster_ip(&lab, "default/web"));
    let pins = Path::new("/sys/fs/bpf/strait").join(&node).join("links");
    let link_id = || {
        aya::programs::links::PinnedLink::from_pin(pins.join("sock_connect4-cgroup"))
            .map(|l| aya::programs::links::FdLink::from(l).info().unwrap().id())
            .unwrap()
    };
    let first_link = link_id();

    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicUsize::new(0));
    let attempts = Arc::new(AtomicUsize::new(0));
    let prober = {
        let (stop, failures, attempts) = (stop.clone(), failures.clone(), attempts.clone());
        let lab = Lab::open(&guard.name).unwrap();
        let target = target.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                attempts.fetch_add(1, Ordering::SeqCst);
                let answer = lab
                    .probe("default/client", &target, false, Duration::from_secs(1))
                    .unwrap();
                if !answer
                    .as_deref()
                    .is_ok_and(|w| w.starts_with("default/web-"))
                {
                    failures.fetch_add(1, Ordering::SeqCst);
                }
            }
        })
    };
    for _ in 0..2 {
        lab.restart_agent(&node).unwrap();
        std::thread::sleep(Duration::from_millis(300));
    }
    stop.store(true, Ordering::SeqCst);
    prober.join().unwrap();
    assert!(attempts.load(Ordering::SeqCst) > 0);
    assert_eq!(
        failures.load(Ordering::SeqCst),
        0,
        "service probes failed across restarts"
    );
    assert_ne!(
        link_id(),
        first_link,
        "the restarted agent replaced the cgroup link"
    );
    let log = fs::read_to_string(lab.names.node_dir(&node).join("agent.log")).unwrap();
    assert!(
        log.contains("adopted service entries from the kernel"),
        "{log}"
    );
    // The restarted agents' first syncs find every frontend already right (the web Service's and
    // the lab's kube-dns ones).
    let restarted_syncs = log
        .lines()
        .filter(|l| l.contains("services synced") && l.contains("added=0 updated=0 removed=0"))
        .filter(|l| !l.contains("unchanged=0"))
        .count();
    assert!(
        restarted_syncs >= 2,
        "a restarted agent rewrote service entries:\n{log}"
    );
}
