//! `logs -f` at scale: followers share jarvisd's one inotify instance, so
//! more of them than the kernel allows instances per user all get what is
//! written, and jarvisd leaves the instances to other processes.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::*;

/// The inotify instances a process holds.
fn inotify_instances(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter(|e| {
            std::fs::read_link(e.path()).is_ok_and(|t| t.to_string_lossy() == "anon_inode:inotify")
        })
        .count()
}

struct Followers(Vec<Child>);

impl Drop for Followers {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[test]
fn many_followers_share_one_watcher_and_all_see_new_lines() {
    if !root() {
        return;
    }
    // More followers than the kernel gives one user instances, at least 200.
    let limit: usize = std::fs::read_to_string("/proc/sys/fs/inotify/max_user_instances")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(128);
    let n = 200.max(limit + 16);
    assert!(
        n <= 2000,
        "max_user_instances is {limit}: too many followers to start here"
    );
    let j = Jarvis::start(&[]);
    let go = j.dir.path().join("go");
    j.write_unit(
        "talker",
        &format!(
            "[native]\ncommand = [\"sh\", \"-c\", \"echo ready; while [ ! -e {} ]; do sleep 0.05; done; \
             echo after-the-start; exec sleep 1000\"]\n",
            go.display()
        ),
    );
    j.ok(&["up"]);
    j.running("talker");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !j.logs("talker").contains("ready") {
        assert!(Instant::now() < deadline, "{}", j.daemon_log());
        std::thread::sleep(Duration::from_millis(20));
    }

    let (tx, rx) = std::sync::mpsc::channel::<(usize, String)>();
    let mut followers = Followers(Vec::new());
    for i in 0..n {
        let mut child = Command::new(&*JARVISCTL)
            .arg("--socket")
            .arg(&j.socket)
            .args(["logs", "-f", "talker"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        followers.0.push(child);
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                if tx.send((i, line)).is_err() {
                    break;
                }
            }
        });
    }
    drop(tx);
    // Every follower has its tail (so it follows) before the line is
    // written.
    let mut ready = vec![false; n];
    let mut after = vec![false; n];
    let deadline = Instant::now() + Duration::from_secs(60);
    let wait_for = |seen: &mut Vec<bool>, what: &str, other: &mut Vec<bool>| {
        while seen.iter().any(|s| !s) {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok((i, line)) if line == what => seen[i] = true,
                Ok((i, line)) if line == "after-the-start" => other[i] = true,
                Ok(_) => {}
                Err(e) => panic!(
                    "{e}: {} of {n} followers saw {what:?}\njarvisd:\n{}",
                    seen.iter().filter(|s| **s).count(),
                    j.daemon_log()
                ),
            }
        }
    };
    let mut early = vec![false; n];
    wait_for(&mut ready, "ready", &mut early);
    assert!(
        early.iter().all(|s| !s),
        "a follower saw the line before it was written"
    );
    let pid = j.daemon_pid();
    let held = inotify_instances(pid);
    std::fs::write(&go, "").unwrap();
    wait_for(&mut after, "after-the-start", &mut early);
    assert!(
        held <= 2 && inotify_instances(pid) <= 2,
        "jarvisd holds {held} inotify instances for {n} followers"
    );
    for (i, c) in followers.0.iter_mut().enumerate() {
        assert!(
            c.try_wait().unwrap().is_none(),
            "follower {i} ended: {:?}",
            c.try_wait()
        );
    }
}
