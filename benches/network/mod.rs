//! network: bridged container networking next to docker's, in a network
//! namespace made for the group.
//!
//! - start: a bridged container unit (`true`, on a network that already has
//!   a bridge, like docker0) from a start request to running and to
//!   `exited (0)`, through jarvisd's socket in-process as the container group
//!   does, vs `docker run --rm busybox:local true` on docker's default bridge;
//!   with jarvis alone on a network (bridge made and removed per run),
//!   jarvis `network = "none"` and `docker run --rm --network none` beside
//!   them, all alternating.
//! - round trip: a static TCP echo server (built here with `cc -static`) in
//!   a jarvis container publishing `18080:7` and in a docker container
//!   publishing `18081:7` (`-p`), 64-byte request and echo from this process
//!   to `127.0.0.1:PORT` and to the namespace's own address: a new
//!   connection per request, and many round trips on one connection;
//!   alternating rounds, the ratio's 95% CI from the paired-round bootstrap.
//! - compose: `jarvisctl up --wait` / `down` of 20 bridged container units on
//!   3 networks vs `docker-compose up -d` / `down -t 1` of the same 20
//!   services on 3 networks.
//!
//! The whole group runs in a network namespace of its own: this thread
//! unshares one (loopback up, a veth pair whose one end holds
//! [`NS_ADDR`], the namespace's "own address"), so jarvisd, dockerd (with
//! docker's stock bridge, iptables and userland proxy), containers, clients
//! and every rule live there, and the host's network is never touched; the
//! thread goes back to the host's namespace at the end, whatever happened.
//! The image and dockerd come from the container group (`container/mod.rs`).

use std::io::{Read, Write as _};
use std::net::{SocketAddr, TcpStream};

use jarvis_benchstats::stats::{compare, Comparison, Pair};
use nix::sched::CloneFlags;

use super::container::{
    docker_client_version, jarvisd_with_image, loadavg, mounts_under, run_tool, start_units,
    tool_version, wait_exited, wait_ready, BusyboxImage, Dockerd,
};
use super::*;

/// The namespace's own address (TEST-NET-1, on a veth made for it).
const NS_ADDR: &str = "192.0.2.1";
/// Published host ports of the echo containers.
/// Both echo servers and the client run on this CPU during the round trips, so
/// a round trip never depends on where the scheduler put the two ends (on 2
/// vCPUs, a wakeup across CPUs costs several times a local one).
const RTT_CPU: usize = 0;
const JARVIS_PORT: u16 = 18080;
const DOCKER_PORT: u16 = 18081;
/// The echo server's port inside its container.
const ECHO_PORT: u16 = 7;
/// Bytes per request (and per echo).
const MESSAGE: usize = 64;

/// jarvis's bridged start median at most this fraction of `docker run --rm`'s.
const TARGET_START_RATIO: f64 = 0.1;
/// jarvis's published-port round trip median at most this multiple of docker's.
const TARGET_RTT_RATIO: f64 = 1.0;

/// Services of the compose part, and its networks.
const SERVICES: usize = 20;
const NETWORKS: [&str; 3] = ["front", "back", "data"];
/// The compose project name (container names, labels).
const PROJECT: &str = "jarvisnetbench";

/// Iterations of the start part per round (a round is one pair of the
/// bootstrap).
const START_ROUND: usize = 10;

const START_SIDES: [(&str, &str); 6] = [
    (
        "jarvis bridged, to running",
        "`Request::Start` + `Request::Wait` for `box-bridge` (`network = \"bridge\"`, the default network, whose bridge an idle unit keeps up)",
    ),
    (
        "jarvis bridged, to exited",
        "the same run until `status` says `exited (0)` (polled every 0.5 ms): includes the detach (veth, rules)",
    ),
    (
        "jarvis alone on its network, to exited",
        "`box-solo` (`networks = [\"solo\"]`, no other unit there): the bridge is made and removed on every run",
    ),
    (
        "jarvis `network = \"none\"`, to exited",
        "`box-none`: the container group's unit, for the cost of bridging",
    ),
    (
        "docker run --rm (default bridge)",
        "`docker run --rm busybox:local true`: client process; dockerd, containerd, shim, runc; a veth into docker0; returns after exit and removal",
    ),
    (
        "docker run --rm --network none",
        "`docker run --rm --network none busybox:local true`, for docker's cost of bridging",
    ),
];

/// The round-trip series: (side, address), in the order they are reported.
const RTT_TARGETS: [(&str, &str); 4] = [
    ("jarvis", "127.0.0.1"),
    ("jarvis", NS_ADDR),
    ("docker", "127.0.0.1"),
    ("docker", NS_ADDR),
];

// ---------------------------------------------------------------------------
// The namespace

/// This thread in a network namespace of its own while it lives; back in
/// the one it came from when dropped.
struct BenchNetns {
    host: fs::File,
    _ns: fs::File,
}

impl BenchNetns {
    fn enter() -> Res<BenchNetns> {
        let link = "/proc/thread-self/ns/net";
        let host_id = fs::read_link(link)?;
        let host = fs::File::open(link)?;
        nix::sched::unshare(CloneFlags::CLONE_NEWNET).map_err(|e| format!("unshare: {e}"))?;
        let ns_id = fs::read_link(link)?;
        let g = BenchNetns {
            host,
            _ns: fs::File::open(link)?,
        };
        if ns_id == host_id || Some(&ns_id) == fs::read_link("/proc/1/ns/net").ok().as_ref() {
            return Err(format!("unshare left this thread in {}", ns_id.display()).into());
        }
        for cmd in [
            "link set lo up",
            "link add lan0 type veth peer name lan1",
            &format!("addr add {NS_ADDR}/24 dev lan0"),
            "link set lan0 up",
            "link set lan1 up",
        ] {
            run_tool(Command::new("ip").args(cmd.split(' ')))?;
        }
        progress!(
            "network: in a network namespace of its own ({}), own address {NS_ADDR}",
            ns_id.display()
        );
        Ok(g)
    }
}

impl Drop for BenchNetns {
    fn drop(&mut self) {
        // Staying in the bench's namespace would run every later group there.
        nix::sched::setns(&self.host, CloneFlags::CLONE_NEWNET)
            .expect("back to the host's network namespace");
    }
}

/// Links of the namespace whose name starts with one of `prefixes`.
fn links_named(prefixes: &[&str]) -> Res<Vec<String>> {
    Ok(run_tool(Command::new("ip").args(["-o", "link", "show"]))?
        .lines()
        .filter_map(|l| {
            let name = l.split(": ").nth(1)?.split('@').next()?.to_string();
            prefixes.iter().any(|p| name.starts_with(p)).then_some(name)
        })
        .collect())
}

// ---------------------------------------------------------------------------
// The group

pub(crate) fn bench_network(quick: bool) -> Res<Section> {
    let load_before = loadavg();
    let ns = BenchNetns::enter()?;
    let r = in_namespace(quick);
    drop(ns);
    let mut s = r?;
    let load_after = loadavg();
    s.markdown = s.markdown.replacen(
        "LOAD_AFTER",
        &format!("{load_before}; when it ended: {load_after}"),
        1,
    );
    if let Value::Object(m) = &mut s.json {
        m.insert("loadavg_before".into(), json!(load_before));
        m.insert("loadavg_after".into(), json!(load_after));
    }
    Ok(s)
}

fn skipped(why: String) -> Section {
    progress!("network: skipped: {why}");
    Section {
        markdown: format!("## network: skipped\n\n{why}\n"),
        json: json!({ "skipped": why }),
        targets: vec![],
    }
}

fn in_namespace(quick: bool) -> Res<Section> {
    let (iters, warmup) = if quick { (20, 2) } else { (100, 5) };
    let (rtt_rounds, per_round) = if quick {
        (6, (20, 100))
    } else {
        (20, (50, 200))
    };
    let compose_rounds = if quick { 2 } else { 5 };
    for (tool, package) in [
        ("nft", "nftables"),
        ("umoci", "umoci"),
        ("cc", "build-essential"),
    ] {
        if tool_version(&["sh", "-c", &format!("command -v {tool}")]).ends_with("missing") {
            return Ok(skipped(format!(
                "{tool} is missing (apt-get install {package})"
            )));
        }
    }
    let tmp = tempfile::Builder::new()
        .prefix("jarvis-bench-net-")
        .tempdir()?;
    let _ = fs::set_permissions(
        tmp.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    );
    progress!("network: building the busybox OCI image with umoci and the static echo server");
    let image = match BusyboxImage::build(tmp.path()) {
        Ok(img) => img,
        Err(e) => return Ok(skipped(format!("Could not build the busybox image: {e}"))),
    };
    let echo = match echo_server(tmp.path()) {
        Ok(p) => p,
        Err(e) => return Ok(skipped(format!("Could not build the echo server: {e}"))),
    };
    let compose_version = tool_version(&["docker-compose", "--version"]);
    let docker = start_bridged_dockerd(tmp.path()).and_then(|d| {
        d.import(&image.rootfs)
            .map_err(|e| format!("docker import: {e}").into())
            .map(|()| d)
    });
    let docker = docker.map_err(|e| e.to_string());
    if let Err(e) = &docker {
        progress!("network: docker unavailable: {e}");
    }
    let dk = docker.as_ref().ok();

    let measured = (|| -> Res<(Section, Section, Section)> {
        let mut d = jarvisd_with_image("net", &image)?;
        let r = (|| {
            let echoes = Echoes::start(&mut d, dk, &echo)?;
            let start = bench_start(&mut d, dk, iters, warmup)?;
            let rtt = bench_rtt(&mut d, &echoes, rtt_rounds, per_round)?;
            d.ctl(&["stop", "echo"])?;
            if let Some(dk) = dk {
                dk.cli(&["rm", "-f", "echo"])?;
            }
            Ok::<_, Box<dyn std::error::Error>>((start, rtt))
        })();
        let left = d.stop();
        let (start, mut rtt) = r?;
        let left = left?;
        let mounts = mounts_under(d.dir.path());
        let strays = links_named(&["jarvis", "jv"])?;
        progress!("network: jarvisd stopped; {}", left.describe());
        let _ = writeln!(
            rtt.markdown,
            "\njarvisd (start and round-trip parts) after SIGTERM: {}; mounts left under its state dir: {mounts}; \
             jarvis links left in the namespace: {}.",
            left.describe(),
            if strays.is_empty() { "none".to_string() } else { strays.join(", ") }
        );
        let compose = bench_compose(&image, dk, tmp.path(), compose_rounds, &compose_version)?;
        Ok((start, rtt, compose))
    })();
    // Tear dockerd down before reporting, whatever happened.
    let docker_note = docker.map(|d| d.stop().map_err(|e| e.to_string()));
    let (start, rtt, compose) = measured?;

    let mut md = String::new();
    let _ = writeln!(
        md,
        "## network: bridged containers and published ports, jarvis vs docker\n"
    );
    let _ = writeln!(
        md,
        "Load average (1/5/15 min) when the section began: LOAD_AFTER (the sides alternate so other work on the \
         machine hits both).\n"
    );
    let _ = writeln!(
        md,
        "Everything runs in a network namespace the bench made for this group (`unshare(CLONE_NEWNET)` on its thread; \
         loopback up and a veth pair whose end `lan0` holds {NS_ADDR}/24, the namespace's own address): jarvisd, \
         dockerd, their bridges and rules, the containers and the clients. Same busybox image as the container \
         group (umoci layout for jarvisd, `docker import` of the same rootfs). dockerd: {}, {}, with docker's stock \
         networking (default bridge docker0, iptables, userland proxy), its own data root, exec root and socket in a \
         temporary directory; {}.\n",
        docker_client_version(),
        tool_version(&["dockerd", "--version"]),
        match &docker_note {
            Ok(Ok(n)) => format!("stopped and removed at the end: {n}"),
            Ok(Err(e)) => format!("stopped with a problem: {e}"),
            Err(why) => format!("**not run** ({why}): the jarvis side is reported alone"),
        }
    );
    for s in [&start, &rtt, &compose] {
        md.push_str(&s.markdown);
        md.push('\n');
    }
    let mut targets = start.targets;
    targets.extend(rtt.targets);
    targets.extend(compose.targets);
    Ok(Section {
        markdown: md,
        json: json!({
            "netns_addr": NS_ADDR,
            "image": { "files": image.files, "bytes": image.bytes },
            "docker": match docker_note {
                Ok(Ok(s)) => json!({ "stopped": s }),
                Ok(Err(e)) => json!({ "error": e }),
                Err(why) => json!({ "not_run": why }),
            },
            "start": start.json,
            "round_trip": rtt.json,
            "compose": compose.json,
        }),
        targets,
    })
}

/// The container group's dockerd with docker's stock networking (docker0,
/// iptables, docker-proxy), inside the benchmark's namespace.
fn start_bridged_dockerd(_dir: &Path) -> Res<Dockerd> {
    let d = Dockerd::start_with(&[]);
    let d = d?;
    let info = d.cli(&[
        "network",
        "inspect",
        "bridge",
        "--format",
        "{{range .IPAM.Config}}{{.Subnet}}{{end}}",
    ])?;
    progress!(
        "network: dockerd up with its default bridge ({})",
        info.trim()
    );
    Ok(d)
}

// ---------------------------------------------------------------------------
// jarvisd through its socket, in-process (as the container group does)

/// Start + Wait through the socket, as the container group times a start.
fn start_wait(d: &Daemon, unit: &str) -> Res<()> {
    start_units(&d.socket, &[unit.to_string()])?;
    wait_ready(&d.socket)
}

fn unit_text(command: &str, network: &str) -> String {
    format!(
        r#"description = "bench network: a busybox container"

[container]
image = "busybox:local"
command = {command}
{network}

[restart]
policy = "never"

[stop]
timeout = "1s"
"#
    )
}

// ---------------------------------------------------------------------------
// start

fn bench_start(d: &mut Daemon, dk: Option<&Dockerd>, iters: usize, warmup: usize) -> Res<Section> {
    let units = [
        (
            "box-bridge",
            unit_text(r#"["true"]"#, "network = \"bridge\""),
        ),
        (
            "box-solo",
            unit_text(r#"["true"]"#, "networks = [\"solo\"]"),
        ),
        ("box-none", unit_text(r#"["true"]"#, "network = \"none\"")),
    ];
    for (name, text) in &units {
        fs::write(d.units.join(format!("{name}.toml")), text)?;
    }
    d.ctl(&["up", "--wait", "--timeout", "60s"])?;
    for name in ["box-bridge", "box-solo", "box-none"] {
        wait_exited(d, name)?;
    }
    // Sides: 0 (with 1 from the same run), 2, 3, 4, 5.
    let sides: Vec<usize> = [0usize, 2, 3, 4, 5]
        .into_iter()
        .filter(|&v| v < 4 || dk.is_some())
        .collect();
    progress!(
        "network start: {iters} alternating iterations of {} sides (+{warmup} warm-up)",
        sides.len()
    );
    let mut samples: Vec<Vec<u64>> = vec![Vec::new(); START_SIDES.len()];
    let started = Instant::now();
    for i in 0..warmup + iters {
        for k in 0..sides.len() {
            let v = sides[(i + k) % sides.len()];
            let keep = i >= warmup;
            let t = Instant::now();
            match v {
                0 => {
                    start_wait(d, "box-bridge")?;
                    let ready = elapsed_ns(t);
                    wait_exited(d, "box-bridge")?;
                    if keep {
                        samples[0].push(ready);
                        samples[1].push(elapsed_ns(t));
                    }
                    continue;
                }
                2 | 3 => {
                    let unit = if v == 2 { "box-solo" } else { "box-none" };
                    start_wait(d, unit)?;
                    wait_exited(d, unit)?;
                }
                _ => {
                    let dk = dk.expect("only with docker");
                    let mut args = vec!["run", "--rm"];
                    if v == 5 {
                        args.extend(["--network", "none"]);
                    }
                    args.extend(["busybox:local", "true"]);
                    dk.cli(&args)?;
                }
            }
            if keep {
                samples[v].push(elapsed_ns(t));
            }
        }
        d.check_alive()?;
        let done = (i + 1).saturating_sub(warmup);
        if done > 0 && (done % 20 == 0 || done == iters) {
            let s: Vec<String> = START_SIDES
                .iter()
                .zip(&samples)
                .filter(|(_, v)| !v.is_empty())
                .map(|((name, _), v)| format!("{name} {} ms", ms(median_of(v))))
                .collect();
            progress!(
                "network start: {done}/{iters} ({:.1} s) medians: {}",
                started.elapsed().as_secs_f64(),
                s.join(", ")
            );
        }
    }

    let sums: Vec<Option<Summary>> = samples.iter().map(|v| Summary::of(v)).collect();
    // Rounds of START_ROUND iterations are the bootstrap's pairs.
    let cmp = |a: usize, b: usize| -> Option<Comparison> {
        let pairs: Vec<(Vec<f64>, Vec<f64>)> = samples[a]
            .chunks(START_ROUND)
            .zip(samples[b].chunks(START_ROUND))
            .map(|(x, y)| (f64s(y), f64s(x)))
            .collect();
        compare_pairs(&pairs)
    };
    let mut md = String::new();
    let _ = writeln!(
        md,
        "### start: `true` in a bridged container, start to running/exited\n"
    );
    let _ = writeln!(
        md,
        "{iters} iterations per side (after {warmup} warm-up), the sides alternating in rotating order within each \
         iteration; times in ms; ratio = median / the median of `docker run --rm` on the default bridge, with the 95% CI \
         of the ratio from the paired-round bootstrap (rounds of {START_ROUND} iterations). jarvis units: `[container] \
         image = \"busybox:local\"`, `command = [\"true\"]`, restart `never`. The echo containers of the round-trip part (below) run on both sides the \
         whole time, so jarvis's default network has its bridge, like docker0, and both sides have one published port. Each jarvis iteration waits for \
         `exited (0)` before the next side runs.\n"
    );
    let _ = writeln!(
        md,
        "| side | what is timed | median | p95 | p99 | max | ratio vs docker (bridge) | 95% CI |"
    );
    let _ = writeln!(md, "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |");
    let base = sums[4].map(|s| s.p50);
    for (v, ((name, what), s)) in START_SIDES.iter().zip(&sums).enumerate() {
        let Some(s) = s else {
            let _ = writeln!(md, "| {name} | {what} | - | - | - | - | not run | - |");
            continue;
        };
        let c = if base.is_some() && v != 4 {
            cmp(v, 4)
        } else {
            None
        };
        let _ = writeln!(
            md,
            "| {name} | {what} | {} | {} | {} | {} | {} | {} |",
            ms(s.p50),
            ms(s.p95),
            ms(s.p99),
            ms(s.max),
            base.map_or("-".into(), |b| ratio(s.p50, b)),
            ci_text(c.as_ref())
        );
    }
    let mut targets = Vec::new();
    if let (Some(j), Some(je), Some(dkr)) = (sums[0], sums[1], sums[4]) {
        for (what, s, v) in [
            (
                "bridged container start, jarvis (socket Start+Wait) median vs `docker run --rm` (default bridge) median",
                j,
                0,
            ),
            (
                "bridged container start, jarvis to exited (incl. detach) vs `docker run --rm` (default bridge)",
                je,
                1,
            ),
        ] {
            let r = s.p50 as f64 / dkr.p50.max(1) as f64;
            targets.push(Target {
                what,
                limit: format!("≤ {TARGET_START_RATIO}×"),
                measured: format!(
                    "{r:.3}× ({} vs {} ms; 95% CI {})",
                    ms(s.p50),
                    ms(dkr.p50),
                    ci_text(cmp(v, 4).as_ref())
                ),
                pass: r <= TARGET_START_RATIO,
            });
        }
    }
    let mut sides = serde_json::Map::new();
    for (((name, what), s), v) in START_SIDES.iter().zip(&sums).zip(&samples) {
        sides.insert(
            name.to_string(),
            json!({ "what": what, "summary": s.map(|s| s.json()), "samples_ns": v }),
        );
    }
    Ok(Section {
        markdown: md,
        json: json!({ "iterations": iters, "warmup": warmup, "round": START_ROUND, "sides": sides }),
        targets,
    })
}

fn f64s(v: &[u64]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

/// `median(container) / median(native)` pooled over the pairs, with its
/// paired-round bootstrap CI; the pairs are built (docker, jarvis), so the
/// ratio is jarvis over docker.
fn compare_pairs(pairs: &[(Vec<f64>, Vec<f64>)]) -> Option<Comparison> {
    let p: Vec<Pair> = pairs
        .iter()
        .map(|(native, container)| Pair { native, container })
        .collect();
    compare(&p)
}

fn ci_text(c: Option<&Comparison>) -> String {
    match c.and_then(|c| c.ci) {
        Some((lo, hi)) => format!("{lo:.3} to {hi:.3}"),
        None => "-".into(),
    }
}

// ---------------------------------------------------------------------------
// round trip through a published port

/// A static TCP echo server (`echo PORT`): one connection at a time, echoes
/// until EOF; exits on SIGTERM.
fn echo_server(dir: &Path) -> Res<PathBuf> {
    let src = dir.join("tcp-echo.c");
    fs::write(
        &src,
        r#"#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>
static void bye(int sig) { (void)sig; _exit(0); }
int main(int argc, char **argv) {
    signal(SIGTERM, bye);
    int one = 1, s = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons(atoi(argc > 1 ? argv[1] : "7"));
    if (bind(s, (struct sockaddr *)&a, sizeof a) != 0 || listen(s, 128) != 0) return 1;
    char b[4096];
    for (;;) {
        int c = accept(s, 0, 0);
        if (c < 0) continue;
        setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        for (;;) {
            ssize_t n = read(c, b, sizeof b);
            if (n <= 0 || write(c, b, n) != n) break;
        }
        close(c);
    }
}
"#,
    )?;
    let bin = dir.join("tcp-echo");
    run_tool(
        Command::new("cc")
            .args(["-static", "-O2", "-o"])
            .arg(&bin)
            .arg(&src),
    )?;
    Ok(bin)
}

/// One request on a new connection: connect, 64 bytes out, 64 back, close.
fn rtt_new_connection(addr: SocketAddr, msg: &[u8]) -> Res<u64> {
    let mut buf = [0u8; MESSAGE];
    let t = Instant::now();
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_nodelay(true)?;
    s.write_all(msg)?;
    s.read_exact(&mut buf)?;
    drop(s);
    let ns = elapsed_ns(t);
    if buf != msg {
        return Err(format!("{addr}: the echo differs").into());
    }
    Ok(ns)
}

/// `n` round trips on one connection, each timed.
fn rtt_one_connection(addr: SocketAddr, msg: &[u8], n: usize) -> Res<Vec<u64>> {
    let mut buf = [0u8; MESSAGE];
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        s.write_all(msg)?;
        s.read_exact(&mut buf)?;
        out.push(elapsed_ns(t));
        if buf != msg {
            return Err(format!("{addr}: the echo differs").into());
        }
    }
    Ok(out)
}

/// Until an echo comes back from `addr` (a server may still be starting).
fn until_echo(addr: SocketAddr) -> Res<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let msg = [b'x'; MESSAGE];
    loop {
        match rtt_new_connection(addr, &msg) {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() > deadline => {
                return Err(format!("no echo from {addr} in 20 s: {e}").into())
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// The echo server running on both sides, published, and the addresses
/// the client uses: `(index into RTT_TARGETS, address)`.
struct Echoes {
    series: Vec<(usize, SocketAddr)>,
    /// docker-proxy command lines while the docker echo container runs.
    proxy: Vec<String>,
    /// Per docker address: whether docker-proxy holds the server end of a
    /// connection to it (else the kernel DNATs it to the container).
    via_proxy: Vec<(String, bool)>,
}

/// Whether a connection to `addr` is accepted by docker-proxy in this
/// namespace: with it open, a docker-proxy socket has `addr`'s port as its
/// local port (a DNATed connection has its server end in the container).
fn served_by_proxy(addr: SocketAddr) -> Res<bool> {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    let local = s.local_addr()?;
    let out = run_tool(Command::new("ss").args([
        "-Htnp",
        "state",
        "established",
        "sport",
        "=",
        &format!(":{}", addr.port()),
    ]))?;
    drop(s);
    Ok(out
        .lines()
        .any(|l| l.contains("docker-proxy") && l.contains(&format!(":{}", local.port()))))
}

impl Echoes {
    fn start(d: &mut Daemon, dk: Option<&Dockerd>, echo: &Path) -> Res<Echoes> {
        fs::write(
            d.units.join("echo.toml"),
            unit_text(
                &format!(r#"["/echo", "{ECHO_PORT}"]"#),
                &format!(
                    "network = \"bridge\"\nports = [\"{JARVIS_PORT}:{ECHO_PORT}\"]\nvolumes = [\"{}:/echo:ro\"]",
                    echo.display()
                ),
            ) + &format!("\n[resources]\ncpuset = \"{RTT_CPU}\"\n"),
        )?;
        d.ctl(&["up", "--wait", "--timeout", "60s"])?;
        if let Some(dk) = dk {
            dk.cli(&[
                "run",
                "-d",
                "--name",
                "echo",
                "-p",
                &format!("{DOCKER_PORT}:{ECHO_PORT}"),
                "--cpuset-cpus",
                &RTT_CPU.to_string(),
                "-v",
                &format!("{}:/echo:ro", echo.display()),
                "busybox:local",
                "/echo",
                &ECHO_PORT.to_string(),
            ])?;
        }
        let series: Vec<(usize, SocketAddr)> = RTT_TARGETS
            .iter()
            .enumerate()
            .filter(|(_, (side, _))| *side == "jarvis" || dk.is_some())
            .map(|(k, (side, ip))| {
                let port = if *side == "jarvis" {
                    JARVIS_PORT
                } else {
                    DOCKER_PORT
                };
                (k, format!("{ip}:{port}").parse().expect("an address"))
            })
            .collect();
        for (_, a) in &series {
            until_echo(*a)?;
        }
        let proxy = processes()
            .iter()
            .filter(|p| p.comm == "docker-proxy")
            .map(|p| p.cmdline.trim().to_string())
            .collect();
        let mut via_proxy = Vec::new();
        for (k, a) in &series {
            if RTT_TARGETS[*k].0 == "docker" {
                via_proxy.push((a.ip().to_string(), served_by_proxy(*a)?));
            }
        }
        Ok(Echoes {
            series,
            proxy,
            via_proxy,
        })
    }
}

/// The calling thread on one CPU until dropped.
struct PinnedThread(nix::sched::CpuSet);

impl PinnedThread {
    fn to(cpu: usize) -> Res<PinnedThread> {
        let this = nix::unistd::Pid::from_raw(0);
        let before = nix::sched::sched_getaffinity(this)?;
        let mut one = nix::sched::CpuSet::new();
        one.set(cpu)?;
        nix::sched::sched_setaffinity(this, &one)?;
        Ok(PinnedThread(before))
    }
}

impl Drop for PinnedThread {
    fn drop(&mut self) {
        let _ = nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &self.0);
    }
}

fn bench_rtt(
    d: &mut Daemon,
    echoes: &Echoes,
    rounds: usize,
    (per_new, per_conn): (usize, usize),
) -> Res<Section> {
    let (series, proxy) = (&echoes.series, &echoes.proxy);
    progress!(
        "network round trip: {rounds} rounds (+1 warm-up) of {per_new} new connections and {per_conn} round trips on one \
         connection per series, {} series; docker-proxy: {}",
        series.len(),
        if proxy.is_empty() { "none".into() } else { proxy.join(" | ") }
    );
    let msg: Vec<u8> = (0..MESSAGE).map(|i| b'a' + (i % 26) as u8).collect();
    let _pinned = PinnedThread::to(RTT_CPU)?;
    // [mode][series][round] -> samples; mode 0: new connection, 1: one connection.
    let mut s: [Vec<Vec<Vec<u64>>>; 2] = [vec![vec![]; 4], vec![vec![]; 4]];
    let started = Instant::now();
    for r in 0..=rounds {
        for k in 0..series.len() {
            let (idx, addr) = series[(r + k) % series.len()];
            let mut new = Vec::with_capacity(per_new);
            for _ in 0..per_new {
                new.push(rtt_new_connection(addr, &msg)?);
            }
            let one = rtt_one_connection(addr, &msg, per_conn)?;
            if r > 0 {
                s[0][idx].push(new);
                s[1][idx].push(one);
            }
        }
        d.check_alive()?;
        if r > 0 && (r % 5 == 0 || r == rounds) {
            let med: Vec<String> = series
                .iter()
                .map(|(i, a)| {
                    format!(
                        "{} {a}: {} / {} µs",
                        RTT_TARGETS[*i].0,
                        median_of(&s[0][*i].concat()) / 1000,
                        median_of(&s[1][*i].concat()) / 1000
                    )
                })
                .collect();
            progress!(
                "network round trip: round {r}/{rounds} ({:.1} s), medians new connection / one connection: {}",
                started.elapsed().as_secs_f64(),
                med.join(", ")
            );
        }
    }
    let mut md = String::new();
    let _ = writeln!(md, "### round trip through a published port\n");
    let _ = writeln!(
        md,
        "The server: a static TCP echo server (C, `cc -static`, one connection at a time, `TCP_NODELAY`) bound into \
         each container at `/echo`, listening on {ECHO_PORT}; both servers (jarvis `cpuset`, docker `--cpuset-cpus`) \
         and the client thread run on CPU {RTT_CPU}. jarvis: a unit with `network = \"bridge\"`, \
         `ports = [\"{JARVIS_PORT}:{ECHO_PORT}\"]` (nftables DNAT in jarvis's `inet jarvis` table, for 127.0.0.1 too: \
         `route_localnet` on the bridge and masquerade). docker: `docker run -d -p {DOCKER_PORT}:{ECHO_PORT}` on the \
         default bridge: traffic to 127.0.0.1 goes through `docker-proxy` (docker's iptables rule in OUTPUT skips \
         127.0.0.0/8, so the userland proxy listening on the port accepts it and opens its own connection to the \
         container); traffic to the namespace's own address {NS_ADDR} is DNATed by docker's iptables rule (OUTPUT, \
         `--dst-type LOCAL`) straight to the container, a kernel path like jarvis's. The client is this process, in \
         the same namespace, {MESSAGE}-byte requests, sequential. Two modes: **new connection** per request (connect, \
         write, read the echo, close: timed from connect to the echo), {per_new} per series per round; **one \
         connection**, {per_conn} round trips per series per round (each write + read timed). {rounds} rounds after \
         one warm-up round, the four series in rotating order within each round. Times in µs; ratio = jarvis median \
         / docker median to the same kind of address, 95% CI from the paired-round bootstrap.\n"
    );
    let _ = writeln!(
        md,
        "| mode | side | address | n | median | p95 | p99 | max | ratio jarvis / docker | 95% CI |"
    );
    let _ = writeln!(
        md,
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
    );
    let us = |ns: u64| format!("{:.1}", ns as f64 / 1e3);
    let mut targets = Vec::new();
    let mut json_modes = serde_json::Map::new();
    for (mode, mode_name) in ["new connection", "one connection"].iter().enumerate() {
        let mut jm = serde_json::Map::new();
        for (k, (side, ip)) in RTT_TARGETS.iter().enumerate() {
            let all = s[mode][k].concat();
            let Some(sum) = Summary::of(&all) else {
                let _ = writeln!(
                    md,
                    "| {mode_name} | {side} | {ip} | - | - | - | - | - | not run | - |"
                );
                continue;
            };
            // jarvis rows carry the comparison with docker to the same address.
            let peer = k + 2;
            let c = (k < 2 && !s[mode][peer].is_empty()).then(|| {
                let pairs: Vec<(Vec<f64>, Vec<f64>)> = s[mode][peer]
                    .iter()
                    .zip(&s[mode][k])
                    .map(|(dkr, jr)| (f64s(dkr), f64s(jr)))
                    .collect();
                compare_pairs(&pairs)
            });
            let c = c.flatten();
            let _ = writeln!(
                md,
                "| {mode_name} | {side} | {}{ip}:{} | {} | {} | {} | {} | {} | {} | {} |",
                if k % 2 == 0 { "" } else { "own address " },
                if *side == "jarvis" {
                    JARVIS_PORT
                } else {
                    DOCKER_PORT
                },
                sum.n,
                us(sum.p50),
                us(sum.p95),
                us(sum.p99),
                us(sum.max),
                match &c {
                    Some(c) => format!("{:.3}×", c.ratio),
                    None if k >= 2 => "1.00×".into(),
                    None => "-".into(),
                },
                ci_text(c.as_ref())
            );
            let dsum = if k < 2 {
                Summary::of(&s[mode][peer].concat())
            } else {
                None
            };
            if let (Some(c), Some(dsum)) = (&c, dsum) {
                targets.push(Target {
                    what: match (mode, k) {
                        (0, 0) => "published-port round trip, new connection each, to 127.0.0.1 (jarvis DNAT vs docker-proxy), median ratio",
                        (0, _) => "published-port round trip, new connection each, to the namespace's own address (both DNAT), median ratio",
                        (_, 0) => "published-port round trip, one connection, to 127.0.0.1 (jarvis DNAT vs docker-proxy), median ratio",
                        _ => "published-port round trip, one connection, to the namespace's own address (both DNAT), median ratio",
                    },
                    limit: format!("≤ {TARGET_RTT_RATIO:.1}×"),
                    measured: format!(
                        "{:.3}× ({} vs {} µs; 95% CI {})",
                        c.ratio,
                        us(sum.p50),
                        us(dsum.p50),
                        ci_text(Some(c))
                    ),
                    pass: c.ratio <= TARGET_RTT_RATIO,
                });
            }
            jm.insert(
                format!("{side} {ip}"),
                json!({
                    "summary": sum.json(),
                    "ratio_vs_docker": c.map(|c| c.ratio),
                    "ci95": c.and_then(|c| c.ci),
                    "rounds_ns": s[mode][k],
                }),
            );
        }
        json_modes.insert(mode_name.to_string(), Value::Object(jm));
    }
    let _ = writeln!(
        md,
        "\nRatios here are of the medians pooled over the rounds (`jarvis-benchstats`' `compare`); the medians in the \
         table are nearest-rank. docker-proxy processes while the docker echo container ran: {}. Checked with `ss` \
         on an open connection, docker-proxy held the server end for: {}.",
        if proxy.is_empty() { "none".to_string() } else { format!("`{}`", proxy.join("`, `")) },
        echoes
            .via_proxy
            .iter()
            .map(|(ip, p)| format!("{ip}: {}", if *p { "yes (userland proxy)" } else { "no (kernel DNAT)" }))
            .collect::<Vec<_>>()
            .join("; ")
    );
    Ok(Section {
        markdown: md,
        json: json!({
            "rounds": rounds, "new_connection_per_round": per_new, "one_connection_per_round": per_conn,
            "message_bytes": MESSAGE, "modes": json_modes, "docker_proxy": proxy,
            "docker_via_proxy": echoes.via_proxy,
        }),
        targets,
    })
}

// ---------------------------------------------------------------------------
// compose: 20 bridged containers on 3 networks

/// The networks of service `i` (1-based): one of the three in turn, and
/// every fifth also on the next one.
fn networks_of(i: usize) -> Vec<&'static str> {
    let mut n = vec![NETWORKS[i % 3]];
    if i.is_multiple_of(5) {
        n.push(NETWORKS[(i + 1) % 3]);
    }
    n
}

fn compose_unit(i: usize) -> String {
    let nets: Vec<String> = networks_of(i).iter().map(|n| format!("{n:?}")).collect();
    unit_text(
        r#"["sleep", "100000"]"#,
        &format!("network = \"bridge\"\nnetworks = [{}]", nets.join(", ")),
    )
}

fn compose_file() -> String {
    let mut y = String::from("version: \"2.4\"\nservices:\n");
    for i in 1..=SERVICES {
        let _ = write!(
            y,
            "  svc-{i:02}:\n    image: busybox:local\n    command: [\"sleep\", \"100000\"]\n    networks: [{}]\n",
            networks_of(i).join(", ")
        );
    }
    y.push_str("networks:\n");
    for n in NETWORKS {
        let _ = writeln!(y, "  {n}: {{}}");
    }
    y
}

#[derive(Clone, Copy)]
struct UpDown {
    up_ns: u64,
    down_ns: u64,
}

fn jarvis_up_down(d: &mut Daemon) -> Res<UpDown> {
    let t = Instant::now();
    d.ctl(&["up", "--wait", "--timeout", "60s"])?;
    let up_ns = elapsed_ns(t);
    let status: Value = serde_json::from_str(&d.ctl(&["status", "--json"])?)?;
    let units = status["units"].as_array().ok_or("status without units")?;
    let running = units.iter().filter(|u| u["state"] == "running").count();
    let nets = links_named(&["jarvis"])?.len();
    if running != SERVICES || nets != NETWORKS.len() {
        return Err(format!(
            "after up --wait: {running} of {SERVICES} units running, {nets} jarvis bridges"
        )
        .into());
    }
    let t = Instant::now();
    d.ctl(&["down"])?;
    let down_ns = elapsed_ns(t);
    let procs = Leftovers::find(&d.cgroup_parent).processes;
    let links = links_named(&["jarvis", "jv"])?;
    if procs > 0 || !links.is_empty() {
        return Err(format!("after down: {procs} process(es), links {links:?} left").into());
    }
    d.check_alive()?;
    Ok(UpDown { up_ns, down_ns })
}

fn compose_up_down(dk: &Dockerd, file: &Path) -> Res<UpDown> {
    let compose = |args: &[&str]| {
        run_tool(
            Command::new("docker-compose")
                .env("DOCKER_HOST", dk.host())
                .arg("-f")
                .arg(file)
                .args(["-p", PROJECT])
                .args(args),
        )
    };
    let label = format!("label=com.docker.compose.project={PROJECT}");
    let count = |args: &[&str]| -> Res<usize> {
        let mut a = args.to_vec();
        a.extend(["--filter", &label]);
        Ok(dk.cli(&a)?.split_whitespace().count())
    };
    let t = Instant::now();
    compose(&["up", "-d"])?;
    let up_ns = elapsed_ns(t);
    let (running, nets) = (count(&["ps", "-q"])?, count(&["network", "ls", "-q"])?);
    if running != SERVICES || nets != NETWORKS.len() {
        return Err(format!(
            "after up -d: {running} of {SERVICES} containers running, {nets} networks"
        )
        .into());
    }
    let t = Instant::now();
    compose(&["down", "-t", "1"])?;
    let down_ns = elapsed_ns(t);
    let (left, nets) = (count(&["ps", "-aq"])?, count(&["network", "ls", "-q"])?);
    if left > 0 || nets > 0 {
        return Err(format!("after down: {left} container(s), {nets} network(s) left").into());
    }
    Ok(UpDown { up_ns, down_ns })
}

fn bench_compose(
    image: &BusyboxImage,
    dk: Option<&Dockerd>,
    dir: &Path,
    rounds: usize,
    compose_version: &str,
) -> Res<Section> {
    let dk = dk.filter(|_| !compose_version.ends_with("missing"));
    let file = dir.join("docker-compose.yml");
    fs::write(&file, compose_file())?;
    let mut d = jarvisd_with_image("net-compose", image)?;
    for i in 1..=SERVICES {
        fs::write(d.units.join(format!("svc-{i:02}.toml")), compose_unit(i))?;
    }
    progress!("network compose: warm-up round (jarvis, then docker-compose)");
    let r = (|| -> Res<_> {
        let warm_j = jarvis_up_down(&mut d)?;
        let warm_c = dk.map(|dk| compose_up_down(dk, &file)).transpose()?;
        let (mut js, mut cs) = (Vec::new(), Vec::new());
        for r in 0..rounds {
            let jarvis_first = r % 2 == 0;
            for side in 0..2 {
                if (side == 0) == jarvis_first {
                    js.push(jarvis_up_down(&mut d)?);
                } else if let Some(dk) = dk {
                    cs.push(compose_up_down(dk, &file)?);
                }
            }
            progress!(
                "network compose: round {}/{rounds}: jarvis up {} ms, down {} ms; docker-compose up {} ms, down {} ms",
                r + 1,
                ms(js[r].up_ns),
                ms(js[r].down_ns),
                cs.get(r).map_or("-".into(), |x: &UpDown| ms(x.up_ns)),
                cs.get(r).map_or("-".into(), |x: &UpDown| ms(x.down_ns)),
            );
        }
        Ok((warm_j, warm_c, js, cs))
    })();
    let left = d.stop();
    let (warm_j, warm_c, js, cs) = r?;
    let left = left?;
    let mounts = mounts_under(d.dir.path());

    let col =
        |v: &[UpDown], f: fn(&UpDown) -> u64| Summary::of(&v.iter().map(f).collect::<Vec<_>>());
    let (ju, jd) = (col(&js, |r| r.up_ns), col(&js, |r| r.down_ns));
    let (cu, cd) = (col(&cs, |r| r.up_ns), col(&cs, |r| r.down_ns));
    let mut md = String::new();
    let _ = writeln!(
        md,
        "### compose: {SERVICES} bridged containers on {} networks, `jarvisctl up --wait`/`down` vs `docker-compose up -d`/`down -t 1`\n",
        NETWORKS.len()
    );
    let _ = writeln!(
        md,
        "jarvis: {SERVICES} container units `svc-01`..`svc-{SERVICES}` (`sleep 100000` on `busybox:local`, `network = \"bridge\"`, \
         restart `never`, `[stop] timeout = \"1s\"`); service i joins network {} [i mod 3], and every fifth also the next one \
         ({} endpoints in all). docker-compose ({compose_version}): the same {SERVICES} services and networks (`version: \"2.4\"`, \
         `networks: [...]` per service, 3 top-level networks, which `up` creates and `down` removes). jarvis makes its \
         networks' bridges on first use and removes them when their last unit stops. {rounds} timed rounds, the side that \
         goes first alternating (round 1 jarvis first), after one untimed warm-up round per side. Each round: up (timed), \
         check that all {SERVICES} run on {} networks (jarvis: {} bridges in the namespace), down (timed), check that nothing \
         is left (jarvis: no process, no bridge or veth; docker: no container or network of the project). Wall time of the \
         client command, ms.\n",
        NETWORKS.map(|n| format!("`{n}`")).join(", "),
        (1..=SERVICES).map(|i| networks_of(i).len()).sum::<usize>(),
        NETWORKS.len(),
        NETWORKS.len(),
    );
    let _ = writeln!(
        md,
        "| round | jarvis `up --wait` | `docker-compose up -d` | jarvis `down` | `docker-compose down -t 1` |"
    );
    let _ = writeln!(md, "| --- | ---: | ---: | ---: | ---: |");
    let dash = |r: Option<&UpDown>, f: fn(&UpDown) -> u64| r.map_or("-".to_string(), |r| ms(f(r)));
    let _ = writeln!(
        md,
        "| warm-up (not counted) | {} | {} | {} | {} |",
        ms(warm_j.up_ns),
        dash(warm_c.as_ref(), |r| r.up_ns),
        ms(warm_j.down_ns),
        dash(warm_c.as_ref(), |r| r.down_ns)
    );
    for r in 0..rounds {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} |",
            r + 1,
            dash(js.get(r), |r| r.up_ns),
            dash(cs.get(r), |r| r.up_ns),
            dash(js.get(r), |r| r.down_ns),
            dash(cs.get(r), |r| r.down_ns)
        );
    }
    let ratio_of = |a: Option<Summary>, b: Option<Summary>| match (a, b) {
        (Some(a), Some(b)) => format!("{:.3}×", a.p50 as f64 / b.p50.max(1) as f64),
        _ => "-".into(),
    };
    let med = |s: Option<Summary>| s.map_or("-".into(), |s| ms(s.p50));
    let _ = writeln!(
        md,
        "\nMedians: jarvis `up --wait` {} ms vs `docker-compose up -d` {} ms: **{}**; jarvis `down` {} ms vs \
         `docker-compose down -t 1` {} ms: {}. jarvisd after SIGTERM: {}; mounts left under its state dir: {mounts}.",
        med(ju),
        med(cu),
        ratio_of(ju, cu),
        med(jd),
        med(cd),
        ratio_of(jd, cd),
        left.describe()
    );
    let rj = |v: &[UpDown]| {
        v.iter()
            .map(|r| json!({ "up_ns": r.up_ns, "down_ns": r.down_ns }))
            .collect::<Vec<_>>()
    };
    Ok(Section {
        markdown: md,
        json: json!({
            "services": SERVICES, "networks": NETWORKS, "rounds": rounds, "docker_compose": compose_version,
            "warmup": { "jarvis": rj(&[warm_j]), "compose": rj(warm_c.as_slice()) },
            "jarvis": rj(&js), "compose": rj(&cs),
            "up_ratio_p50": match (ju, cu) { (Some(a), Some(b)) => json!(a.p50 as f64 / b.p50.max(1) as f64), _ => Value::Null },
            "down_ratio_p50": match (jd, cd) { (Some(a), Some(b)) => json!(a.p50 as f64 / b.p50.max(1) as f64), _ => Value::Null },
            "leftovers": left.json(), "mounts_left": mounts,
        }),
        targets: vec![],
    })
}
