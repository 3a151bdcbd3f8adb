//! A compose stack brought over end to end: `jarvisctl import compose` turns
//! a three-service project (a database stand-in with a named volume, a
//! secret and an env file; an API that reads it by service name; a web
//! front end with a published port) into unit files, and `up --wait` runs
//! them in the test's own network namespace.

use std::time::Duration;

use crate::containers::busybox_layout;
use crate::harness::*;

const COMPOSE: &str = r#"
name: shop
services:
  db:
    image: busybox:local
    command: ["sh", "-c", "echo \"db $$DB_NAME $$(cat /run/secrets/db_password)\" > /data/index.html && exec busybox httpd -f -p 5432 -h /data"]
    env_file: ./db.env
    secrets: [db_password]
    volumes:
      - dbdata:/data
    healthcheck:
      test: ["CMD", "busybox", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:5432/"]
      interval: 1s
      retries: 30
  api:
    image: busybox:local
    command: sh -c 'busybox mkdir -p /www && busybox wget -q -O /www/index.html http://db:5432/ && exec busybox httpd -f -p 8000 -h /www'
    depends_on:
      db:
        condition: service_healthy
  web:
    image: ${IMAGE:-busybox:local}
    command: ["sh", "-c", "busybox mkdir -p /www && until busybox wget -q -O /www/index.html http://api:8000/; do sleep 0.2; done && exec busybox httpd -f -p 80 -h /www"]
    ports:
      - "18081:80"
    depends_on: [api]
volumes:
  dbdata: {}
secrets:
  db_password:
    file: ./db_password.txt
"#;

#[test]
fn an_imported_compose_stack_comes_up_and_answers_on_its_published_port() {
    if !root() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let _ = std::fs::set_permissions(
        work.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    );
    let layout = work.path().join("layout");
    busybox_layout(&layout);
    let project = work.path().join("shop");
    std::fs::create_dir(&project).unwrap();
    std::fs::write(project.join("docker-compose.yml"), COMPOSE).unwrap();
    std::fs::write(project.join("db.env"), "DB_NAME=jarvis\n").unwrap();
    std::fs::write(project.join("db_password.txt"), "s3cret\n").unwrap();

    let j = Jarvis::start_in_netns(&[], &[]);
    j.ok(&[
        "image",
        "import",
        layout.to_str().unwrap(),
        "--tag",
        "busybox:local",
    ]);
    let out = j.ctl(&[
        "import",
        "compose",
        "-f",
        project.join("docker-compose.yml").to_str().unwrap(),
        "-o",
        j.units.to_str().unwrap(),
        "--json",
    ]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert!(out.status.success(), "{report:#}");
    assert_eq!(report["problems"], serde_json::json!([]), "{report:#}");
    let units: Vec<&str> = report["units"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["unit"].as_str().unwrap())
        .collect();
    assert_eq!(units, ["db", "api", "web"]);
    j.ok(&["validate", j.units.to_str().unwrap()]);

    j.ok(&["up", "--wait", "--timeout", "90s"]);
    assert_eq!(j.unit("db")["health"], "healthy");
    let ns = j.netns.as_ref().unwrap();
    // web is running once its process is; it serves once it has api's page.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let page = loop {
        let out = ns.run(&["busybox", "wget", "-q", "-O-", "http://127.0.0.1:18081/"]);
        if out.status.success() {
            break String::from_utf8_lossy(&out.stdout).into_owned();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "web never answered: {out:?}\n{}",
            j.daemon_log()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(page.trim(), "db jarvis s3cret", "web -> api -> db by name");

    // The secret is not in the state directory, status or the logs.
    let status = j.ok(&["status", "--json"]);
    assert!(!status.contains("s3cret"));
    for unit in ["db", "api", "web"] {
        assert!(!j.logs(unit).contains("s3cret"), "{unit}'s log");
    }
    // What the services wrote themselves (their writable layers, the
    // volume) is theirs; anything else jarvis keeps must not hold the secret
    // on disk (a tmpfs is memory).
    let grep = std::process::Command::new("grep")
        .args([
            "-r",
            "-l",
            "--exclude-dir=volumes",
            "--exclude-dir=containers",
            "s3cret",
        ])
        .arg(&j.state)
        .output()
        .unwrap();
    for hit in String::from_utf8_lossy(&grep.stdout).lines() {
        let fs = std::process::Command::new("stat")
            .args(["-f", "-c", "%T", hit])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&fs.stdout).trim(),
            "tmpfs",
            "the secret is on disk at {hit}"
        );
    }

    // The named volume outlives down and up.
    let vols: serde_json::Value = serde_json::from_str(&j.ok(&["volume", "ls", "--json"])).unwrap();
    assert!(vols.to_string().contains("shop_dbdata"), "{vols}");
    j.ok(&["down"]);
    j.ok(&["up", "--wait", "--timeout", "90s"]);
    j.wait_unit("web", Duration::from_secs(30), |u| u["state"] == "running");
    let vols: serde_json::Value = serde_json::from_str(&j.ok(&["volume", "ls", "--json"])).unwrap();
    assert!(vols.to_string().contains("shop_dbdata"), "{vols}");
}
