//! `jarvisctl exec`: a command inside a running unit, its stdio handed to
//! jarvisd over the socket, its exit code passed through.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::harness::*;

/// jarvisctl's exit status and stdout for `exec ARGS...`.
fn exec(j: &Jarvis, args: &[&str]) -> (Option<i32>, String, String) {
    let mut all = vec!["exec"];
    all.extend_from_slice(args);
    let out = j.ctl(&all);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn exec_in_a_native_unit_runs_in_its_cgroup_as_its_user() {
    if !root() {
        return;
    }
    let j = Jarvis::start(&[(
        "svc",
        r#"
[native]
command = ["sleep", "1000"]
user = "nobody"
"#,
    )]);
    j.running("svc");
    let (code, out, err) = exec(&j, &["svc", "--", "id", "-u"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out.trim(), "65534", "{err}");
    // --user instead of the unit's.
    let (code, out, err) = exec(&j, &["svc", "--user", "root", "--", "id", "-u"]);
    assert_eq!((code, out.trim()), (Some(0), "0"), "{err}");
    // In the unit's cgroup.
    let (code, out, err) = exec(&j, &["svc", "--", "cat", "/proc/self/cgroup"]);
    assert_eq!(code, Some(0), "{err}");
    let cgroup = j.unit("svc")["cgroup"].as_str().unwrap().to_string();
    assert!(
        out.lines().any(|l| l.ends_with(&format!(":{cgroup}"))),
        "{out} not in {cgroup}"
    );
    // The exit code comes through.
    let (code, _, err) = exec(&j, &["svc", "--", "sh", "-c", "exit 7"]);
    assert_eq!(code, Some(7), "{err}");
    // A unit that does not run, and one there is not.
    j.ok(&["stop", "svc"]);
    let (code, _, err) = exec(&j, &["svc", "--", "true"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("not running"), "{err}");
    let (code, _, err) = exec(&j, &["nope", "--", "true"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("nope"), "{err}");
}

#[test]
fn exec_in_a_container_and_closing_the_connection_kills_the_command() {
    if !root() {
        return;
    }
    let j = Jarvis::start(&[]);
    j.import_busybox("busybox:exec");
    j.write_unit(
        "box",
        r#"
[container]
image = "busybox:exec"
command = ["sleep", "1000"]
network = "none"
"#,
    );
    j.ok(&["up", "--wait", "--timeout", "30s"]);
    j.running("box");
    let (code, out, err) = exec(&j, &["box", "--", "hostname"]);
    assert_eq!((code, out.trim()), (Some(0), "box"), "{err}");
    let (code, _, err) = exec(&j, &["box", "--", "sh", "-c", "exit 5"]);
    assert_eq!(code, Some(5), "{err}");
    // stdin with -i; stderr apart from stdout.
    let mut child = Command::new(&*JARVISCTL)
        .arg("--socket")
        .arg(&j.socket)
        .args(["exec", "-i", "box", "--", "sh", "-c", "cat; echo oops >&2"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"hello\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "oops\n");

    // -t: the command's stdio is a terminal; `script` gives jarvisctl one.
    if let Ok(script) = which("script") {
        let cmd = format!(
            "{} --socket {} exec -t box -- sh -c 'test -t 0 && test -t 1 && echo is-a-tty; exit 3'",
            &*JARVISCTL,
            j.socket.display()
        );
        let out = Command::new(script)
            .args(["-qec", &cmd, "/dev/null"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(3), "{text}");
        assert!(text.contains("is-a-tty"), "{text}");
    }

    // jarvisctl killed: the command goes with it.
    let mut child = Command::new(&*JARVISCTL)
        .arg("--socket")
        .arg(&j.socket)
        .args(["exec", "box", "--", "sleep", "777"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let sleeping = || procs_with_cmdline("sleep\u{0}777");
    wait_for(Duration::from_secs(10), || sleeping() > 0);
    child.kill().unwrap();
    child.wait().unwrap();
    wait_for(Duration::from_secs(10), || sleeping() == 0);
}

/// jarvisctl on a terminal the test holds: a pty's slave is its stdin,
/// stdout and stderr and its controlling terminal (as in a shell), and the
/// test reads and writes the master.
struct OnPty {
    child: Child,
    master: File,
    output: mpsc::Receiver<Vec<u8>>,
    seen: String,
}

impl OnPty {
    fn spawn(j: &Jarvis, args: &[&str], rows: u16, cols: u16) -> OnPty {
        let size = nix::pty::Winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let pty = nix::pty::openpty(Some(&size), None).unwrap();
        let slave = || Stdio::from(pty.slave.try_clone().unwrap());
        let mut cmd = Command::new(&*JARVISCTL);
        cmd.arg("--socket")
            .arg(&j.socket)
            .args(args)
            .stdin(slave())
            .stdout(slave())
            .stderr(slave());
        // SAFETY: setsid and ioctl only, in the child before exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().unwrap();
        drop(cmd);
        drop(pty.slave);
        let mut reader = File::from(pty.master.try_clone().unwrap());
        let (tx, output) = mpsc::channel();
        // EIO once jarvisctl, the last holder of the slave, is gone.
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = reader.read(&mut buf) {
                if tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        OnPty {
            child,
            master: File::from(pty.master),
            output,
            seen: String::new(),
        }
    }

    /// Waits until the terminal has shown `needle`.
    fn wait_for(&mut self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.seen.contains(needle) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.output.recv_timeout(left) {
                Ok(b) => self.seen.push_str(&String::from_utf8_lossy(&b)),
                Err(_) => panic!("{needle:?} not shown; the terminal shows {:?}", self.seen),
            }
        }
    }

    /// Types `bytes`.
    fn type_in(&mut self, bytes: &[u8]) {
        self.master.write_all(bytes).unwrap();
    }

    /// Resizes the terminal (its kernel sends jarvisctl SIGWINCH).
    fn resize(&self, rows: u16, cols: u16) {
        let size = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads one winsize.
        let r = unsafe { libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ, &size) };
        assert_eq!(r, 0, "{}", std::io::Error::last_os_error());
    }

    /// jarvisctl's exit code and everything the terminal showed, its lines
    /// without their carriage returns.
    fn finish(mut self) -> (Option<i32>, String) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.output.recv_timeout(left) {
                Ok(b) => self.seen.push_str(&String::from_utf8_lossy(&b)),
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let _ = self.child.kill();
                    panic!("jarvisctl did not end; the terminal shows {:?}", self.seen);
                }
            }
        }
        let status = self.child.wait().unwrap();
        (status.code(), self.seen.replace('\r', ""))
    }
}

#[test]
fn exec_in_a_native_unit_with_stdin_and_a_terminal() {
    if !root() {
        return;
    }
    let j = Jarvis::start(&[(
        "svc",
        r#"
[native]
command = ["sleep", "1000"]
user = "nobody"
"#,
    )]);
    j.running("svc");
    // -i: the caller's stdin reaches the command; stderr stays apart.
    let mut child = Command::new(&*JARVISCTL)
        .arg("--socket")
        .arg(&j.socket)
        .args([
            "exec",
            "-i",
            "svc",
            "--",
            "sh",
            "-c",
            "cat; echo oops >&2; exit 6",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"hello\nworld\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(6), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\nworld\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "oops\n");
    // Without -i the command's stdin is /dev/null.
    let (code, out, err) = exec(&j, &["svc", "--", "sh", "-c", "cat; echo eof"]);
    assert_eq!((code, out.as_str()), (Some(0), "eof\n"), "{err}");

    // -t: a terminal, the command's controlling terminal (/dev/tty opens
    // only with one), the size of the caller's; the exit code comes back.
    let script = "tty; test -t 0 && test -t 1 && test -t 2 && echo isatty; \
                  echo ctty >/dev/tty; stty size; id -u; exit 3";
    let pty = OnPty::spawn(&j, &["exec", "-t", "svc", "--", "sh", "-c", script], 30, 90);
    let (code, text) = pty.finish();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(code, Some(3), "{text}");
    assert!(lines[0].starts_with("/dev/pts/"), "{text}");
    assert_eq!(lines[1..], ["isatty", "ctty", "30 90", "65534"], "{text}");

    // -i -t: Ctrl-C typed on the caller's terminal interrupts the command.
    let mut pty = OnPty::spawn(
        &j,
        &[
            "exec",
            "-i",
            "-t",
            "svc",
            "--",
            "sh",
            "-c",
            "echo ready; exec sleep 60",
        ],
        24,
        80,
    );
    pty.wait_for("ready");
    pty.type_in(b"\x03");
    let (code, text) = pty.finish();
    assert_eq!(code, Some(128 + libc::SIGINT), "{text}");

    // The caller's terminal resized: the command's follows.
    let watch = "stty size; echo ready; i=0; \
                 while [ \"$(stty size)\" = '24 80' ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; \
                 stty size";
    let mut pty = OnPty::spawn(&j, &["exec", "-t", "svc", "--", "sh", "-c", watch], 24, 80);
    pty.wait_for("ready");
    pty.resize(50, 132);
    let (code, text) = pty.finish();
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(
        text.lines().collect::<Vec<_>>(),
        ["24 80", "ready", "50 132"]
    );
}

#[test]
fn exec_in_a_container_as_another_user_and_on_a_terminal() {
    if !root() {
        return;
    }
    let j = Jarvis::start(&[]);
    j.import_busybox("busybox:exec-user");
    j.write_unit(
        "box",
        r#"
[container]
image = "busybox:exec-user"
command = ["sleep", "1000"]
network = "none"
"#,
    );
    j.ok(&["up", "--wait", "--timeout", "30s"]);
    j.running("box");
    let ids = "id -u; id -g; id -G; echo $HOME";
    let as_user = |user: &str| {
        let (code, out, err) = exec(&j, &["box", "--user", user, "--", "sh", "-c", ids]);
        assert_eq!(code, Some(0), "--user {user}: {err}");
        out
    };
    // A uid with no entry: its group is root's, as with docker exec.
    assert_eq!(as_user("1000"), "1000\n0\n0\n/\n");
    assert_eq!(as_user("1000:1000"), "1000\n1000\n1000\n/\n");
    // A name from the image's /etc/passwd, and its group by name.
    assert_eq!(as_user("nobody"), "65534\n65534\n65534\n/\n");
    assert_eq!(as_user("nobody:root"), "65534\n0\n0\n/\n");
    // The container's files as they are now, not the host's: a user and a
    // group that only this container has.
    let add = "echo 'imguser:x:4321:4322::/home/imguser:/bin/sh' >>/etc/passwd; \
               echo 'imgextra:x:4323:imguser' >>/etc/group";
    let (code, _, err) = exec(&j, &["box", "--", "sh", "-c", add]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(as_user("imguser"), "4321\n4322\n4322 4323\n/home/imguser\n");
    // Without --user: the container's own user.
    let (code, out, err) = exec(&j, &["box", "--", "id", "-u"]);
    assert_eq!((code, out.as_str()), (Some(0), "0\n"), "{err}");
    // An unknown user or group: nothing runs, and the error says which.
    for (user, missing) in [
        ("ghost", "user \"ghost\""),
        ("nobody:ghosts", "group \"ghosts\""),
    ] {
        let (code, out, err) = exec(&j, &["box", "--user", user, "--", "echo", "ran"]);
        assert_eq!(code, Some(126), "{out}{err}");
        assert!(!out.contains("ran"), "{out}");
        assert!(err.contains(missing) && err.contains("box"), "{err}");
    }

    // -t: the command's stdio is a terminal, and its controlling terminal:
    // /dev/tty opens, and Ctrl-C interrupts it. (`tty` says "not a tty":
    // the pty is the host's /dev/pts/N, which the container's own devpts
    // does not have, so ttyname cannot name it.)
    let script = "test -t 0 && test -t 1 && test -t 2 && echo isatty; \
                  echo ctty >/dev/tty; busybox stty size; id -u; exit 3";
    let pty = OnPty::spawn(
        &j,
        &[
            "exec", "-t", "--user", "nobody", "box", "--", "sh", "-c", script,
        ],
        30,
        90,
    );
    let (code, text) = pty.finish();
    assert_eq!(code, Some(3), "{text}");
    assert_eq!(
        text.lines().collect::<Vec<_>>(),
        ["isatty", "ctty", "30 90", "65534"]
    );
    let mut pty = OnPty::spawn(
        &j,
        &[
            "exec",
            "-i",
            "-t",
            "box",
            "--",
            "sh",
            "-c",
            "echo ready; exec sleep 60",
        ],
        24,
        80,
    );
    pty.wait_for("ready");
    pty.type_in(b"\x03");
    let (code, text) = pty.finish();
    assert_eq!(code, Some(128 + libc::SIGINT), "{text}");
    // -i with the caller's own terminal: it reaches the command as stdin
    // and stays the caller's controlling terminal.
    let mut pty = OnPty::spawn(
        &j,
        &[
            "exec",
            "-i",
            "box",
            "--",
            "sh",
            "-c",
            "test -t 0 && echo isatty; read x; echo got-$x",
        ],
        24,
        80,
    );
    pty.wait_for("isatty");
    pty.type_in(b"abc\n");
    let (code, text) = pty.finish();
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("got-abc"), "{text}");
}

fn procs_with_cmdline(needle: &str) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            std::fs::read(e.path().join("cmdline"))
                .map(|c| String::from_utf8_lossy(&c).starts_with(needle))
                .unwrap_or(false)
        })
        .count()
}

fn wait_for(timeout: Duration, f: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + timeout;
    while !f() {
        assert!(std::time::Instant::now() < deadline, "timed out");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn which(name: &str) -> Result<std::path::PathBuf, ()> {
    std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .map(|d| std::path::Path::new(d).join(name))
        .find(|p| p.is_file())
        .ok_or(())
}
