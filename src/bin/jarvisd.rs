//! jarvisd: the supervisor daemon. Runs' shims are the small binaries
//! installed next to it: `jarvis-shim` for native runs, and `jarvis-cshim`
//! for containers (and the container exec helper), which jarvisd copies
//! into a sealed memfd when it starts and runs only from there. Where one
//! is not installed, this same binary is re-executed instead (`jarvisd
//! __shim UNIT`, shown as `jarvis-shim UNIT`; `__cexec`). These modes are
//! internal. The mode comes from argv[1] alone, so argv[0] is free to name
//! the process.

use std::ffi::OsStr;
use std::os::fd::IntoRawFd;

use jarvis_shim::{CONTAINER_SHIM_ENV, CONTAINER_SHIM_NAME, NATIVE_SHIM_ENV, SHIM_NAME};

fn main() -> std::process::ExitCode {
    let mode = std::env::args_os().nth(1);
    let internal = [jarvis_shim::SHIM_ARG, jarvis_shim::CEXEC_ARG]
        .iter()
        .any(|m| mode.as_deref() == Some(OsStr::new(m)));
    if !internal && !pentacle::is_sealed() {
        find_installed(NATIVE_SHIM_ENV, SHIM_NAME);
        find_installed(CONTAINER_SHIM_ENV, CONTAINER_SHIM_NAME);
    }
    // CVE-2019-5736: jarvisd and its shims (which call into libcontainer) run
    // from a sealed in-memory copy of this binary, so nothing in a container
    // can reach the binary on disk through /proc/PID/exe. Children re-execute
    // /proc/self/exe, that same sealed copy, or the container shim's own.
    if let Err(e) = pentacle::ensure_sealed() {
        eprintln!("jarvisd: cannot run from a sealed copy of itself: {e}");
        return std::process::ExitCode::FAILURE;
    }
    if mode.as_deref() == Some(jarvis_shim::SHIM_ARG.as_ref()) {
        jarvis_shim::shim_main();
    }
    if mode.as_deref() == Some(jarvis_shim::CEXEC_ARG.as_ref()) {
        jarvis_shim::cexec_main();
    }
    // Run from the sealed copy, the kernel names the process after its
    // descriptor ("4", "exe"): name it for ps, top and pgrep.
    set_name("jarvisd");
    seal_container_shim();
    jarvis_supervisor::main()
}

/// Tells the runtime where the binary `name` is (in `env`): next to this
/// binary, found while its path is still known (from the sealed copy
/// `/proc/self/exe` is a memfd). A value from outside is never kept.
fn find_installed(env: &str, name: &str) {
    let found = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.join(name)))
        .filter(|p| p.is_file());
    match found {
        Some(p) => std::env::set_var(env, p),
        None => std::env::remove_var(env),
    }
}

/// Copies the container shim found next to jarvisd into a sealed memfd,
/// once, and points `CONTAINER_SHIM_ENV` at it (`/proc/self/fd/N`): the
/// descriptor stays open, close-on-exec, as long as jarvisd runs, and
/// containers' shims are executions of it (execve of `/proc/self/fd/N`
/// works for a close-on-exec descriptor), so their `/proc/PID/exe` is that
/// memfd, never a file a container could write. If it cannot be copied,
/// containers' shims are re-executions of jarvisd's own sealed copy (the
/// runtime says so in the log).
fn seal_container_shim() {
    let Some(path) = std::env::var_os(CONTAINER_SHIM_ENV) else {
        return;
    };
    std::env::remove_var(CONTAINER_SHIM_ENV);
    let sealed = std::fs::File::open(&path).and_then(|mut binary| {
        pentacle::SealOptions::new()
            .memfd_name(c"jarvis-cshim")
            .executable(true)
            .copy_and_seal(&mut binary)
    });
    match sealed {
        Ok(memfd) => std::env::set_var(
            CONTAINER_SHIM_ENV,
            format!("/proc/self/fd/{}", memfd.into_raw_fd()),
        ),
        Err(e) => eprintln!(
            "jarvisd: cannot copy {} into a sealed memfd: {e}",
            std::path::Path::new(&path).display()
        ),
    }
}

/// Sets this process's name (`/proc/self/comm`, at most 15 bytes), what
/// `ps -e`, `top` and `pgrep` show. Called while only the main thread runs.
fn set_name(name: &str) {
    let _ = std::fs::write("/proc/self/comm", name);
}
