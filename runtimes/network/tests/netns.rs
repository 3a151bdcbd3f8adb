//! jarvis-network against the kernel, as root. Every test runs on a thread
//! of its own that first unshares its network and mount namespaces, so the
//! links, rules, sysctls and netns mounts it makes never reach the host: the
//! netlink sockets, the sockets, the `nft` and `ip` subprocesses and the
//! threads it starts all belong to that thread's namespaces (the first test
//! proves it). A test that cannot run (not root, no `nft` or `ip`) says why
//! and passes, except under `CI=true`, where it fails.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use jarvis_network::{Endpoint, NetConfig, Networks, PortMapping, Protocol};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};
use serde_json::Value;

// ---- the harness --------------------------------------------------------

fn why_not() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("not root".into());
    }
    for (tool, package) in [("nft", "nftables"), ("ip", "iproute2")] {
        let ok = Command::new(tool)
            .arg("-V")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !ok {
            return Some(format!("no `{tool}` binary (Debian package {package})"));
        }
    }
    None
}

/// Runs `f` on a thread in new network and mount namespaces (all mounts
/// private), with `lo` up, and a temporary directory for the state.
fn isolated(name: &str, f: impl FnOnce(&Path) + Send + 'static) {
    if let Some(why) = why_not() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{name} cannot run under CI=true: {why}");
        }
        // Straight to stderr: the test harness does not capture this.
        let _ = writeln!(std::io::stderr(), "skipping {name}: {why}");
        return;
    }
    // Made and removed outside the private mount namespace.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let r = std::thread::spawn(move || {
        unshare(CloneFlags::CLONE_NEWNET | CloneFlags::CLONE_NEWNS).expect("unshare");
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .expect("make mounts private");
        sh(&["ip", "link", "set", "lo", "up"]);
        f(&path)
    })
    .join();
    drop(dir);
    if let Err(panic) = r {
        std::panic::resume_unwind(panic);
    }
}

fn cfg(dir: &Path, pool: &str) -> NetConfig {
    NetConfig {
        state_file: dir.join("networks.json"),
        netns_dir: dir.join("netns"),
        pool: pool.parse().unwrap(),
    }
}

fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn links() -> Value {
    serde_json::from_str(&sh(&["ip", "-j", "link"])).unwrap()
}

fn link_names() -> Vec<String> {
    links()
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["ifname"].as_str().unwrap().to_string())
        .collect()
}

fn ruleset() -> Value {
    serde_json::from_str(&sh(&["nft", "-j", "list", "ruleset"])).unwrap()
}

fn ruleset_text() -> String {
    sh(&["nft", "list", "ruleset"])
}

fn ep(unit: &str, networks: &[&str], ports: Vec<PortMapping>) -> Endpoint {
    Endpoint {
        unit: unit.into(),
        networks: networks.iter().map(|s| s.to_string()).collect(),
        ports,
    }
}

fn port(host_ip: Option<&str>, host: u16, container: u16, protocol: Protocol) -> PortMapping {
    PortMapping {
        host_ip: host_ip.map(|s| s.parse().unwrap()),
        host_port: host,
        container_port: container,
        protocol,
    }
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

/// Runs `f` on a thread that has entered the netns file `netns`.
fn in_netns<T: Send + 'static>(netns: &Path, f: impl FnOnce() -> T + Send + 'static) -> T {
    let netns = netns.to_path_buf();
    std::thread::spawn(move || {
        setns(File::open(&netns).unwrap(), CloneFlags::CLONE_NEWNET).unwrap();
        f()
    })
    .join()
    .unwrap()
}

/// Serves, inside `netns`, TCP on `tcp` (answers "hello from NAME") and
/// UDP on `udp` (echoes, prefixed with NAME), on threads that stay there.
fn serve(netns: &Path, name: &'static str, tcp: Option<u16>, udp: Option<u16>) {
    let netns = netns.to_path_buf();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        setns(File::open(&netns).unwrap(), CloneFlags::CLONE_NEWNET).unwrap();
        let tcp = tcp.map(|p| TcpListener::bind(("0.0.0.0", p)).unwrap());
        let udp = udp.map(|p| UdpSocket::bind(("0.0.0.0", p)).unwrap());
        tx.send(()).unwrap();
        if let Some(u) = udp {
            std::thread::spawn(move || {
                let mut buf = [0u8; 512];
                while let Ok((n, from)) = u.recv_from(&mut buf) {
                    let reply = format!("{name}: {}", String::from_utf8_lossy(&buf[..n]));
                    let _ = u.send_to(reply.as_bytes(), from);
                }
            });
        }
        if let Some(l) = tcp {
            for s in l.incoming() {
                let Ok(mut s) = s else { break };
                let _ = s.write_all(format!("hello from {name}").as_bytes());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(5)).unwrap();
}

/// Connects over TCP and reads what the server says.
fn tcp_get(addr: SocketAddr) -> Result<String, String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map_err(|e| format!("connect {addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out)
        .map_err(|e| format!("read {addr}: {e}"))?;
    Ok(out)
}

fn udp_ask(addr: SocketAddr, msg: &str) -> Result<String, String> {
    let s = UdpSocket::bind("0.0.0.0:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    s.connect(addr).unwrap();
    s.send(msg.as_bytes()).map_err(|e| e.to_string())?;
    let mut buf = [0u8; 512];
    let n = s.recv(&mut buf).map_err(|e| format!("udp {addr}: {e}"))?;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

fn sock(a: &str, port: u16) -> SocketAddr {
    SocketAddr::new(a.parse().unwrap(), port)
}

/// Whether `bind` succeeds within a second: a socket just closed can be
/// held a moment longer by a child another test thread is spawning (between
/// its fork and its exec).
fn bindable(bind: impl Fn() -> std::io::Result<()>) -> bool {
    (0..100).any(|_| {
        let ok = bind().is_ok();
        if !ok {
            std::thread::sleep(Duration::from_millis(10));
        }
        ok
    })
}

/// Whether `dir` is a mount point of the calling thread's mount namespace.
fn mounted(dir: &Path) -> bool {
    let dir = std::fs::canonicalize(dir).unwrap();
    std::fs::read_to_string("/proc/thread-self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(dir.to_str().unwrap()))
}

fn ns_id(path: &str) -> String {
    std::fs::read_link(path)
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

// ---- the tests -----------------------------------------------------------

#[test]
fn threads_and_subprocesses_share_the_namespace_of_the_thread_that_made_them() {
    let host = ns_id("/proc/self/ns/net"); // the main thread's
    isolated("namespaces", move |_| {
        let mine = ns_id("/proc/thread-self/ns/net");
        assert_ne!(mine, host, "the test thread has a namespace of its own");
        let child_thread = std::thread::spawn(|| ns_id("/proc/thread-self/ns/net"))
            .join()
            .unwrap();
        assert_eq!(child_thread, mine);
        let subprocess = sh(&["readlink", "/proc/self/ns/net"]);
        assert_eq!(subprocess.trim(), mine);
        // And so `ip` and `nft` see an empty namespace: only lo, no table.
        assert_eq!(link_names(), ["lo"]);
        assert!(!ruleset_text().contains("table"));
    });
}

#[test]
fn two_units_on_one_network_share_a_bridge_and_reach_each_other() {
    isolated("one network", |dir| {
        let nets = Networks::open(cfg(dir, "10.89.0.0/16")).unwrap();
        let a = nets.attach(&ep("a", &["default"], vec![])).unwrap();
        assert_eq!(nets.table_loads(), 1);
        let b = nets.attach(&ep("b", &["default"], vec![])).unwrap();
        // b changes no rule (no ports, the network was there): no load.
        assert_eq!(nets.table_loads(), 1);
        assert_eq!(a.addresses, [("default".to_string(), ip("10.89.0.2"))]);
        assert_eq!(b.addresses, [("default".to_string(), ip("10.89.0.3"))]);
        assert_eq!(a.gateway, ip("10.89.0.1"));
        assert_eq!(a.netns, dir.join("netns/a"));
        assert_eq!(nets.netns_of("b"), Some(dir.join("netns/b")));
        let list = nets.list();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].bridge, "jarvis0");
        assert_eq!(list[0].subnet.to_string(), "10.89.0.0/24");
        assert_eq!(list[0].units, ["a", "b"]);

        // Both host veths are ports of the bridge.
        let ports: Value =
            serde_json::from_str(&sh(&["ip", "-j", "link", "show", "master", "jarvis0"])).unwrap();
        let mut ports: Vec<&str> = ports
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["ifname"].as_str().unwrap())
            .collect();
        ports.sort();
        assert_eq!(ports.len(), 2);
        assert!(
            ports.iter().all(|p| p.starts_with("jv") && p.len() == 10),
            "{ports:?}"
        );

        // Inside: lo and eth0 with the address, the default route.
        let inside = in_netns(&a.netns, || {
            (
                sh(&["ip", "-o", "-4", "addr", "show"]),
                sh(&["ip", "route", "show", "default"]),
            )
        });
        assert!(
            inside.0.contains("lo ") && inside.0.contains("eth0    inet 10.89.0.2/24"),
            "{}",
            inside.0
        );
        assert!(
            inside.1.contains("default via 10.89.0.1 dev eth0"),
            "{}",
            inside.1
        );

        serve(&b.netns, "b", Some(7000), None);
        let got = in_netns(&a.netns, || tcp_get(sock("10.89.0.3", 7000)));
        assert_eq!(got.unwrap(), "hello from b");
        nets.detach("a").unwrap();
        nets.detach("b").unwrap();
    });
}

#[test]
fn two_networks_are_isolated() {
    isolated("isolation", |dir| {
        let nets = Networks::open(cfg(dir, "10.89.0.0/16")).unwrap();
        let a = nets.attach(&ep("a", &["front"], vec![])).unwrap();
        let b = nets.attach(&ep("b", &["back"], vec![])).unwrap();
        assert_eq!(b.addresses, [("back".to_string(), ip("10.89.1.2"))]);
        // Listed by name; bridges numbered in the order the networks were made.
        let bridges: Vec<(String, String)> = nets
            .list()
            .into_iter()
            .map(|n| (n.name, n.bridge))
            .collect();
        assert_eq!(
            bridges,
            [
                ("back".to_string(), "jarvis1".to_string()),
                ("front".to_string(), "jarvis0".to_string())
            ]
        );
        serve(&b.netns, "b", Some(7000), None);
        // The host reaches b (routing works) ...
        assert_eq!(tcp_get(sock("10.89.1.2", 7000)).unwrap(), "hello from b");
        // ... a does not: the forward chain drops it.
        let across = in_netns(&a.netns, || tcp_get(sock("10.89.1.2", 7000)));
        assert!(across.is_err(), "{across:?}");
        // A unit on both networks reaches both.
        let c = nets.attach(&ep("c", &["front", "back"], vec![])).unwrap();
        assert_eq!(
            c.addresses,
            [
                ("front".to_string(), ip("10.89.0.3")),
                ("back".to_string(), ip("10.89.1.3"))
            ]
        );
        let from_c = in_netns(&c.netns, || tcp_get(sock("10.89.1.2", 7000)));
        assert_eq!(from_c.unwrap(), "hello from b");
        for u in ["a", "b", "c"] {
            nets.detach(u).unwrap();
        }
    });
}

#[test]
fn published_ports_answer_on_loopback_a_host_address_and_from_other_units() {
    isolated("ports", |dir| {
        // A host address (this kernel may lack the dummy driver: a veth).
        sh(&[
            "ip", "link", "add", "h0", "type", "veth", "peer", "name", "h1",
        ]);
        sh(&["ip", "addr", "add", "192.0.2.1/24", "dev", "h0"]);
        sh(&["ip", "link", "set", "h0", "up"]);
        sh(&["ip", "link", "set", "h1", "up"]);
        let nets = Networks::open(cfg(dir, "10.89.0.0/16")).unwrap();
        let web = nets
            .attach(&ep(
                "web",
                &["default"],
                vec![
                    port(None, 8080, 80, Protocol::Tcp),
                    port(None, 5353, 53, Protocol::Udp),
                    port(Some("127.0.0.1"), 9090, 80, Protocol::Tcp),
                ],
            ))
            .unwrap();
        assert_eq!(web.ports.len(), 3);
        serve(&web.netns, "web", Some(80), Some(53));
        for host in ["127.0.0.1", "192.0.2.1"] {
            assert_eq!(
                tcp_get(sock(host, 8080)).unwrap(),
                "hello from web",
                "{host}"
            );
            assert_eq!(
                udp_ask(sock(host, 5353), "ping").unwrap(),
                "web: ping",
                "{host}"
            );
        }
        // A port published on 127.0.0.1 only answers there.
        assert_eq!(tcp_get(sock("127.0.0.1", 9090)).unwrap(), "hello from web");
        assert!(tcp_get(sock("192.0.2.1", 9090)).is_err());
        // Another unit reaches the published port through a host address
        // (hairpin), on the same network and from another one; with the
        // bridge's traffic seen by netfilter (br_netfilter) and without.
        let other = nets.attach(&ep("other", &["default"], vec![])).unwrap();
        let far = nets.attach(&ep("far", &["elsewhere"], vec![])).unwrap();
        let brnf = Path::new("/proc/sys/net/bridge/bridge-nf-call-iptables");
        for call_iptables in ["1", "0"] {
            if brnf.exists() {
                std::fs::write(brnf, call_iptables).unwrap();
            }
            for (who, ns) in [("other", &other.netns), ("far", &far.netns)] {
                let ns = ns.clone();
                let got = in_netns(&ns, || tcp_get(sock("192.0.2.1", 8080)));
                assert_eq!(
                    got.unwrap(),
                    "hello from web",
                    "from {who}, bridge-nf-call-iptables={call_iptables}"
                );
            }
        }
        for u in ["web", "other", "far"] {
            nets.detach(u).unwrap();
        }
    });
}

#[test]
fn a_taken_port_fails_naming_it_and_leaves_nothing() {
    isolated("taken port", |dir| {
        let nets = Networks::open(cfg(dir, "10.89.0.0/16")).unwrap();
        let before = (links(), ruleset());
        let squatter = TcpListener::bind("0.0.0.0:8080").unwrap();
        let e = nets
            .attach(&ep(
                "web",
                &["default"],
                vec![port(None, 8080, 80, Protocol::Tcp)],
            ))
            .unwrap_err();
        assert_eq!(e, "port 0.0.0.0:8080/tcp is already in use on the host");
        assert_eq!((links(), ruleset()), before);
        assert!(nets.list().is_empty());
        assert_eq!(nets.attachment("web"), None);
        assert!(!dir.join("netns/web").exists());
        drop(squatter);

        // A unit holds its reservation: a second unit cannot take it, and
        // neither can a host process.
        nets.attach(&ep(
            "a",
            &["default"],
            vec![port(None, 8081, 80, Protocol::Udp)],
        ))
        .unwrap();
        let with_a = (links(), ruleset());
        let e = nets
            .attach(&ep(
                "b",
                &["default"],
                vec![port(None, 8081, 80, Protocol::Udp)],
            ))
            .unwrap_err();
        assert_eq!(e, "port 0.0.0.0:8081/udp is already in use on the host");
        assert_eq!((links(), ruleset()), with_a);
        assert!(UdpSocket::bind("0.0.0.0:8081").is_err());
        nets.detach("a").unwrap();
        assert!(bindable(|| UdpSocket::bind("0.0.0.0:8081").map(drop)));
        assert_eq!((links(), ruleset()), before);
    });
}

#[test]
fn detaching_the_last_unit_leaves_links_and_ruleset_as_before() {
    isolated("detach", |dir| {
        let nets = Networks::open(cfg(dir, "10.89.0.0/16")).unwrap();
        let before = (links(), ruleset());
        nets.attach(&ep(
            "a",
            &["one", "two"],
            vec![port(None, 8080, 80, Protocol::Tcp)],
        ))
        .unwrap();
        nets.attach(&ep(
            "b",
            &["two"],
            vec![port(Some("127.0.0.1"), 5353, 53, Protocol::Udp)],
        ))
        .unwrap();
        assert!(mounted(&dir.join("netns")), "netns_dir is a mount point");
        let during = link_names();
        assert!(during.contains(&"jarvis0".to_string()) && during.contains(&"jarvis1".to_string()));
        assert!(ruleset_text().contains("table inet jarvis"));
        nets.detach("a").unwrap();
        // Network "one" lost its last unit and so its bridge.
        assert!(!link_names().contains(&"jarvis0".to_string()));
        assert_eq!(nets.list().len(), 1);
        nets.detach("b").unwrap();
        nets.detach("b").unwrap(); // not attached: Ok
        assert_eq!((links(), ruleset()), before);
        assert!(!dir.join("netns/a").exists() && !dir.join("netns/b").exists());
        assert!(!mounted(&dir.join("netns")), "netns_dir is unmounted");
        // The leases stay in the state file.
        let state: Value =
            serde_json::from_slice(&std::fs::read(dir.join("networks.json")).unwrap()).unwrap();
        assert_eq!(state["endpoints"], serde_json::json!([]));
        assert_eq!(state["leases"].as_array().unwrap().len(), 3);
    });
}

#[test]
fn restore_after_a_crash_keeps_an_alive_unit_once() {
    isolated("restore alive", |dir| {
        let nets = Networks::open(cfg(dir, "10.89.0.0/16")).unwrap();
        let a = nets
            .attach(&ep(
                "a",
                &["default"],
                vec![port(None, 8080, 80, Protocol::Tcp)],
            ))
            .unwrap();
        let b = nets.attach(&ep("b", &["default"], vec![])).unwrap();
        serve(&a.netns, "a", Some(80), None);
        let links_before = links();
        let rules_before = ruleset_text();
        // A unit whose container will not outlive the crash, on a network
        // of its own and on a's.
        let c = nets
            .attach(&ep(
                "c",
                &["other", "default"],
                vec![port(None, 9000, 90, Protocol::Udp)],
            ))
            .unwrap();
        assert_eq!(nets.list().len(), 2);
        drop(nets); // jarvisd dies: the reservations go with it
        assert!(bindable(|| TcpListener::bind("0.0.0.0:8080").map(drop)));

        let nets = Networks::open(cfg(dir, "10.89.0.0/16")).unwrap();
        nets.restore(&["a".to_string(), "b".to_string()]).unwrap();
        assert_eq!(nets.table_loads(), 1);
        assert_eq!(nets.attachment("c"), None);
        assert!(!c.netns.exists());
        assert_eq!(nets.list().len(), 1, "the network of c alone is gone");
        assert_eq!(nets.attachment("a"), Some(a));
        assert_eq!(nets.attachment("b"), Some(b));
        assert_eq!(links(), links_before);
        assert_eq!(ruleset_text(), rules_before, "no rule doubled");
        assert_eq!(ruleset_text().matches("dnat ip to").count(), 2);
        // The reservation is held again, and the port still answers.
        assert!(TcpListener::bind("0.0.0.0:8080").is_err());
        assert_eq!(tcp_get(sock("127.0.0.1", 8080)).unwrap(), "hello from a");
        nets.detach("a").unwrap();
        nets.detach("b").unwrap();
    });
}

#[test]
fn restore_cleans_up_units_that_are_gone_even_with_their_netns_gone() {
    isolated("restore dead", |dir| {
        let before = (links(), ruleset());
        let nets = Networks::open(cfg(dir, "10.89.0.0/16")).unwrap();
        nets.attach(&ep(
            "a",
            &["default"],
            vec![port(None, 8080, 80, Protocol::Tcp)],
        ))
        .unwrap();
        let b = nets.attach(&ep("b", &["media"], vec![])).unwrap();
        drop(nets);
        // b's namespace died (its container with it): its veth is gone.
        umount2(&b.netns, MntFlags::MNT_DETACH).unwrap();
        std::fs::remove_file(&b.netns).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let nets = Networks::open(cfg(dir, "10.89.0.0/16")).unwrap();
        nets.restore(&[]).unwrap();
        assert_eq!((links(), ruleset()), before);
        assert!(nets.list().is_empty());
        let left: Vec<PathBuf> = std::fs::read_dir(dir.join("netns"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert!(left.is_empty(), "{left:?}");
    });
}

#[test]
fn a_restarted_unit_gets_its_old_address_while_nobody_took_it() {
    isolated("leases", |dir| {
        let nets = Networks::open(cfg(dir, "10.89.0.0/16")).unwrap();
        let addr = |a: &jarvis_network::Attachment| a.addresses[0].1;
        assert_eq!(
            addr(&nets.attach(&ep("a", &["default"], vec![])).unwrap()),
            ip("10.89.0.2")
        );
        assert_eq!(
            addr(&nets.attach(&ep("b", &["default"], vec![])).unwrap()),
            ip("10.89.0.3")
        );
        nets.detach("a").unwrap();
        // A new unit does not take a's address while others are free.
        assert_eq!(
            addr(&nets.attach(&ep("c", &["default"], vec![])).unwrap()),
            ip("10.89.0.4")
        );
        assert_eq!(
            addr(&nets.attach(&ep("a", &["default"], vec![])).unwrap()),
            ip("10.89.0.2")
        );
        // Re-attaching an attached unit replaces its attachment.
        assert_eq!(
            addr(&nets.attach(&ep("a", &["default"], vec![])).unwrap()),
            ip("10.89.0.2")
        );
        assert_eq!(nets.list()[0].units, ["a", "b", "c"]);
        // Even with the network gone and made again (and a new handle).
        for u in ["a", "b", "c"] {
            nets.detach(u).unwrap();
        }
        assert!(nets.list().is_empty());
        drop(nets);
        let nets = Networks::open(cfg(dir, "10.89.0.0/16")).unwrap();
        assert_eq!(
            addr(&nets.attach(&ep("c", &["default"], vec![])).unwrap()),
            ip("10.89.0.4")
        );
        nets.detach("c").unwrap();
    });
}

#[test]
fn pool_exhaustion_is_a_clear_error_and_leaves_nothing() {
    isolated("exhaustion", |dir| {
        let nets = Networks::open(cfg(dir, "10.89.0.0/30")).unwrap();
        let a = nets.attach(&ep("a", &["default"], vec![])).unwrap();
        assert_eq!(a.addresses[0].1, ip("10.89.0.2"));
        let with_a = (links(), ruleset());
        let e = nets.attach(&ep("b", &["default"], vec![])).unwrap_err();
        assert_eq!(e, "network default: no free address left in 10.89.0.0/30");
        let e = nets.attach(&ep("c", &["other"], vec![])).unwrap_err();
        assert_eq!(e, "no free subnet left in the address pool 10.89.0.0/30");
        assert_eq!((links(), ruleset()), with_a);
        assert_eq!(nets.list().len(), 1);
        assert!(!dir.join("netns/b").exists() && !dir.join("netns/c").exists());
        nets.detach("a").unwrap();
    });
}

#[test]
fn networks_is_send_and_sync_and_works_from_a_tokio_blocking_thread() {
    fn send_sync<T: Send + Sync + Clone>() {}
    send_sync::<Networks>();
    isolated("blocking thread", |dir| {
        let nets = Networks::open(cfg(dir, "10.89.0.0/16")).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let n = nets.clone();
        let a = rt
            .block_on(async move {
                tokio::task::spawn_blocking(move || n.attach(&ep("a", &["default"], vec![]))).await
            })
            .unwrap()
            .unwrap();
        assert_eq!(a.addresses[0].1, ip("10.89.0.2"));
        // The pool's thread was made in this test's namespace: so is the bridge.
        assert!(link_names().contains(&"jarvis0".to_string()));
        let n = nets.clone();
        rt.block_on(async move { tokio::task::spawn_blocking(move || n.detach("a")).await })
            .unwrap()
            .unwrap();
        assert_eq!(link_names(), ["lo"]);
    });
}

#[test]
fn a_published_port_53_leaves_the_name_server_on_the_gateway_alone() {
    isolated("port 53", |dir| {
        let nets = Networks::open(cfg(dir, "10.89.0.0/16")).unwrap();
        let client = nets.attach(&ep("client", &["default"], vec![])).unwrap();
        // jarvisd's name server, on the gateway.
        let server = UdpSocket::bind("10.89.0.1:53").unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            while let Ok((n, from)) = server.recv_from(&mut buf) {
                let reply = format!("jarvisd: {}", String::from_utf8_lossy(&buf[..n]));
                let _ = server.send_to(reply.as_bytes(), from);
            }
        });
        // On all addresses or on a gateway: refused, saying why.
        for host_ip in [None, Some("10.89.0.1")] {
            let e = nets
                .attach(&ep(
                    "dns",
                    &["default"],
                    vec![port(host_ip, 53, 53, Protocol::Udp)],
                ))
                .unwrap_err();
            assert!(e.contains("jarvisd's name server uses port 53"), "{e}");
        }
        assert_eq!(nets.list()[0].units, ["client"]);
        // On one host address: both work.
        let dns = nets
            .attach(&ep(
                "dns",
                &["default"],
                vec![port(Some("127.0.0.1"), 53, 53, Protocol::Udp)],
            ))
            .unwrap();
        serve(&dns.netns, "unit", None, Some(53));
        let got = in_netns(&client.netns, || udp_ask(sock("10.89.0.1", 53), "q"));
        assert_eq!(got.unwrap(), "jarvisd: q");
        assert_eq!(udp_ask(sock("127.0.0.1", 53), "q").unwrap(), "unit: q");
        nets.detach("dns").unwrap();
        nets.detach("client").unwrap();
    });
}
