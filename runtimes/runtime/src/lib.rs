//! jarvis-runtime: the kernel behind one seam. The supervisor decides what
//! runs, when and where (a unit, its generation, its GPU placement); a
//! [`Runtime`] carries a run out: it prepares what the run needs (the
//! cgroup, device links, an image, a rootfs, a bundle), starts it under a
//! shim, waits for its end, finds it again after a jarvisd restart, kills
//! and removes what is left, and runs exec health checks in it.
//!
//! - [`NativeRuntime`]: a process started by the launcher (jarvis-native)
//!   in a cgroup this crate creates and limits.
//! - [`ContainerRuntime`]: an OCI container (jarvis-container, through
//!   libcontainer) from an image in the store (jarvis-image), pulled when
//!   missing. libcontainer creates the container's cgroup at the same path
//!   and writes `[resources]` from the spec: one translation of the limits.
//! - [`Runtimes`]: both, picking one by the unit's form; calls that only
//!   name a unit (adopt, kill, stats, remove) work on the same cgroup,
//!   `/<cgroup parent>/<unit>`, whichever form ran.
//!
//! Both start the unit's process through a shim (jarvis-shim), the parent
//! of the process, so a run outlives jarvisd and its end is never lost.
//! Every blocking step (cgroup files, sysfs, mounts) runs on tokio's
//! blocking pool inside the implementations: the futures returned here
//! never block the caller's loop, except [`Runtime::adopt`], which is
//! blocking and documented so.
//!
//! [`hardware`] turns a placement and the unit's devices into what a run
//! gets (environment, device nodes, driver files, groups, symlinks);
//! [`gpu`] holds the placement types the supervisor decides with.

pub mod envfile;
pub mod gpu;
pub mod gpu_usage;
pub mod hardware;

mod container;
mod inputs;
mod native;
mod net;
mod shim;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

pub use container::ContainerRuntime;
pub use gpu::{GpuInfo, Placement, Vendor};
pub use hardware::RunHardware;
pub use inputs::CREDENTIALS_ENV;
pub use native::NativeRuntime;

/// When a process started, by the wall clock (a re-adopted run keeps its uptime).
pub use jarvis_native::process_started_at;
/// A unit's cgroup figures (memory, CPU, pids, OOM kills).
pub use jarvis_native::CgroupStats as Stats;
/// A handle on a unit's cgroup (for callers that still read it directly).
pub use jarvis_native::UnitCgroup;
/// The log file settings a run's shim writes with, and its writer.
pub use jarvis_shim::logfile;
/// An exit as the shim records it, and a run found again by
/// `jarvis_shim::adopt` (for callers not yet on [`Runtime::adopt`]).
pub use jarvis_shim::{ExitRecord, Started};

/// A boxed future that owns what it needs.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// jarvisd's notes in the unit's log ("pulling image ...").
pub type Notes = Arc<dyn Fn(&str) + Send + Sync>;

/// What a run needs beyond the unit.
pub struct StartSpec {
    /// The form to run (native or container), already resolved.
    pub unit: jarvis_unit::Unit,
    /// The run's generation; the runtime only passes it through to logs.
    pub gen: u64,
    /// The GPU placement the supervisor decided (units with `[gpu]`).
    pub placement: Option<Placement>,
    /// Where the shim writes the unit's output.
    pub log: logfile::LogConfig,
    /// jarvisd's notes in the unit's log.
    pub notes: Notes,
}

/// Why a run did not start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartError {
    /// It cannot start: the unit's start failed (the failure says why, and
    /// whether a later try may work). Nothing of the run is left.
    Failed(StartFailure),
    /// A device the unit needs went away since it was found ready: wait for
    /// it again, do not count a failure.
    Deferred(String),
}

impl StartError {
    /// A failure that stays until something changes (a bad command, a
    /// missing image, an unknown user).
    pub fn failed(reason: impl Into<String>) -> StartError {
        StartError::Failed(StartFailure::permanent(reason))
    }
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Failed(r) => r.fmt(f),
            StartError::Deferred(r) => f.write_str(r),
        }
    }
}

/// Why a start failed, and whether it failed for want of something the
/// system may have again soon (descriptors, memory, processes, disk space:
/// `EMFILE`, `ENFILE`, `ENOMEM`, `EAGAIN`, `ENOSPC`, `EDQUOT`), so that
/// trying again later may work. It prints as its reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartFailure {
    pub reason: String,
    pub transient: bool,
}

impl StartFailure {
    /// A failure that stays until something changes.
    pub fn permanent(reason: impl Into<String>) -> StartFailure {
        StartFailure {
            reason: reason.into(),
            transient: false,
        }
    }

    /// A failure for want of a resource the system may have again soon.
    pub fn transient(reason: impl Into<String>) -> StartFailure {
        StartFailure {
            reason: reason.into(),
            transient: true,
        }
    }

    /// `what: err`, transient when the errno says so.
    pub fn io(what: &str, err: &std::io::Error) -> StartFailure {
        StartFailure {
            reason: format!("{what}: {err}"),
            transient: jarvis_native::transient(err),
        }
    }
}

impl std::fmt::Display for StartFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

impl From<String> for StartFailure {
    fn from(reason: String) -> StartFailure {
        StartFailure::permanent(reason)
    }
}

impl From<&str> for StartFailure {
    fn from(reason: &str) -> StartFailure {
        StartFailure::permanent(reason)
    }
}

impl From<StartFailure> for StartError {
    fn from(f: StartFailure) -> StartError {
        StartError::Failed(f)
    }
}

/// A run whose process runs.
pub struct Running {
    /// The unit's main process (a container's init, as the host sees it).
    pub pid: i32,
    /// The device nodes the run got (their current paths).
    pub devices: Vec<PathBuf>,
    /// The shim to wait on.
    shim: Box<Started>,
    /// Whether the run may have secrets mounted, to remove at its end
    /// (unknown for an adopted run: then it is looked at).
    secrets: bool,
}

impl Running {
    /// A run an earlier jarvisd started, from `jarvis_shim::adopt`.
    pub fn adopted(started: Started) -> Running {
        Running {
            pid: started.pid(),
            devices: Vec::new(),
            shim: Box::new(started),
            secrets: true,
        }
    }
}

impl From<Started> for Running {
    fn from(started: Started) -> Running {
        Running::adopted(started)
    }
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("pid", &self.pid)
            .field("devices", &self.devices)
            .field("shim_pid", &self.shim.record.shim_pid)
            .finish()
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    /// The OOM killer killed a process of the run.
    pub oom_killed: bool,
}

impl Exit {
    /// A run whose shim died without saying how it ended.
    pub const UNKNOWN: Exit = Exit {
        code: None,
        signal: None,
        oom_killed: false,
    };
}

impl From<ExitRecord> for Exit {
    fn from(r: ExitRecord) -> Exit {
        Exit {
            code: r.code,
            signal: r.signal,
            oom_killed: r.oom_killed,
        }
    }
}

/// What [`Runtime::adopt`] found of a unit's last run after a jarvisd
/// restart.
#[derive(Debug)]
pub enum Found {
    /// Its shim and process still run: wait on it as on a fresh run.
    Running(Running),
    /// It ended while no jarvisd watched: its main process was `pid`, and
    /// the exit is `None` when the shim died without recording it.
    Ended { pid: i32, exit: Option<Exit> },
    /// No run on record.
    Nothing,
}

/// The kernel side of running units. Every method returns at once; the
/// work happens in the returned future (blocking parts on tokio's blocking
/// pool), except [`Runtime::adopt`].
pub trait Runtime: Send + Sync {
    /// Prepares and starts one run of `spec.unit` under a shim; resolves
    /// once its process runs (or could not start). A failure is also noted
    /// in the unit's log by the caller, not here.
    fn start(&self, spec: StartSpec) -> BoxFuture<Result<Running, StartError>>;

    /// Where runs keep their things; the methods below work from it.
    fn config(&self) -> &Config;

    /// Resolves with the run's exit once its shim is gone, which is once
    /// the unit's cgroup is empty (a shim that died without an exit record
    /// has its cgroup emptied here, and the exit is [`Exit::UNKNOWN`]).
    /// The same for either form: it is the shim's.
    fn wait(&self, unit: &str, run: Running) -> BoxFuture<Exit> {
        shim::wait(self.config(), unit, run)
    }

    /// The unit's last run, as an earlier jarvisd left it. Blocking (it
    /// reads the run records and `/proc`): call it off the event loop, or
    /// at boot before the loop runs. Needs a tokio runtime (the shim's
    /// pidfd registers with it).
    fn adopt(&self, unit: &str) -> Found {
        shim::adopt(self.config(), unit)
    }

    /// SIGKILLs every process in the unit's cgroup until it is empty.
    fn kill_all(&self, unit: &str) -> BoxFuture<Result<(), String>> {
        shim::kill_all(self.config(), unit)
    }

    /// The unit's cgroup figures now.
    fn stats(&self, unit: &str) -> BoxFuture<Stats> {
        shim::stats(self.config(), unit)
    }

    /// Runs `argv` as the unit's exec health check: in its cgroup with its
    /// identity (native), or inside its running container. `Ok` with the
    /// output when it exits 0. The caller bounds it with a timeout;
    /// dropping the future kills the check.
    fn exec_probe(
        &self,
        unit: &jarvis_unit::Unit,
        argv: Vec<String>,
    ) -> BoxFuture<Result<String, String>>;

    /// Removes what a stopped unit leaves: its cgroup and, for a container,
    /// libcontainer's state and the rootfs mount (the container's writable
    /// layer stays). Best effort: failures are logged.
    fn remove(&self, unit: &str) -> BoxFuture<()>;
}

/// Where runs keep their things, and what they are started with.
#[derive(Debug, Clone)]
pub struct Config {
    /// The binary re-executed as the shim, the launcher and the container
    /// exec helper (jarvisd itself).
    pub launcher: PathBuf,
    /// The small native-only shim (`jarvis-shim`, installed next to
    /// jarvisd), which native runs start instead of `launcher __shim`;
    /// `None` where it is not installed.
    pub native_shim: Option<PathBuf>,
    /// The container shim (`jarvis-cshim`) as jarvisd keeps it: a sealed
    /// memfd it copied the binary into at start, `/proc/self/fd/N` (see
    /// [`Config::installed_container_shim`]). Container runs' shims start
    /// it instead of `launcher __shim`; `None`: they are `launcher __shim`.
    pub container_shim: Option<PathBuf>,
    /// Units' cgroups are `/<cgroup_parent>/<unit>`.
    pub cgroup_parent: String,
    /// Where shims keep their run and exit records.
    pub run_dir: PathBuf,
    /// Where containers' bundles and libcontainer's state live.
    pub state_dir: PathBuf,
    /// Where /sys, /proc and /dev are (JARVIS_SYSFS_ROOT, ... for tests).
    pub roots: jarvis_hardware::Roots,
    /// Container images, and how to pull them.
    pub images: jarvis_image::ImageStore,
    pub pull: jarvis_image::PullOptions,
    /// Bridge networks get their subnets from here (`--subnet-pool`).
    pub subnet_pool: ipnet::Ipv4Net,
    /// Named volumes live here, `<volume_dir>/NAME/_data`: by default
    /// `<state_dir>/volumes` (`jarvisd --volume-dir`).
    pub volume_dir: PathBuf,
    /// Shims whose run ended, kept a moment for the unit's restart.
    pub shims: jarvis_shim::ShimPool,
    /// The host's age identity (`jarvisd --age-identity`): an age X25519
    /// identity file or an unencrypted SSH ed25519 private key, read at
    /// each start of a unit that names `.age` files.
    pub age_identity: PathBuf,
}

/// The default `--age-identity`.
pub const DEFAULT_AGE_IDENTITY: &str = "/etc/jarvis/age.key";

/// The default `--subnet-pool`: /24s out of `10.89.0.0/16`.
pub const DEFAULT_SUBNET_POOL: &str = "10.89.0.0/16";

impl Config {
    /// The sealed copy of `jarvis-cshim` jarvisd's `main` made
    /// (`JARVIS_CONTAINER_SHIM`, `/proc/self/fd/N`), for
    /// [`Config::container_shim`]. Only a descriptor of this process that
    /// is a memfd sealed against writing, growing and shrinking is taken,
    /// so whatever calls into libcontainer runs from a sealed copy
    /// (CVE-2019-5736), never from a path a container could reach. `None`,
    /// said in the log, when there is none: containers' shims then run as
    /// `jarvisd __shim`, from jarvisd's own sealed copy.
    pub fn installed_container_shim() -> Option<PathBuf> {
        shim::installed_container_shim()
    }

    /// What runs libcontainer: the container shim's sealed copy where
    /// there is one, else jarvisd's own (`launcher`). Containers' shims
    /// (`__shim`) and the container exec helper (`__cexec`) are executions
    /// of it; both binaries serve both modes.
    pub fn container_exe(&self) -> &std::path::Path {
        self.container_shim.as_deref().unwrap_or(&self.launcher)
    }

    /// A unit's cgroup, `/<cgroup_parent>/<unit>`, whichever form runs.
    pub fn cgroup(&self, unit: &str) -> UnitCgroup {
        UnitCgroup::open(&self.cgroup_parent, unit)
    }

    /// The directory of a container unit's bundle: `config.json`, and the
    /// rootfs overlay mount with its upper and work dirs.
    pub fn container_dir(&self, unit: &str) -> PathBuf {
        self.state_dir.join("containers").join(unit)
    }

    /// libcontainer's state root.
    pub fn container_state_root(&self) -> PathBuf {
        self.state_dir.join("libcontainer")
    }
}

/// A named volume, for `jarvisctl volume ls`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeInfo {
    pub name: String,
    /// Its data directory, what containers mount.
    pub path: PathBuf,
    /// The bytes of its files; `None` when they could not be counted.
    pub size: Option<u64>,
}

/// Both runtimes; each call goes to the one for the unit's form.
#[derive(Clone)]
pub struct Runtimes {
    cfg: Arc<Config>,
    native: NativeRuntime,
    container: ContainerRuntime,
    net: Arc<net::Net>,
}

/// A unit's place on the bridge networks, for `status`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnitNetwork {
    /// `(network, address)`.
    pub addresses: Vec<(String, std::net::Ipv4Addr)>,
    /// Published ports as `docker ps` shows them.
    pub ports: Vec<String>,
}

pub use jarvis_network::NetworkInfo;

impl Runtimes {
    /// Fails only when the networks' record cannot be read.
    pub fn new(cfg: Config) -> Result<Runtimes, String> {
        let cfg = Arc::new(cfg);
        let net = Arc::new(net::Net::open(
            &cfg.state_dir,
            &cfg.run_dir,
            cfg.subnet_pool,
        )?);
        Ok(Runtimes {
            native: NativeRuntime::new(cfg.clone()),
            container: ContainerRuntime::new(cfg.clone(), net.clone()),
            net,
            cfg,
        })
    }

    /// At jarvisd's start, after re-adopting runs: the containers in
    /// `alive` keep their networks; what else the record holds is removed.
    pub fn restore_networks(&self, alive: Vec<jarvis_unit::Unit>) -> BoxFuture<()> {
        let net = self.net.clone();
        Box::pin(async move { net.restore(alive).await })
    }

    /// `unit`'s addresses and published ports now (in memory; cheap).
    pub fn unit_network(&self, unit: &jarvis_unit::Unit) -> UnitNetwork {
        let (addresses, ports) = self.net.addresses(unit);
        UnitNetwork { addresses, ports }
    }

    /// The bridge networks in use.
    pub fn networks(&self) -> Vec<NetworkInfo> {
        self.net.list()
    }

    /// The named volumes there are, with their sizes (read off the caller's
    /// thread).
    pub fn volumes(&self) -> BoxFuture<Result<Vec<VolumeInfo>, String>> {
        let dir = self.cfg.volume_dir.clone();
        Box::pin(blocking(move || {
            let names = jarvis_container::volume::list(&dir)
                .map_err(|e| format!("volume directory {}: {e}", dir.display()))?;
            Ok(names
                .into_iter()
                .map(|name| {
                    let path = dir.join(&name).join(jarvis_container::volume::DATA);
                    let size = jarvis_container::volume::size(&path).ok();
                    VolumeInfo { name, path, size }
                })
                .collect())
        }))
    }

    /// Removes the named volume `name` and its content. The caller makes
    /// sure no unit that uses it runs.
    pub fn remove_volume(&self, name: &str) -> BoxFuture<Result<(), String>> {
        let (dir, name) = (self.cfg.volume_dir.clone(), name.to_string());
        Box::pin(blocking(move || {
            let known = jarvis_container::volume::list(&dir)
                .map_err(|e| format!("volume directory {}: {e}", dir.display()))?;
            if !known.contains(&name) {
                return Err(format!("no volume named {name:?}"));
            }
            jarvis_container::volume::remove(&dir, &name).map_err(|e| e.to_string())
        }))
    }

    /// Lets go of the shim kept after `unit`'s last run (no restart
    /// follows it).
    pub fn release(&self, unit: &str) {
        self.cfg.shims.dismiss(unit);
    }

    /// The runtime for `unit`'s form.
    pub fn for_unit(&self, unit: &jarvis_unit::Unit) -> &dyn Runtime {
        match unit.kind() {
            jarvis_unit::Kind::Native => &self.native,
            jarvis_unit::Kind::Container => &self.container,
        }
    }

    /// A unit's cgroup path as `/proc/PID/cgroup` shows it (`/jarvis/web`).
    pub fn cgroup_path(&self, unit: &str) -> String {
        self.cfg.cgroup(unit).path().to_string()
    }

    /// The pids in a unit's cgroup now.
    pub fn pids(&self, unit: &str) -> BoxFuture<Vec<i32>> {
        let cg = self.cfg.cgroup(unit);
        Box::pin(blocking(move || cg.pids()))
    }

    /// Whether the cgroup parent exists (at boot: one that does was not
    /// made by this jarvisd, and is not its to remove).
    pub fn parent_exists(&self) -> BoxFuture<bool> {
        let parent = UnitCgroup::open("", &self.cfg.cgroup_parent);
        Box::pin(blocking(move || parent.exists()))
    }

    /// Removes the cgroup parent at shutdown if nothing is left in it: never
    /// a sub-cgroup, so another jarvisd's units under the same parent stay.
    pub fn remove_parent(&self) -> BoxFuture<()> {
        let parent = UnitCgroup::open("", &self.cfg.cgroup_parent);
        Box::pin(blocking(move || parent.remove_if_empty()))
    }
}

impl Runtime for Runtimes {
    fn config(&self) -> &Config {
        &self.cfg
    }

    fn start(&self, spec: StartSpec) -> BoxFuture<Result<Running, StartError>> {
        self.for_unit(&spec.unit).start(spec)
    }

    /// The container's wait is a superset of the native one (a run with no
    /// network has none to remove), so it serves either form.
    fn wait(&self, unit: &str, run: Running) -> BoxFuture<Exit> {
        self.container.wait(unit, run)
    }

    fn exec_probe(
        &self,
        unit: &jarvis_unit::Unit,
        argv: Vec<String>,
    ) -> BoxFuture<Result<String, String>> {
        self.for_unit(unit).exec_probe(unit, argv)
    }

    /// The container's removal is a superset of the native one (nothing
    /// there is fine), so it serves either form.
    /// Also deletes the unit's run and exit records once its run has ended:
    /// they are what a restarted jarvisd adopts, and a unit that is gone
    /// (left the set, stopped at shutdown) has nothing left to adopt.
    fn remove(&self, unit: &str) -> BoxFuture<()> {
        let removed = self.container.remove(unit);
        let (run_dir, unit) = (self.cfg.run_dir.clone(), unit.to_string());
        Box::pin(async move {
            removed.await;
            blocking(move || {
                if let Some(jarvis_shim::Adopted::Running(_)) = jarvis_shim::adopt(&run_dir, &unit)
                {
                    // A new run began meanwhile: its records are its own.
                    return;
                }
                for path in [
                    jarvis_shim::run_record_path(&run_dir, &unit),
                    jarvis_shim::exit_record_path(&run_dir, &unit),
                ] {
                    match std::fs::remove_file(&path) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => tracing::warn!(unit, path = %path.display(), error = %e, "cannot remove a record"),
                    }
                }
            })
            .await
        })
    }
}

/// The stdio of a command run by [`Runtimes::exec`]: descriptors the caller
/// handed over (`jarvisctl exec` sends its own, or a pty's slave side).
#[derive(Debug)]
pub struct ExecStdio {
    pub stdin: std::os::fd::OwnedFd,
    pub stdout: std::os::fd::OwnedFd,
    pub stderr: std::os::fd::OwnedFd,
}

impl Runtimes {
    /// Runs `argv` inside `unit`'s run, as `jarvisctl exec` does: in a
    /// container's namespaces and cgroup with its user and capabilities,
    /// or in a native unit's cgroup with its identity and privileges;
    /// `user` instead of the unit's (a container's resolved in its own
    /// /etc/passwd and /etc/group); with `tty`, stdin is a terminal that
    /// becomes the command's controlling terminal. Resolves with its exit
    /// code (128 + the signal number when a signal killed it). Dropping the
    /// future kills the command.
    pub fn exec(
        &self,
        unit: &jarvis_unit::Unit,
        argv: Vec<String>,
        user: Option<String>,
        tty: bool,
        stdio: ExecStdio,
    ) -> BoxFuture<Result<i32, String>> {
        if argv.first().is_none_or(|a| a.is_empty()) {
            return Box::pin(async { Err("no command to run".to_string()) });
        }
        match unit.kind() {
            jarvis_unit::Kind::Native => self.native.exec(unit, argv, user, tty, stdio),
            jarvis_unit::Kind::Container => self.container.exec(unit, argv, user, stdio),
        }
    }
}

/// An exit status as a shell reports it: the code, or 128 + the signal.
fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(255)
}

/// Runs blocking kernel work (cgroup files, sysfs, mounts) on tokio's
/// blocking pool.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f)
        .await
        .expect("blocking task panicked")
}
