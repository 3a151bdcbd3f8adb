//! age-encrypted env files and secrets: `jarvisctl secret encrypt` writes
//! them, jarvisd decrypts them at each start with `--age-identity` (an
//! identity from Debian's `age-keygen`, or an SSH ed25519 key from
//! `ssh-keygen`), and the plaintext reaches the units and nothing else: not
//! the state directory, `status`, `config`, the logs.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::containers::wait_log;
use crate::harness::*;

/// Runs `cmd`, insisting on success; its stdout.
fn run(cmd: &mut Command) -> String {
    let out = cmd.stdin(Stdio::null()).output().expect("run");
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `jarvisctl secret encrypt FILE --recipient R... [-o OUT]`; the output.
fn encrypt(file: &Path, recipients: &[&str], out: Option<&Path>) -> PathBuf {
    let mut cmd = Command::new(&*JARVISCTL);
    cmd.args(["secret", "encrypt"]).arg(file);
    for r in recipients {
        cmd.args(["--recipient", r]);
    }
    if let Some(o) = out {
        cmd.arg("-o").arg(o);
    }
    run(&mut cmd);
    let out = out.map(Path::to_path_buf).unwrap_or_else(|| {
        let mut p = file.as_os_str().to_owned();
        p.push(".age");
        PathBuf::from(p)
    });
    let bytes = std::fs::read(&out).unwrap();
    assert!(
        bytes.starts_with(b"age-encryption.org/v1\n"),
        "{}",
        out.display()
    );
    out
}

/// A new age identity file (age-keygen) and its recipient.
fn age_identity(path: &Path) -> String {
    run(Command::new("age-keygen").arg("-o").arg(path));
    run(Command::new("age-keygen").arg("-y").arg(path))
        .trim()
        .to_string()
}

/// The hex SHA-256 of `s`, as the units print it.
fn sha256(s: &str) -> String {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8(out.stdout).unwrap()[..64].to_string()
}

/// A value no file holds by chance.
fn unique(what: &str) -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{what}-{}-{t}", std::process::id())
}

/// Whether the tools the tests drive are here; else the test is skipped.
fn have(tool: &str, package: &str) -> bool {
    let ok = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        skip(true, &format!("no {tool} (apt-get install {package})"));
    }
    ok
}

/// A native unit that prints the hashes of its secret and of `$APP_MOTTO`.
fn native_unit(env_file: &Path, secret: &Path) -> String {
    format!(
        r#"
env_file = ["{}"]
[native]
command = ["/bin/sh", "-c", "echo secret=$(sha256sum < \"$CREDENTIALS_DIRECTORY/db_password\" | cut -c1-64) motto=$(printf %s \"$APP_MOTTO\" | sha256sum | cut -c1-64); echo ready; exec sleep 1000"]
[[secret]]
source = "{}"
[stop]
timeout = "1s"
"#,
        env_file.display(),
        secret.display()
    )
}

/// Every place jarvis shows or keeps something: none may hold `plain`.
/// Files under the state directory count unless they are on a tmpfs (a
/// run's secrets, in memory); those are returned.
fn assert_nowhere(j: &Jarvis, plain: &str, units: &[&str]) -> Vec<String> {
    let status = j.ok(&["status", "--json"]);
    assert!(!status.contains(plain), "status: {status}");
    let config = j.ok(&["config", "--json"]);
    assert!(!config.contains(plain), "config: {config}");
    let config = j.ok(&["config"]);
    assert!(!config.contains(plain), "config: {config}");
    for u in units {
        assert!(!j.logs(u).contains(plain), "{u}'s log");
    }
    assert!(!j.daemon_log().contains(plain), "jarvisd's log");
    let grep = Command::new("grep")
        .args(["-r", "-l", "-F", "--", plain])
        .arg(&j.state)
        .output()
        .unwrap();
    let hits: Vec<String> = String::from_utf8_lossy(&grep.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    for hit in &hits {
        let fs = run(Command::new("stat").args(["-f", "-c", "%T", hit]));
        assert_eq!(fs.trim(), "tmpfs", "the plaintext is on disk at {hit}");
    }
    hits
}

#[test]
fn age_secrets_and_env_files_reach_native_and_container_units_and_nothing_else() {
    if !root() || !have("age-keygen", "age") {
        return;
    }
    let keys = tempfile::tempdir().unwrap();
    let k = keys.path();
    let identity = k.join("age.key");
    let recipient = age_identity(&identity);
    let other = age_identity(&k.join("other.key"));

    let password = unique("pw");
    let motto = unique("motto");
    std::fs::write(k.join("db_password"), &password).unwrap();
    std::fs::write(k.join("app.env"), format!("APP_MOTTO=\"{motto}\"\n")).unwrap();
    // To two recipients: this host and another.
    let secret = encrypt(&k.join("db_password"), &[&other, &recipient], None);
    let env_file = encrypt(&k.join("app.env"), &[&recipient], None);
    let wrong = encrypt(
        &k.join("db_password"),
        &[&other],
        Some(&k.join("wrong.age")),
    );
    // Only the encrypted files are left for jarvisd to read.
    std::fs::remove_file(k.join("db_password")).unwrap();
    std::fs::remove_file(k.join("app.env")).unwrap();

    let mut j = Jarvis::start_with(
        &[
            ("app", &native_unit(&env_file, &secret)),
            (
                "wrong",
                &format!(
                    "[native]\ncommand = [\"sleep\", \"1000\"]\n[[secret]]\nsource = \"{}\"\n\
                     target = \"db_password\"\n[restart]\npolicy = \"always\"\n",
                    wrong.display()
                ),
            ),
        ],
        &["--age-identity", identity.to_str().unwrap()],
    );
    let log = wait_log(&j, "app", "ready");
    assert!(
        log.contains(&format!(
            "secret={} motto={}",
            sha256(&password),
            sha256(&motto)
        )),
        "{log}"
    );
    let pid = j.running("app")["pid"].clone();

    // Encrypted to another host: that unit fails, naming the file, and the
    // others run on.
    let u = j.wait_unit("wrong", Duration::from_secs(10), |u| u["state"] == "failed");
    let reason = u["reason"].as_str().unwrap();
    assert!(
        reason.contains(&format!(
            "secret db_password: {}: cannot decrypt: it is not encrypted to the age identity in {}",
            wrong.display(),
            identity.display()
        )),
        "{u:#}"
    );
    assert!(u["pid"].is_null());

    // A container sees the secret at /run/secrets.
    j.import_busybox("busybox:local");
    j.write_unit(
        "box",
        &format!(
            r#"
[container]
image = "busybox:local"
network = "none"
command = ["sh", "-c", "echo secret=$(sha256sum < /run/secrets/db_password | cut -c1-64); echo ready; exec sleep 1000"]
[[secret]]
source = "{}"
[stop]
timeout = "1s"
"#,
            secret.display()
        ),
    );
    j.ok(&["up"]);
    let log = wait_log(&j, "box", "ready");
    assert!(
        log.contains(&format!("secret={}", sha256(&password))),
        "{log}"
    );
    assert_eq!(j.running("app")["pid"], pid, "app kept running throughout");

    // Shown as files, never as content.
    let config: serde_json::Value =
        serde_json::from_str(&j.ok(&["config", "--json", "app"])).unwrap();
    let app = &config["units"][0];
    assert_eq!(app["env_file"][0], env_file.to_str().unwrap(), "{config:#}");
    assert!(app["env"].get("APP_MOTTO").is_none(), "{config:#}");
    assert_nowhere(&j, &password, &["app", "box", "wrong"]);
    assert_nowhere(&j, &motto, &["app", "box", "wrong"]);

    // Decrypted again at each start: a restart gets the same.
    j.ok(&["restart", "app"]);
    j.wait_unit("app", Duration::from_secs(10), |u| {
        u["state"] == "running" && u["pid"] != pid
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while j.logs("app").matches("ready").count() < 2 {
        assert!(std::time::Instant::now() < deadline, "{}", j.logs("app"));
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        j.logs("app")
            .matches(&format!("secret={}", sha256(&password)))
            .count(),
        2
    );
    j.ok(&["down"]);
    assert_nowhere(&j, &password, &["app", "box", "wrong"]);
    j.stop_daemon();
}

#[test]
fn an_ssh_ed25519_key_decrypts_as_agenix_uses_a_host_key() {
    if !root() || !have("ssh-keygen", "openssh-client") {
        return;
    }
    let keys = tempfile::tempdir().unwrap();
    let k = keys.path();
    let host_key = k.join("ssh_host_ed25519_key");
    run(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "host", "-f"])
        .arg(&host_key));
    let public = k.join("ssh_host_ed25519_key.pub");
    let password = unique("pw");
    let motto = unique("motto");
    std::fs::write(k.join("db_password"), &password).unwrap();
    std::fs::write(k.join("app.env"), format!("APP_MOTTO={motto}\n")).unwrap();
    // The key given as a file of keys (as age's -R), and as its line.
    let secret = encrypt(&k.join("db_password"), &[public.to_str().unwrap()], None);
    let line = std::fs::read_to_string(&public).unwrap();
    let env_file = encrypt(&k.join("app.env"), &[line.trim()], None);
    std::fs::remove_file(k.join("db_password")).unwrap();
    std::fs::remove_file(k.join("app.env")).unwrap();

    let j = Jarvis::start_with(
        &[("app", &native_unit(&env_file, &secret))],
        &["--age-identity", host_key.to_str().unwrap()],
    );
    let log = wait_log(&j, "app", "ready");
    assert!(
        log.contains(&format!(
            "secret={} motto={}",
            sha256(&password),
            sha256(&motto)
        )),
        "{log}"
    );
    assert_nowhere(&j, &password, &["app"]);
    assert_nowhere(&j, &motto, &["app"]);
}

/// The mounts under `dir` (from this process's mountinfo), with their
/// filesystem types.
fn mounts_under(dir: &Path) -> Vec<(String, String)> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let dir = dir.to_str().unwrap();
    info.lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let point = left.split(' ').nth(4)?;
            let fs = right.split(' ').next()?;
            (point == dir || point.starts_with(&format!("{dir}/")))
                .then(|| (point.to_string(), fs.to_string()))
        })
        .collect()
}

#[test]
fn a_containers_encrypted_env_file_reaches_its_environment_and_stays_in_memory() {
    if !root() || !have("age-keygen", "age") {
        return;
    }
    let keys = tempfile::tempdir().unwrap();
    let k = keys.path();
    let identity = k.join("age.key");
    let recipient = age_identity(&identity);
    let motto = unique("motto");
    std::fs::write(k.join("app.env"), format!("APP_MOTTO={motto}\n")).unwrap();
    let env_file = encrypt(&k.join("app.env"), &[&recipient], None);
    std::fs::remove_file(k.join("app.env")).unwrap();
    // A plain value beside it is no secret.
    let plain = unique("plain");

    let mut j = Jarvis::start_with(&[], &["--age-identity", identity.to_str().unwrap()]);
    j.import_busybox("busybox:local");
    j.write_unit(
        "box",
        &format!(
            r#"
env_file = ["{}"]
[env]
PLAIN = "{plain}"
[container]
image = "busybox:local"
network = "none"
command = ["sh", "-c", "echo motto=$(printf %s \"$APP_MOTTO\" | sha256sum | cut -c1-64) plain=$PLAIN; echo ready; exec sleep 1000"]
[stop]
timeout = "1s"
"#,
            env_file.display()
        ),
    );
    j.ok(&["up"]);
    let log = wait_log(&j, "box", "ready");
    assert!(
        log.contains(&format!("motto={} plain={plain}", sha256(&motto))),
        "{log}"
    );
    // An exec finds the spec and gets the run's environment.
    let out = j.ok(&[
        "exec",
        "box",
        "--",
        "sh",
        "-c",
        "printf %s \"$APP_MOTTO\" | sha256sum | cut -c1-64",
    ]);
    assert_eq!(out.trim(), sha256(&motto));
    // While it runs: the plaintext is in memory only (libcontainer's state
    // and the bundle included), in the spec the run was made from.
    let state = j.state.join("libcontainer").join("box");
    for f in ["state.json", "youki_config.json"] {
        assert!(state.join(f).is_file(), "no {f} in {}", state.display());
    }
    let hits = assert_nowhere(&j, &motto, &["box"]);
    assert!(!hits.is_empty(), "the spec holds the value, in memory");
    let spec = j.state.join("containers").join("box").join("config.json");
    let fs = run(Command::new("stat")
        .arg("-L")
        .args(["-f", "-c", "%T"])
        .arg(&spec));
    assert_eq!(fs.trim(), "tmpfs", "{}", spec.display());

    // A jarvisd killed and started again finds the run as it was: an exec,
    // as another user too, still gets the spec.
    j.kill_daemon();
    j.spawn_daemon();
    j.running("box");
    let out = j.ok(&[
        "exec",
        "box",
        "--user",
        "65534",
        "--",
        "sh",
        "-c",
        "echo $(id -u) $(printf %s \"$APP_MOTTO\" | sha256sum | cut -c1-64)",
    ]);
    assert_eq!(out.trim(), format!("65534 {}", sha256(&motto)));

    // A restart decrypts it again.
    let pid = j.running("box")["pid"].clone();
    j.ok(&["restart", "box"]);
    j.wait_unit("box", Duration::from_secs(20), |u| {
        u["state"] == "running" && u["pid"] != pid
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while j.logs("box").matches(&sha256(&motto)).count() < 2 {
        assert!(std::time::Instant::now() < deadline, "{}", j.logs("box"));
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_nowhere(&j, &motto, &["box"]);

    // Once the run is over, nothing of it stays mounted, and the
    // plaintext is nowhere.
    j.ok(&["stop", "box"]);
    j.wait_unit("box", Duration::from_secs(20), |u| u["state"] == "stopped");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !mounts_under(&j.state).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}",
            mounts_under(&j.state)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_nowhere(&j, &motto, &["box"]);
    j.ok(&["start", "box"]);
    j.wait_unit("box", Duration::from_secs(20), |u| u["state"] == "running");
    j.remove_unit("box");
    j.ok(&["up"]);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !mounts_under(&j.state).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}",
            mounts_under(&j.state)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_nowhere(&j, &motto, &[]);
    j.stop_daemon();
}
