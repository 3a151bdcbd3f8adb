//! jarvisd's read-only HTTP API (`--http`): `GET /api/v1/status` is the
//! JSON `jarvisctl status --json` prints, served to loopback peers.

use std::io::Write;
use std::time::Duration;

use crate::harness::*;

/// `GET path` on 127.0.0.1:`port`: the status code and the body.
fn get(port: u16, path: &str) -> (u16, String) {
    http(port, "GET", path, &[], None, 0)
}

#[test]
fn api_status_is_what_status_json_prints() {
    if !root() {
        return skip(true, "needs root (cgroups)");
    }
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let unit = "description = \"over http\"\n[native]\ncommand = [\"sleep\", \"100000\"]\n";
    let j = Jarvis::start_with(&[("web", unit), ("db", unit)], &["--http", &addr]);
    j.ok(&["up", "--wait", "--timeout", "30s"]);
    let (code, body) = get(port, "/api/v1/status");
    assert_eq!(code, 200, "{body}");
    let api: serde_json::Value = serde_json::from_str(&body).unwrap();
    let cli = j.status();
    let names = |v: &serde_json::Value| -> Vec<(String, String, i64)> {
        v["units"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| {
                (
                    u["name"].as_str().unwrap().to_string(),
                    u["state"].as_str().unwrap().to_string(),
                    u["pid"].as_i64().unwrap_or(0),
                )
            })
            .collect()
    };
    assert_eq!(names(&api), names(&cli));
    assert_eq!(api["units"][0]["description"], "over http");
    // Reads only: nothing else answers there.
    let (code, _) = get(port, "/api/v1/nothing");
    assert_eq!(code, 404);
}

#[test]
fn metrics_describe_every_unit_and_pass_promtool() {
    if !root() {
        return skip(true, "needs root (cgroups)");
    }
    if std::process::Command::new("promtool")
        .arg("--version")
        .output()
        .is_err()
    {
        // tests/run installs it (Debian's prometheus package).
        return skip(
            true,
            "promtool is not installed (apt-get install prometheus)",
        );
    }
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let unit = "[native]\ncommand = [\"sleep\", \"100000\"]\n[resources]\nmemory_max = \"64M\"\n";
    let crash = "[native]\ncommand = [\"false\"]\n[restart]\npolicy = \"never\"\n";
    let j = Jarvis::start_with(&[("web", unit), ("job", crash)], &["--http", &addr]);
    j.ok(&["up", "--timeout", "30s"]);
    j.wait_unit("web", Duration::from_secs(20), |u| u["state"] == "running");
    j.wait_unit("job", Duration::from_secs(20), |u| u["state"] == "failed");
    // The cgroup figures come with the next status after a run starts.
    std::thread::sleep(Duration::from_millis(1200));
    let (code, text) = get(port, "/metrics");
    assert_eq!(code, 200, "{text}");
    for want in [
        "jarvis_unit_state{unit=\"web\",kind=\"native\",state=\"running\"} 1",
        "jarvis_unit_state{unit=\"job\",kind=\"native\",state=\"failed\"} 1",
        "jarvis_unit_state{unit=\"job\",kind=\"native\",state=\"running\"} 0",
        "jarvis_unit_memory_limit_bytes{unit=\"web\"} 67108864",
        "jarvis_unit_tasks{unit=\"web\"} 1",
        "jarvisd_open_fds ",
        "jarvisd_event_loop_lag_seconds ",
    ] {
        assert!(text.contains(want), "{want} missing from:\n{text}");
    }
    let mut check = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    check
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = check.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
