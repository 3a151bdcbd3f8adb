//! Limits and privileges, checked in the kernel's own files and by what the
//! process can do.

use std::time::Duration;

use crate::harness::*;

#[test]
fn limits_are_in_the_kernel_files_and_the_process_is_in_its_cgroup() {
    if !root() {
        return;
    }
    let j = Jarvis::start(&[(
        "limited",
        r#"
[native]
command = ["sleep", "1000"]
[resources]
memory_max = "64M"
cpus = 0.5
cpu_weight = 200
pids_max = 32
cpuset = "0"
"#,
    )]);
    let u = j.running("limited");
    let pid = u["pid"].as_i64().unwrap() as i32;
    let cg = u["cgroup"].as_str().unwrap().to_string();
    assert_eq!(cg, format!("/{}/limited", j.cgroup_parent));

    let proc_cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    for line in proc_cgroup.lines() {
        // hierarchy-id:controllers:path, one line per hierarchy.
        let path = line.splitn(3, ':').nth(2).unwrap();
        assert_eq!(
            path, cg,
            "every hierarchy places the process: {proc_cgroup}"
        );
    }

    if cgroup_root("memory").ends_with("memory") {
        assert_eq!(
            j.read_cgroup("memory", "limited", "memory.limit_in_bytes"),
            "67108864"
        );
        assert_eq!(j.read_cgroup("cpu", "limited", "cpu.cfs_quota_us"), "50000");
        assert_eq!(
            j.read_cgroup("cpu", "limited", "cpu.cfs_period_us"),
            "100000"
        );
        assert_eq!(j.read_cgroup("cpu", "limited", "cpu.shares"), "2048");
    } else {
        assert_eq!(j.read_cgroup("memory", "limited", "memory.max"), "67108864");
        assert_eq!(j.read_cgroup("cpu", "limited", "cpu.max"), "50000 100000");
        assert_eq!(j.read_cgroup("cpu", "limited", "cpu.weight"), "200");
    }
    assert_eq!(j.read_cgroup("pids", "limited", "pids.max"), "32");
    assert_eq!(j.read_cgroup("cpuset", "limited", "cpuset.cpus"), "0");
    assert_eq!(proc_status(pid, "Cpus_allowed_list"), "0");

    let u = j.unit("limited");
    assert_eq!(u["memory_max_bytes"], 67108864);
    assert!(u["memory_bytes"].is_number(), "{u}");
}

#[test]
fn memory_max_oom_kills_and_says_so() {
    if !root() {
        return;
    }
    // The shell keeps a 256M command substitution in memory, against 64M.
    let j = Jarvis::start(&[(
        "hog",
        r#"
[native]
command = ["sh", "-c", "x=$(head -c 268435456 /dev/zero | tr '\\0' a); echo survived"]
[resources]
memory_max = "64M"
[restart]
policy = "never"
"#,
    )]);
    let u = j.wait_unit("hog", Duration::from_secs(30), |u| u["state"] == "failed");
    let reason = u["reason"].as_str().unwrap();
    assert!(
        reason.contains("OOM") || reason.contains("out of memory"),
        "{u:#}"
    );
    // The shell itself exits with the status of `tail`, killed by SIGKILL;
    // either way the unit's cgroup records the OOM kill.
    assert_eq!(u["oom_killed"], true, "{u:#}");
    assert_eq!(u["oom_kills"], 1, "counted: {u:#}");
    assert!(u["exit_code"].as_i64().unwrap() != 0, "{u:#}");
    // Told as an event, with the kill and the failure.
    let events = j.ok(&["events", "--since", "10m", "--no-follow", "hog"]);
    assert!(events.contains(" oom-killed "), "{events}");
    assert!(events.contains(" failed "), "{events}");
}

#[test]
fn pids_max_stops_a_fork_bomb() {
    if !root() {
        return;
    }
    let j = Jarvis::start(&[(
        "bomb",
        r#"
[native]
# Forks until the kernel refuses, then reports how far it got.
command = ["python3", "-c", """
import os, time
n = 0
for _ in range(100):
    try:
        if os.fork() == 0:
            time.sleep(1000)
            os._exit(0)
        n += 1
    except OSError:
        pass
print(f"forked {n}", flush=True)
time.sleep(1000)
"""]
[resources]
pids_max = 32
"#,
    )]);
    j.running("bomb");
    let log = {
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            let l = j.logs("bomb");
            if l.lines().any(|l| l.starts_with("forked ")) || std::time::Instant::now() > deadline {
                break l;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    // 31 children and the parent: 32 tasks, the limit.
    assert!(log.lines().any(|l| l == "forked 31"), "{log}");
    let current: u64 = j
        .read_cgroup("pids", "bomb", "pids.current")
        .parse()
        .unwrap();
    let procs = j.read_cgroup("pids", "bomb", "cgroup.procs");
    assert!(current <= 32, "pids.current {current}");
    assert!(current >= 30, "the bomb got close to the limit: {current}");
    assert!(procs.lines().count() <= 32);
    assert!(
        j.read_cgroup("pids", "bomb", "pids.events").contains("max"),
        "forks were refused"
    );
    let pids: Vec<i32> = procs.lines().map(|l| l.parse().unwrap()).collect();
    j.ok(&["stop", "bomb"]);
    assert!(
        pids.iter().all(|p| !alive(*p)),
        "a stopped unit leaves nothing"
    );
}

#[test]
fn capabilities_are_dropped_before_exec() {
    if !root() {
        return;
    }
    let j = Jarvis::start(&[
        (
            "nocaps",
            r#"
[native]
command = ["sleep", "1000"]
[security]
capabilities = []
"#,
        ),
        (
            "bind",
            r#"
[native]
command = ["sleep", "1000"]
user = "nobody"
[security]
capabilities = ["CAP_NET_BIND_SERVICE"]
"#,
        ),
    ]);
    let pid = j.running("nocaps")["pid"].as_i64().unwrap() as i32;
    for key in ["CapEff", "CapPrm", "CapInh", "CapBnd", "CapAmb"] {
        assert_eq!(proc_status(pid, key), "0000000000000000", "{key}");
    }
    assert_eq!(proc_status(pid, "NoNewPrivs"), "1");

    let pid = j.running("bind")["pid"].as_i64().unwrap() as i32;
    assert_eq!(proc_status(pid, "CapEff"), "0000000000000400");
    assert_eq!(proc_status(pid, "CapBnd"), "0000000000000400");
    let uid = proc_status(pid, "Uid");
    assert!(uid.split_whitespace().all(|f| f == "65534"), "{uid}");
}

#[test]
fn user_groups_env_workdir_and_closed_fds() {
    if !root() {
        return;
    }
    let j = Jarvis::start(&[(
        "who",
        r#"
[native]
command = ["sh", "-c", "echo ids=$(id -u):$(id -g):$(id -G | tr ' ' ,) cwd=$(pwd) greeting=$GREETING; echo fds=$(ls /proc/self/fd | tr '\n' ,); sleep 1000"]
user = "nobody"
group = "nogroup"
supplementary_groups = ["daemon"]
working_dir = "/tmp"
[env]
GREETING = "hello"
"#,
    )]);
    j.running("who");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let log = loop {
        let l = j.logs("who");
        if l.lines().any(|l| l.starts_with("fds=")) || std::time::Instant::now() > deadline {
            break l;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let gid = nix::unistd::Group::from_name("nogroup")
        .unwrap()
        .unwrap()
        .gid
        .as_raw();
    let daemon = nix::unistd::Group::from_name("daemon")
        .unwrap()
        .unwrap()
        .gid
        .as_raw();
    assert!(log.contains(&format!("ids=65534:{gid}:")), "{log}");
    assert!(log.contains(&daemon.to_string()), "{log}");
    assert!(log.contains("cwd=/tmp greeting=hello"), "{log}");
    // ls itself opens one descriptor for the directory it lists.
    let fds = log.lines().find_map(|l| l.strip_prefix("fds=")).unwrap();
    let fds: Vec<&str> = fds.split(',').filter(|s| !s.is_empty()).collect();
    assert!(fds.len() <= 4 && fds[..3] == ["0", "1", "2"], "{fds:?}");
}

#[test]
fn an_unknown_user_fails_the_unit_and_nothing_runs() {
    if !root() {
        return;
    }
    let j = Jarvis::start(&[(
        "ghost",
        r#"
[native]
command = ["sh", "-c", "touch /tmp/jarvis-ghost-ran; sleep 1000"]
user = "no-such-user-here"
[restart]
policy = "always"
"#,
    )]);
    let u = j.wait_unit("ghost", Duration::from_secs(10), |u| u["state"] == "failed");
    assert!(
        u["reason"].as_str().unwrap().contains("no-such-user-here"),
        "{u:#}"
    );
    assert!(u["pid"].is_null());
    assert_eq!(u["restarts"], 0);
}
