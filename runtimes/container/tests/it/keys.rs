//! The unit keys compose files use, carried out by real containers: tmpfs
//! mounts, ulimits, sysctls, group_add, cap_add/cap_drop, privileged,
//! init, secrets and named volumes.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use jarvis_unit::{Network, Rlimit, Secret, Tmpfs, Ulimit, Volume};

use crate::helpers::*;
use crate::tests::Test;
use crate::{ensure, ensure_eq};

pub const ALL: &[Test] = &[
    ("keys_tmpfs_and_shm_size", tmpfs_and_shm_size),
    ("keys_ulimits", ulimits),
    ("keys_sysctls", sysctls),
    ("keys_group_add", group_add),
    ("keys_cap_add_and_cap_drop", cap_add_and_cap_drop),
    ("keys_privileged", privileged),
    ("keys_init_is_pid_1_and_reaps", init_is_pid_1_and_reaps),
    ("keys_secrets", secrets),
    (
        "keys_named_volume_filled_then_kept",
        named_volume_filled_then_kept,
    ),
];

/// Runs `c` as unit `name` through `prepare_bundle`; fails unless it exits 0.
fn run_ok(env: &mut Env, u: &jarvis_unit::Unit) -> Result<Output, libtest_mimic::Failed> {
    let out = env.run_bundle(u)?;
    ensure!(
        out.code == 0,
        "exit {}\nstdout:\n{}\nstderr:\n{}",
        out.code,
        out.stdout,
        out.stderr
    );
    Ok(out)
}

/// The options of the mount at `dest` in `/proc/self/mounts` text.
fn mount_line<'a>(mounts: &'a str, dest: &str) -> Option<&'a str> {
    mounts.lines().find(|l| l.split(' ').nth(1) == Some(dest))
}

fn tmpfs_and_shm_size() -> TestResult {
    let mut env = Env::new("tmpfs");
    let mut c = script("cat /proc/self/mounts; touch /scratch/ok && echo wrote=1");
    c.read_only = true;
    c.tmpfs = vec![Tmpfs {
        path: "/scratch".into(),
        size: Some(1 << 20),
        mode: Some(0o1770),
    }];
    c.shm_size = Some(8 << 20);
    let out = run_ok(&mut env, &unit("tmpfs", c))?;
    let line = mount_line(&out.stdout, "/scratch").ok_or("no /scratch mount")?;
    ensure!(line.starts_with("tmpfs /scratch tmpfs "), "{line}");
    for opt in ["nosuid", "nodev", "size=1024k", "mode=1770"] {
        ensure!(line.contains(opt), "{opt} missing: {line}");
    }
    ensure_eq!(out.get("wrote"), Some("1"));
    let shm = mount_line(&out.stdout, "/dev/shm").ok_or("no /dev/shm mount")?;
    ensure!(shm.contains("size=8192k"), "{shm}");
    Ok(())
}

fn ulimits() -> TestResult {
    let mut env = Env::new("ulimit");
    let mut c = script("grep -E 'Max (open files|core file size)' /proc/self/limits");
    c.ulimits = BTreeMap::from([
        (
            Rlimit::Nofile,
            Ulimit {
                soft: 1000,
                hard: 2000,
            },
        ),
        (
            Rlimit::Core,
            Ulimit {
                soft: 0,
                hard: Ulimit::UNLIMITED,
            },
        ),
    ]);
    let out = run_ok(&mut env, &unit("ulimit", c))?;
    let fields = |name: &str| -> Vec<String> {
        out.stdout
            .lines()
            .find(|l| l.starts_with(name))
            .map(|l| {
                l[name.len()..]
                    .split_whitespace()
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default()
    };
    ensure_eq!(fields("Max open files")[..2], ["1000", "2000"]);
    ensure_eq!(fields("Max core file size")[..2], ["0", "unlimited"]);
    Ok(())
}

fn sysctls() -> TestResult {
    let mut env = Env::new("sysctl");
    // A network namespace of the container's own: net.* may be set there.
    let mut c = script(
        "echo port=$(cat /proc/sys/net/ipv4/ip_unprivileged_port_start); \
         echo msgmax=$(cat /proc/sys/kernel/msgmax)",
    );
    c.network = Network::None;
    c.sysctls = BTreeMap::from([
        (
            "net.ipv4.ip_unprivileged_port_start".to_string(),
            "0".to_string(),
        ),
        ("kernel.msgmax".to_string(), "12345".to_string()),
    ]);
    let out = run_ok(&mut env, &unit("sysctl", c))?;
    ensure_eq!(out.get("port"), Some("0"));
    ensure_eq!(out.get("msgmax"), Some("12345"));
    // The host's own stay as they were.
    ensure!(
        read("/proc/sys/kernel/msgmax")? != "12345",
        "the host's kernel.msgmax changed"
    );
    Ok(())
}

fn group_add() -> TestResult {
    let mut env = Env::new("groups");
    let mut c = script("echo groups=$(id -G)");
    c.user = Some("nobody".into());
    c.group_add = vec!["tty".into(), "4242".into()];
    let out = run_ok(&mut env, &unit("groups", c))?;
    let groups: Vec<&str> = out.expect("groups")?.split_whitespace().collect();
    ensure!(
        groups.contains(&"5") && groups.contains(&"4242") && groups.contains(&"65534"),
        "groups {groups:?}"
    );
    Ok(())
}

fn cap_eff(out: &Output) -> Result<u64, libtest_mimic::Failed> {
    let line = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .ok_or("no CapEff")?;
    Ok(u64::from_str_radix(line.trim(), 16)?)
}

fn cap_add_and_cap_drop() -> TestResult {
    let mut env = Env::new("caps");
    let mut c = script("grep -E '^(CapEff|CapBnd):' /proc/self/status");
    c.cap_add = vec!["CAP_NET_ADMIN".into()];
    c.cap_drop = vec!["CAP_KILL".into()];
    let out = run_ok(&mut env, &unit("caps", c.clone()))?;
    let eff = cap_eff(&out)?;
    ensure!(eff & (1 << 12) != 0, "CAP_NET_ADMIN not effective: {eff:x}");
    ensure!(eff & (1 << 5) == 0, "CAP_KILL still effective: {eff:x}");
    ensure_eq!(eff, (0x800405fb_u64 | 1 << 12) & !(1 << 5));

    c.cap_drop = vec!["ALL".into()];
    c.cap_add = vec!["CAP_CHOWN".into()];
    let out = run_ok(&mut env, &unit("caps", c))?;
    ensure_eq!(cap_eff(&out)?, 1);
    Ok(())
}

/// A host device node no container gets by default.
fn host_only_device() -> Option<&'static str> {
    [
        "/dev/kmsg",
        "/dev/loop-control",
        "/dev/tty0",
        "/dev/vda",
        "/dev/sda",
    ]
    .into_iter()
    .find(|p| Path::new(p).exists())
}

fn privileged() -> TestResult {
    let Some(dev) = host_only_device() else {
        return skip(false, "no host device node to look for");
    };
    let mut env = Env::new("priv");
    let probe = format!(
        "grep -E '^(CapEff|Seccomp):' /proc/self/status; \
         test -e {dev} && echo dev=1 || echo dev=0; \
         echo timers=$(head -c 1 /proc/timer_list 2>/dev/null | wc -c); \
         echo procsys=$(grep -c ' /proc/sys ' /proc/self/mounts); \
         echo sysfs=$(grep ' /sys ' /proc/self/mounts | cut -d' ' -f4 | cut -d, -f1)"
    );
    let mut c = script(&probe);
    c.privileged = true;
    let out = run_ok(&mut env, &unit("priv", c.clone()))?;
    // Every capability jarvis holds itself.
    let held = u64::from_str_radix(&status_field(std::process::id() as i32, "CapBnd")?, 16)?;
    ensure_eq!(cap_eff(&out)?, held & ((1u64 << 41) - 1));
    ensure!(
        out.stdout.lines().any(|l| l == "Seccomp:\t0"),
        "a seccomp filter: {}",
        out.stdout
    );
    ensure_eq!(out.get("dev"), Some("1"));
    // Neither masked nor read-only paths.
    ensure_eq!(out.get("timers"), Some("1"));
    ensure_eq!(out.get("procsys"), Some("0"));
    ensure_eq!(out.get("sysfs"), Some("rw"));

    c.privileged = false;
    let out = run_ok(&mut env, &unit("priv", c))?;
    ensure_eq!(out.get("dev"), Some("0"));
    ensure_eq!(out.get("timers"), Some("0"));
    ensure_eq!(out.get("procsys"), Some("1"));
    ensure_eq!(out.get("sysfs"), Some("ro"));
    Ok(())
}

fn init_is_pid_1_and_reaps() -> TestResult {
    if jarvis_container::find_init().is_none() {
        return skip(true, "init = true needs tini (apt-get install tini)");
    }
    let mut env = Env::new("init");
    // An orphan that exits becomes PID 1's zombie unless PID 1 reaps it.
    let mut c = script(
        "echo pid1=$(tr '\\0' ' ' < /proc/1/cmdline); echo me=$$; \
         (sleep 0.2 &); sleep 1; \
         echo zombies=$(grep -l '^State:.*Z' /proc/[0-9]*/status 2>/dev/null | wc -l)",
    );
    c.init = true;
    let out = run_ok(&mut env, &unit("init", c))?;
    let pid1 = out.expect("pid1")?;
    ensure!(
        pid1.starts_with(jarvis_container::INIT_PATH),
        "PID 1 is {pid1:?}"
    );
    ensure!(out.expect("me")? != "1", "the command is PID 1");
    ensure_eq!(out.get("zombies"), Some("0"));
    Ok(())
}

fn secrets() -> TestResult {
    let mut env = Env::new("secret");
    let src = env.dir.path().join("db_password");
    std::fs::write(&src, "s3cret-value")?;
    let mut c = script(
        "echo value=$(cat /run/secrets/x); \
         echo owner=$(stat -c %u:%a /run/secrets/x); \
         (echo changed > /run/secrets/x) 2>/dev/null && echo write=1 || echo write=0; \
         (touch /run/secrets/new) 2>/dev/null && echo create=1 || echo create=0",
    );
    c.user = Some("nobody".into());
    let mut u = unit("secret", c);
    u.secrets = vec![Secret {
        source: src.clone(),
        target: "x".into(),
        mode: Secret::DEFAULT_MODE,
    }];
    let out = run_ok(&mut env, &u)?;
    ensure_eq!(out.get("value"), Some("s3cret-value"));
    ensure_eq!(out.get("owner"), Some("65534:400"));
    ensure_eq!(out.get("write"), Some("0"));
    ensure_eq!(out.get("create"), Some("0"));
    // Root in the container cannot write it either: the bind is read-only.
    let mut root =
        script("(echo changed > /run/secrets/x) 2>/dev/null && echo write=1 || echo write=0");
    root.user = None;
    let mut u2 = unit("secret", root);
    u2.secrets = u.secrets.clone();
    let out = run_ok(&mut env, &u2)?;
    ensure_eq!(out.get("write"), Some("0"));
    ensure_eq!(std::fs::read_to_string(&src)?, "s3cret-value");
    // Its copy is in a tmpfs, in memory: never in the container directory.
    let fs = nix::sys::statfs::statfs(&env.secrets_dir())?;
    ensure!(
        fs.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC,
        "the secrets directory is not a tmpfs"
    );
    jarvis_container::secrets::unmount(&env.secrets_dir())?;
    ensure!(!env.secrets_dir().exists(), "the secrets directory stayed");

    // A missing source fails the start and names the file.
    u.secrets[0].source = env.dir.path().join("gone");
    let err = format!("{:?}", env.prepare_bundle(&u).unwrap_err());
    ensure!(
        err.contains(&env.dir.path().join("gone").display().to_string()),
        "{err}"
    );
    Ok(())
}

fn named_volume_filled_then_kept() -> TestResult {
    let mut env = Env::new("volume");
    let mut c = script(
        "echo greeting=$(cat /srv/seed/greeting); \
         echo link=$(readlink /srv/seed/link); \
         cat /srv/seed/note 2>/dev/null | sed 's/^/note=/'; \
         echo written > /srv/seed/note",
    );
    c.volumes = vec![Volume::named("seed", "/srv/seed", false)];
    let u = unit("volume", c);
    let out = run_ok(&mut env, &u)?;
    ensure_eq!(out.get("greeting"), Some("seeded"));
    ensure_eq!(out.get("link"), Some("greeting"));
    ensure_eq!(out.get("note"), None);
    let data = env.volume_dir().join("seed/_data");
    let m = std::fs::metadata(data.join("greeting"))?;
    ensure_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (65534, 65534, 0o640));
    ensure_eq!(std::fs::read_to_string(data.join("note"))?, "written\n");

    // A second run (a fresh rootfs mount) finds what the first wrote.
    std::fs::write(data.join("greeting"), "changed\n")?;
    let out = run_ok(&mut env, &u)?;
    ensure_eq!(out.get("note"), Some("written"));
    ensure_eq!(out.get("greeting"), Some("changed"));
    Ok(())
}
