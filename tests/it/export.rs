//! `jarvisctl export kubernetes` end to end: the repository's own units and
//! units using every key, exported by the built jarvisctl and validated
//! offline, strictly (unknown fields are errors), against the Kubernetes
//! 1.32 OpenAPI schemas by `kubernetes-validate` (PyPI; tests/run installs
//! it). A native-only unit is listed as not exported and the exit status
//! is 1; `-o DIR/` writes one file per unit. No daemon needed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::harness::*;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// The API version the manifests are typed for (k8s-openapi's v1_32).
const KUBERNETES: &str = "1.32.0";

/// Whether kubernetes-validate is here; if not the test is skipped (a
/// failure under CI, which installs it).
fn have_validator() -> bool {
    let found = Command::new("kubernetes-validate")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        skip(
            true,
            "kubernetes-validate is missing: pip install kubernetes-validate (tests/run \
             installs it)",
        );
    }
    found
}

/// Validates manifests strictly; panics with its report unless every
/// object passed.
fn validate(files: &[PathBuf]) {
    let out = Command::new("kubernetes-validate")
        .args(["--strict", "--kubernetes-version", KUBERNETES])
        .args(files)
        .output()
        .expect("run kubernetes-validate");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "kubernetes-validate: {report}");
    assert!(!report.contains("ERROR"), "{report}");
    assert!(report.contains("passed"), "nothing validated: {report}");
}

fn export(args: &[&str]) -> Output {
    Command::new(&*JARVISCTL)
        .args(["export", "kubernetes"])
        .args(args)
        .output()
        .expect("run jarvisctl export kubernetes")
}

/// Units that use every key a container unit takes, a unit with both
/// forms, a job, and a native-only unit.
fn every_key_units(dir: &Path) {
    let files = [
        (
            "web.toml",
            r#"
description = "every container key"
depends_on = { db = "healthy", cache = "started", migrate = "completed", native-tool = "started" }
env_file = ["/etc/web/web.env", "/etc/web/keys.env.age"]

[container]
image = "ghcr.io/example/web:1.2"
entrypoint = ["/entry.sh"]
command = ["serve", "--port", "80"]
user = "1000:1000"
working_dir = "/srv"
networks = ["default", "iot"]
ports = ["8080:80", "127.0.0.1:5353:53/udp"]
hostname = "www"
aliases = ["frontend"]
extra_hosts = ["nas:192.0.2.10", "gw:host-gateway"]
dns = ["192.0.2.53"]
volumes = ["/srv/web:/srv/data", "webcache:/cache", "/etc/localtime:/etc/localtime:ro"]
read_only = true
tmpfs = ["/tmp:size=64m,mode=1777", "/run"]
shm_size = "128m"
group_add = ["44", "video"]
cap_drop = ["ALL"]
cap_add = ["CHOWN"]
sysctls = { "net.ipv4.ip_unprivileged_port_start" = "80" }
ulimits = { nofile = 4096 }
init = true

[env]
GREETING = "hello"
ENABLED = "true"
COUNT = "0755"
API_TOKEN = "not-in-the-output"

[[secret]]
source = "/etc/web/db.pass"
target = "db_password"

[[device]]
usb = "10c4:ea60"
as = "/dev/zigbee"
[[device]]
usb = "1cf1:0030"
as = "/dev/conbee"
optional = true
[[device]]
path = "/dev/net/tun"

[resources]
memory_max = "1G"
cpus = 1.5
cpu_weight = 50
pids_max = 128

[restart]
policy = "always"

[health]
http = "http://127.0.0.1:80/healthz"
interval = "10s"
timeout = "2s"
retries = 5
start_period = "1m"

[stop]
signal = "SIGQUIT"
timeout = "20s"

[security]
capabilities = ["CAP_NET_BIND_SERVICE"]

[logs]
max_size = "5M"
"#,
        ),
        (
            "db.toml",
            r#"
[container]
image = "postgres:17"
volumes = ["pgdata:/var/lib/postgresql/data"]
[env]
POSTGRES_PASSWORD = "not-in-the-output"
[health]
tcp = "127.0.0.1:5432"
"#,
        ),
        (
            "cache.toml",
            r#"
[container]
image = "redis:7"
ports = ["6379:6379"]
privileged = true
[health]
exec = ["redis-cli", "ping"]
on_unhealthy = "ignore"
"#,
        ),
        (
            "migrate.toml",
            r#"
depends_on = { db = "healthy" }
[container]
image = "ghcr.io/example/migrate:1"
[restart]
policy = "on-failure"
"#,
        ),
        (
            "once.toml",
            r#"
[container]
image = "busybox"
command = ["echo", "hi"]
network = "none"
[restart]
policy = "never"
"#,
        ),
        (
            "llm.toml",
            r#"
run = "native"
[native]
command = ["/usr/local/bin/ollama", "serve"]
[container]
image = "ollama/ollama:0.5"
network = "host"
[gpu]
want = "nvidia"
count = 1
min_vram = "6G"
[health]
http = "http://127.0.0.1:11434/api/version"
"#,
        ),
        (
            "native-tool.toml",
            "[native]\ncommand = [\"/usr/bin/tool\"]\n",
        ),
    ];
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
}

#[test]
fn the_repository_units_export_and_validate() {
    if !have_validator() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("all.yaml");
    let units = Path::new(ROOT).join("units");
    let out = export(&[
        "--units",
        units.to_str().unwrap(),
        "-o",
        file.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "every unit of the repository has a container form: {stderr}"
    );
    let text = std::fs::read_to_string(&file).unwrap();
    for unit in [
        "home-assistant",
        "jellyfin",
        "mosquitto",
        "ollama",
        "open-webui",
        "tailscale",
        "zigbee2mqtt",
    ] {
        assert!(
            text.contains(&format!(
                "# {unit}: exported by jarvisctl export kubernetes"
            )),
            "{unit} missing:\n{text}"
        );
    }
    // Ollama keeps its GPU.
    assert!(text.contains("nvidia.com/gpu"), "{text}");
    validate(&[file]);
}

#[test]
fn every_key_exports_and_validates_with_hostpath_and_pvc() {
    if !have_validator() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let units = tmp.path().join("units");
    std::fs::create_dir(&units).unwrap();
    every_key_units(&units);
    let mut files = Vec::new();
    for storage in ["hostpath", "pvc"] {
        let file = tmp.path().join(format!("{storage}.yaml"));
        let out = export(&[
            "--units",
            units.to_str().unwrap(),
            "--namespace",
            "home",
            "--storage",
            storage,
            "-o",
            file.to_str().unwrap(),
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains(
                "not exported: native-tool: native only (no [container] form): Kubernetes \
                 runs containers"
            ),
            "{stderr}"
        );
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(!text.contains("not-in-the-output"), "a secret value leaked");
        for kind in ["ConfigMap", "Service", "Job", "Deployment"] {
            assert!(text.contains(&format!("kind: {kind}\n")), "{kind}: {text}");
        }
        assert_eq!(
            text.contains("kind: StatefulSet\n"),
            storage == "pvc",
            "named volumes make a StatefulSet only with pvc"
        );
        assert!(text.contains("nvidia.com/gpu"));
        assert!(text.contains("squat.ai/usb-10c4-ea60"));
        assert!(text.contains("wait-for-db"));
        let objects = text.matches("\nkind: ").count();
        assert_eq!(
            text.matches("namespace: home\n").count(),
            objects,
            "every object has the namespace"
        );
        files.push(file);
    }
    validate(&files);
}

#[test]
fn an_output_directory_gets_one_file_per_unit() {
    if !have_validator() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let units = tmp.path().join("units");
    std::fs::create_dir(&units).unwrap();
    every_key_units(&units);
    std::fs::remove_file(units.join("native-tool.toml")).unwrap();
    // web depends on native-tool: without it the set would not load.
    let web = std::fs::read_to_string(units.join("web.toml"))
        .unwrap()
        .replace(", native-tool = \"started\"", "");
    std::fs::write(units.join("web.toml"), web).unwrap();
    let dir = tmp.path().join("out");
    let out = export(&[
        "--units",
        units.to_str().unwrap(),
        "-o",
        &format!("{}/", dir.display()),
    ]);
    assert!(
        out.status.success(),
        "every unit exports: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "cache.yaml",
            "db.yaml",
            "llm.yaml",
            "migrate.yaml",
            "once.yaml",
            "web.yaml"
        ]
    );
    let files: Vec<PathBuf> = names.iter().map(|n| dir.join(n)).collect();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let unit = f.file_stem().unwrap().to_string_lossy();
        assert!(
            text.starts_with(&format!(
                "# {unit}: exported by jarvisctl export kubernetes\n"
            )),
            "{text}"
        );
    }
    validate(&files);
    // The same to stdout: the documents joined by `---`.
    let out = export(&["--units", units.to_str().unwrap()]);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    for n in &names {
        let unit = n.trim_end_matches(".yaml");
        assert!(stdout.contains(&format!("---\n# {unit}: exported")) || unit == "cache");
    }
}
