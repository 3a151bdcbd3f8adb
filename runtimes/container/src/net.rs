//! What a container's run gets from its network: the namespace to join,
//! and the `/etc/hosts` and `/etc/resolv.conf` it sees. Made by the caller
//! (jarvis-runtime, from jarvis-network's attachment); used by the spec
//! and the `/etc` files.

use std::net::IpAddr;
use std::path::PathBuf;

/// A run's network, as the bundle needs it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetSetup {
    /// The network namespace to join (a bridged unit's own, or the one of
    /// the unit named by `network = "unit:NAME"`). `None`: as the unit's
    /// `network` says (`host`: the host's; `none`: a new one with only
    /// loopback).
    pub netns: Option<PathBuf>,
    /// `/etc/hosts` lines beyond localhost: the container's own addresses
    /// with its hostname, then `extra_hosts`.
    pub hosts: Vec<(IpAddr, String)>,
    /// `nameserver` lines of `/etc/resolv.conf` (jarvis's name server on
    /// the network's gateway).
    pub nameservers: Vec<IpAddr>,
}

impl NetSetup {
    /// The `/etc/hosts` of a container in a namespace of jarvis's.
    pub fn hosts_file(&self, hostname: &str) -> String {
        let mut out =
            String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
        if !self.hosts.iter().any(|(_, n)| n == hostname) {
            out.push_str(&format!("127.0.1.1\t{hostname}\n"));
        }
        for (ip, names) in &self.hosts {
            out.push_str(&format!("{ip}\t{names}\n"));
        }
        out
    }

    /// The `/etc/resolv.conf` of a container in a namespace of jarvis's.
    pub fn resolv_conf(&self) -> String {
        let mut out = String::new();
        for ns in &self.nameservers {
            out.push_str(&format!("nameserver {ns}\n"));
        }
        if !out.is_empty() {
            // Names of units are single labels: ask for them as written.
            out.push_str("options ndots:0\n");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_resolv_conf() {
        let net = NetSetup {
            netns: Some("/run/jarvis/netns/web".into()),
            hosts: vec![
                ("10.89.0.2".parse().unwrap(), "web".into()),
                ("192.0.2.10".parse().unwrap(), "nas".into()),
            ],
            nameservers: vec!["10.89.0.1".parse().unwrap()],
        };
        assert_eq!(
            net.hosts_file("web"),
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
             10.89.0.2\tweb\n192.0.2.10\tnas\n"
        );
        assert_eq!(net.resolv_conf(), "nameserver 10.89.0.1\noptions ndots:0\n");
        let none = NetSetup::default();
        assert!(none.hosts_file("box").contains("127.0.1.1\tbox\n"));
        assert_eq!(none.resolv_conf(), "");
    }
}
