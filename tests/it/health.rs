//! Health checks with Docker's timing, and restarts for being unhealthy
//! that go through the restart policy's delay, doubling and burst window.
//!
//! The service and its probe write their own timestamps (CLOCK_REALTIME in
//! nanoseconds, from `date +%s%N`), so the tests read when things happened
//! from the processes themselves. Only lower bounds on gaps are asserted: a
//! slow machine makes gaps longer, never shorter.

use std::path::Path;
use std::time::Duration;

use crate::harness::*;

fn stamps(path: &Path) -> Vec<i64> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse::<i64>().ok())
        .collect()
}

fn ms(ns: i64) -> i64 {
    ns / 1_000_000
}

#[test]
fn probes_wait_one_interval_and_unhealthy_restarts_back_off() {
    if !root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let starts = dir.path().join("starts");
    let probes = dir.path().join("probes");
    let j = Jarvis::start(&[(
        "sick",
        &format!(
            r#"
[native]
command = ["sh", "-c", "date +%s%N >> {starts}; exec sleep 1000"]
[health]
exec = ["sh", "-c", "date +%s%N >> {probes}; exit 1"]
interval = "200ms"
retries = 1
[restart]
delay = "100ms"
max_delay = "10s"
burst = 4
interval = "1m"
"#,
            starts = starts.display(),
            probes = probes.display()
        ),
    )]);
    let u = j.wait_unit("sick", Duration::from_secs(30), |u| u["state"] == "failed");
    let reason = u["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("burst"), "{u:#}");
    let starts = stamps(&starts);
    let probes = stamps(&probes);
    assert_eq!(
        starts.len(),
        4,
        "4 starts, then the burst limit: {starts:?}"
    );
    // The first probe comes one interval after the start, not at once.
    let first_probe = probes.iter().find(|p| **p > starts[0]).expect("a probe");
    assert!(
        ms(first_probe - starts[0]) >= 150,
        "first probe {} ms after the start; interval is 200ms",
        ms(first_probe - starts[0])
    );
    // Each restart waits for the failing probe (200ms) and the restart
    // delay, which doubles: 100ms, 200ms, 400ms.
    for (k, pair) in starts.windows(2).enumerate() {
        let gap = ms(pair[1] - pair[0]);
        let least = (200 + (100 << k)) * 3 / 4;
        assert!(
            gap >= least,
            "restart {} came {gap} ms after the start before it; at least {least} ms expected ({starts:?})",
            k + 1
        );
    }
    let log = j.logs("sick");
    assert!(log.contains("unhealthy"), "{log}");
}

#[test]
fn failures_in_the_start_period_do_not_count_and_probes_run_every_start_interval() {
    if !root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let probes = dir.path().join("probes");
    let j = Jarvis::start(&[(
        "slow",
        &format!(
            r#"
[native]
command = ["sleep", "1000"]
[health]
exec = ["sh", "-c", "date +%s%N >> {probes}; exit 1"]
interval = "1s"
start_period = "1500ms"
start_interval = "100ms"
retries = 1
[restart]
delay = "100ms"
"#,
            probes = probes.display()
        ),
    )]);
    let first = j.running("slow")["pid"].as_i64().unwrap();
    // Inside the start period the unit stays up and its health "starting",
    // while probes run every start_interval.
    std::thread::sleep(Duration::from_millis(900));
    let u = j.unit("slow");
    assert_eq!(u["pid"].as_i64(), Some(first), "{u:#}");
    assert_eq!(u["health"], "starting", "{u:#}");
    let during = stamps(&probes);
    assert!(
        during.len() >= 3,
        "probes every 100ms during the start period, got {}",
        during.len()
    );
    // After it, the first failure counts: the unit restarts.
    let u = j.wait_unit("slow", Duration::from_secs(15), |u| {
        u["pid"].as_i64().is_some_and(|p| p != first)
    });
    assert_eq!(u["restarts"], 1, "{u:#}");
}

#[test]
fn health_is_starting_until_the_first_success() {
    if !root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ok = dir.path().join("ok");
    let j = Jarvis::start(&[(
        "late",
        &format!(
            r#"
[native]
command = ["sleep", "1000"]
[health]
exec = ["test", "-e", "{ok}"]
interval = "100ms"
retries = 1000
"#,
            ok = ok.display()
        ),
    )]);
    j.running("late");
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(j.unit("late")["health"], "starting");
    std::fs::write(&ok, "").unwrap();
    j.wait_unit("late", Duration::from_secs(10), |u| {
        u["health"] == "healthy"
    });
}
