//! The image layers, built once per run.

use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

pub struct Layers {
    pub dirs: Vec<PathBuf>,
    /// Whether the second layer has `/probe`.
    pub probe: bool,
}

static DIR: Mutex<Option<(tempfile::TempDir, Vec<PathBuf>, bool)>> = Mutex::new(None);

pub const PASSWD: &str =
    "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
pub const GROUP: &str = "root:x:0:\ntty:x:5:\nnogroup:x:65534:\n";

const PROBE_C: &str = r#"
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static void report(const char *what, long r) {
    if (r == 0) _exit(0);
    if (r > 0) { waitpid((pid_t)r, 0, 0); printf("%s=ok\n", what); }
    else printf("%s=%d\n", what, errno);
}

int main(void) {
    report("clone_newuser", syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0));
    report("clone_newns", syscall(SYS_clone, CLONE_NEWNS | SIGCHLD, 0, 0, 0, 0));
    unsigned long long args[8] = {0};
    args[4] = SIGCHLD; /* exit_signal */
    report("clone3", syscall(SYS_clone3, args, sizeof args));
    report("clone_plain", syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0));
    report("fork", (long)fork());
    printf("unshare_newuser=%d\n", unshare(CLONE_NEWUSER) == 0 ? 0 : errno);
    fflush(stdout);
    return 0;
}
"#;

/// The layer directories, bottom first.
pub fn layers() -> Layers {
    let mut guard = DIR.lock().unwrap();
    if guard.is_none() {
        let dir = tempfile::Builder::new()
            .prefix("jarvis-ctest-layers-")
            .tempdir()
            .unwrap();
        let busybox = dir.path().join("busybox");
        build_busybox(&busybox);
        let probe_layer = dir.path().join("probe");
        std::fs::create_dir(&probe_layer).unwrap();
        let probe = build_probe(&probe_layer);
        *guard = Some((dir, vec![busybox, probe_layer], probe));
    }
    let (_, dirs, probe) = guard.as_ref().unwrap();
    Layers {
        dirs: dirs.clone(),
        probe: *probe,
    }
}

pub fn cleanup() {
    DIR.lock().unwrap().take();
}

fn build_busybox(root: &Path) {
    for d in [
        "bin", "etc", "root", "tmp", "mnt", "proc", "dev", "sys", "var", "usr",
    ] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::set_permissions(root.join("tmp"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).unwrap();
    // A static busybox; JARVIS_TEST_BUSYBOX names another one.
    let busybox = std::env::var("JARVIS_TEST_BUSYBOX").unwrap_or_else(|_| "/bin/busybox".into());
    std::fs::copy(&busybox, root.join("bin/busybox")).unwrap();
    let list = Command::new(&busybox).arg("--list").output().unwrap();
    assert!(list.status.success());
    for name in String::from_utf8(list.stdout).unwrap().lines() {
        let name = name.trim();
        if name.is_empty() || name == "busybox" || name.contains('/') {
            continue;
        }
        let _ = symlink("busybox", root.join("bin").join(name));
    }
    std::fs::write(root.join("etc/passwd"), PASSWD).unwrap();
    std::fs::write(root.join("etc/group"), GROUP).unwrap();
    std::fs::write(root.join("etc/image-marker"), "from the image\n").unwrap();
    // What a named volume mounted at /srv/seed starts with.
    std::fs::create_dir_all(root.join("srv/seed")).unwrap();
    std::fs::write(root.join("srv/seed/greeting"), "seeded\n").unwrap();
    std::os::unix::fs::chown(root.join("srv/seed/greeting"), Some(65534), Some(65534)).unwrap();
    std::fs::set_permissions(
        root.join("srv/seed/greeting"),
        std::fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    symlink("greeting", root.join("srv/seed/link")).unwrap();
}

fn build_probe(layer: &Path) -> bool {
    let src = layer.join("probe.c");
    std::fs::write(&src, PROBE_C).unwrap();
    let ok = Command::new("cc")
        .args(["-static", "-O1", "-o"])
        .arg(layer.join("probe"))
        .arg(&src)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    std::fs::remove_file(&src).unwrap();
    if !ok {
        eprintln!("note: `cc -static` failed; the clone/clone3 probe checks are skipped");
    }
    ok
}
