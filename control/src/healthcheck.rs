//! The health check node ports of `externalTrafficPolicy: Local` LoadBalancer Services, served the way
//! kube-proxy serves them: one TCP listener per `healthCheckNodePort` (on every address of the node's
//! network namespace), answering every HTTP request with 200 when the Service has ready endpoints on this
//! node and 503 when it has none, so external load balancers send traffic only to nodes that can serve it.
//!
//! [`HealthServer`] owns the listeners and reconciles them against the [`HealthCheck`] list the model
//! computes: new ports are bound (a failed bind is logged and retried), removed ones are closed, and
//! changed endpoint counts are answered at once.

use std::{
    collections::BTreeMap,
    net::IpAddr,
    time::{Duration, Instant},
};

use serde::Serialize;
use tokio::{
    io::AsyncWriteExt,
    net::{TcpListener, TcpStream},
    sync::watch,
    task::JoinHandle,
};

use crate::model::HealthCheck;

/// How long a client may take to send its request head.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How often [`HealthServer::retry`] tries again to bind ports that failed.
pub const BIND_RETRY_INTERVAL: Duration = Duration::from_secs(5);

/// What one port answers: the Service and its local ready endpoint count.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Status {
    namespace: String,
    name: String,
    local_endpoints: usize,
}

impl Status {
    fn of(check: &HealthCheck) -> Self {
        Status {
            namespace: check.namespace.clone(),
            name: check.name.clone(),
            local_endpoints: check.local_endpoints,
        }
    }

    fn service(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// A bound port: the status its connections read, and the task that accepts them.
struct Listener {
    status: watch::Sender<Status>,
    task: JoinHandle<()>,
}

/// The health check listeners of one node. Dropping it closes them all.
pub struct HealthServer {
    bind_ip: IpAddr,
    /// The last reconciled checks, by port.
    wanted: BTreeMap<u16, Status>,
    listeners: BTreeMap<u16, Listener>,
    last_attempt: Option<Instant>,
}

impl HealthServer {
    /// A server that binds its ports on `bind_ip` (`0.0.0.0` in the agent, loopback in tests).
    pub fn new(bind_ip: IpAddr) -> Self {
        HealthServer {
            bind_ip,
            wanted: BTreeMap::new(),
            listeners: BTreeMap::new(),
            last_attempt: None,
        }
    }

    /// The ports being served now, ascending.
    pub fn ports(&self) -> Vec<u16> {
        self.listeners.keys().copied().collect()
    }

    /// Makes the listeners match `checks`: binds new ports, closes the ones no longer wanted (they are
    /// closed when this returns) and updates the answers of the others. A port claimed by two checks
    /// serves the first. A port that cannot be bound is logged and tried again on the next call.
    pub async fn reconcile(&mut self, checks: &[HealthCheck]) {
        let mut wanted = BTreeMap::new();
        for check in checks {
            if let Some(first) = wanted.get(&check.port).map(Status::service) {
                tracing::warn!(
                    service = %format_args!("{}/{}", check.namespace, check.name),
                    port = check.port,
                    holder = %first,
                    "healthCheckNodePort already served for another service; ignored"
                );
                continue;
            }
            wanted.insert(check.port, Status::of(check));
        }
        self.wanted = wanted;
        self.apply().await;
    }

    /// Binds again, at most every [`BIND_RETRY_INTERVAL`], the wanted ports whose bind failed.
    pub async fn retry(&mut self) {
        let due = self
            .last_attempt
            .is_none_or(|at| at.elapsed() >= BIND_RETRY_INTERVAL);
        if due && self.wanted.len() != self.listeners.len() {
            self.apply().await;
        }
    }

    async fn apply(&mut self) {
        self.last_attempt = Some(Instant::now());
        let gone: Vec<u16> = self
            .listeners
            .keys()
            .filter(|port| !self.wanted.contains_key(port))
            .copied()
            .collect();
        for port in gone {
            if let Some(listener) = self.listeners.remove(&port) {
                let service = listener.status.borrow().service();
                listener.task.abort();
                // Wait until the task (and with it the socket) is gone.
                let _ = listener.task.await;
                tracing::info!(%service, port, "health check port closed");
            }
        }
        for (&port, status) in &self.wanted {
            if let Some(listener) = self.listeners.get(&port) {
                listener.status.send_if_modified(|current| {
                    let changed = current != status;
                    if changed {
                        current.clone_from(status);
                    }
                    changed
                });
                continue;
            }
            match TcpListener::bind((self.bind_ip, port)).await {
                Ok(socket) => {
                    let (sender, receiver) = watch::channel(status.clone());
                    let task = tokio::spawn(serve(socket, receiver));
                    tracing::info!(service = %status.service(), port, "health check port listening");
                    self.listeners.insert(
                        port,
                        Listener {
                            status: sender,
                            task,
                        },
                    );
                }
                Err(error) => tracing::warn!(
                    service = %status.service(),
                    port,
                    %error,
                    "cannot listen on the health check port; retrying"
                ),
            }
        }
    }
}

impl Drop for HealthServer {
    fn drop(&mut self) {
        for listener in self.listeners.values() {
            listener.task.abort();
        }
    }
}

/// Accepts connections until aborted.
async fn serve(socket: TcpListener, status: watch::Receiver<Status>) {
    loop {
        let Ok((stream, _)) = socket.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let status = status.borrow().clone();
        tokio::spawn(async move {
            if let Err(error) = answer(stream, &status).await {
                tracing::debug!(%error, "health check connection failed");
            }
        });
    }
}

/// kube-proxy's answer body.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Body<'a> {
    service: ServiceRef<'a>,
    local_endpoints: usize,
}

#[derive(Serialize)]
struct ServiceRef<'a> {
    namespace: &'a str,
    name: &'a str,
}

/// The body of the answer for `status`.
fn body(status: &Status) -> String {
    let body = Body {
        service: ServiceRef {
            namespace: &status.namespace,
            name: &status.name,
        },
        local_endpoints: status.local_endpoints,
    };
    serde_json::to_string(&body).unwrap_or_default()
}

/// Reads the request head (whatever the method and path, as kube-proxy does) and answers it.
async fn answer(mut stream: TcpStream, status: &Status) -> std::io::Result<()> {
    let head = crate::http::read_head(&mut stream, READ_TIMEOUT).await?;
    if head.is_empty() {
        return Ok(());
    }
    let status_line = if status.local_endpoints > 0 {
        "200 OK"
    } else {
        "503 Service Unavailable"
    };
    let body = body(status);
    let mut response = format!(
        "HTTP/1.1 {status_line}\r\nContent-Type: application/json\r\nX-Content-Type-Options: nosniff\r\n\
         X-Load-Balancing-Endpoint-Weight: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        status.local_endpoints,
        body.len()
    );
    if !head.starts_with(b"HEAD ") {
        response.push_str(&body);
    }
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, SocketAddr};

    use tokio::io::AsyncReadExt;

    use super::*;

    const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    /// A port nothing listens on right now.
    fn free_port() -> u16 {
        std::net::TcpListener::bind((LOOPBACK, 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    fn check(port: u16, local_endpoints: usize) -> HealthCheck {
        HealthCheck {
            namespace: "shop".into(),
            name: "web".into(),
            port,
            local_endpoints,
        }
    }

    /// GETs `/` on `port` and returns the status code, the headers and the body.
    async fn get(port: u16) -> std::io::Result<(u16, String, String)> {
        let mut stream = TcpStream::connect(SocketAddr::new(LOOPBACK, port)).await?;
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: node\r\nUser-Agent: lb\r\n\r\n")
            .await?;
        let mut response = String::new();
        stream.read_to_string(&mut response).await?;
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        let code = head.split_whitespace().nth(1).unwrap().parse().unwrap();
        Ok((code, head.to_owned(), body.to_owned()))
    }

    #[tokio::test]
    async fn answers_by_local_endpoints_and_closes_removed_ports() {
        let port = free_port();
        let mut server = HealthServer::new(LOOPBACK);
        server.reconcile(&[check(port, 0)]).await;
        assert_eq!(server.ports(), vec![port]);
        let (code, head, body) = get(port).await.unwrap();
        assert_eq!(code, 503);
        assert!(head.contains("Content-Type: application/json"), "{head}");
        assert!(head.contains("Connection: close"), "{head}");
        assert_eq!(
            body,
            r#"{"service":{"namespace":"shop","name":"web"},"localEndpoints":0}"#
        );

        server.reconcile(&[check(port, 2)]).await;
        let (code, head, body) = get(port).await.unwrap();
        assert_eq!(code, 200);
        assert!(
            head.contains("X-Load-Balancing-Endpoint-Weight: 2"),
            "{head}"
        );
        assert_eq!(
            body,
            r#"{"service":{"namespace":"shop","name":"web"},"localEndpoints":2}"#
        );

        server.reconcile(&[]).await;
        assert!(server.ports().is_empty());
        let refused = get(port).await.unwrap_err();
        assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    }

    #[tokio::test]
    async fn a_port_in_use_is_bound_once_it_is_free() {
        let holder = std::net::TcpListener::bind((LOOPBACK, 0)).unwrap();
        let port = holder.local_addr().unwrap().port();
        let mut server = HealthServer::new(LOOPBACK);
        server.reconcile(&[check(port, 1)]).await;
        assert!(server.ports().is_empty());
        // Not due yet: the last attempt was just now.
        drop(holder);
        server.retry().await;
        assert!(server.ports().is_empty());
        server.last_attempt = None;
        server.retry().await;
        assert_eq!(server.ports(), vec![port]);
        assert_eq!(get(port).await.unwrap().0, 200);
    }

    #[tokio::test]
    async fn a_port_claimed_twice_serves_the_first_service() {
        let port = free_port();
        let mut server = HealthServer::new(LOOPBACK);
        let mut other = check(port, 0);
        other.name = "zzz".into();
        server.reconcile(&[check(port, 3), other]).await;
        let (code, _, body) = get(port).await.unwrap();
        assert_eq!(code, 200);
        assert!(body.contains(r#""name":"web""#), "{body}");
    }
}
