//! What both forms share: the shim that starts and watches a run, and the
//! unit's cgroup, `/<parent>/<unit>`, which stats, kills and removal find
//! at the same path whichever form ran.

use std::path::{Path, PathBuf};

use jarvis_shim::{Adopted, Payload, ShimSpec};

use crate::{blocking, BoxFuture, Config, Exit, Found, Running, StartError, StartFailure, Stats};

/// Starts a shim for `payload`; resolves once the unit's process runs.
pub(crate) async fn start(
    cfg: &Config,
    unit: &str,
    payload: Payload,
    identity: Option<jarvis_native::launch::Identity>,
    log: jarvis_shim::logfile::LogConfig,
    devices: Vec<PathBuf>,
    secrets: bool,
) -> Result<Running, StartError> {
    let spec = ShimSpec {
        unit: unit.to_string(),
        launcher: cfg.launcher.clone(),
        payload,
        log,
        run_dir: cfg.run_dir.clone(),
        cgroup_parent: cfg.cgroup_parent.clone(),
        cgroup_name: unit.to_string(),
    };
    // Native runs start the small shim binary where it is installed (an
    // exec of a few hundred kilobytes, not of jarvisd); containers the
    // container shim's sealed copy, else jarvisd's.
    let exe = match (&spec.payload, &cfg.native_shim) {
        (Payload::Native(_), Some(shim)) => shim,
        (Payload::Native(_), None) => &cfg.launcher,
        (Payload::Container(_), _) => cfg.container_exe(),
    };
    let started = match jarvis_shim::spawn(&cfg.shims, exe, &spec, identity).await {
        Ok(started) => started,
        Err(e) => {
            // A failed start leaves nothing running: the shim kills what it
            // started when it cannot complete the start, but a shim that
            // was killed itself could not.
            let cg = cfg.cgroup(unit);
            if let Err(e) = blocking(move || cg.kill_all()).await {
                tracing::error!(unit, error = %e, "cannot empty the cgroup of a failed start");
            }
            return Err(StartError::Failed(StartFailure {
                reason: e.to_string(),
                transient: e.is_transient(),
            }));
        }
    };
    Ok(Running {
        pid: started.pid(),
        devices,
        shim: Box::new(started),
        secrets,
    })
}

/// The run's end; then its secrets go.
pub(crate) fn wait(cfg: &Config, unit: &str, run: Running) -> BoxFuture<Exit> {
    let (run_dir, cg, unit) = (cfg.run_dir.clone(), cfg.cgroup(unit), unit.to_string());
    let secrets = crate::inputs::dirs(cfg, &unit);
    let pool = cfg.shims.clone();
    Box::pin(async move {
        let exit = match jarvis_shim::wait(&pool, *run.shim, &run_dir).await {
            Some(rec) => rec.into(),
            None => {
                tracing::warn!(
                    unit,
                    "the shim died without an exit record; emptying the cgroup"
                );
                if let Err(e) = blocking(move || cg.kill_all()).await {
                    tracing::error!(unit, error = %e, "cannot empty the cgroup");
                }
                Exit::UNKNOWN
            }
        };
        if run.secrets {
            blocking(move || crate::inputs::clear_dirs(&secrets)).await;
        }
        exit
    })
}

pub(crate) fn adopt(cfg: &Config, unit: &str) -> Found {
    match jarvis_shim::adopt(&cfg.run_dir, unit) {
        Some(Adopted::Running(started)) => Found::Running(Running::adopted(*started)),
        Some(Adopted::Ended(record, exit)) => {
            // Over while no jarvisd watched: its secrets go now.
            crate::inputs::clear(cfg, unit);
            Found::Ended {
                pid: record.pid,
                exit: exit.map(Exit::from),
            }
        }
        None => Found::Nothing,
    }
}

pub(crate) fn kill_all(cfg: &Config, unit: &str) -> BoxFuture<Result<(), String>> {
    let cg = cfg.cgroup(unit);
    Box::pin(async move { blocking(move || cg.kill_all().map_err(|e| e.to_string())).await })
}

pub(crate) fn stats(cfg: &Config, unit: &str) -> BoxFuture<Stats> {
    let cg = cfg.cgroup(unit);
    Box::pin(blocking(move || cg.stats()))
}

/// Removes the unit's cgroup (blocking). A cgroup still holding processes
/// is emptied first.
pub(crate) fn remove_cgroup(cfg: &Config, unit: &str) -> Result<(), String> {
    let cg = cfg.cgroup(unit);
    if cg.remove().is_ok() {
        return Ok(());
    }
    cg.kill_all().map_err(|e| e.to_string())?;
    cg.remove().map_err(|e| e.to_string())
}

/// See [`Config::installed_container_shim`].
pub(crate) fn installed_container_shim() -> Option<PathBuf> {
    let found = std::env::var_os(jarvis_shim::CONTAINER_SHIM_ENV);
    let sealed = found
        .as_deref()
        .map(Path::new)
        .filter(|p| sealed_descriptor(p));
    match (sealed, &found) {
        (Some(p), _) => return Some(p.to_path_buf()),
        (None, Some(p)) => tracing::warn!(
            "{}={} is not a sealed memfd of jarvisd's: containers' shims run as `jarvisd {}`",
            jarvis_shim::CONTAINER_SHIM_ENV,
            Path::new(p).display(),
            jarvis_shim::SHIM_ARG
        ),
        (None, None) => tracing::warn!(
            "{} is not installed next to jarvisd: containers' shims run as `jarvisd {}`",
            jarvis_shim::CONTAINER_SHIM_NAME,
            jarvis_shim::SHIM_ARG
        ),
    }
    None
}

/// Whether `path` is `/proc/self/fd/N` for a descriptor of this process
/// that is sealed against writing, growing and shrinking, and against
/// changes to its seals.
fn sealed_descriptor(path: &Path) -> bool {
    use nix::fcntl::{fcntl, FcntlArg, SealFlag};
    let Some(fd) = path
        .strip_prefix("/proc/self/fd")
        .ok()
        .and_then(|n| n.to_str()?.parse::<std::os::fd::RawFd>().ok())
    else {
        return false;
    };
    let want = SealFlag::F_SEAL_SEAL
        | SealFlag::F_SEAL_SHRINK
        | SealFlag::F_SEAL_GROW
        | SealFlag::F_SEAL_WRITE;
    fcntl(fd, FcntlArg::F_GET_SEALS)
        .is_ok_and(|seals| SealFlag::from_bits_truncate(seals).contains(want))
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::os::fd::AsRawFd;

    use nix::fcntl::{fcntl, FcntlArg, SealFlag};
    use nix::sys::memfd::{memfd_create, MemFdCreateFlag};

    use super::*;

    fn memfd(seals: SealFlag) -> std::fs::File {
        let fd = memfd_create(
            c"test",
            MemFdCreateFlag::MFD_CLOEXEC | MemFdCreateFlag::MFD_ALLOW_SEALING,
        )
        .unwrap();
        let mut file = std::fs::File::from(fd);
        file.write_all(b"\x7fELF").unwrap();
        fcntl(file.as_raw_fd(), FcntlArg::F_ADD_SEALS(seals)).unwrap();
        file
    }

    fn path(file: &impl AsRawFd) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()))
    }

    #[test]
    fn only_a_sealed_memfd_of_this_process_is_a_container_shim() {
        let all = SealFlag::F_SEAL_SEAL
            | SealFlag::F_SEAL_SHRINK
            | SealFlag::F_SEAL_GROW
            | SealFlag::F_SEAL_WRITE;
        let sealed = memfd(all);
        assert!(sealed_descriptor(&path(&sealed)));
        // Writable, or its seals still open to change: not taken.
        let writable = memfd(all - SealFlag::F_SEAL_WRITE);
        assert!(!sealed_descriptor(&path(&writable)));
        let open = memfd(all - SealFlag::F_SEAL_SEAL);
        assert!(!sealed_descriptor(&path(&open)));
        // A file on disk, by its descriptor or by its path.
        let disk = tempfile::NamedTempFile::new().unwrap();
        assert!(!sealed_descriptor(&path(disk.as_file())));
        assert!(!sealed_descriptor(disk.path()));
        // Another process's descriptor, or none.
        let other = format!("/proc/1/fd/{}", sealed.as_raw_fd());
        assert!(!sealed_descriptor(Path::new(&other)));
        assert!(!sealed_descriptor(Path::new("/proc/self/fd/999999")));
        assert!(!sealed_descriptor(Path::new("/proc/self/fd/x")));
    }
}
