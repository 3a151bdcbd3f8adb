//! `jarvisctl apply`, `generations` and `rollback` against a real jarvisd
//! started without `--units`, deploying from a bare git repository the test
//! makes (with the `git` command): the plan, pids of unchanged units, the
//! health gate and its automatic rollback, an invalid revision, `--dry-run`,
//! persistence across restarts, and `kill -9` of jarvisd in the middle of
//! an apply.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{
    alive, cgroup_procs, clear_cgroup_parent, root, stop_child, unique, JARVISCTL, JARVISD,
};

/// A jarvisd on a state directory of its own, with no `--units`.
struct Lab {
    dir: tempfile::TempDir,
    state: PathBuf,
    socket: PathBuf,
    cgroup_parent: String,
    daemon: Option<Child>,
}

impl Lab {
    fn start() -> Lab {
        let dir = tempfile::Builder::new()
            .prefix("jarvis-it-apply-")
            .tempdir()
            .unwrap();
        let mut lab = Lab {
            state: dir.path().join("state"),
            socket: dir.path().join("jarvis.sock"),
            cgroup_parent: format!("jarvis-it-apply-{}-{}", std::process::id(), unique()),
            dir,
            daemon: None,
        };
        lab.spawn();
        lab
    }

    fn spawn(&mut self) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("jarvisd.log"))
            .unwrap();
        let child = Command::new(&*JARVISD)
            .arg("--state-dir")
            .arg(&self.state)
            .arg("--socket")
            .arg(&self.socket)
            .arg("--cgroup-parent")
            .arg(&self.cgroup_parent)
            .env("JARVIS_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start jarvisd");
        self.daemon = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::os::unix::net::UnixStream::connect(&self.socket).is_err() {
            if let Some(st) = self.daemon.as_mut().unwrap().try_wait().unwrap() {
                panic!("jarvisd exited {st}:\n{}", self.log());
            }
            assert!(Instant::now() < deadline, "no socket:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.daemon.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("jarvisd.log")).unwrap_or_default()
    }

    fn ctl_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&*JARVISCTL);
        c.arg("--socket")
            .arg(&self.socket)
            .args(args)
            .stdin(Stdio::null());
        c
    }

    fn ctl(&self, args: &[&str]) -> Output {
        self.ctl_cmd(args).output().expect("run jarvisctl")
    }

    /// jarvisctl's JSON answer; `ok`: whether it must have exited 0 (else 1).
    fn json(&self, args: &[&str], ok: bool) -> Value {
        let out = self.ctl(args);
        assert_eq!(
            out.status.code(),
            Some(if ok { 0 } else { 1 }),
            "jarvisctl {args:?}: {}\nstdout: {}\njarvisd:\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout),
            self.log()
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "jarvisctl {args:?}: not JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    fn units(&self) -> Vec<Value> {
        self.json(&["status", "--json"], true)["units"]
            .as_array()
            .unwrap()
            .clone()
    }

    fn names(&self) -> Vec<String> {
        self.units()
            .iter()
            .map(|u| u["name"].as_str().unwrap().to_string())
            .collect()
    }

    /// Waits until `name` runs (healthy where it has a check); its pid.
    fn running(&self, name: &str) -> i32 {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let u = self.units().into_iter().find(|u| u["name"] == name);
            if let Some(u) = &u {
                if u["state"] == "running"
                    && u["pid"].is_number()
                    && (u["health"].is_null() || u["health"] == "healthy")
                {
                    return u["pid"].as_i64().unwrap() as i32;
                }
            }
            assert!(
                Instant::now() < deadline,
                "{name} does not run: {u:?}\njarvisd:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn generations(&self) -> Vec<(u64, String)> {
        self.json(&["generations", "--json"], true)["generations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| {
                for key in ["revision", "date"] {
                    assert!(g[key].is_string(), "{g}");
                }
                (
                    g["number"].as_u64().unwrap(),
                    g["state"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(c) = self.daemon.take() {
            stop_child(c);
        }
        clear_cgroup_parent(&self.cgroup_parent);
    }
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=jarvis tests",
            "-c",
            "user.email=tests@jarvis.invalid",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git (the git package)");
    assert!(out.status.success(), "git {args:?}: {out:?}");
}

/// A bare repository `origin.git` and its work tree, whose commits the
/// test makes with [`Repo::commit`].
struct Repo {
    work: PathBuf,
    origin: PathBuf,
}

impl Repo {
    fn new(dir: &Path) -> Repo {
        let (work, origin) = (dir.join("work"), dir.join("origin.git"));
        fs::create_dir_all(work.join("units")).unwrap();
        git(dir, &["init", "-q", "--bare", origin.to_str().unwrap()]);
        git(&work, &["init", "-q"]);
        git(
            &work,
            &["remote", "add", "origin", origin.to_str().unwrap()],
        );
        Repo { work, origin }
    }

    /// Writes `units` (name, TOML; None removes it) under `units/`,
    /// commits, tags `tag` and pushes.
    fn commit(&self, tag: &str, units: &[(&str, Option<&str>)]) {
        for (name, text) in units {
            let p = self.work.join("units").join(format!("{name}.toml"));
            match text {
                Some(t) => fs::write(&p, t).unwrap(),
                None => fs::remove_file(&p).unwrap(),
            }
        }
        git(&self.work, &["add", "-A"]);
        git(&self.work, &["commit", "-qm", tag]);
        git(&self.work, &["tag", tag]);
        git(&self.work, &["push", "-q", "origin", "main", "--tags"]);
    }

    fn origin(&self) -> &str {
        self.origin.to_str().unwrap()
    }
}

fn sleeper(env: &str) -> String {
    format!("[env]\nVERSION = \"{env}\"\n[native]\ncommand = [\"sleep\", \"1000\"]\n")
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

/// The plan's four lists.
fn plan(r: &Value) -> [Vec<String>; 4] {
    ["start", "restart", "stop", "unchanged"].map(|k| strings(&r["plan"][k]))
}

fn environ(pid: i32) -> String {
    String::from_utf8_lossy(&fs::read(format!("/proc/{pid}/environ")).unwrap_or_default())
        .replace('\0', "\n")
}

fn v(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[test]
fn apply_plans_gates_rolls_back_and_survives_restarts() {
    if !root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let repo = Repo::new(dir.path());
    let v1b = sleeper("1");
    repo.commit("v1", &[("a", Some(&sleeper("a"))), ("b", Some(&v1b))]);
    // v2: b changes, c is new.
    repo.commit(
        "v2",
        &[("b", Some(&sleeper("2"))), ("c", Some(&sleeper("c")))],
    );
    // v3: b's health check never passes.
    let sick = format!(
        "{}[health]\nexec = [\"false\"]\ninterval = \"200ms\"\nretries = 1\n",
        sleeper("3")
    );
    repo.commit("v3", &[("b", Some(&sick))]);
    // An invalid unit: a key of no section.
    repo.commit(
        "bad",
        &[(
            "a",
            Some("[native]\ncommand = [\"sleep\", \"1\"]\nbogus = 1\n"),
        )],
    );

    let mut lab = Lab::start();
    assert!(lab.names().is_empty(), "no generation yet: no units");
    assert!(lab.generations().is_empty());

    // v1: everything starts.
    let r = lab.json(
        &[
            "apply",
            "--repo",
            repo.origin(),
            "--rev",
            "v1",
            "--path",
            "units",
            "--json",
        ],
        true,
    );
    assert_eq!(r["result"], "applied", "{r}");
    assert_eq!(r["generation"], 1);
    assert!(r["reason"].is_null(), "{r}");
    assert_eq!(plan(&r), [v(&["a", "b"]), v(&[]), v(&[]), v(&[])]);
    let a = lab.running("a");
    let b1 = lab.running("b");
    assert!(environ(b1).contains("VERSION=1"));

    // v2, with the repository and path of the active generation: c starts,
    // b restarts, a keeps its pid.
    let r = lab.json(&["apply", "--rev", "v2", "--json"], true);
    assert_eq!(r["result"], "applied", "{r}");
    assert_eq!(r["generation"], 2);
    assert_eq!(plan(&r), [v(&["c"]), v(&["b"]), v(&[]), v(&["a"])]);
    let b2 = lab.running("b");
    assert_ne!(b2, b1);
    assert!(environ(b2).contains("VERSION=2"));
    let c = lab.running("c");
    assert_eq!(lab.running("a"), a, "an unchanged unit keeps running");
    assert_eq!(
        lab.generations(),
        [(1, "previous".into()), (2, "active".into())]
    );

    // v3 fails its health gate: v2 comes back by itself, exit 1.
    let r = lab.json(
        &["apply", "--rev", "v3", "--timeout", "30s", "--json"],
        false,
    );
    assert_eq!(r["result"], "rolled-back", "{r}");
    assert_eq!(r["generation"], 3);
    assert_eq!(plan(&r), [v(&[]), v(&["b"]), v(&[]), v(&["a", "c"])]);
    let reason = r["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("b "),
        "names the unit that failed: {reason}"
    );
    let b = lab.running("b");
    assert!(environ(b).contains("VERSION=2"), "v2's b is back");
    assert_eq!(lab.running("a"), a);
    assert_eq!(lab.running("c"), c);
    assert_eq!(
        lab.generations(),
        [
            (1, "previous".into()),
            (2, "active".into()),
            (3, "rolled-back".into())
        ]
    );

    // An invalid revision changes nothing and says where.
    let r = lab.json(&["apply", "--rev", "bad", "--json"], false);
    assert_eq!(r["result"], "invalid", "{r}");
    let reason = r["reason"].as_str().unwrap();
    assert!(reason.contains("units/a.toml:3:1"), "{reason}");
    assert_eq!(lab.generations().len(), 3);
    assert_eq!(lab.running("a"), a);
    assert_eq!(lab.running("b"), b);

    // --dry-run: the plan back to v1, nothing changed.
    let r = lab.json(&["apply", "--rev", "v1", "--dry-run", "--json"], true);
    assert_eq!(r["result"], "planned", "{r}");
    assert_eq!(plan(&r), [v(&[]), v(&["b"]), v(&["c"]), v(&["a"])]);
    assert_eq!(lab.running("c"), c);
    assert_eq!(lab.running("b"), b);
    assert_eq!(lab.generations().len(), 3);
    assert!(
        !lab.state.join("generations/.dry-run").exists(),
        "a dry run keeps no checkout"
    );
    // The human plan.
    let out = lab.ctl(&["apply", "--rev", "v1", "--dry-run"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("  ~ b (restart)") && text.contains("  - c (stop)"),
        "{text}"
    );
    assert!(text.contains("planned"), "{text}");

    // rollback to v1: c stops, b is v1's again, a stays.
    let r = lab.json(&["rollback", "1", "--json"], true);
    assert_eq!(r["result"], "applied", "{r}");
    assert_eq!(r["generation"], 1);
    assert_eq!(plan(&r), [v(&[]), v(&["b"]), v(&["c"]), v(&["a"])]);
    let b = lab.running("b");
    assert!(environ(b).contains("VERSION=1"));
    assert_eq!(lab.running("a"), a);
    assert_eq!(lab.names(), ["a", "b"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(c) {
        assert!(Instant::now() < deadline, "c still runs");
        std::thread::sleep(Duration::from_millis(20));
    }
    let gens = [
        (1, "active".to_string()),
        (2, "previous".to_string()),
        (3, "rolled-back".to_string()),
    ];
    assert_eq!(lab.generations(), gens);

    // The generations and the active set survive a restart of jarvisd;
    // the units keep running, re-adopted, the same processes.
    lab.kill9();
    lab.spawn();
    assert_eq!(lab.generations(), gens);
    assert_eq!(lab.names(), ["a", "b"]);
    assert_eq!(lab.running("a"), a);
    assert_eq!(lab.running("b"), b);
    // And `rollback` without a number goes to the one active before.
    let r = lab.json(&["rollback", "--json"], true);
    assert_eq!(r["generation"], 2, "{r}");
    assert_eq!(lab.running("a"), a);
}

#[test]
fn kill_9_during_an_apply_comes_back_on_the_old_generation_whole() {
    if !root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let repo = Repo::new(dir.path());
    repo.commit(
        "v1",
        &[("a", Some(&sleeper("a"))), ("b", Some(&sleeper("1")))],
    );
    // v2: b restarts with a check that passes only once the test says so
    // (never, here), c is new: the apply stays in its health gate.
    let flag = dir.path().join("healthy");
    let slow = format!(
        "{}[health]\nexec = [\"test\", \"-e\", \"{}\"]\ninterval = \"200ms\"\nretries = 1000\n",
        sleeper("2"),
        flag.display()
    );
    repo.commit("v2", &[("b", Some(&slow)), ("c", Some(&sleeper("c")))]);

    let mut lab = Lab::start();
    let r = lab.json(
        &[
            "apply",
            "--repo",
            repo.origin(),
            "--rev",
            "v1",
            "--path",
            "units",
            "--json",
        ],
        true,
    );
    assert_eq!(r["result"], "applied", "{r}");
    let a = lab.running("a");
    let b1 = lab.running("b");

    let mut apply = lab
        .ctl_cmd(&["apply", "--rev", "v2", "--timeout", "5m", "--json"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the new set is half there: c runs, b runs v2's definition.
    let deadline = Instant::now() + Duration::from_secs(20);
    let (c, b2) = loop {
        let units = lab.units();
        let pid = |n: &str| {
            units
                .iter()
                .find(|u| u["name"] == n && u["state"] == "running")
                .and_then(|u| u["pid"].as_i64())
                .map(|p| p as i32)
        };
        if let (Some(c), Some(b)) = (pid("c"), pid("b")) {
            if environ(b).contains("VERSION=2") {
                break (c, b);
            }
        }
        assert!(
            Instant::now() < deadline,
            "v2 did not start:\n{}",
            lab.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(
        lab.generations(),
        [(1, "active".into()), (2, "applying".into())],
        "not switched yet"
    );
    lab.kill9();
    let _ = apply.wait();

    lab.spawn();
    // The old generation, whole: b runs v1's definition again, c is gone,
    // a never stopped.
    assert_eq!(
        lab.generations(),
        [(1, "active".into()), (2, "failed".into())]
    );
    assert_eq!(lab.names(), ["a", "b"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let b = loop {
        let b = lab.running("b");
        if b != b2 && environ(b).contains("VERSION=1") {
            break b;
        }
        assert!(Instant::now() < deadline, "b runs v2 still:\n{}", lab.log());
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_ne!(b, b1);
    while alive(c) || alive(b2) {
        assert!(
            Instant::now() < deadline,
            "a run of v2 is left:\n{}",
            lab.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(lab.running("a"), a);
    // The next apply starts from there.
    let r = lab.json(&["apply", "--rev", "v2", "--dry-run", "--json"], true);
    assert_eq!(plan(&r), [v(&["c"]), v(&["b"]), v(&[]), v(&["a"])]);
    assert_eq!(r["generation"], 3);
    // A gate that times out (b's check keeps failing without b being
    // declared unhealthy): rolled back, c stopped again, b is v1's.
    let r = lab.json(
        &["apply", "--rev", "v2", "--timeout", "2s", "--json"],
        false,
    );
    assert_eq!(r["result"], "rolled-back", "{r}");
    let reason = r["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("b ") && reason.contains("not ready within 2s"),
        "{reason}"
    );
    assert_eq!(lab.names(), ["a", "b"]);
    assert!(environ(lab.running("b")).contains("VERSION=1"));
    assert_eq!(lab.running("a"), a);
    assert_eq!(
        lab.generations(),
        [
            (1, "active".into()),
            (2, "failed".into()),
            (3, "rolled-back".into())
        ]
    );
}

#[test]
fn a_repository_file_counts_by_content_not_by_generation() {
    if !root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let repo = Repo::new(dir.path());
    fs::create_dir(repo.work.join("env")).unwrap();
    fs::write(repo.work.join("env/a.env"), "VERSION=1\n").unwrap();
    // a reads its environment from the repository, by a relative path.
    let a = "env_file = [\"env/a.env\"]\n[native]\ncommand = [\"sleep\", \"1000\"]\n";
    repo.commit("v1", &[("a", Some(a)), ("b", Some(&sleeper("1")))]);
    repo.commit("v2", &[("b", Some(&sleeper("2")))]);
    fs::write(repo.work.join("env/a.env"), "VERSION=2\n").unwrap();
    repo.commit("v3", &[]);

    let lab = Lab::start();
    let r = lab.json(
        &[
            "apply",
            "--repo",
            repo.origin(),
            "--rev",
            "v1",
            "--path",
            "units",
            "--json",
        ],
        true,
    );
    assert_eq!(r["result"], "applied", "{r}");
    let a1 = lab.running("a");
    assert!(environ(a1).contains("VERSION=1"));
    // Its file is in another directory in generation 2, with the same
    // content: a is unchanged.
    let r = lab.json(&["apply", "--rev", "v2", "--json"], true);
    assert_eq!(plan(&r), [v(&[]), v(&["b"]), v(&[]), v(&["a"])], "{r}");
    assert_eq!(lab.running("a"), a1);
    // `up` reads the active generation again: nothing changes.
    let up: Value = lab.json(&["up", "--json"], true);
    assert_eq!(strings(&up["unchanged"]), ["a", "b"], "{up}");
    assert_eq!(lab.running("a"), a1);
    // The file's content changed: a restarts with it.
    let r = lab.json(&["apply", "--rev", "v3", "--json"], true);
    assert_eq!(plan(&r), [v(&[]), v(&["a"]), v(&[]), v(&["b"])], "{r}");
    let a3 = lab.running("a");
    assert_ne!(a3, a1);
    assert!(environ(a3).contains("VERSION=2"));
}

/// A plain units directory (`--units`) converges after a restart too: a
/// unit whose file changed while jarvisd was away is restarted from the new
/// file; the others are re-adopted as they run.
#[test]
fn a_unit_file_changed_while_jarvisd_was_away_is_restarted() {
    if !root() {
        return;
    }
    let mut j = crate::harness::Jarvis::start(&[("a", &sleeper("1")), ("b", &sleeper("b"))]);
    let (a1, b) = (j.running("a"), j.running("b"));
    let pid = |u: &Value| u["pid"].as_i64().unwrap() as i32;
    let (a1, b) = (pid(&a1), pid(&b));
    assert!(environ(a1).contains("VERSION=1"));
    // apply is for generations, not a units directory.
    let out = j.ctl(&["apply", "--repo", "file:///nonexistent", "--json"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--units"),
        "{out:?}"
    );
    j.kill_daemon();
    j.write_unit("a", &sleeper("2"));
    j.spawn_daemon();
    let u = j.wait_unit("a", Duration::from_secs(20), |u| {
        u["state"] == "running" && u["pid"].is_number() && u["pid"] != a1
    });
    assert!(environ(pid(&u)).contains("VERSION=2"));
    assert!(!alive(a1) || environ(a1).is_empty());
    assert_eq!(pid(&j.running("b")), b, "b is re-adopted, not restarted");
}

#[test]
fn runs_left_alone_when_the_active_generation_did_not_load_are_readopted_by_the_next_apply() {
    if !root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let repo = Repo::new(dir.path());
    repo.commit(
        "v1",
        &[("a", Some(&sleeper("a"))), ("b", Some(&sleeper("b")))],
    );
    let mut lab = Lab::start();
    let r = lab.json(
        &[
            "apply",
            "--repo",
            repo.origin(),
            "--rev",
            "v1",
            "--path",
            "units",
            "--json",
        ],
        true,
    );
    assert_eq!(r["result"], "applied", "{r}");
    let pids = [lab.running("a"), lab.running("b")];
    // jarvisd goes away, and the active generation's files are damaged: at
    // boot it does not load, and the runs are left alone.
    lab.kill9();
    let unit = lab
        .state
        .join("generations")
        .join("1")
        .join("units")
        .join("b.toml");
    fs::write(&unit, "[native]\ncommand = [\"sleep\", \"1\"]\nbogus = 1\n").unwrap();
    lab.spawn();
    assert!(lab.names().is_empty(), "nothing loaded");
    let st = lab.json(&["status", "--json"], true);
    assert!(
        st["problems"][0]
            .as_str()
            .is_some_and(|p| p.contains("the active generation does not load")),
        "{st}"
    );
    for pid in pids {
        assert!(alive(pid), "a run left alone was stopped");
    }
    // The next apply takes them back: the same processes, not a second
    // copy of each.
    let r = lab.json(
        &[
            "apply",
            "--repo",
            repo.origin(),
            "--rev",
            "v1",
            "--path",
            "units",
            "--json",
        ],
        true,
    );
    assert_eq!(r["result"], "applied", "{r}");
    assert_eq!(
        lab.running("a"),
        pids[0],
        "a was started again:\n{}",
        lab.log()
    );
    assert_eq!(
        lab.running("b"),
        pids[1],
        "b was started again:\n{}",
        lab.log()
    );
    let st = lab.json(&["status", "--json"], true);
    assert!(st.get("problems").is_none(), "the problem is over: {st}");
    for (name, pid) in ["a", "b"].iter().zip(pids) {
        let procs = cgroup_procs(&lab.cgroup_parent, name);
        assert_eq!(procs, [pid], "{name}: one process, the one left alone");
    }
}
