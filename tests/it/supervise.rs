//! Supervision: restarts, the burst limit, stop, health, dependencies.

use std::time::{Duration, Instant};

use crate::harness::*;

#[test]
fn a_killed_unit_is_restarted_with_a_new_pid() {
    if !root() {
        return;
    }
    let j = Jarvis::start(&[(
        "web",
        r#"
[native]
command = ["sleep", "1000"]
[restart]
policy = "always"
delay = "0s"
"#,
    )]);
    let old = j.running("web")["pid"].as_i64().unwrap() as i32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(old),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let u = j.wait_unit("web", Duration::from_secs(5), |u| {
        u["state"] == "running" && u["pid"].as_i64().is_some_and(|p| p as i32 != old)
    });
    assert_eq!(u["restarts"], 1);
    assert_eq!(
        u["exit_code"], 137,
        "the last run was killed by SIGKILL: {u:#}"
    );
    assert!(!alive(old));
}

#[test]
fn a_crash_loop_ends_in_failed_after_burst_starts() {
    if !root() {
        return;
    }
    let j = Jarvis::start(&[(
        "crashy",
        r#"
[native]
command = ["sh", "-c", "exit 3"]
[restart]
policy = "always"
delay = "10ms"
max_delay = "50ms"
burst = 4
interval = "30s"
"#,
    )]);
    let u = j.wait_unit("crashy", Duration::from_secs(15), |u| {
        u["state"] == "failed"
    });
    assert_eq!(u["restarts"], 3, "4 starts = the first + 3 restarts: {u:#}");
    assert_eq!(u["exit_code"], 3);
    assert!(u["reason"].as_str().unwrap().contains("burst"), "{u:#}");
    // It stays failed: no more starts.
    std::thread::sleep(Duration::from_millis(300));
    let log = j.logs("crashy");
    assert_eq!(log.matches("started pid").count(), 4, "{log}");
    // A request to start forgives the failures.
    j.ok(&["start", "crashy"]);
    j.wait_unit("crashy", Duration::from_secs(15), |u| {
        u["state"] == "failed" && j.logs("crashy").matches("started pid").count() == 8
    });
}

#[test]
fn stop_leaves_nothing_behind_double_forked_included() {
    if !root() {
        return;
    }
    let j = Jarvis::start(&[(
        "forker",
        r#"
[native]
# A daemon that leaves the process tree (setsid + background), and a main
# process that ignores SIGTERM: only the cgroup finds them all.
command = ["sh", "-c", "trap '' TERM; setsid sh -c 'sleep 1000 & sleep 1000' & sleep 1000"]
[stop]
timeout = "500ms"
"#,
    )]);
    j.running("forker");
    let deadline = Instant::now() + Duration::from_secs(5);
    let pids: Vec<i32> = loop {
        let procs = j.read_cgroup("pids", "forker", "cgroup.procs");
        let pids: Vec<i32> = procs.lines().map(|l| l.parse().unwrap()).collect();
        if pids.len() >= 4 || Instant::now() > deadline {
            break pids;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(pids.len() >= 4, "{pids:?}");
    let started = Instant::now();
    j.ok(&["stop", "forker"]);
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "waited for the stop timeout"
    );
    let u = j.unit("forker");
    assert_eq!(u["state"], "stopped");
    assert!(u["pid"].is_null());
    for p in &pids {
        assert!(!alive(*p), "pid {p} outlived its unit");
    }
    assert_eq!(j.read_cgroup("pids", "forker", "cgroup.procs"), "");
    // A stopped unit stays stopped: no restart.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(j.unit("forker")["state"], "stopped");
}

#[test]
fn a_failing_health_check_restarts_the_unit() {
    if !root() {
        return;
    }
    let j = Jarvis::start(&[(
        "sick",
        r#"
[native]
command = ["sleep", "1000"]
[health]
exec = ["sh", "-c", "echo not today; exit 1"]
interval = "100ms"
timeout = "2s"
retries = 2
[restart]
delay = "0s"
"#,
    )]);
    let first = j.running("sick")["pid"].as_i64().unwrap();
    let u = j.wait_unit("sick", Duration::from_secs(15), |u| {
        u["restarts"].as_i64().unwrap() >= 1 && u["pid"].as_i64().is_some_and(|p| p != first)
    });
    assert!(!alive(first as i32));
    let log = j.logs("sick");
    assert!(
        log.contains("unhealthy") || u["reason"].as_str().unwrap_or("").contains("unhealthy"),
        "{log}\n{u:#}"
    );
}

#[test]
fn health_ignore_keeps_the_unit_and_reports_unhealthy() {
    if !root() {
        return;
    }
    let j = Jarvis::start(&[(
        "meh",
        r#"
[native]
command = ["sleep", "1000"]
[health]
tcp = "127.0.0.1:1"
interval = "100ms"
retries = 1
on_unhealthy = "ignore"
"#,
    )]);
    let pid = j.running("meh")["pid"].clone();
    let u = j.wait_unit("meh", Duration::from_secs(10), |u| {
        u["health"] == "unhealthy"
    });
    assert_eq!(u["pid"], pid);
    assert_eq!(u["state"], "running");
}

/// Serves HTTP on `port` after `delay` seconds, with python3's http.server.
fn http_unit(port: u16, delay: f32) -> String {
    format!(
        r#"
[native]
command = ["sh", "-c", "sleep {delay}; exec python3 -m http.server {port} --bind 127.0.0.1"]
working_dir = "/"
[health]
http = "http://127.0.0.1:{port}/"
interval = "100ms"
timeout = "1s"
retries = 3
start_period = "10s"
"#
    )
}

#[test]
fn dependencies_start_in_order_and_only_when_ready() {
    if !root() {
        return;
    }
    let port = free_port();
    let j = Jarvis::start(&[
        ("db", &http_unit(port, 1.0)),
        (
            "migrate",
            r#"
depends_on = { db = "healthy" }
[native]
command = ["sh", "-c", "sleep 0.3; echo migrated"]
[restart]
policy = "never"
"#,
        ),
        (
            "web",
            r#"
depends_on = { db = "healthy", migrate = "completed" }
[native]
command = ["sleep", "1000"]
"#,
        ),
        (
            "cache",
            r#"
depends_on = ["web"]
[native]
command = ["sleep", "1000"]
"#,
        ),
    ]);
    // While db is not healthy, nothing that needs it has started.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut saw_waiting = false;
    loop {
        let st = j.status();
        let get = |n: &str| {
            st["units"]
                .as_array()
                .unwrap()
                .iter()
                .find(|u| u["name"] == n)
                .unwrap()
                .clone()
        };
        let (db, migrate, web, cache) = (get("db"), get("migrate"), get("web"), get("cache"));
        if db["health"] != "healthy" {
            assert!(
                migrate["pid"].is_null() && migrate["exit_code"].is_null(),
                "{migrate:#}"
            );
            assert!(web["pid"].is_null(), "{web:#}");
            if web["state"] == "waiting" {
                saw_waiting = true;
                assert!(web["reason"].as_str().unwrap().contains("db"), "{web:#}");
            }
        }
        if migrate["state"] != "exited" {
            assert!(
                web["pid"].is_null(),
                "web started before migrate completed: {st:#}"
            );
        }
        if web["state"] != "running" {
            assert!(cache["pid"].is_null(), "{st:#}");
        }
        if cache["state"] == "running" {
            assert_eq!(db["health"], "healthy");
            assert_eq!(migrate["exit_code"], 0);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never all up: {st:#}\n{}",
            j.daemon_log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(saw_waiting, "web was seen waiting for db");
}

#[test]
fn a_failed_dependency_keeps_dependents_from_starting() {
    if !root() {
        return;
    }
    let j = Jarvis::start(&[
        (
            "migrate",
            r#"
[native]
command = ["sh", "-c", "exit 2"]
[restart]
policy = "never"
"#,
        ),
        (
            "app",
            r#"
depends_on = { migrate = "completed" }
[native]
command = ["sleep", "1000"]
"#,
        ),
    ]);
    let u = j.wait_unit("app", Duration::from_secs(10), |u| u["state"] == "failed");
    let reason = u["reason"].as_str().unwrap();
    assert!(
        reason.contains("migrate") && reason.contains("code 2"),
        "{reason}"
    );
    assert!(u["pid"].is_null());
    let out = j.ctl(&["up", "--wait", "--timeout", "5s"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("failed"), "{err}");
}

#[test]
fn up_wait_returns_when_everything_is_ready() {
    if !root() {
        return;
    }
    let port = free_port();
    let j = Jarvis::start(&[
        ("api", &http_unit(port, 0.5)),
        (
            "worker",
            r#"
depends_on = { api = "healthy" }
[native]
command = ["sleep", "1000"]
"#,
        ),
    ]);
    let out = j.ok(&["up", "--wait", "--timeout", "20s"]);
    assert!(out.contains("ready"), "{out}");
    assert_eq!(j.unit("api")["health"], "healthy");
    assert_eq!(j.unit("worker")["state"], "running");
}

#[test]
fn up_wait_times_out_naming_what_is_not_ready() {
    if !root() {
        return;
    }
    let j = Jarvis::start(&[(
        "never-healthy",
        r#"
[native]
command = ["sleep", "1000"]
[health]
tcp = "127.0.0.1:1"
interval = "100ms"
start_period = "1h"
"#,
    )]);
    let out = j.ctl(&["up", "--wait", "--timeout", "1s"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("timed out") && err.contains("never-healthy"),
        "{err}"
    );
}

#[test]
fn user_stops_survive_a_daemon_restart_and_sigterm_stops_everything() {
    if !root() {
        return;
    }
    let mut j = Jarvis::start(&[
        ("a", "[native]\ncommand = [\"sleep\", \"1000\"]\n"),
        ("b", "[native]\ncommand = [\"sleep\", \"1000\"]\n"),
    ]);
    j.running("a");
    let b = j.running("b")["pid"].as_i64().unwrap() as i32;
    j.ok(&["stop", "a"]);
    let st = j.stop_daemon();
    assert!(st.success(), "{st}");
    assert!(!alive(b), "a clean shutdown stops every unit");
    j.spawn_daemon();
    j.running("b");
    std::thread::sleep(Duration::from_millis(200));
    let a = j.unit("a");
    assert_eq!(
        a["state"], "stopped",
        "the user's stop is remembered: {a:#}"
    );
    assert_eq!(a["reason"], "stopped by stop", "{a:#}");
}

#[test]
fn starting_a_unit_starts_what_it_depends_on() {
    if !root() {
        return;
    }
    let j = Jarvis::start(&[
        ("db", "[native]\ncommand = [\"sleep\", \"1000\"]\n"),
        (
            "web",
            "depends_on = [\"db\"]\n[native]\ncommand = [\"sleep\", \"1000\"]\n",
        ),
    ]);
    j.running("web");
    j.ok(&["stop", "web", "db"]);
    assert_eq!(j.unit("db")["state"], "stopped");
    j.ok(&["start", "web"]);
    j.running("db");
    j.running("web");
}

#[test]
fn units_outlive_a_killed_daemon_and_are_readopted() {
    if !root() {
        return;
    }
    let mut j = Jarvis::start(&[
        (
            "steady",
            r#"
[native]
command = ["sh", "-c", "while true; do echo tick; sleep 0.1; done"]
"#,
        ),
        (
            "mortal",
            r#"
[native]
command = ["sleep", "1000"]
[restart]
policy = "always"
"#,
        ),
    ]);
    let steady = j.running("steady")["pid"].as_i64().unwrap() as i32;
    let mortal = j.running("mortal")["pid"].as_i64().unwrap() as i32;
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(j.state.join("run/steady.run.json")).unwrap())
            .unwrap();
    let shim = record["shim_pid"].as_i64().unwrap() as i32;
    assert_ne!(shim, steady);
    // CVE-2019-5736: jarvisd runs from a sealed in-memory copy (as
    // containers' shims run from one of jarvis-cshim: see containers.rs); a
    // native unit's shim, which never enters a container, is the small
    // jarvis-shim installed next to jarvisd.
    let exe = std::fs::read_link(format!("/proc/{}/exe", j.daemon_pid())).unwrap();
    assert!(exe.to_string_lossy().starts_with("/memfd:"), "{exe:?}");
    assert_eq!(
        std::fs::read_link(format!("/proc/{shim}/exe")).unwrap(),
        std::path::Path::new(&*JARVISD).with_file_name("jarvis-shim")
    );

    j.kill_daemon();
    // With no daemon: the units run on, their output is still logged, and
    // one of them dies.
    let log = j.state.join("logs/steady.log");
    let ticks = || {
        std::fs::read_to_string(&log)
            .unwrap()
            .matches("tick")
            .count()
    };
    let before = ticks();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(mortal),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert!(ticks() > before, "output is logged while jarvisd is away");
    assert!(alive(steady));

    j.spawn_daemon();
    let u = j.running("steady");
    assert_eq!(u["pid"], steady, "the same process, re-adopted");
    let m = j.wait_unit("mortal", Duration::from_secs(10), |u| {
        u["state"] == "running" && u["pid"].as_i64().is_some_and(|p| p as i32 != mortal)
    });
    assert_eq!(m["restarts"], 1, "the death while away counts: {m:#}");
    assert!(j.logs("steady").contains("re-adopted"));
    j.ok(&["stop", "steady"]);
    assert!(
        !alive(steady) && !alive(shim),
        "stop ends the unit and its shim"
    );
    assert_eq!(j.read_cgroup("pids", "steady", "cgroup.procs"), "");
}

/// The run record's shim and unit pids.
fn run_record(j: &Jarvis, unit: &str) -> (i32, i32) {
    let record: serde_json::Value = serde_json::from_slice(
        &std::fs::read(j.state.join(format!("run/{unit}.run.json"))).unwrap(),
    )
    .unwrap();
    (
        record["shim_pid"].as_i64().unwrap() as i32,
        record["pid"].as_i64().unwrap() as i32,
    )
}

#[test]
fn a_restart_reuses_the_units_shim_and_a_stop_lets_it_go() {
    if !root() {
        return;
    }
    let j = Jarvis::start(&[(
        "again",
        r#"
[native]
command = ["sleep", "1000"]
[restart]
policy = "always"
delay = "0s"
"#,
    )]);
    j.running("again");
    let (shim, first) = run_record(&j, "again");
    // Crash it twice: each restart is served by the same shim, parked
    // between the runs.
    let mut last = first;
    for n in 1..=2 {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(last),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        let u = j.wait_unit("again", Duration::from_secs(5), |u| {
            u["state"] == "running" && u["pid"].as_i64().is_some_and(|p| p as i32 != last)
        });
        assert_eq!(u["restarts"], n);
        let (s, pid) = run_record(&j, "again");
        assert_eq!(pid as i64, u["pid"].as_i64().unwrap());
        assert_eq!(s, shim, "restart {n} ran in the shim of the first run");
        last = pid;
    }
    assert!(
        j.logs("again").contains(&format!("started pid {last}")),
        "the reused shim logs the new run"
    );

    // A shim that dies takes its run's record with it: the unit is
    // restarted by a new shim.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(shim),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let u = j.wait_unit("again", Duration::from_secs(5), |u| {
        u["state"] == "running" && u["pid"].as_i64().is_some_and(|p| p as i32 != last)
    });
    let (fresh, pid) = run_record(&j, "again");
    assert_ne!(fresh, shim, "a new shim");
    assert_eq!(pid as i64, u["pid"].as_i64().unwrap());
    assert!(!alive(last), "the dead shim's run was emptied out");

    // A stop is no restart: the shim goes with the run, not after the
    // time it would wait for a restart.
    j.ok(&["stop", "again"]);
    let deadline = Instant::now() + Duration::from_millis(1500);
    while alive(fresh) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!alive(fresh), "the stopped unit's shim is let go");
    assert!(!alive(pid));
}

/// Descriptors jarvisd holds open now.
fn open_fds(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

#[test]
fn an_abandoned_wait_gives_its_descriptor_back() {
    if !root() {
        return;
    }
    // A unit that never becomes healthy: every `up --wait` waits on it.
    let j = Jarvis::start(&[(
        "never",
        r#"
[native]
command = ["sleep", "1000"]
[health]
tcp = "127.0.0.1:9"
interval = "1h"
start_period = "1h"
"#,
    )]);
    j.wait_unit("never", Duration::from_secs(10), |u| {
        u["state"] == "running"
    });
    let pid = j.daemon_pid();
    // The fewest over a moment: a descriptor opened for a moment (a
    // cgroup file read for the status above) is not one a waiter holds.
    let before = (0..10)
        .map(|_| {
            std::thread::sleep(Duration::from_millis(30));
            open_fds(pid)
        })
        .min()
        .unwrap();
    let mut waiters: Vec<std::process::Child> = (0..30)
        .map(|_| {
            std::process::Command::new(&*JARVISCTL)
                .arg("--socket")
                .arg(&j.socket)
                .args(["up", "--wait", "--timeout", "1h"])
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while open_fds(pid) < before + 30 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        open_fds(pid) >= before + 30,
        "each waiting client holds a connection: {} then {}",
        before,
        open_fds(pid)
    );
    for w in &mut waiters {
        let _ = w.kill();
        let _ = w.wait();
    }
    // The callers hung up: jarvisd notices and lets their connections go.
    let deadline = Instant::now() + Duration::from_secs(5);
    while open_fds(pid) > before + 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        open_fds(pid) <= before + 2,
        "descriptors after the callers left: {} (before: {before})",
        open_fds(pid)
    );
    assert_eq!(j.unit("never")["state"], "running", "jarvisd still answers");
}
