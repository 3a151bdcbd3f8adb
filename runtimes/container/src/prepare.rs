//! One run's bundle, from an image already in the store: clear what an
//! earlier run left, mount the rootfs, write the `/etc` files, make the
//! named volumes ready (filled from the image when new), mount the run's
//! secrets, find the init binary and (privileged) the host's devices,
//! build the spec and write `config.json`. Blocking (mounts, files); the
//! caller runs it off its event loop.
//!
//! A spec whose environment holds secrets (values from an encrypted env
//! file) never reaches a disk: [`prepare_bundle_in_memory`] writes it into
//! a tmpfs of its own, and the bundle's `config.json` is a symbolic link to
//! it, where libcontainer and an exec into the container read it.
//! libcontainer's own state (`state.json`, `youki_config.json`) holds no
//! environment: the id, status, pid, bundle path, hooks and cgroup path.
//!
//! With `no_new_privileges` (the default), the spec's seccomp profile is
//! compiled to a BPF program here, once per distinct profile when the
//! caller keeps a [`BpfCache`] ([`prepare_bundle_cached`]): the program is
//! `seccomp.bpf` in the bundle, `linux.seccomp` leaves `config.json`, and
//! an annotation tells [`crate::run::create_and_start`] and
//! [`crate::run::exec_in`] to load it right before `execve`
//! ([`seccomp_ahead`]). libcontainer would otherwise build and compile the
//! profile with libseccomp inside every container's init.
//!
//! The spec's `linux.resources` is the only translation of the unit's
//! `[resources]` for a container: libcontainer creates the cgroup at
//! `cgroups_path` and writes it, and deletes it with the container. The
//! caller must not create or configure that cgroup itself.

use std::path::{Path, PathBuf};

use std::sync::Arc;

use jarvis_unit::{Exec, Unit, VolumeSource};
use oci_spec::image::ImageConfiguration;
use oci_spec::runtime::Spec;

use crate::rootfs::{mount_rootfs, unmount_rootfs, RootfsError};
use crate::run::{delete, write_bundle, write_etc_files, RunError};
use crate::seccomp::bpf::{self, BpfCache};
use crate::secrets::SecretError;
use crate::spec::{
    build_spec, exec_user, DeviceKind, ExtraDevice, Extras, RunPaths, SpecError, SpecInput,
};
use crate::user::UserDb;
use crate::volume::VolumeError;

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
    /// Where named volumes live (`<dir>/NAME/_data`).
    pub volume_dir: &'a Path,
    /// Where the run's secrets tmpfs is mounted (its parent must exist,
    /// root's only); unused without `[[secret]]`. The caller unmounts it
    /// when the run is over ([`crate::secrets::unmount`]).
    pub secrets_dir: &'a Path,
}

/// Where the static init binary (tini) is looked for, in order: Debian's
/// `tini` package, and Docker's `docker-init` (the same program).
pub const INIT_CANDIDATES: &[&str] = &[
    "/usr/bin/tini-static",
    "/usr/bin/docker-init",
    "/usr/libexec/docker/docker-init",
];

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
    Volume(#[source] VolumeError),
    #[error("{0}")]
    Secrets(#[source] SecretError),
    #[error("read the host's devices: {0}")]
    Devices(#[source] std::io::Error),
    #[error("{0}")]
    Bundle(#[source] RunError),
}

/// Writes the bundle of one run of `input.unit` (whose name is the
/// container id). Whatever an earlier run left (libcontainer state, a
/// mounted rootfs) is cleared first; the upper dir, the container's
/// writable layer, is kept. On failure after the mount the rootfs is
/// unmounted again.
pub fn prepare_bundle(input: &PrepareInput) -> Result<Prepared, PrepareError> {
    prepare(input, None, None)
}

/// [`prepare_bundle`] (or [`prepare_bundle_in_memory`] with `spec_dir`)
/// with compiled seccomp programs taken from `cache` (see
/// [`seccomp_ahead`]).
pub fn prepare_bundle_cached(
    input: &PrepareInput,
    spec_dir: Option<&Path>,
    cache: &BpfCache,
) -> Result<Prepared, PrepareError> {
    prepare(input, spec_dir, Some(cache))
}

/// [`prepare_bundle`] for a run whose environment holds secrets (values
/// from an encrypted env file): `config.json` goes into a tmpfs of its own
/// mounted at `spec_dir` (root's only, [`crate::secrets::mount_file`];
/// its parent must exist, root's only), and the bundle's `config.json` is
/// a symbolic link to it, so libcontainer, and an exec into the container,
/// which reads the spec again, find it where they always do. The caller
/// unmounts `spec_dir` when the run is over ([`crate::secrets::unmount`]);
/// the link, dangling then, is replaced by the next run's `config.json`.
pub fn prepare_bundle_in_memory(
    input: &PrepareInput,
    spec_dir: &Path,
) -> Result<Prepared, PrepareError> {
    prepare(input, Some(spec_dir), None)
}

/// [`prepare_bundle`], with `config.json` in a tmpfs at `spec_dir` when
/// given, and seccomp programs from `cache` when given (compiled for this
/// run otherwise).
fn prepare(
    input: &PrepareInput,
    spec_dir: Option<&Path>,
    cache: Option<&BpfCache>,
) -> Result<Prepared, PrepareError> {
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
    let mut secrets_mounted = false;
    let mut spec_mounted = false;
    let built = (|| {
        let users = UserDb::load(&rootfs).map_err(PrepareError::Users)?;
        let etc = write_etc_files(dir, c.hostname_or(&unit.name), &c.network, input.net)
            .map_err(PrepareError::Etc)?;
        for v in &c.volumes {
            if let VolumeSource::Named(name) = &v.source {
                crate::volume::ensure(input.volume_dir, name, &rootfs, Path::new(&v.container))
                    .map_err(PrepareError::Volume)?;
            }
        }
        let mut run = RunPaths {
            volume_dir: Some(input.volume_dir.to_path_buf()),
            init: c.init.then(find_init).flatten(),
            bounding: own_bounding_set(),
            ..RunPaths::default()
        };
        if c.privileged {
            run.host_devices = host_devices(Path::new("/dev")).map_err(PrepareError::Devices)?;
        }
        if !unit.secrets.is_empty() {
            let user = exec_user(c, input.image, &users).map_err(PrepareError::Spec)?;
            crate::secrets::mount(input.secrets_dir, &unit.secrets, user.uid, user.gid)
                .map_err(PrepareError::Secrets)?;
            secrets_mounted = true;
            run.secrets = Some(input.secrets_dir.to_path_buf());
        }
        let spec = build_spec(&SpecInput {
            unit,
            image: input.image,
            users: &users,
            rootfs: &rootfs,
            cgroups_path: input.cgroups_path,
            etc: Some(&etc),
            extras: input.extras,
            netns: input.net.netns.as_deref(),
            run: &run,
        })
        .map_err(PrepareError::Spec)?;
        let spec = seccomp_ahead(dir, spec, cache).map_err(PrepareError::Bundle)?;
        match spec_dir {
            None => write_bundle(dir, &spec).map_err(PrepareError::Bundle)?,
            Some(at) => {
                let json = serde_json::to_vec(&spec).map_err(|e| {
                    PrepareError::Bundle(RunError::Io {
                        what: "serializing",
                        path: dir.to_path_buf(),
                        source: std::io::Error::other(e),
                    })
                })?;
                crate::secrets::mount_file(at, "config.json", &json)
                    .map_err(PrepareError::Secrets)?;
                spec_mounted = true;
                link_spec(dir, at).map_err(PrepareError::Bundle)?;
            }
        }
        Ok(spec)
    })();
    let spec = match built {
        Ok(spec) => spec,
        Err(e) => {
            if let (true, Some(at)) = (spec_mounted, spec_dir) {
                let _ = crate::secrets::unmount(at);
            }
            if secrets_mounted {
                let _ = crate::secrets::unmount(input.secrets_dir);
            }
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

/// Compiles the spec's seccomp profile to a BPF program ahead, when the
/// container's process has `no_new_privileges` (so libcontainer itself
/// would load the filter last, after dropping capabilities, where the
/// program is loaded instead): the program goes to `<dir>/seccomp.bpf`
/// (0600), `linux.seccomp` leaves the spec and the annotations
/// [`bpf::ANNOTATION`] and [`bpf::FLAGS_ANNOTATION`] say what to load. The
/// init then loads a ready program right before `execve`
/// ([`crate::run::create_and_start`]) instead of libcontainer building
/// and compiling the profile at every start. A profile that needs
/// libcontainer (a notify action), a process without
/// `no_new_privileges`, or a profile libseccomp cannot compile here stay
/// in the spec, as they are. A program an earlier run left is removed
/// first.
pub fn seccomp_ahead(
    dir: &Path,
    mut spec: Spec,
    cache: Option<&BpfCache>,
) -> Result<Spec, RunError> {
    let path = dir.join(bpf::FILE);
    let io = |what: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| RunError::Io { what, path, source }
    };
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io("removing", &path)(e)),
        _ => {}
    }
    let nnp = spec.process().as_ref().and_then(|p| p.no_new_privileges()) == Some(true);
    let Some(mut linux) = spec.linux().clone() else {
        return Ok(spec);
    };
    let Some(profile) = linux.seccomp().clone() else {
        return Ok(spec);
    };
    if !nnp {
        return Ok(spec);
    }
    let compiled = bpf::load_flags(&profile).and_then(|flags| {
        let program = match cache {
            Some(c) => c.get(&profile)?,
            None => Arc::new(bpf::compile_bpf(&profile)?),
        };
        Ok((flags, program))
    });
    let (flags, program) = match compiled {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(error = %e, "seccomp profile left to libcontainer");
            return Ok(spec);
        }
    };
    jarvis_fsutil::write_atomic_mode(&path, &program, jarvis_fsutil::Durability::Atomic, 0o600)
        .map_err(io("writing", &path))?;
    linux.set_seccomp(None);
    spec.set_linux(Some(linux));
    let mut annotations = spec.annotations().clone().unwrap_or_default();
    annotations.insert(bpf::ANNOTATION.to_string(), bpf::FILE.to_string());
    if flags != 0 {
        annotations.insert(bpf::FLAGS_ANNOTATION.to_string(), flags.to_string());
    }
    spec.set_annotations(Some(annotations));
    Ok(spec)
}

/// Makes `<dir>/config.json` a symbolic link to `config.json` in
/// `spec_dir` (by its absolute path), replacing whatever is there at once.
fn link_spec(dir: &Path, spec_dir: &Path) -> Result<(), RunError> {
    let io = |what: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| RunError::Io { what, path, source }
    };
    let target =
        std::path::absolute(spec_dir.join("config.json")).map_err(io("resolving", spec_dir))?;
    let tmp = dir.join(".config.json.link");
    match std::fs::remove_file(&tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(io("removing", &tmp)(e));
        }
        _ => {}
    }
    std::os::unix::fs::symlink(&target, &tmp).map_err(io("linking", &tmp))?;
    let link = dir.join("config.json");
    std::fs::rename(&tmp, &link).map_err(io("writing", &link))
}

/// The first of [`INIT_CANDIDATES`] that is there, with its links
/// resolved.
pub fn find_init() -> Option<PathBuf> {
    INIT_CANDIDATES.iter().find_map(|p| {
        let p = std::fs::canonicalize(p).ok()?;
        p.is_file().then_some(p)
    })
}

/// The capabilities this process may hand on (its `CapBnd`); `None` when
/// `/proc/self/status` cannot say.
pub fn own_bounding_set() -> Option<std::collections::HashSet<oci_spec::runtime::Capability>> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let hex = status.lines().find_map(|l| l.strip_prefix("CapBnd:"))?;
    let mask = u64::from_str_radix(hex.trim(), 16).ok()?;
    Some(crate::spec::capabilities_from_mask(mask))
}

/// The host's device nodes under `dev`, as Docker's `--privileged` takes
/// them: every character and block device, except under `pts`, `shm`,
/// `mqueue` and `fd`, and `console` and `ptmx` (the container's own are
/// made by the runtime).
pub fn host_devices(dev: &Path) -> std::io::Result<Vec<ExtraDevice>> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let mut out = Vec::new();
    let mut stack = vec![dev.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)? {
            let e = e?;
            let name = e.file_name();
            let ft = e.file_type()?;
            let top = d == dev;
            if ft.is_dir() {
                let skip = top
                    && matches!(
                        name.to_str(),
                        Some("pts" | "shm" | "mqueue" | "fd" | ".lxc" | ".lxd-mounts" | ".udev")
                    );
                if !skip {
                    stack.push(e.path());
                }
                continue;
            }
            if top && matches!(name.to_str(), Some("console" | "ptmx")) {
                continue;
            }
            let kind = if ft.is_char_device() {
                DeviceKind::Char
            } else if ft.is_block_device() {
                DeviceKind::Block
            } else {
                continue;
            };
            let Ok(meta) = e.metadata() else {
                continue; // gone meanwhile
            };
            let rdev = meta.rdev();
            out.push(ExtraDevice {
                path: Path::new("/dev").join(e.path().strip_prefix(dev).unwrap_or(&e.path())),
                kind,
                major: libc::major(rdev) as i64,
                minor: libc::minor(rdev) as i64,
                file_mode: meta.mode() & 0o7777,
                uid: meta.uid(),
                gid: meta.gid(),
                access: "rwm".into(),
            });
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
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
            volume_dir: &dir,
            secrets_dir: &dir,
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
