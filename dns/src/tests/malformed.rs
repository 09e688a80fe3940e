//! Malformed and unusual messages through the server's real handler ([`answer_bytes`]): what is
//! dropped, what gets which response code, and that a good query is still answered afterwards.

use std::sync::Arc;

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::{RData, RecordType, rdata::A};

use super::fixtures::spec_zone;
use crate::Zone;
use crate::forward::{ForwardConfig, Forwarder};
use crate::server::{ClusterDnsHandler, ZoneSource, answer_bytes};

struct Fixed(Arc<Zone>);

impl ZoneSource for Fixed {
    fn zone(&self) -> Arc<Zone> {
        Arc::clone(&self.0)
    }
}

/// The specification's example cluster, nothing to forward to (REFUSED outside the zone).
fn handler() -> ClusterDnsHandler<Fixed> {
    ClusterDnsHandler::new(
        Fixed(Arc::new(spec_zone())),
        Arc::new(Forwarder::new(ForwardConfig::default(), Arc::default())),
        Arc::default(),
    )
}

const ID: u16 = 0xbeef;
/// RD set, opcode QUERY.
const QUERY_FLAGS: u8 = 0x01;
const TYPE_A: u16 = 1;
const IN: u16 = 1;

/// A header: id, the two flag bytes, then QDCOUNT, ANCOUNT, NSCOUNT, ARCOUNT.
fn header(flags: u8, rcode_byte: u8, counts: [u16; 4]) -> Vec<u8> {
    let mut bytes = ID.to_be_bytes().to_vec();
    bytes.extend([flags, rcode_byte]);
    for count in counts {
        bytes.extend(count.to_be_bytes());
    }
    bytes
}

/// A name in wire format, uncompressed.
fn wire_name(text: &str) -> Vec<u8> {
    let mut bytes = Vec::new();
    for label in text.trim_end_matches('.').split('.') {
        bytes.push(u8::try_from(label.len()).expect("short label"));
        bytes.extend(label.as_bytes());
    }
    bytes.push(0);
    bytes
}

/// Type and class after a question's name.
fn type_and_class(qtype: u16) -> Vec<u8> {
    [qtype.to_be_bytes(), IN.to_be_bytes()].concat()
}

/// One question for `name`, type A, class IN, with these header flags.
fn query_with(flags: u8, name: &str) -> Vec<u8> {
    let mut bytes = header(flags, 0, [1, 0, 0, 0]);
    bytes.extend(wire_name(name));
    bytes.extend(type_and_class(TYPE_A));
    bytes
}

fn query(name: &str) -> Vec<u8> {
    query_with(QUERY_FLAGS, name)
}

/// The response to `raw`, checked: it parses, is a response, echoes the id and opcode.
async fn answered(handler: &ClusterDnsHandler<Fixed>, raw: &[u8]) -> Message {
    let bytes = answer_bytes(handler, raw)
        .await
        .unwrap_or_else(|| panic!("no answer to {raw:02x?}"));
    let response = Message::from_vec(&bytes)
        .unwrap_or_else(|e| panic!("answer {bytes:02x?} to {raw:02x?} does not parse: {e}"));
    assert_eq!(response.metadata.message_type, MessageType::Response);
    assert_eq!(response.metadata.id, u16::from_be_bytes([raw[0], raw[1]]));
    assert_eq!(
        response.metadata.op_code,
        OpCode::from_u8((raw[2] >> 3) & 0x0f)
    );
    response
}

async fn code_of(handler: &ClusterDnsHandler<Fixed>, raw: &[u8]) -> ResponseCode {
    answered(handler, raw).await.metadata.response_code
}

#[tokio::test]
async fn too_short_for_a_header_is_dropped() {
    let handler = handler();
    assert_eq!(answer_bytes(&handler, &[]).await, None);
    assert_eq!(answer_bytes(&handler, &[0xbe, 0xef, 1, 0, 0]).await, None);
    assert_eq!(
        answer_bytes(&handler, &header(1, 0, [1, 0, 0, 0])[..11]).await,
        None
    );
}

#[tokio::test]
async fn a_readable_header_with_a_broken_body_gets_formerr_without_a_question() {
    let handler = handler();
    let loop_to_itself = [header(QUERY_FLAGS, 0, [1, 0, 0, 0]), vec![0xc0, 12]].concat();
    let pointers_to_each_other = [
        header(QUERY_FLAGS, 0, [1, 0, 0, 0]),
        vec![0xc0, 14, 0xc0, 12],
        type_and_class(TYPE_A),
    ]
    .concat();
    // Four labels of 63, one of 42, the root: 300 bytes, over the limit of 255.
    let long_label = "a".repeat(63);
    let name_300 = format!(
        "{long_label}.{long_label}.{long_label}.{long_label}.{}",
        "a".repeat(42)
    );
    assert_eq!(wire_name(&name_300).len(), 300);
    let too_long = [
        header(QUERY_FLAGS, 0, [1, 0, 0, 0]),
        wire_name(&name_300),
        type_and_class(TYPE_A),
    ]
    .concat();
    let mut label_64 = header(QUERY_FLAGS, 0, [1, 0, 0, 0]);
    label_64.push(64);
    label_64.extend([b'a'; 64]);
    label_64.push(0);
    label_64.extend(type_and_class(TYPE_A));
    let mut missing_additional = query("kubernetes.default.svc.cluster.local");
    missing_additional[11] = 1;
    let cases: [(&str, Vec<u8>); 6] = [
        (
            "header only, QDCOUNT=1",
            header(QUERY_FLAGS, 0, [1, 0, 0, 0]),
        ),
        ("pointer to itself", loop_to_itself),
        ("two pointers to each other", pointers_to_each_other),
        ("a 300-byte name", too_long),
        ("a label of 64", label_64),
        ("ARCOUNT=1, no record", missing_additional),
    ];
    for (case, raw) in cases {
        let response = answered(&handler, &raw).await;
        assert_eq!(
            response.metadata.response_code,
            ResponseCode::FormErr,
            "{case}"
        );
        assert!(response.queries.is_empty(), "{case}");
        assert!(response.edns.is_none(), "{case}");
    }
}

#[tokio::test]
async fn not_exactly_one_question_is_formerr_from_the_handler() {
    let handler = handler();
    let mut two = header(QUERY_FLAGS, 0, [2, 0, 0, 0]);
    for name in [
        "kubernetes.default.svc.cluster.local",
        "foo.default.svc.cluster.local",
    ] {
        two.extend(wire_name(name));
        two.extend(type_and_class(TYPE_A));
    }
    let response = answered(&handler, &two).await;
    assert_eq!(response.metadata.response_code, ResponseCode::FormErr);
    assert_eq!(response.queries.len(), 2, "both questions are echoed");
    assert!(response.answers.is_empty());

    let none = header(QUERY_FLAGS, 0, [0, 0, 0, 0]);
    let response = answered(&handler, &none).await;
    assert_eq!(response.metadata.response_code, ResponseCode::FormErr);
    assert!(response.queries.is_empty());
}

#[tokio::test]
async fn responses_are_dropped_unless_their_body_is_broken() {
    let handler = handler();
    // QR=1: hickory-server never hands a response to the handler (no reflection).
    let response = query_with(0x80 | QUERY_FLAGS, "kubernetes.default.svc.cluster.local");
    assert_eq!(answer_bytes(&handler, &response).await, None);
    // But it answers FORMERR to a response whose body does not parse (it checks QR after parsing).
    let broken = header(0x80, 0, [1, 0, 0, 0]);
    assert_eq!(code_of(&handler, &broken).await, ResponseCode::FormErr);
}

#[tokio::test]
async fn other_opcodes_are_notimp() {
    let handler = handler();
    // STATUS (2), unassigned (3), NOTIFY (4), UPDATE (5; the question is the zone section).
    for opcode in [2_u8, 3, 4, 5] {
        let raw = query_with(opcode << 3, "cluster.local");
        let response = answered(&handler, &raw).await;
        assert_eq!(
            response.metadata.response_code,
            ResponseCode::NotImp,
            "opcode {opcode}"
        );
        assert!(response.answers.is_empty());
    }
}

#[tokio::test]
async fn trailing_bytes_after_a_query_are_ignored() {
    let handler = handler();
    let mut raw = query("kubernetes.default.svc.cluster.local");
    raw.extend([0xff, 0x00, 0xc0, 0x0c, 0x3f]);
    let response = answered(&handler, &raw).await;
    assert_eq!(response.metadata.response_code, ResponseCode::NoError);
    assert_eq!(response.answers.len(), 1);
}

/// Marsaglia's xorshift64: a fixed, dependency-free byte stream.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// The response to `raw`, if any, checked as [`answered`] checks it; `None` when dropped.
async fn outcome(handler: &ClusterDnsHandler<Fixed>, raw: &[u8]) -> Option<ResponseCode> {
    answer_bytes(handler, raw).await?;
    let code = code_of(handler, raw).await;
    assert!(
        matches!(
            code,
            ResponseCode::FormErr
                | ResponseCode::NotImp
                | ResponseCode::Refused
                | ResponseCode::NXDomain
                | ResponseCode::NoError
        ),
        "{raw:02x?}: {code}"
    );
    Some(code)
}

#[tokio::test]
async fn random_garbage_is_dropped_or_answered_formerr() {
    let handler = handler();
    let mut rng = XorShift(0x05ee_d0fd_15c0_ffee);
    let mut answers = 0;
    for _ in 0..1000 {
        let len = (rng.next() % 600) as usize;
        let raw: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        match outcome(&handler, &raw).await {
            // Too short, or a response that parses.
            None => assert!(raw.len() < 12 || raw[2] & 0x80 != 0, "{raw:02x?} dropped"),
            // Random bodies do not parse, or leave the question count other than one.
            Some(code) => {
                assert!(
                    code == ResponseCode::FormErr || code == ResponseCode::NotImp,
                    "{raw:02x?}: {code}"
                );
                answers += 1;
            }
        }
    }
    assert!(answers > 900, "{answers} of 1000 answered");
    the_zone_still_answers(&handler).await;
}

#[tokio::test]
async fn a_valid_query_with_random_bytes_changed_is_dropped_or_answered() {
    let handler = handler();
    let valid = query("my-pet.headless.default.svc.cluster.local");
    let mut rng = XorShift(0x0dd_ba11);
    let mut codes = std::collections::BTreeSet::new();
    for _ in 0..1000 {
        let mut raw = valid.clone();
        for _ in 0..=rng.next() % 3 {
            let at = (rng.next() % raw.len() as u64) as usize;
            raw[at] = rng.next() as u8;
        }
        if let Some(code) = outcome(&handler, &raw).await {
            codes.insert(u16::from(code));
        }
    }
    // The changes reach every path: broken, refused, not in the zone, answered, and other opcodes.
    for code in [
        ResponseCode::NoError,
        ResponseCode::FormErr,
        ResponseCode::NotImp,
        ResponseCode::Refused,
        ResponseCode::NXDomain,
    ] {
        assert!(
            codes.contains(&u16::from(code)),
            "{code} never seen: {codes:?}"
        );
    }
    the_zone_still_answers(&handler).await;
}

/// A query for a zone name answers NOERROR with its address; others NXDOMAIN and REFUSED.
async fn the_zone_still_answers(handler: &ClusterDnsHandler<Fixed>) {
    let response = answered(handler, &query("kubernetes.default.svc.cluster.local")).await;
    assert_eq!(response.metadata.response_code, ResponseCode::NoError);
    assert!(response.metadata.authoritative);
    assert_eq!(response.answers.len(), 1);
    assert_eq!(response.answers[0].record_type(), RecordType::A);
    assert_eq!(response.answers[0].data, RData::A(A::new(10, 3, 0, 1)));
    let missing = query("nope.default.svc.cluster.local");
    assert_eq!(code_of(handler, &missing).await, ResponseCode::NXDomain);
    let elsewhere = query("example.com");
    assert_eq!(code_of(handler, &elsewhere).await, ResponseCode::Refused);
}

#[tokio::test]
async fn the_zone_answers_after_every_malformed_case() {
    let handler = handler();
    let inputs = [
        vec![],
        header(QUERY_FLAGS, 0, [1, 0, 0, 0]),
        [header(QUERY_FLAGS, 0, [1, 0, 0, 0]), vec![0xc0, 12]].concat(),
        header(QUERY_FLAGS, 0, [0, 0, 0, 0]),
        query_with(5 << 3, "cluster.local"),
    ];
    for raw in &inputs {
        let _ = answer_bytes(&handler, raw).await;
    }
    the_zone_still_answers(&handler).await;
}
