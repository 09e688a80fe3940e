//! The agent API on its unix socket: one JSON request line in, one JSON response line out, per
//! connection. Requests are served one at a time by the endpoint manager, so CNI calls never interleave.
//! The socket is root's only (mode 0600, and each caller's SO_PEERCRED uid checked), and every request's
//! attachment keys are checked as the CNI spec defines them before anything is done. Besides the CNI
//! calls it serves the node's attachment list (pods' container ids and namespace paths), which is
//! served nowhere else. On shutdown the socket file is removed only if it is still the one bound.

use std::{
    os::unix::fs::{MetadataExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use strait_cni::protocol::{AttachmentKey, ErrorKind, Request, Response};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{UnixListener, UnixStream},
    sync::Mutex,
};

use crate::endpoints::{EndpointManager, RequestError};

/// Longest request line accepted.
const MAX_REQUEST_BYTES: usize = 64 * 1024;
/// How long a client may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the socket could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    #[error("another agent is already serving on {0}")]
    InUse(String),
    #[error("cannot listen on {path}: {source}")]
    Listen {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// The socket file an agent bound, told apart from a file another agent put at the same path
/// later (by device and inode).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundSocket {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl BoundSocket {
    fn of(path: &Path) -> std::io::Result<Self> {
        let meta = std::fs::symlink_metadata(path)?;
        Ok(Self {
            path: path.to_path_buf(),
            dev: meta.dev(),
            ino: meta.ino(),
        })
    }

    /// Removes the socket file if it is still the one bound; returns whether it did. A file another
    /// agent bound at the path since (after this one's was removed) is left to that agent.
    pub fn remove_if_ours(&self) -> std::io::Result<bool> {
        match Self::of(&self.path) {
            Ok(now) if now == *self => std::fs::remove_file(&self.path).map(|()| true),
            Ok(_) => Ok(false),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// Binds the agent socket, replacing a stale socket file but never a live agent's; returns the
/// listener and what identifies the file bound.
pub fn bind(path: &Path) -> Result<(UnixListener, BoundSocket), ApiError> {
    let name = path.display().to_string();
    let listen_error = |source| ApiError::Listen {
        path: name.clone(),
        source,
    };
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(ApiError::InUse(name));
        }
        std::fs::remove_file(path).map_err(listen_error)?;
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(listen_error)?;
    }
    let listener = UnixListener::bind(path).map_err(listen_error)?;
    // Only root may connect (each caller is checked too: see `handle`).
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(listen_error)?;
    let bound = BoundSocket::of(path).map_err(listen_error)?;
    Ok((listener, bound))
}

/// Serves requests until the task is dropped.
pub async fn serve(listener: UnixListener, manager: Arc<Mutex<EndpointManager>>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let manager = manager.clone();
                tokio::spawn(async move {
                    if let Err(error) = handle(stream, &manager).await {
                        tracing::warn!(%error, "agent API connection failed");
                    }
                });
            }
            Err(error) => {
                tracing::error!(%error, "agent API accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn handle(stream: UnixStream, manager: &Mutex<EndpointManager>) -> std::io::Result<()> {
    // A caller that is not root is refused before it is read: the socket's mode is the first guard,
    // the caller's credentials (SO_PEERCRED) the second.
    let caller = stream.peer_cred()?;
    if caller.uid() != 0 {
        tracing::warn!(uid = caller.uid(), pid = ?caller.pid(), "agent API caller refused: not root");
        let refused = error(
            ErrorKind::InvalidRequest,
            format!("permission denied: uid {} is not root", caller.uid()),
        );
        let (_, mut write) = stream.into_split();
        let mut out = serde_json::to_vec(&refused).map_err(std::io::Error::other)?;
        out.push(b'\n');
        write.write_all(&out).await?;
        return write.shutdown().await;
    }
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read.take(MAX_REQUEST_BYTES as u64));
    let mut line = String::new();
    let response = match tokio::time::timeout(READ_TIMEOUT, reader.read_line(&mut line)).await {
        Err(_) => error(
            ErrorKind::InvalidRequest,
            "timed out waiting for the request",
        ),
        Ok(Err(e)) => error(
            ErrorKind::InvalidRequest,
            format!("reading the request: {e}"),
        ),
        Ok(Ok(_)) if !line.ends_with('\n') => error(
            ErrorKind::InvalidRequest,
            format!("request is not one JSON line of at most {MAX_REQUEST_BYTES} bytes"),
        ),
        Ok(Ok(_)) => match serde_json::from_str::<Request>(&line) {
            Ok(request) => dispatch(request, manager).await,
            Err(e) => error(
                ErrorKind::InvalidRequest,
                format!("request is not valid: {e}"),
            ),
        },
    };
    let mut out = serde_json::to_vec(&response).map_err(std::io::Error::other)?;
    out.push(b'\n');
    write.write_all(&out).await?;
    write.shutdown().await
}

/// What is wrong with the attachment keys a request names, if anything.
fn key_problem(request: &Request) -> Option<String> {
    match request {
        Request::Add(req) | Request::Check(req) => req.key.problem(),
        Request::Del(key) => key.problem(),
        Request::Gc { valid } => valid.iter().find_map(AttachmentKey::problem),
        Request::Status | Request::Attachments => None,
    }
}

async fn dispatch(request: Request, manager: &Mutex<EndpointManager>) -> Response {
    if let Some(problem) = key_problem(&request) {
        return error(ErrorKind::InvalidRequest, problem);
    }
    let mut manager = manager.lock().await;
    let result: Result<Response, RequestError> = match request {
        Request::Add(req) => manager.add(&req).await.map(Response::Added),
        Request::Del(key) => manager
            .delete(&key)
            .await
            .map(|existed| Response::Deleted { existed }),
        Request::Check(req) => manager.check(&req).await.map(Response::Checked),
        Request::Gc { valid } => manager
            .collect(&valid)
            .await
            .map(|removed| Response::Collected { removed }),
        Request::Status => Ok(Response::Status {
            ready: true,
            message: "ready".into(),
        }),
        Request::Attachments => Ok(Response::Attachments(manager.attachment_list())),
    };
    result.unwrap_or_else(|e| error(e.kind, e.message))
}

fn error(kind: ErrorKind, message: impl Into<String>) -> Response {
    Response::Error {
        kind,
        message: message.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_socket_is_removed_only_while_it_is_the_one_bound() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/agent.sock");
        let (listener, first) = bind(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // Another agent replaced the file (this one's was removed under it) and bound its own.
        std::fs::remove_file(&path).unwrap();
        let (_second_listener, second) = bind(&path).unwrap();
        assert!(!first.remove_if_ours().unwrap(), "the first agent left it");
        assert!(path.exists(), "the second agent's socket is still there");
        assert!(second.remove_if_ours().unwrap());
        assert!(!path.exists());
        assert!(!first.remove_if_ours().unwrap(), "nothing left to remove");
        drop(listener);
    }

    #[tokio::test]
    async fn a_live_agents_socket_is_not_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.sock");
        let (_listener, _bound) = bind(&path).unwrap();
        assert!(matches!(bind(&path), Err(ApiError::InUse(_))));
    }
}
