//! jarvis-network: bridged networking for container units.
//!
//! Each attached unit gets a network namespace of its own (a file in
//! `netns_dir`, pinned by a bind mount as `ip netns add` does), and for each
//! network it joins a veth pair: the host side (`jv` + 8 hex digits of a
//! hash of unit and network) in the network's bridge (`jarvis0`,
//! `jarvis1`, ...), the container side (`eth0`, `eth1`, ... in the order of
//! [`Endpoint::networks`]) in the namespace with an address from the
//! network's subnet. The default route goes via the first network's
//! gateway (the bridge's address, `.1`). Published ports are DNATed to the
//! unit's first address by jarvis's nftables table, and each host
//! address/port/protocol is held by a bound socket while the unit is
//! attached.
//!
//! The container side of a veth is created straight inside the unit's
//! namespace under its final name (`ip link add jvXXXXXXXX type veth peer
//! name eth0 netns FILE`), so no temporary name is ever seen on the host;
//! a thread that enters the namespace then sets `lo` and the `ethN` up,
//! gives them their addresses and adds the default route.
//!
//! Published ports: the host address/port/protocol is reserved by a bound
//! socket (TCP: not listening, no SO_REUSEADDR) before any rule names it,
//! and held while the unit is attached; a taken port is an error that
//! names it. Port 53 on every address, or on a gateway, is refused: the
//! name server on each network's gateway holds it.
//!
//! What it owns: the bridges, host veths and netns files named in the state
//! file, the nftables table `inet jarvis`, the port reservation sockets,
//! and the sysctls `net.ipv4.ip_forward` (set to 1 with the first network)
//! and `net.ipv4.conf.<bridge>.route_localnet` of its bridges.
//!
//! Invariants:
//! - **One table.** All of jarvis's rules live in `inet jarvis`, rendered
//!   from the state by a pure function and replaced whole by one
//!   `nft -f -` transaction, so it is never doubled and never half-written;
//!   no other table is ever listed or edited. With no network left the
//!   table is deleted.
//! - **Records before objects.** The state file names a bridge, veth or
//!   netns file before it is made, and stops naming it only after it is
//!   removed, so a crash never leaves an object jarvis has no record of.
//! - **Never touches what it did not make.** Only links and files named in
//!   the state are deleted; a new bridge takes a name no link has.
//! - **Serialized.** One mutex covers the state, so attaches and detaches
//!   happen one at a time.
//! - **No thread left behind in another namespace.** Work inside a unit's
//!   namespace runs on a thread of its own that ends with it.
//!
//! [`Networks::attach`], [`Networks::detach`] and [`Networks::restore`] block
//! (run them on a blocking thread); they run the netlink futures on a
//! current-thread runtime of their own. They act in the network namespace of
//! the calling thread, which is the host's for jarvisd.

mod ipam;
mod kernel;
mod nft;
mod state;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::fs::File;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use crate::kernel::Rt;
use crate::state::{EndpointRecord, LinkRecord, NetRecord, State};

pub use crate::ipam::MAX_NETWORK_NAME;

/// Where jarvis-network keeps its records and netns files, and the pool
/// networks' subnets come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetConfig {
    /// e.g. `<state_dir>/networks.json`: networks, endpoints, address leases.
    pub state_file: PathBuf,
    /// e.g. `<run_dir>/netns`: one bind-mounted netns file per bridged unit.
    pub netns_dir: PathBuf,
    /// e.g. 10.89.0.0/16, cut into /24s.
    pub pool: ipnet::Ipv4Net,
}

/// The protocol of a published port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        })
    }
}

/// A published port: `[host_ip:]host_port:container_port/protocol`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortMapping {
    pub host_ip: Option<IpAddr>,
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: Protocol,
}

impl fmt::Display for PortMapping {
    /// As `docker ps` shows ports: `0.0.0.0:8080->80/tcp`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}->{}/{}",
            kernel::host_addr(self),
            self.container_port,
            self.protocol
        )
    }
}

/// What a unit asks for: the networks it joins, in order, and its ports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub unit: String,
    pub networks: Vec<String>,
    pub ports: Vec<PortMapping>,
}

/// What a unit got.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// The netns file: the spec's network namespace path.
    pub netns: PathBuf,
    /// (network, address), in the order of `Endpoint::networks`.
    pub addresses: Vec<(String, Ipv4Addr)>,
    /// The first network's gateway: the default route, `host-gateway`, the
    /// nameserver.
    pub gateway: Ipv4Addr,
    pub ports: Vec<PortMapping>,
}

/// A network and the units attached to it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkInfo {
    pub name: String,
    pub subnet: ipnet::Ipv4Net,
    pub gateway: Ipv4Addr,
    pub bridge: String,
    pub units: Vec<String>,
}

/// jarvis's networks: a handle on the one state, shared by clones.
#[derive(Clone)]
pub struct Networks {
    inner: Arc<Mutex<Inner>>,
}

struct Inner {
    cfg: NetConfig,
    state: State,
    /// The port reservation sockets of each attached unit.
    reservations: HashMap<String, Vec<OwnedFd>>,
    /// How many times the table was loaded (for tests).
    table_loads: u64,
    /// The table script this handle last loaded: an attach or detach that
    /// leaves the rules as they are (a unit with no ports on a network that
    /// stays) loads nothing.
    loaded: Option<String>,
}

impl Networks {
    /// Loads the state file (absent = empty). No kernel change.
    pub fn open(cfg: NetConfig) -> Result<Networks, String> {
        ipam::check_pool(cfg.pool)?;
        let state = State::load(&cfg.state_file)?;
        Ok(Networks {
            inner: Arc::new(Mutex::new(Inner {
                cfg,
                state,
                reservations: HashMap::new(),
                table_loads: 0,
                loaded: None,
            })),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// BLOCKING (call on a blocking thread). Makes the unit's netns, creates
    /// each network on first use (subnet from the pool, bridge `jarvisN`
    /// with the gateway .1, up), a veth pair per network (host side in the
    /// bridge; container side eth0, eth1, ... in the netns, with the
    /// address, lo up, default route via the first gateway), reserves each
    /// published port on the host (an error names a port that is taken:
    /// "port 0.0.0.0:8080/tcp is already in use on the host"), and rewrites
    /// jarvis's nftables table. An address is leased per (unit, network)
    /// and the same unit gets the same address again while it is free.
    /// Attaching a unit that is already attached detaches the old
    /// attachment first. On any failure everything this call did is undone.
    pub fn attach(&self, ep: &Endpoint) -> Result<Attachment, String> {
        check_endpoint(ep)?;
        let mut inner = self.lock();
        if inner.state.endpoint(&ep.unit).is_some() {
            inner.remove_endpoints(std::slice::from_ref(&ep.unit))?;
        }
        inner.attach(ep)
    }

    /// BLOCKING. Removes the unit's veths, netns, port reservations and
    /// rules; a network with no unit left loses its bridge; with no network
    /// left the `inet jarvis` table is deleted. Detaching a unit that is not
    /// attached is Ok.
    pub fn detach(&self, unit: &str) -> Result<(), String> {
        let mut inner = self.lock();
        if inner.state.endpoint(unit).is_none() {
            return Ok(());
        }
        inner.remove_endpoints(&[unit.to_string()])
    }

    /// BLOCKING. At jarvisd start: units in `alive` keep their attachment
    /// (port reservations re-taken, table rewritten once); every other
    /// recorded endpoint is detached, tolerating objects already gone;
    /// bridges recorded with no unit are removed. Links jarvis has no record
    /// of are never touched.
    pub fn restore(&self, alive: &[String]) -> Result<(), String> {
        let mut inner = self.lock();
        let mut errors = Vec::new();
        let keep: Vec<EndpointRecord> = inner
            .state
            .endpoints
            .iter()
            .filter(|e| alive.contains(&e.unit))
            .cloned()
            .collect();
        for ep in &keep {
            if inner.reservations.contains_key(&ep.unit) {
                continue;
            }
            match ep.ports.iter().map(kernel::reserve).collect() {
                Ok(fds) => {
                    inner.reservations.insert(ep.unit.clone(), fds);
                }
                Err(e) => errors.push(format!("{}: {e}", ep.unit)),
            }
        }
        let dead: Vec<String> = inner
            .state
            .endpoints
            .iter()
            .filter(|e| !alive.contains(&e.unit))
            .map(|e| e.unit.clone())
            .collect();
        if let Err(e) = inner.restore_kept(&keep) {
            errors.push(e);
        }
        if let Err(e) = inner.remove_endpoints(&dead) {
            errors.push(e);
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }

    /// The netns file of an attached unit (for `network = "unit:NAME"`).
    pub fn netns_of(&self, unit: &str) -> Option<PathBuf> {
        self.lock().state.endpoint(unit).map(|e| e.netns.clone())
    }

    /// What an attached unit got.
    pub fn attachment(&self, unit: &str) -> Option<Attachment> {
        let inner = self.lock();
        inner
            .state
            .endpoint(unit)
            .map(|e| attachment_of(&inner.state, e))
    }

    /// The networks, by name, with their units.
    pub fn list(&self) -> Vec<NetworkInfo> {
        let inner = self.lock();
        let mut list: Vec<NetworkInfo> = inner
            .state
            .networks
            .iter()
            .map(|n| NetworkInfo {
                name: n.name.clone(),
                subnet: n.subnet,
                gateway: n.gateway,
                bridge: n.bridge.clone(),
                units: inner.state.units_on(&n.name),
            })
            .collect();
        // By name, as `docker network ls` lists them: not in the order the
        // networks happened to be made.
        list.sort_by(|a, b| a.name.cmp(&b.name));
        list
    }

    /// How many times this handle loaded the nftables table (a load that
    /// deletes it included).
    #[doc(hidden)]
    pub fn table_loads(&self) -> u64 {
        self.lock().table_loads
    }
}

/// The port jarvisd's name server listens on, on each network's gateway.
const NAME_SERVER_PORT: u16 = 53;

fn check_endpoint(ep: &Endpoint) -> Result<(), String> {
    ipam::check_unit_name(&ep.unit)?;
    if ep.networks.is_empty() {
        return Err(format!("unit {}: no network to attach to", ep.unit));
    }
    let mut seen = HashSet::new();
    for n in &ep.networks {
        ipam::check_network_name(n)?;
        if !seen.insert(n) {
            return Err(format!("unit {}: network {n} is listed twice", ep.unit));
        }
    }
    for p in &ep.ports {
        if matches!(p.host_ip, Some(IpAddr::V6(_))) {
            return Err(format!(
                "port {p}: publishing on an IPv6 host address is not supported"
            ));
        }
        if p.host_port == 0 || p.container_port == 0 {
            return Err(format!("port {p}: port 0 cannot be published"));
        }
        if p.host_port == NAME_SERVER_PORT && p.host_ip.is_none() {
            return Err(format!(
                "port {p}: jarvisd's name server uses port {NAME_SERVER_PORT} on each \
                 network's gateway; publish it on one host address instead \
                 (e.g. 192.168.1.10:{NAME_SERVER_PORT}:{}/{})",
                p.container_port, p.protocol
            ));
        }
    }
    Ok(())
}

fn attachment_of(state: &State, e: &EndpointRecord) -> Attachment {
    let gateway = e
        .links
        .first()
        .and_then(|l| state.network(&l.network))
        .map(|n| n.gateway)
        .unwrap_or(Ipv4Addr::UNSPECIFIED);
    Attachment {
        netns: e.netns.clone(),
        addresses: e
            .links
            .iter()
            .map(|l| (l.network.clone(), l.address))
            .collect(),
        gateway,
        ports: e.ports.clone(),
    }
}

impl Inner {
    fn attach(&mut self, ep: &Endpoint) -> Result<Attachment, String> {
        let rt = Rt::new()?;
        // The plan: the state with this unit (and any new network) in it.
        let mut next = self.state.clone();
        let mut new_bridges = Vec::new();
        for name in &ep.networks {
            if next.network(name).is_some() {
                continue;
            }
            let used: Vec<_> = next.networks.iter().map(|n| n.subnet).collect();
            let subnet = ipam::free_subnet(self.cfg.pool, &used)?;
            // A name no recorded bridge and no link of the host has.
            let bridge = ipam::free_bridge_name(|b| {
                Ok(next.networks.iter().any(|n| n.bridge == b) || rt.link_index(b)?.is_some())
            })?;
            new_bridges.push(bridge.clone());
            next.networks.push(NetRecord {
                name: name.clone(),
                subnet,
                gateway: ipam::gateway(subnet),
                bridge,
            });
        }
        if let Some(p) = ep.ports.iter().find(|p| {
            p.host_port == NAME_SERVER_PORT
                && next
                    .networks
                    .iter()
                    .any(|n| p.host_ip == Some(IpAddr::V4(n.gateway)))
        }) {
            return Err(format!(
                "port {p}: jarvisd's name server uses port {NAME_SERVER_PORT} on each \
                 network's gateway"
            ));
        }
        let mut links = Vec::new();
        for (i, name) in ep.networks.iter().enumerate() {
            let net = next.network(name).expect("planned above").clone();
            let in_use: HashSet<Ipv4Addr> = next
                .endpoints
                .iter()
                .flat_map(|e| e.links.iter())
                .filter(|l| l.network == *name)
                .map(|l| l.address)
                .collect();
            let address = ipam::pick_address(name, net.subnet, &ep.unit, &in_use, &next.leases)?;
            let host_veth = ipam::host_veth_name(&ep.unit, name);
            if let Some(other) = next
                .endpoints
                .iter()
                .find(|e| e.links.iter().any(|l| l.host_veth == host_veth))
            {
                return Err(format!(
                    "unit {}: its veth name {host_veth} is taken by unit {}",
                    ep.unit, other.unit
                ));
            }
            next.set_lease(&ep.unit, name, address);
            links.push(LinkRecord {
                network: name.clone(),
                host_veth,
                ifname: ipam::container_ifname(i),
                address,
            });
        }
        let record = EndpointRecord {
            unit: ep.unit.clone(),
            netns: self.cfg.netns_dir.join(&ep.unit),
            links,
            ports: ep.ports.clone(),
        };
        next.endpoints.push(record.clone());

        // Ports first: a taken port fails before anything is made.
        let fds = ep
            .ports
            .iter()
            .map(kernel::reserve)
            .collect::<Result<Vec<_>, _>>()?;

        // Records before objects.
        next.save(&self.cfg.state_file)?;
        self.state = next;
        match self.make(&rt, &record, !new_bridges.is_empty()) {
            Ok(()) => {
                self.reservations.insert(ep.unit.clone(), fds);
                Ok(attachment_of(&self.state, &record))
            }
            Err(e) => {
                drop(fds);
                match self.remove_endpoints(std::slice::from_ref(&ep.unit)) {
                    Ok(()) => Err(e),
                    Err(undo) => Err(format!("{e} (and undoing it failed: {undo})")),
                }
            }
        }
    }

    /// Makes the kernel objects of an endpoint already recorded.
    fn make(&mut self, rt: &Rt, ep: &EndpointRecord, new_network: bool) -> Result<(), String> {
        if new_network {
            kernel::sysctl("net.ipv4.ip_forward", "1")?;
        }
        let mut inside = Vec::new();
        for l in &ep.links {
            let net = self.state.network(&l.network).expect("recorded").clone();
            rt.ensure_bridge(&net.bridge, net.gateway, net.subnet)?;
            kernel::route_localnet(&net.bridge)?;
            inside.push((l.ifname.clone(), l.address, net.subnet));
        }
        kernel::private_netns_dir(&self.cfg.netns_dir)?;
        kernel::make_netns(&ep.netns)?;
        let netns =
            File::open(&ep.netns).map_err(|e| format!("open {}: {e}", ep.netns.display()))?;
        for l in &ep.links {
            let bridge = &self.state.network(&l.network).expect("recorded").bridge;
            rt.add_veth(&l.host_veth, bridge, &l.ifname, &netns)?;
        }
        let gateway = attachment_of(&self.state, ep).gateway;
        kernel::in_netns(&ep.netns, |inner_rt| {
            inner_rt.configure_inside(&inside, gateway)
        })
        .map_err(|e| format!("unit {}: {e}", ep.unit))?;
        self.load_table()
    }

    fn load_table(&mut self) -> Result<(), String> {
        let script = nft::script(&self.state);
        self.load_script(script)
    }

    /// Loads `script` unless it is the one loaded last.
    fn load_script(&mut self, script: String) -> Result<(), String> {
        if self.loaded.as_ref() == Some(&script) {
            return Ok(());
        }
        self.table_loads += 1;
        self.loaded = None;
        nft::load(&script)?;
        self.loaded = Some(script);
        Ok(())
    }

    /// For restore: the networks of the units kept have their bridges (made
    /// again if missing, e.g. after a reboot) and sysctls.
    fn restore_kept(&mut self, keep: &[EndpointRecord]) -> Result<(), String> {
        if keep.is_empty() {
            return Ok(());
        }
        let rt = Rt::new()?;
        kernel::sysctl("net.ipv4.ip_forward", "1")?;
        let mut done = HashSet::new();
        for l in keep.iter().flat_map(|e| e.links.iter()) {
            if !done.insert(l.network.clone()) {
                continue;
            }
            let Some(net) = self.state.network(&l.network).cloned() else {
                continue;
            };
            rt.ensure_bridge(&net.bridge, net.gateway, net.subnet)?;
            kernel::route_localnet(&net.bridge)?;
        }
        Ok(())
    }

    /// Removes the endpoints of `units` (objects already gone are fine),
    /// the bridges of networks left with no unit, and rewrites the table
    /// once. The state keeps naming whatever could not be removed.
    fn remove_endpoints(&mut self, units: &[String]) -> Result<(), String> {
        let rt = Rt::new()?;
        let gone: Vec<EndpointRecord> = self
            .state
            .endpoints
            .iter()
            .filter(|e| units.contains(&e.unit))
            .cloned()
            .collect();
        let mut next = self.state.clone();
        next.endpoints.retain(|e| !units.contains(&e.unit));
        let emptied: Vec<NetRecord> = next
            .networks
            .iter()
            .filter(|n| next.units_on(&n.name).is_empty())
            .cloned()
            .collect();
        next.networks.retain(|n| !emptied.contains(n));

        let mut errors = Vec::new();
        let table = self.load_script(nft::script(&next));
        if let Err(e) = table {
            errors.push(e);
        }
        let mut kept = Vec::new();
        for ep in gone {
            self.reservations.remove(&ep.unit);
            let mut ok = true;
            for l in &ep.links {
                if let Err(e) = rt.delete_link(&l.host_veth) {
                    errors.push(format!("unit {}: {e}", ep.unit));
                    ok = false;
                }
            }
            if let Err(e) = kernel::remove_netns(&ep.netns) {
                errors.push(format!("unit {}: {e}", ep.unit));
                ok = false;
            }
            if !ok {
                kept.push(ep);
            }
        }
        for n in emptied {
            let still_used = kept
                .iter()
                .any(|e| e.links.iter().any(|l| l.network == n.name));
            if still_used {
                next.networks.push(n);
            } else if let Err(e) = rt.delete_link(&n.bridge) {
                errors.push(format!("network {}: {e}", n.name));
                next.networks.push(n);
            }
        }
        next.endpoints.extend(kept);
        if next.endpoints.is_empty() {
            if let Err(e) = kernel::release_netns_dir(&self.cfg.netns_dir) {
                errors.push(e);
            }
        }
        let saved = next.save(&self.cfg.state_file);
        self.state = next;
        if let Err(e) = saved {
            errors.push(e);
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_show_as_docker_ps_shows_them() {
        let p = PortMapping {
            host_ip: None,
            host_port: 8080,
            container_port: 80,
            protocol: Protocol::Tcp,
        };
        assert_eq!(p.to_string(), "0.0.0.0:8080->80/tcp");
        let p = PortMapping {
            host_ip: Some("127.0.0.1".parse().unwrap()),
            host_port: 5353,
            container_port: 53,
            protocol: Protocol::Udp,
        };
        assert_eq!(p.to_string(), "127.0.0.1:5353->53/udp");
    }

    #[test]
    fn endpoints_are_checked_before_anything_is_done() {
        let ep = |networks: &[&str]| Endpoint {
            unit: "web".into(),
            networks: networks.iter().map(|s| s.to_string()).collect(),
            ports: vec![],
        };
        assert!(check_endpoint(&ep(&["default"])).is_ok());
        assert!(check_endpoint(&ep(&[])).is_err());
        assert!(check_endpoint(&ep(&[""])).is_err());
        assert!(check_endpoint(&ep(&["a", "a"]))
            .unwrap_err()
            .contains("twice"));
        let mut v6 = ep(&["default"]);
        v6.ports.push(PortMapping {
            host_ip: Some("::1".parse().unwrap()),
            host_port: 80,
            container_port: 80,
            protocol: Protocol::Tcp,
        });
        assert!(check_endpoint(&v6).unwrap_err().contains("IPv6"));
        let mut dns = ep(&["default"]);
        dns.ports.push(PortMapping {
            host_ip: None,
            host_port: 53,
            container_port: 53,
            protocol: Protocol::Udp,
        });
        let e = check_endpoint(&dns).unwrap_err();
        assert!(
            e.starts_with("port 0.0.0.0:53->53/udp: jarvisd's name server"),
            "{e}"
        );
        dns.ports[0].host_ip = Some("192.168.1.10".parse().unwrap());
        assert!(check_endpoint(&dns).is_ok());
    }

    #[test]
    fn open_reads_the_state_and_a_missing_file_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = NetConfig {
            state_file: dir.path().join("networks.json"),
            netns_dir: dir.path().join("netns"),
            pool: "10.89.0.0/16".parse().unwrap(),
        };
        let n = Networks::open(cfg.clone()).unwrap();
        assert!(n.list().is_empty());
        assert_eq!(n.attachment("web"), None);
        std::fs::write(&cfg.state_file, b"{not json").unwrap();
        let e = Networks::open(cfg).err().unwrap();
        assert!(e.contains("networks.json"), "{e}");
    }
}
