//! jarvisd's side: starting shims, finding them again, waiting for them.

use std::collections::HashMap;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::pipe;

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
    /// The unit's process could not be started for want of something the
    /// system may have again soon (descriptors, memory, processes, disk
    /// space); the shim said why. A later try may work.
    #[error("{0}")]
    Transient(String),
}

impl ShimError {
    /// Whether the start failed for want of a resource the system may have
    /// again soon, so that trying again later may work.
    pub fn is_transient(&self) -> bool {
        match self {
            ShimError::Start { err, .. } => jarvis_native::transient(err),
            ShimError::Transient(_) => true,
            ShimError::Setup(_) => false,
        }
    }
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

/// How long a shim whose run has ended waits for the unit's restart
/// before it is let go. Restarts without a delay come within a millisecond
/// or two; longer delays get a fresh shim.
pub const PARK_FOR: Duration = Duration::from_secs(2);

/// The most a spec may weigh on the control pipe (the unit's environment
/// and command line are most of it).
const MAX_SPEC: usize = 4 << 20;

/// A run that has started.
pub struct Started {
    pub record: RunRecord,
    shim: PidFd,
    /// The shim as our child (awaited so that it is reaped), with its
    /// control and status pipes: `None` for a shim an earlier jarvisd
    /// started, which tells its end by exiting.
    link: Option<Link>,
}

/// A shim this jarvisd started: its process and its two pipes.
struct Link {
    exe: PathBuf,
    child: tokio::process::Child,
    /// Specs go out on it, one JSON line each; closing it lets the shim go.
    control: pipe::Sender,
    /// `ok RUN-RECORD`, `error REASON` and `exit EXIT-RECORD` lines.
    status: BufReader<pipe::Receiver>,
}

impl Started {
    pub fn pid(&self) -> i32 {
        self.record.pid
    }
}

/// A run found again after a daemon restart.
pub enum Adopted {
    /// The shim and the unit's process still run.
    Running(Box<Started>),
    /// It ended while no daemon watched; here is how.
    Ended(RunRecord, Option<ExitRecord>),
}

/// A shim whose run has ended, waiting for the next spec of its unit.
/// Dropped, its control pipe closes, which ends the shim; tokio reaps the
/// child in the background.
struct Idle {
    shim: PidFd,
    link: Link,
}

/// Shims whose run has ended, kept for [`PARK_FOR`] in case their unit
/// restarts: a restart then writes one line to a shim that is ready instead
/// of starting a process that loads, links and reads its spec first.
#[derive(Clone, Default)]
pub struct ShimPool {
    idle: Arc<Mutex<HashMap<String, (u64, Idle)>>>,
    serial: Arc<AtomicU64>,
}

impl ShimPool {
    fn park(&self, unit: &str, idle: Idle) {
        let n = self.serial.fetch_add(1, Ordering::Relaxed);
        let old = lock(&self.idle).insert(unit.to_string(), (n, idle));
        drop(old);
        let (pool, unit) = (self.clone(), unit.to_string());
        tokio::spawn(async move {
            tokio::time::sleep(PARK_FOR).await;
            let gone = {
                let mut idle = lock(&pool.idle);
                match idle.get(&unit) {
                    Some((m, _)) if *m == n => idle.remove(&unit),
                    _ => None,
                }
            };
            drop(gone);
        });
    }

    fn take(&self, unit: &str, exe: &Path) -> Option<Idle> {
        let mut idle = lock(&self.idle);
        match idle.get(unit) {
            Some((_, i)) if i.link.exe == exe => idle.remove(unit).map(|(_, i)| i),
            _ => None,
        }
    }

    /// Lets `unit`'s parked shim go now (the unit was stopped or removed).
    pub fn dismiss(&self, unit: &str) {
        let gone = lock(&self.idle).remove(unit);
        drop(gone);
    }

    /// How many shims wait parked.
    pub fn parked(&self) -> usize {
        lock(&self.idle).len()
    }
}

impl std::fmt::Debug for ShimPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShimPool")
            .field("parked", &self.parked())
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Starts a run of `spec` with `exe SHIM_ARG` (a shim of `pool` parked for
/// the unit if there is one, else a new one) and waits until the unit's
/// process runs, or the shim reports why it could not start it. A native
/// run's `identity` (its user and groups) is looked up here when not
/// given.
pub async fn spawn(
    pool: &ShimPool,
    exe: &Path,
    spec: &ShimSpec,
    identity: Option<jarvis_native::launch::Identity>,
) -> Result<Started, ShimError> {
    let start_err = |err: std::io::Error| ShimError::Start {
        path: exe.to_path_buf(),
        err,
    };
    // The user and groups are looked up here, where the databases' modules
    // are loaded already, rather than in every fresh shim. An unknown user
    // fails the start as it would in the shim: nothing runs.
    let identity = match &spec.payload {
        Payload::Native(_) if identity.is_some() => identity,
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
        definition: crate::DEFINITION.try_with(|d| d.clone()).ok(),
    };
    let mut line = serde_json::to_vec(&input).map_err(|e| ShimError::Setup(e.to_string()))?;
    if line.len() > MAX_SPEC {
        return Err(ShimError::Setup(format!(
            "the run's spec is {} bytes, more than the {MAX_SPEC} a shim takes (a very large environment or command line?)",
            line.len()
        )));
    }
    line.push(b'\n');

    if let Some(Idle { shim, mut link }) = pool.take(&spec.unit, exe) {
        let _ = std::fs::remove_file(run_record_path(&spec.run_dir, &spec.unit));
        if link.control.write_all(&line).await.is_ok() {
            match answer(&mut link).await {
                Answer::Ok(record) => {
                    return Ok(Started {
                        record,
                        shim,
                        link: Some(link),
                    })
                }
                Answer::Error(e) => return Err(e),
                // It ended on its own (killed, say) before it took the spec.
                Answer::Gone(_) => {}
            }
        }
        tracing::debug!(unit = %spec.unit, "the parked shim was gone; starting a new one");
    }

    let _ = std::fs::remove_file(exit_record_path(&spec.run_dir, &spec.unit));
    let _ = std::fs::remove_file(run_record_path(&spec.run_dir, &spec.unit));
    std::fs::create_dir_all(&spec.run_dir).map_err(start_err)?;
    let (control_r, control_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| start_err(e.into()))?;
    let (status_r, status_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| start_err(e.into()))?;
    // The specs come in on the shim's stdin and its status goes out on its
    // stdout: no descriptor to pass by number, so no code runs between fork
    // and exec and the standard library can use posix_spawn (a vfork),
    // which costs the same however large jarvisd is.
    let mut cmd = std::process::Command::new(exe);
    std::os::unix::process::CommandExt::arg0(&mut cmd, crate::shim_argv0(&spec.unit));
    cmd.arg(SHIM_ARG)
        .arg(&spec.unit)
        .env_clear()
        .env(FDS_ENV, "0,1")
        .stdin(Stdio::from(control_r))
        .stdout(Stdio::from(status_w));
    let nofile = crate::UNITS_NOFILE.load(std::sync::atomic::Ordering::Relaxed);
    if nofile > 0 {
        cmd.env(crate::shim::NOFILE_ENV, nofile.to_string());
    }
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.kill_on_drop(false);
    let spawned = cmd.spawn();
    // The parent's copies of the control pipe's read end and the status
    // pipe's write end.
    drop(cmd);
    let child = spawned.map_err(start_err)?;
    let shim_pid = child.id().map(|p| p as i32).unwrap_or(0);
    let shim = PidFd::open(shim_pid).map_err(start_err)?;
    let control = pipe::Sender::from_owned_fd(control_w).map_err(start_err)?;
    let status = pipe::Receiver::from_owned_fd(status_r).map_err(start_err)?;
    let mut link = Link {
        exe: exe.to_path_buf(),
        child,
        control,
        status: BufReader::new(status),
    };
    // A shim that dies before it reads the spec shows in its answer.
    let _ = link.control.write_all(&line).await;
    match answer(&mut link).await {
        Answer::Ok(record) => Ok(Started {
            record,
            shim,
            link: Some(link),
        }),
        Answer::Error(e) => Err(e),
        Answer::Gone(said) => Err(ShimError::Setup(format!(
            "the shim ended without starting the process{}",
            if said.is_empty() {
                String::new()
            } else {
                format!(": {said}")
            }
        ))),
    }
}

enum Answer {
    Ok(RunRecord),
    /// `error REASON` ([`ShimError::Setup`]) or `transient REASON`
    /// ([`ShimError::Transient`]): nothing of the run is left.
    Error(ShimError),
    /// The shim closed its status pipe, or said something else.
    Gone(String),
}

/// The longest status line read: a run or exit record, or a reason.
const MAX_STATUS_LINE: u64 = 64 * 1024;

/// One line from the shim's status pipe (at most [`MAX_STATUS_LINE`]
/// bytes); `None` at its end.
async fn status_line(link: &mut Link) -> Option<String> {
    let mut line = String::new();
    match (&mut link.status)
        .take(MAX_STATUS_LINE)
        .read_line(&mut line)
        .await
    {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(line.trim_end().to_string()),
    }
}

/// The shim's answer to a spec.
async fn answer(link: &mut Link) -> Answer {
    let Some(line) = status_line(link).await else {
        return Answer::Gone(String::new());
    };
    if let Some(reason) = line.strip_prefix("error ") {
        return Answer::Error(ShimError::Setup(reason.to_string()));
    }
    if let Some(reason) = line.strip_prefix("transient ") {
        return Answer::Error(ShimError::Transient(reason.to_string()));
    }
    match line
        .strip_prefix("ok ")
        .and_then(|json| serde_json::from_str::<RunRecord>(json).ok())
    {
        Some(record) => Answer::Ok(record),
        None => Answer::Gone(line),
    }
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
                return Some(Adopted::Running(Box::new(Started {
                    record,
                    shim,
                    link: None,
                })));
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

/// Waits until the run has ended and returns its exit record (None when
/// the shim itself died without one). A shim this jarvisd started tells
/// the end on its status pipe and is parked in `pool` for the unit's
/// restart; one an earlier jarvisd started tells it by exiting.
pub async fn wait(pool: &ShimPool, started: Started, run_dir: &Path) -> Option<ExitRecord> {
    let Started { record, shim, link } = started;
    if let Some(mut link) = link {
        let told = status_line(&mut link).await.and_then(|line| {
            line.strip_prefix("exit ")
                .and_then(|json| serde_json::from_str::<ExitRecord>(json).ok())
        });
        if let Some(exit) = told {
            pool.park(&record.unit, Idle { shim, link });
            return Some(exit);
        }
        // The shim died (or spoke out of turn): its end is its exit.
        shim.exited().await;
        let _ = link.child.wait().await;
        return exit_record(run_dir, &record.unit);
    }
    shim.exited().await;
    exit_record(run_dir, &record.unit)
}
