//! jarvisd: the supervisor daemon. The same binary is re-executed as the
//! shim of each run (`jarvisd __shim UNIT`, shown as `jarvis-shim UNIT`).
//! `jarvisd __launch` (shown as `jarvis-launch`) runs a launch plan as a
//! process of its own; jarvisd's shims no longer start it (they fork and
//! run the plan in the child). Both modes are internal. The mode comes from
//! argv[1] alone, so argv[0] is free to name the process.

fn main() -> std::process::ExitCode {
    let mode = std::env::args_os().nth(1);
    if mode.as_deref() == Some(jarvis_native::LAUNCH_ARG.as_ref()) {
        set_name("jarvis-launch");
        jarvis_native::launcher_main();
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

/// Sets this process's name (`/proc/self/comm`, at most 15 bytes), what
/// `ps -e`, `top` and `pgrep` show. Called while only the main thread runs.
fn set_name(name: &str) {
    let _ = std::fs::write("/proc/self/comm", name);
}
