//! The shim process itself: synchronous and single-threaded.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::SignalFd;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::logfile::LogFile;
use crate::{
    exit_record_path, process_start, run_record_path, write_atomic, ExitRecord, Payload, RunRecord,
    ShimInput,
};

/// The shim's environment variable naming its spec and status descriptors.
pub(crate) const FDS_ENV: &str = "JARVIS_SHIM_FDS";
/// The soft descriptor limit the shim takes (and its units inherit).
pub(crate) const NOFILE_ENV: &str = "JARVIS_SHIM_NOFILE";

/// How long output may keep coming after the main process ended (from
/// processes that escaped into another cgroup, say) before the shim stops
/// reading it.
const DRAIN: Duration = Duration::from_secs(1);

/// The shim: starts the unit's process, reports its pid (or why it could not
/// start) on the status pipe, then writes its output to the log until it
/// exits, empties the cgroup, writes the exit record and exits.
///
/// Call it first thing in `main` when `argv[1] == SHIM_ARG`.
pub fn shim_main() -> ! {
    shim::<true>()
}

/// [`shim_main`] for native runs only: the main of the small `jarvis-shim`
/// binary, which links neither libcontainer nor the daemon. A container
/// payload fails to start ("runs native units only").
pub fn native_shim_main() -> ! {
    shim::<false>()
}

/// The shim; `CONTAINERS`: whether it may run containers (when not, the
/// container code is not reached, so a binary of its own does not link it).
fn shim<const CONTAINERS: bool>() -> ! {
    // Re-executed from /proc/self/exe, the kernel calls it "exe".
    let _ = std::fs::write("/proc/self/comm", crate::SHIM_NAME);
    let fds = std::env::var(FDS_ENV).ok().and_then(|v| {
        let (a, b) = v.split_once(',')?;
        Some((a.parse::<RawFd>().ok()?, b.parse::<RawFd>().ok()?))
    });
    let Some((spec_fd, status_fd)) = fds.filter(|(a, b)| *a >= 0 && *b >= 0 && a != b) else {
        eprintln!("{} is internal to jarvisd", crate::SHIM_ARG);
        std::process::exit(2);
    };
    std::env::remove_var(FDS_ENV);
    if let Some(soft) = std::env::var(NOFILE_ENV)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        use nix::sys::resource::{getrlimit, setrlimit, Resource};
        if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, soft.min(hard), hard);
        }
    }
    std::env::remove_var(NOFILE_ENV);
    let (spec_file, status) = match take_fds(spec_fd, status_fd) {
        Ok(files) => files,
        Err(e) => {
            eprintln!("jarvis shim: {e}");
            std::process::exit(2);
        }
    };
    let code = match run::<CONTAINERS>(spec_file, status) {
        Ok(()) => 0,
        Err(e) => {
            // The status pipe is gone by now or never was usable; say it
            // where someone may look.
            eprintln!("jarvis shim: {e}");
            1
        }
    };
    std::process::exit(code)
}

/// Takes over the spec and status descriptors (jarvisd passes them as
/// stdin and stdout) at close-on-exec numbers above stdio, and puts
/// /dev/null on stdin and stdout.
fn take_fds(spec_fd: RawFd, status_fd: RawFd) -> Result<(File, File), String> {
    let dup = |fd: RawFd| -> Result<File, String> {
        // SAFETY: fcntl duplicates a descriptor; the copy is ours.
        let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
        if new < 0 {
            return Err(format!(
                "take descriptor {fd}: {}",
                std::io::Error::last_os_error()
            ));
        }
        // SAFETY: a fresh descriptor nobody else owns.
        Ok(unsafe { File::from_raw_fd(new) })
    };
    let files = (dup(spec_fd)?, dup(status_fd)?);
    let null = File::options()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(|e| format!("open /dev/null: {e}"))?;
    for fd in [spec_fd, status_fd] {
        // SAFETY: dup2 over a descriptor we were given, or closing one.
        unsafe {
            if fd <= 2 {
                libc::dup2(null.as_raw_fd(), fd);
            } else {
                libc::close(fd);
            }
        }
    }
    Ok(files)
}

/// Serves runs: one per spec line on the control pipe, until it closes.
/// After a run's end the shim reports it (`exit JSON` on the status pipe)
/// and waits, parked, for the next spec of the same unit, so a restart
/// costs jarvisd a line written rather than a new process; EOF (jarvisd
/// let it go, or jarvisd is gone) ends it.
fn run<const CONTAINERS: bool>(control: File, status: File) -> Result<(), String> {
    let mut control = std::io::BufReader::new(control);
    let Some(first) = next_input(&mut control)? else {
        return Ok(());
    };
    // Detach: no terminal signals from jarvisd's session, and orphans of the
    // unit come to us rather than to init.
    let _ = nix::unistd::setsid();
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    let _ = std::env::set_current_dir("/");
    for sig in [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGPIPE,
    ] {
        // SAFETY: installing SIG_IGN is always sound.
        let _ = unsafe { nix::sys::signal::signal(sig, nix::sys::signal::SigHandler::SigIgn) };
    }
    close_fds_except(&[control.get_ref().as_raw_fd(), status.as_raw_fd()]);

    let mut status = Some(status);
    let mut cgroup: Option<((String, String), jarvis_native::UnitCgroup)> = None;
    let mut input = first;
    loop {
        let key = (
            input.spec.cgroup_parent.clone(),
            input.spec.cgroup_name.clone(),
        );
        let cg = match cgroup.take() {
            Some((k, cg)) if k == key => cg,
            _ => jarvis_native::UnitCgroup::open(&key.0, &key.1),
        };
        let served = run_once::<CONTAINERS>(input, &cg, &mut status);
        cgroup = Some((key, cg));
        if !served? {
            return Ok(());
        }
        match next_input(&mut control)? {
            Some(next) => input = next,
            None => return Ok(()),
        }
    }
}

/// The next spec on the control pipe; `None` at its end.
fn next_input(control: &mut impl std::io::BufRead) -> Result<Option<ShimInput>, String> {
    let mut line = String::new();
    // A spec is one line of compact JSON (no raw newline in it); its size
    // is what jarvisd sent, which it bounds.
    match control.read_line(&mut line) {
        Ok(0) => Ok(None),
        Ok(_) => serde_json::from_str(line.trim_end())
            .map(Some)
            .map_err(|e| format!("parse shim spec: {e}")),
        Err(e) => Err(format!("read shim spec: {e}")),
    }
}

/// Writes one line to the status pipe; a closed pipe (jarvisd gone) drops
/// it, and the run goes on without anyone to tell.
fn report(status: &mut Option<File>, line: &str) {
    if let Some(s) = status {
        if writeln!(s, "{line}").is_err() {
            *status = None;
        }
    }
}

/// One run: start, report, supervise, empty the cgroup, report the end.
/// `Ok(false)`: it could not start (said on the status pipe); the shim
/// ends.
fn run_once<const CONTAINERS: bool>(
    input: ShimInput,
    cgroup: &jarvis_native::UnitCgroup,
    status: &mut Option<File>,
) -> Result<bool, String> {
    let ShimInput {
        spec,
        identity,
        definition,
    } = input;
    // The last run's end, if this shim served one: not this run's.
    let _ = std::fs::remove_file(exit_record_path(&spec.run_dir, &spec.unit));
    let oom_before = cgroup.oom_kills().unwrap_or(0);
    let (out_r, out_w) = match nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) {
        Ok(pipe) => pipe,
        Err(e) => {
            let transient = jarvis_native::transient_errno(e as i32);
            report_failure(status, &format!("output pipe: {e}"), transient);
            return Ok(false);
        }
    };

    let started = match &spec.payload {
        Payload::Native(launch) => {
            { jarvis_native::launch::spawn_blocking_as(&spec.launcher, launch, identity, out_w) }
                .map(|c| c.id() as i32)
                .map_err(|e| (e.to_string(), e.is_transient()))
        }
        Payload::Container(c) if CONTAINERS => start_container(c, out_w).map_err(|e| (e, false)),
        Payload::Container(_) => Err((
            format!(
                "{} runs native units only: containers are started by `jarvisd {}`",
                crate::SHIM_NAME,
                crate::SHIM_ARG
            ),
            false,
        )),
    };
    let pid = match started {
        Ok(pid) => pid,
        Err((e, transient)) => {
            report_failure(status, &e, transient);
            return Ok(false);
        }
    };
    // The child holds the write end now; the parent's copy went with it.
    let mut log = LogFile::new(spec.log.clone());

    let me = std::process::id() as i32;
    let record = RunRecord {
        unit: spec.unit.clone(),
        shim_pid: me,
        shim_start: process_start(me).unwrap_or(0),
        pid,
        kind: match spec.payload {
            Payload::Native(_) => "native".into(),
            Payload::Container(_) => "container".into(),
        },
        started_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0),
        definition,
    };
    let _ = std::fs::create_dir_all(&spec.run_dir);
    // The record on disk first: a jarvisd that reads "ok" and dies finds
    // the run again through it. Without it (a full disk, a name too long
    // for the file system) nobody could find the run again: it must not
    // go on, so what started is killed before the failure is told.
    let recorded = serde_json::to_string(&record)
        .map_err(std::io::Error::from)
        .and_then(|json| {
            write_atomic(&run_record_path(&spec.run_dir, &spec.unit), &record).map(|()| json)
        });
    let json = match recorded {
        Ok(json) => json,
        Err(e) => {
            let why = format!("cannot write its run record: {e}");
            abandon::<CONTAINERS>(pid, cgroup, &spec.payload, &mut log, &why);
            report_failure(
                status,
                &format!("write run record: {e}"),
                jarvis_native::transient(&e),
            );
            return Ok(false);
        }
    };
    report(status, &format!("ok {json}"));
    log.note(&format!("started pid {pid}: {}", describe(&spec.payload)));

    let exit = match supervise(pid, out_r, &mut log, &spec.unit) {
        Ok(exit) => exit,
        Err(e) => {
            // The shim ends without an exit record: nothing of the run may
            // outlive it.
            let why = format!("the shim cannot watch it: {e}");
            abandon::<CONTAINERS>(pid, cgroup, &spec.payload, &mut log, &why);
            return Err(e);
        }
    };

    // Whatever the main process left behind goes with it, before the end
    // is told: a restart's process must not meet the old run's leftovers.
    let _ = cgroup.kill_all();
    let oom_after = cgroup.oom_kills().unwrap_or(0);
    if let Payload::Container(c) = &spec.payload {
        if CONTAINERS {
            end_container(c, &mut log);
        }
    }
    let exit = ExitRecord {
        oom_killed: oom_after > oom_before,
        ..exit
    };
    // Told first (a restart waits on it), then on disk for a jarvisd
    // that was not there to be told; the next run removes it before it
    // starts.
    let json = serde_json::to_string(&exit).map_err(|e| e.to_string())?;
    report(status, &format!("exit {json}"));
    if let Err(e) = write_atomic(&exit_record_path(&spec.run_dir, &spec.unit), &exit) {
        // Told already; only a jarvisd that was not there misses it.
        eprintln!("jarvis shim: write exit record of {}: {e}", spec.unit);
    }
    let how = match (exit.code, exit.signal) {
        (Some(c), _) => format!("exited with code {c}"),
        (None, Some(s)) => format!("killed by {}", signal_name(s)),
        (None, None) => "ended".into(),
    };
    let oom = if exit.oom_killed {
        " (out of memory)"
    } else {
        ""
    };
    log.note(&format!("pid {pid} {how}{oom}"));
    tell_outages(&mut log, &spec.unit);
    Ok(true)
}

/// Says on the status pipe why the run could not start: `error REASON`,
/// or `transient REASON` when it failed for want of something the system
/// may have again soon (descriptors, memory, processes, disk space), so a
/// later try may work.
fn report_failure(status: &mut Option<File>, reason: &str, transient: bool) {
    let word = if transient { "transient" } else { "error" };
    report(status, &format!("{word} {}", reason.replace('\n', " ")));
}

/// Ends a run that cannot go on (its start could not be completed, or the
/// shim cannot watch it): SIGKILL to its main process and to everything
/// in the unit's cgroup, the main process reaped, a container deleted.
fn abandon<const CONTAINERS: bool>(
    pid: i32,
    cgroup: &jarvis_native::UnitCgroup,
    payload: &Payload,
    log: &mut LogFile,
    why: &str,
) {
    let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
    if let Err(e) = cgroup.kill_all() {
        eprintln!("jarvis shim: empty the cgroup {}: {e}", cgroup.path());
    }
    loop {
        match waitpid(Pid::from_raw(pid), None) {
            Err(nix::errno::Errno::EINTR) => continue,
            Ok(WaitStatus::Exited(..) | WaitStatus::Signaled(..)) | Err(_) => break,
            Ok(_) => continue,
        }
    }
    reap(pid);
    if let Payload::Container(c) = payload {
        if CONTAINERS {
            end_container(c, log);
        }
    }
    log.note(&format!("pid {pid} killed: {why}"));
}

fn describe(payload: &Payload) -> String {
    match payload {
        Payload::Native(l) => l.argv.join(" "),
        Payload::Container(c) => format!("container {}: {}", c.id, c.argv.join(" ")),
    }
}

/// Deletes the ended container and unmounts its rootfs; failures go to
/// the log.
#[cfg(feature = "container")]
fn end_container(c: &crate::ContainerRun, log: &mut LogFile) {
    if let Err(e) = jarvis_container::run::delete(&c.id, &c.state_root, true) {
        log.note(&format!("cannot delete container: {e}"));
    }
    if let Err(e) = jarvis_container::rootfs::unmount_rootfs(&c.bundle) {
        log.note(&format!("cannot unmount rootfs: {e}"));
    }
}

#[cfg(not(feature = "container"))]
fn end_container(_: &crate::ContainerRun, _: &mut LogFile) {}

#[cfg(not(feature = "container"))]
fn start_container(_: &crate::ContainerRun, _: OwnedFd) -> Result<i32, String> {
    Err("this build of the shim has no container support".into())
}

/// Creates and starts the container with stdin on /dev/null and its output
/// on `out`; the init is our child.
#[cfg(feature = "container")]
fn start_container(c: &crate::ContainerRun, out: OwnedFd) -> Result<i32, String> {
    let stdin: OwnedFd = File::open("/dev/null")
        .map_err(|e| format!("open /dev/null: {e}"))?
        .into();
    let stderr = out.try_clone().map_err(|e| format!("dup output: {e}"))?;
    jarvis_container::run::create_and_start(
        &c.id,
        &c.bundle,
        &c.state_root,
        jarvis_container::run::Stdio {
            stdin,
            stdout: out,
            stderr,
        },
    )
    .map_err(|e| e.to_string())
}

/// `jarvisd __cexec [--user USER] [--tty] ID STATE_ROOT ARGV...`: runs
/// ARGV inside a running container (a health check, `jarvisctl exec`),
/// with this process's stdio, and exits with its status (126 when it could
/// not be started). `--user`: as USER of the container's own user database
/// instead of the init's user; `--tty`: stdin, a terminal, becomes the
/// command's controlling terminal. A process of its own because
/// libcontainer forks: jarvisd's threads stay out of it.
#[cfg(feature = "container")]
pub fn cexec_main() -> ! {
    let args: Vec<String> = std::env::args().skip(2).collect();
    let Some(CexecArgs {
        id,
        root,
        argv,
        opts,
    }) = parse_cexec_args(&args)
    else {
        eprintln!("{} is internal to jarvisd", crate::CEXEC_ARG);
        std::process::exit(2);
    };
    let id = &id;
    let dup = |fd: i32| -> OwnedFd {
        // SAFETY: fcntl duplicates one of our standard descriptors.
        unsafe { OwnedFd::from_raw_fd(libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3)) }
    };
    let stdio = jarvis_container::run::Stdio {
        stdin: dup(0),
        stdout: dup(1),
        stderr: dup(2),
    };
    let root = std::path::Path::new(&root);
    let pid = match jarvis_container::run::exec_in_as(id, root, &argv, stdio, &opts) {
        Ok(pid) => pid,
        Err(e) => {
            eprintln!("exec in container {id}: {e}");
            std::process::exit(126);
        }
    };
    loop {
        match waitpid(Pid::from_raw(pid), None) {
            Ok(WaitStatus::Exited(_, code)) => std::process::exit(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => std::process::exit(128 + sig as i32),
            Ok(_) => continue,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => {
                eprintln!("wait for the check: {e}");
                std::process::exit(126);
            }
        }
    }
}

/// The arguments of `jarvisd __cexec` (after `__cexec`).
#[cfg(feature = "container")]
#[derive(Debug, PartialEq)]
struct CexecArgs {
    id: String,
    root: String,
    argv: Vec<String>,
    opts: jarvis_container::run::ExecOptions,
}

/// Options first (a unit name never starts with `-`), then the id, the
/// state root and the command, which is taken as it is.
#[cfg(feature = "container")]
fn parse_cexec_args(args: &[String]) -> Option<CexecArgs> {
    let mut opts = jarvis_container::run::ExecOptions::default();
    let mut rest = args;
    loop {
        match rest.first().map(String::as_str) {
            Some("--user") => {
                opts.user = Some(rest.get(1)?.clone());
                rest = &rest[2..];
            }
            Some("--tty") => {
                opts.terminal = true;
                rest = &rest[1..];
            }
            Some(o) if o.starts_with('-') => return None,
            _ => break,
        }
    }
    let [id, root, argv @ ..] = rest else {
        return None;
    };
    Some(CexecArgs {
        id: id.clone(),
        root: root.clone(),
        argv: argv.to_vec(),
        opts,
    })
}

fn signal_name(sig: i32) -> String {
    Signal::try_from(sig)
        .map(|s| s.as_str().to_string())
        .unwrap_or_else(|_| format!("signal {sig}"))
}

/// Pumps output into the log and reaps children until `pid` has exited;
/// then drains the pipe for a moment.
fn supervise(pid: i32, out: OwnedFd, log: &mut LogFile, unit: &str) -> Result<ExitRecord, String> {
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    mask.thread_block()
        .map_err(|e| format!("block SIGCHLD: {e}"))?;
    let sigfd = SignalFd::with_flags(
        &mask,
        nix::sys::signalfd::SfdFlags::SFD_CLOEXEC | nix::sys::signalfd::SfdFlags::SFD_NONBLOCK,
    )
    .map_err(|e| format!("signalfd: {e}"))?;
    let mut out = Some(File::from(out));
    let mut exit: Option<ExitRecord> = reap(pid);
    let mut deadline: Option<Instant> = exit.map(|_| Instant::now() + DRAIN);
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if exit.is_some() && (out.is_none() || deadline.is_some_and(|d| Instant::now() >= d)) {
            break;
        }
        // Output held without a newline is written as a part of a line
        // when it has waited long enough.
        if log.held_until().is_some_and(|d| Instant::now() >= d) {
            log.flush_partial();
            tell_outages(log, unit);
        }
        let timeout = match deadline.into_iter().chain(log.held_until()).min() {
            Some(d) => PollTimeout::try_from(d.saturating_duration_since(Instant::now()))
                .unwrap_or(PollTimeout::ZERO),
            None => PollTimeout::NONE,
        };
        let (out_ready, sig_ready) = {
            let mut fds = vec![PollFd::new(sigfd.as_fd(), PollFlags::POLLIN)];
            if let Some(o) = &out {
                fds.push(PollFd::new(o.as_fd(), PollFlags::POLLIN));
            }
            match poll(&mut fds, timeout) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(format!("poll: {e}")),
            }
            let ready = |f: &PollFd| f.revents().is_some_and(|r| !r.is_empty());
            (fds.get(1).is_some_and(ready), ready(&fds[0]))
        };
        if sig_ready {
            while let Ok(Some(_)) = sigfd.read_signal() {}
            if exit.is_none() {
                exit = reap(pid);
                if exit.is_some() {
                    deadline = Some(Instant::now() + DRAIN);
                }
            } else {
                reap(pid);
            }
        }
        if out_ready {
            let o = out.as_mut().expect("polled");
            match o.read(&mut buf) {
                Ok(0) => out = None,
                Ok(n) => {
                    log.output(&buf[..n]);
                    tell_outages(log, unit);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => out = None,
            }
        }
    }
    // The output has ended: what it held without a newline is its last line.
    log.end_output();
    tell_outages(log, unit);
    Ok(exit.expect("loop ends after the exit"))
}

/// Says in jarvisd's log (the shim's stderr), once each, when the unit's
/// log stops taking output (a full disk) and when it takes it again.
fn tell_outages(log: &mut LogFile, unit: &str) {
    for outage in log.take_outages() {
        eprintln!("jarvis shim: logs of {unit}: {}", outage.describe());
    }
}

/// Reaps every exited child (we are a subreaper); the exit of `pid` if it
/// was among them.
fn reap(pid: i32) -> Option<ExitRecord> {
    let mut found = None;
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(p, code)) => {
                if p.as_raw() == pid {
                    found = Some(ExitRecord {
                        code: Some(code),
                        signal: None,
                        oom_killed: false,
                    });
                }
            }
            Ok(WaitStatus::Signaled(p, sig, _)) => {
                if p.as_raw() == pid {
                    found = Some(ExitRecord {
                        code: None,
                        signal: Some(sig as i32),
                        oom_killed: false,
                    });
                }
            }
            Ok(WaitStatus::StillAlive) | Err(_) => return found,
            Ok(_) => {}
        }
    }
}

/// Closes every descriptor above stdio but those in `keep`.
fn close_fds_except(keep: &[RawFd]) {
    let mut ok = true;
    let mut kept: Vec<RawFd> = keep.iter().copied().filter(|fd| *fd > 2).collect();
    kept.sort_unstable();
    let mut lo = 3;
    for hi in kept.iter().map(|k| k - 1).chain([RawFd::MAX]) {
        if lo <= hi {
            // SAFETY: close_range(2) only closes descriptors.
            let r = unsafe {
                libc::syscall(
                    libc::SYS_close_range,
                    lo as libc::c_uint,
                    hi as libc::c_uint,
                    0,
                )
            };
            ok &= r == 0;
        }
        lo = hi.saturating_add(2);
    }
    if ok {
        return;
    }
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    let fds: Vec<RawFd> = dir
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter(|fd| *fd > 2 && !keep.contains(fd))
        .collect();
    for fd in fds {
        // SAFETY: closing descriptors this process does not use; the one
        // read_dir used is already closed.
        unsafe { libc::close(fd) };
    }
}

#[cfg(all(test, feature = "container"))]
mod cexec_tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn cexec_options_come_before_the_id_and_the_command_is_kept_whole() {
        let plain = parse_cexec_args(&args(&["web", "/run/c", "ls", "--user", "x"])).unwrap();
        assert_eq!(plain.id, "web");
        assert_eq!(plain.root, "/run/c");
        assert_eq!(plain.argv, args(&["ls", "--user", "x"]));
        assert_eq!(plain.opts, jarvis_container::run::ExecOptions::default());

        let both =
            parse_cexec_args(&args(&["--user", "1000:44", "--tty", "web", "/r", "id"])).unwrap();
        assert_eq!(both.opts.user.as_deref(), Some("1000:44"));
        assert!(both.opts.terminal);
        assert_eq!((both.id.as_str(), both.argv), ("web", args(&["id"])));

        assert_eq!(parse_cexec_args(&args(&["--user"])), None);
        assert_eq!(
            parse_cexec_args(&args(&["--bogus", "web", "/r", "id"])),
            None
        );
        assert_eq!(parse_cexec_args(&args(&["web"])), None);
    }
}
