//! The state file: every network, endpoint and address lease jarvis has
//! made, as JSON. It is the record of which kernel objects are jarvis's: a
//! bridge, veth or netns file that is not named here is never touched.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::PortMapping;

/// Everything jarvis-network has made, or is about to make.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct State {
    #[serde(default)]
    pub networks: Vec<NetRecord>,
    #[serde(default)]
    pub endpoints: Vec<EndpointRecord>,
    /// Kept after a detach, so a restarted unit gets its address back.
    #[serde(default)]
    pub leases: Vec<Lease>,
}

/// A network: its subnet, its gateway (the bridge's address) and bridge.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct NetRecord {
    pub name: String,
    pub subnet: Ipv4Net,
    pub gateway: Ipv4Addr,
    pub bridge: String,
}

/// An attached unit: its netns file, one link per network, its ports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct EndpointRecord {
    pub unit: String,
    pub netns: PathBuf,
    /// In the order of `Endpoint::networks`: the first is the default route.
    pub links: Vec<LinkRecord>,
    #[serde(default)]
    pub ports: Vec<PortMapping>,
}

/// One veth pair: `host_veth` in the bridge of `network`, `ifname` in the
/// unit's netns with `address`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LinkRecord {
    pub network: String,
    pub host_veth: String,
    pub ifname: String,
    pub address: Ipv4Addr,
}

/// The address a unit had on a network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Lease {
    pub unit: String,
    pub network: String,
    pub address: Ipv4Addr,
}

impl State {
    /// Reads `path`; an absent file is the empty state.
    pub fn load(path: &Path) -> Result<State, String> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| format!("read the network state {}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(e) => Err(format!("read the network state {}: {e}", path.display())),
        }
    }

    /// Replaces `path` atomically. Not fsynced: the kernel objects it
    /// names (namespaces, links, rules) do not outlive a reboot either, so
    /// the record has to outlive jarvisd, not the machine.
    pub fn save(&self, path: &Path) -> Result<(), String> {
        let json = serde_json::to_vec_pretty(self).map_err(|e| e.to_string())?;
        jarvis_fsutil::write_atomic(path, &json, jarvis_fsutil::Durability::Atomic)
            .map_err(|e| format!("write the network state: {e}"))
    }

    pub fn network(&self, name: &str) -> Option<&NetRecord> {
        self.networks.iter().find(|n| n.name == name)
    }

    pub fn endpoint(&self, unit: &str) -> Option<&EndpointRecord> {
        self.endpoints.iter().find(|e| e.unit == unit)
    }

    /// The units with a link on `network`, sorted.
    pub fn units_on(&self, network: &str) -> Vec<String> {
        let mut units: Vec<String> = self
            .endpoints
            .iter()
            .filter(|e| e.links.iter().any(|l| l.network == network))
            .map(|e| e.unit.clone())
            .collect();
        units.sort();
        units
    }

    /// Records `address` as `unit`'s on `network`, replacing its old lease
    /// there and taking the address from any other unit that had it leased.
    pub fn set_lease(&mut self, unit: &str, network: &str, address: Ipv4Addr) {
        self.leases
            .retain(|l| l.network != network || (l.unit != unit && l.address != address));
        self.leases.push(Lease {
            unit: unit.to_string(),
            network: network.to_string(),
            address,
        });
    }
}
