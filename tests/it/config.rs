//! `jarvisctl config`: the units as jarvisd runs them, env files read in,
//! secret-looking values redacted.

use crate::harness::*;

#[test]
fn config_reads_env_files_and_redacts_secret_looking_values() {
    if !root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let env = dir.path().join("svc.env");
    std::fs::write(&env, "FROM_FILE=hello\nAPI_TOKEN=abc123\nPLAIN=file\n").unwrap();
    let j = Jarvis::start(&[(
        "svc",
        &format!(
            r#"
env_file = ["{}"]
[native]
command = ["sleep", "1000"]
[env]
DB_PASSWORD = "hunter2"
PLAIN = "unit"
"#,
            env.display()
        ),
    )]);
    j.running("svc");
    let v: serde_json::Value = serde_json::from_str(&j.ok(&["config", "--json", "svc"])).unwrap();
    let e = &v["units"][0]["env"];
    assert_eq!(e["FROM_FILE"], "hello", "{v:#}");
    assert_eq!(e["PLAIN"], "unit", "{v:#}");
    assert_eq!(e["API_TOKEN"], "<redacted>", "{v:#}");
    assert_eq!(e["DB_PASSWORD"], "<redacted>", "{v:#}");
    let text = j.ok(&["config"]);
    assert!(text.starts_with("svc:\n"), "{text}");
    assert!(text.contains("FROM_FILE: hello"), "{text}");
    assert!(
        !text.contains("abc123") && !text.contains("hunter2"),
        "{text}"
    );
    // exec gets the same environment, unredacted.
    let out = j.ok(&[
        "exec",
        "svc",
        "--",
        "sh",
        "-c",
        "echo $FROM_FILE $API_TOKEN",
    ]);
    assert_eq!(out.trim(), "hello abc123");
    let out = j.ctl(&["config", "nope"]);
    assert!(!out.status.success());
}
