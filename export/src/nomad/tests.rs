use std::path::Path;

use serde_json::Value;

use super::*;

fn unit(name: &str, text: &str) -> Unit {
    jarvis_unit::parse_unit(Path::new(&format!("/units/{name}.toml")), text)
        .unwrap_or_else(|e| panic!("{name}: {e:?}"))
}

/// The job of `units`, checked against [`JOB_SCHEMA`].
fn job(units: &[Unit]) -> Value {
    let e = export(units, &Options::default());
    assert!(e.skipped.is_empty(), "{:?}", e.skipped);
    assert_eq!(e.documents.len(), 1);
    assert_eq!(e.documents[0].name, "jarvis.nomad.json");
    assert!(e.documents[0].text.ends_with('\n'));
    let v: Value = serde_json::from_str(&e.documents[0].text).unwrap();
    let problems = check_job(&v);
    assert!(problems.is_empty(), "{problems:#?}\n{v:#}");
    v
}

/// The group of the unit `name`.
fn group<'a>(job: &'a Value, name: &str) -> &'a Value {
    job["Job"]["TaskGroups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["Name"] == name)
        .unwrap_or_else(|| panic!("no group {name}"))
}

/// The task `name` of a group.
fn task<'a>(group: &'a Value, name: &str) -> &'a Value {
    group["Tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["Name"] == name)
        .unwrap_or_else(|| panic!("no task {name}"))
}

fn note(group: &Value, topic: &str) -> String {
    group["Meta"][format!("jarvis_note_{topic}")]
        .as_str()
        .unwrap_or_else(|| panic!("no note {topic} in {:#}", group["Meta"]))
        .to_string()
}

const S: u64 = 1_000_000_000;

// ---------------------------------------------------------------------------
// Nomad's job structure, written down from its API (the Go package `api`:
// jobs.go `Job`, tasks.go `TaskGroup`, `Task`, `RestartPolicy`,
// `TaskLifecycle`, `Template`, `LogConfig`, `VolumeRequest`, `VolumeMount`;
// resources.go `Resources`, `NetworkResource`, `Port`, `RequestedDevice`;
// services.go `Service`, `ServiceCheck`, `CheckRestart`; constraint.go
// `Constraint`) as it encodes to JSON: the Go field names, durations
// (`time.Duration`) as integer nanoseconds, maps of strings as objects.
// Each driver's `Config` is checked against that driver's task config
// (drivers/docker/config.go and drivers/exec/driver.go `taskConfigSpec`).
// ---------------------------------------------------------------------------

#[derive(Clone, Copy)]
enum Ty {
    Str,
    /// An integer (counts, MHz, MB, nanoseconds).
    Int,
    Bool,
    List(&'static Ty),
    /// An object with any keys, each value of this type (`map[string]T`).
    Map(&'static Ty),
    Obj(&'static [(&'static str, Ty)]),
    /// A driver's `Config`: checked by the driver's own schema.
    Config,
}

use Ty::*;

const STRS: Ty = List(&Str);
const STR_MAP: Ty = Map(&Str);

const CONSTRAINT: Ty = Obj(&[("LTarget", Str), ("RTarget", Str), ("Operand", Str)]);

const PORT: Ty = Obj(&[
    ("Label", Str),
    ("Value", Int),
    ("To", Int),
    ("HostNetwork", Str),
    ("IgnoreCollision", Bool),
]);

const NETWORK_RESOURCE: Ty = Obj(&[
    ("Mode", Str),
    ("Device", Str),
    ("CIDR", Str),
    ("IP", Str),
    ("ReservedPorts", List(&PORT)),
    ("DynamicPorts", List(&PORT)),
    ("Hostname", Str),
    ("MBits", Int),
]);

const REQUESTED_DEVICE: Ty = Obj(&[
    ("Name", Str),
    ("Count", Int),
    ("Constraints", List(&CONSTRAINT)),
]);

const RESOURCES: Ty = Obj(&[
    ("CPU", Int),
    ("Cores", Int),
    ("MemoryMB", Int),
    ("MemoryMaxMB", Int),
    ("DiskMB", Int),
    ("Networks", List(&NETWORK_RESOURCE)),
    ("Devices", List(&REQUESTED_DEVICE)),
    ("SecretsMB", Int),
]);

const CHECK_RESTART: Ty = Obj(&[("Limit", Int), ("Grace", Int), ("IgnoreWarnings", Bool)]);

const SERVICE_CHECK: Ty = Obj(&[
    ("Name", Str),
    ("Type", Str),
    ("Command", Str),
    ("Args", STRS),
    ("Path", Str),
    ("Protocol", Str),
    ("PortLabel", Str),
    ("AddressMode", Str),
    ("Interval", Int),
    ("Timeout", Int),
    ("InitialStatus", Str),
    ("Method", Str),
    ("CheckRestart", CHECK_RESTART),
    ("TaskName", Str),
    ("OnUpdate", Str),
]);

const SERVICE: Ty = Obj(&[
    ("Name", Str),
    ("Tags", STRS),
    ("PortLabel", Str),
    ("AddressMode", Str),
    ("Address", Str),
    ("Checks", List(&SERVICE_CHECK)),
    ("CheckRestart", CHECK_RESTART),
    ("Meta", STR_MAP),
    ("TaskName", Str),
    ("Provider", Str),
]);

const RESTART_POLICY: Ty = Obj(&[
    ("Interval", Int),
    ("Attempts", Int),
    ("Delay", Int),
    ("Mode", Str),
    ("RenderTemplates", Bool),
]);

const LIFECYCLE: Ty = Obj(&[("Hook", Str), ("Sidecar", Bool)]);

const TEMPLATE: Ty = Obj(&[
    ("SourcePath", Str),
    ("DestPath", Str),
    ("EmbeddedTmpl", Str),
    ("ChangeMode", Str),
    ("ChangeSignal", Str),
    ("Once", Bool),
    ("Splay", Int),
    ("Perms", Str),
    ("Uid", Int),
    ("Gid", Int),
    ("LeftDelim", Str),
    ("RightDelim", Str),
    ("Envvars", Bool),
    ("ErrMissingKey", Bool),
]);

const LOG_CONFIG: Ty = Obj(&[
    ("MaxFiles", Int),
    ("MaxFileSizeMB", Int),
    ("Disabled", Bool),
]);

const VOLUME_REQUEST: Ty = Obj(&[
    ("Name", Str),
    ("Type", Str),
    ("Source", Str),
    ("ReadOnly", Bool),
]);

const VOLUME_MOUNT: Ty = Obj(&[
    ("Volume", Str),
    ("Destination", Str),
    ("ReadOnly", Bool),
    ("PropagationMode", Str),
]);

const TASK: Ty = Obj(&[
    ("Name", Str),
    ("Driver", Str),
    ("User", Str),
    ("Lifecycle", LIFECYCLE),
    ("Config", Config),
    ("Constraints", List(&CONSTRAINT)),
    ("Env", STR_MAP),
    ("Services", List(&SERVICE)),
    ("Resources", RESOURCES),
    ("RestartPolicy", RESTART_POLICY),
    ("Meta", STR_MAP),
    ("KillTimeout", Int),
    ("LogConfig", LOG_CONFIG),
    ("Templates", List(&TEMPLATE)),
    ("VolumeMounts", List(&VOLUME_MOUNT)),
    ("Leader", Bool),
    ("ShutdownDelay", Int),
    ("KillSignal", Str),
    ("Kind", Str),
]);

const TASK_GROUP: Ty = Obj(&[
    ("Name", Str),
    ("Count", Int),
    ("Constraints", List(&CONSTRAINT)),
    ("Tasks", List(&TASK)),
    ("Volumes", Map(&VOLUME_REQUEST)),
    ("RestartPolicy", RESTART_POLICY),
    ("Networks", List(&NETWORK_RESOURCE)),
    ("Meta", STR_MAP),
    ("Services", List(&SERVICE)),
    ("ShutdownDelay", Int),
]);

const JOB: Ty = Obj(&[
    ("Region", Str),
    ("Namespace", Str),
    ("ID", Str),
    ("Name", Str),
    ("Type", Str),
    ("Priority", Int),
    ("AllAtOnce", Bool),
    ("Datacenters", STRS),
    ("NodePool", Str),
    ("Constraints", List(&CONSTRAINT)),
    ("TaskGroups", List(&TASK_GROUP)),
    ("Meta", STR_MAP),
]);

/// What `nomad job run -json` reads: the job under `Job`.
const JOB_SCHEMA: Ty = Obj(&[("Job", JOB)]);

/// The docker driver's task config (the keys this export writes, and the
/// neighbours of each, with their HCL types).
const DOCKER_MOUNT: Ty = Obj(&[
    ("type", Str),
    ("target", Str),
    ("source", Str),
    ("readonly", Bool),
    ("tmpfs_options", Obj(&[("size", Int), ("mode", Int)])),
]);
const DOCKER_DEVICE: Ty = Obj(&[
    ("host_path", Str),
    ("container_path", Str),
    ("cgroup_permissions", Str),
]);
const DOCKER_CONFIG: Ty = Obj(&[
    ("image", Str),
    ("args", STRS),
    ("cap_add", STRS),
    ("cap_drop", STRS),
    ("command", Str),
    ("cpuset_cpus", Str),
    ("devices", List(&DOCKER_DEVICE)),
    ("dns_servers", STRS),
    ("entrypoint", STRS),
    ("extra_hosts", STRS),
    ("group_add", STRS),
    ("hostname", Str),
    ("init", Bool),
    ("mount", List(&DOCKER_MOUNT)),
    ("network_aliases", STRS),
    ("network_mode", Str),
    ("pids_limit", Int),
    ("ports", STRS),
    ("privileged", Bool),
    ("readonly_rootfs", Bool),
    ("security_opt", STRS),
    ("shm_size", Int),
    ("sysctl", List(&STR_MAP)),
    ("ulimit", List(&STR_MAP)),
    ("volumes", STRS),
    ("work_dir", Str),
]);
/// The exec driver's task config, whole.
const EXEC_CONFIG: Ty = Obj(&[
    ("command", Str),
    ("args", STRS),
    ("pid_mode", Str),
    ("ipc_mode", Str),
    ("cap_add", STRS),
    ("cap_drop", STRS),
    ("work_dir", Str),
]);

/// Every problem of `v` against `ty`, as `PATH: what`.
fn check(v: &Value, ty: Ty, path: &str, out: &mut Vec<String>) {
    let mut bad = |want: &str| out.push(format!("{path}: expected {want}, found {v}"));
    match ty {
        Str => {
            if !v.is_string() {
                bad("a string")
            }
        }
        Int => {
            if !(v.is_u64() || v.is_i64()) {
                bad("an integer")
            }
        }
        Bool => {
            if !v.is_boolean() {
                bad("a boolean")
            }
        }
        List(t) => match v.as_array() {
            Some(a) => {
                for (i, x) in a.iter().enumerate() {
                    check(x, *t, &format!("{path}[{i}]"), out);
                }
            }
            None => bad("an array"),
        },
        Map(t) => match v.as_object() {
            Some(o) => {
                for (k, x) in o {
                    check(x, *t, &format!("{path}.{k}"), out);
                }
            }
            None => bad("an object"),
        },
        Obj(fields) => match v.as_object() {
            Some(o) => {
                for (k, x) in o {
                    match fields.iter().find(|(name, _)| name == k) {
                        Some((_, t)) => check(x, *t, &format!("{path}.{k}"), out),
                        None => out.push(format!("{path}: unknown field {k:?}")),
                    }
                }
            }
            None => bad("an object"),
        },
        Config => {
            if !v.is_object() {
                bad("an object")
            }
        }
    }
}

/// Every problem of a job: its structure, and each task's `Config` against
/// its driver's.
fn check_job(job: &Value) -> Vec<String> {
    let mut out = Vec::new();
    check(job, JOB_SCHEMA, "", &mut out);
    for g in job["Job"]["TaskGroups"].as_array().into_iter().flatten() {
        for t in g["Tasks"].as_array().into_iter().flatten() {
            let path = format!("{}/{}.Config", g["Name"], t["Name"]);
            match t["Driver"].as_str() {
                Some("docker") => {
                    check(&t["Config"], DOCKER_CONFIG, &path, &mut out);
                    if !t["Config"]["image"].is_string() {
                        out.push(format!("{path}: no image"));
                    }
                }
                Some("exec") => {
                    check(&t["Config"], EXEC_CONFIG, &path, &mut out);
                    if !t["Config"]["command"].is_string() {
                        out.push(format!("{path}: no command"));
                    }
                }
                other => out.push(format!("{path}: unknown driver {other:?}")),
            }
        }
    }
    out
}

#[test]
fn the_checker_finds_unknown_fields_and_wrong_types() {
    let bad = serde_json::json!({
        "Job": {
            "ID": "x",
            "Datacenter": ["*"],
            "TaskGroups": [{
                "Name": "a",
                "Count": "1",
                "Tasks": [{
                    "Name": "a",
                    "Driver": "docker",
                    "KillTimeout": "5s",
                    "Config": { "image": "x", "command": ["a"], "volume": [] },
                    "Resources": { "CPU": 1.5, "Memory": 5 },
                }],
            }],
        }
    });
    let problems = check_job(&bad);
    for want in [
        ".Job: unknown field \"Datacenter\"",
        ".Job.TaskGroups[0].Count: expected an integer",
        ".Job.TaskGroups[0].Tasks[0].KillTimeout: expected an integer",
        ".Job.TaskGroups[0].Tasks[0].Resources.CPU: expected an integer",
        ".Job.TaskGroups[0].Tasks[0].Resources: unknown field \"Memory\"",
        "\"a\"/\"a\".Config.command: expected a string",
        "\"a\"/\"a\".Config: unknown field \"volume\"",
    ] {
        assert!(
            problems.iter().any(|p| p.starts_with(want)),
            "{want} not in {problems:#?}"
        );
    }
    assert_eq!(problems.len(), 7, "{problems:#?}");
}

// ---------------------------------------------------------------------------
// The repository's units.
// ---------------------------------------------------------------------------

fn repo_units(dir: &str) -> Vec<Unit> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(dir);
    let set = jarvis_unit::load_dir(&dir).unwrap_or_else(|e| panic!("{e:?}"));
    set.units.into_values().collect()
}

#[test]
fn the_repository_units_export_to_a_job_of_nomads_structure() {
    for dir in ["units", "units/demo"] {
        let units = repo_units(dir);
        let v = job(&units);
        let groups = v["Job"]["TaskGroups"].as_array().unwrap();
        assert_eq!(groups.len(), units.len(), "{dir}");
        for u in &units {
            let g = group(&v, &u.name);
            assert_eq!(g["Count"], 1);
            task(g, &u.name);
        }
    }
}

#[test]
fn the_home_units_map_as_they_should() {
    let v = job(&repo_units("units"));
    assert_eq!(v["Job"]["ID"], "jarvis");
    assert_eq!(v["Job"]["Type"], "service");
    assert_eq!(v["Job"]["Datacenters"], json!(["*"]));

    // A container on the host's network, with a USB device and a dependency.
    let ha = group(&v, "home-assistant");
    let t = task(ha, "home-assistant");
    assert_eq!(t["Driver"], "docker");
    assert_eq!(t["Config"]["network_mode"], "host");
    assert_eq!(
        t["Config"]["volumes"],
        json!([
            "/srv/home-assistant:/config",
            "/etc/localtime:/etc/localtime:ro"
        ])
    );
    assert_eq!(t["Config"]["devices"][0]["container_path"], "/dev/conbee");
    assert_eq!(t["Resources"]["CPU"], 2000);
    assert_eq!(t["Resources"]["MemoryMB"], 2048);
    let check = &ha["Services"][0]["Checks"][0];
    assert_eq!(check["Type"], "http");
    assert_eq!(check["Path"], "/manifest.json");
    assert_eq!(ha["Networks"][0]["ReservedPorts"][0]["Value"], 8123);
    let wait = task(ha, "wait-mosquitto");
    assert_eq!(wait["Lifecycle"]["Hook"], "prestart");
    assert!(wait["Config"]["args"][1]
        .as_str()
        .unwrap()
        .contains("nc -z"));

    // A native unit with a GPU.
    let ollama = group(&v, "ollama");
    let t = task(ollama, "ollama");
    assert_eq!(t["Driver"], "exec");
    assert_eq!(t["User"], "ollama");
    assert_eq!(t["Config"]["command"], "/usr/local/bin/ollama");
    assert_eq!(t["Config"]["args"], json!(["serve"]));
    assert_eq!(t["Config"]["work_dir"], "/var/lib/ollama");
    let d = &t["Resources"]["Devices"][0];
    assert_eq!(d["Name"], "gpu");
    assert_eq!(d["Count"], 1);
    assert_eq!(d["Constraints"][0]["RTarget"], "6144 MiB");

    // An exec health check: a script check, so a Consul service.
    let ts = group(&v, "tailscale");
    assert_eq!(ts["Services"][0]["Provider"], "consul");
    assert_eq!(ts["Services"][0]["Checks"][0]["Type"], "script");
    assert_eq!(
        ts["Services"][0]["Checks"][0]["Command"],
        "/usr/bin/tailscale"
    );
    assert_eq!(task(ts, "tailscale")["User"], "root");
    assert_eq!(
        task(ts, "tailscale")["Config"]["cap_add"],
        json!(["net_admin", "net_raw"])
    );
}

// ---------------------------------------------------------------------------
// Every key, one at a time.
// ---------------------------------------------------------------------------

/// A container unit with every container key.
const FULL_CONTAINER: &str = r#"
description = "everything"
depends_on = { db = "healthy", cache = "started", migrate = "completed" }
env_file = ["/srv/app/.env", "/srv/app/secret.env.age"]

[container]
image = "ghcr.io/example/app:1.2"
entrypoint = ["/init"]
command = ["serve", "--port", "80"]
user = "1000:1000"
working_dir = "/app"
network = "bridge"
networks = ["default", "media"]
ports = ["8080:80", "127.0.0.1:5353:53/udp", "5353:53/tcp"]
hostname = "app-host"
aliases = ["application"]
extra_hosts = ["host.docker.internal:host-gateway", "nas:192.0.2.10"]
dns = ["9.9.9.9"]
volumes = ["/srv/app:/data", "cache:/cache:ro"]
read_only = true
tmpfs = ["/tmp:size=64m,mode=1777", "/run"]
shm_size = "1G"
group_add = ["video"]
device_cgroup_rules = ["c 189:* rmw"]
cap_add = ["NET_ADMIN"]
cap_drop = ["MKNOD"]
sysctls = { "net.ipv4.ip_unprivileged_port_start" = "0" }
ulimits = { nofile = [1024, 65536] }
init = true

[[secret]]
source = "/srv/secrets/db_password"
target = "db_password"
mode = 0o440

[env]
GREETING = "hello"

[resources]
memory_max = "1536M"
cpus = 1.5
cpu_weight = 300
pids_max = 100
cpuset = "0-1"

[restart]
policy = "always"
delay = "2s"
max_delay = "1m"
burst = 3
interval = "1m"

[health]
http = "http://127.0.0.1:80/healthz?full=1"
interval = "7s"
timeout = "3s"
retries = 4
start_period = "20s"
start_interval = "1s"
on_unhealthy = "restart"

[stop]
signal = "SIGINT"
timeout = "45s"

[security]
capabilities = ["CAP_NET_RAW"]
no_new_privileges = true

[logs]
max_size = "20M"
max_files = 7

[gpu]
want = "nvidia"
count = 2
min_vram = "8G"
verify = "ollama"
on_fallback = "restart"

[[device]]
usb = "10c4:ea60"
serial = "abc"
as = "/dev/zigbee"

[[device]]
path = "/dev/net/tun"
optional = true

[bench]
api = "ollama"
url = "http://127.0.0.1:80"
model = "smollm2"
"#;

const DB: &str = r#"
[native]
command = ["/usr/bin/postgres", "-D", "/var/lib/pg"]
user = "postgres"
group = "postgres"
supplementary_groups = ["ssl-cert"]
working_dir = "/var/lib/pg"

[health]
tcp = "127.0.0.1:5432"
interval = "5s"
timeout = "1s"
"#;

const CACHE: &str = r#"
[container]
image = "redis:7"
ports = ["6379:6379"]
"#;

const MIGRATE: &str = r#"
[native]
command = ["/usr/bin/migrate"]

[restart]
policy = "never"
"#;

fn full() -> Value {
    job(&[
        unit("app", FULL_CONTAINER),
        unit("db", DB),
        unit("cache", CACHE),
        unit("migrate", MIGRATE),
    ])
}

#[test]
fn the_job_takes_its_name_and_datacenters_from_the_options() {
    let e = export(
        &[unit("cache", CACHE)],
        &Options {
            job: "home".into(),
            datacenters: vec!["dc1".into(), "dc2".into()],
        },
    );
    assert_eq!(e.documents[0].name, "home.nomad.json");
    assert_eq!(e.documents[0].unit, None);
    let v: Value = serde_json::from_str(&e.documents[0].text).unwrap();
    assert_eq!(v["Job"]["ID"], "home");
    assert_eq!(v["Job"]["Name"], "home");
    assert_eq!(v["Job"]["Datacenters"], json!(["dc1", "dc2"]));
    assert!(check_job(&v).is_empty());
}

#[test]
fn no_units_no_document() {
    assert_eq!(export(&[], &Options::default()), Export::default());
}

#[test]
fn container_keys_map_to_the_docker_driver() {
    let v = full();
    let g = group(&v, "app");
    let t = task(g, "app");
    let c = &t["Config"];
    assert_eq!(t["Driver"], "docker");
    assert_eq!(t["User"], "1000:1000");
    assert_eq!(c["image"], "ghcr.io/example/app:1.2");
    assert_eq!(c["entrypoint"], json!(["/init"]));
    assert_eq!(c["command"], "serve");
    assert_eq!(c["args"], json!(["--port", "80"]));
    assert_eq!(c["work_dir"], "/app");
    assert_eq!(c["hostname"], "app-host");
    assert!(
        c.get("network_mode").is_none(),
        "bridge is Docker's default"
    );
    assert_eq!(
        c["extra_hosts"],
        json!(["host.docker.internal:host-gateway", "nas:192.0.2.10"])
    );
    assert_eq!(c["dns_servers"], json!(["9.9.9.9"]));
    assert_eq!(
        c["volumes"],
        json!([
            "/srv/app:/data",
            "secrets/db_password:/run/secrets/db_password:ro"
        ])
    );
    assert_eq!(
        c["mount"],
        json!([
            { "type": "volume", "source": "cache", "target": "/cache", "readonly": true },
            { "type": "tmpfs", "target": "/tmp",
              "tmpfs_options": { "size": 64 * 1024 * 1024, "mode": 0o1777 } },
            { "type": "tmpfs", "target": "/run" },
        ])
    );
    assert_eq!(c["readonly_rootfs"], true);
    assert_eq!(c["shm_size"], 1u64 << 30);
    assert_eq!(c["group_add"], json!(["video"]));
    assert_eq!(c["cap_add"], json!(["net_admin", "net_raw"]));
    assert_eq!(c["cap_drop"], json!(["mknod"]));
    assert_eq!(c["security_opt"], json!(["no-new-privileges"]));
    assert_eq!(
        c["sysctl"],
        json!([{ "net.ipv4.ip_unprivileged_port_start": "0" }])
    );
    assert_eq!(c["ulimit"], json!([{ "nofile": "1024:65536" }]));
    assert_eq!(c["init"], true);
    assert_eq!(c["cpuset_cpus"], "0-1");
    assert_eq!(c["pids_limit"], 100);
    assert_eq!(
        c["devices"],
        json!([
            { "host_path": "/dev/zigbee", "container_path": "/dev/zigbee",
              "cgroup_permissions": "rwm" },
            { "host_path": "/dev/net/tun", "container_path": "/dev/net/tun",
              "cgroup_permissions": "rwm" },
        ])
    );
    assert!(note(g, "devices").contains("10c4:ea60 serial abc"));
    assert!(
        note(g, "devices").contains("c 189:* rwm"),
        "{}",
        note(g, "devices")
    );
    assert!(note(g, "network").contains("media"));
    assert!(note(g, "network").contains("application"));
    assert!(note(g, "ports").contains("127.0.0.1"));
    assert_eq!(g["Meta"]["jarvis_description"], "everything");
}

#[test]
fn ports_are_reserved_and_mapped_once_per_host_port() {
    let v = full();
    let g = group(&v, "app");
    let net = &g["Networks"][0];
    assert_eq!(net["Mode"], "host");
    assert_eq!(
        net["ReservedPorts"],
        json!([
            { "Label": "p8080", "Value": 8080, "To": 80 },
            { "Label": "p5353", "Value": 5353, "To": 53 },
        ])
    );
    assert_eq!(task(g, "app")["Config"]["ports"], json!(["p8080", "p5353"]));
    // The health check reaches the container's port 80 through 8080.
    assert_eq!(g["Services"][0]["PortLabel"], "p8080");
    assert_eq!(g["Services"][0]["Checks"][0]["PortLabel"], "p8080");
}

#[test]
fn a_bridged_health_port_that_is_not_published_gets_a_dynamic_port() {
    let v = job(&[unit(
        "web",
        "[container]\nimage = \"nginx\"\n[health]\ntcp = \"127.0.0.1:8080\"\n",
    )]);
    let g = group(&v, "web");
    assert_eq!(
        g["Networks"][0]["DynamicPorts"],
        json!([{ "Label": "health", "To": 8080 }])
    );
    assert_eq!(task(g, "web")["Config"]["ports"], json!(["health"]));
    assert_eq!(g["Services"][0]["Checks"][0]["Type"], "tcp");
}

#[test]
fn env_env_file_and_secrets_map_to_env_and_templates() {
    let v = full();
    let g = group(&v, "app");
    let t = task(g, "app");
    assert_eq!(t["Env"], json!({ "GREETING": "hello" }));
    assert_eq!(
        t["Templates"],
        json!([
            { "SourcePath": "/srv/app/.env", "DestPath": "secrets/env_file_0.env",
              "Envvars": true, "ChangeMode": "restart" },
            { "SourcePath": "/srv/secrets/db_password", "DestPath": "secrets/db_password",
              "Perms": "440", "ChangeMode": "restart" },
        ])
    );
    assert!(note(g, "env_file").contains("must exist on the client"));
    assert!(note(g, "env_file").contains("secret.env.age: age-encrypted"));
    assert!(note(g, "secret").contains("/run/secrets"));

    // A native unit finds its secrets in $CREDENTIALS_DIRECTORY.
    let v = job(&[unit(
        "n",
        "[native]\ncommand = [\"x\"]\n[[secret]]\nsource = \"/s/k\"\n",
    )]);
    let t = task(group(&v, "n"), "n");
    assert_eq!(t["Env"]["CREDENTIALS_DIRECTORY"], "${NOMAD_SECRETS_DIR}");
    assert_eq!(t["Templates"][0]["DestPath"], "secrets/k");
    assert_eq!(t["Templates"][0]["Perms"], "400");
}

#[test]
fn resources_map_to_mhz_megabytes_and_notes() {
    let v = full();
    let g = group(&v, "app");
    let r = &task(g, "app")["Resources"];
    assert_eq!(r["CPU"], 1500);
    assert_eq!(r["MemoryMB"], 1536);
    assert_eq!(r["MemoryMaxMB"], 1536);
    let n = note(g, "resources");
    assert!(n.contains("cpu_weight 300"), "{n}");
    assert!(n.contains("pids_max 100"), "{n}");

    // Native: pids_max and cpuset are notes only.
    let v = job(&[unit(
        "n",
        "[native]\ncommand = [\"x\"]\n[resources]\npids_max = 9\ncpuset = \"2\"\ncpus = 0.25\n",
    )]);
    let g = group(&v, "n");
    let c = &task(g, "n")["Config"];
    assert!(c.get("pids_limit").is_none() && c.get("cpuset_cpus").is_none());
    assert_eq!(task(g, "n")["Resources"]["CPU"], 250);
    assert!(task(g, "n")["Resources"].get("MemoryMB").is_none());
    let n = note(g, "resources");
    assert!(n.contains("pids_max 9") && n.contains("cpuset \"2\"") && n.contains("300 MB"));
}

#[test]
fn gpu_maps_to_a_device_request() {
    let v = full();
    let g = group(&v, "app");
    assert_eq!(
        task(g, "app")["Resources"]["Devices"],
        json!([{
            "Name": "nvidia/gpu",
            "Count": 2,
            "Constraints": [{
                "LTarget": "${device.attr.memory}",
                "Operand": ">=",
                "RTarget": "8192 MiB",
            }],
        }])
    );
    assert!(note(g, "gpu").contains("verify"));

    let gpu = |want: &str| {
        let v = job(&[unit(
            "g",
            &format!("[native]\ncommand = [\"x\"]\n[gpu]\nwant = \"{want}\"\n"),
        )]);
        task(group(&v, "g"), "g")["Resources"]["Devices"].clone()
    };
    assert_eq!(gpu("amd"), json!([{ "Name": "amd/gpu", "Count": 1 }]));
    assert_eq!(gpu("auto"), json!([{ "Name": "gpu", "Count": 1 }]));
    assert_eq!(gpu("cpu"), Value::Null);
}

#[test]
fn health_maps_to_a_check_with_check_restart() {
    let v = full();
    let g = group(&v, "app");
    let s = &g["Services"][0];
    assert_eq!(s["Name"], "app");
    assert_eq!(s["Provider"], "nomad");
    assert_eq!(
        s["Checks"][0],
        json!({
            "Name": "app-health",
            "Type": "http",
            "Path": "/healthz?full=1",
            "PortLabel": "p8080",
            "Interval": 7 * S,
            "Timeout": 3 * S,
            "CheckRestart": { "Limit": 4, "Grace": 20 * S, "IgnoreWarnings": false },
        })
    );
    assert!(note(g, "health").contains("start_interval"));

    // tcp on a native unit: a static port; on_unhealthy = ignore: no restart.
    let v = job(&[unit(
        "m",
        "[native]\ncommand = [\"x\"]\n[health]\ntcp = \"127.0.0.1:1883\"\non_unhealthy = \"ignore\"\n",
    )]);
    let g = group(&v, "m");
    assert_eq!(
        g["Networks"][0]["ReservedPorts"],
        json!([{ "Label": "health", "Value": 1883 }])
    );
    let c = &g["Services"][0]["Checks"][0];
    assert_eq!(c["Type"], "tcp");
    assert_eq!(c["PortLabel"], "health");
    assert!(c.get("CheckRestart").is_none());
    assert!(note(g, "health").contains("on_unhealthy = ignore"));

    // exec: a script check run in the task, through Consul.
    let v = job(&[unit(
        "e",
        "[native]\ncommand = [\"x\"]\n[health]\nexec = [\"test\", \"-f\", \"/ok\"]\n",
    )]);
    let s = &group(&v, "e")["Services"][0];
    assert_eq!(s["Provider"], "consul");
    assert_eq!(s["Checks"][0]["Type"], "script");
    assert_eq!(s["Checks"][0]["Command"], "test");
    assert_eq!(s["Checks"][0]["Args"], json!(["-f", "/ok"]));
    assert_eq!(s["Checks"][0]["TaskName"], "e");

    // The URL's default port.
    let v = job(&[unit(
        "h",
        "[native]\ncommand = [\"x\"]\n[health]\nhttp = \"http://localhost/x\"\n",
    )]);
    let g = group(&v, "h");
    assert_eq!(g["Services"][0]["Checks"][0]["Path"], "/x");
    assert!(g["Services"][0]["Checks"][0].get("Protocol").is_none());
    assert_eq!(g["Networks"][0]["ReservedPorts"][0]["Value"], 80);

    // No health: a service without a check, for discovery.
    let v = job(&[unit("p", "[native]\ncommand = [\"x\"]\n")]);
    let s = &group(&v, "p")["Services"][0];
    assert_eq!(s["Name"], "p");
    assert!(s.get("Checks").is_none());
}

#[test]
fn restart_maps_to_the_restart_policy() {
    let v = full();
    assert_eq!(
        group(&v, "app")["RestartPolicy"],
        json!({ "Attempts": 3, "Interval": 60 * S, "Delay": 2 * S, "Mode": "delay" })
    );
    let g = group(&v, "migrate");
    assert_eq!(g["RestartPolicy"]["Attempts"], 0);
    assert_eq!(g["RestartPolicy"]["Mode"], "fail");

    // Nomad's least interval, and room for burst × delay.
    let v = job(&[unit(
        "r",
        "[native]\ncommand = [\"x\"]\n[restart]\ndelay = \"3s\"\nburst = 4\ninterval = \"1s\"\n",
    )]);
    let g = group(&v, "r");
    assert_eq!(
        g["RestartPolicy"],
        json!({ "Attempts": 4, "Interval": 12 * S, "Delay": 3 * S, "Mode": "delay" })
    );
    let n = note(g, "restart");
    assert!(
        n.contains("raised to 12s") && n.contains("on-failure"),
        "{n}"
    );
}

#[test]
fn stop_and_logs_map_to_kill_settings_and_log_config() {
    let v = full();
    let g = group(&v, "app");
    let t = task(g, "app");
    assert_eq!(t["KillSignal"], "SIGINT");
    assert_eq!(t["KillTimeout"], 45 * S);
    assert!(note(g, "stop").contains("max_kill_timeout"));
    assert_eq!(
        t["LogConfig"],
        json!({ "MaxFiles": 7, "MaxFileSizeMB": 20 })
    );
    assert_eq!(signal_name(15), "SIGTERM");
    assert_eq!(signal_name(9), "SIGKILL");
    assert_eq!(signal_name(35), "SIGRTMIN+1");
}

#[test]
fn native_keys_map_to_the_exec_driver() {
    let v = full();
    let g = group(&v, "db");
    let t = task(g, "db");
    assert_eq!(t["Driver"], "exec");
    assert_eq!(t["User"], "postgres");
    assert_eq!(
        t["Config"],
        json!({
            "command": "/usr/bin/postgres",
            "args": ["-D", "/var/lib/pg"],
            "work_dir": "/var/lib/pg",
            "cap_drop": ["all"],
        })
    );
    assert!(note(g, "user").contains("ssl-cert"));
    // No user: root, said so.
    let g = group(&v, "migrate");
    assert_eq!(task(g, "migrate")["User"], "root");
    assert!(note(g, "user").contains("root"));
}

#[test]
fn depends_on_maps_to_prestart_wait_tasks() {
    let v = full();
    let g = group(&v, "app");
    let names: Vec<&str> = g["Tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["Name"].as_str().unwrap())
        .collect();
    // The main task comes last; completed has no task.
    assert_eq!(names, ["wait-db", "wait-cache", "app"]);
    let db = task(g, "wait-db");
    assert_eq!(db["Driver"], "docker");
    assert_eq!(db["Config"]["image"], WAIT_IMAGE);
    assert_eq!(
        db["Lifecycle"],
        json!({ "Hook": "prestart", "Sidecar": false })
    );
    let tmpl = db["Templates"][0]["EmbeddedTmpl"].as_str().unwrap();
    assert!(tmpl.contains("nomadService \"db\""), "{tmpl}");
    assert_eq!(db["Templates"][0]["Envvars"], true);
    // healthy with a tcp check: the check, run against the registration.
    let script = db["Config"]["args"][1].as_str().unwrap();
    assert!(
        script.contains("nc -z -w 2 \"$DEP_ADDR\" \"$DEP_PORT\""),
        "{script}"
    );
    // started: registered is enough.
    let script = task(g, "wait-cache")["Config"]["args"][1]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        script.starts_with("until [ -n \"$DEP_ADDR\" ]; do"),
        "{script}"
    );
    assert!(note(g, "depends_on").contains("migrate completed"));

    // A native dependent waits with the client's shell; healthy over http
    // re-runs the http check; an exec-checked dependency is a Consul service.
    let v = job(&[
        unit(
            "web",
            "depends_on = { api = \"healthy\", e = \"healthy\" }\n[native]\ncommand = [\"x\"]\n",
        ),
        unit(
            "api",
            "[native]\ncommand = [\"x\"]\n[health]\nhttp = \"http://127.0.0.1:9000/up\"\n",
        ),
        unit(
            "e",
            "[native]\ncommand = [\"x\"]\n[health]\nexec = [\"true\"]\n",
        ),
    ]);
    let g = group(&v, "web");
    let api = task(g, "wait-api");
    assert_eq!(api["Driver"], "exec");
    assert_eq!(api["Config"]["command"], "/bin/sh");
    let script = api["Config"]["args"][1].as_str().unwrap();
    assert!(
        script.contains("wget -q -O /dev/null \"http://$DEP_ADDR:$DEP_PORT/up\""),
        "{script}"
    );
    let tmpl = task(g, "wait-e")["Templates"][0]["EmbeddedTmpl"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(tmpl.contains("range service \"e\""), "{tmpl}");
}

#[test]
fn a_unit_with_both_forms_exports_the_form_run_picks() {
    let both = "[native]\ncommand = [\"/usr/bin/x\"]\n[container]\nimage = \"x\"\n";
    let v = job(&[unit("both", both)]);
    let g = group(&v, "both");
    assert_eq!(task(g, "both")["Driver"], "docker");
    assert!(note(g, "form").contains("native form too"));

    let v = job(&[unit("n", &format!("run = \"native\"\n{both}"))]);
    assert_eq!(task(group(&v, "n"), "n")["Driver"], "exec");

    // [gpu] tips auto to native.
    let v = job(&[unit("g", &format!("{both}[gpu]\n"))]);
    assert_eq!(task(group(&v, "g"), "g")["Driver"], "exec");
}

#[test]
fn an_oci_layout_image_falls_back_to_native_or_is_left_out() {
    let layout = "[container]\nimage = \"oci-layout:/srv/img\"\n";
    let e = export(&[unit("l", layout)], &Options::default());
    assert!(e.documents.is_empty());
    assert_eq!(e.skipped.len(), 1);
    assert_eq!(e.skipped[0].unit, "l");
    assert!(
        e.skipped[0].why.contains("OCI layout"),
        "{}",
        e.skipped[0].why
    );

    let v = job(&[unit(
        "l",
        &format!("run = \"container\"\n[native]\ncommand = [\"x\"]\n{layout}"),
    )]);
    let g = group(&v, "l");
    assert_eq!(task(g, "l")["Driver"], "exec");
    assert!(note(g, "form").contains("OCI layout"));
}

#[test]
fn host_and_closed_networks() {
    let v = job(&[
        unit(
            "h",
            "[container]\nimage = \"x\"\nnetwork = \"host\"\n[health]\nhttp = \"http://127.0.0.1:8123/\"\n",
        ),
        unit(
            "n",
            "[container]\nimage = \"x\"\nnetwork = \"none\"\n[health]\ntcp = \"127.0.0.1:1\"\n",
        ),
        unit("s", "[container]\nimage = \"x\"\nnetwork = \"unit:h\"\n"),
    ]);
    let g = group(&v, "h");
    assert_eq!(task(g, "h")["Config"]["network_mode"], "host");
    assert_eq!(
        g["Networks"][0]["ReservedPorts"],
        json!([{ "Label": "health", "Value": 8123 }])
    );
    let g = group(&v, "n");
    assert_eq!(task(g, "n")["Config"]["network_mode"], "none");
    assert!(g["Services"][0].get("Checks").is_none());
    assert!(note(g, "health").contains("no check"));
    assert!(note(group(&v, "s"), "network").contains("unit:h"));
}

#[test]
fn privileged_maps_to_docker_privileged() {
    let v = job(&[unit(
        "p",
        "[container]\nimage = \"x\"\nprivileged = true\n[security]\nno_new_privileges = false\n",
    )]);
    let g = group(&v, "p");
    let c = &task(g, "p")["Config"];
    assert_eq!(c["privileged"], true);
    assert!(c.get("security_opt").is_none());
    assert!(note(g, "security").contains("allow_privileged"));
}
