//! jarvisd's side: starting shims, finding them again, waiting for them.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::unix::AsyncFd;
use tokio::io::AsyncReadExt;

use crate::shim::FDS_ENV;
use crate::{
    exit_record_path, process_start, read_json, run_record_path, ExitRecord, Payload, RunRecord,
    ShimInput, ShimSpec, SHIM_ARG,
};

#[derive(Debug, thiserror::Error)]
pub enum ShimError {
    #[error("cannot start the shim {path}: {err}")]
    Start {
        path: PathBuf,
        #[source]
        err: std::io::Error,
    },
    /// The unit's process could not be started; the shim said why.
    #[error("{0}")]
    Setup(String),
}

/// A pidfd: readable once the process has exited. Works for processes that
/// are not our children (re-adopted shims) as for those that are.
pub struct PidFd(AsyncFd<OwnedFd>);

impl PidFd {
    pub fn open(pid: i32) -> std::io::Result<PidFd> {
        // SAFETY: pidfd_open(2) with a pid and no flags.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
        // SAFETY: the OwnedFd stays open, and the same descriptor, for as
        // long as the AsyncFd owns it.
        let fd = unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE)? };
        Ok(PidFd(fd))
    }

    /// Resolves when the process has exited.
    pub async fn exited(&self) {
        loop {
            match self.0.readable().await {
                Ok(_) => return,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => return,
            }
        }
    }
}

/// A run that has started.
pub struct Started {
    pub record: RunRecord,
    pub shim: PidFd,
    /// The shim as our child: awaited in the background so it is reaped.
    child: Option<tokio::process::Child>,
}

impl Started {
    pub fn pid(&self) -> i32 {
        self.record.pid
    }
}

/// A run found again after a daemon restart.
pub enum Adopted {
    /// The shim and the unit's process still run.
    Running(Started),
    /// It ended while no daemon watched; here is how.
    Ended(RunRecord, Option<ExitRecord>),
}

/// Starts a shim for `spec` (running `exe SHIM_ARG`) and waits until the
/// unit's process runs, or the shim reports why it could not start it.
pub async fn spawn(exe: &Path, spec: &ShimSpec) -> Result<Started, ShimError> {
    let start_err = |err: std::io::Error| ShimError::Start {
        path: exe.to_path_buf(),
        err,
    };
    let _ = std::fs::remove_file(exit_record_path(&spec.run_dir, &spec.unit));
    let _ = std::fs::remove_file(run_record_path(&spec.run_dir, &spec.unit));
    std::fs::create_dir_all(&spec.run_dir).map_err(start_err)?;

    // The user and groups are looked up here, where the databases' modules
    // are loaded already, rather than in every fresh shim. An unknown user
    // fails the start as it would in the shim: nothing runs.
    let identity = match &spec.payload {
        Payload::Native(launch) => {
            let launch = launch.clone();
            let found = tokio::task::spawn_blocking(move || {
                jarvis_native::launch::resolve_identity(&launch)
            })
            .await
            .map_err(|e| ShimError::Setup(format!("look up the user: {e}")))?;
            Some(found.map_err(ShimError::Setup)?)
        }
        Payload::Container(_) => None,
    };
    let input = ShimInput {
        spec: spec.clone(),
        identity,
    };
    let json = serde_json::to_vec(&input).map_err(|e| ShimError::Setup(e.to_string()))?;
    let spec_fd = jarvis_native::memfd_with(c"jarvis-shim-spec", &json).map_err(start_err)?;
    let (status_r, status_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| start_err(e.into()))?;
    // The spec comes in on the shim's stdin and its status goes out on its
    // stdout: no descriptor to pass by number, so no code runs between fork
    // and exec and the standard library can use posix_spawn (a vfork),
    // which costs the same however large jarvisd is.
    let mut cmd = std::process::Command::new(exe);
    std::os::unix::process::CommandExt::arg0(&mut cmd, crate::shim_argv0(&spec.unit));
    cmd.arg(SHIM_ARG)
        .arg(&spec.unit)
        .env_clear()
        .env(FDS_ENV, "0,1")
        .stdin(Stdio::from(spec_fd))
        .stdout(Stdio::from(status_w));
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.kill_on_drop(false);
    let spawned = cmd.spawn();
    // The parent's copies of the spec and the status pipe's write end.
    drop(cmd);
    let child = spawned.map_err(start_err)?;
    let shim_pid = child.id().map(|p| p as i32).unwrap_or(0);
    let shim = PidFd::open(shim_pid).map_err(start_err)?;

    let mut answer = String::new();
    let mut rx = tokio::net::unix::pipe::Receiver::from_owned_fd(status_r).map_err(start_err)?;
    let _ = rx.read_to_string(&mut answer).await;
    let reap = |mut child: tokio::process::Child| {
        tokio::spawn(async move {
            let _ = child.wait().await;
        });
    };
    let answer = answer.trim();
    if let Some(reason) = answer.strip_prefix("error ") {
        reap(child);
        return Err(ShimError::Setup(reason.to_string()));
    }
    if !answer.starts_with("ok ") {
        reap(child);
        return Err(ShimError::Setup(format!(
            "the shim ended without starting the process{}",
            if answer.is_empty() {
                String::new()
            } else {
                format!(": {answer}")
            }
        )));
    }
    let record: RunRecord = read_json(&run_record_path(&spec.run_dir, &spec.unit))
        .ok_or_else(|| ShimError::Setup("the shim wrote no run record".into()))?;
    Ok(Started {
        record,
        shim,
        child: Some(child),
    })
}

/// Looks for a run of `unit` left by an earlier daemon.
pub fn adopt(run_dir: &Path, unit: &str) -> Option<Adopted> {
    let record: RunRecord = read_json(&run_record_path(run_dir, unit))?;
    let exit = exit_record(run_dir, unit);
    let alive = exit.is_none()
        && process_start(record.shim_pid).is_some_and(|t| t == record.shim_start)
        && is_shim_of(record.shim_pid, unit);
    if alive {
        if let Ok(shim) = PidFd::open(record.shim_pid) {
            // Between the check and the open the pid could have been reused:
            // check again now that the pidfd pins it.
            if process_start(record.shim_pid) == Some(record.shim_start) {
                return Some(Adopted::Running(Started {
                    record,
                    shim,
                    child: None,
                }));
            }
        }
    }
    Some(Adopted::Ended(record, exit_record(run_dir, unit)))
}

fn is_shim_of(pid: i32, unit: &str) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    args.get(1) == Some(&SHIM_ARG.as_bytes()) && args.get(2) == Some(&unit.as_bytes())
}

/// The exit record of the last run of `unit`, if it has ended.
pub fn exit_record(run_dir: &Path, unit: &str) -> Option<ExitRecord> {
    read_json(&exit_record_path(run_dir, unit))
}

/// Waits until the run's shim has exited and returns the exit record (None
/// when the shim itself died without writing one).
pub async fn wait(started: Started, run_dir: &Path) -> Option<ExitRecord> {
    let Started {
        record,
        shim,
        child,
    } = started;
    shim.exited().await;
    if let Some(mut child) = child {
        let _ = child.wait().await;
    }
    exit_record(run_dir, &record.unit)
}
