//! Tests of the name servers over real loopback sockets: answers, isolation, forwarding, bounds, changes.

mod support;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use jarvis_dns::{Dns, NetView, View};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UdpSocket};

use support::*;

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn net(network: &str, listen: Ipv4Addr, records: &[(&str, &str)]) -> NetView {
    NetView {
        network: network.to_string(),
        listen,
        records: records
            .iter()
            .map(|(n, a)| (n.to_string(), ip(a)))
            .collect(),
    }
}

fn view(networks: Vec<NetView>) -> View {
    View {
        networks,
        upstreams: HashMap::new(),
    }
}

#[tokio::test]
async fn answers_the_networks_names() {
    let listen = ip("127.53.1.1");
    let port = free_port(&[listen]);
    let upstream = FakeUpstream::start(ip("192.0.2.1")).await;
    let dns = Dns::new_on_port(vec![upstream.addr], port);
    let records = [
        ("web", "10.89.0.2"),
        ("WebSite", "10.89.0.2"),
        ("multi", "10.89.0.3"),
        ("multi", "10.89.0.4"),
    ];
    dns.apply(view(vec![net("default", listen, &records)]))
        .await
        .unwrap();
    let server = SocketAddr::from((listen, port));

    for name in ["web.", "web", "WEB.", "wEb", "website.", "WEBSITE"] {
        let q = query(name, RecordType::A);
        let a = udp_ask(server, &q).await;
        assert_eq!(a.id(), q.id(), "{name}");
        assert_eq!(a.response_code(), ResponseCode::NoError, "{name}");
        assert!(a.authoritative(), "{name}");
        assert_eq!(addresses(&a), vec![ip("10.89.0.2")], "{name}");
        assert!(a.answers().iter().all(|r| r.ttl() == 5), "{name}");
    }
    let a = udp_ask(server, &query("multi.", RecordType::A)).await;
    assert_eq!(addresses(&a), vec![ip("10.89.0.3"), ip("10.89.0.4")]);
    let a = tcp_ask(server, &query("Multi", RecordType::A)).await;
    assert_eq!(addresses(&a), vec![ip("10.89.0.3"), ip("10.89.0.4")]);
    assert!(a.authoritative());
    assert_eq!(
        upstream.queries(),
        0,
        "names of the network never reach the upstream"
    );
    dns.shutdown().await;
}

#[tokio::test]
async fn known_names_have_no_other_records() {
    let listen = ip("127.53.2.1");
    let port = free_port(&[listen]);
    let upstream = FakeUpstream::start(ip("192.0.2.1")).await;
    let dns = Dns::new_on_port(vec![upstream.addr], port);
    dns.apply(view(vec![net("default", listen, &[("web", "10.89.0.2")])]))
        .await
        .unwrap();
    let server = SocketAddr::from((listen, port));
    for rtype in [RecordType::AAAA, RecordType::MX, RecordType::TXT] {
        let a = udp_ask(server, &query("web.", rtype)).await;
        assert_eq!(a.response_code(), ResponseCode::NoError, "{rtype}");
        assert!(a.authoritative(), "{rtype}");
        assert!(a.answers().is_empty(), "{rtype}");
    }
    let a = tcp_ask(server, &query("WEB", RecordType::AAAA)).await;
    assert_eq!(a.response_code(), ResponseCode::NoError);
    assert!(a.answers().is_empty());
    assert_eq!(upstream.queries(), 0);
    dns.shutdown().await;
}

#[tokio::test]
async fn networks_do_not_see_each_others_names() {
    let (a_listen, b_listen) = (ip("127.0.0.2"), ip("127.0.0.3"));
    let port = free_port(&[a_listen, b_listen]);
    let upstream = FakeUpstream::start(ip("192.0.2.1")).await;
    let dns = Dns::new_on_port(vec![upstream.addr], port);
    dns.apply(view(vec![
        net(
            "front",
            a_listen,
            &[("alpha", "10.89.0.2"), ("shared", "10.89.0.3")],
        ),
        net(
            "back",
            b_listen,
            &[("beta", "10.89.1.2"), ("shared", "10.89.1.3")],
        ),
    ]))
    .await
    .unwrap();
    let (a, b) = (
        SocketAddr::from((a_listen, port)),
        SocketAddr::from((b_listen, port)),
    );

    let here = udp_ask(a, &query("alpha.", RecordType::A)).await;
    assert_eq!(addresses(&here), vec![ip("10.89.0.2")]);
    assert_eq!(upstream.queries(), 0);
    let there = udp_ask(b, &query("alpha.", RecordType::A)).await;
    assert_eq!(there.response_code(), ResponseCode::NXDomain);
    assert!(there.answers().is_empty());
    assert!(!there.authoritative());
    assert_eq!(
        upstream.queries(),
        1,
        "the other network forwarded the name"
    );
    let there = tcp_ask(a, &query("beta", RecordType::A)).await;
    assert_eq!(there.response_code(), ResponseCode::NXDomain);
    // The same name on both networks has each network's own address.
    let shared_a = udp_ask(a, &query("shared.", RecordType::A)).await;
    let shared_b = udp_ask(b, &query("shared.", RecordType::A)).await;
    assert_eq!(addresses(&shared_a), vec![ip("10.89.0.3")]);
    assert_eq!(addresses(&shared_b), vec![ip("10.89.1.3")]);
    dns.shutdown().await;
}

#[tokio::test]
async fn forwards_other_names_to_the_host_upstreams() {
    let listen = ip("127.53.4.1");
    let port = free_port(&[listen]);
    let upstream = FakeUpstream::start(ip("192.0.2.7")).await;
    let dns = Dns::new_on_port(vec![upstream.addr], port);
    dns.apply(view(vec![net("default", listen, &[("web", "10.89.0.2")])]))
        .await
        .unwrap();
    let server = SocketAddr::from((listen, port));

    let q = query("www.example.", RecordType::A);
    let a = udp_ask(server, &q).await;
    assert_eq!(a.id(), q.id(), "the client's id comes back");
    assert_eq!(a.response_code(), ResponseCode::NoError);
    assert_eq!(addresses(&a), vec![ip("192.0.2.7")]);
    assert_eq!(
        upstream
            .udp_queries
            .load(std::sync::atomic::Ordering::SeqCst),
        1
    );

    let a = tcp_ask(server, &query("mail.example.", RecordType::A)).await;
    assert_eq!(addresses(&a), vec![ip("192.0.2.7")]);

    let a = udp_ask(server, &query("nothing.invalid.", RecordType::A)).await;
    assert_eq!(a.response_code(), ResponseCode::NXDomain);
    dns.shutdown().await;
}

#[tokio::test]
async fn a_truncated_answer_is_asked_again_over_tcp_for_a_tcp_client() {
    let listen = ip("127.53.5.1");
    let port = free_port(&[listen]);
    let upstream = FakeUpstream::start(ip("192.0.2.8")).await;
    let dns = Dns::new_on_port(vec![upstream.addr], port);
    dns.apply(view(vec![net("default", listen, &[])]))
        .await
        .unwrap();
    let server = SocketAddr::from((listen, port));

    // A UDP client gets the truncated answer and retries over TCP itself.
    let a = udp_ask(server, &query("big.example.", RecordType::A)).await;
    assert!(a.truncated());
    assert!(a.answers().is_empty());
    assert_eq!(
        upstream
            .tcp_queries
            .load(std::sync::atomic::Ordering::SeqCst),
        0
    );
    // A TCP client gets the whole answer: the server asked the upstream over TCP.
    let a = tcp_ask(server, &query("big.example.", RecordType::A)).await;
    assert!(!a.truncated());
    assert_eq!(addresses(&a), vec![ip("192.0.2.8")]);
    assert_eq!(
        upstream
            .tcp_queries
            .load(std::sync::atomic::Ordering::SeqCst),
        1
    );
    dns.shutdown().await;
}

#[tokio::test]
async fn a_clients_own_upstreams_win_over_the_hosts() {
    let listen = ip("127.53.6.1");
    let (own_client, other_client) = (ip("127.53.6.9"), ip("127.53.6.10"));
    let port = free_port(&[listen]);
    let host = FakeUpstream::start(ip("192.0.2.1")).await;
    let own = FakeUpstream::start(ip("198.51.100.1")).await;
    let dns = Dns::new_on_port(vec![host.addr], port);
    let mut v = view(vec![net("default", listen, &[("web", "10.89.0.2")])]);
    v.upstreams.insert(own_client, vec![own.addr]);
    dns.apply(v).await.unwrap();
    let server = SocketAddr::from((listen, port));

    let a = udp_ask_from(server, own_client, &query("www.example.", RecordType::A)).await;
    assert_eq!(addresses(&a), vec![ip("198.51.100.1")]);
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind(SocketAddr::from((own_client, 0))).unwrap();
    let mut stream = sock.connect(server).await.unwrap();
    let q = query("www.example.", RecordType::A);
    tcp_send(&mut stream, &q).await;
    assert_eq!(
        addresses(&tcp_read(&mut stream).await),
        vec![ip("198.51.100.1")]
    );

    let a = udp_ask_from(server, other_client, &query("www.example.", RecordType::A)).await;
    assert_eq!(addresses(&a), vec![ip("192.0.2.1")]);
    // The network's own names do not depend on upstreams.
    let a = udp_ask_from(server, own_client, &query("web.", RecordType::A)).await;
    assert_eq!(addresses(&a), vec![ip("10.89.0.2")]);
    assert_eq!(own.queries(), 2);
    assert_eq!(host.queries(), 1);
    dns.shutdown().await;
}

#[tokio::test]
async fn a_silent_upstream_gives_servfail_after_its_timeout() {
    let listen = ip("127.53.7.1");
    let port = free_port(&[listen]);
    let silent = SilentUpstream::start();
    let dns = Dns::new_on_port(vec![silent.addr], port);
    dns.apply(view(vec![net("default", listen, &[])]))
        .await
        .unwrap();
    let server = SocketAddr::from((listen, port));

    let started = Instant::now();
    let a = udp_ask(server, &query("www.example.", RecordType::A)).await;
    let took = started.elapsed();
    assert_eq!(a.response_code(), ResponseCode::ServFail);
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_millis(3500),
        "{took:?}"
    );
    let started = Instant::now();
    let a = tcp_ask(server, &query("www.example.", RecordType::A)).await;
    assert_eq!(a.response_code(), ResponseCode::ServFail);
    assert!(started.elapsed() < Duration::from_millis(3500));
    dns.shutdown().await;
}

#[tokio::test]
async fn the_next_upstream_answers_when_the_first_is_silent() {
    let listen = ip("127.53.8.1");
    let port = free_port(&[listen]);
    let silent = SilentUpstream::start();
    let good = FakeUpstream::start(ip("192.0.2.9")).await;
    let dns = Dns::new_on_port(vec![silent.addr, good.addr], port);
    dns.apply(view(vec![net("default", listen, &[])]))
        .await
        .unwrap();
    let started = Instant::now();
    let a = udp_ask(
        SocketAddr::from((listen, port)),
        &query("www.example.", RecordType::A),
    )
    .await;
    assert_eq!(addresses(&a), vec![ip("192.0.2.9")]);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_millis(3500),
        "{took:?}"
    );
    dns.shutdown().await;
}

#[tokio::test]
async fn without_upstreams_the_answer_is_servfail_at_once() {
    let listen = ip("127.53.9.1");
    let port = free_port(&[listen]);
    let dns = Dns::new_on_port(Vec::new(), port);
    dns.apply(view(vec![net("default", listen, &[("web", "10.89.0.2")])]))
        .await
        .unwrap();
    let server = SocketAddr::from((listen, port));
    let started = Instant::now();
    let a = udp_ask(server, &query("www.example.", RecordType::A)).await;
    assert_eq!(a.response_code(), ResponseCode::ServFail);
    let a = tcp_ask(server, &query("www.example.", RecordType::A)).await;
    assert_eq!(a.response_code(), ResponseCode::ServFail);
    assert!(started.elapsed() < Duration::from_millis(500));
    let a = udp_ask(server, &query("web.", RecordType::A)).await;
    assert_eq!(addresses(&a), vec![ip("10.89.0.2")]);
    dns.shutdown().await;
}

#[tokio::test]
async fn a_second_apply_swaps_the_records_and_keeps_the_sockets() {
    let listen = ip("127.53.10.1");
    let port = free_port(&[listen]);
    let upstream = FakeUpstream::start(ip("192.0.2.1")).await;
    let dns = Dns::new_on_port(vec![upstream.addr], port);
    let first = view(vec![net("default", listen, &[("web", "10.89.0.2")])]);
    dns.apply(first.clone()).await.unwrap();
    let server = SocketAddr::from((listen, port));

    // A TCP connection open across applies that do not move the network keeps working: no rebind.
    let mut stream = TcpStream::connect(server).await.unwrap();
    let q = query("web.", RecordType::A);
    tcp_send(&mut stream, &q).await;
    assert_eq!(
        addresses(&tcp_read(&mut stream).await),
        vec![ip("10.89.0.2")]
    );
    dns.apply(first.clone()).await.unwrap();
    tcp_send(&mut stream, &query("web.", RecordType::A)).await;
    assert_eq!(
        addresses(&tcp_read(&mut stream).await),
        vec![ip("10.89.0.2")]
    );

    dns.apply(view(vec![net(
        "default",
        listen,
        &[("web", "10.89.0.5"), ("db", "10.89.0.6")],
    )]))
    .await
    .unwrap();
    tcp_send(&mut stream, &query("web.", RecordType::A)).await;
    assert_eq!(
        addresses(&tcp_read(&mut stream).await),
        vec![ip("10.89.0.5")]
    );
    let a = udp_ask(server, &query("db.", RecordType::A)).await;
    assert_eq!(addresses(&a), vec![ip("10.89.0.6")]);
    // A name gone from the records is no longer known here.
    dns.apply(view(vec![net("default", listen, &[("db", "10.89.0.6")])]))
        .await
        .unwrap();
    let a = udp_ask(server, &query("web.", RecordType::A)).await;
    assert_eq!(a.response_code(), ResponseCode::NXDomain);
    dns.shutdown().await;
}

#[tokio::test]
async fn records_swap_as_a_whole() {
    let listen = ip("127.53.11.1");
    let port = free_port(&[listen]);
    let dns = Dns::new_on_port(Vec::new(), port);
    let old = view(vec![net(
        "default",
        listen,
        &[("web", "10.89.0.1"), ("web", "10.89.0.2")],
    )]);
    let new = view(vec![net(
        "default",
        listen,
        &[("web", "10.89.0.3"), ("web", "10.89.0.4")],
    )]);
    dns.apply(old.clone()).await.unwrap();
    let server = SocketAddr::from((listen, port));
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let applier = {
        let (dns, done) = (dns.clone(), done.clone());
        tokio::spawn(async move {
            let (mut i, mut seed) = (0u64, 0x9e37_79b9_u32);
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                // A pseudo-random pick: strict alternation can fall in step with the queries.
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                let v = if seed & 1 == 0 {
                    new.clone()
                } else {
                    old.clone()
                };
                dns.apply(v).await.unwrap();
                i += 1;
                tokio::task::yield_now().await;
            }
            i
        })
    };
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let mut seen = std::collections::HashSet::new();
    let mut asked = 0;
    while asked < 300 || (seen.len() < 2 && asked < 5000) {
        let q = query("web.", RecordType::A);
        socket.send_to(&q.to_vec().unwrap(), server).await.unwrap();
        let a = udp_answer(&socket, q.id()).await;
        let addrs = addresses(&a);
        assert!(
            addrs == [ip("10.89.0.1"), ip("10.89.0.2")]
                || addrs == [ip("10.89.0.3"), ip("10.89.0.4")],
            "a mix: {addrs:?}"
        );
        seen.insert(addrs);
        asked += 1;
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let applies = applier.await.unwrap();
    assert!(applies > 10, "{applies} applies");
    assert_eq!(seen.len(), 2, "both record sets were seen");
    dns.shutdown().await;
}

/// Binds UDP and TCP on `addr` the way a new server would; Ok when nothing holds the address.
fn bindable(addr: SocketAddr) -> bool {
    std::net::UdpSocket::bind(addr).is_ok() && std::net::TcpListener::bind(addr).is_ok()
}

#[tokio::test]
async fn a_removed_network_closes_its_sockets() {
    let (a_listen, b_listen) = (ip("127.53.12.1"), ip("127.53.12.2"));
    let port = free_port(&[a_listen, b_listen]);
    let dns = Dns::new_on_port(Vec::new(), port);
    let (a, b) = (
        SocketAddr::from((a_listen, port)),
        SocketAddr::from((b_listen, port)),
    );
    dns.apply(view(vec![
        net("a", a_listen, &[("x", "10.0.0.1")]),
        net("b", b_listen, &[("y", "10.0.0.2")]),
    ]))
    .await
    .unwrap();
    assert!(!bindable(a));
    // An open connection and a forward in flight do not keep the socket open.
    let mut stream = TcpStream::connect(a).await.unwrap();
    tcp_send(&mut stream, &query("x.", RecordType::A)).await;
    tcp_read(&mut stream).await;

    dns.apply(view(vec![net("b", b_listen, &[("y", "10.0.0.2")])]))
        .await
        .unwrap();
    assert!(bindable(a), "the removed network's address is free again");
    assert!(closed_within(&mut stream, Duration::from_secs(1)).await);
    let still = udp_ask(b, &query("y.", RecordType::A)).await;
    assert_eq!(addresses(&still), vec![ip("10.0.0.2")]);
    // And a later apply binds it again.
    dns.apply(view(vec![
        net("a", a_listen, &[("x", "10.0.0.9")]),
        net("b", b_listen, &[("y", "10.0.0.2")]),
    ]))
    .await
    .unwrap();
    assert_eq!(
        addresses(&udp_ask(a, &query("x.", RecordType::A)).await),
        vec![ip("10.0.0.9")]
    );

    dns.shutdown().await;
    assert!(bindable(a) && bindable(b), "shutdown closed every socket");
    dns.apply(view(vec![net("a", a_listen, &[("x", "10.0.0.1")])]))
        .await
        .unwrap();
    assert_eq!(
        addresses(&tcp_ask(a, &query("x.", RecordType::A)).await),
        vec![ip("10.0.0.1")]
    );
    dns.shutdown().await;
}

#[tokio::test]
async fn a_moved_network_is_rebound() {
    let (old_listen, new_listen) = (ip("127.53.13.1"), ip("127.53.13.2"));
    let port = free_port(&[old_listen, new_listen]);
    let dns = Dns::new_on_port(Vec::new(), port);
    dns.apply(view(vec![net("default", old_listen, &[("x", "10.0.0.1")])]))
        .await
        .unwrap();
    dns.apply(view(vec![net("default", new_listen, &[("x", "10.0.0.1")])]))
        .await
        .unwrap();
    assert!(bindable(SocketAddr::from((old_listen, port))));
    let a = udp_ask(
        SocketAddr::from((new_listen, port)),
        &query("x.", RecordType::A),
    )
    .await;
    assert_eq!(addresses(&a), vec![ip("10.0.0.1")]);
    // An address handed from one network to another in one apply.
    dns.apply(view(vec![net("other", new_listen, &[("y", "10.0.0.2")])]))
        .await
        .unwrap();
    let a = udp_ask(
        SocketAddr::from((new_listen, port)),
        &query("y.", RecordType::A),
    )
    .await;
    assert_eq!(addresses(&a), vec![ip("10.0.0.2")]);
    dns.shutdown().await;
}

#[tokio::test]
async fn a_network_that_cannot_bind_is_named_and_the_others_apply() {
    let (taken, free) = (ip("127.53.14.1"), ip("127.53.14.2"));
    let port = free_port(&[taken, free]);
    let squatter = std::net::UdpSocket::bind((taken, port)).unwrap();
    let dns = Dns::new_on_port(Vec::new(), port);
    let v = view(vec![
        net("busy", taken, &[("x", "10.0.0.1")]),
        net("fine", free, &[("y", "10.0.0.2")]),
    ]);
    let err = dns.apply(v.clone()).await.unwrap_err();
    assert!(err.contains("busy"), "{err}");
    assert!(err.contains(&format!("127.53.14.1:{port}")), "{err}");
    assert!(!err.contains("fine"), "{err}");
    let a = udp_ask(SocketAddr::from((free, port)), &query("y.", RecordType::A)).await;
    assert_eq!(addresses(&a), vec![ip("10.0.0.2")]);
    // Once the address is free, the same view starts the missing server.
    drop(squatter);
    dns.apply(v).await.unwrap();
    let a = udp_ask(SocketAddr::from((taken, port)), &query("x.", RecordType::A)).await;
    assert_eq!(addresses(&a), vec![ip("10.0.0.1")]);
    dns.shutdown().await;
}

#[tokio::test]
async fn tcp_connections_are_capped() {
    let listen = ip("127.53.15.1");
    let port = free_port(&[listen]);
    let dns = Dns::new_on_port(Vec::new(), port);
    dns.apply(view(vec![net("default", listen, &[("web", "10.89.0.2")])]))
        .await
        .unwrap();
    let server = SocketAddr::from((listen, port));
    let mut open = Vec::new();
    for _ in 0..64 {
        let mut stream = TcpStream::connect(server).await.unwrap();
        tcp_send(&mut stream, &query("web.", RecordType::A)).await;
        assert_eq!(
            addresses(&tcp_read(&mut stream).await),
            vec![ip("10.89.0.2")]
        );
        open.push(stream);
    }
    let mut extra = TcpStream::connect(server).await.unwrap();
    assert!(
        closed_within(&mut extra, Duration::from_secs(1)).await,
        "the 65th connection is closed at once"
    );
    // UDP is still served meanwhile.
    let a = udp_ask(server, &query("web.", RecordType::A)).await;
    assert_eq!(addresses(&a), vec![ip("10.89.0.2")]);
    // Closing one makes room for another.
    drop(open.pop());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let a = tcp_ask(server, &query("web.", RecordType::A)).await;
    assert_eq!(addresses(&a), vec![ip("10.89.0.2")]);
    dns.shutdown().await;
}

#[tokio::test]
async fn a_slow_tcp_client_is_cut_off_after_the_read_deadline() {
    let listen = ip("127.53.16.1");
    let port = free_port(&[listen]);
    let dns = Dns::new_on_port(Vec::new(), port);
    dns.apply(view(vec![net("default", listen, &[("web", "10.89.0.2")])]))
        .await
        .unwrap();
    let server = SocketAddr::from((listen, port));
    // Half a message, then nothing.
    let mut slow = TcpStream::connect(server).await.unwrap();
    slow.write_all(&[0, 40, 0x12, 0x34]).await.unwrap();
    let mut idle = TcpStream::connect(server).await.unwrap();
    let started = Instant::now();
    assert!(!closed_within(&mut slow, Duration::from_secs(4)).await);
    assert!(closed_within(&mut slow, Duration::from_secs(3)).await);
    assert!(closed_within(&mut idle, Duration::from_secs(1)).await);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(7), "{took:?}");
    dns.shutdown().await;
}

#[tokio::test]
async fn forwarded_queries_in_flight_are_capped() {
    let listen = ip("127.53.17.1");
    let port = free_port(&[listen]);
    let silent = SilentUpstream::start();
    let dns = Dns::new_on_port(vec![silent.addr], port);
    dns.apply(view(vec![net("default", listen, &[("web", "10.89.0.2")])]))
        .await
        .unwrap();
    let server = SocketAddr::from((listen, port));
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let mut waiting = Vec::new();
    for i in 0..256 {
        let q = query(&format!("n{i}.example."), RecordType::A);
        socket.send_to(&q.to_vec().unwrap(), server).await.unwrap();
        waiting.push(q.id());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let q = query("one-more.example.", RecordType::A);
    socket.send_to(&q.to_vec().unwrap(), server).await.unwrap();
    let a = udp_answer(&socket, q.id()).await;
    assert_eq!(a.response_code(), ResponseCode::ServFail);
    assert!(
        started.elapsed() < Duration::from_millis(1000),
        "refused at once, not after the upstream timeout: {:?}",
        started.elapsed()
    );
    // The network's own names are still answered.
    let a = udp_ask(server, &query("web.", RecordType::A)).await;
    assert_eq!(addresses(&a), vec![ip("10.89.0.2")]);
    // The queries in flight end in SERVFAIL after the upstream timeout, and room comes back.
    let last = udp_answer(&socket, *waiting.last().unwrap()).await;
    assert_eq!(last.response_code(), ResponseCode::ServFail);
    let good = FakeUpstream::start(ip("192.0.2.1")).await;
    let mut v = view(vec![net("default", listen, &[])]);
    v.upstreams.insert(Ipv4Addr::LOCALHOST, vec![good.addr]);
    dns.apply(v).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let a = udp_ask(server, &query("after.example.", RecordType::A)).await;
    assert_eq!(addresses(&a), vec![ip("192.0.2.1")]);
    dns.shutdown().await;
}

#[tokio::test]
async fn malformed_input_does_not_stop_the_server() {
    let listen = ip("127.53.18.1");
    let port = free_port(&[listen]);
    let dns = Dns::new_on_port(Vec::new(), port);
    dns.apply(view(vec![net("default", listen, &[("web", "10.89.0.2")])]))
        .await
        .unwrap();
    let server = SocketAddr::from((listen, port));
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();

    // A header announcing a question that is not there: FORMERR with the id.
    socket
        .send_to(&[0xbe, 0xef, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0], server)
        .await
        .unwrap();
    let a = udp_answer(&socket, 0xbeef).await;
    assert_eq!(a.response_code(), ResponseCode::FormErr);
    // Garbage of every size, including more than a UDP query may be, and a response.
    let mut junk: Vec<Vec<u8>> = vec![
        vec![],
        vec![1],
        vec![0xff; 11],
        vec![0xff; 300],
        vec![7; 5000],
    ];
    let mut seed = 0x2545_f491_u32;
    for len in [12, 13, 40, 512, 4096] {
        junk.push(
            (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 17;
                    seed ^= seed << 5;
                    seed as u8
                })
                .collect(),
        );
    }
    let mut response = query("web.", RecordType::A);
    response.set_message_type(hickory_proto::op::MessageType::Response);
    junk.push(response.to_vec().unwrap());
    for bytes in &junk {
        socket.send_to(bytes, server).await.unwrap();
    }
    // Over TCP: a length too short for a header, a message cut short, garbage.
    for bytes in [
        &[0u8, 3, 1, 2, 3][..],
        &[0, 100, 1, 2, 3, 4, 5][..],
        &[0xff; 64][..],
    ] {
        let mut stream = TcpStream::connect(server).await.unwrap();
        stream.write_all(bytes).await.unwrap();
        drop(stream);
    }
    let mut stream = TcpStream::connect(server).await.unwrap();
    stream.write_all(&[0, 3, 1, 2, 3]).await.unwrap();
    assert!(closed_within(&mut stream, Duration::from_secs(1)).await);

    let a = udp_ask(server, &query("web.", RecordType::A)).await;
    assert_eq!(addresses(&a), vec![ip("10.89.0.2")]);
    let a = tcp_ask(server, &query("web.", RecordType::A)).await;
    assert_eq!(addresses(&a), vec![ip("10.89.0.2")]);
    dns.shutdown().await;
}

#[tokio::test]
async fn host_upstreams_come_from_resolv_conf() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("resolv.conf");
    std::fs::write(
        &path,
        "# comment\nsearch lan\noptions ndots:1 edns0\nnameserver 10.0.0.1 # router\nnameserver ::1\n",
    )
    .unwrap();
    assert_eq!(
        jarvis_dns::host_upstreams(&path),
        vec![
            "10.0.0.1:53".parse::<SocketAddr>().unwrap(),
            "[::1]:53".parse().unwrap()
        ]
    );
    assert!(jarvis_dns::host_upstreams(&dir.path().join("absent")).is_empty());
}
