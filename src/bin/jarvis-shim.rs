//! jarvis-shim: the shim of a native unit's run (`jarvis-shim UNIT __shim
//! UNIT`, started by jarvisd). It is `jarvisd __shim` without the daemon,
//! the container runtime or the async runtime linked in, so a native start
//! or restart loads a small program instead of jarvisd; containers' shims
//! stay `jarvisd __shim`, run from jarvisd's sealed copy.

fn main() {
    if std::env::args_os().nth(1).as_deref() == Some(jarvis_shim::SHIM_ARG.as_ref()) {
        jarvis_shim::native_shim_main();
    }
    eprintln!(
        "{}: internal to jarvisd, which starts it for each run of a native unit",
        jarvis_shim::SHIM_NAME
    );
    std::process::exit(2);
}
