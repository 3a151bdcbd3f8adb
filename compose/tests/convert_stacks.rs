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
/// with `files` when given, and an environment of HOME only.
fn convert_stack(name: &str, files: &[&str]) -> Conversion {
    let dir = stack_dir(name);
    let environment = BTreeMap::from([("HOME".to_string(), "/home/user".to_string())]);
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
    convert::convert(&Compose {
        name: &project.name,
        dir: &project.dir,
        services: &project.services,
        volumes: &project.volumes,
        networks: &project.networks,
        secrets: &project.secrets,
        configs: &project.configs,
        environment: &environment,
    })
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

fn unit<'a>(c: &'a Conversion, name: &str) -> toml_edit::DocumentMut {
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
            p("immich-server", "healthcheck", 33),
            p("immich-machine-learning", "container_name", 36),
            p("immich-machine-learning", "healthcheck", 49),
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

/// Prints the units of a stack: `DUMP_STACK=immich cargo test --test
/// convert_stacks dump -- --nocapture`.
#[test]
fn dump() {
    if let Ok(name) = std::env::var("DUMP_STACK") {
        let c = convert_stack(&name, &[]);
        for u in &c.units {
            println!("--- {}\n{}", u.file_name(), u.text);
        }
        for p in &c.problems {
            println!("{p}");
        }
    }
}
