//! jarvis-cshim: the shim of a container's run (`jarvis-shim UNIT __shim
//! UNIT`) and the container exec helper (`__cexec`), started by jarvisd.
//! It is `jarvisd __shim` and `jarvisd __cexec` without the daemon: it
//! links libcontainer, but not the async runtime, git, HTTP, age or the TLS
//! libraries they bring, so each running container's shim maps a small
//! program. jarvisd copies it into a sealed memfd when it starts and runs
//! it from there, never from its path (CVE-2019-5736).

use std::ffi::OsStr;

fn main() {
    let mode = std::env::args_os().nth(1);
    if mode.as_deref() == Some(OsStr::new(jarvis_shim::SHIM_ARG)) {
        jarvis_shim::shim_main();
    }
    if mode.as_deref() == Some(OsStr::new(jarvis_shim::CEXEC_ARG)) {
        jarvis_shim::cexec_main();
    }
    eprintln!(
        "{}: internal to jarvisd, which starts it for each run of a container",
        jarvis_shim::CONTAINER_SHIM_NAME
    );
    std::process::exit(2);
}
