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

/// A command whose child runs `plan`, with stdin on /dev/null and stdout
/// and stderr on `output`.
fn prepare(
    spec: &LaunchSpec,
    identity: Option<Identity>,
    output: OwnedFd,
) -> Result<(std::process::Command, Arc<Plan>), SpawnError> {
    let plan = Arc::new(Plan::new(spec, identity).map_err(SpawnError::Setup)?);
    let stderr = output
        .try_clone()
        .map_err(|e| SpawnError::Setup(format!("duplicate the output pipe: {e}")))?;
    let mut cmd =
        std::process::Command::new(std::ffi::OsStr::from_bytes(plan.first_program().to_bytes()));
    cmd.env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::from(output))
        .stderr(Stdio::from(stderr));
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
    let (mut cmd, plan) = prepare(spec, identity, output)?;
    let spawned = cmd.spawn();
    // The parent's copies of the output pipe go with the command.
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
    let (cmd, plan) = prepare(spec, None, out_w)?;
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
