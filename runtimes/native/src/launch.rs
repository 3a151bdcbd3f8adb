//! Starting a unit's process.
//!
//! [`spawn`] and [`spawn_blocking`] start a child with a vfork-style clone
//! (`CLONE_VM | CLONE_VFORK`, as `posix_spawn` does: nothing of the caller
//! is copied, however large it is), and the child does the launcher's work
//! itself before it execs the command: it puts its descriptors on stdio,
//! joins the cgroups, leaves only stdio open across the exec, starts a
//! session, changes directory, drops capabilities and switches user and
//! groups, sets `no_new_privs` and resets the signals. Everything it needs
//! (the user and groups, the capabilities, the program, every C string) is
//! worked out in the parent first ([`plan`]), so the child runs system
//! calls only, on its own stack, and is safe to start from a
//! multi-threaded process; no second program is loaded on the way. If a
//! step fails the command does not run: the child leaves the step and its
//! errno in the memory it shares with the parent and exits, and they come
//! back as [`SpawnError::Setup`] in words.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::atomic::{AtomicI32, Ordering};

use serde::{Deserialize, Serialize};
use tokio::net::unix::pipe;

mod plan;

use plan::Plan;
pub use plan::{resolve_identity, Identity};

/// `PATH` used to find a bare argv[0] when the spec's env has none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Everything a start needs; travels to the shim serialized.
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
    /// A setup step failed for want of something the system may have
    /// again soon (descriptors, memory, processes, disk space: see
    /// [`crate::transient`]); the command did not run, and a later try may
    /// start it.
    #[error("{0}")]
    Transient(String),
}

impl SpawnError {
    /// Whether the start failed for want of a resource the system may have
    /// again soon, so that trying again later may work.
    pub fn is_transient(&self) -> bool {
        match self {
            SpawnError::Transient(_) => true,
            SpawnError::Launcher { err, .. } => crate::transient(err),
            SpawnError::Setup(_) => false,
        }
    }

    /// A setup step that failed with `err`, described by `msg`.
    fn step(msg: String, err: &std::io::Error) -> SpawnError {
        SpawnError::of_errno(msg, err.raw_os_error())
    }

    fn of_errno(msg: String, errno: Option<i32>) -> SpawnError {
        if errno.is_some_and(crate::transient_errno) {
            SpawnError::Transient(msg)
        } else {
            SpawnError::Setup(msg)
        }
    }
}

/// The three descriptors a command starts with, for
/// [`spawn_blocking_stdio`].
#[derive(Debug)]
pub struct Stdio3 {
    pub stdin: OwnedFd,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
    /// stdin is a terminal that becomes the controlling terminal of the
    /// command's session (after its `setsid`, `TIOCSCTTY` on 0; it must be
    /// no other session's): Ctrl-C on it interrupts the command, and
    /// `/dev/tty` is that terminal.
    pub controlling_terminal: bool,
}

/// A running command.
#[derive(Debug)]
pub struct Spawned {
    /// The command's pid.
    pub pid: i32,
    /// Wait on it for the exit status ([`Spawned::wait`]).
    pub child: Child,
    /// stdout and stderr of the command, both on this one pipe.
    pub output: tokio::net::unix::pipe::Receiver,
}

impl Spawned {
    /// Resolves with the command's exit status (it is reaped).
    pub async fn wait(&mut self) -> std::io::Result<ExitStatus> {
        self.child.wait_async().await
    }
}

/// A command a launch started: a child of this process until it is
/// waited for (dropped unwaited, it stays a zombie until this process
/// reaps its children or ends).
#[derive(Debug)]
pub struct Child {
    pid: i32,
    status: Option<ExitStatus>,
}

impl Child {
    pub fn id(&self) -> u32 {
        self.pid as u32
    }

    /// Blocks until the command has exited and reaps it.
    pub fn wait(&mut self) -> std::io::Result<ExitStatus> {
        if let Some(s) = self.status {
            return Ok(s);
        }
        let mut raw = 0;
        loop {
            // SAFETY: waitpid on our own child, with a status to fill.
            let r = unsafe { libc::waitpid(self.pid, &mut raw, 0) };
            if r == self.pid {
                let s = ExitStatus::from_raw(raw);
                self.status = Some(s);
                return Ok(s);
            }
            let err = std::io::Error::last_os_error();
            if err.kind() != std::io::ErrorKind::Interrupted {
                return Err(err);
            }
        }
    }

    /// [`Child::wait`] without blocking the thread: waits on a pidfd.
    pub async fn wait_async(&mut self) -> std::io::Result<ExitStatus> {
        if let Some(s) = self.status {
            return Ok(s);
        }
        // SAFETY: pidfd_open(2) of our own (not yet reaped) child.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, self.pid, libc::O_NONBLOCK) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
        // SAFETY: the OwnedFd stays open, and the same descriptor, for as
        // long as the AsyncFd owns it.
        let fd = unsafe {
            tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE)?
        };
        let _ready = fd.readable().await?;
        // Readable: it has exited, so this does not block.
        self.wait()
    }
}

/// The stack the child of a launch runs on until its exec: the plan's
/// steps need little (no recursion, a few small arrays).
const CHILD_STACK: usize = 128 * 1024;

/// What the child of [`clone_vfork`] gets: it shares the parent's memory.
struct ChildArgs<'a> {
    plan: &'a Plan,
    stdio: [RawFd; 3],
    /// Where the child leaves the failed step (0: none; it exec'd).
    failure: &'a AtomicI32,
}

extern "C" fn child_main(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: the parent passes a `ChildArgs` and stays suspended (vfork)
    // until this child has exec'd or exited, so it outlives every use.
    let args = unsafe { &*(arg as *const ChildArgs<'_>) };
    // SAFETY: this process is about to become the command (or exit); the
    // plan runs system calls only, on memory it owns.
    let failure = unsafe { args.plan.apply(args.stdio) };
    args.failure.store(failure.to_raw(), Ordering::Relaxed);
    127
}

/// Starts the child that runs `plan` with a vfork-style clone
/// (`CLONE_VM | CLONE_VFORK`, as `posix_spawn` does): no copy of this
/// process's page tables, however large it is; the calling thread waits
/// until the child has exec'd or failed. Every signal is blocked around
/// the clone, so none of this process's handlers runs in the child before
/// the plan resets them.
fn clone_vfork(plan: &Plan, stdio: [RawFd; 3]) -> Result<i32, SpawnError> {
    let failure = AtomicI32::new(0);
    let args = ChildArgs {
        plan,
        stdio,
        failure: &failure,
    };
    let mut stack = vec![0u8; CHILD_STACK];
    // The stack grows down from its 16-byte aligned top.
    let top = ((stack.as_mut_ptr() as usize + CHILD_STACK) & !15) as *mut libc::c_void;
    // SAFETY: sigset_t is plain data, filled by sigfillset; the masks are
    // this thread's own.
    let pid = unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        // SAFETY: `child_main` only reads `args` and runs the plan on the
        // fresh stack; with CLONE_VFORK this thread (and so `args` and
        // `stack`) waits until the child has exec'd or exited.
        let pid = libc::clone(
            child_main,
            top,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            &args as *const ChildArgs<'_> as *mut libc::c_void,
        );
        let err = std::io::Error::last_os_error();
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        if pid < 0 {
            return Err(SpawnError::of_errno(
                plan.spawn_error(&err),
                Plan::spawn_errno(&err),
            ));
        }
        pid
    };
    drop(stack);
    let raw = failure.load(Ordering::Relaxed);
    if raw != 0 {
        // It exited without running the command: reap it.
        let _ = Child { pid, status: None }.wait();
        let err = std::io::Error::from_raw_os_error(raw);
        return Err(SpawnError::of_errno(
            plan.spawn_error(&err),
            Plan::spawn_errno(&err),
        ));
    }
    Ok(pid)
}

/// stdin on /dev/null and stdout and stderr both on `output`: how runs and
/// checks start.
fn output_only(output: OwnedFd) -> Result<[OwnedFd; 3], SpawnError> {
    let stderr = output
        .try_clone()
        .map_err(|e| SpawnError::step(format!("duplicate the output pipe: {e}"), &e))?;
    let null = File::open("/dev/null")
        .map_err(|e| SpawnError::step(format!("open /dev/null: {e}"), &e))?;
    Ok([null.into(), output, stderr])
}

/// Starts the command of `spec` with `stdio` as its stdin, stdout and
/// stderr; returns once it has been exec'd, or with the step that failed
/// (then it did not run).
fn launch(
    spec: &LaunchSpec,
    identity: Option<Identity>,
    stdio: [OwnedFd; 3],
    controlling_terminal: bool,
) -> Result<Child, SpawnError> {
    let plan = Plan::new(spec, identity)
        .map_err(SpawnError::Setup)?
        .with_controlling_terminal(controlling_terminal);
    // Above 2, so that putting one on its number never overwrites another.
    let mut held = Vec::with_capacity(3);
    for fd in stdio {
        held.push(
            above_stdio(fd)
                .map_err(|e| SpawnError::step(format!("duplicate a descriptor: {e}"), &e))?,
        );
    }
    let raw = [
        held[0].as_raw_fd(),
        held[1].as_raw_fd(),
        held[2].as_raw_fd(),
    ];
    let pid = clone_vfork(&plan, raw)?;
    // The parent's copies of the command's descriptors go now.
    drop(held);
    Ok(Child { pid, status: None })
}

/// The launcher binary must be there: a missing one is a broken install,
/// reported as [`SpawnError::Launcher`] before anything starts, as when
/// every start went through it. (It is not executed: the child of the
/// fork does its work.)
fn check_launcher(launcher: &Path) -> Result<(), SpawnError> {
    nix::unistd::access(launcher, nix::unistd::AccessFlags::X_OK).map_err(|e| {
        SpawnError::Launcher {
            path: launcher.to_path_buf(),
            err: e.into(),
        }
    })
}

/// Starts `spec` with stdout and stderr on `output`, blocking until the
/// command has been exec'd or a setup step has failed (then it did not
/// run, and the error says why). stdin is /dev/null. `launcher` is jarvisd's
/// binary, checked to be there.
pub fn spawn_blocking(
    launcher: &Path,
    spec: &LaunchSpec,
    output: OwnedFd,
) -> Result<Child, SpawnError> {
    spawn_blocking_as(launcher, spec, None, output)
}

/// [`spawn_blocking`] with the user and groups already looked up
/// ([`resolve_identity`]); `None` looks them up here.
pub fn spawn_blocking_as(
    launcher: &Path,
    spec: &LaunchSpec,
    identity: Option<Identity>,
    output: OwnedFd,
) -> Result<Child, SpawnError> {
    check_launcher(launcher)?;
    launch(spec, identity, output_only(output)?, false)
}

/// [`spawn_blocking_as`] with the command's own stdin, stdout and stderr
/// (and, when asked, its controlling terminal), as `jarvisctl exec` gives
/// them.
pub fn spawn_blocking_stdio(
    launcher: &Path,
    spec: &LaunchSpec,
    identity: Option<Identity>,
    stdio: Stdio3,
) -> Result<Child, SpawnError> {
    check_launcher(launcher)?;
    let Stdio3 {
        stdin,
        stdout,
        stderr,
        controlling_terminal,
    } = stdio;
    launch(
        spec,
        identity,
        [stdin, stdout, stderr],
        controlling_terminal,
    )
}

/// Starts `spec`: returns once the command has been exec'd, or with the
/// reason a setup step failed (then it did not run). stdin is /dev/null;
/// stdout and stderr come back on one pipe. `launcher` is jarvisd's
/// binary, checked to be there. The fork and the child's setup take
/// microseconds, so this does not yield in between.
pub async fn spawn(launcher: &Path, spec: &LaunchSpec) -> Result<Spawned, SpawnError> {
    check_launcher(launcher)?;
    let (out_r, out_w) =
        cloexec_pipe().map_err(|e| SpawnError::step(format!("create the output pipe: {e}"), &e))?;
    let child = launch(spec, None, output_only(out_w)?, false)?;
    let pid = child.pid;
    let output = pipe::Receiver::from_owned_fd(out_r)
        .map_err(|e| SpawnError::step(format!("register the output pipe: {e}"), &e))?;
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

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn sh_spec(script: &str, cgroup_procs: Vec<PathBuf>) -> LaunchSpec {
        LaunchSpec {
            argv: vec!["sh".into(), "-c".into(), script.into()],
            env: vec![("PATH".into(), DEFAULT_PATH.into())],
            user: None,
            group: None,
            supplementary_groups: vec![],
            working_dir: Some("/".into()),
            capabilities: vec![],
            no_new_privileges: true,
            cgroup_procs,
        }
    }

    fn output_pipe() -> (File, OwnedFd) {
        let (r, w) = cloexec_pipe().unwrap();
        (File::from(r), w)
    }

    #[test]
    fn spawns_the_command_with_its_output_on_the_pipe() {
        let (mut r, w) = output_pipe();
        let me = std::env::current_exe().unwrap();
        let mut child =
            spawn_blocking(&me, &sh_spec("echo out; echo err >&2; pwd", vec![]), w).unwrap();
        let mut out = String::new();
        r.read_to_string(&mut out).unwrap();
        assert!(child.wait().unwrap().success());
        assert_eq!(out, "out\nerr\n/\n");
    }

    #[test]
    fn the_command_can_have_its_own_stdin_stdout_and_stderr() {
        let (in_r, in_w) = cloexec_pipe().unwrap();
        let (mut out_r, out_w) = output_pipe();
        let (mut err_r, err_w) = output_pipe();
        File::from(in_w).write_all(b"from stdin\n").unwrap();
        let me = std::env::current_exe().unwrap();
        let stdio = Stdio3 {
            stdin: in_r,
            stdout: out_w,
            stderr: err_w,
            controlling_terminal: false,
        };
        let spec = sh_spec("cat; echo to-stderr >&2; exit 4", vec![]);
        let mut child = spawn_blocking_stdio(&me, &spec, None, stdio).unwrap();
        let (mut out, mut err) = (String::new(), String::new());
        out_r.read_to_string(&mut out).unwrap();
        err_r.read_to_string(&mut err).unwrap();
        assert_eq!(child.wait().unwrap().code(), Some(4));
        assert_eq!(
            (out.as_str(), err.as_str()),
            ("from stdin\n", "to-stderr\n")
        );
    }

    /// Everything the master of `pty` reads until the command is gone
    /// (EIO once no slave descriptor is open), fed `input` once `after`
    /// has been seen.
    fn pty_output(master: OwnedFd, after: &str, input: &[u8]) -> String {
        let mut master = File::from(master);
        let mut seen = Vec::new();
        let mut buf = [0u8; 1024];
        let mut fed = input.is_empty();
        while let Ok(n @ 1..) = master.read(&mut buf) {
            seen.extend_from_slice(&buf[..n]);
            if !fed && String::from_utf8_lossy(&seen).contains(after) {
                master.write_all(input).unwrap();
                fed = true;
            }
        }
        String::from_utf8_lossy(&seen).into_owned()
    }

    fn pty_stdio(slave: &OwnedFd) -> Stdio3 {
        Stdio3 {
            stdin: slave.try_clone().unwrap(),
            stdout: slave.try_clone().unwrap(),
            stderr: slave.try_clone().unwrap(),
            controlling_terminal: true,
        }
    }

    #[test]
    fn a_terminal_becomes_the_controlling_terminal_and_ctrl_c_reaches_the_command() {
        let me = std::env::current_exe().unwrap();
        let pty = nix::pty::openpty(None, None).unwrap();
        // /dev/tty opens only for a process with a controlling terminal.
        let spec = sh_spec("tty; echo via-dev-tty >/dev/tty; exit 5", vec![]);
        let mut child = spawn_blocking_stdio(&me, &spec, None, pty_stdio(&pty.slave)).unwrap();
        drop(pty.slave);
        let out = pty_output(pty.master, "", b"");
        assert_eq!(child.wait().unwrap().code(), Some(5), "{out}");
        let lines: Vec<&str> = out.lines().map(str::trim_end).collect();
        assert!(lines[0].starts_with("/dev/pts/"), "{out}");
        assert_eq!(lines[1], "via-dev-tty", "{out}");

        // ^C on the terminal: SIGINT to its foreground process group.
        let pty = nix::pty::openpty(None, None).unwrap();
        let spec = sh_spec("echo ready; exec sleep 30", vec![]);
        let mut child = spawn_blocking_stdio(&me, &spec, None, pty_stdio(&pty.slave)).unwrap();
        drop(pty.slave);
        let out = pty_output(pty.master, "ready", b"\x03");
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGINT), "{out}");
    }

    #[test]
    fn a_controlling_terminal_needs_a_terminal() {
        let me = std::env::current_exe().unwrap();
        let null = || OwnedFd::from(File::open("/dev/null").unwrap());
        let stdio = Stdio3 {
            stdin: null(),
            stdout: null(),
            stderr: null(),
            controlling_terminal: true,
        };
        match spawn_blocking_stdio(&me, &sh_spec("true", vec![]), None, stdio) {
            Err(SpawnError::Setup(msg)) => assert_eq!(
                msg,
                "make stdin the controlling terminal (TIOCSCTTY): Inappropriate ioctl for device (os error 25)"
            ),
            other => panic!("want a setup error, got {other:?}"),
        }
    }

    #[test]
    fn a_failed_step_in_the_child_runs_nothing_and_says_why() {
        let tmp = tempfile::tempdir().unwrap();
        let marker = tmp.path().join("ran");
        let procs = tmp.path().join("no-such-cgroup/cgroup.procs");
        let (_r, w) = output_pipe();
        let me = std::env::current_exe().unwrap();
        let script = format!("touch {}", marker.display());
        match spawn_blocking(&me, &sh_spec(&script, vec![procs.clone()]), w) {
            Err(SpawnError::Setup(msg)) => assert_eq!(
                msg,
                format!(
                    "join cgroup {}: No such file or directory (os error 2)",
                    procs.display()
                )
            ),
            other => panic!("want a setup error, got {other:?}"),
        }
        assert!(!marker.exists(), "the command ran");
    }

    #[test]
    fn a_step_that_lacked_a_resource_is_transient() {
        let tmp = tempfile::tempdir().unwrap();
        let marker = tmp.path().join("ran");
        let (_r, w) = output_pipe();
        let me = std::env::current_exe().unwrap();
        let script = format!("touch {}", marker.display());
        // Joining a "cgroup" whose procs file is /dev/full fails as a full
        // disk does.
        let full = PathBuf::from("/dev/full");
        match spawn_blocking(&me, &sh_spec(&script, vec![full]), w) {
            Err(e @ SpawnError::Transient(_)) => {
                assert!(e.is_transient());
                assert_eq!(
                    e.to_string(),
                    "join cgroup /dev/full: No space left on device (os error 28)"
                );
            }
            other => panic!("want a transient error, got {other:?}"),
        }
        assert!(!marker.exists(), "the command ran");
        // A missing cgroup is not something time mends.
        let (_r, w) = output_pipe();
        let missing = tmp.path().join("no-such-cgroup/cgroup.procs");
        let err = spawn_blocking(&me, &sh_spec("true", vec![missing]), w).unwrap_err();
        assert!(!err.is_transient(), "{err}");
        assert!(crate::transient(&std::io::Error::from_raw_os_error(
            libc::EMFILE
        )));
        assert!(!crate::transient(&std::io::Error::from_raw_os_error(
            libc::EACCES
        )));
        // Given context in words, a full disk is still one.
        let worded = |errno| {
            let e = std::io::Error::from_raw_os_error(errno);
            std::io::Error::new(e.kind(), format!("write /x: {e}"))
        };
        assert!(crate::transient(&worded(libc::ENOSPC)));
        assert!(!crate::transient(&worded(libc::ENOENT)));
        let wrapped = std::io::Error::other(std::io::Error::from_raw_os_error(libc::EMFILE));
        assert!(crate::transient(&wrapped));
    }

    #[test]
    fn a_missing_launcher_is_reported() {
        let (_r, w) = output_pipe();
        match spawn_blocking(
            Path::new("/nonexistent/jarvisd"),
            &sh_spec("true", vec![]),
            w,
        ) {
            Err(e @ SpawnError::Launcher { .. }) => {
                assert!(e.to_string().contains("/nonexistent/jarvisd"), "{e}")
            }
            other => panic!("want a launcher error, got {other:?}"),
        }
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
