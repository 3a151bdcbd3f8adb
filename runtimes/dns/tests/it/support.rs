//! Clients, fake upstreams and free ports for the tests. Everything runs on loopback addresses; each test uses
//! addresses of its own (127.53.N.x), so tests running in parallel never share an address and port.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

/// How long a test waits for an answer that should come.
pub const ANSWER_WAIT: Duration = Duration::from_secs(6);

/// A port free on every one of `addrs`, for UDP and TCP.
pub fn free_port(addrs: &[Ipv4Addr]) -> u16 {
    for _ in 0..100 {
        let probe = std::net::UdpSocket::bind((addrs[0], 0)).unwrap();
        let port = probe.local_addr().unwrap().port();
        drop(probe);
        let mut held = Vec::new();
        let ok = addrs.iter().all(|addr| {
            match (
                std::net::UdpSocket::bind((*addr, port)),
                std::net::TcpListener::bind((*addr, port)),
            ) {
                (Ok(u), Ok(t)) => {
                    held.push((u, t));
                    true
                }
                _ => false,
            }
        });
        if ok {
            return port;
        }
    }
    panic!("no free port on {addrs:?}");
}

static NEXT_ID: AtomicU16 = AtomicU16::new(0x1000);

/// A recursive query for `name`, with an id of its own.
pub fn query(name: &str, rtype: RecordType) -> Message {
    let mut m = Message::new();
    m.set_id(NEXT_ID.fetch_add(1, Ordering::Relaxed));
    m.set_recursion_desired(true);
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
    m
}

/// The A addresses of an answer, sorted.
pub fn addresses(answer: &Message) -> Vec<Ipv4Addr> {
    let mut v: Vec<Ipv4Addr> = answer
        .answers()
        .iter()
        .filter_map(|r| match r.data() {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect();
    v.sort();
    v
}

/// Asks `server` over UDP from `from` (port chosen by the kernel) and returns the answer to this query.
pub async fn udp_ask_from(server: SocketAddr, from: Ipv4Addr, q: &Message) -> Message {
    let socket = UdpSocket::bind((from, 0)).await.unwrap();
    socket.send_to(&q.to_vec().unwrap(), server).await.unwrap();
    udp_answer(&socket, q.id()).await
}

/// Asks `server` over UDP from 127.0.0.1.
pub async fn udp_ask(server: SocketAddr, q: &Message) -> Message {
    udp_ask_from(server, Ipv4Addr::LOCALHOST, q).await
}

/// Waits for the answer with `id` on `socket`.
pub async fn udp_answer(socket: &UdpSocket, id: u16) -> Message {
    let mut buf = vec![0u8; 65535];
    tokio::time::timeout(ANSWER_WAIT, async {
        loop {
            let (n, _) = socket.recv_from(&mut buf).await.unwrap();
            let m = Message::from_vec(&buf[..n]).expect("an answer that parses");
            if m.id() == id {
                return m;
            }
        }
    })
    .await
    .expect("no UDP answer in time")
}

/// Sends `q` on a TCP stream, length-prefixed.
pub async fn tcp_send(stream: &mut TcpStream, q: &Message) {
    let bytes = q.to_vec().unwrap();
    let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&bytes);
    stream.write_all(&framed).await.unwrap();
}

/// Reads one length-prefixed answer.
pub async fn tcp_read(stream: &mut TcpStream) -> Message {
    tokio::time::timeout(ANSWER_WAIT, async {
        let len = stream.read_u16().await.unwrap();
        let mut buf = vec![0u8; usize::from(len)];
        stream.read_exact(&mut buf).await.unwrap();
        Message::from_vec(&buf).unwrap()
    })
    .await
    .expect("no TCP answer in time")
}

/// Asks `server` over a new TCP connection.
pub async fn tcp_ask(server: SocketAddr, q: &Message) -> Message {
    let mut stream = TcpStream::connect(server).await.unwrap();
    tcp_send(&mut stream, q).await;
    let answer = tcp_read(&mut stream).await;
    assert_eq!(answer.id(), q.id());
    answer
}

/// Whether the server closed `stream` (EOF or reset) within `wait`.
pub async fn closed_within(stream: &mut TcpStream, wait: Duration) -> bool {
    let mut buf = [0u8; 16];
    matches!(
        tokio::time::timeout(wait, stream.read(&mut buf)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

/// A resolver the tests control, on 127.0.0.1, UDP and TCP on the same port. For a name under `example` it
/// answers A `answer`; for `big.example` over UDP it answers empty with TC set (over TCP, normally); any other
/// name is NXDOMAIN. It counts the queries it got over each transport.
pub struct FakeUpstream {
    pub addr: SocketAddr,
    pub udp_queries: Arc<AtomicUsize>,
    pub tcp_queries: Arc<AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn fake_answer(query: &[u8], answer: Ipv4Addr, over_udp: bool) -> Option<Vec<u8>> {
    let q = Message::from_vec(query).ok()?;
    let question = q.queries().first()?.clone();
    let mut r = Message::new();
    r.set_id(q.id());
    r.set_message_type(MessageType::Response);
    r.set_op_code(OpCode::Query);
    r.set_recursion_desired(q.recursion_desired());
    r.set_recursion_available(true);
    r.add_query(question.clone());
    let name = question.name().to_lowercase().to_ascii();
    if name == "big.example." && over_udp {
        r.set_truncated(true);
    } else if name.ends_with(".example.") {
        if question.query_type() == RecordType::A {
            r.add_answer(Record::from_rdata(
                question.name().clone(),
                60,
                RData::A(A(answer)),
            ));
        }
    } else {
        r.set_response_code(ResponseCode::NXDomain);
    }
    r.to_vec().ok()
}

impl FakeUpstream {
    pub async fn start(answer: Ipv4Addr) -> FakeUpstream {
        let port = free_port(&[Ipv4Addr::LOCALHOST]);
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let udp = UdpSocket::bind(addr).await.unwrap();
        let tcp = TcpListener::bind(addr).await.unwrap();
        let udp_queries = Arc::new(AtomicUsize::new(0));
        let tcp_queries = Arc::new(AtomicUsize::new(0));
        let count = udp_queries.clone();
        let udp_task = tokio::spawn(async move {
            let mut buf = vec![0u8; 65535];
            loop {
                let Ok((n, peer)) = udp.recv_from(&mut buf).await else {
                    continue;
                };
                count.fetch_add(1, Ordering::SeqCst);
                if let Some(reply) = fake_answer(&buf[..n], answer, true) {
                    let _ = udp.send_to(&reply, peer).await;
                }
            }
        });
        let count = tcp_queries.clone();
        let tcp_task = tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = tcp.accept().await else {
                    continue;
                };
                let count = count.clone();
                tokio::spawn(async move {
                    while let Ok(len) = stream.read_u16().await {
                        let mut buf = vec![0u8; usize::from(len)];
                        if stream.read_exact(&mut buf).await.is_err() {
                            return;
                        }
                        count.fetch_add(1, Ordering::SeqCst);
                        let Some(reply) = fake_answer(&buf, answer, false) else {
                            return;
                        };
                        let mut framed = (reply.len() as u16).to_be_bytes().to_vec();
                        framed.extend_from_slice(&reply);
                        if stream.write_all(&framed).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        FakeUpstream {
            addr,
            udp_queries,
            tcp_queries,
            tasks: vec![udp_task, tcp_task],
        }
    }

    pub fn queries(&self) -> usize {
        self.udp_queries.load(Ordering::SeqCst) + self.tcp_queries.load(Ordering::SeqCst)
    }
}

/// An upstream that takes queries and never answers (UDP bound, nothing read; TCP listening, nothing
/// accepted).
pub struct SilentUpstream {
    pub addr: SocketAddr,
    _udp: std::net::UdpSocket,
    _tcp: std::net::TcpListener,
}

impl SilentUpstream {
    pub fn start() -> SilentUpstream {
        let port = free_port(&[Ipv4Addr::LOCALHOST]);
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        SilentUpstream {
            addr,
            _udp: std::net::UdpSocket::bind(addr).unwrap(),
            _tcp: std::net::TcpListener::bind(addr).unwrap(),
        }
    }
}
