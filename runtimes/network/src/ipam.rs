//! Address management and names: pure functions of the state, no IO.
//!
//! The pool is cut into /24s (or is one subnet if it is smaller than a
//! /24); a new network gets the lowest subnet no network has. In a subnet
//! the gateway is the first host address (`.1`) and units get addresses from
//! the second (`.2`) on. A unit gets back the address it had on a network
//! while nobody else took it; a new unit prefers addresses nobody has a
//! lease on, and takes a stale lease only when nothing else is left.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::state::Lease;

/// The longest network name accepted, in bytes.
pub const MAX_NETWORK_NAME: usize = 64;

/// The prefix length networks are cut to from the pool.
const SUBNET_PREFIX: u8 = 24;

/// Checks a network name: not empty, at most [`MAX_NETWORK_NAME`] bytes.
pub fn check_network_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("a network name cannot be empty".to_string());
    }
    if name.len() > MAX_NETWORK_NAME {
        return Err(format!(
            "network name {name:?} is longer than {MAX_NETWORK_NAME} bytes"
        ));
    }
    Ok(())
}

/// Checks a unit name for use as the netns file's name.
pub fn check_unit_name(unit: &str) -> Result<(), String> {
    if unit.is_empty() || unit == "." || unit == ".." || unit.contains(['/', '\0']) {
        return Err(format!("unit name {unit:?} cannot name a netns file"));
    }
    if unit.len() > 255 {
        return Err(format!("unit name {unit:?} is longer than 255 bytes"));
    }
    Ok(())
}

/// Checks that a pool leaves room for a gateway and one unit.
pub fn check_pool(pool: Ipv4Net) -> Result<(), String> {
    if pool.prefix_len() > 30 {
        return Err(format!(
            "address pool {pool} is too small: it needs at least a /30"
        ));
    }
    Ok(())
}

/// The subnets a pool is cut into, lowest first.
pub fn pool_subnets(pool: Ipv4Net) -> Vec<Ipv4Net> {
    let pool = pool.trunc();
    if pool.prefix_len() >= SUBNET_PREFIX {
        return vec![pool];
    }
    pool.subnets(SUBNET_PREFIX)
        .map(|s| s.collect())
        .unwrap_or_else(|_| vec![pool])
}

/// The lowest subnet of `pool` that overlaps none of `used`.
pub fn free_subnet(pool: Ipv4Net, used: &[Ipv4Net]) -> Result<Ipv4Net, String> {
    pool_subnets(pool)
        .into_iter()
        .find(|s| !used.iter().any(|u| u.contains(s) || s.contains(u)))
        .ok_or_else(|| format!("no free subnet left in the address pool {pool}"))
}

/// The gateway of a subnet: its first host address.
pub fn gateway(subnet: Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(subnet.network()) + 1)
}

/// The addresses units may have in a subnet, lowest first: from the second
/// host address to the last before the broadcast address.
fn unit_addresses(subnet: Ipv4Net) -> impl Iterator<Item = Ipv4Addr> {
    let first = u32::from(subnet.network()) + 2;
    let last = u32::from(subnet.broadcast()).saturating_sub(1);
    (first..=last).map(Ipv4Addr::from)
}

/// Whether `address` is one units may have in `subnet`.
fn is_unit_address(subnet: Ipv4Net, address: Ipv4Addr) -> bool {
    let a = u32::from(address);
    subnet.contains(&address)
        && a >= u32::from(subnet.network()) + 2
        && a < u32::from(subnet.broadcast())
}

/// The address `unit` gets on `network` (subnet `subnet`), where `in_use`
/// holds the addresses of the units attached now: its own lease if that is
/// free, else the lowest address nobody holds or has leased, else the
/// lowest address nobody holds.
pub fn pick_address(
    network: &str,
    subnet: Ipv4Net,
    unit: &str,
    in_use: &HashSet<Ipv4Addr>,
    leases: &[Lease],
) -> Result<Ipv4Addr, String> {
    let own = leases
        .iter()
        .find(|l| l.unit == unit && l.network == network)
        .map(|l| l.address)
        .filter(|a| is_unit_address(subnet, *a) && !in_use.contains(a));
    if let Some(a) = own {
        return Ok(a);
    }
    let leased: HashSet<Ipv4Addr> = leases
        .iter()
        .filter(|l| l.network == network && l.unit != unit)
        .map(|l| l.address)
        .collect();
    unit_addresses(subnet)
        .find(|a| !in_use.contains(a) && !leased.contains(a))
        .or_else(|| unit_addresses(subnet).find(|a| !in_use.contains(a)))
        .ok_or_else(|| format!("network {network}: no free address left in {subnet}"))
}

/// The bridge name for index `i`.
pub fn bridge_name(i: usize) -> String {
    format!("jarvis{i}")
}

/// The lowest `jarvisN` for which `taken` says no.
pub fn free_bridge_name(
    mut taken: impl FnMut(&str) -> Result<bool, String>,
) -> Result<String, String> {
    for i in 0.. {
        let name = bridge_name(i);
        if !taken(&name)? {
            return Ok(name);
        }
    }
    unreachable!("an unbounded range has a free name")
}

/// The host side of the veth of `unit` on `network`: `jv` and 8 hex digits
/// of a stable hash (FNV-1a, 32 bits) of both names, 10 bytes in all, well
/// within IFNAMSIZ.
pub fn host_veth_name(unit: &str, network: &str) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in unit.bytes().chain([0]).chain(network.bytes()) {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("jv{h:08x}")
}

/// The container side of the `i`th network's veth.
pub fn container_ifname(i: usize) -> String {
    format!("eth{i}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }
    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }
    fn lease(unit: &str, network: &str, a: &str) -> Lease {
        Lease {
            unit: unit.into(),
            network: network.into(),
            address: ip(a),
        }
    }

    #[test]
    fn the_pool_is_cut_into_24s_or_kept_whole_when_smaller() {
        let s = pool_subnets(net("10.89.0.0/22"));
        assert_eq!(
            s,
            [
                "10.89.0.0/24",
                "10.89.1.0/24",
                "10.89.2.0/24",
                "10.89.3.0/24"
            ]
            .map(net)
        );
        assert_eq!(pool_subnets(net("10.89.0.0/28")), [net("10.89.0.0/28")]);
        assert_eq!(pool_subnets(net("10.89.0.5/28")), [net("10.89.0.0/28")]);
    }

    #[test]
    fn a_new_network_gets_the_lowest_free_subnet() {
        let pool = net("10.89.0.0/16");
        assert_eq!(free_subnet(pool, &[]).unwrap(), net("10.89.0.0/24"));
        let used = [net("10.89.0.0/24"), net("10.89.2.0/24")];
        assert_eq!(free_subnet(pool, &used).unwrap(), net("10.89.1.0/24"));
        let e = free_subnet(net("10.89.0.0/24"), &[net("10.89.0.0/24")]).unwrap_err();
        assert!(
            e.contains("no free subnet") && e.contains("10.89.0.0/24"),
            "{e}"
        );
    }

    #[test]
    fn the_gateway_is_dot_one_and_units_start_at_dot_two() {
        let s = net("10.89.3.0/24");
        assert_eq!(gateway(s), ip("10.89.3.1"));
        let none = HashSet::new();
        assert_eq!(
            pick_address("n", s, "a", &none, &[]).unwrap(),
            ip("10.89.3.2")
        );
        let used: HashSet<_> = [ip("10.89.3.2")].into();
        assert_eq!(
            pick_address("n", s, "b", &used, &[]).unwrap(),
            ip("10.89.3.3")
        );
    }

    #[test]
    fn a_unit_gets_its_lease_back_while_it_is_free() {
        let s = net("10.89.0.0/24");
        let leases = [
            lease("a", "n", "10.89.0.7"),
            lease("a", "other", "10.89.0.9"),
        ];
        let none = HashSet::new();
        assert_eq!(
            pick_address("n", s, "a", &none, &leases).unwrap(),
            ip("10.89.0.7")
        );
        // Somebody holds it now: the lowest free one.
        let used: HashSet<_> = [ip("10.89.0.7")].into();
        assert_eq!(
            pick_address("n", s, "a", &used, &leases).unwrap(),
            ip("10.89.0.2")
        );
        // A lease outside the subnet (the pool changed) is ignored.
        let s2 = net("10.90.0.0/24");
        assert_eq!(
            pick_address("n", s2, "a", &none, &leases).unwrap(),
            ip("10.90.0.2")
        );
    }

    #[test]
    fn a_new_unit_avoids_the_leases_of_others_until_nothing_else_is_left() {
        let s = net("10.89.0.0/29"); // units: .2 to .6
        let leases = [lease("a", "n", "10.89.0.2"), lease("b", "n", "10.89.0.3")];
        let none = HashSet::new();
        assert_eq!(
            pick_address("n", s, "c", &none, &leases).unwrap(),
            ip("10.89.0.4")
        );
        let used: HashSet<_> = ["10.89.0.4", "10.89.0.5", "10.89.0.6"].map(ip).into();
        assert_eq!(
            pick_address("n", s, "c", &used, &leases).unwrap(),
            ip("10.89.0.2")
        );
    }

    #[test]
    fn a_full_subnet_is_a_clear_error() {
        let s = net("10.89.0.0/30"); // one unit address: .2
        let used: HashSet<_> = [ip("10.89.0.2")].into();
        let e = pick_address("media", s, "b", &used, &[]).unwrap_err();
        assert_eq!(e, "network media: no free address left in 10.89.0.0/30");
        assert!(check_pool(net("10.89.0.0/31")).is_err());
        assert!(check_pool(net("10.89.0.0/30")).is_ok());
    }

    #[test]
    fn names() {
        assert_eq!(bridge_name(0), "jarvis0");
        let taken = |n: &str| Ok(n == "jarvis0" || n == "jarvis2");
        assert_eq!(free_bridge_name(taken).unwrap(), "jarvis1");
        let v = host_veth_name("web", "default");
        assert_eq!(v.len(), 10);
        assert!(v.starts_with("jv") && v[2..].chars().all(|c| c.is_ascii_hexdigit()));
        // Stable across runs (a fixed hash, not a seeded one) and distinct.
        assert_eq!(v, host_veth_name("web", "default"));
        assert_eq!(host_veth_name("", ""), "jv050c5d1f");
        assert_ne!(v, host_veth_name("web", "media"));
        assert_ne!(host_veth_name("ab", "c"), host_veth_name("a", "bc"));
        assert_eq!(container_ifname(1), "eth1");
    }

    #[test]
    fn network_and_unit_names_are_checked() {
        assert!(check_network_name("").is_err());
        assert!(check_network_name(&"x".repeat(64)).is_ok());
        let e = check_network_name(&"x".repeat(65)).unwrap_err();
        assert!(e.contains("longer than 64 bytes"), "{e}");
        assert!(check_unit_name("web").is_ok());
        for bad in ["", ".", "..", "a/b"] {
            assert!(check_unit_name(bad).is_err(), "{bad:?}");
        }
    }
}
