//! Spawning through the launcher.
//!
//! [`spawn`] runs `LAUNCHER LAUNCH_ARG` (a fresh exec of the daemon binary)
//! with stdin on /dev/null and stdout+stderr on one pipe. The [`LaunchSpec`]
//! travels as JSON in a memfd; failures come back on an error pipe whose
//! write end is close-on-exec in the launcher, so EOF without bytes means the
//! command was exec'd. Both descriptors are named in the launcher's
//! environment variable `JARVIS_LAUNCH_FDS=SPEC_FD,ERR_FD`.

use std::collections::HashSet;
use std::convert::Infallible;
use std::ffi::CString;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::str::FromStr;

use caps::{CapSet, Capability, CapsHashSet};
use nix::unistd::{Gid, Group, Uid, User};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;

/// `jarvisd LAUNCH_ARG` runs [`launcher_main`].
pub const LAUNCH_ARG: &str = "__launch";

/// The launcher's environment variable naming its spec and error descriptors.
const FDS_ENV: &str = "JARVIS_LAUNCH_FDS";

/// `PATH` used to find a bare argv[0] when the spec's env has none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Everything the launcher needs; travels to it serialized.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LaunchSpec {
    /// argv[0] is the program; a bare name is looked up in `PATH` of `env`.
    pub argv: Vec<String>,
    /// The complete environment of the command.
    pub env: Vec<(String, String)>,
    /// Name or numeric uid; `None` keeps root.
    pub user: Option<String>,
    /// Name or numeric gid; `None`: the user's primary group (root: 0).
    pub group: Option<String>,
    /// Names or gids, added to the groups the user has in the group database.
    pub supplementary_groups: Vec<String>,
    /// Default: the user's home directory if it exists, else `/`.
    pub working_dir: Option<String>,
    /// Capabilities kept (e.g. "CAP_NET_ADMIN"); all others are dropped from
    /// every set, bounding set included.
    pub capabilities: Vec<String>,
    /// Sets `PR_SET_NO_NEW_PRIVS` before the exec.
    pub no_new_privileges: bool,
    /// `cgroup.procs` files to join before anything else.
    pub cgroup_procs: Vec<PathBuf>,
}

/// Why a command could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// The launcher could not be started at all.
    #[error("cannot start launcher {path}: {err}")]
    Launcher {
        path: PathBuf,
        #[source]
        err: std::io::Error,
    },
    /// A setup step failed in the launcher; the command did not run.
    #[error("{0}")]
    Setup(String),
}

/// A running command.
#[derive(Debug)]
pub struct Spawned {
    /// The command's pid (the launcher's, which became the command).
    pub pid: i32,
    /// Wait on it for the exit status.
    pub child: tokio::process::Child,
    /// stdout and stderr of the command, both on this one pipe.
    pub output: tokio::net::unix::pipe::Receiver,
}

/// A launcher command ready to spawn, with the descriptors the parent must
/// close right after spawning it.
struct Prepared {
    cmd: std::process::Command,
    /// Read end of the error pipe: EOF without bytes means exec succeeded.
    err_r: OwnedFd,
    /// The spec memfd and the error pipe's write end: the child's copies.
    parent_copies: (OwnedFd, OwnedFd),
}

fn prepare(launcher: &Path, spec: &LaunchSpec, output: OwnedFd) -> Result<Prepared, SpawnError> {
    let launcher_err = |err: std::io::Error| SpawnError::Launcher {
        path: launcher.to_path_buf(),
        err,
    };
    let json = serde_json::to_vec(spec)
        .map_err(|e| SpawnError::Setup(format!("serialize launch spec: {e}")))?;
    let spec_fd = memfd_with(c"jarvis-launch-spec", &json).map_err(launcher_err)?;
    let (err_r, err_w) = cloexec_pipe().map_err(launcher_err)?;
    let output2 = output.try_clone().map_err(launcher_err)?;
    let inherit = [spec_fd.as_raw_fd(), err_w.as_raw_fd()];

    let mut cmd = std::process::Command::new(launcher);
    cmd.arg(LAUNCH_ARG)
        .env_clear()
        .env(FDS_ENV, format!("{},{}", inherit[0], inherit[1]))
        .stdin(Stdio::null())
        .stdout(Stdio::from(output))
        .stderr(Stdio::from(output2));
    inherit_fds(&mut cmd, inherit);
    Ok(Prepared {
        cmd,
        err_r,
        parent_copies: (spec_fd, err_w),
    })
}

fn report(bytes: &[u8]) -> Option<SpawnError> {
    (!bytes.is_empty())
        .then(|| SpawnError::Setup(String::from_utf8_lossy(bytes).trim().to_string()))
}

/// Starts `spec` through the launcher with stdout and stderr on `output`,
/// blocking until the command has been exec'd or the launcher reports why
/// it could not. stdin is /dev/null. For single-threaded callers (the shim).
pub fn spawn_blocking(
    launcher: &Path,
    spec: &LaunchSpec,
    output: OwnedFd,
) -> Result<std::process::Child, SpawnError> {
    let Prepared {
        mut cmd,
        err_r,
        parent_copies,
    } = prepare(launcher, spec, output)?;
    let spawned = cmd.spawn();
    // Close the parent's copies of the write ends (and the spec) at once.
    drop(cmd);
    drop(parent_copies);
    let mut child = spawned.map_err(|err| SpawnError::Launcher {
        path: launcher.to_path_buf(),
        err,
    })?;
    let mut bytes = Vec::new();
    if let Err(e) = File::from(err_r).read_to_end(&mut bytes) {
        let _ = child.kill();
        let _ = child.wait();
        return Err(SpawnError::Setup(format!(
            "read the launcher's report: {e}"
        )));
    }
    if let Some(err) = report(&bytes) {
        let _ = child.wait();
        return Err(err);
    }
    Ok(child)
}

/// Starts `spec` by running `launcher LAUNCH_ARG` and waits (asynchronously)
/// until the command has been exec'd, or the launcher reports why it could
/// not. stdin is /dev/null; stdout and stderr come back on one pipe.
pub async fn spawn(launcher: &Path, spec: &LaunchSpec) -> Result<Spawned, SpawnError> {
    let launcher_err = |err: std::io::Error| SpawnError::Launcher {
        path: launcher.to_path_buf(),
        err,
    };
    let (out_r, out_w) = cloexec_pipe().map_err(launcher_err)?;
    let Prepared {
        cmd,
        err_r,
        parent_copies,
    } = prepare(launcher, spec, out_w)?;
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.kill_on_drop(false);
    let spawned = cmd.spawn();
    drop(cmd);
    drop(parent_copies);
    let mut child = spawned.map_err(launcher_err)?;

    let mut bytes = Vec::new();
    let read = match pipe::Receiver::from_owned_fd(err_r) {
        Ok(mut rx) => rx.read_to_end(&mut bytes).await.map(|_| ()),
        Err(e) => Err(e),
    };
    if let Err(e) = read {
        let _ = child.start_kill();
        let _ = child.wait().await;
        return Err(SpawnError::Setup(format!(
            "read the launcher's report: {e}"
        )));
    }
    if let Some(err) = report(&bytes) {
        let _ = child.wait().await;
        return Err(err);
    }
    let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) else {
        return Err(SpawnError::Setup(
            "the launcher vanished before exec".into(),
        ));
    };
    let output = pipe::Receiver::from_owned_fd(out_r).map_err(launcher_err)?;
    Ok(Spawned { pid, child, output })
}

/// Lets the child of `cmd` keep `fds` (close-on-exec in the parent) across
/// its exec, at the same numbers.
pub fn inherit_fds<const N: usize>(cmd: &mut std::process::Command, fds: [RawFd; N]) {
    // SAFETY: only fcntl(2), which is async-signal-safe, runs in the child.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(cmd, move || {
            for fd in fds {
                if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

/// A pipe with both ends close-on-exec, moved above the stdio numbers.
fn cloexec_pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    Ok((above_stdio(r)?, above_stdio(w)?))
}

/// `fd` itself, or a close-on-exec duplicate >= 3 if it is 0, 1 or 2 (it
/// would be overwritten by the child's stdio).
fn above_stdio(fd: OwnedFd) -> std::io::Result<OwnedFd> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    // SAFETY: fcntl on a valid fd; the result is a new fd we own.
    let new = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) };
    if new < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `new` is a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// A close-on-exec memfd named `name` holding `data`, at a descriptor above
/// stdio: how a spec travels to a re-executed jarvisd.
pub fn memfd_with(name: &std::ffi::CStr, data: &[u8]) -> std::io::Result<OwnedFd> {
    // SAFETY: the name is a valid C string; the result is a new fd we own.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor nobody else owns.
    let mut file = unsafe { File::from_raw_fd(fd) };
    file.write_all(data)?;
    above_stdio(file.into())
}

/// The launcher: reads its spec, joins the cgroups, closes descriptors,
/// switches identity, drops capabilities, sets no_new_privs, execs. On any
/// failure it reports the reason to its parent and exits 127.
///
/// Call it first thing in `main` when `argv[1] == LAUNCH_ARG`, before any
/// thread or async runtime starts: capabilities are per thread.
pub fn launcher_main() -> ! {
    let fds = std::env::var(FDS_ENV).ok().and_then(|v| {
        let (a, b) = v.split_once(',')?;
        Some((a.parse::<RawFd>().ok()?, b.parse::<RawFd>().ok()?))
    });
    let Some((spec_fd, err_fd)) = fds else {
        eprintln!("{LAUNCH_ARG} is internal to jarvisd: it runs only as jarvisd's launcher");
        // SAFETY: _exit is always safe.
        unsafe { libc::_exit(127) }
    };
    // SAFETY: fcntl on an integer fd; failure is handled.
    if err_fd < 3 || unsafe { libc::fcntl(err_fd, libc::F_SETFD, libc::FD_CLOEXEC) } < 0 {
        eprintln!("jarvis launcher: bad error descriptor {err_fd}");
        // SAFETY: _exit is always safe.
        unsafe { libc::_exit(127) }
    }
    std::env::remove_var(FDS_ENV);
    std::panic::set_hook(Box::new(move |info| {
        fail(err_fd, &format!("launcher panicked: {info}"))
    }));
    match run_launcher(spec_fd, err_fd) {
        Err(reason) => fail(err_fd, &reason),
        Ok(never) => match never {},
    }
}

/// Writes `reason` (one line) to the error pipe and exits 127.
fn fail(err_fd: RawFd, reason: &str) -> ! {
    let line = format!("{}\n", reason.replace('\n', " "));
    let mut buf = line.as_bytes();
    while !buf.is_empty() {
        // SAFETY: writing a valid buffer to an fd.
        let n = unsafe { libc::write(err_fd, buf.as_ptr().cast(), buf.len()) };
        if n <= 0 {
            if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            break;
        }
        buf = &buf[n as usize..];
    }
    // SAFETY: _exit is always safe.
    unsafe { libc::_exit(127) }
}

fn run_launcher(spec_fd: RawFd, err_fd: RawFd) -> Result<Infallible, String> {
    // 1. The spec.
    let spec = read_spec(spec_fd)?;

    // 2. Join the cgroups first, so every descendant is contained.
    let pid = std::process::id().to_string();
    for f in &spec.cgroup_procs {
        std::fs::OpenOptions::new()
            .write(true)
            .open(f)
            .and_then(|mut file| file.write_all(pid.as_bytes()))
            .map_err(|e| format!("join cgroup {}: {e}", f.display()))?;
    }

    // 3. Close every descriptor but stdio and the (close-on-exec) error pipe.
    close_fds_except(err_fd)?;

    // 4. A session of its own.
    nix::unistd::setsid().map_err(|e| format!("setsid: {}", e.desc()))?;

    // 5. Identity and working directory.
    let id = resolve_identity(&spec)?;
    let dir = match &spec.working_dir {
        Some(d) => PathBuf::from(d),
        None => id
            .home
            .clone()
            .filter(|h| h.is_dir())
            .unwrap_or_else(|| PathBuf::from("/")),
    };
    nix::unistd::chdir(&dir).map_err(|e| format!("chdir {}: {}", dir.display(), e.desc()))?;

    // 6. Capabilities and the identity switch.
    let keep = parse_caps(&spec.capabilities)?;
    switch_identity(&id, &keep)?;

    // 7. no_new_privs.
    if spec.no_new_privileges {
        // SAFETY: prctl with integer arguments.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
            return Err(format!(
                "no_new_privileges: {}",
                std::io::Error::last_os_error()
            ));
        }
    }

    // 8. Default signal mask and dispositions.
    reset_signals();

    // 9. Exec.
    exec(&spec)
}

fn read_spec(spec_fd: RawFd) -> Result<LaunchSpec, String> {
    if spec_fd < 3 {
        return Err(format!("read launch spec: bad descriptor {spec_fd}"));
    }
    // SAFETY: the parent handed us this descriptor; we take it over.
    let mut file = unsafe { File::from_raw_fd(spec_fd) };
    let mut text = String::new();
    file.seek(SeekFrom::Start(0))
        .and_then(|_| file.read_to_string(&mut text))
        .map_err(|e| format!("read launch spec: {e}"))?;
    serde_json::from_str(&text).map_err(|e| format!("parse launch spec: {e}"))
}

fn close_fds_except(keep: RawFd) -> Result<(), String> {
    let ranges = [(3, keep - 1), (keep + 1, RawFd::MAX)];
    let mut supported = true;
    for (lo, hi) in ranges {
        if lo > hi {
            continue;
        }
        // SAFETY: close_range(2) only closes descriptors.
        let r = unsafe {
            libc::syscall(
                libc::SYS_close_range,
                lo as libc::c_uint,
                hi as libc::c_uint,
                0,
            )
        };
        if r != 0 {
            supported = false;
            break;
        }
    }
    if supported {
        return Ok(());
    }
    // Old kernel: close what /proc/self/fd lists.
    let fds: Vec<RawFd> = std::fs::read_dir("/proc/self/fd")
        .map_err(|e| format!("close descriptors: read /proc/self/fd: {e}"))?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    for fd in fds.into_iter().filter(|&fd| fd > 2 && fd != keep) {
        // SAFETY: closing a descriptor; the directory's own is already gone.
        unsafe { libc::close(fd) };
    }
    Ok(())
}

/// Who the command runs as.
#[derive(Debug)]
struct Identity {
    uid: Uid,
    gid: Gid,
    groups: Vec<Gid>,
    home: Option<PathBuf>,
}

fn resolve_identity(spec: &LaunchSpec) -> Result<Identity, String> {
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
        uid,
        gid,
        groups,
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

fn parse_caps(names: &[String]) -> Result<CapsHashSet, String> {
    names
        .iter()
        .map(|n| {
            Capability::from_str(&caps::to_canonical(n))
                .map_err(|_| format!("unknown capability {n:?}"))
        })
        .collect()
}

/// Drops every capability not in `keep` from the bounding set, switches to
/// `id` keeping the permitted set, then leaves exactly `keep` in the
/// inheritable, permitted, effective and ambient sets.
fn switch_identity(id: &Identity, keep: &CapsHashSet) -> Result<(), String> {
    let cap_err = |what: &str, e: caps::errors::CapsError| format!("capabilities: {what}: {e}");
    let permitted =
        caps::read(None, CapSet::Permitted).map_err(|e| cap_err("read permitted set", e))?;
    let bounding =
        caps::read(None, CapSet::Bounding).map_err(|e| cap_err("read bounding set", e))?;
    let mut keep_sorted: Vec<_> = keep.iter().collect();
    keep_sorted.sort_by_key(|c| c.index());
    for c in &keep_sorted {
        if !permitted.contains(c) || !bounding.contains(c) {
            return Err(format!(
                "capabilities: cannot keep {c}: jarvisd itself does not have it"
            ));
        }
    }
    for c in bounding.difference(keep) {
        caps::drop(None, CapSet::Bounding, *c)
            .map_err(|e| cap_err(&format!("drop {c} from the bounding set"), e))?;
    }
    // Capabilities newer than the caps crate knows about.
    let last = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse::<libc::c_ulong>().ok())
        .unwrap_or(0);
    let known = caps::all()
        .iter()
        .map(|c| libc::c_ulong::from(c.index()))
        .max()
        .unwrap_or(0);
    for n in known + 1..=last {
        // SAFETY: prctl with integer arguments.
        let in_bounding = unsafe { libc::prctl(libc::PR_CAPBSET_READ, n, 0, 0, 0) } == 1;
        // SAFETY: as above.
        if in_bounding && unsafe { libc::prctl(libc::PR_CAPBSET_DROP, n, 0, 0, 0) } != 0 {
            let e = std::io::Error::last_os_error();
            return Err(format!(
                "capabilities: drop capability {n} from the bounding set: {e}"
            ));
        }
    }
    let _ = caps::clear(None, CapSet::Ambient);
    caps::set(None, CapSet::Inheritable, keep).map_err(|e| cap_err("set inheritable", e))?;
    if !id.uid.is_root() {
        // SAFETY: prctl with integer arguments.
        if unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) } != 0 {
            return Err(format!(
                "capabilities: PR_SET_KEEPCAPS: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    nix::unistd::setgroups(&id.groups).map_err(|e| {
        let list: Vec<String> = id.groups.iter().map(|g| g.to_string()).collect();
        format!("setgroups [{}]: {}", list.join(","), e.desc())
    })?;
    nix::unistd::setresgid(id.gid, id.gid, id.gid)
        .map_err(|e| format!("setgid {}: {}", id.gid, e.desc()))?;
    nix::unistd::setresuid(id.uid, id.uid, id.uid)
        .map_err(|e| format!("setuid {}: {}", id.uid, e.desc()))?;
    // Effective first: it must stay a subset of permitted.
    caps::set(None, CapSet::Effective, keep).map_err(|e| cap_err("set effective", e))?;
    caps::set(None, CapSet::Permitted, keep).map_err(|e| cap_err("set permitted", e))?;
    for c in keep_sorted {
        caps::raise(None, CapSet::Ambient, *c)
            .map_err(|e| cap_err(&format!("raise {c} in the ambient set"), e))?;
    }
    Ok(())
}

fn reset_signals() {
    use nix::sys::signal::{signal, sigprocmask, SigHandler, SigSet, SigmaskHow, Signal};
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
    for sig in Signal::iterator() {
        if sig != Signal::SIGKILL && sig != Signal::SIGSTOP {
            // SAFETY: installing SIG_DFL runs no code of ours.
            let _ = unsafe { signal(sig, SigHandler::SigDfl) };
        }
    }
    // Real-time signals are not in nix's iterator.
    for n in libc::SIGRTMIN()..=libc::SIGRTMAX() {
        // SAFETY: installing SIG_DFL runs no code of ours.
        unsafe { libc::signal(n, libc::SIG_DFL) };
    }
}

fn exec(spec: &LaunchSpec) -> Result<Infallible, String> {
    let Some(arg0) = spec.argv.first() else {
        return Err("exec: the command is empty".into());
    };
    let path_var = spec
        .env
        .iter()
        .rev()
        .find(|(k, _)| k == "PATH")
        .map_or(DEFAULT_PATH, |(_, v)| v.as_str());
    let program = resolve_program(arg0, path_var)?;
    let cstr = |s: &str, what: &str| {
        CString::new(s).map_err(|_| format!("exec {arg0}: {what} contains a NUL byte"))
    };
    let argv = spec
        .argv
        .iter()
        .map(|a| cstr(a, "an argument"))
        .collect::<Result<Vec<_>, _>>()?;
    let envp = spec
        .env
        .iter()
        .map(|(k, v)| cstr(&format!("{k}={v}"), "the environment"))
        .collect::<Result<Vec<_>, _>>()?;
    let prog_c = CString::new(program.as_os_str().as_bytes())
        .map_err(|_| format!("exec {arg0}: the program path contains a NUL byte"))?;
    let err = nix::unistd::execve(&prog_c, &argv, &envp).unwrap_err();
    Err(format!("exec {}: {}", program.display(), err.desc()))
}

/// `arg0` itself when it has a slash, else the first executable file named
/// `arg0` in `path_var`.
fn resolve_program(arg0: &str, path_var: &str) -> Result<PathBuf, String> {
    if arg0.is_empty() {
        return Err("exec: the program name is empty".into());
    }
    if arg0.contains('/') {
        return Ok(PathBuf::from(arg0));
    }
    let mut seen = HashSet::new();
    for dir in path_var.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        if !seen.insert(dir) {
            continue;
        }
        let candidate = Path::new(dir).join(arg0);
        let is_exec_file = std::fs::metadata(&candidate)
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
        if is_exec_file && nix::unistd::access(&candidate, nix::unistd::AccessFlags::X_OK).is_ok() {
            return Ok(candidate);
        }
    }
    Err(format!(
        "exec {arg0}: No such file or directory (not found in PATH {path_var})"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_resolution() {
        assert_eq!(
            resolve_program("/x/y", "/bin").unwrap(),
            PathBuf::from("/x/y")
        );
        assert_eq!(
            resolve_program("sh", DEFAULT_PATH)
                .unwrap()
                .file_name()
                .unwrap(),
            "sh"
        );
        let err = resolve_program("no-such-program-jarvis", "/bin").unwrap_err();
        assert!(
            err.starts_with("exec no-such-program-jarvis: No such file or directory"),
            "{err}"
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
    fn spec_round_trips() {
        let spec = LaunchSpec {
            argv: vec!["a".into()],
            env: vec![("K".into(), "V".into())],
            user: Some("nobody".into()),
            group: None,
            supplementary_groups: vec![],
            working_dir: None,
            capabilities: vec![],
            no_new_privileges: true,
            cgroup_procs: vec![PathBuf::from("/sys/fs/cgroup/x/cgroup.procs")],
        };
        let json = serde_json::to_string(&spec).unwrap();
        assert_eq!(serde_json::from_str::<LaunchSpec>(&json).unwrap(), spec);
    }
}
