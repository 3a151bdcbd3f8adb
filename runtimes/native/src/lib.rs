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
    ) || {
        // The error it wraps, directly or as the source of a context
        // (jarvis-fsutil keeps the original error so).
        let mut next: Option<&(dyn std::error::Error + 'static)> = err.get_ref().map(|i| i as _);
        while let Some(inner) = next {
            if let Some(io) = inner.downcast_ref::<std::io::Error>() {
                return transient(io);
            }
            next = inner.source();
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_errno_wrapped_in_context_is_still_judged() {
        // A write_atomic that ran out of descriptors: its errno is behind a
        // context, and its kind says nothing.
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("no-such-dir").join("f");
        let e = jarvis_fsutil::write_atomic(&missing, b"x", jarvis_fsutil::Durability::Atomic)
            .unwrap_err();
        assert!(!transient(&e), "a missing directory stays missing: {e}");
        #[derive(Debug)]
        struct Ctx(std::io::Error);
        impl std::fmt::Display for Ctx {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "create a temporary file in /run: {}", self.0)
            }
        }
        impl std::error::Error for Ctx {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let emfile = std::io::Error::other(Ctx(std::io::Error::from_raw_os_error(libc::EMFILE)));
        assert!(transient(&emfile), "{emfile}");
        let eacces = std::io::Error::other(Ctx(std::io::Error::from_raw_os_error(libc::EACCES)));
        assert!(!transient(&eacces), "{eacces}");
    }
}
