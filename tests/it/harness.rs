//! A real jarvisd on temporary directories, driven through the real
//! jarvisctl. Every daemon gets its own cgroup parent so tests run in
//! parallel, and everything it made is torn down when the test ends, even
//! when it fails.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The binaries under test; `JARVISD_BIN` and `JARVISCTL_BIN` point the test
/// binary elsewhere (when it is copied to another machine).
pub static JARVISD: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    std::env::var("JARVISD_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_jarvisd").into())
});
pub static JARVISCTL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    std::env::var("JARVISCTL_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_jarvisctl").into())
});

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Whether this test process can do what the tests need (root); if not,
/// the test is [`skip`]ped (CI runs them as root, so there it fails).
pub fn root() -> bool {
    let root = nix::unistd::geteuid().is_root();
    assert!(
        root || std::env::var_os("JARVIS_TESTS_ALLOW_NONROOT").is_some(),
        "these tests start real cgroups and must run as root \
         (set JARVIS_TESTS_ALLOW_NONROOT=1 to skip them instead)"
    );
    if !root {
        skip(true, "not root (JARVIS_TESTS_ALLOW_NONROOT is set)");
    }
    root
}

/// Says that the calling test cannot run, and why, in the test runner's own
/// output: `SKIPPED: <test>: <reason>` written straight to stderr, which
/// the runner does not capture, so it shows without `--nocapture`. The
/// caller then returns. `ci_provides`: CI installs or builds what is
/// missing (a package, the benchmark workload, root), so under `CI=true` the
/// test panics instead: there a skip would hide a broken setup. Pass false
/// for what a machine may simply lack (a kernel feature, hardware).
pub fn skip(ci_provides: bool, reason: &str) {
    let test = std::thread::current()
        .name()
        .unwrap_or("a test")
        .to_string();
    if ci_provides && ci() {
        panic!("{test}: {reason}; CI provides this, so it must not be skipped there");
    }
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr().lock(), "SKIPPED: {test}: {reason}");
}

/// Whether this runs under CI (`CI=true`, as CI services set it).
pub fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

pub struct Jarvis {
    pub dir: tempfile::TempDir,
    pub units: PathBuf,
    pub state: PathBuf,
    pub socket: PathBuf,
    pub cgroup_parent: String,
    /// More jarvisd arguments and environment, kept for restarts.
    extra_args: Vec<String>,
    extra_env: Vec<(std::ffi::OsString, std::ffi::OsString)>,
    /// The network namespace jarvisd runs in, for tests that make networks.
    pub netns: Option<NetNs>,
    /// A command jarvisd is run under (`prlimit --nofile=…`), kept for
    /// restarts.
    pub wrapper: Vec<String>,
    daemon: Option<Child>,
}

/// A network namespace made for one test, so the host's own network is
/// never touched: held by a `sleep` that `unshare --net` started, with
/// loopback up and a veth pair whose one end holds `ADDR` (the namespace's
/// "own address", like a host's LAN address).
pub struct NetNs {
    holder: Child,
}

impl NetNs {
    /// The namespace's own address.
    pub const ADDR: &'static str = "192.0.2.1";

    pub fn new() -> NetNs {
        let holder = Command::new("unshare")
            .args(["--net", "sleep", "infinity"])
            .stdin(Stdio::null())
            .spawn()
            .expect("unshare --net (util-linux)");
        let ns = NetNs { holder };
        // unshare has execed sleep once the namespace differs from ours.
        let deadline = Instant::now() + Duration::from_secs(5);
        while fs::read_link(ns.path()).ok() == fs::read_link("/proc/self/ns/net").ok() {
            assert!(Instant::now() < deadline, "unshare --net did not start");
            std::thread::sleep(Duration::from_millis(5));
        }
        for cmd in [
            "ip link set lo up",
            "ip link add lan0 type veth peer name lan1",
            "ip addr add 192.0.2.1/24 dev lan0",
            "ip link set lan0 up",
            "ip link set lan1 up",
        ] {
            let out = ns.run(&cmd.split(' ').collect::<Vec<_>>());
            assert!(out.status.success(), "{cmd}: {out:?}");
        }
        ns
    }

    /// `/proc/PID/ns/net` of the holder.
    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/ns/net", self.holder.id()))
    }

    /// Runs `argv` in the namespace (`nsenter --net`).
    pub fn run(&self, argv: &[&str]) -> Output {
        Command::new("nsenter")
            .arg(format!("--net={}", self.path().display()))
            .arg("--")
            .args(argv)
            .stdin(Stdio::null())
            .output()
            .expect("nsenter")
    }

    /// Runs `argv` in the namespace and returns its stdout; panics on failure.
    pub fn ok(&self, argv: &[&str]) -> String {
        let out = self.run(argv);
        assert!(
            out.status.success(),
            "{argv:?} in the test's namespace: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs `f` on a thread that has joined the namespace (sockets it makes
    /// live there).
    pub fn within<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let file = fs::File::open(self.path()).expect("open the netns");
        std::thread::scope(|s| {
            s.spawn(move || {
                nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
                f()
            })
            .join()
            .expect("thread in the netns")
        })
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

impl Jarvis {
    /// Writes `units` (name, TOML) and starts jarvisd on them.
    pub fn start(units: &[(&str, &str)]) -> Jarvis {
        Jarvis::start_with(units, &[])
    }

    /// Like `start`, with more arguments for jarvisd.
    pub fn start_with(units: &[(&str, &str)], args: &[&str]) -> Jarvis {
        Jarvis::start_full(units, args, vec![])
    }

    /// Like `start`, with more arguments and environment for jarvisd.
    pub fn start_full(
        units: &[(&str, &str)],
        args: &[&str],
        env: Vec<(std::ffi::OsString, std::ffi::OsString)>,
    ) -> Jarvis {
        Jarvis::start_in(units, args, env, None)
    }

    /// Like `start_with`, with jarvisd in a network namespace of its own
    /// (`self.netns`), for tests that make bridges, routes and rules.
    pub fn start_in_netns(units: &[(&str, &str)], args: &[&str]) -> Jarvis {
        Jarvis::start_in(units, args, vec![], Some(NetNs::new()))
    }

    fn start_in(
        units: &[(&str, &str)],
        args: &[&str],
        env: Vec<(std::ffi::OsString, std::ffi::OsString)>,
        netns: Option<NetNs>,
    ) -> Jarvis {
        let dir = tempfile::Builder::new()
            .prefix("jarvis-it-")
            .tempdir()
            .expect("tempdir");
        // Units run as other users in some tests: let them traverse.
        let _ = fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        );
        let units_dir = dir.path().join("units");
        fs::create_dir(&units_dir).unwrap();
        for (name, text) in units {
            fs::write(units_dir.join(format!("{name}.toml")), text).unwrap();
        }
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let mut j = Jarvis {
            state: dir.path().join("state"),
            socket: dir.path().join("jarvis.sock"),
            units: units_dir,
            cgroup_parent: format!("jarvis-it-{}-{n}", std::process::id()),
            extra_args: args.iter().map(|a| a.to_string()).collect(),
            extra_env: env,
            netns,
            wrapper: Vec::new(),
            dir,
            daemon: None,
        };
        j.spawn_daemon();
        j
    }

    /// Like `start`, with jarvisd run under `wrapper` (a command that execs
    /// the rest of its arguments, e.g. `prlimit --nofile=1024:65536`).
    pub fn start_wrapped(units: &[(&str, &str)], wrapper: &[&str]) -> Jarvis {
        let mut j = Jarvis::start_in(&[], &[], vec![], None);
        j.kill_daemon();
        for (name, text) in units {
            j.write_unit(name, text);
        }
        j.wrapper = wrapper.iter().map(|a| a.to_string()).collect();
        j.spawn_daemon();
        j
    }

    pub fn spawn_daemon(&mut self) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("jarvisd.log"))
            .unwrap();
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--net={}", ns.path().display()))
                    .arg("--")
                    .arg(&*JARVISD);
                c
            }
            None if !self.wrapper.is_empty() => {
                let mut c = Command::new(&self.wrapper[0]);
                c.args(&self.wrapper[1..]).arg(&*JARVISD);
                c
            }
            None => Command::new(&*JARVISD),
        };
        let child = cmd
            .arg("--units")
            .arg(&self.units)
            .arg("--state-dir")
            .arg(&self.state)
            .arg("--socket")
            .arg(&self.socket)
            .arg("--cgroup-parent")
            .arg(&self.cgroup_parent)
            .args(&self.extra_args)
            .envs(self.extra_env.iter().map(|(k, v)| (k, v)))
            .env("JARVIS_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start jarvisd");
        self.daemon = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        // A killed daemon leaves its socket file, and a process it was
        // starting may hold its listener until its exec: wait for one that
        // answers a hello.
        while !answers(&self.socket) {
            if let Some(st) = self.daemon.as_mut().unwrap().try_wait().unwrap() {
                panic!("jarvisd exited {st}:\n{}", self.daemon_log());
            }
            assert!(
                Instant::now() < deadline,
                "no socket:\n{}",
                self.daemon_log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn daemon_pid(&self) -> i32 {
        self.daemon.as_ref().expect("daemon running").id() as i32
    }

    /// SIGKILLs jarvisd (its units are left as they are).
    pub fn kill_daemon(&mut self) {
        if let Some(mut c) = self.daemon.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait: a clean shutdown.
    pub fn stop_daemon(&mut self) -> std::process::ExitStatus {
        let mut c = self.daemon.take().expect("daemon running");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(c.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(st) = c.try_wait().unwrap() {
                return st;
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                panic!("jarvisd did not stop on SIGTERM:\n{}", self.daemon_log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn daemon_log(&self) -> String {
        fs::read_to_string(self.dir.path().join("jarvisd.log")).unwrap_or_default()
    }

    pub fn write_unit(&self, name: &str, text: &str) {
        fs::write(self.units.join(format!("{name}.toml")), text).unwrap();
    }

    /// Builds the test busybox image (see `containers::busybox_layout`)
    /// and imports it into this daemon's store as `tag`.
    pub fn import_busybox(&self, tag: &str) {
        let layout = self.dir.path().join("busybox-layout");
        crate::containers::busybox_layout(&layout);
        self.ok(&["image", "import", layout.to_str().unwrap(), "--tag", tag]);
    }

    pub fn remove_unit(&self, name: &str) {
        fs::remove_file(self.units.join(format!("{name}.toml"))).unwrap();
    }

    pub fn ctl(&self, args: &[&str]) -> Output {
        Command::new(&*JARVISCTL)
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run jarvisctl")
    }

    /// Runs jarvisctl and insists on success.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.ctl(args);
        assert!(
            out.status.success(),
            "jarvisctl {args:?} failed: {}\nstdout: {}\njarvisd log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout),
            self.daemon_log()
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn status(&self) -> Value {
        serde_json::from_str(&self.ok(&["status", "--json"])).expect("status json")
    }

    pub fn unit(&self, name: &str) -> Value {
        self.status()["units"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["name"] == name)
            .unwrap_or_else(|| panic!("no unit {name}"))
            .clone()
    }

    /// Polls the status of `name` until `pred` holds; panics with the last
    /// status and the daemon's log after `timeout`.
    pub fn wait_unit(&self, name: &str, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let u = self.unit(name);
            if pred(&u) {
                return u;
            }
            if Instant::now() > deadline {
                panic!(
                    "unit {name} did not reach the expected state within {timeout:?}; last: {u:#}\nlog:\n{}\njarvisd:\n{}",
                    self.logs(name),
                    self.daemon_log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn running(&self, name: &str) -> Value {
        self.wait_unit(name, Duration::from_secs(10), |u| {
            u["state"] == "running" && u["pid"].is_number()
        })
    }

    pub fn logs(&self, name: &str) -> String {
        String::from_utf8_lossy(&self.ctl(&["logs", name]).stdout).into_owned()
    }

    /// The directory of `unit`'s cgroup in the hierarchy of `controller`.
    pub fn cgroup_dir(&self, controller: &str, unit: &str) -> PathBuf {
        let cg = self.unit(unit)["cgroup"].as_str().unwrap().to_string();
        cgroup_root(controller).join(cg.trim_start_matches('/'))
    }

    pub fn read_cgroup(&self, controller: &str, unit: &str, file: &str) -> String {
        let p = self.cgroup_dir(controller, unit).join(file);
        fs::read_to_string(&p)
            .unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
            .trim()
            .to_string()
    }
}

/// Where a controller's hierarchy is mounted: /sys/fs/cgroup/<controller> on
/// a v1 or hybrid host, /sys/fs/cgroup itself on a pure v2 host.
/// The processes in the cgroup `/<parent>/<unit>`, in every hierarchy that
/// has it (nothing when it is gone).
pub fn cgroup_procs(parent: &str, unit: &str) -> Vec<i32> {
    let mut pids: Vec<i32> = ["pids", "memory", "cpu"]
        .iter()
        .map(|c| cgroup_root(c).join(parent).join(unit).join("cgroup.procs"))
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .flat_map(|s| {
            s.lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect::<Vec<i32>>()
        })
        .collect();
    pids.sort();
    pids.dedup();
    pids
}

pub fn cgroup_root(controller: &str) -> PathBuf {
    let v1 = Path::new("/sys/fs/cgroup").join(controller);
    if v1.is_dir() {
        v1
    } else {
        PathBuf::from("/sys/fs/cgroup")
    }
}

pub fn alive(pid: i32) -> bool {
    // A zombie is dead for our purposes.
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

pub fn proc_status(pid: i32, key: &str) -> String {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .unwrap_or_else(|| panic!("no {key} in /proc/{pid}/status"))
        .trim()
        .to_string()
}

impl Drop for Jarvis {
    fn drop(&mut self) {
        if self.daemon.is_some() {
            if std::thread::panicking() {
                self.kill_daemon();
            } else {
                let st = self.stop_daemon();
                if !st.success() {
                    eprintln!("jarvisd exited {st}:\n{}", self.daemon_log());
                }
            }
        }
        // Network namespaces and secrets' tmpfs a killed daemon left mounted
        // would keep the temporary directory busy.
        for dir in ["run/netns", "run/secrets", "run/credentials"] {
            for m in fs::read_dir(self.state.join(dir))
                .into_iter()
                .flatten()
                .flatten()
            {
                let _ = nix::mount::umount2(&m.path(), nix::mount::MntFlags::MNT_DETACH);
            }
        }
        let _ = nix::mount::umount2(
            &self.state.join("run/netns"),
            nix::mount::MntFlags::MNT_DETACH,
        );
        // Whatever is left (a failed test, a killed daemon): kill and remove.
        clear_cgroup_parent(&self.cgroup_parent);
    }
}

/// Whether a jarvisd answers a hello on `socket` (within a second).
fn answers(socket: &Path) -> bool {
    let Ok(mut s) = std::os::unix::net::UnixStream::connect(socket) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    let hello = jarvis_proto::Hello {
        version: jarvis_proto::PROTOCOL_VERSION,
        agent: "jarvis-it".into(),
    };
    jarvis_proto::write_frame(&mut s, &hello).is_ok()
        && jarvis_proto::read_frame::<jarvis_proto::Hello>(&mut s).is_ok()
}

/// Kills whatever is left in the unit cgroups under `parent` (in every
/// hierarchy) and removes them and `parent`: the end of a test's daemon.
pub fn clear_cgroup_parent(parent: &str) {
    for root in ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]
        .iter()
        .map(PathBuf::from)
        .chain(
            fs::read_dir("/sys/fs/cgroup")
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path()),
        )
    {
        let parent = root.join(parent);
        if !parent.is_dir() {
            continue;
        }
        for unit in fs::read_dir(&parent).into_iter().flatten().flatten() {
            if !unit.path().is_dir() {
                continue;
            }
            for _ in 0..50 {
                let procs =
                    fs::read_to_string(unit.path().join("cgroup.procs")).unwrap_or_default();
                if procs.trim().is_empty() {
                    break;
                }
                for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = fs::remove_dir(unit.path());
        }
        let _ = fs::remove_dir(&parent);
    }
}

/// SIGTERM to a daemon the test started, then SIGKILL after 30 s.
pub fn stop_child(mut c: std::process::Child) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(c.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while c.try_wait().ok().flatten().is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = c.kill();
    let _ = c.wait();
}

/// A number no other call in this test process got.
pub fn unique() -> usize {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
}

/// An HTTP/1.1 request to 127.0.0.1:`port`: its status and body. `body`
/// None: the headers alone, declaring `length`.
/// Serves `GET /api/ps` on 127.0.0.1 with whatever `body` holds at each
/// request; returns the port. The thread lives as long as the test process.
pub fn ollama_stand_in(body: std::sync::Arc<std::sync::Mutex<String>>) -> u16 {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
            let mut req = Vec::new();
            let mut buf = [0u8; 1024];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => req.extend_from_slice(&buf[..n]),
                }
            }
            let head = String::from_utf8_lossy(&req);
            let (status, body) = if head.starts_with("GET /api/ps ") {
                ("200 OK", body.lock().unwrap().clone())
            } else {
                ("404 Not Found", "{}".to_string())
            };
            let _ = write!(
                conn,
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

/// jarvisd's environment for the fixture host `fx`: its roots, and the
/// stand-in NVML with `gpus` GPUs (of `total_mib` each, when given), whose
/// process list is read from the file `procs` at each call, when given.
pub fn nvml_env(
    fx: &jarvis_hardware::fixture::Fixture,
    gpus: u32,
    total_mib: Option<u64>,
    procs: Option<&Path>,
) -> Vec<(std::ffi::OsString, std::ffi::OsString)> {
    use jarvis_hardware::fixture;
    let mut env: Vec<(std::ffi::OsString, std::ffi::OsString)> = fx
        .env()
        .into_iter()
        .map(|(k, v)| (std::ffi::OsString::from(k), v))
        .collect();
    let stub = fx
        .nvml_stub_dir()
        .expect("build the NVML stand-in (needs cc)");
    env.push(("LD_LIBRARY_PATH".into(), stub.into_os_string()));
    env.push((fixture::STUB_GPUS.into(), gpus.to_string().into()));
    if let Some(mib) = total_mib {
        let totals = vec![mib.to_string(); gpus as usize].join(",");
        env.push((fixture::STUB_TOTAL_MIB.into(), totals.into()));
    }
    if let Some(p) = procs {
        env.push((fixture::STUB_PROCS_FILE.into(), p.into()));
    }
    env
}

/// A TCP port on 127.0.0.1 that nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: Option<&[u8]>,
    length: usize,
) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {length}\r\nConnection: close\r\n"
    );
    for (k, v) in headers {
        req += &format!("{k}: {v}\r\n");
    }
    req += "\r\n";
    std::io::Write::write_all(&mut s, req.as_bytes()).unwrap();
    if let Some(b) = body {
        std::io::Write::write_all(&mut s, b).unwrap();
    }
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut s, &mut out).unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {text:?}"));
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (status, body.to_string())
}
