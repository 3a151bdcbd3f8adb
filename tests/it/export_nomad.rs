//! jarvisctl export nomad: the units directory as one Nomad job file.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::harness::JARVISCTL;

/// The `.toml` files of `dir`: one group each.
fn unit_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn group_names(job: &Value) -> Vec<String> {
    let mut names: Vec<String> = job["Job"]["TaskGroups"]
        .as_array()
        .expect("TaskGroups")
        .iter()
        .map(|g| g["Name"].as_str().expect("a group's Name").to_string())
        .collect();
    names.sort();
    names
}

#[test]
fn export_nomad_writes_one_job_with_a_group_per_unit() {
    let units = Path::new(env!("CARGO_MANIFEST_DIR")).join("units");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jarvis.nomad.json");
    let out = Command::new(&*JARVISCTL)
        .args(["export", "nomad", "--units"])
        .arg(&units)
        .arg("-o")
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("wrote"),
        "{out:?}"
    );
    let job: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(job["Job"]["ID"], "jarvis");
    assert_eq!(job["Job"]["Type"], "service");
    assert_eq!(group_names(&job), unit_names(&units));
    for g in job["Job"]["TaskGroups"].as_array().unwrap() {
        assert_eq!(g["Count"], 1, "{g}");
        let name = g["Name"].as_str().unwrap();
        let main = g["Tasks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["Name"] == name)
            .unwrap_or_else(|| panic!("no task {name} in {g}"));
        assert!(
            main["Driver"] == "exec" || main["Driver"] == "docker",
            "{main}"
        );
    }
}

#[test]
fn export_nomad_to_stdout_takes_the_job_name_and_datacenters() {
    let units = Path::new(env!("CARGO_MANIFEST_DIR")).join("units/demo");
    let out = Command::new(&*JARVISCTL)
        .args(["export", "nomad", "--job", "demo"])
        .args(["--datacenter", "dc1", "--datacenter", "dc2", "--units"])
        .arg(&units)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let job: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(job["Job"]["ID"], "demo");
    assert_eq!(job["Job"]["Datacenters"], serde_json::json!(["dc1", "dc2"]));
    assert_eq!(group_names(&job), unit_names(&units));
}

#[test]
fn export_nomad_says_which_unit_it_left_out_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("local.toml"),
        "[container]\nimage = \"oci-layout:/srv/images/local\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("ok.toml"),
        "[native]\ncommand = [\"true\"]\n",
    )
    .unwrap();
    let out = Command::new(&*JARVISCTL)
        .args(["export", "nomad", "--units"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not exported: local:"), "{err}");
    let job: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(group_names(&job), ["ok"]);
}
