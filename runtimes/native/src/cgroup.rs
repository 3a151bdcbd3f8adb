//! One cgroup per unit, in every hierarchy.
//!
//! The mounted hierarchies come from `/proc/self/mountinfo`, so all three
//! layouts work the same way:
//! - pure cgroup v2: one `cgroup2` mount (usually `/sys/fs/cgroup`);
//! - pure cgroup v1: one `cgroup` mount per controller (or group of
//!   controllers), plus named hierarchies such as `name=systemd`;
//! - hybrid: v1 controller hierarchies plus a `cgroup2` mount (usually
//!   `/sys/fs/cgroup/unified`) with few or no controllers.
//!
//! A unit's cgroup is created in every one of them, so a process that joins
//! all of them is tracked everywhere. Each limit is applied in the hierarchy
//! that has its controller: a v1 hierarchy listing it, or the v2 tree where it
//! is enabled. Values are written through the `cgroups-rs` controllers;
//! what they do not cover (enabling v2 controllers, the v1 cpuset
//! inheritance, resetting a v2 cpuset, the v2 `cgroup.kill`) is written
//! directly.

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cgroups_rs::fs::cpu::CpuController;
use cgroups_rs::fs::cpuset::CpuSetController;
use cgroups_rs::fs::freezer::FreezerController;
use cgroups_rs::fs::memory::MemController;
use cgroups_rs::fs::pid::PidController;
use cgroups_rs::fs::{Controller, MaxValue};
use jarvis_unit::Resources;

/// An error creating, configuring, emptying or removing a cgroup.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// A step failed; `path` is the cgroup directory or file concerned.
    #[error("cgroup {path}: {msg}")]
    Setup { path: String, msg: String },
    /// A filesystem operation failed.
    #[error("{op} {path}: {err}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        err: std::io::Error,
    },
}

impl CgroupError {
    /// Whether it failed for want of something the system may have again
    /// soon (see [`crate::transient`]).
    pub fn is_transient(&self) -> bool {
        match self {
            CgroupError::Io { err, .. } => crate::transient(err),
            CgroupError::Setup { .. } => false,
        }
    }
}

/// Figures read from the kernel's files; `None` where a hierarchy lacks them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CgroupStats {
    /// Bytes charged to the cgroup now.
    pub memory_current: Option<u64>,
    /// `None` when unlimited.
    pub memory_max: Option<u64>,
    /// CPU time consumed, in nanoseconds.
    pub cpu_usage_ns: Option<u64>,
    /// Processes (tasks) in the cgroup now.
    pub pids_current: Option<u64>,
    /// How many times the OOM killer killed a process in this cgroup.
    pub oom_kills: Option<u64>,
}

/// The cgroup `/<parent>/<name>` of one unit.
#[derive(Debug, Clone)]
pub struct UnitCgroup {
    path: String,
}

/// CFS period used for `cpus`, in microseconds.
const CFS_PERIOD_US: u64 = 100_000;
/// The smallest quota the kernel accepts, in microseconds.
const CFS_MIN_QUOTA_US: u64 = 1_000;
/// v1 reports "unlimited" as a huge number (`PAGE_COUNTER_MAX * PAGE_SIZE`).
const V1_UNLIMITED_FLOOR: u64 = 1 << 62;
/// How long [`UnitCgroup::kill_all`] keeps trying.
const KILL_DEADLINE: Duration = Duration::from_secs(2);
/// The v2 controllers a unit cgroup may need.
const V2_CONTROLLERS: [&str; 4] = ["cpu", "cpuset", "memory", "pids"];

/// One mounted cgroup hierarchy.
#[derive(Debug, Clone)]
struct Hierarchy {
    mount: PathBuf,
    /// v1 superblock options (controllers, `name=...`, flags); empty for v2.
    options: Vec<String>,
    v2: bool,
}

impl Hierarchy {
    /// Whether this is the v1 hierarchy of controller `ctl`.
    fn is_v1_of(&self, ctl: &str) -> bool {
        !self.v2 && self.options.iter().any(|o| o == ctl)
    }
}

/// The writable cgroup hierarchies mounted in this mount namespace, one entry
/// per hierarchy (bind mounts of the same one are skipped). Read once: cgroup
/// hierarchies are mounted at boot and stay, and `status` asks for every unit.
fn hierarchies() -> Vec<Hierarchy> {
    static CACHE: std::sync::OnceLock<Vec<Hierarchy>> = std::sync::OnceLock::new();
    if let Some(hs) = CACHE.get() {
        return hs.clone();
    }
    let hs = fs::read_to_string("/proc/self/mountinfo")
        .map(|s| parse_mountinfo(&s))
        .unwrap_or_default();
    if hs.is_empty() {
        return hs;
    }
    CACHE.get_or_init(|| hs).clone()
}

fn parse_mountinfo(text: &str) -> Vec<Hierarchy> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let left: Vec<&str> = left.split(' ').collect();
        let right: Vec<&str> = right.split(' ').collect();
        if left.len() < 6 || right.len() < 3 {
            continue;
        }
        let v2 = match right[0] {
            "cgroup2" => true,
            "cgroup" => false,
            _ => continue,
        };
        if left[5].split(',').any(|o| o == "ro") || !seen.insert(left[2].to_string()) {
            continue;
        }
        let options = if v2 {
            Vec::new()
        } else {
            right[2].split(',').map(str::to_string).collect()
        };
        out.push(Hierarchy {
            mount: PathBuf::from(unescape_mount(left[4])),
            options,
            v2,
        });
    }
    out
}

/// Undoes mountinfo's octal escapes (`\040` for a space, ...).
fn unescape_mount(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `/a/b` from path pieces, empty pieces dropped.
fn join_cgroup_path<'a>(parts: impl IntoIterator<Item = &'a str>) -> String {
    let segs: Vec<&str> = parts
        .into_iter()
        .flat_map(|p| p.split('/'))
        .filter(|s| !s.is_empty())
        .collect();
    format!("/{}", segs.join("/"))
}

fn read_trimmed(path: &Path) -> io::Result<String> {
    fs::read_to_string(path).map(|s| s.trim().to_string())
}

/// Writes `value` to an existing cgroup file (no create, no truncate).
fn write_file(path: &Path, value: &str) -> Result<(), CgroupError> {
    fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|mut f| f.write_all(value.as_bytes()))
        .map_err(|err| CgroupError::Io {
            op: "write",
            path: path.to_path_buf(),
            err,
        })
}

/// The pids listed in a `cgroup.procs` file; empty when it cannot be read.
fn read_procs(path: &Path) -> Vec<i32> {
    fs::read_to_string(path)
        .map(|s| s.lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_default()
}

/// The value of `key` in a flat-keyed file such as `memory.events`.
fn keyed_value(path: &Path, key: &str) -> Option<u64> {
    let text = fs::read_to_string(path).ok()?;
    text.lines().find_map(|l| {
        let mut it = l.split_whitespace();
        (it.next()? == key).then(|| it.next()?.parse().ok())?
    })
}

fn read_u64(path: &Path) -> Option<u64> {
    read_trimmed(path).ok()?.parse().ok()
}

/// Turns a `cgroups-rs` error into ours, naming the cgroup and the step.
fn rs_err(
    dir: &Path,
    what: String,
) -> impl FnOnce(cgroups_rs::fs::error::Error) -> CgroupError + '_ {
    move |e| {
        let cause = std::error::Error::source(&e)
            .map(|c| c.to_string())
            .unwrap_or_else(|| e.to_string());
        CgroupError::Setup {
            path: dir.display().to_string(),
            msg: format!("{what}: {cause}"),
        }
    }
}

impl UnitCgroup {
    /// Creates `/<parent>/<name>` (or reuses it when it exists) in every
    /// mounted hierarchy and applies `limits`. Limits not set are reset to
    /// unlimited/default so a changed unit does not keep old ones.
    pub fn create(parent: &str, name: &str, limits: &Resources) -> Result<UnitCgroup, CgroupError> {
        let cg = UnitCgroup::open(parent, name);
        cg.check_path()?;
        let hs = hierarchies();
        if hs.is_empty() {
            return Err(
                cg.setup_err("no writable cgroup hierarchy is mounted (/proc/self/mountinfo)")
            );
        }
        let mut fresh = true;
        for h in &hs {
            fresh &= cg.create_in(h)?;
        }
        cg.apply(&hs, limits, fresh)?;
        Ok(cg)
    }

    /// How many times the OOM killer killed a process in this cgroup (the
    /// one figure of [`UnitCgroup::stats`] a run's end needs).
    pub fn oom_kills(&self) -> Option<u64> {
        let hs = hierarchies();
        let v1 = hs
            .iter()
            .find(|h| h.is_v1_of("memory"))
            .map(|h| self.dir(h).join("memory.oom_control"));
        if let Some(v) = v1.as_deref().and_then(|p| keyed_value(p, "oom_kill")) {
            return Some(v);
        }
        hs.iter()
            .filter(|h| h.v2)
            .find_map(|h| keyed_value(&self.dir(h).join("memory.events"), "oom_kill"))
    }

    /// Whether the cgroup's directory exists in every hierarchy.
    pub fn exists_everywhere(&self) -> bool {
        let hs = hierarchies();
        self.check_path().is_ok() && !hs.is_empty() && hs.iter().all(|h| self.dir(h).is_dir())
    }

    /// A handle on `/<parent>/<name>` without creating or changing anything.
    /// Empty path pieces are dropped, so `open("", "jarvis")` is `/jarvis`.
    pub fn open(parent: &str, name: &str) -> UnitCgroup {
        UnitCgroup {
            path: join_cgroup_path([parent, name]),
        }
    }

    /// The path as it appears in `/proc/PID/cgroup`, e.g. `/jarvis/web`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The `cgroup.procs` files a process writes its pid to in order to join
    /// this cgroup: one per hierarchy.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        hierarchies()
            .iter()
            .map(|h| self.dir(h).join("cgroup.procs"))
            .collect()
    }

    /// Every pid in the cgroup (union over hierarchies).
    pub fn pids(&self) -> Vec<i32> {
        self.pids_in(&hierarchies())
    }

    /// SIGKILLs every process in the cgroup until it is empty. Uses the v2
    /// `cgroup.kill` where it exists and the v2 cgroup holds every process;
    /// otherwise freezes the cgroup (v1 freezer or v2 `cgroup.freeze`) so
    /// nothing can fork away, SIGKILLs every pid and thaws, repeatedly.
    /// Gives up with an error after about two seconds.
    pub fn kill_all(&self) -> Result<(), CgroupError> {
        let hs = hierarchies();
        // Most often (a run whose main process was all there was) nothing
        // is left: say so without looking for a freezer.
        if self.pids_in(&hs).is_empty() {
            return Ok(());
        }
        let deadline = Instant::now() + KILL_DEADLINE;
        let v2 = hs.iter().find(|h| h.v2).map(|h| self.dir(h));
        let freezer = hs
            .iter()
            .find(|h| h.is_v1_of("freezer"))
            .map(|h| FreezerController::new(self.dir(h), h.mount.clone(), false))
            .filter(|f| f.path().join("freezer.state").exists())
            .or_else(|| {
                let d = v2.clone()?;
                d.join("cgroup.freeze")
                    .exists()
                    .then(|| FreezerController::new(d.clone(), d, true))
            });
        loop {
            let pids = self.pids_in(&hs);
            if pids.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(self.setup_err(&format!(
                    "{} process(es) still alive after SIGKILL for {:?}: {:?}",
                    pids.len(),
                    KILL_DEADLINE,
                    pids
                )));
            }
            let killed_by_v2 = v2.as_ref().is_some_and(|d| {
                let kill = d.join("cgroup.kill");
                if !kill.exists() {
                    return false;
                }
                let held: BTreeSet<i32> = read_procs(&d.join("cgroup.procs")).into_iter().collect();
                pids.iter().all(|p| held.contains(p)) && write_file(&kill, "1").is_ok()
            });
            if !killed_by_v2 {
                self.freeze_and_kill(freezer.as_ref(), &hs, deadline);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends `signal` to every process in the cgroup.
    pub fn signal_all(&self, signal: i32) {
        for pid in self.pids() {
            // SAFETY: kill(2) has no memory effects; errors (ESRCH) are fine.
            unsafe { libc::kill(pid, signal) };
        }
    }

    /// Current figures from the kernel's files (memory, CPU, pids, OOM kills).
    pub fn stats(&self) -> CgroupStats {
        let hs = hierarchies();
        let v1 = |ctl: &str, file: &str| {
            hs.iter()
                .filter(|h| h.is_v1_of(ctl))
                .map(|h| self.dir(h).join(file))
                .find(|p| p.exists())
        };
        let v2 = |file: &str| {
            hs.iter()
                .filter(|h| h.v2)
                .map(|h| self.dir(h).join(file))
                .find(|p| p.exists())
        };
        let memory_current = v1("memory", "memory.usage_in_bytes")
            .or_else(|| v2("memory.current"))
            .and_then(|p| read_u64(&p));
        let memory_max = match v1("memory", "memory.limit_in_bytes") {
            Some(p) => read_u64(&p).filter(|v| *v < V1_UNLIMITED_FLOOR),
            None => v2("memory.max").and_then(|p| read_u64(&p)),
        };
        let cpu_usage_ns = match v1("cpuacct", "cpuacct.usage") {
            Some(p) => read_u64(&p),
            None => v2("cpu.stat")
                .and_then(|p| keyed_value(&p, "usage_usec"))
                .map(|us| us.saturating_mul(1000)),
        };
        let pids_current = v1("pids", "pids.current")
            .or_else(|| v2("pids.current"))
            .and_then(|p| read_u64(&p));
        let oom_kills = match v1("memory", "memory.oom_control") {
            Some(p) => keyed_value(&p, "oom_kill"),
            None => v2("memory.events").and_then(|p| keyed_value(&p, "oom_kill")),
        };
        CgroupStats {
            memory_current,
            memory_max,
            cpu_usage_ns,
            pids_current,
            oom_kills,
        }
    }

    /// Removes the (empty) cgroup from every hierarchy, sub-cgroups first.
    /// Directories already gone are fine; a busy one is retried a few times.
    pub fn remove(&self) -> Result<(), CgroupError> {
        self.check_path()?;
        let mut first_err = None;
        for h in hierarchies() {
            if let Err(e) = remove_tree(&self.dir(&h)) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Whether the cgroup exists in any hierarchy.
    pub fn exists(&self) -> bool {
        self.check_path().is_ok() && hierarchies().iter().any(|h| self.dir(h).is_dir())
    }

    /// Removes this cgroup's own directories where they hold no
    /// sub-cgroups; a sub-cgroup (someone else's) keeps it. Never recursive.
    pub fn remove_if_empty(&self) {
        if self.check_path().is_err() {
            return;
        }
        for h in hierarchies() {
            let _ = fs::remove_dir(self.dir(&h));
        }
    }

    fn setup_err(&self, msg: &str) -> CgroupError {
        CgroupError::Setup {
            path: self.path.clone(),
            msg: msg.to_string(),
        }
    }

    /// Refuses the root cgroup and `.`/`..` components.
    fn check_path(&self) -> Result<(), CgroupError> {
        if self.path == "/" {
            return Err(self.setup_err("refusing to manage the root cgroup"));
        }
        if self.path.split('/').any(|s| s == "." || s == "..") {
            return Err(self.setup_err("path must not contain \".\" or \"..\""));
        }
        Ok(())
    }

    /// This cgroup's directory in hierarchy `h`.
    fn dir(&self, h: &Hierarchy) -> PathBuf {
        h.mount.join(self.path.trim_start_matches('/'))
    }

    fn pids_in(&self, hs: &[Hierarchy]) -> Vec<i32> {
        let set: BTreeSet<i32> = hs
            .iter()
            .flat_map(|h| read_procs(&self.dir(h).join("cgroup.procs")))
            .collect();
        set.into_iter().collect()
    }

    /// Creates every level of the path in `h`, enabling the v2 controllers in
    /// each parent and giving v1 cpuset levels their parent's cpus and mems.
    /// True when the unit's own directory is new (it has the kernel's
    /// defaults, so unset limits need no reset).
    fn create_in(&self, h: &Hierarchy) -> Result<bool, CgroupError> {
        // A v1 hierarchy whose parent level exists (every start but the
        // first): the leaf alone, without walking the levels above it. Not
        // the cpuset, whose every level must have cpus and mems.
        if !h.v2 && !h.is_v1_of("cpuset") {
            let dir = self.dir(h);
            match fs::create_dir(&dir) {
                Ok(()) => return Ok(true),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(err) => {
                    return Err(CgroupError::Io {
                        op: "create cgroup",
                        path: dir,
                        err,
                    })
                }
            }
        }
        let mut fresh = false;
        let mut parent = h.mount.clone();
        for seg in self.path.split('/').filter(|s| !s.is_empty()) {
            let dir = parent.join(seg);
            if h.v2 {
                enable_v2_controllers(&parent);
            }
            fresh = match fs::create_dir(&dir) {
                Ok(()) => true,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
                Err(err) => {
                    return Err(CgroupError::Io {
                        op: "create cgroup",
                        path: dir,
                        err,
                    })
                }
            };
            if h.is_v1_of("cpuset") {
                inherit_cpuset(&parent, &dir)?;
            }
            parent = dir;
        }
        Ok(fresh)
    }

    /// Applies (or resets) every limit in the hierarchy holding its controller.
    /// A `fresh` cgroup (just made in every hierarchy) has the kernel's
    /// defaults, which are what an unset limit is reset to: only the limits
    /// set are written then.
    fn apply(&self, hs: &[Hierarchy], limits: &Resources, fresh: bool) -> Result<(), CgroupError> {
        // The controllers of this cgroup in each v2 hierarchy, read once.
        let v2_controllers: Vec<Option<String>> = hs
            .iter()
            .map(|h| {
                h.v2.then(|| read_trimmed(&self.dir(h).join("cgroup.controllers")).ok())
                    .flatten()
            })
            .collect();
        // (dir, mount, v2) of each hierarchy where `ctl` applies to this cgroup.
        let dirs = |ctl: &str| -> Vec<(PathBuf, PathBuf, bool)> {
            hs.iter()
                .zip(&v2_controllers)
                .filter_map(|(h, v2c)| {
                    let dir = self.dir(h);
                    let ok = if h.v2 {
                        v2c.as_deref()
                            .is_some_and(|c| c.split_whitespace().any(|x| x == ctl))
                    } else {
                        h.is_v1_of(ctl)
                    };
                    ok.then(|| (dir, h.mount.clone(), h.v2))
                })
                .collect()
        };
        let need = |ctl: &str,
                    set: bool,
                    what: &str|
         -> Result<Vec<(PathBuf, PathBuf, bool)>, CgroupError> {
            let d = dirs(ctl);
            if d.is_empty() && set {
                return Err(self.setup_err(&format!(
                    "cannot apply {what}: the {ctl} controller is neither mounted as cgroup v1 nor enabled in cgroup v2"
                )));
            }
            Ok(d)
        };

        // On a fresh cgroup a limit not set is already at its default.
        let skip = |set: bool| fresh && !set;

        for (dir, mount, v2) in need("memory", limits.memory_max.is_some(), "memory_max")? {
            if skip(limits.memory_max.is_some()) {
                break;
            }
            let mem = MemController::new(dir.clone(), mount, v2);
            let limit = limits
                .memory_max
                .map_or(-1, |m| i64::try_from(m).unwrap_or(i64::MAX));
            let swap_file = if v2 {
                "memory.swap.max"
            } else {
                "memory.memsw.limit_in_bytes"
            };
            let has_swap = dir.join(swap_file).exists();
            if v2 {
                mem.set_limit(limit)
                    .map_err(rs_err(&dir, format!("set memory.max to {limit}")))?;
                if has_swap {
                    let swap = if limits.memory_max.is_some() { 0 } else { -1 };
                    mem.set_memswap_limit(swap)
                        .map_err(rs_err(&dir, format!("set memory.swap.max to {swap}")))?;
                }
            } else {
                // v1 insists on limit <= memsw limit at every step (a fresh
                // cgroup's memsw limit is unlimited already).
                if has_swap && !fresh {
                    mem.set_memswap_limit(-1)
                        .map_err(rs_err(&dir, "reset memory.memsw.limit_in_bytes".into()))?;
                }
                mem.set_limit(limit).map_err(rs_err(
                    &dir,
                    format!("set memory.limit_in_bytes to {limit}"),
                ))?;
                if has_swap && limit >= 0 {
                    mem.set_memswap_limit(limit).map_err(rs_err(
                        &dir,
                        format!("set memory.memsw.limit_in_bytes to {limit}"),
                    ))?;
                }
            }
        }

        let cpu_set = limits.cpus.is_some() || limits.cpu_weight.is_some();
        for (dir, mount, v2) in need("cpu", cpu_set, "cpus/cpu_weight")? {
            if skip(cpu_set) {
                break;
            }
            let cpu = CpuController::new(dir.clone(), mount, v2);
            let quota: i64 = match limits.cpus {
                Some(c) if c.is_finite() && c > 0.0 => {
                    let q = (c * CFS_PERIOD_US as f64).round();
                    (q.min(i64::MAX as f64) as i64).max(CFS_MIN_QUOTA_US as i64)
                }
                Some(c) => return Err(self.setup_err(&format!("invalid cpus {c}: must be > 0"))),
                None => -1,
            };
            if v2 {
                cpu.set_cfs_quota_and_period(Some(quota), Some(CFS_PERIOD_US))
                    .map_err(rs_err(
                        &dir,
                        format!("set cpu.max to {quota} {CFS_PERIOD_US}"),
                    ))?;
            } else {
                cpu.set_cfs_period(CFS_PERIOD_US).map_err(rs_err(
                    &dir,
                    format!("set cpu.cfs_period_us to {CFS_PERIOD_US}"),
                ))?;
                cpu.set_cfs_quota(quota)
                    .map_err(rs_err(&dir, format!("set cpu.cfs_quota_us to {quota}")))?;
            }
            let weight = limits.cpu_weight.unwrap_or(100).clamp(1, 10_000);
            let value = if v2 {
                weight
            } else {
                (weight * 1024 / 100).max(2)
            };
            let file = if v2 { "cpu.weight" } else { "cpu.shares" };
            cpu.set_shares(value)
                .map_err(rs_err(&dir, format!("set {file} to {value}")))?;
        }

        for (dir, mount, v2) in need("pids", limits.pids_max.is_some(), "pids_max")? {
            if skip(limits.pids_max.is_some()) {
                break;
            }
            let pids = PidController::new(dir.clone(), mount, v2);
            let max = match limits.pids_max {
                Some(n) => MaxValue::Value(i64::try_from(n).unwrap_or(i64::MAX)),
                None => MaxValue::Max,
            };
            pids.set_pid_max(max)
                .map_err(rs_err(&dir, format!("set pids.max to {max}")))?;
        }

        // (A fresh v1 cpuset got its parent's cpus and mems when it was made.)
        for (dir, mount, v2) in need("cpuset", limits.cpuset.is_some(), "cpuset")? {
            if skip(limits.cpuset.is_some()) {
                break;
            }
            let cpuset = CpuSetController::new(dir.clone(), mount, v2);
            match (&limits.cpuset, v2) {
                (Some(cpus), _) => cpuset
                    .set_cpus(cpus)
                    .map_err(rs_err(&dir, format!("set cpuset.cpus to {cpus:?}")))?,
                // v2: an empty cpuset.cpus means "the parent's".
                (None, true) => write_file(&dir.join("cpuset.cpus"), "\n")?,
                (None, false) => {
                    let from = dir
                        .parent()
                        .map(|p| p.join("cpuset.cpus"))
                        .unwrap_or_default();
                    let cpus = read_trimmed(&from).map_err(|err| CgroupError::Io {
                        op: "read",
                        path: from,
                        err,
                    })?;
                    cpuset
                        .set_cpus(&cpus)
                        .map_err(rs_err(&dir, format!("set cpuset.cpus to {cpus:?}")))?;
                }
            }
        }
        Ok(())
    }

    /// One round of the freezer fallback of [`UnitCgroup::kill_all`].
    fn freeze_and_kill(
        &self,
        freezer: Option<&FreezerController>,
        hs: &[Hierarchy],
        deadline: Instant,
    ) {
        if let Some(f) = freezer {
            if f.freeze().is_ok() {
                // Wait (briefly) until every task is actually frozen.
                let frozen_deadline = (Instant::now() + Duration::from_millis(200)).min(deadline);
                while !is_frozen(f) && Instant::now() < frozen_deadline {
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
        }
        for pid in self.pids_in(hs) {
            // SAFETY: kill(2) has no memory effects; ESRCH is fine.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        if let Some(f) = freezer {
            if let Err(e) = f.thaw() {
                tracing::warn!(cgroup = %self.path, "thaw: {e}");
            }
        }
    }
}

/// Gives a v1 cpuset `dir` its parent's cpus and mems where its own are
/// empty (a new cpuset has none, and no process may join it until it has).
fn inherit_cpuset(parent: &Path, dir: &Path) -> Result<(), CgroupError> {
    for file in ["cpuset.cpus", "cpuset.mems"] {
        let own = dir.join(file);
        let current = read_trimmed(&own).map_err(|err| CgroupError::Io {
            op: "read",
            path: own.clone(),
            err,
        })?;
        if current.is_empty() {
            let from = parent.join(file);
            let value = read_trimmed(&from).map_err(|err| CgroupError::Io {
                op: "read",
                path: from,
                err,
            })?;
            write_file(&own, &value)?;
        }
    }
    Ok(())
}

/// Whether the freezer reports the cgroup fully frozen.
fn is_frozen(f: &FreezerController) -> bool {
    if f.v2() {
        keyed_value(&f.path().join("cgroup.events"), "frozen") == Some(1)
    } else {
        read_trimmed(&f.path().join("freezer.state")).is_ok_and(|s| s == "FROZEN")
    }
}

/// Enables the controllers a unit may need in `parent`'s `subtree_control`,
/// where the parent has them. Failures only mean the limits cannot be set,
/// which [`UnitCgroup::create`] reports when a limit is asked for.
fn enable_v2_controllers(parent: &Path) {
    let available = read_trimmed(&parent.join("cgroup.controllers")).unwrap_or_default();
    let enabled = read_trimmed(&parent.join("cgroup.subtree_control")).unwrap_or_default();
    for ctl in V2_CONTROLLERS {
        let has = |s: &str| s.split_whitespace().any(|x| x == ctl);
        if has(&available) && !has(&enabled) {
            if let Err(e) = write_file(&parent.join("cgroup.subtree_control"), &format!("+{ctl}")) {
                tracing::debug!("enable {ctl}: {e}");
            }
        }
    }
}

/// rmdir `dir` after its sub-cgroups; missing is fine, EBUSY is retried.
fn remove_tree(dir: &Path) -> Result<(), CgroupError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(err) => {
            return Err(CgroupError::Io {
                op: "read",
                path: dir.to_path_buf(),
                err,
            })
        }
    };
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            remove_tree(&entry.path())?;
        }
    }
    let mut delay = Duration::from_millis(10);
    for attempt in 0.. {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && attempt < 5 => {
                std::thread::sleep(delay);
                delay *= 2;
            }
            Err(err) => {
                return Err(CgroupError::Io {
                    op: "remove cgroup",
                    path: dir.to_path_buf(),
                    err,
                })
            }
        }
    }
    unreachable!("the retry loop returns")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hybrid_mountinfo() {
        let text = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:32 / /mnt/memory\\040copy rw,relatime - cgroup cgroup rw,memory
37 31 0:33 / /sys/fs/cgroup/net_cls,net_prio ro,relatime - cgroup cgroup rw,net_cls,net_prio
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime shared:1 - cgroup2 cgroup2 rw
";
        let hs = parse_mountinfo(text);
        let mounts: Vec<_> = hs.iter().map(|h| h.mount.to_str().unwrap()).collect();
        assert_eq!(
            mounts,
            [
                "/sys/fs/cgroup/cpu",
                "/sys/fs/cgroup/memory",
                "/sys/fs/cgroup/systemd",
                "/sys/fs/cgroup/unified"
            ]
        );
        assert!(hs[1].is_v1_of("memory"));
        assert!(!hs[0].is_v1_of("cpuacct"));
        assert!(hs[2].is_v1_of("name=systemd"));
        assert!(hs[3].v2 && !hs[3].is_v1_of("memory"));
        assert_eq!(unescape_mount("/a\\040b"), "/a b");
    }

    #[test]
    fn paths() {
        assert_eq!(UnitCgroup::open("jarvis", "web").path(), "/jarvis/web");
        assert_eq!(UnitCgroup::open("/jarvis/", "web").path(), "/jarvis/web");
        assert_eq!(UnitCgroup::open("", "jarvis").path(), "/jarvis");
        assert!(UnitCgroup::open("", "").check_path().is_err());
        assert!(UnitCgroup::open("jarvis", "..").check_path().is_err());
        assert!(UnitCgroup::open("", "").remove().is_err());
    }

    #[test]
    fn keyed_values() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("memory.events");
        fs::write(&p, "low 0\nhigh 0\nmax 3\noom 1\noom_kill 2\n").unwrap();
        assert_eq!(keyed_value(&p, "oom_kill"), Some(2));
        assert_eq!(keyed_value(&p, "oom"), Some(1));
        assert_eq!(keyed_value(&p, "nope"), None);
    }
}
