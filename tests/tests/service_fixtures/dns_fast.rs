//! The kernel DNS fast path (`dns_fast`, ahead of `from_pod` on a pod's veth) under test-run: a pod's
//! UDP query to the node's DNS listener for an A record of a held name comes back as the reply, built
//! over the query (addresses and ports swapped, the question kept byte for byte, the answers pointing
//! at it, an EDNS OPT record answered with ours) and redirected into the pod; any other query to the
//! listener goes on unchanged, counted as not held or not handled; other traffic goes on uncounted.
//!
//! Queries are built with hickory-proto (by hand where hickory will not write the malformation) and the
//! replies parsed with it; the reply's IPv4 and UDP checksums are recomputed here.

use hickory_proto::{
    op::{Edns, Message, MessageType, OpCode, Query, ResponseCode},
    rr::{
        DNSClass, Name, RData, Record, RecordType,
        rdata::{A, opt::EdnsOption},
    },
};
use strait_abi::dns::DNS_A_MAX;
use strait_dataplane::dns_fast::HotRecord;

use crate::harness::*;

/// The node's DNS listener.
const LISTENER: SocketAddrV4 = SocketAddrV4::new(NODE_IP, 53);
/// The querying pod.
const POD: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 244, 1, 5), 40000);
/// tcx's "next program" (-1) as test-run reports it.
const TCX_NEXT: u32 = 0xffff_ffff;
const ANSWERED: Outcome = (TC_ACT_REDIRECT, Reason::DnsAnswered);
const NOT_HELD: Outcome = (TCX_NEXT, Reason::DnsNotHeld);
const NOT_HANDLED: Outcome = (TCX_NEXT, Reason::DnsNotHandled);
const WEB: &str = "web.default.svc.cluster.local.";
const WEB_IP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 11);
const TTL: u32 = 30;
const ID: u16 = 0x5a17;
/// The OPT record answers carry: root, type 41, payload 1232, version 0, no flags, no options.
const OUR_OPT: [u8; 11] = [0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0];
/// Where the DNS message starts in a frame.
const DNS_AT: usize = 42;

/// `name` (dotted, absolute) in wire format, case kept.
fn wire(name: &str) -> Vec<u8> {
    let mut bytes = Vec::new();
    for label in name.trim_end_matches('.').split('.') {
        bytes.push(u8::try_from(label.len()).unwrap());
        bytes.extend_from_slice(label.as_bytes());
    }
    bytes.push(0);
    bytes
}

fn hot(name: &str, ttl: u32, addrs: &[Ipv4Addr]) -> HotRecord {
    HotRecord {
        wire_name: wire(&name.to_ascii_lowercase()),
        ttl,
        addrs: addrs.to_vec(),
    }
}

/// A node whose fast path answers for `LISTENER` and holds `records`.
fn dns_node(records: &[HotRecord], recursion_available: bool) -> Node {
    let mut node = Node::new(&[]);
    node.dp
        .set_dns_fast(Some(LISTENER), recursion_available)
        .unwrap();
    let report = node.dp.sync_dns_records(records).unwrap();
    assert_eq!(report.written, records.len(), "records written");
    node
}

/// A query (recursion desired) for `name`'s records of `rtype`, without EDNS.
fn query(name: &str, rtype: RecordType) -> Message {
    let mut message = Message::new(ID, MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
    message
}

/// `message` with EDNS (payload 4096) carrying a client cookie.
fn with_cookie(mut message: Message) -> Message {
    let mut edns = Edns::new();
    edns.set_max_payload(4096);
    edns.options_mut()
        .insert(EdnsOption::Unknown(10, vec![1, 2, 3, 4, 5, 6, 7, 8]));
    message.set_edns(edns);
    message
}

fn bytes(message: &Message) -> Vec<u8> {
    message.to_vec().unwrap()
}

/// `dns` sent by the pod to `to` over UDP.
fn udp_to(to: SocketAddrV4, dns: &[u8]) -> Vec<u8> {
    udp_datagram(SENT_BY_SRC, POD, to, dns)
}

fn to_listener(message: &Message) -> Vec<u8> {
    udp_to(LISTENER, &bytes(message))
}

/// A query header by hand: id, flags (RD), one question, no records.
fn header() -> Vec<u8> {
    let id = ID.to_be_bytes();
    vec![id[0], id[1], 0x01, 0, 0, 1, 0, 0, 0, 0, 0, 0]
}

/// A hand-built query for `name_bytes` (wire format as given), type A, class IN.
fn raw_query(name_bytes: &[u8]) -> Vec<u8> {
    let mut dns = header();
    dns.extend_from_slice(name_bytes);
    dns.extend_from_slice(&[0, 1, 0, 1]);
    dns
}

/// The length of the (uncompressed) question name at the start of `dns`'s question section.
fn name_len(dns: &[u8]) -> usize {
    let mut pos = 12;
    while dns[pos] != 0 {
        pos += usize::from(dns[pos]) + 1;
    }
    pos + 1 - 12
}

/// The UDP checksum `frame` should carry, computed over the pseudo-header, the UDP header (checksum
/// zero) and the payload.
fn udp_checksum(frame: &[u8]) -> u16 {
    let datagram = &frame[34..];
    let len = u16::try_from(datagram.len()).unwrap().to_be_bytes();
    let pseudo = [0, UDP, len[0], len[1]];
    let mut header = datagram[..8].to_vec();
    header[6..8].copy_from_slice(&[0, 0]);
    match !ones_sum(&[&frame[26..34], &pseudo, &header, &datagram[8..]]) {
        0 => 0xffff,
        sum => sum,
    }
}

/// Runs the query in `frame`, which must be answered; checks the reply's Ethernet, IPv4 and UDP
/// headers, its question (byte for byte the query's) and its answers (`c0 0c` pointers, type A, class
/// IN, `ttl`, `addrs` in order); returns the parsed reply and its DNS bytes.
fn answer(node: &mut Node, frame: &[u8], ttl: u32, addrs: &[Ipv4Addr]) -> (Message, Vec<u8>) {
    let out = node.send(Hook::DnsFast, frame, ANSWERED);
    let asked = &frame[DNS_AT..];
    let question = name_len(asked) + 4;
    let has_opt = asked[11] == 1;
    let dns_len = 12 + question + 16 * addrs.len() + if has_opt { OUR_OPT.len() } else { 0 };
    assert_eq!(out.len(), DNS_AT + dns_len, "reply frame length");
    // Ethernet: back to the pod.
    assert_eq!(
        macs(&out),
        Macs {
            src: macs(frame).dst,
            dst: macs(frame).src
        },
        "reply MACs"
    );
    assert_eq!(out[12..14], [0x08, 0x00], "reply ethertype");
    // IPv4: addresses swapped, length and checksum right, not a fragment.
    assert_eq!(out[14], 0x45, "reply version and header length");
    assert_eq!(
        usize::from(u16::from_be_bytes([out[16], out[17]])),
        out.len() - 14,
        "reply IPv4 total length"
    );
    assert_eq!(out[20] & 0x3f, 0, "reply MF / fragment offset");
    assert_eq!(out[21], 0, "reply fragment offset");
    assert_eq!(out[23], UDP, "reply protocol");
    assert!(ip_checksum_ok(&out), "reply IPv4 header checksum");
    assert_eq!(source(&out), destination(frame), "reply source");
    assert_eq!(destination(&out), source(frame), "reply destination");
    // UDP: length and checksum.
    assert_eq!(
        usize::from(u16::from_be_bytes([out[38], out[39]])),
        out.len() - 34,
        "reply UDP length"
    );
    let sum = u16::from_be_bytes([out[40], out[41]]);
    assert_ne!(sum, 0, "reply UDP checksum present");
    assert_eq!(sum, udp_checksum(&out), "reply UDP checksum");
    // DNS, raw: the question as asked, answers pointing at it.
    let dns = out[DNS_AT..].to_vec();
    assert_eq!(dns[..2], asked[..2], "reply id");
    assert_eq!(
        dns[12..12 + question],
        asked[12..12 + question],
        "reply question byte for byte"
    );
    for k in 0..addrs.len() {
        let at = 12 + question + 16 * k;
        assert_eq!(
            dns[at..at + 2],
            [0xc0, 0x0c],
            "answer {k} names the question by pointer"
        );
    }
    // DNS, parsed.
    let reply = Message::from_vec(&dns).expect("the reply parses");
    let meta = &reply.metadata;
    assert_eq!(
        meta.id,
        u16::from_be_bytes([asked[0], asked[1]]),
        "reply id"
    );
    assert_eq!(meta.message_type, MessageType::Response, "QR");
    assert_eq!(meta.op_code, OpCode::Query, "opcode");
    assert!(meta.authoritative, "AA");
    assert!(!meta.truncation, "TC");
    assert_eq!(meta.response_code, ResponseCode::NoError, "rcode");
    assert_eq!(meta.recursion_desired, asked[2] & 0x01 != 0, "RD as asked");
    assert_eq!(reply.queries.len(), 1, "one question");
    let asked_name = Message::from_vec(asked).unwrap().queries[0].name.clone();
    assert_eq!(
        reply.queries[0].name.to_ascii(),
        asked_name.to_ascii(),
        "question name, case kept"
    );
    assert_eq!(reply.queries[0].query_type, RecordType::A);
    assert_eq!(reply.queries[0].query_class, DNSClass::IN);
    let got: Vec<(String, DNSClass, u32, RData)> = reply
        .answers
        .iter()
        .map(|r| (r.name.to_ascii(), r.dns_class, r.ttl, r.data.clone()))
        .collect();
    let want: Vec<(String, DNSClass, u32, RData)> = addrs
        .iter()
        .map(|a| (asked_name.to_ascii(), DNSClass::IN, ttl, RData::A(A(*a))))
        .collect();
    assert_eq!(got, want, "answers");
    assert!(reply.authorities.is_empty(), "no authority records");
    assert!(
        reply.additionals.is_empty(),
        "no additional records but OPT"
    );
    assert_eq!(
        reply.edns.is_some(),
        has_opt,
        "OPT answered when asked with one"
    );
    if has_opt {
        assert_eq!(dns[dns.len() - OUR_OPT.len()..], OUR_OPT, "our OPT record");
    }
    (reply, dns)
}

/// Runs `frame`, which must go on to `from_pod` unchanged with `reason` counted once.
fn passed_on(node: &mut Node, what: &str, frame: &[u8], (verdict, reason): Outcome) {
    let before = node.counter(Hook::DnsFast, reason);
    let (got, out) = node.run_once(Hook::DnsFast, frame);
    assert_eq!(got, verdict, "{what}: verdict ({reason:?} expected)");
    assert_eq!(out, frame, "{what}: frame unchanged");
    assert_eq!(
        node.counter(Hook::DnsFast, reason),
        before + 1,
        "{what}: {reason:?} counted"
    );
}

/// Runs `frame`, which must go on unchanged and be counted under no reason at all.
fn uncounted(node: &mut Node, what: &str, frame: &[u8]) {
    let reasons = [
        Reason::DnsAnswered,
        Reason::DnsNotHeld,
        Reason::DnsNotHandled,
    ];
    let before = reasons.map(|r| node.counter(Hook::DnsFast, r));
    let (got, out) = node.run_once(Hook::DnsFast, frame);
    assert_eq!(got, TCX_NEXT, "{what}: verdict");
    assert_eq!(out, frame, "{what}: frame unchanged");
    assert_eq!(
        reasons.map(|r| node.counter(Hook::DnsFast, r)),
        before,
        "{what}: nothing counted"
    );
}

#[test]
fn answers_a_held_name_in_place() {
    let mut node = dns_node(&[hot(WEB, TTL, &[WEB_IP])], false);
    let asked = query("Web.Default.svc.cluster.local.", RecordType::A);
    let frame = to_listener(&asked);
    assert_eq!(
        frame[DNS_AT + 12..DNS_AT + 12 + 31],
        wire("Web.Default.svc.cluster.local."),
        "the query carries the name as written"
    );
    let (reply, dns) = answer(&mut node, &frame, TTL, &[WEB_IP]);
    assert!(reply.metadata.recursion_desired, "RD");
    assert!(!reply.metadata.recursion_available, "RA");
    assert!(reply.edns.is_none(), "no OPT record");
    assert_eq!(dns[4..12], [0, 1, 0, 1, 0, 0, 0, 0], "counts");
}

#[test]
fn answers_every_address_in_order() {
    let three = [
        Ipv4Addr::new(10, 96, 0, 11),
        Ipv4Addr::new(10, 96, 0, 3),
        Ipv4Addr::new(10, 96, 0, 200),
    ];
    let most: Vec<Ipv4Addr> = (1..=u8::try_from(DNS_A_MAX).unwrap())
        .map(|i| Ipv4Addr::new(10, 244, 3, i))
        .collect();
    let too_many: Vec<Ipv4Addr> = (1..=u8::try_from(DNS_A_MAX + 1).unwrap())
        .map(|i| Ipv4Addr::new(10, 244, 4, i))
        .collect();
    let mut node = dns_node(
        &[
            hot(WEB, TTL, &three),
            hot("db.default.svc.cluster.local.", 5, &most),
        ],
        false,
    );
    let frame = to_listener(&query(WEB, RecordType::A));
    let (_, dns) = answer(&mut node, &frame, TTL, &three);
    assert_eq!(dns[6..8], [0, 3], "ANCOUNT");
    let frame = to_listener(&query("db.default.svc.cluster.local.", RecordType::A));
    answer(&mut node, &frame, 5, &most);

    // More addresses than one answer carries: left to the server.
    let report = node
        .dp
        .sync_dns_records(&[hot(WEB, TTL, &too_many)])
        .unwrap();
    assert_eq!((report.skipped, report.removed), (1, 2), "sync report");
    let frame = to_listener(&query(WEB, RecordType::A));
    passed_on(&mut node, "too many addresses", &frame, NOT_HELD);
}

#[test]
fn answers_edns_with_its_own_opt() {
    let mut node = dns_node(&[hot(WEB, TTL, &[WEB_IP])], false);
    let frame = to_listener(&with_cookie(query(WEB, RecordType::A)));
    let (reply, dns) = answer(&mut node, &frame, TTL, &[WEB_IP]);
    let edns = reply.edns.as_ref().expect("an OPT record");
    assert_eq!(edns.max_payload(), 1232, "OPT payload");
    assert_eq!(edns.version(), 0, "EDNS version");
    assert_eq!(edns.rcode_high(), 0, "extended rcode");
    assert!(!edns.flags().dnssec_ok, "DO");
    assert!(edns.options().as_ref().is_empty(), "no options");
    assert_eq!(dns[10..12], [0, 1], "ARCOUNT");
}

#[test]
fn says_recursion_is_available_when_configured() {
    let mut node = dns_node(&[hot(WEB, TTL, &[WEB_IP])], true);
    let frame = to_listener(&query(WEB, RecordType::A));
    let (reply, _) = answer(&mut node, &frame, TTL, &[WEB_IP]);
    assert!(reply.metadata.recursion_available, "RA");
    assert!(!reply.metadata.checking_disabled, "CD not asked");

    // RD clear and CD set in the query: RD stays clear, CD is copied.
    let mut asked = query(WEB, RecordType::A);
    asked.metadata.recursion_desired = false;
    asked.metadata.checking_disabled = true;
    let (reply, _) = answer(&mut node, &to_listener(&asked), TTL, &[WEB_IP]);
    assert!(!reply.metadata.recursion_desired, "RD as asked");
    assert!(reply.metadata.recursion_available, "RA");
    assert!(reply.metadata.checking_disabled, "CD as asked");
}

#[test]
fn answers_the_longest_name_with_the_most_records() {
    // 128 bytes in wire format: the longest name held.
    let long = format!("{}.{}.", "a".repeat(63), "b".repeat(62));
    assert_eq!(wire(&long).len(), 128);
    let addrs: Vec<Ipv4Addr> = (1..=u8::try_from(DNS_A_MAX).unwrap())
        .map(|i| Ipv4Addr::new(10, 96, 1, i))
        .collect();
    let mut node = dns_node(&[hot(&long, TTL, &addrs)], false);
    let frame = to_listener(&with_cookie(query(&long.to_uppercase(), RecordType::A)));
    let (_, dns) = answer(&mut node, &frame, TTL, &addrs);
    assert_eq!(
        dns.len(),
        12 + 128 + 4 + 16 * DNS_A_MAX + 11,
        "reply length"
    );
}

#[test]
fn passes_on_names_it_does_not_hold() {
    let mut node = dns_node(&[hot(WEB, TTL, &[WEB_IP])], false);
    for name in [
        "db.default.svc.cluster.local.",
        "default.svc.cluster.local.",
        "web.default.svc.cluster.local.default.svc.cluster.local.",
        "wec.default.svc.cluster.local.",
    ] {
        let frame = to_listener(&query(name, RecordType::A));
        passed_on(&mut node, name, &frame, NOT_HELD);
    }
    let frame = to_listener(&with_cookie(query(
        "DB.default.svc.cluster.local.",
        RecordType::A,
    )));
    passed_on(&mut node, "with EDNS", &frame, NOT_HELD);
}

#[test]
fn passes_on_queries_it_does_not_answer_exactly() {
    let mut node = dns_node(&[hot(WEB, TTL, &[WEB_IP])], false);
    let plain = bytes(&query(WEB, RecordType::A));
    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();

    cases.push(("AAAA", bytes(&query(WEB, RecordType::AAAA))));
    let mut chaos = query(WEB, RecordType::A);
    chaos.queries[0].set_query_class(DNSClass::CH);
    cases.push(("class CH", bytes(&chaos)));
    let mut two = query(WEB, RecordType::A);
    two.add_query(Query::query(Name::from_ascii(WEB).unwrap(), RecordType::A));
    cases.push(("two questions", bytes(&two)));
    // "web" then a pointer to the name's start.
    cases.push((
        "compression pointer in the name",
        raw_query(&[3, b'w', b'e', b'b', 0xc0, 0x0c]),
    ));
    let mut response = query(WEB, RecordType::A);
    response.metadata.message_type = MessageType::Response;
    cases.push(("a response", bytes(&response)));
    let mut edns1 = with_cookie(query(WEB, RecordType::A));
    edns1.edns.as_mut().unwrap().set_version(1);
    cases.push(("EDNS version 1", bytes(&edns1)));
    // hickory writes the extended rcode from the message's own: set by hand in the OPT record (root,
    // type, class, then the TTL's first byte), the last 23 bytes with the cookie option.
    let mut ercode = bytes(&with_cookie(query(WEB, RecordType::A)));
    let opt = ercode.len() - 23;
    assert_eq!(ercode[opt..opt + 3], [0, 0, 41], "the OPT record");
    ercode[opt + 5] = 1;
    cases.push(("OPT with an extended rcode", ercode));
    cases.push(("header only", plain[..12].to_vec()));
    cases.push((
        "name without type and class",
        plain[..plain.len() - 4].to_vec(),
    ));
    cases.push((
        "name, type, half a class",
        plain[..plain.len() - 1].to_vec(),
    ));
    let mut trailing = plain.clone();
    trailing.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
    cases.push(("trailing bytes after the question", trailing));
    let long = format!("{}.{}.", "a".repeat(63), "b".repeat(63));
    assert_eq!(wire(&long).len(), 129);
    cases.push(("a 129-byte name", bytes(&query(&long, RecordType::A))));
    let mut label64 = vec![64];
    label64.extend_from_slice(&[b'a'; 64]);
    label64.push(0);
    cases.push(("a 64-byte label", raw_query(&label64)));
    let mut truncated = plain.clone();
    truncated[2] |= 0x02;
    cases.push(("TC set", truncated));
    let mut status = plain.clone();
    status[2] |= 2 << 3;
    cases.push(("opcode STATUS", status));
    let mut answered = query(WEB, RecordType::A);
    let web_a = Record::from_rdata(Name::from_ascii(WEB).unwrap(), TTL, RData::A(A(WEB_IP)));
    answered.add_answer(web_a.clone());
    cases.push(("an answer record", bytes(&answered)));
    let mut additional = query(WEB, RecordType::A);
    additional.add_additional(web_a);
    cases.push(("an additional record that is not OPT", bytes(&additional)));

    for (what, dns) in &cases {
        passed_on(&mut node, what, &udp_to(LISTENER, dns), NOT_HANDLED);
    }

    // IPv4 longer than the UDP datagram it carries.
    let mut frame = to_listener(&query(WEB, RecordType::A));
    let total = u16::from_be_bytes([frame[16], frame[17]]) + 4;
    frame.extend_from_slice(&[0; 4]);
    let frame = with_ip_bytes(frame, 2, &total.to_be_bytes());
    passed_on(&mut node, "UDP shorter than IPv4", &frame, NOT_HANDLED);

    // And the plain query is answered on the same node.
    answer(&mut node, &udp_to(LISTENER, &plain), TTL, &[WEB_IP]);
}

#[test]
fn leaves_other_traffic_uncounted() {
    let mut node = dns_node(&[hot(WEB, TTL, &[WEB_IP])], false);
    let dns = bytes(&query(WEB, RecordType::A));
    let other_node = sock(Ipv4Addr::new(172, 30, 0, 12), 53);
    uncounted(&mut node, "another address", &udp_to(other_node, &dns));
    uncounted(
        &mut node,
        "another port",
        &udp_to(sock(NODE_IP, 5353), &dns),
    );
    let mut framed = u16::try_from(dns.len()).unwrap().to_be_bytes().to_vec();
    framed.extend_from_slice(&dns);
    let tcp = tcp_segment(SENT_BY_SRC, POD, LISTENER, TCP_ACK | TCP_PSH, SEQ, &framed);
    uncounted(&mut node, "TCP to port 53", &tcp);

    let frame = udp_to(LISTENER, &dns);
    answer(&mut node, &frame, TTL, &[WEB_IP]);
    node.dp.set_dns_fast(None, false).unwrap();
    uncounted(&mut node, "listener disabled", &frame);
    node.dp.set_dns_fast(Some(LISTENER), false).unwrap();
    answer(&mut node, &frame, TTL, &[WEB_IP]);
}

#[test]
fn follows_record_updates() {
    let mut node = dns_node(&[hot(WEB, TTL, &[WEB_IP])], false);
    let frame = to_listener(&query(WEB, RecordType::A));
    answer(&mut node, &frame, TTL, &[WEB_IP]);

    let report = node.dp.sync_dns_records(&[]).unwrap();
    assert_eq!(report.removed, 1, "sync report");
    passed_on(&mut node, "name removed", &frame, NOT_HELD);

    let moved = Ipv4Addr::new(10, 96, 0, 99);
    let report = node.dp.sync_dns_records(&[hot(WEB, 5, &[moved])]).unwrap();
    assert_eq!(report.written, 1, "sync report");
    answer(&mut node, &frame, 5, &[moved]);

    let report = node
        .dp
        .sync_dns_records(&[hot(WEB, 5, &[WEB_IP, moved])])
        .unwrap();
    assert_eq!(report.written, 1, "sync report");
    answer(&mut node, &frame, 5, &[WEB_IP, moved]);
}

/// A fragment is no datagram to answer: with MF set, or a later piece (whose first bytes only look like
/// a UDP header), it goes on.
#[test]
fn passes_on_fragments() {
    let mut node = dns_node(&[hot(WEB, TTL, &[WEB_IP])], false);
    let frame = to_listener(&query(WEB, RecordType::A));
    let more_fragments = with_ip_bytes(frame.clone(), 6, &[0x20, 0]);
    passed_on(&mut node, "MF set", &more_fragments, NOT_HANDLED);
    let later = with_ip_bytes(frame, 6, &[0, 0x10]);
    passed_on(&mut node, "fragment offset 128", &later, NOT_HANDLED);
}

/// EDNS options are ignored up to 64 bytes of them; a query carrying more (here a cookie and 100
/// bytes of padding) goes to the server.
#[test]
fn passes_on_more_edns_options_than_it_ignores() {
    let mut node = dns_node(&[hot(WEB, TTL, &[WEB_IP])], false);
    let mut message = with_cookie(query(WEB, RecordType::A));
    if let Some(edns) = message.edns.as_mut() {
        edns.options_mut()
            .insert(EdnsOption::Unknown(12, vec![0; 100]));
    }
    let frame = to_listener(&message);
    passed_on(&mut node, "112 bytes of options", &frame, NOT_HANDLED);
}
