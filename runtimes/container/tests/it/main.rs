//! Integration tests: real containers through libcontainer; they need root.
//!
//! The binary seals itself first ([`jarvis_container::ensure_sealed`]), as
//! jarvisd does, so containers are created from a sealed memfd copy. Tests
//! run one at a time on the main thread (libcontainer forks the caller).
//! Each test has its own temporary directory (container dir = bundle, state
//! root), a unique container id and a unique cgroup parent
//! `/jarvis-ctest-PID-N`; a guard deletes the container, unmounts the rootfs
//! and removes the cgroups and the directory even when the test fails.
//!
//! The rootfs is an overlay of two layers built once: busybox (from
//! /bin/busybox, with its applets as symlinks, /etc/passwd with root and
//! nobody) and, when `cc -static` works, a small C probe for the clone rules.
//! Set `JARVIS_TEST_LOG=debug` to see libcontainer's logs.

mod fixture;
mod helpers;
mod keys;
mod seccomp;
mod tests;

use libtest_mimic::{Arguments, Trial};

fn main() {
    if let Err(e) = jarvis_container::ensure_sealed() {
        eprintln!("cannot seal the test binary: {e}");
        std::process::exit(2);
    }
    assert!(jarvis_container::is_sealed());
    if let Ok(filter) = std::env::var("JARVIS_TEST_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
    }
    let mut args = Arguments::from_args();
    // libcontainer clones the calling process: keep it single-threaded.
    args.test_threads = Some(1);
    let root = nix::unistd::geteuid().is_root();
    if !root {
        eprintln!("not root: the container tests of jarvis-container are ignored");
    }
    let trials = tests::ALL
        .iter()
        .chain(seccomp::ALL)
        .chain(keys::ALL)
        .map(|&(name, f)| Trial::test(name, f).with_ignored_flag(!root))
        .collect();
    let conclusion = libtest_mimic::run(&args, trials);
    fixture::cleanup();
    conclusion.exit();
}
