//! The server's UDP side, on threads of its own: one blocking socket per thread, all bound to the
//! same address with `SO_REUSEPORT` (the kernel spreads clients over them by their addresses), as
//! unbound and knot serve. A thread answers zone questions itself, with no task, channel or
//! cross-thread wake-up per datagram, and answers a repeated question from its
//! [`AnswerMemo`] without parsing it; a question that must be forwarded goes to a task on the
//! server's runtime, so a slow upstream never holds up the thread. What a datagram gets is decided
//! as hickory-server decides it ([`datagram_answer`]): a message shorter than a header is dropped,
//! one whose header reads but whose body does not gets FORMERR, a response (QR=1) is dropped;
//! anything else goes through the handler.

use std::{
    future::Future,
    io,
    net::{SocketAddr, UdpSocket},
    pin::pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll, Waker},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use hickory_proto::{
    op::{Header, MessageType},
    serialize::binary::{BinDecodable, BinDecoder},
};
use hickory_server::{net::xfer::Protocol, server::Request};
use socket2::{Domain, SockRef, Socket, Type};

use crate::{
    answer_memo::AnswerMemo,
    capture::Capture,
    metrics::Transport,
    server::{ClusterDnsHandler, Step, ZoneSource},
};

/// The largest datagram read (an EDNS query is far smaller; the rest of a longer one is cut).
const RECEIVE_BUFFER: usize = 4096;

/// How often a thread waiting for a datagram looks whether the server is stopping.
const STOP_CHECK: Duration = Duration::from_millis(200);

/// A blocking UDP socket bound to `addr` with `SO_REUSEPORT`, so the server's other sockets can
/// share the address.
pub(crate) fn bind_shared(addr: SocketAddr) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, None)?;
    socket.set_reuse_port(true)?;
    socket.bind(&addr.into())?;
    socket.set_read_timeout(Some(STOP_CHECK))?;
    Ok(socket.into())
}

/// What a datagram is, before any handling.
enum Datagram {
    /// Nothing is answered.
    Dropped,
    /// The header reads, the body does not: hickory-server answers FORMERR itself.
    Unreadable(Header),
    Request(Box<Request>),
}

fn read(raw: &[u8], src: SocketAddr) -> Datagram {
    let Ok(header) = Header::read(&mut BinDecoder::new(raw)) else {
        return Datagram::Dropped;
    };
    match Request::from_bytes(raw.to_vec(), src, Protocol::Udp) {
        Err(_) => Datagram::Unreadable(header),
        Ok(request) if request.metadata.message_type == MessageType::Response => Datagram::Dropped,
        Ok(request) => Datagram::Request(Box::new(request)),
    }
}

/// The wire answer to `request` after `step`, encoded for a UDP client.
async fn encode<S: ZoneSource>(
    handler: &ClusterDnsHandler<S>,
    request: &Request,
    step: Step,
    arrived: Instant,
) -> Option<Vec<u8>> {
    let capture = Capture::new(Protocol::Udp);
    handler
        .finish(request, step, arrived, capture.clone())
        .await;
    capture.take()
}

/// The answer the datagram `raw` from `src` gets, as wire bytes; `None` when it gets none.
pub(crate) async fn datagram_answer<S: ZoneSource>(
    handler: &ClusterDnsHandler<S>,
    raw: &[u8],
    src: SocketAddr,
) -> Option<Vec<u8>> {
    let arrived = Instant::now();
    match read(raw, src) {
        Datagram::Dropped => None,
        Datagram::Unreadable(header) => Capture::new(Protocol::Udp).form_error(&header).await,
        Datagram::Request(request) => {
            let step = handler.begin(&request);
            encode(handler, &request, step, arrived).await
        }
    }
}

/// Whether an answer can go back to `src` (hickory-server's rule: no port 0, no unspecified or
/// multicast address).
fn answerable(src: SocketAddr) -> bool {
    src.port() != 0 && !src.ip().is_unspecified() && !src.ip().is_multicast()
}

/// Runs `future` when it completes without waiting (an answer from the zone, an error code: the
/// capture sends synchronously); `None` if it would wait.
fn now<F: Future>(future: F) -> Option<F::Output> {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => Some(output),
        Poll::Pending => None,
    }
}

/// One UDP thread's loop: reads `socket` until `stopping`; zone answers are sent from the thread,
/// forwarded questions from a task each on `runtime`.
pub(crate) fn serve<S: ZoneSource>(
    socket: &Arc<UdpSocket>,
    handler: &Arc<ClusterDnsHandler<S>>,
    runtime: &tokio::runtime::Handle,
    stopping: &AtomicBool,
) {
    let mut buffer = vec![0u8; RECEIVE_BUFFER];
    let mut memo = AnswerMemo::default();
    let mut reply = Vec::with_capacity(512);
    while !stopping.load(Ordering::Relaxed) {
        let (length, src) = match socket.recv_from(&mut buffer) {
            Ok(received) => received,
            Err(error)
                if matches!(
                    error.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                continue;
            }
            Err(error) => {
                tracing::debug!(%error, "DNS: receiving a datagram failed");
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        if !answerable(src) {
            continue;
        }
        let arrived = Instant::now();
        let raw = &buffer[..length];
        let zone = handler.zone();
        if let Some(remembered) = memo.answer(&zone, raw, &mut reply) {
            let counters = handler.counters();
            counters.request(Transport::Udp, remembered.qtype);
            send(socket, &reply, src);
            counters.response(remembered.code, arrived.elapsed());
            continue;
        }
        let request = match read(raw, src) {
            Datagram::Dropped => continue,
            Datagram::Unreadable(header) => {
                if let Some(bytes) = now(Capture::new(Protocol::Udp).form_error(&header)).flatten()
                {
                    send(socket, &bytes, src);
                }
                continue;
            }
            Datagram::Request(request) => request,
        };
        let step = handler.begin(&request);
        if let Step::Ready(answer) = &step {
            let code = answer.code;
            let qtype = request
                .request_info()
                .ok()
                .map(|info| info.query.query_type());
            match now(encode(handler, &request, step, arrived)) {
                Some(Some(bytes)) => {
                    send(socket, &bytes, src);
                    memo.remember(&zone, raw, &bytes, qtype, code);
                }
                Some(None) => {}
                None => tracing::warn!("DNS: a zone answer waited; not sent"),
            }
            continue;
        }
        let (socket, handler) = (socket.clone(), handler.clone());
        runtime.spawn(async move {
            if let Some(bytes) = encode(&handler, &request, step, arrived).await {
                send(&socket, &bytes, src);
            }
        });
    }
}

/// Sends without waiting: a full send buffer drops the answer (the client asks again), as a
/// router would drop the packet.
fn send(socket: &UdpSocket, bytes: &[u8], to: SocketAddr) {
    if let Err(error) =
        SockRef::from(socket).send_to_with_flags(bytes, &to.into(), libc::MSG_DONTWAIT)
    {
        tracing::debug!(%error, %to, "DNS answer not sent");
    }
}

/// The UDP threads of a server; [`UdpThreads::stop`] ends them.
pub(crate) struct UdpThreads {
    stopping: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl UdpThreads {
    /// Starts one thread per socket.
    pub(crate) fn start<S: ZoneSource>(
        sockets: Vec<UdpSocket>,
        handler: &Arc<ClusterDnsHandler<S>>,
        runtime: &tokio::runtime::Handle,
    ) -> io::Result<Self> {
        let stopping = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::with_capacity(sockets.len());
        for (index, socket) in sockets.into_iter().enumerate() {
            let (handler, runtime, stop) = (handler.clone(), runtime.clone(), stopping.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("strait-dns-udp-{index}"))
                .spawn(move || serve(&Arc::new(socket), &handler, &runtime, &stop));
            match spawned {
                Ok(thread) => threads.push(thread),
                Err(error) => {
                    let started = Self { stopping, threads };
                    started.stop_now();
                    return Err(error);
                }
            }
        }
        Ok(Self { stopping, threads })
    }

    /// Tells the threads to stop and waits for them (each ends within [`STOP_CHECK`]), so their
    /// sockets are closed when this returns.
    pub(crate) fn stop_and_wait(mut self) {
        self.stopping.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }

    /// Tells the threads to stop, without waiting.
    pub(crate) fn stop_now(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }
}

impl Drop for UdpThreads {
    fn drop(&mut self) {
        self.stop_now();
    }
}
