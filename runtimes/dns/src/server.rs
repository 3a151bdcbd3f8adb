//! One network's server: a UDP socket and a TCP listener on the gateway address, and the tasks serving them.
//!
//! Every task of a server (the two loops, each TCP connection, each forwarded UDP query) is spawned through
//! [`Tasks`], which ends it when the server's stop signal fires (the `watch` sender is dropped) and tells the
//! server when it has ended (its `mpsc` sender clone is dropped after the task's own state, sockets included).
//! So [`Server::stop`] returns once every socket of the server is closed, and a later bind of the same address
//! succeeds.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::time::timeout;

use crate::message::{decide, Outcome, Snapshot, Transport, HEADER_LEN, MAX_UDP_PAYLOAD};
use crate::upstream;

/// TCP connections served at once by one server; one more is closed as soon as it is accepted.
pub(crate) const MAX_TCP_CONNECTIONS: usize = 64;
/// Queries being forwarded at once by one server (UDP and TCP together); one more gets SERVFAIL at once.
pub(crate) const MAX_IN_FLIGHT: usize = 256;
/// How long a TCP client may take to send a whole message (and how long an idle connection stays open).
pub(crate) const TCP_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a TCP client may take to read an answer.
const TCP_WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// The pause after a socket error (say, out of file descriptors on accept), so a lasting error does not spin.
const ERROR_PAUSE: Duration = Duration::from_millis(50);
/// How long stopping waits for the tasks to end; they end at their next poll, so this is only a guard.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// A running server.
pub(crate) struct Server {
    pub(crate) listen: SocketAddr,
    shared: Arc<Shared>,
    /// Dropped to stop every task.
    stop: watch::Sender<()>,
    /// Yields None once every task has ended.
    done: mpsc::Receiver<()>,
}

/// What the tasks of one server share.
struct Shared {
    /// Swapped as a whole by [`Server::swap`]: a query sees the old or the new records, never a mix.
    snapshot: RwLock<Arc<Snapshot>>,
    host_upstreams: Arc<Vec<SocketAddr>>,
    in_flight: Arc<Semaphore>,
    connections: Arc<Semaphore>,
}

impl Shared {
    fn decide(&self, query: &[u8], client: IpAddr, transport: Transport) -> Outcome {
        let snapshot = self
            .snapshot
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        decide(query, client, transport, &snapshot, &self.host_upstreams)
    }
}

/// Spawns a server's tasks so that they end with the server.
#[derive(Clone)]
struct Tasks {
    stop: watch::Receiver<()>,
    done: mpsc::Sender<()>,
}

impl Tasks {
    fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let mut stop = self.stop.clone();
        let done = self.done.clone();
        tokio::spawn(async move {
            tokio::select! {
                // Never sent on: this fires when the sender is dropped.
                _ = stop.changed() => {}
                () = task => {}
            }
            // The task (its sockets with it) is dropped by now.
            drop(done);
        });
    }
}

impl Server {
    /// Binds UDP and TCP on `listen` and starts serving. The error names the network and the address.
    pub(crate) async fn start(
        network: &str,
        listen: SocketAddr,
        snapshot: Arc<Snapshot>,
        host_upstreams: Arc<Vec<SocketAddr>>,
    ) -> Result<Server, String> {
        let udp = UdpSocket::bind(listen)
            .await
            .map_err(|e| format!("network {network}: cannot listen on {listen}/udp: {e}"))?;
        // tokio sets SO_REUSEADDR on listeners: connections left in TIME_WAIT do not block a rebind.
        let tcp = TcpListener::bind(listen)
            .await
            .map_err(|e| format!("network {network}: cannot listen on {listen}/tcp: {e}"))?;
        let shared = Arc::new(Shared {
            snapshot: RwLock::new(snapshot),
            host_upstreams,
            in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
            connections: Arc::new(Semaphore::new(MAX_TCP_CONNECTIONS)),
        });
        let (stop, stop_rx) = watch::channel(());
        let (done_tx, done) = mpsc::channel(1);
        let tasks = Tasks {
            stop: stop_rx,
            done: done_tx,
        };
        tasks.spawn(serve_udp(Arc::new(udp), shared.clone(), tasks.clone()));
        tasks.spawn(serve_tcp(tcp, shared.clone(), tasks.clone()));
        tracing::info!(network, %listen, "name server started");
        Ok(Server {
            listen,
            shared,
            stop,
            done,
        })
    }

    /// Puts in new records and upstreams; queries from now on see them.
    pub(crate) fn swap(&self, snapshot: Arc<Snapshot>) {
        *self
            .shared
            .snapshot
            .write()
            .unwrap_or_else(PoisonError::into_inner) = snapshot;
    }

    /// Stops every task and returns once they have ended, their sockets closed.
    pub(crate) async fn stop(self) {
        let Server {
            listen,
            stop,
            mut done,
            ..
        } = self;
        drop(stop);
        if timeout(STOP_TIMEOUT, done.recv()).await.is_err() {
            tracing::warn!(%listen, "name server tasks did not end in time");
        } else {
            tracing::info!(%listen, "name server stopped");
        }
    }
}

async fn serve_udp(socket: Arc<UdpSocket>, shared: Arc<Shared>, tasks: Tasks) {
    // One byte more than the largest query taken, to tell a query that fits from one that was cut.
    let mut buf = vec![0u8; MAX_UDP_PAYLOAD + 1];
    loop {
        let (n, peer) = match socket.recv_from(&mut buf).await {
            Ok(received) => received,
            Err(e) => {
                tracing::debug!(error = %e, "receiving a UDP query failed");
                tokio::time::sleep(ERROR_PAUSE).await;
                continue;
            }
        };
        if n > MAX_UDP_PAYLOAD {
            continue;
        }
        let query = &buf[..n];
        match shared.decide(query, peer.ip(), Transport::Udp) {
            Outcome::Drop => {}
            Outcome::Reply(reply) => send_udp(&socket, &reply, peer).await,
            Outcome::Forward(forward) => {
                let Ok(permit) = shared.in_flight.clone().try_acquire_owned() else {
                    tracing::debug!(%peer, "too many queries being forwarded");
                    send_udp(&socket, &forward.servfail, peer).await;
                    continue;
                };
                let socket = socket.clone();
                let query = query.to_vec();
                tasks.spawn(async move {
                    let reply =
                        match upstream::forward(&query, &forward.upstreams, Transport::Udp).await {
                            Some(reply) if reply.len() <= forward.limit => reply,
                            Some(_) => forward.truncated,
                            None => forward.servfail,
                        };
                    send_udp(&socket, &reply, peer).await;
                    drop(permit);
                });
            }
        }
    }
}

async fn send_udp(socket: &UdpSocket, reply: &[u8], peer: SocketAddr) {
    if let Err(e) = socket.send_to(reply, peer).await {
        tracing::debug!(%peer, error = %e, "sending a UDP answer failed");
    }
}

async fn serve_tcp(listener: TcpListener, shared: Arc<Shared>, tasks: Tasks) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::debug!(error = %e, "accepting a TCP connection failed");
                tokio::time::sleep(ERROR_PAUSE).await;
                continue;
            }
        };
        let Ok(permit) = shared.connections.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "too many TCP connections: closing the new one");
            drop(stream);
            continue;
        };
        let shared = shared.clone();
        tasks.spawn(async move {
            serve_connection(stream, peer, &shared).await;
            drop(permit);
        });
    }
}

/// Serves one TCP connection, a query at a time, until the client closes it, sends something that is not a
/// message, or is too slow.
async fn serve_connection(mut stream: TcpStream, peer: SocketAddr, shared: &Shared) {
    loop {
        let query = match timeout(TCP_READ_TIMEOUT, read_message(&mut stream)).await {
            Ok(Ok(query)) => query,
            Ok(Err(_)) | Err(_) => return,
        };
        let reply = match shared.decide(&query, peer.ip(), Transport::Tcp) {
            Outcome::Drop => continue,
            Outcome::Reply(reply) => reply,
            Outcome::Forward(forward) => match shared.in_flight.clone().try_acquire_owned() {
                Err(_) => {
                    tracing::debug!(%peer, "too many queries being forwarded");
                    forward.servfail
                }
                Ok(_permit) => upstream::forward(&query, &forward.upstreams, Transport::Tcp)
                    .await
                    .unwrap_or(forward.servfail),
            },
        };
        match timeout(TCP_WRITE_TIMEOUT, write_message(&mut stream, &reply)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) | Err(_) => return,
        }
    }
}

/// Reads one length-prefixed message; one shorter than a header is an error.
async fn read_message(stream: &mut TcpStream) -> io::Result<Vec<u8>> {
    let len = usize::from(stream.read_u16().await?);
    if len < HEADER_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "message shorter than a header",
        ));
    }
    let mut message = vec![0u8; len];
    stream.read_exact(&mut message).await?;
    Ok(message)
}

async fn write_message(stream: &mut TcpStream, message: &[u8]) -> io::Result<()> {
    let len = u16::try_from(message.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "answer too long for TCP"))?;
    let mut framed = Vec::with_capacity(message.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(message);
    stream.write_all(&framed).await
}
