//! The server end of the load generator: one TCP listener and one UDP socket on the same port number.
//! UDP datagrams are echoed to their sender; each TCP connection gets a thread and is either a sink
//! (first byte [`SINK_MODE`]: count what arrives, answer the count at EOF) or an echo (anything else).

use std::{
    io::{self, ErrorKind, Read, Write},
    net::{Ipv4Addr, TcpListener, TcpStream, UdpSocket},
    thread,
    time::Duration,
};

use super::SINK_MODE;

/// How often [`Server::bind`] with port 0 retries when the UDP port matching the TCP listener's
/// ephemeral port is taken.
const BIND_ATTEMPTS: u32 = 32;
/// Stack of a connection thread: its buffers are on the heap or small.
const CONNECTION_STACK: usize = 256 * 1024;
/// Echo buffer (on the connection thread's stack): request/response tests send a few bytes.
const ECHO_BUFFER: usize = 16 * 1024;
/// Sink buffer (on the heap): bulk transfers read in large pieces.
const SINK_BUFFER: usize = 256 * 1024;
/// Largest UDP payload.
const DATAGRAM_BUFFER: usize = 64 * 1024;
/// Pause after a failed accept or thread spawn (out of descriptors, memory or threads), so that the
/// loop does not spin while the condition lasts.
const RESOURCE_BACKOFF: Duration = Duration::from_millis(10);

/// The load generator's server, bound and ready to [`run`](Server::run).
#[derive(Debug)]
pub struct Server {
    tcp: TcpListener,
    udp: UdpSocket,
    port: u16,
}

impl Server {
    /// Binds TCP and UDP on `0.0.0.0:port`. With port 0 the TCP listener gets an ephemeral port and
    /// UDP binds the same number (retrying with a new ephemeral port if that UDP port is taken); the
    /// port is then [`port`](Server::port). Connections are accepted (queued) from now on.
    pub fn bind(port: u16) -> io::Result<Self> {
        let mut attempt = 1;
        loop {
            let tcp = TcpListener::bind((Ipv4Addr::UNSPECIFIED, port))
                .map_err(|e| io::Error::new(e.kind(), format!("TCP port {port}: {e}")))?;
            let bound = tcp.local_addr()?.port();
            match UdpSocket::bind((Ipv4Addr::UNSPECIFIED, bound)) {
                Ok(udp) => {
                    return Ok(Self {
                        tcp,
                        udp,
                        port: bound,
                    });
                }
                Err(e)
                    if port == 0 && e.kind() == ErrorKind::AddrInUse && attempt < BIND_ATTEMPTS =>
                {
                    attempt += 1;
                }
                Err(e) => return Err(io::Error::new(e.kind(), format!("UDP port {bound}: {e}"))),
            }
        }
    }

    /// The port both sockets are bound to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until the process ends: UDP on its own thread, TCP accepted here with a thread per
    /// connection. Returns only if it cannot start (the UDP thread cannot be spawned). Errors of a
    /// connection end that connection; failed accepts are retried.
    pub fn run(self) -> io::Result<()> {
        let udp = self.udp;
        thread::Builder::new()
            .name("netbench-udp".into())
            .spawn(move || echo_datagrams(&udp))?;
        for conn in self.tcp.incoming() {
            match conn {
                Ok(conn) => {
                    let spawned = thread::Builder::new()
                        .name("netbench-conn".into())
                        .stack_size(CONNECTION_STACK)
                        // The connection's errors are its own: it is closed and that is all.
                        .spawn(move || drop(serve_connection(conn)));
                    // On failure the closure, and with it the connection, is dropped: closed.
                    if spawned.is_err() {
                        thread::sleep(RESOURCE_BACKOFF);
                    }
                }
                Err(e) => match e.kind() {
                    ErrorKind::Interrupted
                    | ErrorKind::ConnectionAborted
                    | ErrorKind::ConnectionReset => {}
                    _ => thread::sleep(RESOURCE_BACKOFF),
                },
            }
        }
        Ok(())
    }
}

/// Echoes every datagram to its sender, forever; a failed receive or send loses that datagram.
fn echo_datagrams(udp: &UdpSocket) {
    let mut buf = vec![0u8; DATAGRAM_BUFFER];
    loop {
        match udp.recv_from(&mut buf) {
            Ok((n, from)) => {
                let _ = udp.send_to(&buf[..n], from);
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            // Not expected on an unconnected socket; do not spin if it persists.
            Err(_) => thread::sleep(Duration::from_millis(1)),
        }
    }
}

/// One TCP connection: the first byte picks sink or echo.
fn serve_connection(mut conn: TcpStream) -> io::Result<()> {
    conn.set_nodelay(true)?;
    let mut buf = [0u8; ECHO_BUFFER];
    let n = read_some(&mut conn, &mut buf)?;
    if n == 0 {
        return Ok(());
    }
    if buf[0] == SINK_MODE {
        return sink(conn, (n - 1) as u64);
    }
    conn.write_all(&buf[..n])?;
    loop {
        let n = read_some(&mut conn, &mut buf)?;
        if n == 0 {
            return Ok(());
        }
        conn.write_all(&buf[..n])?;
    }
}

/// Reads and discards until EOF, then answers the number of bytes received after the mode byte
/// (`already` of them came with it) as 8 bytes big-endian.
fn sink(mut conn: TcpStream, already: u64) -> io::Result<()> {
    let mut buf = vec![0u8; SINK_BUFFER];
    let mut total = already;
    loop {
        let n = read_some(&mut conn, &mut buf)?;
        if n == 0 {
            break;
        }
        total += n as u64;
    }
    conn.write_all(&total.to_be_bytes())
}

/// `read`, retried when interrupted.
fn read_some(conn: &mut TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match conn.read(buf) {
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}
