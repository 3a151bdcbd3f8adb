//! The converter on compose trees built in the test: each key's conversion,
//! each report, and that what is written validates.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use jarvis_compose::convert::{self, Compose, Conversion};
use jarvis_compose::node::{Node, Pos, Value};
use serde_json::json;
use toml_edit::DocumentMut;

/// A tree from JSON, each value on a line of its own (in the order
/// written, keys sorted as serde_json keeps them) of `compose.yml`.
struct Builder {
    file: Arc<PathBuf>,
    line: usize,
}

impl Builder {
    fn node(&mut self, v: &serde_json::Value) -> Node {
        self.line += 1;
        let pos = Pos {
            file: self.file.clone(),
            line: self.line,
            col: 5,
        };
        let value = match v {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => Value::Int(i),
                None => Value::Float(n.as_f64().unwrap()),
            },
            serde_json::Value::String(s) => Value::Str(s.clone()),
            serde_json::Value::Array(a) => Value::Seq(a.iter().map(|i| self.node(i)).collect()),
            serde_json::Value::Object(o) => {
                Value::Map(o.iter().map(|(k, v)| (k.clone(), self.node(v))).collect())
            }
        };
        Node::new(value, pos)
    }

    fn entries(&mut self, v: serde_json::Value) -> Vec<(String, Node)> {
        match self.node(&v).value {
            Value::Map(e) => e,
            _ => panic!("expected an object"),
        }
    }
}

struct Project {
    dir: PathBuf,
    services: Vec<(String, Node)>,
    volumes: Vec<(String, Node)>,
    networks: Vec<(String, Node)>,
    secrets: Vec<(String, Node)>,
    configs: Vec<(String, Node)>,
    env: BTreeMap<String, String>,
}

fn project(services: serde_json::Value, top: serde_json::Value) -> Project {
    let dir = PathBuf::from("/srv/app");
    let mut b = Builder {
        file: Arc::new(dir.join("compose.yml")),
        line: 0,
    };
    let services = b.entries(services);
    let mut part = |k: &str| match top.get(k) {
        Some(v) => b.entries(v.clone()),
        None => Vec::new(),
    };
    Project {
        dir: dir.clone(),
        volumes: part("volumes"),
        networks: part("networks"),
        secrets: part("secrets"),
        configs: part("configs"),
        services,
        env: BTreeMap::from([("FROM_SHELL".to_string(), "shell value".to_string())]),
    }
}

fn run(p: &Project) -> Conversion {
    convert::convert(&Compose {
        name: "app",
        dir: &p.dir,
        services: &p.services,
        volumes: &p.volumes,
        networks: &p.networks,
        secrets: &p.secrets,
        configs: &p.configs,
        environment: &p.env,
    })
}

/// One service `svc` converted: its document and the problems' keys.
fn one(service: serde_json::Value) -> (DocumentMut, Vec<String>, Conversion) {
    one_with(service, json!({}))
}

fn one_with(
    service: serde_json::Value,
    top: serde_json::Value,
) -> (DocumentMut, Vec<String>, Conversion) {
    let p = project(json!({ "svc": service }), top);
    let c = run(&p);
    let text = &c.units.first().expect("a unit").text;
    let doc: DocumentMut = text.parse().expect("valid TOML");
    let keys = c.problems.iter().map(|p| p.key.clone()).collect();
    (doc, keys, c)
}

fn strs(doc: &DocumentMut, path: &[&str]) -> Vec<String> {
    let mut item = doc.as_item();
    for p in path {
        item = &item[*p];
    }
    item.as_array()
        .unwrap_or_else(|| panic!("{path:?} is not an array in\n{doc}"))
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

fn s<'a>(doc: &'a DocumentMut, path: &[&str]) -> Option<&'a str> {
    let mut item = doc.as_item();
    for p in path {
        item = item.get(p)?;
    }
    item.as_str()
}

#[test]
fn a_bare_image_gets_compose_defaults_written_out() {
    let (doc, problems, c) = one(json!({ "image": "nginx:1.27" }));
    assert!(problems.is_empty(), "{:?}", c.problems);
    let text = &c.units[0].text;
    assert!(text.starts_with(convert::HEADER), "{text}");
    assert!(text
        .lines()
        .next()
        .unwrap()
        .contains("/srv/app/compose.yml"));
    assert_eq!(s(&doc, &["container", "image"]), Some("nginx:1.27"));
    // compose's restart default is "no"; jarvis's is on-failure.
    assert_eq!(s(&doc, &["restart", "policy"]), Some("never"));
    assert_eq!(strs(&doc, &["container", "networks"]), ["app_default"]);
    // jarvis's stricter default is kept, with a comment saying so.
    assert_eq!(doc["security"]["no_new_privileges"].as_bool(), Some(true));
    assert!(text.contains("stricter than compose's"), "{text}");
    assert_eq!(
        strs(&doc, &["container", "cap_add"]),
        ["AUDIT_WRITE", "MKNOD", "NET_RAW"]
    );
    assert!(text.contains("# No restart in compose"), "{text}");
}

#[test]
fn command_and_entrypoint() {
    let (doc, problems, _) = one(json!({
        "image": "x",
        "command": "serve --name 'my app' \"a b\"",
        "entrypoint": ["/init", "-v"],
    }));
    assert!(problems.is_empty());
    assert_eq!(
        strs(&doc, &["container", "command"]),
        ["serve", "--name", "my app", "a b"]
    );
    assert_eq!(strs(&doc, &["container", "entrypoint"]), ["/init", "-v"]);
    let (_, problems, _) = one(json!({ "image": "x", "command": "echo 'open" }));
    assert_eq!(problems, ["command"]);
    let (_, problems, _) = one(json!({ "image": "x", "entrypoint": [] }));
    assert_eq!(problems, ["entrypoint"]);
}

#[test]
fn environment_list_and_map_and_values_from_the_environment() {
    let (doc, problems, c) = one(json!({
        "image": "x",
        "environment": ["A=1", "B=x=y", "FROM_SHELL", "MISSING"],
    }));
    assert_eq!(problems, ["environment.MISSING"], "{:?}", c.problems);
    assert_eq!(s(&doc, &["env", "A"]), Some("1"));
    assert_eq!(s(&doc, &["env", "B"]), Some("x=y"));
    assert_eq!(s(&doc, &["env", "FROM_SHELL"]), Some("shell value"));
    assert!(doc["env"].get("MISSING").is_none());
    let p = &c.problems[0];
    assert_eq!(p.pos.as_ref().unwrap().line, 7);
    let (doc, problems, _) = one(json!({
        "image": "x",
        "environment": { "N": 5, "T": true, "E": "", "FROM_SHELL": null },
    }));
    assert!(problems.is_empty());
    assert_eq!(s(&doc, &["env", "N"]), Some("5"));
    assert_eq!(s(&doc, &["env", "T"]), Some("true"));
    assert_eq!(s(&doc, &["env", "E"]), Some(""));
    assert_eq!(s(&doc, &["env", "FROM_SHELL"]), Some("shell value"));
}

#[test]
fn env_files_in_every_form() {
    let tmp = tempfile::tempdir().unwrap();
    let present = tmp.path().join("present.env");
    std::fs::write(&present, "A=1\n").unwrap();
    let absent = tmp.path().join("absent.env");
    let (doc, problems, c) = one(json!({
        "image": "x",
        "env_file": [
            "./relative.env",
            { "path": present, "required": false },
            { "path": absent, "required": false },
        ],
    }));
    assert!(problems.is_empty(), "{:?}", c.problems);
    assert_eq!(
        strs(&doc, &["env_file"]),
        [
            "/srv/app/relative.env".to_string(),
            present.display().to_string()
        ]
    );
    let text = &c.units[0].text;
    assert!(
        text.contains("absent.env (required: false) is left out"),
        "{text}"
    );
    let (doc, _, _) = one(json!({ "image": "x", "env_file": "/etc/app.env" }));
    assert_eq!(strs(&doc, &["env_file"]), ["/etc/app.env"]);
}

/// Compose interpolates env files' values and fills a name alone from its
/// environment; a unit's env file is read as written. The report says
/// where the two differ, by name and line and never by value.
#[test]
fn env_files_compose_would_expand_are_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let first = tmp.path().join("first.env");
    std::fs::write(&first, "BASE=one\n").unwrap();
    let second = tmp.path().join("second.env");
    std::fs::write(
        &second,
        "# literal in both readings\n\
         PLAIN=p4ss\n\
         SINGLE='$BASE'\n\
         ESCAPED=\"\\$BASE\"\n\
         FROM_ABOVE=${BASE}-x\n\
         FROM_SHELL\n\
         UNSET_ALONE\n\
         QUOTED=\"secret ${FROM_SHELL}\"\n",
    )
    .unwrap();
    let (doc, problems, c) = one(json!({ "image": "x", "env_file": [first, second] }));
    assert_eq!(problems, ["env_file", "env_file"], "{:?}", c.problems);
    assert_eq!(strs(&doc, &["env_file"]).len(), 2);
    let messages: Vec<&str> = c.problems.iter().map(|p| p.message.as_str()).collect();
    assert!(
        messages[0]
            .contains("compose expands the variables in FROM_ABOVE (line 5), QUOTED (line 8)")
            || messages[1]
                .contains("compose expands the variables in FROM_ABOVE (line 5), QUOTED (line 8)"),
        "{messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("compose gives FROM_SHELL (line 6) the value")),
        "{messages:?}"
    );
    for m in &messages {
        assert!(m.contains("second.env"), "{m}");
        assert!(!m.contains("shell value") && !m.contains("one-x"), "{m}");
    }
    // A file both read alike says nothing.
    let (_, problems, c) = one(json!({ "image": "x", "env_file": [first] }));
    assert!(problems.is_empty(), "{:?}", c.problems);
    // A file jarvis cannot read is located.
    let bad = tmp.path().join("bad.env");
    std::fs::write(&bad, "A=1\nB='x' y\n").unwrap();
    let (_, problems, c) = one(json!({ "image": "x", "env_file": [bad] }));
    assert_eq!(problems, ["env_file"]);
    assert!(
        c.problems[0].message.ends_with(
            "bad.env:2:7: unexpected text after a quoted value \
             (only a # comment may follow it); jarvis cannot read this env file"
        ),
        "{}",
        c.problems[0].message
    );
}

#[test]
fn device_cgroup_rules_in_every_form() {
    let (doc, problems, c) = one(json!({
        "image": "x",
        "device_cgroup_rules": ["c 189:* rmw", "b 8:0 r", "c 189:* mwr", "c 1:x rw", "a 1:3 r"],
    }));
    assert_eq!(
        strs(&doc, &["container", "device_cgroup_rules"]),
        ["c 189:* rwm", "b 8:0 r"]
    );
    assert_eq!(
        problems,
        ["device_cgroup_rules", "device_cgroup_rules"],
        "{:?}",
        c.problems
    );
    assert!(
        c.problems[0]
            .message
            .starts_with("invalid rule \"c 1:x rw\": the minor \"x\" is not a number or *"),
        "{}",
        c.problems[0]
    );
    assert_eq!(c.problems[0].pos.as_ref().unwrap().line, 7);
    // A privileged container may use every device: the rules are left out,
    // and the unit says so.
    let (doc, problems, c) = one(json!({
        "image": "x",
        "privileged": true,
        "device_cgroup_rules": ["c 189:* rmw"],
    }));
    assert!(problems.is_empty(), "{:?}", c.problems);
    assert!(doc["container"].get("device_cgroup_rules").is_none());
    assert!(
        c.units[0]
            .text
            .contains("device_cgroup_rules left out: a privileged container"),
        "{}",
        c.units[0].text
    );
}

#[test]
fn ports_short_long_and_ranges() {
    let (doc, problems, c) = one(json!({
        "image": "x",
        "ports": [
            "8080:80",
            "127.0.0.1:5353:53/udp",
            "9000-9001:9000-9001",
            8443,
            "127.0.0.1::6000",
            { "target": 443, "published": "8444", "host_ip": "127.0.0.1", "protocol": "tcp" },
            { "target": 22, "published": 2222 },
            { "target": 3000 },
        ],
    }));
    assert_eq!(
        strs(&doc, &["container", "ports"]),
        [
            "8080:80",
            "127.0.0.1:5353:53/udp",
            "9000:9000",
            "9001:9001",
            "127.0.0.1:8444:443",
            "2222:22"
        ]
    );
    assert_eq!(problems, ["ports", "ports", "ports"], "{:?}", c.problems);
    assert!(c.problems[0]
        .message
        .contains("container port 8443 without a host port"));
}

#[test]
fn ports_with_host_networking_are_dropped_as_compose_does() {
    let (doc, problems, c) = one(json!({
        "image": "x", "network_mode": "host", "ports": ["80:80"],
    }));
    assert!(problems.is_empty());
    assert_eq!(s(&doc, &["container", "network"]), Some("host"));
    assert!(doc["container"].get("ports").is_none());
    assert!(doc["container"].get("networks").is_none());
    assert!(c.units[0].text.contains("ports left out"));
}

#[test]
fn volumes_binds_named_and_tmpfs() {
    let (doc, problems, c) = one_with(
        json!({
            "image": "x",
            "volumes": [
                "./data:/data",
                "/etc/localtime:/etc/localtime:ro",
                "db:/var/lib/db",
                "shared:/shared:ro",
                "outside:/outside",
                "/cache",
                { "type": "bind", "source": "/srv/media", "target": "/media", "read_only": true },
                { "type": "volume", "source": "db", "target": "/backup" },
                { "type": "tmpfs", "target": "/scratch", "tmpfs": { "size": "64m", "mode": 1777 } },
                "/var/run/docker.sock:/var/run/docker.sock",
                "undeclared:/u",
            ],
        }),
        json!({ "volumes": {
            "db": null,
            "shared": { "name": "family-photos" },
            "outside": { "external": true },
        }}),
    );
    assert_eq!(
        strs(&doc, &["container", "volumes"]),
        [
            "/srv/app/data:/data",
            "/etc/localtime:/etc/localtime:ro",
            "app_db:/var/lib/db",
            "family-photos:/shared:ro",
            "outside:/outside",
            "app_svc_cache:/cache",
            "/srv/media:/media:ro",
            "app_db:/backup",
        ]
    );
    assert_eq!(
        strs(&doc, &["container", "tmpfs"]),
        ["/scratch:size=64M,mode=1777"]
    );
    assert_eq!(problems, ["volumes", "volumes"], "{:?}", c.problems);
    assert!(c.problems[0].message.contains("Docker API"));
    assert!(c.problems[1]
        .message
        .contains("\"undeclared\" is not defined"));
    // The short syntax's missing host directory is made, as compose does.
    assert_eq!(c.create_dirs, [PathBuf::from("/srv/app/data")]);
}

#[test]
fn a_volume_driver_bind_is_a_bind() {
    let (doc, problems, _) = one_with(
        json!({ "image": "x", "volumes": ["media:/media"] }),
        json!({ "volumes": { "media": {
            "driver": "local",
            "driver_opts": { "type": "none", "o": "bind", "device": "/mnt/media" },
        }}}),
    );
    assert!(problems.is_empty());
    assert_eq!(strs(&doc, &["container", "volumes"]), ["/mnt/media:/media"]);
    let (_, problems, c) = one_with(
        json!({ "image": "x", "volumes": ["nfs:/nfs"] }),
        json!({ "volumes": { "nfs": {
            "driver_opts": { "type": "nfs", "o": "addr=10.0.0.2", "device": ":/export" },
        }}}),
    );
    assert_eq!(problems, ["volumes.nfs.driver_opts"]);
    assert_eq!(c.problems[0].service, None);
}

#[test]
fn tmpfs_key() {
    let (doc, problems, c) = one(json!({
        "image": "x",
        "tmpfs": ["/run", "/tmp:size=100m,mode=1777", "/x:noexec"],
    }));
    assert_eq!(
        strs(&doc, &["container", "tmpfs"]),
        ["/run", "/tmp:size=100M,mode=1777", "/x"]
    );
    assert_eq!(problems, ["tmpfs"], "{:?}", c.problems);
    let (doc, _, _) = one(json!({ "image": "x", "tmpfs": "/run" }));
    assert_eq!(strs(&doc, &["container", "tmpfs"]), ["/run"]);
}

#[test]
fn networks_aliases_and_names() {
    let (doc, problems, c) = one_with(
        json!({
            "image": "x",
            "networks": {
                "front": { "aliases": ["web", "www"] },
                "back": null,
                "ext": null,
                "default": null,
            },
            "container_name": "my-web",
        }),
        json!({ "networks": {
            "front": null,
            "back": { "name": "shared-back" },
            "ext": { "external": true },
        }}),
    );
    assert!(problems.is_empty(), "{:?}", c.problems);
    // serde_json sorts the keys.
    assert_eq!(
        strs(&doc, &["container", "networks"]),
        ["shared-back", "app_default", "ext", "app_front"]
    );
    assert_eq!(
        strs(&doc, &["container", "aliases"]),
        ["web", "www", "my-web"]
    );
    let (_, problems, _) = one(json!({ "image": "x", "container_name": "my_web" }));
    assert_eq!(problems, ["container_name"]);
}

#[test]
fn network_modes() {
    let p = project(
        json!({
            "vpn": { "image": "gluetun" },
            "app": { "image": "x", "network_mode": "service:vpn" },
            "none": { "image": "x", "network_mode": "none" },
            "other": { "image": "x", "network_mode": "container:abc" },
        }),
        json!({}),
    );
    let c = run(&p);
    let unit = |name: &str| -> DocumentMut {
        c.units
            .iter()
            .find(|u| u.unit == name)
            .unwrap()
            .text
            .parse()
            .unwrap()
    };
    assert_eq!(s(&unit("app"), &["container", "network"]), Some("unit:vpn"));
    assert_eq!(s(&unit("none"), &["container", "network"]), Some("none"));
    let keys: Vec<&str> = c.problems.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, ["network_mode"]);
    assert_eq!(c.problems[0].service.as_deref(), Some("other"));
}

#[test]
fn depends_on_conditions() {
    let p = project(
        json!({
            "db": { "image": "postgres", "healthcheck": { "test": ["CMD", "pg_isready"] } },
            "cache": { "image": "redis" },
            "migrate": { "image": "x", "restart": "no" },
            "web": { "image": "x", "depends_on": {
                "db": { "condition": "service_healthy" },
                "cache": { "condition": "service_healthy" },
                "migrate": { "condition": "service_completed_successfully", "restart": true },
                "gone": { "condition": "service_started", "required": false },
            }},
            "list": { "image": "x", "depends_on": ["db", "cache"] },
        }),
        json!({}),
    );
    let c = run(&p);
    let web: DocumentMut = c
        .units
        .iter()
        .find(|u| u.unit == "web")
        .unwrap()
        .text
        .parse()
        .unwrap();
    assert_eq!(s(&web, &["depends_on", "db"]), Some("healthy"));
    assert_eq!(s(&web, &["depends_on", "cache"]), Some("started"));
    assert_eq!(s(&web, &["depends_on", "migrate"]), Some("completed"));
    let list: DocumentMut = c
        .units
        .iter()
        .find(|u| u.unit == "list")
        .unwrap()
        .text
        .parse()
        .unwrap();
    assert_eq!(s(&list, &["depends_on", "db"]), Some("started"));
    let keys: Vec<&str> = c.problems.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        ["depends_on.cache.condition", "depends_on.migrate.restart"],
        "{:?}",
        c.problems
    );
}

#[test]
fn healthchecks() {
    let (doc, problems, _) = one(json!({
        "image": "x",
        "healthcheck": { "test": ["CMD-SHELL", "curl -f http://localhost || exit 1"],
                         "interval": "1m30s", "timeout": "10s", "retries": 5,
                         "start_period": "40s", "start_interval": "2s" },
    }));
    assert!(problems.is_empty());
    assert_eq!(
        strs(&doc, &["health", "exec"]),
        ["/bin/sh", "-c", "curl -f http://localhost || exit 1"]
    );
    assert_eq!(s(&doc, &["health", "interval"]), Some("90s"));
    assert_eq!(s(&doc, &["health", "timeout"]), Some("10s"));
    assert_eq!(doc["health"]["retries"].as_integer(), Some(5));
    assert_eq!(s(&doc, &["health", "start_period"]), Some("40s"));
    assert_eq!(s(&doc, &["health", "start_interval"]), Some("2s"));
    assert_eq!(s(&doc, &["health", "on_unhealthy"]), Some("ignore"));

    let (doc, _, _) = one(json!({ "image": "x", "healthcheck": { "test": ["CMD", "true"] } }));
    assert_eq!(strs(&doc, &["health", "exec"]), ["true"]);
    assert_eq!(s(&doc, &["health", "interval"]), Some("30s"));
    assert_eq!(s(&doc, &["health", "timeout"]), Some("30s"));
    let (doc, _, _) = one(json!({ "image": "x", "healthcheck": { "test": "redis-cli ping" } }));
    assert_eq!(
        strs(&doc, &["health", "exec"]),
        ["/bin/sh", "-c", "redis-cli ping"]
    );
    for off in [json!({ "test": ["NONE"] }), json!({ "disable": true })] {
        let (doc, problems, _) = one(json!({ "image": "x", "healthcheck": off }));
        assert!(problems.is_empty());
        assert!(doc.get("health").is_none());
    }
    let (_, problems, _) = one(json!({ "image": "x", "healthcheck": { "disable": false } }));
    assert_eq!(problems, ["healthcheck"]);
}

#[test]
fn restart_policies() {
    for (compose, jarvis, problem) in [
        ("no", "never", false),
        ("always", "always", false),
        ("unless-stopped", "always", false),
        ("on-failure", "on-failure", false),
        ("on-failure:3", "on-failure", true),
    ] {
        let (doc, problems, _) = one(json!({ "image": "x", "restart": compose }));
        assert_eq!(s(&doc, &["restart", "policy"]), Some(jarvis), "{compose}");
        assert_eq!(problems == ["restart"], problem, "{compose}: {problems:?}");
    }
    let (doc, problems, _) = one(json!({
        "image": "x", "deploy": { "restart_policy": { "condition": "on-failure", "max_attempts": 3 } },
    }));
    assert_eq!(s(&doc, &["restart", "policy"]), Some("on-failure"));
    assert_eq!(problems, ["deploy.restart_policy.max_attempts"]);
    // deploy.restart_policy wins over restart, whichever comes first.
    let (doc, problems, c) = one(json!({
        "image": "x", "restart": "always", "deploy": { "restart_policy": { "condition": "none" } },
    }));
    assert!(problems.is_empty());
    assert_eq!(s(&doc, &["restart", "policy"]), Some("never"));
    assert!(c.units[0].text.contains("deploy.restart_policy wins"));
}

#[test]
fn zero_health_settings_are_dockers_defaults() {
    let (doc, problems, _) = one(json!({
        "image": "x",
        "healthcheck": { "test": ["CMD", "true"], "interval": "0s", "timeout": "0s", "retries": 0 },
    }));
    assert!(problems.is_empty());
    assert_eq!(s(&doc, &["health", "interval"]), Some("30s"));
    assert_eq!(s(&doc, &["health", "timeout"]), Some("30s"));
    assert_eq!(doc["health"]["retries"].as_integer(), Some(3));
}

#[test]
fn security_and_capabilities() {
    let (doc, problems, _) = one(json!({
        "image": "x",
        "cap_add": ["NET_ADMIN", "CAP_SYS_MODULE"],
        "cap_drop": ["NET_RAW", "CHOWN"],
        "security_opt": ["no-new-privileges:true", "seccomp:unconfined"],
    }));
    assert_eq!(problems, ["security_opt"]);
    assert_eq!(
        strs(&doc, &["container", "cap_add"]),
        ["NET_ADMIN", "SYS_MODULE", "AUDIT_WRITE", "MKNOD"]
    );
    assert_eq!(strs(&doc, &["container", "cap_drop"]), ["CHOWN"]);
    assert_eq!(doc["security"]["no_new_privileges"].as_bool(), Some(true));
    let (doc, _, _) = one(json!({ "image": "x", "cap_drop": ["ALL"], "cap_add": ["CHOWN"] }));
    assert_eq!(strs(&doc, &["container", "cap_add"]), ["CHOWN"]);
    assert_eq!(strs(&doc, &["container", "cap_drop"]), ["ALL"]);
    let (doc, _, _) = one(json!({ "image": "x", "privileged": true, "cap_add": ["NET_ADMIN"] }));
    assert_eq!(doc["container"]["privileged"].as_bool(), Some(true));
    assert!(doc["container"].get("cap_add").is_none());
}

#[test]
fn devices_and_container_settings() {
    let (doc, problems, c) = one(json!({
        "image": "x",
        "devices": ["/dev/ttyUSB0:/dev/zigbee", "/dev/net/tun", "/dev/sda:/dev/xvda:r",
                    "nvidia.com/gpu=all"],
        "device_cgroup_rules": ["c 188:* rmw"],
        "group_add": ["video", 44],
        "shm_size": "1gb",
        "sysctls": ["net.ipv4.ip_forward=1"],
        "ulimits": { "nofile": { "soft": 20000, "hard": 40000 }, "nproc": 65535 },
        "init": true,
        "read_only": true,
        "user": "1000:1000",
        "working_dir": "/app",
        "hostname": "box",
        "extra_hosts": ["host.docker.internal:host-gateway", "nas=192.0.2.10"],
        "dns": "9.9.9.9",
        "stop_signal": "SIGINT",
        "stop_grace_period": "1m30s",
    }));
    assert_eq!(problems, ["devices", "devices"], "{:?}", c.problems);
    assert_eq!(
        strs(&doc, &["container", "device_cgroup_rules"]),
        ["c 188:* rwm"]
    );
    let devices = doc["device"].as_array_of_tables().unwrap();
    assert_eq!(devices.len(), 3);
    assert_eq!(
        devices.get(0).unwrap()["path"].as_str(),
        Some("/dev/ttyUSB0")
    );
    assert_eq!(devices.get(0).unwrap()["as"].as_str(), Some("/dev/zigbee"));
    assert!(devices.get(1).unwrap().get("as").is_none());
    assert_eq!(strs(&doc, &["container", "group_add"]), ["video", "44"]);
    assert_eq!(s(&doc, &["container", "shm_size"]), Some("1G"));
    assert_eq!(
        s(&doc, &["container", "sysctls", "net.ipv4.ip_forward"]),
        Some("1")
    );
    let nofile = doc["container"]["ulimits"]["nofile"].as_array().unwrap();
    assert_eq!(nofile.get(1).unwrap().as_integer(), Some(40000));
    assert_eq!(doc["container"]["init"].as_bool(), Some(true));
    assert_eq!(doc["container"]["read_only"].as_bool(), Some(true));
    assert_eq!(s(&doc, &["container", "user"]), Some("1000:1000"));
    assert_eq!(s(&doc, &["container", "working_dir"]), Some("/app"));
    assert_eq!(s(&doc, &["container", "hostname"]), Some("box"));
    assert_eq!(
        strs(&doc, &["container", "extra_hosts"]),
        ["host.docker.internal:host-gateway", "nas:192.0.2.10"]
    );
    assert_eq!(strs(&doc, &["container", "dns"]), ["9.9.9.9"]);
    assert_eq!(s(&doc, &["stop", "signal"]), Some("SIGINT"));
    assert_eq!(s(&doc, &["stop", "timeout"]), Some("90s"));
}

#[test]
fn resources_and_gpus() {
    let (doc, problems, c) = one(json!({
        "image": "x",
        "deploy": { "resources": {
            "limits": { "cpus": "0.5", "memory": "512M", "pids": 100 },
            "reservations": {
                "memory": "128M",
                "devices": [{ "driver": "nvidia", "count": 1, "capabilities": ["gpu", "video"] }],
            },
        }},
    }));
    assert_eq!(
        problems,
        ["deploy.resources.reservations.memory"],
        "{:?}",
        c.problems
    );
    assert_eq!(doc["resources"]["cpus"].as_float(), Some(0.5));
    assert_eq!(s(&doc, &["resources", "memory_max"]), Some("512M"));
    assert_eq!(doc["resources"]["pids_max"].as_integer(), Some(100));
    assert_eq!(s(&doc, &["gpu", "want"]), Some("nvidia"));
    assert_eq!(doc["gpu"]["count"].as_integer(), Some(1));

    let (doc, problems, _) = one(json!({
        "image": "x",
        "deploy": { "resources": { "reservations": { "devices": [
            { "driver": "nvidia", "count": "all", "capabilities": ["gpu"] },
        ]}}},
    }));
    assert_eq!(problems, ["deploy.resources.reservations.devices.count"]);
    assert_eq!(doc["gpu"]["count"].as_integer(), Some(1));
    let (_, problems, _) = one(json!({
        "image": "x",
        "deploy": { "resources": { "reservations": { "devices": [
            { "capabilities": ["gpu"], "device_ids": ["0", "1"] },
        ]}}},
    }));
    assert_eq!(
        problems,
        ["deploy.resources.reservations.devices.device_ids"]
    );
    let (doc, problems, _) = one(json!({
        "image": "x", "runtime": "nvidia", "mem_limit": "2g", "cpus": 1.5, "pids_limit": 50,
    }));
    assert!(problems.is_empty());
    assert_eq!(s(&doc, &["gpu", "want"]), Some("nvidia"));
    assert_eq!(s(&doc, &["resources", "memory_max"]), Some("2G"));
    assert_eq!(doc["resources"]["cpus"].as_float(), Some(1.5));
    assert_eq!(doc["resources"]["pids_max"].as_integer(), Some(50));
}

#[test]
fn logging() {
    let (doc, problems, _) = one(json!({
        "image": "x",
        "logging": { "driver": "json-file", "options": { "max-size": "10m", "max-file": "5" } },
    }));
    assert!(problems.is_empty());
    assert_eq!(s(&doc, &["logs", "max_size"]), Some("10M"));
    assert_eq!(doc["logs"]["max_files"].as_integer(), Some(5));
    let (_, problems, _) = one(json!({ "image": "x", "logging": { "driver": "syslog" } }));
    assert_eq!(problems, ["logging.driver"]);
}

#[test]
fn secrets_and_configs() {
    let (doc, problems, c) = one_with(
        json!({
            "image": "x",
            "secrets": ["db_password", { "source": "api", "target": "api_key" }, "from_env"],
            "configs": ["nginx", { "source": "app", "target": "/etc/app.conf" }, "inline"],
        }),
        json!({
            "secrets": {
                "db_password": { "file": "./secrets/db.txt" },
                "api": { "file": "/etc/api" },
                "from_env": { "environment": "API_TOKEN" },
            },
            "configs": {
                "nginx": { "file": "./nginx.conf" },
                "app": { "file": "/etc/app/app.conf" },
                "inline": { "content": "x" },
            },
        }),
    );
    assert_eq!(problems, ["configs", "secrets"], "{:?}", c.problems);
    let secrets = doc["secret"].as_array_of_tables().unwrap();
    assert_eq!(secrets.len(), 2);
    assert_eq!(
        secrets.get(0).unwrap()["source"].as_str(),
        Some("/srv/app/secrets/db.txt")
    );
    assert_eq!(
        secrets.get(0).unwrap()["target"].as_str(),
        Some("db_password")
    );
    assert_eq!(secrets.get(1).unwrap()["target"].as_str(), Some("api_key"));
    assert_eq!(
        strs(&doc, &["container", "volumes"]),
        [
            "/srv/app/nginx.conf:/nginx:ro",
            "/etc/app/app.conf:/etc/app.conf:ro"
        ]
    );
}

#[test]
fn labels_expose_and_unknown_keys() {
    let (_, problems, c) = one(json!({
        "image": "x",
        "labels": { "traefik.enable": "true" },
        "expose": ["3000"],
        "x-custom": 1,
        "frobnicate": true,
        "build": ".",
    }));
    assert_eq!(problems, ["build", "frobnicate"], "{:?}", c.problems);
    let text = &c.units[0].text;
    assert!(text.contains("# label traefik.enable=true"), "{text}");
    assert!(text.contains("# expose 3000"), "{text}");
}

#[test]
fn a_service_to_build_has_no_unit() {
    let p = project(
        json!({ "app": { "build": "." }, "db": { "image": "postgres" } }),
        json!({}),
    );
    let c = run(&p);
    assert_eq!(c.units.len(), 1);
    assert_eq!(c.units[0].unit, "db");
    assert_eq!(c.problems.len(), 1);
    assert_eq!(c.problems[0].key, "build");
    assert!(!c.ok());
}

#[test]
fn dependencies_on_services_without_a_unit_are_left_out() {
    let p = project(
        json!({
            "app": { "build": "." },
            "web": { "image": "x", "depends_on": ["app"], "network_mode": "service:app" },
        }),
        json!({}),
    );
    let c = run(&p);
    let keys: Vec<&str> = c.problems.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        ["build", "depends_on", "network_mode"],
        "{:?}",
        c.problems
    );
    let web: DocumentMut = c.units[0].text.parse().unwrap();
    assert!(web.get("depends_on").is_none());
    assert_eq!(strs(&web, &["container", "networks"]), ["app_default"]);
}

#[test]
fn service_names_jarvis_does_not_take_are_renamed() {
    let p = project(
        json!({
            "My_App": { "image": "x" },
            "web": { "image": "x", "depends_on": ["My_App"] },
        }),
        json!({}),
    );
    let c = run(&p);
    assert!(c.problems.is_empty(), "{:?}", c.problems);
    let names: Vec<&str> = c.units.iter().map(|u| u.unit.as_str()).collect();
    assert_eq!(names, ["my-app", "web"]);
    let web: DocumentMut = c.units[1].text.parse().unwrap();
    assert_eq!(s(&web, &["depends_on", "my-app"]), Some("started"));
}

#[test]
fn service_names_too_long_for_a_unit_are_shortened_and_stay_distinct() {
    let long = "a".repeat(70);
    let p = project(
        json!({
            long.clone(): { "image": "x" },
            format!("{long}b"): { "image": "x" },
        }),
        json!({}),
    );
    let c = run(&p);
    assert!(c.problems.is_empty(), "{:?}", c.problems);
    let names: Vec<&str> = c.units.iter().map(|u| u.unit.as_str()).collect();
    assert_eq!(names.len(), 2);
    assert_ne!(names[0], names[1]);
    for n in &names {
        assert!(
            jarvis_unit::is_valid_unit_name(n),
            "{n} ({} characters)",
            n.len()
        );
    }
}

#[test]
fn every_unit_written_validates_and_the_directory_loads() {
    let p = project(
        json!({
            "db": { "image": "postgres:16", "healthcheck": { "test": ["CMD", "pg_isready"] },
                    "volumes": ["pg:/var/lib/postgresql/data"], "restart": "unless-stopped",
                    "shm_size": "128mb", "environment": { "POSTGRES_PASSWORD": "pw" } },
            "web": { "image": "nginx", "ports": ["8080:80"], "depends_on": {
                        "db": { "condition": "service_healthy" } },
                     "tmpfs": ["/tmp"], "sysctls": { "net.ipv4.ip_unprivileged_port_start": 0 },
                     "ulimits": { "nofile": 65536 }, "init": true, "group_add": ["44"] },
            "vpn": { "image": "tailscale/tailscale", "cap_add": ["NET_ADMIN"],
                     "devices": ["/dev/net/tun"] },
            "app": { "image": "x", "network_mode": "service:vpn",
                     "secrets": ["pw"] },
        }),
        json!({ "volumes": { "pg": null }, "secrets": { "pw": { "file": "/etc/hostname" } } }),
    );
    let c = run(&p);
    assert!(c.problems.is_empty(), "{:#?}", c.problems);
    let out = tempfile::tempdir().unwrap();
    let written = convert::write(&c, out.path()).unwrap();
    assert_eq!(written.len(), 4);
    let set = jarvis_unit::load_dir(out.path()).unwrap_or_else(|d| {
        panic!(
            "{}",
            d.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        )
    });
    let web = &set.units["web"];
    assert_eq!(web.restart.policy, jarvis_unit::RestartPolicy::Never);
    assert!(web.security.no_new_privileges);
    assert_eq!(
        set.units["db"].restart.policy,
        jarvis_unit::RestartPolicy::Always
    );
}

#[test]
fn write_overwrites_only_what_an_import_wrote() {
    let p = project(json!({ "web": { "image": "nginx" } }), json!({}));
    let c = run(&p);
    let out = tempfile::tempdir().unwrap();
    convert::write(&c, out.path()).unwrap();
    // A second import overwrites its own file.
    convert::write(&c, out.path()).unwrap();
    // A file someone wrote (or kept by removing the first line) stays.
    let path = out.path().join("web.toml");
    std::fs::write(&path, "[container]\nimage = \"mine\"\n").unwrap();
    let err = convert::write(&c, out.path()).unwrap_err();
    assert!(err.to_string().contains("web.toml"), "{err}");
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "[container]\nimage = \"mine\"\n"
    );
}

#[test]
fn the_report_as_json() {
    let (_, _, c) = one(json!({ "image": "x", "ports": ["3000"] }));
    let j = c.to_json();
    assert_eq!(j["project"], "app");
    assert_eq!(j["ok"], false);
    assert_eq!(
        j["units"][0],
        json!({ "service": "svc", "unit": "svc", "file": "svc.toml" })
    );
    let p = &j["problems"][0];
    assert_eq!(p["service"], "svc");
    assert_eq!(p["key"], "ports");
    assert_eq!(p["file"], "/srv/app/compose.yml");
    assert!(p["line"].as_u64().unwrap() > 0);
    assert_eq!(p["col"], 5);
    assert!(p["message"].as_str().unwrap().contains("3000"));
    let _ = Path::new("");
}

/// Each key jarvis cannot express is reported under its own name, and the
/// rest of the service still converts to a unit that validates.
#[test]
fn every_report_names_its_key() {
    let cases = [
        (json!({ "links": ["db:database"] }), vec!["links"]),
        (json!({ "pull_policy": "build" }), vec!["pull_policy"]),
        (json!({ "platform": "linux/s390x" }), vec!["platform"]),
        (json!({ "scale": 3 }), vec!["scale"]),
        (
            json!({ "deploy": { "replicas": 2 } }),
            vec!["deploy.replicas"],
        ),
        (
            json!({ "deploy": { "mode": "global" } }),
            vec!["deploy.mode"],
        ),
        (json!({ "dns_search": ["lan"] }), vec!["dns_search"]),
        (json!({ "dns_opt": ["ndots:1"] }), vec!["dns_opt"]),
        (json!({ "domainname": "lan" }), vec!["domainname"]),
        (json!({ "userns_mode": "host" }), vec!["userns_mode"]),
        (json!({ "pid": "host" }), vec!["pid"]),
        (json!({ "ipc": "host" }), vec!["ipc"]),
        (json!({ "mem_reservation": "1g" }), vec!["mem_reservation"]),
        (json!({ "memswap_limit": "2g" }), vec!["memswap_limit"]),
        (json!({ "oom_score_adj": -500 }), vec!["oom_score_adj"]),
        (json!({ "volumes_from": ["other"] }), vec!["volumes_from"]),
        (json!({ "external_links": ["x"] }), vec!["external_links"]),
        (
            json!({ "mac_address": "02:42:ac:11:00:02" }),
            vec!["mac_address"],
        ),
        (json!({ "runtime": "runsc" }), vec!["runtime"]),
        (
            json!({ "logging": { "driver": "journald" } }),
            vec!["logging.driver"],
        ),
        (
            json!({ "gpus": [{ "driver": "nvidia", "device_ids": ["GPU-1"] }] }),
            vec!["gpus.device_ids"],
        ),
        (json!({ "gpus": "all" }), vec!["gpus"]),
        (json!({ "restart": "sometimes" }), vec!["restart"]),
        (
            json!({ "healthcheck": { "test": ["CMD"] } }),
            vec!["healthcheck.test"],
        ),
        (json!({ "ports": ["80/sctp:80/sctp"] }), vec!["ports"]),
        (json!({ "volumes": ["data:/data:nocopy"] }), vec!["volumes"]),
        (json!({ "volumes": ["/a:/b:shared"] }), vec!["volumes"]),
        (
            json!({ "volumes": [{ "type": "npipe", "source": "x", "target": "/x" }] }),
            vec!["volumes"],
        ),
        (
            json!({ "volumes": [{ "type": "bind", "source": "/a", "target": "/b",
                               "bind": { "propagation": "rshared" } }] }),
            vec!["volumes.bind.propagation"],
        ),
        (
            json!({ "volumes": [{ "type": "volume", "source": "data", "target": "/d",
                               "volume": { "nocopy": true } }] }),
            vec!["volumes.volume.nocopy"],
        ),
        (json!({ "network_mode": "bridge" }), vec!["network_mode"]),
        (
            json!({ "network_mode": "service:nowhere" }),
            vec!["network_mode"],
        ),
        (json!({ "depends_on": ["nowhere"] }), vec!["depends_on"]),
        (json!({ "networks": ["undeclared"] }), vec!["networks"]),
        (
            json!({ "networks": { "default": { "ipv4_address": "10.0.0.2" } } }),
            vec!["networks.default.ipv4_address"],
        ),
        (
            json!({ "post_start": [{ "command": "x" }] }),
            vec!["post_start"],
        ),
    ];
    for (extra, want) in cases {
        let mut service = json!({ "image": "x" });
        for (k, v) in extra.as_object().unwrap() {
            service[k] = v.clone();
        }
        let (_, keys, c) = one_with(service.clone(), json!({ "volumes": { "data": null } }));
        assert_eq!(keys, want, "{service}: {:#?}", c.problems);
        assert!(
            c.problems.iter().all(|p| p.key != "(unit)"),
            "{service}: {:#?}",
            c.problems
        );
    }
}

#[test]
fn top_level_network_settings_are_reported_once() {
    let p = project(
        json!({
            "a": { "image": "x", "networks": ["lan"] },
            "b": { "image": "x", "networks": ["lan"] },
        }),
        json!({ "networks": { "lan": { "driver": "macvlan", "internal": true } } }),
    );
    let c = run(&p);
    let keys: Vec<(Option<&str>, &str)> = c
        .problems
        .iter()
        .map(|p| (p.service.as_deref(), p.key.as_str()))
        .collect();
    assert_eq!(
        keys,
        [
            (None, "networks.lan.driver"),
            (None, "networks.lan.internal")
        ],
        "{:#?}",
        c.problems
    );
}

#[test]
fn comments_explain_the_choices() {
    let (_, problems, c) = one(json!({
        "image": "x",
        "tty": true,
        "pull_policy": "always",
        "deploy": { "placement": { "constraints": ["node.role==manager"] } },
        "logging": { "options": { "compress": "true" } },
        "volumes": ["/a:/b:z"],
        "cpu_shares": 512,
        "restart": "always",
    }));
    assert!(problems.is_empty(), "{:?}", c.problems);
    let text = &c.units[0].text;
    for words in [
        "tty: true dropped",
        "pull_policy always left out",
        "deploy.placement left out",
        "logging option compress left out",
        "SELinux relabel option \"z\" is dropped",
        "cpu_shares 512",
        "jarvis gives up (failed) after [restart] burst",
    ] {
        assert!(text.contains(words), "{words:?} not in\n{text}");
    }
    let doc: DocumentMut = text.parse().unwrap();
    assert_eq!(doc["resources"]["cpu_weight"].as_integer(), Some(20));
}
