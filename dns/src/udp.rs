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
    Zone,
    answer_memo::AnswerMemo,
    batch::{Inbox, Outbox},
    capture::Capture,
    metrics::Transport,
    server::{ClusterDnsHandler, Step, ZoneSource},
};

/// How often a thread waiting for a datagram looks whether the server is stopping.
const STOP_CHECK: Duration = Duration::from_millis(200);

/// A blocking UDP socket bound to `addr`, which every UDP thread reads (each through a copy of
/// the descriptor).
pub(crate) fn bind(addr: SocketAddr) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, None)?;
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

/// A thread's copy of the zone, fetched again only when the source's generation moves (reading
/// one shared number per datagram instead of taking the zone's lock and its reference count, which
/// every thread would write).
#[derive(Default)]
struct CurrentZone {
    generation: Option<u64>,
    zone: Option<Arc<Zone>>,
}

impl CurrentZone {
    fn zone<S: ZoneSource>(&mut self, handler: &ClusterDnsHandler<S>) -> &Arc<Zone> {
        // The generation before the zone: a zone published in between is fetched again next time.
        let generation = handler.generation();
        if generation.is_none() || generation != self.generation {
            self.generation = generation;
            self.zone = None;
        }
        self.zone.get_or_insert_with(|| handler.zone())
    }
}

/// Datagrams taken per `recvmmsg`.
const BATCH: usize = 16;

/// One UDP thread's loop: reads `socket` until `stopping`, a batch at a time; zone answers are
/// sent from the thread (a batch's together), forwarded questions from a task each on `runtime`.
pub(crate) fn serve<S: ZoneSource>(
    socket: &Arc<UdpSocket>,
    handler: &Arc<ClusterDnsHandler<S>>,
    runtime: &tokio::runtime::Handle,
    stopping: &AtomicBool,
) {
    let mut inbox = Inbox::new(BATCH);
    let mut outbox = Outbox::new();
    let mut memo = AnswerMemo::default();
    let mut current = CurrentZone::default();
    while !stopping.load(Ordering::Relaxed) {
        let count = match inbox.receive(socket) {
            Ok(count) => count,
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
                tracing::debug!(%error, "DNS: receiving datagrams failed");
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        for i in 0..count {
            let Some((raw, src)) = inbox.datagram(i) else {
                continue;
            };
            if !answerable(src) {
                continue;
            }
            let arrived = Instant::now();
            let zone = current.zone(handler);
            if let Some(remembered) = memo.answer(zone, raw, outbox.next(src)) {
                let counters = handler.counters();
                counters.request(Transport::Udp, remembered.qtype);
                counters.response(remembered.code, arrived.elapsed());
                continue;
            }
            outbox.take_back();
            answer_anew(
                raw,
                src,
                arrived,
                zone,
                handler,
                &mut memo,
                &mut outbox,
                (socket, runtime),
            );
        }
        outbox.flush(socket);
    }
}

/// A datagram the memo does not hold: parsed and answered through the handler (the answer queued
/// in `outbox` and remembered), or handed to a task on the runtime when it must be forwarded.
#[allow(clippy::too_many_arguments)]
fn answer_anew<S: ZoneSource>(
    raw: &[u8],
    src: SocketAddr,
    arrived: Instant,
    zone: &Arc<Zone>,
    handler: &Arc<ClusterDnsHandler<S>>,
    memo: &mut AnswerMemo,
    outbox: &mut Outbox,
    (socket, runtime): (&Arc<UdpSocket>, &tokio::runtime::Handle),
) {
    let request = match read(raw, src) {
        Datagram::Dropped => return,
        Datagram::Unreadable(header) => {
            if let Some(bytes) = now(Capture::new(Protocol::Udp).form_error(&header)).flatten() {
                outbox.push(&bytes, src);
            }
            return;
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
                outbox.push(&bytes, src);
                memo.remember(zone, raw, &bytes, qtype, code);
            }
            Some(None) => {}
            None => tracing::warn!("DNS: a zone answer waited; not sent"),
        }
        return;
    }
    let (socket, handler) = (socket.clone(), handler.clone());
    runtime.spawn(async move {
        if let Some(bytes) = encode(&handler, &request, step, arrived).await {
            send(&socket, &bytes, src);
        }
    });
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
