//! What to do with one query: pure functions over bytes, no IO.
//!
//! A query is parsed with hickory-proto. A question for a name in the network's records is answered here,
//! authoritatively; any other question is forwarded as it came (the raw bytes, so the client's id, flags and
//! EDNS options reach the upstream unchanged). Anything that is not a well-formed query gets FORMERR (when
//! its header can be read) or nothing.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use hickory_proto::op::{Edns, Header, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

/// The TTL of the answers for the network's own names: short, so a restarted unit's new address is seen soon.
pub(crate) const RECORD_TTL: u32 = 5;
/// The largest UDP message taken from a client or sent to one (the usual EDNS buffer size); a bigger query
/// datagram is dropped, a bigger answer is sent truncated (TC) so the client asks again over TCP.
pub(crate) const MAX_UDP_PAYLOAD: usize = 4096;
/// The size a UDP client without EDNS can take (RFC 1035).
const CLASSIC_UDP_PAYLOAD: usize = 512;
/// The length of a DNS header.
pub(crate) const HEADER_LEN: usize = 12;

/// How a query reached the server: it bounds the size of the answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Transport {
    Udp,
    Tcp,
}

/// What one server answers from: the network's names and the per-client upstreams. Swapped as a whole.
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    /// Normalized name (see [`normalize`]) to its addresses, in the order given, without duplicates.
    pub(crate) records: HashMap<String, Vec<Ipv4Addr>>,
    /// Per client address, the upstreams that client uses instead of the host's.
    pub(crate) upstreams: Arc<HashMap<Ipv4Addr, Vec<SocketAddr>>>,
}

impl Snapshot {
    pub(crate) fn new(
        records: &[(String, Ipv4Addr)],
        upstreams: Arc<HashMap<Ipv4Addr, Vec<SocketAddr>>>,
    ) -> Snapshot {
        let mut map: HashMap<String, Vec<Ipv4Addr>> = HashMap::new();
        for (name, addr) in records {
            let Some(key) = normalize_str(name) else {
                tracing::warn!(name = %name, "skipping a record whose name is not a DNS name");
                continue;
            };
            let addrs = map.entry(key).or_default();
            if !addrs.contains(addr) {
                addrs.push(*addr);
            }
        }
        Snapshot {
            records: map,
            upstreams,
        }
    }
}

/// The decision for one incoming message.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Send these bytes back to the client.
    Reply(Vec<u8>),
    /// Send the query, as it came, to these upstreams in order.
    Forward(Forward),
    /// Say nothing (not a query, or not even a header).
    Drop,
}

/// A query to forward and the replies prepared for the ways forwarding can end.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Forward {
    pub(crate) upstreams: Vec<SocketAddr>,
    /// SERVFAIL for this query: no upstream answered, or too many queries are already being forwarded.
    pub(crate) servfail: Vec<u8>,
    /// An empty answer with TC set, for an upstream answer larger than the client can take over UDP.
    pub(crate) truncated: Vec<u8>,
    /// The largest answer the client takes.
    pub(crate) limit: usize,
}

/// The name as the records key it: lowercase ASCII, without the trailing dot.
fn normalize(name: &Name) -> String {
    let mut s = name.to_lowercase().to_ascii();
    if s.ends_with('.') {
        s.pop();
    }
    s
}

/// A record's name as a key, or None when it is not a DNS name.
fn normalize_str(name: &str) -> Option<String> {
    // ASCII names are taken as they are (unit names may hold `_`, which IDNA rejects); others go through
    // IDNA, as a client's resolver sends them.
    let parsed = if name.is_ascii() {
        Name::from_ascii(name)
    } else {
        Name::from_utf8(name)
    }
    .ok()?;
    let key = normalize(&parsed);
    (!key.is_empty()).then_some(key)
}

/// Decides what to do with `query` (the bytes a client sent) from `client`.
pub(crate) fn decide(
    query: &[u8],
    client: IpAddr,
    transport: Transport,
    snapshot: &Snapshot,
    host_upstreams: &[SocketAddr],
) -> Outcome {
    if query.len() < HEADER_LEN || query[2] & 0x80 != 0 {
        // No header, or a response: answering a response could start a loop between two servers.
        return Outcome::Drop;
    }
    let request = match Message::from_vec(query) {
        Ok(m) => m,
        Err(_) => return Outcome::Reply(formerr(query)),
    };
    if request.op_code() != OpCode::Query {
        return Outcome::Reply(error_reply(&request, ResponseCode::NotImp));
    }
    let [question] = request.queries() else {
        return Outcome::Reply(error_reply(&request, ResponseCode::FormErr));
    };
    let limit = match transport {
        Transport::Tcp => usize::from(u16::MAX),
        Transport::Udp => udp_limit(&request),
    };
    if question.query_class() == DNSClass::IN {
        if let Some(addrs) = snapshot.records.get(&normalize(question.name())) {
            return Outcome::Reply(local_answer(&request, question, addrs, limit));
        }
    }
    let upstreams = match client {
        IpAddr::V4(v4) => snapshot.upstreams.get(&v4),
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .and_then(|v4| snapshot.upstreams.get(&v4)),
    }
    .map(Vec::as_slice)
    .unwrap_or(host_upstreams);
    let servfail = error_reply(&request, ResponseCode::ServFail);
    if upstreams.is_empty() {
        return Outcome::Reply(servfail);
    }
    let mut truncated = response_to(&request);
    truncated.add_query(question.clone());
    truncated.set_truncated(true);
    Outcome::Forward(Forward {
        upstreams: upstreams.to_vec(),
        servfail,
        truncated: encode(&truncated).unwrap_or_else(|| formerr(query)),
        limit,
    })
}

/// The answer size a UDP client takes: 512 bytes, or its EDNS buffer size up to [`MAX_UDP_PAYLOAD`].
fn udp_limit(request: &Message) -> usize {
    match request.extensions() {
        Some(edns) => usize::from(edns.max_payload()).clamp(CLASSIC_UDP_PAYLOAD, MAX_UDP_PAYLOAD),
        None => CLASSIC_UDP_PAYLOAD,
    }
}

/// A response header for `request`: its id, opcode, RD and CD; RA set (this server forwards).
fn response_to(request: &Message) -> Message {
    let mut header = Header::response_from_request(request.header());
    header.set_message_type(MessageType::Response);
    header.set_recursion_available(true);
    let mut response = Message::new();
    response.set_header(header);
    if request.extensions().is_some() {
        let mut edns = Edns::new();
        edns.set_max_payload(MAX_UDP_PAYLOAD as u16);
        response.set_edns(edns);
    }
    response
}

/// The authoritative answer for a name of the network: its addresses for A (and ANY), nothing (NOERROR) for
/// any other type, so the client takes the name as existing and does not try other sources.
fn local_answer(request: &Message, question: &Query, addrs: &[Ipv4Addr], limit: usize) -> Vec<u8> {
    let mut response = response_to(request);
    response.set_authoritative(true);
    response.add_query(question.clone());
    if matches!(question.query_type(), RecordType::A | RecordType::ANY) {
        for addr in addrs {
            response.add_answer(Record::from_rdata(
                question.name().clone(),
                RECORD_TTL,
                RData::A(A(*addr)),
            ));
        }
    }
    match encode(&response) {
        Some(bytes) if bytes.len() <= limit => bytes,
        _ => encode(&response.truncate())
            .unwrap_or_else(|| error_reply(request, ResponseCode::ServFail)),
    }
}

/// A reply with `code` and the request's question(s).
fn error_reply(request: &Message, code: ResponseCode) -> Vec<u8> {
    let mut response = response_to(request);
    response.set_response_code(code);
    response.add_queries(request.queries().iter().cloned());
    encode(&response).unwrap_or_else(|| {
        let mut bare = response_to(request);
        bare.set_response_code(code);
        encode(&bare).unwrap_or_default()
    })
}

/// FORMERR for bytes that have a header but no valid message: the id, opcode and RD of the header, nothing
/// else.
fn formerr(query: &[u8]) -> Vec<u8> {
    let mut reply = vec![0u8; HEADER_LEN];
    reply[0] = query[0];
    reply[1] = query[1];
    // QR set, opcode and RD kept.
    reply[2] = 0x80 | (query[2] & 0x79);
    // RA set, RCODE 1 (FORMERR).
    reply[3] = 0x80 | 0x01;
    reply
}

fn encode(message: &Message) -> Option<Vec<u8>> {
    message.to_vec().ok()
}

/// Whether a reply (from an upstream) has the TC bit set.
pub(crate) fn is_truncated(reply: &[u8]) -> bool {
    reply.len() >= HEADER_LEN && reply[2] & 0x02 != 0
}

/// Whether `reply` is a response to `query`: same id, QR set.
pub(crate) fn is_reply_to(reply: &[u8], query: &[u8]) -> bool {
    reply.len() >= HEADER_LEN
        && query.len() >= 2
        && reply[..2] == query[..2]
        && reply[2] & 0x80 != 0
}

/// Whether a reply says the upstream could not or would not answer (SERVFAIL, REFUSED): the next upstream
/// is asked.
pub(crate) fn is_failure(reply: &[u8]) -> bool {
    reply.len() >= HEADER_LEN && matches!(reply[3] & 0x0f, 2 | 5)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &str, rtype: RecordType) -> Message {
        let mut m = Message::new();
        m.set_id(0x4242);
        m.set_recursion_desired(true);
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
        m
    }

    fn snapshot(records: &[(&str, [u8; 4])]) -> Snapshot {
        let records: Vec<(String, Ipv4Addr)> = records
            .iter()
            .map(|(n, a)| (n.to_string(), Ipv4Addr::from(*a)))
            .collect();
        Snapshot::new(&records, Arc::default())
    }

    const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 89, 0, 2));

    fn reply(outcome: Outcome) -> Message {
        match outcome {
            Outcome::Reply(bytes) => Message::from_vec(&bytes).unwrap(),
            other => panic!("expected a reply, got {other:?}"),
        }
    }

    #[test]
    fn names_are_keyed_lowercase_without_the_root_dot() {
        let s = snapshot(&[
            ("Web.", [10, 0, 0, 1]),
            ("web", [10, 0, 0, 2]),
            ("web", [10, 0, 0, 1]),
        ]);
        assert_eq!(s.records.len(), 1);
        assert_eq!(
            s.records["web"],
            vec![Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2)]
        );
    }

    #[test]
    fn unit_names_with_underscores_digits_and_dots_are_names() {
        let s = snapshot(&[
            ("my_unit", [10, 0, 0, 1]),
            ("web-1", [10, 0, 0, 2]),
            ("db.internal", [10, 0, 0, 3]),
            ("", [10, 0, 0, 4]),
            ("bücher", [10, 0, 0, 5]),
        ]);
        let mut keys: Vec<&str> = s.records.keys().map(String::as_str).collect();
        keys.sort();
        assert_eq!(
            keys,
            vec!["db.internal", "my_unit", "web-1", "xn--bcher-kva"]
        );
        for name in ["MY_UNIT.", "web-1", "db.Internal.", "xn--bcher-kva"] {
            let q = query(name, RecordType::A).to_vec().unwrap();
            let r = reply(decide(&q, CLIENT, Transport::Udp, &s, &[]));
            assert_eq!(r.answers().len(), 1, "{name}");
        }
    }

    #[test]
    fn a_name_of_the_network_is_answered_here() {
        let s = snapshot(&[("db", [10, 89, 0, 3])]);
        let q = query("DB.", RecordType::A).to_vec().unwrap();
        let r = reply(decide(&q, CLIENT, Transport::Udp, &s, &[]));
        assert_eq!(r.id(), 0x4242);
        assert!(r.authoritative());
        assert!(r.recursion_desired());
        assert_eq!(r.response_code(), ResponseCode::NoError);
        assert_eq!(r.answers().len(), 1);
        assert_eq!(r.answers()[0].ttl(), RECORD_TTL);
        assert_eq!(r.answers()[0].name(), &Name::from_ascii("DB.").unwrap());
    }

    #[test]
    fn other_names_are_forwarded_to_the_clients_upstreams_first() {
        let host: SocketAddr = "192.0.2.1:53".parse().unwrap();
        let own: SocketAddr = "9.9.9.9:53".parse().unwrap();
        let mut s = snapshot(&[]);
        s.upstreams = Arc::new(HashMap::from([(Ipv4Addr::new(10, 89, 0, 2), vec![own])]));
        let q = query("example.com.", RecordType::A).to_vec().unwrap();
        let Outcome::Forward(f) = decide(&q, CLIENT, Transport::Udp, &s, &[host]) else {
            panic!("not forwarded");
        };
        assert_eq!(f.upstreams, vec![own]);
        assert_eq!(f.limit, CLASSIC_UDP_PAYLOAD);
        let other: IpAddr = "10.89.0.9".parse().unwrap();
        let Outcome::Forward(f) = decide(&q, other, Transport::Tcp, &s, &[host]) else {
            panic!("not forwarded");
        };
        assert_eq!(f.upstreams, vec![host]);
        assert_eq!(f.limit, 65535);
        let servfail = Message::from_vec(&f.servfail).unwrap();
        assert_eq!(servfail.response_code(), ResponseCode::ServFail);
        assert_eq!(servfail.id(), 0x4242);
        assert!(Message::from_vec(&f.truncated).unwrap().truncated());
    }

    #[test]
    fn without_upstreams_the_answer_is_servfail_at_once() {
        let q = query("example.com.", RecordType::A).to_vec().unwrap();
        let r = reply(decide(&q, CLIENT, Transport::Udp, &snapshot(&[]), &[]));
        assert_eq!(r.response_code(), ResponseCode::ServFail);
    }

    #[test]
    fn bad_input_is_dropped_or_formerr() {
        let s = snapshot(&[]);
        assert_eq!(
            decide(&[1, 2, 3], CLIENT, Transport::Udp, &s, &[]),
            Outcome::Drop
        );
        let mut response = query("x.", RecordType::A);
        response.set_message_type(MessageType::Response);
        let bytes = response.to_vec().unwrap();
        assert_eq!(
            decide(&bytes, CLIENT, Transport::Udp, &s, &[]),
            Outcome::Drop
        );
        // A header announcing a question that is not there.
        let header = [0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        let r = reply(decide(&header, CLIENT, Transport::Udp, &s, &[]));
        assert_eq!(r.id(), 0xabcd);
        assert_eq!(r.response_code(), ResponseCode::FormErr);
        // Two questions.
        let mut two = query("x.", RecordType::A);
        two.add_query(Query::query(Name::from_ascii("y.").unwrap(), RecordType::A));
        let r = reply(decide(
            &two.to_vec().unwrap(),
            CLIENT,
            Transport::Udp,
            &s,
            &[],
        ));
        assert_eq!(r.response_code(), ResponseCode::FormErr);
        // Not a query.
        let mut notify = query("x.", RecordType::SOA);
        notify.set_op_code(OpCode::Notify);
        let r = reply(decide(
            &notify.to_vec().unwrap(),
            CLIENT,
            Transport::Udp,
            &s,
            &[],
        ));
        assert_eq!(r.response_code(), ResponseCode::NotImp);
    }

    #[test]
    fn an_answer_too_big_for_udp_is_truncated() {
        let many: Vec<(String, Ipv4Addr)> = (0..60u8)
            .map(|i| ("big".to_string(), Ipv4Addr::new(10, 89, 1, i)))
            .collect();
        let s = Snapshot::new(&many, Arc::default());
        let q = query("big.", RecordType::A).to_vec().unwrap();
        let Outcome::Reply(udp) = decide(&q, CLIENT, Transport::Udp, &s, &[]) else {
            panic!("no reply");
        };
        assert!(udp.len() <= CLASSIC_UDP_PAYLOAD);
        let udp = Message::from_vec(&udp).unwrap();
        assert!(udp.truncated());
        assert!(udp.answers().is_empty());
        let tcp = reply(decide(&q, CLIENT, Transport::Tcp, &s, &[]));
        assert!(!tcp.truncated());
        assert_eq!(tcp.answers().len(), 60);
    }

    #[test]
    fn reply_helpers_read_the_header() {
        let q = query("x.", RecordType::A).to_vec().unwrap();
        let mut r = query("x.", RecordType::A);
        r.set_message_type(MessageType::Response);
        r.set_response_code(ResponseCode::Refused);
        let r = r.to_vec().unwrap();
        assert!(is_reply_to(&r, &q));
        assert!(!is_reply_to(&q, &q));
        assert!(is_failure(&r));
        assert!(!is_truncated(&r));
    }
}
