//! jarvisctl: validate, up (reconcile), logs, the socket.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::process::Command;
use std::time::Duration;

use crate::harness::*;

#[test]
fn validate_reports_every_problem_with_file_line_col() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::write(
        p.join("web.toml"),
        "depends_on = { db = \"healthy\", ghost = \"started\" }\n[native]\ncommand = [\"x\"]\n[resources]\nmemmory_max = \"1G\"\n[restart]\ndelay = \"soon\"\n",
    )
    .unwrap();
    std::fs::write(
        p.join("db.toml"),
        "depends_on = [\"web\"]\n[native]\ncommand = [\"x\"]\n[health]\ntcp = \"127.0.0.1:5432\"\n",
    )
    .unwrap();
    std::fs::write(p.join("ok.toml"), "[native]\ncommand = [\"true\"]\n").unwrap();
    let out = Command::new(&*JARVISCTL)
        .arg("validate")
        .arg(p)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    let web = p.join("web.toml").display().to_string();
    for want in [
        format!("{web}:5:1: "),  // the unknown key
        format!("{web}:7:9: "),  // the bad duration
        format!("{web}:1:32: "), // the missing unit
    ] {
        assert!(text.contains(&want), "missing {want:?} in:\n{text}");
    }
    assert!(text.contains("memmory_max"), "{text}");
    assert!(text.contains("ghost"), "{text}");
    assert!(
        text.contains("cycle") && text.contains("web") && text.contains("db"),
        "{text}"
    );

    let ok = Command::new(&*JARVISCTL)
        .arg("validate")
        .arg(p.join("ok.toml"))
        .output()
        .unwrap();
    assert!(ok.status.success(), "{ok:?}");
}

#[test]
fn the_homelab_units_validate() {
    let units = concat!(env!("CARGO_MANIFEST_DIR"), "/units");
    let out = Command::new(&*JARVISCTL)
        .arg("validate")
        .arg(units)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let demo = concat!(env!("CARGO_MANIFEST_DIR"), "/units/demo");
    let out = Command::new(&*JARVISCTL)
        .arg("validate")
        .arg(demo)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn up_reconciles_and_a_bad_reload_disturbs_nothing() {
    if !root() {
        return;
    }
    let j = Jarvis::start(&[
        ("keep", "[native]\ncommand = [\"sleep\", \"1000\"]\n"),
        ("change", "[native]\ncommand = [\"sleep\", \"1000\"]\n"),
        ("drop", "[native]\ncommand = [\"sleep\", \"1000\"]\n"),
    ]);
    let keep = j.running("keep")["pid"].clone();
    let change = j.running("change")["pid"].clone();
    let drop_pid = j.running("drop")["pid"].as_i64().unwrap() as i32;

    // A broken file: up fails, says where, and nothing changes.
    j.write_unit("broken", "[native]\ncommand = \"not a list\"\n");
    j.remove_unit("drop");
    let out = j.ctl(&["up"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("broken.toml:2:"), "{err}");
    assert_eq!(j.unit("drop")["state"], "running");
    assert!(alive(drop_pid));

    j.remove_unit("broken");
    j.write_unit("change", "[native]\ncommand = [\"sleep\", \"2000\"]\n");
    j.write_unit("new", "[native]\ncommand = [\"sleep\", \"1000\"]\n");
    let out = j.ok(&["up", "--json"]);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["started"], serde_json::json!(["new"]));
    assert_eq!(report["restarted"], serde_json::json!(["change"]));
    assert_eq!(report["stopped"], serde_json::json!(["drop"]));
    assert_eq!(report["unchanged"], serde_json::json!(["keep"]));

    j.running("new");
    let changed = j.wait_unit("change", Duration::from_secs(10), |u| {
        u["state"] == "running" && u["pid"] != change
    });
    let cmdline = std::fs::read_to_string(format!("/proc/{}/cmdline", changed["pid"])).unwrap();
    assert!(cmdline.contains("2000"), "{cmdline:?}");
    assert_eq!(
        j.unit("keep")["pid"],
        keep,
        "unchanged units are left alone"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while j.status()["units"]
        .as_array()
        .unwrap()
        .iter()
        .any(|u| u["name"] == "drop")
    {
        assert!(std::time::Instant::now() < deadline, "drop was not removed");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!alive(drop_pid));
}

#[test]
fn logs_show_output_and_follow() {
    if !root() {
        return;
    }
    let j = Jarvis::start(&[(
        "talker",
        r#"
[native]
command = ["sh", "-c", "echo one; echo two >&2; sleep 0.5; echo three; sleep 1000"]
"#,
    )]);
    j.running("talker");
    let mut follow = Command::new(&*JARVISCTL)
        .arg("--socket")
        .arg(&j.socket)
        .args(["logs", "-f", "talker"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !j.logs("talker").lines().any(|l| l == "three") {
        assert!(std::time::Instant::now() < deadline, "{}", j.logs("talker"));
        std::thread::sleep(Duration::from_millis(20));
    }
    let all = j.logs("talker");
    let at = |w: &str| {
        all.find(&format!("\n{w}\n"))
            .unwrap_or_else(|| panic!("{w} in {all}"))
    };
    let (one, two, three) = (at("one"), at("two"), at("three"));
    assert!(one < two && two < three, "{all}");
    let last = j.ok(&["logs", "-n", "1", "talker"]);
    assert_eq!(last, "three\n");
    std::thread::sleep(Duration::from_millis(200));
    follow.kill().unwrap();
    let out = follow.wait_with_output().unwrap();
    let followed = String::from_utf8_lossy(&out.stdout);
    assert!(
        followed.contains("\none\n") && followed.contains("\nthree\n"),
        "{followed}"
    );
}

#[test]
fn the_socket_is_private_and_errors_are_one_line() {
    if !root() {
        return;
    }
    let j = Jarvis::start(&[]);
    let meta = std::fs::metadata(&j.socket).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);

    let out = j.ctl(&["stop", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("no unit named nope"), "{err}");

    let out = Command::new(&*JARVISCTL)
        .args(["--socket", "/nonexistent/jarvis.sock", "status"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is jarvisd running"), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    // A second daemon on the same socket refuses to start.
    let second = Command::new(&*JARVISD)
        .arg("--units")
        .arg(&j.units)
        .arg("--state-dir")
        .arg(j.dir.path().join("other"))
        .arg("--socket")
        .arg(&j.socket)
        .output()
        .unwrap();
    assert!(!second.status.success());
    assert!(String::from_utf8_lossy(&second.stderr).contains("another jarvisd"));

    // A peer speaking another protocol version is told so.
    use std::os::unix::net::UnixStream;
    let mut s = UnixStream::connect(&j.socket).unwrap();
    jarvis_proto::write_frame(
        &mut s,
        &jarvis_proto::Hello {
            version: 999,
            agent: "old".into(),
        },
    )
    .unwrap();
    let _: jarvis_proto::Hello = jarvis_proto::read_frame(&mut s).unwrap();
    let r: jarvis_proto::Response = jarvis_proto::read_frame(&mut s).unwrap();
    assert!(matches!(r, jarvis_proto::Response::Error { message } if message.contains("protocol")));
}
