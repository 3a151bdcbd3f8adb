//! What every benchmark group shares: a real jarvisd on temporary
//! directories (start, jarvisctl, stop, what it left), writing units and
//! bringing them up, cgroup clean-up, the processes on the machine and
//! their memory (a native unit's memory counts its shim), and the
//! statistics (nearest-rank order statistics from `jarvis-benchstats`).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub(crate) use jarvis_benchstats::summary::{median_u64, Summary};
use serde_json::{json, Value};

use super::{mb, Res, JARVISCTL, JARVISD};

// ---------------------------------------------------------------------------
// Statistics

/// The order statistics of `samples`; a benchmark that measured nothing
/// has failed, so no samples is a panic, never a row of zeros.
pub(crate) fn summarize(samples: &[u64]) -> Summary {
    Summary::of(samples).expect("a benchmark measured no samples")
}

/// The median of `samples` (nearest rank); see [`summarize`].
pub(crate) fn median_of(samples: &[u64]) -> u64 {
    median_u64(samples).expect("a benchmark measured no samples")
}

/// The raw-results form of a [`Summary`] of nanoseconds.
pub(crate) trait SummaryJson {
    fn json(&self) -> Value;
}

impl SummaryJson for Summary {
    fn json(&self) -> Value {
        json!({
            "n": self.n, "min_ns": self.min, "p50_ns": self.p50, "p95_ns": self.p95,
            "p99_ns": self.p99, "max_ns": self.max, "mean_ns": self.mean,
        })
    }
}

// ---------------------------------------------------------------------------
// Processes and their memory

/// Memory of one process, in bytes: VmRSS, VmHWM, its split and the thread
/// count from /proc/PID/status; Pss and private (USS) from smaps_rollup.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ProcMem {
    pub(crate) rss: u64,
    pub(crate) pss: u64,
    pub(crate) uss: u64,
    pub(crate) hwm: u64,
    pub(crate) threads: u64,
    /// VmRSS split: anonymous, file-backed, shared memory (the sealed memfd
    /// copy of jarvisd that jarvisd and its shims run from shows here).
    pub(crate) anon: u64,
    pub(crate) file: u64,
    pub(crate) shmem: u64,
}

impl ProcMem {
    /// An error when the process is gone or a figure is missing.
    pub(crate) fn of(pid: i32) -> Res<ProcMem> {
        let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
        let rollup = fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))?;
        let field = |text: &str, key: &str| -> Res<u64> {
            text.lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
                .ok_or_else(|| format!("no {key} for pid {pid}").into())
        };
        Ok(ProcMem {
            rss: field(&status, "VmRSS")? * 1024,
            hwm: field(&status, "VmHWM")? * 1024,
            threads: field(&status, "Threads")?,
            anon: field(&status, "RssAnon")? * 1024,
            file: field(&status, "RssFile")? * 1024,
            shmem: field(&status, "RssShmem")? * 1024,
            pss: field(&rollup, "Pss")? * 1024,
            uss: (field(&rollup, "Private_Clean")? + field(&rollup, "Private_Dirty")?) * 1024,
        })
    }

    /// Adds another process's figures (the high-water mark and threads
    /// too: a sum over processes).
    pub(crate) fn add(&mut self, o: &ProcMem) {
        self.rss += o.rss;
        self.pss += o.pss;
        self.uss += o.uss;
        self.hwm += o.hwm;
        self.threads += o.threads;
        self.anon += o.anon;
        self.file += o.file;
        self.shmem += o.shmem;
    }

    pub(crate) fn json(&self) -> Value {
        json!({
            "rss_bytes": self.rss, "pss_bytes": self.pss, "uss_bytes": self.uss,
            "hwm_bytes": self.hwm, "threads": self.threads,
            "rss_anon_bytes": self.anon, "rss_file_bytes": self.file, "rss_shmem_bytes": self.shmem,
        })
    }
}

/// Waits (up to 20 s) until jarvisd is back to its idle thread count: tokio
/// keeps idle blocking-pool threads for 10 s, and the steady state is after
/// they are gone. The reading then, and how long it took.
pub(crate) fn settle(group: &str, pid: i32, idle_threads: u64) -> Res<(ProcMem, Duration)> {
    progress!("{group}: waiting up to 20 s for jarvisd's idle blocking threads to exit");
    let t = Instant::now();
    let deadline = t + Duration::from_secs(20);
    let mut m = ProcMem::of(pid)?;
    while m.threads > idle_threads.max(1) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        m = ProcMem::of(pid)?;
    }
    progress!(
        "{group}: settled after {:.1} s: RSS {} MB, {} thread(s)",
        t.elapsed().as_secs_f64(),
        mb(m.rss),
        m.threads
    );
    Ok((m, t.elapsed()))
}

/// What the running native units of a jarvisd cost outside jarvisd: each
/// run is the unit's process and its shim (`jarvisd __shim UNIT`, its
/// parent), so both are counted.
#[derive(Debug, Clone)]
pub(crate) struct UnitsMem {
    /// Per unit: the service process and its shim.
    pub(crate) services: Vec<ProcMem>,
    pub(crate) shims: Vec<ProcMem>,
}

impl UnitsMem {
    /// Reads every unit's pid from `status --json`, its shim as its parent
    /// (which must not be jarvisd itself), and both processes' memory.
    pub(crate) fn of(d: &Daemon, names: &[String]) -> Res<UnitsMem> {
        let status: Value = serde_json::from_str(&d.ctl(&["status", "--json"])?)?;
        let units = status["units"].as_array().ok_or("status without units")?;
        let mut out = UnitsMem {
            services: Vec::new(),
            shims: Vec::new(),
        };
        for name in names {
            let u = units
                .iter()
                .find(|u| u["name"] == name.as_str())
                .ok_or_else(|| format!("{name} not in status"))?;
            let pid = u["pid"]
                .as_i64()
                .ok_or_else(|| format!("{name} has no pid: {u}"))? as i32;
            let shim = ppid_of(pid).ok_or_else(|| format!("{name}: no parent of pid {pid}"))?;
            if shim == d.pid() || shim <= 1 {
                return Err(format!("{name}: pid {pid}'s parent is {shim}, not a shim").into());
            }
            out.services.push(ProcMem::of(pid)?);
            out.shims.push(ProcMem::of(shim)?);
        }
        Ok(out)
    }

    /// Per unit, service + shim Pss, in bytes.
    pub(crate) fn per_unit_pss(&self) -> Vec<u64> {
        self.services
            .iter()
            .zip(&self.shims)
            .map(|(s, h)| s.pss + h.pss)
            .collect()
    }

    pub(crate) fn json(&self) -> Value {
        json!({
            "per_unit_pss_bytes": self.per_unit_pss(),
            "services": self.services.iter().map(ProcMem::json).collect::<Vec<_>>(),
            "shims": self.shims.iter().map(ProcMem::json).collect::<Vec<_>>(),
        })
    }
}

// ---------------------------------------------------------------------------
// Units

/// A native unit that sleeps, limited, restarted always.
pub(crate) fn sleep_unit() -> String {
    r#"description = "bench: a long sleep"

[native]
command = ["sleep", "100000"]

[resources]
memory_max = "32M"
pids_max = 16

[restart]
policy = "always"
"#
    .to_string()
}

/// Writes `names` as units of `text` into `d`'s units dir, runs
/// `jarvisctl up --wait`, checks that all of them run, and returns how long
/// `up --wait` took (ns).
pub(crate) fn bring_up(d: &Daemon, names: &[String], text: &str) -> Res<u64> {
    for n in names {
        fs::write(d.units.join(format!("{n}.toml")), text)?;
    }
    let t = Instant::now();
    d.ctl(&["up", "--wait", "--timeout", "60s"])?;
    let up_ns = t.elapsed().as_nanos() as u64;
    let status: Value = serde_json::from_str(&d.ctl(&["status", "--json"])?)?;
    let units = status["units"].as_array().ok_or("status without units")?;
    let running = units.iter().filter(|u| u["state"] == "running").count();
    if running != names.len() {
        return Err(format!("{running} of {} units running after up --wait", names.len()).into());
    }
    Ok(up_ns)
}

// ---------------------------------------------------------------------------
// A real jarvisd on temporary directories

/// A real jarvisd on temporary directories, with its own cgroup parent.
pub(crate) struct Daemon {
    child: Option<Child>,
    pub(crate) dir: tempfile::TempDir,
    pub(crate) units: PathBuf,
    pub(crate) socket: PathBuf,
    pub(crate) cgroup_parent: String,
}

impl Daemon {
    /// Writes `units` (name, TOML) and starts jarvisd on them; returns once
    /// its socket exists.
    pub(crate) fn start(tag: &str, units: &[(String, String)]) -> Res<Daemon> {
        Daemon::start_with(tag, units, &[])
    }

    /// Like [`Daemon::start`], with more arguments for jarvisd.
    pub(crate) fn start_with(tag: &str, units: &[(String, String)], args: &[&str]) -> Res<Daemon> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("jarvis-bench-{tag}-"))
            .tempdir()?;
        let units_dir = dir.path().join("units");
        fs::create_dir(&units_dir)?;
        for (name, text) in units {
            fs::write(units_dir.join(format!("{name}.toml")), text)?;
        }
        let log = fs::File::create(dir.path().join("jarvisd.log"))?;
        let socket = dir.path().join("jarvis.sock");
        let cgroup_parent = format!("jarvis-bench-{}-{tag}", std::process::id());
        let child = Command::new(JARVISD)
            .arg("--units")
            .arg(&units_dir)
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .arg("--socket")
            .arg(&socket)
            .arg("--cgroup-parent")
            .arg(&cgroup_parent)
            .args(args)
            .env_remove("JARVIS_LOG")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        let mut d = Daemon {
            child: Some(child),
            dir,
            units: units_dir,
            socket,
            cgroup_parent,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !d.socket.exists() {
            d.check_alive()?;
            if Instant::now() > deadline {
                return Err(format!("jarvisd made no socket in 10 s:\n{}", d.log_tail()).into());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(d)
    }

    pub(crate) fn pid(&self) -> i32 {
        self.child.as_ref().map_or(0, |c| c.id() as i32)
    }

    pub(crate) fn check_alive(&mut self) -> Res<()> {
        if let Some(c) = self.child.as_mut() {
            if let Some(st) = c.try_wait()? {
                self.child = None;
                return Err(format!("jarvisd exited {st}:\n{}", self.log_tail()).into());
            }
        }
        Ok(())
    }

    pub(crate) fn log_tail(&self) -> String {
        let log = fs::read_to_string(self.dir.path().join("jarvisd.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Runs jarvisctl against this daemon and insists on success.
    pub(crate) fn ctl(&self, args: &[&str]) -> Res<String> {
        let out = Command::new(JARVISCTL)
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .stdin(Stdio::null())
            .output()?;
        if !out.status.success() {
            return Err(format!(
                "jarvisctl {args:?}: {}: {}{}\njarvisd log:\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr),
                String::from_utf8_lossy(&out.stdout),
                self.log_tail()
            )
            .into());
        }
        Ok(String::from_utf8(out.stdout)?)
    }

    /// SIGTERM, wait, then report (and remove) whatever it left in the cgroup
    /// hierarchies.
    pub(crate) fn stop(&mut self) -> Res<Leftovers> {
        let Some(mut c) = self.child.take() else {
            return Err("jarvisd is not running".into());
        };
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(c.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )?;
        let deadline = Instant::now() + Duration::from_secs(30);
        let st = loop {
            if let Some(st) = c.try_wait()? {
                break st;
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                let _ = c.wait();
                return Err(
                    format!("jarvisd ignored SIGTERM for 30 s:\n{}", self.log_tail()).into(),
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let left = Leftovers::find(&self.cgroup_parent);
        purge_cgroup_parent(&self.cgroup_parent);
        if !st.success() {
            return Err(format!("jarvisd exited {st} on SIGTERM:\n{}", self.log_tail()).into());
        }
        Ok(left)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        purge_cgroup_parent(&self.cgroup_parent);
    }
}

/// What a stopped jarvisd left under its cgroup parent.
pub(crate) struct Leftovers {
    /// Unit cgroups still there (jarvisd removes them on a clean shutdown).
    pub(crate) unit_cgroups: usize,
    /// Hierarchies where the (then empty) parent cgroup itself remained.
    pub(crate) parents: usize,
    /// Processes still in them.
    pub(crate) processes: usize,
}

impl Leftovers {
    pub(crate) fn find(parent: &str) -> Leftovers {
        let mut l = Leftovers {
            unit_cgroups: 0,
            parents: 0,
            processes: 0,
        };
        for m in cgroup_mounts() {
            let p = m.join(parent);
            if !p.is_dir() {
                continue;
            }
            l.parents += 1;
            l.processes += procs_in(&p).len();
            for sub in subdirs(&p) {
                l.unit_cgroups += 1;
                l.processes += procs_in(&sub).len();
            }
        }
        l
    }

    pub(crate) fn describe(&self) -> String {
        if self.unit_cgroups == 0 && self.processes == 0 {
            let parents = if self.parents == 0 {
                "the parent cgroup was gone too".to_string()
            } else {
                format!(
                    "the empty parent cgroup remained in {} hierarchies (the bench removed it)",
                    self.parents
                )
            };
            format!("no unit cgroup and no process left; {parents}")
        } else {
            format!(
                "LEFT {} unit cgroup dir(s) and {} process(es) (the bench removed them)",
                self.unit_cgroups, self.processes
            )
        }
    }

    pub(crate) fn json(&self) -> Value {
        json!({ "unit_cgroups": self.unit_cgroups, "parent_dirs": self.parents, "processes": self.processes })
    }
}

/// Every mounted cgroup hierarchy (v1 and v2).
pub(crate) fn cgroup_mounts() -> Vec<PathBuf> {
    let text = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut out: Vec<PathBuf> = text
        .lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let fstype = right.split(' ').next()?;
            if fstype != "cgroup" && fstype != "cgroup2" {
                return None;
            }
            left.split(' ').nth(4).map(PathBuf::from)
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

pub(crate) fn subdirs(p: &Path) -> Vec<PathBuf> {
    fs::read_dir(p)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect()
}

pub(crate) fn procs_in(cg: &Path) -> Vec<i32> {
    fs::read_to_string(cg.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Kills whatever is in `/<parent>/**` and removes the cgroups, deepest
/// first, in every hierarchy.
pub(crate) fn purge_cgroup_parent(parent: &str) {
    fn purge(dir: &Path) {
        for sub in subdirs(dir) {
            purge(&sub);
        }
        for _ in 0..100 {
            let pids = procs_in(dir);
            if pids.is_empty() {
                break;
            }
            for pid in pids {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = fs::remove_dir(dir);
    }
    for m in cgroup_mounts() {
        let p = m.join(parent);
        if p.is_dir() {
            purge(&p);
        }
    }
}

/// Removes a cgroup parent (and anything under it) when dropped.
pub(crate) struct CgroupParentGuard(pub(crate) String);

impl Drop for CgroupParentGuard {
    fn drop(&mut self) {
        purge_cgroup_parent(&self.0);
    }
}

/// A process, from /proc/PID/stat and cmdline.
#[derive(Debug, Clone)]
pub(crate) struct Proc {
    pub(crate) pid: i32,
    pub(crate) ppid: i32,
    pub(crate) comm: String,
    pub(crate) cmdline: String,
}

/// Every process on the machine.
pub(crate) fn processes() -> Vec<Proc> {
    let mut out = Vec::new();
    for e in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // pid (comm) state ppid ...: comm may hold spaces and parentheses.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = stat[open + 1..close].to_string();
        let ppid = stat[close + 1..]
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let cmdline = fs::read(format!("/proc/{pid}/cmdline"))
            .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
            .unwrap_or_default();
        out.push(Proc {
            pid,
            ppid,
            comm,
            cmdline,
        });
    }
    out
}

pub(crate) fn ppid_of(pid: i32) -> Option<i32> {
    processes()
        .into_iter()
        .find(|p| p.pid == pid)
        .map(|p| p.ppid)
}

/// Rss, Pss and private bytes of one process by mapping name (anonymous
/// mappings together), largest Rss first.
pub(crate) fn smaps_by_mapping(pid: i32) -> Vec<(String, u64, u64, u64)> {
    let text = fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
    let mut by: BTreeMap<String, (u64, u64, u64)> = BTreeMap::new();
    let mut current = String::new();
    for line in text.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if first.contains('-') && first.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            let name = line
                .split_whitespace()
                .skip(5)
                .collect::<Vec<_>>()
                .join(" ");
            current = if name.is_empty() {
                "[anonymous]".into()
            } else {
                name
            };
            continue;
        }
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        let kb = rest
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
            * 1024;
        let e = by.entry(current.clone()).or_default();
        match key {
            "Rss" => e.0 += kb,
            "Pss" => e.1 += kb,
            "Private_Clean" | "Private_Dirty" => e.2 += kb,
            _ => {}
        }
    }
    let mut v: Vec<(String, u64, u64, u64)> =
        by.into_iter().map(|(k, (r, p, u))| (k, r, p, u)).collect();
    v.sort_by_key(|e| std::cmp::Reverse(e.1));
    v
}
