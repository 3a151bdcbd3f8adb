//! What a run reads from the host at each start, for either form: its env
//! files and its secrets.
//!
//! - `env_file`: read at each start ([`crate::envfile`]); `[env]` wins.
//! - `[[secret]]`: copied into a tmpfs of the run's own
//!   (`jarvis_container::secrets`): a container's at
//!   `<run_dir>/secrets/UNIT` (a directory only root may enter), bound
//!   read-only at `/run/secrets`; a native unit's at
//!   `<run_dir>/credentials/UNIT`, whose path it gets in
//!   `$CREDENTIALS_DIRECTORY` (`credentials` may be passed through by
//!   anyone, not listed, so the unit's user reaches its own directory,
//!   0500 and its own, and no other: the state directory must be
//!   searchable by that user, as `/var/lib/jarvis` is). Either goes once
//!   the run is over ([`clear`]).
//!
//! Neither values nor secret contents are logged or written to disk here;
//! messages name files only.

use std::path::{Path, PathBuf};

use jarvis_unit::Unit;

use crate::{Config, StartError};

/// The environment variable a native unit finds its secrets' directory in
/// (systemd's name for it).
pub const CREDENTIALS_ENV: &str = "CREDENTIALS_DIRECTORY";

impl Config {
    /// The tmpfs holding a container run's secrets, bound at `/run/secrets`.
    pub fn secrets_dir(&self, unit: &str) -> PathBuf {
        self.run_dir.join("secrets").join(unit)
    }

    /// The tmpfs holding a native run's secrets (`$CREDENTIALS_DIRECTORY`).
    pub fn credentials_dir(&self, unit: &str) -> PathBuf {
        self.run_dir.join("credentials").join(unit)
    }
}

/// `unit` with its env files read in under `[env]` (blocking). A file that
/// is missing or malformed fails the start, naming the file (and line).
pub(crate) fn with_env_files(mut unit: Unit) -> Result<Unit, StartError> {
    if unit.env_file.is_empty() {
        return Ok(unit);
    }
    unit.env = crate::envfile::merged(&unit.env_file, &unit.env)
        .map_err(|e| StartError::Failed(e.to_string()))?;
    Ok(unit)
}

/// Creates `dir` with `mode` if missing, and gives it `mode` if not.
fn parent_dir(dir: &Path, mode: u32) -> Result<(), StartError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let fail = |e: std::io::Error| StartError::Failed(format!("{}: {e}", dir.display()));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(dir)
        .map_err(fail)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)).map_err(fail)
}

/// Makes the parent of a container's secrets directory, root's only
/// (blocking).
pub(crate) fn secrets_parent(cfg: &Config, unit: &str) -> Result<(), StartError> {
    match cfg.secrets_dir(unit).parent() {
        Some(p) => parent_dir(p, 0o700),
        None => Ok(()),
    }
}

/// Mounts a native run's secrets for `uid`:`gid` and returns the
/// directory, or `None` without secrets (blocking).
pub(crate) fn mount_credentials(
    cfg: &Config,
    unit: &Unit,
    uid: u32,
    gid: u32,
) -> Result<Option<PathBuf>, StartError> {
    let dir = cfg.credentials_dir(&unit.name);
    if unit.secrets.is_empty() {
        // An earlier run's (of a unit that had secrets then) goes.
        clear_dir(&dir);
        return Ok(None);
    }
    if let Some(p) = dir.parent() {
        parent_dir(p, 0o711)?;
    }
    jarvis_container::secrets::mount(&dir, &unit.secrets, uid, gid)
        .map_err(|e| StartError::Failed(e.to_string()))?;
    Ok(Some(dir))
}

/// Unmounts whatever secrets a run of `unit` had, of either form
/// (blocking). Nothing there is fine; a failure is logged.
pub(crate) fn clear(cfg: &Config, unit: &str) {
    clear_dirs(&dirs(cfg, unit));
}

/// Where a run of `unit` may have secrets: a container's, a native unit's.
pub(crate) fn dirs(cfg: &Config, unit: &str) -> [PathBuf; 2] {
    [cfg.secrets_dir(unit), cfg.credentials_dir(unit)]
}

/// [`clear`] for the paths [`dirs`] gave.
pub(crate) fn clear_dirs(dirs: &[PathBuf]) {
    for d in dirs {
        clear_dir(d);
    }
}

fn clear_dir(dir: &Path) {
    if let Err(e) = jarvis_container::secrets::unmount(dir) {
        tracing::warn!(dir = %dir.display(), error = %e, "cannot remove a run's secrets");
    }
}
