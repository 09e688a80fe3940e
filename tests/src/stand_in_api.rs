//! A stand-in Kubernetes API server for the benchmarks and the `--kube` tests: plain HTTP/1.1 on
//! loopback, serving typed lists of Services, EndpointSlices, Nodes, Pods, Namespaces and
//! NetworkPolicies, and open watches that carry the events the caller [sends](MockApiServer::send) —
//! what the agent's kube source and the CLI's `--kube` commands talk to, with no cluster behind it.
//!
//! Requests are answered per connection on a thread of their own (HTTP keep-alive honoured). A list is
//! answered whole (no continuation) from a serialized copy made at start and again after each change,
//! unless the server was started [paginated](MockApiServer::start_paginated): then a list with
//! `limit=N` gets N items and a `continue` token, as the API server pages. A watch (`watch=true`) is
//! answered with a chunked stream that stays open until the server is dropped. One cluster-scoped
//! object (a Node) can be read (`GET`) and merge-patched (`PATCH`), as the agent does with its own
//! Node. Every request's target
//! is [logged](MockApiServer::requests); anything that is no collection gets a 404. Only loopback
//! addresses are ever bound.

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Read as _, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::Duration;

use serde_json::{Value, json};

/// The collections served, by path.
const COLLECTIONS: [(&str, &str, &str); 6] = [
    ("/api/v1/services", "v1", "Service"),
    (
        "/apis/discovery.k8s.io/v1/endpointslices",
        "discovery.k8s.io/v1",
        "EndpointSlice",
    ),
    ("/api/v1/nodes", "v1", "Node"),
    ("/api/v1/pods", "v1", "Pod"),
    ("/api/v1/namespaces", "v1", "Namespace"),
    (
        "/apis/networking.k8s.io/v1/networkpolicies",
        "networking.k8s.io/v1",
        "NetworkPolicy",
    ),
];

#[derive(Default)]
struct State {
    /// Objects by collection path, then by `namespace/name`.
    objects: BTreeMap<&'static str, BTreeMap<String, Value>>,
    /// Open watches by collection path.
    watches: BTreeMap<&'static str, Vec<Sender<String>>>,
    /// Each collection's list response, serialized: rendered when the server starts (before any timing
    /// begins) and again after a change, so serving a list is writing bytes. A real API server answers
    /// from its watch cache on another machine; rendering 10,000 objects here at request time would
    /// take CPU from the agent under test on the same two cores. (A paginated server renders each
    /// page as it is asked for, and never the whole collection.)
    lists: BTreeMap<&'static str, Arc<String>>,
    /// Honour `limit` and `continue` on lists.
    paginate: bool,
    /// Every request's target (path and query), in arrival order.
    requests: Vec<String>,
    /// Every request's method and target (`GET /api/v1/nodes?limit=500`), in arrival order.
    calls: Vec<String>,
}

impl State {
    /// The list response of collection `path`, rendered now if it is not cached.
    fn list(&mut self, path: &'static str, version: u64) -> Arc<String> {
        if let Some(body) = self.lists.get(path) {
            return Arc::clone(body);
        }
        // The whole collection is the page a request without `limit` asks for.
        let body = Arc::new(self.page(path, version, ""));
        self.lists.insert(path, Arc::clone(&body));
        body
    }

    /// One page of collection `path`: `limit` items (all without one) from the position `continue`
    /// names (a decimal offset here), with the next page's token when items are left.
    fn page(&self, path: &'static str, version: u64, query: &str) -> String {
        let param = |name: &str| {
            query
                .split('&')
                .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
        };
        let limit = param("limit")
            .and_then(|l| l.parse::<usize>().ok())
            .unwrap_or(usize::MAX);
        let offset = param("continue")
            .and_then(|c| c.parse::<usize>().ok())
            .unwrap_or(0);
        let (api_version, kind) = served_kind(path);
        let all: Vec<&Value> = self
            .objects
            .get(path)
            .into_iter()
            .flat_map(|o| o.values())
            .collect();
        let end = offset.saturating_add(limit).min(all.len());
        let mut metadata = json!({"resourceVersion": version.to_string()});
        if end < all.len() {
            metadata["continue"] = Value::String(end.to_string());
        }
        json!({
            "apiVersion": api_version,
            "kind": format!("{kind}List"),
            "metadata": metadata,
            "items": all.get(offset.min(end)..end).unwrap_or_default(),
        })
        .to_string()
    }
}

/// The server; dropping it stops accepting and ends every open watch.
pub struct MockApiServer {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    version: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl MockApiServer {
    /// Starts serving `objects` (each with `apiVersion` and `kind` of a served collection) on an
    /// ephemeral loopback port.
    pub fn start(objects: impl IntoIterator<Item = Value>) -> io::Result<Self> {
        Self::start_with(objects, false)
    }

    /// As [`start`](Self::start), answering lists page by page when the client asks for a `limit`.
    pub fn start_paginated(objects: impl IntoIterator<Item = Value>) -> io::Result<Self> {
        Self::start_with(objects, true)
    }

    fn start_with(objects: impl IntoIterator<Item = Value>, paginate: bool) -> io::Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let addr = listener.local_addr()?;
        let server = Self {
            addr,
            state: Arc::default(),
            version: Arc::new(AtomicU64::new(1)),
            stop: Arc::default(),
        };
        {
            let mut state = server.lock();
            state.paginate = paginate;
            for object in objects {
                if let Some(path) = collection_of(&object) {
                    state
                        .objects
                        .entry(path)
                        .or_default()
                        .insert(object_id(&object), object);
                }
            }
            // A paginated server renders pages as they are asked for: rendering a whole collection
            // here would hold a second copy of it (100,000 Pods: gigabytes) for nothing.
            if !paginate {
                for (path, _, _) in COLLECTIONS {
                    state.list(path, 1);
                }
            }
        }
        let (state, version, stop) = (
            Arc::clone(&server.state),
            Arc::clone(&server.version),
            Arc::clone(&server.stop),
        );
        thread::spawn(move || {
            for stream in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let (state, version, stop) =
                    (Arc::clone(&state), Arc::clone(&version), Arc::clone(&stop));
                thread::spawn(move || {
                    let _ = serve(stream, &state, &version, &stop);
                });
            }
        });
        Ok(server)
    }

    /// The base URL (`http://127.0.0.1:<port>`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stores `object` and sends `event_type` (`ADDED`, `MODIFIED`, `DELETED`) with it to every watch
    /// of its collection, with a new resource version.
    pub fn send(&self, event_type: &str, mut object: Value) {
        let Some(path) = collection_of(&object) else {
            return;
        };
        let version = self.version.fetch_add(1, Ordering::SeqCst) + 1;
        object["metadata"]["resourceVersion"] = Value::String(version.to_string());
        let mut state = self.lock();
        state.lists.remove(path);
        let id = object_id(&object);
        if event_type == "DELETED" {
            state.objects.entry(path).or_default().remove(&id);
        } else {
            state
                .objects
                .entry(path)
                .or_default()
                .insert(id, object.clone());
        }
        let line = json!({"type": event_type, "object": object}).to_string();
        if let Some(watches) = state.watches.get_mut(path) {
            watches.retain(|watch| watch.send(line.clone()).is_ok());
        }
    }

    /// The target (path and query) of every request so far, in arrival order.
    pub fn requests(&self) -> Vec<String> {
        self.lock().requests.clone()
    }

    /// The method and target of every request so far (`PATCH /api/v1/nodes/n1`), in arrival order.
    pub fn calls(&self) -> Vec<String> {
        self.lock().calls.clone()
    }

    /// The stored object of cluster-scoped `collection` (a served path) named `name`.
    pub fn object(&self, collection: &str, name: &str) -> Option<Value> {
        let state = self.lock();
        let objects = state.objects.get(collection)?;
        objects.get(&format!("/{name}")).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for MockApiServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.lock().watches.clear();
        // Wake the accept loop so it sees the stop flag.
        let _ = TcpStream::connect(self.addr);
    }
}

/// The `apiVersion` and kind of collection `path`.
fn served_kind(path: &str) -> (&'static str, &'static str) {
    COLLECTIONS
        .iter()
        .find(|(p, _, _)| *p == path)
        .map_or(("v1", "Unknown"), |(_, api_version, kind)| {
            (*api_version, *kind)
        })
}

fn collection_of(object: &Value) -> Option<&'static str> {
    let api_version = object.get("apiVersion")?.as_str()?;
    let kind = object.get("kind")?.as_str()?;
    COLLECTIONS
        .iter()
        .find(|(_, v, k)| *v == api_version && *k == kind)
        .map(|(path, _, _)| *path)
}

fn object_id(object: &Value) -> String {
    let meta = &object["metadata"];
    format!(
        "{}/{}",
        meta["namespace"].as_str().unwrap_or_default(),
        meta["name"].as_str().unwrap_or_default()
    )
}

/// Answers requests on one connection until it closes or a watch ends it.
fn serve(
    stream: TcpStream,
    state: &Mutex<State>,
    version: &AtomicU64,
    stop: &AtomicBool,
) -> io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line)? == 0 {
            return Ok(());
        }
        // The headers; only a body's length matters here.
        let mut length = 0;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header)? == 0 || header == "\r\n" || header == "\n" {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        let method = request_line.split_whitespace().next().unwrap_or("GET");
        let target = request_line.split_whitespace().nth(1).unwrap_or("/");
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        {
            let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
            state.requests.push(target.to_owned());
            state.calls.push(format!("{method} {target}"));
        }
        if let Some((collection, name)) = path.rsplit_once('/')
            && let Some((collection, _, _)) = COLLECTIONS.iter().find(|(p, _, _)| *p == collection)
        {
            let (status, reply) = one_object(state, version, method, collection, name, &body);
            respond(&mut writer, status, &reply)?;
            continue;
        }
        let Some((path, _, _)) = COLLECTIONS.iter().find(|(p, _, _)| *p == path) else {
            let status = json!({"kind": "Status", "code": 404}).to_string();
            respond(&mut writer, "404 Not Found", &status)?;
            continue;
        };
        if query
            .split('&')
            .any(|pair| pair == "watch=true" || pair == "watch=1")
        {
            let (sender, events) = channel();
            state
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .watches
                .entry(path)
                .or_default()
                .push(sender);
            return stream_watch(&mut writer, &events, stop);
        }
        let list = {
            let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
            let version = version.load(Ordering::SeqCst);
            if state.paginate {
                Arc::new(state.page(path, version, query))
            } else {
                state.list(path, version)
            }
        };
        respond(&mut writer, "200 OK", &list)?;
    }
}

/// GET or PATCH (a JSON merge patch) of one cluster-scoped object; a patch is sent to the
/// collection's watches as MODIFIED.
fn one_object(
    state: &Mutex<State>,
    version: &AtomicU64,
    method: &str,
    collection: &'static str,
    name: &str,
    body: &[u8],
) -> (&'static str, String) {
    let not_found = || {
        let status = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
            "reason": "NotFound", "code": 404, "message": format!("{name} not found")});
        ("404 Not Found", status.to_string())
    };
    let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
    let id = format!("/{name}");
    let Some(object) = state
        .objects
        .get(collection)
        .and_then(|o| o.get(&id))
        .cloned()
    else {
        return not_found();
    };
    match method {
        "GET" => ("200 OK", object.to_string()),
        "PATCH" => {
            let Ok(patch) = serde_json::from_slice::<Value>(body) else {
                return (
                    "400 Bad Request",
                    json!({"kind": "Status", "code": 400}).to_string(),
                );
            };
            let mut patched = object;
            merge_patch(&mut patched, &patch);
            let next = version.fetch_add(1, Ordering::SeqCst) + 1;
            patched["metadata"]["resourceVersion"] = Value::String(next.to_string());
            state.lists.remove(collection);
            state
                .objects
                .entry(collection)
                .or_default()
                .insert(id, patched.clone());
            let line = json!({"type": "MODIFIED", "object": patched}).to_string();
            if let Some(watches) = state.watches.get_mut(collection) {
                watches.retain(|watch| watch.send(line.clone()).is_ok());
            }
            ("200 OK", patched.to_string())
        }
        _ => (
            "405 Method Not Allowed",
            json!({"kind": "Status", "code": 405}).to_string(),
        ),
    }
}

/// RFC 7386: objects merge key by key, `null` removes, anything else replaces.
fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(changes) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    if let Value::Object(fields) = target {
        for (key, value) in changes {
            if value.is_null() {
                fields.remove(key);
            } else {
                merge_patch(fields.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

fn respond(writer: &mut TcpStream, status: &str, body: &str) -> io::Result<()> {
    write!(
        writer,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    writer.flush()
}

/// Streams watch events as chunks until the server stops (or the client goes away).
fn stream_watch(
    writer: &mut TcpStream,
    events: &Receiver<String>,
    stop: &AtomicBool,
) -> io::Result<()> {
    writer.write_all(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
    )?;
    writer.flush()?;
    while !stop.load(Ordering::SeqCst) {
        match events.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                let line = format!("{line}\n");
                write!(writer, "{:x}\r\n{line}\r\n", line.len())?;
                writer.flush()?;
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    writer.write_all(b"0\r\n\r\n")?;
    writer.flush()
}
