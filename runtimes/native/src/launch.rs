//! Starting a unit's process.
//!
//! [`spawn`] and [`spawn_blocking`] fork the caller, and the child does the
//! launcher's work itself before it execs the command: it joins the
//! cgroups, leaves only stdio open across the exec, starts a session,
//! changes directory, drops capabilities and switches user and groups, sets
//! `no_new_privs` and resets the signals. Everything it needs (the user and
//! groups, the capabilities, the program, every C string) is worked out in
//! the parent first ([`plan`]), so the child runs system calls only and is
//! safe to fork from a multi-threaded process; no second program is loaded
//! on the way. If a step fails the command does not run: the child exits
//! and `Command::spawn` returns the step and its errno, which come back as
//! [`SpawnError::Setup`] in words.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;

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

/// stdin on /dev/null and stdout and stderr both on `output`: how runs and
/// checks start.
fn output_only(output: OwnedFd) -> Result<(Stdio, Stdio, Stdio), SpawnError> {
    let stderr = output
        .try_clone()
        .map_err(|e| SpawnError::Setup(format!("duplicate the output pipe: {e}")))?;
    Ok((Stdio::null(), Stdio::from(output), Stdio::from(stderr)))
}

/// A command whose child runs `plan`, with `stdio` as its stdin, stdout and
/// stderr.
fn prepare(
    spec: &LaunchSpec,
    identity: Option<Identity>,
    (stdin, stdout, stderr): (Stdio, Stdio, Stdio),
    controlling_terminal: bool,
) -> Result<(std::process::Command, Arc<Plan>), SpawnError> {
    let plan = Plan::new(spec, identity).map_err(SpawnError::Setup)?;
    let plan = Arc::new(plan.with_controlling_terminal(controlling_terminal));
    let mut cmd =
        std::process::Command::new(std::ffi::OsStr::from_bytes(plan.first_program().to_bytes()));
    cmd.env_clear().stdin(stdin).stdout(stdout).stderr(stderr);
    let child_plan = Arc::clone(&plan);
    // SAFETY: `Plan::apply` runs system calls only, on memory the plan
    // owns (it allocates nothing and takes no lock), so it is sound in the
    // child of a fork even of a multi-threaded process; the child becomes
    // the command or exits.
    unsafe {
        cmd.pre_exec(move || {
            let failure = child_plan.apply();
            Err(std::io::Error::from_raw_os_error(failure.to_raw()))
        });
    }
    Ok((cmd, plan))
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
) -> Result<std::process::Child, SpawnError> {
    spawn_blocking_as(launcher, spec, None, output)
}

/// [`spawn_blocking`] with the user and groups already looked up
/// ([`resolve_identity`]); `None` looks them up here.
pub fn spawn_blocking_as(
    launcher: &Path,
    spec: &LaunchSpec,
    identity: Option<Identity>,
    output: OwnedFd,
) -> Result<std::process::Child, SpawnError> {
    check_launcher(launcher)?;
    spawn_prepared(prepare(spec, identity, output_only(output)?, false)?)
}

/// [`spawn_blocking_as`] with the command's own stdin, stdout and stderr
/// (and, when asked, its controlling terminal), as `jarvisctl exec` gives
/// them.
pub fn spawn_blocking_stdio(
    launcher: &Path,
    spec: &LaunchSpec,
    identity: Option<Identity>,
    stdio: Stdio3,
) -> Result<std::process::Child, SpawnError> {
    check_launcher(launcher)?;
    let Stdio3 {
        stdin,
        stdout,
        stderr,
        controlling_terminal,
    } = stdio;
    let stdio = (stdin.into(), stdout.into(), stderr.into());
    spawn_prepared(prepare(spec, identity, stdio, controlling_terminal)?)
}

fn spawn_prepared(
    (mut cmd, plan): (std::process::Command, Arc<Plan>),
) -> Result<std::process::Child, SpawnError> {
    let spawned = cmd.spawn();
    // The parent's copies of the command's descriptors go with the command.
    drop(cmd);
    spawned.map_err(|e| SpawnError::Setup(plan.spawn_error(&e)))
}

/// Starts `spec`: returns once the command has been exec'd, or with the
/// reason a setup step failed (then it did not run). stdin is /dev/null;
/// stdout and stderr come back on one pipe. `launcher` is jarvisd's
/// binary, checked to be there. The fork and the child's setup take
/// microseconds, so this does not yield in between.
pub async fn spawn(launcher: &Path, spec: &LaunchSpec) -> Result<Spawned, SpawnError> {
    check_launcher(launcher)?;
    let (out_r, out_w) =
        cloexec_pipe().map_err(|e| SpawnError::Setup(format!("create the output pipe: {e}")))?;
    let (cmd, plan) = prepare(spec, None, output_only(out_w)?, false)?;
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.kill_on_drop(false);
    let spawned = cmd.spawn();
    drop(cmd);
    let child = spawned.map_err(|e| SpawnError::Setup(plan.spawn_error(&e)))?;
    let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) else {
        return Err(SpawnError::Setup("the command vanished at once".into()));
    };
    let output = pipe::Receiver::from_owned_fd(out_r)
        .map_err(|e| SpawnError::Setup(format!("register the output pipe: {e}")))?;
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
