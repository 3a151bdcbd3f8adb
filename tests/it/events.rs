//! Events: `jarvisctl events` and `GET /api/v1/events` tell what happens
//! to units as it happens (started, restarted and why, failed, ...), from a
//! real jarvisd running real processes.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::harness::*;

/// A unit that exits with code 3 at once and is restarted at most twice.
const CRASH: &str = "[native]\ncommand = [\"sh\", \"-c\", \"exit 3\"]\n[restart]\npolicy = \"on-failure\"\ndelay = \"100ms\"\nburst = 3\ninterval = \"1m\"\n";
const SLEEP: &str = "[native]\ncommand = [\"sleep\", \"100000\"]\n";

fn kinds(lines: &[serde_json::Value], unit: &str) -> Vec<String> {
    lines
        .iter()
        .filter(|e| e["unit"] == unit)
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn events_tell_starts_restarts_with_their_cause_and_failures() {
    if !root() {
        return skip(true, "needs root (cgroups)");
    }
    let j = Jarvis::start(&[("crash", CRASH), ("web", SLEEP)]);
    // A follower sees it all as it happens; with --since, also what happened
    // before it subscribed (the backlog and the live stream meet without a
    // gap), however late it starts.
    let mut follower = Command::new(&*JARVISCTL)
        .arg("--socket")
        .arg(&j.socket)
        .args(["events", "--json", "--since", "1h"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let out = follower.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    j.ok(&["up", "--timeout", "30s"]);
    j.wait_unit("crash", Duration::from_secs(30), |u| u["state"] == "failed");
    let mut seen = Vec::new();
    let until = Instant::now() + Duration::from_secs(20);
    while !kinds(&seen, "crash").contains(&"failed".to_string()) {
        let left = until.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no failed event; saw {seen:?}"));
        seen.push(serde_json::from_str::<serde_json::Value>(&line).unwrap());
    }
    stop_child(follower);
    let crash = kinds(&seen, "crash");
    assert_eq!(
        crash.first().map(String::as_str),
        Some("started"),
        "{seen:?}"
    );
    assert!(crash.contains(&"restarted".to_string()), "{seen:?}");
    let restarted = seen
        .iter()
        .find(|e| e["unit"] == "crash" && e["kind"] == "restarted")
        .unwrap();
    assert!(
        restarted["message"]
            .as_str()
            .unwrap()
            .contains("exited with code 3"),
        "the cause is told: {restarted}"
    );
    assert!(
        kinds(&seen, "web").contains(&"started".to_string()),
        "{seen:?}"
    );
    // seq counts up without a gap for one reader that keeps up.
    let seqs: Vec<u64> = seen.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[1] > w[0]), "{seqs:?}");

    // --since replays what was kept, for the units named, then ends with
    // --no-follow.
    let kept = j.ok(&["events", "--since", "10m", "--no-follow", "--json", "crash"]);
    let kept: Vec<serde_json::Value> = kept
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(kept.iter().all(|e| e["unit"] == "crash"), "{kept:?}");
    assert_eq!(kinds(&kept, "crash"), crash, "the same story, replayed");
    // The table form: one line per event, with the unit and the kind.
    let table = j.ok(&["events", "--since", "10m", "--no-follow"]);
    assert!(
        table
            .lines()
            .any(|l| l.contains(" crash ") && l.contains(" failed ")),
        "{table}"
    );
    // An unknown unit is an error, not a stream that stays quiet.
    let bad = j.ctl(&["events", "--no-follow", "nosuch"]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("nosuch"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}

/// Reads server-sent events from `stream` until `done` says so (or 20 s
/// pass): each event's `id`, `event` and `data` lines.
fn read_sse(
    stream: &mut std::net::TcpStream,
    done: impl Fn(&[(u64, String, serde_json::Value)]) -> bool,
) -> (String, Vec<(u64, String, serde_json::Value)>) {
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let until = Instant::now() + Duration::from_secs(20);
    let mut text = String::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => text.push_str(&String::from_utf8_lossy(&buf[..n])),
            Err(_) if Instant::now() < until => {}
            Err(_) => break,
        }
        let events = parse_sse(&text);
        if done(&events) {
            return (text, events);
        }
        if Instant::now() > until {
            break;
        }
    }
    let events = parse_sse(&text);
    (text, events)
}

fn parse_sse(text: &str) -> Vec<(u64, String, serde_json::Value)> {
    let body = match text.starts_with("HTTP/") {
        true => text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or(""),
        false => text,
    };
    let mut out = Vec::new();
    // Chunked transfer: event blocks are separated by blank lines inside
    // chunks; pick out the id/event/data lines in order.
    let (mut id, mut kind) = (None, None);
    for line in body.lines() {
        if let Some(v) = line.strip_prefix("id: ").or(line.strip_prefix("id:")) {
            id = v.trim().parse().ok();
        } else if let Some(v) = line.strip_prefix("event: ").or(line.strip_prefix("event:")) {
            kind = Some(v.trim().to_string());
        } else if let Some(v) = line.strip_prefix("data: ").or(line.strip_prefix("data:")) {
            if let (Some(i), Some(k), Ok(d)) = (id, kind.clone(), serde_json::from_str(v.trim())) {
                out.push((i, k, d));
            }
        }
    }
    out
}

fn sse_get(port: u16, path: &str, extra: &str) -> std::net::TcpStream {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n{extra}\r\n"
    )
    .unwrap();
    s
}

#[test]
fn api_events_stream_state_changes_and_resume_after_the_last_id() {
    if !root() {
        return skip(true, "needs root (cgroups)");
    }
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let j = Jarvis::start_with(&[("web", SLEEP)], &["--http", &addr]);
    let mut live = sse_get(port, "/api/v1/events?unit=web", "");
    std::thread::sleep(Duration::from_millis(300));
    j.ok(&["up", "--wait", "--timeout", "30s"]);
    let (text, got) = read_sse(&mut live, |e| e.iter().any(|(_, k, _)| k == "started"));
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("text/event-stream"), "{text}");
    let (id, _, data) = got
        .iter()
        .find(|(_, k, _)| k == "started")
        .unwrap_or_else(|| panic!("no started event: {text}"));
    assert_eq!(data["unit"], "web");
    assert_eq!(data["seq"].as_u64(), Some(*id));
    // Stop it: the open stream gets that too.
    j.ok(&["stop", "web"]);
    let (text, got) = read_sse(&mut live, |e| e.iter().any(|(_, k, _)| k == "stopped"));
    assert!(got.iter().any(|(_, k, _)| k == "stopped"), "{text}");
    drop(live);
    // A reconnect with Last-Event-ID first gets what came after it.
    let mut again = sse_get(port, "/api/v1/events", &format!("Last-Event-ID: {id}\r\n"));
    let (text, got) = read_sse(&mut again, |e| e.iter().any(|(_, k, _)| k == "stopped"));
    assert!(got.iter().all(|(i, _, _)| i > id), "{text}");
    assert!(got.iter().any(|(_, k, _)| k == "stopped"), "{text}");
    // Bad parameters say what is expected.
    let (code, body) = http(port, "GET", "/api/v1/events?since=soon", &[], None, 0);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("since"), "{body}");
}
