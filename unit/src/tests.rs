//! Tests for parsing, per-file validation and cross-unit validation.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::*;

mod limits;

const MIN: &str = "[native]\ncommand = [\"/bin/true\"]\n";

fn parse(text: &str) -> Result<Unit, Vec<Diagnostic>> {
    parse_unit(Path::new("units/web.toml"), text)
}

fn ok(text: &str) -> Unit {
    match parse(text) {
        Ok(u) => u,
        Err(d) => panic!("expected success, got:\n{}", render(&d)),
    }
}

fn errs(text: &str) -> Vec<Diagnostic> {
    match parse(text) {
        Ok(u) => panic!("expected errors, got {u:#?}"),
        Err(d) => d,
    }
}

fn render(diags: &[Diagnostic]) -> String {
    diags.iter().map(|d| format!("{d}\n")).collect()
}

fn native(u: &Unit) -> &Native {
    match &u.exec {
        Exec::Native(n) => n,
        other => panic!("{}: expected a native unit, got {other:?}", u.name),
    }
}

fn container(u: &Unit) -> &Container {
    match &u.exec {
        Exec::Container(c) => c,
        other => panic!("{}: expected a container unit, got {other:?}", u.name),
    }
}

#[test]
fn minimal_unit_gets_defaults() {
    let u = ok(MIN);
    assert_eq!(u.name, "web");
    assert_eq!(u.kind(), Kind::Native);
    assert_eq!(u.description, None);
    assert!(u.depends_on.is_empty());
    assert_eq!(u.exec, Exec::Native(Native::new(vec!["/bin/true".into()])));
    assert!(u.env.is_empty());
    assert_eq!(u.resources, Resources::default());
    assert_eq!(u.resources.memory_max, None);
    let r = &u.restart;
    assert_eq!(r.policy, RestartPolicy::OnFailure);
    assert_eq!(r.delay, Duration::from_millis(100));
    assert_eq!(r.max_delay, Duration::from_secs(30));
    assert_eq!(r.burst, 5);
    assert_eq!(r.interval, Duration::from_secs(10));
    assert_eq!(u.health, None);
    assert_eq!(
        u.stop,
        Stop {
            signal: 15,
            timeout: Duration::from_secs(10)
        }
    );
    assert_eq!(
        u.security,
        Security {
            capabilities: vec![],
            no_new_privileges: true
        }
    );
    assert_eq!(
        u.logs,
        Logs {
            max_size: 10 << 20,
            max_files: 3
        }
    );
    assert_eq!(u.gpu, None);
    assert!(u.devices.is_empty());
}

#[test]
fn health_defaults() {
    let u = ok(&format!("{MIN}[health]\ntcp = \"127.0.0.1:80\"\n"));
    assert_eq!(
        u.health,
        Some(Health {
            probe: Probe::Tcp("127.0.0.1:80".into()),
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(2),
            retries: 3,
            start_period: Duration::ZERO,
            start_interval: Duration::from_secs(5),
            on_unhealthy: OnUnhealthy::Restart,
        })
    );
}

#[test]
fn every_key_parses() {
    let text = r#"
description = "what this is"
depends_on = { db = "healthy", migrate = "completed", cache = "started" }

[native]
command = ["/usr/bin/ollama", "serve"]
user = "ollama"
group = "ollama"
supplementary_groups = ["dialout", 44]
working_dir = "/var/lib/ollama"

[env]
OLLAMA_HOST = "127.0.0.1:11434"
EMPTY = ""

[resources]
memory_max = "8G"
cpus = 2.5
cpu_weight = 100
pids_max = 512
cpuset = "0-3,6,8-9"

[restart]
policy = "always"
delay = "250ms"
max_delay = "1m"
burst = 7
interval = "20s"

[health]
http = "http://127.0.0.1:11434/api/version"
interval = "6s"
timeout = "1s"
retries = 4
start_period = "30s"
on_unhealthy = "ignore"

[stop]
signal = "SIGINT"
timeout = "12s"

[security]
capabilities = ["CAP_NET_BIND_SERVICE", "net_raw", "cap_chown"]
no_new_privileges = false

[logs]
max_size = "1M"
max_files = 9
"#;
    let u = ok(text);
    assert_eq!(u.description.as_deref(), Some("what this is"));
    // File order, not alphabetical.
    assert_eq!(
        u.depends_on,
        vec![
            Dependency {
                unit: "db".into(),
                condition: Condition::Healthy
            },
            Dependency {
                unit: "migrate".into(),
                condition: Condition::Completed
            },
            Dependency {
                unit: "cache".into(),
                condition: Condition::Started
            },
        ]
    );
    let n = native(&u);
    assert_eq!(n.command, vec!["/usr/bin/ollama", "serve"]);
    assert_eq!(n.user.as_deref(), Some("ollama"));
    assert_eq!(n.group.as_deref(), Some("ollama"));
    assert_eq!(n.supplementary_groups, vec!["dialout", "44"]);
    assert_eq!(n.working_dir.as_deref(), Some("/var/lib/ollama"));
    assert_eq!(
        u.env.get("OLLAMA_HOST").map(String::as_str),
        Some("127.0.0.1:11434")
    );
    assert_eq!(u.env.get("EMPTY").map(String::as_str), Some(""));
    assert_eq!(
        u.resources,
        Resources {
            memory_max: Some(8 << 30),
            cpus: Some(2.5),
            cpu_weight: Some(100),
            pids_max: Some(512),
            cpuset: Some("0-3,6,8-9".into()),
        }
    );
    assert_eq!(
        u.restart,
        Restart {
            policy: RestartPolicy::Always,
            delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(60),
            burst: 7,
            interval: Duration::from_secs(20),
        }
    );
    assert_eq!(
        u.health,
        Some(Health {
            probe: Probe::Http("http://127.0.0.1:11434/api/version".into()),
            interval: Duration::from_secs(6),
            timeout: Duration::from_secs(1),
            retries: 4,
            start_period: Duration::from_secs(30),
            start_interval: Duration::from_secs(5),
            on_unhealthy: OnUnhealthy::Ignore,
        })
    );
    assert_eq!(
        u.stop,
        Stop {
            signal: 2,
            timeout: Duration::from_secs(12)
        }
    );
    assert_eq!(
        u.security,
        Security {
            capabilities: vec![
                "CAP_NET_BIND_SERVICE".into(),
                "CAP_NET_RAW".into(),
                "CAP_CHOWN".into()
            ],
            no_new_privileges: false,
        }
    );
    assert_eq!(
        u.logs,
        Logs {
            max_size: 1 << 20,
            max_files: 9
        }
    );
}

#[test]
fn scalar_forms() {
    // (section + key = value, check)
    type Check = fn(&Unit) -> bool;
    let cases: &[(&str, Check)] = &[
        ("[resources]\nmemory_max = \"64M\"", |u| {
            u.resources.memory_max == Some(64 << 20)
        }),
        ("[resources]\nmemory_max = \"512K\"", |u| {
            u.resources.memory_max == Some(512 << 10)
        }),
        ("[resources]\nmemory_max = \"1024\"", |u| {
            u.resources.memory_max == Some(1024)
        }),
        ("[resources]\nmemory_max = 4096", |u| {
            u.resources.memory_max == Some(4096)
        }),
        ("[resources]\nmemory_max = \"1.5G\"", |u| {
            u.resources.memory_max == Some(3 << 29)
        }),
        ("[resources]\ncpus = 2", |u| u.resources.cpus == Some(2.0)),
        ("[resources]\ncpus = 0.25", |u| {
            u.resources.cpus == Some(0.25)
        }),
        ("[resources]\ncpuset = \"5\"", |u| {
            u.resources.cpuset.as_deref() == Some("5")
        }),
        ("[resources]\ncpuset = \"0-1, 4\"", |u| {
            u.resources.cpuset.as_deref() == Some("0-1,4")
        }),
        ("[resources]\ncpu_weight = 10000", |u| {
            u.resources.cpu_weight == Some(10000)
        }),
        ("[restart]\npolicy = \"never\"", |u| {
            u.restart.policy == RestartPolicy::Never
        }),
        ("[restart]\npolicy = \"on-failure\"", |u| {
            u.restart.policy == RestartPolicy::OnFailure
        }),
        ("[restart]\ndelay = \"0s\"", |u| {
            u.restart.delay == Duration::ZERO
        }),
        ("[restart]\ninterval = \"1h 30m\"", |u| {
            u.restart.interval == Duration::from_secs(5400)
        }),
        ("[stop]\nsignal = \"TERM\"", |u| u.stop.signal == 15),
        ("[stop]\nsignal = \"sigkill\"", |u| u.stop.signal == 9),
        ("[stop]\nsignal = \"SIGHUP\"", |u| u.stop.signal == 1),
        ("[stop]\nsignal = \"quit\"", |u| u.stop.signal == 3),
        ("[stop]\nsignal = 2", |u| u.stop.signal == 2),
        ("[security]\ncapabilities = [\"net_admin\"]", |u| {
            u.security.capabilities == ["CAP_NET_ADMIN"]
        }),
        (
            "[security]\ncapabilities = [\"Cap_Net_Raw\", \"CAP_NET_RAW\"]",
            |u| u.security.capabilities == ["CAP_NET_RAW"],
        ),
        ("[health]\nexec = [\"/bin/check\", \"-q\"]", |u| {
            u.health.as_ref().unwrap().probe == Probe::Exec(vec!["/bin/check".into(), "-q".into()])
        }),
        ("[health]\ntcp = \"[::1]:8123\"", |u| {
            u.health.as_ref().unwrap().probe == Probe::Tcp("[::1]:8123".into())
        }),
        ("[health]\nhttp = \"http://localhost\"", |u| {
            u.health.is_some()
        }),
    ];
    for (snippet, check) in cases {
        let u = ok(&format!("{MIN}{snippet}\n"));
        assert!(check(&u), "check failed for {snippet:?}: {u:#?}");
    }
    // Dotted keys are the same as tables.
    let u = ok("native.command = [\"/bin/x\"]\nresources.cpus = 1\n");
    assert_eq!(u.resources.cpus, Some(1.0));
    // user and group as numeric ids.
    let u = ok("[native]\ncommand = [\"/bin/x\"]\nuser = 1000\ngroup = 1000\n");
    let n = native(&u);
    assert_eq!(
        (n.user.as_deref(), n.group.as_deref()),
        (Some("1000"), Some("1000"))
    );
}

#[test]
fn depends_on_list_means_started() {
    let u = ok(&format!("depends_on = [\"db\", \"cache\"]\n{MIN}"));
    assert_eq!(
        u.depends_on,
        vec![
            Dependency {
                unit: "db".into(),
                condition: Condition::Started
            },
            Dependency {
                unit: "cache".into(),
                condition: Condition::Started
            },
        ]
    );
    let u = ok(&format!("depends_on = []\n{MIN}"));
    assert!(u.depends_on.is_empty());
    let u = ok(&format!(
        "{MIN}[depends_on]\nzeta = \"healthy\"\nalpha = \"started\"\n"
    ));
    assert_eq!(u.depends_on[0].unit, "zeta");
    assert_eq!(u.depends_on[1].unit, "alpha");
}

#[test]
fn minimal_container_unit_gets_defaults() {
    let u = ok("[container]\nimage = \"nginx\"\n");
    assert_eq!(u.kind(), Kind::Container);
    assert_eq!(
        u.exec,
        Exec::Container(Container {
            image: "nginx".into(),
            entrypoint: None,
            command: None,
            user: None,
            working_dir: None,
            network: Network::Bridge,
            networks: vec!["default".into()],
            ports: vec![],
            hostname: None,
            aliases: vec![],
            extra_hosts: vec![],
            dns: vec![],
            volumes: vec![],
            read_only: false,
            tmpfs: vec![],
            shm_size: None,
            group_add: vec![],
            privileged: false,
            device_cgroup_rules: vec![],
            cap_add: vec![],
            cap_drop: vec![],
            sysctls: BTreeMap::new(),
            ulimits: BTreeMap::new(),
            init: false,
        })
    );
    assert_eq!(u.exec, Exec::Container(Container::new("nginx")));
    // The other sections keep the same defaults as for a native unit.
    let native = ok(MIN);
    assert_eq!(u.env, native.env);
    assert_eq!(u.resources, native.resources);
    assert_eq!(u.restart, native.restart);
    assert_eq!(u.health, native.health);
    assert_eq!(u.stop, native.stop);
    assert_eq!(u.security, native.security);
    assert_eq!(u.logs, native.logs);
    assert_eq!(u.gpu, None);
    assert!(u.devices.is_empty());
    // Dotted keys work as for [native].
    let u = ok("container.image = \"nginx\"\ncontainer.network = \"none\"\n");
    assert_eq!(container(&u).network, Network::None);
}

#[test]
fn every_container_key_parses() {
    let text = r#"
description = "Home Assistant"
depends_on = { mosquitto = "healthy" }

[container]
image = "docker.io/homeassistant/home-assistant:2024.12"
entrypoint = ["/init"]
command = ["python3", "-m", "homeassistant", "--config", "/config"]
user = "1000:1000"
working_dir = "/config"
network = "host"
volumes = [
    "/srv/ha:/config",
    "/etc/localtime:/etc/localtime:ro",
    "/run/dbus:/run/dbus:rw",
]
read_only = true

[env]
TZ = "Europe/Paris"

[resources]
memory_max = "2G"
cpus = 2
pids_max = 512

[restart]
policy = "always"

[health]
http = "http://127.0.0.1:8123/manifest.json"
start_period = "3m"

[stop]
signal = "SIGTERM"
timeout = "60s"

[security]
capabilities = ["net_raw"]
no_new_privileges = true

[logs]
max_size = "10M"
max_files = 5
"#;
    let u = ok(text);
    assert_eq!(u.kind(), Kind::Container);
    assert_eq!(u.kind().as_str(), "container");
    assert_eq!(
        u.exec,
        Exec::Container(Container {
            image: "docker.io/homeassistant/home-assistant:2024.12".into(),
            entrypoint: Some(vec!["/init".into()]),
            command: Some(vec![
                "python3".into(),
                "-m".into(),
                "homeassistant".into(),
                "--config".into(),
                "/config".into()
            ]),
            user: Some("1000:1000".into()),
            working_dir: Some("/config".into()),
            network: Network::Host,
            networks: vec![],
            ports: vec![],
            hostname: None,
            aliases: vec![],
            extra_hosts: vec![],
            dns: vec![],
            volumes: vec![
                Volume::bind("/srv/ha", "/config", false),
                Volume::bind("/etc/localtime", "/etc/localtime", true),
                Volume::bind("/run/dbus", "/run/dbus", false),
            ],
            read_only: true,
            ..Container::new("")
        })
    );
    assert_eq!(
        u.depends_on,
        [Dependency {
            unit: "mosquitto".into(),
            condition: Condition::Healthy
        }]
    );
    assert_eq!(u.env.get("TZ").map(String::as_str), Some("Europe/Paris"));
    assert_eq!(u.resources.memory_max, Some(2 << 30));
    assert_eq!(u.restart.policy, RestartPolicy::Always);
    assert_eq!(
        u.health.as_ref().map(|h| h.start_period),
        Some(Duration::from_secs(180))
    );
    assert_eq!(u.stop.timeout, Duration::from_secs(60));
    assert_eq!(u.security.capabilities, ["CAP_NET_RAW"]);
    assert_eq!(u.logs.max_files, 5);
    // The typed unit round-trips through JSON (the daemon saves it).
    let json = serde_json::to_string(&u).unwrap();
    assert_eq!(serde_json::from_str::<Unit>(&json).unwrap(), u);
}

#[test]
fn container_value_forms() {
    let c = |snippet: &str| -> Container {
        container(&ok(&format!("[container]\nimage = \"nginx\"\n{snippet}\n"))).clone()
    };
    for (snippet, user) in [
        ("user = \"1000\"", "1000"),
        ("user = \"1000:1000\"", "1000:1000"),
        ("user = \"nobody\"", "nobody"),
        ("user = \"www-data:www-data\"", "www-data:www-data"),
        ("user = \"app:0\"", "app:0"),
        ("user = 0", "0"),
        ("user = 65534", "65534"),
    ] {
        assert_eq!(c(snippet).user.as_deref(), Some(user), "{snippet}");
    }
    assert_eq!(c("network = \"none\"").network, Network::None);
    assert_eq!(c("network = \"host\"").network, Network::Host);
    assert!(c("volumes = []").volumes.is_empty());
    assert!(!c("read_only = false").read_only);
    // Arguments may be empty strings; only the list itself must not be.
    assert_eq!(
        c("command = [\"--name\", \"\"]").command,
        Some(vec!["--name".into(), String::new()])
    );
    let v = c("volumes = [\"/srv/a:/a:ro\", \"/srv/b:/b:rw\", \"/srv/c/:/c/\", \"/srv/x:/a/x\"]")
        .volumes;
    let got: Vec<(&str, &str, bool)> = v
        .iter()
        .map(|v| match &v.source {
            VolumeSource::Bind(host) => (host.as_str(), v.container.as_str(), v.read_only),
            VolumeSource::Named(name) => panic!("{name} is a named volume"),
        })
        .collect();
    assert_eq!(
        got,
        [
            ("/srv/a", "/a", true),
            ("/srv/b", "/b", false),
            ("/srv/c/", "/c/", false),
            ("/srv/x", "/a/x", false)
        ]
    );
    // The same host path may be mounted at two places.
    assert_eq!(
        c("volumes = [\"/srv/a:/a\", \"/srv/a:/b\"]").volumes.len(),
        2
    );
}

fn usb(vendor: &str, product: &str, serial: Option<&str>) -> DeviceMatch {
    DeviceMatch::Usb {
        vendor: vendor.into(),
        product: product.into(),
        serial: serial.map(Into::into),
    }
}

fn device(matcher: DeviceMatch, as_path: &str, optional: bool) -> DeviceSpec {
    DeviceSpec {
        matcher,
        as_path: as_path.into(),
        optional,
    }
}

#[test]
fn every_gpu_and_device_key_parses() {
    let text = r#"description = "a GPU service with two dongles and a tun device"

[native]
command = ["/usr/local/bin/ollama", "serve"]
user = "ollama"

[gpu]
want = "nvidia"
count = 2
min_vram = "6G"

[[device]]
usb = "10C4:EA60"
serial = "c0ffee-1234"
as = "/dev/zigbee"
optional = false

[[device]]
usb = "1cf1:0030"
as = "/dev/conbee"
optional = true

[[device]]
path = "/dev/net/tun"

[[device]]
path = "/dev/dri/renderD128"
as = "/dev/dri/renderD129"
optional = true

[resources]
memory_max = "24G"
"#;
    let u = ok(text);
    assert_eq!(
        u.gpu,
        Some(Gpu {
            want: GpuWant::Nvidia,
            count: 2,
            min_vram: 6 << 30,
            ..Gpu::default()
        })
    );
    assert_eq!(
        u.devices,
        [
            device(
                usb("10c4", "ea60", Some("c0ffee-1234")),
                "/dev/zigbee",
                false
            ),
            device(usb("1cf1", "0030", None), "/dev/conbee", true),
            device(
                DeviceMatch::Path("/dev/net/tun".into()),
                "/dev/net/tun",
                false
            ),
            device(
                DeviceMatch::Path("/dev/dri/renderD128".into()),
                "/dev/dri/renderD129",
                true
            ),
        ]
    );
    // The sections around them are unaffected.
    assert_eq!(native(&u).user.as_deref(), Some("ollama"));
    assert_eq!(u.resources.memory_max, Some(24 << 30));
    // The typed unit round-trips through JSON (the daemon saves it).
    let json = serde_json::to_string(&u).unwrap();
    assert_eq!(serde_json::from_str::<Unit>(&json).unwrap(), u);

    // Both apply to container units too.
    let text = r#"[container]
image = "ghcr.io/home-assistant/home-assistant:2024.12"

[gpu]
want = "amd"

[[device]]
usb = "1cf1:0030"
as = "/dev/conbee"
optional = true
"#;
    let u = ok(text);
    assert_eq!(u.kind(), Kind::Container);
    assert_eq!(
        u.gpu,
        Some(Gpu {
            want: GpuWant::Amd,
            count: 1,
            min_vram: 0,
            ..Gpu::default()
        })
    );
    assert_eq!(
        u.devices,
        [device(usb("1cf1", "0030", None), "/dev/conbee", true)]
    );
    let json = serde_json::to_string(&u).unwrap();
    assert_eq!(serde_json::from_str::<Unit>(&json).unwrap(), u);
}

#[test]
fn gpu_forms() {
    let gpu = |snippet: &str| -> Gpu {
        ok(&format!("{MIN}[gpu]\n{snippet}\n"))
            .gpu
            .expect("[gpu] parses to Some")
    };
    // An empty [gpu] asks for one GPU of any kind, else the CPU.
    assert_eq!(gpu(""), Gpu::default());
    assert_eq!(
        Gpu::default(),
        Gpu {
            want: GpuWant::Auto,
            count: 1,
            min_vram: 0,
            ..Gpu::default()
        }
    );
    for (snippet, want) in [
        ("want = \"auto\"", GpuWant::Auto),
        ("want = \"nvidia\"", GpuWant::Nvidia),
        ("want = \"amd\"", GpuWant::Amd),
        ("want = \"cpu\"", GpuWant::Cpu),
    ] {
        let g = gpu(snippet);
        assert_eq!(g.want, want, "{snippet}");
        assert_eq!(format!("want = \"{}\"", want.as_str()), snippet);
        assert_eq!(
            serde_json::to_string(&want).unwrap(),
            format!("\"{}\"", want.as_str())
        );
    }
    assert_eq!(gpu("count = 1").count, 1);
    assert_eq!(gpu("count = 16").count, 16);
    for (snippet, bytes) in [
        ("min_vram = \"6G\"", 6u64 << 30),
        ("min_vram = \"512M\"", 512 << 20),
        ("min_vram = \"1.5G\"", 3 << 29),
        ("min_vram = \"0\"", 0),
        ("min_vram = 0", 0),
        ("min_vram = 1073741824", 1 << 30),
    ] {
        assert_eq!(gpu(snippet).min_vram, bytes, "{snippet}");
    }
    // What the GPU check asks, how often, and what a fallback does.
    assert_eq!(gpu("").verify, None);
    assert_eq!(gpu("").on_fallback, OnFallback::Warn);
    assert_eq!(gpu("").verify_interval, Duration::from_secs(30));
    assert_eq!(gpu("verify = \"ollama\"").verify, Some(GpuVerify::Ollama));
    assert_eq!(
        gpu("on_fallback = \"restart\"").on_fallback,
        OnFallback::Restart
    );
    assert_eq!(gpu("on_fallback = \"warn\"").on_fallback, OnFallback::Warn);
    assert_eq!(
        gpu("verify_interval = \"2s\"").verify_interval,
        Duration::from_secs(2)
    );
    assert_eq!(
        gpu("verify_interval = \"100ms\"").verify_interval,
        Duration::from_millis(100)
    );
    let g = gpu("verify = \"ollama\"\non_fallback = \"restart\"\nverify_interval = \"1m\"");
    assert_eq!(
        g,
        Gpu {
            verify: Some(GpuVerify::Ollama),
            on_fallback: OnFallback::Restart,
            verify_interval: Duration::from_secs(60),
            ..Gpu::default()
        }
    );
    // A unit saved before these keys existed still loads, with their
    // defaults.
    let mut json = serde_json::to_value(ok(&format!("{MIN}[gpu]\nverify = \"ollama\"\n"))).unwrap();
    let g = json["gpu"].as_object_mut().unwrap();
    for k in ["verify", "on_fallback", "verify_interval"] {
        g.remove(k).unwrap();
    }
    let u: Unit = serde_json::from_value(json).unwrap();
    assert_eq!(u.gpu, Some(Gpu::default()));
    // Dotted keys are the same as the table.
    let u = ok(&format!("gpu.want = \"nvidia\"\ngpu.count = 2\n{MIN}"));
    assert_eq!(
        u.gpu,
        Some(Gpu {
            want: GpuWant::Nvidia,
            count: 2,
            min_vram: 0,
            ..Gpu::default()
        })
    );
    // A unit saved before [gpu] and [[device]] existed still loads.
    let mut json: serde_json::Value = serde_json::to_value(ok(MIN)).unwrap();
    let obj = json.as_object_mut().unwrap();
    obj.remove("gpu").unwrap();
    obj.remove("devices").unwrap();
    let u: Unit = serde_json::from_value(json).unwrap();
    assert_eq!((u.gpu, u.devices), (None, vec![]));
}

#[test]
fn device_forms() {
    // (the [[device]] body, what it parses to)
    let cases = [
        (
            "usb = \"10c4:ea60\"\nas = \"/dev/zigbee\"",
            device(usb("10c4", "ea60", None), "/dev/zigbee", false),
        ),
        // Hex ids in any case, stored lowercase.
        (
            "usb = \"10C4:Ea60\"\nas = \"/dev/zigbee\"",
            device(usb("10c4", "ea60", None), "/dev/zigbee", false),
        ),
        // The serial is kept as written.
        (
            "usb = \"0403:6001\"\nserial = \"A50285BI\"\nas = \"/dev/ttyRFX\"",
            device(usb("0403", "6001", Some("A50285BI")), "/dev/ttyRFX", false),
        ),
        (
            "usb = \"1cf1:0030\"\nas = \"/dev/conbee\"\noptional = true",
            device(usb("1cf1", "0030", None), "/dev/conbee", true),
        ),
        // `as` is normalised.
        (
            "usb = \"1cf1:0030\"\nas = \"/dev//serial/./conbee/\"",
            device(usb("1cf1", "0030", None), "/dev/serial/conbee", false),
        ),
        // A path device is seen at its own path unless `as` says otherwise.
        (
            "path = \"/dev/net/tun\"",
            device(
                DeviceMatch::Path("/dev/net/tun".into()),
                "/dev/net/tun",
                false,
            ),
        ),
        (
            "path = \"/dev/ttyACM0\"\nas = \"/dev/conbee\"\noptional = false",
            device(
                DeviceMatch::Path("/dev/ttyACM0".into()),
                "/dev/conbee",
                false,
            ),
        ),
        // A host node outside /dev is fine when `as` puts it under /dev.
        (
            "path = \"/run/vdev/dongle\"\nas = \"/dev/dongle\"",
            device(
                DeviceMatch::Path("/run/vdev/dongle".into()),
                "/dev/dongle",
                false,
            ),
        ),
        (
            "path = \"/dev//net/tun\"",
            device(
                DeviceMatch::Path("/dev/net/tun".into()),
                "/dev/net/tun",
                false,
            ),
        ),
    ];
    for (body, want) in cases {
        let u = ok(&format!("{MIN}[[device]]\n{body}\n"));
        assert_eq!(u.devices, [want], "{body}");
    }
    // The inline form is the same, and devices keep file order.
    let u = ok(&format!(
        "device = [{{ path = \"/dev/net/tun\" }}, {{ usb = \"10c4:ea60\", as = \"/dev/zigbee\" }}]\n{MIN}"
    ));
    assert_eq!(
        u.devices,
        [
            device(
                DeviceMatch::Path("/dev/net/tun".into()),
                "/dev/net/tun",
                false
            ),
            device(usb("10c4", "ea60", None), "/dev/zigbee", false),
        ]
    );
    assert!(ok(&format!("device = []\n{MIN}")).devices.is_empty());
    // The same device may be seen at two paths, and two dongles with the
    // same ids are told apart by their serials.
    let u = ok(&format!(
        "{MIN}[[device]]\nusb = \"10c4:ea60\"\nserial = \"a\"\nas = \"/dev/zigbee\"\n\
         [[device]]\nusb = \"10c4:ea60\"\nserial = \"b\"\nas = \"/dev/thread\"\n\
         [[device]]\npath = \"/dev/net/tun\"\n[[device]]\npath = \"/dev/net/tun\"\nas = \"/dev/tun\"\n"
    ));
    assert_eq!(u.devices.len(), 4);
}

#[test]
fn image_references() {
    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    // (as written, fully qualified)
    let cases = [
        ("nginx", "docker.io/library/nginx:latest".to_string()),
        ("nginx:1.27", "docker.io/library/nginx:1.27".into()),
        ("library/nginx", "docker.io/library/nginx:latest".into()),
        (
            "homeassistant/home-assistant:2024.12",
            "docker.io/homeassistant/home-assistant:2024.12".into(),
        ),
        (
            "docker.io/homeassistant/home-assistant:2024.12",
            "docker.io/homeassistant/home-assistant:2024.12".into(),
        ),
        ("docker.io/nginx", "docker.io/library/nginx:latest".into()),
        (
            "ghcr.io/home-assistant/home-assistant:2024.12",
            "ghcr.io/home-assistant/home-assistant:2024.12".into(),
        ),
        (
            "ghcr.io/open-webui/open-webui:main",
            "ghcr.io/open-webui/open-webui:main".into(),
        ),
        ("localhost/app", "localhost/app:latest".into()),
        (
            "localhost:5000/team/app:v1.2.3-rc_1",
            "localhost:5000/team/app:v1.2.3-rc_1".into(),
        ),
        (
            "registry.example.com:5000/a/b/c",
            "registry.example.com:5000/a/b/c:latest".into(),
        ),
        (
            "a__b/c---d.e_f:_tag",
            "docker.io/a__b/c---d.e_f:_tag".into(),
        ),
        ("localhost:5000", "docker.io/library/localhost:5000".into()),
        (
            &*format!("nginx@{DIGEST}"),
            format!("docker.io/library/nginx@{DIGEST}"),
        ),
        (
            &*format!("quay.io/org/app:1.0@{DIGEST}"),
            format!("quay.io/org/app:1.0@{DIGEST}"),
        ),
        (
            "oci-layout:/var/lib/images/nginx:latest",
            "oci-layout:/var/lib/images/nginx:latest".into(),
        ),
        (
            "oci-layout:/srv/oci:dir:v1",
            "oci-layout:/srv/oci:dir:v1".into(),
        ),
        ("oci-layout:/a:b/c", "oci-layout:/a:b/c".into()),
    ];
    for (image, full) in &cases {
        let r = parse_image_reference(image).unwrap_or_else(|e| panic!("{image}: {e}"));
        assert_eq!(&r.to_string(), full, "{image}");
        // The canonical form reads back as the same reference (the image
        // store keys its tags by it).
        assert_eq!(parse_image_reference(full), Ok(r.clone()), "{full}");
        // And the unit file accepts it.
        let u = ok(&format!("[container]\nimage = \"{image}\"\n"));
        assert_eq!(&container(&u).image, image, "the image is kept as written");
    }
    let r = parse_image_reference("ghcr.io/open-webui/open-webui:main").unwrap();
    assert_eq!(
        (r.registry(), r.repository(), r.tag(), r.digest()),
        (
            Some("ghcr.io"),
            Some("open-webui/open-webui"),
            Some("main"),
            None
        )
    );
    let r = parse_image_reference(&format!("nginx@{DIGEST}")).unwrap();
    assert_eq!(
        (r.registry(), r.repository(), r.tag(), r.digest()),
        (Some("docker.io"), Some("library/nginx"), None, Some(DIGEST))
    );
    assert_eq!(
        parse_image_reference("oci-layout:/srv/oci:dir:v1"),
        Ok(ImageReference::OciLayout {
            path: "/srv/oci:dir".into(),
            tag: Some("v1".into()),
        })
    );
    // Without a tag: the layout's only image.
    assert_eq!(
        parse_image_reference("oci-layout:/srv/oci/"),
        Ok(ImageReference::OciLayout {
            path: "/srv/oci".into(),
            tag: None,
        })
    );
    for bad in [
        "",
        " nginx",
        "nginx:",
        "Nginx",
        "Owner/nginx",
        "nginx/",
        "/nginx",
        "ghcr.io/",
        "ghcr.io//app",
        "ghcr.io:0/app",
        "bad_host.io:5000/app",
        "[::1/app",
        "[::1]:5000/app:x",
        "nginx:a/b",
        "nginx:caf\u{e9}",
        "nginx@sha256:ABCDEF",
        "nginx@",
        "http://docker.io/nginx",
        "oci-layout:",
        "oci-layout:dir:tag",
        "oci-layout:/a/../b:tag",
        // A ':' in the directory's last component would print as a tag.
        "oci-layout:/srv/app:1/",
        "oci-layout:/a:1:/",
        "oci-layout:/a:1*/",
    ] {
        assert!(
            parse_image_reference(bad).is_err(),
            "{bad:?} parsed as {:?}",
            parse_image_reference(bad)
        );
    }
    let long_tag = format!("nginx:{}", "a".repeat(129));
    assert!(parse_image_reference(&long_tag).is_err());
    assert!(parse_image_reference(&format!("nginx:{}", "a".repeat(128))).is_ok());
}

#[test]
fn volume_helper() {
    assert_eq!(
        parse_volume("/etc/localtime:/etc/localtime:ro"),
        Ok(Volume::bind("/etc/localtime", "/etc/localtime", true))
    );
    assert_eq!(parse_volume("/a:/b").map(|v| v.read_only), Ok(false));
    assert_eq!(
        parse_volume("pg-data_1.x:/var/lib/postgresql/data"),
        Ok(Volume::named(
            "pg-data_1.x",
            "/var/lib/postgresql/data",
            false
        ))
    );
    assert_eq!(
        "data:/data:ro".parse::<Volume>(),
        Ok(Volume::named("data", "/data", true))
    );
    for bad in [
        "",
        "/a",
        "a",
        "/a:/b:ro:x",
        "_a:/b",
        "-a:/b",
        ".a:/b",
        "a/b:/b",
        "~/a:/b",
        "a b:/b",
        "a:b",
        "a:/",
        "/a:b",
        "/a:/",
        "/a:/b/..",
        "/a:/b:RO",
    ] {
        assert!(parse_volume(bad).is_err(), "{bad:?}");
    }
}

/// A unit whose `[bench]` (on line 5; its keys from line 6) holds `body`.
macro_rules! bench {
    ($body:literal) => {
        concat!(
            "[native]\ncommand = [\"/bin/x\"]\n[health]\ntcp = \"127.0.0.1:11434\"\n[bench]\n",
            $body
        )
    };
}

/// Each case: file text, expected `line:col`, and a fragment of the message.
const ERROR_CASES: &[(&str, &str, &str)] = &[
    // Structure.
    ("nmae = \"x\"\n[native]\ncommand = [\"/bin/true\"]\n", "1:1", "unknown key \"nmae\" at the top level; expected one of: description, depends_on, run, native, container"),
    ("description = \"x\"\n", "1:1", "missing [native] or [container] section: every unit needs one (or both), either [native] with command = [\"/path/to/program\", \"arg\", ...] or [container] with image = "),
    ("", "1:1", "missing [native] or [container] section"),
    // Both forms: each is checked on its own.
    ("[native]\ncommand = []\n[container]\nimage = \"nginx\"\n", "2:11", "native.command: must not be empty"),
    ("[native]\ncommand = [\"/bin/true\"]\n[container]\nimage = \"bad image\"\n", "4:9", "container.image: invalid image reference \"bad image\""),
    ("[container]\nimage = \"nginx\"\n[native]\nuser = \"x\"\n", "3:1", "[native] needs command = ["),
    // run
    ("run = \"native\"\n[container]\nimage = \"nginx\"\n", "1:7", "run = \"native\" but the unit has no [native] section; add [native] with command = [\"/path/to/program\", \"arg\", ...], or write run = \"container\" (or leave run out to run the only form declared)"),
    ("run = \"container\"\n[native]\ncommand = [\"/bin/true\"]\n", "1:7", "run = \"container\" but the unit has no [container] section; add [container] with image = \"registry/name:tag\", or write run = \"native\""),
    ("run = \"native\"\n[native]\ncommand = []\n[container]\nimage = \"nginx\"\n", "3:11", "native.command: must not be empty"),
    ("run = \"native\"\n", "1:1", "missing [native] or [container] section"),
    ("run = \"fastest\"\n[native]\ncommand = [\"/bin/true\"]\n[container]\nimage = \"nginx\"\n", "1:7", "run: unknown value \"fastest\"; expected one of: native, container, auto"),
    ("run = \"Native\"\n[native]\ncommand = [\"/bin/true\"]\n", "1:7", "run: unknown value \"Native\"; expected one of: native, container, auto (did you mean \"native\"?)"),
    ("run = \"both\"\n[native]\ncommand = [\"/bin/true\"]\n", "1:7", "run: unknown value \"both\""),
    ("run = 1\n[native]\ncommand = [\"/bin/true\"]\n", "1:7", "run: expected a string, one of: native, container, auto; found an integer"),
    ("run = [\"native\"]\n[native]\ncommand = [\"/bin/true\"]\n", "1:7", "run: expected a string, one of: native, container, auto; found an array"),
    ("[native]\ncommand = [\"/bin/true\"]\nrun = \"native\"\n", "3:1", "unknown key \"run\" in [native]; expected one of: command, user, group, supplementary_groups, working_dir; if you meant the top-level \"run\", move it above the first [section] header"),
    ("[native]\ncommand = [\"/bin/true\"]\n[container]\nimage = \"nginx\"\nrun = \"auto\"\n", "5:1", "unknown key \"run\" in [container]; expected one of: image, entrypoint, command, user, working_dir, network, networks, ports, hostname, aliases, extra_hosts, dns, volumes, read_only, tmpfs, shm_size, group_add, privileged, device_cgroup_rules, cap_add, cap_drop, sysctls, ulimits, init; if you meant the top-level \"run\""),
    ("rnu = \"auto\"\n[native]\ncommand = [\"/bin/true\"]\n", "1:1", "unknown key \"rnu\" at the top level; expected one of: description, depends_on, run, native, container, env, resources, restart, health, stop, security, logs, gpu, device, bench, env_file, secret (did you mean \"run\"?)"),
    ("container = \"nginx\"\n", "1:13", "container: expected a table (a [container] section), found a string"),
    ("restart = \"always\"\n[native]\ncommand = [\"/bin/true\"]\n", "1:11", "restart: expected a table (a [restart] section), found a string"),
    ("description = 5\n[native]\ncommand = [\"/bin/true\"]\n", "1:15", "description: expected a string, found an integer"),
    // Syntax.
    ("description = \"unterminated\n[native]\ncommand = [\"/bin/true\"]\n", "1:28", "TOML syntax error"),
    ("[native]\ncommand = [\"/bin/true\"]\ndescription = \"x\"\n", "3:1", "unknown key \"description\" in [native]; expected one of: command, user, group, supplementary_groups, working_dir; if you meant the top-level \"description\", move it above the first [section] header"),
    ("[native]\ncommand = [\"/bin/true\"]\n[native]\n", "3:2", "duplicate key \"native\""),
    // [native]
    ("[native]\nuser = \"x\"\n", "1:1", "[native] needs command = ["),
    ("[native]\ncommand = []\n", "2:11", "native.command: must not be empty"),
    ("[native]\ncommand = \"ollama serve\"\n", "2:11", "native.command: expected a list of strings (argv, no shell)"),
    ("[native]\ncommand = [\"/bin/x\", 3]\n", "2:22", "native.command: expected every element to be a string, found an integer"),
    ("[native]\ncommand = [\"\"]\n", "2:12", "the program (first element) must not be empty"),
    ("[native]\ncommand = [\"/bin/x\"]\nworking_dir = \"var/lib\"\n", "3:15", "native.working_dir: must be an absolute path"),
    ("[native]\ncommand = [\"/bin/x\"]\nuser = \"bad user\"\n", "3:8", "native.user: invalid user \"bad user\""),
    ("[native]\ncommand = [\"/bin/x\"]\ngroup = -1\n", "3:9", "native.group: must be at least 0, got -1"),
    ("[native]\ncommand = [\"/bin/x\"]\nsupplementary_groups = \"dialout\"\n", "3:24", "expected a list of group names"),
    ("[native]\ncommand = [\"/bin/x\"]\nshell = true\n", "3:1", "unknown key \"shell\" in [native]; expected one of: command, user, group, supplementary_groups, working_dir"),
    // [env]
    ("[native]\ncommand = [\"/bin/x\"]\n[env]\nPORT = 8080\n", "4:8", "env.PORT: values must be strings, found an integer; quote it: PORT = \"8080\""),
    ("[native]\ncommand = [\"/bin/x\"]\n[env]\n\"A=B\" = \"x\"\n", "4:1", "env: invalid variable name \"A=B\""),
    // [resources]
    ("[native]\ncommand = [\"/bin/x\"]\n[resources]\nmemmory_max = \"1G\"\n", "4:1", "unknown key \"memmory_max\" in [resources]; expected one of: memory_max, cpus, cpu_weight, pids_max, cpuset (did you mean \"memory_max\"?)"),
    ("[native]\ncommand = [\"/bin/x\"]\n[resources]\nmemory_max = \"8 gigs\"\n", "4:14", "resources.memory_max: invalid size \"8 gigs\"; write a number with an optional binary suffix, e.g. \"512K\""),
    ("[native]\ncommand = [\"/bin/x\"]\n[resources]\nmemory_max = \"0\"\n", "4:14", "must be greater than 0"),
    ("[native]\ncommand = [\"/bin/x\"]\n[resources]\nmemory_max = true\n", "4:14", "expected a size string, found a boolean"),
    ("[native]\ncommand = [\"/bin/x\"]\n[resources]\ncpus = 0\n", "4:8", "resources.cpus: must be a number of CPUs greater than 0"),
    ("[native]\ncommand = [\"/bin/x\"]\n[resources]\ncpus = -1.5\n", "4:8", "greater than 0"),
    ("[native]\ncommand = [\"/bin/x\"]\n[resources]\ncpus = \"2\"\n", "4:8", "expected a number of CPUs such as 0.5 or 2, found a string"),
    ("[native]\ncommand = [\"/bin/x\"]\n[resources]\ncpu_weight = 0\n", "4:14", "resources.cpu_weight: must be between 1 and 10000, got 0"),
    ("[native]\ncommand = [\"/bin/x\"]\n[resources]\ncpu_weight = 10001\n", "4:14", "between 1 and 10000"),
    ("[native]\ncommand = [\"/bin/x\"]\n[resources]\ncpu_weight = 1.5\n", "4:14", "expected an integer (between 1 and 10000), found a float"),
    ("[native]\ncommand = [\"/bin/x\"]\n[resources]\npids_max = 0\n", "4:12", "resources.pids_max: must be at least 1"),
    ("[native]\ncommand = [\"/bin/x\"]\n[resources]\ncpuset = \"3-1\"\n", "4:10", "range 3-1 is backwards"),
    ("[native]\ncommand = [\"/bin/x\"]\n[resources]\ncpuset = \"0-3,,5\"\n", "4:10", "invalid cpu list \"0-3,,5\""),
    ("[native]\ncommand = [\"/bin/x\"]\n[resources]\ncpuset = \"all\"\n", "4:10", "e.g. \"0-3,6,8-9\""),
    // [restart]
    ("[native]\ncommand = [\"/bin/x\"]\n[restart]\npolicy = \"sometimes\"\n", "4:10", "restart.policy: unknown value \"sometimes\"; expected one of: always, on-failure, never"),
    ("[native]\ncommand = [\"/bin/x\"]\n[restart]\npolicy = \"on_failure\"\n", "4:10", "did you mean \"on-failure\"?"),
    ("[native]\ncommand = [\"/bin/x\"]\n[restart]\ndelay = \"10 parsecs\"\n", "4:9", "restart.delay: invalid duration \"10 parsecs\""),
    ("[native]\ncommand = [\"/bin/x\"]\n[restart]\ndelay = 10\n", "4:9", "restart.delay: a duration must be a string with a unit: write \"10s\" for 10 seconds"),
    ("[native]\ncommand = [\"/bin/x\"]\n[restart]\ndelay = \"1m\"\n", "4:9", "restart: delay (1m) is longer than max_delay (30s)"),
    ("[native]\ncommand = [\"/bin/x\"]\n[restart]\nburst = 0\n", "4:9", "restart.burst: must be at least 1"),
    ("[native]\ncommand = [\"/bin/x\"]\n[restart]\ninterval = \"soon\"\n", "4:12", "e.g. \"100ms\", \"10s\""),
    // [health]
    ("[native]\ncommand = [\"/bin/x\"]\n[health]\ninterval = \"5s\"\n", "3:1", "[health] needs exactly one probe"),
    ("[native]\ncommand = [\"/bin/x\"]\n[health]\nhttp = \"http://a/\"\ntcp = \"a:1\"\n", "5:1", "[health] has more than one probe (http, tcp)"),
    ("[native]\ncommand = [\"/bin/x\"]\n[health]\nhttp = \"https://a/\"\n", "4:8", "health.http: https is not supported"),
    ("[native]\ncommand = [\"/bin/x\"]\n[health]\nhttp = \"127.0.0.1:80/\"\n", "4:8", "health.http: expected an http:// URL"),
    ("[native]\ncommand = [\"/bin/x\"]\n[health]\nhttp = \"http://a:port/\"\n", "4:8", "port \"port\" is not a number"),
    ("[native]\ncommand = [\"/bin/x\"]\n[health]\ntcp = \"127.0.0.1\"\n", "4:7", "health.tcp: missing port"),
    ("[native]\ncommand = [\"/bin/x\"]\n[health]\ntcp = \"127.0.0.1:http\"\n", "4:7", "health.tcp: port \"http\" is not a number"),
    ("[native]\ncommand = [\"/bin/x\"]\n[health]\ntcp = \":80\"\n", "4:7", "missing host"),
    ("[native]\ncommand = [\"/bin/x\"]\n[health]\nexec = []\n", "4:8", "health.exec: must not be empty"),
    ("[native]\ncommand = [\"/bin/x\"]\n[health]\nexec = \"check\"\n", "4:8", "health.exec: expected a list of strings"),
    ("[native]\ncommand = [\"/bin/x\"]\n[health]\ntcp = \"a:1\"\ninterval = \"0s\"\n", "5:12", "health.interval: 0s is too short; the least is 100ms"),
    ("[native]\ncommand = [\"/bin/x\"]\n[health]\ntcp = \"a:1\"\ninterval = \"1ns\"\n", "5:12", "health.interval: 1ns is too short; the least is 100ms"),
    ("[native]\ncommand = [\"/bin/x\"]\n[health]\ntcp = \"a:1\"\nstart_interval = \"5ms\"\n", "5:18", "health.start_interval: 5ms is too short; the least is 100ms"),
    ("[native]\ncommand = [\"/bin/x\"]\n[health]\ntcp = \"a:1\"\ntimeout = \"0s\"\n", "5:11", "health.timeout: 0s is too short; the least is 10ms"),
    ("[native]\ncommand = [\"/bin/x\"]\n[restart]\ninterval = \"1ns\"\n", "4:12", "restart.interval: 1ns is too short; the least is 100ms"),
    ("[native]\ncommand = [\"/bin/x\"]\n[health]\ntcp = \"a:1\"\nretries = 0\n", "5:11", "health.retries: must be at least 1"),
    ("[native]\ncommand = [\"/bin/x\"]\n[health]\ntcp = \"a:1\"\non_unhealthy = \"explode\"\n", "5:16", "expected one of: restart, ignore"),
    ("[native]\ncommand = [\"/bin/x\"]\n[health]\ntcp = \"a:1\"\nstart_period = \"forever\"\n", "5:16", "health.start_period: invalid duration"),
    // [stop]
    ("[native]\ncommand = [\"/bin/x\"]\n[stop]\nsignal = \"SIGFOO\"\n", "4:10", "stop.signal: unknown signal \"SIGFOO\"; use a signal name such as \"SIGTERM\""),
    ("[native]\ncommand = [\"/bin/x\"]\n[stop]\nsignal = 99\n", "4:10", "stop.signal: must be between 1 and 64"),
    ("[native]\ncommand = [\"/bin/x\"]\n[stop]\ntimeout = \"10\"\n", "4:11", "stop.timeout: invalid duration \"10\""),
    // [security]
    ("[native]\ncommand = [\"/bin/x\"]\n[security]\ncapabilities = [\"CAP_NET_BIND\"]\n", "4:17", "security.capabilities: unknown capability \"CAP_NET_BIND\" (did you mean \"CAP_NET_BIND_SERVICE\"?)"),
    ("[native]\ncommand = [\"/bin/x\"]\n[security]\ncapabilities = \"CAP_NET_RAW\"\n", "4:16", "security.capabilities: expected a list of strings"),
    ("[native]\ncommand = [\"/bin/x\"]\n[security]\nno_new_privileges = \"yes\"\n", "4:21", "security.no_new_privileges: expected true or false, found a string"),
    // [logs]
    ("[native]\ncommand = [\"/bin/x\"]\n[logs]\nmax_files = 0\n", "4:13", "logs.max_files: must be at least 1"),
    ("[native]\ncommand = [\"/bin/x\"]\n[logs]\nmax_size = \"ten megs\"\n", "4:12", "logs.max_size: invalid size"),
    ("[native]\ncommand = [\"/bin/x\"]\n[logs]\nmax_size = \"10M\"\nrotate = true\n", "5:1", "unknown key \"rotate\" in [logs]; expected one of: max_size, max_files"),
    // depends_on
    ("depends_on = { db = \"ready\" }\n[native]\ncommand = [\"/bin/x\"]\n", "1:21", "depends_on.db: unknown value \"ready\"; expected one of: started, healthy, completed"),
    ("depends_on = { db = true }\n[native]\ncommand = [\"/bin/x\"]\n", "1:21", "depends_on.db: expected a string, one of: started, healthy, completed"),
    ("depends_on = \"db\"\n[native]\ncommand = [\"/bin/x\"]\n", "1:14", "depends_on: expected a table such as { db = \"healthy\" } or a list such as [\"db\"], found a string"),
    ("depends_on = [\"db\", \"db\"]\n[native]\ncommand = [\"/bin/x\"]\n", "1:21", "depends_on: \"db\" is listed twice"),
    ("depends_on = [\"Db_1\"]\n[native]\ncommand = [\"/bin/x\"]\n", "1:15", "depends_on: \"Db_1\" is not a valid unit name"),
    ("depends_on = [7]\n[native]\ncommand = [\"/bin/x\"]\n", "1:15", "depends_on: expected unit names (strings) in the list, found an integer"),
    ("depends_on = { web = \"started\" }\n[native]\ncommand = [\"/bin/x\"]\n", "1:16", "depends_on: unit \"web\" depends on itself; remove this entry"),
    ("depends_on = [\"web\"]\n[native]\ncommand = [\"/bin/x\"]\n", "1:15", "depends_on: unit \"web\" depends on itself"),
    // [container]
    ("[container]\nentrypoint = [\"/init\"]\n", "1:1", "[container] needs image = \"...\", e.g. \"docker.io/library/nginx:1.27\""),
    ("[container]\nimage = \"\"\n", "2:9", "container.image: invalid image reference \"\": the image reference is empty"),
    ("[container]\nimage = \"home assistant\"\n", "2:9", "an image reference must not contain spaces"),
    ("[container]\nimage = 5\n", "2:9", "container.image: expected a string, found an integer"),
    ("[container]\nimage = \"oci-layout:images/nginx:latest\"\n", "2:9", "the layout directory \"images/nginx\" must be an absolute path; write oci-layout:/path/to/dir:tag"),
    ("[container]\nimage = \"oci-layout:/var/lib/../images/nginx:latest\"\n", "2:9", "the layout directory \"/var/lib/../images/nginx\" must not contain \"..\""),
    ("[container]\nimage = \"[::1]:5000/app\"\n", "2:9", "the registry \"[::1]:5000\" is an IPv6 address, which image references cannot name"),
    ("[container]\nimage = \"Owner/app\"\n", "2:9", "repository paths are lower-case: write \"owner/app\""),
    ("[container]\nimage = \"ghcr.io/app@sha512:0123\"\n", "2:9", "the digest \"sha512:0123\" must be sha256:<64 hex digits>"),
    ("[container]\nimage = \"oci-layout:/var/lib/images/nginx:\"\n", "2:9", "the tag after the last ':' is empty"),
    ("[container]\nimage = \"ghcr.io/Home-Assistant/home-assistant\"\n", "2:9", "repository paths are lower-case: write \"home-assistant\""),
    ("[container]\nimage = \"nginx:\"\n", "2:9", "the tag after ':' is empty"),
    ("[container]\nimage = \"nginx:-rc1\"\n", "2:9", "the tag \"-rc1\" must start with a letter, a digit or '_'"),
    ("[container]\nimage = \"nginx@sha256:abc123\"\n", "2:9", "the digest must be sha256: and 64 lowercase hex digits, got 6 characters"),
    ("[container]\nimage = \"nginx@md5:abc\"\n", "2:9", "the digest \"md5:abc\" must be sha256:<64 hex digits>"),
    ("[container]\nimage = \"https://ghcr.io/owner/app:1\"\n", "2:9", "leave out the scheme (https://)"),
    ("[container]\nimage = \"registry.local:99999/app\"\n", "2:9", "the registry port \"99999\" is not a number"),
    ("[container]\nimage = \"owner//app\"\n", "2:9", "the repository path has an empty component"),
    ("[container]\nimage = \"owner/-app\"\n", "2:9", "\"-app\" must start and end with a letter or a digit"),
    ("[container]\nimage = \"owner/a.-b\"\n", "2:9", "has the separator \".-\""),
    ("[container]\nimage = \"owner/my+app\"\n", "2:9", "\"my+app\" has '+'"),
    ("[container]\nimage = \"nginx\"\nentrypoint = []\n", "3:14", "container.entrypoint: must not be empty; leave it out to keep the image's Entrypoint"),
    ("[container]\nimage = \"nginx\"\ncommand = []\n", "3:11", "container.command: must not be empty; leave it out to keep the image's Cmd"),
    ("[container]\nimage = \"nginx\"\ncommand = \"hass -c /config\"\n", "3:11", "container.command: expected a list of strings (argv, no shell), e.g. [\"serve\", \"--port\", \"8080\"]; split \"hass -c /config\" into its words"),
    ("[container]\nimage = \"nginx\"\nentrypoint = [\"/init\", 1]\n", "3:24", "container.entrypoint: expected every element to be a string, found an integer"),
    ("[container]\nimage = \"nginx\"\nuser = \"1000:\"\n", "3:8", "container.user: invalid user \"1000:\": the group is empty; write \"uid\", \"uid:gid\", \"name\" or \"name:group\""),
    ("[container]\nimage = \"nginx\"\nuser = \":1000\"\n", "3:8", "the user is empty"),
    ("[container]\nimage = \"nginx\"\nuser = \"1000:1000:1000\"\n", "3:8", "it has more than one ':'"),
    ("[container]\nimage = \"nginx\"\nuser = \"bad user\"\n", "3:8", "\"bad user\" is not a valid user name"),
    ("[container]\nimage = \"nginx\"\nuser = \"app:bad group\"\n", "3:8", "\"bad group\" is not a valid group name"),
    ("[container]\nimage = \"nginx\"\nuser = \"4294967296\"\n", "3:8", "the user id 4294967296 is too large"),
    ("[container]\nimage = \"nginx\"\nuser = \"\"\n", "3:8", "invalid user \"\": it is empty"),
    ("[container]\nimage = \"nginx\"\nuser = -1\n", "3:8", "container.user: must be at least 0, got -1"),
    ("[container]\nimage = \"nginx\"\nuser = true\n", "3:8", "container.user: expected a string, found a boolean"),
    ("[container]\nimage = \"nginx\"\nworking_dir = \"config\"\n", "3:15", "container.working_dir: must be an absolute path (starting with /), got \"config\""),
    ("[container]\nimage = \"nginx\"\nnetwork = \"hosts\"\n", "3:11", "did you mean \"host\"?"),
    ("[container]\nimage = \"nginx\"\nnetwork = false\n", "3:11", "container.network: expected a string, one of \"bridge\", \"host\", \"none\" or \"unit:NAME\"; found a boolean"),
    // [container] networking
    ("[container]\nimage = \"nginx\"\nnetwork = \"bridges\"\n", "3:11", "container.network: unknown value \"bridges\"; expected one of \"bridge\", \"host\", \"none\" or \"unit:NAME\" (did you mean \"bridge\"?)"),
    ("[container]\nimage = \"nginx\"\nnetwork = \"unit:\"\n", "3:11", "container.network: \"unit:\" names no unit; write \"unit:NAME\""),
    ("[container]\nimage = \"nginx\"\nnetwork = \"unit:web\"\n", "3:11", "container.network: \"unit:web\" names this unit itself, a cycle"),
    ("[container]\nimage = \"nginx\"\nnetwork = \"unit:Vpn\"\n", "3:11", "container.network: \"unit:Vpn\" names no unit: \"Vpn\" is not a unit name"),
    ("[container]\nimage = \"nginx\"\nnetwork = \"container:vpn\"\n", "3:11", "to join the network namespace of another unit write \"unit:vpn\""),
    ("[container]\nimage = \"nginx\"\nnetworks = []\n", "3:12", "container.networks: a bridged unit joins at least one network; leave networks out for [\"default\"]"),
    ("[container]\nimage = \"nginx\"\nnetworks = [\"Media\"]\n", "3:13", "container.networks: \"Media\" is not a network name; network names are lowercase letters, digits, '_', '.' and '-'"),
    ("[container]\nimage = \"nginx\"\nnetworks = [\"me dia\"]\n", "3:13", "container.networks: \"me dia\" has ' '"),
    ("[container]\nimage = \"nginx\"\nnetworks = [\"\"]\n", "3:13", "container.networks: a network name is empty"),
    ("[container]\nimage = \"nginx\"\nnetworks = [\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"]\n", "3:13", "is 65 bytes long; a network name has at most 64"),
    ("[container]\nimage = \"nginx\"\nnetworks = [\"media\", \"default\", \"media\"]\n", "3:33", "container.networks: \"media\" is listed twice (first at 3:13); remove one"),
    ("[container]\nimage = \"nginx\"\nnetworks = \"media\"\n", "3:12", "container.networks: expected a list of strings, e.g. [\"default\", \"media\"], found a string"),
    ("[container]\nimage = \"nginx\"\nports = [\"8080\"]\n", "3:10", "container.ports: invalid port \"8080\": give the host port and the container port, e.g. \"8080:8080\""),
    ("[container]\nimage = \"nginx\"\nports = [8080]\n", "3:10", "container.ports: expected a string \"HOST_PORT:CONTAINER_PORT\", found an integer; write \"8080:8080\""),
    ("[container]\nimage = \"nginx\"\nports = [\"8080:0\"]\n", "3:10", "container.ports: invalid port \"8080:0\": the container port 0 is out of range; ports are 1 to 65535; write [HOST_IP:]HOST_PORT:CONTAINER_PORT[/tcp|/udp], e.g. \"8080:80\""),
    ("[container]\nimage = \"nginx\"\nports = [\"70000:80\"]\n", "3:10", "the host port 70000 is out of range"),
    ("[container]\nimage = \"nginx\"\nports = [\"http:80\"]\n", "3:10", "the host port \"http\" is not a number"),
    ("[container]\nimage = \"nginx\"\nports = [\"8000-8010:8000-8010\"]\n", "3:10", "the host port \"8000-8010\" is a range; ranges are not supported"),
    ("[container]\nimage = \"nginx\"\nports = [\"8080:80/sctp\"]\n", "3:10", "unknown protocol \"sctp\" after '/'; expected /tcp or /udp"),
    ("[container]\nimage = \"nginx\"\nports = [\"8080:80/TCP\"]\n", "3:10", "write the protocol in lower case, /tcp"),
    ("[container]\nimage = \"nginx\"\nports = [\"127.0.0.300:8080:80\"]\n", "3:10", "the host address \"127.0.0.300\" is not an IP address"),
    ("[container]\nimage = \"nginx\"\nports = [\"::1:8080:80\"]\n", "3:10", "too many ':'; an IPv6 host address goes in brackets, e.g. \"[::1]:8080:80\""),
    ("[container]\nimage = \"nginx\"\nports = [\"[::1:8080:80\"]\n", "3:10", "unclosed '[' in the IPv6 host address"),
    ("[container]\nimage = \"nginx\"\nports = [\"[1.2.3.4]:8080:80\"]\n", "3:10", "\"1.2.3.4\" in brackets is not an IPv6 address"),
    ("[container]\nimage = \"nginx\"\nports = [\":8080:80\"]\n", "3:10", "the host address before the first ':' is empty"),
    ("[container]\nimage = \"nginx\"\nports = [\"8080:80\", \"8080:81\"]\n", "3:21", "container.ports: \"8080:81\" takes host port 0.0.0.0:8080/tcp too, which \"8080:80\" (3:10) already publishes; publish it on another host port"),
    ("[container]\nimage = \"nginx\"\nports = [\"8080:80\", \"127.0.0.1:8080:80\"]\n", "3:21", "takes host port 127.0.0.1:8080/tcp too, which \"8080:80\" (3:10) already publishes (a port without a host address is published on every address)"),
    ("[container]\nimage = \"nginx\"\nports = [\"53:53/udp\", \"53:53/udp\"]\n", "3:23", "container.ports: \"53:53/udp\" is listed twice (first at 3:10); remove one"),
    ("[container]\nimage = \"nginx\"\nnetwork = \"host\"\nports = [\"8080:80\"]\n", "4:1", "container.ports: only a bridged unit (network = \"bridge\") has published ports; with network = \"host\" the service listens on the host's ports directly; remove ports"),
    ("[container]\nimage = \"nginx\"\nnetwork = \"none\"\nports = [\"8080:80\"]\n", "4:1", "network = \"none\" has only loopback, so nothing can reach a published port"),
    ("[container]\nimage = \"nginx\"\nnetwork = \"unit:vpn\"\nports = [\"8080:80\"]\n", "4:1", "container.ports: only a bridged unit (network = \"bridge\") has published ports; ports belong to the unit that owns the namespace, vpn: move them to the [container] of vpn"),
    ("[container]\nimage = \"nginx\"\nnetwork = \"host\"\nnetworks = [\"media\"]\n", "4:1", "container.networks: only a bridged unit (network = \"bridge\") has networks to join; network = \"host\" joins no bridge network"),
    ("[container]\nimage = \"nginx\"\nnetwork = \"unit:vpn\"\nnetworks = [\"media\"]\n", "4:1", "the container shares the network namespace of vpn, and so its networks"),
    ("[container]\nimage = \"nginx\"\nnetwork = \"none\"\naliases = [\"llm\"]\n", "4:1", "container.aliases: only a bridged unit (network = \"bridge\") has aliases"),
    ("[container]\nimage = \"nginx\"\nnetwork = \"unit:vpn\"\naliases = [\"llm\"]\n", "4:1", "give the aliases to vpn, and they reach this container too"),
    ("[container]\nimage = \"nginx\"\nnetwork = \"host\"\ndns = [\"9.9.9.9\"]\n", "4:1", "container.dns: only a bridged unit (network = \"bridge\") has upstream resolvers (dns); with network = \"host\" the container uses the host's /etc/resolv.conf"),
    ("[container]\nimage = \"nginx\"\nnetwork = \"unit:vpn\"\ndns = [\"9.9.9.9\"]\n", "4:1", "set dns in the [container] of vpn"),
    ("[container]\nimage = \"nginx\"\nnetwork = \"host\"\nextra_hosts = [\"nas:192.0.2.10\"]\n", "4:1", "container.extra_hosts: with network = \"host\" the container uses the host's /etc/hosts"),
    ("[container]\nimage = \"nginx\"\nnetwork = \"none\"\nextra_hosts = [\"gw:host-gateway\"]\n", "4:16", "container.extra_hosts: \"gw:host-gateway\": with network = \"none\" there is no way to the host, so no \"host-gateway\""),
    ("[container]\nimage = \"nginx\"\nhostname = \"my_host\"\n", "3:12", "container.hostname: \"my_host\" has '_'; a DNS name has only letters, digits and '-'"),
    ("[container]\nimage = \"nginx\"\nhostname = \"-web\"\n", "3:12", "\"-web\" must not start or end with '-'"),
    ("[container]\nimage = \"nginx\"\nhostname = \"web..lan\"\n", "3:12", "\"web..lan\" has an empty label"),
    ("[container]\nimage = \"nginx\"\nhostname = \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"\n", "3:12", "is 64 characters long; a DNS label has at most 63"),
    ("[container]\nimage = \"nginx\"\nhostname = \"aaaaaaaaaa.aaaaaaaaaa.aaaaaaaaaa.aaaaaaaaaa.aaaaaaaaaa.aaaaaaaaaa\"\n", "3:12", "is 65 bytes long; at most 64 are allowed"),
    ("[container]\nimage = \"nginx\"\nhostname = \"\"\n", "3:12", "container.hostname: must not be empty; leave it out for the unit's name"),
    ("[container]\nimage = \"nginx\"\naliases = [\"llm.lan\"]\n", "3:12", "container.aliases: \"llm.lan\" has '.'; a DNS name has only letters, digits and '-' (an alias is one label, without dots)"),
    ("[container]\nimage = \"nginx\"\naliases = [\"llm-\"]\n", "3:12", "container.aliases: \"llm-\" must not start or end with '-'"),
    ("[container]\nimage = \"nginx\"\naliases = [\"llm\", \"llm\"]\n", "3:19", "container.aliases: \"llm\" is listed twice (first at 3:12); remove one"),
    ("[container]\nimage = \"nginx\"\naliases = [\"web\"]\n", "3:12", "container.aliases: \"web\" is the unit's name, which is a name on its networks already; remove it"),
    ("[container]\nimage = \"nginx\"\nextra_hosts = [\"nas\"]\n", "3:16", "container.extra_hosts: invalid entry \"nas\": expected ':' between the name and the address; write NAME:IP or NAME:host-gateway"),
    ("[container]\nimage = \"nginx\"\nextra_hosts = [\"nas:192.0.2\"]\n", "3:16", "\"192.0.2\" is not an IP address or \"host-gateway\""),
    ("[container]\nimage = \"nginx\"\nextra_hosts = [\"nas:\"]\n", "3:16", "the address after ':' is empty"),
    ("[container]\nimage = \"nginx\"\nextra_hosts = [\":192.0.2.1\"]\n", "3:16", "the name before ':' is empty"),
    ("[container]\nimage = \"nginx\"\nextra_hosts = [\"my_nas:192.0.2.1\"]\n", "3:16", "the name \"my_nas\" has '_'"),
    ("[container]\nimage = \"nginx\"\nextra_hosts = [\"nas:192.0.2.1\", \"NAS:192.0.2.2\"]\n", "3:33", "container.extra_hosts: \"NAS:192.0.2.2\": the name \"NAS\" is given an address already (at 3:16); give each name once"),
    ("[container]\nimage = \"nginx\"\ndns = [\"9.9.9\"]\n", "3:8", "container.dns: \"9.9.9\" is not an IP address; give the resolvers' IP addresses, e.g. [\"9.9.9.9\", \"2620:fe::fe\"]"),
    ("[container]\nimage = \"nginx\"\ndns = [\"9.9.9.9:53\"]\n", "3:8", "give the address without a port (resolvers are asked on port 53)"),
    ("[container]\nimage = \"nginx\"\ndns = [\"9.9.9.9\", \"9.9.9.9\"]\n", "3:19", "container.dns: \"9.9.9.9\" is listed twice (first at 3:8); remove one"),
    ("[container]\nimage = \"nginx\"\nnetwork_mode = \"host\"\n", "3:1", "the network is network = \"bridge\", \"host\", \"none\" or \"unit:NAME\""),
    ("[container]\nimage = \"nginx\"\nvolumes = \"/srv/a:/a\"\n", "3:11", "container.volumes: expected a list of volumes \"HOST_PATH:PATH[:ro]\" or \"NAME:PATH[:ro]\""),
    ("[container]\nimage = \"nginx\"\nvolumes = [1]\n", "3:12", "container.volumes: expected every element to be a string \"HOST_PATH:PATH[:ro]\" or \"NAME:PATH[:ro]\", found an integer"),
    ("[container]\nimage = \"nginx\"\nvolumes = [\"/srv/a\"]\n", "3:12", "container.volumes: invalid volume \"/srv/a\": \"/srv/a\" alone would be an anonymous volume, which jarvis does not have; name it, e.g. \"data:/srv/a\", or give a host directory"),
    ("[container]\nimage = \"nginx\"\nvolumes = [\"srv/a:/a\"]\n", "3:12", "the host path \"srv/a\" is relative; host paths in a unit file are absolute (compose resolves relative ones against the compose file's directory)"),
    ("[container]\nimage = \"nginx\"\nvolumes = [\"./data:/data\"]\n", "3:12", "the host path \"./data\" is relative; host paths in a unit file are absolute (compose resolves relative ones against the compose file's directory), even in a repository (only env_file and [[secret]] source resolve against its root), e.g. \"/srv/app/data:/data\""),
    ("[container]\nimage = \"nginx\"\nvolumes = [\"_data:/data\"]\n", "3:12", "container.volumes: invalid volume \"_data:/data\": \"_data\" is not a volume name: a volume name starts with a letter or a digit and has only letters, digits, '_', '.' and '-'"),
    ("[container]\nimage = \"nginx\"\nvolumes = [\"my data:/data\"]\n", "3:12", "\"my data\" has ' ', so it is not a volume name"),
    ("[container]\nimage = \"nginx\"\nvolumes = [\"data:/data\", \"/srv/a:/data\"]\n", "3:26", "the container path \"/data\" is already mounted by \"data:/data\" (line 3)"),
    ("[container]\nimage = \"nginx\"\nvolumes = [\":/data\"]\n", "3:12", "container.volumes: invalid volume \":/data\": the part before ':' is empty; write HOST_PATH:PATH or NAME:PATH"),
    ("[container]\nimage = \"nginx\"\nvolumes = [\"/srv/a:data\"]\n", "3:12", "the container path \"data\" must be absolute"),
    ("[container]\nimage = \"nginx\"\nvolumes = [\"/srv/a:\"]\n", "3:12", "the container path is empty"),
    ("[container]\nimage = \"nginx\"\nvolumes = [\"/srv/../etc:/a\"]\n", "3:12", "the host path \"/srv/../etc\" must not contain \"..\""),
    ("[container]\nimage = \"nginx\"\nvolumes = [\"/srv/a:/a/../etc\"]\n", "3:12", "the container path \"/a/../etc\" must not contain \"..\""),
    ("[container]\nimage = \"nginx\"\nvolumes = [\"/srv/a:/a:rx\"]\n", "3:12", "unknown mode \"rx\": the mode is ro or rw"),
    ("[container]\nimage = \"nginx\"\nvolumes = [\"/srv/a:/a:ro:z\"]\n", "3:12", "too many ':'"),
    ("[container]\nimage = \"nginx\"\nvolumes = [\"/srv/root:/\"]\n", "3:12", "cannot mount over the container's root directory"),
    ("[container]\nimage = \"nginx\"\nvolumes = [\"/srv/a:/data\", \"/srv/b:/data/\"]\n", "3:28", "container.volumes: the container path \"/data/\" is already mounted by \"/srv/a:/data\" (line 3); each container path may be mounted only once"),
    ("[container]\nimage = \"nginx\"\nvolumes = [\n  \"/srv/a:/data:ro\",\n  \"/etc/localtime:/etc/localtime:ro\",\n  \"/srv/b://data\",\n]\n", "6:3", "already mounted by \"/srv/a:/data:ro\" (line 4)"),
    ("[container]\nimage = \"nginx\"\nread_only = \"yes\"\n", "3:13", "container.read_only: expected true or false, found a string"),
    ("[container]\nimage = \"nginx\"\npublish = [\"8123:8123\"]\n", "3:1", "unknown key \"publish\" in [container]; expected one of: image, entrypoint, command, user, working_dir, network, networks, ports, hostname, aliases, extra_hosts, dns, volumes, read_only, tmpfs, shm_size, group_add, privileged, device_cgroup_rules, cap_add, cap_drop, sysctls, ulimits, init; published ports go in ports = [\"8080:80\"]"),
    ("[container]\nimage = \"nginx\"\ngroup = \"dialout\"\n", "3:1", "unknown key \"group\" in [container]; expected one of: image, entrypoint, command, user, working_dir, network, networks, ports, hostname, aliases, extra_hosts, dns, volumes, read_only, tmpfs, shm_size, group_add, privileged, device_cgroup_rules, cap_add, cap_drop, sysctls, ulimits, init; in a container, give the group with user = \"uid:gid\""),
    ("[container]\nimage = \"nginx\"\nenvironment = { TZ = \"UTC\" }\n", "3:1", "set environment variables in an [env] section"),
    ("[container]\nimage = \"nginx\"\nvolume = [\"/a:/a\"]\n", "3:1", "unknown key \"volume\" in [container]; expected one of: image, entrypoint, command, user, working_dir, network, networks, ports, hostname, aliases, extra_hosts, dns, volumes, read_only, tmpfs, shm_size, group_add, privileged, device_cgroup_rules, cap_add, cap_drop, sysctls, ulimits, init (did you mean \"volumes\"?)"),
    ("[container]\nimage = \"nginx\"\ndescription = \"x\"\n", "3:1", "if you meant the top-level \"description\", move it above the first [section] header"),
    ("[native]\ncommand = [\"/bin/x\"]\nimage = \"nginx\"\n", "3:1", "unknown key \"image\" in [native]; expected one of: command, user, group, supplementary_groups, working_dir; an image runs in a [container] section, not [native]"),
    // [gpu]
    ("[native]\ncommand = [\"/bin/x\"]\n[gpu]\nwant = \"tpu\"\n", "4:8", "gpu.want: unknown value \"tpu\"; expected one of: auto, nvidia, amd, cpu"),
    ("[native]\ncommand = [\"/bin/x\"]\n[gpu]\nwant = \"nvida\"\n", "4:8", "gpu.want: unknown value \"nvida\"; expected one of: auto, nvidia, amd, cpu (did you mean \"nvidia\"?)"),
    ("[native]\ncommand = [\"/bin/x\"]\n[gpu]\nwant = true\n", "4:8", "gpu.want: expected a string, one of: auto, nvidia, amd, cpu; found a boolean"),
    ("[native]\ncommand = [\"/bin/x\"]\n[gpu]\ncount = 0\n", "4:9", "gpu.count: must be between 1 and 16, got 0"),
    ("[native]\ncommand = [\"/bin/x\"]\n[gpu]\ncount = 17\n", "4:9", "gpu.count: must be between 1 and 16, got 17"),
    ("[native]\ncommand = [\"/bin/x\"]\n[gpu]\ncount = \"2\"\n", "4:9", "gpu.count: expected an integer (between 1 and 16), found a string"),
    ("[native]\ncommand = [\"/bin/x\"]\n[gpu]\nmin_vram = \"6 gigs\"\n", "4:12", "gpu.min_vram: invalid size \"6 gigs\"; write a number with an optional binary suffix"),
    ("[native]\ncommand = [\"/bin/x\"]\n[gpu]\nmin_vram = -1\n", "4:12", "gpu.min_vram: a size cannot be negative"),
    ("[native]\ncommand = [\"/bin/x\"]\n[gpu]\nmin_vram = 6.5\n", "4:12", "gpu.min_vram: expected a size string, found a float"),
    ("[native]\ncommand = [\"/bin/x\"]\n[gpu]\nverify = \"vllm\"\n", "4:10", "gpu.verify: unknown value \"vllm\"; expected one of: ollama"),
    ("[native]\ncommand = [\"/bin/x\"]\n[gpu]\nverify = \"olama\"\n", "4:10", "gpu.verify: unknown value \"olama\"; expected one of: ollama (did you mean \"ollama\"?)"),
    ("[native]\ncommand = [\"/bin/x\"]\n[gpu]\nverify = true\n", "4:10", "gpu.verify: expected a string, one of: ollama; found a boolean"),
    ("[native]\ncommand = [\"/bin/x\"]\n[gpu]\non_fallback = \"kill\"\n", "4:15", "gpu.on_fallback: unknown value \"kill\"; expected one of: restart, warn"),
    ("[native]\ncommand = [\"/bin/x\"]\n[gpu]\nverify_interval = \"soon\"\n", "4:19", "gpu.verify_interval: invalid duration \"soon\""),
    ("[native]\ncommand = [\"/bin/x\"]\n[gpu]\nverify_interval = 30\n", "4:19", "gpu.verify_interval: a duration must be a string with a unit: write \"30s\""),
    ("[native]\ncommand = [\"/bin/x\"]\n[gpu]\nverify_interval = \"10ms\"\n", "4:19", "gpu.verify_interval: 10ms is too short; the least is 100ms"),
    ("[native]\ncommand = [\"/bin/x\"]\n[gpu]\nwant = \"auto\"\nmin_ram = \"6G\"\n", "5:1", "unknown key \"min_ram\" in [gpu]; expected one of: want, count, min_vram, verify, on_fallback, verify_interval (did you mean \"min_vram\"?)"),
    ("[native]\ncommand = [\"/bin/x\"]\n[gpu]\nmemory = \"6G\"\n", "4:1", "unknown key \"memory\" in [gpu]; expected one of: want, count, min_vram, verify, on_fallback, verify_interval"),
    ("gpu = \"auto\"\n[native]\ncommand = [\"/bin/x\"]\n", "1:7", "gpu: expected a table (a [gpu] section), found a string"),
    ("[native]\ncommand = [\"/bin/x\"]\n[gpus]\nwant = \"auto\"\n", "3:2", "unknown key \"gpus\" at the top level; expected one of: description, depends_on, run, native, container, env, resources, restart, health, stop, security, logs, gpu, device, bench, env_file, secret (did you mean \"gpu\"?)"),
    ("[native]\ncommand = [\"/bin/x\"]\n[[gpu]]\nwant = \"auto\"\n", "3:1", "gpu: expected a table (a [gpu] section), found an array"),
    ("[container]\nimage = \"ollama/ollama\"\ngpus = \"all\"\n", "3:1", "unknown key \"gpus\" in [container]; expected one of: image, entrypoint, command, user, working_dir, network, networks, ports, hostname, aliases, extra_hosts, dns, volumes, read_only, tmpfs, shm_size, group_add, privileged, device_cgroup_rules, cap_add, cap_drop, sysctls, ulimits, init; a GPU is asked for in a [gpu] section at the top level"),
    // [[device]]
    ("[native]\ncommand = [\"/bin/x\"]\n[[device]]\nusb = \"10c4-ea60\"\nas = \"/dev/zigbee\"\n", "4:7", "device.usb: invalid USB id \"10c4-ea60\"; write vendor:product as two 4-digit hex numbers, as lsusb shows them, e.g. \"10c4:ea60\""),
    ("[native]\ncommand = [\"/bin/x\"]\n[[device]]\nusb = \"10c4:ea6\"\nas = \"/dev/zigbee\"\n", "4:7", "device.usb: invalid USB id \"10c4:ea6\""),
    ("[native]\ncommand = [\"/bin/x\"]\n[[device]]\nusb = \"10c4:eagg\"\nas = \"/dev/zigbee\"\n", "4:7", "device.usb: invalid USB id \"10c4:eagg\""),
    ("[native]\ncommand = [\"/bin/x\"]\n[[device]]\nusb = \"0x10c4:0xea60\"\nas = \"/dev/zigbee\"\n", "4:7", "device.usb: invalid USB id \"0x10c4:0xea60\""),
    ("[native]\ncommand = [\"/bin/x\"]\n[[device]]\nusb = \"10c4\"\nas = \"/dev/zigbee\"\n", "4:7", "device.usb: invalid USB id \"10c4\""),
    ("[native]\ncommand = [\"/bin/x\"]\n[[device]]\nusb = 4292\nas = \"/dev/zigbee\"\n", "4:7", "device.usb: expected a string, found an integer"),
    ("[native]\ncommand = [\"/bin/x\"]\n[[device]]\nusb = \"10c4:ea60\"\n", "3:1", "[[device]] with usb needs as = \"/dev/NAME\", the stable path the service sees (e.g. as = \"/dev/zigbee\")"),
    ("[native]\ncommand = [\"/bin/x\"]\n[[device]]\nusb = \"10c4:ea60\"\nserial = \"x\"\noptional = true\n", "3:1", "[[device]] with usb needs as = \"/dev/NAME\""),
    ("[native]\ncommand = [\"/bin/x\"]\n[[device]]\nas = \"/dev/zigbee\"\n", "3:1", "[[device]] needs usb = \"vendor:product\" or path = \"/dev/...\"; e.g. [[device]] with usb = \"10c4:ea60\" and as = \"/dev/zigbee\", or [[device]] with path = \"/dev/net/tun\""),
    ("[native]\ncommand = [\"/bin/x\"]\n[[device]]\n", "3:1", "[[device]] needs usb = \"vendor:product\" or path"),
    ("[native]\ncommand = [\"/bin/x\"]\n[[device]]\nusb = \"10c4:ea60\"\npath = \"/dev/ttyUSB0\"\nas = \"/dev/zigbee\"\n", "5:1", "[[device]] has both usb and path; give exactly one of them"),
    ("[native]\ncommand = [\"/bin/x\"]\n[[device]]\npath = \"/dev/ttyUSB0\"\nusb = \"10c4:ea60\"\n", "5:1", "[[device]] has both usb and path"),
    ("[native]\ncommand = [\"/bin/x\"]\n[[device]]\npath = \"/dev/ttyUSB0\"\nserial = \"A50285BI\"\n", "5:1", "device.serial: only a usb device has a serial number; remove it, or name the device by usb = \"vendor:product\" instead of path"),
    ("[native]\ncommand = [\"/bin/x\"]\n[[device]]\nusb = \"10c4:ea60\"\nserial = \"\"\nas = \"/dev/zigbee\"\n", "5:10", "device.serial: must be the device's serial number as `lsusb -v` shows it (iSerial), got \"\""),
    ("[native]\ncommand = [\"/bin/x\"]\n[[device]]\nusb = \"10c4:ea60\"\nserial = 1234\nas = \"/dev/zigbee\"\n", "5:10", "device.serial: expected a string, found an integer"),
    ("[native]\ncommand = [\"/bin/x\"]\n[[device]]\nusb = \"10c4:ea60\"\nas = \"zigbee\"\n", "5:6", "device.as: must be an absolute path (starting with /), got \"zigbee\""),
    ("[native]\ncommand = [\"/bin/x\"]\n[[device]]\nusb = \"10c4:ea60\"\nas = \"/tmp/zigbee\"\n", "5:6", "device.as: \"/tmp/zigbee\" is not under /dev; the service sees its devices at paths such as \"/dev/zigbee\""),
    ("[native]\ncommand = [\"/bin/x\"]\n[[device]]\nusb = \"10c4:ea60\"\nas = \"/dev\"\n", "5:6", "device.as: \"/dev\" is not under /dev"),
    ("[native]\ncommand = [\"/bin/x\"]\n[[device]]\nusb = \"10c4:ea60\"\nas = \"/dev/\"\n", "5:6", "device.as: \"/dev/\" is not under /dev"),
    ("[native]\ncommand = [\"/bin/x\"]\n[[device]]\nusb = \"10c4:ea60\"\nas = \"/devices/zigbee\"\n", "5:6", "device.as: \"/devices/zigbee\" is not under /dev"),
    ("[native]\ncommand = [\"/bin/x\"]\n[[device]]\nusb = \"10c4:ea60\"\nas = \"/dev/../etc/shadow\"\n", "5:6", "device.as: \"/dev/../etc/shadow\" must not contain \"..\""),
    ("[native]\ncommand = [\"/bin/x\"]\n[[device]]\nusb = \"10c4:ea60\"\nas = \"/dev/serial/..\"\n", "5:6", "must not contain \"..\""),
    ("[native]\ncommand = [\"/bin/x\"]\n[[device]]\nusb = \"10c4:ea60\"\nas = \"/dev/zig\\nbee\"\n", "5:6", "device.as: \"/dev/zig\\nbee\" must not contain control characters"),
    ("[native]\ncommand = [\"/bin/x\"]\n[[device]]\nusb = \"10c4:ea60\"\nas = [\"/dev/zigbee\"]\n", "5:6", "device.as: expected a string, found an array"),
    ("[native]\ncommand = [\"/bin/x\"]\n[[device]]\npath = \"dev/net/tun\"\n", "4:8", "device.path: must be an absolute path (starting with /), got \"dev/net/tun\""),
    ("[native]\ncommand = [\"/bin/x\"]\n[[device]]\npath = \"/dev/net/../tun\"\n", "4:8", "device.path: \"/dev/net/../tun\" must not contain \"..\""),
    ("[native]\ncommand = [\"/bin/x\"]\n[[device]]\npath = \"/srv/node\"\n", "4:8", "device.path: \"/srv/node\" is not under /dev, so it cannot also be the path the service sees; add as = \"/dev/NAME\""),
    ("[native]\ncommand = [\"/bin/x\"]\n[[device]]\npath = \"/dev/net/tun\"\nas = \"/net/tun\"\n", "5:6", "device.as: \"/net/tun\" is not under /dev"),
    ("[native]\ncommand = [\"/bin/x\"]\n[[device]]\npath = \"/dev/net/tun\"\noptional = \"yes\"\n", "5:12", "device.optional: expected true or false, found a string"),
    ("[native]\ncommand = [\"/bin/x\"]\n[[device]]\npath = \"/dev/net/tun\"\nmode = \"rw\"\n", "5:1", "unknown key \"mode\" in [[device]]; expected one of: usb, serial, path, as, optional"),
    ("[native]\ncommand = [\"/bin/x\"]\n[[device]]\npath = \"/dev/net/tun\"\nopitonal = true\n", "5:1", "unknown key \"opitonal\" in [[device]]; expected one of: usb, serial, path, as, optional (did you mean \"optional\"?)"),
    ("[native]\ncommand = [\"/bin/x\"]\n[[device]]\nusb = \"1cf1:0030\"\nas = \"/dev/conbee\"\nvendor = \"1cf1\"\n", "6:1", "unknown key \"vendor\" in [[device]]; expected one of: usb, serial, path, as, optional; give the USB ids together as usb = \"vendor:product\""),
    ("[native]\ncommand = [\"/bin/x\"]\n[[device]]\npath = \"/dev/ttyACM0\"\ntarget = \"/dev/conbee\"\n", "5:1", "unknown key \"target\" in [[device]]; expected one of: usb, serial, path, as, optional; the path the service sees is as = \"/dev/NAME\""),
    // Positions point inside the right element.
    ("[native]\ncommand = [\"/bin/x\"]\n[[device]]\npath = \"/dev/a\"\n[[device]]\npath = \"/dev/b\"\n[[device]]\npath = \"/dev/c\"\nbogus = 1\n", "9:1", "unknown key \"bogus\" in [[device]]"),
    ("[native]\ncommand = [\"/bin/x\"]\n[[device]]\npath = \"/dev/a\"\n[[device]]\nas = \"/dev/b\"\n[[device]]\npath = \"/dev/c\"\n", "5:1", "[[device]] needs usb = \"vendor:product\" or path"),
    ("[native]\ncommand = [\"/bin/x\"]\n[[device]]\npath = \"/dev/a\"\n[[device]]\nusb = \"1cf1:0030\"\nas = \"/dev/b\"\n[[device]]\nusb = \"1cf1:003\"\nas = \"/dev/c\"\n", "9:7", "device.usb: invalid USB id \"1cf1:003\""),
    // Each `as` once per unit; the second use is blamed.
    ("[native]\ncommand = [\"/bin/x\"]\n[[device]]\npath = \"/dev/net/tun\"\n[[device]]\nusb = \"1cf1:0030\"\nas = \"/dev/net/tun\"\n", "7:6", "device.as: \"/dev/net/tun\" is already the path of the device on line 3; each device needs its own path, so give this one another as = \"/dev/NAME\""),
    ("[native]\ncommand = [\"/bin/x\"]\n[[device]]\nusb = \"10c4:ea60\"\nas = \"/dev/ttyUSB0\"\n[[device]]\npath = \"/dev/ttyUSB0\"\n", "7:8", "device.path: \"/dev/ttyUSB0\" is already the path of the device on line 3"),
    ("[native]\ncommand = [\"/bin/x\"]\n[[device]]\nusb = \"10c4:ea60\"\nas = \"/dev/zigbee\"\n[[device]]\nusb = \"1cf1:0030\"\nas = \"/dev//zigbee/\"\n", "8:6", "device.as: \"/dev//zigbee/\" is already the path of the device on line 3"),
    ("device = [{ path = \"/dev/a\" }, { path = \"/dev//a\" }]\n[native]\ncommand = [\"/bin/x\"]\n", "1:41", "device.path: \"/dev//a\" is already the path of the device on line 1"),
    // Not an array of tables.
    ("[native]\ncommand = [\"/bin/x\"]\n[device]\npath = \"/dev/net/tun\"\n", "3:1", "device: expected an array of tables ([[device]] sections), found a table; write the header with two brackets, [[device]], once per device"),
    ("device = \"/dev/net/tun\"\n[native]\ncommand = [\"/bin/x\"]\n", "1:10", "device: expected an array of tables ([[device]] sections), found a string"),
    ("device = [\"/dev/net/tun\"]\n[native]\ncommand = [\"/bin/x\"]\n", "1:11", "device: expected every element to be a table, found a string; write [[device]] with usb = \"10c4:ea60\" and as = \"/dev/zigbee\", or [[device]] with path = \"/dev/net/tun\""),
    ("[native]\ncommand = [\"/bin/x\"]\n[[devices]]\npath = \"/dev/net/tun\"\n", "3:3", "unknown key \"devices\" at the top level; expected one of: description, depends_on, run, native, container, env, resources, restart, health, stop, security, logs, gpu, device, bench, env_file, secret (did you mean \"device\"?)"),
    ("[container]\nimage = \"koenkk/zigbee2mqtt\"\ndevices = [\"/dev/ttyUSB0:/dev/zigbee\"]\n", "3:1", "unknown key \"devices\" in [container]; expected one of: image, entrypoint, command, user, working_dir, network, networks, ports, hostname, aliases, extra_hosts, dns, volumes, read_only, tmpfs, shm_size, group_add, privileged, device_cgroup_rules, cap_add, cap_drop, sysctls, ulimits, init; devices go in [[device]] sections at the top level, e.g. [[device]] with path = \"/dev/net/tun\""),
    // [bench]: api
    (bench!("api = \"vllm\"\nurl = \"http://127.0.0.1:8000\"\n"), "6:7", "bench.api: unknown value \"vllm\"; expected one of: ollama, openai, llamacpp"),
    (bench!("api = \"open-ai\"\nurl = \"http://127.0.0.1:8000\"\n"), "6:7", "bench.api: unknown value \"open-ai\"; expected one of: ollama, openai, llamacpp (did you mean \"openai\"?)"),
    (bench!("api = \"llama.cpp\"\nurl = \"http://127.0.0.1:8080\"\n"), "6:7", "(did you mean \"llamacpp\"?)"),
    (bench!("api = 1\nurl = \"http://127.0.0.1:8000\"\n"), "6:7", "bench.api: expected a string, one of: ollama, openai, llamacpp; found an integer"),
    (bench!("url = \"http://127.0.0.1:8080\"\n"), "5:1", "[bench] needs api = \"ollama\", \"openai\" or \"llamacpp\", the server's HTTP API; e.g. api = \"ollama\" and url = \"http://127.0.0.1:11434\" with model = \"smollm2\""),
    (bench!(""), "5:1", "[bench] needs api = \"ollama\", \"openai\" or \"llamacpp\", the server's HTTP API, and url = \"http://HOST:PORT\", the server's base URL; e.g. api = \"ollama\""),
    // [bench]: url
    (bench!("api = \"openai\"\n"), "5:1", "[bench] needs url = \"http://HOST:PORT\", the server's base URL; e.g. api = \"ollama\""),
    (bench!("api = \"openai\"\nurl = \"https://127.0.0.1:8000\"\n"), "7:7", "bench.url: https is not supported by the bench; give the server's plain-http port on localhost, e.g. \"http://127.0.0.1:11434\""),
    (bench!("api = \"openai\"\nurl = \"127.0.0.1:8000\"\n"), "7:7", "bench.url: expected an http:// URL, e.g. \"http://127.0.0.1:11434\""),
    (bench!("api = \"openai\"\nurl = \"http://127.0.0.1\"\n"), "7:7", "bench.url: missing port; write host:port, e.g. \"http://127.0.0.1:11434\""),
    (bench!("api = \"openai\"\nurl = \"http://127.0.0.1/\"\n"), "7:7", "bench.url: missing port"),
    (bench!("api = \"openai\"\nurl = \"http://127.0.0.1:0\"\n"), "7:7", "bench.url: port \"0\" is not a number between 1 and 65535"),
    (bench!("api = \"openai\"\nurl = \"http://127.0.0.1:http\"\n"), "7:7", "bench.url: port \"http\" is not a number"),
    (bench!("api = \"openai\"\nurl = \"http://:8000\"\n"), "7:7", "bench.url: missing host"),
    (bench!("api = \"openai\"\nurl = \"http://::1:8000\"\n"), "7:7", "bench.url: put an IPv6 address in brackets, like [::1]:8080"),
    (bench!("api = \"openai\"\nurl = \"http://me@127.0.0.1:8000\"\n"), "7:7", "bench.url: user info (user@) is not supported in the bench URL"),
    (bench!("api = \"openai\"\nurl = \"http://127.0.0.1:8000 \"\n"), "7:7", "bench.url: the URL must not contain spaces"),
    (bench!("api = \"openai\"\nurl = \"http://127.0.0.1:8000/v1/completions\"\n"), "7:7", "bench.url: give the server's base URL without a path (the bench appends /v1/completions for api = \"openai\"), e.g. \"http://127.0.0.1:11434\""),
    (bench!("api = \"llamacpp\"\nurl = \"http://127.0.0.1:8080/completion\"\n"), "7:7", "(the bench appends /completion for api = \"llamacpp\")"),
    (bench!("api = \"ollama\"\nurl = \"http://127.0.0.1:11434/api\"\nmodel = \"smollm2\"\n"), "7:7", "(the bench appends /api/generate for api = \"ollama\")"),
    (bench!("api = \"openai\"\nurl = \"http://127.0.0.1:8000?x=1\"\n"), "7:7", "bench.url: give the server's base URL without a path"),
    (bench!("url = \"http://127.0.0.1:8000/v1\"\napi = \"ollama\"\nmodel = \"smollm2\"\n"), "6:7", "(the bench appends /api/generate for api = \"ollama\")"),
    (bench!("api = \"openai\"\nurl = 8000\n"), "7:7", "bench.url: expected a string, found an integer"),
    // [bench]: model
    (bench!("api = \"ollama\"\nurl = \"http://127.0.0.1:11434\"\n"), "5:1", "[bench] with api = \"ollama\" needs model = \"NAME\", a model the server has pulled, e.g. model = \"smollm2\""),
    (bench!("api = \"ollama\"\nurl = \"http://127.0.0.1:11434\"\nmodel = \"\"\n"), "8:9", "bench.model: must be a model name the server knows, e.g. \"smollm2\", got \"\""),
    (bench!("api = \"openai\"\nurl = \"http://127.0.0.1:8000\"\nmodel = \"  \"\n"), "8:9", "bench.model: must be a model name"),
    (bench!("api = \"ollama\"\nurl = \"http://127.0.0.1:11434\"\nmodel = 2\n"), "8:9", "bench.model: expected a string, found an integer"),
    // [bench]: prompt and numbers
    (bench!("api = \"openai\"\nurl = \"http://127.0.0.1:8000\"\nprompt = \" \"\n"), "8:10", "bench.prompt: must not be empty; leave it out for \"Why is the sky blue?\""),
    (bench!("api = \"openai\"\nurl = \"http://127.0.0.1:8000\"\nprompt = [\"hi\"]\n"), "8:10", "bench.prompt: expected a string, found an array"),
    (bench!("api = \"openai\"\nurl = \"http://127.0.0.1:8000\"\nmax_tokens = 0\n"), "8:14", "bench.max_tokens: must be at least 1, got 0"),
    (bench!("api = \"openai\"\nurl = \"http://127.0.0.1:8000\"\nmax_tokens = \"64\"\n"), "8:14", "bench.max_tokens: expected an integer (at least 1), found a string"),
    (bench!("api = \"openai\"\nurl = \"http://127.0.0.1:8000\"\nrequests = 0\n"), "8:12", "bench.requests: must be at least 1, got 0"),
    (bench!("api = \"openai\"\nurl = \"http://127.0.0.1:8000\"\nrequests = 2.5\n"), "8:12", "bench.requests: expected an integer (at least 1), found a float"),
    (bench!("api = \"openai\"\nurl = \"http://127.0.0.1:8000\"\nrounds = 1\n"), "8:10", "bench.rounds: must be at least 2, got 1"),
    (bench!("api = \"openai\"\nurl = \"http://127.0.0.1:8000\"\nrounds = -2\n"), "8:10", "bench.rounds: must be at least 2, got -2"),
    (bench!("api = \"openai\"\nurl = \"http://127.0.0.1:8000\"\nmax_slowdown = 1.5\n"), "8:16", "bench.max_slowdown: must be between 0 and 1, got 1.5; write a fraction such as 0.05 for 5%"),
    (bench!("api = \"openai\"\nurl = \"http://127.0.0.1:8000\"\nmax_slowdown = -0.01\n"), "8:16", "bench.max_slowdown: must be between 0 and 1, got -0.01"),
    (bench!("api = \"openai\"\nurl = \"http://127.0.0.1:8000\"\nmax_slowdown = 5\n"), "8:16", "bench.max_slowdown: must be between 0 and 1, got 5"),
    (bench!("api = \"openai\"\nurl = \"http://127.0.0.1:8000\"\nmax_slowdown = nan\n"), "8:16", "bench.max_slowdown: must be between 0 and 1, got nan"),
    (bench!("api = \"openai\"\nurl = \"http://127.0.0.1:8000\"\nmax_slowdown = \"5%\"\n"), "8:16", "bench.max_slowdown: expected a number between 0 and 1, found a string; write a fraction such as 0.05 for 5%"),
    // [bench]: unknown keys
    (bench!("api = \"ollama\"\nurl = \"http://127.0.0.1:11434\"\nmodel = \"smollm2\"\nmodle = \"x\"\n"), "9:1", "unknown key \"modle\" in [bench]; expected one of: api, url, model, prompt, max_tokens, requests, rounds, max_slowdown (did you mean \"model\"?)"),
    (bench!("api = \"ollama\"\nurl = \"http://127.0.0.1:11434\"\nmodel = \"smollm2\"\nmax_token = 5\n"), "9:1", "(did you mean \"max_tokens\"?)"),
    (bench!("api = \"ollama\"\nurl = \"http://127.0.0.1:11434\"\nmodel = \"smollm2\"\nendpoint = \"/api/generate\"\n"), "9:1", "unknown key \"endpoint\" in [bench]; expected one of: api, url, model, prompt, max_tokens, requests, rounds, max_slowdown; give the server's base URL as url = \"http://127.0.0.1:PORT\""),
    (bench!("api = \"ollama\"\nurl = \"http://127.0.0.1:11434\"\nmodel = \"smollm2\"\nnum_predict = 64\n"), "9:1", "; the number of tokens to generate per request is max_tokens"),
    (bench!("api = \"ollama\"\nurl = \"http://127.0.0.1:11434\"\nmodel = \"smollm2\"\niterations = 5\n"), "9:1", "; requests = N measured requests per round (after one warm-up request) and rounds = N rounds, alternating native and container"),
    (bench!("api = \"ollama\"\nurl = \"http://127.0.0.1:11434\"\nmodel = \"smollm2\"\nthreshold = 0.1\n"), "9:1", "; the container's allowed slowdown is max_slowdown, a fraction such as 0.05"),
    (bench!("api = \"ollama\"\nurl = \"http://127.0.0.1:11434\"\nmodel = \"smollm2\"\nrun = \"auto\"\n"), "9:1", "unknown key \"run\" in [bench]; expected one of: api, url, model, prompt, max_tokens, requests, rounds, max_slowdown; if you meant the top-level \"run\", move it above the first [section] header"),
    // [bench]: the section itself
    ("bench = \"ollama\"\n[native]\ncommand = [\"/bin/x\"]\n[health]\ntcp = \"127.0.0.1:1\"\n", "1:9", "bench: expected a table (a [bench] section), found a string"),
    ("[native]\ncommand = [\"/bin/x\"]\n[health]\ntcp = \"127.0.0.1:1\"\n[[bench]]\napi = \"openai\"\nurl = \"http://127.0.0.1:8000\"\n", "5:1", "bench: expected a table (a [bench] section), found an array"),
    ("[native]\ncommand = [\"/bin/x\"]\n[bench]\napi = \"ollama\"\nurl = \"http://127.0.0.1:11434\"\nmodel = \"smollm2\"\n", "3:1", "[bench] needs a [health] check: each round waits until the service is healthy before its first request; add a [health] section, e.g. with http = \"http://127.0.0.1:11434/\" or tcp = \"127.0.0.1:PORT\""),
    // [container] sandbox keys
    ("[container]\nimage = \"nginx\"\ntmpfs = \"tmp\"\n", "3:9", "container.tmpfs: invalid tmpfs \"tmp\": the path \"tmp\" must be absolute (start with /); write PATH or PATH:size=SIZE,mode=OCTAL, e.g. \"/run\" or \"/tmp:size=64m,mode=1777\""),
    ("[container]\nimage = \"nginx\"\ntmpfs = [\"/tmp:size=64m,noexec\"]\n", "3:10", "container.tmpfs: invalid tmpfs \"/tmp:size=64m,noexec\": unknown option \"noexec\"; a tmpfs takes size=SIZE and mode=OCTAL (it is always mounted nosuid and nodev)"),
    ("[container]\nimage = \"nginx\"\ntmpfs = [\"/tmp:size=lots\"]\n", "3:10", "invalid size \"lots\"; write bytes or a number with k, m or g, e.g. size=64m"),
    ("[container]\nimage = \"nginx\"\ntmpfs = [\"/tmp:size=0\"]\n", "3:10", "size=0 is not a size; leave size out for the kernel's default"),
    ("[container]\nimage = \"nginx\"\ntmpfs = [\"/tmp:mode=999\"]\n", "3:10", "the mode \"999\" is not octal; write octal digits, e.g. 0755"),
    ("[container]\nimage = \"nginx\"\ntmpfs = [\"/tmp:mode=17777\"]\n", "3:10", "the mode 17777 is larger than 7777"),
    ("[container]\nimage = \"nginx\"\ntmpfs = [\"/tmp:size=1m,size=2m\"]\n", "3:10", "size is given twice"),
    ("[container]\nimage = \"nginx\"\ntmpfs = [\"/tmp:\"]\n", "3:10", "nothing follows ':'"),
    ("[container]\nimage = \"nginx\"\ntmpfs = [\"/tmp:size=1m,,mode=1777\"]\n", "3:10", "an option is empty"),
    ("[container]\nimage = \"nginx\"\ntmpfs = [\"/\"]\n", "3:10", "cannot mount a tmpfs over the container's root directory \"/\""),
    ("[container]\nimage = \"nginx\"\ntmpfs = [\"/a/../b\"]\n", "3:10", "the path \"/a/../b\" must not contain \"..\""),
    ("[container]\nimage = \"nginx\"\ntmpfs = [\"/tmp\", \"/tmp/\"]\n", "3:18", "container.tmpfs: \"/tmp/\" is already a tmpfs on line 3; each container path may be mounted only once"),
    ("[container]\nimage = \"nginx\"\nvolumes = [\"/srv/a:/tmp\"]\ntmpfs = [\"/tmp\"]\n", "4:10", "container.tmpfs: \"/tmp\" is already mounted by volumes; each container path may be mounted only once"),
    ("[container]\nimage = \"nginx\"\ntmpfs = 5\n", "3:9", "container.tmpfs: expected a list of tmpfs mounts, e.g. \"/run\" or \"/tmp:size=64m,mode=1777\", found an integer"),
    ("[container]\nimage = \"nginx\"\ntmpfs = [5]\n", "3:10", "container.tmpfs: expected a string, found an integer"),
    ("[container]\nimage = \"nginx\"\nshm_size = \"lots\"\n", "3:12", "container.shm_size: invalid size \"lots\""),
    ("[container]\nimage = \"nginx\"\nshm_size = 0\n", "3:12", "container.shm_size: must be greater than 0"),
    ("[container]\nimage = \"nginx\"\ngroup_add = \"video\"\n", "3:13", "container.group_add: expected a list of group names or gids, e.g. [\"video\", \"44\"], found a string"),
    ("[container]\nimage = \"nginx\"\ngroup_add = [\"bad group\"]\n", "3:14", "container.group_add: \"bad group\" is not a group name or a gid"),
    ("[container]\nimage = \"nginx\"\ngroup_add = [\"video\", \"video\"]\n", "3:23", "container.group_add: \"video\" is listed twice; list each group once"),
    ("[container]\nimage = \"nginx\"\ngroup_add = [44, \"44\"]\n", "3:18", "container.group_add: \"44\" is listed twice"),
    ("[container]\nimage = \"nginx\"\ngroup_add = [-1]\n", "3:14", "container.group_add: a gid is between 0 and 4294967295, got -1"),
    ("[container]\nimage = \"nginx\"\ngroup_add = [\"4294967296\"]\n", "3:14", "container.group_add: the gid 4294967296 is too large"),
    ("[container]\nimage = \"nginx\"\ngroup_add = [true]\n", "3:14", "container.group_add: expected a group name or a gid, found a boolean"),
    ("[container]\nimage = \"nginx\"\ndevice_cgroup_rules = \"c 189:* rmw\"\n", "3:23", "container.device_cgroup_rules: expected a list of rules, e.g. \"c 189:* rmw\" or \"b 8:0 r\", found a string"),
    ("[container]\nimage = \"nginx\"\ndevice_cgroup_rules = [189]\n", "3:24", "container.device_cgroup_rules: expected a string, found an integer"),
    ("[container]\nimage = \"nginx\"\ndevice_cgroup_rules = [\"x 189:* rmw\"]\n", "3:24", "container.device_cgroup_rules: invalid rule \"x 189:* rmw\": unknown device type \"x\"; the type is c (character), b (block) or a (all)"),
    ("[container]\nimage = \"nginx\"\ndevice_cgroup_rules = [\"c 189 rmw\"]\n", "3:24", "container.device_cgroup_rules: invalid rule \"c 189 rmw\": expected MAJOR:MINOR, found \"189\"; write TYPE MAJOR:MINOR ACCESS, e.g. \"c 189:* rmw\" or \"b 8:0 r\""),
    ("[container]\nimage = \"nginx\"\ndevice_cgroup_rules = [\"c  189:* rmw\"]\n", "3:24", "invalid rule \"c  189:* rmw\": expected three parts separated by one space"),
    ("[container]\nimage = \"nginx\"\ndevice_cgroup_rules = [\"c 189:*\"]\n", "3:24", "expected three parts separated by one space"),
    ("[container]\nimage = \"nginx\"\ndevice_cgroup_rules = [\"c 18a:* rmw\"]\n", "3:24", "the major \"18a\" is not a number or *"),
    ("[container]\nimage = \"nginx\"\ndevice_cgroup_rules = [\"c 189:-1 rmw\"]\n", "3:24", "the minor \"-1\" is not a number or *"),
    ("[container]\nimage = \"nginx\"\ndevice_cgroup_rules = [\"c 4096:0 r\"]\n", "3:24", "the major 4096 is larger than any device's (at most 4095)"),
    ("[container]\nimage = \"nginx\"\ndevice_cgroup_rules = [\"b 8:1048576 r\"]\n", "3:24", "the minor 1048576 is larger than any device's (at most 1048575)"),
    ("[container]\nimage = \"nginx\"\ndevice_cgroup_rules = [\"a 1:3 rwm\"]\n", "3:24", "type a allows every device whatever the numbers; write \"a *:* ACCESS\""),
    ("[container]\nimage = \"nginx\"\ndevice_cgroup_rules = [\"c 1:3 \"]\n", "3:24", "the access is empty"),
    ("[container]\nimage = \"nginx\"\ndevice_cgroup_rules = [\"c 1:3 rr\"]\n", "3:24", "the access \"rr\" has r twice"),
    ("[container]\nimage = \"nginx\"\ndevice_cgroup_rules = [\"c 1:3 rx\"]\n", "3:24", "the access \"rx\" is not letters of rwm (r read, w write, m mknod)"),
    ("[container]\nimage = \"nginx\"\ndevice_cgroup_rules = [\"C 1:3 r\"]\n", "3:24", "unknown device type \"C\""),
    ("[container]\nimage = \"nginx\"\ndevice_cgroup_rules = [\"c 189:* rwm\", \"c 189:* mwr\"]\n", "3:39", "container.device_cgroup_rules: \"c 189:* rwm\" is listed twice; list each rule once"),
    ("[container]\nimage = \"nginx\"\nprivileged = true\ndevice_cgroup_rules = [\"c 189:* rwm\"]\n", "4:1", "container.device_cgroup_rules: privileged = true already allows every device; remove device_cgroup_rules, or set privileged = false and keep them"),
    ("[container]\nimage = \"nginx\"\nprivileged = \"yes\"\n", "3:14", "container.privileged: expected true or false, found a string"),
    ("[container]\nimage = \"nginx\"\nprivileged = true\ncap_add = [\"NET_ADMIN\"]\n", "4:1", "container.cap_add: privileged = true already gives every capability; remove cap_add, or set privileged = false and keep cap_add"),
    ("[container]\nimage = \"nginx\"\nprivileged = true\ncap_drop = [\"ALL\"]\n", "4:1", "container.cap_drop: privileged = true already gives every capability; remove cap_drop"),
    ("[container]\nimage = \"nginx\"\ncap_add = [\"NET_ADMN\"]\n", "3:12", "container.cap_add: unknown capability \"NET_ADMN\" (did you mean \"CAP_NET_ADMIN\"?); names look like \"CAP_NET_BIND_SERVICE\" or \"NET_BIND_SERVICE\", or \"ALL\" (see capabilities(7))"),
    ("[container]\nimage = \"nginx\"\ncap_add = \"NET_ADMIN\"\n", "3:11", "container.cap_add: expected a list of strings, e.g. [\"NET_ADMIN\"], found a string"),
    ("[container]\nimage = \"nginx\"\ncap_drop = [\"ALL\", \"NET_RAW\"]\n", "3:20", "container.cap_drop: CAP_NET_RAW is already part of \"ALL\"; remove it, or list the capabilities one by one without \"ALL\""),
    ("[container]\nimage = \"nginx\"\ncap_add = [\"ALL\"]\ncap_drop = [\"ALL\"]\n", "3:12", "container.cap_add: with cap_drop = [\"ALL\"] too this gives every capability back"),
    ("[container]\nimage = \"nginx\"\ncap_add = [\"NET_ADMIN\"]\ncap_drop = [\"net_admin\"]\n", "3:12", "container.cap_add: CAP_NET_ADMIN is in cap_drop too; keep it in one of the two lists"),
    ("[container]\nimage = \"nginx\"\ncap_drop = [\"NET_RAW\"]\n[security]\ncapabilities = [\"CAP_NET_RAW\"]\n", "3:13", "container.cap_drop: CAP_NET_RAW is in [security] capabilities too, which adds it to the container's set; keep it in one of the two"),
    ("[native]\ncommand = [\"/bin/x\"]\n[security]\ncapabilities = [\"ALL\"]\n", "4:17", "security.capabilities: unknown capability \"ALL\""),
    ("[container]\nimage = \"nginx\"\nsysctls = { \"vm.swappiness\" = \"10\" }\n", "3:13", "container.sysctls: \"vm.swappiness\" is not kept per container: setting it would change the whole host; a container may set only net.*"),
    ("[container]\nimage = \"nginx\"\nsysctls = { \"kernel.hostname\" = \"x\" }\n", "3:13", "; set the container's hostname with hostname = \"NAME\""),
    ("[container]\nimage = \"nginx\"\nnetwork = \"host\"\nsysctls = { \"net.ipv4.ip_forward\" = \"1\" }\n", "4:13", "container.sysctls: \"net.ipv4.ip_forward\" would change the host's network: with network = \"host\" the container shares the host's network namespace"),
    ("[container]\nimage = \"nginx\"\nnetwork = \"unit:db\"\nsysctls = { \"net.ipv4.ip_forward\" = \"1\" }\n", "4:13", "container.sysctls: the container shares the network namespace of db: set \"net.ipv4.ip_forward\" in the sysctls of db"),
    ("[container]\nimage = \"nginx\"\nsysctls = [\"net.core.somaxconn=1024\"]\n", "3:11", "container.sysctls: expected a table of sysctl names and values, e.g. sysctls = { \"net.ipv4.ip_unprivileged_port_start\" = \"0\" }, found an array (compose's list of NAME=VALUE is written as a table here)"),
    ("[container]\nimage = \"nginx\"\nsysctls = { \"net/ipv4/ip_forward\" = \"1\" }\n", "3:13", "container.sysctls: write the name with dots, \"net.ipv4.ip_forward\", as sysctl(8) does"),
    ("[container]\nimage = \"nginx\"\nsysctls = { \"net..x\" = \"1\" }\n", "3:13", "\"net..x\" has an empty component"),
    ("[container]\nimage = \"nginx\"\nsysctls = { \"net.core.somaxconn\" = 1.5 }\n", "3:36", "container.sysctls.net.core.somaxconn: expected a string, an integer or a boolean, found a float"),
    ("[container]\nimage = \"nginx\"\nsysctls = { \"net.core.somaxconn\" = \"\" }\n", "3:36", "container.sysctls.net.core.somaxconn: the value is empty"),
    ("[container]\nimage = \"nginx\"\nulimits = { nofiles = 1024 }\n", "3:13", "container.ulimits: unknown limit \"nofiles\" (did you mean \"nofile\"?); expected one of: core, cpu, data, fsize, locks, memlock, msgqueue, nice, nofile, nproc, rss, rtprio, rttime, sigpending, stack"),
    ("[container]\nimage = \"nginx\"\nulimits = { RLIMIT_NOFILE = 1024 }\n", "3:13", "container.ulimits: unknown limit \"RLIMIT_NOFILE\" (write \"nofile\")"),
    ("[container]\nimage = \"nginx\"\nulimits = { as = 1024 }\n", "3:13", "(the address space limit, as, is not supported, as in Docker; limit memory with [resources] memory_max)"),
    ("[container]\nimage = \"nginx\"\nulimits = { nofile = [2048, 1024] }\n", "3:22", "container.ulimits.nofile: the soft limit 2048 is above the hard limit 1024; the soft limit is at most the hard one"),
    ("[container]\nimage = \"nginx\"\nulimits = { memlock = [\"unlimited\", 1024] }\n", "3:23", "the soft limit unlimited is above the hard limit 1024"),
    ("[container]\nimage = \"nginx\"\nulimits = { nofile = [1] }\n", "3:22", "container.ulimits.nofile: expected [SOFT, HARD], two values, found 1"),
    ("[container]\nimage = \"nginx\"\nulimits = { nofile = -2 }\n", "3:22", "container.ulimits.nofile: expected a number, or -1 or \"unlimited\" for no limit, found -2"),
    ("[container]\nimage = \"nginx\"\nulimits = { nofile = \"lots\" }\n", "3:22", "found \"lots\""),
    ("[container]\nimage = \"nginx\"\nulimits = { nofile = { soft = 1 } }\n", "3:22", "container.ulimits.nofile: give both soft and hard"),
    ("[container]\nimage = \"nginx\"\nulimits = { nofile = { soft = 1, hard = 2, max = 3 } }\n", "3:44", "container.ulimits.nofile: unknown key \"max\"; expected soft and hard"),
    ("[container]\nimage = \"nginx\"\nulimits = \"nofile=1024\"\n", "3:11", "container.ulimits: expected a table of limits"),
    ("[container]\nimage = \"nginx\"\ninit = 1\n", "3:8", "container.init: expected true or false, found an integer"),
    // env_file
    ("env_file = \".env\"\n[native]\ncommand = [\"/bin/true\"]\n", "1:12", "env_file: \".env\" is relative; paths in a unit file are absolute (compose resolves a relative path against the compose file's directory, a unit file has none), e.g. \"/srv/web/.env\""),
    ("env_file = [\"./app.env\"]\n[native]\ncommand = [\"/bin/true\"]\n", "1:13", "e.g. \"/srv/web/app.env\""),
    ("env_file = [\"/srv/a.env\", \"/srv/a.env\"]\n[native]\ncommand = [\"/bin/true\"]\n", "1:27", "env_file: \"/srv/a.env\" is already listed on line 1; list each file once"),
    ("env_file = 5\n[native]\ncommand = [\"/bin/true\"]\n", "1:12", "env_file: expected a path or a list of paths, e.g. [\"/srv/app/.env\"], found an integer"),
    ("env_file = [1]\n[native]\ncommand = [\"/bin/true\"]\n", "1:13", "env_file: expected a string, found an integer"),
    ("env_file = [\"/srv/\"]\n[native]\ncommand = [\"/bin/true\"]\n", "1:13", "env_file: \"/srv/\" ends with '/', so it names a directory; give the file"),
    ("env_file = [\"/srv/../etc/env\"]\n[native]\ncommand = [\"/bin/true\"]\n", "1:13", "env_file: \"/srv/../etc/env\" must not contain \"..\""),
    ("[native]\ncommand = [\"/bin/true\"]\nenv_file = \"/srv/.env\"\n", "3:1", "unknown key \"env_file\" in [native]; expected one of: command, user, group, supplementary_groups, working_dir; if you meant the top-level \"env_file\", move it above the first [section] header"),
    // [[secret]]
    ("[native]\ncommand = [\"/bin/true\"]\n[[secret]]\ntarget = \"x\"\n", "3:1", "[[secret]] needs source = \"/path/to/file\", the host file"),
    ("[native]\ncommand = [\"/bin/true\"]\n[[secret]]\nsource = \"db_password\"\n", "4:10", "secret.source: \"db_password\" is relative; paths in a unit file are absolute (compose resolves a relative path against the compose file's directory, a unit file has none), e.g. \"/srv/web/db_password\""),
    ("[native]\ncommand = [\"/bin/true\"]\n[[secret]]\nsource = \"/\"\n", "4:10", "secret.source: \"/\" ends with '/', so it names a directory"),
    ("[native]\ncommand = [\"/bin/true\"]\n[[secret]]\nsource = \"/srv/s/db\"\ntarget = \"a/b\"\n", "5:10", "secret.target: \"a/b\" has '/'; a target is a file name, which the service reads at /run/secrets/NAME (or $CREDENTIALS_DIRECTORY/NAME natively); to put a file elsewhere in a container, bind it read-only with volumes"),
    ("[native]\ncommand = [\"/bin/true\"]\n[[secret]]\nsource = \"/srv/s/db\"\ntarget = \"..\"\n", "5:10", "secret.target: \"..\" is not a file name"),
    ("[native]\ncommand = [\"/bin/true\"]\n[[secret]]\nsource = \"/srv/s/db\"\ntarget = \"\"\n", "5:10", "secret.target: the target is empty"),
    ("[native]\ncommand = [\"/bin/true\"]\n[[secret]]\nsource = \"/srv/a/db\"\n[[secret]]\nsource = \"/srv/b/db\"\n", "6:10", "secret.source: its file name, \"db\", is already the target of the secret on line 3; each secret needs its own file name, so give this one another target = \"NAME\""),
    ("[native]\ncommand = [\"/bin/true\"]\n[[secret]]\nsource = \"/srv/a/db\"\n[[secret]]\nsource = \"/srv/b/x\"\ntarget = \"db\"\n", "7:10", "secret.target: \"db\" is already the target of the secret on line 3"),
    ("[native]\ncommand = [\"/bin/true\"]\n[[secret]]\nsource = \"/srv/a/db\"\nmode = 400\n", "5:8", "secret.mode: 400 is a decimal number; write the mode in octal, e.g. 0o440 or \"0440\""),
    ("[native]\ncommand = [\"/bin/true\"]\n[[secret]]\nsource = \"/srv/a/db\"\nmode = \"0999\"\n", "5:8", "secret.mode: the mode \"0999\" is not octal"),
    ("[native]\ncommand = [\"/bin/true\"]\n[[secret]]\nsource = \"/srv/a/db\"\nmode = 0o1777\n", "5:8", "secret.mode: the mode 1777 is larger than 777"),
    ("[native]\ncommand = [\"/bin/true\"]\n[[secret]]\nsource = \"/srv/a/db\"\nmode = true\n", "5:8", "secret.mode: expected an octal mode, found a boolean"),
    ("[native]\ncommand = [\"/bin/true\"]\n[[secret]]\nsource = \"/srv/a/db\"\nsrc = \"x\"\n", "5:1", "unknown key \"src\" in [[secret]]; expected one of: source, target, mode"),
    ("[container]\nimage = \"nginx\"\nsecrets = [\"db\"]\n", "3:1", "; secrets are [[secret]] sections at the top level, e.g. [[secret]] with source = \"/srv/secrets/db_password\""),
    ("[container]\nimage = \"nginx\"\ncapabilities = [\"NET_ADMIN\"]\n", "3:1", "; capabilities added to the default set are cap_add = [\"NET_ADMIN\"] (or [security] capabilities); those removed are cap_drop"),
    ("[[secret]]\nsource = \"/srv/a/db\"\n[container]\nimage = \"nginx\"\nvolumes = [\"/srv/s:/run/secrets/\"]\n", "1:1", "secret: a container finds its secrets in /run/secrets, and container.volumes mounts \"/run/secrets/\" there too; mount it elsewhere"),
    ("[container]\nimage = \"nginx\"\ntmpfs = [\"/run/secrets/x\"]\n[[secret]]\nsource = \"/srv/a/db\"\n", "4:1", "container.tmpfs mounts \"/run/secrets/x\" there too"),
    ("secret = \"x\"\n[native]\ncommand = [\"/bin/true\"]\n", "1:10", "secret: expected an array of tables ([[secret]] sections), found a string"),
    ("[native]\ncommand = [\"/bin/true\"]\n[secret]\nsource = \"/srv/a/db\"\n", "3:1", "secret: expected an array of tables ([[secret]] sections), found a table; write the header with two brackets, [[secret]], once per secret"),
];

#[test]
fn each_error_class_has_position_and_message() {
    let mut failures = Vec::new();
    for (text, pos, fragment) in ERROR_CASES {
        let diags = match parse(text) {
            Ok(_) => {
                failures.push(format!("{text:?}: parsed without error"));
                continue;
            }
            Err(d) => d,
        };
        let expected = format!("units/web.toml:{pos}: ");
        let found = diags
            .iter()
            .any(|d| d.to_string().starts_with(&expected) && d.message.contains(fragment));
        if !found {
            failures.push(format!(
                "{text:?}\n  want {expected}...{fragment}\n  got  {}",
                render(&diags).trim_end().replace('\n', "\n       ")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failing cases:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn error_cases_report_only_their_error() {
    // Each case above has a single problem, so it should produce exactly one
    // diagnostic (no follow-on noise).
    for (text, _, _) in ERROR_CASES {
        let diags = parse(text).unwrap_err();
        assert_eq!(diags.len(), 1, "{text:?} gave:\n{}", render(&diags));
    }
}

#[test]
fn invalid_file_name() {
    let d = parse_unit(Path::new("units/Web_App.toml"), MIN).unwrap_err();
    assert_eq!(d.len(), 1);
    assert_eq!((d[0].line, d[0].col), (1, 1));
    assert!(
        d[0].message.contains("invalid unit name \"Web_App\""),
        "{}",
        d[0]
    );
    assert!(d[0].message.contains("web-app.toml"), "{}", d[0]);
    for good in ["a", "0", "home-assistant", "z2m", "9-lives"] {
        assert!(is_valid_unit_name(good), "{good}");
    }
    for bad in ["", "-a", "A", "a_b", "a.b", "a b", "é"] {
        assert!(!is_valid_unit_name(bad), "{bad}");
    }
}

#[test]
fn multiple_errors_in_one_file_are_all_reported_in_order() {
    let text = r#"description = "multi"
depends_on = { db = "ready" }

[native]
command = []

[resources]
memmory_max = "1G"
cpus = 0

[restart]
delay = "soon"
burst = 0

[health]
http = "https://127.0.0.1/"

[stop]
signal = "NOPE"

[security]
capabilities = ["CAP_FLY"]

[logs]
max_files = 0
"#;
    let diags = errs(text);
    let got: Vec<String> = diags
        .iter()
        .map(|d| format!("{}:{}", d.line, d.col))
        .collect();
    assert_eq!(
        got,
        ["2:21", "5:11", "8:1", "9:8", "12:9", "13:9", "16:8", "19:10", "22:17", "25:13"],
        "{}",
        render(&diags)
    );
    // Sorted by position.
    let mut sorted = diags.clone();
    sorted.sort();
    assert_eq!(sorted, diags);
}

#[test]
fn syntax_errors_and_semantic_errors_together() {
    let text = "[native]\ncommand = [\"/bin/x\"]\n[resources]\ncpus = 0\n[logs]\nmax_files = = 3\n";
    let diags = errs(text);
    let s = render(&diags);
    assert!(s.contains("units/web.toml:4:8: resources.cpus"), "{s}");
    assert!(s.contains("units/web.toml:6:"), "{s}");
    assert!(s.contains("TOML syntax error"), "{s}");
}

#[test]
fn syntax_error_suppresses_missing_section_noise() {
    // The broken header hides [native]; only the syntax error is reported.
    let text = "[native\ncommand = [\"/bin/x\"]\n";
    let diags = errs(text);
    assert!(
        diags
            .iter()
            .all(|d| d.message.starts_with("TOML syntax error")),
        "{}",
        render(&diags)
    );
    assert_eq!(diags[0].line, 1);
}

#[test]
fn positions_count_characters() {
    let text = "description = \"ünïcödé\" \nfoo = 1\n[native]\ncommand = [\"/bin/x\"]\n";
    let d = errs(text);
    assert_eq!((d[0].line, d[0].col), (2, 1));
    let text = "description = \"ünïcödé\"; nope = 1\n";
    let d = errs(text);
    assert_eq!(d[0].line, 1);
    assert_eq!(d[0].col, 24, "{}", render(&d));
}

#[test]
fn helpers() {
    assert_eq!(parse_signal("term"), Some(15));
    assert_eq!(parse_signal("SIGUSR1"), Some(10));
    assert_eq!(parse_signal("bogus"), None);
    assert_eq!(
        parse_capability("sys_admin").as_deref(),
        Some("CAP_SYS_ADMIN")
    );
    assert_eq!(parse_capability("CAP_NOPE"), None);
    assert_eq!(parse_size("64M"), Some(64 << 20));
    assert_eq!(parse_size("8G"), Some(8 << 30));
    assert_eq!(parse_size("x"), None);
    assert_eq!(parse_cpuset("0-3,6,8-9").as_deref(), Ok("0-3,6,8-9"));
    assert!(parse_cpuset("").is_err());
    assert!(parse_cpuset("1-").is_err());
    assert!(parse_cpuset("-1").is_err());
}

// ---------------------------------------------------------------------------
// Cross-unit validation, on real files in a scratch directory.

struct Scratch(PathBuf);

impl Scratch {
    fn new(files: &[(&str, &str)]) -> Scratch {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "jarvis-unit-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let s = Scratch(dir);
        for (name, text) in files {
            s.write(name, text);
        }
        s
    }

    fn write(&self, name: &str, text: &str) {
        let p = self.0.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    fn file(&self, name: &str) -> String {
        self.0.join(name).display().to_string()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn with_deps(deps: &str) -> String {
    format!("depends_on = {deps}\n{MIN}")
}

const HEALTHY: &str = "[native]\ncommand = [\"/bin/x\"]\n[health]\ntcp = \"127.0.0.1:5432\"\n";

fn load_err(s: &Scratch) -> Vec<Diagnostic> {
    match load_dir(&s.0) {
        Ok(set) => panic!(
            "expected errors, loaded {:?}",
            set.units.keys().collect::<Vec<_>>()
        ),
        Err(d) => d,
    }
}

#[test]
fn loads_a_valid_set() {
    let s = Scratch::new(&[
        ("db.toml", HEALTHY),
        (
            "web.toml",
            &with_deps("{ db = \"healthy\", cache = \"started\" }"),
        ),
        ("cache.toml", MIN),
        ("worker.toml", &with_deps("[\"db\", \"cache\"]")),
        ("migrate.toml", &with_deps("[\"db\"]")),
        ("notes.txt", "not a unit"),
        ("sub/ignored.toml", "this is = = not even toml"),
    ]);
    let set = load_dir(&s.0).unwrap_or_else(|d| panic!("{}", render(&d)));
    assert_eq!(
        set.names().collect::<Vec<_>>(),
        ["cache", "db", "migrate", "web", "worker"]
    );
    assert_eq!(set.len(), 5);
    assert_eq!(
        set.get("worker").unwrap().depends_on[1].condition,
        Condition::Started
    );
    assert_eq!(
        set.start_order(),
        ["cache", "db", "migrate", "web", "worker"]
    );
    assert_eq!(
        set.stop_order(),
        ["worker", "web", "migrate", "db", "cache"]
    );
    assert_eq!(set.dependents("db"), ["migrate", "web", "worker"]);
    assert_eq!(set.dependencies("web"), ["db", "cache"]);
    assert_eq!(set.with_dependencies("web"), ["cache", "db", "web"]);
    assert_eq!(set.with_dependents("cache"), ["worker", "web", "cache"]);
    assert!(set.with_dependencies("nope").is_empty());
}

#[test]
fn start_order_respects_dependencies() {
    let s = Scratch::new(&[
        ("a.toml", &with_deps("[\"z\"]")),
        ("z.toml", &with_deps("[\"m\"]")),
        ("m.toml", MIN),
    ]);
    let set = load_dir(&s.0).unwrap();
    assert_eq!(set.start_order(), ["m", "z", "a"]);
}

#[test]
fn missing_dependency_points_at_the_key() {
    let s = Scratch::new(&[
        ("db.toml", MIN),
        (
            "web.toml",
            &with_deps("{ db = \"started\", dbx = \"started\" }"),
        ),
    ]);
    let d = load_err(&s);
    assert_eq!(d.len(), 1, "{}", render(&d));
    assert_eq!(
        d[0].to_string(),
        format!(
            "{}:1:32: depends_on: no unit named \"dbx\" (known: db, web); did you mean \"db\"? \
             each unit is a file NAME.toml next to this one",
            s.file("web.toml")
        )
    );
    // List form points at the element.
    let s = Scratch::new(&[("web.toml", &with_deps("[\"cache\"]"))]);
    let d = load_err(&s);
    assert_eq!((d[0].line, d[0].col), (1, 15));
    assert!(
        d[0].message
            .contains("no unit named \"cache\" (known: web)"),
        "{}",
        d[0]
    );
}

#[test]
fn broken_dependency_is_not_also_missing() {
    let s = Scratch::new(&[
        ("db.toml", "[native]\ncommand = []\n"),
        ("web.toml", &with_deps("[\"db\"]")),
    ]);
    let d = load_err(&s);
    assert_eq!(d.len(), 1, "{}", render(&d));
    assert!(d[0].file.ends_with("db.toml"));
}

#[test]
fn cycles_are_named() {
    let s = Scratch::new(&[
        ("a.toml", &with_deps("[\"b\"]")),
        ("b.toml", &with_deps("[\"c\"]")),
        ("c.toml", &with_deps("{ a = \"started\" }")),
        ("d.toml", &with_deps("[\"a\"]")),
        ("x.toml", &with_deps("[\"y\"]")),
        ("y.toml", &with_deps("[\"x\"]")),
    ]);
    let d = load_err(&s);
    let got: Vec<String> = d.iter().map(|d| d.to_string()).collect();
    assert_eq!(
        got,
        [
            format!(
                "{}:1:15: dependency cycle: a -> b -> c -> a; remove one of these dependencies",
                s.file("a.toml")
            ),
            format!(
                "{}:1:15: dependency cycle: x -> y -> x; remove one of these dependencies",
                s.file("x.toml")
            ),
        ]
    );
}

#[test]
fn healthy_needs_health() {
    let s = Scratch::new(&[
        ("db.toml", MIN),
        ("web.toml", &with_deps("{ db = \"healthy\" }")),
    ]);
    let d = load_err(&s);
    assert_eq!(d.len(), 1, "{}", render(&d));
    assert_eq!((d[0].line, d[0].col), (1, 16));
    assert!(
        d[0].message
            .contains("\"db\" = \"healthy\" but unit \"db\" has no health check"),
        "{}",
        d[0]
    );
    assert!(
        d[0].message.contains("add a [health] section to"),
        "{}",
        d[0]
    );
    assert!(d[0].message.contains("or use \"started\""), "{}", d[0]);
}

#[test]
fn self_dependency_via_load() {
    let s = Scratch::new(&[("web.toml", &with_deps("[\"web\"]"))]);
    let d = load_err(&s);
    assert_eq!(d.len(), 1, "{}", render(&d));
    assert!(d[0].message.contains("depends on itself"));
}

#[test]
fn duplicate_names_across_paths() {
    let s = Scratch::new(&[
        ("one/web.toml", MIN),
        ("two/web.toml", MIN),
        ("two/db.toml", MIN),
    ]);
    let d = load_paths(&[s.0.join("one"), s.0.join("two")]).unwrap_err();
    assert_eq!(d.len(), 1, "{}", render(&d));
    assert_eq!(d[0].file, s.0.join("two/web.toml"));
    assert!(
        d[0].message.contains("duplicate unit name \"web\""),
        "{}",
        d[0]
    );
    // The same file given twice is not a duplicate.
    let set = load_paths(&[s.0.join("one"), s.0.join("one/web.toml")]).unwrap();
    assert_eq!(set.len(), 1);
}

#[test]
fn errors_in_several_files_are_sorted() {
    let s = Scratch::new(&[
        ("b.toml", "[native]\ncommand = []\n[logs]\nmax_files = 0\n"),
        ("a.toml", "[native]\ncommand = [\"/x\"]\nbogus = 1\n"),
    ]);
    let d = load_err(&s);
    let got: Vec<(String, usize)> = d
        .iter()
        .map(|d| {
            (
                d.file.file_name().unwrap().to_string_lossy().into_owned(),
                d.line,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("a.toml".into(), 3),
            ("b.toml".into(), 2),
            ("b.toml".into(), 4)
        ]
    );
}

#[test]
fn unreadable_paths_are_reported() {
    let d = load_paths(&[PathBuf::from("/nonexistent/jarvis/x.toml")]).unwrap_err();
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].line, 0);
    assert_eq!(
        d[0].to_string(),
        "/nonexistent/jarvis/x.toml: no such file or directory; give the units directory or unit files"
    );
    // A link that leads nowhere says where it leads.
    let s = Scratch::new(&[]);
    let unreadable = s.0.join("u.toml");
    std::os::unix::fs::symlink("/nonexistent/jarvis/target", &unreadable).unwrap();
    let d = load_paths(std::slice::from_ref(&unreadable)).unwrap_err();
    assert!(
        d[0].to_string().contains(
            "u.toml: a symbolic link to /nonexistent/jarvis/target, which does not exist"
        ),
        "{}",
        d[0]
    );
}

#[test]
fn paths_keep_the_form_given() {
    let s = Scratch::new(&[(
        "web.toml",
        "[native]\ncommand = [\"/x\"]\n[resources]\ncpus = 0\n",
    )]);
    let d = load_paths(std::slice::from_ref(&s.0)).unwrap_err();
    assert_eq!(d[0].file, s.0.join("web.toml"));
    assert!(d[0]
        .to_string()
        .starts_with(&format!("{}:4:8: ", s.file("web.toml"))));
}

#[test]
fn from_units_checks_references() {
    let set = load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../units")).unwrap();
    let units: Vec<Unit> = set.iter().cloned().collect();
    assert_eq!(UnitSet::from_units(units.clone()).unwrap(), set);
    let without_ollama: Vec<Unit> = units.into_iter().filter(|u| u.name != "ollama").collect();
    let d = UnitSet::from_units(without_ollama).unwrap_err();
    assert!(
        d.iter()
            .any(|d| d.message.contains("no unit named \"ollama\"")),
        "{}",
        render(&d)
    );
}

#[test]
fn homelab_units_validate() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../units");
    let set =
        load_dir(&dir).unwrap_or_else(|d| panic!("units/ does not validate:\n{}", render(&d)));
    for name in [
        "ollama",
        "home-assistant",
        "open-webui",
        "tailscale",
        "mosquitto",
        "zigbee2mqtt",
        "jellyfin",
    ] {
        assert!(set.contains(name), "missing {name}");
    }
    let webui = set.get("open-webui").unwrap();
    assert_eq!(
        webui.depends_on,
        [Dependency {
            unit: "ollama".into(),
            condition: Condition::Healthy
        }]
    );
    assert!(webui.env.contains_key("OLLAMA_BASE_URL"));
    let c = container(webui);
    assert_eq!(c.image, "ghcr.io/open-webui/open-webui:main");
    assert_eq!(c.network, Network::Host);
    assert_eq!(
        c.volumes,
        [Volume::bind("/srv/open-webui", "/app/backend/data", false)]
    );
    let ts = set.get("tailscale").unwrap();
    assert_eq!(ts.security.capabilities, ["CAP_NET_ADMIN", "CAP_NET_RAW"]);
    assert_eq!(native(ts).user, None);
    let ollama = set.get("ollama").unwrap();
    assert!(
        matches!(&ollama.health.as_ref().unwrap().probe, Probe::Http(u) if u.ends_with("/api/version"))
    );
    assert_eq!(
        ollama.env.get("OLLAMA_HOST").map(String::as_str),
        Some("127.0.0.1:11434")
    );
    let ha = set.get("home-assistant").unwrap();
    let c = container(ha);
    assert_eq!(c.image, "ghcr.io/home-assistant/home-assistant:2024.12");
    assert_eq!(c.network, Network::Host);
    assert_eq!(
        c.volumes,
        [
            Volume::bind("/srv/home-assistant", "/config", false),
            Volume::bind("/etc/localtime", "/etc/localtime", true)
        ]
    );
    assert_eq!(
        ha.depends_on,
        [Dependency {
            unit: "mosquitto".into(),
            condition: Condition::Healthy
        }]
    );
    assert!(
        matches!(&ha.health.as_ref().unwrap().probe, Probe::Http(u) if u == "http://127.0.0.1:8123/manifest.json")
    );
    let z2m = set.get("zigbee2mqtt").unwrap();
    assert_eq!(
        z2m.depends_on,
        [Dependency {
            unit: "mosquitto".into(),
            condition: Condition::Started
        }]
    );
    // [gpu] and [[device]].
    assert_eq!(
        ollama.gpu,
        Some(Gpu {
            want: GpuWant::Auto,
            count: 1,
            min_vram: 6 << 30,
            verify: Some(crate::GpuVerify::Ollama),
            on_fallback: crate::OnFallback::Restart,
            ..Gpu::default()
        })
    );
    assert!(ollama.devices.is_empty());
    // Each native homelab unit also declares its container form, and runs
    // natively.
    for name in [
        "ollama",
        "mosquitto",
        "zigbee2mqtt",
        "jellyfin",
        "tailscale",
    ] {
        let u = set.get(name).unwrap();
        assert!(u.native.is_some() && u.container.is_some(), "{name}");
        assert_eq!(u.kind(), Kind::Native, "{name}");
    }
    assert_eq!(
        z2m.devices,
        [device(usb("10c4", "ea60", None), "/dev/zigbee", false)]
    );
    assert_eq!(
        z2m.env
            .get("ZIGBEE2MQTT_CONFIG_SERIAL_PORT")
            .map(String::as_str),
        Some("/dev/zigbee")
    );
    assert_eq!(
        ha.devices,
        [device(usb("1cf1", "0030", None), "/dev/conbee", true)]
    );
    assert_eq!(
        ts.devices,
        [device(
            DeviceMatch::Path("/dev/net/tun".into()),
            "/dev/net/tun",
            false
        )]
    );
    for u in set.iter() {
        if u.name != "ollama" {
            assert_eq!(u.gpu, None, "{} asks for a GPU", u.name);
        }
    }
    // ollama and tailscale stay native.
    assert_eq!(ollama.kind(), Kind::Native);
    assert_eq!(ts.kind(), Kind::Native);
    // Every native unit but tailscale runs as a non-root user (containers
    // run as their image's user), and nothing keeps capabilities except
    // tailscale.
    for u in set.iter() {
        if u.name == "tailscale" {
            continue;
        }
        if let Exec::Native(n) = &u.exec {
            assert!(n.user.is_some(), "{} runs as root", u.name);
        }
        assert!(
            u.security.capabilities.is_empty(),
            "{} keeps capabilities",
            u.name
        );
        assert!(u.security.no_new_privileges);
        assert!(
            u.resources.memory_max.is_some(),
            "{} has no memory limit",
            u.name
        );
    }
    let order = set.start_order();
    let pos = |n: &str| order.iter().position(|x| *x == n).unwrap();
    assert!(pos("ollama") < pos("open-webui"));
    assert!(pos("mosquitto") < pos("zigbee2mqtt"));
}

#[test]
fn cross_unit_errors_are_reported_alongside_file_errors() {
    let s = Scratch::new(&[
        (
            "db.toml",
            "[native]\ncommand = [\"/bin/db\"]\n[logs]\nmax_files = 0\n",
        ),
        (
            "web.toml",
            "depends_on = { db = \"healthy\", dbx = \"started\" }\n[native]\ncommand = []\n",
        ),
    ]);
    let d = load_err(&s);
    let got: Vec<String> = d
        .iter()
        .map(|d| {
            let file = d.file.file_name().unwrap().to_string_lossy().into_owned();
            format!("{file}:{}:{}", d.line, d.col)
        })
        .collect();
    assert_eq!(
        got,
        [
            "db.toml:4:13",
            "web.toml:1:16",
            "web.toml:1:32",
            "web.toml:3:11"
        ],
        "{}",
        render(&d)
    );
    assert!(d[1].message.contains("has no health check"));
    assert!(d[2]
        .message
        .contains("no unit named \"dbx\" (known: db, web)"));
}

#[test]
fn container_file_reports_every_problem_in_order() {
    let text = r#"[container]
image = "Nginx:latest"
entrypoint = []
user = "1000:"
network = "bridges"
volumes = ["/srv/a:/data", "d ta:/x", "/srv/b:/data"]
read_only = 1
group = "x"
"#;
    let diags = errs(text);
    let got: Vec<String> = diags
        .iter()
        .map(|d| format!("{}:{}", d.line, d.col))
        .collect();
    assert_eq!(
        got,
        ["2:9", "3:14", "4:8", "5:11", "6:28", "6:39", "7:13", "8:1"],
        "{}",
        render(&diags)
    );
}

#[test]
fn container_units_in_a_set() {
    let web = "depends_on = { db = \"healthy\" }\n[container]\nimage = \"ghcr.io/example/web:1\"\n\
               volumes = [\"/srv/web:/data\"]\n";
    let db = "[container]\nimage = \"postgres:16\"\n[health]\ntcp = \"127.0.0.1:5432\"\n";
    let s = Scratch::new(&[
        ("db.toml", db),
        ("web.toml", web),
        ("worker.toml", &with_deps("{ web = \"started\" }")),
    ]);
    let set = load_dir(&s.0).unwrap_or_else(|d| panic!("{}", render(&d)));
    assert_eq!(set.start_order(), ["db", "web", "worker"]);
    assert_eq!(set.get("db").unwrap().kind(), Kind::Container);
    assert_eq!(set.get("worker").unwrap().kind(), Kind::Native);
    let units: Vec<Unit> = set.iter().cloned().collect();
    assert_eq!(UnitSet::from_units(units).unwrap(), set);

    // `healthy` on a container without [health] is caught as for native
    // units, and a container unit with errors still counts as existing.
    let s = Scratch::new(&[
        ("db.toml", "[container]\nimage = \"postgres:16\"\n"),
        (
            "web.toml",
            "depends_on = { db = \"healthy\" }\n[container]\nimage = \"bad image\"\n",
        ),
    ]);
    let d = load_err(&s);
    let got: Vec<String> = d
        .iter()
        .map(|d| {
            let file = d.file.file_name().unwrap().to_string_lossy().into_owned();
            format!("{file}:{}:{}", d.line, d.col)
        })
        .collect();
    assert_eq!(got, ["web.toml:1:16", "web.toml:3:9"], "{}", render(&d));
    assert!(d[0].message.contains("unit \"db\" has no health check"));
    assert!(d[1].message.contains("invalid image reference"));
}

#[test]
fn gpu_and_device_file_reports_every_problem_in_order() {
    let text = r#"[native]
command = ["/bin/x"]

[gpu]
want = "tpu"
count = 0
min_vram = "lots"
vram = "6G"

[[device]]
usb = "10c4-ea60"
serial = ""
as = "/tmp/zigbee"
optional = "no"

[[device]]
serial = "x"

[[device]]
usb = "1cf1:0030"
path = "/dev/ttyACM0"

[[device]]
path = "/srv/node"
bogus = 1

[[device]]
path = "/dev/net/tun"

[[device]]
path = "/dev/tun"
as = "/dev/net/tun"
"#;
    let diags = errs(text);
    let got: Vec<String> = diags
        .iter()
        .map(|d| format!("{}:{}", d.line, d.col))
        .collect();
    assert_eq!(
        got,
        [
            "5:8", "6:9", "7:12", "8:1", // [gpu]
            "11:7", "12:10", "13:6", "14:12", // the first device: every key
            "16:1",  // no usb or path
            "21:1",  // both
            "24:8", "25:1", // path outside /dev without as; unknown key
            "32:6", // the same as twice
        ],
        "{}",
        render(&diags)
    );
    // Sorted by position.
    let mut sorted = diags.clone();
    sorted.sort();
    assert_eq!(sorted, diags);
}

#[test]
fn broken_device_header_reports_only_the_syntax_error() {
    let text = "[native]\ncommand = [\"/bin/x\"]\n[[device]\nusb = \"10c4:ea60\"\n";
    let diags = errs(text);
    assert!(
        diags
            .iter()
            .all(|d| d.message.starts_with("TOML syntax error")),
        "{}",
        render(&diags)
    );
    assert_eq!(diags[0].line, 3, "{}", render(&diags));
}

// ---------------------------------------------------------------------------
// Both forms, `run` and `[bench]`.

const NATIVE_X: &str = "[native]\ncommand = [\"/bin/x\"]\n";
const CONTAINER_NGINX: &str = "[container]\nimage = \"nginx\"\n";
const HEALTH_OLLAMA: &str = "[health]\ntcp = \"127.0.0.1:11434\"\n";
const BENCH_OLLAMA: &str =
    "[bench]\napi = \"ollama\"\nurl = \"http://127.0.0.1:11434\"\nmodel = \"smollm2\"\n";

fn native_x() -> Native {
    Native::new(vec!["/bin/x".into()])
}

fn container_nginx() -> Container {
    Container::new("nginx")
}

/// (run line, sections, other sections, run, the form exec has, forms)
type RunCase<'a> = (&'a str, &'a str, &'a str, RunMode, Kind, &'a [Kind]);

#[test]
fn run_picks_the_form() {
    use Kind::{Container as C, Native as N};
    let gpu = "[gpu]\n";
    let gpu_cpu = "[gpu]\nwant = \"cpu\"\n";
    let bench = &format!("{HEALTH_OLLAMA}{BENCH_OLLAMA}");
    let both = &format!("{NATIVE_X}{CONTAINER_NGINX}");
    let both_reversed = &format!("{CONTAINER_NGINX}{NATIVE_X}");
    let cases: &[RunCase<'_>] = &[
        // Both forms: `run` absent is auto.
        ("", both, "", RunMode::Auto, C, &[N, C]),
        ("", both_reversed, "", RunMode::Auto, C, &[N, C]),
        ("run = \"auto\"\n", both, "", RunMode::Auto, C, &[N, C]),
        ("run = \"native\"\n", both, "", RunMode::Native, N, &[N, C]),
        (
            "run = \"container\"\n",
            both,
            "",
            RunMode::Container,
            C,
            &[N, C],
        ),
        // auto: native for GPU and inference units.
        ("", both, gpu, RunMode::Auto, N, &[N, C]),
        ("", both, gpu_cpu, RunMode::Auto, N, &[N, C]),
        (
            "run = \"auto\"\n",
            both_reversed,
            gpu,
            RunMode::Auto,
            N,
            &[N, C],
        ),
        ("", both, bench, RunMode::Auto, N, &[N, C]),
        ("run = \"auto\"\n", both, bench, RunMode::Auto, N, &[N, C]),
        // An explicit form beats the auto rule.
        (
            "run = \"container\"\n",
            both,
            gpu,
            RunMode::Container,
            C,
            &[N, C],
        ),
        (
            "run = \"container\"\n",
            both,
            bench,
            RunMode::Container,
            C,
            &[N, C],
        ),
        ("run = \"native\"\n", both, "", RunMode::Native, N, &[N, C]),
        // One form: `run` absent is that form; auto is that form.
        ("", NATIVE_X, "", RunMode::Native, N, &[N]),
        ("run = \"native\"\n", NATIVE_X, "", RunMode::Native, N, &[N]),
        ("run = \"auto\"\n", NATIVE_X, "", RunMode::Auto, N, &[N]),
        ("", CONTAINER_NGINX, "", RunMode::Container, C, &[C]),
        (
            "run = \"container\"\n",
            CONTAINER_NGINX,
            gpu,
            RunMode::Container,
            C,
            &[C],
        ),
        (
            "run = \"auto\"\n",
            CONTAINER_NGINX,
            gpu,
            RunMode::Auto,
            C,
            &[C],
        ),
        ("", CONTAINER_NGINX, bench, RunMode::Container, C, &[C]),
    ];
    for (run, sections, others, want_run, want_kind, want_forms) in cases {
        let text = format!("{run}{sections}{others}");
        let u = ok(&text);
        assert_eq!(u.run, *want_run, "{text}");
        assert_eq!(u.kind(), *want_kind, "{text}");
        assert_eq!(u.forms(), *want_forms, "{text}");
        assert_eq!(u.resolve_form(None), *want_kind, "{text}");
        // The declared sections are kept as written, and exec is one of them.
        assert_eq!(u.native, want_forms.contains(&N).then(native_x), "{text}");
        assert_eq!(
            u.container,
            want_forms.contains(&C).then(container_nginx),
            "{text}"
        );
        match &u.exec {
            Exec::Native(n) => assert_eq!(n, &native_x(), "{text}"),
            Exec::Container(c) => assert_eq!(c, &container_nginx(), "{text}"),
        }
        assert_eq!(u.gpu.is_some(), others.contains("[gpu]"), "{text}");
        assert_eq!(u.bench.is_some(), others.contains("[bench]"), "{text}");
    }
}

#[test]
fn both_forms_keep_every_key() {
    let text = r#"description = "Ollama, either way"
run = "auto"

[container]
image = "docker.io/ollama/ollama:0.5.4"
entrypoint = ["/bin/ollama"]
command = ["serve"]
user = "1000:1000"
working_dir = "/root"
network = "host"
volumes = ["/var/lib/ollama:/root/.ollama"]
read_only = true

[native]
command = ["/usr/local/bin/ollama", "serve"]
user = "ollama"
group = "ollama"
supplementary_groups = ["render", "video"]
working_dir = "/var/lib/ollama"

[env]
OLLAMA_HOST = "127.0.0.1:11434"

[gpu]
min_vram = "6G"

[health]
http = "http://127.0.0.1:11434/api/version"
"#;
    let u = ok(text);
    assert_eq!(u.run, RunMode::Auto);
    assert_eq!(u.kind(), Kind::Native);
    let n = u.native.as_ref().unwrap();
    assert_eq!(&u.exec, &Exec::Native(n.clone()));
    assert_eq!(n.command, ["/usr/local/bin/ollama", "serve"]);
    assert_eq!(n.user.as_deref(), Some("ollama"));
    assert_eq!(n.supplementary_groups, ["render", "video"]);
    let c = u.container.as_ref().unwrap();
    assert_eq!(
        c,
        &Container {
            image: "docker.io/ollama/ollama:0.5.4".into(),
            entrypoint: Some(vec!["/bin/ollama".into()]),
            command: Some(vec!["serve".into()]),
            user: Some("1000:1000".into()),
            working_dir: Some("/root".into()),
            volumes: vec![Volume::bind("/var/lib/ollama", "/root/.ollama", false)],
            read_only: true,
            ..Container::new("").with_network(Network::Host)
        }
    );
    // Everything but the form is shared by both.
    let as_container = u.with_form(Kind::Container).unwrap();
    assert_eq!(as_container.exec, Exec::Container(c.clone()));
    assert_eq!(as_container.env, u.env);
    assert_eq!(as_container.gpu, u.gpu);
    assert_eq!(as_container.health, u.health);
}

#[test]
fn with_form_and_forms() {
    let both = ok(&format!("{NATIVE_X}{CONTAINER_NGINX}"));
    assert_eq!(both.kind(), Kind::Container);
    let n = both.with_form(Kind::Native).unwrap();
    assert_eq!(n.exec, Exec::Native(native_x()));
    assert_eq!(n.kind(), Kind::Native);
    // Only exec changes: run and the declared forms stay as written.
    assert_eq!(
        Unit {
            exec: both.exec.clone(),
            ..n.clone()
        },
        both
    );
    assert_eq!(n.run, RunMode::Auto);
    assert_eq!(n.forms(), [Kind::Native, Kind::Container]);
    assert_eq!(n.with_form(Kind::Container).unwrap(), both);
    assert_eq!(both.with_form(Kind::Container).unwrap(), both);

    // A form that is not declared.
    let native_only = ok(NATIVE_X);
    assert_eq!(native_only.with_form(Kind::Native).unwrap(), native_only);
    assert_eq!(native_only.with_form(Kind::Container), None);
    assert!(native_only.has_form(Kind::Native));
    assert!(!native_only.has_form(Kind::Container));
    let container_only = ok(CONTAINER_NGINX);
    assert_eq!(container_only.with_form(Kind::Native), None);
    assert_eq!(container_only.forms(), [Kind::Container]);

    // resolve_form: a recommendation counts for auto only, and only for a
    // declared form.
    let gpu_both = ok(&format!("{NATIVE_X}{CONTAINER_NGINX}[gpu]\n"));
    assert_eq!(gpu_both.auto_form(), Kind::Native);
    assert_eq!(gpu_both.resolve_form(None), Kind::Native);
    assert_eq!(
        gpu_both.resolve_form(Some(Kind::Container)),
        Kind::Container
    );
    assert_eq!(both.resolve_form(Some(Kind::Native)), Kind::Native);
    let pinned = ok(&format!("run = \"native\"\n{NATIVE_X}{CONTAINER_NGINX}"));
    assert_eq!(pinned.resolve_form(Some(Kind::Container)), Kind::Native);
    let auto_native = ok(&format!("run = \"auto\"\n{NATIVE_X}"));
    assert_eq!(
        auto_native.resolve_form(Some(Kind::Container)),
        Kind::Native
    );
    assert_eq!(auto_native.auto_form(), Kind::Native);

    // Units built in code: Unit::new declares exec as the only form.
    let u = Unit::new("web", Exec::Container(container_nginx()));
    assert_eq!(u, container_only);
    assert_eq!(Unit::new("web", Exec::Native(native_x())), ok(NATIVE_X));
    // Built with no declared forms (as before there were any), exec is the
    // one form, whatever run says.
    let bare = Unit {
        native: None,
        container: None,
        run: RunMode::Container,
        ..ok(NATIVE_X)
    };
    assert_eq!(bare.forms(), [Kind::Native]);
    assert_eq!(bare.resolve_form(None), Kind::Native);
    assert_eq!(bare.resolve_form(Some(Kind::Container)), Kind::Native);
    assert_eq!(bare.with_form(Kind::Native).unwrap(), bare);
    assert_eq!(bare.with_form(Kind::Container), None);
    let bare_auto = Unit {
        run: RunMode::default(),
        ..bare
    };
    assert_eq!(bare_auto.run, RunMode::Auto);
    assert_eq!(bare_auto.resolve_form(Some(Kind::Container)), Kind::Native);
    assert_eq!(bare_auto.auto_form(), Kind::Native);
    assert_eq!(Kind::Native.other(), Kind::Container);
    assert_eq!(RunMode::from(Kind::Container), RunMode::Container);
    assert_eq!(RunMode::Auto.as_str(), "auto");
}

#[test]
fn bench_defaults() {
    let u = ok(&format!(
        "{NATIVE_X}{HEALTH_OLLAMA}[bench]\napi = \"llamacpp\"\nurl = \"http://127.0.0.1:8080\"\n"
    ));
    let b = u.bench.unwrap();
    assert_eq!(b, Bench::new(BenchApi::Llamacpp, "http://127.0.0.1:8080"));
    assert_eq!(b.model, None);
    assert_eq!(b.prompt, "Why is the sky blue?");
    assert_eq!(b.max_tokens, 64);
    assert_eq!(b.requests, 10);
    assert_eq!(b.rounds, 6);
    assert_eq!(b.max_slowdown, 0.05);
    assert_eq!(b.endpoint(), "http://127.0.0.1:8080/completion");
    // With one form declared, [bench] leaves run alone.
    assert_eq!(u.run, RunMode::Native);
}

#[test]
fn every_bench_key_parses() {
    let text = format!(
        r#"run = "auto"
{NATIVE_X}{CONTAINER_NGINX}{HEALTH_OLLAMA}
[bench]
api = "ollama"
url = "http://127.0.0.1:11434/"
model = "smollm2"
prompt = "Name three planets."
max_tokens = 128
requests = 3
rounds = 4
max_slowdown = 0.1
"#
    );
    let u = ok(&text);
    assert_eq!(
        u.bench,
        Some(Bench {
            api: BenchApi::Ollama,
            url: "http://127.0.0.1:11434".into(),
            model: Some("smollm2".into()),
            prompt: "Name three planets.".into(),
            max_tokens: 128,
            requests: 3,
            rounds: 4,
            max_slowdown: 0.1,
        })
    );
    assert_eq!(
        u.bench.as_ref().unwrap().endpoint(),
        "http://127.0.0.1:11434/api/generate"
    );
    assert_eq!(u.kind(), Kind::Native);
}

#[test]
fn bench_value_forms() {
    let bench = |body: &str| -> Bench {
        ok(&format!("{NATIVE_X}{HEALTH_OLLAMA}[bench]\n{body}"))
            .bench
            .unwrap()
    };
    // (body, url stored, max_slowdown)
    let cases: &[(&str, &str, f64)] = &[
        (
            "api = \"openai\"\nurl = \"http://127.0.0.1:8000\"\n",
            "http://127.0.0.1:8000",
            0.05,
        ),
        (
            "api = \"openai\"\nurl = \"HTTP://localhost:8000/\"\n",
            "http://localhost:8000",
            0.05,
        ),
        (
            "api = \"openai\"\nurl = \"http://[::1]:8000\"\n",
            "http://[::1]:8000",
            0.05,
        ),
        (
            "api = \"openai\"\nurl = \"http://gpu-box.lan:8000\"\nmax_slowdown = 0\n",
            "http://gpu-box.lan:8000",
            0.0,
        ),
        (
            "api = \"openai\"\nurl = \"http://127.0.0.1:8000\"\nmax_slowdown = 1\n",
            "http://127.0.0.1:8000",
            1.0,
        ),
        (
            "api = \"openai\"\nurl = \"http://127.0.0.1:8000\"\nmax_slowdown = 1.0\n",
            "http://127.0.0.1:8000",
            1.0,
        ),
        (
            "api = \"openai\"\nurl = \"http://127.0.0.1:8000\"\nmax_slowdown = 0.25\n",
            "http://127.0.0.1:8000",
            0.25,
        ),
    ];
    for (body, url, slowdown) in cases {
        let b = bench(body);
        assert_eq!(b.url, *url, "{body}");
        assert_eq!(b.max_slowdown, *slowdown, "{body}");
    }
    // The model is optional for openai and llamacpp (which ignores it).
    let b = bench("api = \"openai\"\nurl = \"http://127.0.0.1:8000\"\nmodel = \"qwen2.5\"\n");
    assert_eq!(b.model.as_deref(), Some("qwen2.5"));
    assert_eq!(b.endpoint(), "http://127.0.0.1:8000/v1/completions");
    let b = bench("api = \"llamacpp\"\nurl = \"http://127.0.0.1:8080\"\nmodel = \"x\"\n");
    assert_eq!(b.model.as_deref(), Some("x"));
    assert!(!b.api.takes_model());
    assert!(BenchApi::Openai.takes_model());
    // Numbers at their lower bounds; the section may come in any order.
    let b = bench(
        "rounds = 2\nrequests = 1\nmax_tokens = 1\nmodel = \"m\"\nurl = \"http://a:1\"\napi = \"ollama\"\n",
    );
    assert_eq!((b.rounds, b.requests, b.max_tokens), (2, 1, 1));
    assert_eq!(b.url, "http://a:1");
    assert_eq!(
        [BenchApi::Ollama, BenchApi::Openai, BenchApi::Llamacpp].map(BenchApi::as_str),
        ["ollama", "openai", "llamacpp"]
    );
}

#[test]
fn old_json_without_the_new_fields_still_loads() {
    let u = ok(&format!(
        "{NATIVE_X}{CONTAINER_NGINX}{HEALTH_OLLAMA}{BENCH_OLLAMA}"
    ));
    let json = serde_json::to_value(&u).unwrap();
    assert_eq!(json["run"], "auto");
    assert_eq!(json["bench"]["api"], "ollama");
    let back: Unit = serde_json::from_value(json.clone()).unwrap();
    assert_eq!(back, u);

    let mut old = json;
    for key in ["native", "container", "run", "bench"] {
        old.as_object_mut().unwrap().remove(key);
    }
    let old: Unit = serde_json::from_value(old).unwrap();
    assert_eq!(old.native, None);
    assert_eq!(old.container, None);
    assert_eq!(old.run, RunMode::Auto);
    assert_eq!(old.bench, None);
    assert_eq!(old.exec, u.exec);
    assert_eq!(old.forms(), [Kind::Native]);
    assert_eq!(old.resolve_form(Some(Kind::Container)), Kind::Native);
}

#[test]
fn run_and_bench_file_reports_every_problem_in_order() {
    let text = r#"run = "fast"
[native]
command = ["/bin/x"]
[container]
image = "Nginx"
[bench]
api = "vllm"
url = "http://localhost"
model = ""
max_tokens = 0
requests = 0
rounds = 1
max_slowdown = 2
prompt = ""
warmup = 1
"#;
    let diags = errs(text);
    let got: Vec<String> = diags
        .iter()
        .map(|d| format!("{}:{}", d.line, d.col))
        .collect();
    assert_eq!(
        got,
        [
            "1:7", // run
            "5:9", // image
            "6:1", // no [health]
            "7:7", "8:7", "9:9", "10:14", "11:12", "12:10", "13:16", "14:10", "15:1",
        ],
        "{}",
        render(&diags)
    );
    assert!(diags[2].message.contains("[bench] needs a [health] check"));
    assert!(diags[2]
        .message
        .contains("e.g. with http = \"http://127.0.0.1:PORT/\""));
    // Sorted by position.
    let mut sorted = diags.clone();
    sorted.sort();
    assert_eq!(sorted, diags);

    // `run` names a missing form, and [bench] lacks its keys.
    let text = "run = \"container\"\n[native]\ncommand = [\"/bin/x\"]\n[health]\ntcp = \"a:1\"\n[bench]\nmodel = \"m\"\n";
    let diags = errs(text);
    let want = [
        (1, 7, "run = \"container\" but the unit has no [container] section"),
        (6, 1, "[bench] needs api = \"ollama\", \"openai\" or \"llamacpp\", the server's HTTP API, and url = "),
    ];
    assert_eq!(diags.len(), want.len(), "{}", render(&diags));
    for (d, (line, col, start)) in diags.iter().zip(want) {
        assert!(
            (d.line, d.col) == (line, col) && d.message.starts_with(start),
            "{}",
            render(&diags)
        );
    }
}

#[test]
fn bench_without_health_suggests_a_probe_at_its_url() {
    // Even when [bench] has other problems (no model here).
    let text = "[native]\ncommand = [\"/bin/x\"]\n[bench]\napi = \"ollama\"\nurl = \"http://127.0.0.1:11434/\"\n";
    let diags = errs(text);
    assert_eq!(diags.len(), 2, "{}", render(&diags));
    assert_eq!(
        diags[0].to_string(),
        "units/web.toml:3:1: [bench] needs a [health] check: each round waits until the service \
         is healthy before its first request; add a [health] section, e.g. with \
         http = \"http://127.0.0.1:11434/\" or tcp = \"127.0.0.1:PORT\""
    );
    assert!(diags[1]
        .message
        .starts_with("[bench] with api = \"ollama\" needs model"));
    assert_eq!((diags[1].line, diags[1].col), (3, 1));
}

#[test]
fn broken_headers_hide_the_missing_section_complaints() {
    // A broken [native] header may be what `run` names; a broken [health]
    // header may be what [bench] needs. Only the syntax errors are reported.
    for text in [
        "run = \"native\"\n[native\ncommand = [\"/bin/x\"]\n[container]\nimage = \"nginx\"\n",
        "[native]\ncommand = [\"/bin/x\"]\n[health\ntcp = \"a:1\"\n[bench]\napi = \"openai\"\nurl = \"http://a:1\"\n",
    ] {
        let diags = errs(text);
        assert!(
            diags
                .iter()
                .all(|d| d.message.starts_with("TOML syntax error")),
            "{text:?}:\n{}",
            render(&diags)
        );
    }
}

#[test]
fn both_form_units_in_a_set() {
    let ollama = format!(
        "run = \"auto\"\n{NATIVE_X}[container]\nimage = \"ollama/ollama\"\n{HEALTH_OLLAMA}{BENCH_OLLAMA}"
    );
    let webui = format!("depends_on = {{ ollama = \"healthy\" }}\n{NATIVE_X}{CONTAINER_NGINX}");
    let s = Scratch::new(&[("ollama.toml", &ollama), ("webui.toml", &webui)]);
    let set = load_dir(&s.0).unwrap_or_else(|d| panic!("{}", render(&d)));
    assert_eq!(set.start_order(), ["ollama", "webui"]);
    assert_eq!(set.get("ollama").unwrap().kind(), Kind::Native);
    assert_eq!(set.get("webui").unwrap().kind(), Kind::Container);
    let units: Vec<Unit> = set.iter().cloned().collect();
    assert_eq!(UnitSet::from_units(units).unwrap(), set);
}

/// Every key a table's `KEYS` lists is read by the parser: a value of the
/// wrong type under it is reported on its line, not as an unknown key (a
/// listed key the parser ignored would pass silently).
#[test]
fn every_listed_key_is_read() {
    const HEALTH: &str = "[health]\ntcp = \"127.0.0.1:1\"\n";
    let tables: [(&str, &[&str], &[&str], String); 12] = [
        (
            "[native]",
            Native::KEYS,
            &["command = [\"/bin/true\"]"],
            String::new(),
        ),
        (
            "[container]",
            Container::KEYS,
            &["image = \"nginx\""],
            String::new(),
        ),
        ("[resources]", Resources::KEYS, &[], MIN.into()),
        ("[restart]", Restart::KEYS, &[], MIN.into()),
        (
            "[health]",
            Health::KEYS,
            &["tcp = \"127.0.0.1:1\""],
            MIN.into(),
        ),
        ("[stop]", Stop::KEYS, &[], MIN.into()),
        ("[security]", Security::KEYS, &[], MIN.into()),
        ("[logs]", Logs::KEYS, &[], MIN.into()),
        ("[gpu]", Gpu::KEYS, &[], MIN.into()),
        (
            "[[device]]",
            DeviceSpec::KEYS,
            &["usb = \"10c4:ea60\"", "as = \"/dev/x\""],
            MIN.into(),
        ),
        (
            "[bench]",
            Bench::KEYS,
            &["api = \"openai\"", "url = \"http://127.0.0.1:1\""],
            format!("{MIN}{HEALTH}"),
        ),
        (
            "[[secret]]",
            Secret::KEYS,
            &["source = \"/srv/s/x\""],
            MIN.into(),
        ),
    ];
    let mut cases = Vec::new();
    for (header, keys, base, prefix) in &tables {
        for key in keys.iter() {
            let mut text = format!("{prefix}{header}\n");
            for line in base.iter().filter(|l| !l.starts_with(&format!("{key} "))) {
                text.push_str(line);
                text.push('\n');
            }
            text.push_str(&format!("{key} = {{ x = 1 }}\n"));
            cases.push((format!("{header} {key}"), text));
        }
    }
    for key in Unit::KEYS {
        let rest = if *key == "native" {
            "[container]\nimage = \"nginx\"\n"
        } else {
            MIN
        };
        cases.push((format!("top-level {key}"), format!("{key} = 1\n{rest}")));
    }
    for (what, text) in cases {
        let line = if what.starts_with("top-level") {
            1
        } else {
            text.lines().count()
        };
        let diags = errs(&text);
        assert!(
            diags.iter().all(|d| !d.message.starts_with("unknown key")),
            "{what}: {}",
            render(&diags)
        );
        assert!(
            diags.iter().any(|d| d.line == line),
            "{what}: nothing reported on line {line}:\n{text}\n{}",
            render(&diags)
        );
    }
}

/// The words unit files take, pinned: each enum lists its spellings once,
/// and serde writes the same ones.
#[test]
fn word_spellings_are_pinned() {
    fn words<T: Word + serde::Serialize>() -> Vec<&'static str> {
        for w in T::ALL {
            assert_eq!(serde_json::to_value(w).unwrap(), w.as_str());
            assert_eq!(
                T::from_word(w.as_str()).map(|x| x.as_str()),
                Some(w.as_str())
            );
        }
        T::ALL.iter().map(|w| w.as_str()).collect()
    }
    assert_eq!(words::<Kind>(), ["native", "container"]);
    assert_eq!(words::<RunMode>(), ["native", "container", "auto"]);
    assert_eq!(words::<NetworkWord>(), ["bridge", "host", "none"]);
    assert_eq!(words::<Protocol>(), ["tcp", "udp"]);
    assert_eq!(words::<Condition>(), ["started", "healthy", "completed"]);
    assert_eq!(words::<RestartPolicy>(), ["always", "on-failure", "never"]);
    assert_eq!(words::<OnUnhealthy>(), ["restart", "ignore"]);
    assert_eq!(words::<GpuWant>(), ["auto", "nvidia", "amd", "cpu"]);
    assert_eq!(words::<GpuVerify>(), ["ollama"]);
    assert_eq!(words::<OnFallback>(), ["restart", "warn"]);
    assert_eq!(words::<BenchApi>(), ["ollama", "openai", "llamacpp"]);
    assert_eq!(Health::KEYS[..3], *Probe::KEYS);
    assert_eq!(RestartPolicy::from_word("On-Failure"), None);
}

// ---------------------------------------------------------------------------
// Container networking.

#[test]
fn container_network_defaults() {
    let c = container_nginx();
    assert_eq!(c.network, Network::Bridge);
    assert_eq!(c.networks, ["default"]);
    assert_eq!(c.hostname, None);
    assert_eq!(c.hostname_or("web"), "web");
    assert!(c.ports.is_empty() && c.aliases.is_empty());
    assert!(c.extra_hosts.is_empty() && c.dns.is_empty());
    assert_eq!(container(&ok(CONTAINER_NGINX)), &c);
    // Another network joins no bridge network by default.
    for (word, network) in [("host", Network::Host), ("none", Network::None)] {
        let u = ok(&format!("{CONTAINER_NGINX}network = \"{word}\"\n"));
        assert_eq!(container(&u).network, network);
        assert!(container(&u).networks.is_empty(), "{word}");
    }
    assert_eq!(
        Container::new("nginx").with_network(Network::Host).networks,
        Vec::<String>::new()
    );
    assert_eq!(
        Container::new("nginx")
            .with_network(Network::None)
            .with_network(Network::Bridge)
            .networks,
        ["default"]
    );
}

#[test]
fn every_network_key_parses() {
    let text = r#"[container]
image = "docker.io/ollama/ollama"
network = "bridge"
networks = ["default", "media"]
ports = ["8080:80", "127.0.0.1:5353:53/udp", "9000:9000/tcp", "[::1]:8443:443"]
hostname = "ollama.home.lan"
aliases = ["llm", "ollama-api"]
extra_hosts = ["host.docker.internal:host-gateway", "nas:192.0.2.10", "v6:::1", "v6b:[fe80::1]"]
dns = ["9.9.9.9", "2620:fe::fe"]
"#;
    let u = ok(text);
    let c = container(&u);
    assert_eq!(c.network, Network::Bridge);
    assert_eq!(c.networks, ["default", "media"]);
    let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
    assert_eq!(
        c.ports,
        [
            PortSpec {
                host_ip: None,
                host_port: 8080,
                container_port: 80,
                protocol: Protocol::Tcp
            },
            PortSpec {
                host_ip: Some(ip("127.0.0.1")),
                host_port: 5353,
                container_port: 53,
                protocol: Protocol::Udp
            },
            PortSpec {
                host_ip: None,
                host_port: 9000,
                container_port: 9000,
                protocol: Protocol::Tcp
            },
            PortSpec {
                host_ip: Some(ip("::1")),
                host_port: 8443,
                container_port: 443,
                protocol: Protocol::Tcp
            },
        ]
    );
    assert_eq!(c.hostname.as_deref(), Some("ollama.home.lan"));
    assert_eq!(c.hostname_or("web"), "ollama.home.lan");
    assert_eq!(c.aliases, ["llm", "ollama-api"]);
    let host = |name: &str, target| ExtraHost {
        name: name.into(),
        target,
    };
    assert_eq!(
        c.extra_hosts,
        [
            host("host.docker.internal", HostTarget::Gateway),
            host("nas", HostTarget::Addr(ip("192.0.2.10"))),
            host("v6", HostTarget::Addr(ip("::1"))),
            host("v6b", HostTarget::Addr(ip("fe80::1"))),
        ]
    );
    assert_eq!(c.dns, [ip("9.9.9.9"), ip("2620:fe::fe")]);
    assert_eq!(
        c.dns_names("web"),
        ["web", "ollama.home.lan", "llm", "ollama-api"]
    );
    // The typed unit round-trips through JSON.
    let json = serde_json::to_string(&u).unwrap();
    assert_eq!(serde_json::from_str::<Unit>(&json).unwrap(), u);
    // Keys in another order, and extra_hosts without host-gateway on none.
    let u = ok("[container]\nimage = \"nginx\"\nextra_hosts = [\"nas:192.0.2.10\"]\nnetwork = \"none\"\nhostname = \"box\"\n");
    assert_eq!(container(&u).network, Network::None);
    assert_eq!(container(&u).extra_hosts.len(), 1);
    assert!(container(&u).dns_names("web").is_empty());
}

#[test]
fn network_spellings() {
    for (text, network) in [
        ("bridge", Network::Bridge),
        ("host", Network::Host),
        ("none", Network::None),
        ("unit:vpn", Network::Unit("vpn".into())),
    ] {
        assert_eq!(text.parse::<Network>(), Ok(network.clone()));
        assert_eq!(network.to_string(), text);
        let u = ok(&format!("{CONTAINER_NGINX}network = \"{text}\"\n"));
        assert_eq!(container(&u).network, network);
    }
    assert_eq!(
        Network::expected(),
        "\"bridge\", \"host\", \"none\" or \"unit:NAME\""
    );
    assert_eq!(Network::Unit("vpn".into()).unit(), Some("vpn"));
    assert_eq!(Network::Bridge.unit(), None);
    assert_eq!(Network::Bridge.word(), Some(NetworkWord::Bridge));
    assert!("Bridge".parse::<Network>().is_err());
    assert!("unit:".parse::<Network>().is_err());
    // serde: the words as themselves, unit:NAME as {"unit": NAME}.
    assert_eq!(serde_json::to_value(Network::Bridge).unwrap(), "bridge");
    assert_eq!(
        serde_json::to_value(Network::Unit("vpn".into())).unwrap(),
        serde_json::json!({"unit": "vpn"})
    );
    for n in [Network::Host, Network::None, Network::Unit("a".into())] {
        let json = serde_json::to_string(&n).unwrap();
        assert_eq!(serde_json::from_str::<Network>(&json).unwrap(), n);
    }
}

#[test]
fn port_specs_round_trip() {
    for (text, shown) in [
        ("8080:80", "0.0.0.0:8080->80/tcp"),
        ("8080:80/tcp", "0.0.0.0:8080->80/tcp"),
        ("127.0.0.1:5353:53/udp", "127.0.0.1:5353->53/udp"),
        ("0.0.0.0:1:65535", "0.0.0.0:1->65535/tcp"),
        ("[::1]:8080:80", "[::1]:8080->80/tcp"),
        ("[2001:db8::1]:53:53/udp", "[2001:db8::1]:53->53/udp"),
    ] {
        let p: PortSpec = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(p.to_string(), shown, "{text}");
        // What Display shows, in the file's grammar, parses back the same.
        let (host, container) = shown.split_once("->").unwrap();
        let (addr, host_port) = host.rsplit_once(':').unwrap();
        let again: PortSpec = format!("{addr}:{host_port}:{container}").parse().unwrap();
        let same_host = if p.host_ip.is_none() {
            PortSpec {
                host_ip: Some("0.0.0.0".parse().unwrap()),
                ..p
            }
        } else {
            p
        };
        assert_eq!(again, same_host, "{text}");
    }
    let e = "8080".parse::<PortSpec>().unwrap_err();
    assert_eq!(
        e,
        "give the host port and the container port, e.g. \"8080:8080\" (a port is not \
         published without a host port); write [HOST_IP:]HOST_PORT:CONTAINER_PORT[/tcp|/udp], \
         e.g. \"8080:80\", \"127.0.0.1:5353:53/udp\" or \"[::1]:8080:80\""
    );
    for bad in [
        "",
        "0:80",
        "80:0",
        "65536:80",
        "a:80",
        "80:",
        ":80",
        "1:2:3:4",
        "8080:80/",
        "8080:80/tcp/udp",
        " 8080:80",
        "[::1]8080:80",
        "[::1]:8080",
        "1.2.3.4:80",
    ] {
        assert!(bad.parse::<PortSpec>().is_err(), "{bad:?} parsed");
    }
}

#[test]
fn ports_clash_by_address_port_and_protocol() {
    let p = |s: &str| s.parse::<PortSpec>().unwrap();
    assert!(p("8080:80").clashes_with(&p("8080:81")));
    assert!(p("8080:80").clashes_with(&p("127.0.0.1:8080:80")));
    assert!(p("127.0.0.1:8080:80").clashes_with(&p("8080:80")));
    assert!(p("127.0.0.1:53:53/udp").clashes_with(&p("127.0.0.1:53:5353/udp")));
    assert!(!p("127.0.0.1:53:53/udp").clashes_with(&p("53:53/tcp")));
    assert!(!p("127.0.0.1:8080:80").clashes_with(&p("127.0.0.2:8080:80")));
    assert!(!p("8080:80").clashes_with(&p("8081:80")));
    // One unit may publish one container port on several host ports.
    let u = ok(&format!(
        "{CONTAINER_NGINX}ports = [\"8080:80\", \"8081:80\", \"127.0.0.1:53:53/udp\", \"53:53/tcp\"]\n"
    ));
    assert_eq!(container(&u).ports.len(), 4);
}

#[test]
fn extra_hosts_round_trip() {
    for (text, shown) in [
        ("nas:192.0.2.10", "nas:192.0.2.10"),
        (
            "host.docker.internal:host-gateway",
            "host.docker.internal:host-gateway",
        ),
        ("v6:::1", "v6:[::1]"),
        ("v6:[::1]", "v6:[::1]"),
    ] {
        let h: ExtraHost = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(h.to_string(), shown);
        assert_eq!(shown.parse::<ExtraHost>().unwrap(), h);
    }
    for bad in [
        "nas",
        "nas:",
        ":1.2.3.4",
        "nas:gateway",
        "n_s:1.2.3.4",
        "nas:[1.2.3.4]",
    ] {
        assert!(bad.parse::<ExtraHost>().is_err(), "{bad:?} parsed");
    }
}

#[test]
fn a_bridged_unit_name_must_be_a_dns_name() {
    let parse_as = |file: &str, text: &str| parse_unit(Path::new(file), text);
    let d = parse_as("units/web-.toml", CONTAINER_NGINX).unwrap_err();
    assert_eq!(d.len(), 1, "{}", render(&d));
    assert_eq!(
        d[0].to_string(),
        "units/web-.toml:1:1: the unit name \"web-\" is not a DNS name (\"web-\" must not start \
         or end with '-'), and a bridged container is known on its networks by its unit name; \
         rename the file (e.g. to \"web.toml\") or set hostname = \"web\" to name it"
    );
    // At the network value when there is one.
    let d = parse_as(
        "units/web-.toml",
        &format!("{CONTAINER_NGINX}network = \"bridge\"\n"),
    )
    .unwrap_err();
    assert_eq!((d[0].line, d[0].col), (3, 11));
    // With a hostname, the unit is known by that (and its aliases) instead.
    let u = parse_as(
        "units/web-.toml",
        &format!("{CONTAINER_NGINX}hostname = \"web\"\naliases = [\"www\"]\n"),
    )
    .unwrap();
    assert_eq!(container(&u).dns_names("web-"), ["web", "www"]);
    // Other networks, and native units, do not care.
    parse_as(
        "units/web-.toml",
        &format!("{CONTAINER_NGINX}network = \"host\"\n"),
    )
    .unwrap();
    parse_as("units/web-.toml", MIN).unwrap();
}

#[test]
fn network_of_a_unit_implies_a_dependency() {
    let u = ok(&format!("{CONTAINER_NGINX}network = \"unit:vpn\"\n"));
    assert_eq!(container(&u).network, Network::Unit("vpn".into()));
    assert!(container(&u).networks.is_empty());
    assert_eq!(
        u.depends_on,
        [Dependency {
            unit: "vpn".into(),
            condition: Condition::Started
        }]
    );
    // Added after the declared ones.
    let u = ok(&format!(
        "depends_on = [\"db\"]\n{CONTAINER_NGINX}network = \"unit:vpn\"\n"
    ));
    let deps: Vec<&str> = u.depends_on.iter().map(|d| d.unit.as_str()).collect();
    assert_eq!(deps, ["db", "vpn"]);
    // A declared dependency on it keeps its condition.
    let u = ok(&format!(
        "depends_on = {{ vpn = \"healthy\" }}\n{CONTAINER_NGINX}network = \"unit:vpn\"\n"
    ));
    assert_eq!(
        u.depends_on,
        [Dependency {
            unit: "vpn".into(),
            condition: Condition::Healthy
        }]
    );
    // A native unit with both forms gets it too (from its [container]).
    let u = ok(&format!(
        "{NATIVE_X}{CONTAINER_NGINX}network = \"unit:vpn\"\n"
    ));
    assert_eq!(u.depends_on.len(), 1);
}

const VPN: &str = "[container]\nimage = \"tailscale/tailscale\"\n";

fn joins(owner: &str) -> String {
    format!("{CONTAINER_NGINX}network = \"unit:{owner}\"\n")
}

#[test]
fn a_unit_joins_the_namespace_of_a_bridged_unit() {
    let s = Scratch::new(&[("vpn.toml", VPN), ("app.toml", &joins("vpn"))]);
    let set = load_dir(&s.0).unwrap_or_else(|d| panic!("{}", render(&d)));
    assert_eq!(set.dependencies("app"), ["vpn"]);
    assert_eq!(set.start_order(), ["vpn", "app"]);
    // Units built in code get the dependency too.
    let app = Unit::new(
        "app",
        Exec::Container(Container::new("nginx").with_network(Network::Unit("vpn".into()))),
    );
    let vpn = Unit::new("vpn", Exec::Container(Container::new("tailscale")));
    let set = UnitSet::from_units([app, vpn]).unwrap();
    assert_eq!(set.dependencies("app"), ["vpn"]);
}

#[test]
fn network_unit_checks() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[("app.toml", &joins("vpm")), ("vpn.toml", VPN)],
            "app.toml:3:11: container.network: \"unit:vpm\": no unit named \"vpm\" (known: app, vpn); did you mean \"unit:vpn\"? network = \"unit:NAME\" joins the network namespace of the unit NAME.toml next to this one",
        ),
        (
            &[("app.toml", &joins("vpn")), ("vpn.toml", MIN)],
            "app.toml:3:11: container.network: \"unit:vpn\": unit \"vpn\" has no [container], so it has no network namespace to join (a native unit uses the host's network); write network = \"host\" to share the host's network",
        ),
        (
            &[("app.toml", &joins("vpn")), ("vpn.toml", &format!("{MIN}{VPN}"))],
            "app.toml:3:11: container.network: \"unit:vpn\": unit \"vpn\" may run natively (it declares [native] too and run = \"auto\"), and then it has no network namespace to join; write run = \"container\" in ",
        ),
        (
            &[("app.toml", &joins("vpn")), ("vpn.toml", &format!("run = \"native\"\n{MIN}{VPN}"))],
            "unit \"vpn\" runs natively (run = \"native\"), and then",
        ),
        (
            &[("app.toml", &joins("vpn")), ("vpn.toml", &format!("{VPN}network = \"host\"\n"))],
            "app.toml:3:11: container.network: \"unit:vpn\": unit \"vpn\" uses the host's network (network = \"host\"), which is no namespace of its own; write network = \"host\" here to share it",
        ),
        (
            &[("app.toml", &joins("vpn")), ("vpn.toml", &format!("{VPN}network = \"none\"\n"))],
            "app.toml:3:11: container.network: \"unit:vpn\": unit \"vpn\" has network = \"none\", only a loopback of its own; give \"vpn\" network = \"bridge\" to share its network, or write network = \"none\" here for a loopback of this unit's own",
        ),
        (
            &[("a.toml", &joins("b")), ("b.toml", &joins("c")), ("c.toml", VPN)],
            "a.toml:3:11: container.network: \"unit:b\": unit \"b\" itself joins the network namespace of \"c\" (network = \"unit:c\"); namespaces are not chained: write network = \"unit:c\" to join the one \"b\" is in",
        ),
        (
            &[("a.toml", &joins("b")), ("b.toml", &joins("a"))],
            "a.toml:3:11: container.network: \"unit:b\": network cycle: a -> b -> a (each joins the network namespace of the next); one of them must own the namespace: give it network = \"bridge\"",
        ),
    ];
    for (files, want) in cases {
        let s = Scratch::new(files);
        let d = load_err(&s);
        let got = render(&d).replace(&format!("{}/", s.0.display()), "");
        assert_eq!(d.len(), 1, "{want}\ngot:\n{got}");
        assert!(got.contains(want), "want {want}\ngot  {got}");
    }
    // A chain of three in a cycle is one diagnostic (no dependency cycle
    // besides), at its first unit.
    let s = Scratch::new(&[
        ("a.toml", &joins("b")),
        ("b.toml", &joins("c")),
        ("c.toml", &joins("a")),
    ]);
    let d = load_err(&s);
    assert_eq!(d.len(), 1, "{}", render(&d));
    assert!(
        d[0].message.contains("network cycle: a -> b -> c -> a"),
        "{}",
        d[0]
    );
    // A dependency cycle through an implied dependency says where it is.
    let s = Scratch::new(&[
        ("a.toml", &joins("b")),
        ("b.toml", &format!("depends_on = [\"a\"]\n{VPN}")),
    ]);
    let d = load_err(&s);
    assert_eq!(d.len(), 1, "{}", render(&d));
    assert_eq!(
        d[0].to_string(),
        format!(
            "{}:3:11: dependency cycle: a -> b -> a (network = \"unit:b\" makes a depend on it); \
             remove one of these dependencies",
            s.file("a.toml")
        )
    );
}

#[test]
fn host_ports_are_published_once_across_units() {
    let web = format!("{CONTAINER_NGINX}ports = [\"8080:80\", \"127.0.0.1:53:53/udp\"]\n");
    let s = Scratch::new(&[
        ("web.toml", &web),
        (
            "api.toml",
            &format!("{CONTAINER_NGINX}ports = [\"9000:9000\", \"127.0.0.1:8080:80\"]\n"),
        ),
        (
            "dns.toml",
            &format!("{CONTAINER_NGINX}ports = [\"53:53/tcp\", \"127.0.0.2:53:53/udp\"]\n"),
        ),
    ]);
    let d = load_err(&s);
    assert_eq!(d.len(), 1, "{}", render(&d));
    assert_eq!(
        d[0].to_string(),
        format!(
            "{}:3:10: container.ports: 0.0.0.0:8080->80/tcp takes host port 0.0.0.0:8080/tcp, \
             which unit \"api\" publishes already (127.0.0.1:8080->80/tcp, at {}:3:23) (a port \
             without a host address is published on every address); a host address, port and \
             protocol is published by one unit only: pick another host port",
            s.file("web.toml"),
            s.file("api.toml")
        )
    );
    // Units built in code: across units and within one.
    let with_ports = |name: &str, ports: &[&str]| {
        let c = Container {
            ports: ports.iter().map(|p| p.parse().unwrap()).collect(),
            ..Container::new("nginx")
        };
        Unit::new(name, Exec::Container(c))
    };
    let d = UnitSet::from_units([with_ports("a", &["8080:80"]), with_ports("b", &["8080:81"])])
        .unwrap_err();
    assert_eq!(d.len(), 1, "{}", render(&d));
    assert!(d[0].to_string().starts_with("b.toml: container.ports: 0.0.0.0:8080->81/tcp takes host port 0.0.0.0:8080/tcp, which unit \"a\" publishes already"), "{}", d[0]);
    let d =
        UnitSet::from_units([with_ports("a", &["53:53/udp", "127.0.0.1:53:53/udp"])]).unwrap_err();
    assert!(
        d[0].message.contains("which this unit publishes already"),
        "{}",
        d[0]
    );
    UnitSet::from_units([
        with_ports("a", &["127.0.0.1:53:53/udp"]),
        with_ports("b", &["53:53/tcp"]),
    ])
    .unwrap();
}

/// Every key the compose import maps onto, in one container unit.
const COMPOSE_KEYS: &str = r#"env_file = ["/srv/immich/.env", "/srv/immich/db.env"]

[container]
image = "postgres:16"
volumes = ["pgdata:/var/lib/postgresql/data", "/srv/media:/media:ro"]
tmpfs = ["/tmp:size=64m,mode=1777", "/run"]
shm_size = "1G"
group_add = ["video", "44", 45]
privileged = false
device_cgroup_rules = ["c 189:* rmw", "b 8:0 r", "a *:* m", "c 4:64 wr"]
cap_add = ["NET_ADMIN", "cap_sys_time", "Cap_Net_Raw"]
cap_drop = ["MKNOD"]
sysctls = { "net.ipv4.ip_unprivileged_port_start" = "0", "net.core.somaxconn" = 1024, "net.ipv4.ip_forward" = true, "kernel.shmmax" = "68719476736", "fs.mqueue.msg_max" = 100, "kernel.sem" = "250 32000 100 128" }
ulimits = { nofile = [1024, 65536], nproc = 4096, core = 0, memlock = -1, stack = { soft = 8388608, hard = "unlimited" } }
init = true

[security]
capabilities = ["CAP_CHOWN"]

[[secret]]
source = "/srv/secrets/db_password"
target = "db_password"

[[secret]]
source = "/srv/secrets/api.key"
mode = 0o440

[[secret]]
source = "/srv/secrets/other"
target = "token"
mode = "0444"
"#;

#[test]
fn every_compose_key_parses() {
    let u = ok(COMPOSE_KEYS);
    assert_eq!(
        u.env_file,
        [
            PathBuf::from("/srv/immich/.env"),
            PathBuf::from("/srv/immich/db.env")
        ]
    );
    assert_eq!(
        u.secrets,
        [
            Secret {
                source: "/srv/secrets/db_password".into(),
                target: "db_password".into(),
                mode: 0o400,
            },
            Secret {
                source: "/srv/secrets/api.key".into(),
                target: "api.key".into(),
                mode: 0o440,
            },
            Secret {
                source: "/srv/secrets/other".into(),
                target: "token".into(),
                mode: 0o444,
            },
        ]
    );
    let c = container(&u);
    assert_eq!(
        c.volumes,
        [
            Volume::named("pgdata", "/var/lib/postgresql/data", false),
            Volume::bind("/srv/media", "/media", true),
        ]
    );
    assert_eq!(
        c.tmpfs,
        [
            Tmpfs {
                path: "/tmp".into(),
                size: Some(64 << 20),
                mode: Some(0o1777),
            },
            Tmpfs {
                path: "/run".into(),
                size: None,
                mode: None,
            },
        ]
    );
    assert_eq!(c.shm_size, Some(1 << 30));
    assert_eq!(c.group_add, ["video", "44", "45"]);
    assert!(!c.privileged);
    assert_eq!(
        c.device_cgroup_rules,
        [
            DeviceCgroupRule {
                kind: DeviceType::Char,
                major: Some(189),
                minor: None,
                access: "rwm".into(),
            },
            DeviceCgroupRule {
                kind: DeviceType::Block,
                major: Some(8),
                minor: Some(0),
                access: "r".into(),
            },
            DeviceCgroupRule {
                kind: DeviceType::All,
                major: None,
                minor: None,
                access: "m".into(),
            },
            DeviceCgroupRule {
                kind: DeviceType::Char,
                major: Some(4),
                minor: Some(64),
                access: "rw".into(),
            },
        ]
    );
    // Written back as Docker writes them, access in rwm order.
    let shown: Vec<String> = c
        .device_cgroup_rules
        .iter()
        .map(|r| r.to_string())
        .collect();
    assert_eq!(shown, ["c 189:* rwm", "b 8:0 r", "a *:* m", "c 4:64 rw"]);
    assert_eq!(c.cap_add, ["CAP_NET_ADMIN", "CAP_SYS_TIME", "CAP_NET_RAW"]);
    assert_eq!(c.cap_drop, ["CAP_MKNOD"]);
    let sysctls: Vec<(&str, &str)> = c
        .sysctls
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        sysctls,
        [
            ("fs.mqueue.msg_max", "100"),
            ("kernel.sem", "250 32000 100 128"),
            ("kernel.shmmax", "68719476736"),
            ("net.core.somaxconn", "1024"),
            ("net.ipv4.ip_forward", "1"),
            ("net.ipv4.ip_unprivileged_port_start", "0"),
        ]
    );
    let ulimits: Vec<(Rlimit, Ulimit)> = c.ulimits.iter().map(|(k, v)| (*k, *v)).collect();
    assert_eq!(
        ulimits,
        [
            (Rlimit::Core, Ulimit::both(0)),
            (Rlimit::Memlock, Ulimit::both(Ulimit::UNLIMITED)),
            (
                Rlimit::Nofile,
                Ulimit {
                    soft: 1024,
                    hard: 65536
                }
            ),
            (Rlimit::Nproc, Ulimit::both(4096)),
            (
                Rlimit::Stack,
                Ulimit {
                    soft: 8 << 20,
                    hard: Ulimit::UNLIMITED
                }
            ),
        ]
    );
    assert!(c.init);
    assert_eq!(u.security.capabilities, ["CAP_CHOWN"]);
    // The typed unit round-trips through JSON (the shim reads it so).
    let json = serde_json::to_string(&u).unwrap();
    assert_eq!(serde_json::from_str::<Unit>(&json).unwrap(), u);
    let v = serde_json::to_value(&u).unwrap();
    assert_eq!(v["container"]["ulimits"]["nofile"]["hard"], 65536);
    assert_eq!(
        v["container"]["volumes"][0]["source"],
        serde_json::json!({ "named": "pgdata" })
    );
    assert_eq!(v["secrets"][1]["mode"], 0o440);
}

#[test]
fn compose_keys_default() {
    let u = ok("[container]\nimage = \"nginx\"\n");
    assert!(u.env_file.is_empty() && u.secrets.is_empty());
    let c = container(&u);
    assert!(c.tmpfs.is_empty() && c.group_add.is_empty());
    assert!(c.device_cgroup_rules.is_empty());
    assert_eq!(c.shm_size, None);
    assert!(!c.privileged && !c.init);
    assert!(c.cap_add.is_empty() && c.cap_drop.is_empty());
    assert!(c.sysctls.is_empty() && c.ulimits.is_empty());
    let n = ok(MIN);
    assert!(n.env_file.is_empty() && n.secrets.is_empty());
    // JSON written before these keys existed still loads, with the defaults.
    let mut old = serde_json::to_value(&u).unwrap();
    for key in ["env_file", "secrets"] {
        old.as_object_mut().unwrap().remove(key);
    }
    for key in [
        "tmpfs",
        "shm_size",
        "group_add",
        "privileged",
        "device_cgroup_rules",
        "cap_add",
        "cap_drop",
        "sysctls",
        "ulimits",
        "init",
    ] {
        for form in ["container", "exec"] {
            let table = if form == "exec" {
                &mut old[form]["container"]
            } else {
                &mut old[form]
            };
            assert!(
                table.as_object_mut().unwrap().remove(key).is_some(),
                "{form}.{key}"
            );
        }
    }
    let mut secret = serde_json::json!({ "source": "/srv/s", "target": "s" });
    old["secrets"] = serde_json::json!([secret.clone()]);
    let back: Unit = serde_json::from_value(old).unwrap();
    assert_eq!(back.container, u.container);
    assert_eq!(back.secrets[0].mode, Secret::DEFAULT_MODE);
    secret["mode"] = 0o444.into();
    assert_eq!(
        serde_json::from_value::<Secret>(secret).unwrap().mode,
        0o444
    );
}

#[test]
fn compose_key_value_forms() {
    let u = |text: &str| ok(&format!("{text}\n[container]\nimage = \"nginx\"\n"));
    let c = |snippet: &str| -> Container {
        container(&ok(&format!("[container]\nimage = \"nginx\"\n{snippet}\n"))).clone()
    };
    // env_file: one path or a list.
    assert_eq!(
        u("env_file = \"/srv/app/.env\"").env_file,
        [PathBuf::from("/srv/app/.env")]
    );
    assert!(u("env_file = []").env_file.is_empty());
    // tmpfs: one line or a list; sizes as Docker writes them.
    for (line, size, mode) in [
        ("\"/run\"", None, None),
        ("[\"/run:size=65536k\"]", Some(64 << 20), None),
        ("[\"/run:size=1g\"]", Some(1 << 30), None),
        ("[\"/run:size=4096\"]", Some(4096), None),
        ("[\"/run:size=64M\"]", Some(64 << 20), None),
        ("[\"/run:mode=755,size=1m\"]", Some(1 << 20), Some(0o755)),
        ("[\"/run:mode=0700\"]", None, Some(0o700)),
    ] {
        let t = &c(&format!("tmpfs = {line}")).tmpfs;
        assert_eq!(t.len(), 1, "{line}");
        assert_eq!((t[0].size, t[0].mode), (size, mode), "{line}");
    }
    // shm_size: a size string or bytes.
    assert_eq!(c("shm_size = \"256m\"").shm_size, Some(256 << 20));
    assert_eq!(c("shm_size = 1048576").shm_size, Some(1 << 20));
    // Capabilities in any spelling, stored canonical; ALL as ALL.
    assert_eq!(c("cap_drop = [\"all\"]").cap_drop, ["ALL"]);
    assert_eq!(
        c("cap_drop = [\"ALL\"]\ncap_add = [\"CHOWN\", \"CAP_SETUID\"]").cap_add,
        ["CAP_CHOWN", "CAP_SETUID"]
    );
    assert_eq!(
        c("cap_add = [\"ALL\"]\ncap_drop = [\"SYS_ADMIN\"]").cap_add,
        ["ALL"]
    );
    // The same capability twice in one list is kept once.
    assert_eq!(
        c("cap_add = [\"NET_ADMIN\", \"CAP_NET_ADMIN\"]").cap_add,
        ["CAP_NET_ADMIN"]
    );
    // cap_add and [security] capabilities may name the same capability:
    // both add it.
    let both = ok(
        "[container]\nimage = \"nginx\"\ncap_add = [\"NET_ADMIN\"]\n\
                   [security]\ncapabilities = [\"CAP_NET_ADMIN\"]\n",
    );
    assert_eq!(container(&both).cap_add, ["CAP_NET_ADMIN"]);
    // With cap_drop = ALL, [security] capabilities adds back.
    ok("[container]\nimage = \"nginx\"\ncap_drop = [\"ALL\"]\n\
        [security]\ncapabilities = [\"CAP_NET_BIND_SERVICE\"]\n");
    // privileged alone.
    assert!(c("privileged = true").privileged);
    // sysctls: every namespaced family; net.* with none too.
    for name in [
        "net.ipv4.ping_group_range",
        "net.ipv6.conf.all.disable_ipv6",
        "kernel.shmall",
        "kernel.shm_rmid_forced",
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "fs.mqueue.queues_max",
    ] {
        c(&format!("sysctls = {{ \"{name}\" = \"1\" }}"));
    }
    assert_eq!(
        c("network = \"none\"\nsysctls = { \"net.ipv4.ip_forward\" = false }").sysctls
            ["net.ipv4.ip_forward"],
        "0"
    );
    // Non-net sysctls are fine with network = host.
    c("network = \"host\"\nsysctls = { \"kernel.msgmax\" = 65536 }");
    // ulimits: N, [SOFT, HARD], { soft, hard }, -1 and "unlimited".
    for (value, want) in [
        ("65536", Ulimit::both(65536)),
        (
            "[1024, 2048]",
            Ulimit {
                soft: 1024,
                hard: 2048,
            },
        ),
        (
            "{ hard = 2048, soft = 1024 }",
            Ulimit {
                soft: 1024,
                hard: 2048,
            },
        ),
        ("-1", Ulimit::both(Ulimit::UNLIMITED)),
        ("\"unlimited\"", Ulimit::both(Ulimit::UNLIMITED)),
        (
            "[0, -1]",
            Ulimit {
                soft: 0,
                hard: Ulimit::UNLIMITED,
            },
        ),
        ("[5, 5]", Ulimit::both(5)),
    ] {
        let l = c(&format!("ulimits = {{ nofile = {value} }}")).ulimits;
        assert_eq!(l[&Rlimit::Nofile], want, "{value}");
    }
    for r in Rlimit::ALL {
        let l = c(&format!("ulimits = {{ {} = 1 }}", r.as_str())).ulimits;
        assert_eq!(l[r], Ulimit::both(1));
    }
    // group_add: numbers as strings, names as they are.
    assert_eq!(c("group_add = [0, \"render\"]").group_add, ["0", "render"]);
    // Mounts beside /run/secrets, or above it, leave it to the secrets.
    ok(
        "[[secret]]\nsource = \"/srv/a/db\"\n[container]\nimage = \"nginx\"\n\
        volumes = [\"/srv/run:/run\", \"/srv/x:/run/secretsx\"]\ntmpfs = [\"/run/secret\"]\n",
    );
    // [[secret]]: the target defaults to the source's file name, the mode
    // to 0400; native units take secrets too.
    let n = ok(&format!(
        "{MIN}[[secret]]\nsource = \"/srv/s/token.txt\"\n[[secret]]\nsource = \"/srv/t/token.txt\"\n\
         target = \"other\"\nmode = \"440\"\n"
    ));
    assert_eq!(
        n.secrets,
        [
            Secret {
                source: "/srv/s/token.txt".into(),
                target: "token.txt".into(),
                mode: 0o400
            },
            Secret {
                source: "/srv/t/token.txt".into(),
                target: "other".into(),
                mode: 0o440
            }
        ]
    );
}

#[test]
fn rlimit_names_are_pinned() {
    let names: Vec<(&str, String)> = Rlimit::ALL
        .iter()
        .map(|r| (r.as_str(), r.oci_name()))
        .collect();
    assert_eq!(
        names,
        [
            ("core", "RLIMIT_CORE".to_string()),
            ("cpu", "RLIMIT_CPU".into()),
            ("data", "RLIMIT_DATA".into()),
            ("fsize", "RLIMIT_FSIZE".into()),
            ("locks", "RLIMIT_LOCKS".into()),
            ("memlock", "RLIMIT_MEMLOCK".into()),
            ("msgqueue", "RLIMIT_MSGQUEUE".into()),
            ("nice", "RLIMIT_NICE".into()),
            ("nofile", "RLIMIT_NOFILE".into()),
            ("nproc", "RLIMIT_NPROC".into()),
            ("rss", "RLIMIT_RSS".into()),
            ("rtprio", "RLIMIT_RTPRIO".into()),
            ("rttime", "RLIMIT_RTTIME".into()),
            ("sigpending", "RLIMIT_SIGPENDING".into()),
            ("stack", "RLIMIT_STACK".into()),
        ]
    );
}

#[test]
fn tmpfs_and_volumes_round_trip() {
    for (text, shown) in [
        ("/tmp", "/tmp"),
        ("/tmp:size=64m,mode=1777", "/tmp:size=64m,mode=1777"),
        ("/tmp:mode=1777,size=65536k", "/tmp:size=64m,mode=1777"),
        ("/run:size=1g", "/run:size=1g"),
        ("/run:size=1536m", "/run:size=1536m"),
        ("/run:size=1000", "/run:size=1000"),
        ("/run:size=2048", "/run:size=2k"),
        ("/run:mode=700", "/run:mode=700"),
    ] {
        let t: Tmpfs = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(t.to_string(), shown, "{text}");
        assert_eq!(shown.parse::<Tmpfs>().unwrap(), t, "{text}");
    }
    for text in [
        "/srv/a:/a",
        "/srv/a:/a:ro",
        "pgdata:/var/lib/postgresql/data",
        "cache.v2:/cache:ro",
    ] {
        let v: Volume = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(v.to_string(), text);
    }
    assert_eq!(
        "/srv/a:/a:rw".parse::<Volume>().unwrap().to_string(),
        "/srv/a:/a"
    );
    for bad in [
        "",
        "tmp",
        "/tmp:",
        "/tmp:uid=0",
        "/tmp:size=",
        "/tmp:mode=",
        "/:size=1m",
    ] {
        assert!(bad.parse::<Tmpfs>().is_err(), "{bad:?} parsed");
    }
    assert_eq!(check_volume_name("a"), Ok(()));
    assert!(check_volume_name(&"a".repeat(256)).is_err());
}

#[test]
fn sysctl_rule() {
    for ok_name in ["net.ipv4.ip_forward", "kernel.shmmni", "fs.mqueue.msg_max"] {
        assert_eq!(check_sysctl(ok_name, &Network::Bridge), Ok(()), "{ok_name}");
    }
    for bad in [
        "vm.overcommit_memory",
        "kernel.pid_max",
        "fs.file-max",
        "kernel.domainname",
        "user.max_user_namespaces",
        "",
        "net",
        "net.",
        "net.a b",
    ] {
        assert!(check_sysctl(bad, &Network::Bridge).is_err(), "{bad:?}");
    }
    assert!(check_sysctl("net.ipv4.ip_forward", &Network::Host).is_err());
    assert!(check_sysctl("net.ipv4.ip_forward", &Network::Unit("db".into())).is_err());
    assert_eq!(check_sysctl("net.ipv4.ip_forward", &Network::None), Ok(()));
    assert_eq!(check_sysctl("kernel.msgmax", &Network::Host), Ok(()));
}

#[test]
fn privileged_is_noted_by_validate() {
    let s = Scratch::new(&[
        (
            "app.toml",
            "[container]\nimage = \"nginx\"\nnetwork = \"none\"\nprivileged = true\n",
        ),
        (
            "db.toml",
            "[container]\nimage = \"postgres\"\nnetwork = \"none\"\n",
        ),
    ]);
    let set = load_dir(&s.0).unwrap();
    let notes: Vec<String> = set.notes().iter().map(|d| d.to_string()).collect();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(
        notes[0].starts_with(&format!(
            "{}:4:14: note: privileged = true: the container gets every capability",
            s.file("app.toml")
        )),
        "{notes:?}"
    );
    // privileged = false says nothing; neither does a set without it.
    let quiet = Scratch::new(&[(
        "app.toml",
        "[container]\nimage = \"nginx\"\nprivileged = false\n",
    )]);
    assert!(load_dir(&quiet.0).unwrap().notes().is_empty());
    // Units built in code get the note without a position.
    let mut c = Container::new("nginx");
    c.privileged = true;
    let set = UnitSet::from_units([Unit::new("app", Exec::Container(c))]).unwrap();
    assert_eq!(set.notes().len(), 1);
    assert_eq!(set.notes()[0].file, PathBuf::from("app.toml"));
    assert!(set.notes()[0]
        .message
        .starts_with("note: privileged = true"));
    // A parse error elsewhere in the set: no set, so no notes to show.
    s.write("bad.toml", "[container]\n");
    assert!(load_dir(&s.0).is_err());
}

// ---------------------------------------------------------------------------
// Relative host paths against a base (a repository's root).

fn repo_opts(base: &str) -> LoadOptions {
    LoadOptions {
        base: Some(PathBuf::from(base)),
    }
}

fn parse_in_repo(text: &str) -> Result<Unit, Vec<Diagnostic>> {
    parse_unit_with(Path::new("units/web.toml"), text, &repo_opts("/repo"))
}

#[test]
fn a_base_resolves_env_files_and_secret_sources() {
    let text = "env_file = [\"secrets/web.env.age\", \"./common.env\", \"/etc/web.env\"]\n\
                [native]\ncommand = [\"/bin/true\"]\n\
                [[secret]]\nsource = \"secrets/db_password.age\"\n\
                [[secret]]\nsource = \"units/../keys/api\"\ntarget = \"api_key\"\n\
                [[secret]]\nsource = \"/srv/tls/cert.pem\"\n";
    let u = match parse_in_repo(text) {
        Ok(u) => u,
        Err(d) => panic!("{}", render(&d)),
    };
    assert_eq!(
        u.env_file,
        [
            "/repo/secrets/web.env.age",
            "/repo/common.env",
            "/etc/web.env"
        ]
        .map(PathBuf::from)
    );
    let got: Vec<(PathBuf, &str)> = u
        .secrets
        .iter()
        .map(|s| (s.source.clone(), s.target.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (
                PathBuf::from("/repo/secrets/db_password.age"),
                "db_password"
            ),
            (PathBuf::from("/repo/keys/api"), "api_key"),
            (PathBuf::from("/srv/tls/cert.pem"), "cert.pem"),
        ]
    );
    assert!(Secret::is_age(&u.secrets[0].source));
    assert!(!Secret::is_age(&u.secrets[1].source));
    assert!(Secret::is_age(&u.env_file[0]));
}

#[test]
fn without_a_base_relative_paths_are_refused_as_before() {
    let text = "env_file = \"secrets/web.env\"\n[native]\ncommand = [\"/bin/true\"]\n";
    let d = errs(text);
    assert_eq!(d.len(), 1, "{}", render(&d));
    assert!(
        d[0].to_string().starts_with("units/web.toml:1:12: env_file: \"secrets/web.env\" is relative; paths in a unit file are absolute"),
        "{}",
        d[0]
    );
}

#[test]
fn a_path_leaving_the_base_is_refused_where_written() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "env_file = [\"a.env\", \"../outside.env\"]\n[native]\ncommand = [\"/bin/true\"]\n",
            "1:22",
            "env_file: \"../outside.env\" leaves the repository through \"..\"",
        ),
        (
            "[native]\ncommand = [\"/bin/true\"]\n[[secret]]\nsource = \"secrets/../../etc/shadow\"\n",
            "4:10",
            "secret.source: \"secrets/../../etc/shadow\" leaves the repository through \"..\"",
        ),
        (
            "env_file = \"secrets/..\"\n[native]\ncommand = [\"/bin/true\"]\n",
            "1:12",
            "env_file: \"secrets/..\" names the repository's root, a directory",
        ),
        (
            "env_file = \"secrets/\"\n[native]\ncommand = [\"/bin/true\"]\n",
            "1:12",
            "ends with '/', so it names a directory",
        ),
        (
            "env_file = \"/srv/../etc/env\"\n[native]\ncommand = [\"/bin/true\"]\n",
            "1:12",
            "env_file: \"/srv/../etc/env\" must not contain \"..\"",
        ),
        (
            "env_file = [\"a.env\", \"./x/../a.env\"]\n[native]\ncommand = [\"/bin/true\"]\n",
            "1:22",
            "env_file: \"./x/../a.env\" is already listed on line 1",
        ),
        (
            "[container]\nimage = \"nginx\"\nvolumes = [\"./data:/data\"]\n",
            "3:12",
            "host paths in a unit file are absolute (compose resolves relative ones against the compose file's directory), even in a repository",
        ),
    ];
    for (text, pos, fragment) in cases {
        let d = match parse_in_repo(text) {
            Ok(u) => panic!("{text:?}: parsed: {u:?}"),
            Err(d) => d,
        };
        assert_eq!(d.len(), 1, "{text:?}: {}", render(&d));
        let s = d[0].to_string();
        assert!(
            s.starts_with(&format!("units/web.toml:{pos}: ")) && s.contains(fragment),
            "{text:?}\n  want {pos}: ...{fragment}\n  got  {s}"
        );
    }
}

#[test]
fn an_age_source_alone_as_target_is_kept() {
    // ".age" alone has no stem to take: the name stays as it is.
    let u = parse_in_repo("[native]\ncommand = [\"/bin/true\"]\n[[secret]]\nsource = \"s/.age\"\n")
        .unwrap();
    assert_eq!(u.secrets[0].target, ".age");
    let u = ok("[native]\ncommand = [\"/bin/true\"]\n[[secret]]\nsource = \"/srv/s/db.age\"\n");
    assert_eq!(u.secrets[0].target, "db");
    assert_eq!(u.secrets[0].source, PathBuf::from("/srv/s/db.age"));
}

#[test]
fn load_dir_with_a_base_gives_absolute_paths() {
    let s = Scratch::new(&[
        (
            "units/web.toml",
            "env_file = \"secrets/web.env.age\"\n[native]\ncommand = [\"/bin/true\"]\n",
        ),
        (
            "units/db.toml",
            "[native]\ncommand = [\"/bin/true\"]\n[[secret]]\nsource = \"../x\"\n",
        ),
    ]);
    let units = s.0.join("units");
    // The bad one is reported with its file and position; nothing loads.
    let d = load_dir_with(
        &units,
        &LoadOptions {
            base: Some(s.0.clone()),
        },
    )
    .unwrap_err();
    assert_eq!(d.len(), 1, "{}", render(&d));
    assert_eq!(
        d[0].to_string(),
        format!(
            "{}:4:10: secret.source: \"../x\" leaves the repository through \"..\"; a relative \
             path names a file in the repository (relative to its root), or give an absolute path",
            s.file("units/db.toml")
        )
    );
    s.write(
        "units/db.toml",
        "[native]\ncommand = [\"/bin/true\"]\n[[secret]]\nsource = \"secrets/db.age\"\n",
    );
    let set = load_dir_with(
        &units,
        &LoadOptions {
            base: Some(s.0.clone()),
        },
    )
    .unwrap();
    assert_eq!(set.units["web"].env_file, [s.0.join("secrets/web.env.age")]);
    assert_eq!(
        set.units["db"].secrets[0].source,
        s.0.join("secrets/db.age")
    );
    assert_eq!(set.units["db"].secrets[0].target, "db");
    // Without a base the same directory is refused, as a units directory.
    let d = load_dir(&units).unwrap_err();
    assert_eq!(d.len(), 2, "{}", render(&d));
    assert!(
        d.iter().all(|d| d.message.contains("is relative")),
        "{}",
        render(&d)
    );
}

#[test]
fn entries_that_are_not_regular_files_are_reported_and_never_read() {
    let s = Scratch::new(&[("web.toml", MIN)]);
    std::os::unix::fs::symlink(s.0.join("gone.toml.orig"), s.0.join("dangling.toml")).unwrap();
    nix::unistd::mkfifo(
        &s.0.join("pipe.toml"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    std::fs::create_dir(s.0.join("dir.toml")).unwrap();
    let d = load_err(&s);
    let text = render(&d);
    assert!(
        text.contains("dangling.toml") && text.contains("does not exist"),
        "{text}"
    );
    assert!(
        text.contains("pipe.toml") && text.contains("not a regular file"),
        "{text}"
    );
    assert!(
        text.contains("dir.toml") && text.contains("not a regular file"),
        "{text}"
    );
    // Named on its own (`validate pipe.toml`), a FIFO is refused, not read.
    let d = load_paths(&[s.0.join("pipe.toml")]).unwrap_err();
    assert!(render(&d).contains("not a regular file"), "{}", render(&d));
}

#[test]
fn invalid_utf8_is_located() {
    let s = Scratch::new(&[]);
    let f = s.0.join("bad.toml");
    std::fs::write(&f, b"[native]\ncommand = [\"/bin/\xff\"]\n").unwrap();
    let d = load_paths(std::slice::from_ref(&f)).unwrap_err();
    assert_eq!((d[0].line, d[0].col), (2, 18), "{}", d[0]);
    assert!(d[0].message.contains("not valid UTF-8"), "{}", d[0]);
}
