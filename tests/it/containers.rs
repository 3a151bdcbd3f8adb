//! Container units end to end: a real two-layer image (busybox from
//! Debian's busybox-static, a second layer that deletes a file), served by a
//! real registry on loopback, pulled by jarvisd, run through libcontainer,
//! and checked from the host.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::*;

pub fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn need(tool: &str, package: &str) {
    assert!(
        Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success()),
        "{tool} is missing: apt-get install {package} (tests/run installs it)"
    );
}

/// An OCI layout at `dir` with tag `latest`: layer 1 is busybox with
/// /etc/passwd, /etc/deleteme and /data/old; layer 2 deletes /etc/deleteme
/// and replaces /data with /data/new.
pub fn busybox_layout(dir: &Path) {
    need("umoci", "umoci");
    let busybox = Path::new("/bin/busybox");
    assert!(busybox.exists(), "apt-get install busybox-static");
    let image = format!("{}:latest", dir.display());
    let bundle = dir.with_extension("bundle");
    run(Command::new("umoci").args(["init", "--layout"]).arg(dir));
    run(Command::new("umoci").args(["new", "--image", &image]));
    run(Command::new("umoci")
        .args(["unpack", "--image", &image])
        .arg(&bundle));
    let root = bundle.join("rootfs");
    for d in ["bin", "etc", "data", "tmp", "proc", "sys", "dev"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy(busybox, root.join("bin/busybox")).unwrap();
    for applet in [
        "sh", "sleep", "cat", "echo", "ls", "id", "grep", "wc", "touch", "hostname", "mount",
        "head",
    ] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    std::fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(root.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").unwrap();
    std::fs::write(root.join("etc/deleteme"), "old\n").unwrap();
    std::fs::write(root.join("data/old"), "old\n").unwrap();
    run(Command::new("umoci")
        .args(["repack", "--image", &image])
        .arg(&bundle));
    std::fs::remove_file(root.join("etc/deleteme")).unwrap();
    std::fs::remove_dir_all(root.join("data")).unwrap();
    std::fs::create_dir(root.join("data")).unwrap();
    std::fs::write(root.join("data/new"), "new\n").unwrap();
    run(Command::new("umoci")
        .args(["repack", "--image", &image])
        .arg(&bundle));
    run(Command::new("umoci").args(["config", "--image", &image, "--config.cmd", "sh"]));
}

/// Debian's docker-registry on 127.0.0.1, killed when dropped.
pub struct Registry {
    child: Child,
    pub addr: String,
}

impl Registry {
    fn start(dir: &Path) -> Registry {
        Registry::start_with(dir, "")
    }

    /// With `extra` appended to its configuration (an `auth:` section, say).
    pub fn start_with(dir: &Path, extra: &str) -> Registry {
        need("docker-registry", "docker-registry");
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let config = dir.join("registry.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\nlog:\n  level: error\n{extra}",
                dir.join("registry-data").display()
            ),
        )
        .unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(&addr).is_err() {
            assert!(Instant::now() < deadline, "registry did not come up");
            std::thread::sleep(Duration::from_millis(20));
        }
        Registry { child, addr }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn container_unit(image: &str, extra: &str) -> String {
    format!(
        r#"
[container]
image = "{image}"
command = ["sh", "-c", "echo up; sleep 1000"]
{extra}
[resources]
memory_max = "64M"
pids_max = 40
[stop]
timeout = "1s"
"#
    )
}

/// The unit's log once a line it printed (not a note of jarvis's) contains
/// `marker`.
pub fn wait_log(j: &Jarvis, unit: &str, marker: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let log = j.logs(unit);
        if log
            .lines()
            .any(|l| l.contains(marker) && !l.starts_with("[jarvis"))
        {
            return log;
        }
        assert!(
            Instant::now() < deadline,
            "no {marker:?} in:\n{log}\n{}",
            j.daemon_log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_pulled_container_runs_locked_down_survives_the_daemon_and_leaves_nothing() {
    if !root() {
        return;
    }
    need("skopeo", "skopeo");
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    busybox_layout(&layout);
    let registry = Registry::start(work.path());
    run(Command::new("skopeo")
        .args(["copy", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:latest", layout.display()))
        .arg(format!("docker://{}/test/busybox:1", registry.addr)));
    let image = format!("{}/test/busybox:1", registry.addr);

    let host_dir = work.path().join("shared");
    std::fs::create_dir(&host_dir).unwrap();
    std::fs::write(host_dir.join("hello"), "from the host\n").unwrap();
    let probe = format!(
        r#"
[container]
image = "{image}"
network = "none"
command = ["sh", "-c", "echo deleted=$(ls /etc/deleteme 2>&1 | grep -c 'No such'); echo data=$(ls /data | tr '\\n' ,); echo kcore=$(cat /proc/kcore | wc -c); echo sysrq=$(echo h 2>&1 > /proc/sysrq-trigger || echo refused); echo mount=$(mount -t tmpfs x /tmp 2>&1 || echo refused); echo vol=$(cat /v/hello); echo rovol=$(touch /v/x 2>&1 || echo refused); echo pid1=$$ host=$(hostname); echo done; sleep 1000"]
volumes = ["{host}:/v:ro"]
[resources]
memory_max = "64M"
pids_max = 40
[stop]
timeout = "1s"
"#,
        host = host_dir.display()
    );
    let mut j = Jarvis::start_with(
        &[("probe", &probe)],
        &["--insecure-registry", &registry.addr],
    );
    let u = j.wait_unit("probe", Duration::from_secs(60), |u| {
        u["state"] == "running" && u["pid"].is_number()
    });
    assert_eq!(u["kind"], "container");
    let pid = u["pid"].as_i64().unwrap() as i32;

    // The kernel's view of the container's init.
    let capbnd = u64::from_str_radix(&proc_status(pid, "CapBnd"), 16).unwrap();
    assert_eq!(
        capbnd & !0x800405fb,
        0,
        "CapBnd {capbnd:x} within Podman's default set"
    );
    assert_eq!(proc_status(pid, "NoNewPrivs"), "1");
    assert_eq!(proc_status(pid, "Seccomp"), "2");
    assert_eq!(
        j.read_cgroup("memory", "probe", "memory.limit_in_bytes"),
        "67108864"
    );
    assert_eq!(j.read_cgroup("pids", "probe", "pids.max"), "40");
    let devices = j.read_cgroup("devices", "probe", "devices.list");
    assert!(
        !devices.contains("a *:* rwm"),
        "device cgroup denies by default: {devices}"
    );
    assert!(
        devices.contains("c 1:3 rwm"),
        "/dev/null allowed: {devices}"
    );
    for ns in ["pid", "mnt", "uts", "ipc"] {
        let mine = std::fs::read_link(format!("/proc/self/ns/{ns}")).unwrap();
        let theirs = std::fs::read_link(format!("/proc/{pid}/ns/{ns}")).unwrap();
        assert_ne!(mine, theirs, "{ns} namespace is private");
    }
    // What the container sees.
    let log = wait_log(&j, "probe", "done");
    for want in [
        "deleted=1",
        "data=new,",
        "kcore=0",
        "mount=",
        "vol=from the host",
        "rovol=",
        "pid1=1 host=probe",
    ] {
        assert!(log.contains(want), "missing {want:?} in:\n{log}");
    }
    assert!(
        log.contains("mount=")
            && log
                .lines()
                .any(|l| l.starts_with("mount=") && l.contains("refused")),
        "{log}"
    );
    assert!(
        log.lines()
            .any(|l| l.starts_with("rovol=") && l.contains("refused")),
        "{log}"
    );
    assert!(
        log.lines()
            .any(|l| l.starts_with("sysrq=") && l.contains("refused")),
        "{log}"
    );
    // Masked paths: what exists on the host is covered inside.
    let mounts = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
    for masked in [
        "/proc/kcore",
        "/proc/keys",
        "/proc/timer_list",
        "/sys/firmware",
    ] {
        if Path::new(masked).exists() {
            assert!(
                mounts.lines().any(|l| l.split(' ').nth(4) == Some(masked)),
                "{masked} is not masked:\n{mounts}"
            );
        }
    }

    // jarvisd dies; the container does not, and is re-adopted.
    j.kill_daemon();
    std::thread::sleep(Duration::from_millis(200));
    assert!(alive(pid));
    j.spawn_daemon();
    let u = j.running("probe");
    assert_eq!(u["pid"], pid, "the same container init, re-adopted");

    // Stop leaves no process, cgroup, mount or runtime state.
    let cg = j.cgroup_dir("memory", "probe");
    j.ok(&["stop", "probe"]);
    assert!(!alive(pid));
    assert!(
        !cg.exists()
            || std::fs::read_to_string(cg.join("cgroup.procs"))
                .unwrap()
                .trim()
                .is_empty()
    );
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(&j.state.display().to_string()), "{mounts}");
    let lc: Vec<PathBuf> = std::fs::read_dir(j.state.join("libcontainer"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(lc.is_empty(), "libcontainer state left: {lc:?}");
    // The image can go now that nothing uses it.
    j.ok(&["image", "rm", &image]);
    assert!(!j.ok(&["image", "ls"]).contains("busybox"));
}

#[test]
fn images_import_and_list_and_a_running_unit_keeps_its_image() {
    if !root() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    busybox_layout(&layout);
    let j = Jarvis::start(&[]);
    let out = j.ok(&[
        "image",
        "import",
        layout.to_str().unwrap(),
        "--tag",
        "busybox:local",
    ]);
    assert!(out.contains("imported"), "{out}");
    let ls: serde_json::Value = serde_json::from_str(&j.ok(&["image", "ls", "--json"])).unwrap();
    let refs: Vec<&str> = ls["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["reference"].as_str().unwrap())
        .collect();
    assert_eq!(refs, vec!["docker.io/library/busybox:local"]);

    j.write_unit(
        "box",
        &container_unit("busybox:local", "network = \"none\""),
    );
    j.ok(&["up", "--wait", "--timeout", "30s"]);
    let pid = j.running("box")["pid"].as_i64().unwrap() as i32;
    let net = std::fs::read_link(format!("/proc/{pid}/ns/net")).unwrap();
    assert_ne!(
        net,
        std::fs::read_link("/proc/self/ns/net").unwrap(),
        "network = none"
    );
    let out = j.ctl(&["image", "rm", "busybox:local"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("in use by box"));
}

#[test]
fn a_container_without_no_new_privileges_starts_and_keeps_its_seccomp_filter() {
    if !root() {
        return;
    }
    let j = Jarvis::start(&[]);
    j.import_busybox("busybox:local");
    j.write_unit(
        "box",
        r#"
[container]
image = "busybox:local"
network = "none"
command = ["sh", "-c", "echo nnp=$(grep NoNewPrivs /proc/self/status | cut -f2) seccomp=$(grep '^Seccomp:' /proc/self/status | cut -f2); echo done; sleep 1000"]
[security]
no_new_privileges = false
[stop]
timeout = "1s"
"#,
    );
    j.ok(&["up", "--wait", "--timeout", "30s"]);
    let log = wait_log(&j, "box", "done");
    assert!(log.contains("nnp=0 seccomp=2"), "{log}");
}

#[test]
fn a_containers_shim_runs_from_a_sealed_copy_of_jarvis_cshim() {
    if !root() {
        return;
    }
    let j = Jarvis::start(&[]);
    j.import_busybox("busybox:local");
    j.write_unit(
        "box",
        &container_unit("busybox:local", "network = \"none\""),
    );
    j.ok(&["up", "--wait", "--timeout", "30s"]);
    let pid = j.running("box")["pid"].as_i64().unwrap() as i32;
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(j.state.join("run/box.run.json")).unwrap()).unwrap();
    let shim = record["shim_pid"].as_i64().unwrap() as i32;
    assert_eq!(proc_status(pid, "PPid"), shim.to_string());

    // CVE-2019-5736: the shim, which calls into libcontainer, runs from a
    // sealed memfd (no file a container could open for writing through
    // /proc/PID/exe): jarvisd's copy of the small jarvis-cshim, not of
    // jarvisd itself.
    let exe = format!("/proc/{shim}/exe");
    let link = std::fs::read_link(&exe).unwrap();
    assert!(
        link.to_string_lossy().starts_with("/memfd:jarvis-cshim"),
        "{link:?}"
    );
    let file = std::fs::File::open(&exe).unwrap();
    let meta = file.metadata().unwrap();
    use std::os::unix::fs::MetadataExt;
    // SAFETY: fcntl(2) F_GET_SEALS on a descriptor we own.
    let seals = unsafe { libc::fcntl(std::os::fd::AsRawFd::as_raw_fd(&file), libc::F_GET_SEALS) };
    let want = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    assert_eq!(seals & want, want, "seals {seals:#x} of {link:?}");
    let installed = Path::new(&*JARVISD).with_file_name("jarvis-cshim");
    assert_eq!(
        meta.len(),
        std::fs::metadata(&installed).unwrap().len(),
        "a copy of {installed:?}"
    );
    let daemon = std::fs::metadata(format!("/proc/{}/exe", j.daemon_pid())).unwrap();
    assert_ne!(
        (meta.dev(), meta.ino()),
        (daemon.dev(), daemon.ino()),
        "not jarvisd's sealed copy"
    );
    // None of jarvisd's TLS (git, HTTP) in a container's shim.
    let maps = std::fs::read_to_string(format!("/proc/{shim}/maps")).unwrap();
    for lib in ["libcrypto", "libssl"] {
        assert!(!maps.contains(lib), "{lib} in the shim's maps:\n{maps}");
    }
    let comm = std::fs::read_to_string(format!("/proc/{shim}/comm")).unwrap();
    assert_eq!(comm.trim(), "jarvis-shim", "named for ps");
}

/// A static probe that reports what two syscalls the seccomp profile does
/// not name give (`pkey_alloc`, and number 1000, which no kernel has:
/// ENOSYS without a filter), then waits for SIGTERM. `None` without a
/// static C compiler.
fn seccomp_probe(dir: &Path) -> Option<PathBuf> {
    const SRC: &str = r#"
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>
static void report(const char *what, long r) {
    if (r < 0) printf("%s=%d ", what, errno); else printf("%s=ok ", what);
}
static void on_term(int s) { (void)s; _exit(0); }
int main(int argc, char **argv) {
    (void)argv;
    report("pkey_alloc", syscall(SYS_pkey_alloc, 0, 0));
    report("unnumbered", syscall(1000));
    printf("probed\n");
    fflush(stdout);
    if (argc > 1) return 0;
    signal(SIGTERM, on_term);
    for (;;) pause();
}
"#;
    let src = dir.join("probe.c");
    std::fs::write(&src, SRC).unwrap();
    let bin = dir.join("probe");
    let ok = Command::new("cc")
        .args(["-static", "-O1", "-o"])
        .arg(&bin)
        .arg(&src)
        .status()
        .is_ok_and(|s| s.success());
    ok.then_some(bin)
}

/// With `no_new_privileges` (the default) the container's seccomp profile
/// is compiled ahead by jarvisd: `seccomp.bpf` beside the bundle, no
/// `linux.seccomp` in its `config.json`, and the container (and an exec
/// into it) still gets EPERM for a syscall the profile does not name.
/// Without `no_new_privileges` the profile stays in `config.json` for
/// libcontainer, and the filter is the same.
#[test]
fn seccomp_compiled_ahead_refuses_unlisted_syscalls_and_libcontainer_still_does_without_nnp() {
    if !root() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    if seccomp_probe(work.path()).is_none() {
        return skip(true, "no static C compiler (`cc -static`)");
    }
    let _ = std::fs::set_permissions(
        work.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    );
    let unit = |security: &str| {
        format!(
            r#"
[container]
image = "busybox:local"
network = "none"
command = ["/probe/probe"]
volumes = ["{}:/probe:ro"]
{security}
[stop]
timeout = "1s"
"#,
            work.path().display()
        )
    };
    let j = Jarvis::start(&[]);
    j.import_busybox("busybox:local");
    j.write_unit("ahead", &unit(""));
    j.write_unit("legacy", &unit("[security]\nno_new_privileges = false"));
    j.ok(&["up", "--wait", "--timeout", "30s"]);
    let eperm = libc::EPERM;
    let want = format!("pkey_alloc={eperm} unnumbered={eperm} probed");

    let log = wait_log(&j, "ahead", "probed");
    assert!(log.contains(&want), "{log}");
    let dir = j.state.join("containers").join("ahead");
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
    assert!(config["linux"].is_object(), "{config}");
    assert!(config["linux"].get("seccomp").is_none(), "{config}");
    assert_eq!(
        config["annotations"]["org.jarvis.seccomp.bpf"], "seccomp.bpf",
        "{config}"
    );
    let meta = std::fs::metadata(dir.join("seccomp.bpf")).unwrap();
    assert!(
        meta.len() > 0 && meta.len().is_multiple_of(8),
        "{} bytes",
        meta.len()
    );
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
        0o600
    );
    let pid = j.running("ahead")["pid"].as_i64().unwrap() as i32;
    assert_eq!(proc_status(pid, "NoNewPrivs"), "1");
    assert_eq!(proc_status(pid, "Seccomp"), "2");
    // exec loads the same program.
    let out = j.ctl(&["exec", "ahead", "--", "/probe/probe", "once"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains(&want), "{text}");

    let log = wait_log(&j, "legacy", "probed");
    assert!(log.contains(&want), "{log}");
    let dir = j.state.join("containers").join("legacy");
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
    assert!(config["linux"]["seccomp"].is_object(), "{config}");
    assert!(!dir.join("seccomp.bpf").exists());
    let pid = j.running("legacy")["pid"].as_i64().unwrap() as i32;
    assert_eq!(proc_status(pid, "NoNewPrivs"), "0");
    assert_eq!(proc_status(pid, "Seccomp"), "2");
}
