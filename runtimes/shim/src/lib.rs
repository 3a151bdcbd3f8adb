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

/// The soft descriptor limit shims and their units get (0: the one they
/// inherit). jarvisd raises its own soft limit to serve many clients; what
/// it starts goes back to the limit jarvisd was given, as systemd's
/// services do, so programs that `select()` or close every descriptor up
/// to the limit keep working.
static UNITS_NOFILE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Sets the soft descriptor limit of every shim started from now on, and
/// so of the units they run (see [`UNITS_NOFILE`]).
pub fn set_units_nofile(soft: u64) {
    UNITS_NOFILE.store(soft, std::sync::atomic::Ordering::Relaxed);
}

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

/// The small binary that runs containers' shims ([`shim_main`]) and the
/// container exec helper (`cexec_main`), installed next to jarvisd: it
/// links libcontainer but none of the daemon (no tokio loop, git, HTTP or
/// age, nor the TLS libraries they bring). jarvisd never runs it from its
/// path: it copies it once, at start, into a sealed memfd and executes
/// that (CVE-2019-5736), as it runs itself.
pub const CONTAINER_SHIM_NAME: &str = "jarvis-cshim";

/// Where jarvisd tells its runtime the container shim is. jarvisd's `main`
/// sets it to the binary next to it (before it re-executes itself from a
/// sealed copy, after which its own path is gone), then, in the sealed
/// daemon, to `/proc/self/fd/N`: the sealed memfd it copied the binary
/// into, which it keeps open (close-on-exec) and which is what shims are
/// started from. Removed when the binary is not there.
pub const CONTAINER_SHIM_ENV: &str = "JARVIS_CONTAINER_SHIM";

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
    /// The digest of the unit definition the run is started from (see
    /// [`DEFINITION`]); the shim writes it into the run record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub definition: Option<String>,
}

tokio::task_local! {
    /// The digest of the unit definition a run is started from, set by
    /// jarvisd around the start (`DEFINITION.scope(digest, start)`):
    /// [`spawn`] sends it to the shim with the spec, and the shim writes it
    /// into the [`RunRecord`], so a restarted jarvisd can tell a run started
    /// from another definition than the one it would run now. It travels
    /// beside the spec rather than in it so that the runtimes that build the
    /// spec need not know of it.
    pub static DEFINITION: String;
}

/// The definition digest recorded for `unit`'s run, if its run record has
/// one (runs started by an older jarvis have none). Blocking: reads the run
/// record.
pub fn run_definition(run_dir: &Path, unit: &str) -> Option<String> {
    read_json::<RunRecord>(&run_record_path(run_dir, unit))?.definition
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
    /// The digest of the unit definition the run was started from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub definition: Option<String>,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_run_record_carries_the_definition_and_older_records_read() {
        let dir = tempfile::tempdir().unwrap();
        let older =
            r#"{"unit":"web","shim_pid":1,"shim_start":2,"pid":3,"kind":"native","started_ms":4}"#;
        std::fs::write(run_record_path(dir.path(), "web"), older).unwrap();
        assert_eq!(run_definition(dir.path(), "web"), None);
        let mut rec: RunRecord = serde_json::from_str(older).unwrap();
        rec.definition = Some("ab12".into());
        write_atomic(&run_record_path(dir.path(), "web"), &rec).unwrap();
        assert_eq!(run_definition(dir.path(), "web").as_deref(), Some("ab12"));
        assert_eq!(run_definition(dir.path(), "db"), None);
    }

    #[tokio::test]
    async fn the_definition_travels_with_the_spec_only_where_it_is_set() {
        let get = || async { DEFINITION.try_with(|d| d.clone()).ok() };
        assert_eq!(get().await, None);
        assert_eq!(
            DEFINITION.scope("ab12".to_string(), get()).await.as_deref(),
            Some("ab12")
        );
    }
}
