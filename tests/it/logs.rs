//! `jarvisctl logs`: with several units or none, each line after its
//! unit's name, tails merged by time; with -f, lines of every unit as they
//! arrive; `--timestamps`, `--since`; logs written by an older jarvis; tails
//! larger than a frame.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use jarvis_shim::logfile;

use crate::harness::*;

#[test]
fn logs_of_several_units_are_prefixed_and_followed_together() {
    if !root() {
        return;
    }
    let unit = |word: &str| {
        format!(
            "[native]\ncommand = [\"sh\", \"-c\", \"echo first-{word}; sleep 2; echo later-{word}; exec sleep 1000\"]\n"
        )
    };
    let j = Jarvis::start(&[("a", &unit("a")), ("bb", &unit("bb"))]);
    j.running("a");
    j.running("bb");
    let deadline = Instant::now() + Duration::from_secs(10);
    let all = loop {
        let all = j.ok(&["logs"]);
        if all.contains("first-a") && all.contains("first-bb") || Instant::now() > deadline {
            break all;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(all.lines().any(|l| l == "a  | first-a"), "{all}");
    assert!(all.lines().any(|l| l == "bb | first-bb"), "{all}");
    assert!(
        all.lines()
            .all(|l| l.starts_with("a  | ") || l.starts_with("bb | ")),
        "{all}"
    );
    // One unit: as it was, no prefix.
    assert!(j.ok(&["logs", "a"]).lines().any(|l| l == "first-a"));

    let mut child = Command::new(&*JARVISCTL)
        .arg("--socket")
        .arg(&j.socket)
        .args(["logs", "-f", "a", "bb"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let out = BufReader::new(child.stdout.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in out.lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let want = ["a  | later-a", "bb | later-bb"];
    while !want.iter().all(|w| seen.iter().any(|l: &String| l == w)) {
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(l) => seen.push(l),
            Err(_) => panic!("logs -f gave {seen:?}\n{}", j.daemon_log()),
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A native unit running `script`, then sleeping.
fn sh(script: &str) -> String {
    format!("[native]\ncommand = [\"sh\", \"-c\", \"{script}; exec sleep 1000\"]\n")
}

/// Waits until `jarvisctl logs ARGS` shows a line equal to `want`.
fn until_logged(j: &Jarvis, args: &[&str], want: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let out = j.ok(args);
        if out.lines().any(|l| l == want) {
            return out;
        }
        assert!(
            Instant::now() < deadline,
            "no {want:?} in logs {args:?}:\n{out}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A line's time as `--timestamps` shows it, and the rest of the line.
fn stamped(line: &str) -> (SystemTime, &str) {
    let (stamp, text) = line
        .split_once(' ')
        .unwrap_or_else(|| panic!("no time in {line:?}"));
    // RFC 3339, UTC, nine fractional digits: 30 bytes.
    let time =
        logfile::parse_stamp(stamp.as_bytes()).unwrap_or_else(|| panic!("no time in {line:?}"));
    (time, text)
}

#[test]
fn timestamps_are_shown_only_when_asked_and_never_go_back() {
    if !root() {
        return;
    }
    let j = Jarvis::start(&[(
        "ticker",
        &sh("for i in 1 2 3 4 5; do echo tick-$i; sleep 0.1; done; printf 'no newline'"),
    )]);
    let before = SystemTime::now();
    j.running("ticker");
    until_logged(&j, &["logs", "ticker"], "no newline");
    let plain = j.ok(&["logs", "ticker"]);
    let lines: Vec<&str> = plain.lines().collect();
    assert!(lines[0].starts_with("[jarvis] started pid "), "{plain}");
    assert_eq!(
        &lines[1..],
        [
            "tick-1",
            "tick-2",
            "tick-3",
            "tick-4",
            "tick-5",
            "no newline"
        ],
        "{plain}"
    );

    let with = j.ok(&["logs", "--timestamps", "ticker"]);
    let times: Vec<(SystemTime, &str)> = with.lines().map(stamped).collect();
    let texts: Vec<&str> = times.iter().map(|(_, t)| *t).collect();
    assert_eq!(texts, lines, "{with}");
    let after = SystemTime::now();
    for pair in times.windows(2) {
        assert!(pair[0].0 <= pair[1].0, "{with}");
    }
    assert!(times[0].0 >= before - Duration::from_secs(1), "{with}");
    assert!(times.last().unwrap().0 <= after, "{with}");
    // The ticks were 0.1 s apart, and each has the time it was written.
    let gap = times[5].0.duration_since(times[1].0).unwrap();
    assert!(gap >= Duration::from_millis(350), "{gap:?}\n{with}");
    assert_eq!(
        j.ok(&["logs", "-t", "-n", "1", "ticker"]),
        with.lines().last().unwrap().to_string() + "\n"
    );
}

#[test]
fn since_a_duration_leaves_out_older_lines() {
    if !root() {
        return;
    }
    let j = Jarvis::start(&[("slow", &sh("echo early; sleep 3; echo late"))]);
    j.running("slow");
    until_logged(&j, &["logs", "slow"], "late");
    // "late" is at most a moment old; "early" and jarvis's start note are
    // three seconds older than it.
    assert_eq!(j.ok(&["logs", "--since", "2s", "slow"]), "late\n");
    let all = j.ok(&["logs", "--since", "1h", "slow"]);
    assert!(all.lines().any(|l| l == "early"), "{all}");
    assert!(j.ok(&["logs", "--since", "1h", "-n", "1", "slow"]) == "late\n");

    // An RFC 3339 time: the line's own time keeps it, a nanosecond later
    // does not.
    let with = j.ok(&["logs", "-t", "slow"]);
    let late = with.lines().find(|l| l.ends_with(" late")).unwrap();
    let (time, _) = stamped(late);
    let stamp = logfile::stamp(time);
    assert_eq!(j.ok(&["logs", "--since", &stamp, "slow"]), "late\n");
    let next = logfile::stamp(time + Duration::from_nanos(1));
    assert_eq!(j.ok(&["logs", "--since", &next, "slow"]), "");
    let out = j.ctl(&["logs", "--since", "yesterday", "slow"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--since"));
}

#[test]
fn tails_of_two_units_are_merged_in_time_order() {
    if !root() {
        return;
    }
    let ticks = |w: &str| {
        sh(&format!(
            "for i in 1 2 3 4 5 6; do echo {w}-$i; sleep 0.15; done; echo {w}-done"
        ))
    };
    let j = Jarvis::start(&[("a", &ticks("a")), ("bb", &ticks("bb"))]);
    until_logged(&j, &["logs", "a"], "a-done");
    until_logged(&j, &["logs", "bb"], "bb-done");
    let merged = j.ok(&["logs", "-t", "a", "bb"]);
    let lines: Vec<(&str, SystemTime, &str)> = merged
        .lines()
        .map(|l| {
            let (unit, rest) = l.split_once(" | ").unwrap_or_else(|| panic!("{l:?}"));
            let (time, text) = stamped(rest);
            (unit.trim_end(), time, text)
        })
        .collect();
    for pair in lines.windows(2) {
        assert!(pair[0].1 <= pair[1].1, "not in time order:\n{merged}");
    }
    // Every line of each unit, in its own order.
    for unit in ["a", "bb"] {
        let own: Vec<String> = j
            .ok(&["logs", "-t", unit])
            .lines()
            .map(str::to_string)
            .collect();
        let in_merged: Vec<String> = lines
            .iter()
            .filter(|(u, _, _)| *u == unit)
            .map(|(_, t, text)| format!("{} {text}", logfile::stamp(*t)))
            .collect();
        assert_eq!(in_merged, own, "{merged}");
    }
    // The two ran side by side: their lines alternate somewhere.
    let switches = lines.windows(2).filter(|p| p[0].0 != p[1].0).count();
    assert!(switches >= 3, "{merged}");
    // Without -t: the same order, no times.
    let plain = j.ok(&["logs", "a", "bb"]);
    let want: Vec<String> = lines
        .iter()
        .map(|(u, _, text)| format!("{u:<2} | {text}"))
        .collect();
    assert_eq!(plain.lines().collect::<Vec<_>>(), want);
}

#[test]
fn a_log_written_by_an_older_jarvis_still_prints() {
    if !root() {
        return;
    }
    let mut j = Jarvis::start(&[]);
    let logs = j.state.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    // As an older jarvis wrote it: output as it came, its notes timed
    // within the marker.
    std::fs::write(
        logs.join("old.log"),
        "[jarvis 2026-01-02T03:04:05Z] started pid 12: sh\nold output\n\
         2026-01-02T03:04:06.000000000Z looks like a time\n",
    )
    .unwrap();
    j.write_unit("old", &sh("echo new output"));
    j.ok(&["up"]);
    j.running("old");
    let all = until_logged(&j, &["logs", "old"], "new output");
    let lines: Vec<&str> = all.lines().collect();
    assert_eq!(
        &lines[..3],
        [
            "[jarvis 2026-01-02T03:04:05Z] started pid 12: sh",
            "old output",
            "2026-01-02T03:04:06.000000000Z looks like a time"
        ],
        "{all}"
    );
    assert!(lines[3].starts_with("[jarvis] started pid "), "{all}");
    // With -t: old lines as they are, new ones after their time.
    let with = j.ok(&["logs", "-t", "old"]);
    let with: Vec<&str> = with.lines().collect();
    assert_eq!(&with[..2], &lines[..2]);
    assert!(with.last().unwrap().ends_with(" new output"));
    stamped(with.last().unwrap());
    // Their time is not known: --since leaves them out.
    assert_eq!(
        j.ok(&["logs", "--since", "1h", "old"]).lines().last(),
        Some("new output")
    );
    assert!(!j
        .ok(&["logs", "--since", "1h", "old"])
        .contains("old output"));
    // Merged with another unit, they come first.
    j.write_unit("other", &sh("echo other output"));
    j.ok(&["up"]);
    until_logged(&j, &["logs", "other"], "other output");
    let merged = j.ok(&["logs", "old", "other"]);
    assert!(
        merged.starts_with("old   | [jarvis 2026-01-02T03:04:05Z]"),
        "{merged}"
    );
    let at = |w: &str| merged.find(w).unwrap_or_else(|| panic!("{w} in {merged}"));
    assert!(at("old output") < at("new output") && at("new output") < at("other output"));
    j.stop_daemon();
}

#[test]
fn a_tail_larger_than_a_frame_comes_whole() {
    if !root() {
        return;
    }
    // 300,000 numbered lines: 12 MB on disk; with their times, 250,000 of
    // them are 9.5 MB, more than one frame (8 MiB) can hold.
    let j = Jarvis::start(&[("counter", &sh("seq 1 300000"))]);
    j.running("counter");
    until_logged(&j, &["logs", "-n", "1", "counter"], "300000");
    let out = j.ok(&["logs", "-t", "-n", "250000", "counter"]);
    assert!(out.len() > 8 << 20, "{}", out.len());
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 250_000);
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(stamped(line).1, (50_001 + i).to_string());
    }
    let all = j.ok(&["logs", "counter"]);
    assert_eq!(
        all.lines().filter(|l| !l.starts_with("[jarvis]")).count(),
        300_000
    );
}

#[test]
fn a_line_without_a_newline_is_followed_as_it_comes_and_kept_whole() {
    if !root() {
        return;
    }
    let j = Jarvis::start(&[("prompt", &sh("printf 'Pass''word: '; sleep 2; echo o''k"))]);
    j.running("prompt");
    let mut child = Command::new(&*JARVISCTL)
        .arg("--socket")
        .arg(&j.socket)
        .args(["logs", "-f", "-t", "prompt"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = std::io::Read::read(&mut out, &mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    // (The words are split in the command, so jarvis's start note does
    // not hold them.)
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut prompt_at = None;
    while !String::from_utf8_lossy(&seen).contains("ok\n") {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(chunk) => seen.extend(chunk),
            Err(_) => panic!("logs -f gave {:?}", String::from_utf8_lossy(&seen)),
        }
        if prompt_at.is_none() && String::from_utf8_lossy(&seen).contains("Password: ") {
            prompt_at = Some(String::from_utf8_lossy(&seen).contains("ok"));
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    // The prompt came before the rest of its line was written.
    assert_eq!(prompt_at, Some(false));
    let seen = String::from_utf8(seen).unwrap();
    let line = seen.lines().last().unwrap();
    assert_eq!(stamped(line).1, "Password: ok", "{seen}");
    // The tail has it whole, with the time of its first part.
    let tail = j.ok(&["logs", "-t", "-n", "1", "prompt"]);
    assert_eq!(tail, format!("{line}\n"));
    assert_eq!(j.ok(&["logs", "-n", "1", "prompt"]), "Password: ok\n");
}
