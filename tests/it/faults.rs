//! Faults injected from outside: a state disk that fills up. Whatever
//! fails, nothing of a unit may run unsupervised, and jarvisd must say so
//! once rather than at every write.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::harness::*;

/// A small tmpfs mounted over a directory of the test's state, unmounted
/// when dropped (a failed test included), so the temporary directory can
/// go.
struct SmallDisk {
    at: PathBuf,
}

impl SmallDisk {
    fn mount(at: &Path, size: &str) -> SmallDisk {
        fs::create_dir_all(at).unwrap();
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(at)
            .output()
            .expect("mount");
        assert!(
            out.status.success(),
            "mount a tmpfs on {}: {out:?}",
            at.display()
        );
        SmallDisk {
            at: at.to_path_buf(),
        }
    }

    fn filler(&self) -> PathBuf {
        self.at.join("filler")
    }

    /// Fills the file system to the last byte.
    fn fill(&self) {
        let mut f = fs::File::create(self.filler()).unwrap();
        let chunk = vec![0u8; 64 * 1024];
        loop {
            match f.write(&chunk) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "fill: {e}");
                    break;
                }
            }
        }
        // The last partial block too.
        while f.write(&[0u8]).is_ok_and(|n| n == 1) {}
    }

    fn free(&self) {
        fs::remove_file(self.filler()).unwrap();
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.at, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// The pids of processes whose command line is exactly `argv`.
fn pids_of(argv: &[&str]) -> Vec<i32> {
    let want: Vec<u8> = argv
        .iter()
        .flat_map(|a| [a.as_bytes(), b"\0"].concat())
        .collect();
    fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == want))
        .filter(|pid| alive(*pid))
        .collect()
}

/// `pgrep -f PATTERN`'s pids.
fn pgrep(pattern: &str) -> Vec<i32> {
    let out = Command::new("pgrep")
        .args(["-f", pattern])
        .output()
        .expect("pgrep");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .filter(|pid| alive(*pid))
        .collect()
}

/// Asserts that nothing of `unit` (whose process runs `argv`) runs.
fn nothing_runs(j: &Jarvis, unit: &str, argv: &[&str], when: &str) {
    // The kill is under way when the failure is reported; give it a moment.
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    loop {
        let (procs, found, grepped) = (
            cgroup_procs(&j.cgroup_parent, unit),
            pids_of(argv),
            pgrep(&argv.join(" ")),
        );
        if procs.is_empty() && found.is_empty() && grepped.is_empty() {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{when}: the unit's cgroup holds {procs:?}, {argv:?} runs as {found:?} \
             (pgrep: {grepped:?}); status: {:#}\njarvisd:\n{}",
            j.unit(unit),
            j.daemon_log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_start_on_a_full_state_disk_leaves_nothing_running_and_works_once_there_is_room() {
    if !root() {
        return;
    }
    let j = Jarvis::start(&[]);
    let disk = SmallDisk::mount(&j.state.join("run"), "1m");
    // A command line no other test runs.
    let secs = format!("{}", 500_000 + std::process::id() % 100_000);
    let argv = ["sleep", secs.as_str()];
    j.write_unit(
        "orphan",
        &format!(
            r#"
[native]
command = ["sleep", "{secs}"]
[restart]
policy = "on-failure"
delay = "50ms"
burst = 3
interval = "1m"
"#
        ),
    );
    disk.fill();
    let _ = j.ctl(&["up"]);
    // Each start fails (its run record cannot be written), is retried as a
    // transient failure would be, and ends failed at the burst limit.
    let u = j.wait_unit("orphan", Duration::from_secs(20), |u| {
        u["state"] == "failed"
    });
    let reason = u["reason"].as_str().unwrap_or_default().to_string();
    assert!(
        reason.contains("No space left on device"),
        "the reason names the full disk: {u:#}"
    );
    assert!(
        reason.contains("restart.burst = 3"),
        "retried up to the burst limit: {u:#}"
    );
    nothing_runs(&j, "orphan", &argv, "after the failed start");

    // More starts add nothing.
    for round in 0..3 {
        j.ok(&["start", "orphan"]);
        j.wait_unit("orphan", Duration::from_secs(20), |u| {
            u["state"] == "failed" && u["reason"].as_str().is_some_and(|r| r.contains("burst"))
        });
        nothing_runs(&j, "orphan", &argv, &format!("after start {round}"));
    }
    j.ok(&["stop", "orphan"]);
    nothing_runs(&j, "orphan", &argv, "after stop");

    // Room again: a start works, once.
    disk.free();
    j.ok(&["start", "orphan"]);
    let u = j.running("orphan");
    let pid = u["pid"].as_i64().unwrap() as i32;
    assert_eq!(pids_of(&argv), [pid], "one copy runs: {u:#}");
    assert_eq!(cgroup_procs(&j.cgroup_parent, "orphan"), [pid]);
    j.ok(&["stop", "orphan"]);
    j.wait_unit("orphan", Duration::from_secs(10), |u| {
        u["state"] == "stopped"
    });
    nothing_runs(&j, "orphan", &argv, "after the last stop");
    drop(disk);
}

#[test]
fn a_unit_whose_start_failed_for_want_of_room_comes_back_when_there_is_room() {
    if !root() {
        return;
    }
    let j = Jarvis::start(&[]);
    let disk = SmallDisk::mount(&j.state.join("run"), "1m");
    let secs = format!("{}", 600_000 + std::process::id() % 100_000);
    let argv = ["sleep", secs.as_str()];
    j.write_unit(
        "patient",
        &format!(
            r#"
[native]
command = ["sleep", "{secs}"]
[restart]
delay = "500ms"
max_delay = "1s"
burst = 100
"#
        ),
    );
    disk.fill();
    let _ = j.ctl(&["up"]);
    // Failed once, and waiting to try again: not failed for good.
    let u = j.wait_unit("patient", Duration::from_secs(10), |u| {
        u["reason"]
            .as_str()
            .is_some_and(|r| r.contains("No space left on device") && r.contains("restarting"))
    });
    assert_ne!(u["state"], "failed", "{u:#}");
    nothing_runs(&j, "patient", &argv, "while the disk is full");
    disk.free();
    // No request: the restart policy brings it back.
    let u = j.wait_unit("patient", Duration::from_secs(10), |u| {
        u["state"] == "running"
    });
    let pid = u["pid"].as_i64().unwrap() as i32;
    assert_eq!(pids_of(&argv), [pid], "one copy runs: {u:#}");
    assert!(
        u["reason"]
            .as_str()
            .is_some_and(|r| r.contains("No space left on device")),
        "it says what it came back from: {u:#}"
    );
    j.ok(&["stop", "patient"]);
    nothing_runs(&j, "patient", &argv, "after stop");
    drop(disk);
}

#[test]
fn a_full_log_disk_is_said_once_and_the_gap_is_marked_in_the_log() {
    if !root() {
        return;
    }
    let j = Jarvis::start(&[]);
    let disk = SmallDisk::mount(&j.state.join("logs"), "4m");
    // Lines of 100 bytes, about a hundred a second: each a write that
    // fails while the disk is full, but far from filling it themselves.
    j.write_unit(
        "chatty",
        r#"
[native]
command = ["sh", "-c", "while :; do echo 0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456; sleep 0.01; done"]
[logs]
max_size = "1M"
max_files = 1
"#,
    );
    j.ok(&["up"]);
    j.running("chatty");
    disk.fill();
    std::thread::sleep(Duration::from_secs(3));
    let full = |log: &str| {
        log.lines()
            .filter(|l| l.contains("No space left on device"))
            .count()
    };
    let during = full(&j.daemon_log());
    assert!(
        (1..=2).contains(&during),
        "the full disk is said once, not at every write ({during} lines):\n{}",
        j.daemon_log()
            .lines()
            .rev()
            .take(20)
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        j.daemon_log()
            .contains("logs of chatty: disk full (No space left on device); dropping output until there is room"),
        "{}",
        j.daemon_log()
    );
    disk.free();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !j.daemon_log().contains("logs of chatty: writing again;") {
        assert!(
            std::time::Instant::now() < deadline,
            "no word of the log taking output again:\n{}",
            j.daemon_log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = j.daemon_log();
    assert_eq!(
        full(&log),
        during,
        "nothing more said of it:\n{}",
        log.lines()
            .filter(|l| l.contains("No space left on device") || l.contains("logs of"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    j.ok(&["stop", "chatty"]);
    // The gap shows where it is in the unit's log.
    let logs = j.logs("chatty");
    assert!(
        logs.lines()
            .any(|l| l.contains("bytes of output were dropped: the disk was full")),
        "{}",
        logs.lines().rev().take(5).collect::<Vec<_>>().join("\n")
    );
    drop(disk);
}
