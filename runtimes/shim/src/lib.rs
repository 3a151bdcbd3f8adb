//! jarvis-shim: one small process per run of a unit, between jarvisd and
//! the unit's process, as containerd's shims are.
//!
//! The shim, not jarvisd, is the parent of the unit's process (and, as a
//! child subreaper, of everything that process leaves behind). It holds the
//! read end of the unit's output pipe and writes the log, so neither the
//! unit nor its log notices when jarvisd dies or restarts. When the unit's
//! main process exits, the shim empties the unit's cgroup, writes an exit
//! record and exits itself.
//!
//! jarvisd learns a run's end from a pidfd on the shim and reads the exit
//! record; after a restart it finds running shims through their run records
//! (`<run-dir>/<unit>.run.json`) and re-adopts them.
//!
//! Files in the run directory, each written temp + rename:
//! - `<unit>.run.json`: [`RunRecord`], written once the process runs;
//! - `<unit>.exit.json`: [`ExitRecord`], written when it has ended.

pub mod logfile;
mod shim;
mod spawn;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[cfg(feature = "container")]
pub use shim::cexec_main;
pub use shim::{native_shim_main, shim_main};

pub use spawn::{
    adopt, exit_record, spawn, wait, Adopted, PidFd, ShimError, ShimPool, Started, PARK_FOR,
};

/// `jarvisd SHIM_ARG UNIT` runs [`shim_main`].
pub const SHIM_ARG: &str = "__shim";
/// The shim's process name (`/proc/PID/comm`), as `ps -e` and `top` show it,
/// and the name of the small binary that runs native units' shims
/// ([`native_shim_main`]), installed next to jarvisd.
pub const SHIM_NAME: &str = "jarvis-shim";

/// Where jarvisd tells its runtime the `jarvis-shim` binary is: set by
/// jarvisd's `main` (before it re-executes itself from a sealed copy, after
/// which its own path is gone) when the binary is there, removed when not.
pub const NATIVE_SHIM_ENV: &str = "JARVIS_NATIVE_SHIM";

/// The shim's argv[0], `jarvis-shim UNIT`: its command line reads
/// `jarvis-shim UNIT __shim UNIT`, so `pgrep -f "jarvis-shim UNIT"` finds
/// it. The mode (argv[1]) and the unit (argv[2]) keep their places, which
/// is what [`adopt`] checks.
pub fn shim_argv0(unit: &str) -> String {
    format!("{SHIM_NAME} {unit}")
}

/// `jarvisd CEXEC_ARG [--user USER] [--tty] ID STATE_ROOT ARGV...` runs [`cexec_main`].
pub const CEXEC_ARG: &str = "__cexec";

/// What one run needs; travels to the shim serialized.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShimSpec {
    pub unit: String,
    /// jarvisd's binary, checked to be there before a native start.
    pub launcher: PathBuf,
    pub payload: Payload,
    pub log: logfile::LogConfig,
    pub run_dir: PathBuf,
    /// The unit's cgroup `/<parent>/<name>`: emptied when the main process
    /// exits; its OOM count tells an OOM kill.
    pub cgroup_parent: String,
    pub cgroup_name: String,
}

/// What jarvisd hands a shim: the spec, and for a native unit its user and
/// groups, looked up by jarvisd.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ShimInput {
    pub spec: ShimSpec,
    pub identity: Option<jarvis_native::launch::Identity>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Payload {
    /// A native process, started by a fork that runs its launch plan.
    Native(jarvis_native::LaunchSpec),
    /// A container whose bundle (`config.json`, the mounted rootfs) is
    /// ready: created and started through libcontainer, deleted (and its
    /// rootfs unmounted) once its init has exited.
    Container(ContainerRun),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerRun {
    pub id: String,
    /// Holds `config.json`; also the container directory whose `rootfs` is
    /// the overlay mount.
    pub bundle: PathBuf,
    /// libcontainer's state root.
    pub state_root: PathBuf,
    /// The command line, for the log.
    pub argv: Vec<String>,
}

/// A run in progress, as the shim records it for jarvisd (and for the next
/// jarvisd, after a restart).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub unit: String,
    pub shim_pid: i32,
    /// The shim's start time (field 22 of /proc/PID/stat), so a reused pid
    /// is never mistaken for the shim.
    pub shim_start: u64,
    /// The unit's main process (a container's init, as seen from the host).
    pub pid: i32,
    pub kind: String,
    /// Milliseconds since the epoch when the process started.
    pub started_ms: u64,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitRecord {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub oom_killed: bool,
}

pub fn run_record_path(run_dir: &Path, unit: &str) -> PathBuf {
    run_dir.join(format!("{unit}.run.json"))
}

pub fn exit_record_path(run_dir: &Path, unit: &str) -> PathBuf {
    run_dir.join(format!("{unit}.exit.json"))
}

/// Writes `value` as JSON to `path` via a temp file and a rename. Not
/// fsynced: the records only have to outlive jarvisd (the page cache does
/// that), not the machine, whose restart ends every run anyway.
fn write_atomic<T: Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    jarvis_fsutil::write_atomic(
        path,
        &serde_json::to_vec(value)?,
        jarvis_fsutil::Durability::Atomic,
    )
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Option<T> {
    let bytes = std::fs::read(path).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Field 22 of /proc/PID/stat: when the process started, in clock ticks
/// since boot.
pub fn process_start(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    // After ")": state is field 3, so starttime (22) is index 19.
    rest.split_whitespace().nth(19)?.parse().ok()
}
