//! The Nix side, offline (no nixpkgs): every `.nix` file parses; the NixOS
//! module (nix/module.nix), evaluated against a small stand-in for nixpkgs'
//! lib (tests/nix), writes unit files that `jarvisctl validate` and the unit
//! parser accept with the values the Nix attributes gave, and a systemd
//! service whose ExecStart carries the options' flags; the example homelab
//! repository's units validate. Needs `nix-instantiate` (Debian's nix-bin).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::harness::*;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Whether nix-instantiate is here; if not the test is skipped (a failure
/// under CI, which installs nix-bin).
fn have_nix() -> bool {
    let found = Command::new("nix-instantiate")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        skip(true, "nix-instantiate is missing: apt-get install nix-bin");
    }
    found
}

fn nix_instantiate(args: &[&str]) -> Output {
    Command::new("nix-instantiate")
        .args(args)
        .current_dir(ROOT)
        .output()
        .expect("run nix-instantiate")
}

/// `nix-instantiate --eval --strict --json` of a file or (`-E`) an
/// expression, parsed.
fn eval_json(args: &[&str]) -> Value {
    let mut all = vec!["--eval", "--strict", "--json"];
    all.extend_from_slice(args);
    let out = nix_instantiate(&all);
    assert!(
        out.status.success(),
        "nix-instantiate {all:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("nix-instantiate printed JSON")
}

fn cases() -> Value {
    eval_json(&["tests/nix/cases.nix"])
}

fn nix_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let path = entry.path();
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            if !name.starts_with('.') && name != "target" {
                nix_files(&path, found);
            }
        } else if kind.is_file() && name.ends_with(".nix") {
            found.push(path);
        }
    }
}

fn validate(dir: &Path) -> Value {
    let out = Command::new(&*JARVISCTL)
        .args(["validate", "--json"])
        .arg(dir)
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "validate --json: {e}: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    assert!(out.status.success() && v["ok"] == true, "{v:#}");
    v
}

#[test]
fn every_nix_file_parses() {
    if !have_nix() {
        return;
    }
    let mut files = Vec::new();
    nix_files(Path::new(ROOT), &mut files);
    let rel: Vec<String> = files
        .iter()
        .map(|f| f.strip_prefix(ROOT).unwrap().display().to_string())
        .collect();
    for want in [
        "flake.nix",
        "nix/package.nix",
        "nix/module.nix",
        "nix/toml.nix",
        "tests/nix/stub.nix",
        "examples/homelab/flake.nix",
        "examples/homelab/configuration.nix",
    ] {
        assert!(rel.iter().any(|r| r == want), "{want} not in {rel:?}");
    }
    for f in &files {
        let out = nix_instantiate(&["--parse", &f.display().to_string()]);
        assert!(
            out.status.success(),
            "{}: {}",
            f.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn the_module_writes_units_that_validate_with_the_values_given() {
    if !have_nix() {
        return;
    }
    let cases = cases();
    let units = cases["units"].as_object().expect("units");
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in units {
        std::fs::write(
            dir.path().join(format!("{name}.toml")),
            text.as_str().unwrap(),
        )
        .unwrap();
    }
    let v = validate(dir.path());
    assert_eq!(
        v["units"],
        serde_json::json!(["dual", "hass", "llm", "mqtt"]),
        "{v:#}"
    );

    // Every table and key kind of the unit format is there...
    let all: String = units.values().map(|t| t.as_str().unwrap()).collect();
    for table in jarvis_unit::Unit::KEYS {
        let written = all.contains(&format!("\n[{table}]\n"))
            || all.contains(&format!("\n[[{table}]]\n"))
            || all.contains(&format!("{table} = "));
        assert!(written, "no unit written with {table}:\n{all}");
    }

    // ...and the parser reads back what the Nix attributes said.
    let parse = |name: &str| {
        let path = dir.path().join(format!("{name}.toml"));
        let text = std::fs::read_to_string(&path).unwrap();
        jarvis_unit::parse_unit(&path, &text).unwrap_or_else(|d| panic!("{name}: {d:?}"))
    };
    let llm = parse("llm");
    assert_eq!(
        llm.env.get("TRICKY").map(String::as_str),
        cases["tricky"].as_str(),
        "a string with quotes, a backslash, control characters and non-ASCII"
    );
    assert_eq!(llm.resources.memory_max, Some(8 << 30));
    assert_eq!(llm.resources.cpus, Some(2.5));
    assert_eq!(llm.resources.cpuset.as_deref(), Some("0-3"));
    assert_eq!(llm.gpu.as_ref().map(|g| g.min_vram), Some(6 << 30));
    assert_eq!(llm.bench.as_ref().map(|b| b.max_slowdown), Some(0.1));
    assert_eq!(llm.restart.burst, 5);

    let hass = parse("hass");
    let c = hass.container.as_ref().expect("hass has [container]");
    assert_eq!(
        c.sysctls
            .get("net.ipv4.ip_unprivileged_port_start")
            .map(String::as_str),
        Some("0")
    );
    assert_eq!(c.ulimits.len(), 2, "{:?}", c.ulimits);
    assert!(c.init);
    assert_eq!(hass.devices.len(), 1);
    assert_eq!(hass.devices[0].as_path, "/dev/zigbee");
    assert!(hass.devices[0].optional);
    let mut deps: Vec<String> = hass
        .depends_on
        .iter()
        .map(|d| format!("{}={}", d.unit, d.condition.as_str()))
        .collect();
    deps.sort();
    assert_eq!(deps, ["llm=started", "mqtt=healthy"]);

    let mqtt = parse("mqtt");
    assert_eq!(mqtt.secrets.len(), 1);
    assert_eq!(mqtt.secrets[0].mode, 0o440, "a mode written as \"0440\"");
    assert_eq!(mqtt.secrets[0].target, "mqtt_password");
    assert_eq!(mqtt.env_file, [PathBuf::from("/run/keys/mqtt.env")]);
    assert_eq!(mqtt.devices[0].as_path, "/dev/net/tun");

    let dual = parse("dual");
    assert!(dual.native.is_some() && dual.container.is_some());
    assert_eq!(dual.depends_on.len(), 1);
}

/// ExecStart's words, as systemd splits them (plain words, and double
/// quotes with backslash escapes, which is all the module writes).
fn words(exec: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = exec.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c == ' ' {
            chars.next();
            continue;
        }
        let mut w = String::new();
        if c == '"' {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '"' => break,
                    '\\' => w.push(chars.next().unwrap()),
                    c => w.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ' ' {
                    break;
                }
                w.push(c);
                chars.next();
            }
        }
        out.push(w);
    }
    out
}

/// The value after `flag` in `args`, if the flag is there once.
fn flag<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    let at: Vec<usize> = (0..args.len()).filter(|&i| args[i] == flag).collect();
    assert!(at.len() <= 1, "{flag} given {} times: {args:?}", at.len());
    at.first().map(|&i| args[i + 1].as_str())
}

#[test]
fn the_service_runs_jarvisd_with_the_options_flags() {
    if !have_nix() {
        return;
    }
    let cases = cases();
    for case in ["plain", "git", "gitDefaults"] {
        let s = &cases[case]["serviceConfig"];
        assert_eq!(s["Type"], "simple", "{case}");
        assert_eq!(s["Restart"], "on-failure", "{case}");
        assert_eq!(s["KillMode"], "process", "{case}");
        assert_eq!(s["Delegate"], "yes", "{case}");
        assert_eq!(s["StateDirectory"], "jarvis", "{case}");
        assert_eq!(
            cases[case]["wantedBy"],
            serde_json::json!(["multi-user.target"])
        );
        assert_eq!(cases[case]["assertions"], serde_json::json!([true]));
        let args = words(s["ExecStart"].as_str().unwrap());
        assert!(args[0].ends_with("/bin/jarvisd"), "{args:?}");
        assert_eq!(flag(&args, "--state-dir"), Some("/var/lib/jarvis"));
        assert_eq!(flag(&args, "--socket"), Some("/run/jarvis/jarvis.sock"));
        assert_eq!(cases[case]["socketEnv"], "/run/jarvis/jarvis.sock");
    }

    // Units in Nix: --units, a build-time check, and a reload (up) when
    // they change.
    let plain = &cases["plain"];
    let args = words(plain["serviceConfig"]["ExecStart"].as_str().unwrap());
    assert_eq!(flag(&args, "--units"), Some("/etc/jarvis/units"));
    assert_eq!(flag(&args, "--socket-group"), Some("wheel"));
    assert_eq!(flag(&args, "--git"), None);
    assert_eq!(flag(&args, "--http"), None);
    assert_eq!(flag(&args, "--age-identity"), None);
    // A word with a space, $ and % survives systemd's quoting and expansion.
    assert!(
        plain["serviceConfig"]["ExecStart"]
            .as_str()
            .unwrap()
            .ends_with(r#"--auth-file "/etc/jarvis/my auth$$HOME%%h.json""#),
        "{plain:#}"
    );
    assert!(plain["serviceConfig"]["ExecReload"]
        .as_str()
        .unwrap()
        .ends_with("/bin/jarvisctl --socket /run/jarvis/jarvis.sock up"));
    assert_eq!(plain["reloadTriggers"].as_array().unwrap().len(), 4);
    let check = plain["checks"][0].as_str().unwrap();
    assert!(check.contains("jarvisctl validate units"), "{check}");
    for unit in ["dual", "hass", "llm", "mqtt"] {
        assert!(check.contains(&format!("units/{unit}.toml")), "{check}");
    }

    // The git trigger, the webhook, the host identity, extra arguments.
    let git = &cases["git"];
    let args = words(git["serviceConfig"]["ExecStart"].as_str().unwrap());
    assert_eq!(
        flag(&args, "--git"),
        Some("https://git.example.org/me/homelab.git")
    );
    assert_eq!(flag(&args, "--git-branch"), Some("prod"));
    assert_eq!(flag(&args, "--git-interval"), Some("1m"));
    assert_eq!(flag(&args, "--git-path"), Some("units"));
    assert_eq!(flag(&args, "--http"), Some("0.0.0.0:8787"));
    assert_eq!(
        flag(&args, "--webhook-secret-file"),
        Some("/run/keys/jarvis-webhook")
    );
    assert_eq!(
        flag(&args, "--age-identity"),
        Some("/etc/ssh/ssh_host_ed25519_key")
    );
    assert_eq!(flag(&args, "--subnet-pool"), Some("10.90.0.0/16"));
    assert_eq!(flag(&args, "--units"), None, "a generation is the unit set");
    assert!(git["serviceConfig"].get("ExecReload").is_none());
    assert_eq!(git["checks"], serde_json::json!([]));

    // The defaults: branch main every 5m, no webhook.
    let args = words(
        cases["gitDefaults"]["serviceConfig"]["ExecStart"]
            .as_str()
            .unwrap(),
    );
    assert_eq!(flag(&args, "--git"), Some("file:///srv/homelab.git"));
    assert_eq!(flag(&args, "--git-branch"), Some("main"));
    assert_eq!(flag(&args, "--git-interval"), Some("5m"));
    assert_eq!(flag(&args, "--git-path"), None);
    assert_eq!(flag(&args, "--http"), None);
    assert_eq!(flag(&args, "--webhook-secret-file"), None);

    // Not enabled: the module sets nothing.
    assert_eq!(cases["disabled"], serde_json::json!({}));
}

#[test]
fn the_module_refuses_what_is_not_a_unit() {
    if !have_nix() {
        return;
    }
    let eval = |settings: &str| {
        nix_instantiate(&[
            "--eval",
            "--strict",
            "--json",
            "-E",
            &format!(
                "builtins.mapAttrs (_: file: file.source.text) \
                 (import ./tests/nix/eval.nix {{ module = ./nix/module.nix; \
                 settings = {{ services.jarvis = {{ enable = true; {settings} }}; }}; }})\
                 .config.environment.etc"
            ),
        ])
    };
    // The stand-in module system accepts a good unit...
    let ok = eval(r#"units.web.native.command = [ "true" ];"#);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let files: Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(
        files,
        serde_json::json!({"jarvis/units/web.toml":
            "# services.jarvis.units.web, written by jarvis's NixOS module\n\n[native]\ncommand = [\"true\"]\n"})
    );
    // ...and, as NixOS does, refuses a misspelt table, a value of the wrong
    // type and a word that is not a condition, naming where.
    for (settings, says) in [
        (
            r#"units.web.nativ.command = [ "true" ];"#,
            "services.jarvis.units.web.nativ: no such option",
        ),
        (
            r#"units.web = { native.command = [ "true" ]; env.PORT = 8080; };"#,
            "services.jarvis.units.web.env.PORT",
        ),
        (
            r#"units.web = { native.command = [ "true" ]; depends_on.db = "ready"; };"#,
            "services.jarvis.units.web.depends_on",
        ),
    ] {
        let out = eval(settings);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{settings} was accepted");
        assert!(err.contains(says), "{settings}: {err}");
    }
}

#[test]
fn the_homelab_example_validates() {
    let repo = Path::new(ROOT).join("examples/homelab");
    let units = repo.join("units");
    // As a generation of the repository reads it: relative env_file and
    // secret paths are the repository's files.
    let set = jarvis_unit::load_dir_with(
        &units,
        &jarvis_unit::LoadOptions {
            base: Some(repo.clone()),
        },
    )
    .unwrap_or_else(|d| {
        panic!(
            "{}",
            d.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        )
    });
    let mut names: Vec<&String> = set.units.keys().collect();
    names.sort();
    assert_eq!(
        names,
        [
            "home-assistant",
            "mosquitto",
            "ollama",
            "open-webui",
            "tailscale"
        ]
    );
    // Ollama native on the GPU, Home Assistant in a container with the
    // dongle, the secrets encrypted files that are in the repository.
    let ollama = &set.units["ollama"];
    assert!(ollama.native.is_some() && ollama.gpu.is_some());
    let ha = &set.units["home-assistant"];
    assert!(ha.container.is_some());
    assert!(ha.devices.iter().any(|d| d.as_path == "/dev/zigbee"));
    let encrypted: Vec<&PathBuf> = set
        .units
        .values()
        .flat_map(|u| u.env_file.iter().chain(u.secrets.iter().map(|s| &s.source)))
        .collect();
    assert!(
        encrypted
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "age"))
            .count()
            >= 2,
        "{encrypted:?}"
    );
    for p in &encrypted {
        assert!(p.starts_with(&repo) && p.is_file(), "{}", p.display());
    }
    for p in encrypted
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "age"))
    {
        let head = std::fs::read(p).unwrap();
        assert!(
            head.starts_with(b"age-encryption.org/v1\n"),
            "{} is not an age file",
            p.display()
        );
    }
}

#[test]
fn the_package_builds_the_three_binaries_with_the_libraries_cargo_lock_needs() {
    if !have_nix() {
        return;
    }
    let p = eval_json(&["tests/nix/package.nix"]);
    assert_eq!(p["pname"], "jarvis");
    assert_eq!(p["cargoLock"], format!("{ROOT}/Cargo.lock"));
    assert_eq!(p["doCheck"], false, "the tests need root and cgroups");
    // Every binary of the package, so jarvis-shim lies next to jarvisd.
    let bins: Vec<&str> = p["bins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_str().unwrap())
        .collect();
    let mut want = vec![];
    for b in &bins {
        want.extend(["--bin", *b]);
    }
    assert_eq!(p["cargoBuildFlags"], serde_json::json!(want));
    for b in ["jarvisd", "jarvisctl", "jarvis-shim", "jarvis-cshim"] {
        assert!(bins.contains(&b), "{bins:?}");
    }
    // The C libraries follow the crates in Cargo.lock.
    let has = |list: &str, name: &str| p[list].as_array().unwrap().iter().any(|v| v == name);
    assert!(has("nativeBuildInputs", "pkg-config"));
    assert!(has("buildInputs", "libseccomp"));
    for (krate, lib) in [
        ("libbpf-sys", "elfutils"),
        ("libbpf-sys", "zlib"),
        ("openssl-sys", "openssl"),
    ] {
        assert_eq!(
            has("crates", krate),
            has("buildInputs", lib),
            "{krate}: {lib}"
        );
    }
    let inputs = p["buildInputs"].as_array().unwrap();
    let mut unique: Vec<String> = inputs.iter().map(|v| v.to_string()).collect();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), inputs.len(), "a library twice: {inputs:?}");
    // The source: what cargo reads, not the build directory or Nix files.
    for (path, kept) in p["kept"].as_object().unwrap() {
        let want = !matches!(path.as_str(), "target" | "nix" | "flake.nix" | "examples");
        assert_eq!(kept, &serde_json::json!(want), "{path}");
    }
}
