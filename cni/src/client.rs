//! The plugin's side of the agent protocol: connect, send one request line, read one response line.

use std::{
    io::{self, BufRead, BufReader, Write},
    os::unix::net::UnixStream,
    path::Path,
    time::Duration,
};

use crate::protocol::{Request, Response};

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
}

/// Sends `request` to the agent listening on `socket` and returns its response.
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
    (&stream).write_all(&line).map_err(io_error)?;
    let mut answer = String::new();
    BufReader::new(&stream)
        .read_line(&mut answer)
        .map_err(io_error)?;
    serde_json::from_str(&answer).map_err(|source| ClientError::BadResponse {
        socket: name.clone(),
        source,
    })
}
