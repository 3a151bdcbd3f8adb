//! A blocking client for jarvisd's control socket. Every request has a
//! deadline (see [`Client::new`]): the connect and the greeting always,
//! the answer as the request's kind allows.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use jarvis_proto::{
    read_frame, write_frame, FrameError, Hello, ImageInfo, PullProgress, Request, Response,
    PROTOCOL_VERSION,
};

/// How long jarvisctl waits for jarvisd when not told otherwise: for the
/// connect and the greeting of every request, and for the answer to a
/// quick one (`status`, `config`, the lists, `generations`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// The default for requests that start, stop or remove things (`up`,
/// `down`, `start`, `stop`, `restart`, `image rm`, `volume rm`): they
/// answer once it is done.
pub const SLOW_TIMEOUT: Duration = Duration::from_secs(300);
/// The environment variable that sets `--request-timeout`.
pub const TIMEOUT_ENV: &str = "JARVISCTL_TIMEOUT";

#[derive(Clone)]
pub struct Client {
    socket: PathBuf,
    /// `--request-timeout` as given (zero: no deadline at all).
    timeout: Option<Duration>,
}

/// The deadlines of one request: the connect and greeting, then the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Deadlines {
    greeting: Option<Duration>,
    answer: Answer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// The whole answer within this, from the connect.
    Within(Duration),
    /// Each frame of a stream within this of the one before.
    EachFrame(Duration),
    /// As long as it takes (a follow, an exec, a pull, an apply).
    Unbounded,
}

impl Client {
    /// A client of the socket at `socket`. The deadlines: without
    /// `--request-timeout` ([`Client::with_timeout`]), the connect
    /// and greeting get [`DEFAULT_TIMEOUT`], and so does a quick answer;
    /// requests that change units get [`SLOW_TIMEOUT`]; a wait gets its own
    /// time plus [`DEFAULT_TIMEOUT`]; `apply`, `rollback`, `logs -f`,
    /// `exec` and image pulls and imports take as long as they take. Given,
    /// it replaces [`DEFAULT_TIMEOUT`] and [`SLOW_TIMEOUT`], and bounds
    /// `apply` and `rollback` at their own time plus it; zero waits forever.
    pub fn new(socket: PathBuf) -> Client {
        Client {
            socket,
            timeout: None,
        }
    }

    /// `--request-timeout` (see [`Client::new`]).
    pub fn with_timeout(self, timeout: Option<Duration>) -> Client {
        Client { timeout, ..self }
    }

    fn deadlines(&self, req: &Request) -> Deadlines {
        if self.timeout == Some(Duration::ZERO) {
            return Deadlines {
                greeting: None,
                answer: Answer::Unbounded,
            };
        }
        let t = self.timeout.unwrap_or(DEFAULT_TIMEOUT);
        let own = |ms: u64| Duration::from_millis(ms).saturating_add(t);
        let answer = match req {
            Request::Status { .. }
            | Request::Config { .. }
            | Request::ImageList
            | Request::NetworkList
            | Request::VolumeList
            | Request::Generations
            | Request::BenchBegin { .. }
            | Request::BenchResult { .. } => Answer::Within(t),
            Request::Up
            | Request::Down
            | Request::Start { .. }
            | Request::Stop { .. }
            | Request::Restart { .. }
            | Request::ImageRemove { .. }
            | Request::VolumeRemove { .. } => Answer::Within(self.timeout.unwrap_or(SLOW_TIMEOUT)),
            Request::Wait { timeout_ms } | Request::BenchForm { timeout_ms, .. } => {
                Answer::Within(own(*timeout_ms))
            }
            Request::Apply { timeout_ms, .. } | Request::Rollback { timeout_ms, .. } => {
                match self.timeout {
                    Some(_) => Answer::Within(own(*timeout_ms)),
                    None => Answer::Unbounded,
                }
            }
            Request::Logs { follow: false, .. } | Request::Events { follow: false, .. } => {
                Answer::EachFrame(t)
            }
            Request::Events { follow: true, .. } => Answer::Unbounded,
            Request::Logs { follow: true, .. }
            | Request::Exec { .. }
            | Request::ImagePull { .. }
            | Request::ImageImport { .. } => Answer::Unbounded,
        };
        Deadlines {
            greeting: Some(t),
            answer,
        }
    }

    /// The message when jarvisd has not answered within `limit`.
    fn no_answer(&self, limit: Duration) -> anyhow::Error {
        anyhow::Error::new(NoAnswer(format!(
            "no answer from jarvisd at {} within {} (is it running? raise --request-timeout \
             or {TIMEOUT_ENV} if it is busy)",
            self.socket.display(),
            humantime::format_duration(limit)
        )))
    }

    /// Connects, greets and sends `req`: the connection, with the answer's
    /// deadline set.
    fn open(&self, req: &Request) -> anyhow::Result<Conn<'_>> {
        let deadlines = self.deadlines(req);
        let started = Instant::now();
        let greeting = deadlines.greeting.map(|t| (started + t, t));
        let mut conn = Conn {
            client: self,
            stream: self.connect(greeting)?,
            until: greeting,
            each_frame: None,
        };
        conn.send(req)?;
        match deadlines.answer {
            Answer::Within(t) => conn.until = Some((started + t, t)),
            Answer::EachFrame(t) => {
                conn.until = Some((Instant::now() + t, t));
                conn.each_frame = Some(t);
            }
            Answer::Unbounded => conn.until = None,
        }
        Ok(conn)
    }

    fn connect(&self, until: Option<(Instant, Duration)>) -> anyhow::Result<UnixStream> {
        let stream = connect_until(&self.socket, until.map(|(u, _)| u)).map_err(|e| {
            if e.kind() == std::io::ErrorKind::WouldBlock {
                // The listen queue stayed full: jarvisd is not accepting.
                return self.no_answer(until.map(|(_, t)| t).unwrap_or_default());
            }
            let hint = match e.kind() {
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
                    "is jarvisd running? point --socket or JARVIS_SOCKET at its socket"
                }
                std::io::ErrorKind::PermissionDenied => {
                    "run as root, or as a member of jarvisd's --socket-group"
                }
                _ => "check that jarvisd is running",
            };
            anyhow::anyhow!(
                "cannot reach jarvisd at {}: {e} ({hint})",
                self.socket.display()
            )
        })?;
        let mut conn = Conn {
            client: self,
            stream,
            until,
            each_frame: None,
        };
        let greeting = Hello {
            version: PROTOCOL_VERSION,
            agent: format!("jarvisctl {}", env!("CARGO_PKG_VERSION")),
        };
        // A jarvisd that cannot take the connection answers without
        // reading: what it said is still there to read.
        let sent = conn.write(&greeting);
        let hello: Hello = match conn.read() {
            Ok(hello) => hello,
            Err(e) if e.is::<NoAnswer>() => return Err(e),
            Err(e) => {
                sent?;
                return Err(e.context("jarvisd did not answer the greeting"));
            }
        };
        if hello.version != PROTOCOL_VERSION {
            // The daemon explains itself in the next frame.
            if let Ok(Response::Error { message }) = conn.read::<Response>() {
                anyhow::bail!("{message}");
            }
            anyhow::bail!(
                "{} speaks protocol {}, this jarvisctl speaks {}",
                hello.agent,
                hello.version,
                PROTOCOL_VERSION
            );
        }
        sent?;
        Ok(conn.stream)
    }

    /// Sends one request and returns its answer; an error answer becomes an
    /// error, and so does an answer of the wrong kind.
    pub fn expect(&self, req: Request) -> anyhow::Result<Response> {
        let mut conn = self.open(&req)?;
        let resp: Response = conn.answer("jarvisd closed the connection without an answer")?;
        let fits = matches!(
            (&req, &resp),
            (Request::Status { .. }, Response::Status(_))
                | (Request::Up, Response::Up(_))
                | (Request::Wait { .. }, Response::Wait(_))
                | (Request::ImageList, Response::Images { .. })
                | (Request::NetworkList, Response::Networks { .. })
                | (Request::Config { .. }, Response::Config { .. })
                | (Request::VolumeList, Response::Volumes { .. })
                | (Request::VolumeRemove { .. }, Response::Done { .. })
                | (Request::BenchBegin { .. }, Response::BenchPlan(_))
                | (
                    Request::BenchForm { .. } | Request::BenchResult { .. },
                    Response::Done { .. }
                )
                | (Request::ImageRemove { .. }, Response::Done { .. })
                | (
                    Request::Apply { .. } | Request::Rollback { .. },
                    Response::Applied(_)
                )
                | (Request::Generations, Response::Generations { .. })
                | (
                    Request::Down
                        | Request::Start { .. }
                        | Request::Stop { .. }
                        | Request::Restart { .. },
                    Response::Done { .. }
                )
        );
        match resp {
            Response::Error { message } => anyhow::bail!("{message}"),
            resp if fits => Ok(resp),
            resp => anyhow::bail!("unexpected answer from jarvisd: {resp:?}"),
        }
    }

    /// Sends an `Exec` and, right after it, `stdio` (stdin, stdout, stderr)
    /// with SCM_RIGHTS; returns the command's exit code once it ends.
    pub fn exec(&self, req: &Request, stdio: [&OwnedFd; 3]) -> anyhow::Result<i32> {
        use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
        let mut conn = self.open(req)?;
        let stream = &conn.stream;
        let fds = stdio.map(|fd| fd.as_raw_fd());
        let byte = [jarvis_proto::EXEC_FDS_BYTE];
        sendmsg::<()>(
            stream.as_raw_fd(),
            &[std::io::IoSlice::new(&byte)],
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::empty(),
            None,
        )
        .context("send the command's stdio to jarvisd")?;
        match conn.answer("jarvisd closed the connection before the command ended")? {
            Response::Exited { code } => Ok(code),
            Response::Error { message } => anyhow::bail!("{message}"),
            other => anyhow::bail!("unexpected answer from jarvisd: {other:?}"),
        }
    }

    /// Sends a pull or import: hands each progress report to `progress`, and
    /// returns the image once it is in the store.
    pub fn pull(
        &self,
        req: Request,
        mut progress: impl FnMut(&PullProgress),
    ) -> anyhow::Result<ImageInfo> {
        let mut conn = self.open(&req)?;
        loop {
            match conn.answer("jarvisd closed the connection before the pull finished")? {
                Response::Progress(p) => progress(&p),
                Response::Pulled(info) => return Ok(info),
                Response::Error { message } => anyhow::bail!("{message}"),
                other => anyhow::bail!("unexpected answer from jarvisd: {other:?}"),
            }
        }
    }

    /// Sends a request whose answer is a stream of `LogData`, handing each
    /// piece to `out` until the stream ends or `out` returns false.
    pub fn stream(&self, req: Request, mut out: impl FnMut(&str) -> bool) -> anyhow::Result<()> {
        let mut conn = self.open(&req)?;
        loop {
            match conn.read::<Response>() {
                Ok(Response::LogData { data }) => {
                    if !out(&data) {
                        return Ok(());
                    }
                }
                Ok(Response::LogEnd) => return Ok(()),
                Ok(Response::Error { message }) => anyhow::bail!("{message}"),
                Ok(other) => anyhow::bail!("unexpected answer from jarvisd: {other:?}"),
                Err(e) if closed(&e) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }
}

impl Client {
    /// Sends an `Events` request, handing each event to `out` until the
    /// answer ends (`Ok(true)`: all kept events were sent, not following) or
    /// `out` returns false (`Ok(false)`). A follow that jarvisd ends is an
    /// error.
    pub fn events(
        &self,
        req: Request,
        mut out: impl FnMut(&jarvis_proto::Event) -> bool,
    ) -> anyhow::Result<bool> {
        let follow = matches!(req, Request::Events { follow: true, .. });
        let mut conn = self.open(&req)?;
        loop {
            match conn.read::<Response>() {
                Ok(Response::Event(e)) => {
                    if !out(&e) {
                        return Ok(false);
                    }
                }
                Ok(Response::EventsEnd) => return Ok(true),
                Ok(Response::Error { message }) => anyhow::bail!("{message}"),
                Ok(other) => anyhow::bail!("unexpected answer from jarvisd: {other:?}"),
                Err(e) if closed(&e) && follow => {
                    anyhow::bail!("jarvisd ended the stream of events (it stopped?)")
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// jarvisd said nothing within the deadline.
#[derive(Debug)]
struct NoAnswer(String);

impl std::fmt::Display for NoAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NoAnswer {}

fn closed(e: &anyhow::Error) -> bool {
    matches!(e.downcast_ref::<FrameError>(), Some(FrameError::Closed))
}

/// One connection to jarvisd, its reads and writes held to a deadline.
struct Conn<'a> {
    client: &'a Client,
    stream: UnixStream,
    /// The deadline and the limit it came from (for the message).
    until: Option<(Instant, Duration)>,
    /// For a stream: each frame gets this much from the one before.
    each_frame: Option<Duration>,
}

impl Conn<'_> {
    fn timed(&self) -> Timed<'_> {
        Timed {
            stream: &self.stream,
            until: self.until.map(|(u, _)| u),
        }
    }

    /// A frame error as jarvisctl says it: a read or write that ran out of
    /// time is no answer within the limit.
    fn error(&self, e: FrameError) -> anyhow::Error {
        match (&e, self.until) {
            (FrameError::Io(io), Some((_, limit)))
                if matches!(
                    io.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                self.client.no_answer(limit)
            }
            _ => e.into(),
        }
    }

    fn write<T: serde::Serialize>(&mut self, msg: &T) -> anyhow::Result<()> {
        write_frame(&mut self.timed(), msg).map_err(|e| self.error(e))
    }

    fn send(&mut self, req: &Request) -> anyhow::Result<()> {
        self.write(req)
    }

    /// One frame (`FrameError::Closed` stays one, for callers that expect
    /// an end).
    fn read<T: serde::de::DeserializeOwned>(&mut self) -> anyhow::Result<T> {
        let r = read_frame(&mut self.timed()).map_err(|e| self.error(e));
        if let (Some(t), Ok(_)) = (self.each_frame, &r) {
            self.until = Some((Instant::now() + t, t));
        }
        r
    }

    /// One frame of the answer; the connection closing instead is `closed`.
    fn answer<T: serde::de::DeserializeOwned>(&mut self, closed_msg: &str) -> anyhow::Result<T> {
        self.read().map_err(|e| {
            if closed(&e) {
                anyhow::anyhow!("{closed_msg}")
            } else {
                e
            }
        })
    }
}

/// Reads and writes on a stream, each given what is left of a deadline.
struct Timed<'a> {
    stream: &'a UnixStream,
    until: Option<Instant>,
}

impl Timed<'_> {
    fn left(&self) -> std::io::Result<Option<Duration>> {
        match self.until {
            None => Ok(None),
            Some(u) => {
                let left = u.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(std::io::ErrorKind::TimedOut.into());
                }
                Ok(Some(left))
            }
        }
    }
}

impl Read for Timed<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.stream.set_read_timeout(self.left()?)?;
        (&mut &*self.stream).read(buf)
    }
}

impl Write for Timed<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.stream.set_write_timeout(self.left()?)?;
        (&mut &*self.stream).write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Connects to `path`, retrying while its listen queue is full until
/// `until` (then `WouldBlock`).
fn connect_until(path: &Path, until: Option<Instant>) -> std::io::Result<UnixStream> {
    use nix::errno::Errno;
    use nix::sys::socket::{connect, socket, AddressFamily, SockFlag, SockType, UnixAddr};
    let addr = UnixAddr::new(path)?;
    loop {
        let fd = socket(
            AddressFamily::Unix,
            SockType::Stream,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
            None,
        )?;
        match connect(fd.as_raw_fd(), &addr) {
            Ok(()) => {
                let stream = UnixStream::from(fd);
                stream.set_nonblocking(false)?;
                return Ok(stream);
            }
            Err(Errno::EAGAIN) if until.is_none_or(|u| Instant::now() < u) => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deadlines(timeout: Option<&str>, req: Request) -> Deadlines {
        Client::new("/nowhere".into())
            .with_timeout(timeout.map(|t| humantime::parse_duration(t).unwrap()))
            .deadlines(&req)
    }

    #[test]
    fn each_request_gets_its_deadline() {
        let s = Duration::from_secs;
        let status = Request::Status { units: vec![] };
        assert_eq!(
            deadlines(None, status.clone()),
            Deadlines {
                greeting: Some(DEFAULT_TIMEOUT),
                answer: Answer::Within(DEFAULT_TIMEOUT)
            }
        );
        assert_eq!(
            deadlines(Some("3s"), status.clone()).answer,
            Answer::Within(s(3))
        );
        assert_eq!(
            deadlines(None, Request::Down).answer,
            Answer::Within(SLOW_TIMEOUT)
        );
        assert_eq!(
            deadlines(Some("1m"), Request::Down).answer,
            Answer::Within(s(60))
        );
        // A wait: its own time, then the timeout.
        let wait = Request::Wait {
            timeout_ms: 120_000,
        };
        assert_eq!(deadlines(None, wait.clone()).answer, Answer::Within(s(130)));
        assert_eq!(deadlines(Some("1s"), wait).answer, Answer::Within(s(121)));
        // Apply fetches a repository first: unbounded unless told.
        let apply = Request::Apply {
            repo: None,
            rev: None,
            path: None,
            dry_run: false,
            timeout_ms: 300_000,
        };
        assert_eq!(deadlines(None, apply.clone()).answer, Answer::Unbounded);
        assert_eq!(deadlines(Some("30s"), apply).answer, Answer::Within(s(330)));
        // Streams: the greeting is bounded, what follows is not.
        let follow = Request::Logs {
            unit: "web".into(),
            lines: None,
            follow: true,
            since: None,
            timestamps: false,
        };
        let d = deadlines(None, follow);
        assert_eq!(d.greeting, Some(DEFAULT_TIMEOUT));
        assert_eq!(d.answer, Answer::Unbounded);
        let tail = Request::Logs {
            unit: "web".into(),
            lines: Some(10),
            follow: false,
            since: None,
            timestamps: false,
        };
        assert_eq!(
            deadlines(None, tail).answer,
            Answer::EachFrame(DEFAULT_TIMEOUT)
        );
        let pull = Request::ImagePull {
            reference: "busybox".into(),
        };
        assert_eq!(deadlines(None, pull).answer, Answer::Unbounded);
        // Zero: no deadline at all.
        assert_eq!(
            deadlines(Some("0s"), status),
            Deadlines {
                greeting: None,
                answer: Answer::Unbounded
            }
        );
    }

    #[test]
    fn a_daemon_that_never_answers_is_given_up_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mute.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let held = std::thread::spawn(move || {
            let conns: Vec<_> = listener.incoming().take(2).collect();
            std::thread::sleep(Duration::from_secs(3));
            drop(conns);
        });
        let client = Client::new(path.clone()).with_timeout(Some(Duration::from_millis(300)));
        for req in [
            Request::Status { units: vec![] },
            Request::ImagePull {
                reference: "busybox".into(),
            },
        ] {
            let started = Instant::now();
            let err = match req {
                Request::ImagePull { .. } => client.pull(req, |_| {}).unwrap_err(),
                req => client.expect(req).unwrap_err(),
            };
            assert!(started.elapsed() < Duration::from_secs(2), "{err:#}");
            assert_eq!(
                format!("{err:#}"),
                format!(
                    "no answer from jarvisd at {} within 300ms (is it running? raise \
                     --request-timeout or JARVISCTL_TIMEOUT if it is busy)",
                    path.display()
                )
            );
        }
        held.join().unwrap();
    }

    #[test]
    fn a_refusal_is_read_even_when_the_greeting_could_not_be_sent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("full.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            write_frame(
                &mut s,
                &Hello {
                    version: jarvis_proto::REFUSED_VERSION,
                    agent: "jarvisd test".into(),
                },
            )
            .unwrap();
            write_frame(
                &mut s,
                &Response::Error {
                    message: "jarvisd is at its connection limit (2 connections)".into(),
                },
            )
            .unwrap();
        });
        let err = Client::new(path)
            .expect(Request::Status { units: vec![] })
            .unwrap_err();
        server.join().unwrap();
        assert_eq!(
            err.to_string(),
            "jarvisd is at its connection limit (2 connections)"
        );
    }
}
