//! Published compose stacks (tests/fixtures/stacks/<project>/, each file
//! saying where it came from): each loads and converts, what is written
//! validates as a units directory, and the report lists exactly the keys
//! jarvis cannot honour.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use jarvis_compose::convert::{self, Compose, Conversion};
use jarvis_compose::load::{self, LoadOptions};

fn stack_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/stacks")
        .join(name)
}

/// Loads and converts the stack in `name` (its default files and `.env`),
/// with `files` when given, and an environment of HOME and PWD (the
/// stack's directory) only.
fn convert_stack(name: &str, files: &[&str]) -> Conversion {
    let dir = stack_dir(name);
    let environment = BTreeMap::from([
        ("HOME".to_string(), "/home/user".to_string()),
        ("PWD".to_string(), dir.display().to_string()),
    ]);
    let opts = LoadOptions {
        files: files.iter().map(|f| dir.join(f)).collect(),
        env_files: Vec::new(),
        project_dir: Some(dir.clone()),
        profiles: Vec::new(),
        environment: environment.clone(),
    };
    let project = load::load(&opts).unwrap_or_else(|errors| {
        panic!(
            "{name} does not load:\n{}",
            errors
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        )
    });
    convert::convert(&Compose::new(&project, &environment))
}

/// The units written validate together, as `jarvisctl validate` checks a
/// directory.
fn validates(c: &Conversion) {
    let out = tempfile::tempdir().unwrap();
    for u in &c.units {
        std::fs::write(out.path().join(u.file_name()), &u.text).unwrap();
    }
    if let Err(diags) = jarvis_unit::load_dir(out.path()) {
        let texts: Vec<String> = c
            .units
            .iter()
            .map(|u| format!("--- {}\n{}", u.file_name(), u.text))
            .collect();
        panic!(
            "{}\n\n{}",
            diags
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("\n"),
            texts.join("\n")
        );
    }
}

/// `(service, key, line)` of each problem, in report order.
fn problems(c: &Conversion) -> Vec<(String, String, usize)> {
    c.problems
        .iter()
        .map(|p| {
            (
                p.service.clone().unwrap_or_default(),
                p.key.clone(),
                p.pos.as_ref().map(|p| p.line).unwrap_or(0),
            )
        })
        .collect()
}

fn units(c: &Conversion) -> Vec<&str> {
    c.units.iter().map(|u| u.unit.as_str()).collect()
}

fn unit(c: &Conversion, name: &str) -> toml_edit::DocumentMut {
    c.units
        .iter()
        .find(|u| u.unit == name)
        .unwrap_or_else(|| panic!("no unit {name}"))
        .text
        .parse()
        .unwrap()
}

fn p(service: &str, key: &str, line: usize) -> (String, String, usize) {
    (service.to_string(), key.to_string(), line)
}

#[test]
fn immich() {
    let c = convert_stack("immich", &[]);
    assert_eq!(c.project, "immich");
    assert_eq!(
        units(&c),
        [
            "immich-server",
            "immich-machine-learning",
            "redis",
            "database"
        ]
    );
    assert_eq!(
        problems(&c),
        [
            // immich_server and friends have '_': not names jarvis serves.
            p("immich-server", "container_name", 15),
            // `healthcheck: disable: false` asks for the image's own check.
            p("immich-server", "healthcheck", 32),
            p("immich-machine-learning", "container_name", 36),
            p("immich-machine-learning", "healthcheck", 48),
            p("redis", "container_name", 52),
            p("database", "container_name", 59),
        ],
        "{:#?}",
        c.problems
    );
    validates(&c);
    let server = unit(&c, "immich-server");
    let dir = stack_dir("immich");
    assert_eq!(
        server["container"]["volumes"][0].as_str(),
        Some(format!("{}/library:/data", dir.display()).as_str())
    );
    assert_eq!(server["container"]["ports"][0].as_str(), Some("2283:2283"));
    assert_eq!(
        server["env_file"][0].as_str(),
        Some(format!("{}/.env", dir.display()).as_str())
    );
    let ml = unit(&c, "immich-machine-learning");
    assert_eq!(
        ml["container"]["volumes"][0].as_str(),
        Some("immich_model-cache:/cache")
    );
    let db = unit(&c, "database");
    assert_eq!(db["container"]["shm_size"].as_str(), Some("128M"));
    assert_eq!(db["env"]["POSTGRES_USER"].as_str(), Some("postgres"));
    let redis = unit(&c, "redis");
    assert_eq!(
        redis["health"]["exec"][2].as_str(),
        Some("redis-cli ping || exit 1")
    );
    assert_eq!(redis["restart"]["policy"].as_str(), Some("always"));
    assert_eq!(c.create_dirs, [dir.join("library"), dir.join("postgres")]);
}

#[test]
fn paperless_ngx() {
    let c = convert_stack("paperless-ngx", &[]);
    assert_eq!(c.project, "paperless-ngx");
    assert_eq!(units(&c), ["broker", "db", "webserver"]);
    assert_eq!(problems(&c), [], "{:#?}", c.problems);
    validates(&c);
    let web = unit(&c, "webserver");
    assert_eq!(web["depends_on"]["db"].as_str(), Some("started"));
    assert_eq!(
        web["container"]["volumes"][0].as_str(),
        Some("paperless-ngx_data:/usr/src/paperless/data")
    );
    assert_eq!(web["env"]["PAPERLESS_DBHOST"].as_str(), Some("db"));
    assert_eq!(web["restart"]["policy"].as_str(), Some("always"));
    assert_eq!(
        web["container"]["networks"][0].as_str(),
        Some("paperless-ngx_default")
    );
}

#[test]
fn open_webui_with_ollama_on_a_gpu() {
    let c = convert_stack(
        "open-webui",
        &["docker-compose.yaml", "docker-compose.gpu.yaml"],
    );
    assert_eq!(units(&c), ["ollama", "open-webui"]);
    assert_eq!(
        problems(&c),
        [p("open-webui", "build", 13)],
        "{:#?}",
        c.problems
    );
    validates(&c);
    let ollama = unit(&c, "ollama");
    assert_eq!(ollama["gpu"]["want"].as_str(), Some("nvidia"));
    assert_eq!(ollama["gpu"]["count"].as_integer(), Some(1));
    assert_eq!(
        ollama["container"]["volumes"][0].as_str(),
        Some("open-webui_ollama:/root/.ollama")
    );
    let web = unit(&c, "open-webui");
    assert_eq!(
        web["container"]["image"].as_str(),
        Some("ghcr.io/open-webui/open-webui:main")
    );
    assert_eq!(web["container"]["ports"][0].as_str(), Some("3000:8080"));
    assert_eq!(
        web["container"]["extra_hosts"][0].as_str(),
        Some("host.docker.internal:host-gateway")
    );
    assert_eq!(
        web["env"]["OLLAMA_BASE_URL"].as_str(),
        Some("http://ollama:11434")
    );
}

#[test]
fn home_assistant_with_mosquitto_and_zigbee2mqtt() {
    let c = convert_stack("home-assistant", &[]);
    assert_eq!(units(&c), ["homeassistant", "mqtt", "zigbee2mqtt"]);
    assert_eq!(problems(&c), [], "{:#?}", c.problems);
    validates(&c);
    let ha = unit(&c, "homeassistant");
    assert_eq!(ha["container"]["network"].as_str(), Some("host"));
    assert_eq!(ha["container"]["privileged"].as_bool(), Some(true));
    assert!(ha["container"].get("cap_add").is_none());
    let mqtt = unit(&c, "mqtt");
    assert_eq!(mqtt["container"]["command"].as_array().unwrap().len(), 3);
    let z2m = unit(&c, "zigbee2mqtt");
    let dev = &z2m["device"][0];
    assert_eq!(dev["as"].as_str(), Some("/dev/ttyACM0"));
    assert!(dev["path"]
        .as_str()
        .unwrap()
        .starts_with("/dev/serial/by-id/"));
}

#[test]
fn jellyfin_with_nvidia() {
    let c = convert_stack("jellyfin-nvidia", &[]);
    assert_eq!(units(&c), ["jellyfin"]);
    assert_eq!(
        problems(&c),
        // count: all
        [p(
            "jellyfin",
            "deploy.resources.reservations.devices.count",
            17
        )],
        "{:#?}",
        c.problems
    );
    validates(&c);
    let j = unit(&c, "jellyfin");
    assert_eq!(j["gpu"]["want"].as_str(), Some("nvidia"));
    assert_eq!(j["container"]["user"].as_str(), Some("1000:1000"));
    assert_eq!(j["restart"]["policy"].as_str(), Some("never"));
}

#[test]
fn pihole() {
    let c = convert_stack("pihole", &[]);
    assert_eq!(units(&c), ["pihole"]);
    assert_eq!(
        problems(&c),
        // 53/tcp and 53/udp on every address.
        [p("pihole", "ports", 9), p("pihole", "ports", 10)],
        "{:#?}",
        c.problems
    );
    validates(&c);
    let ph = unit(&c, "pihole");
    let ports: Vec<&str> = ph["container"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(ports, ["80:80", "443:443"]);
    let caps: Vec<&str> = ph["container"]["cap_add"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        caps,
        [
            "NET_ADMIN",
            "SYS_TIME",
            "SYS_NICE",
            "AUDIT_WRITE",
            "MKNOD",
            "NET_RAW"
        ]
    );
}

#[test]
fn vaultwarden_behind_a_tailscale_sidecar() {
    let c = convert_stack("vaultwarden-tailscale", &[]);
    assert_eq!(units(&c), ["tailscale", "application"]);
    assert_eq!(problems(&c), [], "{:#?}", c.problems);
    validates(&c);
    let app = unit(&c, "application");
    assert_eq!(app["container"]["network"].as_str(), Some("unit:tailscale"));
    assert_eq!(app["depends_on"]["tailscale"].as_str(), Some("healthy"));
    let ts = unit(&c, "tailscale");
    assert_eq!(ts["health"]["interval"].as_str(), Some("60s"));
    assert_eq!(ts["device"][0]["path"].as_str(), Some("/dev/net/tun"));
    let dir = stack_dir("vaultwarden-tailscale");
    assert_eq!(
        ts["container"]["volumes"][0].as_str(),
        Some(format!("{}/vaultwarden/ts/config:/config", dir.display()).as_str())
    );
}

#[test]
fn the_arr_stack_behind_gluetun() {
    let c = convert_stack("arr-gluetun", &[]);
    assert_eq!(
        units(&c),
        [
            "gluetun",
            "deunhealth",
            "qbittorrent",
            "nzbget",
            "prowlarr",
            "sonarr",
            "radarr",
            "lidarr",
            "bazarr",
            "ytdl-sub"
        ]
    );
    assert_eq!(
        problems(&c),
        [
            // The network's fixed subnet and each fixed address.
            p("", "networks.servarrnetwork.ipam", 10),
            p("gluetun", "networks.servarrnetwork.ipv4_address", 24),
            // deunhealth restarts containers through the Docker API.
            p("deunhealth", "volumes", 61),
            p("sonarr", "networks.servarrnetwork.ipv4_address", 139),
            p("radarr", "networks.servarrnetwork.ipv4_address", 157),
            p("lidarr", "networks.servarrnetwork.ipv4_address", 175),
            p("bazarr", "networks.servarrnetwork.ipv4_address", 193),
            p("ytdl-sub", "networks.servarrnetwork.ipv4_address", 211),
        ],
        "{:#?}",
        c.problems
    );
    validates(&c);
    let qb = unit(&c, "qbittorrent");
    assert_eq!(qb["container"]["network"].as_str(), Some("unit:gluetun"));
    assert!(qb["container"].get("networks").is_none());
    let g = unit(&c, "gluetun");
    assert_eq!(
        g["container"]["networks"][0].as_str(),
        Some("arr-gluetun_servarrnetwork")
    );
    assert_eq!(g["container"]["ports"].as_array().unwrap().len(), 4);
    assert_eq!(
        unit(&c, "deunhealth")["container"]["network"].as_str(),
        Some("none")
    );
}

/// Prints the units of a stack: `DUMP_STACK=immich cargo test --test
/// convert_stacks dump -- --nocapture`.
#[test]
fn dump() {
    if let Ok(name) = std::env::var("DUMP_STACK") {
        let files = std::env::var("DUMP_FILES").unwrap_or_default();
        let files: Vec<&str> = files.split(',').filter(|f| !f.is_empty()).collect();
        let c = convert_stack(&name, &files);
        for u in &c.units {
            println!("--- {}\n{}", u.file_name(), u.text);
        }
        for p in &c.problems {
            println!("{p}");
        }
    }
}
