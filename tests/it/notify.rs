//! Notifications (`--notify-url`, `--notify-format`): a real jarvisd POSTs
//! a unit's failure to a receiver on loopback, in the format asked for,
//! once per unit and kind however often it fails, and never logs the URL's
//! token.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::harness::*;

/// A unit that fails at once and is not restarted.
const FAILS: &str = "[native]\ncommand = [\"false\"]\n[restart]\npolicy = \"never\"\n";

/// One request the receiver got.
#[derive(Debug)]
struct Received {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A receiver on 127.0.0.1: its port and the requests it gets, answered 200.
fn receiver() -> (u16, mpsc::Receiver<Received>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
            let mut r = BufReader::new(conn.try_clone().unwrap());
            let mut line = String::new();
            if r.read_line(&mut line).is_err() || line.is_empty() {
                continue;
            }
            let mut parts = line.split_whitespace();
            let method = parts.next().unwrap_or("").to_string();
            let target = parts.next().unwrap_or("").to_string();
            let mut headers = Vec::new();
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).is_err() || h.trim_end().is_empty() {
                    break;
                }
                if let Some((k, v)) = h.trim_end().split_once(':') {
                    headers.push((k.trim().to_string(), v.trim().to_string()));
                }
            }
            let length: usize = headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0; length];
            let _ = r.read_exact(&mut body);
            let _ = conn
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            let got = Received {
                method,
                target,
                headers,
                body: String::from_utf8_lossy(&body).into_owned(),
            };
            if tx.send(got).is_err() {
                return;
            }
        }
    });
    (port, rx)
}

/// The events of `unit` and `kind` jarvisd kept (`jarvisctl events --json`).
fn events_of(j: &Jarvis, unit: &str, kind: &str) -> Vec<serde_json::Value> {
    j.ok(&["events", "--json", "--no-follow", "--since", "10m", unit])
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["kind"] == kind)
        .collect()
}

/// Starts `job` (which fails) `times` more times, and waits until jarvisd
/// has told each failure.
fn fail_again(j: &Jarvis, times: usize) {
    let before = events_of(j, "job", "failed").len();
    for _ in 0..times {
        let n = events_of(j, "job", "failed").len();
        j.ok(&["start", "job"]);
        let until = Instant::now() + Duration::from_secs(20);
        while events_of(j, "job", "failed").len() == n {
            assert!(Instant::now() < until, "job did not fail again");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    assert_eq!(events_of(j, "job", "failed").len(), before + times);
}

/// Starts jarvisd with `job` and a notification URL holding a token in
/// `format`; waits for job's first failure and the notification of it.
fn first_failure(
    format: &str,
) -> (
    Jarvis,
    mpsc::Receiver<Received>,
    Received,
    serde_json::Value,
    u16,
) {
    let (port, rx) = receiver();
    let url = format!("http://127.0.0.1:{port}/jarvis-alerts?token=SECRET-TOKEN");
    let http_port = free_port();
    let http = format!("127.0.0.1:{http_port}");
    let j = Jarvis::start_with(
        &[("job", FAILS)],
        &[
            "--notify-url",
            &url,
            "--notify-format",
            format,
            "--http",
            &http,
        ],
    );
    // jarvisd starts it at boot.
    j.wait_unit("job", Duration::from_secs(20), |u| u["state"] == "failed");
    let got = rx
        .recv_timeout(Duration::from_secs(15))
        .unwrap_or_else(|_| panic!("no notification came:\n{}", j.daemon_log()));
    assert_eq!(got.method, "POST");
    assert_eq!(got.target, "/jarvis-alerts?token=SECRET-TOKEN");
    let failed = events_of(&j, "job", "failed");
    assert!(!failed.is_empty(), "{failed:?}");
    let event = failed[0].clone();
    assert!(!event["message"].as_str().unwrap().is_empty());
    (j, rx, got, event, http_port)
}

/// Fails `job` 4 more times: none of them is sent (the same unit and kind
/// within a minute), the token never shows in jarvisd's log, and /metrics
/// counts one sent and four held back.
fn repeats_are_held_back(j: &Jarvis, rx: &mpsc::Receiver<Received>, port: u16) {
    fail_again(j, 4);
    std::thread::sleep(Duration::from_millis(1500));
    let more: Vec<Received> = rx.try_iter().collect();
    assert!(
        more.is_empty(),
        "a unit failing again within a minute is not sent again: {more:?}"
    );
    let log = j.daemon_log();
    assert!(log.contains("notify: held back"), "{log}");
    assert!(
        !log.contains("SECRET-TOKEN"),
        "the token was logged:\n{log}"
    );
    assert!(
        log.contains("http://127.0.0.1:") && log.contains("/jarvis-alerts"),
        "the URL is named without its query:\n{log}"
    );
    let (code, text) = http(port, "GET", "/metrics", &[], None, 0);
    assert_eq!(code, 200, "{text}");
    for want in [
        "jarvisd_notifications{result=\"sent\"} 1",
        "jarvisd_notifications{result=\"held_back\"} 4",
        "jarvisd_notifications{result=\"failed\"} 0",
    ] {
        assert!(text.contains(want), "{want} missing from:\n{text}");
    }
}

#[test]
fn a_failure_is_posted_to_ntfy_once_however_often_it_repeats() {
    if !root() {
        return skip(true, "needs root (cgroups)");
    }
    let (j, rx, got, event, port) = first_failure("ntfy");
    assert_eq!(got.header("Title"), Some("jarvis: job failed"), "{got:?}");
    assert_eq!(got.header("Priority"), Some("high"), "{got:?}");
    assert_eq!(got.header("Tags"), Some("x,jarvis"), "{got:?}");
    assert!(
        got.header("Content-Type")
            .unwrap()
            .starts_with("text/plain"),
        "{got:?}"
    );
    assert_eq!(got.body, event["message"].as_str().unwrap(), "the reason");
    repeats_are_held_back(&j, &rx, port);
}

#[test]
fn a_failure_is_posted_as_the_event_json() {
    if !root() {
        return skip(true, "needs root (cgroups)");
    }
    let (j, rx, got, event, port) = first_failure("json");
    assert_eq!(got.header("Content-Type"), Some("application/json"));
    let body: serde_json::Value = serde_json::from_str(&got.body).unwrap();
    assert_eq!(body, event, "the event as `events --json` prints it");
    repeats_are_held_back(&j, &rx, port);
}

#[test]
fn a_failure_is_posted_to_a_slack_webhook() {
    if !root() {
        return skip(true, "needs root (cgroups)");
    }
    let (_j, _rx, got, event, _) = first_failure("slack");
    let body: serde_json::Value = serde_json::from_str(&got.body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({
            "text": format!("*jarvis: job failed*: {}", event["message"].as_str().unwrap())
        })
    );
}

#[test]
fn a_notify_url_that_is_not_http_stops_jarvisd_at_start() {
    if !root() {
        return skip(true, "needs root (cgroups)");
    }
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(&*JARVISD)
        .arg("--units")
        .arg(dir.path())
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .arg("--socket")
        .arg(dir.path().join("jarvis.sock"))
        .args(["--notify-url", "ftp://host/alerts?token=SECRET-TOKEN"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--notify-url") && err.contains("only http and https"),
        "{err}"
    );
    assert!(!err.contains("SECRET-TOKEN"), "{err}");
    assert!(!dir.path().join("jarvis.sock").exists());
}
