//! `jarvisctl exec`: runs a command inside a running unit. The command's
//! stdio are this process's own descriptors (or, with `--tty`, the slave
//! side of a pty opened here), handed to jarvisd over the socket.

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::process::ExitCode;

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
    /// Give the command a terminal (a pty; this terminal is put in raw
    /// mode until it ends). Use with -i for a shell.
    #[arg(short, long)]
    pub tty: bool,
    /// Run as this user (name or uid) instead of the unit's (native units).
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
    let size = window_size(stdin.as_raw_fd()).or_else(|| window_size(1));
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
    let slave = pty.slave;
    let code = client.exec(&req, [&slave, &slave, &slave]);
    drop(slave);
    let _ = output.join();
    drop(restore);
    code
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
