//! Interop with Flannel: two strait nodes and one Flannel reference node (a kernel `flannel.1`, routes,
//! neighbours and FDB entries as flanneld makes them, pods on a `cni0` bridge; no strait). Pods talk
//! both ways, TCP and UDP; a capture on the underlay shows Flannel's wire format in both directions
//! (UDP 8472, VNI 1, the inner MACs each side's VTEP expects); a Service whose only endpoint sits on the
//! Flannel node serves strait pods.

use std::{
    net::Ipv4Addr,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    sync::{Arc, Mutex},
    time::Duration,
};

use strait_dataplane::{netlink::vxlan::vtep_mac, netns};
use strait_lab::{
    cluster::Lab,
    state::{LabOptions, NodeRecord},
};
use strait_tests::LabGuard;

use crate::examples;

const FLANNEL_POD: &str = "apiVersion: v1
kind: Pod
metadata: {name: on-flannel, namespace: default, labels: {app: on-flannel}}
spec:
  nodeName: NODE
  containers: [{name: c, image: busybox, ports: [{name: http, containerPort: 8080}, {name: dns, containerPort: 5353, protocol: UDP}]}]
---
apiVersion: v1
kind: Service
metadata: {name: on-flannel, namespace: default}
spec:
  selector: {app: on-flannel}
  ports: [{name: http, port: 80, targetPort: http}]
";

/// A VXLAN packet seen on the underlay: outer addresses, VNI and inner MACs (destination, source).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Tunnelled {
    outer: (Ipv4Addr, Ipv4Addr),
    vni: u32,
    inner_macs: ([u8; 6], [u8; 6]),
}

/// Parses an Ethernet frame as IPv4 / UDP to port 8472 / VXLAN; `None` for anything else.
fn tunnelled(frame: &[u8]) -> Option<Tunnelled> {
    let ip = frame.get(14..)?;
    if frame.get(12..14)? != [0x08, 0x00] || ip.first()? >> 4 != 4 || *ip.get(9)? != 17 {
        return None;
    }
    let udp = ip.get(usize::from(ip[0] & 0x0f) * 4..)?;
    if u16::from_be_bytes([*udp.get(2)?, *udp.get(3)?]) != 8472 {
        return None;
    }
    let vxlan = udp.get(8..16)?;
    let inner = udp.get(16..28)?;
    Some(Tunnelled {
        outer: (
            Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]),
            Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]),
        ),
        vni: u32::from_be_bytes([0, vxlan[4], vxlan[5], vxlan[6]]),
        inner_macs: (inner[0..6].try_into().ok()?, inner[6..12].try_into().ok()?),
    })
}

/// Captures the underlay's VXLAN packets (every interface of its namespace) while it runs.
struct Capture {
    seen: Arc<Mutex<Vec<Tunnelled>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Capture {
    fn start(underlay: &std::path::Path) -> Self {
        let socket = netns::run_in(underlay, || {
            // SAFETY: plain socket(2) call; the descriptor is owned right below.
            let fd = unsafe {
                libc::socket(
                    libc::AF_PACKET,
                    libc::SOCK_RAW,
                    i32::from((libc::ETH_P_ALL as u16).to_be()),
                )
            };
            assert!(
                fd >= 0,
                "AF_PACKET socket: {}",
                std::io::Error::last_os_error()
            );
            // SAFETY: fd is a fresh descriptor we own.
            unsafe { OwnedFd::from_raw_fd(fd) }
        })
        .unwrap();
        let timeout = libc::timeval {
            tv_sec: 0,
            tv_usec: 100_000,
        };
        // SAFETY: setsockopt with a timeval of the right size on our socket.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&raw const timeout).cast(),
                std::mem::size_of::<libc::timeval>() as u32,
            )
        };
        assert_eq!(rc, 0);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let thread = {
            let (seen, stop) = (seen.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 65536];
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    // SAFETY: recv into our buffer of its length.
                    let n = unsafe {
                        libc::recv(socket.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0)
                    };
                    if let Ok(n) = usize::try_from(n)
                        && let Some(packet) = tunnelled(&buf[..n])
                    {
                        seen.lock().unwrap().push(packet);
                    }
                }
            })
        };
        Self {
            seen,
            stop,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> Vec<Tunnelled> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

fn node<'a>(lab: &'a Lab, name: &str) -> &'a NodeRecord {
    lab.state.nodes.iter().find(|n| n.name == name).unwrap()
}

#[test]
fn strait_nodes_and_a_flannel_node_share_one_overlay() {
    strait_tests::require_root();
    strait_tests::bin_dir();
    let guard = LabGuard::new("fl");
    let options = LabOptions {
        flannel_nodes: 1,
        ..LabOptions::default()
    };
    let mut lab =
        Lab::up_with(&guard.name, 2, Some(&examples().join("pods.yaml")), options).expect("lab up");
    let flannel = lab.state.nodes[2].clone();
    let flannel_mac = flannel
        .flannel
        .as_ref()
        .expect("node 3 is Flannel's")
        .vtep_mac;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("on-flannel.yaml");
    std::fs::write(&file, FLANNEL_POD.replace("NODE", &flannel.name)).unwrap();
    lab.apply(&file).unwrap();
    let on_flannel = lab.state.pod("default/on-flannel").unwrap().clone();
    assert_eq!(on_flannel.node, flannel.name);

    let capture = Capture::start(&netns::path(&lab.names.underlay_netns()));
    let probe = |from: &str, target: String, udp: bool| {
        lab.probe(from, &target, udp, Duration::from_secs(2))
            .unwrap()
            .unwrap_or_else(|e| panic!("{from} -> {target}: {e}"))
    };
    for strait_pod in ["default/client", "default/server"] {
        let ip = lab.state.pod(strait_pod).unwrap().ip;
        assert_eq!(
            probe(strait_pod, format!("{}:8080", on_flannel.ip), false),
            "default/on-flannel"
        );
        assert_eq!(
            probe("default/on-flannel", format!("{ip}:8080"), false),
            strait_pod
        );
    }
    assert_eq!(
        probe("default/client", format!("{}:5353", on_flannel.ip), true),
        "default/on-flannel"
    );
    assert_eq!(
        probe(
            "default/on-flannel",
            format!("{}:5353", lab.state.pod("default/server").unwrap().ip),
            true
        ),
        "default/server"
    );
    // The Service's only endpoint is on the Flannel node.
    let cluster_ip = lab.state.services["default/on-flannel"]
        .spec
        .as_ref()
        .unwrap()
        .cluster_ip
        .clone()
        .unwrap();
    assert_eq!(
        probe("default/client", format!("{cluster_ip}:80"), false),
        "default/on-flannel"
    );
    let seen = capture.finish();

    let client_node = node(&lab, &lab.state.pod("default/client").unwrap().node).clone();
    let strait_mac = vtep_mac(client_node.ip);
    let to_flannel = Tunnelled {
        outer: (client_node.ip, flannel.ip),
        vni: 1,
        inner_macs: (flannel_mac, strait_mac),
    };
    let from_flannel = Tunnelled {
        outer: (flannel.ip, client_node.ip),
        vni: 1,
        inner_macs: (strait_mac, flannel_mac),
    };
    assert!(
        seen.contains(&to_flannel),
        "strait -> Flannel on the wire as {to_flannel:?}; seen {seen:?}"
    );
    assert!(
        seen.contains(&from_flannel),
        "Flannel -> strait on the wire as {from_flannel:?}; seen {seen:?}"
    );

    // A strait node leaves: the Flannel node forgets it, as flanneld does when a Node is deleted.
    let leaving = lab.state.nodes[1].clone();
    let overlay_address = leaving.pod_cidr.split('/').next().unwrap().to_owned();
    let mentions = |text: &str| {
        text.contains(&format!("{overlay_address} ")) || text.contains(&format!("{} ", leaving.ip))
    };
    let before = flannel_entries(&flannel.netns);
    assert!(mentions(&before), "{} known before: {before}", leaving.name);
    lab.remove_node(&leaving.name).unwrap();
    let after = flannel_entries(&flannel.netns);
    assert!(!mentions(&after), "{} forgotten: {after}", leaving.name);
}

/// The routes, neighbours and FDB entries of `flannel.1` in the node namespace `netns`, as text.
fn flannel_entries(netns: &str) -> String {
    let mut text = String::new();
    for (tool, what) in [("ip", "route"), ("ip", "neigh"), ("bridge", "fdb")] {
        let out = std::process::Command::new(tool)
            .args(["-n", netns, what, "show", "dev", "flannel.1"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{tool} {what}: {out:?}");
        text.push_str(&String::from_utf8_lossy(&out.stdout));
    }
    text
}
