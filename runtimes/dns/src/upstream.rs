//! Forwarding a query to upstream resolvers.
//!
//! Upstreams are asked in order, each exchange bounded by [`UPSTREAM_TIMEOUT`]. A query goes over UDP from a
//! fresh socket (a random source port, connected to the upstream, so only that upstream's datagrams are
//! read); the reply must carry the query's id. When the client asked over TCP and the UDP reply is truncated,
//! the same upstream is asked again over TCP. A SERVFAIL or REFUSED reply moves on to the next upstream and is
//! returned only when no other upstream gives a better one.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::timeout;

use crate::message::{is_failure, is_reply_to, is_truncated, Transport};

/// How long one exchange with one upstream may take.
pub(crate) const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);
/// The largest UDP datagram.
const MAX_DATAGRAM: usize = 65535;

/// The first good reply of `upstreams` to `query`, or the last failure reply, or None when none answered.
pub(crate) async fn forward(
    query: &[u8],
    upstreams: &[SocketAddr],
    client: Transport,
) -> Option<Vec<u8>> {
    let mut fallback = None;
    for &upstream in upstreams {
        let reply = match timeout(UPSTREAM_TIMEOUT, udp_exchange(query, upstream)).await {
            Ok(Ok(reply)) if is_truncated(&reply) && client == Transport::Tcp => {
                match timeout(UPSTREAM_TIMEOUT, tcp_exchange(query, upstream)).await {
                    Ok(Ok(full)) => full,
                    Ok(Err(e)) => {
                        tracing::debug!(%upstream, error = %e, "upstream failed over TCP");
                        continue;
                    }
                    Err(_) => {
                        tracing::debug!(%upstream, "upstream timed out over TCP");
                        continue;
                    }
                }
            }
            Ok(Ok(reply)) => reply,
            Ok(Err(e)) => {
                tracing::debug!(%upstream, error = %e, "upstream failed");
                continue;
            }
            Err(_) => {
                tracing::debug!(%upstream, "upstream timed out");
                continue;
            }
        };
        if is_failure(&reply) {
            fallback = Some(reply);
            continue;
        }
        return Some(reply);
    }
    fallback
}

async fn udp_exchange(query: &[u8], upstream: SocketAddr) -> io::Result<Vec<u8>> {
    let local: SocketAddr = match upstream {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(local).await?;
    socket.connect(upstream).await?;
    socket.send(query).await?;
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let n = socket.recv(&mut buf).await?;
        if is_reply_to(&buf[..n], query) {
            buf.truncate(n);
            return Ok(buf);
        }
    }
}

async fn tcp_exchange(query: &[u8], upstream: SocketAddr) -> io::Result<Vec<u8>> {
    let len = u16::try_from(query.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "query too long for TCP"))?;
    let mut stream = TcpStream::connect(upstream).await?;
    let mut framed = Vec::with_capacity(query.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(query);
    stream.write_all(&framed).await?;
    loop {
        let len = stream.read_u16().await?;
        let mut reply = vec![0u8; usize::from(len)];
        stream.read_exact(&mut reply).await?;
        if is_reply_to(&reply, query) {
            return Ok(reply);
        }
    }
}
