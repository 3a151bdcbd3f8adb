//! The seccomp allowlist, seen from inside real containers: what the
//! profile does not name fails with EPERM, what it names still works, the
//! capability conditions follow the unit, and `exec` gets the same filter.
//!
//! The probe is a small static C program, compiled here and bind-mounted
//! read-only at `/opt/seccomp`. Each check is run on the host first: a
//! syscall counts as refused by the filter only if the host does not refuse
//! it too.

use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::Command;

use jarvis_container::{exec_in, kill_all, ExtraMount, Extras, Stdio};
use libtest_mimic::Failed;

use crate::fixture;
use crate::helpers::*;
use crate::tests::Test;
use crate::{ensure, ensure_eq};

pub const ALL: &[Test] = &[
    (
        "seccomp_unlisted_syscalls_fail_with_eperm",
        unlisted_syscalls_fail_with_eperm,
    ),
    (
        "seccomp_capabilities_open_their_syscalls",
        capabilities_open_their_syscalls,
    ),
    (
        "seccomp_exec_gets_the_same_filter",
        exec_gets_the_same_filter,
    ),
    ("seccomp_busybox_workload_runs", busybox_workload_runs),
];

const PROBE_C: &str = r#"
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

static void report(const char *what, long r) {
    if (r < 0) printf("%s=%d\n", what, errno);
    else printf("%s=ok\n", what);
}

int main(void) {
    report("getpid", syscall(SYS_getpid));
    /* Not in the profile at all. */
    report("pkey_alloc", syscall(SYS_pkey_alloc, 0, 0));
    report("keyctl", syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */,
                             -3 /* KEY_SPEC_SESSION_KEYRING */, 0));
    /* A number no kernel has: ENOSYS without a filter. */
    report("unnumbered", syscall(1000));
    /* personality: only the values Docker lists. */
    report("personality_query", syscall(SYS_personality, 0xffffffffUL));
    report("personality_noaslr", syscall(SYS_personality, 0x0040000UL));
    /* Withheld. */
    unsigned char params[120] = {0};
    long fd = syscall(SYS_io_uring_setup, 1, params);
    report("io_uring_setup", fd);
    if (fd >= 0) close((int)fd);
    fd = socket(AF_VSOCK, SOCK_STREAM, 0);
    report("socket_vsock", fd);
    if (fd >= 0) close((int)fd);
    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    report("socket_unix", fd);
    if (fd >= 0) close((int)fd);
    /* Allowed with CAP_SYS_PTRACE only. */
    report("kcmp", syscall(SYS_kcmp, getpid(), getpid(), 0 /* KCMP_FILE */, 1, 1));
    fflush(stdout);
    return 0;
}
"#;

/// Where the probe is inside the container.
const IN_CONTAINER: &str = "/opt/seccomp";

/// The probe, compiled once into a directory of its own.
struct Probe {
    _dir: tempfile::TempDir,
    host_dir: PathBuf,
}

impl Probe {
    /// `None` when `cc -static` does not work here (said as a skip; under
    /// `CI=true`, an error).
    fn build() -> Result<Option<Probe>, Failed> {
        let dir = tempfile::Builder::new().prefix("jct-seccomp-").tempdir()?;
        let host_dir = dir.path().join("bin");
        std::fs::create_dir(&host_dir)?;
        let src = dir.path().join("probe.c");
        std::fs::write(&src, PROBE_C)?;
        let out = Command::new("cc")
            .args(["-static", "-O1", "-o"])
            .arg(host_dir.join("probe"))
            .arg(&src)
            .output();
        match out {
            Ok(o) if o.status.success() => Ok(Some(Probe {
                _dir: dir,
                host_dir,
            })),
            Ok(o) => {
                skip(
                    true,
                    &format!(
                        "`cc -static` failed (CI installs gcc and libc6-dev): {}",
                        String::from_utf8_lossy(&o.stderr)
                    ),
                )?;
                Ok(None)
            }
            Err(e) => {
                skip(true, &format!("no C compiler (CI installs gcc): {e}"))?;
                Ok(None)
            }
        }
    }

    fn extras(&self) -> Extras {
        Extras {
            mounts: vec![ExtraMount {
                host: self.host_dir.clone(),
                container: IN_CONTAINER.into(),
                options: vec!["ro".into(), "nosuid".into(), "nodev".into()],
            }],
            ..Extras::default()
        }
    }

    /// The probe's answers on the host, without any filter.
    fn on_host(&self) -> Result<Output, Failed> {
        let o = Command::new(self.host_dir.join("probe")).output()?;
        Ok(Output {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        })
    }
}

fn probe_argv() -> Vec<String> {
    vec![format!("{IN_CONTAINER}/probe")]
}

fn eperm() -> String {
    libc::EPERM.to_string()
}

/// `key` is refused with EPERM in the container and not on the host.
fn refused(host: &Output, inside: &Output, key: &str) -> Result<(), Failed> {
    let h = host.expect(key)?;
    ensure!(h != eperm(), "{key} gets EPERM on the host too");
    let i = inside.expect(key)?;
    ensure!(i == eperm(), "{key} in the container: {i}, expected EPERM");
    Ok(())
}

fn unlisted_syscalls_fail_with_eperm() -> TestResult {
    let Some(probe) = Probe::build()? else {
        return Ok(());
    };
    let host = probe.on_host()?;
    ensure!(host.code == 0, "probe on the host: {}", host.stderr);
    ensure_eq!(host.expect("unnumbered")?, libc::ENOSYS.to_string());
    let mut env = Env::new("scdeny");
    let argv = probe_argv();
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let out = env.run(&unit("scdeny", container(&argv)), &probe.extras())?;
    ensure!(out.code == 0, "exit {}: {}", out.code, out.stderr);
    ensure_eq!(out.expect("getpid")?, "ok");
    for key in [
        "pkey_alloc",
        "keyctl",
        "unnumbered",
        "personality_noaslr",
        "kcmp",
    ] {
        refused(&host, &out, key)?;
    }
    ensure_eq!(out.expect("personality_query")?, "ok");
    ensure_eq!(out.expect("socket_unix")?, "ok");
    // Refused in the container whatever the host says (vsock may be absent,
    // io_uring disabled by sysctl: then the host gets another errno, or
    // EPERM too).
    ensure_eq!(out.expect("io_uring_setup")?, eperm());
    ensure_eq!(out.expect("socket_vsock")?, eperm());
    Ok(())
}

fn capabilities_open_their_syscalls() -> TestResult {
    let Some(probe) = Probe::build()? else {
        return Ok(());
    };
    let host = probe.on_host()?;
    let mut env = Env::new("sccap");
    let argv = probe_argv();
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let mut u = unit("sccap", container(&argv));
    u.security.capabilities = vec!["CAP_SYS_PTRACE".into()];
    let out = env.run(&u, &probe.extras())?;
    ensure!(out.code == 0, "exit {}: {}", out.code, out.stderr);
    // kcmp now answers as on the host; the rest stays refused.
    ensure_eq!(out.expect("kcmp")?, host.expect("kcmp")?);
    ensure!(out.expect("kcmp")? != eperm(), "kcmp refused on the host");
    refused(&host, &out, "pkey_alloc")?;
    refused(&host, &out, "keyctl")?;
    Ok(())
}

fn exec_gets_the_same_filter() -> TestResult {
    let Some(probe) = Probe::build()? else {
        return Ok(());
    };
    let host = probe.on_host()?;
    let mut env = Env::new("scexec");
    let s = env.start(
        &unit("scexec", container(&["/bin/sleep", "1000"])),
        &probe.extras(),
    )?;
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let stdin: OwnedFd = std::fs::File::open("/dev/null")?.into();
    let pid = exec_in(
        &env.id,
        &env.state_root,
        &probe_argv(),
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
    ensure!(out.code == 0, "exit {}: {}", out.code, out.stderr);
    ensure_eq!(out.expect("getpid")?, "ok");
    for key in ["pkey_alloc", "keyctl", "unnumbered", "personality_noaslr"] {
        refused(&host, &out, key)?;
    }
    ensure_eq!(out.expect("socket_vsock")?, eperm());
    kill_all(&env.id, &env.state_root, libc::SIGKILL)?;
    env.finish(s)?;
    Ok(())
}

/// An ordinary shell workload: pipes, subshells, background jobs, files,
/// links, fifos, archives, scheduling tools. `$1` is a scratch directory.
const WORKLOAD: &str = r#"
cd "$1" || exit 9
echo upper=$(echo hello | tr a-z A-Z | rev)
echo sub=$( (echo x; echo y) | wc -l)
sleep 0.1 & wait $!; echo bg=$?
seq 1 2000 > n; echo sum=$(awk '{s+=$1} END {print s}' n)
sort -rn n > s; echo max=$(head -1 s)
gzip -k n && echo gz=$(zcat n.gz | md5sum | cut -c1-32)
mkdir -p d/e && echo x > d/e/f && tar cf t.tar n d && echo tar=$(tar tf t.tar | wc -l)
ln -s n l && echo link=$(readlink l)
mkfifo f && { echo piped > f & } && echo fifo=$(cat f)
dd if=/dev/zero of=z bs=1k count=64 2>/dev/null; echo dd=$(stat -c %s z)
fallocate -l 4096 fa && echo fallocate=$(stat -c %s fa)
truncate -s 100 z && echo truncate=$(wc -c < z)
mv z y && rm y && echo rm=$([ -e y ] && echo no || echo yes)
chmod 600 fa && echo mode=$(stat -c %a fa)
echo sha=$(echo abc | sha256sum | cut -c1-16)
timeout 1 sleep 5 2>/dev/null; echo timeout=$?
renice -n 1 -p $$ > /dev/null && echo renice=ok
ionice -c 3 true && echo ionice=ok
taskset -p $$ > /dev/null && echo taskset=ok
kill -0 $$ && echo kill=ok
echo find=$(find d | wc -l)
echo nproc=$(nproc)
echo done=yes
"#;

fn busybox_workload_runs() -> TestResult {
    // The same script on the host, with the image's busybox applets only,
    // is the reference.
    let scratch = tempfile::tempdir()?;
    let applets = fixture::layers().dirs[0].join("bin");
    let host = Command::new(applets.join("sh"))
        .args(["-c", WORKLOAD, "sh"])
        .arg(scratch.path())
        .env_clear()
        .env("PATH", &applets)
        .output()?;
    ensure!(host.status.success(), "the workload fails on the host");
    let host = String::from_utf8_lossy(&host.stdout).into_owned();
    ensure!(host.lines().count() >= 20, "host output:\n{host}");
    ensure!(host.contains("sum=2001000\n"), "host output:\n{host}");

    let mut env = Env::new("scwork");
    let mut c = container(&["/bin/sh", "-c", WORKLOAD, "sh", "/tmp"]);
    c.network = jarvis_unit::Network::None;
    let out = env.run(&unit("scwork", c), &Extras::default())?;
    ensure!(out.code == 0, "exit {}: {}", out.code, out.stderr);
    // nproc may differ (the container's cgroup); everything else may not.
    let strip = |s: &str| {
        s.lines()
            .filter(|l| !l.starts_with("nproc="))
            .collect::<Vec<_>>()
            .join("\n")
    };
    ensure_eq!(strip(&out.stdout), strip(&host));
    ensure!(out.stderr.is_empty(), "stderr: {}", out.stderr);
    Ok(())
}
