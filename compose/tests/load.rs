//! The compose loader end to end: fixtures under tests/fixtures/load and
//! projects written to temporary directories.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use jarvis_compose::load::{load, LoadError, LoadOptions, Project};
use jarvis_compose::node::{Node, Value};

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/load")
        .join(rel)
}

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn opts<P: AsRef<Path>>(files: &[P], vars: &[(&str, &str)]) -> LoadOptions {
    LoadOptions {
        files: files.iter().map(|f| f.as_ref().to_path_buf()).collect(),
        environment: env(vars),
        ..LoadOptions::default()
    }
}

fn ok(o: &LoadOptions) -> Project {
    match load(o) {
        Ok(p) => p,
        Err(e) => panic!(
            "{}",
            e.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        ),
    }
}

fn err(o: &LoadOptions) -> Vec<String> {
    match load(o) {
        Ok(p) => panic!("loaded: {p:?}"),
        Err(e) => e.iter().map(LoadError::to_string).collect(),
    }
}

fn service<'a>(p: &'a Project, name: &str) -> &'a Node {
    &p.services
        .iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no service {name}"))
        .1
}

fn s(n: &Node) -> String {
    n.scalar().unwrap_or_else(|| panic!("not a scalar: {n:?}"))
}

fn at<'a>(n: &'a Node, path: &str) -> &'a Node {
    path.split('.').fold(n, |n, k| {
        n.get(k).unwrap_or_else(|| panic!("no {k} in {path}"))
    })
}

fn list(n: &Node) -> Vec<String> {
    n.items().iter().map(s).collect()
}

fn map(n: &Node) -> Vec<(String, Option<String>)> {
    n.entries()
        .iter()
        .map(|(k, v)| (k.clone(), v.scalar()))
        .collect()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn anchors_merge_keys_and_extensions() {
    let p = ok(&opts(&[fixture("anchors/compose.yaml")], &[]));
    let names: Vec<&str> = p.services.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["web", "worker", "again"]);
    let web = service(&p, "web");
    // The own key wins over the merged one; merged keys from both anchors.
    assert_eq!(s(at(web, "restart")), "always");
    assert_eq!(s(at(web, "environment.TZ")), "Europe/Paris");
    assert_eq!(s(at(web, "logging.driver")), "json-file");
    assert!(web.get("x-internal").is_none());
    assert!(web.get("x-note").is_none());
    // "80:80" and 8080:80 are strings; 443 an integer.
    let ports = web.get("ports").unwrap().items();
    assert_eq!(ports[0].value, Value::Str("80:80".into()));
    assert_eq!(ports[1].value, Value::Str("8080:80".into()));
    assert_eq!(ports[2].value, Value::Int(443));
    let worker = service(&p, "worker");
    assert_eq!(s(at(worker, "restart")), "unless-stopped");
    assert_eq!(list(at(worker, "command")), ["run", "--fast"]);
    let again = service(&p, "again");
    assert_eq!(list(at(again, "command")), ["run", "--fast"]);
    // An alias is positioned where it is used.
    assert_eq!(at(again, "command").pos.line, 27);
    // `yes` is a string in YAML 1.2, read as true at a boolean key, as
    // compose does; an interpolated "false" likewise.
    assert_eq!(at(again, "privileged").value, Value::Bool(true));
    assert_eq!(at(again, "read_only").value, Value::Bool(false));
    assert_eq!(at(again, "mem_limit").value, Value::Str("0.5G".into()));
}

#[test]
fn override_file_merges_as_compose_does() {
    let dir = fixture("override");
    // No -f: compose.yaml and compose.override.yml are found in the
    // project directory.
    let o = LoadOptions {
        project_dir: Some(dir.clone()),
        ..LoadOptions::default()
    };
    let p = ok(&o);
    assert_eq!(p.dir, dir);
    assert_eq!(p.name, "override");
    let app = service(&p, "app");
    assert_eq!(s(at(app, "image")), "app:2");
    assert_eq!(list(at(app, "ports")), ["80:80", "443:443"]);
    assert_eq!(
        map(at(app, "environment")),
        [
            ("A".to_string(), Some("1".to_string())),
            ("B".to_string(), Some("three".to_string())),
            ("C".to_string(), Some("four".to_string())),
        ]
    );
    assert_eq!(s(at(app, "command")), "serve --debug");
    // Volumes are unique by target: the override's takes the place; relative
    // paths are made absolute against the project directory.
    let data = dir.join("other").display().to_string() + ":/data";
    assert_eq!(list(at(app, "volumes")), [data]);

    // Positions: the image from the override file, line 3; A from the
    // first file; the ports each from their own.
    let image = at(app, "image");
    assert_eq!(image.pos.file.as_path(), dir.join("compose.override.yml"));
    assert_eq!((image.pos.line, image.pos.col), (3, 12));
    assert_eq!(
        at(app, "environment.A").pos.file.as_path(),
        dir.join("compose.yaml")
    );
    assert_eq!(
        at(app, "environment.C").pos.file.as_path(),
        dir.join("compose.override.yml")
    );
    let ports = at(app, "ports").items();
    assert_eq!((ports[0].pos.line, ports[1].pos.line), (5, 5));
    assert_eq!(
        ports[1].pos.file.as_path(),
        dir.join("compose.override.yml")
    );
    assert_eq!(s(at(service(&p, "db"), "image")), "postgres");

    // The same two files named with -f, in the other order.
    let o = opts(
        &[dir.join("compose.override.yml"), dir.join("compose.yaml")],
        &[],
    );
    let p = ok(&o);
    assert_eq!(s(at(service(&p, "app"), "image")), "app:1");
    assert_eq!(list(at(service(&p, "app"), "ports")), ["443:443", "80:80"]);
}

#[test]
fn extends_in_the_same_file_and_another() {
    let dir = fixture("extends");
    let p = ok(&opts(&[dir.join("compose.yaml")], &[]));
    assert_eq!(s(at(service(&p, "child"), "image")), "base");
    assert_eq!(s(at(service(&p, "child"), "environment.LEVEL")), "child");
    let gc = service(&p, "grandchild");
    assert_eq!(s(at(gc, "image")), "base");
    assert_eq!(s(at(gc, "environment.LEVEL")), "child");
    assert_eq!(s(at(gc, "hostname")), "gc");
    assert!(gc.get("extends").is_none());

    let remote = service(&p, "remote");
    assert_eq!(s(at(remote, "image")), "core");
    // Paths from lib/common.yaml are relative to lib/.
    let lib = dir.join("lib");
    assert_eq!(
        list(at(remote, "volumes")),
        [format!("{}:/cache", lib.join("cache").display())]
    );
    assert_eq!(
        s(at(remote, "env_file")),
        lib.join("core.env").display().to_string()
    );
    assert_eq!(
        s(at(remote, "build")),
        lib.join("tool").display().to_string()
    );
    assert_eq!(
        map(at(remote, "environment")),
        [
            ("FROM".to_string(), Some("lib".to_string())),
            ("OWN".to_string(), Some("1".to_string()))
        ]
    );
    // Each value keeps the position of the file it came from.
    assert_eq!(
        at(remote, "image").pos.file.as_path(),
        lib.join("common.yaml")
    );
    assert_eq!(
        at(remote, "environment.OWN").pos.file.as_path(),
        dir.join("compose.yaml")
    );
}

#[test]
fn extends_cycle_is_an_error() {
    let file = fixture("extends/cycle.yaml");
    let e = err(&opts(&[&file], &[]));
    assert_eq!(e.len(), 1, "{e:?}");
    let shown = file.display();
    assert!(
        e[0].starts_with(&format!("{shown}:4:14: circular extends:")),
        "{}",
        e[0]
    );
    assert!(
        e[0].contains(&format!("  extends a in {shown}")),
        "{}",
        e[0]
    );
}

#[test]
fn extends_of_a_missing_service_is_located() {
    let tmp = tempfile::tempdir().unwrap();
    let f = write(
        tmp.path(),
        "compose.yaml",
        "services:\n  a:\n    extends: nope\n",
    );
    let e = err(&opts(&[&f], &[]));
    assert_eq!(
        e,
        [format!(
            "{}:3:14: cannot extend service \"a\": service \"nope\" not found in {}",
            f.display(),
            f.display()
        )]
    );
}

#[test]
fn profiles() {
    let f = fixture("profiles/compose.yaml");
    let names = |p: &Project| {
        p.services
            .iter()
            .map(|(n, _)| n.clone())
            .collect::<Vec<_>>()
    };
    let p = ok(&opts(&[&f], &[]));
    assert_eq!(names(&p), ["app"]);
    let skipped: Vec<(&str, usize)> = p
        .skipped
        .iter()
        .map(|(n, pos)| (n.as_str(), pos.line))
        .collect();
    assert_eq!(skipped, [("debug", 4), ("tools", 7)]);

    let mut o = opts(&[&f], &[]);
    o.profiles = vec!["tools".into()];
    assert_eq!(names(&ok(&o)), ["app", "tools"]);
    o.profiles = vec!["debug".into()];
    assert_eq!(names(&ok(&o)), ["app", "debug", "tools"]);
    o.profiles = vec!["*".into()];
    assert_eq!(names(&ok(&o)), ["app", "debug", "tools"]);
    // COMPOSE_PROFILES when no --profile is given.
    let o = opts(&[f], &[("COMPOSE_PROFILES", "tools, other")]);
    assert_eq!(names(&ok(&o)), ["app", "tools"]);
}

#[test]
fn depending_on_a_service_left_out_by_profiles_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let f = write(
        tmp.path(),
        "compose.yaml",
        "services:\n  app:\n    image: a\n    depends_on: [db]\n  opt:\n    image: o\n    depends_on:\n      db:\n        condition: service_started\n        required: false\n  db:\n    image: d\n    profiles: [db]\n",
    );
    let e = err(&opts(&[&f], &[]));
    assert_eq!(
        e,
        [format!(
            "{}:4:18: service \"app\" depends on service \"db\", which is not enabled by the active profiles",
            f.display()
        )]
    );
    let mut o = opts(&[f], &[]);
    o.profiles = vec!["db".into()];
    assert_eq!(ok(&o).services.len(), 3);
}

#[test]
fn project_name_rules() {
    let f = fixture("named/compose.yaml");
    // `name:` interpolated, then normalized.
    assert_eq!(ok(&opts(&[&f], &[])).name, "my_projectdev");
    assert_eq!(ok(&opts(&[&f], &[("SUFFIX", "-X")])).name, "my_project-x");
    // COMPOSE_PROJECT_NAME wins over `name:` (compose's precedence), and
    // must already be a valid name.
    assert_eq!(
        ok(&opts(&[&f], &[("COMPOSE_PROJECT_NAME", "env-name")])).name,
        "env-name"
    );
    let e = err(&opts(&[f], &[("COMPOSE_PROJECT_NAME", "Bad Name")]));
    assert!(
        e[0].starts_with("invalid project name \"Bad Name\""),
        "{e:?}"
    );
    // Without either: the project directory's name, normalized.
    let tmp = tempfile::tempdir().unwrap();
    let f = write(
        &tmp.path().join("-My.App_2"),
        "compose.yaml",
        "services:\n  a:\n    image: a\n",
    );
    let p = ok(&opts(&[f], &[]));
    assert_eq!(p.name, "myapp_2");
    // The name is there for interpolation.
    let f = write(
        tmp.path(),
        "n/compose.yaml",
        "name: demo\nservices:\n  a:\n    image: a\n    container_name: ${COMPOSE_PROJECT_NAME}-a\n",
    );
    assert_eq!(
        s(at(service(&ok(&opts(&[f], &[])), "a"), "container_name")),
        "demo-a"
    );
}

#[test]
fn required_variable_error_is_located() {
    let f = fixture("required/compose.yaml");
    let e = err(&opts(&[&f], &[]));
    assert_eq!(
        e,
        [format!(
            "{}:5:26: error while interpolating services.db.environment.POSTGRES_PASSWORD: required variable DB_PASSWORD is missing a value: set DB_PASSWORD in .env",
            f.display()
        )]
    );
    let p = ok(&opts(&[f], &[("DB_PASSWORD", "s3cret")]));
    assert_eq!(
        s(at(service(&p, "db"), "environment.POSTGRES_PASSWORD")),
        "s3cret"
    );
}

#[test]
fn dotenv_and_env_files() {
    let dir = fixture("dotenv");
    let f = dir.join("compose.yaml");
    // .env in the project directory; its values expand each other.
    let p = ok(&opts(&[&f], &[]));
    let app = service(&p, "app");
    assert_eq!(s(at(app, "image")), "app:1.0");
    assert_eq!(s(at(app, "labels.where")), "dotenv");
    assert_eq!(
        list(at(app, "environment")),
        ["FROM_ENV=from .env", "GREETING=hello dotenv"]
    );
    // The process environment wins over .env.
    let p = ok(&opts(&[&f], &[("TAG", "2.0"), ("FROM_ENV", "process")]));
    let app = service(&p, "app");
    assert_eq!(s(at(app, "image")), "app:2.0");
    assert_eq!(list(at(app, "environment"))[0], "FROM_ENV=process");
    // --env-file replaces .env; later files win.
    let mut o = opts(&[&f], &[]);
    o.env_files = vec![dir.join(".env"), dir.join("extra.env")];
    assert_eq!(s(at(service(&ok(&o), "app"), "labels.where")), "extra");
    o.env_files = vec![dir.join("extra.env")];
    let p = ok(&o);
    assert_eq!(s(at(service(&p, "app"), "image")), "app:");
    // A missing env file is an error naming it.
    o.env_files = vec![dir.join("missing.env")];
    let e = err(&o);
    assert!(
        e[0].starts_with(&dir.join("missing.env").display().to_string()),
        "{e:?}"
    );
}

#[test]
fn a_bad_env_file_line_is_located() {
    let tmp = tempfile::tempdir().unwrap();
    let f = write(
        tmp.path(),
        "compose.yaml",
        "services:\n  a:\n    image: a\n",
    );
    let env_file = write(tmp.path(), ".env", "A=1\nBAD KEY=2\n");
    let e = err(&opts(&[f], &[]));
    assert_eq!(
        e,
        [format!(
            "{}:2:4: key cannot contain a space",
            env_file.display()
        )]
    );
}

#[test]
fn size_and_alias_bombs_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    // Over 10 MiB.
    let big = "services:\n  a:\n    image: a\n".to_string() + &"# padding\n".repeat(1_100_000);
    let f = write(tmp.path(), "big.yaml", &big);
    let e = err(&opts(&[f], &[]));
    assert!(
        e[0].contains("refusing a file over 10485760 bytes"),
        "{e:?}"
    );

    // A billion laughs.
    let mut text = String::from("x-a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..10 {
        let prev = format!("*a{}", i - 1);
        let items = [prev.as_str(); 10].join(", ");
        text += &format!("x-a{i}: &a{i} [{items}]\n");
    }
    text += "services:\n  a:\n    image: a\n    command: *a9\n";
    let f = write(tmp.path(), "laughs.yaml", &text);
    let started = std::time::Instant::now();
    let e = err(&opts(&[&f], &[]));
    assert!(
        e[0].contains("aliases expand to more than 1000000 values"),
        "{e:?}"
    );
    assert!(e[0].starts_with(&format!("{}:", f.display())), "{e:?}");
    assert!(started.elapsed().as_secs() < 10);
}

#[test]
fn yaml_errors_are_located() {
    let tmp = tempfile::tempdir().unwrap();
    let f = write(
        tmp.path(),
        "compose.yaml",
        "services:\n  a:\n    image: [a\n",
    );
    let e = err(&opts(&[&f], &[]));
    assert!(e[0].starts_with(&format!("{}:", f.display())), "{e:?}");
    let f = write(
        tmp.path(),
        "dup.yaml",
        "services:\n  a:\n    image: a\n    image: b\n",
    );
    let e = err(&opts(&[&f], &[]));
    assert_eq!(
        e,
        [format!(
            "{}:4:5: YAML: mapping key \"image\" already defined at line 3",
            f.display()
        )]
    );
    let f = write(tmp.path(), "top.yaml", "servces:\n  a:\n    image: a\n");
    let e = err(&opts(&[&f], &[]));
    assert_eq!(
        e,
        [format!(
            "{}:1:1: additional property \"servces\" is not allowed at the top level",
            f.display()
        )]
    );
}

#[test]
fn interpolation_covers_values_not_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let f = write(
        tmp.path(),
        "compose.yaml",
        "services:\n  a:\n    image: \"${REG:-docker.io}/app:${TAG-latest}\"\n    labels:\n      ${KEY}: \"$$HOME ${A:+set}\"\n    ports:\n      - \"${PORT:-8080}:80\"\n    privileged: \"${PRIV}\"\n",
    );
    let p = ok(&opts(&[&f], &[("TAG", ""), ("A", "x"), ("PRIV", "true")]));
    let a = service(&p, "a");
    assert_eq!(s(at(a, "image")), "docker.io/app:");
    assert_eq!(
        map(at(a, "labels")),
        [("${KEY}".to_string(), Some("$HOME set".to_string()))]
    );
    assert_eq!(list(at(a, "ports")), ["8080:80"]);
    assert_eq!(at(a, "privileged").value, Value::Bool(true));
    let e = err(&opts(&[&f], &[("PRIV", "maybe")]));
    assert_eq!(
        e,
        [format!(
            "{}:8:17: services.a.privileged: failed to cast to expected type: invalid boolean: \"maybe\"",
            f.display()
        )]
    );
}

#[test]
fn no_compose_file_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let o = LoadOptions {
        project_dir: Some(tmp.path().to_path_buf()),
        ..LoadOptions::default()
    };
    let e = err(&o);
    assert!(e[0].starts_with("no compose file in"), "{e:?}");
}

#[test]
fn deep_nesting_and_bad_shapes_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let deep = format!(
        "services:\n  a:\n    command: {}{}\n",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let f = write(tmp.path(), "deep.yaml", &deep);
    let e = err(&opts(&[&f], &[]));
    assert!(e[0].starts_with(&format!("{}:3:", f.display())), "{e:?}");
    assert!(
        e[0].contains("recursion limit") || e[0].contains("nested deeper"),
        "{e:?}"
    );
    let f = write(tmp.path(), "list.yaml", "- a\n- b\n");
    let e = err(&opts(&[&f], &[]));
    assert_eq!(
        e,
        [format!(
            "{}:1:1: top-level object must be a mapping",
            f.display()
        )]
    );
    let f = write(tmp.path(), "svc.yaml", "services:\n  a: nginx\n");
    let e = err(&opts(&[&f], &[]));
    assert_eq!(
        e,
        [format!("{}:2:6: services.a must be a mapping", f.display())]
    );
}

#[test]
fn reset_and_override_across_files() {
    let tmp = tempfile::tempdir().unwrap();
    let a = write(
        tmp.path(),
        "compose.yaml",
        "services:\n  a:\n    image: a\n    ports: ['80:80']\n    dns: [1.1.1.1]\n    environment: {A: '1'}\n",
    );
    let b = write(
        tmp.path(),
        "prod.yaml",
        "services:\n  a:\n    ports: !reset []\n    dns: !override [9.9.9.9]\n    environment: [B=2]\n    x-local: 1\n",
    );
    let p = ok(&opts(&[&a, &b], &[]));
    let svc = service(&p, "a");
    assert!(svc.get("ports").is_none());
    assert_eq!(list(at(svc, "dns")), ["9.9.9.9"]);
    assert_eq!(
        map(at(svc, "environment")),
        [
            ("A".to_string(), Some("1".to_string())),
            ("B".to_string(), Some("2".to_string()))
        ]
    );
    assert!(svc.get("x-local").is_none());
}

/// compose-go's loader/override_test.go TestOverrideMiddle: `!override`
/// along an `extends` chain across files.
#[test]
fn override_tag_along_an_extends_chain() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "base.yaml",
        "services:\n  base:\n    volumes:\n      - /foo:/foo\n    networks:\n      - foo\n",
    );
    write(
        tmp.path(),
        "override.yaml",
        "services:\n  override:\n    extends:\n      file: ./base.yaml\n      service: base\n    volumes: !override\n      -  /bar:/bar\n    networks: !override\n      - bar\n",
    );
    let compose = write(
        tmp.path(),
        "compose.yaml",
        "name: test\nservices:\n  test:\n    image: test\n    extends:\n      file: ./override.yaml\n      service: override\n    volumes:\n      - /zot:/zot\n    networks: !override\n      - zot\n\nnetworks:\n  zot: {}\n",
    );
    let p = ok(&opts(&[&compose], &[]));
    let test = service(&p, "test");
    assert_eq!(list(at(test, "volumes")), ["/bar:/bar", "/zot:/zot"]);
    assert_eq!(list(at(test, "networks")), ["zot"]);
}

/// compose-go's loader/override_test.go TestOverrideSelfExtends.
#[test]
fn depends_on_merged_along_extends() {
    let tmp = tempfile::tempdir().unwrap();
    let f = write(
        tmp.path(),
        "compose.yaml",
        "services:\n  depend_base:\n    image: nginx\n  depend_one:\n    image: nginx\n  depend_two:\n    extends:\n      service: depend_one\n  main_one:\n    image: nginx\n    depends_on:\n      - depend_one\n  main_two:\n    extends: main_one\n    depends_on: !override\n      - depend_two\n  main:\n    extends:\n      service: main_two\n    depends_on:\n      - depend_base\n",
    );
    let p = ok(&opts(&[&f], &[]));
    let deps = at(service(&p, "main"), "depends_on");
    let names: Vec<&str> = deps.entries().iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, ["depend_two", "depend_base"]);
    assert_eq!(s(at(deps, "depend_base.condition")), "service_started");
    assert_eq!(at(deps, "depend_base.required").value, Value::Bool(true));
}

#[test]
fn include_imports_another_project() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "db/.env", "DB_TAG=16\n");
    write(
        tmp.path(),
        "db/compose.yaml",
        "services:\n  db:\n    image: postgres:${DB_TAG}\n    volumes:\n      - ./data:/var/lib/postgresql/data\nvolumes:\n  dbdata: {}\n",
    );
    let main = write(
        tmp.path(),
        "compose.yaml",
        "include:\n  - db/compose.yaml\nservices:\n  app:\n    image: app\n    depends_on: [db]\n  db:\n    environment: {A: '1'}\n",
    );
    let p = ok(&opts(&[&main], &[]));
    let names: Vec<&str> = p.services.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["app", "db"]);
    let db = service(&p, "db");
    // The included project's .env and directory; the including file's
    // definition merged over the included one.
    assert_eq!(s(at(db, "image")), "postgres:16");
    let data = tmp.path().join("db/data").display().to_string();
    assert_eq!(
        list(at(db, "volumes")),
        [format!("{data}:/var/lib/postgresql/data")]
    );
    assert_eq!(s(at(db, "environment.A")), "1");
    assert_eq!(
        at(db, "image").pos.file.as_path(),
        tmp.path().join("db/compose.yaml")
    );
    assert_eq!(p.volumes.len(), 1);

    // A cycle is refused.
    write(
        tmp.path(),
        "loop/a.yaml",
        "include: [b.yaml]\nservices: {}\n",
    );
    write(
        tmp.path(),
        "loop/b.yaml",
        "include: [a.yaml]\nservices: {}\n",
    );
    let e = err(&opts(&[tmp.path().join("loop/a.yaml")], &[]));
    assert!(e[0].contains("include cycle detected"), "{e:?}");
}

#[test]
fn a_typical_homelab_stack() {
    let dir = fixture("homelab");
    let o = LoadOptions {
        project_dir: Some(dir.clone()),
        ..LoadOptions::default()
    };
    let p = ok(&o);
    assert_eq!(p.name, "immich");
    let names: Vec<&str> = p.services.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["immich-server", "redis", "database"]);
    let server = service(&p, "immich-server");
    assert_eq!(
        s(at(server, "image")),
        "ghcr.io/immich-app/immich-server:v1.132.3"
    );
    let library = dir.join("library").display().to_string();
    assert_eq!(
        list(at(server, "volumes")),
        [
            format!("{library}:/usr/src/app/upload"),
            "/etc/localtime:/etc/localtime:ro".to_string()
        ]
    );
    assert_eq!(
        list(at(server, "env_file")),
        [dir.join(".env").display().to_string()]
    );
    assert_eq!(at(server, "healthcheck.disable").value, Value::Bool(false));
    let db = service(&p, "database");
    assert_eq!(s(at(db, "environment.POSTGRES_PASSWORD")), "postgres");
    assert_eq!(
        list(at(db, "healthcheck.test"))[1],
        "pg_isready -U ${POSTGRES_USER} || exit 1"
    );
    // "3" from the anchor, typed as compose types healthcheck.retries.
    assert_eq!(at(db, "healthcheck.retries").value, Value::Int(3));
    assert_eq!(s(at(db, "shm_size")), "128mb");
    assert_eq!(p.volumes.len(), 1);
    assert_eq!(p.volumes[0].1.value, Value::Null);
}
