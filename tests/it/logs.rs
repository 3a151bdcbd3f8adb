//! `jarvisctl logs` with several units or none: each line after its unit's
//! name; with -f, lines of every unit as they arrive.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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
