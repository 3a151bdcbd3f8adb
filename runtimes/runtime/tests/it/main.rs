//! The runtimes against the real kernel, as root: runs started, watched,
//! killed and removed through [`jarvis_runtime::Runtimes`], with the cgroup
//! files read back from `/sys/fs/cgroup`.
//!
//! This binary is also its own shim and container exec helper,
//! as jarvisd is: the runtimes re-execute `/proc/self/exe`. Like jarvisd it
//! runs from a sealed copy of itself (CVE-2019-5736) before any of that.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jarvis_runtime::logfile::LogConfig;
use jarvis_runtime::{Config, Exit, Runtime, Runtimes, StartSpec, UnitCgroup};
use jarvis_unit::Unit;
use libtest_mimic::{Arguments, Failed, Trial};

mod inputs;

fn main() {
    let mode = std::env::args().nth(1);
    if let Err(e) = pentacle::ensure_sealed() {
        eprintln!("cannot run from a sealed copy: {e}");
        std::process::exit(1);
    }
    if mode.as_deref() == Some(jarvis_shim::SHIM_ARG) {
        jarvis_shim::shim_main();
    }
    if mode.as_deref() == Some(jarvis_shim::CEXEC_ARG) {
        jarvis_shim::cexec_main();
    }
    let args = Arguments::from_args();
    let root = nix::unistd::geteuid().is_root();
    if !root {
        eprintln!("not root: the kernel tests of jarvis-runtime are ignored");
    }
    type Test = fn() -> Result<(), Failed>;
    let tests: Vec<(&str, Test)> = vec![
        (
            "a_native_run_is_limited_watched_killed_and_removed",
            a_native_run_is_limited_watched_killed_and_removed,
        ),
        (
            "a_container_cgroup_is_libcontainers_alone",
            a_container_cgroup_is_libcontainers_alone,
        ),
        (
            "env_files_are_read_at_each_start",
            inputs::env_files_are_read_at_each_start,
        ),
        (
            "native_secrets_in_credentials_directory",
            inputs::native_secrets_in_credentials_directory,
        ),
    ];
    let trials = tests
        .into_iter()
        .map(|(name, f)| Trial::test(name, f).with_ignored_flag(!root))
        .collect();
    libtest_mimic::run(&args, trials).exit();
}

/// A temporary state dir and cgroup parent, and the runtimes over them.
struct Env {
    dir: tempfile::TempDir,
    rts: Runtimes,
    notes: Arc<Mutex<Vec<String>>>,
}

impl Env {
    fn new(tag: &str) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        std::fs::create_dir_all(&state).unwrap();
        let rts = Runtimes::new(Config {
            launcher: PathBuf::from("/proc/self/exe"),
            native_shim: None,
            container_shim: None,
            cgroup_parent: format!("jarvis-rt-{tag}-{}", std::process::id()),
            run_dir: state.join("run"),
            state_dir: state.clone(),
            roots: jarvis_hardware::Roots::from_env(),
            images: jarvis_image::ImageStore::open(state.join("images")).unwrap(),
            pull: Default::default(),
            subnet_pool: jarvis_runtime::DEFAULT_SUBNET_POOL.parse().unwrap(),
            volume_dir: state.join("volumes"),
            shims: Default::default(),
            age_identity: state.join("age.key"),
        })
        .unwrap();
        Env {
            dir,
            rts,
            notes: Default::default(),
        }
    }

    fn spec(&self, unit: Unit) -> StartSpec {
        let notes = self.notes.clone();
        StartSpec {
            log: LogConfig {
                path: self.dir.path().join(format!("{}.log", unit.name)),
                max_size: 1 << 20,
                max_files: 1,
            },
            unit,
            gen: 1,
            placement: None,
            notes: Arc::new(move |n: &str| notes.lock().unwrap().push(n.to_string())),
        }
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let rt = runtime();
        for unit in ["web", "box"] {
            rt.block_on(self.rts.remove(unit));
        }
        rt.block_on(self.rts.remove_parent());
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn unit(text: &str) -> Unit {
    jarvis_unit::parse_unit(Path::new("/units/web.toml"), text)
        .map_err(|d| format!("{d:?}"))
        .unwrap()
}

fn check(ok: bool, what: impl Into<String>) -> Result<(), Failed> {
    if ok {
        Ok(())
    } else {
        Err(what.into().into())
    }
}

/// `/sys/fs/cgroup/<root>` of every mounted hierarchy (one on pure v2).
fn hierarchies() -> Vec<PathBuf> {
    let base = Path::new("/sys/fs/cgroup");
    if base.join("cgroup.controllers").exists() {
        return vec![base.to_path_buf()];
    }
    std::fs::read_dir(base)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_dir() && !p.is_symlink())
                .collect()
        })
        .unwrap_or_default()
}

/// The unit's cgroup directory in the hierarchy of `controller`.
fn cgroup_file(cgroup: &str, controller: &str, file: &str) -> PathBuf {
    let base = Path::new("/sys/fs/cgroup");
    let root = if base.join("cgroup.controllers").exists() {
        base.to_path_buf()
    } else {
        base.join(controller)
    };
    root.join(cgroup.trim_start_matches('/')).join(file)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|e| format!("<{}: {e}>", path.display()))
}

/// Every hierarchy's directory of `cgroup` that exists.
fn existing_dirs(cgroup: &str) -> Vec<PathBuf> {
    hierarchies()
        .into_iter()
        .map(|h| h.join(cgroup.trim_start_matches('/')))
        .filter(|d| d.is_dir())
        .collect()
}

fn a_native_run_is_limited_watched_killed_and_removed() -> Result<(), Failed> {
    let env = Env::new("native");
    let rt = runtime();
    rt.block_on(async {
        let u = unit(
            r#"
[native]
command = ["sh", "-c", "echo started; exec sleep 1000"]
[resources]
memory_max = "64M"
pids_max = 20
"#,
        );
        let run = env
            .rts
            .start(env.spec(u.clone()))
            .await
            .map_err(|e| e.to_string())?;
        let cg = env.rts.cgroup_path("web");
        check(
            std::fs::read_to_string(format!("/proc/{}/cgroup", run.pid))
                .unwrap_or_default()
                .lines()
                .any(|l| l.ends_with(&format!(":{cg}"))),
            format!("pid {} is in {cg}", run.pid),
        )?;
        let stats = env.rts.stats("web").await;
        check(
            stats.memory_max == Some(64 << 20),
            format!("memory_max {stats:?}"),
        )?;
        check(
            read(&cgroup_file(&cg, "pids", "pids.max")) == "20",
            "pids.max",
        )?;
        let probe = env
            .rts
            .exec_probe(
                &u,
                vec!["sh".into(), "-c".into(), "echo $JARVIS_UNIT".into()],
            )
            .await;
        check(probe == Ok("web".into()), format!("exec probe: {probe:?}"))?;
        let failing = env.rts.exec_probe(&u, vec!["false".into()]).await;
        check(failing.is_err(), format!("a failing probe: {failing:?}"))?;

        env.rts.kill_all("web").await?;
        let exit = tokio::time::timeout(Duration::from_secs(10), env.rts.wait("web", run))
            .await
            .map_err(|_| "no exit within 10s")?;
        check(
            exit == Exit {
                code: None,
                signal: Some(9),
                oom_killed: false,
            },
            format!("exit {exit:?}"),
        )?;
        check(
            !existing_dirs(&cg).is_empty(),
            "a native cgroup stays until removed",
        )?;
        env.rts.remove("web").await;
        check(
            existing_dirs(&cg).is_empty(),
            format!("removed: {:?}", existing_dirs(&cg)),
        )
    })
}

/// An OCI layout of busybox at `dir`, tag `latest`, built with umoci.
fn busybox_layout(dir: &Path) -> Result<(), Failed> {
    let run = |args: &[&str]| -> Result<(), Failed> {
        let out = std::process::Command::new("umoci")
            .args(args)
            .output()
            .map_err(|e| format!("umoci (apt-get install umoci): {e}"))?;
        check(
            out.status.success(),
            format!("umoci {args:?}: {}", String::from_utf8_lossy(&out.stderr)),
        )
    };
    let image = format!("{}:latest", dir.display());
    let bundle = dir.with_extension("bundle");
    run(&["init", "--layout", &dir.display().to_string()])?;
    run(&["new", "--image", &image])?;
    run(&["unpack", "--image", &image, &bundle.display().to_string()])?;
    let root = bundle.join("rootfs");
    for d in ["bin", "etc", "tmp", "proc", "sys", "dev"] {
        std::fs::create_dir_all(root.join(d))?;
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox"))
        .map_err(|e| format!("/bin/busybox (apt-get install busybox-static): {e}"))?;
    for applet in ["sh", "sleep", "echo", "cat"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet))?;
    }
    std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n")?;
    std::fs::write(root.join("etc/group"), "root:x:0:\n")?;
    run(&["repack", "--image", &image, &bundle.display().to_string()])?;
    run(&["config", "--image", &image, "--config.cmd", "sh"])
}

/// libcontainer alone creates and limits a container's cgroup: a cgroup an
/// earlier (native) run left with other limits is not reused, no hierarchy
/// holds a directory for it that the container is not in, and the
/// container's end leaves none.
fn a_container_cgroup_is_libcontainers_alone() -> Result<(), Failed> {
    let env = Env::new("container");
    let layout = env.dir.path().join("layout");
    busybox_layout(&layout)?;
    let rt = runtime();
    rt.block_on(async {
        // What a native run of the unit left: its cgroup, stricter limits.
        let cg = env.rts.cgroup_path("box");
        let parent = cg
            .trim_start_matches('/')
            .split('/')
            .next()
            .unwrap()
            .to_string();
        let stale = jarvis_unit::Resources {
            memory_max: Some(32 << 20),
            pids_max: Some(5),
            ..Default::default()
        };
        UnitCgroup::create(&parent, "box", &stale)?;

        let mut u = unit(&format!(
            r#"
[container]
image = "oci-layout:{}:latest"
command = ["sh", "-c", "echo hello; exec sleep 1000"]
[resources]
memory_max = "64M"
"#,
            layout.display()
        ));
        u.name = "box".into();
        let run = env
            .rts
            .start(env.spec(u.clone()))
            .await
            .map_err(|e| e.to_string())?;
        let notes = env.notes.lock().unwrap().clone();
        check(
            notes.iter().any(|n| n.starts_with("pulling image")),
            format!("notes: {notes:?}"),
        )?;
        let mem = if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
            "memory.max"
        } else {
            "memory.limit_in_bytes"
        };
        check(
            read(&cgroup_file(&cg, "memory", mem)) == (64u64 << 20).to_string(),
            format!(
                "the unit's memory limit: {}",
                read(&cgroup_file(&cg, "memory", mem))
            ),
        )?;
        check(
            read(&cgroup_file(&cg, "pids", "pids.max")) == "max",
            format!(
                "no pids limit, not the stale one: {}",
                read(&cgroup_file(&cg, "pids", "pids.max"))
            ),
        )?;
        // One owner: every directory the unit's cgroup has holds the
        // container's init.
        for d in existing_dirs(&cg) {
            let procs = read(&d.join("cgroup.procs"));
            check(
                procs.lines().any(|p| p == run.pid.to_string()),
                format!("{} holds {procs:?}, not the init {}", d.display(), run.pid),
            )?;
        }
        let probe = env
            .rts
            .exec_probe(&u, vec!["cat".into(), "/etc/hostname".into()])
            .await;
        check(probe == Ok("box".into()), format!("exec probe: {probe:?}"))?;

        env.rts.kill_all("box").await?;
        let exit = tokio::time::timeout(Duration::from_secs(10), env.rts.wait("box", run))
            .await
            .map_err(|_| "no exit within 10s")?;
        check(exit.signal == Some(9), format!("exit {exit:?}"))?;
        check(
            existing_dirs(&cg).is_empty(),
            format!(
                "the container's end leaves no cgroup: {:?}",
                existing_dirs(&cg)
            ),
        )
    })
}
