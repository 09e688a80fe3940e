//! The agent's own guarantees towards its callers: a DEL that fails part-way keeps the attachment
//! recorded (and its address taken) until a later DEL, GC or agent start finishes it; the endpoint list
//! is served on the root-only socket, not over HTTP; a stopping agent leaves a socket another agent
//! bound at its path alone.

use std::{
    os::unix::net::{UnixListener, UnixStream},
    path::{Path, PathBuf},
    time::Duration,
};

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use serde_json::json;
use strait_cni::protocol::{AttachmentKey, Request};
use strait_control::naming::host_ifname;
use strait_dataplane::{bpffs::DEFAULT_BPFFS, netlink::Netlink};
use strait_lab::{cluster::Lab, process};
use strait_tests::{LabGuard, NetnsGuard};

use crate::cni::{Node, allocated, assert_nobody_is_refused, cni, cni_code, empty_lab};

/// A file bind-mounted over a link pin: the agent cannot unlink the pin (EBUSY) until it is
/// unmounted, so the program-link step of a DEL fails.
struct PinBlocked {
    pin: PathBuf,
    mounted: bool,
}

impl PinBlocked {
    fn new(pin: &Path) -> Self {
        assert!(pin.exists(), "no link pin at {}", pin.display());
        mount(
            Some("/dev/null"),
            pin,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .unwrap_or_else(|e| panic!("bind-mounting over {}: {e}", pin.display()));
        Self {
            pin: pin.to_path_buf(),
            mounted: true,
        }
    }

    fn release(&mut self) {
        if self.mounted {
            umount2(&self.pin, MntFlags::MNT_DETACH).expect("unmounting the pin blocker");
            self.mounted = false;
        }
    }
}

impl Drop for PinBlocked {
    fn drop(&mut self) {
        self.release();
    }
}

fn veth_of(container_id: &str) -> String {
    host_ifname(&AttachmentKey {
        container_id: container_id.into(),
        ifname: "eth0".into(),
    })
}

fn link_pin(node: &str, veth: &str) -> PathBuf {
    Path::new(DEFAULT_BPFFS)
        .join("strait")
        .join(node)
        .join("links")
        .join(format!("from_pod-{veth}"))
}

fn veth_exists(node: &Node, veth: &str) -> bool {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        Netlink::connect_in(&node.netns)
            .unwrap()
            .link_index(veth)
            .await
            .unwrap()
            .is_some()
    })
}

/// (container ids in service, container ids being deleted) on `node`, asked on the agent socket.
fn listed(lab: &Lab, node: &str) -> (Vec<String>, Vec<String>) {
    let list = lab.agent_attachments(node).unwrap();
    let ids = |all: &[strait_cni::protocol::Attachment]| {
        all.iter()
            .map(|a| a.key.container_id.clone())
            .collect::<Vec<_>>()
    };
    (ids(&list.attachments), ids(&list.deleting))
}

fn deleting_gauge(lab: &Lab, node: &str) -> u64 {
    let text = lab.agent_get(node, "/metrics").unwrap();
    let prefix = format!("strait_endpoints_deleting{{node=\"{node}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no strait_endpoints_deleting in:\n{text}"))
}

/// A DEL whose link step fails is an error, keeps the attachment recorded as being deleted (veth
/// and address kept), is not forgotten by a repeated DEL, an ADD of the same attachment or an agent
/// restart, and is finished by the next DEL once the step can succeed; a GC finishes one the same way.
#[test]
fn a_failed_del_keeps_the_address_until_a_retry_removes_the_link() {
    let guard = LabGuard::new("dt");
    let (mut lab, node) = empty_lab(&guard);
    let (pod_d, pod_e) = (NetnsGuard::new("dtd"), NetnsGuard::new("dte"));
    cni(&node, "ADD", "pod-d", Some(&pod_d.path), None).unwrap();
    cni(&node, "ADD", "pod-e", Some(&pod_e.path), None).unwrap();
    let veth = veth_of("pod-d");
    let mut blocked = PinBlocked::new(&link_pin(&node.name, &veth));

    assert_eq!(
        cni_code(cni(&node, "DEL", "pod-d", Some(&pod_d.path), None)),
        Some(101),
        "a DEL that could not remove the link fails"
    );
    let still_recorded = |lab: &Lab, what: &str| {
        assert_eq!(
            listed(lab, &node.name),
            (vec!["pod-e".to_owned()], vec!["pod-d".to_owned()]),
            "{what}: pod-d is recorded as being deleted"
        );
        assert_eq!(allocated(lab, &node.name), 2, "{what}: its address is kept");
        assert_eq!(deleting_gauge(lab, &node.name), 1, "{what}");
        assert!(veth_exists(&node, &veth), "{what}: its veth is still there");
    };
    still_recorded(&lab, "after the failed DEL");
    // Not forgotten: a repeated DEL tries again (and fails again), it does not report success.
    assert_eq!(
        cni_code(cni(&node, "DEL", "pod-d", Some(&pod_d.path), None)),
        Some(101)
    );
    still_recorded(&lab, "after a second failed DEL");
    // An ADD of the same attachment cannot reuse its veth name yet: "try again later".
    assert_eq!(
        cni_code(cni(&node, "ADD", "pod-d", Some(&pod_d.path), None)),
        Some(11)
    );
    still_recorded(&lab, "after an ADD of the same attachment");
    // An agent restart keeps the record and the address (the retry at start fails too).
    lab.restart_agent(&node.name).unwrap();
    still_recorded(&lab, "after an agent restart");

    blocked.release();
    cni(&node, "DEL", "pod-d", Some(&pod_d.path), None).expect("the retried DEL finishes");
    assert!(!veth_exists(&node, &veth), "the veth is gone");
    assert_eq!(listed(&lab, &node.name), (vec!["pod-e".to_owned()], vec![]));
    assert_eq!(allocated(&lab, &node.name), 1, "the address went back");
    assert_eq!(deleting_gauge(&lab, &node.name), 0);

    // A pending removal is finished by GC as well.
    let veth_e = veth_of("pod-e");
    let mut blocked = PinBlocked::new(&link_pin(&node.name, &veth_e));
    assert!(cni(&node, "DEL", "pod-e", Some(&pod_e.path), None).is_err());
    blocked.release();
    let valid = json!([]);
    cni(
        &node,
        "GC",
        "",
        None,
        Some(("cni.dev/valid-attachments", valid)),
    )
    .unwrap();
    assert!(!veth_exists(&node, &veth_e));
    assert_eq!(listed(&lab, &node.name), (vec![], vec![]));
    assert_eq!(allocated(&lab, &node.name), 0);
}

/// The endpoint list (container ids, netns paths) is answered on the agent socket, to root only;
/// over HTTP `/endpoints` is not found.
#[test]
fn the_endpoint_list_is_served_on_the_socket_only() {
    let guard = LabGuard::new("el");
    let (lab, node) = empty_lab(&guard);
    let pod = NetnsGuard::new("elp");
    cni(&node, "ADD", "pod-l", Some(&pod.path), None).unwrap();
    assert_eq!(listed(&lab, &node.name), (vec!["pod-l".to_owned()], vec![]));

    let over_http = lab.agent_get(&node.name, "/endpoints").unwrap_err();
    assert!(over_http.to_string().contains("404"), "{over_http}");
    let metrics = lab.agent_get(&node.name, "/metrics").unwrap();
    assert!(
        !metrics.contains("pod-l") && !metrics.contains(&pod.path.display().to_string()),
        "no container id or netns path over HTTP"
    );

    // A caller that is not root gets no list (this thread alone drops to nobody).
    let socket = PathBuf::from(&lab.state.nodes[0].agent_socket);
    assert_nobody_is_refused(&socket, Request::Attachments);
}

/// A stopping agent removes its socket only if the path still holds the socket it bound: one that a
/// second agent bound there since stays.
#[test]
fn a_stopping_agent_leaves_another_agents_socket_alone() {
    let guard = LabGuard::new("so");
    let (lab, _node) = empty_lab(&guard);
    let record = &lab.state.nodes[0];
    let socket = PathBuf::from(&record.agent_socket);
    // A second agent took the path over (the first one's file was removed under it).
    std::fs::remove_file(&socket).unwrap();
    let second = UnixListener::bind(&socket).unwrap();
    process::stop(record.agent_pid, Duration::from_secs(5));
    assert!(!process::alive(record.agent_pid), "the first agent stopped");
    assert!(socket.exists(), "the second agent's socket was removed");
    UnixStream::connect(&socket).expect("the second agent is still reachable");
    drop(second);

    // The agent's own socket, still its own at shutdown, is removed as before.
    let guard = LabGuard::new("sp");
    let (lab, _node) = empty_lab(&guard);
    let record = &lab.state.nodes[0];
    process::stop(record.agent_pid, Duration::from_secs(5));
    assert!(!Path::new(&record.agent_socket).exists());
}
