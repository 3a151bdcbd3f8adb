//! jarvis's nftables table, `inet jarvis`: rendered as nft text by a pure
//! function of the state, loaded by one `nft -f -` transaction.
//!
//! The transaction creates the table (a no-op when it exists), deletes it and
//! adds it again whole, so the table is replaced atomically and can never be
//! doubled; with no network left it only creates and deletes, which removes
//! the table if it was there. No other table is ever listed or changed.

use std::io::Write;
use std::net::IpAddr;
use std::process::{Command, Stdio};

use crate::state::State;
use crate::Protocol;

/// The family and name of jarvis's table.
pub const TABLE: &str = "inet jarvis";

/// The `nft -f -` script that makes the kernel's table what `state` says:
/// replaced whole, or gone when there is no network.
pub fn script(state: &State) -> String {
    let mut s = format!("table {TABLE} {{}}\ndelete table {TABLE}\n");
    if let Some(table) = render(state) {
        s.push_str(&table);
    }
    s
}

/// The table for `state`, or None when there is no network (no table).
pub fn render(state: &State) -> Option<String> {
    if state.networks.is_empty() {
        return None;
    }
    let mut dnat = Vec::new();
    for ep in &state.endpoints {
        let Some(first) = ep.links.first() else {
            continue;
        };
        for p in &ep.ports {
            let dst = match p.host_ip {
                None => "fib daddr type local".to_string(),
                Some(IpAddr::V4(a)) => format!("ip daddr {a}"),
                // Refused when attaching; never rendered.
                Some(IpAddr::V6(_)) => continue,
            };
            let proto = match p.protocol {
                Protocol::Tcp => "tcp",
                Protocol::Udp => "udp",
            };
            dnat.push(format!(
                "{dst} {proto} dport {} dnat ip to {}:{}",
                p.host_port, first.address, p.container_port
            ));
        }
    }
    let mut post = Vec::new();
    let mut forward = vec!["ct status dnat accept".to_string()];
    for n in &state.networks {
        let (br, sub) = (&n.bridge, n.subnet);
        // 127.0.0.1:PORT from the host (route_localnet is on the bridge).
        post.push(format!("ip saddr 127.0.0.0/8 oifname \"{br}\" masquerade"));
        // Hairpin: a unit reaching a published port of its own network.
        post.push(format!(
            "ip saddr {sub} oifname \"{br}\" ct status dnat masquerade"
        ));
        // Leaving for anywhere else.
        post.push(format!("ip saddr {sub} oifname != \"{br}\" masquerade"));
        let others: Vec<String> = state
            .networks
            .iter()
            .filter(|o| o.bridge != n.bridge)
            .map(|o| format!("\"{}\"", o.bridge))
            .collect();
        if !others.is_empty() {
            forward.push(format!(
                "iifname \"{br}\" oifname {{ {} }} drop",
                others.join(", ")
            ));
        }
    }
    for n in &state.networks {
        forward.push(format!("ip saddr {} accept", n.subnet));
        forward.push(format!("ip daddr {} accept", n.subnet));
    }

    let mut t = format!("table {TABLE} {{\n");
    chain(
        &mut t,
        "prerouting",
        "type nat hook prerouting priority dstnat; policy accept;",
        &dnat,
    );
    chain(
        &mut t,
        "output",
        "type nat hook output priority -100; policy accept;",
        &dnat,
    );
    chain(
        &mut t,
        "postrouting",
        "type nat hook postrouting priority srcnat; policy accept;",
        &post,
    );
    chain(
        &mut t,
        "forward",
        "type filter hook forward priority filter; policy accept;",
        &forward,
    );
    t.push_str("}\n");
    Some(t)
}

fn chain(t: &mut String, name: &str, head: &str, rules: &[String]) {
    t.push_str(&format!("\tchain {name} {{\n\t\t{head}\n"));
    for r in rules {
        t.push_str(&format!("\t\t{r}\n"));
    }
    t.push_str("\t}\n");
}

/// Runs `nft -f -` with `script` on its stdin, in the calling thread's
/// network namespace.
pub fn load(script: &str) -> Result<(), String> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("run nft (is the nftables package installed?): {e}"))?;
    let written = child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(script.as_bytes());
    let out = child
        .wait_with_output()
        .map_err(|e| format!("run nft: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "load the nftables table {TABLE}: nft {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    written.map_err(|e| format!("write to nft: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{EndpointRecord, LinkRecord, NetRecord};
    use crate::PortMapping;

    fn example() -> State {
        let net = |name: &str, i: u8| NetRecord {
            name: name.into(),
            subnet: format!("10.89.{i}.0/24").parse().unwrap(),
            gateway: format!("10.89.{i}.1").parse().unwrap(),
            bridge: format!("jarvis{i}"),
        };
        State {
            networks: vec![net("default", 0), net("media", 1)],
            endpoints: vec![
                EndpointRecord {
                    unit: "web".into(),
                    netns: "/run/jarvis/netns/web".into(),
                    links: vec![
                        LinkRecord {
                            network: "default".into(),
                            host_veth: "jv00000001".into(),
                            ifname: "eth0".into(),
                            address: "10.89.0.2".parse().unwrap(),
                        },
                        LinkRecord {
                            network: "media".into(),
                            host_veth: "jv00000002".into(),
                            ifname: "eth1".into(),
                            address: "10.89.1.2".parse().unwrap(),
                        },
                    ],
                    ports: vec![PortMapping {
                        host_ip: None,
                        host_port: 8080,
                        container_port: 80,
                        protocol: Protocol::Tcp,
                    }],
                },
                EndpointRecord {
                    unit: "dns".into(),
                    netns: "/run/jarvis/netns/dns".into(),
                    links: vec![LinkRecord {
                        network: "media".into(),
                        host_veth: "jv00000003".into(),
                        ifname: "eth0".into(),
                        address: "10.89.1.3".parse().unwrap(),
                    }],
                    ports: vec![PortMapping {
                        host_ip: Some("127.0.0.1".parse().unwrap()),
                        host_port: 5353,
                        container_port: 53,
                        protocol: Protocol::Udp,
                    }],
                },
            ],
            leases: vec![],
        }
    }

    const EXAMPLE: &str = r#"table inet jarvis {
	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		fib daddr type local tcp dport 8080 dnat ip to 10.89.0.2:80
		ip daddr 127.0.0.1 udp dport 5353 dnat ip to 10.89.1.3:53
	}
	chain output {
		type nat hook output priority -100; policy accept;
		fib daddr type local tcp dport 8080 dnat ip to 10.89.0.2:80
		ip daddr 127.0.0.1 udp dport 5353 dnat ip to 10.89.1.3:53
	}
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		ip saddr 127.0.0.0/8 oifname "jarvis0" masquerade
		ip saddr 10.89.0.0/24 oifname "jarvis0" ct status dnat masquerade
		ip saddr 10.89.0.0/24 oifname != "jarvis0" masquerade
		ip saddr 127.0.0.0/8 oifname "jarvis1" masquerade
		ip saddr 10.89.1.0/24 oifname "jarvis1" ct status dnat masquerade
		ip saddr 10.89.1.0/24 oifname != "jarvis1" masquerade
	}
	chain forward {
		type filter hook forward priority filter; policy accept;
		ct status dnat accept
		iifname "jarvis0" oifname { "jarvis1" } drop
		iifname "jarvis1" oifname { "jarvis0" } drop
		ip saddr 10.89.0.0/24 accept
		ip daddr 10.89.0.0/24 accept
		ip saddr 10.89.1.0/24 accept
		ip daddr 10.89.1.0/24 accept
	}
}
"#;

    #[test]
    fn two_networks_and_two_ports_render_to_the_example_table() {
        assert_eq!(render(&example()).unwrap(), EXAMPLE);
    }

    #[test]
    fn the_script_replaces_the_table_whole() {
        let s = script(&example());
        assert!(
            s.starts_with("table inet jarvis {}\ndelete table inet jarvis\ntable inet jarvis {\n")
        );
        assert_eq!(s.matches("table inet jarvis {\n").count(), 1);
    }

    #[test]
    fn no_network_means_no_table() {
        assert_eq!(render(&State::default()), None);
        assert_eq!(
            script(&State::default()),
            "table inet jarvis {}\ndelete table inet jarvis\n"
        );
    }

    #[test]
    fn one_network_has_no_isolation_rule_and_a_unit_without_ports_no_dnat() {
        let mut st = example();
        st.networks.truncate(1);
        st.endpoints.truncate(1);
        st.endpoints[0].links.truncate(1);
        st.endpoints[0].ports.clear();
        let t = render(&st).unwrap();
        assert!(!t.contains("drop"), "{t}");
        assert!(!t.contains("dnat ip to"), "{t}");
        assert!(t.contains("ip saddr 10.89.0.0/24 oifname != \"jarvis0\" masquerade"));
    }
}
