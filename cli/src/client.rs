//! A blocking client for jarvisd's control socket.

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use anyhow::Context;
use jarvis_proto::{
    read_frame, write_frame, FrameError, Hello, ImageInfo, PullProgress, Request, Response,
    PROTOCOL_VERSION,
};

#[derive(Clone)]
pub struct Client {
    socket: PathBuf,
}

impl Client {
    pub fn new(socket: PathBuf) -> Client {
        Client { socket }
    }

    fn connect(&self) -> anyhow::Result<UnixStream> {
        let mut stream = UnixStream::connect(&self.socket).map_err(|e| {
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
        write_frame(
            &mut stream,
            &Hello {
                version: PROTOCOL_VERSION,
                agent: format!("jarvisctl {}", env!("CARGO_PKG_VERSION")),
            },
        )?;
        let hello: Hello =
            read_frame(&mut stream).context("jarvisd did not answer the greeting")?;
        if hello.version != PROTOCOL_VERSION {
            // The daemon explains itself in the next frame.
            if let Ok(Response::Error { message }) = read_frame::<Response>(&mut stream) {
                anyhow::bail!("{message}");
            }
            anyhow::bail!(
                "{} speaks protocol {}, this jarvisctl speaks {}",
                hello.agent,
                hello.version,
                PROTOCOL_VERSION
            );
        }
        Ok(stream)
    }

    /// Sends one request and returns its answer; an error answer becomes an
    /// error, and so does an answer of the wrong kind.
    pub fn expect(&self, req: Request) -> anyhow::Result<Response> {
        let mut stream = self.connect()?;
        write_frame(&mut stream, &req)?;
        let resp: Response = read_frame(&mut stream).map_err(|e| match e {
            FrameError::Closed => {
                anyhow::anyhow!("jarvisd closed the connection without an answer")
            }
            e => e.into(),
        })?;
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
        let mut stream = self.connect()?;
        write_frame(&mut stream, req)?;
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
        match read_frame::<Response>(&mut stream) {
            Ok(Response::Exited { code }) => Ok(code),
            Ok(Response::Error { message }) => anyhow::bail!("{message}"),
            Ok(other) => anyhow::bail!("unexpected answer from jarvisd: {other:?}"),
            Err(FrameError::Closed) => {
                anyhow::bail!("jarvisd closed the connection before the command ended")
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Sends a pull or import: hands each progress report to `progress`, and
    /// returns the image once it is in the store.
    pub fn pull(
        &self,
        req: Request,
        mut progress: impl FnMut(&PullProgress),
    ) -> anyhow::Result<ImageInfo> {
        let mut stream = self.connect()?;
        write_frame(&mut stream, &req)?;
        loop {
            match read_frame::<Response>(&mut stream) {
                Ok(Response::Progress(p)) => progress(&p),
                Ok(Response::Pulled(info)) => return Ok(info),
                Ok(Response::Error { message }) => anyhow::bail!("{message}"),
                Ok(other) => anyhow::bail!("unexpected answer from jarvisd: {other:?}"),
                Err(FrameError::Closed) => {
                    anyhow::bail!("jarvisd closed the connection before the pull finished")
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Sends a request whose answer is a stream of `LogData`, handing each
    /// piece to `out` until the stream ends or `out` returns false.
    pub fn stream(&self, req: Request, mut out: impl FnMut(&str) -> bool) -> anyhow::Result<()> {
        let mut stream = self.connect()?;
        write_frame(&mut stream, &req)?;
        loop {
            match read_frame::<Response>(&mut stream) {
                Ok(Response::LogData { data }) => {
                    if !out(&data) {
                        return Ok(());
                    }
                }
                Ok(Response::LogEnd) | Err(FrameError::Closed) => return Ok(()),
                Ok(Response::Error { message }) => anyhow::bail!("{message}"),
                Ok(other) => anyhow::bail!("unexpected answer from jarvisd: {other:?}"),
                Err(e) => return Err(e.into()),
            }
        }
    }
}
