//! `jarvisctl exec`: runs a command inside a running unit. The command's
//! stdio are this process's own descriptors (or, with `--tty`, the slave
//! side of a pty opened here, which becomes the command's controlling
//! terminal), handed to jarvisd over the socket. This terminal's size
//! follows it onto the pty.

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::process::ExitCode;
use std::sync::atomic::{AtomicI32, Ordering};

use anyhow::Context;
use clap::Args;
use jarvis_proto::Request;

use crate::client::Client;

/// `jarvisctl exec`'s arguments.
#[derive(Debug, Args)]
pub struct ExecArgs {
    /// The unit to run the command in (it must be running).
    pub unit: String,
    /// Keep stdin open: the command reads this terminal or pipe (without
    /// it the command's stdin is /dev/null).
    #[arg(short, long)]
    pub interactive: bool,
    /// Give the command a terminal (a pty, its controlling terminal: Ctrl-C
    /// reaches it; this terminal is put in raw mode until it ends, and its
    /// size changes follow). Use with -i for a shell.
    #[arg(short, long)]
    pub tty: bool,
    /// Run as this user instead of the unit's: a native unit's user (name
    /// or uid) on the host; in a container, name, uid, uid:gid or
    /// name:group from the container's own /etc/passwd and /etc/group.
    #[arg(short, long)]
    pub user: Option<String>,
    /// The command and its arguments, after `--`: `exec web -- id -u`.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

pub fn run(client: &Client, args: ExecArgs) -> anyhow::Result<ExitCode> {
    let req = Request::Exec {
        unit: args.unit.clone(),
        argv: args.command.clone(),
        user: args.user.clone(),
        tty: args.tty,
    };
    let code = if args.tty {
        with_tty(client, req, args.interactive)?
    } else {
        let null = std::fs::File::open("/dev/null").context("open /dev/null")?;
        let stdin = if args.interactive {
            std::io::stdin().as_fd().try_clone_to_owned()?
        } else {
            null.into()
        };
        let stdout = std::io::stdout().as_fd().try_clone_to_owned()?;
        let stderr = std::io::stderr().as_fd().try_clone_to_owned()?;
        client.exec(&req, [&stdin, &stdout, &stderr])?
    };
    Ok(ExitCode::from(code.clamp(0, 255) as u8))
}

/// Opens a pty the size of this terminal, hands its slave side to the
/// command, and copies between this terminal (raw mode) and the master.
fn with_tty(client: &Client, req: Request, interactive: bool) -> anyhow::Result<i32> {
    use nix::sys::termios;
    let stdin = std::io::stdin();
    // The terminal whose size the pty takes, now and after each resize.
    let sized = [stdin.as_raw_fd(), 1]
        .into_iter()
        .find(|&fd| window_size(fd).is_some());
    let size = sized.and_then(window_size);
    let pty = nix::pty::openpty(size.as_ref(), None).context("open a pty")?;
    let saved = termios::tcgetattr(&stdin).ok();
    if let Some(t) = &saved {
        let mut raw = t.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(&stdin, termios::SetArg::TCSANOW, &raw).context("raw mode")?;
    }
    let restore = RestoreTerminal(saved);
    let master: OwnedFd = pty.master;
    let mut out = std::fs::File::from(master.try_clone()?);
    let output = std::thread::spawn(move || {
        let mut stdout = std::io::stdout();
        let mut buf = [0u8; 8192];
        // EIO once every slave descriptor is closed: the command is gone.
        while let Ok(n @ 1..) = out.read(&mut buf) {
            if stdout
                .write_all(&buf[..n])
                .and_then(|_| stdout.flush())
                .is_err()
            {
                break;
            }
        }
    });
    if interactive {
        let mut input = std::fs::File::from(master.try_clone()?);
        // Not joined: it blocks on this terminal until the process exits.
        std::thread::spawn(move || {
            let mut stdin = std::io::stdin();
            let mut buf = [0u8; 1024];
            while let Ok(n @ 1..) = stdin.read(&mut buf) {
                if input.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        });
    }
    let resize = sized.map(|fd| ForwardResize::install(fd, master.as_raw_fd()));
    let slave = pty.slave;
    let code = client.exec(&req, [&slave, &slave, &slave]);
    drop(slave);
    let _ = output.join();
    drop(resize);
    drop(restore);
    code
}

/// The terminal whose size is forwarded, and the pty master it goes to
/// (-1: none); read by the SIGWINCH handler.
static RESIZE_FROM: AtomicI32 = AtomicI32::new(-1);
static RESIZE_TO: AtomicI32 = AtomicI32::new(-1);

/// While it lives, SIGWINCH (this terminal was resized) copies this
/// terminal's size onto the pty, whose kernel then sends the command its
/// own SIGWINCH.
struct ForwardResize(Option<nix::sys::signal::SigAction>);

impl ForwardResize {
    fn install(terminal: i32, master: i32) -> ForwardResize {
        use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
        RESIZE_FROM.store(terminal, Ordering::SeqCst);
        RESIZE_TO.store(master, Ordering::SeqCst);
        // SA_RESTART: the copying threads' reads and writes go on.
        let action = SigAction::new(
            SigHandler::Handler(on_winch),
            SaFlags::SA_RESTART,
            SigSet::empty(),
        );
        // SAFETY: the handler makes two ioctls on descriptors that stay
        // open while it is installed, and keeps errno.
        ForwardResize(unsafe { sigaction(Signal::SIGWINCH, &action) }.ok())
    }
}

impl Drop for ForwardResize {
    fn drop(&mut self) {
        RESIZE_TO.store(-1, Ordering::SeqCst);
        if let Some(old) = &self.0 {
            // SAFETY: puts back the action that was there before.
            let _ = unsafe { nix::sys::signal::sigaction(nix::sys::signal::Signal::SIGWINCH, old) };
        }
    }
}

/// The SIGWINCH handler: async-signal-safe (ioctl only; errno kept).
extern "C" fn on_winch(_: nix::libc::c_int) {
    let (from, to) = (
        RESIZE_FROM.load(Ordering::SeqCst),
        RESIZE_TO.load(Ordering::SeqCst),
    );
    if from < 0 || to < 0 {
        return;
    }
    // SAFETY: errno is this thread's; TIOCGWINSZ fills one winsize and
    // TIOCSWINSZ reads one.
    unsafe {
        let errno = *nix::libc::__errno_location();
        let mut ws: nix::libc::winsize = std::mem::zeroed();
        if nix::libc::ioctl(from, nix::libc::TIOCGWINSZ, &mut ws) == 0 && ws.ws_row > 0 {
            nix::libc::ioctl(to, nix::libc::TIOCSWINSZ, &ws);
        }
        *nix::libc::__errno_location() = errno;
    }
}

fn window_size(fd: i32) -> Option<nix::pty::Winsize> {
    let mut ws = nix::pty::Winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one winsize into `ws`.
    let r = unsafe { nix::libc::ioctl(fd, nix::libc::TIOCGWINSZ, &mut ws) };
    (r == 0 && ws.ws_row > 0).then_some(ws)
}

/// Puts this terminal back as it was.
struct RestoreTerminal(Option<nix::sys::termios::Termios>);

impl Drop for RestoreTerminal {
    fn drop(&mut self) {
        if let Some(t) = &self.0 {
            let _ = nix::sys::termios::tcsetattr(
                std::io::stdin(),
                nix::sys::termios::SetArg::TCSANOW,
                t,
            );
        }
    }
}
