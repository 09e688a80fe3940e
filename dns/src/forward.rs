//! Names outside the cluster zone, sent on to upstream servers as CoreDNS's `forward` and `cache`
//! plugins do: upstreams asked in order over UDP, again over TCP when the answer comes back
//! truncated; at most `max_concurrent` questions in flight upstream (kubeadm's Corefile: 1000), more
//! are refused; answers cached by question, positive ones for their smallest TTL (at most 3600 s) and
//! negative ones (NXDOMAIN, no data) for their SOA's negative TTL (at most 1800 s), both CoreDNS's
//! cache limits; the cache holds a bounded number of answers. When no upstream answers in time, the
//! client gets SERVFAIL, never silence.

use std::{
    collections::HashMap,
    net::{Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use hickory_proto::{
    op::{Edns, Message, MessageType, OpCode, Query, ResponseCode},
    rr::{DNSClass, Name, RData, Record, RecordType},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpStream, UdpSocket},
    sync::Semaphore,
};

/// The longest a positive answer is cached (CoreDNS `cache`: 3600 s).
const MAX_POSITIVE_TTL: u32 = 3600;
/// The longest a negative answer is cached (CoreDNS `cache`: 1800 s).
const MAX_NEGATIVE_TTL: u32 = 1800;
/// The UDP payload size asked of upstreams.
const UPSTREAM_PAYLOAD: u16 = 1232;

/// Where and how to forward.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForwardConfig {
    /// Asked in order; an empty list forwards nothing (REFUSED).
    pub upstreams: Vec<SocketAddr>,
    /// How long one upstream is given to answer.
    pub timeout: Duration,
    /// Questions in flight upstream at most (CoreDNS `max_concurrent`).
    pub max_concurrent: usize,
    /// Answers the cache holds at most (CoreDNS's default capacity is 9984).
    pub cache_entries: usize,
}

impl Default for ForwardConfig {
    fn default() -> Self {
        Self {
            upstreams: Vec::new(),
            timeout: Duration::from_secs(2),
            max_concurrent: 1000,
            cache_entries: 9984,
        }
    }
}

/// What forwarding did, for metrics (CoreDNS's cache and forward plugin counters).
#[derive(Debug, Default)]
pub struct ForwardCounters {
    pub cache_hits: AtomicU64,
    pub cache_misses: AtomicU64,
    pub upstream_requests: AtomicU64,
    pub tcp_retries: AtomicU64,
    pub max_concurrent_rejects: AtomicU64,
    pub upstream_failures: AtomicU64,
}

/// An answer from upstream (or the cache): response code and sections.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Forwarded {
    pub code: ResponseCode,
    pub answers: Vec<Record>,
    pub authorities: Vec<Record>,
    pub additionals: Vec<Record>,
}

impl Forwarded {
    fn failure(code: ResponseCode) -> Self {
        Self {
            code,
            answers: Vec::new(),
            authorities: Vec::new(),
            additionals: Vec::new(),
        }
    }
}

/// `(lowercase name, type, class)`.
type CacheKey = (Name, RecordType, DNSClass);

struct CacheEntry {
    answer: Forwarded,
    stored: Instant,
    ttl: u32,
}

/// Sends questions on and remembers the answers.
pub struct Forwarder {
    config: ForwardConfig,
    cache: Mutex<HashMap<CacheKey, CacheEntry>>,
    in_flight: Semaphore,
    counters: Arc<ForwardCounters>,
}

/// Why one upstream gave no answer.
#[derive(Debug, thiserror::Error)]
enum ExchangeError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("answer does not parse: {0}")]
    Parse(String),
}

impl Forwarder {
    pub fn new(config: ForwardConfig, counters: Arc<ForwardCounters>) -> Self {
        let permits = config.max_concurrent.max(1);
        Self {
            config,
            cache: Mutex::new(HashMap::new()),
            in_flight: Semaphore::new(permits),
            counters,
        }
    }

    /// Whether there is anywhere to forward to.
    pub fn is_active(&self) -> bool {
        !self.config.upstreams.is_empty()
    }

    /// The answer to `query`: from the cache, else from the first upstream that answers; SERVFAIL
    /// when none does, REFUSED when too many questions are in flight or there is no upstream.
    pub async fn resolve(&self, query: &Query) -> Forwarded {
        if !self.is_active() {
            return Forwarded::failure(ResponseCode::Refused);
        }
        let key = (
            query.name().to_lowercase(),
            query.query_type(),
            query.query_class(),
        );
        if let Some(answer) = self.cached(&key) {
            self.counters.cache_hits.fetch_add(1, Ordering::Relaxed);
            return answer;
        }
        self.counters.cache_misses.fetch_add(1, Ordering::Relaxed);
        let Ok(_permit) = self.in_flight.try_acquire() else {
            self.counters
                .max_concurrent_rejects
                .fetch_add(1, Ordering::Relaxed);
            return Forwarded::failure(ResponseCode::Refused);
        };
        let request = request_for(query);
        for upstream in &self.config.upstreams {
            self.counters
                .upstream_requests
                .fetch_add(1, Ordering::Relaxed);
            match self.exchange(*upstream, &request).await {
                Ok(response) => {
                    let answer = Forwarded {
                        code: response.metadata.response_code,
                        answers: response.answers,
                        authorities: response.authorities,
                        additionals: response.additionals,
                    };
                    self.store(key, &answer);
                    return answer;
                }
                Err(error) => {
                    self.counters
                        .upstream_failures
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%upstream, %error, name = %query.name(), "upstream gave no answer");
                }
            }
        }
        Forwarded::failure(ResponseCode::ServFail)
    }

    fn cached(&self, key: &CacheKey) -> Option<Forwarded> {
        let cache = self
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = cache.get(key)?;
        let age = u32::try_from(entry.stored.elapsed().as_secs()).unwrap_or(u32::MAX);
        if age >= entry.ttl {
            return None;
        }
        let mut answer = entry.answer.clone();
        for record in answer
            .answers
            .iter_mut()
            .chain(&mut answer.authorities)
            .chain(&mut answer.additionals)
        {
            record.ttl = record.ttl.saturating_sub(age);
        }
        Some(answer)
    }

    fn store(&self, key: CacheKey, answer: &Forwarded) {
        let Some(ttl) = cache_ttl(answer) else {
            return;
        };
        let mut cache = self
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if cache.len() >= self.config.cache_entries && !cache.contains_key(&key) {
            // Room first from what has expired, else from any answer: the bound holds either way.
            cache.retain(|_, e| e.stored.elapsed().as_secs() < u64::from(e.ttl));
            if cache.len() >= self.config.cache_entries
                && let Some(victim) = cache.keys().next().cloned()
            {
                cache.remove(&victim);
            }
        }
        if self.config.cache_entries > 0 {
            cache.insert(
                key,
                CacheEntry {
                    answer: answer.clone(),
                    stored: Instant::now(),
                    ttl,
                },
            );
        }
    }

    /// Answers held in the cache now (expired ones included until they are pushed out).
    pub fn cache_len(&self) -> usize {
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }

    /// One upstream's answer: over UDP, and over TCP when that one is truncated.
    async fn exchange(
        &self,
        upstream: SocketAddr,
        request: &Message,
    ) -> Result<Message, ExchangeError> {
        let bytes = request
            .to_vec()
            .map_err(|e| ExchangeError::Parse(e.to_string()))?;
        let timeout = self.config.timeout;
        let udp = tokio::time::timeout(timeout, udp_exchange(upstream, &bytes, request))
            .await
            .map_err(|_| ExchangeError::Timeout(timeout))??;
        if !udp.metadata.truncation {
            return Ok(udp);
        }
        self.counters.tcp_retries.fetch_add(1, Ordering::Relaxed);
        let tcp = tokio::time::timeout(timeout, tcp_exchange(upstream, &bytes))
            .await
            .map_err(|_| ExchangeError::Timeout(timeout))??;
        if answers(request, &tcp) {
            Ok(tcp)
        } else {
            Err(ExchangeError::Parse(
                "the TCP answer is not for the question asked".into(),
            ))
        }
    }
}

/// The question as sent upstream: recursion desired, EDNS with a 1232-byte payload.
fn request_for(query: &Query) -> Message {
    let mut request = Message::new(rand_id(), MessageType::Query, OpCode::Query);
    request.metadata.recursion_desired = true;
    request.add_query(query.clone());
    let mut edns = Edns::new();
    edns.set_max_payload(UPSTREAM_PAYLOAD);
    request.set_edns(edns);
    request
}

/// A message id nobody on the path can guess from the last one.
fn rand_id() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    (hasher.finish() & 0xffff) as u16
}

/// Whether `response` answers `request`: its id and the same questions (names compared without
/// regard to case, types, classes).
fn answers(request: &Message, response: &Message) -> bool {
    response.metadata.id == request.metadata.id
        && response.queries.len() == request.queries.len()
        && response.queries.iter().zip(&request.queries).all(|(a, q)| {
            a.name().to_lowercase() == q.name().to_lowercase()
                && a.query_type() == q.query_type()
                && a.query_class() == q.query_class()
        })
}

async fn udp_exchange(
    upstream: SocketAddr,
    bytes: &[u8],
    request: &Message,
) -> Result<Message, ExchangeError> {
    let local: SocketAddr = if upstream.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local).await?;
    socket.connect(upstream).await?;
    socket.send(bytes).await?;
    let mut buffer = vec![0; 65_535];
    loop {
        let len = socket.recv(&mut buffer).await?;
        // Anything else arriving on this port (a late answer, a spoof) is not the answer.
        match Message::from_vec(&buffer[..len]) {
            Ok(response) if answers(request, &response) => return Ok(response),
            Ok(_) | Err(_) => {}
        }
    }
}

async fn tcp_exchange(upstream: SocketAddr, request: &[u8]) -> Result<Message, ExchangeError> {
    let mut stream = TcpStream::connect(upstream).await?;
    let len = u16::try_from(request.len())
        .map_err(|_| ExchangeError::Parse("request longer than 65535 bytes".into()))?;
    let mut framed = len.to_be_bytes().to_vec();
    framed.extend_from_slice(request);
    stream.write_all(&framed).await?;
    let len = stream.read_u16().await?;
    let mut buffer = vec![0; usize::from(len)];
    stream.read_exact(&mut buffer).await?;
    Message::from_vec(&buffer).map_err(|e| ExchangeError::Parse(e.to_string()))
}

/// How long `answer` may be cached: its smallest TTL for data, its SOA's negative TTL for NXDOMAIN
/// and no data; not at all for failures and TTL 0.
fn cache_ttl(answer: &Forwarded) -> Option<u32> {
    let ttl = match answer.code {
        ResponseCode::NoError if !answer.answers.is_empty() => answer
            .answers
            .iter()
            .map(|r| r.ttl)
            .min()?
            .min(MAX_POSITIVE_TTL),
        ResponseCode::NoError | ResponseCode::NXDomain => answer
            .authorities
            .iter()
            .find_map(|r| match &r.data {
                RData::SOA(soa) => Some(r.ttl.min(soa.minimum)),
                _ => None,
            })?
            .min(MAX_NEGATIVE_TTL),
        _ => return None,
    };
    (ttl > 0).then_some(ttl)
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use hickory_proto::rr::rdata::{A, SOA};

    use super::*;

    fn a(name: &str, ttl: u32) -> Record {
        Record::from_rdata(
            Name::from_str(name).unwrap(),
            ttl,
            RData::A(A::new(192, 0, 2, 1)),
        )
    }

    fn soa(ttl: u32, minimum: u32) -> Record {
        let name = Name::from_str("example.com.").unwrap();
        Record::from_rdata(
            name.clone(),
            ttl,
            RData::SOA(SOA::new(name.clone(), name, 1, 7200, 1800, 86400, minimum)),
        )
    }

    fn forwarded(code: ResponseCode, answers: Vec<Record>, authorities: Vec<Record>) -> Forwarded {
        Forwarded {
            code,
            answers,
            authorities,
            additionals: Vec::new(),
        }
    }

    #[test]
    fn positive_answers_live_for_their_smallest_ttl_capped() {
        let answer = forwarded(
            ResponseCode::NoError,
            vec![a("x.", 300), a("x.", 60)],
            vec![],
        );
        assert_eq!(cache_ttl(&answer), Some(60));
        let long = forwarded(ResponseCode::NoError, vec![a("x.", 86_400)], vec![]);
        assert_eq!(cache_ttl(&long), Some(MAX_POSITIVE_TTL));
        let zero = forwarded(ResponseCode::NoError, vec![a("x.", 0)], vec![]);
        assert_eq!(cache_ttl(&zero), None);
    }

    #[test]
    fn negative_answers_live_for_the_soa_negative_ttl_and_failures_not_at_all() {
        let nx = forwarded(ResponseCode::NXDomain, vec![], vec![soa(900, 300)]);
        assert_eq!(cache_ttl(&nx), Some(300));
        let nodata = forwarded(ResponseCode::NoError, vec![], vec![soa(60, 3600)]);
        assert_eq!(cache_ttl(&nodata), Some(60));
        let no_soa = forwarded(ResponseCode::NXDomain, vec![], vec![]);
        assert_eq!(cache_ttl(&no_soa), None);
        let fail = forwarded(ResponseCode::ServFail, vec![], vec![soa(60, 60)]);
        assert_eq!(cache_ttl(&fail), None);
    }

    #[test]
    fn the_cache_stays_within_its_bound_and_ages_ttls() {
        let forwarder = Forwarder::new(
            ForwardConfig {
                upstreams: vec!["192.0.2.1:53".parse().unwrap()],
                cache_entries: 3,
                ..ForwardConfig::default()
            },
            Arc::default(),
        );
        for i in 0..10 {
            let name = Name::from_str(&format!("n{i}.example.")).unwrap();
            let key = (name.clone(), RecordType::A, DNSClass::IN);
            forwarder.store(
                key,
                &forwarded(ResponseCode::NoError, vec![a("x.", 60)], vec![]),
            );
        }
        assert_eq!(forwarder.cache_len(), 3);
        let key = (
            Name::from_str("n9.example.").unwrap(),
            RecordType::A,
            DNSClass::IN,
        );
        let hit = forwarder.cached(&key).expect("the newest answer is kept");
        assert_eq!(hit.answers[0].ttl, 60);
    }

    #[tokio::test]
    async fn no_upstream_answering_gives_servfail_in_bounded_time() {
        // A bound UDP socket that never answers: the upstream is "down" without any packet leaving
        // this machine.
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let forwarder = Forwarder::new(
            ForwardConfig {
                upstreams: vec![silent.local_addr().unwrap()],
                timeout: Duration::from_millis(200),
                ..ForwardConfig::default()
            },
            Arc::default(),
        );
        let started = Instant::now();
        let query = Query::query(Name::from_str("example.com.").unwrap(), RecordType::A);
        let answer = forwarder.resolve(&query).await;
        assert_eq!(answer.code, ResponseCode::ServFail);
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(forwarder.cache_len(), 0, "failures are not cached");
    }
}
