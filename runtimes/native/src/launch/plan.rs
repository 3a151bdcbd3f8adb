//! The launch plan: everything the child of a spawn does between its
//! `clone` and `execve`, worked out in the parent first.
//!
//! The parent resolves the user and groups (the group database), the
//! working directory, the capabilities and the program, and turns every
//! string into a C string, so that the child runs raw system calls only:
//! no allocation, no lock, no library state. That makes the child safe to
//! start from a multi-threaded process (jarvisd itself) as from the
//! single-threaded shim, in memory it shares with the parent (a vfork-style
//! clone), and lets it do the launcher's work in place, without loading
//! another program first.
//!
//! A failed step does not run the program. The child reports it as one
//! number, the step and the errno packed together ([`Failure`]), which the
//! parent turns back into a sentence with the names the plan remembers.

use std::collections::HashSet;
use std::ffi::CString;
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::OnceLock;

use caps::{CapSet, Capability, CapsHashSet};
use nix::unistd::{Gid, Group, Uid, User};
use serde::{Deserialize, Serialize};

use super::{LaunchSpec, DEFAULT_PATH};

/// One step of the child's setup, as the child reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Cgroup(u32),
    Setsid,
    Ctty,
    Chdir,
    Bounding(u32),
    Inheritable,
    KeepCaps,
    Setgroups,
    Setgid,
    Setuid,
    Capabilities,
    Ambient(u32),
    NoNewPrivs,
    Exec(u32),
    /// Putting the command's descriptor on stdio number `n`.
    Stdio(u32),
}

/// Indexes (cgroup files, capabilities, program candidates) stay below this.
const INDEX_LIMIT: u32 = 0x1000;
/// errno values stay below this (the kernel's largest is 4095).
const ERRNO_BITS: u32 = 12;

impl Step {
    fn code(self) -> u32 {
        let (base, i) = match self {
            Step::Cgroup(i) => (1, i),
            Step::Setsid => (2, 0),
            Step::Chdir => (3, 0),
            Step::Bounding(n) => (4, n),
            Step::Inheritable => (5, 0),
            Step::KeepCaps => (6, 0),
            Step::Setgroups => (7, 0),
            Step::Setgid => (8, 0),
            Step::Setuid => (9, 0),
            Step::Capabilities => (10, 0),
            Step::Ambient(n) => (11, n),
            Step::NoNewPrivs => (12, 0),
            Step::Exec(i) => (13, i),
            Step::Ctty => (14, 0),
            Step::Stdio(n) => (15, n),
        };
        base * INDEX_LIMIT + (i % INDEX_LIMIT)
    }

    fn from_code(code: u32) -> Option<Step> {
        let (base, i) = (code / INDEX_LIMIT, code % INDEX_LIMIT);
        Some(match base {
            1 => Step::Cgroup(i),
            2 => Step::Setsid,
            3 => Step::Chdir,
            4 => Step::Bounding(i),
            5 => Step::Inheritable,
            6 => Step::KeepCaps,
            7 => Step::Setgroups,
            8 => Step::Setgid,
            9 => Step::Setuid,
            10 => Step::Capabilities,
            11 => Step::Ambient(i),
            12 => Step::NoNewPrivs,
            13 => Step::Exec(i),
            14 => Step::Ctty,
            15 => Step::Stdio(i),
            _ => return None,
        })
    }
}

/// A failed step and its errno.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Failure {
    step: Step,
    errno: i32,
}

impl Failure {
    /// Packs the failure into one `i32`: what crosses from a forked child
    /// to `Command::spawn`'s caller is the raw OS error of the error the
    /// `pre_exec` hook returns, and nothing else.
    pub(super) fn to_raw(self) -> i32 {
        let errno = (self.errno as u32) & ((1 << ERRNO_BITS) - 1);
        ((self.step.code() << ERRNO_BITS) | errno) as i32
    }

    /// The failure packed by [`Failure::to_raw`]; `None` for a plain errno
    /// (a failure of the standard library's own steps in the child).
    pub(super) fn from_raw(raw: i32) -> Option<Failure> {
        let raw = u32::try_from(raw).ok()?;
        let step = Step::from_code(raw >> ERRNO_BITS)?;
        Some(Failure {
            step,
            errno: (raw & ((1 << ERRNO_BITS) - 1)) as i32,
        })
    }
}

/// A null-terminated array of pointers into C strings the plan owns.
struct CArray(Vec<*const libc::c_char>);

// SAFETY: the pointers point into `CString`s owned by the same `Plan`,
// which never changes them after building the array; sharing read-only
// pointers between threads is sound.
unsafe impl Send for CArray {}
// SAFETY: as above.
unsafe impl Sync for CArray {}

impl CArray {
    fn new(strings: &[CString]) -> CArray {
        let mut v: Vec<*const libc::c_char> = strings.iter().map(|s| s.as_ptr()).collect();
        v.push(std::ptr::null());
        CArray(v)
    }
}

/// Everything the child does, ready to run.
pub(super) struct Plan {
    arg0: String,
    cgroup_procs: Vec<CString>,
    dir: CString,
    uid: Uid,
    gid: Gid,
    groups: Vec<libc::gid_t>,
    /// Capabilities kept, as a mask of capability numbers.
    keep: u64,
    last_cap: u32,
    no_new_privileges: bool,
    /// Make stdin, a terminal, the session's controlling terminal.
    controlling_terminal: bool,
    /// The program: one path, or the candidates of a `PATH` search, tried
    /// in order.
    programs: Vec<CString>,
    _argv: Vec<CString>,
    _envp: Vec<CString>,
    argv_ptrs: CArray,
    envp_ptrs: CArray,
    sigrtmax: libc::c_int,
}

impl Plan {
    /// Works out the plan for `spec`, checking what can be checked before
    /// the fork: the user, groups and capabilities exist and can be had,
    /// and the program is there.
    pub(super) fn new(spec: &LaunchSpec, identity: Option<Identity>) -> Result<Plan, String> {
        let cgroup_procs = spec
            .cgroup_procs
            .iter()
            .map(|p| {
                CString::new(p.as_os_str().as_bytes())
                    .map_err(|_| format!("join cgroup {}: a NUL byte in the path", p.display()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if cgroup_procs.len() as u32 >= INDEX_LIMIT {
            return Err("too many cgroups to join".into());
        }
        let id = match identity {
            Some(id) => id,
            None => resolve_identity(spec)?,
        };
        let dir = match &spec.working_dir {
            Some(d) => PathBuf::from(d),
            None => id
                .home
                .clone()
                .filter(|h| h.is_dir())
                .unwrap_or_else(|| PathBuf::from("/")),
        };
        let keep_set = parse_caps(&spec.capabilities)?;
        check_caps(&keep_set)?;
        let keep = keep_set.iter().fold(0u64, |m, c| m | (1u64 << c.index()));

        let Some(arg0) = spec.argv.first() else {
            return Err("exec: the command is empty".into());
        };
        let path_var = spec
            .env
            .iter()
            .rev()
            .find(|(k, _)| k == "PATH")
            .map_or(DEFAULT_PATH, |(_, v)| v.as_str());
        let cstr = |s: &[u8], what: &str| {
            CString::new(s).map_err(|_| format!("exec {arg0}: {what} contains a NUL byte"))
        };
        let programs = program_candidates(arg0, path_var, &dir)?
            .iter()
            .map(|p| cstr(p.as_os_str().as_bytes(), "the program path"))
            .collect::<Result<Vec<_>, _>>()?;
        let argv = spec
            .argv
            .iter()
            .map(|a| cstr(a.as_bytes(), "an argument"))
            .collect::<Result<Vec<_>, _>>()?;
        let envp = spec
            .env
            .iter()
            .map(|(k, v)| cstr(format!("{k}={v}").as_bytes(), "the environment"))
            .collect::<Result<Vec<_>, _>>()?;
        let dir_c = CString::new(dir.as_os_str().as_bytes())
            .map_err(|_| format!("chdir {}: a NUL byte in the path", dir.display()))?;
        let argv_ptrs = CArray::new(&argv);
        let envp_ptrs = CArray::new(&envp);
        Ok(Plan {
            arg0: arg0.clone(),
            cgroup_procs,
            dir: dir_c,
            uid: Uid::from_raw(id.uid),
            gid: Gid::from_raw(id.gid),
            groups: id.groups,
            keep,
            last_cap: last_cap(),
            no_new_privileges: spec.no_new_privileges,
            controlling_terminal: false,
            programs,
            _argv: argv,
            _envp: envp,
            argv_ptrs,
            envp_ptrs,
            sigrtmax: libc::SIGRTMAX(),
        })
    }

    /// The plan with stdin, which must then be a terminal no other session
    /// has, made the controlling terminal of the command's new session
    /// (`TIOCSCTTY` right after `setsid`): the terminal's signals (Ctrl-C)
    /// and `/dev/tty` then reach the command.
    pub(super) fn with_controlling_terminal(mut self, on: bool) -> Plan {
        self.controlling_terminal = on;
        self
    }

    /// Runs the plan in this process: joins the cgroups, marks every
    /// descriptor above stdio close-on-exec, starts a session (with stdin
    /// as its controlling terminal when the plan says so), changes
    /// directory, drops capabilities and switches identity, sets
    /// no_new_privs, resets the signals and execs the program. Returns only
    /// if a step failed; nothing was exec'd then.
    ///
    /// # Safety
    ///
    /// Only system calls run here, on memory the plan owns, so it may run
    /// in the child of a fork of a multi-threaded process. It changes the
    /// calling process for good (identity, capabilities, session): call it
    /// only in a process that is about to become the program, with one
    /// thread.
    pub(super) unsafe fn apply(&self, stdio: [RawFd; 3]) -> Failure {
        let fail = |step: Step| Failure {
            step,
            errno: errno(),
        };

        // 0. The command's stdin, stdout and stderr on 0, 1 and 2, kept
        // across the exec (the launch gives descriptors above 2).
        for (n, fd) in stdio.into_iter().enumerate() {
            if libc::dup2(fd, n as RawFd) < 0 {
                return fail(Step::Stdio(n as u32));
            }
        }

        // 1. The cgroups first, so every descendant is contained. "0" is
        // the writer itself, in v1 and v2 alike.
        for (i, path) in self.cgroup_procs.iter().enumerate() {
            let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd < 0 {
                return fail(Step::Cgroup(i as u32));
            }
            let n = libc::write(fd, c"0".as_ptr().cast(), 1);
            let failure = (n != 1).then(|| fail(Step::Cgroup(i as u32)));
            libc::close(fd);
            if let Some(f) = failure {
                return f;
            }
        }

        // 2. Nothing but stdio survives the exec (closing instead would
        // also close the descriptor the caller uses to see the exec).
        cloexec_above_stdio();

        // 3. A session of its own.
        if libc::setsid() < 0 {
            return fail(Step::Setsid);
        }
        // Its controlling terminal, taken only if no other session has it
        // (0: never stolen); the session's process group is its foreground.
        if self.controlling_terminal && libc::ioctl(0, libc::TIOCSCTTY, 0) != 0 {
            return fail(Step::Ctty);
        }

        // 4. Working directory.
        if libc::chdir(self.dir.as_ptr()) != 0 {
            return fail(Step::Chdir);
        }

        // 5. Capabilities and identity: the bounding set first, then the
        // inheritable set, then the ids (keeping the permitted set), then
        // exactly `keep` in every set.
        for n in 0..=self.last_cap {
            if self.keep & (1u64 << n) == 0
                && libc::prctl(libc::PR_CAPBSET_DROP, n as libc::c_ulong, 0, 0, 0) != 0
            {
                return fail(Step::Bounding(n));
            }
        }
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        );
        let mut data = [CapData::default(); 2];
        if capget(&mut data) != 0 {
            return fail(Step::Inheritable);
        }
        data[0].inheritable = self.keep as u32;
        data[1].inheritable = (self.keep >> 32) as u32;
        if capset(&data) != 0 {
            return fail(Step::Inheritable);
        }
        if !self.uid.is_root() && libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0 {
            return fail(Step::KeepCaps);
        }
        // Raw system calls: they change this thread only, which is the
        // whole process here (glibc's wrappers would signal other threads).
        if libc::syscall(
            libc::SYS_setgroups,
            self.groups.len() as libc::size_t,
            self.groups.as_ptr(),
        ) != 0
        {
            return fail(Step::Setgroups);
        }
        let gid = self.gid.as_raw();
        if libc::syscall(libc::SYS_setresgid, gid, gid, gid) != 0 {
            return fail(Step::Setgid);
        }
        let uid = self.uid.as_raw();
        if libc::syscall(libc::SYS_setresuid, uid, uid, uid) != 0 {
            return fail(Step::Setuid);
        }
        for d in &mut data {
            d.effective = d.inheritable;
            d.permitted = d.inheritable;
        }
        if capset(&data) != 0 {
            return fail(Step::Capabilities);
        }
        for n in 0..=self.last_cap.min(63) {
            if self.keep & (1u64 << n) != 0
                && libc::prctl(
                    libc::PR_CAP_AMBIENT,
                    libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
                    n as libc::c_ulong,
                    0,
                    0,
                ) != 0
            {
                return fail(Step::Ambient(n));
            }
        }

        // 6. no_new_privs.
        if self.no_new_privileges && libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return fail(Step::NoNewPrivs);
        }

        // 7. Default signal dispositions (an ignored signal stays ignored
        // across exec), then the default mask: in that order, so no handler
        // of the parent's runs here (the launch blocks every signal around
        // the clone).
        for n in 1..=self.sigrtmax {
            if n != libc::SIGKILL && n != libc::SIGSTOP {
                libc::signal(n, libc::SIG_DFL);
            }
        }
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());

        // 8. Exec: the program, or the first candidate of the PATH search
        // that the new identity may run.
        let mut last = fail(Step::Exec(0));
        for (i, prog) in self.programs.iter().enumerate() {
            libc::execve(
                prog.as_ptr(),
                self.argv_ptrs.0.as_ptr(),
                self.envp_ptrs.0.as_ptr(),
            );
            last = fail(Step::Exec(i as u32));
            if !matches!(last.errno, libc::EACCES | libc::ENOENT | libc::ENOTDIR) {
                break;
            }
        }
        last
    }

    /// What went wrong, in words.
    pub(super) fn describe(&self, f: Failure) -> String {
        let io = std::io::Error::from_raw_os_error(f.errno);
        let desc = nix::errno::Errno::from_raw(f.errno).desc();
        let path = |list: &[CString], i: u32| {
            list.get(i as usize)
                .map(|c| c.to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        match f.step {
            Step::Cgroup(i) => format!("join cgroup {}: {io}", path(&self.cgroup_procs, i)),
            Step::Setsid => format!("setsid: {desc}"),
            Step::Ctty => format!("make stdin the controlling terminal (TIOCSCTTY): {io}"),
            Step::Chdir => format!("chdir {}: {desc}", self.dir.to_string_lossy()),
            Step::Bounding(n) => {
                format!(
                    "capabilities: drop {} from the bounding set: {io}",
                    cap_name(n)
                )
            }
            Step::Inheritable => format!("capabilities: set inheritable: {io}"),
            Step::KeepCaps => format!("capabilities: PR_SET_KEEPCAPS: {io}"),
            Step::Setgroups => {
                let list: Vec<String> = self.groups.iter().map(|g| g.to_string()).collect();
                format!("setgroups [{}]: {desc}", list.join(","))
            }
            Step::Setgid => format!("setgid {}: {desc}", self.gid),
            Step::Setuid => format!("setuid {}: {desc}", self.uid),
            Step::Capabilities => format!("capabilities: set effective and permitted: {io}"),
            Step::Ambient(n) => {
                format!(
                    "capabilities: raise {} in the ambient set: {io}",
                    cap_name(n)
                )
            }
            Step::NoNewPrivs => format!("no_new_privileges: {io}"),
            Step::Exec(i) => format!("exec {}: {desc}", path(&self.programs, i)),
            Step::Stdio(n) => format!("set up descriptor {n}: {io}"),
        }
    }

    /// The error `Command::spawn` returned for a child running this plan,
    /// in words.
    pub(super) fn spawn_error(&self, err: &std::io::Error) -> String {
        match err.raw_os_error().and_then(Failure::from_raw) {
            Some(f) => self.describe(f),
            None => format!("start {}: {err}", self.arg0),
        }
    }

    /// The errno behind the error `Command::spawn` returned for a child
    /// running this plan (the failed step's, or the clone's own).
    pub(super) fn spawn_errno(err: &std::io::Error) -> Option<i32> {
        match err.raw_os_error().and_then(Failure::from_raw) {
            Some(f) => Some(f.errno),
            None => err.raw_os_error(),
        }
    }
}

fn errno() -> i32 {
    // SAFETY: errno is thread-local and always readable.
    unsafe { *libc::__errno_location() }
}

/// Marks every descriptor above 2 close-on-exec.
///
/// # Safety
///
/// System calls only; see [`Plan::apply`].
unsafe fn cloexec_above_stdio() {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    if libc::syscall(
        libc::SYS_close_range,
        3 as libc::c_uint,
        libc::c_uint::MAX,
        CLOSE_RANGE_CLOEXEC,
    ) == 0
    {
        return;
    }
    // Before Linux 5.11: one descriptor at a time, up to the limit.
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    let top = if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
        lim.rlim_cur.min(1 << 20) as libc::c_int
    } else {
        1 << 16
    };
    for fd in 3..top {
        let flags = libc::fcntl(fd, libc::F_GETFD);
        if flags >= 0 && flags & libc::FD_CLOEXEC == 0 {
            libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
        }
    }
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const CAP_VERSION_3: u32 = 0x2008_0522;

/// capget(2) of this thread.
///
/// # Safety
///
/// A system call on memory we own.
unsafe fn capget(data: &mut [CapData; 2]) -> libc::c_long {
    let mut hdr = CapHeader {
        version: CAP_VERSION_3,
        pid: 0,
    };
    libc::syscall(libc::SYS_capget, &mut hdr, data.as_mut_ptr())
}

/// capset(2) of this thread.
///
/// # Safety
///
/// A system call on memory we own.
unsafe fn capset(data: &[CapData; 2]) -> libc::c_long {
    let mut hdr = CapHeader {
        version: CAP_VERSION_3,
        pid: 0,
    };
    libc::syscall(libc::SYS_capset, &mut hdr, data.as_ptr())
}

/// The highest capability number the kernel knows.
fn last_cap() -> u32 {
    static LAST: OnceLock<u32> = OnceLock::new();
    *LAST.get_or_init(|| {
        let known = caps::all().iter().map(|c| u32::from(c.index())).max();
        std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
            .or(known)
            .unwrap_or(40)
            .min(63)
    })
}

fn cap_name(n: u32) -> String {
    caps::all()
        .into_iter()
        .find(|c| u32::from(c.index()) == n)
        .map_or_else(|| format!("capability {n}"), |c| c.to_string())
}

/// Who the command runs as: the spec's user and groups looked up in the
/// user and group databases. [`resolve_identity`] does it ahead of a spawn
/// where the lookups are cheap (a long-lived process has the databases'
/// modules loaded already); a fresh process would pay for loading them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
    /// The supplementary groups, in order.
    pub groups: Vec<u32>,
    /// The user's home directory, if the user has an entry.
    pub home: Option<PathBuf>,
}

/// Looks up the user and groups of `spec`.
pub fn resolve_identity(spec: &LaunchSpec) -> Result<Identity, String> {
    let (uid, entry) = match spec.user.as_deref() {
        None => (
            Uid::from_raw(0),
            User::from_uid(Uid::from_raw(0)).ok().flatten(),
        ),
        Some(u) => match u.parse::<u32>() {
            Ok(n) => {
                let uid = Uid::from_raw(n);
                let entry =
                    User::from_uid(uid).map_err(|e| format!("look up uid {n}: {}", e.desc()))?;
                (uid, entry)
            }
            Err(_) => {
                let entry = User::from_name(u)
                    .map_err(|e| format!("look up user {u:?}: {}", e.desc()))?
                    .ok_or_else(|| format!("user {u:?} does not exist"))?;
                (entry.uid, Some(entry))
            }
        },
    };
    let gid = match spec.group.as_deref() {
        Some(g) => resolve_group(g)?,
        // A uid without a passwd entry gets the gid of the same number.
        None => entry
            .as_ref()
            .map_or(Gid::from_raw(uid.as_raw()), |e| e.gid),
    };
    let mut groups = Vec::new();
    if let Some(e) = &entry {
        let name =
            CString::new(e.name.as_bytes()).map_err(|_| format!("user {:?}: bad name", e.name))?;
        groups = nix::unistd::getgrouplist(&name, gid)
            .map_err(|err| format!("groups of user {:?}: {}", e.name, err.desc()))?;
    }
    for g in &spec.supplementary_groups {
        let gid = resolve_group(g)?;
        if !groups.contains(&gid) {
            groups.push(gid);
        }
    }
    if groups.is_empty() {
        groups.push(gid);
    }
    Ok(Identity {
        uid: uid.as_raw(),
        gid: gid.as_raw(),
        groups: groups.iter().map(|g| g.as_raw()).collect(),
        home: entry.map(|e| e.dir),
    })
}

fn resolve_group(g: &str) -> Result<Gid, String> {
    if let Ok(n) = g.parse::<u32>() {
        return Ok(Gid::from_raw(n));
    }
    Group::from_name(g)
        .map_err(|e| format!("look up group {g:?}: {}", e.desc()))?
        .map(|gr| gr.gid)
        .ok_or_else(|| format!("group {g:?} does not exist"))
}

pub(super) fn parse_caps(names: &[String]) -> Result<CapsHashSet, String> {
    names
        .iter()
        .map(|n| {
            Capability::from_str(&caps::to_canonical(n))
                .map_err(|_| format!("unknown capability {n:?}"))
        })
        .collect()
}

/// Every capability kept must be in this thread's permitted and bounding
/// sets (the child starts with this thread's).
fn check_caps(keep: &CapsHashSet) -> Result<(), String> {
    if keep.is_empty() {
        return Ok(());
    }
    let cap_err = |what: &str, e: caps::errors::CapsError| format!("capabilities: {what}: {e}");
    let permitted =
        caps::read(None, CapSet::Permitted).map_err(|e| cap_err("read permitted set", e))?;
    let bounding =
        caps::read(None, CapSet::Bounding).map_err(|e| cap_err("read bounding set", e))?;
    let mut keep_sorted: Vec<_> = keep.iter().collect();
    keep_sorted.sort_by_key(|c| c.index());
    for c in keep_sorted {
        if !permitted.contains(c) || !bounding.contains(c) {
            return Err(format!(
                "capabilities: cannot keep {c}: jarvisd itself does not have it"
            ));
        }
    }
    Ok(())
}

/// The paths to try for `arg0`: itself when it has a slash, else every
/// executable file named `arg0` in `path_var`, in order (a relative entry
/// is relative to `dir`, where the child will be). The child tries them in
/// turn, as its new identity, until one execs.
fn program_candidates(arg0: &str, path_var: &str, dir: &Path) -> Result<Vec<PathBuf>, String> {
    if arg0.is_empty() {
        return Err("exec: the program name is empty".into());
    }
    if arg0.contains('/') {
        return Ok(vec![PathBuf::from(arg0)]);
    }
    let mut seen = HashSet::new();
    let mut found = Vec::new();
    for entry in path_var.split(':') {
        let entry = if entry.is_empty() { "." } else { entry };
        if !seen.insert(entry) || found.len() as u32 >= INDEX_LIMIT - 1 {
            continue;
        }
        let candidate = Path::new(entry).join(arg0);
        let on_disk = if candidate.is_relative() {
            dir.join(&candidate)
        } else {
            candidate.clone()
        };
        let is_exec_file = std::fs::metadata(&on_disk)
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
        if is_exec_file {
            found.push(candidate);
        }
    }
    if found.is_empty() {
        return Err(format!(
            "exec {arg0}: No such file or directory (not found in PATH {path_var})"
        ));
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_candidates_in_path_order() {
        assert_eq!(
            program_candidates("/x/y", "/bin", Path::new("/")).unwrap(),
            [PathBuf::from("/x/y")]
        );
        let sh = program_candidates("sh", DEFAULT_PATH, Path::new("/")).unwrap();
        assert!(sh.iter().all(|p| p.file_name().unwrap() == "sh"), "{sh:?}");
        let err = program_candidates("no-such-program-jarvis", "/bin", Path::new("/")).unwrap_err();
        assert!(
            err.starts_with("exec no-such-program-jarvis: No such file or directory"),
            "{err}"
        );
        // A relative entry is looked up from the working directory.
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("bin")).unwrap();
        let prog = tmp.path().join("bin/tool");
        std::fs::write(&prog, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(
            program_candidates("tool", "bin:/bin", tmp.path()).unwrap(),
            [PathBuf::from("bin/tool")]
        );
    }

    #[test]
    fn capability_names() {
        let set = parse_caps(&["CAP_NET_ADMIN".into(), "net_raw".into()]).unwrap();
        assert!(set.contains(&Capability::CAP_NET_ADMIN) && set.contains(&Capability::CAP_NET_RAW));
        assert_eq!(
            parse_caps(&["CAP_BOGUS".into()]).unwrap_err(),
            "unknown capability \"CAP_BOGUS\""
        );
    }

    #[test]
    fn failures_round_trip_through_one_errno() {
        let steps = [
            Step::Cgroup(0),
            Step::Cgroup(9),
            Step::Setsid,
            Step::Ctty,
            Step::Chdir,
            Step::Bounding(40),
            Step::Inheritable,
            Step::KeepCaps,
            Step::Setgroups,
            Step::Setgid,
            Step::Setuid,
            Step::Capabilities,
            Step::Ambient(10),
            Step::NoNewPrivs,
            Step::Exec(3),
        ];
        for step in steps {
            for errno in [libc::EPERM, libc::ENOENT, libc::EACCES, 4095] {
                let f = Failure { step, errno };
                let raw = f.to_raw();
                assert!(raw > 0, "{f:?}");
                assert_eq!(Failure::from_raw(raw), Some(f));
            }
        }
        // A plain errno (the standard library's own steps) is no failure
        // of ours.
        assert_eq!(Failure::from_raw(libc::ENOENT), None);
        assert_eq!(Failure::from_raw(-1), None);
    }

    #[test]
    fn describes_failures_by_name() {
        let spec = LaunchSpec {
            argv: vec!["/bin/true".into()],
            env: vec![],
            user: Some("4242".into()),
            group: None,
            supplementary_groups: vec!["4343".into()],
            working_dir: Some("/".into()),
            capabilities: vec![],
            no_new_privileges: true,
            cgroup_procs: vec![PathBuf::from("/sys/fs/cgroup/x/cgroup.procs")],
        };
        let plan = Plan::new(&spec, None).unwrap();
        let say = |step, errno| plan.describe(Failure { step, errno });
        assert_eq!(
            say(Step::Exec(0), libc::EACCES),
            "exec /bin/true: Permission denied"
        );
        assert_eq!(
            say(Step::Cgroup(0), libc::ENOENT),
            "join cgroup /sys/fs/cgroup/x/cgroup.procs: No such file or directory (os error 2)"
        );
        assert_eq!(
            say(Step::Ctty, libc::ENOTTY),
            "make stdin the controlling terminal (TIOCSCTTY): Inappropriate ioctl for device (os error 25)"
        );
        assert_eq!(
            say(Step::Setgroups, libc::EPERM),
            "setgroups [4343]: Operation not permitted"
        );
        assert_eq!(
            say(Step::Bounding(12), libc::EPERM),
            "capabilities: drop CAP_NET_ADMIN from the bounding set: Operation not permitted (os error 1)"
        );
        let err = std::io::Error::from_raw_os_error(
            Failure {
                step: Step::Setuid,
                errno: libc::EPERM,
            }
            .to_raw(),
        );
        assert_eq!(
            plan.spawn_error(&err),
            "setuid 4242: Operation not permitted"
        );
        assert_eq!(
            plan.spawn_error(&std::io::Error::from_raw_os_error(libc::EMFILE)),
            "start /bin/true: Too many open files (os error 24)"
        );
    }
}
