//! Lab and agent lifecycle: an agent restart keeps established connections and pod traffic alive and
//! adopts the pinned maps; `down` leaves nothing named after the lab.

use std::{
    io::{BufRead, BufReader, Write},
    net::{Ipv4Addr, TcpListener, TcpStream},
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use aya::maps::MapData;
use strait_dataplane::{bpffs::DEFAULT_BPFFS, netns};
use strait_lab::{cgroup, names::LabNames, process};
use strait_tests::LabGuard;

use crate::{endpoints, two_pod_lab, who_answers};

fn endpoint_map_id(node: &str) -> u32 {
    let pin = Path::new(DEFAULT_BPFFS)
        .join("strait")
        .join(node)
        .join("maps/ENDPOINT_V1");
    MapData::from_pin(&pin).unwrap().info().unwrap().id()
}

fn roundtrip(stream: &mut TcpStream, reader: &mut BufReader<TcpStream>, message: &str) -> String {
    stream.write_all(format!("{message}\n").as_bytes()).unwrap();
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    line.trim().to_owned()
}

#[test]
fn agent_restart_keeps_connections_and_adopts_pins() {
    let guard = LabGuard::new("rs");
    let mut lab = two_pod_lab(&guard.name);
    let node = lab.state.nodes[0].name.clone();
    let client = lab.state.pod("default/client").unwrap().clone();
    let server = lab.state.pod("default/server").unwrap().clone();

    // An established TCP connection between the pods, on sockets made inside their namespaces.
    let listener = netns::run_in(&netns::path(&server.netns), || {
        TcpListener::bind((Ipv4Addr::UNSPECIFIED, 9100))
    })
    .unwrap()
    .unwrap();
    let echo = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut writer = stream.try_clone().unwrap();
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            writer
                .write_all(format!("echo {line}\n").as_bytes())
                .unwrap();
        }
    });
    let target = (server.ip, 9100);
    let mut stream = netns::run_in(&netns::path(&client.netns), move || {
        TcpStream::connect(target)
    })
    .unwrap()
    .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    assert_eq!(roundtrip(&mut stream, &mut reader, "before"), "echo before");

    // Probe continuously while the agent restarts.
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicUsize::new(0));
    let attempts = Arc::new(AtomicUsize::new(0));
    let prober = {
        let (stop, failures, attempts) = (stop.clone(), failures.clone(), attempts.clone());
        let lab = strait_lab::cluster::Lab::open(&guard.name).unwrap();
        let ip = server.ip;
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                attempts.fetch_add(1, Ordering::SeqCst);
                let answer = lab
                    .probe(
                        "default/client",
                        &format!("{ip}:8080"),
                        false,
                        Duration::from_secs(1),
                    )
                    .unwrap();
                if answer.as_deref() != Ok("default/server") {
                    failures.fetch_add(1, Ordering::SeqCst);
                }
            }
        })
    };
    let map_before = endpoint_map_id(&node);
    let old_pid = lab.state.nodes[0].agent_pid;
    lab.restart_agent(&node).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::SeqCst);
    prober.join().unwrap();

    assert_ne!(
        lab.state.nodes[0].agent_pid, old_pid,
        "a new agent process runs"
    );
    assert!(!process::alive(old_pid));
    assert_eq!(
        endpoint_map_id(&node),
        map_before,
        "the restarted agent adopted the pinned ENDPOINT map"
    );
    assert_eq!(
        failures.load(Ordering::SeqCst),
        0,
        "probes failed during the restart ({} tried)",
        attempts.load(Ordering::SeqCst)
    );
    assert!(attempts.load(Ordering::SeqCst) > 0);
    assert_eq!(
        roundtrip(&mut stream, &mut reader, "after"),
        "echo after",
        "established connection survived"
    );
    assert_eq!(endpoints(&lab, &node).len(), 2, "both endpoints restored");
    assert_eq!(
        who_answers(&lab, "default/server", client.ip, 8080),
        "default/client"
    );
    drop((stream, reader));
    let _ = echo.join();
}

#[test]
fn down_leaves_nothing_named_after_the_lab() {
    let guard = LabGuard::new("dn");
    let names = LabNames::new(&guard.name).unwrap();
    let root_links_before = links_in_root();
    let lab = two_pod_lab(&guard.name);
    let node = lab.state.nodes[0].name.clone();
    let pids: Vec<i32> = lab
        .state
        .pods
        .iter()
        .map(|p| p.workload_pid)
        .chain(lab.state.nodes.iter().map(|n| n.agent_pid))
        .collect();
    assert!(
        netns::list()
            .iter()
            .any(|n| n.starts_with(&names.netns_prefix()))
    );
    assert!(Path::new(DEFAULT_BPFFS).join("strait").join(&node).exists());

    let report = strait_lab::down(&guard.name).unwrap();
    assert!(report.existed);
    assert!(
        report.namespaces >= 5,
        "underlay, external, node and two pods: {report:?}"
    );
    let leftovers: Vec<String> = netns::list()
        .into_iter()
        .filter(|n| n.contains(&guard.name))
        .collect();
    assert!(leftovers.is_empty(), "namespaces left: {leftovers:?}");
    assert!(
        !Path::new(DEFAULT_BPFFS).join("strait").join(&node).exists(),
        "pins left"
    );
    assert!(
        !cgroup::path(&names.cgroup()).unwrap().exists(),
        "cgroup left"
    );
    assert!(!names.run_dir().exists(), "state directory left");
    assert!(
        pids.iter().all(|pid| !process::alive(*pid)),
        "processes left"
    );
    assert!(process::with_marker(&names.process_marker()).is_empty());
    assert_eq!(
        links_in_root(),
        root_links_before,
        "the lab touched the root namespace's links"
    );
    // A second down finds nothing and still succeeds.
    assert!(!strait_lab::down(&guard.name).unwrap().existed);
}

fn links_in_root() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir("/sys/class/net")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    names
}
