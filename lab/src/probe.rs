//! The probe client: connects to TARGET:PORT over TCP (or sends one UDP datagram) and returns what the
//! answering pod sent: its name on the first line, the client address it saw on the second. Runs inside the prober's namespace and cgroup (see `lab probe`).

use std::{
    io::{BufRead, BufReader},
    net::{SocketAddr, TcpStream, UdpSocket},
    time::{Duration, Instant},
};

/// Asks `target` who it is. Errors describe why nobody answered.
pub fn ask(target: SocketAddr, udp: bool, timeout: Duration) -> Result<String, String> {
    if udp {
        ask_udp(target, timeout)
    } else {
        ask_tcp(target, timeout)
    }
}

fn ask_tcp(target: SocketAddr, timeout: Duration) -> Result<String, String> {
    let stream = TcpStream::connect_timeout(&target, timeout)
        .map_err(|e| format!("connect {target}: {e}"))?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader
        .read_line(&mut line)
        .map_err(|e| format!("read from {target}: {e}"))?;
    let name = line.trim().to_owned();
    let mut peer = String::new();
    // The second line is optional: a peer that sends only a name is still an answer.
    let _ = reader.read_line(&mut peer);
    let peer = peer.trim();
    if !name.is_empty() && !peer.is_empty() {
        Ok(format!("{name}\n{peer}"))
    } else if name.is_empty() {
        Err(format!("{target} closed without answering"))
    } else {
        Ok(name)
    }
}

fn ask_udp(target: SocketAddr, timeout: Duration) -> Result<String, String> {
    let socket = UdpSocket::bind(("0.0.0.0", 0)).map_err(|e| e.to_string())?;
    socket
        .connect(target)
        .map_err(|e| format!("connect {target}: {e}"))?;
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 512];
    // Datagrams can be lost: ask a few times within the timeout.
    let attempt = timeout / 3;
    while Instant::now() < deadline {
        socket
            .send(b"who\n")
            .map_err(|e| format!("send to {target}: {e}"))?;
        let wait = attempt
            .min(deadline.saturating_duration_since(Instant::now()))
            .max(Duration::from_millis(1));
        socket
            .set_read_timeout(Some(wait))
            .map_err(|e| e.to_string())?;
        match socket.recv(&mut buf) {
            Ok(n) => {
                let name = String::from_utf8_lossy(&buf[..n]).trim().to_owned();
                if !name.is_empty() {
                    return Ok(name);
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(format!("receive from {target}: {e}")),
        }
    }
    Err(format!(
        "no UDP answer from {target} within {} ms",
        timeout.as_millis()
    ))
}

#[cfg(test)]
mod tests {
    use std::{io::Write, net::TcpListener, thread};

    use super::*;

    #[test]
    fn tcp_probe_returns_the_answer_and_reports_refusal() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            s.write_all(b"ns/pod-a\n").unwrap();
        });
        assert_eq!(
            ask(addr, false, Duration::from_secs(2)).unwrap(),
            "ns/pod-a"
        );
        // Nothing listens on the port any more.
        assert!(ask(addr, false, Duration::from_millis(300)).is_err());
    }

    #[test]
    fn udp_probe_times_out_without_an_answer() {
        let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
        let err = ask(
            silent.local_addr().unwrap(),
            true,
            Duration::from_millis(200),
        )
        .unwrap_err();
        assert!(err.contains("no UDP answer"), "{err}");
    }
}
