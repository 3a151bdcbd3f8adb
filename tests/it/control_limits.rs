//! The control socket under abuse: more connections than jarvisd takes,
//! connections that send half a message or announce 8 MiB and send nothing,
//! a jarvisctl whose daemon never answers, and a socket-group member asking
//! jarvisd to read a file it could not read itself.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::harness::*;

/// Raises this test process's descriptor limit to its hard limit, so it
/// can hold thousands of connections.
fn raise_nofile() -> u64 {
    let (_, hard) =
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap();
    nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, hard, hard).unwrap();
    hard
}

fn open_fds(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// `/proc/PID/status`'s figure for `key` (kB) in bytes.
fn proc_bytes(pid: i32, key: &str) -> u64 {
    let v = proc_status(pid, key);
    v.trim_end_matches("kB").trim().parse::<u64>().unwrap() * 1024
}

fn hello_frame() -> Vec<u8> {
    let mut buf = Vec::new();
    jarvis_proto::write_frame(
        &mut buf,
        &jarvis_proto::Hello {
            version: jarvis_proto::PROTOCOL_VERSION,
            agent: "control-limits test".into(),
        },
    )
    .unwrap();
    buf
}

/// Whatever `s` has received, waiting at most `wait` for the first byte,
/// then reading until the peer closes or is quiet for 200 ms. `None`: the
/// connection is still open and said nothing.
fn received(s: &mut UnixStream, wait: Duration) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    s.set_read_timeout(Some(wait)).unwrap();
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Some(out),
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                s.set_read_timeout(Some(Duration::from_millis(200)))
                    .unwrap();
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return if out.is_empty() { None } else { Some(out) };
            }
            // A reset after the refusal was read: what came is the answer.
            Err(_) => return Some(out),
        }
    }
}

#[test]
fn connections_over_the_cap_are_refused_and_status_answers_once_they_go() {
    if !root() {
        return;
    }
    const HELD: usize = 3000;
    assert!(raise_nofile() as usize > HELD + 500, "the test's own limit");
    // Idle connections are not cut at their deadline while the test looks.
    let j = Jarvis::start_full(
        &[("s", "[native]\ncommand = [\"sleep\", \"1000\"]\n")],
        &[],
        vec![("JARVISD_REQUEST_DEADLINE_MS".into(), "120000".into())],
    );
    j.running("s");
    let pid = j.daemon_pid();
    let before = open_fds(pid);

    let mut conns: Vec<UnixStream> = (0..HELD)
        .map(|i| {
            UnixStream::connect(&j.socket)
                .unwrap_or_else(|e| panic!("connection {i}: {e}\n{}", j.daemon_log()))
        })
        .collect();
    // Every connection has been taken or refused once jarvisd's descriptor
    // count stops moving.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = 0;
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let now = open_fds(pid);
        if now == last || Instant::now() > deadline {
            break;
        }
        last = now;
    }
    let mut refused = 0;
    let mut idle = 0;
    for s in &mut conns {
        match received(s, Duration::from_millis(1)) {
            None => idle += 1,
            Some(bytes) => {
                let text = String::from_utf8_lossy(&bytes);
                assert!(
                    text.contains("connection limit"),
                    "an over-cap connection is told why: {text:?}"
                );
                refused += 1;
            }
        }
    }
    assert_eq!(refused + idle, HELD);
    assert!(
        idle > 1100,
        "the cap leaves room for 1,000 status clients and 100 followers: {idle} held"
    );
    assert!(
        refused > 0 && idle <= 2048,
        "{HELD} connections: {idle} held and {refused} refused; jarvisd has {} descriptors",
        open_fds(pid)
    );

    // At the cap, jarvisctl says so.
    let out = j.ctl(&["status"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("connection limit"),
        "status at the cap: {err}"
    );

    drop(conns);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = j.ctl(&["status", "--json"]);
        if out.status.success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "status does not answer after the connections closed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            j.daemon_log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(j.unit("s")["state"], "running");
    // Nothing of them is left behind.
    let deadline = Instant::now() + Duration::from_secs(10);
    while open_fds(pid) > before + 10 {
        assert!(
            Instant::now() < deadline,
            "jarvisd holds {} descriptors, {before} before the connections",
            open_fds(pid)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_half_sent_request_is_cut_at_the_deadline() {
    if !root() {
        return;
    }
    let j = Jarvis::start_full(
        &[],
        &[],
        vec![("JARVISD_REQUEST_DEADLINE_MS".into(), "700".into())],
    );
    let started = Instant::now();
    // One says nothing at all.
    let mut silent = UnixStream::connect(&j.socket).unwrap();
    // One greets, then sends 10 bytes of a 100-byte request.
    let mut half = UnixStream::connect(&j.socket).unwrap();
    half.write_all(&hello_frame()).unwrap();
    let mut len = [0u8; 4];
    half.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    half.read_exact(&mut len).unwrap();
    let mut greeting = vec![0u8; u32::from_be_bytes(len) as usize];
    half.read_exact(&mut greeting).unwrap();
    half.write_all(&100u32.to_be_bytes()).unwrap();
    half.write_all(b"{\"request\"").unwrap();

    // Meanwhile others are served.
    j.ok(&["status"]);
    for (name, s) in [("silent", &mut silent), ("half", &mut half)] {
        let got = received(s, Duration::from_secs(10));
        let waited = started.elapsed();
        assert!(
            got.is_some(),
            "the {name} connection is still open after {waited:?}\n{}",
            j.daemon_log()
        );
        assert!(
            waited >= Duration::from_millis(600),
            "the {name} connection was cut before its deadline ({waited:?})"
        );
        if name == "half" {
            let text = String::from_utf8_lossy(got.as_ref().unwrap()).into_owned();
            assert!(
                text.is_empty() || text.contains("no request within"),
                "what a connection cut at its deadline is told: {text:?}"
            );
        }
    }
    // A request that comes in time is answered as before.
    j.ok(&["status"]);
}

#[test]
fn announced_frames_cost_nothing_until_their_bytes_come() {
    if !root() {
        return;
    }
    raise_nofile();
    let j = Jarvis::start(&[]);
    let pid = j.daemon_pid();
    j.ok(&["status"]);
    let rss = proc_bytes(pid, "VmRSS");
    let data = proc_bytes(pid, "VmData");
    let big = (jarvis_proto::MAX_FRAME as u32).to_be_bytes();
    let mut conns = Vec::new();
    for _ in 0..100 {
        // As the greeting, and as the request after a real greeting.
        let mut s = UnixStream::connect(&j.socket).unwrap();
        s.write_all(&big).unwrap();
        conns.push(s);
        let mut s = UnixStream::connect(&j.socket).unwrap();
        s.write_all(&hello_frame()).unwrap();
        s.write_all(&big).unwrap();
        s.write_all(b"{").unwrap();
        conns.push(s);
    }
    // Let jarvisd read what came.
    std::thread::sleep(Duration::from_millis(1500));
    j.ok(&["status"]);
    let rss_after = proc_bytes(pid, "VmRSS");
    let data_after = proc_bytes(pid, "VmData");
    let mb = |b: u64| b as f64 / 1e6;
    eprintln!(
        "200 connections that announced 8 MiB: RSS {:.1} MB -> {:.1} MB, data {:.1} MB -> {:.1} MB",
        mb(rss),
        mb(rss_after),
        mb(data),
        mb(data_after)
    );
    assert!(
        rss_after < rss + 100_000_000,
        "200 connections that announced 8 MiB: RSS {:.1} MB -> {:.1} MB",
        mb(rss),
        mb(rss_after)
    );
    assert!(
        data_after < data + 200_000_000,
        "200 connections that announced 8 MiB: data {:.1} MB -> {:.1} MB",
        mb(data),
        mb(data_after)
    );
    drop(conns);
}

/// A socket that accepts connections and never answers, like a hung jarvisd.
fn mute_socket(dir: &Path) -> (PathBuf, std::thread::JoinHandle<()>) {
    let path = dir.join("mute.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let t = std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming().take(8) {
            held.push(s);
        }
        std::thread::sleep(Duration::from_secs(60));
    });
    (path, t)
}

fn jarvisctl(socket: &Path, args: &[&str], env: &[(&str, &str)]) -> (Output, Duration) {
    let started = Instant::now();
    let out = Command::new(&*JARVISCTL)
        .arg("--socket")
        .arg(socket)
        .args(args)
        .env_remove("JARVISCTL_TIMEOUT")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("run jarvisctl");
    (out, started.elapsed())
}

#[test]
fn jarvisctl_gives_up_on_a_daemon_that_never_answers() {
    let dir = tempfile::tempdir().unwrap();
    let (socket, _mute) = mute_socket(dir.path());
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case; 3] = [
        (&["--request-timeout", "1s", "status"], &[], "1s"),
        (&["status", "--request-timeout", "1500ms"], &[], "1s 500ms"),
        (&["generations"], &[("JARVISCTL_TIMEOUT", "1s")], "1s"),
    ];
    for (args, env, shown) in cases {
        let (out, took) = jarvisctl(&socket, args, env);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}: {out:?}");
        assert!(
            took < Duration::from_secs(5),
            "{args:?} gave up after {took:?}"
        );
        assert!(
            err.contains(&format!(
                "jarvisctl: no answer from jarvisd at {} within {shown} (is it running? raise --request-timeout",
                socket.display()
            )),
            "{args:?}: {err}"
        );
    }
    // The wait timeouts of up, apply and rollback are still their own.
    let (out, took) = jarvisctl(
        &socket,
        &["--request-timeout", "1s", "up", "--wait", "--timeout", "2m"],
        &[],
    );
    assert!(!out.status.success() && took < Duration::from_secs(5));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no answer from jarvisd"),
        "{out:?}"
    );
}

/// A user and group made for one test, removed when it ends.
struct TestUser {
    user: String,
    group: String,
    extra: String,
}

impl TestUser {
    fn new() -> TestUser {
        let n = unique();
        let tag = format!("{}{n}", std::process::id() % 100_000);
        let u = TestUser {
            user: format!("jvu{tag}"),
            group: format!("jvg{tag}"),
            extra: format!("jvx{tag}"),
        };
        for g in [&u.group, &u.extra] {
            let st = Command::new("groupadd").arg(g).status().unwrap();
            assert!(st.success(), "groupadd {g}");
        }
        let st = Command::new("useradd")
            .args(["-M", "-N", "-s", "/usr/sbin/nologin", "-g", &u.group, "-G"])
            .arg(&u.extra)
            .arg(&u.user)
            .status()
            .unwrap();
        assert!(st.success(), "useradd {}", u.user);
        u
    }

    fn gid(name: &str) -> u32 {
        let out = Command::new("getent")
            .args(["group", name])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .split(':')
            .nth(2)
            .unwrap()
            .parse()
            .unwrap()
    }

    /// jarvisctl as this user, with its groups from /etc/group.
    fn ctl(&self, j: &Jarvis, args: &[&str]) -> Output {
        Command::new("setpriv")
            .arg(format!("--reuid={}", self.user))
            .arg(format!("--regid={}", self.group))
            .arg("--init-groups")
            .arg("--")
            .arg(&*JARVISCTL)
            .arg("--socket")
            .arg(&j.socket)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("setpriv jarvisctl")
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.user).status();
        for g in [&self.group, &self.extra] {
            let _ = Command::new("groupdel").arg(g).status();
        }
    }
}

fn chown(path: &Path, gid: u32) {
    nix::unistd::chown(path, Some(nix::unistd::Uid::from_raw(0)), Some(gid.into())).unwrap();
}

fn mode(path: &Path, m: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(m)).unwrap();
}

#[test]
fn a_socket_group_member_has_jarvisd_read_only_what_it_could_read() {
    if !root() {
        return;
    }
    let who = TestUser::new();
    let j = Jarvis::start_with(&[], &["--socket-group", &who.group]);
    let layout = j.dir.path().join("layout");
    crate::containers::busybox_layout(&layout);
    // umoci writes its blobs for root alone: make the layout the user's to read.
    let st = Command::new("chmod")
        .arg("-R")
        .arg("a+rX")
        .arg(&layout)
        .status()
        .unwrap();
    assert!(st.success());
    let tar = j.dir.path().join("image.tar");
    let st = Command::new("tar")
        .arg("-C")
        .arg(&layout)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    let tar_s = tar.to_str().unwrap();

    // Root's own file, 0600: refused, and jarvisd says why.
    chown(&tar, 0);
    mode(&tar, 0o600);
    let out = who.ctl(&j, &["image", "import", tar_s, "--tag", "mine:1"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{out:?}");
    assert!(
        err.contains(tar_s) && err.contains("cannot read"),
        "the refusal names the path and why: {err}"
    );
    assert!(
        !j.ok(&["image", "ls"]).contains("mine"),
        "nothing was imported"
    );
    // Root may import it.
    j.ok(&["image", "import", tar_s, "--tag", "root:1"]);

    // Readable through a supplementary group: imported.
    chown(&tar, TestUser::gid(&who.extra));
    mode(&tar, 0o640);
    let out = who.ctl(&j, &["image", "import", tar_s, "--tag", "mine:2"]);
    assert!(
        out.status.success(),
        "a file the user's group may read: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        j.daemon_log()
    );
    assert!(j.ok(&["image", "ls"]).contains("mine:2"));

    // A layout directory with one blob only root may read: refused.
    let blobs = layout.join("blobs/sha256");
    let blob = std::fs::read_dir(&blobs)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    mode(&blob, 0o600);
    let out = who.ctl(
        &j,
        &[
            "image",
            "import",
            layout.to_str().unwrap(),
            "--tag",
            "mine:3",
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("cannot read") && err.contains("blobs"),
        "{err}"
    );

    // Readable again: the directory imports.
    mode(&blob, 0o644);
    let out = who.ctl(
        &j,
        &[
            "image",
            "import",
            layout.to_str().unwrap(),
            "--tag",
            "mine:3",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // apply --repo of a repository the user can read goes through to the
    // daemon (which, running a units directory, deploys no generations).
    let lab = j.dir.path().join("lab");
    std::fs::create_dir_all(lab.join("units")).unwrap();
    std::fs::write(
        lab.join("units/a.toml"),
        "[native]\ncommand = [\"sleep\", \"1000\"]\n",
    )
    .unwrap();
    for args in [
        &["init", "-q", "-b", "main"][..],
        &["add", "-A"],
        &["commit", "-qm", "v1"],
    ] {
        let out = Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@jarvis.invalid"])
            .args(args)
            .current_dir(&lab)
            .output()
            .expect("git");
        assert!(out.status.success(), "git {args:?}: {out:?}");
    }
    let lab_s = lab.to_str().unwrap();
    let out = who.ctl(&j, &["apply", "--repo", lab_s, "--dry-run"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("jarvisd runs the units directory") && !err.contains("cannot read"),
        "{out:?}\n{}",
        j.daemon_log()
    );
    // One file of its .git only root may read: refused.
    mode(&lab.join(".git/config"), 0o600);
    let out = who.ctl(&j, &["apply", "--repo", lab_s, "--dry-run"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("cannot read") && err.contains(".git/config"),
        "{err}"
    );

    // apply --repo of a directory only root may read: refused before
    // anything is fetched.
    let repo = j.dir.path().join("private-repo");
    std::fs::create_dir(&repo).unwrap();
    mode(&repo, 0o700);
    let out = who.ctl(
        &j,
        &["apply", "--repo", repo.to_str().unwrap(), "--dry-run"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("cannot read") && err.contains("private-repo"),
        "{err}"
    );
}

/// Lines of jarvisd's log about accepting connections failing.
fn accept_failures(j: &Jarvis) -> usize {
    j.daemon_log()
        .lines()
        .filter(|l| l.contains("out of descriptors") || l.contains("accept failed"))
        .count()
}

#[test]
fn out_of_descriptors_jarvisd_says_so_once_and_serves_again_after() {
    if !root() {
        return;
    }
    let j = Jarvis::start(&[]);
    j.ok(&["status"]);
    let pid = j.daemon_pid();
    let prlimit = |soft: &str| {
        let st = Command::new("prlimit")
            .arg("--pid")
            .arg(pid.to_string())
            .arg(format!("--nofile={soft}:"))
            .status()
            .expect("prlimit (util-linux)");
        assert!(st.success());
    };
    let limit = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let soft = limit
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .unwrap()
        .to_string();
    // No descriptor left for a connection: the limit at the lowest free
    // descriptor number.
    let taken: std::collections::BTreeSet<u32> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    let free = (0..).find(|n| !taken.contains(n)).unwrap();
    prlimit(&free.to_string());
    let waiting: Vec<UnixStream> = (0..3)
        .map(|_| {
            let mut s = UnixStream::connect(&j.socket).unwrap();
            s.write_all(&hello_frame()).unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    let failures = accept_failures(&j);
    prlimit(&soft);
    assert_eq!(
        failures,
        1,
        "one line for the episode, not one per try:\n{}",
        j.daemon_log()
    );
    // The connections that waited are served.
    for mut s in waiting {
        let got = received(&mut s, Duration::from_secs(5));
        assert!(
            got.is_some_and(|b| !b.is_empty()),
            "a waiting connection got its hello"
        );
    }
    j.ok(&["status"]);
    assert!(
        j.daemon_log().contains("accepting connections again"),
        "{}",
        j.daemon_log()
    );
}

/// "Max open files" of /proc/PID/limits: (soft, hard).
fn nofile_of(pid: i32) -> (u64, u64) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let nums: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    (nums[0], nums[1])
}

/// jarvisd raises its own soft descriptor limit to serve many clients; the
/// units it starts keep the limit jarvisd was given (as systemd's services
/// do), so programs that `select()` or close every descriptor up to the
/// limit work as they would elsewhere.
#[test]
fn units_keep_the_descriptor_limit_jarvisd_was_given() {
    if !root() {
        return skip(true, "needs root (cgroups)");
    }
    let unit = "[native]\ncommand = [\"sleep\", \"100000\"]\n";
    // The soft limit only: raising the hard one needs CAP_SYS_RESOURCE.
    let (_, hard) =
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap();
    assert!(hard > 512, "the hard descriptor limit here is {hard}");
    let j = Jarvis::start_wrapped(&[("lim", unit)], &["prlimit", "--nofile=512:", "--"]);
    assert_eq!(
        nofile_of(j.daemon_pid()),
        (hard, hard),
        "jarvisd raised its own"
    );
    let pid = j.running("lim")["pid"].as_i64().unwrap() as i32;
    assert_eq!(
        nofile_of(pid),
        (512, hard),
        "the unit keeps jarvisd's given limit"
    );
}

/// One status request on `socket`, decoded.
fn status_on(socket: &Path) -> jarvis_proto::StatusReport {
    let mut s = UnixStream::connect(socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    jarvis_proto::write_frame(
        &mut s,
        &jarvis_proto::Hello {
            version: jarvis_proto::PROTOCOL_VERSION,
            agent: "jarvis-it".into(),
        },
    )
    .unwrap();
    let _: jarvis_proto::Hello = jarvis_proto::read_frame(&mut s).unwrap();
    jarvis_proto::write_frame(&mut s, &jarvis_proto::Request::Status { units: vec![] }).unwrap();
    match jarvis_proto::read_frame(&mut s).unwrap() {
        jarvis_proto::Response::Status(r) => r,
        other => panic!("{other:?}"),
    }
}

/// Callers that ask for the status of all units at once share one answer,
/// and a change is in the very next answer (the shared one is never older
/// than what the loop has done).
#[test]
fn status_callers_at_once_share_an_answer_that_is_never_behind_a_change() {
    if !root() {
        return skip(true, "needs root (cgroups)");
    }
    let unit = "[native]\ncommand = [\"sleep\", \"100000\"]\n";
    let j = Jarvis::start(&[("a", unit), ("b", unit), ("c", unit)]);
    j.ok(&["up", "--wait", "--timeout", "30s"]);
    let socket = j.socket.clone();
    let answers: Vec<jarvis_proto::StatusReport> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..200).map(|_| s.spawn(|| status_on(&socket))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for r in &answers {
        assert_eq!(r.units.len(), 3);
        assert!(
            r.units
                .iter()
                .all(|u| u.state == jarvis_proto::UnitState::Running),
            "{r:?}"
        );
    }
    for _ in 0..5 {
        j.ok(&["stop", "b"]);
        let r = status_on(&j.socket);
        let b = r.units.iter().find(|u| u.name == "b").unwrap();
        assert_eq!(
            b.state,
            jarvis_proto::UnitState::Stopped,
            "right after stop: {b:?}"
        );
        j.ok(&["start", "b"]);
        let r = status_on(&j.socket);
        let b = r.units.iter().find(|u| u.name == "b").unwrap();
        assert_ne!(
            b.state,
            jarvis_proto::UnitState::Stopped,
            "right after start: {b:?}"
        );
    }
}
