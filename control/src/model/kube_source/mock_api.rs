//! A scripted Kubernetes API server for the tests, behind a real [`kube::Client`].
//!
//! The client talks to a `tower-test` mock service. A router task takes each request, logs it, and
//! queues it by resource; a test takes the next request of a resource with
//! [`MockApi::expect_list`] or [`MockApi::expect_watch`] (which check what kind of request it is) and
//! answers it as the API server would: a typed list (items without `apiVersion`/`kind`), a status
//! error, or a watch stream that stays open and carries newline-delimited JSON events until the test
//! closes it. Requests for other paths get a 404 and show up in the log, which every failure message
//! prints.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::channel::mpsc::{UnboundedReceiver, UnboundedSender, unbounded};
use http::{Request, Response, StatusCode, Uri};
use http_body::Frame;
use http_body_util::StreamBody;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tower_test::mock;

/// How long a test waits for anything before failing.
pub(super) const TIMEOUT: Duration = Duration::from_secs(10);

/// A response body the test can keep writing to.
type Body = StreamBody<UnboundedReceiver<Result<Frame<Bytes>, Infallible>>>;
type Responder = mock::SendResponse<Response<Body>>;

/// The resources the source watches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Kind {
    Services,
    EndpointSlices,
    Nodes,
    Pods,
    Namespaces,
    NetworkPolicies,
}

impl Kind {
    pub(super) const ALL: [Kind; 6] = [
        Kind::Services,
        Kind::EndpointSlices,
        Kind::Nodes,
        Kind::Pods,
        Kind::Namespaces,
        Kind::NetworkPolicies,
    ];

    /// What a source without NetworkPolicy watches.
    pub(super) const SERVICES: [Kind; 4] = [
        Kind::Services,
        Kind::EndpointSlices,
        Kind::Nodes,
        Kind::Pods,
    ];

    /// The collection's path, as the client requests it for all namespaces.
    fn path(self) -> &'static str {
        match self {
            Kind::Services => "/api/v1/services",
            Kind::EndpointSlices => "/apis/discovery.k8s.io/v1/endpointslices",
            Kind::Nodes => "/api/v1/nodes",
            Kind::Pods => "/api/v1/pods",
            Kind::Namespaces => "/api/v1/namespaces",
            Kind::NetworkPolicies => "/apis/networking.k8s.io/v1/networkpolicies",
        }
    }

    fn api_version(self) -> &'static str {
        match self {
            Kind::EndpointSlices => "discovery.k8s.io/v1",
            Kind::NetworkPolicies => "networking.k8s.io/v1",
            Kind::Services | Kind::Nodes | Kind::Pods | Kind::Namespaces => "v1",
        }
    }

    fn kind(self) -> &'static str {
        match self {
            Kind::Services => "Service",
            Kind::EndpointSlices => "EndpointSlice",
            Kind::Nodes => "Node",
            Kind::Pods => "Pod",
            Kind::Namespaces => "Namespace",
            Kind::NetworkPolicies => "NetworkPolicy",
        }
    }
}

/// The test's side of the mock API server.
pub(super) struct MockApi {
    calls: BTreeMap<Kind, mpsc::UnboundedReceiver<Call>>,
    log: Arc<Mutex<Vec<String>>>,
}

impl MockApi {
    /// A client whose every request reaches this server.
    pub(super) fn start() -> (kube::Client, MockApi) {
        let (service, handle) = mock::pair::<Request<kube::client::Body>, Response<Body>>();
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut senders = BTreeMap::new();
        let mut calls = BTreeMap::new();
        for kind in Kind::ALL {
            let (tx, rx) = mpsc::unbounded_channel();
            senders.insert(kind, tx);
            calls.insert(kind, rx);
        }
        tokio::spawn(route(handle, senders, Arc::clone(&log)));
        (
            kube::Client::new(service, "default"),
            MockApi { calls, log },
        )
    }

    /// Every request so far, one a line, for failure messages.
    pub(super) fn log(&self) -> String {
        self.log
            .lock()
            .unwrap()
            .iter()
            .fold(String::new(), |mut out, line| {
                let _ = writeln!(out, "  {line}");
                out
            })
    }

    /// Fails when a request went to a path this server does not serve.
    pub(super) fn assert_no_unexpected_requests(&self) {
        let log = self.log();
        assert!(!log.contains("(unexpected"), "requests:\n{log}");
    }

    /// The next request for `kind`, which must be a list.
    pub(super) async fn expect_list(&mut self, kind: Kind) -> Call {
        let call = self.next(kind).await;
        assert!(
            call.param("watch").is_none(),
            "expected a LIST of {kind:?}, got {}\nrequests:\n{}",
            call.uri,
            self.log()
        );
        call
    }

    /// The next request for `kind`, which must be a watch from `resource_version`.
    pub(super) async fn expect_watch(&mut self, kind: Kind, resource_version: &str) -> Call {
        let call = self.next(kind).await;
        assert!(
            call.param("watch") == Some("true")
                && call.param("resourceVersion") == Some(resource_version),
            "expected a WATCH of {kind:?} from {resource_version}, got {}\nrequests:\n{}",
            call.uri,
            self.log()
        );
        call
    }

    async fn next(&mut self, kind: Kind) -> Call {
        let calls = self.calls.get_mut(&kind).expect("every kind has a queue");
        match tokio::time::timeout(TIMEOUT, calls.recv()).await {
            Ok(Some(call)) => call,
            Ok(None) => panic!("the mock API server stopped\nrequests:\n{}", self.log()),
            Err(elapsed) => panic!(
                "no request for {kind:?} within {TIMEOUT:?} ({elapsed})\nrequests:\n{}",
                self.log()
            ),
        }
    }
}

/// Hands each request to its resource's queue; answers anything else with 404.
async fn route(
    mut handle: mock::Handle<Request<kube::client::Body>, Response<Body>>,
    senders: BTreeMap<Kind, mpsc::UnboundedSender<Call>>,
    log: Arc<Mutex<Vec<String>>>,
) {
    while let Some((request, respond)) = handle.next_request().await {
        let uri = request.uri().clone();
        let kind = Kind::ALL.into_iter().find(|kind| uri.path() == kind.path());
        let expected = request.method() == http::Method::GET && kind.is_some();
        let mark = if expected { "" } else { " (unexpected: 404)" };
        log.lock()
            .unwrap()
            .push(format!("{} {uri}{mark}", request.method()));
        let call = Call {
            kind,
            uri,
            respond,
            at: Instant::now(),
        };
        match kind {
            Some(kind) if expected => {
                // A closed queue means the test is over; dropping the call fails the request.
                let _ = senders[&kind].send(call);
            }
            _ => call.fail(
                StatusCode::NOT_FOUND,
                "NotFound",
                "no such path in this test",
            ),
        }
    }
}

/// One request, waiting for its answer.
pub(super) struct Call {
    kind: Option<Kind>,
    uri: Uri,
    respond: Responder,
    /// When the request arrived.
    pub(super) at: Instant,
}

impl Call {
    /// The query parameter `name`, as sent (not percent-decoded).
    pub(super) fn param(&self, name: &str) -> Option<&str> {
        self.uri
            .query()?
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .find_map(|(key, value)| (key == name).then_some(value))
    }

    /// Answers with a typed list at `resource_version`.
    pub(super) fn list(self, resource_version: &str, items: &[Value]) {
        self.list_page(resource_version, items, None);
    }

    /// Answers with one page of a typed list at `resource_version`; with `next`, the `continue` token
    /// of the page after it.
    pub(super) fn list_page(self, resource_version: &str, items: &[Value], next: Option<&str>) {
        let kind = self.kind.expect("a list of a known kind");
        let mut metadata = json!({"resourceVersion": resource_version});
        if let Some(next) = next {
            metadata["continue"] = next.into();
        }
        let list = json!({
            "apiVersion": kind.api_version(),
            "kind": format!("{}List", kind.kind()),
            "metadata": metadata,
            "items": items,
        });
        self.respond(StatusCode::OK, Some(list));
    }

    /// Answers with an API status error.
    pub(super) fn fail(self, code: StatusCode, reason: &str, message: &str) {
        let status = status(code, reason, message);
        self.respond(code, Some(status));
    }

    /// Answers with an open watch stream.
    pub(super) fn watch(self) -> WatchStream {
        let kind = self.kind.expect("a watch of a known kind");
        WatchStream {
            kind,
            body: self.respond(StatusCode::OK, None),
        }
    }

    /// Sends the response head, and `body` if there is one; returns the body's sender, which ends
    /// the body when dropped.
    fn respond(self, code: StatusCode, body: Option<Value>) -> BodySender {
        let (tx, rx) = unbounded();
        let response = Response::builder()
            .status(code)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(StreamBody::new(rx))
            .expect("a valid response");
        self.respond.send_response(response);
        let sender = BodySender(tx);
        if let Some(body) = body {
            sender.send(&body);
        }
        sender
    }
}

/// Writes JSON lines into a response body.
struct BodySender(UnboundedSender<Result<Frame<Bytes>, Infallible>>);

impl BodySender {
    fn send(&self, value: &Value) {
        let mut line = serde_json::to_vec(value).expect("JSON serializes");
        line.push(b'\n');
        // The client may have gone; the tests check what it received, not this.
        let _ = self.0.unbounded_send(Ok(Frame::data(Bytes::from(line))));
    }
}

/// An open watch response. Events are written as the API server writes them; dropping the stream (or
/// [`close`](Self::close)) ends the response.
pub(super) struct WatchStream {
    kind: Kind,
    body: BodySender,
}

impl WatchStream {
    /// Sends an `ADDED`, `MODIFIED` or `DELETED` event for `object`, adding its type fields.
    pub(super) fn event(&self, event_type: &str, mut object: Value) {
        object["apiVersion"] = self.kind.api_version().into();
        object["kind"] = self.kind.kind().into();
        self.body
            .send(&json!({"type": event_type, "object": object}));
    }

    /// Sends a bookmark at `resource_version`.
    pub(super) fn bookmark(&self, resource_version: &str) {
        let object = json!({
            "apiVersion": self.kind.api_version(),
            "kind": self.kind.kind(),
            "metadata": {"resourceVersion": resource_version},
        });
        self.body
            .send(&json!({"type": "BOOKMARK", "object": object}));
    }

    /// Sends what the API server sends when the watch's resource version has been compacted away:
    /// an `ERROR` event with a `410 Gone` status.
    pub(super) fn gone(&self, message: &str) {
        let status = status(StatusCode::GONE, "Expired", message);
        self.body.send(&json!({"type": "ERROR", "object": status}));
    }

    /// True once the client has dropped the response.
    pub(super) fn is_closed(&self) -> bool {
        self.body.0.is_closed()
    }

    /// Ends the response, as the API server does when a watch times out.
    pub(super) fn close(self) {
        drop(self.body);
    }
}

fn status(code: StatusCode, reason: &str, message: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Status",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code.as_u16(),
    })
}
