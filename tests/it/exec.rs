//! `jarvisctl exec`: a command inside a running unit, its stdio handed to
//! jarvisd over the socket, its exit code passed through.

use std::process::{Command, Stdio};
use std::time::Duration;

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
    use std::io::Write;
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
