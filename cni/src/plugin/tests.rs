//! Tests of the whole invocation: environment + stdin in, stdout + exit code out, against a fake
//! agent and (once) the real client on a real unix socket.

use std::{
    cell::RefCell,
    io::{BufRead, BufReader, Write},
    net::Ipv4Addr,
    os::unix::net::UnixListener,
    path::PathBuf,
};

use serde_json::{Value, json};

use super::*;
use crate::protocol::Attachment;

const CONFIG: &str = r#"{"cniVersion":"1.1.0","name":"strait","type":"strait-cni","agentSocket":"/run/test/agent.sock","timeoutMs":1234}"#;

type Answer = Box<dyn Fn(&Request) -> Result<Response, ClientError>>;

/// Records every call and answers with `answer`.
struct FakeAgent {
    answer: Answer,
    calls: RefCell<Vec<(PathBuf, Request, Duration)>>,
}

impl FakeAgent {
    fn answering(answer: impl Fn(&Request) -> Result<Response, ClientError> + 'static) -> Self {
        FakeAgent {
            answer: Box::new(answer),
            calls: RefCell::new(Vec::new()),
        }
    }

    fn with(response: Response) -> Self {
        FakeAgent::answering(move |_| Ok(response.clone()))
    }

    fn refusing(kind: ErrorKind) -> Self {
        FakeAgent::with(Response::Error {
            kind,
            message: "agent says no".into(),
        })
    }

    fn unreachable() -> Self {
        FakeAgent::answering(|_| {
            Err(ClientError::Unreachable {
                socket: "/run/test/agent.sock".into(),
                source: io::Error::from(io::ErrorKind::ConnectionRefused),
            })
        })
    }

    fn requests(&self) -> Vec<Request> {
        self.calls.borrow().iter().map(|c| c.1.clone()).collect()
    }
}

impl Agent for FakeAgent {
    fn call(
        &self,
        socket: &Path,
        request: &Request,
        timeout: Duration,
    ) -> Result<Response, ClientError> {
        self.calls
            .borrow_mut()
            .push((socket.to_owned(), request.clone(), timeout));
        (self.answer)(request)
    }
}

fn vars(pairs: &[(&str, &str)]) -> EnvVars {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn env_for(command: &str) -> EnvVars {
    vars(&[
        ("CNI_COMMAND", command),
        ("CNI_CONTAINERID", "c0ffee"),
        ("CNI_NETNS", "/var/run/netns/pod1"),
        ("CNI_IFNAME", "eth0"),
        (
            "CNI_ARGS",
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=cart-0",
        ),
        ("CNI_PATH", "/opt/cni/bin"),
    ])
}

fn attachment() -> Attachment {
    Attachment {
        key: AttachmentKey {
            container_id: "c0ffee".into(),
            ifname: "eth0".into(),
        },
        netns: "/var/run/netns/pod1".into(),
        pod_namespace: Some("shop".into()),
        pod_name: Some("cart-0".into()),
        host_ifname: "stc0ffee0".into(),
        host_mac: "02:aa:00:00:00:01".into(),
        pod_mac: "02:bb:00:00:00:02".into(),
        address: Ipv4Addr::new(10, 244, 3, 9),
        gateway: Ipv4Addr::new(169, 254, 1, 1),
        mtu: Some(1450),
    }
}

fn config_with(extra: &str) -> String {
    format!(r#"{{"cniVersion":"1.1.0","name":"strait","type":"strait-cni",{extra}}}"#)
}

/// Asserts `outcome` is a CNI error with `code` for a configuration declaring cniVersion 1.1.0 (or
/// none), and returns its parsed JSON.
fn assert_error(outcome: &Outcome, code: u32) -> Value {
    assert_versioned_error(outcome, code, "1.1.0")
}

/// Asserts `outcome` is a CNI error with `code` whose `cniVersion` is `version`.
fn assert_versioned_error(outcome: &Outcome, code: u32, version: &str) -> Value {
    assert_eq!(outcome.exit_code, 1, "errors exit non-zero: {outcome:?}");
    let reply: Value = serde_json::from_str(&outcome.stdout).expect("error is JSON");
    assert_eq!(reply["code"], code, "{reply}");
    assert_eq!(reply["cniVersion"], version, "{reply}");
    assert!(
        !reply["msg"].as_str().unwrap().is_empty(),
        "msg must be set: {reply}"
    );
    reply
}

fn assert_silent_success(outcome: &Outcome) {
    assert_eq!(outcome, &Outcome::success(String::new()));
}

#[test]
fn version_works_with_empty_stdin() {
    let agent = FakeAgent::unreachable();
    let outcome = run(&vars(&[("CNI_COMMAND", "VERSION")]), b"", &agent);
    assert_eq!(outcome.exit_code, 0);
    assert_eq!(
        outcome.stdout,
        r#"{"cniVersion":"1.1.0","supportedVersions":["0.3.0","0.3.1","0.4.0","1.0.0","1.1.0"]}"#
    );
    // Whatever stdin holds is ignored, and the agent is never asked.
    let again = run(
        &vars(&[("CNI_COMMAND", "VERSION")]),
        b"{\"cniVersion\":\"9\"}",
        &agent,
    );
    assert_eq!(again, outcome);
    assert!(agent.requests().is_empty());
}

#[test]
fn add_sends_the_attachment_and_prints_the_result() {
    let agent = FakeAgent::with(Response::Added(attachment()));
    let outcome = run(&env_for("ADD"), CONFIG.as_bytes(), &agent);
    assert_eq!(outcome.exit_code, 0, "{}", outcome.stdout);
    let result: Value = serde_json::from_str(&outcome.stdout).unwrap();
    assert_eq!(
        result,
        json!({
            "cniVersion": "1.1.0",
            "interfaces": [
                {"name": "stc0ffee0", "mac": "02:aa:00:00:00:01"},
                {"name": "eth0", "mac": "02:bb:00:00:00:02", "mtu": 1450, "sandbox": "/var/run/netns/pod1"}
            ],
            "ips": [{"address": "10.244.3.9/32", "gateway": "169.254.1.1", "interface": 1}],
            "routes": [{"dst": "0.0.0.0/0", "gw": "169.254.1.1"}],
            "dns": {}
        })
    );
    let calls = agent.calls.borrow();
    assert_eq!(calls.len(), 1);
    let (socket, request, timeout) = &calls[0];
    assert_eq!(socket, Path::new("/run/test/agent.sock"));
    assert_eq!(*timeout, Duration::from_millis(1234));
    assert_eq!(
        *request,
        Request::Add(AttachmentRequest {
            key: AttachmentKey {
                container_id: "c0ffee".into(),
                ifname: "eth0".into(),
            },
            netns: "/var/run/netns/pod1".into(),
            pod_namespace: Some("shop".into()),
            pod_name: Some("cart-0".into()),
        })
    );
}

#[test]
fn add_result_follows_the_configured_version() {
    let agent = FakeAgent::with(Response::Added(attachment()));
    let config = r#"{"cniVersion":"0.3.1","name":"strait","type":"strait-cni"}"#;
    let outcome = run(&env_for("ADD"), config.as_bytes(), &agent);
    let result: Value = serde_json::from_str(&outcome.stdout).unwrap();
    assert_eq!(result["cniVersion"], "0.3.1");
    assert_eq!(result["ips"][0]["version"], "4");
    // The default socket and timeout apply when the config names none.
    let calls = agent.calls.borrow();
    assert_eq!(calls[0].0, Path::new(crate::protocol::DEFAULT_AGENT_SOCKET));
    assert_eq!(calls[0].2, Duration::from_secs(10));
}

#[test]
fn environment_errors_are_code_4_and_name_the_variable() {
    let agent = FakeAgent::with(Response::Added(attachment()));
    let mut no_netns = env_for("ADD");
    no_netns.remove("CNI_NETNS");
    let reply = assert_error(&run(&no_netns, CONFIG.as_bytes(), &agent), 4);
    assert!(
        reply["msg"].as_str().unwrap().contains("CNI_NETNS"),
        "{reply}"
    );
    assert!(!reply["details"].as_str().unwrap().is_empty());

    let reply = assert_error(&run(&env_for("EXPLODE"), CONFIG.as_bytes(), &agent), 4);
    assert!(reply["msg"].as_str().unwrap().contains("EXPLODE"));

    let reply = assert_error(&run(&EnvVars::new(), CONFIG.as_bytes(), &agent), 4);
    assert!(reply["msg"].as_str().unwrap().contains("CNI_COMMAND"));

    let mut bad_args = env_for("ADD");
    bad_args.insert("CNI_ARGS".into(), "K8S_POD_NAME".into());
    assert_error(&run(&bad_args, CONFIG.as_bytes(), &agent), 4);

    let mut bad_ifname = env_for("CHECK");
    bad_ifname.insert("CNI_IFNAME".into(), "eth0/evil".into());
    assert_error(&run(&bad_ifname, CONFIG.as_bytes(), &agent), 4);

    let mut del = env_for("DEL");
    del.remove("CNI_IFNAME");
    assert_error(&run(&del, CONFIG.as_bytes(), &agent), 4);

    assert!(
        agent.requests().is_empty(),
        "bad input never reaches the agent"
    );
}

#[test]
fn errors_carry_the_configured_version() {
    let old = br#"{"cniVersion":"0.4.0","name":"strait","type":"strait-cni"}"#;
    // An environment error, before the configuration is validated.
    assert_versioned_error(
        &run(&env_for("EXPLODE"), old, &FakeAgent::unreachable()),
        4,
        "0.4.0",
    );
    // An agent that cannot be reached.
    assert_versioned_error(
        &run(&env_for("ADD"), old, &FakeAgent::unreachable()),
        11,
        "0.4.0",
    );
    // An agent that refuses.
    let refusing = FakeAgent::refusing(ErrorKind::Exhausted);
    assert_versioned_error(&run(&env_for("ADD"), old, &refusing), 100, "0.4.0");
    // A configuration that is invalid but declares its version.
    let nameless = br#"{"cniVersion":"1.0.0"}"#;
    assert_versioned_error(&run(&env_for("ADD"), nameless, &refusing), 7, "1.0.0");
    // Only an unreadable configuration falls back to the plugin's own version.
    assert_versioned_error(&run(&env_for("ADD"), b"{", &refusing), 6, "1.1.0");
    assert_versioned_error(
        &run(&env_for("ADD"), br#"{"cniVersion":4}"#, &refusing),
        7,
        "1.1.0",
    );
}

#[test]
fn config_errors_have_their_codes() {
    let agent = FakeAgent::with(Response::Added(attachment()));
    let add = env_for("ADD");
    assert_error(&run(&add, b"", &agent), 6);
    assert_error(&run(&add, b"cniVersion=1.1.0", &agent), 6);
    let reply = assert_error(&run(&add, br#"{"name":"strait"}"#, &agent), 7);
    assert!(reply["msg"].as_str().unwrap().contains("cniVersion"));
    let reply = assert_error(&run(&add, br#"{"cniVersion":"1.1.0"}"#, &agent), 7);
    assert!(reply["msg"].as_str().unwrap().contains("name"));
    let wrong_type = br#"{"cniVersion":"1.1.0","name":"strait","type":"bridge"}"#;
    let reply = assert_error(&run(&add, wrong_type, &agent), 7);
    assert!(reply["msg"].as_str().unwrap().contains("bridge"));
    let old = br#"{"cniVersion":"0.2.0","name":"strait","type":"strait-cni"}"#;
    let reply = assert_versioned_error(&run(&add, old, &agent), 1, "0.2.0");
    assert!(reply["msg"].as_str().unwrap().contains("0.2.0"));
    let bad_timeout = config_with(r#""timeoutMs":"soon""#);
    let reply = assert_error(&run(&add, bad_timeout.as_bytes(), &agent), 7);
    assert!(reply["msg"].as_str().unwrap().contains("timeoutMs"));
    assert!(agent.requests().is_empty());
}

#[test]
fn agent_refusals_map_to_cni_codes() {
    let cases = [
        (ErrorKind::TryAgain, 11),
        (ErrorKind::NotFound, 3),
        (ErrorKind::InvalidRequest, 7),
        (ErrorKind::Exhausted, 100),
        (ErrorKind::Internal, 101),
    ];
    for (kind, code) in cases {
        let agent = FakeAgent::refusing(kind);
        let reply = assert_error(&run(&env_for("ADD"), CONFIG.as_bytes(), &agent), code);
        assert!(
            reply["msg"].as_str().unwrap().contains("agent says no"),
            "the agent's message reaches the operator: {reply}"
        );
    }
}

#[test]
fn unreachable_agent_is_try_again_later() {
    let gc_config = config_with(r#""cni.dev/valid-attachments":[]"#);
    for (command, config) in [
        ("ADD", CONFIG.to_owned()),
        ("DEL", CONFIG.to_owned()),
        ("CHECK", CONFIG.to_owned()),
        ("GC", gc_config),
    ] {
        let agent = FakeAgent::unreachable();
        let reply = assert_error(&run(&env_for(command), config.as_bytes(), &agent), 11);
        let msg = reply["msg"].as_str().unwrap();
        assert!(
            msg.contains("/run/test/agent.sock"),
            "names the socket: {msg}"
        );
        assert!(msg.starts_with(command), "names the command: {msg}");
    }
}

#[test]
fn broken_conversations_are_io_failures_and_a_vanished_agent_try_again() {
    let bad_response = FakeAgent::answering(|_| {
        Err(ClientError::BadResponse {
            socket: "/s".into(),
            source: serde_json::from_str::<Response>("{}").unwrap_err(),
        })
    });
    assert_error(&run(&env_for("ADD"), CONFIG.as_bytes(), &bad_response), 5);
    let timed_out = FakeAgent::answering(|_| {
        Err(ClientError::Io {
            socket: "/s".into(),
            source: io::Error::from(io::ErrorKind::TimedOut),
        })
    });
    assert_error(&run(&env_for("DEL"), CONFIG.as_bytes(), &timed_out), 5);
    let closed = FakeAgent::answering(|_| {
        Err(ClientError::Closed {
            socket: "/s".into(),
            source: Some(io::Error::from(io::ErrorKind::ConnectionReset)),
        })
    });
    assert_error(&run(&env_for("ADD"), CONFIG.as_bytes(), &closed), 11);
    assert_error(&run(&env_for("DEL"), CONFIG.as_bytes(), &closed), 11);
    let wrong_answer = FakeAgent::with(Response::Deleted { existed: true });
    let reply = assert_error(&run(&env_for("ADD"), CONFIG.as_bytes(), &wrong_answer), 5);
    assert!(reply["msg"].as_str().unwrap().contains("deleted"));
}

#[test]
fn del_is_silent_and_tolerates_missing_attachments() {
    for response in [
        Response::Deleted { existed: true },
        Response::Deleted { existed: false },
        Response::Error {
            kind: ErrorKind::NotFound,
            message: "no such attachment".into(),
        },
    ] {
        let agent = FakeAgent::with(response);
        let mut env = env_for("DEL");
        env.remove("CNI_NETNS");
        assert_silent_success(&run(&env, CONFIG.as_bytes(), &agent));
        assert_eq!(
            agent.requests(),
            [Request::Del(AttachmentKey {
                container_id: "c0ffee".into(),
                ifname: "eth0".into(),
            })]
        );
    }
    let agent = FakeAgent::refusing(ErrorKind::Internal);
    assert_error(&run(&env_for("DEL"), CONFIG.as_bytes(), &agent), 101);
}

#[test]
fn check_compares_prev_result_with_the_agent() {
    let agent = FakeAgent::with(Response::Checked(attachment()));
    let check = env_for("CHECK");
    assert_silent_success(&run(&check, CONFIG.as_bytes(), &agent));
    assert!(matches!(agent.requests()[0], Request::Check(_)));

    let same = config_with(
        r#""prevResult":{"cniVersion":"1.1.0","ips":[{"address":"10.244.3.9/32","interface":1}]}"#,
    );
    assert_silent_success(&run(&check, same.as_bytes(), &agent));

    let moved = config_with(r#""prevResult":{"ips":[{"address":"10.244.3.10/32"}]}"#);
    let reply = assert_error(&run(&check, moved.as_bytes(), &agent), 7);
    let msg = reply["msg"].as_str().unwrap();
    assert!(
        msg.contains("10.244.3.10/32") && msg.contains("10.244.3.9/32"),
        "{msg}"
    );

    let garbled = config_with(r#""prevResult":{"ips":[{"address":"not-an-ip"}]}"#);
    assert_error(&run(&check, garbled.as_bytes(), &agent), 7);

    let unknown = FakeAgent::refusing(ErrorKind::NotFound);
    assert_error(&run(&check, CONFIG.as_bytes(), &unknown), 3);
}

#[test]
fn check_needs_cni_0_4_0() {
    let agent = FakeAgent::with(Response::Checked(attachment()));
    let old = br#"{"cniVersion":"0.3.1","name":"strait"}"#;
    let reply = assert_versioned_error(&run(&env_for("CHECK"), old, &agent), 1, "0.3.1");
    assert!(reply["msg"].as_str().unwrap().contains("0.4.0"));
    assert!(agent.requests().is_empty());
}

#[test]
fn gc_forwards_the_valid_attachments() {
    let agent = FakeAgent::with(Response::Collected {
        removed: Vec::new(),
    });
    let config = config_with(
        r#""cni.dev/valid-attachments":[{"containerID":"c1","ifname":"eth0"},{"containerID":"c2","ifname":"eth0"}]"#,
    );
    let gc = vars(&[("CNI_COMMAND", "GC")]);
    assert_silent_success(&run(&gc, config.as_bytes(), &agent));
    let key = |id: &str| AttachmentKey {
        container_id: id.into(),
        ifname: "eth0".into(),
    };
    assert_eq!(
        agent.requests(),
        [Request::Gc {
            valid: vec![key("c1"), key("c2")]
        }]
    );
}

#[test]
fn gc_refuses_without_a_valid_list_or_on_old_versions() {
    let agent = FakeAgent::with(Response::Collected {
        removed: Vec::new(),
    });
    let gc = vars(&[("CNI_COMMAND", "GC")]);
    let reply = assert_error(&run(&gc, CONFIG.as_bytes(), &agent), 7);
    assert!(
        reply["msg"]
            .as_str()
            .unwrap()
            .contains("cni.dev/valid-attachments")
    );
    let old = br#"{"cniVersion":"1.0.0","name":"strait","cni.dev/valid-attachments":[]}"#;
    assert_versioned_error(&run(&gc, old, &agent), 1, "1.0.0");
    assert!(agent.requests().is_empty());
}

#[test]
fn status_reports_readiness() {
    let status = vars(&[("CNI_COMMAND", "STATUS")]);
    let ready = FakeAgent::with(Response::Status {
        ready: true,
        message: "ok".into(),
    });
    assert_silent_success(&run(&status, CONFIG.as_bytes(), &ready));
    assert_eq!(ready.requests(), [Request::Status]);

    let starting = FakeAgent::with(Response::Status {
        ready: false,
        message: "syncing services".into(),
    });
    let reply = assert_error(&run(&status, CONFIG.as_bytes(), &starting), 50);
    assert!(reply["msg"].as_str().unwrap().contains("syncing services"));

    assert_error(
        &run(&status, CONFIG.as_bytes(), &FakeAgent::unreachable()),
        50,
    );
    let refusing = FakeAgent::refusing(ErrorKind::TryAgain);
    assert_error(&run(&status, CONFIG.as_bytes(), &refusing), 50);
}

#[test]
fn real_client_talks_to_a_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("agent.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    let server = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut line = String::new();
        BufReader::new(&stream).read_line(&mut line).unwrap();
        let request: Request = serde_json::from_str(&line).unwrap();
        let mut answer = serde_json::to_vec(&Response::Added(attachment())).unwrap();
        answer.push(b'\n');
        (&stream).write_all(&answer).unwrap();
        request
    });

    let config = config_with(&format!(r#""agentSocket":{:?}"#, socket.to_str().unwrap()));
    let outcome = run(&env_for("ADD"), config.as_bytes(), &SocketAgent);
    assert_eq!(outcome.exit_code, 0, "{}", outcome.stdout);
    let result: Value = serde_json::from_str(&outcome.stdout).unwrap();
    assert_eq!(result["ips"][0]["address"], "10.244.3.9/32");
    assert_eq!(result["interfaces"][1]["sandbox"], "/var/run/netns/pod1");

    let request = server.join().unwrap();
    let Request::Add(add) = request else {
        panic!("expected an add request, got {request:?}");
    };
    assert_eq!(add.key.container_id, "c0ffee");
    assert_eq!(add.pod_name.as_deref(), Some("cart-0"));
}

#[test]
fn real_client_with_an_agent_that_closes_mid_request_says_try_again() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("agent.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    // The agent takes the request, then goes away without answering (stopped mid-request).
    let server = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut line = String::new();
        BufReader::new(&stream).read_line(&mut line).unwrap();
    });
    let config = config_with(&format!(r#""agentSocket":{:?}"#, socket.to_str().unwrap()));
    let reply = assert_error(&run(&env_for("ADD"), config.as_bytes(), &SocketAgent), 11);
    assert!(
        reply["msg"]
            .as_str()
            .unwrap()
            .contains("closed the connection before it answered"),
        "{reply}"
    );
    server.join().unwrap();
}

#[test]
fn real_client_without_an_agent_says_try_again() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("nobody-listens.sock");
    let config = config_with(&format!(r#""agentSocket":{:?}"#, socket.to_str().unwrap()));
    let reply = assert_error(&run(&env_for("ADD"), config.as_bytes(), &SocketAgent), 11);
    assert!(
        reply["msg"]
            .as_str()
            .unwrap()
            .contains("nobody-listens.sock")
    );
}
