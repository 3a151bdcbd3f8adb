//! The tests.

use std::os::fd::OwnedFd;
use std::path::Path;
use std::time::{Duration, Instant};

use jarvis_container::{
    delete, exec_in, kill, kill_all, mount_rootfs, state, unmount_rootfs, ExtraMount, Extras,
    RootfsError, Status, Stdio,
};
use jarvis_unit::{Network, Resources, Volume};
use libtest_mimic::Failed;

use crate::fixture;
use crate::helpers::*;
use crate::{ensure, ensure_eq};

pub type Test = (&'static str, fn() -> TestResult);

pub const ALL: &[Test] = &[
    ("security_seen_from_the_host", security_seen_from_the_host),
    ("inside_with_network_none", inside_with_network_none),
    ("host_network", host_network),
    (
        "clone_rules_of_the_seccomp_filter",
        clone_rules_of_the_seccomp_filter,
    ),
    ("cap_sys_admin_relaxes_mount", cap_sys_admin_relaxes_mount),
    ("volumes_and_read_only_root", volumes_and_read_only_root),
    ("user_workdir_and_env", user_workdir_and_env),
    ("cgroup_limits_and_devices", cgroup_limits_and_devices),
    (
        "kill_and_delete_leave_nothing",
        kill_and_delete_leave_nothing,
    ),
    ("exec_in_a_running_container", exec_in_a_running_container),
    ("failed_start_cleans_up", failed_start_cleans_up),
    ("overlay_of_many_layers", overlay_of_many_layers),
];

const CAPBND: &str = "00000000800405fb";

/// A long-running container: the init sleeps.
fn sleeper(name: &str) -> jarvis_unit::Unit {
    unit(name, container(&["/bin/sleep", "1000"]))
}

fn security_seen_from_the_host() -> TestResult {
    let mut env = Env::new("sec");
    let s = env.start(&sleeper("sec"), &Extras::default())?;
    let pid = s.pid;
    wait_until("the init to exec sleep", || {
        std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "sleep")
    })?;
    ensure_eq!(status_field(pid, "CapBnd")?, CAPBND);
    ensure_eq!(status_field(pid, "CapEff")?, CAPBND);
    ensure_eq!(status_field(pid, "CapPrm")?, CAPBND);
    ensure_eq!(status_field(pid, "CapInh")?, "0000000000000000");
    ensure_eq!(status_field(pid, "CapAmb")?, "0000000000000000");
    ensure_eq!(status_field(pid, "NoNewPrivs")?, "1");
    ensure_eq!(status_field(pid, "Seccomp")?, "2");
    // Exactly three descriptors: no host fd leaks in (CVE-2024-21626).
    let mut fds: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()?;
    fds.sort();
    ensure_eq!(fds, ["0", "1", "2"]);
    let null = std::fs::read_link(format!("/proc/{pid}/fd/0"))?;
    ensure_eq!(null, Path::new("/dev/null"));
    // Its cwd is the container's root, not a host directory.
    use std::os::unix::fs::MetadataExt;
    let cwd = std::fs::metadata(format!("/proc/{pid}/cwd"))?;
    let root = std::fs::metadata(env.rootfs())?;
    ensure!(
        (cwd.dev(), cwd.ino()) == (root.dev(), root.ino()),
        "cwd is not the container's root"
    );
    // Namespaces: new pid, ipc, uts, mnt; the host's network.
    for (ns, new) in [
        ("pid", true),
        ("ipc", true),
        ("uts", true),
        ("mnt", true),
        ("net", false),
        ("user", false),
    ] {
        let theirs = std::fs::read_link(format!("/proc/{pid}/ns/{ns}"))?;
        let ours = std::fs::read_link(format!("/proc/self/ns/{ns}"))?;
        ensure!(
            (theirs != ours) == new,
            "{ns} namespace: {theirs:?} vs {ours:?}"
        );
    }
    // The init is our child.
    ensure_eq!(status_field(pid, "PPid")?, std::process::id().to_string());
    let st = state(&env.id, &env.state_root)?.ok_or("no state")?;
    ensure_eq!(st.status, Status::Running);
    ensure_eq!(st.pid, Some(pid));
    kill_all(&env.id, &env.state_root, libc::SIGKILL)?;
    let out = env.finish(s)?;
    ensure_eq!(out.code, 128 + libc::SIGKILL);
    Ok(())
}

const INSIDE: &str = r#"
echo pid=$$
echo host=$(hostname)
echo etc_hostname=$(cat /etc/hostname)
for p in MASKED; do
  if [ -d $p ]; then echo "masked$p=$(ls -A $p | wc -l)"
  elif [ -e $p ]; then echo "masked$p=$(cat $p 2>&1 | wc -c)"
  else echo "masked$p=absent"; fi
done
for p in READONLY; do
  grep -q " $p ro," /proc/self/mountinfo 2>/dev/null || grep " $p " /proc/self/mountinfo | grep -q " ro" && echo "ro$p=yes" || echo "ro$p=no"
done
echo hello > /proc/sys/kernel/hostname 2>/dev/null && echo procsys=rw || echo procsys=ro
echo sysfs_write=$(echo x 2>&1 > /sys/kernel/uevent_helper; echo $?)
mount -t tmpfs x /mnt 2>/tmp/mount.err; echo mount=$?
echo mount_err=$(cat /tmp/mount.err)
unshare -n true 2>/tmp/unshare.err; echo unshare=$?
echo unshare_err=$(cat /tmp/unshare.err)
unshare -U true 2>/tmp/unshare.err; echo unshare_user=$?
echo unshare_user_err=$(cat /tmp/unshare.err)
echo net=$(ls /sys/class/net | tr '\n' ' ')
echo netdev=$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | tr '\n' ' ')
echo dev=$(ls /dev | tr '\n' ' ')
echo ptmx=$(readlink /dev/ptmx)
echo shm=$(echo ok > /dev/shm/x && cat /dev/shm/x)
echo zero=$(head -c 4 /dev/zero | wc -c)
echo id=$(id -u):$(id -g)
echo seccomp=$(grep Seccomp: /proc/self/status | cut -f2)
echo image_env=$FROM_IMAGE
echo hosts=$(cat /etc/hosts)
echo resolv=$(wc -c < /etc/resolv.conf)
"#;

fn inside_with_network_none() -> TestResult {
    let mut env = Env::new("inside");
    let mut c = script(
        &INSIDE
            .replace("MASKED", &jarvis_container::spec::MASKED_PATHS.join(" "))
            .replace(
                "READONLY",
                &jarvis_container::spec::READONLY_PATHS.join(" "),
            ),
    );
    c.network = Network::None;
    let out = env.run(&unit("inside", c), &Extras::default())?;
    ensure!(out.code == 0, "exit {}: {}", out.code, out.stderr);
    ensure_eq!(out.expect("pid")?, "1");
    ensure_eq!(out.expect("host")?, "inside");
    ensure_eq!(out.expect("etc_hostname")?, "inside");
    // Every masked path that exists on the host reads empty inside.
    for p in jarvis_container::spec::MASKED_PATHS {
        let got = out.expect(&format!("masked{p}"))?;
        if Path::new(p).exists() {
            ensure!(got == "0", "{p} is not masked: {got}");
        }
    }
    ensure!(
        std::fs::read("/proc/timer_list").map_or(true, |b| !b.is_empty()),
        "the host's /proc/timer_list is empty: the masking check proves nothing"
    );
    for p in jarvis_container::spec::READONLY_PATHS {
        if Path::new(p).exists() {
            ensure_eq!(out.expect(&format!("ro{p}"))?, "yes");
        }
    }
    ensure_eq!(out.expect("procsys")?, "ro");
    ensure!(out.expect("sysfs_write")? != "0", "wrote to /sys");
    ensure!(out.expect("mount")? != "0", "mount worked");
    ensure!(
        out.expect("mount_err")?.contains("permission denied"),
        "mount: {}",
        out.expect("mount_err")?
    );
    ensure!(out.expect("unshare")? != "0", "unshare -n worked");
    ensure!(
        out.expect("unshare_err")?
            .contains("Operation not permitted"),
        "unshare: {}",
        out.expect("unshare_err")?
    );
    // A user namespace needs no capability: only seccomp stops it.
    ensure!(out.expect("unshare_user")? != "0", "unshare -U worked");
    ensure!(
        out.expect("unshare_user_err")?
            .contains("Operation not permitted"),
        "unshare -U: {}",
        out.expect("unshare_user_err")?
    );
    ensure_eq!(out.expect("net")?, "lo");
    ensure_eq!(out.expect("netdev")?, "lo");
    let dev: Vec<&str> = out.expect("dev")?.split_whitespace().collect();
    for d in [
        "null", "zero", "full", "random", "urandom", "tty", "ptmx", "pts", "shm", "mqueue",
    ] {
        ensure!(dev.contains(&d), "/dev lacks {d}: {dev:?}");
    }
    for d in ["sda", "vda", "mem", "kmsg", "console"] {
        ensure!(!dev.contains(&d), "/dev has {d}: {dev:?}");
    }
    ensure_eq!(out.expect("ptmx")?, "pts/ptmx");
    ensure_eq!(out.expect("shm")?, "ok");
    ensure_eq!(out.expect("zero")?, "4");
    ensure_eq!(out.expect("id")?, "0:0");
    ensure_eq!(out.expect("seccomp")?, "2");
    ensure_eq!(out.expect("image_env")?, "yes");
    ensure!(
        out.expect("hosts")?.contains("127.0.0.1 localhost")
            && out.expect("hosts")?.contains("127.0.1.1 inside"),
        "hosts: {}",
        out.expect("hosts")?
    );
    ensure_eq!(out.expect("resolv")?, "0");
    Ok(())
}

fn host_network() -> TestResult {
    let mut env = Env::new("hostnet");
    let out = env.run(
        &unit(
            "hostnet",
            script(
                "echo net=$(ls /sys/class/net | wc -l); \
                 echo resolv=$(cat /etc/resolv.conf | md5sum | cut -c1-32); \
                 echo hello >> /etc/resolv.conf 2>/dev/null && echo resolv_rw=yes || echo resolv_rw=no; \
                 echo host=$(hostname)",
            ),
        ),
        &Extras::default(),
    )?;
    ensure!(out.code == 0, "exit {}: {}", out.code, out.stderr);
    let host_ifaces = std::fs::read_dir("/sys/class/net")?.count();
    ensure_eq!(out.expect("net")?, host_ifaces.to_string());
    if let Ok(host) = std::fs::read("/etc/resolv.conf") {
        let digest = std::process::Command::new("md5sum")
            .arg("/etc/resolv.conf")
            .output()?;
        let digest = String::from_utf8_lossy(&digest.stdout)[..32].to_string();
        ensure_eq!(out.expect("resolv")?, digest);
        ensure!(
            !host.ends_with(b"hello\n"),
            "the host's resolv.conf was written"
        );
    }
    ensure_eq!(out.expect("resolv_rw")?, "no");
    ensure_eq!(out.expect("host")?, "hostnet");
    Ok(())
}

fn clone_rules_of_the_seccomp_filter() -> TestResult {
    if !fixture::layers().probe {
        return skip(
            true,
            "no static C compiler (`cc -static`; CI installs gcc and libc6-dev)",
        );
    }
    let mut env = Env::new("probe");
    let out = env.run(&unit("probe", container(&["/probe"])), &Extras::default())?;
    ensure!(out.code == 0, "exit {}: {}", out.code, out.stderr);
    let eperm = libc::EPERM.to_string();
    ensure_eq!(out.expect("clone_newuser")?, eperm);
    ensure_eq!(out.expect("clone_newns")?, eperm);
    ensure_eq!(out.expect("clone3")?, libc::ENOSYS.to_string());
    ensure_eq!(out.expect("clone_plain")?, "ok");
    ensure_eq!(out.expect("fork")?, "ok");
    ensure_eq!(out.expect("unshare_newuser")?, eperm);
    Ok(())
}

fn cap_sys_admin_relaxes_mount() -> TestResult {
    let mut env = Env::new("admin");
    let mut u = unit(
        "admin",
        script(
            "mount -t tmpfs x /mnt && echo mounted=yes && umount /mnt && echo umounted=yes; \
             echo capbnd=$(grep CapBnd /proc/self/status | cut -f2)",
        ),
    );
    u.security.capabilities = vec!["CAP_SYS_ADMIN".into()];
    let out = env.run(&u, &Extras::default())?;
    ensure!(out.code == 0, "exit {}: {}", out.code, out.stderr);
    ensure_eq!(out.expect("mounted")?, "yes");
    ensure_eq!(out.expect("umounted")?, "yes");
    ensure_eq!(
        out.expect("capbnd")?,
        format!("{:016x}", 0x8004_05fbu64 | 1 << 21)
    );
    Ok(())
}

fn volumes_and_read_only_root() -> TestResult {
    let host = tempfile::tempdir()?;
    let rw = host.path().join("rw");
    let ro = host.path().join("ro");
    let extra = host.path().join("extra");
    for d in [&rw, &ro, &extra] {
        std::fs::create_dir(d)?;
    }
    std::fs::write(ro.join("file"), "host ro\n")?;
    std::fs::write(extra.join("file"), "extra\n")?;
    let mut env = Env::new("vol");
    let mut c = script(
        "echo from-container > /data/new && echo rw_write=ok; \
         echo ro_read=$(cat /conf/file); \
         { echo x > /conf/other; } 2>/dev/shm/ro.err || true; echo ro_write=$(cat /dev/shm/ro.err); \
         touch /rootfile 2>/dev/shm/err; echo root_write=$?; echo root_err=$(cat /dev/shm/err); \
         echo shm=$(echo y > /dev/shm/y && echo ok); \
         echo extra=$(cat /opt/extra/file)",
    );
    c.read_only = true;
    c.volumes = vec![
        Volume::bind(rw.to_string_lossy(), "/data", false),
        Volume::bind(ro.to_string_lossy(), "/conf", true),
    ];
    let extras = Extras {
        mounts: vec![ExtraMount {
            host: extra.clone(),
            container: "/opt/extra".into(),
            options: vec!["ro".into(), "nosuid".into(), "nodev".into()],
        }],
        ..Extras::default()
    };
    let out = env.run(&unit("vol", c), &extras)?;
    ensure!(out.code == 0, "exit {}: {}", out.code, out.stderr);
    ensure_eq!(out.expect("rw_write")?, "ok");
    ensure_eq!(std::fs::read_to_string(rw.join("new"))?, "from-container\n");
    ensure_eq!(out.expect("ro_read")?, "host ro");
    ensure!(!ro.join("other").exists(), "wrote through a :ro volume");
    ensure!(
        out.expect("ro_write")?.contains("Read-only file system"),
        "ro volume write: {}",
        out.expect("ro_write")?
    );
    ensure!(
        out.expect("root_write")? != "0",
        "wrote to a read-only root"
    );
    ensure!(
        out.expect("root_err")?.contains("Read-only file system"),
        "root write: {}",
        out.expect("root_err")?
    );
    ensure_eq!(out.expect("shm")?, "ok");
    ensure_eq!(out.expect("extra")?, "extra");
    ensure!(
        !env.container_dir.join("upper/rootfile").exists(),
        "upper changed"
    );
    Ok(())
}

fn user_workdir_and_env() -> TestResult {
    let mut env = Env::new("user");
    let mut c = script(
        "echo id=$(id -u):$(id -g); echo pwd=$(pwd); echo home=$HOME; echo mine=$MINE; \
         echo image_env=$FROM_IMAGE; echo capeff=$(grep CapEff /proc/self/status | cut -f2); \
         echo capbnd=$(grep CapBnd /proc/self/status | cut -f2); \
         echo x > /root/x 2>/dev/null && echo root_home=writable || echo root_home=denied",
    );
    c.user = Some("nobody".into());
    c.working_dir = Some("/work/dir".into());
    let mut u = unit("user", c);
    u.env.insert("MINE".into(), "unit".into());
    u.env.insert("FROM_IMAGE".into(), "overridden".into());
    let out = env.run(&u, &Extras::default())?;
    ensure!(out.code == 0, "exit {}: {}", out.code, out.stderr);
    ensure_eq!(out.expect("id")?, "65534:65534");
    ensure_eq!(out.expect("pwd")?, "/work/dir");
    ensure_eq!(out.expect("home")?, "/nonexistent");
    ensure_eq!(out.expect("mine")?, "unit");
    ensure_eq!(out.expect("image_env")?, "overridden");
    // A non-root user has no effective capabilities after exec.
    ensure_eq!(out.expect("capeff")?, "0000000000000000");
    ensure_eq!(out.expect("capbnd")?, CAPBND);
    ensure_eq!(out.expect("root_home")?, "denied");
    // The working directory was created inside the rootfs, not on the host.
    ensure!(
        env.container_dir.join("upper/work/dir").is_dir(),
        "no /work/dir in the upper"
    );
    ensure!(
        !Path::new("/work/dir").exists(),
        "/work/dir created on the host"
    );
    Ok(())
}

fn cgroup_limits_and_devices() -> TestResult {
    let mut env = Env::new("limits");
    let mut u = sleeper("limits");
    u.resources = Resources {
        memory_max: Some(64 * 1024 * 1024),
        cpus: Some(0.5),
        cpu_weight: Some(50),
        pids_max: Some(32),
        cpuset: Some("0".into()),
    };
    let s = env.start(&u, &Extras::default())?;
    let cg = env.cgroups_path.clone();
    let own = |ctl: &str| -> Result<bool, Failed> {
        let procs = read(cgroup_dir(ctl, &cg).join("cgroup.procs"))?;
        Ok(procs.lines().any(|l| l.trim() == s.pid.to_string()))
    };
    if is_v1() {
        let limit = (64u64 * 1024 * 1024).to_string();
        ensure_eq!(
            read(cgroup_dir("memory", &cg).join("memory.limit_in_bytes"))?,
            limit
        );
        let memsw = cgroup_dir("memory", &cg).join("memory.memsw.limit_in_bytes");
        if memsw.exists() {
            ensure_eq!(read(memsw)?, limit);
        }
        ensure_eq!(read(cgroup_dir("pids", &cg).join("pids.max"))?, "32");
        ensure_eq!(
            read(cgroup_dir("cpu", &cg).join("cpu.cfs_quota_us"))?,
            "50000"
        );
        ensure_eq!(
            read(cgroup_dir("cpu", &cg).join("cpu.cfs_period_us"))?,
            "100000"
        );
        ensure_eq!(read(cgroup_dir("cpu", &cg).join("cpu.shares"))?, "512");
        ensure_eq!(read(cgroup_dir("cpuset", &cg).join("cpuset.cpus"))?, "0");
        for ctl in ["memory", "pids", "cpu", "devices", "freezer"] {
            ensure!(own(ctl)?, "init not in the {ctl} cgroup");
        }
        let list = read(cgroup_dir("devices", &cg).join("devices.list"))?;
        let mut got: Vec<&str> = list.lines().collect();
        got.sort();
        let mut want = vec![
            "c 1:3 rwm",
            "c 1:5 rwm",
            "c 1:7 rwm",
            "c 1:8 rwm",
            "c 1:9 rwm",
            "c 5:0 rwm",
            "c 136:* rwm",
            "c 5:2 rwm",
        ];
        want.sort();
        ensure_eq!(got, want);
    } else {
        let dir = cgroup_dir("", &cg);
        ensure_eq!(
            read(dir.join("memory.max"))?,
            (64u64 * 1024 * 1024).to_string()
        );
        if dir.join("memory.swap.max").exists() {
            ensure_eq!(read(dir.join("memory.swap.max"))?, "0");
        }
        ensure_eq!(read(dir.join("pids.max"))?, "32");
        ensure_eq!(read(dir.join("cpu.max"))?, "50000 100000");
        ensure_eq!(read(dir.join("cpu.weight"))?, "50");
        ensure_eq!(read(dir.join("cpuset.cpus"))?, "0");
        ensure!(own("")?, "init not in its cgroup");
    }
    kill_all(&env.id, &env.state_root, libc::SIGKILL)?;
    env.finish(s)?;
    Ok(())
}

fn kill_and_delete_leave_nothing() -> TestResult {
    let mut env = Env::new("gone");
    let s = env.start(&sleeper("gone"), &Extras::default())?;
    let pid = s.pid;
    ensure!(!env.cgroup_dirs().is_empty(), "no cgroup created");
    ensure!(
        !mounts_under(&env.container_dir).is_empty(),
        "rootfs not mounted"
    );
    // SIGTERM to a pid 1 without a handler does nothing; SIGKILL does.
    kill(&env.id, &env.state_root, libc::SIGTERM)?;
    std::thread::sleep(Duration::from_millis(50));
    ensure_eq!(
        state(&env.id, &env.state_root)?.map(|s| s.status),
        Some(Status::Running)
    );
    kill(&env.id, &env.state_root, libc::SIGKILL)?;
    let code = wait_exit(pid, Instant::now() + TIMEOUT)?;
    env.forget(pid);
    ensure_eq!(code, 128 + libc::SIGKILL);
    let st = state(&env.id, &env.state_root)?.ok_or("no state")?;
    ensure_eq!(st.status, Status::Stopped);
    ensure_eq!(st.pid, None);
    delete(&env.id, &env.state_root, false)?;
    ensure!(
        !env.state_root.join(&env.id).exists(),
        "state dir left behind"
    );
    ensure_eq!(state(&env.id, &env.state_root)?, None);
    ensure_eq!(env.cgroup_dirs(), Vec::<std::path::PathBuf>::new());
    // Deleting again is fine.
    delete(&env.id, &env.state_root, true)?;
    unmount_rootfs(&env.container_dir)?;
    ensure_eq!(mounts_under(&env.container_dir), Vec::<String>::new());
    ensure_eq!(mounts_under(env.dir.path()), Vec::<String>::new());
    unmount_rootfs(&env.container_dir)?;
    drop(s);
    Ok(())
}

fn exec_in_a_running_container() -> TestResult {
    let mut env = Env::new("exec");
    let mut u = sleeper("exec");
    if let jarvis_unit::Exec::Container(c) = &mut u.exec {
        c.user = Some("nobody".into());
        c.working_dir = Some("/tmp".into());
    }
    u.env.insert("MINE".into(), "unit".into());
    let s = env.start(&u, &Extras::default())?;
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let stdin: OwnedFd = std::fs::File::open("/dev/null")?.into();
    let argv: Vec<String> = [
        "/bin/sh",
        "-c",
        "echo pid=$$; echo host=$(hostname); echo id=$(id -u); echo pwd=$(pwd); echo mine=$MINE; \
         echo seccomp=$(grep Seccomp: /proc/self/status | cut -f2); \
         echo nnp=$(grep NoNewPrivs /proc/self/status | cut -f2); \
         echo capbnd=$(grep CapBnd /proc/self/status | cut -f2); \
         echo init=$(cat /proc/1/comm); \
         unshare -U true 2>/dev/null; echo unshare=$?; exit 3",
    ]
    .map(String::from)
    .to_vec();
    let pid = exec_in(
        &env.id,
        &env.state_root,
        &argv,
        Stdio {
            stdin,
            stdout: out_w,
            stderr: err_w,
        },
    )?;
    env.adopt(pid);
    let out = env.finish(Started {
        pid,
        stdout: out_r,
        stderr: err_r,
    })?;
    ensure_eq!(out.code, 3);
    ensure!(out.expect("pid")? != "1", "exec'd process is pid 1");
    ensure_eq!(out.expect("host")?, "exec");
    ensure_eq!(out.expect("id")?, "65534");
    ensure_eq!(out.expect("pwd")?, "/tmp");
    ensure_eq!(out.expect("mine")?, "unit");
    ensure_eq!(out.expect("seccomp")?, "2");
    ensure_eq!(out.expect("nnp")?, "1");
    ensure_eq!(out.expect("capbnd")?, CAPBND);
    ensure_eq!(out.expect("init")?, "sleep");
    ensure!(out.expect("unshare")? != "0", "unshare -U worked in exec");
    kill_all(&env.id, &env.state_root, libc::SIGKILL)?;
    env.finish(s)?;
    Ok(())
}

fn failed_start_cleans_up() -> TestResult {
    let mut env = Env::new("fail");
    let r = env.start(
        &unit("fail", container(&["/no/such/program"])),
        &Extras::default(),
    );
    ensure!(r.is_err(), "a missing program started");
    let msg = r.err().map(|e| format!("{e:?}")).unwrap_or_default();
    ensure!(msg.contains("/no/such/program"), "error: {msg}");
    ensure!(
        !env.state_root.join(&env.id).exists(),
        "state dir left behind"
    );
    ensure_eq!(env.cgroup_dirs(), Vec::<std::path::PathBuf>::new());
    Ok(())
}

fn overlay_of_many_layers() -> TestResult {
    let base = tempfile::tempdir()?;
    // 40 layers with long names: the options do not fit mount(2)'s page, so
    // this goes through fsconfig's lowerdir+.
    let mut layers = Vec::new();
    for i in 0..40 {
        let d = base
            .path()
            .join(format!("layer-{i:02}-{}", "x".repeat(120)));
        std::fs::create_dir(&d)?;
        std::fs::write(d.join("top"), format!("{i}"))?;
        std::fs::write(d.join(format!("only-{i}")), "")?;
        layers.push(d);
    }
    let cdir = base.path().join("c");
    let root = match mount_rootfs(&layers, &cdir) {
        Ok(r) => r,
        Err(RootfsError::Io { source, .. }) if source.raw_os_error() == Some(libc::EINVAL) => {
            return skip(false, "this kernel has no lowerdir+ (Linux < 6.8)");
        }
        Err(e) => return Err(e.into()),
    };
    let guard = scopeguard(&cdir);
    ensure_eq!(std::fs::read_to_string(root.join("top"))?, "39");
    ensure!(
        root.join("only-0").exists() && root.join("only-39").exists(),
        "a layer is missing"
    );
    std::fs::write(root.join("new"), "upper")?;
    ensure_eq!(std::fs::read_to_string(cdir.join("upper/new"))?, "upper");
    ensure!(!layers[39].join("new").exists(), "wrote into a lower");
    ensure!(
        matches!(
            mount_rootfs(&layers, &cdir),
            Err(RootfsError::AlreadyMounted(_))
        ),
        "mounted twice"
    );
    // The rootfs is nodev.
    let info = mounts_under(&root);
    ensure!(
        info.iter().any(|l| l.contains("nodev")),
        "not nodev: {info:?}"
    );
    drop(guard);
    ensure_eq!(mounts_under(&cdir), Vec::<String>::new());
    // Bad layer paths.
    ensure!(
        matches!(
            mount_rootfs(&[Path::new("/a,b").into()], &base.path().join("d")),
            Err(RootfsError::BadLayerPath(_))
        ),
        "accepted a comma"
    );
    Ok(())
}

struct Unmount<'a>(&'a Path);

impl Drop for Unmount<'_> {
    fn drop(&mut self) {
        let _ = unmount_rootfs(self.0);
    }
}

fn scopeguard(dir: &Path) -> Unmount<'_> {
    Unmount(dir)
}
