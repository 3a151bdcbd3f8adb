//! Per-test environments, bounded waits and reads, cgroup lookups.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use jarvis_container::oci_spec::image::ImageConfiguration;
use jarvis_container::{
    build_spec, create_and_start, delete, mount_rootfs, rootfs_path, unmount_rootfs, write_bundle,
    write_etc_files, Extras, SpecInput, Stdio, UserDb,
};
use jarvis_unit::{Container, Exec, Network, Unit};
use libtest_mimic::Failed;
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::fixture;

pub type TestResult = Result<(), Failed>;

/// Says that a test cannot run, and why: `SKIPPED: <reason>` on stderr, in
/// the runner's output. A prerequisite CI provides (`ci_provides`) fails
/// the test instead under `CI=true`, where a skip would hide a broken setup.
pub fn skip(ci_provides: bool, reason: &str) -> TestResult {
    let ci = std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1");
    if ci_provides && ci {
        return Err(format!("{reason}; CI provides this, so it must not be skipped there").into());
    }
    eprintln!("SKIPPED: {reason}");
    Ok(())
}

pub const TIMEOUT: Duration = Duration::from_secs(20);

#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+).into());
        }
    };
}

#[macro_export]
macro_rules! ensure_eq {
    ($a:expr, $b:expr) => {{
        let (a, b) = (&$a, &$b);
        if a != b {
            return Err(format!(
                "{} = {:?}, expected {:?} ({}:{})",
                stringify!($a),
                a,
                b,
                file!(),
                line!()
            )
            .into());
        }
    }};
}

pub fn container(argv: &[&str]) -> Container {
    Container {
        command: Some(argv.iter().map(|s| s.to_string()).collect()),
        ..Container::new("busybox").with_network(Network::Host)
    }
}

pub fn script(s: &str) -> Container {
    container(&["/bin/sh", "-c", s])
}

pub fn unit(name: &str, c: Container) -> Unit {
    Unit::new(name, Exec::Container(c))
}

pub fn image() -> ImageConfiguration {
    serde_json::from_value(serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": []},
        "config": {"Env": ["PATH=/bin", "FROM_IMAGE=yes"], "Cmd": ["sh"]},
    }))
    .unwrap()
}

/// The roots of the cgroup hierarchies: `/sys/fs/cgroup` on pure v2, every
/// mounted hierarchy under it otherwise.
pub fn cgroup_roots() -> Vec<PathBuf> {
    let base = Path::new("/sys/fs/cgroup");
    if base.join("cgroup.controllers").exists() {
        return vec![base.to_path_buf()];
    }
    let mut roots: Vec<PathBuf> = std::fs::read_dir(base)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.is_dir() && !p.is_symlink())
                .collect()
        })
        .unwrap_or_default();
    roots.sort();
    roots
}

pub fn is_v1() -> bool {
    Path::new("/sys/fs/cgroup/memory/memory.limit_in_bytes").exists()
}

/// Where a v1 controller's (or, on v2, the unified) cgroup directory is.
pub fn cgroup_dir(controller: &str, cgroups_path: &str) -> PathBuf {
    let rel = cgroups_path.trim_start_matches('/');
    if is_v1() {
        Path::new("/sys/fs/cgroup").join(controller).join(rel)
    } else {
        Path::new("/sys/fs/cgroup").join(rel)
    }
}

pub fn read(path: impl AsRef<Path>) -> Result<String, Failed> {
    std::fs::read_to_string(path.as_ref())
        .map(|s| s.trim().to_string())
        .map_err(|e| format!("reading {}: {e}", path.as_ref().display()).into())
}

/// A field of `/proc/<pid>/status`.
pub fn status_field(pid: i32, field: &str) -> Result<String, Failed> {
    let text = read(format!("/proc/{pid}/status"))?;
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(|v| v.trim().to_string())
        .ok_or_else(|| format!("no {field} in /proc/{pid}/status").into())
}

pub fn mounts_under(dir: &Path) -> Vec<String> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let dir = dir.to_string_lossy().to_string();
    text.lines()
        .filter(|l| l.split(' ').nth(4).is_some_and(|m| m.starts_with(&dir)))
        .map(str::to_string)
        .collect()
}

pub struct Output {
    /// The exit code, or 128 + the signal.
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// The value of a `key=value` line of stdout.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
    }

    pub fn expect(&self, key: &str) -> Result<&str, Failed> {
        self.get(key).ok_or_else(|| {
            format!(
                "no {key}= in the output\nstdout:\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
            .into()
        })
    }
}

pub struct Started {
    pub pid: i32,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// One test's container: unique id, directories and cgroup parent.
pub struct Env {
    pub id: String,
    pub dir: tempfile::TempDir,
    pub container_dir: PathBuf,
    pub state_root: PathBuf,
    pub cgroup_parent: String,
    pub cgroups_path: String,
    children: Vec<i32>,
}

impl Env {
    pub fn new(name: &str) -> Env {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        let dir = tempfile::Builder::new().prefix("jct-").tempdir().unwrap();
        let cgroup_parent = format!("/jarvis-ctest-{pid}-{n}");
        Env {
            id: format!("ct-{pid}-{n}-{name}"),
            container_dir: dir.path().join("c"),
            state_root: dir.path().join("state"),
            cgroups_path: format!("{cgroup_parent}/{name}"),
            cgroup_parent,
            dir,
            children: vec![],
        }
    }

    /// Mounts the rootfs and writes the bundle for `unit`.
    pub fn prepare(&self, unit: &Unit, extras: &Extras) -> TestResult {
        let layers = fixture::layers();
        let rootfs = mount_rootfs(&layers.dirs, &self.container_dir)?;
        let users = UserDb::load(&rootfs)?;
        let Exec::Container(c) = &unit.exec else {
            return Err("not a container unit".into());
        };
        let etc = write_etc_files(
            &self.container_dir,
            &unit.name,
            &c.network,
            &jarvis_container::NetSetup::default(),
        )?;
        let img = image();
        let spec = build_spec(&SpecInput {
            unit,
            image: &img,
            users: &users,
            rootfs: &rootfs,
            cgroups_path: &self.cgroups_path,
            etc: Some(&etc),
            extras,
            netns: None,
            run: &Default::default(),
        })?;
        write_bundle(&self.container_dir, &spec)?;
        Ok(())
    }

    /// Where [`Env::run_bundle`] keeps named volumes.
    pub fn volume_dir(&self) -> PathBuf {
        self.dir.path().join("volumes")
    }

    /// Where [`Env::run_bundle`] mounts the run's secrets.
    pub fn secrets_dir(&self) -> PathBuf {
        self.dir.path().join("secrets")
    }

    /// Writes the bundle as jarvisd does, through `prepare_bundle` (named
    /// volumes, secrets, init, host devices), with the container id as the
    /// unit's name. Whatever an earlier run of this Env left is cleared.
    pub fn prepare_bundle(&self, unit: &Unit) -> TestResult {
        let mut unit = unit.clone();
        unit.name = self.id.clone();
        let layers = fixture::layers();
        jarvis_container::prepare_bundle(&jarvis_container::PrepareInput {
            unit: &unit,
            image: &image(),
            layers: &layers.dirs,
            dir: &self.container_dir,
            state_root: &self.state_root,
            cgroups_path: &self.cgroups_path,
            extras: &Extras::default(),
            net: &jarvis_container::NetSetup::default(),
            volume_dir: &self.volume_dir(),
            secrets_dir: &self.secrets_dir(),
        })?;
        Ok(())
    }

    /// Runs `unit` to its end through [`Env::prepare_bundle`].
    pub fn run_bundle(&mut self, unit: &Unit) -> Result<Output, Failed> {
        self.prepare_bundle(unit)?;
        let s = self.launch()?;
        self.finish(s)
    }

    /// Prepares and starts the container; stdin is /dev/null, stdout and
    /// stderr are pipes.
    pub fn start(&mut self, unit: &Unit, extras: &Extras) -> Result<Started, Failed> {
        self.prepare(unit, extras)?;
        self.launch()
    }

    /// Starts the bundle written last.
    pub fn launch(&mut self) -> Result<Started, Failed> {
        let (stdout_r, stdout_w) = pipe()?;
        let (stderr_r, stderr_w) = pipe()?;
        let stdin: OwnedFd = std::fs::File::open("/dev/null")?.into();
        let pid = create_and_start(
            &self.id,
            &self.container_dir,
            &self.state_root,
            Stdio {
                stdin,
                stdout: stdout_w,
                stderr: stderr_w,
            },
        )?;
        self.children.push(pid);
        Ok(Started {
            pid,
            stdout: stdout_r,
            stderr: stderr_r,
        })
    }

    /// Runs the container to its end and collects its output.
    pub fn run(&mut self, unit: &Unit, extras: &Extras) -> Result<Output, Failed> {
        let s = self.start(unit, extras)?;
        self.finish(s)
    }

    /// Collects a started process's output and its exit.
    pub fn finish(&mut self, s: Started) -> Result<Output, Failed> {
        let deadline = Instant::now() + TIMEOUT;
        let (stdout, stderr) = collect(&s.stdout, &s.stderr, deadline)?;
        let code = wait_exit(s.pid, deadline)?;
        self.children.retain(|&p| p != s.pid);
        Ok(Output {
            code,
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        })
    }

    /// Remembers a child (an exec'd process) to reap at the end.
    pub fn adopt(&mut self, pid: i32) {
        self.children.push(pid);
    }

    pub fn forget(&mut self, pid: i32) {
        self.children.retain(|&p| p != pid);
    }

    pub fn rootfs(&self) -> PathBuf {
        rootfs_path(&self.container_dir)
    }

    /// The container's cgroup directories that exist, in every hierarchy.
    pub fn cgroup_dirs(&self) -> Vec<PathBuf> {
        let rel = self.cgroups_path.trim_start_matches('/');
        cgroup_roots()
            .into_iter()
            .map(|r| r.join(rel))
            .filter(|p| p.exists())
            .collect()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Err(e) = delete(&self.id, &self.state_root, true) {
            eprintln!("cleanup: delete {}: {e}", self.id);
        }
        for pid in std::mem::take(&mut self.children) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            let _ = wait_exit(pid, Instant::now() + Duration::from_secs(5));
        }
        if let Err(e) = unmount_rootfs(&self.container_dir) {
            eprintln!("cleanup: unmount: {e}");
        }
        if let Err(e) = jarvis_container::secrets::unmount(&self.secrets_dir()) {
            eprintln!("cleanup: unmount the secrets: {e}");
        }
        let rel_leaf = self.cgroups_path.trim_start_matches('/').to_string();
        let rel_parent = self.cgroup_parent.trim_start_matches('/').to_string();
        for root in cgroup_roots() {
            for rel in [&rel_leaf, &rel_parent] {
                let d = root.join(rel);
                if !d.exists() {
                    continue;
                }
                for _ in 0..50 {
                    if std::fs::remove_dir(&d).is_ok() {
                        break;
                    }
                    if let Ok(procs) = std::fs::read_to_string(d.join("cgroup.procs")) {
                        for p in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                            let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
                        }
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
    }
}

pub fn pipe() -> Result<(OwnedFd, OwnedFd), Failed> {
    Ok(nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?)
}

/// Reads both descriptors to their end, or fails at the deadline.
pub fn collect(
    out: &OwnedFd,
    err: &OwnedFd,
    deadline: Instant,
) -> Result<(Vec<u8>, Vec<u8>), Failed> {
    let mut bufs = [Vec::new(), Vec::new()];
    let mut open = [true, true];
    let fds = [out, err];
    while open.iter().any(|&o| o) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!(
                "timed out reading the container's output; so far:\n{}\n{}",
                String::from_utf8_lossy(&bufs[0]),
                String::from_utf8_lossy(&bufs[1])
            )
            .into());
        }
        let idx: Vec<usize> = (0..2).filter(|&i| open[i]).collect();
        let mut pfds: Vec<PollFd> = idx
            .iter()
            .map(|&i| PollFd::new(fds[i].as_fd(), PollFlags::POLLIN))
            .collect();
        let ms = left.as_millis().min(1000) as u16;
        match poll(&mut pfds, PollTimeout::from(ms)) {
            Ok(0) | Err(Errno::EINTR) => continue,
            Ok(_) => {}
            Err(e) => return Err(e.into()),
        }
        let ready: Vec<bool> = pfds
            .iter()
            .map(|p| !p.revents().unwrap_or(PollFlags::empty()).is_empty())
            .collect();
        for (k, &i) in idx.iter().enumerate() {
            if !ready[k] {
                continue;
            }
            let mut chunk = [0u8; 4096];
            match nix::unistd::read(fds[i].as_raw_fd(), &mut chunk) {
                Ok(0) => open[i] = false,
                Ok(n) => bufs[i].extend_from_slice(&chunk[..n]),
                Err(Errno::EINTR) | Err(Errno::EAGAIN) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    let [a, b] = bufs;
    Ok((a, b))
}

/// Waits for a child to exit, or fails at the deadline.
pub fn wait_exit(pid: i32, deadline: Instant) -> Result<i32, Failed> {
    loop {
        match waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(128 + sig as i32),
            Ok(_) => {}
            Err(Errno::EINTR) => {}
            Err(e) => return Err(format!("waitpid {pid}: {e}").into()),
        }
        if Instant::now() >= deadline {
            return Err(format!("pid {pid} did not exit in time").into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Waits until `f` holds, or fails at the deadline.
pub fn wait_until(what: &str, mut f: impl FnMut() -> bool) -> TestResult {
    let deadline = Instant::now() + TIMEOUT;
    while !f() {
        if Instant::now() >= deadline {
            return Err(format!("timed out waiting for {what}").into());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}
