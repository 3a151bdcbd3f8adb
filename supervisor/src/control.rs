//! The control socket: a Unix socket, 0600 (or 0660 with a group), one task
//! per connection. Each connection says hello with the protocol version,
//! sends one request and reads the answer. Requests that change something
//! are logged with the caller's uid and pid (SO_PEERCRED).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use jarvis_proto::nonblocking::{read_frame, write_frame};
use jarvis_proto::{
    FrameError, Hello, ImageInfo, PullProgress, Request, Response, StatusReport, WaitReport,
    PROTOCOL_VERSION,
};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};

use crate::msg::{Msg, Reply};
use jarvis_runtime::{blocking, ExecStdio, Runtime as _, Runtimes};

/// Binds the socket with the right mode from the start (no window in which
/// it is open to others). Refuses to take over a live daemon's socket.
pub fn bind(path: &Path, group: Option<u32>) -> anyhow::Result<UnixListener> {
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
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
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

pub async fn serve(
    listener: UnixListener,
    tx: mpsc::UnboundedSender<Msg>,
    socket: PathBuf,
    access: Access,
    rt: Runtimes,
) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let tx = tx.clone();
                let rt = rt.clone();
                tokio::spawn(async move {
                    if let Err(e) = connection(stream, tx, access, rt).await {
                        if !matches!(e, FrameError::Closed) {
                            tracing::debug!(error = %e, "connection ended");
                        }
                    }
                });
            }
            Err(e) => {
                tracing::error!(socket = %socket.display(), error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn ask(tx: &mpsc::UnboundedSender<Msg>, req: Request) -> Option<Reply> {
    let (reply, rx) = oneshot::channel();
    tx.send(Msg::Request { req, reply }).ok()?;
    rx.await.ok()
}

async fn connection(
    mut stream: UnixStream,
    tx: mpsc::UnboundedSender<Msg>,
    access: Access,
    rt: Runtimes,
) -> Result<(), FrameError> {
    let cred = stream.peer_cred()?;
    if !access.allows(cred.uid()) {
        tracing::warn!(uid = cred.uid(), pid = cred.pid(), "refused a connection");
        return Ok(());
    }
    let hello: Hello = read_frame(&mut stream).await?;
    write_frame(
        &mut stream,
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
        return write_frame(&mut stream, &Response::Error { message }).await;
    }
    let req: Request = read_frame(&mut stream).await?;
    if req.is_mutating() {
        tracing::info!(
            uid = cred.uid(),
            pid = cred.pid(),
            request = %log_summary(&req),
            "request"
        );
    }
    // Image work touches no unit: it runs here, beside the event loop.
    match req {
        Request::Exec {
            unit,
            argv,
            user,
            tty,
        } => {
            return exec(&mut stream, &tx, &rt, unit, argv, user, tty).await;
        }
        Request::ImagePull { reference } => {
            return image_pull(&mut stream, &rt, &reference).await;
        }
        Request::ImageImport { path, tag } => {
            let store = rt.config().images.clone();
            let resp = match blocking(move || store.import(std::path::Path::new(&path), &tag)).await
            {
                Ok(img) => Response::Pulled(image_info(&rt, &img)),
                Err(e) => Response::Error {
                    message: e.to_string(),
                },
            };
            return write_frame(&mut stream, &resp).await;
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
            return write_frame(&mut stream, &resp).await;
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
        return write_frame(&mut stream, &Response::Error { message }).await;
    };
    match reply {
        Reply::Now(resp) => write_frame(&mut stream, &resp).await,
        Reply::Later(rx) => {
            let answer = async {
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
                resp = answer => resp,
                () = hung_up(&stream) => return Ok(()),
            };
            let resp = resp.unwrap_or(Response::Error {
                message: "jarvisd is shutting down".into(),
            });
            write_frame(&mut stream, &resp).await
        }
        Reply::Log(log) => crate::logs::serve(&mut stream, log, logs.unwrap_or_default()).await,
    }
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
async fn exec(
    stream: &mut UnixStream,
    tx: &mpsc::UnboundedSender<Msg>,
    rt: &Runtimes,
    unit: String,
    argv: Vec<String>,
    user: Option<String>,
    tty: bool,
) -> Result<(), FrameError> {
    let stdio = match receive_stdio(stream).await {
        Ok(stdio) => stdio,
        Err(message) => return write_frame(stream, &Response::Error { message }).await,
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
        Err(message) => return write_frame(stream, &Response::Error { message }).await,
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
    write_frame(stream, &resp).await
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
    write_frame(stream, &resp).await
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

/// The answer to a wait that ran out of time: which units are not ready.
async fn timed_out(tx: &mpsc::UnboundedSender<Msg>, t: Duration) -> Response {
    let status = match ask(tx, Request::Status { units: vec![] }).await {
        Some(Reply::Now(Response::Status(s))) => s,
        Some(Reply::Later(rx)) => match rx.await {
            Ok(Response::Status(s)) => s,
            _ => StatusReport::default(),
        },
        _ => StatusReport::default(),
    };
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
