//! jarvisd's name server for bridge networks.
//!
//! jarvisd runs one server per bridge network, on the network's gateway address, port 53, over UDP and TCP;
//! the containers of the network have `nameserver <gateway>` in their resolv.conf. [`Dns::apply`] takes the
//! whole wanted [`View`] each time and makes the running servers match it.
//!
//! # What a server answers
//! - A name in its network's records (unit names, hostnames, aliases; any case, with or without the trailing
//!   dot) is answered authoritatively: type A gets every address of the name with a TTL of 5 seconds, any other
//!   type an empty NOERROR answer, so a client asking AAAA first does not conclude that the name does not
//!   exist. A server holds only its own network's records: networks are isolated, and a name of another
//!   network is not known here (it is forwarded like any other name).
//! - Any other name is forwarded, the query as the client sent it (the same id, flags and EDNS options), to
//!   the client's own upstreams ([`View::upstreams`], keyed by the client's address: the unit's `dns` key) or
//!   else to the host's ([`Dns::new`], usually from [`host_upstreams`]). Upstreams are tried in order, each
//!   exchange limited to 2 seconds; a query goes over UDP, and again over TCP to the same upstream when the
//!   client asked over TCP and the UDP answer came back truncated. SERVFAIL and REFUSED answers move on to the
//!   next upstream. When no upstream answers, or there is no upstream at all, the client gets SERVFAIL (at
//!   once when there is none): never silence.
//!
//! # Bounds
//! Everything a client can make a server hold is bounded, per server:
//! - UDP: queries up to 4096 bytes (bigger ones are dropped); answers up to the client's EDNS buffer size
//!   (512 bytes without EDNS, 4096 at most), larger ones are sent truncated so the client retries over TCP.
//! - TCP: messages with the usual 2-byte length prefix (so at most 65535 bytes); at most 64 connections at
//!   once (one more is closed as soon as it is accepted); each message must arrive whole within 5 seconds of
//!   the previous answer, else the connection is closed (an idle connection lasts 5 seconds); an answer the
//!   client does not read within 5 seconds closes the connection.
//! - Forwarding: at most 256 queries being forwarded at once; one more is answered SERVFAIL at once.
//! - Malformed input: bytes without a DNS header, and responses, are dropped; a header followed by garbage,
//!   or more than one question, gets FORMERR; an opcode other than QUERY gets NOTIMP. Nothing panics.
//!
//! # Why our own loops over hickory-proto
//! Messages are parsed and built with hickory-proto, the DNS library the Rust field uses. The serving loops are
//! this crate's own (small tokio UDP and TCP loops) rather than hickory-server's `ServerFuture`, which has no
//! bound on concurrent TCP connections or on work in flight, and whose forwarding authority resolves with a
//! resolver configured per server rather than passing the client's query on as it came to upstreams chosen by
//! the client's address. Owning the loops also lets a server be stopped with every socket closed before
//! [`Dns::apply`] returns, so the address can be bound again at once.
//!
//! # Changes
//! [`Dns::apply`] is idempotent: a network whose address did not change keeps its sockets and connections
//! and only gets its records swapped, as a whole (a query sees the old records or the new ones, never a mix).
//! A network whose address changed is stopped and started on the new one; a network no longer in the view is
//! stopped and its sockets closed before `apply` returns. A network that cannot bind does not stop the others.
//!
//! # Runtime
//! The servers are tasks on the tokio runtime that calls [`Dns::apply`] (jarvisd's: IO and time drivers
//! enabled; called outside a runtime, `apply` panics). [`Dns::shutdown`] ends every task at its next poll and
//! returns once they have ended, in a few milliseconds (a 5-second guard bounds the wait). Dropping the last
//! clone of a [`Dns`] also stops the servers, without waiting for their sockets to close.

mod message;
mod resolv;
mod server;
mod upstream;

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use message::Snapshot;
use server::Server;

pub use resolv::host_upstreams;

/// The standard DNS port, where the servers listen.
pub const DNS_PORT: u16 = 53;

/// One bridge network as its name server sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetView {
    /// The network's name (for errors and logs).
    pub network: String,
    /// The address the server listens on: the network's gateway.
    pub listen: Ipv4Addr,
    /// The names of the network's units (unit names, hostnames, aliases) and their addresses on this network.
    /// A name given several times has several addresses.
    pub records: Vec<(String, Ipv4Addr)>,
}

/// Everything the name servers should serve.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct View {
    /// One entry per bridge network that has a server.
    pub networks: Vec<NetView>,
    /// Per client (container) address, the unit's `dns` servers; other clients use the host's. A client is
    /// known by the source address of its query, its address on the network it asks: a unit on several
    /// networks needs an entry for each of its addresses.
    pub upstreams: HashMap<Ipv4Addr, Vec<SocketAddr>>,
}

/// The name servers of all bridge networks. Cheap to clone; clones share the servers.
#[derive(Clone)]
pub struct Dns {
    inner: Arc<Inner>,
}

struct Inner {
    host_upstreams: Arc<Vec<SocketAddr>>,
    port: u16,
    /// The running servers by network name; the lock also makes `apply` and `shutdown` run one at a time.
    servers: tokio::sync::Mutex<HashMap<String, Server>>,
}

impl std::fmt::Debug for Dns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dns")
            .field("host_upstreams", &self.inner.host_upstreams)
            .field("port", &self.inner.port)
            .finish_non_exhaustive()
    }
}

impl Dns {
    /// No server runs until [`Dns::apply`]. `host_upstreams`: the nameservers of the host's /etc/resolv.conf
    /// (see [`host_upstreams`]), for clients without upstreams of their own.
    pub fn new(host_upstreams: Vec<SocketAddr>) -> Dns {
        Dns::new_on_port(host_upstreams, DNS_PORT)
    }

    /// Like [`Dns::new`], with the servers on `port` instead of 53: for tests, which run several servers at
    /// once on loopback addresses, and for running without the privilege to bind port 53.
    pub fn new_on_port(host_upstreams: Vec<SocketAddr>, port: u16) -> Dns {
        Dns {
            inner: Arc::new(Inner {
                host_upstreams: Arc::new(host_upstreams),
                port,
                servers: tokio::sync::Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Async, on jarvisd's tokio runtime: starts a server (UDP and TCP) on each new network's `listen` address
    /// (which must already be on a host interface: the bridge's gateway), stops the servers of networks gone
    /// or moved, and swaps in the new records atomically. Errors name the network and the address; a network
    /// that failed is tried again by the next `apply`, and the others are applied regardless. A network listed
    /// twice keeps its first entry, and the second is an error.
    pub async fn apply(&self, view: View) -> Result<(), String> {
        let mut servers = self.inner.servers.lock().await;
        let upstreams = Arc::new(view.upstreams);
        let mut errors = Vec::new();
        let mut wanted: Vec<&NetView> = Vec::new();
        let mut seen = HashSet::new();
        for net in &view.networks {
            if seen.insert(net.network.as_str()) {
                wanted.push(net);
            } else {
                errors.push(format!("network {} is listed twice", net.network));
            }
        }
        // Stop first, so an address that moves from one network to another can be bound again below.
        let stale: Vec<String> = servers
            .iter()
            .filter(|(name, server)| {
                !wanted
                    .iter()
                    .any(|net| &net.network == *name && self.address(net) == server.listen)
            })
            .map(|(name, _)| name.clone())
            .collect();
        for name in stale {
            if let Some(server) = servers.remove(&name) {
                server.stop().await;
            }
        }
        for net in wanted {
            let snapshot = Arc::new(Snapshot::new(&net.records, upstreams.clone()));
            if let Some(server) = servers.get(&net.network) {
                server.swap(snapshot);
                continue;
            }
            let listen = self.address(net);
            let host = self.inner.host_upstreams.clone();
            match Server::start(&net.network, listen, snapshot, host).await {
                Ok(server) => {
                    servers.insert(net.network.clone(), server);
                }
                Err(e) => {
                    tracing::warn!(network = %net.network, %listen, error = %e, "name server not started");
                    errors.push(e);
                }
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }

    /// Stops every server and returns once their sockets are closed. A later [`Dns::apply`] starts them
    /// again.
    pub async fn shutdown(&self) {
        let mut servers = self.inner.servers.lock().await;
        for (_, server) in servers.drain() {
            server.stop().await;
        }
    }

    fn address(&self, net: &NetView) -> SocketAddr {
        SocketAddr::from((net.listen, self.inner.port))
    }
}
