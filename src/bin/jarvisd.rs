//! jarvisd: the supervisor daemon. The same binary is re-executed as the
//! shim of each run (`jarvisd __shim UNIT`) and as the launcher of each
//! process (`jarvisd __launch`); both are internal.

fn main() -> std::process::ExitCode {
    let mode = std::env::args_os().nth(1);
    if mode.as_deref() == Some(jarvis_native::LAUNCH_ARG.as_ref()) {
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
    jarvis_supervisor::main()
}
