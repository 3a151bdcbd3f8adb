//! Bridged container networking end to end. Every test runs jarvisd in a
//! network namespace made for it (`NetNs`), so bridges, routes and nftables
//! rules are made there and the host's own network is never touched; traffic
//! goes only to that namespace's loopback, its dummy address and the
//! containers the test made.
//!
//! Inside a container, commands run with `nsenter -t PID -m -n`: the
//! container's own files (its `/etc/resolv.conf`, `/etc/hosts`, busybox) and
//! its network namespace.

use std::net::{TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::containers::busybox_layout;
use crate::harness::*;

/// A static UDP echo server (`udp-echo PORT`), built here: busybox's `nc`
/// has no UDP.
fn udp_echo(dir: &Path) -> PathBuf {
    let src = dir.join("udp-echo.c");
    std::fs::write(
        &src,
        r#"#include <arpa/inet.h>
#include <stdlib.h>
#include <sys/socket.h>
int main(int argc, char **argv) {
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons(atoi(argv[1]));
    if (bind(s, (struct sockaddr *)&a, sizeof a) != 0) return 1;
    char b[512];
    for (;;) {
        struct sockaddr_in c;
        socklen_t l = sizeof c;
        int n = recvfrom(s, b, sizeof b, 0, (struct sockaddr *)&c, &l);
        if (n > 0) sendto(s, b, n, 0, (struct sockaddr *)&c, l);
    }
}
"#,
    )
    .unwrap();
    let bin = dir.join("udp-echo");
    let out = Command::new("cc")
        .args(["-static", "-O2", "-o"])
        .arg(&bin)
        .arg(&src)
        .output()
        .expect("cc (build-essential)");
    assert!(out.status.success(), "cc -static: {out:?}");
    bin
}

struct Fixture {
    _tmp: tempfile::TempDir,
    image: String,
    echo: PathBuf,
    www: PathBuf,
}

/// The busybox image, the UDP echo binary, and a directory the host's
/// native web server serves.
fn fixture() -> Option<Fixture> {
    if !root() {
        return None;
    }
    for (tool, package) in [
        ("nft", "nftables"),
        ("umoci", "umoci"),
        ("nsenter", "util-linux"),
    ] {
        if !Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success())
        {
            skip(
                true,
                &format!("{tool} is missing (apt-get install {package})"),
            );
            return None;
        }
    }
    let tmp = tempfile::Builder::new()
        .prefix("jarvis-net-")
        .tempdir()
        .unwrap();
    let _ = std::fs::set_permissions(
        tmp.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    );
    let layout = tmp.path().join("busybox");
    busybox_layout(&layout);
    let echo = udp_echo(tmp.path());
    let www = tmp.path().join("www");
    std::fs::create_dir(&www).unwrap();
    std::fs::write(www.join("index.html"), "hello from the host\n").unwrap();
    Some(Fixture {
        image: format!("oci-layout:{}:latest", layout.display()),
        _tmp: tmp,
        echo,
        www,
    })
}

fn container(image: &str, command: &str, extra: &str) -> String {
    format!(
        r#"
[container]
image = "{image}"
command = ["sh", "-c", "{command}"]
{extra}
[stop]
timeout = "1s"
"#
    )
}

/// A web server on port 80 answering "hello from HOSTNAME", and a UDP echo
/// on 53.
fn web(f: &Fixture, extra: &str) -> String {
    container(
        &f.image,
        "mkdir -p /tmp/www && echo hello from $(hostname) > /tmp/www/index.html && busybox httpd -p 80 -h /tmp/www && exec /udp-echo 53",
        &format!(
            "volumes = [\"{}:/udp-echo:ro\"]\n{extra}",
            f.echo.display()
        ),
    )
}

fn idle(f: &Fixture, extra: &str) -> String {
    container(&f.image, "exec sleep 1000", extra)
}

/// Runs `argv` inside the running container `unit` (its files and network).
fn exec_in(j: &Jarvis, unit: &str, argv: &[&str]) -> Output {
    let pid = j.running(unit)["pid"].as_i64().unwrap().to_string();
    // busybox's own wget -T crashes when statically linked: bound it here.
    Command::new("timeout")
        .args(["5", "nsenter", "-t", &pid, "-m", "-n", "--"])
        .args(argv)
        .output()
        .expect("nsenter")
}

/// `exec_in` until it succeeds (a container's server may still be starting),
/// for at most 30 s (a loaded machine); its stdout.
fn exec_ok(j: &Jarvis, unit: &str, argv: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = exec_in(j, unit, argv);
        if out.status.success() {
            return String::from_utf8_lossy(&out.stdout).into_owned();
        }
        assert!(
            Instant::now() < deadline,
            "{argv:?} in {unit}: {}{}\njarvisd:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            j.daemon_log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn ip_of(j: &Jarvis, unit: &str, network: &str) -> String {
    let u = j.running(unit);
    u["networks"]
        .as_array()
        .unwrap_or_else(|| panic!("no networks in {u}"))
        .iter()
        .find(|n| n["name"] == network)
        .unwrap_or_else(|| panic!("{unit} is not on {network}: {u}"))["ip"]
        .as_str()
        .unwrap()
        .to_string()
}

/// An HTTP GET from the test's namespace; the body.
fn http_get(ns: &NetNs, addr: &str) -> Result<String, String> {
    ns.within(|| {
        use std::io::{Read, Write};
        let mut s = TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(2))
            .map_err(|e| format!("connect {addr}: {e}"))?;
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        s.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
        let mut body = String::new();
        s.read_to_string(&mut body)
            .map_err(|e| format!("read {addr}: {e}"))?;
        Ok(body)
    })
}

/// A UDP echo round trip from the test's namespace.
fn udp_echo_ok(ns: &NetNs, addr: &str) -> bool {
    ns.within(|| {
        let s = UdpSocket::bind("0.0.0.0:0").unwrap();
        s.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        for _ in 0..6 {
            s.send_to(b"ping-jarvis", addr).unwrap();
            let mut b = [0u8; 64];
            if let Ok((n, _)) = s.recv_from(&mut b) {
                return &b[..n] == b"ping-jarvis";
            }
        }
        false
    })
}

fn eventually(what: &str, mut f: impl FnMut() -> Result<(), String>) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match f() {
            Ok(()) => return,
            Err(e) if Instant::now() > deadline => panic!("{what}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// The namespace's links and ruleset, to compare before and after.
fn net_snapshot(ns: &NetNs) -> (serde_json::Value, serde_json::Value) {
    let links: serde_json::Value = serde_json::from_str(&ns.ok(&["ip", "-j", "link"])).unwrap();
    let rules: serde_json::Value =
        serde_json::from_str(&ns.ok(&["nft", "-j", "list", "ruleset"])).unwrap();
    (links, rules)
}

#[test]
fn bridged_containers_resolve_reach_publish_share_and_leave_nothing() {
    let Some(f) = fixture() else { return };
    let native_www = format!(
        "[native]\ncommand = [\"busybox\", \"httpd\", \"-f\", \"-p\", \"9999\", \"-h\", \"{}\"]\n",
        f.www.display()
    );
    let j = Jarvis::start_in_netns(&[], &[]);
    let before = net_snapshot(j.netns.as_ref().unwrap());
    // Its check names the container's own loopback, as a check inside it
    // would: `up --wait` waits for it to pass.
    j.write_unit(
        "web",
        &(web(
            &f,
            "aliases = [\"www\"]\nports = [\"8080:80\", \"5353:53/udp\"]",
        ) + "[health]\nhttp = \"http://127.0.0.1:80/\"\ninterval = \"200ms\"\n"),
    );
    j.write_unit(
        "client",
        &idle(
            &f,
            "extra_hosts = [\"host.docker.internal:host-gateway\", \"nas:192.0.2.10\"]",
        ),
    );
    j.write_unit("loner", &idle(&f, "networks = [\"other\"]"));
    j.write_unit("side", &idle(&f, "network = \"unit:web\""));
    j.write_unit("hostweb", &native_www);
    j.ok(&["up", "--wait", "--timeout", "60s"]);
    let ns = j.netns.as_ref().unwrap();

    assert_eq!(j.unit("web")["health"], "healthy");

    // Names and aliases on the shared network.
    let web_ip = ip_of(&j, "web", "default");
    let client_ip = ip_of(&j, "client", "default");
    assert_ne!(web_ip, client_ip);
    for name in ["web", "www"] {
        let url = format!("http://{name}/");
        let body = exec_ok(&j, "client", &["busybox", "wget", "-q", "-O-", &url]);
        assert_eq!(body.trim(), "hello from web", "{name}");
    }
    let lookup = exec_ok(&j, "client", &["busybox", "nslookup", "web"]);
    assert!(lookup.contains(&web_ip), "{lookup}");

    // Another network can neither resolve nor reach them.
    let loner_ip = ip_of(&j, "loner", "other");
    assert_ne!(
        loner_ip.rsplit_once('.').unwrap().0,
        web_ip.rsplit_once('.').unwrap().0,
        "two networks, two subnets"
    );
    let out = exec_in(&j, "loner", &["busybox", "nslookup", "web"]);
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains(&web_ip),
        "loner resolved web: {out:?}"
    );
    let url = format!("http://{web_ip}/");
    let out = exec_in(&j, "loner", &["busybox", "wget", "-q", "-O-", &url]);
    assert!(!out.status.success(), "loner reached web: {out:?}");

    // Published ports, from the namespace's loopback and its own address.
    for host in ["127.0.0.1", NetNs::ADDR] {
        let addr = format!("{host}:8080");
        eventually(&format!("GET {addr}"), || {
            let body = http_get(ns, &addr)?;
            body.contains("hello from web").then_some(()).ok_or(body)
        });
        assert!(udp_echo_ok(ns, &format!("{host}:5353")), "udp {host}:5353");
    }
    let web_status = j.unit("web");
    let ports: Vec<&str> = web_status["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert_eq!(ports, ["0.0.0.0:8080->80/tcp", "0.0.0.0:5353->53/udp"]);
    let table = j.ok(&["status"]);
    assert!(table.contains("0.0.0.0:8080->80/tcp"), "{table}");

    // The sidecar is in web's namespace: same interfaces, same address.
    let web_pid = j.running("web")["pid"].as_i64().unwrap();
    let side_pid = j.running("side")["pid"].as_i64().unwrap();
    assert_eq!(
        std::fs::read_link(format!("/proc/{web_pid}/ns/net")).unwrap(),
        std::fs::read_link(format!("/proc/{side_pid}/ns/net")).unwrap()
    );
    let addrs = exec_ok(&j, "side", &["busybox", "ip", "-4", "addr"]);
    assert!(addrs.contains(&format!("{web_ip}/")), "{addrs}");
    let body = exec_ok(
        &j,
        "side",
        &["busybox", "wget", "-q", "-O-", "http://127.0.0.1/"],
    );
    assert_eq!(body.trim(), "hello from web");

    // host-gateway reaches a native unit on the host; extra_hosts are in
    // /etc/hosts.
    let body = exec_ok(
        &j,
        "client",
        &[
            "busybox",
            "wget",
            "-q",
            "-O-",
            "http://host.docker.internal:9999/",
        ],
    );
    assert_eq!(body.trim(), "hello from the host");
    let hosts = exec_ok(&j, "client", &["cat", "/etc/hosts"]);
    assert!(hosts.contains("192.0.2.10\tnas"), "{hosts}");

    // network ls
    let ls: serde_json::Value = serde_json::from_str(&j.ok(&["network", "ls", "--json"])).unwrap();
    let nets = ls["networks"].as_array().unwrap();
    let names: Vec<&str> = nets.iter().map(|n| n["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["default", "other"], "{ls}");
    let default = &nets[0];
    assert!(
        default["subnet"].as_str().unwrap().starts_with("10.89."),
        "{ls}"
    );
    let units: Vec<&str> = default["units"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap())
        .collect();
    assert_eq!(units, ["client", "web"], "{ls}");

    // stop removes one unit's link; down leaves the namespace as it was.
    let links_before_stop = ns.ok(&["ip", "-o", "link"]).lines().count();
    j.ok(&["stop", "client"]);
    eventually("client's veth gone", || {
        let n = ns.ok(&["ip", "-o", "link"]).lines().count();
        (n == links_before_stop - 1)
            .then_some(())
            .ok_or(format!("{n} links"))
    });
    j.ok(&["down"]);
    eventually("links and ruleset as before up", || {
        let after = net_snapshot(ns);
        (after == before)
            .then_some(())
            .ok_or(format!("before {before:?}\nafter {after:?}"))
    });
}

#[test]
fn after_kill_9_and_a_restart_containers_keep_addresses_and_rules_are_not_duplicated() {
    let Some(f) = fixture() else { return };
    let mut j = Jarvis::start_in_netns(&[], &[]);
    j.write_unit("web", &web(&f, "ports = [\"8080:80\"]"));
    j.write_unit("client", &idle(&f, ""));
    j.ok(&["up", "--wait", "--timeout", "60s"]);
    let ns = j.netns.as_ref().unwrap();
    let web_ip = ip_of(&j, "web", "default");
    eventually("GET 127.0.0.1:8080", || {
        http_get(ns, "127.0.0.1:8080").map(|_| ())
    });
    let rules = ns.ok(&["nft", "list", "table", "inet", "jarvis"]);
    let links = ns.ok(&["ip", "-o", "link"]);
    let pid = j.running("web")["pid"].as_i64().unwrap();

    j.kill_daemon();
    // While jarvisd is away the container still answers.
    let ns = j.netns.as_ref().unwrap();
    assert!(http_get(ns, "127.0.0.1:8080")
        .unwrap()
        .contains("hello from web"));
    j.spawn_daemon();
    let ns = j.netns.as_ref().unwrap();
    assert_eq!(j.running("web")["pid"].as_i64().unwrap(), pid, "re-adopted");
    assert_eq!(ip_of(&j, "web", "default"), web_ip);
    assert_eq!(ns.ok(&["nft", "list", "table", "inet", "jarvis"]), rules);
    assert_eq!(ns.ok(&["ip", "-o", "link"]), links);
    assert!(http_get(ns, "127.0.0.1:8080")
        .unwrap()
        .contains("hello from web"));
    let body = exec_ok(
        &j,
        "client",
        &["busybox", "wget", "-q", "-O-", "http://web/"],
    );
    assert_eq!(
        body.trim(),
        "hello from web",
        "names resolve after the restart"
    );

    // A restarted unit keeps its address.
    j.ok(&["restart", "web"]);
    j.wait_unit("web", Duration::from_secs(20), |u| {
        u["state"] == "running" && u["pid"].as_i64() != Some(pid)
    });
    assert_eq!(ip_of(&j, "web", "default"), web_ip);
}

#[test]
fn a_sidecar_restarts_after_the_unit_whose_namespace_it_shares() {
    let Some(f) = fixture() else { return };
    let j = Jarvis::start_in_netns(&[], &[]);
    j.write_unit("vpn", &idle(&f, ""));
    j.write_unit("app", &idle(&f, "network = \"unit:vpn\""));
    j.ok(&["up", "--wait", "--timeout", "60s"]);
    let app_pid = j.running("app")["pid"].as_i64().unwrap();
    let vpn_pid = j.running("vpn")["pid"].as_i64().unwrap();
    j.ok(&["restart", "vpn"]);
    let vpn = j.wait_unit("vpn", Duration::from_secs(20), |u| {
        u["state"] == "running" && u["pid"].as_i64() != Some(vpn_pid)
    });
    let app = j.wait_unit("app", Duration::from_secs(20), |u| {
        u["state"] == "running" && u["pid"].as_i64() != Some(app_pid)
    });
    let ns = |pid: &serde_json::Value| {
        std::fs::read_link(format!("/proc/{}/ns/net", pid.as_i64().unwrap())).unwrap()
    };
    assert_eq!(
        ns(&vpn["pid"]),
        ns(&app["pid"]),
        "app joined vpn's new namespace"
    );
}

#[test]
fn a_published_port_a_host_process_holds_fails_the_unit_and_names_the_port() {
    let Some(f) = fixture() else { return };
    let j = Jarvis::start_in_netns(&[], &[]);
    // Something on the host (in the test's namespace) holds 8081 already.
    let ns = j.netns.as_ref().unwrap();
    let holder = ns.within(|| std::net::TcpListener::bind("0.0.0.0:8081").unwrap());
    j.write_unit("web", &web(&f, "ports = [\"8081:80\"]"));
    let _ = j.ctl(&["up"]);
    let u = j.wait_unit("web", Duration::from_secs(20), |u| {
        u["state"] == "failed" || u["state"] == "waiting"
    });
    let reason = u["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("8081"), "{u}");
    drop(holder);
    // Nothing of the failed attempt is left.
    let ns = j.netns.as_ref().unwrap();
    let links = ns.ok(&["ip", "-o", "link"]);
    assert!(!links.contains("jv"), "{links}");
}

#[test]
fn validate_reports_network_mistakes_with_positions() {
    let dir = tempfile::tempdir().unwrap();
    let units = dir.path();
    let write =
        |name: &str, text: &str| std::fs::write(units.join(format!("{name}.toml")), text).unwrap();
    write(
        "a",
        "[container]\nimage = \"busybox\"\nports = [\"8080:80\", \"80\"]\n",
    );
    write(
        "b",
        "[container]\nimage = \"busybox\"\nports = [\"8080:81\"]\n",
    );
    write(
        "c",
        "[container]\nimage = \"busybox\"\nnetwork = \"host\"\nports = [\"9000:9000\"]\n",
    );
    write(
        "d",
        "[container]\nimage = \"busybox\"\nnetwork = \"unit:nothere\"\n",
    );
    write(
        "e",
        "[container]\nimage = \"busybox\"\nnetwork = \"unit:d\"\n",
    );
    let out = Command::new(&*JARVISCTL)
        .args(["validate", "--json"])
        .arg(units)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let problems = v["problems"].as_array().unwrap();
    let has = |file: &str, line: u64, needle: &str| {
        problems.iter().any(|p| {
            p["file"]
                .as_str()
                .unwrap()
                .ends_with(&format!("{file}.toml"))
                && p["line"] == line
                && p["col"].as_u64().unwrap() > 0
                && p["message"].as_str().unwrap().contains(needle)
        })
    };
    assert!(has("a", 3, "80"), "malformed port: {v:#}");
    assert!(
        has("b", 3, "8080") || has("a", 3, "8080"),
        "same host port twice: {v:#}"
    );
    assert!(has("c", 4, "host"), "ports on a host unit: {v:#}");
    assert!(has("d", 3, "nothere"), "unit:NAME missing: {v:#}");
    assert!(has("e", 3, "d"), "a chain: {v:#}");
}
