//! The container's root filesystem: an overlay of the image's layer
//! directories (read-only lowers) under a per-container writable upper.
//!
//! Layout under the container directory:
//!
//! ```text
//! <container_dir>/          0700
//!   upper/                  0755  the container's writable layer (kept across restarts)
//!   work/                   0700  overlayfs scratch
//!   rootfs/                 0755  the mount point, given to the spec as root.path
//!   empty/                        the lower of an image without layers
//! ```
//!
//! The overlay is mounted `nodev`: a device node shipped in an image layer
//! (or created in the upper) cannot be opened, whatever the device cgroup
//! says (on cgroup v2 this build has no device cgroup, see the crate docs).
//! Delete the container directory to start from the image again.

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};

#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    #[error("layer directory {0:?} must be absolute and free of ',', ':' and '\\'")]
    BadLayerPath(PathBuf),
    #[error("{0:?} is already mounted")]
    AlreadyMounted(PathBuf),
    #[error("{what} {path:?}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> RootfsError + 'a {
    move |source| RootfsError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// The mount point under `container_dir`.
pub fn rootfs_path(container_dir: &Path) -> PathBuf {
    container_dir.join("rootfs")
}

/// The largest mount(2) data the kernel takes (a page, with its NUL).
const MOUNT_DATA_MAX: usize = 4095;

fn mkdir(path: &Path, mode: u32) -> Result<(), RootfsError> {
    match fs::DirBuilder::new().mode(mode).create(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && path.is_dir() => Ok(()),
        Err(e) => Err(io_err("creating", path)(e)),
    }
}

/// Whether `path` is the root of a mount other than its parent's.
pub fn is_mount_point(path: &Path) -> io::Result<bool> {
    let here = fs::symlink_metadata(path)?;
    let parent = fs::symlink_metadata(path.join(".."))?;
    Ok(here.dev() != parent.dev() || here.ino() == parent.ino())
}

/// Mounts the overlay of `lowerdirs` (given bottom-first, as layers are
/// applied) at `<container_dir>/rootfs` and returns that path.
///
/// Uses mount(2) when the options fit in a page, and otherwise the new mount
/// API with `lowerdir+` (Linux 6.8+), which takes one layer at a time.
pub fn mount_rootfs(lowerdirs: &[PathBuf], container_dir: &Path) -> Result<PathBuf, RootfsError> {
    for l in lowerdirs {
        let s = l.as_os_str().as_bytes();
        if !l.is_absolute()
            || s.iter()
                .any(|b| matches!(b, b',' | b':' | b'\\' | b'\n' | 0))
        {
            return Err(RootfsError::BadLayerPath(l.clone()));
        }
    }
    mkdir(container_dir, 0o700)?;
    let upper = container_dir.join("upper");
    let work = container_dir.join("work");
    let target = rootfs_path(container_dir);
    mkdir(&upper, 0o755)?;
    mkdir(&work, 0o700)?;
    mkdir(&target, 0o755)?;
    if is_mount_point(&target).map_err(io_err("checking", &target))? {
        return Err(RootfsError::AlreadyMounted(target));
    }
    // overlayfs lists the top layer first.
    let mut lowers: Vec<PathBuf> = lowerdirs.iter().rev().cloned().collect();
    if lowers.is_empty() {
        let empty = container_dir.join("empty");
        mkdir(&empty, 0o755)?;
        lowers.push(empty);
    }
    let lower_opt = lowers
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(":");
    let data = format!(
        "lowerdir={lower_opt},upperdir={},workdir={},index=off",
        upper.display(),
        work.display()
    );
    if data.len() <= MOUNT_DATA_MAX {
        mount(
            Some("overlay"),
            &target,
            Some("overlay"),
            MsFlags::MS_NODEV,
            Some(data.as_str()),
        )
        .map_err(|e| io_err("mounting the overlay at", &target)(e.into()))?;
    } else {
        mount_with_fsconfig(&lowers, &upper, &work, &target)
            .map_err(io_err("mounting the overlay (fsconfig) at", &target))?;
    }
    Ok(target)
}

// The new mount API; the constants are from <linux/mount.h>.
const FSOPEN_CLOEXEC: libc::c_uint = 0x1;
const FSCONFIG_SET_STRING: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
const FSMOUNT_CLOEXEC: libc::c_uint = 0x1;
const MOUNT_ATTR_NODEV: libc::c_uint = 0x4;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;

fn cstr(s: &[u8]) -> io::Result<CString> {
    CString::new(s).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

fn fsconfig_string(fs: &OwnedFd, key: &str, value: &Path) -> io::Result<()> {
    let key = cstr(key.as_bytes())?;
    let value = cstr(value.as_os_str().as_bytes())?;
    // SAFETY: valid descriptor and NUL-terminated strings that outlive the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_SET_STRING,
            key.as_ptr(),
            value.as_ptr(),
            0,
        )
    };
    if r < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("fsconfig {key:?}={value:?}: {e}"),
        ));
    }
    Ok(())
}

fn mount_with_fsconfig(
    lowers: &[PathBuf],
    upper: &Path,
    work: &Path,
    target: &Path,
) -> io::Result<()> {
    let name = cstr(b"overlay")?;
    // SAFETY: a NUL-terminated string; the result is checked.
    let fs = unsafe { libc::syscall(libc::SYS_fsopen, name.as_ptr(), FSOPEN_CLOEXEC) };
    if fs < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fsopen returned a fresh descriptor that nothing else owns.
    let fs = unsafe { OwnedFd::from_raw_fd(fs as i32) };
    for l in lowers {
        fsconfig_string(&fs, "lowerdir+", l)?;
    }
    fsconfig_string(&fs, "upperdir", upper)?;
    fsconfig_string(&fs, "workdir", work)?;
    let index = cstr(b"off")?;
    let key = cstr(b"index")?;
    // SAFETY: as in fsconfig_string.
    let r = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_SET_STRING,
            key.as_ptr(),
            index.as_ptr(),
            0,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: null key and value are what FSCONFIG_CMD_CREATE takes.
    let r = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_void>(),
            0,
        )
    };
    if r < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("creating the overlay: {e}"),
        ));
    }
    // SAFETY: a valid fs context descriptor.
    let m = unsafe {
        libc::syscall(
            libc::SYS_fsmount,
            fs.as_raw_fd(),
            FSMOUNT_CLOEXEC,
            MOUNT_ATTR_NODEV,
        )
    };
    if m < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fsmount returned a fresh descriptor that nothing else owns.
    let m = unsafe { OwnedFd::from_raw_fd(m as i32) };
    let empty = cstr(b"")?;
    let to = cstr(target.as_os_str().as_bytes())?;
    // SAFETY: valid descriptors and NUL-terminated paths.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            m.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Unmounts `<container_dir>/rootfs`. Nothing mounted there is not an
/// error. A busy mount (a process still inside) is detached lazily.
pub fn unmount_rootfs(container_dir: &Path) -> Result<(), RootfsError> {
    let target = rootfs_path(container_dir);
    match is_mount_point(&target) {
        Ok(false) => return Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("checking", &target)(e)),
        Ok(true) => {}
    }
    match umount2(&target, MntFlags::empty()) {
        Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => Ok(()),
        Err(Errno::EBUSY) => umount2(&target, MntFlags::MNT_DETACH)
            .map_err(|e| io_err("detaching", &target)(e.into())),
        Err(e) => Err(io_err("unmounting", &target)(e.into())),
    }
}
