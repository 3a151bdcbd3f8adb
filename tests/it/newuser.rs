//! What a new user meets: process names in `ps`, `jarvisd --help`, the
//! README's account of `status --json`, and `down` being remembered.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use crate::harness::*;

fn comm(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/comm: {e}"))
        .trim_end()
        .to_string()
}

/// `/proc/PID/cmdline` with the NULs between arguments as spaces, as
/// `ps -f` and `pgrep -f` show it.
fn cmdline(pid: i32) -> String {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/cmdline: {e}"));
    String::from_utf8_lossy(&raw)
        .trim_end_matches('\0')
        .replace('\0', " ")
}

fn shim_pid(j: &Jarvis, unit: &str) -> i32 {
    let path = j.state.join(format!("run/{unit}.run.json"));
    let record: serde_json::Value = serde_json::from_slice(
        &std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap();
    record["shim_pid"].as_i64().unwrap() as i32
}

/// `pgrep ARGS...`: the pids it prints (none when it finds nothing).
fn pgrep(args: &[&str]) -> Vec<i32> {
    let out = Command::new("pgrep")
        .args(args)
        .output()
        .expect("run pgrep");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

#[test]
fn ps_and_pgrep_show_jarvisd_and_each_shim_by_name() {
    if !root() {
        return;
    }
    // A name no other test uses, so pgrep -f finds this test's shim only.
    let unit = format!("named{}", std::process::id());
    let j = Jarvis::start(&[(&unit, "[native]\ncommand = [\"sleep\", \"1000\"]\n")]);
    j.running(&unit);
    let daemon = j.daemon_pid();
    assert_eq!(comm(daemon), "jarvisd", "jarvisd's name in ps and top");
    assert!(
        pgrep(&["-x", "jarvisd"]).contains(&daemon),
        "pgrep -x jarvisd finds the daemon"
    );

    let shim = shim_pid(&j, &unit);
    assert_eq!(comm(shim), "jarvis-shim", "the shim's name in ps and top");
    let line = cmdline(shim);
    assert!(
        line.starts_with(&format!("jarvis-shim {unit} ")),
        "the shim's command line names it and its unit: {line:?}"
    );
    assert_eq!(
        pgrep(&["-f", &format!("^jarvis-shim {unit} ")]),
        vec![shim],
        "pgrep -f 'jarvis-shim UNIT' finds exactly the unit's shim"
    );
    // The unit's own process keeps its own name.
    let pid = j.unit(&unit)["pid"].as_i64().unwrap() as i32;
    assert_eq!(comm(pid), "sleep");

    // A restarted jarvisd is named too, and still recognises (re-adopts)
    // the named shim rather than starting the unit again.
    let mut j = j;
    j.kill_daemon();
    j.spawn_daemon();
    let again = j.running(&unit);
    assert_eq!(
        again["pid"].as_i64(),
        Some(pid as i64),
        "re-adopted: {again:#}"
    );
    assert_eq!(comm(j.daemon_pid()), "jarvisd");
    assert_eq!(shim_pid(&j, &unit), shim);
}

#[test]
fn jarvisd_help_speaks_to_a_user_and_lists_its_environment() {
    let out = Command::new(&*JARVISD)
        .arg("--help")
        .env_remove("JARVIS_SOCKET")
        .output()
        .expect("run jarvisd --help");
    assert!(out.status.success(), "{out:?}");
    let help = String::from_utf8_lossy(&out.stdout);
    for want in [
        "units",
        "JARVIS_LOG",
        "JARVIS_LOG=debug",
        "JARVIS_SOCKET",
        "jarvisctl",
    ] {
        assert!(help.contains(want), "--help names {want}:\n{help}");
    }
    assert!(
        !help.contains("state machine"),
        "--help speaks of what jarvisd does, not of its internals:\n{help}"
    );
}

/// The field names of the README's `status --json` table (rows that start
/// with a backquoted name), in order, repeats kept.
fn readme_status_fields() -> Vec<String> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let start = readme
        .find("`status --json` prints")
        .expect("the README describes status --json");
    let mut fields = vec![];
    let mut in_table = false;
    for line in readme[start..].lines().skip(1) {
        if let Some(rest) = line.strip_prefix("| `") {
            in_table = true;
            let name = rest.split('`').next().unwrap();
            fields.push(name.to_string());
        } else if in_table && !line.starts_with('|') {
            break;
        }
    }
    fields
}

/// The status fields whose README row says they may be absent.
fn readme_optional_status_fields() -> BTreeSet<String> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let start = readme.find("`status --json` prints").unwrap();
    readme[start..]
        .lines()
        .skip_while(|l| !l.starts_with("| `"))
        .take_while(|l| l.starts_with('|'))
        .filter(|l| l.contains("absent"))
        .filter_map(|l| l.strip_prefix("| `")?.split('`').next().map(String::from))
        .collect()
}

#[test]
fn the_readme_names_every_status_json_field_once() {
    if !root() {
        return;
    }
    let j = Jarvis::start(&[("s", "[native]\ncommand = [\"sleep\", \"1000\"]\n")]);
    let u = j.running("s");
    let actual: BTreeSet<String> = u.as_object().unwrap().keys().cloned().collect();
    let listed = readme_status_fields();
    let documented: BTreeSet<String> = listed.iter().cloned().collect();
    assert_eq!(
        listed.len(),
        documented.len(),
        "a field listed twice: {listed:?}"
    );
    // Fields the README says may be absent need not be printed for this
    // unit (no GPU placement); every field printed must be documented.
    let optional = readme_optional_status_fields();
    let missing: BTreeSet<&String> = documented
        .difference(&actual)
        .filter(|f| !optional.contains(*f))
        .collect();
    let undocumented: BTreeSet<&String> = actual.difference(&documented).collect();
    assert!(
        missing.is_empty() && undocumented.is_empty(),
        "the README's status --json fields are the ones status --json prints: \
         documented but not printed {missing:?}, printed but not documented {undocumented:?}"
    );
}

#[test]
fn down_is_remembered_across_a_restart_and_up_undoes_it() {
    if !root() {
        return;
    }
    let mut j = Jarvis::start(&[
        ("a", "[native]\ncommand = [\"sleep\", \"1000\"]\n"),
        ("b", "[native]\ncommand = [\"sleep\", \"1000\"]\n"),
    ]);
    j.running("a");
    j.running("b");
    j.ok(&["down"]);
    for n in ["a", "b"] {
        assert_eq!(j.unit(n)["state"], "stopped");
    }
    let st = j.stop_daemon();
    assert!(st.success(), "{st}");
    j.spawn_daemon();
    std::thread::sleep(Duration::from_millis(300));
    for n in ["a", "b"] {
        let u = j.unit(n);
        assert_eq!(u["state"], "stopped", "down is remembered: {u:#}");
        assert_eq!(u["wanted"], false, "{u:#}");
        assert_eq!(u["reason"], "stopped by down", "and who did it: {u:#}");
    }
    j.ok(&["up"]);
    j.running("a");
    j.running("b");
}

/// jarvisd removes only the cgroups it made: at its end, its units' cgroups
/// go, but a cgroup another jarvisd made under the same parent stays (and
/// so does the parent that holds it).
#[test]
fn jarvisd_removes_only_the_cgroups_it_made() {
    if !root() {
        return;
    }
    let mut j = Jarvis::start(&[(
        "mine",
        r#"
[native]
command = ["sleep", "1000"]
"#,
    )]);
    j.running("mine");
    let mine = j.cgroup_dir("pids", "mine");
    let parent = mine.parent().unwrap().to_path_buf();
    let other = parent.join("another-jarvisd-unit");
    std::fs::create_dir(&other).unwrap();
    let status = j.stop_daemon();
    assert!(status.success(), "{status}");
    let kept = other.is_dir();
    let _ = std::fs::remove_dir(&other);
    assert!(
        !mine.exists(),
        "the unit's own cgroup {} is left",
        mine.display()
    );
    assert!(kept, "{} (not jarvisd's) was removed", other.display());
}

#[test]
fn a_socket_path_that_is_a_regular_file_is_refused_and_kept() {
    if !root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("precious.txt");
    std::fs::write(&file, "keep me\n").unwrap();
    let units = dir.path().join("units");
    std::fs::create_dir(&units).unwrap();
    let mut child = Command::new(&*JARVISD)
        .arg("--units")
        .arg(&units)
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .arg("--socket")
        .arg(&file)
        .arg("--cgroup-parent")
        .arg(format!("jarvis-it-sockfile-{}", std::process::id()))
        .env_remove("JARVIS_SOCKET")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run jarvisd");
    // A jarvisd that took the path over would run on: give it 10 s.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break Some(st);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(
        status.is_some_and(|s| !s.success()),
        "jarvisd refused to start: {status:?}\n{err}"
    );
    assert!(
        err.contains("not a socket") && err.contains("precious.txt"),
        "the error names the path and why: {err}"
    );
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "keep me\n",
        "the file is left as it was"
    );
}
