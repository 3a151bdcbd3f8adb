//! Container networking for runs: what a container unit's `network` keys
//! ask of jarvis-network (the namespace, veths, addresses, published ports,
//! the nftables table) and jarvis-dns (the name server on each network's
//! gateway), and what the run's bundle gets back ([`NetSetup`]).
//!
//! One owner each: jarvis-network owns the kernel objects and their record;
//! this module owns the DNS view, which it rebuilds from that record and
//! the units' names after every attach and detach.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};

use jarvis_container::NetSetup;
use jarvis_network::{Attachment, Endpoint, NetConfig, NetworkInfo, Networks, PortMapping};
use jarvis_unit::{Container, HostTarget, Network, Unit};

use crate::{blocking, StartError};

/// How many DNS names one unit gets, and how long the DNS view may be.
const MAX_NAMES: usize = 64;

/// A unit's names on its networks, and its own upstream resolvers.
#[derive(Debug, Clone)]
struct Names {
    names: Vec<String>,
    upstreams: Vec<SocketAddr>,
}

/// The networks of container runs (see the module docs).
pub(crate) struct Net {
    networks: Networks,
    dns: jarvis_dns::Dns,
    names: Mutex<HashMap<String, Names>>,
    /// DNS views are applied one at a time, in order.
    dns_turn: tokio::sync::Mutex<()>,
}

impl Net {
    pub fn open(state_dir: &Path, run_dir: &Path, pool: ipnet::Ipv4Net) -> Result<Net, String> {
        let networks = Networks::open(NetConfig {
            state_file: state_dir.join("networks.json"),
            netns_dir: run_dir.join("netns"),
            pool,
        })?;
        Ok(Net {
            networks,
            dns: jarvis_dns::Dns::new(jarvis_dns::host_upstreams(Path::new("/etc/resolv.conf"))),
            names: Mutex::new(HashMap::new()),
            dns_turn: tokio::sync::Mutex::new(()),
        })
    }

    /// Sets up the network of one run of `unit` (its container form `c`):
    /// for `bridge`, attaches it (namespace, addresses, ports) and publishes
    /// its names; for `unit:NAME`, finds NAME's namespace. `host` and
    /// `none` need nothing here.
    pub async fn attach(
        self: &Arc<Self>,
        unit: &Unit,
        c: &Container,
    ) -> Result<NetSetup, StartError> {
        let hostname = c.hostname_or(&unit.name).to_string();
        match &c.network {
            Network::Host => Ok(NetSetup::default()),
            Network::None => Ok(NetSetup {
                hosts: c
                    .extra_hosts
                    .iter()
                    .filter_map(|h| match h.target {
                        HostTarget::Addr(ip) => Some((ip, h.name.clone())),
                        HostTarget::Gateway => None,
                    })
                    .collect(),
                ..NetSetup::default()
            }),
            Network::Unit(owner) => {
                let Some(a) = self.networks.attachment(owner) else {
                    // Its implied `depends_on` makes this rare: the owner's
                    // run ended in between. Wait for its next one.
                    return Err(StartError::Deferred(format!(
                        "{owner}, whose network namespace this unit joins, has none now"
                    )));
                };
                Ok(setup(&a, &hostname, c))
            }
            Network::Bridge => {
                if let Some(p) = c
                    .ports
                    .iter()
                    .find(|p| p.host_ip.is_some_and(|ip| ip.is_ipv6()))
                {
                    return Err(StartError::failed(format!(
                        "port {p}: publishing on an IPv6 host address is not supported yet; \
                         leave the address out or give an IPv4 one"
                    )));
                }
                let ep = Endpoint {
                    unit: unit.name.clone(),
                    networks: c.networks.clone(),
                    ports: c
                        .ports
                        .iter()
                        .map(|p| PortMapping {
                            host_ip: p.host_ip,
                            host_port: p.host_port,
                            container_port: p.container_port,
                            protocol: match p.protocol {
                                jarvis_unit::Protocol::Tcp => jarvis_network::Protocol::Tcp,
                                jarvis_unit::Protocol::Udp => jarvis_network::Protocol::Udp,
                            },
                        })
                        .collect(),
                };
                let networks = self.networks.clone();
                let a = blocking(move || networks.attach(&ep))
                    .await
                    .map_err(StartError::failed)?;
                self.names.lock().expect("names").insert(
                    unit.name.clone(),
                    Names {
                        names: c
                            .dns_names(&unit.name)
                            .into_iter()
                            .take(MAX_NAMES)
                            .collect(),
                        upstreams: c.dns.iter().map(|ip| SocketAddr::new(*ip, 53)).collect(),
                    },
                );
                self.publish().await;
                Ok(setup(&a, &hostname, c))
            }
        }
    }

    /// Undoes [`Net::attach`] for a run that ended (or never started):
    /// links, addresses, ports, rules, names. Nothing attached is fine.
    pub async fn detach(self: &Arc<Self>, unit: &str) {
        if self.networks.attachment(unit).is_none() {
            return;
        }
        let (networks, name) = (self.networks.clone(), unit.to_string());
        if let Err(e) = blocking(move || networks.detach(&name)).await {
            tracing::warn!(unit, error = %e, "cannot remove the unit's network");
        }
        self.names.lock().expect("names").remove(unit);
        self.publish().await;
    }

    /// At jarvisd's start: the runs in `alive` (re-adopted, still running)
    /// keep their networks, and their names are served again; whatever
    /// else the record holds is removed.
    pub async fn restore(self: &Arc<Self>, alive: Vec<Unit>) {
        {
            let mut names = self.names.lock().expect("names");
            for u in &alive {
                if let Some(c) = bridged(u) {
                    names.insert(
                        u.name.clone(),
                        Names {
                            names: c.dns_names(&u.name).into_iter().take(MAX_NAMES).collect(),
                            upstreams: c.dns.iter().map(|ip| SocketAddr::new(*ip, 53)).collect(),
                        },
                    );
                }
            }
        }
        let keep: Vec<String> = alive
            .iter()
            .filter(|u| bridged(u).is_some())
            .map(|u| u.name.clone())
            .collect();
        let networks = self.networks.clone();
        if let Err(e) = blocking(move || networks.restore(&keep)).await {
            tracing::error!(error = %e, "cannot restore the networks of running containers");
        }
        self.publish().await;
    }

    /// A unit's addresses (`(network, ip)`) and published ports, for
    /// `status`. A unit in another's namespace shows that one's addresses.
    pub fn addresses(&self, unit: &Unit) -> (Vec<(String, Ipv4Addr)>, Vec<String>) {
        let jarvis_unit::Exec::Container(c) = &unit.exec else {
            return (vec![], vec![]);
        };
        match &c.network {
            Network::Bridge => self
                .networks
                .attachment(&unit.name)
                .map(|a| (a.addresses, a.ports.iter().map(|p| p.to_string()).collect()))
                .unwrap_or_default(),
            Network::Unit(owner) => self
                .networks
                .attachment(owner)
                .map(|a| (a.addresses, vec![]))
                .unwrap_or_default(),
            Network::Host | Network::None => (vec![], vec![]),
        }
    }

    pub fn list(&self) -> Vec<NetworkInfo> {
        self.networks.list()
    }

    /// Hands the name servers the current record: each network's units
    /// and their names, and the units' own upstreams.
    async fn publish(&self) {
        let _turn = self.dns_turn.lock().await;
        let view = {
            let names = self.names.lock().expect("names");
            let mut view = jarvis_dns::View::default();
            for n in self.networks.list() {
                let mut records = Vec::new();
                for unit in &n.units {
                    let (Some(a), Some(nm)) = (self.networks.attachment(unit), names.get(unit))
                    else {
                        continue;
                    };
                    for (net, ip) in &a.addresses {
                        if *net != n.name {
                            continue;
                        }
                        for name in &nm.names {
                            records.push((name.clone(), *ip));
                        }
                        if !nm.upstreams.is_empty() {
                            view.upstreams.insert(*ip, nm.upstreams.clone());
                        }
                    }
                }
                view.networks.push(jarvis_dns::NetView {
                    network: n.name.clone(),
                    listen: n.gateway,
                    records,
                });
            }
            view
        };
        if let Err(e) = self.dns.apply(view).await {
            tracing::warn!(error = %e, "name server");
        }
    }
}

/// The container form of `u` if it runs bridged.
fn bridged(u: &Unit) -> Option<&Container> {
    match &u.exec {
        jarvis_unit::Exec::Container(c) if c.network == Network::Bridge => Some(c),
        _ => None,
    }
}

/// What the bundle gets from an attachment: its namespace, `/etc/hosts`
/// (its own addresses under its hostname, then `extra_hosts`, with
/// `host-gateway` as the first network's gateway), and the name server.
fn setup(a: &Attachment, hostname: &str, c: &Container) -> NetSetup {
    let mut hosts: Vec<(IpAddr, String)> = a
        .addresses
        .iter()
        .map(|(_, ip)| (IpAddr::V4(*ip), hostname.to_string()))
        .collect();
    for h in &c.extra_hosts {
        let ip = match h.target {
            HostTarget::Gateway => IpAddr::V4(a.gateway),
            HostTarget::Addr(ip) => ip,
        };
        hosts.push((ip, h.name.clone()));
    }
    NetSetup {
        netns: Some(a.netns.clone()),
        hosts,
        nameservers: vec![IpAddr::V4(a.gateway)],
    }
}
