//! jarvisd deploying a git repository by itself: `--git` polling (each new
//! commit of the branch applied once, through the health gate; one rolled
//! back or invalid not tried again until the branch moves, across a
//! restart too) and the push webhook on `--http` (a good signature in
//! either header applies, a bad or missing one gets 401 and changes
//! nothing, an oversized body is refused). The repository is a bare one the
//! test makes with the `git` command; HTTP stays on 127.0.0.1; signatures
//! are made with the `openssl` command.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{
    clear_cgroup_parent, free_port, http, root, stop_child, unique, JARVISCTL, JARVISD,
};

/// A jarvisd with no `--units`, on a state directory of its own, started
/// with `args`.
struct Lab {
    dir: tempfile::TempDir,
    state: PathBuf,
    socket: PathBuf,
    cgroup_parent: String,
    args: Vec<String>,
    daemon: Option<Child>,
}

impl Lab {
    fn start(args: &[String]) -> Lab {
        let dir = tempfile::Builder::new()
            .prefix("jarvis-it-trigger-")
            .tempdir()
            .unwrap();
        let mut lab = Lab {
            state: dir.path().join("state"),
            socket: dir.path().join("jarvis.sock"),
            cgroup_parent: format!("jarvis-it-trigger-{}-{}", std::process::id(), unique()),
            args: args.to_vec(),
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
            .args(&self.args)
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

    fn ctl(&self, args: &[&str]) -> Output {
        Command::new(&*JARVISCTL)
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run jarvisctl")
    }

    fn json(&self, args: &[&str]) -> Value {
        let out = self.ctl(args);
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "jarvisctl {args:?}: not JSON ({e}): {}{}\njarvisd:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                self.log()
            )
        })
    }

    /// (number, revision, state) of each generation.
    fn generations(&self) -> Vec<(u64, String, String)> {
        self.json(&["generations", "--json"])["generations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| {
                (
                    g["number"].as_u64().unwrap(),
                    g["revision"].as_str().unwrap().to_string(),
                    g["state"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    /// Waits until the generations are `want` (number, revision, state).
    fn wait_generations(&self, want: &[(u64, &str, &str)]) {
        let want: Vec<(u64, String, String)> = want
            .iter()
            .map(|(n, r, s)| (*n, r.to_string(), s.to_string()))
            .collect();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let got = self.generations();
            if got == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "generations: {got:?}, want {want:?}\njarvisd:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until `name` runs (healthy where it has a check); its pid.
    fn running(&self, name: &str) -> i32 {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let units = self.json(&["status", "--json"]);
            let u = units["units"]
                .as_array()
                .unwrap()
                .iter()
                .find(|u| u["name"] == name)
                .cloned();
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

    /// How many times the poller began applying `revision`.
    fn applies_of(&self, revision: &str) -> usize {
        self.log()
            .lines()
            .filter(|l| l.contains("git: a new revision") && l.contains(revision))
            .count()
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

fn git(dir: &Path, args: &[&str]) -> String {
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
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A bare repository `origin.git` and its work tree.
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

    /// Writes `units` (name, TOML) under `units/`, commits and pushes main;
    /// the commit's id.
    fn push(&self, msg: &str, units: &[(&str, &str)]) -> String {
        for (name, text) in units {
            fs::write(self.work.join("units").join(format!("{name}.toml")), text).unwrap();
        }
        git(&self.work, &["add", "-A"]);
        git(&self.work, &["commit", "-qm", msg]);
        git(&self.work, &["push", "-q", "origin", "main"]);
        git(&self.work, &["rev-parse", "HEAD"])
    }

    fn url(&self) -> String {
        format!("file://{}", self.origin.display())
    }
}

fn sleeper(version: &str) -> String {
    format!("[env]\nVERSION = \"{version}\"\n[native]\ncommand = [\"sleep\", \"1000\"]\n")
}

/// A sleeper whose health check never passes.
fn sick(version: &str) -> String {
    format!(
        "{}[health]\nexec = [\"false\"]\ninterval = \"200ms\"\nretries = 1\n",
        sleeper(version)
    )
}

fn environ(pid: i32) -> String {
    String::from_utf8_lossy(&fs::read(format!("/proc/{pid}/environ")).unwrap_or_default())
        .replace('\0', "\n")
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn polling_applies_each_new_commit_once_and_never_a_failed_one_again() {
    if !root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let repo = Repo::new(dir.path());
    // The branch does not exist yet: the poller says so and goes on.
    let mut lab = Lab::start(&args(&[
        "--git",
        &repo.url(),
        "--git-interval",
        "1s",
        "--git-path",
        "units",
    ]));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !lab.log().contains("git: cannot apply now") {
        assert!(
            Instant::now() < deadline,
            "no failure logged:\n{}",
            lab.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(lab.generations().is_empty());

    // v1: applied by itself.
    let v1 = repo.push("v1", &[("a", &sleeper("a")), ("b", &sleeper("1"))]);
    lab.wait_generations(&[(1, &v1, "active")]);
    let a = lab.running("a");
    let b1 = lab.running("b");

    // v2: b changes, c is new; a keeps running.
    let v2 = repo.push("v2", &[("b", &sleeper("2")), ("c", &sleeper("c"))]);
    lab.wait_generations(&[(1, &v1, "previous"), (2, &v2, "active")]);
    let b2 = lab.running("b");
    assert_ne!(b2, b1);
    assert!(environ(b2).contains("VERSION=2"));
    lab.running("c");
    assert_eq!(lab.running("a"), a, "an unchanged unit keeps its process");

    // v3 fails its health gate: rolled back to v2 by itself, once.
    let v3 = repo.push("v3", &[("b", &sick("3"))]);
    lab.wait_generations(&[
        (1, &v1, "previous"),
        (2, &v2, "active"),
        (3, &v3, "rolled-back"),
    ]);
    let b = lab.running("b");
    assert!(environ(b).contains("VERSION=2"), "v2's b is back");
    // Invalid: a key of no section. Nothing changes, no generation.
    let bad = repo.push(
        "bad",
        &[("a", "[native]\ncommand = [\"sleep\", \"1\"]\nbogus = 1\n")],
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while !lab
        .log()
        .lines()
        .any(|l| l.contains("the revision is invalid") && l.contains("units/a.toml:3:1"))
    {
        assert!(
            Instant::now() < deadline,
            "no invalid logged:\n{}",
            lab.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Several intervals later, neither was tried again.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(lab.applies_of(&v3), 1, "{}", lab.log());
    assert_eq!(lab.applies_of(&bad), 1, "{}", lab.log());
    assert_eq!(lab.generations().len(), 3);
    assert_eq!(lab.running("a"), a);
    assert_eq!(lab.running("b"), b);

    // Nor after a restart of jarvisd.
    lab.kill9();
    lab.spawn();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(lab.applies_of(&bad), 1, "{}", lab.log());
    assert_eq!(lab.generations().len(), 3);
    assert_eq!(lab.running("a"), a);

    // `apply` without --repo plans from the --git repository's branch.
    let r = lab.json(&["apply", "--dry-run", "--json"]);
    assert_eq!(
        r["result"], "invalid",
        "the branch's head is the bad commit: {r}"
    );

    // The branch moves on: applied.
    let v4 = repo.push("v4", &[("a", &sleeper("a")), ("b", &sleeper("4"))]);
    lab.wait_generations(&[
        (1, &v1, "previous"),
        (2, &v2, "previous"),
        (3, &v3, "rolled-back"),
        (4, &v4, "active"),
    ]);
    assert!(environ(lab.running("b")).contains("VERSION=4"));
    assert_eq!(lab.running("a"), a, "a's definition is v1's again");
    let r = lab.json(&["apply", "--dry-run", "--json"]);
    assert_eq!(r["result"], "planned", "{r}");
    assert_eq!(r["plan"]["unchanged"], serde_json::json!(["a", "b", "c"]));
}

/// HMAC-SHA256 of `body` under `secret`, in hex, by openssl.
fn hmac(secret: &str, body: &[u8]) -> String {
    let mut child = Command::new("openssl")
        .args(["dgst", "-sha256", "-hmac", secret])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("openssl (the openssl package)");
    child.stdin.take().unwrap().write_all(body).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "openssl: {out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let hex = text.split_whitespace().last().unwrap().to_string();
    assert_eq!(hex.len(), 64, "{text}");
    hex
}

fn hook(port: u16, headers: &[(&str, String)], body: &[u8]) -> (u16, String) {
    http(port, "POST", "/hooks/git", headers, Some(body), body.len())
}

#[test]
fn the_webhook_applies_on_a_good_signature_only() {
    if !root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let repo = Repo::new(dir.path());
    let v1 = repo.push("v1", &[("a", &sleeper("1"))]);
    let secret = "a webhook secret";
    let secret_file = dir.path().join("webhook-secret");
    fs::write(&secret_file, format!("{secret}\n")).unwrap();
    let port = free_port();
    // An hour between polls: whatever is applied after the first look is
    // the hook's doing.
    let lab = Lab::start(&args(&[
        "--git",
        &repo.url(),
        "--git-interval",
        "1h",
        "--git-path",
        "units",
        "--http",
        &format!("127.0.0.1:{port}"),
        "--webhook-secret-file",
        secret_file.to_str().unwrap(),
    ]));
    lab.wait_generations(&[(1, &v1, "active")]);
    assert!(environ(lab.running("a")).contains("VERSION=1"));

    let v2 = repo.push("v2", &[("a", &sleeper("2"))]);
    let body = br#"{"ref": "refs/heads/main", "after": "..."}"#;
    // No signature, a signature with another secret, a signature of
    // another body: 401, and nothing is applied.
    let (st, text) = hook(port, &[], body);
    assert_eq!(st, 401, "{text}");
    assert!(text.contains("no signature"), "{text}");
    let wrong = hmac("another secret", body);
    let (st, _) = hook(
        port,
        &[("X-Hub-Signature-256", format!("sha256={wrong}"))],
        body,
    );
    assert_eq!(st, 401);
    let other = hmac(secret, b"another body");
    let (st, _) = hook(port, &[("X-Gitea-Signature", other)], body);
    assert_eq!(st, 401);
    // Over 1 MiB: refused before the body is read.
    let (st, _) = http(
        port,
        "POST",
        "/hooks/git",
        &[("X-Gitea-Signature", hmac(secret, body))],
        None,
        2 << 20,
    );
    assert_eq!(st, 413);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(lab.generations().len(), 1, "{}", lab.log());

    // GitHub's header (Forgejo sends it too): applied.
    let sig = hmac(secret, body);
    let (st, text) = hook(
        port,
        &[
            ("X-GitHub-Event", "push".into()),
            ("X-Hub-Signature-256", format!("sha256={sig}")),
        ],
        body,
    );
    assert_eq!(st, 202, "{text}");
    lab.wait_generations(&[(1, &v1, "previous"), (2, &v2, "active")]);
    assert!(environ(lab.running("a")).contains("VERSION=2"));

    // Gitea's header: applied.
    let v3 = repo.push("v3", &[("a", &sleeper("3"))]);
    let (st, text) = hook(
        port,
        &[
            ("X-Gitea-Event", "push".into()),
            ("X-Gitea-Signature", sig.clone()),
        ],
        body,
    );
    assert_eq!(st, 202, "{text}");
    lab.wait_generations(&[
        (1, &v1, "previous"),
        (2, &v2, "previous"),
        (3, &v3, "active"),
    ]);
    assert!(environ(lab.running("a")).contains("VERSION=3"));

    // A forge's ping when the hook is made: answered, nothing applied.
    let v4 = repo.push("v4", &[("a", &sleeper("4"))]);
    let (st, _) = hook(
        port,
        &[
            ("X-GitHub-Event", "ping".into()),
            ("X-Hub-Signature-256", format!("sha256={sig}")),
        ],
        body,
    );
    assert_eq!(st, 200);
    // Nothing else is served but reads.
    let (st, _) = http(port, "GET", "/hooks/git", &[], None, 0);
    assert_eq!(st, 405);
    let (st, _) = http(port, "GET", "/api/v1/nothing", &[], None, 0);
    assert_eq!(st, 404);
    let (st, _) = http(port, "POST", "/api/v1/status", &[], Some(b""), 0);
    assert_eq!(st, 405);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(lab.applies_of(&v4), 0, "{}", lab.log());
    assert_eq!(lab.generations().len(), 3);
}

#[test]
fn without_a_secret_the_hook_is_not_served_and_jarvisd_says_why() {
    if !root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let repo = Repo::new(dir.path());
    let v1 = repo.push("v1", &[("a", &sleeper("1"))]);
    let port = free_port();
    let lab = Lab::start(&args(&[
        "--git",
        &repo.url(),
        "--git-interval",
        "1h",
        "--git-path",
        "units",
        "--http",
        &format!("127.0.0.1:{port}"),
    ]));
    lab.wait_generations(&[(1, &v1, "active")]);
    repo.push("v2", &[("a", &sleeper("2"))]);
    let body = b"{}";
    let (st, text) = hook(port, &[("X-Gitea-Signature", hmac("s", body))], body);
    assert_eq!(st, 404);
    assert!(text.contains("--webhook-secret-file"), "{text}");
    assert!(
        lab.log().contains(
            "/hooks/git is not served: jarvisd was started without --webhook-secret-file"
        ),
        "{}",
        lab.log()
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(lab.generations().len(), 1);
}
