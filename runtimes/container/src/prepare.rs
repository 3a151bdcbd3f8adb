//! One run's bundle, from an image already in the store: clear what an
//! earlier run left, mount the rootfs, write the `/etc` files, build the
//! spec and write `config.json`. Blocking (mounts, files); the caller runs
//! it off its event loop.
//!
//! The spec's `linux.resources` is the only translation of the unit's
//! `[resources]` for a container: libcontainer creates the cgroup at
//! `cgroups_path` and writes it, and deletes it with the container. The
//! caller must not create or configure that cgroup itself.

use std::path::{Path, PathBuf};

use jarvis_unit::{Exec, Unit};
use oci_spec::image::ImageConfiguration;

use crate::rootfs::{mount_rootfs, unmount_rootfs, RootfsError};
use crate::run::{delete, write_bundle, write_etc_files, RunError};
use crate::spec::{build_spec, Extras, SpecError, SpecInput};
use crate::user::UserDb;

/// What [`prepare_bundle`] needs.
#[derive(Debug)]
pub struct PrepareInput<'a> {
    /// A container unit, its environment already holding what the run adds
    /// (GPU placement, device variables).
    pub unit: &'a Unit,
    /// The image's configuration (entrypoint, cmd, env, user, ...).
    pub image: &'a ImageConfiguration,
    /// The image's unpacked layer directories, bottom first.
    pub layers: &'a [PathBuf],
    /// The container directory: `config.json`, the `/etc` files, and the
    /// rootfs overlay with its upper and work dirs.
    pub dir: &'a Path,
    /// libcontainer's state root.
    pub state_root: &'a Path,
    /// `linux.cgroupsPath`, e.g. `/jarvis/<unit>`.
    pub cgroups_path: &'a str,
    /// Devices, mounts and groups the run adds.
    pub extras: &'a Extras,
    /// The run's network namespace and `/etc/hosts`, `/etc/resolv.conf`.
    pub net: &'a crate::NetSetup,
}

/// A bundle ready for `create_and_start`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    /// The container's id (the unit's name).
    pub id: String,
    /// The bundle directory (the container directory).
    pub bundle: PathBuf,
    /// The command line the spec runs, for the log.
    pub argv: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error("unit {0:?} is not a container unit")]
    NotAContainer(String),
    #[error("create {path}: {err}")]
    CreateDir {
        path: PathBuf,
        #[source]
        err: std::io::Error,
    },
    #[error("{0}")]
    Unmount(#[source] RootfsError),
    #[error("mount the rootfs: {0}")]
    Mount(#[source] RootfsError),
    #[error("read the image's users: {0}")]
    Users(#[source] std::io::Error),
    #[error("{0}")]
    Etc(#[source] RunError),
    #[error("{0}")]
    Spec(#[source] SpecError),
    #[error("{0}")]
    Bundle(#[source] RunError),
}

/// Writes the bundle of one run of `input.unit` (whose name is the
/// container id). Whatever an earlier run left (libcontainer state, a
/// mounted rootfs) is cleared first; the upper dir, the container's
/// writable layer, is kept. On failure after the mount the rootfs is
/// unmounted again.
pub fn prepare_bundle(input: &PrepareInput) -> Result<Prepared, PrepareError> {
    let unit = input.unit;
    let Exec::Container(c) = &unit.exec else {
        return Err(PrepareError::NotAContainer(unit.name.clone()));
    };
    let dir = input.dir;
    // Bundles hold the containers' root filesystems: root only.
    if let Some(parent) = dir.parent() {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(|err| PrepareError::CreateDir {
                path: parent.to_path_buf(),
                err,
            })?;
    }
    // A run that ended badly may have left state or a mount.
    let _ = delete(&unit.name, input.state_root, true);
    unmount_rootfs(dir).map_err(PrepareError::Unmount)?;
    let rootfs = mount_rootfs(input.layers, dir).map_err(PrepareError::Mount)?;
    let built = (|| {
        let users = UserDb::load(&rootfs).map_err(PrepareError::Users)?;
        let etc = write_etc_files(dir, c.hostname_or(&unit.name), &c.network, input.net)
            .map_err(PrepareError::Etc)?;
        let spec = build_spec(&SpecInput {
            unit,
            image: input.image,
            users: &users,
            rootfs: &rootfs,
            cgroups_path: input.cgroups_path,
            etc: Some(&etc),
            extras: input.extras,
            netns: input.net.netns.as_deref(),
        })
        .map_err(PrepareError::Spec)?;
        write_bundle(dir, &spec).map_err(PrepareError::Bundle)?;
        Ok(spec)
    })();
    let spec = match built {
        Ok(spec) => spec,
        Err(e) => {
            let _ = unmount_rootfs(dir);
            return Err(e);
        }
    };
    Ok(Prepared {
        id: unit.name.clone(),
        bundle: dir.to_path_buf(),
        argv: spec
            .process()
            .as_ref()
            .and_then(|p| p.args().clone())
            .unwrap_or_default(),
    })
}

/// What [`clear`] could not undo.
#[derive(Debug, thiserror::Error)]
pub enum Leftover {
    #[error("{0}")]
    State(#[source] RunError),
    #[error("{0}")]
    Rootfs(#[source] RootfsError),
}

/// Deletes container `id`'s libcontainer state (killing whatever still
/// runs in it, and its cgroup) and unmounts its rootfs under `dir`. The
/// container directory itself, with the writable upper layer, stays.
/// Nothing there is fine.
pub fn clear(id: &str, state_root: &Path, dir: &Path) -> Result<(), Leftover> {
    let deleted = delete(id, state_root, true).map_err(Leftover::State);
    unmount_rootfs(dir).map_err(Leftover::Rootfs)?;
    deleted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_native_unit_has_no_bundle() {
        let unit = Unit::new(
            "web",
            Exec::Native(jarvis_unit::Native::new(vec!["/bin/true".into()])),
        );
        let dir = std::env::temp_dir().join("jarvis-prepare-native");
        let err = prepare_bundle(&PrepareInput {
            unit: &unit,
            image: &ImageConfiguration::default(),
            layers: &[],
            dir: &dir,
            state_root: &dir,
            cgroups_path: "/jarvis/web",
            extras: &Extras::default(),
            net: &crate::NetSetup::default(),
        })
        .unwrap_err();
        assert!(matches!(err, PrepareError::NotAContainer(n) if n == "web"));
        assert!(!dir.exists(), "nothing is created for a native unit");
    }

    #[test]
    fn clearing_nothing_is_fine() {
        let tmp = std::env::temp_dir().join(format!("jarvis-clear-{}", std::process::id()));
        assert!(clear("gone", &tmp.join("state"), &tmp.join("c")).is_ok());
    }
}
