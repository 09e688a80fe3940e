//! The agent protocol's client side: connect, send one request line, read one response line. The
//! plugin makes its CNI calls with [`call`]; root tools list the node's attachments with
//! [`attachments`] (the agent serves that list on its socket only).

use std::{
    io::{self, BufRead, BufReader, Write},
    os::unix::net::UnixStream,
    path::Path,
    time::Duration,
};

use crate::protocol::{AttachmentList, Request, Response};

/// Why a call to the agent failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    #[error(
        "cannot reach the strait agent at {socket}: {source} (is straitd running on this node?)"
    )]
    Unreachable {
        socket: String,
        #[source]
        source: io::Error,
    },
    #[error(
        "the strait agent at {socket} closed the connection before it answered (was it stopped or \
         restarted?)"
    )]
    Closed {
        socket: String,
        /// The reset or broken pipe seen, if the connection did not simply end.
        #[source]
        source: Option<io::Error>,
    },
    #[error("talking to the strait agent at {socket}: {source}")]
    Io {
        socket: String,
        #[source]
        source: io::Error,
    },
    #[error("the strait agent at {socket} sent an answer that is not valid: {source}")]
    BadResponse {
        socket: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("the strait agent at {socket} refused the request: {message}")]
    Refused { socket: String, message: String },
    #[error("the strait agent at {socket} answered with an unexpected {answer} response")]
    UnexpectedResponse { socket: String, answer: String },
}

/// Sends `request` to the agent listening on `socket` and returns its response. An agent that
/// accepted the connection but closed it (or reset it) before a whole answer line is
/// [`ClientError::Closed`]: nothing was answered, so the caller may try again.
pub fn call(socket: &Path, request: &Request, timeout: Duration) -> Result<Response, ClientError> {
    let name = socket.display().to_string();
    let stream = UnixStream::connect(socket).map_err(|source| ClientError::Unreachable {
        socket: name.clone(),
        source,
    })?;
    let io_error = |source| ClientError::Io {
        socket: name.clone(),
        source,
    };
    stream.set_read_timeout(Some(timeout)).map_err(io_error)?;
    stream.set_write_timeout(Some(timeout)).map_err(io_error)?;
    let mut line = serde_json::to_vec(request).map_err(|e| io_error(io::Error::other(e)))?;
    line.push(b'\n');
    // A write the agent cut short is judged by what it answered: an agent that refuses a caller
    // answers before it reads, then closes.
    let sent = (&stream).write_all(&line);
    let mut answer = String::new();
    let read = BufReader::new(&stream).read_line(&mut answer);
    if !answer.ends_with('\n') {
        return Err(unanswered(name, sent.err(), read.err()));
    }
    serde_json::from_str(&answer).map_err(|source| ClientError::BadResponse {
        socket: name.clone(),
        source,
    })
}

/// Why no whole answer line arrived: the connection ended or was reset (the agent went away
/// mid-request), or another I/O error (a time-out above all).
fn unanswered(
    socket: String,
    write_error: Option<io::Error>,
    read_error: Option<io::Error>,
) -> ClientError {
    match read_error.or(write_error) {
        None => ClientError::Closed {
            socket,
            source: None,
        },
        Some(source) if is_connection_gone(&source) => ClientError::Closed {
            socket,
            source: Some(source),
        },
        Some(source) => ClientError::Io { socket, source },
    }
}

fn is_connection_gone(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof
    )
}

/// The node's attachments (pods' container ids and namespace paths), from the agent on `socket`.
/// The agent answers root only.
pub fn attachments(socket: &Path, timeout: Duration) -> Result<AttachmentList, ClientError> {
    let socket_name = || socket.display().to_string();
    match call(socket, &Request::Attachments, timeout)? {
        Response::Attachments(list) => Ok(list),
        Response::Error { message, .. } => Err(ClientError::Refused {
            socket: socket_name(),
            message,
        }),
        other => Err(ClientError::UnexpectedResponse {
            socket: socket_name(),
            answer: format!("{other:?}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::{io::Read as _, os::unix::net::UnixListener};

    use super::*;

    /// An agent that accepts one connection, reads `read` bytes of the request, writes `reply`
    /// and closes.
    fn agent_that(read: usize, reply: &'static [u8]) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("agent.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut buf = vec![0u8; read];
            let _ = stream.read_exact(&mut buf);
            let _ = stream.write_all(reply);
        });
        (dir, socket)
    }

    #[test]
    fn an_agent_closing_mid_request_is_closed_not_a_bad_answer() {
        for (read, reply) in [
            (0, &b""[..]),
            (5, &b""[..]),
            (5, &br#"{"result":"dele"#[..]),
        ] {
            let (_dir, socket) = agent_that(read, reply);
            let error = call(&socket, &Request::Status, Duration::from_secs(5)).unwrap_err();
            assert!(
                matches!(error, ClientError::Closed { .. }),
                "read {read}, reply {reply:?}: {error:?}"
            );
        }
    }

    #[test]
    fn an_answer_before_the_request_is_read_is_still_an_answer() {
        let (_dir, socket) = agent_that(0, b"{\"result\":\"deleted\",\"existed\":true}\n");
        let answer = call(&socket, &Request::Status, Duration::from_secs(5)).unwrap();
        assert_eq!(answer, Response::Deleted { existed: true });
    }

    #[test]
    fn a_whole_line_that_is_not_an_answer_is_a_bad_response() {
        let (_dir, socket) = agent_that(5, b"{\"result\":\"nonsense\"}\n");
        let error = call(&socket, &Request::Status, Duration::from_secs(5)).unwrap_err();
        assert!(
            matches!(error, ClientError::BadResponse { .. }),
            "{error:?}"
        );
    }

    #[test]
    fn attachments_are_listed_or_the_refusal_reported() {
        let (_dir, socket) = agent_that(
            5,
            b"{\"result\":\"attachments\",\"attachments\":[],\"deleting\":[]}\n",
        );
        let list = attachments(&socket, Duration::from_secs(5)).unwrap();
        assert_eq!(list, AttachmentList::default());
        let (_dir, socket) = agent_that(
            5,
            b"{\"result\":\"error\",\"kind\":\"invalid_request\",\"message\":\"not root\"}\n",
        );
        let error = attachments(&socket, Duration::from_secs(5)).unwrap_err();
        assert!(error.to_string().contains("not root"), "{error}");
    }
}
