//! The uevent listener receives a real kernel event: writing `change` to a
//! tty's `uevent` file makes the kernel send one (root only).

use std::time::Duration;

use jarvis_hardware::UeventListener;

/// A tty this machine has whose `uevent` file we may poke.
fn some_tty() -> Option<&'static str> {
    ["tty1", "tty2", "ttyS0", "tty0", "console"]
        .into_iter()
        .find(|t| std::path::Path::new(&format!("/sys/class/tty/{t}/uevent")).exists())
}

#[tokio::test]
async fn listener_receives_a_real_change_event() {
    if !nix::unistd::geteuid().is_root() {
        skip(true, "not root (writing a uevent file needs root)");
        return;
    }
    let tty = some_tty().expect("no tty in /sys/class/tty");
    let mut l = UeventListener::bind().unwrap();
    std::fs::write(format!("/sys/class/tty/{tty}/uevent"), "change").unwrap();
    let suffix = format!("/tty/{tty}");
    let ev = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let ev = l.recv().await.unwrap();
            if ev.action == "change" && ev.devpath.ends_with(&suffix) {
                return ev;
            }
        }
    })
    .await
    .expect("no uevent within 10 s");
    assert_eq!(ev.subsystem.as_deref(), Some("tty"));
    assert_eq!(ev.devname.as_deref(), Some(tty));
    assert!(ev.major.is_some() && ev.minor.is_some());
    assert!(ev.seqnum.is_some());
    assert!(ev.wants_rescan());
}

/// Says that the calling test cannot run, and why: `SKIPPED: <test>:
/// <reason>` written straight to stderr, which the test runner does not
/// capture, so it shows in its output. A prerequisite CI provides
/// (`ci_provides`) panics instead under `CI=true`, where a skip would hide a
/// broken setup. The caller then returns.
fn skip(ci_provides: bool, reason: &str) {
    use std::io::Write as _;
    let test = std::thread::current()
        .name()
        .unwrap_or("a test")
        .to_string();
    let ci = std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1");
    assert!(
        !(ci_provides && ci),
        "{test}: {reason}; CI provides this, so it must not be skipped there"
    );
    let _ = writeln!(std::io::stderr().lock(), "SKIPPED: {test}: {reason}");
}
