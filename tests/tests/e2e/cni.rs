//! The CNI plugin driven exactly as a runtime drives it: ADD/CHECK/DEL/GC against a live agent, a failed
//! ADD undone completely, the spec's error codes for bad environments, configs and an absent agent, and the
//! agent socket's own guard (root only, keys checked).

use std::{
    io::Write,
    net::{Ipv4Addr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use serde_json::{Value, json};
use strait_cni::protocol::{AttachmentKey, ErrorKind, Request, Response};
use strait_control::naming::host_ifname;
use strait_dataplane::{netlink::Netlink, netns};
use strait_lab::{
    LabError,
    cluster::Lab,
    cni_exec::{self, CniCall},
};
use strait_tests::{LabGuard, NetnsGuard, bin_dir, require_root};

use crate::endpoints;

pub(crate) struct Node {
    pub(crate) conflist: PathBuf,
    pub(crate) netns: PathBuf,
    pub(crate) name: String,
}

pub(crate) fn empty_lab(guard: &LabGuard) -> (Lab, Node) {
    require_root();
    bin_dir();
    let lab = Lab::up(&guard.name, 1, None).unwrap();
    let node = &lab.state.nodes[0];
    let info = Node {
        conflist: lab
            .names
            .node_dir(&node.name)
            .join("cni/10-strait.conflist"),
        netns: netns::path(&node.netns),
        name: node.name.clone(),
    };
    (lab, info)
}

pub(crate) fn cni(
    node: &Node,
    command: &str,
    id: &str,
    pod_ns: Option<&Path>,
    extra: Option<(&str, Value)>,
) -> Result<Value, LabError> {
    let call = CniCall {
        command,
        container_id: id,
        netns: pod_ns,
        ifname: "eth0",
        pod_namespace: "default",
        pod_name: id,
    };
    cni_exec::invoke(&bin_dir(), &node.conflist, &node.netns, &call, extra)
}

pub(crate) fn cni_code(result: Result<Value, LabError>) -> Option<u64> {
    match result {
        Err(LabError::Cni { code, .. }) => code,
        other => panic!("expected a CNI error, got {other:?}"),
    }
}

/// What ADD and the agent's start set up around a pod on the node: IPv6 off on the host side of the
/// pod's link (a pod cannot reach the node over IPv6), and the SNAT ports reserved in the node's own
/// port allocation.
fn assert_node_guards(node: &Node, container_id: &str) {
    // The host side of the pod's link has IPv6 off: a pod cannot reach the node over IPv6.
    let host_veth = host_ifname(&AttachmentKey {
        container_id: container_id.into(),
        ifname: "eth0".into(),
    });
    let sysctl = format!("/proc/sys/net/ipv6/conf/{host_veth}/disable_ipv6");
    let ipv6_off = netns::run_in(&node.netns, move || std::fs::read_to_string(sysctl))
        .unwrap()
        .unwrap();
    assert_eq!(ipv6_off.trim(), "1", "disable_ipv6 on {host_veth}");
    // The agent reserved its SNAT ports in the node's own port allocation.
    let reserved = netns::run_in(&node.netns, || {
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_reserved_ports")
    })
    .unwrap()
    .unwrap();
    assert!(
        strait_dataplane::sysctl::ports_cover(&reserved, 61000, 65535),
        "ip_local_reserved_ports: {reserved:?}"
    );
}

#[test]
fn add_check_del_gc_against_a_live_agent() {
    let guard = LabGuard::new("cn");
    let (lab, node) = empty_lab(&guard);
    let (a, b, c) = (
        NetnsGuard::new("cna"),
        NetnsGuard::new("cnb"),
        NetnsGuard::new("cnc"),
    );

    let added = cni(&node, "ADD", "pod-a", Some(&a.path), None).unwrap();
    assert_eq!(added["cniVersion"], "1.1.0");
    assert_eq!(added["interfaces"][1]["name"], "eth0");
    assert_eq!(
        added["interfaces"][1]["sandbox"],
        a.path.display().to_string()
    );
    assert_eq!(added["routes"][0]["dst"], "0.0.0.0/0");
    let ip_a = cni_exec::result_address(&added).unwrap();
    assert!(
        added["ips"][0]["address"]
            .as_str()
            .unwrap()
            .ends_with("/32")
    );
    assert_eq!(ip_a.octets()[..3], [10, 244, 1]);
    assert_node_guards(&node, "pod-a");
    let ip_b = cni_exec::result_address(&cni(&node, "ADD", "pod-b", Some(&b.path), None).unwrap())
        .unwrap();
    assert_ne!(ip_a, ip_b);

    // The two namespaces talk over what ADD built.
    let listener = netns::run_in(&b.path, || TcpListener::bind((Ipv4Addr::UNSPECIFIED, 7000)))
        .unwrap()
        .unwrap();
    let client = netns::run_in(&a.path, move || TcpStream::connect((ip_b, 7000))).unwrap();
    let (mut server_side, _) = listener.accept().unwrap();
    server_side.write_all(b"x").unwrap();
    assert!(client.is_ok());

    cni(
        &node,
        "CHECK",
        "pod-a",
        Some(&a.path),
        Some(("prevResult", added.clone())),
    )
    .unwrap();
    assert_eq!(
        cni(&node, "DEL", "pod-a", Some(&a.path), None).unwrap(),
        Value::Null
    );
    cni(&node, "DEL", "pod-a", Some(&a.path), None).expect("a repeated DEL succeeds");
    assert_eq!(
        cni_code(cni(&node, "CHECK", "pod-a", Some(&a.path), None)),
        Some(3)
    );

    // A pod in a namespace that does not exist is an invalid request (code 7), and nothing is left of it.
    let missing = Path::new("/run/netns/strait-test-no-such-namespace");
    assert_eq!(
        cni_code(cni(&node, "ADD", "pod-x", Some(missing), None)),
        Some(7)
    );
    // A namespace outside the runtimes' netns directories (here the node's own) is refused, and
    // nothing is plumbed into it.
    let allocated_before = allocated(&lab, &node.name);
    assert_eq!(
        cni_code(cni(
            &node,
            "ADD",
            "pod-y",
            Some(Path::new("/proc/1/ns/net")),
            None
        )),
        Some(7)
    );
    assert_eq!(allocated(&lab, &node.name), allocated_before);

    cni(&node, "ADD", "pod-c", Some(&c.path), None).unwrap();
    let valid = json!([{ "containerID": "pod-b", "ifname": "eth0" }]);
    cni(
        &node,
        "GC",
        "",
        None,
        Some(("cni.dev/valid-attachments", valid)),
    )
    .unwrap();
    let left: Vec<String> = endpoints(&lab, &node.name)
        .iter()
        .map(|e| e["key"]["container_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        left,
        vec!["pod-b".to_owned()],
        "GC removed everything but the valid attachment"
    );
    assert_eq!(cni(&node, "STATUS", "", None, None).unwrap(), Value::Null);
}

#[test]
fn failed_add_leaves_nothing_behind() {
    let guard = LabGuard::new("cu");
    let (lab, node) = empty_lab(&guard);
    let pod = NetnsGuard::new("cuf");
    // The pod namespace already has an eth0, so ADD fails after the veth pair was created.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        Netlink::connect_in(&pod.path)
            .unwrap()
            .create_veth("eth0", "eth0peer")
            .await
            .unwrap();
    });
    assert!(cni(&node, "ADD", "pod-f", Some(&pod.path), None).is_err());
    assert!(
        endpoints(&lab, &node.name).is_empty(),
        "the agent kept an endpoint"
    );
    let veth = host_ifname(&AttachmentKey {
        container_id: "pod-f".into(),
        ifname: "eth0".into(),
    });
    let leftover = runtime.block_on(async {
        Netlink::connect_in(&node.netns)
            .unwrap()
            .link_index(&veth)
            .await
            .unwrap()
    });
    assert_eq!(leftover, None, "host veth {veth} was not removed");
    // The address went back to the pool.
    assert_eq!(
        allocated(&lab, &node.name),
        0,
        "the failed ADD kept its address"
    );
    let fresh = NetnsGuard::new("cug");
    cni(&node, "ADD", "pod-g", Some(&fresh.path), None).unwrap();
    assert_eq!(allocated(&lab, &node.name), 1);
}

pub(crate) fn allocated(lab: &Lab, node: &str) -> u64 {
    let text = lab.agent_get(node, "/metrics").unwrap();
    let prefix = format!("strait_ipam_allocated{{node=\"{node}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no strait_ipam_allocated in:\n{text}"))
}

/// (what, environment, stdin, expected CNI error code).
type ErrorCase<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str, u64);

/// Runs the plugin binary with `env` and `stdin`; returns (exit success, parsed stdout).
fn plugin(env: &[(&str, &str)], stdin: &str) -> (bool, Value) {
    let mut child = Command::new(bin_dir().join("strait-cni"))
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    (
        output.status.success(),
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

#[test]
fn plugin_reports_spec_error_codes() {
    let config = r#"{"cniVersion":"1.1.0","name":"strait","type":"strait-cni","agentSocket":"/run/strait-test-nobody-listens.sock"}"#;
    let add = [
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "c1"),
        ("CNI_NETNS", "/proc/self/ns/net"),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/opt/cni/bin"),
    ];
    let (ok, version) = plugin(&[("CNI_COMMAND", "VERSION")], "");
    assert!(ok);
    assert!(
        version["supportedVersions"]
            .as_array()
            .unwrap()
            .contains(&json!("1.1.0"))
    );

    let cases: [ErrorCase; 6] = [
        ("no CNI_COMMAND", &[], config, 4),
        ("ADD without CNI_CONTAINERID", &add[..1], config, 4),
        ("config that is not JSON", &add, "{ nope", 6),
        (
            "config without a name",
            &add,
            r#"{"cniVersion":"1.1.0","type":"strait-cni"}"#,
            7,
        ),
        ("agent not running", &add, config, 11),
        (
            "STATUS with the agent not running",
            &[("CNI_COMMAND", "STATUS")],
            config,
            50,
        ),
    ];
    for (what, env, stdin, code) in cases {
        let (ok, error) = plugin(env, stdin);
        assert!(!ok, "{what}: must fail");
        assert_eq!(error["code"], code, "{what}: {error}");
        assert!(
            error["msg"].as_str().is_some_and(|m| !m.is_empty()),
            "{what}: message"
        );
    }

    // The error object carries the configuration's cniVersion, not the plugin's own.
    let old = r#"{"cniVersion":"0.4.0","name":"strait","type":"strait-cni","agentSocket":"/run/strait-test-nobody-listens.sock"}"#;
    let (ok, error) = plugin(&add, old);
    assert!(!ok);
    assert_eq!(error["code"], 11, "{error}");
    assert_eq!(error["cniVersion"], "0.4.0", "{error}");
    let (_, error) = plugin(&[], old);
    assert_eq!(error["cniVersion"], "0.4.0", "{error}");
}

/// One request on the agent socket, as the plugin sends it; the agent's answer.
pub(crate) fn agent_request(socket: &Path, request: &Request) -> Response {
    use std::io::{BufRead, BufReader};
    let mut stream = std::os::unix::net::UnixStream::connect(socket).unwrap();
    let mut line = serde_json::to_vec(request).unwrap();
    line.push(b'\n');
    // A refused caller may be answered before its request is read.
    let _ = stream.write_all(&line);
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer).unwrap();
    serde_json::from_str(&answer).unwrap()
}

/// Sends `request` to the agent socket as user nobody, whom the socket file's mode would let in
/// (it is opened to everyone first), and checks the agent refuses: a thread of its own drops to nobody
/// (the raw syscall changes only the calling thread's credentials) and ends right after.
pub(crate) fn assert_nobody_is_refused(socket: &Path, request: Request) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let socket = socket.to_owned();
    let answer = std::thread::spawn(move || {
        // SAFETY: changes the credentials of this thread only; it ends right after.
        let rc = unsafe { libc::syscall(libc::SYS_setresuid, 65534, 65534, 65534) };
        assert_eq!(rc, 0, "setresuid");
        agent_request(&socket, &request)
    })
    .join()
    .unwrap();
    assert!(
        matches!(&answer, Response::Error { message, .. } if message.contains("not root")),
        "{answer:?}"
    );
}

/// The agent socket is root's only (its mode, and each caller's credentials), and the agent checks every
/// attachment key as the CNI spec defines it, whatever the plugin checked.
#[test]
fn agent_socket_refuses_other_users_and_bad_keys() {
    use std::os::unix::fs::PermissionsExt as _;
    let guard = LabGuard::new("ck");
    let (lab, _node) = empty_lab(&guard);
    let socket = PathBuf::from(&lab.state.nodes[0].agent_socket);
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "socket mode {mode:o}");

    for (container_id, ifname) in [
        ("../../etc", "eth0"),
        ("-dash", "eth0"),
        ("", "eth0"),
        ("ok", "a/b"),
        ("ok", "waytoolonginterfacename"),
    ] {
        let key = AttachmentKey {
            container_id: container_id.into(),
            ifname: ifname.into(),
        };
        let answer = agent_request(&socket, &Request::Del(key));
        assert!(
            matches!(
                &answer,
                Response::Error {
                    kind: ErrorKind::InvalidRequest,
                    ..
                }
            ),
            "{container_id:?}/{ifname:?}: {answer:?}"
        );
    }
    assert!(matches!(
        agent_request(&socket, &Request::Status),
        Response::Status { ready: true, .. }
    ));

    // A caller that is not root is refused even though the socket file would let it in.
    assert_nobody_is_refused(&socket, Request::Status);
}

/// The agent's HTTP server serves at most 64 connections at once: one more is closed as soon as it is
/// accepted, and the slots come back when the clients go.
#[test]
fn agent_http_caps_its_connections() {
    let guard = LabGuard::new("ch");
    let (lab, node) = empty_lab(&guard);
    let port = lab.state.nodes[0].http_port;
    let connect = |netns: &Path| {
        netns::run_in(netns, move || {
            TcpStream::connect((Ipv4Addr::LOCALHOST, port))
        })
        .unwrap()
        .unwrap()
    };
    let idle: Vec<TcpStream> = (0..64).map(|_| connect(&node.netns)).collect();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let mut extra = connect(&node.netns);
    extra
        .set_read_timeout(Some(std::time::Duration::from_secs(3)))
        .unwrap();
    let mut buf = [0u8; 16];
    let read = std::io::Read::read(&mut extra, &mut buf);
    assert!(
        matches!(read, Ok(0))
            || matches!(&read, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset),
        "the 65th connection is closed at once: {read:?}"
    );
    drop(idle);
    std::thread::sleep(std::time::Duration::from_millis(300));
    lab.agent_get(&node.name, "/healthz")
        .expect("served again once the idle clients left");
}
