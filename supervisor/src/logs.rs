//! A unit's log as jarvisd sees it. The shim of each run writes the unit's
//! output to `<state>/logs/<unit>.log` (rotated), one record per line with
//! the time it was read (see `jarvis_runtime::logfile`); jarvisd adds its
//! own notes to the same file, reads its tail, and follows it for `logs -f`
//! through inotify (no polling): one instance for all of jarvisd's followers
//! ([`Watcher`]), since the kernel allows a user only a few (128 by
//! default) and other root processes need theirs. A follower that cannot
//! have a watch says so in the stream and reads the file every
//! [`POLL_EVERY`] instead.
//!
//! [`serve`] answers a `Logs` request: the tail (only lines since a time,
//! when asked), joined into lines and rendered with or without their
//! times, in frames of at most `LOG_CHUNK`; then, when following, each
//! record as it is appended.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime};

use futures_util::StreamExt;
use jarvis_proto::nonblocking::write_frame;
use jarvis_proto::{FrameError, Request, Response, LOG_CHUNK};
use jarvis_runtime::logfile::{self, Kind, Line, LogConfig, Tail};
use jarvis_unit::Logs;
use tokio::net::UnixStream;
use tokio::sync::Notify;

/// How often a follower without a watch reads its file.
pub const POLL_EVERY: Duration = Duration::from_millis(250);

pub struct UnitLog {
    cfg: Mutex<LogConfig>,
    /// What wakes its followers.
    pub(crate) watcher: Watcher,
}

impl UnitLog {
    pub fn new(dir: &Path, unit: &str, limits: &Logs, watcher: Watcher) -> UnitLog {
        UnitLog {
            cfg: Mutex::new(LogConfig {
                path: dir.join(format!("{unit}.log")),
                max_size: limits.max_size,
                max_files: limits.max_files,
            }),
            watcher,
        }
    }

    pub fn config(&self) -> LogConfig {
        self.cfg.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn path(&self) -> PathBuf {
        self.config().path
    }

    pub fn set_limits(&self, limits: &Logs) {
        let mut cfg = self.cfg.lock().unwrap_or_else(|p| p.into_inner());
        cfg.max_size = limits.max_size;
        cfg.max_files = limits.max_files;
    }

    /// A line from jarvis itself about the unit ("started pid 12").
    pub fn note(&self, msg: &str) {
        if let Err(err) = logfile::note(&self.config(), msg) {
            tracing::warn!(path = %self.path().display(), %err, "cannot write unit log");
        }
    }

    /// The last `lines` lines not older than `since`, across the current
    /// and rotated files, up to `to` in the current one. Blocking.
    pub fn tail(&self, lines: usize, since: Option<SystemTime>, to: &Position) -> io::Result<Tail> {
        let cap = to.ino.map(|ino| (ino, to.offset));
        logfile::tail(&self.config(), lines, since, cap)
    }

    /// Where the log ends now (after its last whole record), for [`follow`]
    /// to start from. Holds the file open, so what is written to it before
    /// a rotation is not lost. Blocking.
    pub fn end(&self) -> Position {
        let mut file = File::open(self.path()).ok();
        let meta = file.as_ref().and_then(|f| f.metadata().ok());
        let len = meta.as_ref().map(|m| m.len()).unwrap_or(0);
        // A record being written as we look is left to the follower.
        let offset = file
            .as_mut()
            .and_then(|f| last_line_end(f, len).ok())
            .unwrap_or(len);
        Position {
            ino: meta.as_ref().map(|m| m.ino()),
            offset,
            file,
        }
    }
}

/// Just after the last `\n` in the last 64 KiB of `f` (of length `len`);
/// `len` when there is none (a file of an older jarvis may end in a long
/// line without one).
fn last_line_end(f: &mut File, len: u64) -> io::Result<u64> {
    let from = len.saturating_sub(64 * 1024);
    f.seek(SeekFrom::Start(from))?;
    let mut buf = Vec::new();
    f.take(len - from).read_to_end(&mut buf)?;
    Ok(match buf.iter().rposition(|b| *b == b'\n') {
        Some(n) => from + n as u64 + 1,
        None => len,
    })
}

/// What a `Logs` request asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ask {
    pub lines: Option<usize>,
    pub follow: bool,
    pub since: Option<String>,
    pub timestamps: bool,
}

impl Ask {
    pub fn of(req: &Request) -> Option<Ask> {
        match req {
            Request::Logs {
                lines,
                follow,
                since,
                timestamps,
                ..
            } => Some(Ask {
                lines: *lines,
                follow: *follow,
                since: since.clone(),
                timestamps: *timestamps,
            }),
            _ => None,
        }
    }
}

/// How long a client may leave a log frame unread: one that stops reading
/// lets its connection go instead of holding it (and its slot) for ever.
const WRITE_DEADLINE: std::time::Duration = std::time::Duration::from_secs(60);

/// One frame to the client, within [`WRITE_DEADLINE`].
async fn send(stream: &mut UnixStream, resp: &Response) -> Result<(), FrameError> {
    send_within(stream, resp, WRITE_DEADLINE).await
}

pub(crate) async fn send_within(
    stream: &mut UnixStream,
    resp: &Response,
    deadline: std::time::Duration,
) -> Result<(), FrameError> {
    match tokio::time::timeout(deadline, write_frame(stream, resp)).await {
        Ok(r) => r,
        Err(_) => Err(FrameError::Io(io::Error::new(
            io::ErrorKind::TimedOut,
            "the client stopped reading its log",
        ))),
    }
}

/// Answers a `Logs` request for `log`: the tail, then (following) what is
/// appended until the client hangs up.
pub async fn serve(stream: &mut UnixStream, log: Arc<UnitLog>, ask: Ask) -> Result<(), FrameError> {
    let since = match ask.since.as_deref().map(humantime::parse_rfc3339_weak) {
        None => None,
        Some(Ok(t)) => Some(t),
        Some(Err(e)) => {
            let message = format!("bad --since time {:?}: {e}", ask.since.unwrap_or_default());
            return send(stream, &Response::Error { message }).await;
        }
    };
    let lines = ask.lines.unwrap_or(usize::MAX);
    let mut render = Render::new(ask.timestamps);
    // Reading files and rendering: off the runtime's thread, which the
    // event loop shares.
    let (from, chunks, render) = {
        let log = log.clone();
        jarvis_runtime::blocking(move || {
            let from = log.end();
            let tail = log.tail(lines, since, &from)?;
            let mut text = String::new();
            render.tail(&tail, ask.follow, &mut text);
            Ok::<_, io::Error>((from, frames(text), render))
        })
        .await?
    };
    for data in chunks {
        send(stream, &Response::LogData { data }).await?;
    }
    if !ask.follow {
        return send(stream, &Response::LogEnd).await;
    }
    let mut render = render;
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let follower = tokio::spawn(follow(log.path(), from, tx, log.watcher.clone()));
    let mut byte = [0u8; 1];
    let result = loop {
        tokio::select! {
            chunk = rx.recv() => {
                let mut text = String::new();
                match chunk {
                    Some(Followed::Data(chunk)) => render.feed(&chunk, &mut text),
                    Some(Followed::Notice(notice)) => render.notice(&notice, &mut text),
                    // The follower failed: said, never a silent end.
                    None => {
                        let message = match follower.await {
                            Ok(Err(e)) => format!("cannot follow the log: {e}"),
                            _ => "cannot follow the log".to_string(),
                        };
                        return send(stream, &Response::Error { message }).await;
                    }
                }
                let mut sent = Ok(());
                for data in frames(text) {
                    sent = send(stream, &Response::LogData { data }).await;
                    if sent.is_err() {
                        break;
                    }
                }
                if let Err(e) = sent {
                    break Err(e);
                }
            }
            // The client sends nothing more: a read returning means it left.
            _ = tokio::io::AsyncReadExt::read(stream, &mut byte) => break Ok(()),
        }
    };
    follower.abort();
    result
}

/// `text` cut into frames of at most `LOG_CHUNK` bytes, each ending at the
/// end of a line unless a line is longer than that.
fn frames(mut text: String) -> Vec<String> {
    let mut out = Vec::new();
    while text.len() > LOG_CHUNK {
        let mut cut = match text[..LOG_CHUNK].rfind('\n') {
            Some(n) => n + 1,
            None => LOG_CHUNK,
        };
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        let rest = text.split_off(cut);
        out.push(std::mem::replace(&mut text, rest));
    }
    if !text.is_empty() {
        out.push(text);
    }
    out
}

/// Turns a log's lines, and then its records as they are appended, into
/// what the reader is sent: each line (with its time first, when asked)
/// and a newline; the parts of a line are sent as they come.
#[derive(Debug)]
struct Render {
    timestamps: bool,
    /// A line is begun and not yet ended.
    open: bool,
    /// The end of what was fed that is not a whole record yet.
    carry: Vec<u8>,
}

/// How much of a line with no newline a follower holds before it sends it
/// as it is (only an older jarvis's shim writes those).
const CARRY_MAX: usize = 4 * logfile::PARTIAL_MAX;

impl Render {
    fn new(timestamps: bool) -> Render {
        Render {
            timestamps,
            open: false,
            carry: Vec::new(),
        }
    }

    fn begin(&mut self, time: Option<SystemTime>, out: &mut String) {
        if let (true, Some(t)) = (self.timestamps, time) {
            out.push_str(&logfile::stamp(t));
            out.push(' ');
        }
    }

    /// A tail. When a follower goes on from its end, its last line is left
    /// open if its next part may come.
    fn tail(&mut self, tail: &Tail, following: bool, out: &mut String) {
        for (i, Line { time, text, .. }) in tail.lines.iter().enumerate() {
            self.begin(*time, out);
            out.push_str(&String::from_utf8_lossy(text));
            if following && tail.open && i + 1 == tail.lines.len() {
                self.open = true;
            } else {
                out.push('\n');
            }
        }
    }

    /// A line of jarvisd's own about following (not in the file): ends an
    /// open line first, as a note in the file does.
    fn notice(&mut self, text: &str, out: &mut String) {
        if self.open {
            out.push('\n');
            self.open = false;
        }
        self.begin(Some(SystemTime::now()), out);
        out.push_str("[jarvis] ");
        out.push_str(text);
        out.push('\n');
    }

    /// Bytes appended to the log.
    fn feed(&mut self, data: &[u8], out: &mut String) {
        self.carry.extend_from_slice(data);
        let whole = match self.carry.iter().rposition(|b| *b == b'\n') {
            Some(n) => n + 1,
            None if self.carry.len() > CARRY_MAX => {
                let text = std::mem::take(&mut self.carry);
                if !self.open {
                    self.begin(None, out);
                    self.open = true;
                }
                out.push_str(&String::from_utf8_lossy(&text));
                return;
            }
            None => return,
        };
        let rest = self.carry.split_off(whole);
        let records = std::mem::replace(&mut self.carry, rest);
        for raw in records[..whole - 1].split(|b| *b == b'\n') {
            let r = logfile::parse_record(raw);
            if r.kind == Kind::Note && self.open {
                out.push('\n');
                self.open = false;
            }
            if !self.open {
                self.begin(r.time, out);
            }
            out.push_str(&String::from_utf8_lossy(r.text));
            self.open = r.kind == Kind::Part;
            if !self.open {
                out.push('\n');
            }
        }
    }
}

/// A place in the current log file.
#[derive(Debug)]
pub struct Position {
    ino: Option<u64>,
    offset: u64,
    file: Option<File>,
}

/// What a follower sends on.
#[derive(Debug, PartialEq, Eq)]
pub enum Followed {
    /// Bytes appended to the log.
    Data(Vec<u8>),
    /// Something the reader should know about the following itself.
    Notice(String),
}

/// Sends everything written to the log after `from` to `out`, as it is
/// written, until `out` closes (the reader went away). Follows rotations:
/// what was left in the old file comes first, then the new one from its
/// start. Woken by `watcher`; without a watch, says so and reads the file
/// every [`POLL_EVERY`].
pub async fn follow(
    path: PathBuf,
    mut from: Position,
    out: tokio::sync::mpsc::Sender<Followed>,
    watcher: Watcher,
) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("/")).to_path_buf();
    std::fs::create_dir_all(&dir)?;
    let mut sub = match watcher.subscribe(&path) {
        Ok(sub) => Some(sub),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot watch a log: following it by polling");
            let notice = polling_notice(&e.to_string());
            if out.send(Followed::Notice(notice)).await.is_err() {
                return Ok(());
            }
            None
        }
    };
    let mut file = from.file.take();
    loop {
        // Catch up with what is there, off the runtime's thread (the event
        // loop shares it).
        let (f, p, chunks) = {
            let path = path.clone();
            jarvis_runtime::blocking(move || catch_up(&path, file, from)).await?
        };
        (file, from) = (f, p);
        for chunk in chunks {
            if out.send(Followed::Data(chunk)).await.is_err() {
                return Ok(());
            }
        }
        // Sleep until something happens to our file, or the reader leaves.
        match &sub {
            Some(s) if !s.lost() => {
                tokio::select! {
                    _ = s.wake.notified() => {}
                    _ = out.closed() => return Ok(()),
                }
            }
            Some(_) => {
                // The watch went (its directory was removed, or the
                // watcher failed): read again at once, then poll.
                sub = None;
                tracing::warn!(path = %path.display(), "lost the watch on a log: following it by polling");
                let notice = polling_notice("the watch on its directory was lost");
                if out.send(Followed::Notice(notice)).await.is_err() {
                    return Ok(());
                }
            }
            None => {
                tokio::select! {
                    _ = tokio::time::sleep(POLL_EVERY) => {}
                    _ = out.closed() => return Ok(()),
                }
            }
        }
    }
}

fn polling_notice(why: &str) -> String {
    format!(
        "cannot watch this log for changes ({why}); following it by reading it every {} ms",
        POLL_EVERY.as_millis()
    )
}

/// jarvisd's one inotify instance, shared by every follower: a watch per
/// log directory, counted by its followers and removed with the last, and
/// one task that reads the events and wakes the followers of the file each
/// names. The instance is made at the first follow (and again after it
/// failed), so a jarvisd nobody follows holds none.
#[derive(Clone, Default)]
pub struct Watcher(Arc<Mutex<WatcherState>>);

#[derive(Default)]
struct WatcherState {
    active: Option<Active>,
    next_id: u64,
    /// For tests: every subscription fails with this.
    refuse: Option<String>,
}

struct Active {
    watches: inotify::Watches,
    dirs: HashMap<inotify::WatchDescriptor, Vec<Follower>>,
    /// Ends with the instance (when it fails); a new one is made then.
    reader: tokio::task::JoinHandle<()>,
}

struct Follower {
    id: u64,
    /// The file it follows, in the watched directory.
    name: OsString,
    wake: Arc<Notify>,
    lost: Arc<AtomicBool>,
}

/// A follower's place in the [`Watcher`]: `wake` is notified when its file
/// changes. Dropping it removes the follower (and the watch with its last
/// follower).
pub struct Subscription {
    watcher: Weak<Mutex<WatcherState>>,
    wd: inotify::WatchDescriptor,
    id: u64,
    pub wake: Arc<Notify>,
    lost: Arc<AtomicBool>,
}

impl Subscription {
    /// The watch is gone: the follower must look for itself.
    pub fn lost(&self) -> bool {
        self.lost.load(Ordering::Acquire)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let Some(state) = self.watcher.upgrade() else {
            return;
        };
        let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
        let Some(active) = st.active.as_mut() else {
            return;
        };
        let Some(followers) = active.dirs.get_mut(&self.wd) else {
            return;
        };
        followers.retain(|f| f.id != self.id);
        if followers.is_empty() {
            active.dirs.remove(&self.wd);
            // Fails only when the kernel removed it already.
            let _ = active.watches.remove(self.wd.clone());
        }
    }
}

const WATCH_MASK: inotify::WatchMask = inotify::WatchMask::MODIFY
    .union(inotify::WatchMask::CREATE)
    .union(inotify::WatchMask::MOVED_TO);

impl Watcher {
    /// A watcher whose every subscription fails with `why` (tests of the
    /// fallback).
    #[cfg(test)]
    pub fn refusing(why: &str) -> Watcher {
        let w = Watcher::default();
        w.0.lock().unwrap_or_else(|p| p.into_inner()).refuse = Some(why.to_string());
        w
    }

    /// Wakes the caller on changes to the file `path` (its directory is
    /// watched). Must be called within a tokio runtime (the instance's
    /// reader runs there).
    pub fn subscribe(&self, path: &Path) -> io::Result<Subscription> {
        let dir = path.parent().unwrap_or(Path::new("/"));
        let name = path.file_name().map(|n| n.to_owned()).unwrap_or_default();
        let mut st = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(why) = &st.refuse {
            return Err(io::Error::other(why.clone()));
        }
        if st.active.as_ref().is_some_and(|a| a.reader.is_finished()) {
            st.active = None;
        }
        if st.active.is_none() {
            let inotify = inotify::Inotify::init()?;
            let watches = inotify.watches();
            let events = inotify.into_event_stream(vec![0u8; 16 * 1024])?;
            let reader = tokio::spawn(read_events(Arc::downgrade(&self.0), events));
            st.active = Some(Active {
                watches,
                dirs: HashMap::new(),
                reader,
            });
        }
        st.next_id += 1;
        let id = st.next_id;
        let active = st.active.as_mut().expect("made above");
        // The same directory gives the same descriptor: one watch each.
        let wd = active.watches.add(dir, WATCH_MASK)?;
        let (wake, lost) = (Arc::new(Notify::new()), Arc::new(AtomicBool::new(false)));
        active.dirs.entry(wd.clone()).or_default().push(Follower {
            id,
            name,
            wake: wake.clone(),
            lost: lost.clone(),
        });
        Ok(Subscription {
            watcher: Arc::downgrade(&self.0),
            wd,
            id,
            wake,
            lost,
        })
    }

    /// The directories watched now (tests).
    #[cfg(test)]
    fn watched(&self) -> usize {
        let st = self.0.lock().unwrap_or_else(|p| p.into_inner());
        st.active.as_ref().map_or(0, |a| a.dirs.len())
    }

    /// The followers subscribed now (tests).
    #[cfg(test)]
    fn subscribed(&self) -> usize {
        let st = self.0.lock().unwrap_or_else(|p| p.into_inner());
        st.active
            .as_ref()
            .map_or(0, |a| a.dirs.values().map(Vec::len).sum())
    }
}

/// The instance's reader: wakes the followers of each file an event names;
/// all of them when events were lost. When the instance fails, every
/// follower is told its watch is lost.
async fn read_events(state: Weak<Mutex<WatcherState>>, mut events: inotify::EventStream<Vec<u8>>) {
    use inotify::EventMask;
    loop {
        let ev = events.next().await;
        let Some(state) = state.upgrade() else { return };
        let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
        let Some(active) = st.active.as_mut() else {
            return;
        };
        match ev {
            Some(Ok(ev)) if ev.mask.contains(EventMask::Q_OVERFLOW) => {
                for f in active.dirs.values().flatten() {
                    f.wake.notify_one();
                }
            }
            Some(Ok(ev)) if ev.mask.contains(EventMask::IGNORED) => {
                // The directory went: its followers look for themselves.
                for f in active.dirs.remove(&ev.wd).into_iter().flatten() {
                    f.lost.store(true, Ordering::Release);
                    f.wake.notify_one();
                }
            }
            Some(Ok(ev)) => {
                let followers = active.dirs.get(&ev.wd).into_iter().flatten();
                for f in followers.filter(|f| ev.name.as_deref() == Some(f.name.as_os_str())) {
                    f.wake.notify_one();
                }
            }
            Some(Err(_)) | None => {
                if let Some(e) = ev.and_then(Result::err) {
                    tracing::warn!(error = %e, "the log watcher failed; its followers poll");
                }
                for f in active.dirs.values().flatten() {
                    f.lost.store(true, Ordering::Release);
                    f.wake.notify_one();
                }
                active.dirs.clear();
                // The next follow makes a new instance.
                st.active = None;
                return;
            }
        }
    }
}

/// Reads what was written after `from`: the rest of a file rotated away
/// first, then the current file. Blocking.
fn catch_up(
    path: &Path,
    mut file: Option<File>,
    mut from: Position,
) -> io::Result<(Option<File>, Position, Vec<Vec<u8>>)> {
    let mut chunks = Vec::new();
    let current = std::fs::metadata(path).ok().map(|m| m.ino());
    if current != from.ino {
        if let Some(f) = file.as_mut() {
            let rest = read_from(f, from.offset)?;
            if !rest.is_empty() {
                chunks.push(rest);
            }
        }
        file = None;
        from = Position {
            ino: current,
            offset: 0,
            file: None,
        };
    }
    if file.is_none() && from.ino.is_some() {
        file = File::open(path).ok();
    }
    if let Some(f) = file.as_mut() {
        let data = read_from(f, from.offset)?;
        from.offset += data.len() as u64;
        if !data.is_empty() {
            chunks.push(data);
        }
    }
    Ok((file, from, chunks))
}

fn read_from(f: &mut File, offset: u64) -> io::Result<Vec<u8>> {
    f.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    const WAIT: Duration = Duration::from_secs(5);

    fn small_log(dir: &Path, name: &str, watcher: &Watcher) -> UnitLog {
        UnitLog::new(
            dir,
            name,
            &Logs {
                max_size: 12,
                max_files: 2,
            },
            watcher.clone(),
        )
    }

    /// Follows `log` while lines are appended (two of them rotate the
    /// 12-byte file); what came, and the notices.
    async fn follow_appends(log: &UnitLog, watcher: &Watcher) -> (Vec<u8>, Vec<String>) {
        let cfg = log.config();
        logfile::append_once(&cfg, b"before\n").unwrap();
        let from = log.end();
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Followed>(16);
        let task = tokio::spawn(follow(log.path(), from, tx, watcher.clone()));
        let (mut got, mut notices) = (Vec::new(), Vec::new());
        let mut writer = logfile::LogFile::new(cfg.clone());
        for line in [&b"one\n"[..], b"two\n", b"three\n", b"four\n"] {
            writer.append(line).unwrap();
            while !got.ends_with(line) {
                match tokio::time::timeout(WAIT, rx.recv())
                    .await
                    .expect("followed in time")
                    .unwrap()
                {
                    Followed::Data(d) => got.extend(d),
                    Followed::Notice(n) => notices.push(n),
                }
            }
        }
        task.abort();
        (got, notices)
    }

    #[tokio::test]
    async fn follow_sees_appends_and_rotations() {
        let dir = tempfile::tempdir().unwrap();
        let watcher = Watcher::default();
        let log = small_log(dir.path(), "u", &watcher);
        let (got, notices) = follow_appends(&log, &watcher).await;
        assert_eq!(got, b"one\ntwo\nthree\nfour\n");
        assert!(notices.is_empty(), "{notices:?}");
    }

    #[tokio::test]
    async fn without_a_watch_a_follower_says_so_and_polls() {
        let dir = tempfile::tempdir().unwrap();
        let watcher = Watcher::refusing("Too many open files");
        let log = small_log(dir.path(), "u", &watcher);
        let (got, notices) = follow_appends(&log, &watcher).await;
        assert_eq!(got, b"one\ntwo\nthree\nfour\n");
        assert_eq!(notices.len(), 1, "{notices:?}");
        assert!(
            notices[0].contains("Too many open files") && notices[0].contains("every 250 ms"),
            "{notices:?}"
        );
    }

    #[tokio::test]
    async fn followers_share_one_watch_per_directory() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let watcher = Watcher::default();
        let logs: Vec<UnitLog> = ["x", "y", "z"]
            .iter()
            .map(|n| small_log(a.path(), n, &watcher))
            .chain([small_log(b.path(), "w", &watcher)])
            .collect();
        let mut rxs = Vec::new();
        let mut tasks = Vec::new();
        for i in 0..300 {
            let log = &logs[i % logs.len()];
            let (tx, rx) = tokio::sync::mpsc::channel::<Followed>(16);
            tasks.push(tokio::spawn(follow(
                log.path(),
                log.end(),
                tx,
                watcher.clone(),
            )));
            rxs.push((i % logs.len(), rx));
        }
        // Every follower is subscribed once it has caught up (nothing to
        // read yet): then the lines are written.
        let deadline = std::time::Instant::now() + WAIT;
        while watcher.subscribed() < 300 {
            assert!(
                std::time::Instant::now() < deadline,
                "{}",
                watcher.subscribed()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(watcher.watched(), 2, "one watch per directory");
        for (n, log) in logs.iter().enumerate() {
            logfile::append_once(&log.config(), format!("line {n}\n").as_bytes()).unwrap();
        }
        for (n, rx) in &mut rxs {
            let Followed::Data(d) = tokio::time::timeout(WAIT, rx.recv())
                .await
                .expect("woken in time")
                .unwrap()
            else {
                panic!("a notice")
            };
            assert_eq!(d, format!("line {n}\n").as_bytes());
        }
        for t in tasks {
            t.abort();
            let _ = t.await;
        }
        assert_eq!(watcher.watched(), 0, "the watches go with their followers");
    }
}

#[cfg(test)]
mod render_tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn t(ms: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_795_000_000) + Duration::from_millis(ms)
    }

    fn rec(time: SystemTime, kind: Kind, text: &str) -> Vec<u8> {
        let mut out = Vec::new();
        logfile::encode(&mut out, time, kind, text.as_bytes());
        out
    }

    fn fed(r: &mut Render, data: &[u8]) -> String {
        let mut out = String::new();
        r.feed(data, &mut out);
        out
    }

    #[test]
    fn records_are_rendered_with_or_without_times() {
        let s0 = logfile::stamp(t(0));
        let mut data = rec(t(0), Kind::Line, "one");
        data.extend(b"legacy line\n");
        data.extend(rec(t(1), Kind::Note, "[jarvis] note"));
        assert_eq!(
            fed(&mut Render::new(false), &data),
            "one\nlegacy line\n[jarvis] note\n"
        );
        assert_eq!(
            fed(&mut Render::new(true), &data),
            format!(
                "{s0} one\nlegacy line\n{} [jarvis] note\n",
                logfile::stamp(t(1))
            )
        );
    }

    #[test]
    fn parts_are_sent_as_they_come_and_a_record_may_arrive_in_pieces() {
        let mut r = Render::new(true);
        let part = rec(t(0), Kind::Part, "Password: ");
        let s0 = logfile::stamp(t(0));
        assert_eq!(fed(&mut r, &part[..10]), "");
        assert_eq!(fed(&mut r, &part[10..]), format!("{s0} Password: "));
        // The rest of the line: no time of its own.
        assert_eq!(fed(&mut r, &rec(t(5), Kind::Line, "ok")), "ok\n");
        // A note ends an open line first.
        let mut data = rec(t(6), Kind::Part, "half");
        data.extend(rec(t(7), Kind::Note, "[jarvis] stop"));
        data.extend(rec(t(8), Kind::Line, "rest"));
        let s = |ms| logfile::stamp(t(ms));
        assert_eq!(
            fed(&mut r, &data),
            format!("{} half\n{} [jarvis] stop\n{} rest\n", s(6), s(7), s(8))
        );
    }

    #[test]
    fn a_tail_leaves_its_open_line_to_the_follower() {
        let tail = Tail {
            lines: vec![
                Line {
                    time: Some(t(0)),
                    text: b"a".to_vec(),
                    note: false,
                },
                Line {
                    time: None,
                    text: b"b".to_vec(),
                    note: false,
                },
            ],
            open: true,
        };
        let mut out = String::new();
        Render::new(false).tail(&tail, false, &mut out);
        assert_eq!(out, "a\nb\n");
        let mut r = Render::new(false);
        let mut out = String::new();
        r.tail(&tail, true, &mut out);
        assert_eq!(out, "a\nb");
        assert_eq!(fed(&mut r, &rec(t(1), Kind::Line, "c")), "c\n");
    }

    #[test]
    fn frames_end_at_line_ends_and_are_bounded() {
        assert!(frames(String::new()).is_empty());
        let line = "x".repeat(1000) + "\n";
        let text = line.repeat(3 * LOG_CHUNK / 1000);
        let got = frames(text.clone());
        assert!(got.len() >= 3);
        assert!(got
            .iter()
            .all(|f| f.len() <= LOG_CHUNK && f.ends_with('\n')));
        assert_eq!(got.concat(), text);
        // One line longer than a frame, of two-byte characters.
        let long = "é".repeat(LOG_CHUNK);
        let got = frames(long.clone());
        assert!(got.iter().all(|f| f.len() <= LOG_CHUNK));
        assert_eq!(got.concat(), long);
    }
}

#[cfg(test)]
mod deadline_tests {
    use super::*;

    /// A follower whose client stops reading is let go once its socket is
    /// full and the deadline passes, instead of waiting for ever.
    #[tokio::test]
    async fn a_client_that_stops_reading_is_let_go() {
        let (mut ours, _theirs) = UnixStream::pair().unwrap();
        let data = "x".repeat(64 * 1024);
        let started = std::time::Instant::now();
        let mut result = Ok(());
        for _ in 0..1000 {
            let resp = Response::LogData { data: data.clone() };
            result = send_within(&mut ours, &resp, std::time::Duration::from_millis(200)).await;
            if result.is_err() {
                break;
            }
        }
        match result {
            Err(FrameError::Io(e)) => assert_eq!(e.kind(), io::ErrorKind::TimedOut),
            other => panic!("{other:?}"),
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(30));
    }
}
