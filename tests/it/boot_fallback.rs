//! A units directory that does not load at boot: jarvisd still comes up,
//! re-adopts what runs, runs the last set that loaded cleanly, and says
//! what is wrong in `status` until an `up` loads cleanly again.

use std::time::Duration;

use serde_json::Value;

use crate::harness::*;

const SLEEPER: &str = "[native]\ncommand = [\"sleep\", \"1000\"]\n";
/// Line 3 holds a key no unit file has.
const BROKEN: &str = "[native]\ncommand = [\"sleep\", \"1000\"]\nbogus = 1\n";

fn problems(status: &Value) -> Vec<String> {
    status["problems"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| p.as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_broken_unit_file_at_boot_keeps_the_last_good_set_running() {
    if !root() {
        return;
    }
    let mut j = Jarvis::start(&[("a", SLEEPER), ("b", SLEEPER), ("c", SLEEPER)]);
    let pids: Vec<i64> = ["a", "b", "c"]
        .iter()
        .map(|u| j.running(u)["pid"].as_i64().unwrap())
        .collect();
    assert!(problems(&j.status()).is_empty(), "{:#}", j.status());

    j.kill_daemon();
    j.write_unit("b", BROKEN);
    // It comes up (the harness waits for its socket) on the same state.
    j.spawn_daemon();
    let status = j.status();
    let found = problems(&status);
    assert_eq!(found.len(), 1, "{status:#}");
    assert!(
        found[0].contains("b.toml:3:1") && found[0].contains("last good"),
        "{found:?}"
    );
    let table = j.ok(&["status"]);
    assert!(table.contains("b.toml:3:1"), "{table}");
    // Each unit runs exactly once: the process from before the kill.
    std::thread::sleep(Duration::from_secs(1));
    for (unit, pid) in ["a", "b", "c"].iter().zip(&pids) {
        let u = j.running(unit);
        assert_eq!(u["pid"].as_i64(), Some(*pid), "{unit} was restarted: {u:#}");
        assert_eq!(
            cgroup_procs(&j.cgroup_parent, unit),
            [*pid as i32],
            "{unit} runs more than once"
        );
    }

    // A failing up keeps the set and the problem.
    let out = j.ctl(&["up"]);
    assert!(!out.status.success());
    assert_eq!(problems(&j.status()).len(), 1);

    // Fixed: up loads cleanly and the problem is gone; nothing restarted.
    j.write_unit("b", SLEEPER);
    j.ok(&["up"]);
    let status = j.status();
    assert!(problems(&status).is_empty(), "{status:#}");
    assert!(!j.ok(&["status"]).contains("problem"));
    for (unit, pid) in ["a", "b", "c"].iter().zip(&pids) {
        assert_eq!(j.running(unit)["pid"].as_i64(), Some(*pid));
    }
}

#[test]
fn a_broken_directory_with_no_last_good_set_still_serves_status() {
    if !root() {
        return;
    }
    // Started on a broken directory: nothing ever loaded cleanly.
    let j = Jarvis::start(&[("good", SLEEPER), ("bad", BROKEN)]);
    let status = j.status();
    assert!(status["units"].as_array().unwrap().is_empty(), "{status:#}");
    let found = problems(&status);
    assert_eq!(found.len(), 1, "{status:#}");
    assert!(
        found[0].contains("bad.toml:3:1") && found[0].contains("no last good"),
        "{found:?}"
    );
    // Fixed, up runs the set and the problem goes.
    j.write_unit("bad", SLEEPER);
    j.ok(&["up"]);
    j.running("good");
    j.running("bad");
    assert!(problems(&j.status()).is_empty());
}

#[test]
fn runs_found_with_no_last_good_set_are_left_alone_then_readopted() {
    if !root() {
        return;
    }
    let mut j = Jarvis::start(&[("a", SLEEPER), ("b", SLEEPER)]);
    let pids: Vec<i64> = ["a", "b"]
        .iter()
        .map(|u| j.running(u)["pid"].as_i64().unwrap())
        .collect();
    j.kill_daemon();
    // As after an upgrade from a jarvisd that kept no set.
    std::fs::remove_file(j.state.join("last-good.json")).unwrap();
    j.write_unit("b", BROKEN);
    j.spawn_daemon();
    let status = j.status();
    let found = problems(&status);
    assert_eq!(found.len(), 2, "{status:#}");
    assert!(found[0].contains("b.toml:3:1"), "{found:?}");
    assert!(found[1].contains("a, b"), "{found:?}");
    std::thread::sleep(Duration::from_secs(1));
    for pid in &pids {
        assert!(alive(*pid as i32), "a run found at boot was stopped");
    }
    // Once the directory loads, the runs are taken back, not doubled.
    j.write_unit("b", SLEEPER);
    j.ok(&["up"]);
    assert!(problems(&j.status()).is_empty());
    for (unit, pid) in ["a", "b"].iter().zip(&pids) {
        assert_eq!(j.running(unit)["pid"].as_i64(), Some(*pid));
        assert_eq!(cgroup_procs(&j.cgroup_parent, unit), [*pid as i32]);
    }
}
