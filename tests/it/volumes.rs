//! Named volumes end to end: made on first use and filled from the image,
//! listed with the units that name them, kept across `down`, and removed
//! with `jarvisctl volume rm` only once no unit that uses them runs.

use std::time::Duration;

use crate::harness::*;

const DB: &str = r#"
[container]
image = "busybox:local"
network = "none"
volumes = ["pgdata:/data"]
command = ["sh", "-c", "echo run >> /data/runs; exec sleep 1000"]
[stop]
timeout = "1s"
"#;

fn volumes(j: &Jarvis) -> serde_json::Value {
    serde_json::from_str(&j.ok(&["volume", "ls", "--json"])).unwrap()
}

#[test]
fn a_named_volume_is_filled_from_the_image_kept_and_removed_only_when_unused() {
    if !root() {
        return;
    }
    let j = Jarvis::start(&[]);
    j.import_busybox("busybox:local");
    assert_eq!(volumes(&j)["volumes"], serde_json::json!([]));

    j.write_unit("db", DB);
    j.ok(&["up", "--wait", "--timeout", "30s"]);
    let data = j.state.join("volumes/pgdata/_data");
    // Filled from the image's /data (its top layer's /data/new), then
    // written by the unit.
    assert_eq!(std::fs::read_to_string(data.join("new")).unwrap(), "new\n");
    assert!(
        !data.join("old").exists(),
        "the lower layer's /data came through"
    );
    let runs = || std::fs::read_to_string(data.join("runs")).unwrap_or_default();
    wait_for("the unit's write", || runs() == "run\n");

    let ls = volumes(&j);
    let v = &ls["volumes"][0];
    assert_eq!(v["name"], "pgdata", "{ls}");
    assert_eq!(v["path"], data.to_str().unwrap(), "{ls}");
    assert_eq!(v["units"], serde_json::json!(["db"]), "{ls}");
    assert!(v["size"].as_u64().unwrap() >= 8, "{ls}");
    let table = j.ok(&["volume", "ls"]);
    assert!(table.starts_with("VOLUME"), "{table}");
    assert!(table.contains("pgdata") && table.contains("db"), "{table}");

    // In use: refused, and nothing is removed.
    let out = j.ctl(&["volume", "rm", "pgdata"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("volume pgdata is in use by db; stop it first"),
        "{err}"
    );
    assert!(data.join("new").exists());

    // Kept across down, and used as it is by the next run.
    j.ok(&["down"]);
    j.wait_unit("db", Duration::from_secs(20), |u| u["state"] == "stopped");
    assert_eq!(volumes(&j)["volumes"][0]["name"], "pgdata");
    j.ok(&["up", "--wait", "--timeout", "30s"]);
    wait_for("the second run's write", || runs() == "run\nrun\n");
    j.ok(&["down"]);
    j.wait_unit("db", Duration::from_secs(20), |u| u["state"] == "stopped");

    let out = j.ok(&["volume", "rm", "pgdata"]);
    assert!(out.contains("removed volume pgdata"), "{out}");
    assert!(!j.state.join("volumes/pgdata").exists());
    assert_eq!(volumes(&j)["volumes"], serde_json::json!([]));
    let out = j.ctl(&["volume", "rm", "pgdata"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no volume named \"pgdata\""));
}

fn wait_for(what: &str, f: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
