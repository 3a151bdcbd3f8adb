//! The control socket: a Unix socket, 0600 (or 0660 with a group), one task
//! per connection. Each connection says hello with the protocol version,
//! sends one request and reads the answer. Requests that change something
//! are logged with the caller's uid and pid (SO_PEERCRED).
//!
//! Bounded: at most [`MAX_CONNECTIONS`] connections at once (fewer when the
//! descriptor limit is low; one over the cap is told so and closed), the
//! hello and the request within [`REQUEST_DEADLINE`] of the connect (what
//! follows a request, `logs -f`, a wait, an exec, a pull, is not held to
//! it), a single answer read within [`ANSWER_DEADLINE`], and an answer too
//! big for a frame sent as an error that says so.
//!
//! A path jarvisd reads on a caller's behalf (`image import`, `apply
//! --repo` of a local repository) must be one the caller could read: it is
//! opened (and, for a directory, walked) on a thread that has taken the
//! caller's file-system identity, its uid, gid and groups from the socket
//! (SO_PEERCRED, SO_PEERGROUPS), so the kernel decides as it would for the
//! caller. Root may read anything.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use jarvis_proto::nonblocking::{read_frame, write_frame};
use jarvis_proto::{
    FrameError, Hello, ImageInfo, PullProgress, Request, Response, StatusReport, WaitReport,
    MAX_FRAME, PROTOCOL_VERSION, REFUSED_VERSION,
};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::events::EventLog;
use crate::msg::{Msg, Reply};
use jarvis_runtime::{blocking, ExecStdio, Runtime as _, Runtimes};

/// Binds the socket with the right mode from the start (no window in which
/// it is open to others). Refuses to take over a live daemon's socket.
/// Raises jarvisd's descriptor limit (first, before any unit starts, so every
/// run sees the same limit), so the connection cap is reachable.
pub fn bind(path: &Path, group: Option<u32>) -> anyhow::Result<UnixListener> {
    raise_descriptor_limit();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        // Only a socket left by an earlier jarvisd is ours to replace: a
        // file, a directory or a link someone pointed --socket at is not.
        if !std::os::unix::fs::FileTypeExt::is_socket(&meta.file_type()) {
            anyhow::bail!(
                "{} exists and is not a socket; refusing to replace it (pass another --socket)",
                path.display()
            );
        }
        if live_daemon_at(path) {
            anyhow::bail!(
                "another jarvisd is listening on {}; stop it first or pass --socket",
                path.display()
            );
        }
        std::fs::remove_file(path).with_context(|| format!("remove stale {}", path.display()))?;
    }
    let mode = if group.is_some() { 0o660 } else { 0o600 };
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o777 & !mode));
    let listener = UnixListener::bind(path);
    nix::sys::stat::umask(old);
    let listener = listener.with_context(|| format!("bind {}", path.display()))?;
    if let Some(gid) = group {
        nix::unistd::chown(path, None, Some(nix::unistd::Gid::from_raw(gid)))
            .with_context(|| format!("chown {}", path.display()))?;
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    Ok(listener)
}

/// Whether a jarvisd answers on `path`. A connect alone is not enough: a
/// killed jarvisd's listener lives on in a process it was starting until
/// that process execs, and takes connections nobody will answer.
fn live_daemon_at(path: &Path) -> bool {
    let Ok(mut s) = std::os::unix::net::UnixStream::connect(path) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(2)));
    let hello = Hello {
        version: PROTOCOL_VERSION,
        agent: "jarvisd (checking for another)".into(),
    };
    jarvis_proto::write_frame(&mut s, &hello).is_ok()
        && jarvis_proto::read_frame::<Hello>(&mut s).is_ok()
}

/// Who may talk to jarvisd besides root: members of the socket's group
/// (the kernel checks membership through the socket's mode).
#[derive(Debug, Clone, Copy)]
pub struct Access {
    pub group: Option<u32>,
}

impl Access {
    fn allows(&self, uid: u32) -> bool {
        uid == 0 || uid == nix::unistd::geteuid().as_raw() || self.group.is_some()
    }
}

/// The most connections jarvisd serves at once: above the 1,000 `status`
/// clients and 100 `logs -f` followers it is built to hold.
pub const MAX_CONNECTIONS: usize = 2048;
/// How long a connection has, from its connect, to send its hello and its
/// whole request (and, for `exec`, its descriptors).
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(10);
/// Sets [`REQUEST_DEADLINE`] in milliseconds instead (tests).
const REQUEST_DEADLINE_ENV: &str = "JARVISD_REQUEST_DEADLINE_MS";
/// How long a caller has to read a single answer.
pub const ANSWER_DEADLINE: Duration = Duration::from_secs(60);
/// How long the accept loop rests when the process is out of descriptors.
const STARVED_PAUSE: Duration = Duration::from_millis(100);

/// Raises the soft RLIMIT_NOFILE to the hard limit; returns the soft
/// limit now in force.
fn raise_descriptor_limit() -> u64 {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return 1024;
    };
    if soft >= hard {
        return soft;
    }
    // What jarvisd starts keeps the limit jarvisd was given.
    jarvis_shim::set_units_nofile(soft);
    match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
        Ok(()) => hard,
        Err(e) => {
            tracing::warn!(soft, hard, error = %e, "cannot raise the descriptor limit");
            soft
        }
    }
}

/// The connection cap for a descriptor limit: [`MAX_CONNECTIONS`], or half
/// the limit when that is less, so units, logs and followers keep theirs.
fn connection_cap(nofile: u64) -> usize {
    (nofile / 2).clamp(16, MAX_CONNECTIONS as u64) as usize
}

fn request_deadline() -> Duration {
    std::env::var(REQUEST_DEADLINE_ENV)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map(Duration::from_millis)
        .unwrap_or(REQUEST_DEADLINE)
}

/// An accept that failed for want of descriptors (the process's or the
/// system's): a pause, not a reason to spin.
fn out_of_descriptors(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

/// Counts what one episode (at the cap, out of descriptors) refused, so it
/// is logged once when it starts and once when it ends.
#[derive(Default)]
struct Episode {
    count: u64,
}

impl Episode {
    /// One more; true for the first of the episode.
    fn add(&mut self) -> bool {
        self.count += 1;
        self.count == 1
    }

    /// Ends the episode; how many it counted.
    fn end(&mut self) -> u64 {
        std::mem::take(&mut self.count)
    }
}

pub async fn serve(
    listener: UnixListener,
    tx: mpsc::UnboundedSender<Msg>,
    socket: PathBuf,
    access: Access,
    rt: Runtimes,
    events: Arc<EventLog>,
) {
    let nofile = raise_descriptor_limit();
    let cap = connection_cap(nofile);
    let deadline = request_deadline();
    let slots = Arc::new(Semaphore::new(cap));
    tracing::debug!(
        connections = cap,
        descriptors = nofile,
        request_deadline_ms = deadline.as_millis() as u64,
        "control socket limits"
    );
    let mut starved = Episode::default();
    let mut full = Episode::default();
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let failed = starved.end();
                if failed > 0 {
                    tracing::info!(failed, "accepting connections again");
                }
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    if full.add() {
                        tracing::warn!(
                            limit = cap,
                            "at the connection limit: refusing new connections"
                        );
                    }
                    refuse(stream, cap);
                    continue;
                };
                if slots.available_permits() > cap / 10 {
                    let refused = full.end();
                    if refused > 0 {
                        tracing::info!(refused, "below the connection limit again");
                    }
                }
                let tx = tx.clone();
                let rt = rt.clone();
                let events = events.clone();
                tokio::spawn(async move {
                    let _slot = slot;
                    if let Err(e) = connection(stream, tx, access, rt, events, deadline).await {
                        if !matches!(e, FrameError::Closed) {
                            tracing::debug!(error = %e, "connection ended");
                        }
                    }
                });
            }
            Err(e) if out_of_descriptors(&e) => {
                if starved.add() {
                    tracing::error!(
                        socket = %socket.display(),
                        error = %e,
                        "out of descriptors: connections wait"
                    );
                }
                tokio::time::sleep(STARVED_PAUSE).await;
            }
            Err(e) => {
                tracing::error!(socket = %socket.display(), error = %e, "accept failed");
                tokio::time::sleep(STARVED_PAUSE).await;
            }
        }
    }
}

/// What a connection over the cap gets before it is closed: a hello of
/// [`REFUSED_VERSION`] and an error saying why (a client that checks the
/// version reads the error next). Written without waiting: a new
/// connection's buffer takes it whole, and the connection is closed either way.
fn refuse(stream: UnixStream, cap: usize) {
    let mut bytes = Vec::new();
    let hello = Hello {
        version: REFUSED_VERSION,
        agent: format!("jarvisd {}", env!("CARGO_PKG_VERSION")),
    };
    let message = format!(
        "jarvisd is at its connection limit ({cap} connections); try again when others have finished"
    );
    let framed = jarvis_proto::write_frame(&mut bytes, &hello)
        .and_then(|()| jarvis_proto::write_frame(&mut bytes, &Response::Error { message }));
    if framed.is_ok() {
        if let Ok(stream) = stream.into_std() {
            let _ = std::io::Write::write(&mut &stream, &bytes);
        }
    }
}

/// Answers an `Events` request: the kept events it asks for, then (with
/// `follow`) each new one until the client hangs up. A client that stops
/// reading is let go like a log follower.
async fn serve_events(
    stream: &mut UnixStream,
    log: &EventLog,
    filter: crate::events::Filter,
    follow: bool,
) -> Result<(), FrameError> {
    let (backlog, mut rx) = log.subscribe(&filter);
    for e in backlog {
        crate::logs::send_within(stream, &Response::Event((*e).clone()), EVENT_WRITE_DEADLINE)
            .await?;
    }
    if !follow {
        return answer(stream, &Response::EventsEnd).await;
    }
    loop {
        let e = tokio::select! {
            e = crate::events::next(&mut rx, &filter) => e,
            () = hung_up(stream) => return Ok(()),
        };
        let Some(e) = e else {
            return Ok(());
        };
        crate::logs::send_within(stream, &Response::Event((*e).clone()), EVENT_WRITE_DEADLINE)
            .await?;
    }
}

/// How long an events reader may leave a frame unread.
const EVENT_WRITE_DEADLINE: Duration = Duration::from_secs(60);

async fn ask(tx: &mpsc::UnboundedSender<Msg>, req: Request) -> Option<Reply> {
    let (reply, rx) = oneshot::channel();
    tx.send(Msg::Request { req, reply }).ok()?;
    rx.await.ok()
}

/// Writes one answer, held to [`ANSWER_DEADLINE`]; an answer too big for a
/// frame goes as an error that says so (the caller is never left with a
/// closed connection and no word).
async fn answer(stream: &mut UnixStream, resp: &Response) -> Result<(), FrameError> {
    let write = async {
        match write_frame(stream, resp).await {
            Err(FrameError::TooLarge(n)) => {
                tracing::warn!(bytes = n, "an answer over the frame limit");
                let message = too_large(n);
                write_frame(stream, &Response::Error { message }).await
            }
            r => r,
        }
    };
    match tokio::time::timeout(ANSWER_DEADLINE, write).await {
        Ok(r) => r,
        Err(_) => {
            tracing::debug!("the caller did not read its answer; connection closed");
            Ok(())
        }
    }
}

fn too_large(n: usize) -> String {
    format!(
        "the answer is {n} bytes, over the frame limit of {MAX_FRAME} bytes; ask for less (fewer units, fewer lines)"
    )
}

/// The hello both ways and the request; `None` when the caller speaks
/// another protocol (it has been told).
async fn greet(stream: &mut UnixStream, greeted: &mut bool) -> Result<Option<Request>, FrameError> {
    let hello: Hello = read_frame(stream).await?;
    write_frame(
        stream,
        &Hello {
            version: PROTOCOL_VERSION,
            agent: format!("jarvisd {}", env!("CARGO_PKG_VERSION")),
        },
    )
    .await?;
    if hello.version != PROTOCOL_VERSION {
        let message = format!(
            "{} speaks protocol {}, this jarvisd speaks {}; use the jarvisctl that came with it",
            hello.agent, hello.version, PROTOCOL_VERSION
        );
        write_frame(stream, &Response::Error { message }).await?;
        return Ok(None);
    }
    *greeted = true;
    Ok(Some(read_frame(stream).await?))
}

async fn connection(
    mut stream: UnixStream,
    tx: mpsc::UnboundedSender<Msg>,
    access: Access,
    rt: Runtimes,
    events: Arc<EventLog>,
    deadline: Duration,
) -> Result<(), FrameError> {
    let until = tokio::time::Instant::now() + deadline;
    let cred = stream.peer_cred()?;
    if !access.allows(cred.uid()) {
        tracing::warn!(uid = cred.uid(), pid = cred.pid(), "refused a connection");
        return Ok(());
    }
    let mut greeted = false;
    let req = match tokio::time::timeout_at(until, greet(&mut stream, &mut greeted)).await {
        Ok(Ok(Some(req))) => req,
        Ok(Ok(None)) => return Ok(()),
        Ok(Err(e)) => return Err(e),
        Err(_) => {
            tracing::debug!(
                uid = cred.uid(),
                pid = cred.pid(),
                "no request within the deadline; connection closed"
            );
            if greeted {
                let message = format!(
                    "no request within {} of the connect; connection closed",
                    humantime::format_duration(deadline)
                );
                let _ = tokio::time::timeout(
                    Duration::from_secs(1),
                    write_frame(&mut stream, &Response::Error { message }),
                )
                .await;
            }
            return Ok(());
        }
    };
    if req.is_mutating() {
        tracing::info!(
            uid = cred.uid(),
            pid = cred.pid(),
            request = %log_summary(&req),
            "request"
        );
    }
    // Paths read on the caller's behalf: only what it could read.
    let opened = match check_reads(&stream, &cred, &req).await {
        Ok(opened) => opened,
        Err(message) => return answer(&mut stream, &Response::Error { message }).await,
    };
    // Image work touches no unit: it runs here, beside the event loop.
    match req {
        Request::Exec {
            unit,
            argv,
            user,
            tty,
        } => {
            return exec(&mut stream, &tx, &rt, until, unit, argv, user, tty).await;
        }
        Request::ImagePull { reference } => {
            return image_pull(&mut stream, &rt, &reference).await;
        }
        // Events come from the event log, beside the loop.
        Request::Events {
            since_ms,
            units,
            follow,
        } => {
            let filter = crate::events::Filter {
                units,
                since: since_ms.map(Duration::from_millis),
            };
            return serve_events(&mut stream, &events, filter, follow).await;
        }
        Request::ImageImport { path, tag } => {
            let store = rt.config().images.clone();
            // The caller's file, opened as the caller: read through its
            // descriptor, named by its path in messages.
            let (read, shown) = match &opened {
                Some(fd) => (
                    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd())),
                    Some(path.clone()),
                ),
                None => (PathBuf::from(&path), None),
            };
            let resp =
                match blocking(move || store.import(&read, &tag).map_err(|e| (e, read))).await {
                    Ok(img) => Response::Pulled(image_info(&rt, &img)),
                    Err((e, read)) => {
                        let mut message = e.to_string();
                        if let Some(shown) = shown {
                            message = message.replace(&read.display().to_string(), &shown);
                        }
                        Response::Error { message }
                    }
                };
            drop(opened);
            trim_heap();
            return answer(&mut stream, &resp).await;
        }
        Request::ImageList => {
            let store = rt.config().images.clone();
            let resp = match blocking(move || store.list()).await {
                Ok(list) => Response::Images {
                    images: list
                        .into_iter()
                        .map(|i| ImageInfo {
                            reference: i.reference,
                            digest: i.digest,
                            size: i.size,
                            created: i.created,
                        })
                        .collect(),
                },
                Err(e) => Response::Error {
                    message: e.to_string(),
                },
            };
            return answer(&mut stream, &resp).await;
        }
        _ => {}
    }
    let wait_timeout = match &req {
        Request::Wait { timeout_ms } | Request::BenchForm { timeout_ms, .. } => {
            Some(Duration::from_millis(*timeout_ms))
        }
        _ => None,
    };
    let logs = crate::logs::Ask::of(&req);
    let Some(reply) = ask(&tx, req).await else {
        let message = "jarvisd is shutting down".to_string();
        return answer(&mut stream, &Response::Error { message }).await;
    };
    match reply {
        Reply::Now(resp) => answer(&mut stream, &resp).await,
        Reply::Later(rx) => {
            let wait = async {
                match wait_timeout {
                    Some(t) => match tokio::time::timeout(t, rx).await {
                        Ok(r) => r.ok(),
                        Err(_) => Some(timed_out(&tx, t).await),
                    },
                    None => rx.await.ok(),
                }
            };
            // A caller that hangs up while it waits (Ctrl-C on `up --wait`)
            // gets no answer: its connection goes now, not when the wait ends.
            let resp = tokio::select! {
                resp = wait => resp,
                () = hung_up(&stream) => return Ok(()),
            };
            let resp = resp.unwrap_or(Response::Error {
                message: "jarvisd is shutting down".into(),
            });
            answer(&mut stream, &resp).await
        }
        Reply::Log(log) => crate::logs::serve(&mut stream, log, logs.unwrap_or_default()).await,
        Reply::Frame(rx) => {
            let frame = tokio::select! {
                frame = rx => frame,
                () = hung_up(&stream) => return Ok(()),
            };
            match frame {
                Ok(frame) => {
                    tokio::io::AsyncWriteExt::write_all(&mut stream, &frame).await?;
                    Ok(())
                }
                Err(_) => {
                    let message = "jarvisd is shutting down".to_string();
                    answer(&mut stream, &Response::Error { message }).await
                }
            }
        }
    }
}

/// The most entries a directory read on a caller's behalf may hold: each
/// is checked.
const WALK_MAX: usize = 200_000;

/// The caller as the kernel saw it at connect: uid, gid and supplementary
/// groups.
#[derive(Debug, Clone)]
struct Peer {
    uid: u32,
    gid: u32,
    groups: Vec<u32>,
}

/// The supplementary groups of the socket's peer (SO_PEERGROUPS: taken at
/// connect, so a process that changed since, or is gone, cannot mislead).
fn peer_groups(fd: RawFd) -> std::io::Result<Vec<u32>> {
    let mut groups = vec![0u32; 64];
    loop {
        let mut len = (groups.len() * std::mem::size_of::<u32>()) as libc::socklen_t;
        // SAFETY: the buffer holds `len` bytes, and the kernel writes at
        // most that many.
        let r = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_PEERGROUPS,
                groups.as_mut_ptr().cast(),
                &mut len,
            )
        };
        let n = len as usize / std::mem::size_of::<u32>();
        if r == 0 {
            groups.truncate(n);
            return Ok(groups);
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ERANGE) && n > groups.len() {
            groups.resize(n, 0);
            continue;
        }
        return Err(e);
    }
}

/// Runs `f` on a thread of its own that has taken `peer`'s file-system
/// identity (fsuid, fsgid, supplementary groups; a fsuid other than 0 also
/// drops the capabilities that bypass file permissions), so whatever `f`
/// opens, the kernel allows as it would for the peer, ACLs included. The
/// identity ends with the thread.
fn as_peer<T: Send + 'static>(
    peer: &Peer,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    let peer = peer.clone();
    let thread = std::thread::Builder::new()
        .name("jarvisd-as-peer".into())
        .spawn(move || {
            // The raw system call changes this thread only (glibc's
            // setgroups changes every thread of the process).
            // SAFETY: a valid array of `len` gids.
            let r = unsafe {
                libc::syscall(libc::SYS_setgroups, peer.groups.len(), peer.groups.as_ptr())
            };
            if r != 0 {
                return Err(format!(
                    "cannot take the caller's groups: {}",
                    std::io::Error::last_os_error()
                ));
            }
            // setfsuid and setfsgid say nothing of failure: an invalid id
            // (-1) asks for the one in force, which must be the caller's.
            // SAFETY: plain system calls on this thread's credentials.
            let (gid, uid) = unsafe {
                libc::setfsgid(peer.gid);
                libc::setfsuid(peer.uid);
                (libc::setfsgid(u32::MAX), libc::setfsuid(u32::MAX))
            };
            if gid as u32 != peer.gid || uid as u32 != peer.uid {
                return Err("cannot take the caller's identity to check what it may read".into());
            }
            Ok(f())
        })
        .map_err(|e| format!("cannot check what the caller may read: {e}"))?;
    thread
        .join()
        .map_err(|_| "checking what the caller may read failed".to_string())?
}

/// Why jarvisd will not read `path` for the caller.
fn unreadable(path: &Path, uid: u32, e: &std::io::Error) -> String {
    format!(
        "{}: you cannot read it (uid {uid}: {e}), so jarvisd does not read it for you",
        path.display()
    )
}

/// Opens `path` as the peer: a regular file to read, or a directory whose
/// every entry (`walk`: `path` itself, or the directory inside it that is
/// read) it can read, links followed.
fn open_as_peer(peer: &Peer, path: &Path, walk: Option<PathBuf>) -> Result<OwnedFd, String> {
    use std::os::unix::fs::OpenOptionsExt;
    let uid = peer.uid;
    let path = path.to_path_buf();
    as_peer(peer, move || {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&path)
            .map_err(|e| unreadable(&path, uid, &e))?;
        let meta = file.metadata().map_err(|e| unreadable(&path, uid, &e))?;
        if meta.is_dir() {
            let top = walk.unwrap_or_else(|| path.clone());
            let mut seen = 0;
            walk_readable(&top, uid, &mut seen)?;
        } else if !meta.is_file() {
            return Err(format!(
                "{}: not a file or a directory; jarvisd reads neither devices nor pipes",
                path.display()
            ));
        }
        Ok(OwnedFd::from(file))
    })?
}

/// Checks that every entry under `dir` can be opened for reading (by the
/// thread's identity: see [`as_peer`]).
fn walk_readable(dir: &Path, uid: u32, seen: &mut usize) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt;
    let entries = std::fs::read_dir(dir).map_err(|e| unreadable(dir, uid, &e))?;
    for entry in entries {
        let entry = entry.map_err(|e| unreadable(dir, uid, &e))?;
        *seen += 1;
        if *seen > WALK_MAX {
            return Err(format!(
                "{}: more than {WALK_MAX} entries to check that you can read; ask as root",
                dir.display()
            ));
        }
        let path = entry.path();
        // Links are followed, as the reader will follow them.
        let meta = std::fs::metadata(&path).map_err(|e| unreadable(&path, uid, &e))?;
        if meta.is_dir() {
            walk_readable(&path, uid, seen)?;
        } else if meta.is_file() {
            std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(&path)
                .map_err(|e| unreadable(&path, uid, &e))?;
        }
    }
    Ok(())
}

/// A local repository named by `apply --repo`: a path or a `file://` URL
/// (a colon before the first slash is git's `host:path`, which is not).
fn local_repository(repo: &str) -> Option<PathBuf> {
    if let Some(path) = repo.strip_prefix("file://") {
        return Some(PathBuf::from(path));
    }
    if repo.contains("://") {
        return None;
    }
    match (repo.find(':'), repo.find('/')) {
        (Some(colon), Some(slash)) if colon < slash => None,
        (Some(_), None) => None,
        _ => Some(PathBuf::from(repo)),
    }
}

/// What jarvisd would read of a local repository: its `.git` directory, or
/// the whole of a bare one.
fn repository_git_dir(repo: &Path) -> PathBuf {
    let dot_git = repo.join(".git");
    if dot_git.is_dir() {
        dot_git
    } else {
        repo.to_path_buf()
    }
}

/// Checks that the caller could read every path `req` has jarvisd read for
/// it; for an import, the caller's file opened as the caller.
async fn check_reads(
    stream: &UnixStream,
    cred: &tokio::net::unix::UCred,
    req: &Request,
) -> Result<Option<OwnedFd>, String> {
    let (path, walk) = match req {
        Request::ImageImport { path, .. } => (PathBuf::from(path), None),
        Request::Apply {
            repo: Some(repo), ..
        } => match local_repository(repo) {
            Some(path) => {
                let git = repository_git_dir(&path);
                (path, Some(git))
            }
            None => return Ok(None),
        },
        _ => return Ok(None),
    };
    if cred.uid() == 0 || cred.uid() == nix::unistd::geteuid().as_raw() {
        return Ok(None);
    }
    let groups = peer_groups(stream.as_raw_fd())
        .map_err(|e| format!("cannot learn the caller's groups: {e}"))?;
    let peer = Peer {
        uid: cred.uid(),
        gid: cred.gid(),
        groups,
    };
    let fd = blocking(move || open_as_peer(&peer, &path, walk)).await?;
    Ok(matches!(req, Request::ImageImport { .. }).then_some(fd))
}

/// Resolves when the caller has closed its end of the connection (it sends
/// nothing after its request; whatever it does send is read and dropped).
async fn hung_up(stream: &UnixStream) {
    let mut buf = [0u8; 64];
    loop {
        if stream.readable().await.is_err() {
            return;
        }
        match stream.try_read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => return,
        }
    }
}

/// `jarvisctl exec`: takes the caller's descriptors, asks the loop for the
/// unit as it runs now, runs the command with them as its stdio, and
/// answers with its exit code. The caller hanging up kills the command.
#[allow(clippy::too_many_arguments)]
async fn exec(
    stream: &mut UnixStream,
    tx: &mpsc::UnboundedSender<Msg>,
    rt: &Runtimes,
    until: tokio::time::Instant,
    unit: String,
    argv: Vec<String>,
    user: Option<String>,
    tty: bool,
) -> Result<(), FrameError> {
    // The descriptors belong to the request: they are held to its deadline.
    let stdio = match tokio::time::timeout_at(until, receive_stdio(stream)).await {
        Ok(Ok(stdio)) => stdio,
        Ok(Err(message)) => return answer(stream, &Response::Error { message }).await,
        Err(_) => {
            let message = "exec: no descriptors came with the request in time".to_string();
            return answer(stream, &Response::Error { message }).await;
        }
    };
    let req = Request::Exec {
        unit: unit.clone(),
        argv: argv.clone(),
        user: user.clone(),
        tty,
    };
    let found = match ask(tx, req).await {
        Some(Reply::Now(Response::Config { mut units })) if units.len() == 1 => {
            serde_json::from_value::<jarvis_unit::Unit>(units.remove(0))
                .map_err(|e| format!("internal: unit {unit}: {e}"))
        }
        Some(Reply::Now(Response::Error { message })) => Err(message),
        Some(_) => Err(format!("internal: no unit to exec in for {unit}")),
        None => Err("jarvisd is shutting down".to_string()),
    };
    let def = match found {
        Ok(def) => def,
        Err(message) => return answer(stream, &Response::Error { message }).await,
    };
    let run = rt.exec(&def, argv, user, tty, stdio);
    let mut byte = [0u8; 1];
    let resp = tokio::select! {
        r = run => match r {
            Ok(code) => Response::Exited { code },
            Err(message) => Response::Error { message },
        },
        // The client sends nothing more: a read returning means it left,
        // and dropping `run` kills the command.
        _ = tokio::io::AsyncReadExt::read(stream, &mut byte) => {
            tracing::info!(unit, "exec: the caller left; the command was killed");
            return Ok(());
        }
    };
    answer(stream, &resp).await
}

/// The three descriptors that follow an `Exec` frame, with their one byte
/// (see jarvis-proto).
async fn receive_stdio(stream: &UnixStream) -> Result<ExecStdio, String> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
    let received = loop {
        stream
            .readable()
            .await
            .map_err(|e| format!("exec: reading the descriptors: {e}"))?;
        let got = stream.try_io(tokio::io::Interest::READABLE, || {
            let mut byte = [0u8; 1];
            let mut iov = [std::io::IoSliceMut::new(&mut byte)];
            let mut space = nix::cmsg_space!([RawFd; 3]);
            let msg = recvmsg::<()>(
                stream.as_raw_fd(),
                &mut iov,
                Some(&mut space),
                MsgFlags::MSG_CMSG_CLOEXEC,
            )
            .map_err(std::io::Error::from)?;
            let mut fds = Vec::new();
            for c in msg.cmsgs().map_err(std::io::Error::from)? {
                if let ControlMessageOwned::ScmRights(f) = c {
                    // SAFETY: the kernel just gave us these descriptors.
                    fds.extend(f.into_iter().map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }));
                }
            }
            let truncated = msg.flags.contains(MsgFlags::MSG_CTRUNC);
            let n = msg.bytes;
            Ok((n, byte[0], fds, truncated))
        });
        match got {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(format!("exec: reading the descriptors: {e}")),
            Ok(r) => break r,
        }
    };
    let (n, byte, fds, truncated) = received;
    if n == 0 {
        return Err("exec: the client left before sending its descriptors".into());
    }
    if byte != jarvis_proto::EXEC_FDS_BYTE || truncated || fds.len() != 3 {
        return Err(format!(
            "exec: expected stdin, stdout and stderr after the request, got {} descriptors",
            fds.len()
        ));
    }
    let mut fds = fds.into_iter();
    let (Some(stdin), Some(stdout), Some(stderr)) = (fds.next(), fds.next(), fds.next()) else {
        unreachable!("three descriptors, checked above")
    };
    Ok(ExecStdio {
        stdin,
        stdout,
        stderr,
    })
}

/// Gives the memory an import or pull used (tens of MB of buffers) back to
/// the system: glibc's allocator keeps freed heap otherwise.
fn trim_heap() {
    // SAFETY: malloc_trim only releases free memory.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Pulls, streaming progress frames, then the image (or the error).
async fn image_pull(
    stream: &mut UnixStream,
    rt: &Runtimes,
    reference: &str,
) -> Result<(), FrameError> {
    let (ptx, mut prx) = mpsc::unbounded_channel();
    let pull = rt
        .config()
        .images
        .pull(reference, &rt.config().pull, move |p| {
            let _ = ptx.send(progress(&p));
        });
    tokio::pin!(pull);
    let result = loop {
        tokio::select! {
            r = &mut pull => break r,
            Some(p) = prx.recv() => write_frame(stream, &Response::Progress(p)).await?,
        }
    };
    while let Ok(p) = prx.try_recv() {
        write_frame(stream, &Response::Progress(p)).await?;
    }
    trim_heap();
    let resp = match result {
        Ok(img) => Response::Pulled(image_info(rt, &img)),
        Err(e) => Response::Error {
            message: format!("pull {reference}: {e}"),
        },
    };
    answer(stream, &resp).await
}

pub fn progress(p: &jarvis_image::Progress) -> PullProgress {
    use jarvis_image::Phase;
    PullProgress {
        layer: p.layer.clone(),
        index: p.index,
        count: p.count,
        done: p.done,
        total: p.total,
        phase: match p.phase {
            Phase::Cached => "cached",
            Phase::Downloading => "downloading",
            Phase::Unpacking => "unpacking",
            Phase::Ready => "ready",
        }
        .into(),
    }
}

fn image_info(rt: &Runtimes, img: &jarvis_image::StoredImage) -> ImageInfo {
    let summary = rt
        .config()
        .images
        .list()
        .ok()
        .and_then(|l| l.into_iter().find(|s| s.reference == img.reference));
    ImageInfo {
        reference: img.reference.clone(),
        digest: img.manifest_digest.clone(),
        size: summary.as_ref().map(|s| s.size).unwrap_or(0),
        created: summary.and_then(|s| s.created),
    }
}

/// The status of all units, asked of the loop as a client would; `None`
/// when jarvisd is shutting down.
pub(crate) async fn status_report(tx: &mpsc::UnboundedSender<Msg>) -> Option<StatusReport> {
    match ask(tx, Request::Status { units: vec![] }).await? {
        Reply::Now(Response::Status(s)) => Some(s),
        Reply::Later(rx) => match rx.await.ok()? {
            Response::Status(s) => Some(s),
            _ => None,
        },
        Reply::Frame(rx) => match serde_json::from_slice(rx.await.ok()?.get(4..)?) {
            Ok(Response::Status(s)) => Some(s),
            _ => None,
        },
        _ => None,
    }
}

/// The answer to a wait that ran out of time: which units are not ready.
async fn timed_out(tx: &mpsc::UnboundedSender<Msg>, t: Duration) -> Response {
    let status = status_report(tx).await.unwrap_or_default();
    Response::Wait(WaitReport {
        ok: false,
        message: format!(
            "timed out after {}; not ready: {}",
            humantime::format_duration(t),
            pending(&status)
        ),
    })
}

fn pending(status: &StatusReport) -> String {
    let mut parts = vec![];
    for u in &status.units {
        let ready = match u.state.as_str() {
            "running" => u.health.is_none_or(|h| h == jarvis_proto::Health::Healthy),
            "exited" => true,
            _ => !u.wanted,
        };
        if !ready {
            let mut d = format!("{} ({}", u.name, u.state);
            if let Some(h) = &u.health {
                d.push_str(&format!(", health {h}"));
            }
            if let Some(r) = &u.reason {
                d.push_str(&format!(": {r}"));
            }
            d.push(')');
            parts.push(d);
        }
    }
    parts.join("; ")
}

/// The most of a request's debug form that jarvisd's log takes.
const LOG_REQUEST_MAX: usize = 512;

/// A request as jarvisd's log shows it: its debug form cut at
/// [`LOG_REQUEST_MAX`] bytes (a request may be megabytes: a bench result,
/// a long command line), formatted no further than that.
fn log_summary(req: &Request) -> String {
    use std::fmt::Write as _;
    struct Bounded {
        out: String,
        cut: bool,
    }
    impl std::fmt::Write for Bounded {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            let room = LOG_REQUEST_MAX - self.out.len();
            if s.len() <= room {
                self.out.push_str(s);
                return Ok(());
            }
            let mut end = room;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            self.out.push_str(&s[..end]);
            self.cut = true;
            // Stops the formatting: nothing more is written.
            Err(std::fmt::Error)
        }
    }
    let mut b = Bounded {
        out: String::new(),
        cut: false,
    };
    let _ = write!(b, "{req:?}");
    if b.cut {
        b.out.push_str("… (cut)");
    }
    b.out
}

#[cfg(test)]
mod log_tests {
    use super::*;

    #[test]
    fn a_huge_request_is_logged_as_a_bounded_summary() {
        let req = Request::BenchResult {
            unit: "ollama".into(),
            result: serde_json::json!({ "samples": vec![1.5f64; 1_000_000] }),
        };
        let s = log_summary(&req);
        assert!(s.len() <= LOG_REQUEST_MAX + 16, "{} bytes", s.len());
        assert!(s.starts_with("BenchResult"), "{s}");
        assert!(s.ends_with("… (cut)"), "{s}");
        let small = Request::Up;
        assert_eq!(log_summary(&small), "Up");
    }
}

#[cfg(test)]
mod limit_tests {
    use super::*;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn an_answer_over_the_frame_limit_comes_as_an_error_that_says_so() {
        runtime().block_on(async {
            let (mut ours, mut theirs) = UnixStream::pair().unwrap();
            let big = Response::Config {
                units: vec![serde_json::Value::String("x".repeat(MAX_FRAME + 10))],
            };
            let reader = tokio::spawn(async move {
                jarvis_proto::nonblocking::read_frame::<Response>(&mut theirs).await
            });
            let size = serde_json::to_vec(&big).unwrap().len();
            answer(&mut ours, &big).await.unwrap();
            drop(ours);
            let Response::Error { message } = reader.await.unwrap().unwrap() else {
                panic!("expected an error frame")
            };
            assert!(
                message.starts_with(&format!("the answer is {size} bytes"))
                    && message.contains("over the frame limit"),
                "{message}"
            );
        });
    }

    #[test]
    fn the_cap_leaves_descriptors_for_the_rest() {
        assert_eq!(connection_cap(1_048_576), MAX_CONNECTIONS);
        assert_eq!(connection_cap(20_000), MAX_CONNECTIONS);
        assert_eq!(connection_cap(1024), 512);
        assert_eq!(connection_cap(10), 16);
    }

    #[test]
    fn local_repositories_are_told_from_remote_ones() {
        for (repo, local) in [
            ("/srv/lab", Some("/srv/lab")),
            ("lab", Some("lab")),
            ("./a:b", Some("./a:b")),
            ("file:///srv/lab", Some("/srv/lab")),
            ("https://git.example.org/lab.git", None),
            ("ssh://git@host/lab.git", None),
            ("git@host:me/lab.git", None),
            ("host:lab", None),
        ] {
            assert_eq!(local_repository(repo), local.map(PathBuf::from), "{repo}");
        }
    }

    #[test]
    fn a_thread_with_the_callers_identity_reads_only_what_it_may() {
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let secret = dir.path().join("secret");
        let open = dir.path().join("open");
        std::fs::write(&secret, "s").unwrap();
        std::fs::write(&open, "o").unwrap();
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).unwrap();
        let nobody = Peer {
            uid: 65534,
            gid: 65534,
            groups: vec![],
        };
        let err = open_as_peer(&nobody, &secret, None).unwrap_err();
        assert!(err.contains("you cannot read it (uid 65534"), "{err}");
        assert!(open_as_peer(&nobody, &open, None).is_ok());
        // A directory with one entry it may not read.
        let err = open_as_peer(&nobody, dir.path(), None).unwrap_err();
        assert!(err.starts_with(&secret.display().to_string()), "{err}");
        // Through a group it is in.
        nix::unistd::chown(&secret, None, Some(nix::unistd::Gid::from_raw(4242))).unwrap();
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o640)).unwrap();
        let member = Peer {
            groups: vec![4242],
            ..nobody.clone()
        };
        assert!(open_as_peer(&member, &secret, None).is_ok());
        assert!(open_as_peer(&nobody, &secret, None).is_err());
        // The process itself is still root, with its own groups.
        let groups = nix::unistd::getgroups().unwrap();
        assert!(open_as_peer(&member, &open, None).is_ok());
        assert_eq!(nix::unistd::getgroups().unwrap(), groups);
        assert!(nix::unistd::geteuid().is_root());
        assert!(std::fs::read(&secret).is_ok());
    }
}

#[cfg(test)]
mod bind_tests {
    use super::*;

    /// A killed jarvisd's listener held by a process that has not exec'd
    /// yet: it takes the connection and never answers. jarvisd takes the
    /// socket over instead of refusing to start.
    #[tokio::test]
    async fn a_listener_that_never_answers_is_stale_not_another_jarvisd() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jarvis.sock");
        let held = std::os::unix::net::UnixListener::bind(&path).unwrap();
        assert!(!live_daemon_at(&path));
        let listener = bind(&path, None).expect("a mute listener is stale");
        drop(held);
        // The new socket is the one bound now: a client reaches it.
        let (accepted, connected) =
            tokio::join!(listener.accept(), tokio::net::UnixStream::connect(&path));
        accepted.unwrap();
        connected.unwrap();
    }
}
