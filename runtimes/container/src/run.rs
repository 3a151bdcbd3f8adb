//! Running a bundle through libcontainer: create + start, kill, delete,
//! state for re-adoption, and exec into a running container.
//!
//! # Who the container's init is a child of
//!
//! libcontainer forks an intermediate process from the caller, which clones
//! the container init with `CLONE_PARENT` and exits (the caller reaps it
//! inside [`create_and_start`]). The init is therefore a **direct child of
//! the process that called [`create_and_start`]**: that process gets its
//! `SIGCHLD` and must reap it (`waitpid(pid)`; tokio's `Child` knows nothing
//! of it). No parent-death signal is set, so the container survives the
//! caller: if the caller dies, the init is reparented to the nearest child
//! subreaper (`PR_SET_CHILD_SUBREAPER`) or to the host's pid 1, and keeps
//! running in its cgroup with its state under `state_root`; a restarted
//! daemon finds it with [`state`] and signals it with [`kill`], but cannot
//! `waitpid` it unless it is its subreaper. A per-unit shim that is a
//! subreaper (and calls this crate) is the way to keep exit statuses across
//! daemon restarts.
//!
//! # Seccomp
//!
//! A bundle whose profile was compiled ahead
//! ([`crate::prepare::seccomp_ahead`]: `seccomp.bpf`, named by a
//! `config.json` annotation, no `linux.seccomp`) gets an executor that
//! loads that program with `seccomp(2)` right before `execve`, after
//! libcontainer has set `no_new_privs` and dropped capabilities: where
//! libcontainer itself loads a profile when `noNewPrivileges` is set. A
//! program that is missing or cannot be loaded fails the start; the
//! payload never runs unfiltered. Any other profile is libcontainer's, as
//! it is.
//!
//! # Calling from a multi-threaded process
//!
//! libcontainer forks with raw `clone`/`clone3` and keeps running Rust code
//! (allocating) in the child before `exec`. In a multi-threaded caller a
//! lock held by another thread at that moment (the allocator's, tracing's)
//! stays locked in the child. Call [`create_and_start`] and [`exec_in`] from
//! a single-threaded process (the shim, or a `jarvisd __launch`-style
//! helper), or at least from a thread while the others are idle.
//!
//! # Side effects on the caller
//!
//! libcontainer marks the calling process non-dumpable
//! (`PR_SET_DUMPABLE 0`) for the rest of its life: no core dumps, and its
//! `/proc/<pid>` files become root-owned. It also changes nothing else in the
//! caller (no signal dispositions, no cwd).
//!
//! # Descriptors (CVE-2024-21626)
//!
//! The stdio descriptors are duplicated to numbers >= 3 with `O_CLOEXEC`
//! before libcontainer sees them; in the init they are `dup2`ed onto 0, 1, 2
//! and libcontainer marks every other descriptor close-on-exec
//! (`close_range(3, ~0, CLOSE_RANGE_CLOEXEC)`) just before `execve`, so the
//! payload starts with exactly those three. Every descriptor this crate opens
//! is `O_CLOEXEC`. The working directory is entered after `pivot_root`, so
//! it resolves inside the rootfs, and libcontainer verifies the cwd is not
//! outside the root before exec; this crate also creates a missing working
//! directory inside the rootfs (`openat2` with `RESOLVE_IN_ROOT`).

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use jarvis_unit::Network;
use libcontainer::container::builder::ContainerBuilder;
use libcontainer::container::{Container, ContainerStatus};
use libcontainer::error::LibcontainerError;
use libcontainer::signal::Signal;
use libcontainer::syscall::syscall::SyscallType;
use libcontainer::workload::default::DefaultExecutor;
use libcontainer::workload::{Executor, ExecutorError, ExecutorValidationError};
use nix::fcntl::{fcntl, FcntlArg};
use oci_spec::runtime::{LinuxDeviceType, LinuxSeccomp, Spec};

use crate::inroot;
use crate::seccomp::bpf::{self, Program};
use crate::spec::EtcFiles;

/// The three descriptors a container process starts with.
#[derive(Debug)]
pub struct Stdio {
    pub stdin: OwnedFd,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
}

impl From<(OwnedFd, OwnedFd, OwnedFd)> for Stdio {
    fn from((stdin, stdout, stderr): (OwnedFd, OwnedFd, OwnedFd)) -> Self {
        Stdio {
            stdin,
            stdout,
            stderr,
        }
    }
}

/// A container's status, as libcontainer keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Creating,
    Created,
    Running,
    Stopped,
    Paused,
}

impl From<ContainerStatus> for Status {
    fn from(s: ContainerStatus) -> Self {
        match s {
            ContainerStatus::Creating => Status::Creating,
            ContainerStatus::Created => Status::Created,
            ContainerStatus::Running => Status::Running,
            ContainerStatus::Stopped => Status::Stopped,
            ContainerStatus::Paused => Status::Paused,
        }
    }
}

/// What [`state`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct State {
    pub status: Status,
    /// The init's pid on the host, while it is alive.
    pub pid: Option<i32>,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{op} container {id:?}: {message}")]
    Libcontainer {
        op: &'static str,
        id: String,
        message: String,
    },
    #[error("container {0:?} does not exist")]
    NotFound(String),
    #[error("invalid signal {0}")]
    BadSignal(i32),
    #[error("empty argv")]
    EmptyArgv,
    #[error("{0}")]
    User(#[from] crate::user::UserError),
    #[error("{what} {path:?}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

fn lc_err<'a>(op: &'static str, id: &'a str) -> impl FnOnce(LibcontainerError) -> RunError + 'a {
    move |e| RunError::Libcontainer {
        op,
        id: id.to_string(),
        message: chain(&e),
    }
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> RunError + 'a {
    move |source| RunError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// Wraps `pentacle::ensure_sealed()`: re-executes the current program from a
/// sealed memfd copy of itself unless it already runs from one (on the
/// first call the process is replaced; on failure this returns the error).
///
/// CVE-2019-5736: libcontainer's init is a clone of the calling process and
/// does not protect `/proc/self/exe`; a container process that opens the
/// init's `/proc/<pid>/exe` for writing must find a sealed, unwritable
/// memfd, never the daemon's binary on disk. Call this first thing in `main`
/// of every program that uses this crate.
pub fn ensure_sealed() -> io::Result<()> {
    pentacle::ensure_sealed()
}

/// Whether the running program is a sealed memfd (see [`ensure_sealed`]).
pub fn is_sealed() -> bool {
    pentacle::is_sealed()
}

fn mkdir_private(dir: &Path) -> Result<(), RunError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io_err("creating", dir))
}

fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<(), RunError> {
    // No fsync: a bundle is written anew for every start, and the rename
    // alone keeps a reader from ever seeing half a file.
    jarvis_fsutil::write_atomic_mode(path, data, jarvis_fsutil::Durability::Atomic, mode)
        .map_err(io_err("writing", path))
}

/// Writes `config.json` into the bundle directory (created 0700 if needed).
pub fn write_bundle(bundle_dir: &Path, spec: &Spec) -> Result<(), RunError> {
    mkdir_private(bundle_dir)?;
    let json = serde_json::to_vec_pretty(spec)
        .map_err(|e| io_err("serializing", bundle_dir)(io::Error::other(e)))?;
    write_atomic(&bundle_dir.join("config.json"), &json, 0o600)
}

/// Writes the files bound over the container's `/etc/hostname`,
/// `/etc/hosts` and `/etc/resolv.conf` into the bundle directory. With the
/// host's network, the container gets the host's `/etc/hosts` and
/// `/etc/resolv.conf`, read-only; in a namespace of its own (`none`,
/// `bridge`, `unit:NAME`) it gets the files `net` describes: localhost, its
/// addresses under its hostname, `extra_hosts`, and jarvis's name server.
pub fn write_etc_files(
    bundle_dir: &Path,
    hostname: &str,
    network: &Network,
    net: &crate::NetSetup,
) -> Result<EtcFiles, RunError> {
    mkdir_private(bundle_dir)?;
    let hostname_file = bundle_dir.join("hostname");
    write_atomic(&hostname_file, format!("{hostname}\n").as_bytes(), 0o644)?;
    let (hosts, resolv_conf) = match network {
        Network::Host if Path::new("/etc/resolv.conf").exists() => (
            PathBuf::from("/etc/hosts"),
            PathBuf::from("/etc/resolv.conf"),
        ),
        Network::Host => {
            let resolv = bundle_dir.join("resolv.conf");
            write_atomic(&resolv, b"", 0o644)?;
            (PathBuf::from("/etc/hosts"), resolv)
        }
        Network::None | Network::Bridge | Network::Unit(_) => {
            let hosts = bundle_dir.join("hosts");
            write_atomic(&hosts, net.hosts_file(hostname).as_bytes(), 0o644)?;
            let resolv = bundle_dir.join("resolv.conf");
            write_atomic(&resolv, net.resolv_conf().as_bytes(), 0o644)?;
            (hosts, resolv)
        }
    };
    Ok(EtcFiles {
        hosts,
        resolv_conf,
        hostname: hostname_file,
    })
}

/// A duplicate of `fd` numbered 3 or above, close-on-exec: libcontainer's
/// init does `dup2(fd, n); close(fd)`, which would close a descriptor that
/// already is 0, 1 or 2.
fn high_cloexec(fd: impl AsFd) -> Result<OwnedFd, RunError> {
    let raw = fcntl(fd.as_fd().as_raw_fd(), FcntlArg::F_DUPFD_CLOEXEC(3))
        .map_err(|e| io_err("duplicating a stdio descriptor", Path::new(""))(e.into()))?;
    // SAFETY: fcntl just returned this descriptor and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

fn load(id: &str, state_root: &Path) -> Result<Container, RunError> {
    let dir = state_root.join(id);
    if !dir.join("state.json").exists() {
        return Err(RunError::NotFound(id.to_string()));
    }
    Container::load(dir).map_err(lc_err("loading", id))
}

/// Creates the container from `<bundle_dir>/config.json` and starts it;
/// returns the init's host pid. The init is a child of the calling process
/// (see the module docs), which must reap it. State goes under
/// `<state_root>/<id>` (created 0700).
///
/// On cgroup v1 the device cgroup is rewritten between create and start to
/// exactly the spec's rules (libcgroups adds its own defaults: `c *:* m`,
/// `b *:* m`, `/dev/console`, `/dev/net/tun`). On failure everything created
/// is deleted again.
pub fn create_and_start(
    id: &str,
    bundle_dir: &Path,
    state_root: &Path,
    stdio: Stdio,
) -> Result<i32, RunError> {
    mkdir_private(state_root)?;
    let spec_path = bundle_dir.join("config.json");
    let spec = Spec::load(&spec_path)
        .map_err(|e| io_err("loading", &spec_path)(io::Error::other(chain(&e))))?;
    prepare_cwd(&spec)?;
    let program = ahead_program(&spec, bundle_dir)?;

    let mut builder = ContainerBuilder::new(id.to_string(), SyscallType::default())
        .validate_id()
        .map_err(lc_err("validating the id of", id))?
        .with_root_path(state_root)
        .map_err(lc_err("setting the state root of", id))?;
    if let Some(program) = program {
        builder = builder.with_executor(SeccompExecutor {
            filter: Some(Filter::Program(program)),
            terminal: false,
        });
    }
    let builder = builder
        .with_stdin(high_cloexec(&stdio.stdin)?)
        .with_stdout(high_cloexec(&stdio.stdout)?)
        .with_stderr(high_cloexec(&stdio.stderr)?);
    drop(stdio);
    let mut container = builder
        .as_init(bundle_dir)
        .with_systemd(false)
        .with_detach(true)
        .build()
        .map_err(lc_err("creating", id))?;

    let started = (|| {
        fix_cgroups(&spec)?;
        container.start().map_err(lc_err("starting", id))?;
        container
            .pid()
            .map(|p| p.as_raw())
            .ok_or_else(|| RunError::Libcontainer {
                op: "starting",
                id: id.to_string(),
                message: "no init pid in the state".into(),
            })
    })();
    if started.is_err() {
        if let Err(e) = container.delete(true) {
            tracing::warn!(id, error = %chain(&e), "cleaning up a container that failed to start");
        }
    }
    started
}

/// The seccomp program compiled ahead for this bundle
/// ([`crate::prepare::seccomp_ahead`]), when the spec's annotation names
/// one: it must be there and whole, and the process must have
/// `no_new_privileges` (the program is loaded after capabilities are
/// dropped), or the start fails: the container never runs without its
/// filter.
fn ahead_program(spec: &Spec, bundle_dir: &Path) -> Result<Option<Program>, RunError> {
    let annotations = spec.annotations().as_ref();
    let Some(file) = annotations.and_then(|a| a.get(bpf::ANNOTATION)) else {
        return Ok(None);
    };
    let bad = |why: String| RunError::Io {
        what: "loading the seccomp program of",
        path: bundle_dir.to_path_buf(),
        source: io::Error::new(io::ErrorKind::InvalidData, why),
    };
    if file.is_empty() || file.contains('/') || file == ".." {
        return Err(bad(format!("{} = {file:?}", bpf::ANNOTATION)));
    }
    let nnp = spec.process().as_ref().and_then(|p| p.no_new_privileges()) == Some(true);
    if !nnp {
        return Err(bad("a program compiled ahead needs noNewPrivileges".into()));
    }
    let flags = match annotations.and_then(|a| a.get(bpf::FLAGS_ANNOTATION)) {
        None => 0,
        Some(f) => f
            .parse()
            .map_err(|_| bad(format!("{} = {f:?}", bpf::FLAGS_ANNOTATION)))?,
    };
    let path = bundle_dir.join(file);
    Program::read(&path, flags)
        .map(Some)
        .map_err(io_err("loading the seccomp program", &path))
}

/// Creates the process's working directory inside the rootfs when it is
/// missing (Docker does the same for WorkingDir).
fn prepare_cwd(spec: &Spec) -> Result<(), RunError> {
    let (Some(root), Some(process)) = (spec.root(), spec.process()) else {
        return Ok(());
    };
    let cwd = process.cwd();
    if cwd == Path::new("/") || cwd.as_os_str().is_empty() {
        return Ok(());
    }
    inroot::mkdir_all(root.path(), cwd, 0o755)
        .map_err(io_err("creating the working directory", cwd))
}

/// What libcgroups leaves out, done between create and start:
///
/// - v1: rewrites the device cgroup to exactly the spec's rules;
/// - v2: writes `memory.swap.max = 0` when the spec asks for no swap (swap
///   equal to the limit), which libcgroups treats as "leave alone".
fn fix_cgroups(spec: &Spec) -> Result<(), RunError> {
    use libcgroups::common::CgroupSetup;

    let Some(linux) = spec.linux() else {
        return Ok(());
    };
    let Some(cgroups_path) = linux.cgroups_path() else {
        return Ok(());
    };
    let rel = cgroups_path.strip_prefix("/").unwrap_or(cgroups_path);
    match libcgroups::common::get_cgroup_setup() {
        Ok(CgroupSetup::Legacy | CgroupSetup::Hybrid) => tighten_v1_devices(linux, rel),
        Ok(CgroupSetup::Unified) => {
            let memory = linux.resources().as_ref().and_then(|r| *r.memory());
            let no_swap = memory.is_some_and(|m| m.limit().is_some() && m.swap() == m.limit());
            let path = Path::new(libcgroups::common::DEFAULT_CGROUP_ROOT)
                .join(rel)
                .join("memory.swap.max");
            if no_swap && path.exists() {
                fs::write(&path, "0").map_err(io_err("writing", &path))?;
            }
            Ok(())
        }
        Err(_) => Ok(()),
    }
}

/// Rewrites the v1 device cgroup of a created container to exactly the
/// spec's rules.
fn tighten_v1_devices(linux: &oci_spec::runtime::Linux, rel: &Path) -> Result<(), RunError> {
    use libcgroups::v1::{util::get_subsystem_mount_point, ControllerType};

    let Some(rules) = linux.resources().as_ref().and_then(|r| r.devices().clone()) else {
        return Ok(());
    };
    let Ok(mount) = get_subsystem_mount_point(&ControllerType::Devices) else {
        return Ok(());
    };
    let dir = mount.join(rel);
    let write = |file: &str, rule: &str| -> Result<(), RunError> {
        let path = dir.join(file);
        fs::write(&path, rule).map_err(io_err("writing", &path))
    };
    // Deny-all first resets the list, then only the allow rules remain.
    write("devices.deny", "a")?;
    for r in rules {
        if r.allow() {
            write("devices.allow", &r.to_string())?;
        } else if r.typ() != Some(LinuxDeviceType::A) || r.major().is_some() || r.minor().is_some()
        {
            write("devices.deny", &r.to_string())?;
        }
    }
    Ok(())
}

/// Sends `signal` to the container's init.
pub fn kill(id: &str, state_root: &Path, signal: i32) -> Result<(), RunError> {
    let sig = Signal::try_from(signal).map_err(|_| RunError::BadSignal(signal))?;
    load(id, state_root)?
        .kill(sig, false)
        .map_err(lc_err("signalling", id))
}

/// Sends `signal` to every process in the container's cgroup (freezing it
/// meanwhile on v1).
pub fn kill_all(id: &str, state_root: &Path, signal: i32) -> Result<(), RunError> {
    let sig = Signal::try_from(signal).map_err(|_| RunError::BadSignal(signal))?;
    load(id, state_root)?
        .kill(sig, true)
        .map_err(lc_err("signalling", id))
}

/// Deletes the container: with `force`, SIGKILLs whatever still runs; then
/// removes its cgroups and its state directory. A container that does not
/// exist is already deleted. The rootfs mount and the bundle are the
/// caller's ([`crate::unmount_rootfs`]).
pub fn delete(id: &str, state_root: &Path, force: bool) -> Result<(), RunError> {
    let mut c = match load(id, state_root) {
        Ok(c) => c,
        Err(RunError::NotFound(_)) => return Ok(()),
        Err(e) => return Err(e),
    };
    c.delete(force).map_err(lc_err("deleting", id))
}

/// The container's status and init pid, for re-adoption after a daemon
/// restart; `None` when there is no such container. A recorded pid that is
/// gone, a zombie, or (after pid reuse) a process outside the container's
/// cgroup reads as `Stopped` without a pid.
pub fn state(id: &str, state_root: &Path) -> Result<Option<State>, RunError> {
    let c = match load(id, state_root) {
        Ok(c) => c,
        Err(RunError::NotFound(_)) => return Ok(None),
        Err(e) => return Err(e),
    };
    let status: Status = c.status().into();
    let pid = c.pid().map(|p| p.as_raw());
    let cgroup = c.spec().ok().map(|s| s.cgroup_path);
    let alive = match (status, pid, cgroup) {
        (Status::Stopped, _, _) | (_, None, _) => false,
        (_, Some(pid), Some(cg)) => in_cgroup(pid, &cg),
        (_, Some(_), None) => true,
    };
    Ok(Some(if alive {
        State { status, pid }
    } else {
        State {
            status: Status::Stopped,
            pid: None,
        }
    }))
}

/// Whether `/proc/<pid>/cgroup` puts the process in `cgroup` in some
/// hierarchy.
fn in_cgroup(pid: i32, cgroup: &Path) -> bool {
    let Ok(text) = fs::read_to_string(format!("/proc/{pid}/cgroup")) else {
        return false;
    };
    let want = cgroup.to_string_lossy();
    text.lines()
        .filter_map(|l| l.splitn(3, ':').nth(2))
        .any(|p| p == want)
}

/// Runs `argv` inside a running container (for exec health checks) through
/// libcontainer's tenant builder and returns its host pid, a child of the
/// caller that the caller must reap. The process joins the init's
/// namespaces and cgroup and gets the init's user, groups, capabilities,
/// environment and working directory. libcontainer 0.7 does not carry the
/// init's seccomp filter over to a tenant, so this crate installs it itself
/// just before `execve`; for that it always sets `no_new_privileges` on the
/// exec'd process (a health check has no business gaining privileges).
pub fn exec_in(
    id: &str,
    state_root: &Path,
    argv: &[String],
    stdio: Stdio,
) -> Result<i32, RunError> {
    exec_in_as(id, state_root, argv, stdio, &ExecOptions::default())
}

/// What `jarvisctl exec` may ask of [`exec_in_as`] beyond [`exec_in`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOptions {
    /// Run as this user instead of the init's: "uid", "uid:gid", "name" or
    /// "name:group", resolved against the container's own `/etc/passwd` and
    /// `/etc/group` (in its rootfs, as they are now) with the rules of
    /// Docker's `exec --user`; a user given by name (or a uid with an entry)
    /// gets the groups that list it, and `HOME` is its home.
    pub user: Option<String>,
    /// stdin, when it is a terminal that no session has as its controlling
    /// terminal (a pty opened for the command), becomes the controlling
    /// terminal of the command's session (libcontainer's init calls
    /// `setsid`; this adds `TIOCSCTTY` just before `execve`), so Ctrl-C on
    /// it reaches the command. A terminal another session has (the
    /// caller's own, handed on with `exec -i`) is left as it is.
    pub terminal: bool,
}

/// [`exec_in`] with [`ExecOptions`].
pub fn exec_in_as(
    id: &str,
    state_root: &Path,
    argv: &[String],
    stdio: Stdio,
    opts: &ExecOptions,
) -> Result<i32, RunError> {
    if argv.is_empty() || argv[0].is_empty() {
        return Err(RunError::EmptyArgv);
    }
    let c = load(id, state_root)?;
    let spec_path = c.bundle().join("config.json");
    let spec = Spec::load(&spec_path)
        .map_err(|e| io_err("loading", &spec_path)(io::Error::other(chain(&e))))?;
    let process = spec.process().clone().unwrap_or_default();
    let init_user = process.user();
    let (uid, gid, additional_gids, env) = match &opts.user {
        None => (
            init_user.uid(),
            init_user.gid(),
            init_user.additional_gids().clone().unwrap_or_default(),
            HashMap::new(),
        ),
        Some(user) => {
            let rootfs = spec
                .root()
                .as_ref()
                .map_or_else(|| c.bundle().join("rootfs"), |r| c.bundle().join(r.path()));
            let db = crate::user::UserDb::load(&rootfs)
                .map_err(io_err("reading the user database of", &rootfs))?;
            let u = db.resolve(user)?;
            let env = HashMap::from([("HOME".to_string(), u.home)]);
            (u.uid, u.gid, u.additional_gids, env)
        }
    };
    // The init's filter: the program compiled ahead for its bundle, or
    // the spec's profile.
    let filter = match ahead_program(&spec, c.bundle())? {
        Some(program) => Some(Filter::Program(program)),
        None => spec
            .linux()
            .as_ref()
            .and_then(|l| l.seccomp().clone())
            .map(Filter::Profile),
    };

    let builder = ContainerBuilder::new(id.to_string(), SyscallType::default())
        .validate_id()
        .map_err(lc_err("validating the id of", id))?
        .with_root_path(state_root)
        .map_err(lc_err("setting the state root of", id))?
        .with_executor(SeccompExecutor {
            filter,
            terminal: opts.terminal,
        })
        .with_stdin(high_cloexec(&stdio.stdin)?)
        .with_stdout(high_cloexec(&stdio.stdout)?)
        .with_stderr(high_cloexec(&stdio.stderr)?);
    drop(stdio);
    let pid = builder
        .as_tenant()
        .with_container_args(argv.to_vec())
        .with_env(env)
        .with_cwd(Some(process.cwd().clone()))
        .with_user(Some(uid))
        .with_group(Some(gid))
        .with_additional_gids(additional_gids)
        .with_no_new_privs(true)
        .with_detach(true)
        .build()
        .map_err(lc_err("exec in", id))?;
    Ok(pid.as_raw())
}

/// A seccomp filter to load right before exec.
#[derive(Clone)]
enum Filter {
    /// A profile, compiled by libcontainer (libseccomp) in the process.
    Profile(LinuxSeccomp),
    /// A program compiled ahead: loaded as it is.
    Program(Program),
}

/// The default executor, with a seccomp filter loaded right before exec
/// (and, when asked, stdin made the controlling terminal first). A filter
/// that fails to load fails the exec: nothing runs without it.
#[derive(Clone)]
struct SeccompExecutor {
    filter: Option<Filter>,
    /// See [`ExecOptions::terminal`].
    terminal: bool,
}

impl Executor for SeccompExecutor {
    fn exec(&self, spec: &Spec) -> Result<(), ExecutorError> {
        // The init has called setsid, so this process leads a session with
        // no controlling terminal. TIOCSCTTY with 0 never steals one: EPERM
        // says another session has it.
        if self.terminal && nix::unistd::isatty(0).unwrap_or(false) {
            // SAFETY: an ioctl on descriptor 0 with an integer argument.
            let r = unsafe { libc::ioctl(0, libc::TIOCSCTTY, 0) };
            let err = io::Error::last_os_error();
            if r != 0 && err.raw_os_error() != Some(libc::EPERM) {
                return Err(ExecutorError::Other(format!(
                    "make stdin the controlling terminal (TIOCSCTTY): {err}"
                )));
            }
        }
        match &self.filter {
            None => {}
            Some(Filter::Profile(s)) => {
                libcontainer::seccomp::initialize_seccomp(s)
                    .map_err(|e| ExecutorError::Other(format!("loading seccomp: {}", chain(&e))))?;
            }
            Some(Filter::Program(p)) => {
                p.load().map_err(|e| {
                    ExecutorError::Other(format!("loading the seccomp program: {e}"))
                })?;
            }
        }
        DefaultExecutor {}.exec(spec)
    }

    fn validate(&self, spec: &Spec) -> Result<(), ExecutorValidationError> {
        DefaultExecutor {}.validate(spec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A spec whose annotation names a program compiled ahead.
    fn spec(nnp: bool, file: &str, flags: Option<&str>) -> Spec {
        let mut spec = Spec::default();
        let mut process = spec.process().clone().unwrap_or_default();
        process.set_no_new_privileges(nnp.then_some(true));
        spec.set_process(Some(process));
        let mut a = HashMap::from([(bpf::ANNOTATION.to_string(), file.to_string())]);
        if let Some(f) = flags {
            a.insert(bpf::FLAGS_ANNOTATION.to_string(), f.to_string());
        }
        spec.set_annotations(Some(a));
        spec
    }

    #[test]
    fn a_program_named_by_the_spec_must_be_there_and_whole() {
        let dir = tempfile::tempdir().unwrap();
        // No annotation: no program (the spec's profile, if any, is
        // libcontainer's).
        assert!(ahead_program(&Spec::default(), dir.path())
            .unwrap()
            .is_none());
        // Named but missing: the start fails.
        assert!(ahead_program(&spec(true, bpf::FILE, None), dir.path()).is_err());
        // Not whole instructions.
        fs::write(dir.path().join(bpf::FILE), [0u8; 12]).unwrap();
        assert!(ahead_program(&spec(true, bpf::FILE, None), dir.path()).is_err());
        fs::write(dir.path().join(bpf::FILE), [0u8; 16]).unwrap();
        let p = ahead_program(&spec(true, bpf::FILE, Some("2")), dir.path())
            .unwrap()
            .unwrap();
        assert_eq!(p.len(), 2);
        // Without no_new_privileges, a bad flags value, a path that leaves
        // the bundle: refused.
        assert!(ahead_program(&spec(false, bpf::FILE, None), dir.path()).is_err());
        assert!(ahead_program(&spec(true, bpf::FILE, Some("x")), dir.path()).is_err());
        assert!(ahead_program(&spec(true, "../seccomp.bpf", None), dir.path()).is_err());
    }
}
