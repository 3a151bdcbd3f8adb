//! Integration tests against the real kernel; they need root.
//!
//! The tests run through libtest-mimic (`harness = false`); [`spawn`] is
//! given this binary's own path as the launcher it checks for. Each test uses its own cgroup parent `jarvis-test-PID-N`, removed
//! at the end of the test by a guard, even when the test fails.

use std::future::Future;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use jarvis_native::{spawn, LaunchSpec, SpawnError, Spawned, UnitCgroup};
use jarvis_unit::Resources;
use libtest_mimic::{Arguments, Failed, Trial};
use tokio::io::AsyncReadExt;

type TestResult = Result<(), Failed>;

/// Says that a test cannot run, and why: `SKIPPED: <reason>` on stderr, in
/// the runner's output. A prerequisite CI provides (`ci_provides`) fails
/// the test instead under `CI=true`, where a skip would hide a broken setup.
fn skip(ci_provides: bool, reason: &str) -> TestResult {
    let ci = std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1");
    if ci_provides && ci {
        return Err(format!("{reason}; CI provides this, so it must not be skipped there").into());
    }
    eprintln!("SKIPPED: {reason}");
    Ok(())
}

type Test = (&'static str, fn() -> TestResult);

const MIB: u64 = 1024 * 1024;

fn main() {
    let args = Arguments::from_args();
    let root = nix::unistd::geteuid().is_root();
    if !root {
        eprintln!("not root: the kernel tests of jarvis-native are ignored");
    }
    let tests: Vec<Test> = vec![
        (
            "limits_are_written_then_reset",
            limits_are_written_then_reset,
        ),
        (
            "process_joins_every_hierarchy",
            process_joins_every_hierarchy,
        ),
        ("memory_max_oom_kills", memory_max_oom_kills),
        ("pids_max_stops_a_fork_bomb", pids_max_stops_a_fork_bomb),
        ("cpu_quota_holds", cpu_quota_holds),
        ("root_without_capabilities", root_without_capabilities),
        (
            "nobody_keeps_net_bind_service",
            nobody_keeps_net_bind_service,
        ),
        ("capability_errors", capability_errors),
        ("user_and_groups", user_and_groups),
        (
            "unknown_user_or_group_runs_nothing",
            unknown_user_or_group_runs_nothing,
        ),
        ("only_stdio_descriptors", only_stdio_descriptors),
        ("exec_failures", exec_failures),
        ("kill_all_catches_daemons", kill_all_catches_daemons),
        ("kill_all_with_the_freezer", kill_all_with_the_freezer),
        ("signal_all_delivers", signal_all_delivers),
        ("stats_report_usage", stats_report_usage),
        ("remove_takes_subcgroups", remove_takes_subcgroups),
    ];
    let trials = tests
        .into_iter()
        .map(|(name, f)| Trial::test(name, f).with_ignored_flag(!root))
        .collect();
    libtest_mimic::run(&args, trials).exit();
}

macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+).into());
        }
    };
}

// ---------------------------------------------------------------- helpers

/// A unique cgroup parent, removed (with everything in it) on drop.
struct Fixture {
    parent: String,
    units: Vec<UnitCgroup>,
}

impl Fixture {
    fn new() -> Fixture {
        static N: AtomicUsize = AtomicUsize::new(0);
        Fixture {
            parent: format!(
                "jarvis-test-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ),
            units: Vec::new(),
        }
    }

    fn cgroup(&mut self, name: &str, limits: &Resources) -> Result<UnitCgroup, Failed> {
        let cg =
            UnitCgroup::create(&self.parent, name, limits).map_err(|e| format!("create: {e}"))?;
        self.units.push(cg.clone());
        Ok(cg)
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        for cg in &self.units {
            if let Err(e) = cg.kill_all() {
                eprintln!("cleanup: kill_all {}: {e}", cg.path());
            }
        }
        if let Err(e) = UnitCgroup::open("", &self.parent).remove() {
            eprintln!("cleanup: remove /{}: {e}", self.parent);
        }
    }
}

/// Runs `fut` on a fresh current-thread runtime, bounded by `limit`.
fn block<F: Future<Output = TestResult>>(limit: Duration, fut: F) -> TestResult {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    rt.block_on(async {
        tokio::time::timeout(limit, fut)
            .await
            .map_err(|_| Failed::from(format!("test timed out after {limit:?}")))?
    })
}

fn launcher() -> PathBuf {
    std::env::current_exe().expect("current_exe")
}

fn spec(cg: &UnitCgroup, argv: &[&str]) -> LaunchSpec {
    LaunchSpec {
        argv: argv.iter().map(|s| s.to_string()).collect(),
        env: vec![("PATH".into(), "/usr/sbin:/usr/bin:/sbin:/bin".into())],
        user: None,
        group: None,
        supplementary_groups: vec![],
        working_dir: None,
        capabilities: vec![],
        no_new_privileges: true,
        cgroup_procs: cg.procs_files(),
    }
}

async fn start(spec: &LaunchSpec) -> Result<Spawned, Failed> {
    spawn(&launcher(), spec)
        .await
        .map_err(|e| format!("spawn {:?}: {e}", spec.argv).into())
}

/// Runs `spec` to completion: exit status and output.
async fn run(spec: &LaunchSpec) -> Result<(ExitStatus, String), Failed> {
    let mut sp = start(spec).await?;
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), sp.output.read_to_end(&mut out))
        .await
        .map_err(|_| format!("{:?}: output not closed within 30s", spec.argv))?
        .map_err(|e| format!("read output: {e}"))?;
    let status = tokio::time::timeout(Duration::from_secs(10), sp.wait())
        .await
        .map_err(|_| format!("{:?}: did not exit within 10s", spec.argv))?
        .map_err(|e| format!("wait: {e}"))?;
    Ok((status, String::from_utf8_lossy(&out).into_owned()))
}

/// Runs `spec`, requiring exit 0; returns its output.
async fn run_ok(spec: &LaunchSpec) -> Result<String, Failed> {
    let (status, out) = run(spec).await?;
    ensure!(
        status.success(),
        "{:?} failed with {status}: {out}",
        spec.argv
    );
    Ok(out)
}

/// Reads `output` to its end in the background so writers never block.
fn drain(mut output: tokio::net::unix::pipe::Receiver) -> tokio::task::JoinHandle<String> {
    tokio::spawn(async move {
        let mut out = Vec::new();
        let _ = output.read_to_end(&mut out).await;
        String::from_utf8_lossy(&out).into_owned()
    })
}

/// Polls `cond` every 10ms until it holds or `limit` passes.
async fn wait_for(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) -> TestResult {
    let deadline = Instant::now() + limit;
    while !cond() {
        ensure!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

fn read(path: impl AsRef<Path>) -> Result<String, Failed> {
    let path = path.as_ref();
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|e| format!("read {}: {e}", path.display()).into())
}

/// The cgroup directories of `cg`, one per hierarchy.
fn dirs(cg: &UnitCgroup) -> Vec<PathBuf> {
    cg.procs_files()
        .iter()
        .filter_map(|p| p.parent().map(Path::to_path_buf))
        .collect()
}

fn is_v2_dir(dir: &Path) -> bool {
    nix::sys::statfs::statfs(dir)
        .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
}

/// Where controller `ctl`'s files for `cg` live: `(dir, is_v2)`.
fn controller_dir(cg: &UnitCgroup, ctl: &str) -> Result<(PathBuf, bool), Failed> {
    let v1 = Path::new("/sys/fs/cgroup")
        .join(ctl)
        .join(cg.path().trim_start_matches('/'));
    if v1.join("cgroup.procs").exists() && !is_v2_dir(&v1) {
        return Ok((v1, false));
    }
    for d in dirs(cg) {
        if is_v2_dir(&d)
            && read(d.join("cgroup.controllers"))?
                .split_whitespace()
                .any(|c| c == ctl)
        {
            return Ok((d, true));
        }
    }
    Err(format!("no {ctl} controller for {}", cg.path()).into())
}

fn status_field(status: &str, key: &str) -> Option<String> {
    status.lines().find_map(|l| {
        l.strip_prefix(&format!("{key}:"))
            .map(|v| v.trim().to_string())
    })
}

fn alive(pid: i32) -> bool {
    // A zombie is dead for our purposes.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => false,
    }
}

// ------------------------------------------------------------------ tests

fn limits_are_written_then_reset() -> TestResult {
    let mut fx = Fixture::new();
    let full = Resources {
        memory_max: Some(64 * MIB),
        cpus: Some(0.5),
        cpu_weight: Some(200),
        pids_max: Some(32),
        cpuset: Some("0".into()),
    };
    let cg = fx.cgroup("web", &full)?;
    let (mem, mem_v2) = controller_dir(&cg, "memory")?;
    let (cpu, cpu_v2) = controller_dir(&cg, "cpu")?;
    let (pids, _) = controller_dir(&cg, "pids")?;
    let (cpuset, cpuset_v2) = controller_dir(&cg, "cpuset")?;
    let check = |file: PathBuf, want: &str| -> TestResult {
        let got = read(&file)?;
        ensure!(got == want, "{}: {got:?}, want {want:?}", file.display());
        Ok(())
    };

    if mem_v2 {
        check(mem.join("memory.max"), "67108864")?;
        if mem.join("memory.swap.max").exists() {
            check(mem.join("memory.swap.max"), "0")?;
        }
    } else {
        check(mem.join("memory.limit_in_bytes"), "67108864")?;
        if mem.join("memory.memsw.limit_in_bytes").exists() {
            check(mem.join("memory.memsw.limit_in_bytes"), "67108864")?;
        }
    }
    if cpu_v2 {
        check(cpu.join("cpu.max"), "50000 100000")?;
        check(cpu.join("cpu.weight"), "200")?;
    } else {
        check(cpu.join("cpu.cfs_quota_us"), "50000")?;
        check(cpu.join("cpu.cfs_period_us"), "100000")?;
        check(cpu.join("cpu.shares"), "2048")?;
    }
    check(pids.join("pids.max"), "32")?;
    check(cpuset.join("cpuset.cpus"), "0")?;
    if !cpuset_v2 {
        ensure!(
            !read(cpuset.join("cpuset.mems"))?.is_empty(),
            "cpuset.mems left empty"
        );
    }
    ensure!(
        cg.stats().memory_max == Some(64 * MIB),
        "stats: {:?}",
        cg.stats()
    );

    // The kernel applies them: the cpuset, seen by a process inside.
    block(Duration::from_secs(30), async {
        let out = run_ok(&spec(
            &cg,
            &["grep", "Cpus_allowed_list", "/proc/self/status"],
        ))
        .await?;
        ensure!(out.split_whitespace().last() == Some("0"), "{out}");
        Ok(())
    })?;

    // Changed: new ones written, unset ones reset.
    let changed = Resources {
        memory_max: Some(128 * MIB),
        ..Resources::default()
    };
    let cg = fx.cgroup("web", &changed)?;
    if mem_v2 {
        check(mem.join("memory.max"), "134217728")?;
    } else {
        check(mem.join("memory.limit_in_bytes"), "134217728")?;
    }
    if cpu_v2 {
        check(cpu.join("cpu.max"), "max 100000")?;
        check(cpu.join("cpu.weight"), "100")?;
    } else {
        check(cpu.join("cpu.cfs_quota_us"), "-1")?;
        check(cpu.join("cpu.shares"), "1024")?;
    }
    check(pids.join("pids.max"), "max")?;
    let parent_cpus = read(cpuset.parent().unwrap().join(if cpuset_v2 {
        "cpuset.cpus.effective"
    } else {
        "cpuset.cpus"
    }))?;
    let eff = if cpuset_v2 {
        "cpuset.cpus.effective"
    } else {
        "cpuset.cpus"
    };
    check(cpuset.join(eff), &parent_cpus)?;
    ensure!(
        cg.stats().memory_max == Some(128 * MIB),
        "stats: {:?}",
        cg.stats()
    );

    let cg = fx.cgroup("web", &Resources::default())?;
    if mem_v2 {
        check(mem.join("memory.max"), "max")?;
    } else {
        let v: u64 = read(mem.join("memory.limit_in_bytes"))?.parse()?;
        ensure!(v >= 1 << 62, "memory.limit_in_bytes not reset: {v}");
    }
    ensure!(cg.stats().memory_max.is_none(), "stats: {:?}", cg.stats());
    Ok(())
}

fn process_joins_every_hierarchy() -> TestResult {
    let mut fx = Fixture::new();
    let cg = fx.cgroup("join", &Resources::default())?;
    let n = cg.procs_files().len();
    ensure!(n >= 1, "no hierarchies");
    block(Duration::from_secs(30), async {
        // The shell prints its own cgroups before it runs anything else.
        let out = run_ok(&spec(&cg, &["sh", "-c", "cat /proc/$$/cgroup"])).await?;
        let lines: Vec<&str> = out.lines().collect();
        ensure!(
            lines.len() == n,
            "{} lines for {n} hierarchies:\n{out}",
            lines.len()
        );
        for l in &lines {
            let path = l.splitn(3, ':').nth(2).unwrap_or_default();
            ensure!(path == cg.path(), "not in {}: {l}", cg.path());
        }

        let mut sp = start(&spec(&cg, &["sleep", "30"])).await?;
        ensure!(
            cg.pids() == vec![sp.pid],
            "pids {:?}, want [{}]",
            cg.pids(),
            sp.pid
        );
        for f in cg.procs_files() {
            ensure!(
                read(&f)? == sp.pid.to_string(),
                "{} lacks {}",
                f.display(),
                sp.pid
            );
        }
        let line = read(format!("/proc/{}/cgroup", sp.pid))?;
        ensure!(
            line.lines()
                .all(|l| l.ends_with(&format!(":{}", cg.path()))),
            "{line}"
        );
        cg.kill_all()?;
        let status = sp.wait().await?;
        ensure!(status.signal() == Some(libc::SIGKILL), "{status}");
        Ok(())
    })
}

fn memory_max_oom_kills() -> TestResult {
    let mut fx = Fixture::new();
    let cg = fx.cgroup(
        "hog",
        &Resources {
            memory_max: Some(64 * MIB),
            ..Resources::default()
        },
    )?;
    block(Duration::from_secs(60), async {
        // tail keeps an ever-growing "last line" of an endless /dev/zero.
        let (status, out) = run(&spec(&cg, &["tail", "/dev/zero"])).await?;
        ensure!(
            status.signal() == Some(libc::SIGKILL),
            "tail ended with {status}: {out}"
        );
        let stats = cg.stats();
        ensure!(stats.oom_kills.unwrap_or(0) >= 1, "stats: {stats:?}");
        Ok(())
    })
}

/// A fork bomb that keeps forking however often fork fails (perl), or a
/// shell one.
const BOMB: &str = "if command -v perl >/dev/null; then exec perl -e 'fork while 1'; \
                    else b() { b | b & }; b; sleep 30; fi";

fn pids_max_stops_a_fork_bomb() -> TestResult {
    let mut fx = Fixture::new();
    let cg = fx.cgroup(
        "bomb",
        &Resources {
            pids_max: Some(32),
            ..Resources::default()
        },
    )?;
    let (pids_dir, _) = controller_dir(&cg, "pids")?;
    block(Duration::from_secs(30), async {
        let Spawned {
            mut child, output, ..
        } = start(&spec(&cg, &["sh", "-c", BOMB])).await?;
        let out = drain(output);
        let mut max_seen = 0u64;
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_millis(1500) {
            let cur: u64 = read(pids_dir.join("pids.current"))?.parse()?;
            max_seen = max_seen.max(cur);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        ensure!(max_seen <= 32, "pids.current reached {max_seen}");
        ensure!(max_seen >= 16, "the bomb did not grow: {max_seen}");
        let failed_forks = read(pids_dir.join("pids.events"))?;
        let n: u64 = failed_forks
            .split_whitespace()
            .nth(1)
            .unwrap_or("0")
            .parse()?;
        ensure!(n > 0, "no fork hit the limit: pids.events {failed_forks:?}");

        let t = Instant::now();
        cg.kill_all().map_err(|e| format!("kill_all: {e}"))?;
        ensure!(cg.pids().is_empty(), "left: {:?}", cg.pids());
        eprintln!(
            "fork bomb: max {max_seen} pids, {n} failed forks, killed in {:?}",
            t.elapsed()
        );
        let _ = child.wait_async().await;
        tokio::time::timeout(Duration::from_secs(5), out).await??;
        Ok(())
    })
}

fn cpu_quota_holds() -> TestResult {
    let mut fx = Fixture::new();
    let cg = fx.cgroup(
        "busy",
        &Resources {
            cpus: Some(0.2),
            ..Resources::default()
        },
    )?;
    block(Duration::from_secs(30), async {
        let mut sp = start(&spec(&cg, &["sh", "-c", "while :; do :; done"])).await?;
        let before = cg.stats().cpu_usage_ns.ok_or("no cpu usage")?;
        let t = Instant::now();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let used = cg.stats().cpu_usage_ns.ok_or("no cpu usage")? - before;
        let share = used as f64 / t.elapsed().as_nanos() as f64;
        cg.kill_all()?;
        let _ = sp.wait().await;
        ensure!(
            share > 0.02 && share < 0.35,
            "busy loop used {share:.2} CPUs with cpus = 0.2"
        );
        Ok(())
    })
}

fn root_without_capabilities() -> TestResult {
    let mut fx = Fixture::new();
    let cg = fx.cgroup("nocaps", &Resources::default())?;
    let tmp = tempfile::tempdir()?;
    let secret = tmp.path().join("secret");
    std::fs::write(&secret, "hidden\n")?;
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o000))?;
    let secret = secret.to_str().unwrap().to_string();
    block(Duration::from_secs(30), async {
        let status = run_ok(&spec(&cg, &["cat", "/proc/self/status"])).await?;
        for key in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
            let v = status_field(&status, key);
            ensure!(v.as_deref() == Some("0000000000000000"), "{key}: {v:?}");
        }
        ensure!(
            status_field(&status, "NoNewPrivs").as_deref() == Some("1"),
            "NoNewPrivs"
        );

        // Behaviour: root without CAP_DAC_OVERRIDE cannot read a 000 file...
        let (st, out) = run(&spec(&cg, &["cat", &secret])).await?;
        ensure!(
            !st.success() && out.contains("Permission denied"),
            "{st}: {out}"
        );
        // ...and with it, it can.
        let mut s = spec(&cg, &["cat", &secret]);
        s.capabilities = vec!["CAP_DAC_OVERRIDE".into()];
        ensure!(run_ok(&s).await? == "hidden\n", "cat with CAP_DAC_OVERRIDE");
        Ok(())
    })
}

fn nobody_keeps_net_bind_service() -> TestResult {
    let mut fx = Fixture::new();
    let cg = fx.cgroup("bind", &Resources::default())?;
    block(Duration::from_secs(30), async {
        let mut s = spec(&cg, &["cat", "/proc/self/status"]);
        s.user = Some("nobody".into());
        s.capabilities = vec!["CAP_NET_BIND_SERVICE".into()];
        let status = run_ok(&s).await?;
        for key in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
            let v = status_field(&status, key);
            ensure!(v.as_deref() == Some("0000000000000400"), "{key}: {v:?}");
        }
        ensure!(
            status_field(&status, "Uid").is_some_and(|u| u.starts_with("65534")),
            "Uid"
        );

        // Behaviour: binding a port below 1024 as nobody.
        if Path::new("/usr/bin/perl").exists() {
            let script = "use IO::Socket::INET; IO::Socket::INET->new(LocalAddr=>'127.0.0.1', LocalPort=>987, Listen=>1, ReuseAddr=>1) or die \"bind: $!\\n\"; print \"bound\\n\"";
            let mut s = spec(&cg, &["perl", "-e", script]);
            s.user = Some("nobody".into());
            s.capabilities = vec!["CAP_NET_BIND_SERVICE".into()];
            let out = run_ok(&s).await?;
            ensure!(out == "bound\n", "{out}");
            s.capabilities = vec![];
            let (st, out) = run(&s).await?;
            ensure!(
                !st.success() && out.contains("Permission denied"),
                "{st}: {out}"
            );
        }
        Ok(())
    })
}

fn capability_errors() -> TestResult {
    let mut fx = Fixture::new();
    let cg = fx.cgroup("capserr", &Resources::default())?;
    block(Duration::from_secs(30), async {
        let mut s = spec(&cg, &["true"]);
        s.capabilities = vec!["CAP_BOGUS".into()];
        match spawn(&launcher(), &s).await {
            Err(SpawnError::Setup(msg)) => {
                ensure!(msg == "unknown capability \"CAP_BOGUS\"", "{msg}")
            }
            other => return Err(format!("want a setup error, got {other:?}").into()),
        }
        // A capability this process lacks cannot be kept (root here may lack
        // CAP_SYS_RESOURCE).
        let own = read("/proc/self/status")?;
        let bnd =
            u64::from_str_radix(&status_field(&own, "CapBnd").unwrap_or_default(), 16).unwrap_or(0);
        if bnd & (1 << 24) == 0 {
            s.capabilities = vec!["CAP_SYS_RESOURCE".into()];
            match spawn(&launcher(), &s).await {
                Err(SpawnError::Setup(msg)) => {
                    ensure!(msg.contains("cannot keep CAP_SYS_RESOURCE"), "{msg}")
                }
                other => return Err(format!("want a setup error, got {other:?}").into()),
            }
        }
        Ok(())
    })
}

fn user_and_groups() -> TestResult {
    let mut fx = Fixture::new();
    let cg = fx.cgroup("ids", &Resources::default())?;
    let ids = |user: Option<&str>, group: Option<&str>, supp: &[&str]| {
        let mut s = spec(
            &cg,
            &["sh", "-c", "echo $(id -u) $(id -g) / $(id -G) / $(pwd)"],
        );
        s.user = user.map(str::to_string);
        s.group = group.map(str::to_string);
        s.supplementary_groups = supp.iter().map(|g| g.to_string()).collect();
        s
    };
    block(Duration::from_secs(30), async {
        let cases = [
            (ids(None, None, &[]), "0 0 / 0 / /root"),
            (ids(Some("nobody"), None, &[]), "65534 65534 / 65534 / /"),
            (
                ids(Some("nobody"), Some("users"), &["1234", "nogroup"]),
                "65534 100 / 100 1234 65534 / /",
            ),
            (ids(Some("4242"), None, &[]), "4242 4242 / 4242 / /"),
            (
                ids(Some("4242"), Some("4343"), &["4444"]),
                "4242 4343 / 4343 4444 / /",
            ),
        ];
        for (mut s, want) in cases {
            if want.ends_with("/root") && !Path::new("/root").is_dir() {
                s.working_dir = Some("/root".into());
            }
            let out = run_ok(&s).await?;
            ensure!(
                out.trim() == want,
                "user {:?} group {:?}: {:?}, want {want:?}",
                s.user,
                s.group,
                out.trim()
            );
        }
        let mut s = ids(Some("nobody"), None, &[]);
        s.working_dir = Some("/tmp".into());
        ensure!(run_ok(&s).await?.trim().ends_with("/ /tmp"), "working_dir");
        Ok(())
    })
}

fn unknown_user_or_group_runs_nothing() -> TestResult {
    let mut fx = Fixture::new();
    let cg = fx.cgroup("nouser", &Resources::default())?;
    let tmp = tempfile::tempdir()?;
    let marker = tmp.path().join("ran");
    let touch = format!("touch {}", marker.display());
    block(Duration::from_secs(30), async {
        let cases = [
            (
                Some("no-such-user-jarvis"),
                None,
                vec![],
                "user \"no-such-user-jarvis\" does not exist",
            ),
            (
                Some("nobody"),
                Some("no-such-group-jarvis"),
                vec![],
                "group \"no-such-group-jarvis\" does not exist",
            ),
            (
                None,
                None,
                vec!["no-such-group-2".to_string()],
                "group \"no-such-group-2\" does not exist",
            ),
        ];
        for (user, group, supp, want) in cases {
            let mut s = spec(&cg, &["sh", "-c", &touch]);
            s.user = user.map(str::to_string);
            s.group = group.map(str::to_string);
            s.supplementary_groups = supp;
            match spawn(&launcher(), &s).await {
                Err(SpawnError::Setup(msg)) => ensure!(msg == want, "{msg:?}, want {want:?}"),
                other => return Err(format!("want a setup error, got {other:?}").into()),
            }
            ensure!(!marker.exists(), "the command ran");
            ensure!(cg.pids().is_empty(), "left behind: {:?}", cg.pids());
        }
        Ok(())
    })
}

fn only_stdio_descriptors() -> TestResult {
    let mut fx = Fixture::new();
    let cg = fx.cgroup("fds", &Resources::default())?;
    // A descriptor this process leaks into every fork (no close-on-exec).
    // SAFETY: open/close of our own descriptor.
    let leaked = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY) };
    ensure!(leaked >= 0, "open /dev/null");
    let res = block(Duration::from_secs(30), async {
        let out = run_ok(&spec(&cg, &["ls", "/proc/self/fd"])).await?;
        // ls itself has its directory open as fd 3.
        ensure!(
            out.split_whitespace().collect::<Vec<_>>() == ["0", "1", "2", "3"],
            "ls /proc/self/fd: {out}"
        );

        let mut sp = start(&spec(&cg, &["sleep", "30"])).await?;
        let fd_dir = format!("/proc/{}/fd", sp.pid);
        // The spawn returns as the exec replaces the child's memory, a
        // moment before the kernel closes its close-on-exec descriptors.
        let deadline = Instant::now() + Duration::from_secs(2);
        let fds = loop {
            let mut fds: Vec<String> = std::fs::read_dir(&fd_dir)?
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect();
            fds.sort();
            if fds.len() <= 3 || Instant::now() > deadline {
                break fds;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        let link =
            |n: &str| std::fs::read_link(format!("{fd_dir}/{n}")).map(|p| p.display().to_string());
        let (l0, l1, l2) = (link("0")?, link("1")?, link("2")?);
        cg.kill_all()?;
        let _ = sp.wait().await;
        ensure!(fds == ["0", "1", "2"], "open descriptors: {fds:?}");
        ensure!(l0 == "/dev/null", "stdin is {l0}");
        ensure!(
            l1.starts_with("pipe:") && l1 == l2,
            "stdout {l1}, stderr {l2}"
        );
        Ok(())
    });
    // SAFETY: closing the descriptor opened above.
    unsafe { libc::close(leaked) };
    res
}

fn exec_failures() -> TestResult {
    let mut fx = Fixture::new();
    let cg = fx.cgroup("exec", &Resources::default())?;
    let tmp = tempfile::tempdir()?;
    let noexec = tmp.path().join("script");
    std::fs::write(&noexec, "#!/bin/sh\necho hi\n")?;
    let noexec = noexec.to_str().unwrap().to_string();
    block(Duration::from_secs(30), async {
        let cases = [
            (
                "/nonexistent/prog",
                "exec /nonexistent/prog: No such file or directory".to_string(),
            ),
            (noexec.as_str(), format!("exec {noexec}: Permission denied")),
        ];
        for (prog, want) in cases {
            match spawn(&launcher(), &spec(&cg, &[prog])).await {
                Err(SpawnError::Setup(msg)) => ensure!(msg == want, "{msg:?}, want {want:?}"),
                other => return Err(format!("want a setup error, got {other:?}").into()),
            }
        }
        match spawn(&launcher(), &spec(&cg, &["no-such-program-jarvis"])).await {
            Err(SpawnError::Setup(msg)) => ensure!(
                msg.starts_with("exec no-such-program-jarvis: No such file or directory"),
                "{msg}"
            ),
            other => return Err(format!("want a setup error, got {other:?}").into()),
        }
        match spawn(Path::new("/nonexistent/jarvisd"), &spec(&cg, &["true"])).await {
            Err(e @ SpawnError::Launcher { .. }) => {
                ensure!(e.to_string().contains("/nonexistent/jarvisd"), "{e}")
            }
            other => return Err(format!("want a launcher error, got {other:?}").into()),
        }
        ensure!(cg.pids().is_empty(), "left behind: {:?}", cg.pids());
        // And a working one, through PATH of the spec's env.
        ensure!(
            run_ok(&spec(&cg, &["echo", "hello"])).await? == "hello\n",
            "echo"
        );
        Ok(())
    })
}

/// Daemons that double-forked, a new session and a process group.
const DAEMONS: &str = "setsid sh -c 'sleep 1000 & sleep 1000 & wait' & \
                       (sleep 1000 &) ; sleep 1000 & sleep 1000 & echo started";

fn kill_all_catches_daemons() -> TestResult {
    let mut fx = Fixture::new();
    let cg = fx.cgroup("daemons", &Resources::default())?;
    block(Duration::from_secs(30), async {
        let Spawned {
            mut child, output, ..
        } = start(&spec(&cg, &["sh", "-c", DAEMONS])).await?;
        // The shell exits at once; its daemons keep the output pipe open.
        let out = drain(output);
        let status = child.wait_async().await?;
        ensure!(status.success(), "{status}");
        wait_for(Duration::from_secs(5), "6 daemons", || cg.pids().len() >= 6).await?;
        let pids = cg.pids();
        let t = Instant::now();
        cg.kill_all().map_err(|e| format!("kill_all: {e}"))?;
        eprintln!("daemons: killed {} in {:?}", pids.len(), t.elapsed());
        ensure!(cg.pids().is_empty(), "left: {:?}", cg.pids());
        wait_for(Duration::from_secs(5), "the daemons to die", || {
            pids.iter().all(|p| !alive(*p))
        })
        .await?;
        let out = tokio::time::timeout(Duration::from_secs(5), out).await??;
        ensure!(out == "started\n", "output: {out:?}");
        cg.remove().map_err(|e| format!("remove: {e}"))?;
        for d in dirs(&cg) {
            ensure!(!d.exists(), "{} still exists", d.display());
        }
        Ok(())
    })
}

fn kill_all_with_the_freezer() -> TestResult {
    if !Path::new("/sys/fs/cgroup/freezer/cgroup.procs").exists() {
        return skip(false, "no v1 freezer on this machine");
    }
    let mut fx = Fixture::new();
    let cg = fx.cgroup(
        "frozen",
        &Resources {
            pids_max: Some(64),
            ..Resources::default()
        },
    )?;
    block(Duration::from_secs(30), async {
        // Join only the v1 hierarchies: the v2 cgroup.kill cannot be used.
        let mut s = spec(&cg, &["sh", "-c", &format!("{DAEMONS}; {BOMB}")]);
        s.cgroup_procs.retain(|f| !is_v2_dir(f.parent().unwrap()));
        let Spawned {
            mut child, output, ..
        } = start(&s).await?;
        let out = drain(output);
        wait_for(Duration::from_secs(5), "the bomb", || cg.pids().len() >= 32).await?;
        let t = Instant::now();
        cg.kill_all().map_err(|e| format!("kill_all: {e}"))?;
        eprintln!("freezer: killed in {:?}", t.elapsed());
        ensure!(cg.pids().is_empty(), "left: {:?}", cg.pids());
        let _ = child.wait_async().await;
        let _ = tokio::time::timeout(Duration::from_secs(5), out).await?;
        let freezer = Path::new("/sys/fs/cgroup/freezer").join(cg.path().trim_start_matches('/'));
        ensure!(
            read(freezer.join("freezer.state"))? == "THAWED",
            "left frozen"
        );
        Ok(())
    })
}

fn signal_all_delivers() -> TestResult {
    let mut fx = Fixture::new();
    let cg = fx.cgroup("term", &Resources::default())?;
    block(Duration::from_secs(30), async {
        let script = "trap 'echo got-term; exit 3' TERM; echo ready; while :; do sleep 0.05; done";
        let mut sp = start(&spec(&cg, &["sh", "-c", script])).await?;
        let mut buf = [0u8; 6];
        sp.output.read_exact(&mut buf).await?;
        cg.signal_all(libc::SIGTERM);
        let mut out = Vec::new();
        sp.output.read_to_end(&mut out).await?;
        let status = sp.wait().await?;
        ensure!(status.code() == Some(3), "{status}");
        ensure!(
            String::from_utf8_lossy(&out).contains("got-term"),
            "{out:?}"
        );
        Ok(())
    })
}

fn stats_report_usage() -> TestResult {
    let mut fx = Fixture::new();
    let cg = fx.cgroup(
        "stats",
        &Resources {
            memory_max: Some(256 * MIB),
            ..Resources::default()
        },
    )?;
    block(Duration::from_secs(30), async {
        let mut sp = start(&spec(
            &cg,
            &[
                "sh",
                "-c",
                "i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done; sleep 30",
            ],
        ))
        .await?;
        wait_for(Duration::from_secs(20), "CPU use", || {
            cg.stats().cpu_usage_ns.unwrap_or(0) > 10_000_000
        })
        .await?;
        let st = cg.stats();
        cg.kill_all()?;
        let _ = sp.wait().await;
        ensure!(st.memory_current.unwrap_or(0) > 0, "{st:?}");
        ensure!(st.memory_max == Some(256 * MIB), "{st:?}");
        ensure!(matches!(st.pids_current, Some(1..=2)), "{st:?}");
        ensure!(st.oom_kills == Some(0), "{st:?}");
        Ok(())
    })
}

fn remove_takes_subcgroups() -> TestResult {
    let mut fx = Fixture::new();
    let cg = fx.cgroup("tree", &Resources::default())?;
    for d in dirs(&cg) {
        std::fs::create_dir(d.join("sub"))?;
        std::fs::create_dir(d.join("sub").join("subsub"))?;
    }
    cg.remove().map_err(|e| format!("remove: {e}"))?;
    for d in dirs(&cg) {
        ensure!(!d.exists(), "{} still exists", d.display());
    }
    cg.remove().map_err(|e| format!("second remove: {e}"))?;
    Ok(())
}
