//! `strait flows`: NetworkPolicy verdicts from every node's agent (`GET /flows` on its HTTP server),
//! merged. A lab's agents are asked inside their node namespaces; other agents by address
//! (`--agent http://HOST:PORT`), or every Node's of a live cluster ([`kube_sources`]: its InternalIP,
//! else ExternalIP, on the agents' port). Without `--follow` each agent's recent verdicts are fetched and
//! printed oldest first; with it, each agent's recent verdicts are merged in time order first (a
//! follow answer says how many of its lines are recent, `X-Strait-Recent`), then live ones are printed
//! as they arrive from any agent.
//!
//! [`Flow`] mirrors the agent's record (`control/src/flows/record.rs`); the filters are the agent's
//! own (sent as the query), so only the verdicts asked for cross the wire.

use std::{
    collections::BTreeSet,
    fmt::Write as _,
    io::{BufRead as _, BufReader, Read as _, Write as _},
    net::{Ipv4Addr, SocketAddr, TcpStream, ToSocketAddrs as _},
    path::PathBuf,
    sync::mpsc,
    time::Duration,
};

use serde::{Deserialize, Serialize};
use strait_dataplane::netns;

use crate::{LabError, cluster::Lab};

/// The agents' HTTP port when an `--agent` address names none.
pub const DEFAULT_AGENT_PORT: u16 = 9962;

/// How long a request that does not follow may take to connect, and then to answer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// One end of a flow.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct End {
    pub ip: Ipv4Addr,
    /// `None` for protocols without ports (ICMP).
    pub port: Option<u16>,
    /// `namespace/name` of the pod holding the address, if any.
    pub pod: Option<String>,
}

/// One verdict as an agent serves it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flow {
    /// The agent's sequence number.
    pub seq: u64,
    /// RFC 3339, UTC.
    pub time: String,
    /// Milliseconds since the Unix epoch.
    pub time_ms: u64,
    pub node: String,
    /// `egress` or `ingress`.
    pub direction: String,
    /// `allowed`, `denied` or `audit`.
    pub verdict: String,
    /// `not-isolated`, `rule` or `default-deny`.
    pub by: String,
    /// `TCP`, `UDP`, `ICMP`, `SCTP` or the protocol number.
    pub protocol: String,
    pub from: End,
    pub to: End,
    /// The policy whose rule allowed it (`by: rule`).
    pub policy: Option<String>,
    pub rule: Option<u32>,
    /// `by: default-deny`: the policies isolating the pod in this direction.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub isolated_by: Vec<String>,
}

/// What to ask the agents for: the agent's `/flows` parameters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FlowQuery {
    /// Either end's pod is in this namespace.
    pub namespace: Option<String>,
    /// Either end is this pod: NS/NAME, or NAME (in `namespace` when given, else in any).
    pub pod: Option<String>,
    /// `allowed`, `denied` or `audit`.
    pub verdict: Option<String>,
    /// `ingress` or `egress`.
    pub direction: Option<String>,
    /// The destination port (after Service translation: the pod's port).
    pub port: Option<u16>,
    /// At most this many recent verdicts per agent (the last ones).
    pub limit: Option<usize>,
}

impl FlowQuery {
    /// The request path: `/flows?...` with the parameters percent-encoded.
    pub fn path(&self, follow: bool) -> String {
        let mut params = Vec::new();
        if follow {
            params.push("follow=1".to_owned());
        }
        let text = [
            ("namespace", &self.namespace),
            ("pod", &self.pod),
            ("verdict", &self.verdict),
            ("direction", &self.direction),
        ];
        for (key, value) in text {
            if let Some(value) = value {
                params.push(format!("{key}={}", encode(value)));
            }
        }
        if let Some(port) = self.port {
            params.push(format!("port={port}"));
        }
        if let Some(limit) = self.limit {
            params.push(format!("limit={limit}"));
        }
        if params.is_empty() {
            "/flows".to_owned()
        } else {
            format!("/flows?{}", params.join("&"))
        }
    }
}

/// Everything but unreserved characters percent-encoded.
fn encode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// Where an agent is asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A lab node's agent, reached on loopback inside the node's namespace.
    LabNode {
        node: String,
        netns: PathBuf,
        port: u16,
    },
    /// An agent reached from here.
    Address(String, SocketAddr),
}

impl Source {
    /// An `--agent` argument: `http://HOST[:PORT][/]` or `HOST[:PORT]` (port 9962 by default).
    pub fn parse_agent(text: &str) -> Result<Self, LabError> {
        let bare = text.strip_prefix("http://").unwrap_or(text);
        if bare.contains("://") {
            return Err(LabError::Usage(format!(
                "--agent {text}: the agents serve plain HTTP (http://HOST:PORT)"
            )));
        }
        let bare = bare.trim_end_matches('/');
        let with_port = if bare
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            bare.to_owned()
        } else {
            format!("{bare}:{DEFAULT_AGENT_PORT}")
        };
        let addr = with_port
            .to_socket_addrs()
            .ok()
            .and_then(|mut addrs| addrs.next())
            .ok_or_else(|| LabError::Usage(format!("--agent {text}: not an address")))?;
        Ok(Source::Address(text.to_owned(), addr))
    }

    /// How messages name it.
    pub fn name(&self) -> &str {
        match self {
            Source::LabNode { node, .. } => node,
            Source::Address(text, _) => text,
        }
    }

    /// A connection to the agent.
    fn connect(&self) -> Result<TcpStream, LabError> {
        let io = |e| LabError::io(format!("connecting to the agent of {}", self.name()), e);
        match self {
            Source::LabNode {
                netns: ns, port, ..
            } => {
                let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, *port));
                netns::run_in(ns, move || {
                    TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)
                })?
                .map_err(io)
            }
            Source::Address(_, addr) => {
                TcpStream::connect_timeout(addr, CONNECT_TIMEOUT).map_err(io)
            }
        }
    }

    /// Sends `GET path` and reads the answer's head; the stream is left at the body. The head's
    /// lines, after a 200 (anything else is an error with the agent's words).
    fn request(
        &self,
        path: &str,
        timeout: Option<Duration>,
    ) -> Result<(BufReader<TcpStream>, Vec<String>), LabError> {
        let io = |e| LabError::io(format!("asking the agent of {} for {path}", self.name()), e);
        let mut stream = self.connect()?;
        stream.set_read_timeout(timeout).map_err(io)?;
        stream
            .write_all(
                format!("GET {path} HTTP/1.1\r\nHost: strait\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .map_err(io)?;
        let mut reader = BufReader::new(stream);
        let mut head = Vec::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).map_err(io)? == 0 {
                break;
            }
            let line = line.trim_end().to_owned();
            if line.is_empty() {
                break;
            }
            head.push(line);
        }
        let status = head.first().cloned().unwrap_or_default();
        if !status.starts_with("HTTP/1.1 200") {
            let mut body = String::new();
            let _ = reader.read_to_string(&mut body);
            return Err(LabError::Environment(format!(
                "the agent of {} answered {path} with {status}: {}",
                self.name(),
                body.trim()
            )));
        }
        Ok((reader, head))
    }

    /// `GET path` (a JSON answer such as `/maps` or `/conntrack`): the body, after a 200.
    pub fn get(&self, path: &str) -> Result<String, LabError> {
        let (mut reader, _) = self.request(path, Some(ANSWER_TIMEOUT))?;
        let mut body = String::new();
        reader.read_to_string(&mut body).map_err(|e| {
            LabError::io(format!("reading the agent of {}'s {path}", self.name()), e)
        })?;
        Ok(body)
    }

    /// The agent's recent verdicts.
    pub fn recent(&self, query: &FlowQuery) -> Result<Vec<Flow>, LabError> {
        let path = query.path(false);
        let (mut reader, _) = self.request(&path, Some(ANSWER_TIMEOUT))?;
        let mut body = String::new();
        reader.read_to_string(&mut body).map_err(|e| {
            LabError::io(
                format!("reading {path} from the agent of {}", self.name()),
                e,
            )
        })?;
        body.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|line| parse_line(self, line))
            .collect()
    }

    /// Follows the agent: sends its recent verdicts as one [`Event::Recent`], then each live one as an
    /// [`Event::Live`], until the connection ends ([`Event::Ended`]).
    fn follow(&self, query: &FlowQuery, events: &mpsc::Sender<Event>) {
        let ended = |why: String| {
            let _ = events.send(Event::Ended(self.name().to_owned(), why));
        };
        let (reader, head) = match self.request(&query.path(true), None) {
            Ok(answer) => answer,
            Err(error) => return ended(error.to_string()),
        };
        let recent = head
            .iter()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("x-strait-recent")
                    .then(|| value.trim().parse::<usize>().ok())?
            })
            .unwrap_or(0);
        let mut lines = reader.lines();
        let mut first = Vec::new();
        for line in lines.by_ref().take(recent) {
            match line
                .map_err(|e| e.to_string())
                .and_then(|l| parse_line(self, &l).map_err(|e| e.to_string()))
            {
                Ok(flow) => first.push(flow),
                Err(why) => return ended(why),
            }
        }
        if events
            .send(Event::Recent(self.name().to_owned(), first))
            .is_err()
        {
            return;
        }
        for line in lines {
            let flow = match line
                .map_err(|e| e.to_string())
                .and_then(|l| parse_line(self, &l).map_err(|e| e.to_string()))
            {
                Ok(flow) => flow,
                Err(why) => return ended(why),
            };
            if events.send(Event::Live(Box::new(flow))).is_err() {
                return;
            }
        }
        ended("the agent closed the stream".to_owned());
    }
}

fn parse_line(source: &Source, line: &str) -> Result<Flow, LabError> {
    serde_json::from_str(line).map_err(|e| {
        LabError::Environment(format!(
            "the agent of {} sent a verdict this CLI cannot read ({e}): {line}",
            source.name()
        ))
    })
}

/// What a following thread reports.
enum Event {
    Recent(String, Vec<Flow>),
    Live(Box<Flow>),
    Ended(String, String),
}

/// Every agent's recent verdicts, oldest first (by time, then node and sequence number).
pub fn recent(sources: &[Source], query: &FlowQuery) -> Result<Vec<Flow>, LabError> {
    let mut all = Vec::new();
    for source in sources {
        all.extend(source.recent(query)?);
    }
    sort(&mut all);
    Ok(all)
}

/// The agent of every Node the cluster's API server lists (the kubeconfig's or the in-cluster one):
/// its first IPv4 InternalIP, else ExternalIP, on `port`, named by the Node; Nodes with neither are
/// left out.
pub fn kube_sources(port: u16) -> Result<Vec<Source>, LabError> {
    let objects = crate::kube_objects::read_cluster(&[strait_k8s::Kind::Node])?;
    Ok(objects
        .iter()
        .filter_map(|object| match object {
            strait_k8s::Object::Node(node) => node_source(node, port),
            _ => None,
        })
        .collect())
}

/// `node`'s agent on `port`, if the Node has an IPv4 InternalIP or ExternalIP.
fn node_source(node: &k8s_openapi::api::core::v1::Node, port: u16) -> Option<Source> {
    let ip = strait_k8s::node_ipv4(node, &["InternalIP", "ExternalIP"])?;
    let name = node.metadata.name.clone().unwrap_or_else(|| ip.to_string());
    Some(Source::Address(name, SocketAddr::from((ip, port))))
}

/// Verdicts in the order they were made (agents' clocks permitting); within a millisecond a flow's
/// egress (judged on the way out) before its ingress.
pub fn sort(flows: &mut [Flow]) {
    let key = |f: &Flow| (f.time_ms, f.direction != "egress", f.node.clone(), f.seq);
    flows.sort_by_cached_key(key);
}

/// Follows every agent: hands `print` their recent verdicts merged in time order, then live ones as
/// they come; returns when every stream has ended (`print` returning false stops at once), with an
/// error when no agent could be followed at all. An agent whose stream ends is reported on standard
/// error.
pub fn follow(
    sources: &[Source],
    query: &FlowQuery,
    mut print: impl FnMut(&Flow) -> bool,
) -> Result<(), LabError> {
    let (events, received) = mpsc::channel();
    for source in sources {
        let (source, query, events) = (source.clone(), query.clone(), events.clone());
        std::thread::spawn(move || source.follow(&query, &events));
    }
    drop(events);
    // Agents whose recent verdicts have not come yet; live ones wait for them.
    let mut pending: BTreeSet<String> = sources.iter().map(|s| s.name().to_owned()).collect();
    let (mut held, mut followed, mut open) = (Vec::new(), 0, sources.len());
    for event in received {
        match event {
            Event::Recent(source, flows) => {
                pending.remove(&source);
                held.extend(flows);
                followed += 1;
            }
            Event::Live(flow) if !pending.is_empty() => held.push(*flow),
            Event::Live(flow) => {
                if !print(&flow) {
                    return Ok(());
                }
            }
            Event::Ended(source, why) => {
                eprintln!("strait flows: {source}: {why}");
                pending.remove(&source);
                open -= 1;
            }
        }
        if pending.is_empty() && !held.is_empty() {
            // Every agent's recent ones and the live ones that came meanwhile, in time order.
            sort(&mut held);
            for flow in held.drain(..) {
                if !print(&flow) {
                    return Ok(());
                }
            }
        }
        if open == 0 {
            break;
        }
    }
    if followed == 0 {
        return Err(LabError::Environment(
            "no agent could be followed".to_owned(),
        ));
    }
    Ok(())
}

impl Lab {
    /// Where the lab's agents serve their verdicts: every node running strait.
    pub fn flow_sources(&self) -> Vec<Source> {
        self.state
            .nodes
            .iter()
            .filter(|n| n.runs_strait())
            .map(|n| Source::LabNode {
                node: n.name.clone(),
                netns: netns::path(&n.netns),
                port: n.http_port,
            })
            .collect()
    }

    /// The recent verdicts of every node that `query` passes, oldest first.
    pub fn flows(&self, query: &FlowQuery) -> Result<Vec<Flow>, LabError> {
        recent(&self.flow_sources(), query)
    }
}

/// One line of text for `flow`, e.g.
/// `18:21:03.120 node-1 DENIED  ingress x/a:43512 -> y/b:80 TCP  default deny (isolated by y/deny-all)`;
/// the time in `zone` (local time in the CLI).
pub fn text_line(flow: &Flow, zone: &impl Fn(u64) -> String) -> String {
    let end = |end: &End| {
        let who = end.pod.clone().unwrap_or_else(|| end.ip.to_string());
        match end.port {
            Some(port) => format!("{who}:{port}"),
            None => who,
        }
    };
    format!(
        "{} {} {:<7} {:<7} {} -> {} {:<4} {}",
        zone(flow.time_ms),
        flow.node,
        flow.verdict.to_uppercase(),
        flow.direction,
        end(&flow.from),
        end(&flow.to),
        flow.protocol,
        reason(flow)
    )
}

/// Why, in words.
pub fn reason(flow: &Flow) -> String {
    match flow.by.as_str() {
        "not-isolated" => "not isolated".to_owned(),
        "rule" => {
            let rule = flow.rule.map(|r| format!(" rule {r}")).unwrap_or_default();
            match &flow.policy {
                Some(policy) => format!("allowed by {policy}{rule}"),
                None => format!("allowed by a policy since deleted{rule}"),
            }
        }
        "default-deny" => {
            let audit = if flow.verdict == "audit" {
                "audit mode, passed; "
            } else {
                ""
            };
            if flow.isolated_by.is_empty() {
                format!("default deny ({audit}isolated)")
            } else {
                format!(
                    "default deny ({audit}isolated by {})",
                    flow.isolated_by.join(", ")
                )
            }
        }
        other => other.to_owned(),
    }
}

/// `ms` since the epoch as local `HH:MM:SS.mmm`.
pub fn local_time(ms: u64) -> String {
    let secs = libc::time_t::try_from(ms / 1000).unwrap_or(0);
    // SAFETY: `tm` is plain data, written in full by localtime_r, which reads only `secs`.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the call; localtime_r is the thread-safe variant.
    let converted = unsafe { libc::localtime_r(&raw const secs, &raw mut tm) };
    let (hour, minute, second) = if converted.is_null() {
        let of_day = ms / 1000 % 86_400;
        (of_day / 3600, of_day / 60 % 60, of_day % 60)
    } else {
        (
            u64::try_from(tm.tm_hour).unwrap_or(0),
            u64::try_from(tm.tm_min).unwrap_or(0),
            u64::try_from(tm.tm_sec).unwrap_or(0),
        )
    };
    format!("{hour:02}:{minute:02}:{second:02}.{:03}", ms % 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(verdict: &str, by: &str) -> Flow {
        serde_json::from_value(serde_json::json!({
            "seq": 12, "time": "2025-12-02T18:21:03.120Z", "time_ms": 1_764_699_663_120u64,
            "node": "node-1", "direction": "ingress", "verdict": verdict, "by": by, "protocol": "TCP",
            "from": {"ip": "10.244.1.5", "port": 43512, "pod": "x/a"},
            "to": {"ip": "10.244.2.7", "port": 80, "pod": "y/b"},
            "policy": if by == "rule" { serde_json::json!("y/allow-a") } else { serde_json::Value::Null },
            "rule": if by == "rule" { serde_json::json!(0) } else { serde_json::Value::Null },
            "isolated_by": if by == "default-deny" { serde_json::json!(["y/deny-all"]) } else { serde_json::json!([]) },
        }))
        .expect("the agent's shape")
    }

    fn utc(ms: u64) -> String {
        let s = ms / 1000 % 86_400;
        format!(
            "{:02}:{:02}:{:02}.{:03}",
            s / 3600,
            s / 60 % 60,
            s % 60,
            ms % 1000
        )
    }

    #[test]
    fn a_verdict_reads_as_one_line() {
        assert_eq!(
            text_line(&flow("denied", "default-deny"), &utc),
            "18:21:03.120 node-1 DENIED  ingress x/a:43512 -> y/b:80 TCP  default deny (isolated by y/deny-all)"
        );
        assert_eq!(
            text_line(&flow("allowed", "rule"), &utc),
            "18:21:03.120 node-1 ALLOWED ingress x/a:43512 -> y/b:80 TCP  allowed by y/allow-a rule 0"
        );
        assert!(text_line(&flow("allowed", "not-isolated"), &utc).ends_with("TCP  not isolated"));
        assert!(text_line(&flow("audit", "default-deny"), &utc).contains("AUDIT   ingress"));
        assert_eq!(
            reason(&flow("audit", "default-deny")),
            "default deny (audit mode, passed; isolated by y/deny-all)"
        );
        let mut ping = flow("allowed", "not-isolated");
        ping.protocol = "ICMP".into();
        ping.from = End {
            ip: Ipv4Addr::new(192, 0, 2, 1),
            port: None,
            pod: None,
        };
        ping.to.port = None;
        assert!(
            text_line(&ping, &utc).contains(" 192.0.2.1 -> y/b ICMP "),
            "{}",
            text_line(&ping, &utc)
        );
        assert_eq!(local_time(1_764_699_663_120).len(), 12);
    }

    #[test]
    fn the_query_is_encoded_for_the_agent() {
        assert_eq!(FlowQuery::default().path(false), "/flows");
        let query = FlowQuery {
            namespace: Some("x".into()),
            pod: Some("x/a b".into()),
            verdict: Some("denied".into()),
            direction: None,
            port: Some(80),
            limit: Some(5),
        };
        assert_eq!(
            query.path(true),
            "/flows?follow=1&namespace=x&pod=x%2Fa%20b&verdict=denied&port=80&limit=5"
        );
    }

    #[test]
    fn agents_are_named_by_url_or_address() {
        let Source::Address(_, addr) = Source::parse_agent("http://127.0.0.1:9000/").unwrap()
        else {
            panic!("an address")
        };
        assert_eq!(addr, "127.0.0.1:9000".parse().unwrap());
        let Source::Address(_, addr) = Source::parse_agent("10.0.0.7").unwrap() else {
            panic!("an address")
        };
        assert_eq!(addr.port(), DEFAULT_AGENT_PORT);
        assert!(Source::parse_agent("https://10.0.0.7").is_err());
    }

    /// A fake agent on loopback: answers one request with `head_extra` headers and `lines`; the
    /// request line it got comes back through the handle.
    fn fake_agent(
        head_extra: &str,
        lines: Vec<String>,
    ) -> (Source, std::thread::JoinHandle<String>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let head_extra = head_extra.to_owned();
        let served = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            reader.read_line(&mut request).unwrap();
            let mut writer = stream;
            write!(
                writer,
                "HTTP/1.1 200 OK\r\n{head_extra}Connection: close\r\n\r\n"
            )
            .unwrap();
            for line in lines {
                writeln!(writer, "{line}").unwrap();
            }
            request
        });
        (Source::Address(addr.to_string(), addr), served)
    }

    fn at(node: &str, time_ms: u64) -> String {
        let mut f = flow("denied", "default-deny");
        (f.node, f.time_ms) = (node.to_owned(), time_ms);
        serde_json::to_string(&f).unwrap()
    }

    #[test]
    fn recent_verdicts_of_several_agents_are_merged_in_time_order() {
        let (a, served_a) = fake_agent("", vec![at("a", 10), at("a", 30)]);
        let (b, served_b) = fake_agent("", vec![at("b", 20)]);
        let query = FlowQuery {
            verdict: Some("denied".into()),
            ..FlowQuery::default()
        };
        let flows = recent(&[a, b], &query).unwrap();
        let order: Vec<u64> = flows.iter().map(|f| f.time_ms).collect();
        assert_eq!(order, [10, 20, 30]);
        assert!(
            served_a
                .join()
                .unwrap()
                .starts_with("GET /flows?verdict=denied HTTP/1.1")
        );
        served_b.join().unwrap();
    }

    #[test]
    fn following_orders_every_agents_recent_verdicts_before_live_ones() {
        // Agent a: two recent verdicts, then a live one at once; b: one recent verdict, then it ends.
        let (a, served_a) = fake_agent(
            "X-Strait-Recent: 2\r\n",
            vec![at("a", 10), at("a", 30), at("a", 50)],
        );
        let (b, _) = fake_agent("x-strait-recent: 1\r\n", vec![at("b", 20)]);
        let mut printed = Vec::new();
        follow(&[a, b], &FlowQuery::default(), |f| {
            printed.push(f.time_ms);
            true
        })
        .unwrap();
        assert_eq!(printed, [10, 20, 30, 50]);
        assert!(
            served_a
                .join()
                .unwrap()
                .starts_with("GET /flows?follow=1 HTTP/1.1")
        );
    }

    #[test]
    fn an_agent_that_cannot_be_reached_is_an_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let gone = Source::Address(addr.to_string(), addr);
        assert!(recent(std::slice::from_ref(&gone), &FlowQuery::default()).is_err());
        assert!(follow(&[gone], &FlowQuery::default(), |_| true).is_err());
    }

    #[test]
    fn verdicts_sort_by_time_then_node() {
        let mut a = flow("denied", "default-deny");
        let mut b = a.clone();
        a.node = "node-2".into();
        b.time_ms -= 1;
        let mut flows = vec![a.clone(), b.clone()];
        sort(&mut flows);
        assert_eq!(flows, [b.clone(), a.clone()]);
        // Within one millisecond, the egress before the ingress, whichever node judged it.
        let mut egress = a.clone();
        (egress.direction, egress.node) = ("egress".into(), "node-9".into());
        let mut flows = vec![a.clone(), egress.clone()];
        sort(&mut flows);
        assert_eq!(flows, [egress, a]);
    }
}
