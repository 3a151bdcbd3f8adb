//! jarvisd's `--auth-file` end to end: Debian's docker-registry on loopback
//! wanting HTTP basic credentials (a bcrypt htpasswd file), seeded with
//! skopeo, pulled through jarvisctl with credentials from jarvisd's auth
//! file, which is read again at each pull.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::containers::{busybox_layout, need, run, Registry};
use crate::harness::*;

const USER: &str = "jarvis";
const PASSWORD: &str = "pa:ss-w0rd";
const WRONG: &str = "not-the-PASSWORD";

/// Standard base64 with padding, as an auth file's `auth` is written.
fn b64(s: &str) -> String {
    const ABC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in s.as_bytes().chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// docker-registry on 127.0.0.1 wanting `USER:PASSWORD`, killed when
/// dropped.
fn registry(dir: &Path) -> Registry {
    need("htpasswd", "apache2-utils");
    let htpasswd = dir.join("htpasswd");
    std::fs::write(
        &htpasswd,
        run(Command::new("htpasswd").args(["-nbB", USER, PASSWORD])),
    )
    .unwrap();
    Registry::start_with(
        dir,
        &format!(
            "auth:\n  htpasswd:\n    realm: jarvis-it\n    path: {}\n",
            htpasswd.display()
        ),
    )
}

/// Write `{"auths": {key: {"auth": base64(USER:password)}}}` with `mode`.
fn write_auth(path: &Path, key: &str, password: &str, mode: u32) {
    let json = serde_json::json!({"auths": {key: {"auth": b64(&format!("{USER}:{password}"))}}});
    std::fs::write(path, serde_json::to_vec_pretty(&json).unwrap()).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// What `jarvisd ARGS` says when it stops at start (it must, within 20 s).
fn jarvisd_fails_to_start(dir: &Path, args: &[&str]) -> String {
    let mut child = Command::new(&*JARVISD)
        .arg("--units")
        .arg(dir.join("units"))
        .arg("--state-dir")
        .arg(dir.join("state"))
        .arg("--socket")
        .arg(dir.join("jarvis.sock"))
        .args(["--cgroup-parent", "jarvis-it-auth-file"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start jarvisd");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("jarvisd {args:?} started and kept running");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(!status.success(), "jarvisd {args:?}: {status}");
    assert!(
        !dir.join("jarvis.sock").exists(),
        "it stopped before making its socket"
    );
    err
}

#[test]
fn base64_as_the_tools_write_it() {
    assert_eq!(b64("jarvis:pw"), "amFydmlzOnB3");
    assert_eq!(b64("ab:cd"), "YWI6Y2Q=");
    assert_eq!(b64("a:bcd"), "YTpiY2Q=");
    assert_eq!(b64("u:p"), "dTpw");
    assert_eq!(b64("ab:c"), "YWI6Yw==");
}

#[test]
fn jarvisd_stops_at_start_on_a_missing_or_world_readable_auth_file() {
    if !root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.json");
    let err = jarvisd_fails_to_start(dir.path(), &["--auth-file", missing.to_str().unwrap()]);
    assert!(
        err.contains(&format!(
            "auth file {}: it does not exist",
            missing.display()
        )),
        "{err}"
    );

    let open = dir.path().join("open.json");
    write_auth(&open, "registry.example", PASSWORD, 0o644);
    let err = jarvisd_fails_to_start(dir.path(), &["--auth-file", open.to_str().unwrap()]);
    assert!(
        err.contains(&format!(
            "auth file {}: it is readable by everyone (mode 0644)",
            open.display()
        )),
        "{err}"
    );
    assert!(!err.contains(PASSWORD) && !err.contains(&b64(&format!("{USER}:{PASSWORD}"))));
}

#[test]
fn jarvisd_pulls_with_credentials_from_its_auth_file_read_at_each_pull() {
    if !root() {
        return;
    }
    need("skopeo", "skopeo");
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    busybox_layout(&layout);
    let registry = registry(work.path());
    run(Command::new("skopeo")
        .args(["copy", "--dest-tls-verify=false"])
        .arg(format!("--dest-creds={USER}:{PASSWORD}"))
        .arg(format!("oci:{}:latest", layout.display()))
        .arg(format!("docker://{}/test/busybox:1", registry.addr)));
    let image = format!("{}/test/busybox:1", registry.addr);
    let auth = work.path().join("auth.json");
    write_auth(&auth, &registry.addr, WRONG, 0o600);

    let j = Jarvis::start_with(
        &[],
        &[
            "--insecure-registry",
            &registry.addr,
            "--auth-file",
            auth.to_str().unwrap(),
        ],
    );
    let out = j.ctl(&["image", "pull", &image]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "pulled with a wrong password: {err}");
    assert!(
        err.contains(&format!(
            "registry {} refused the credentials from {} (401 Unauthorized)",
            registry.addr,
            auth.display()
        )),
        "{err}"
    );

    // No entry for this registry: pulled anonymously, and refused.
    write_auth(&auth, "registry.example:5000", PASSWORD, 0o600);
    let out = j.ctl(&["image", "pull", &image]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "registry {} needs credentials and {} has none for it (401 Unauthorized)",
            registry.addr,
            auth.display()
        )),
        "{err}"
    );

    // The right password, as docker writes the key: the same daemon pulls.
    write_auth(
        &auth,
        &format!("https://{}/v1/", registry.addr),
        PASSWORD,
        0o600,
    );
    let out = j.ok(&["image", "pull", &image]);
    assert!(out.contains("pulled"), "{out}");
    assert!(j.ok(&["image", "ls"]).contains("test/busybox"));

    // Nothing of the credentials in jarvisd's log (at debug level).
    let log = j.daemon_log();
    for secret in [
        PASSWORD.to_string(),
        WRONG.to_string(),
        b64(&format!("{USER}:{PASSWORD}")),
        b64(&format!("{USER}:{WRONG}")),
    ] {
        assert!(
            !log.contains(&secret),
            "jarvisd logged a credential:\n{log}"
        );
    }
}
