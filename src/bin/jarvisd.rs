//! jarvisd: the supervisor daemon. The same binary is re-executed as the
//! shim of each container run (`jarvisd __shim UNIT`, shown as
//! `jarvis-shim UNIT`) and as the container exec helper (`__cexec`); native
//! runs' shims are the small `jarvis-shim` binary installed next to it,
//! when it is there. These modes are internal. The mode comes from argv[1]
//! alone, so argv[0] is free to name the process.

use std::ffi::OsStr;

fn main() -> std::process::ExitCode {
    let mode = std::env::args_os().nth(1);
    let internal = [jarvis_shim::SHIM_ARG, jarvis_shim::CEXEC_ARG]
        .iter()
        .any(|m| mode.as_deref() == Some(OsStr::new(m)));
    if !internal && !pentacle::is_sealed() {
        find_native_shim();
    }
    // CVE-2019-5736: jarvisd and its shims (which call into libcontainer) run
    // from a sealed in-memory copy of this binary, so nothing in a container
    // can reach the binary on disk through /proc/PID/exe. Children re-execute
    // /proc/self/exe, that same sealed copy.
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
    jarvis_supervisor::main()
}

/// Tells the runtime where `jarvis-shim` is (`NATIVE_SHIM_ENV`): next to
/// this binary, found while its path is still known (from the sealed copy
/// `/proc/self/exe` is a memfd). A value from outside is never kept.
fn find_native_shim() {
    let shim = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.join(jarvis_shim::SHIM_NAME)))
        .filter(|p| p.is_file());
    match shim {
        Some(p) => std::env::set_var(jarvis_shim::NATIVE_SHIM_ENV, p),
        None => std::env::remove_var(jarvis_shim::NATIVE_SHIM_ENV),
    }
}

/// Sets this process's name (`/proc/self/comm`, at most 15 bytes), what
/// `ps -e`, `top` and `pgrep` show. Called while only the main thread runs.
fn set_name(name: &str) {
    let _ = std::fs::write("/proc/self/comm", name);
}
