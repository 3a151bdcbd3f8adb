//! jarvis-native: everything a native unit needs from the kernel.
//!
//! This crate is the seam between the supervisor's logic and Linux:
//! - [`cgroup::UnitCgroup`]: one cgroup per unit in every mounted hierarchy
//!   (each cgroup v1 controller and the v2 unified tree), limits, stats,
//!   kill-everything;
//! - [`launch`]: spawning a unit's command: a fork whose child joins the
//!   cgroup, switches user and groups, drops capabilities and only then
//!   execs the command. If any step fails the command never runs and the
//!   reason comes back to the caller;
//! - [`process_started_at`]: when a process started, by the wall clock.

pub mod cgroup;
pub mod launch;
mod procstat;

pub use cgroup::{CgroupError, CgroupStats, UnitCgroup};
pub use launch::{
    inherit_fds, memfd_with, spawn, spawn_blocking, spawn_blocking_as, Child, LaunchSpec,
    SpawnError, Spawned, DEFAULT_PATH,
};
pub use procstat::process_started_at;

/// Whether `errno` says the system lacked something it may have again
/// soon: descriptors (`EMFILE`, `ENFILE`), memory (`ENOMEM`), processes or
/// another temporary limit (`EAGAIN`), disk space (`ENOSPC`, `EDQUOT`). A
/// start that failed so may work when tried again later; other errors (a
/// missing program, an unknown user, a refused permission) stay as they
/// are until something is changed.
pub fn transient_errno(errno: i32) -> bool {
    matches!(
        errno,
        libc::EMFILE | libc::ENFILE | libc::ENOMEM | libc::EAGAIN | libc::ENOSPC | libc::EDQUOT
    )
}

/// [`transient_errno`] of an I/O error. An error that lost its errno on
/// the way (one given context in words) is judged by its kind (a full disk,
/// no memory, a limit reached for now), or by the error it wraps.
pub fn transient(err: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    if let Some(errno) = err.raw_os_error() {
        return transient_errno(errno);
    }
    matches!(
        err.kind(),
        ErrorKind::StorageFull
            | ErrorKind::QuotaExceeded
            | ErrorKind::OutOfMemory
            | ErrorKind::WouldBlock
    ) || err
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<std::io::Error>())
        .is_some_and(transient)
}
