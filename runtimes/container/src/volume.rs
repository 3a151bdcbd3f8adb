//! Named volumes: directories jarvisd keeps for containers under a volume
//! directory (`<state>/volumes` or `jarvisd --volume-dir`), one per name,
//! `<dir>/NAME/_data` bound into the container.
//!
//! A volume is made on its first use and, as Docker does, filled with what
//! the image has at the mount path: [`ensure`] copies that tree out of the
//! container's root filesystem (owners, modes, times and symlinks kept;
//! device nodes and FIFOs made again; sockets skipped; hard links become
//! separate files; extended attributes are not copied). The copy goes into
//! `_data.new` and is renamed to `_data` once whole, so a copy cut short is
//! done again from the start by the next run. An existing volume is used as
//! it is: it is never refilled, and it stays when units go away.
//!
//! The image's tree is walked by descriptors: the mount path is resolved
//! inside the rootfs ([`crate::inroot`]), and every entry under it is
//! opened relative to its directory without following symlinks, so an
//! image cannot make the copy read or write outside its tree.

use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat, OFlag};
use nix::sys::stat::{
    fchmod, fchmodat, fstatat, futimens, mkdirat, mknodat, utimensat, FchmodatFlags, FileStat,
    Mode, SFlag, UtimensatFlags,
};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchown, fchownat, symlinkat, Gid, Uid};

/// The directory under a volume's own that is mounted.
pub const DATA: &str = "_data";

/// How deep a tree [`ensure`] copies.
const MAX_DEPTH: usize = 256;

/// Why a volume could not be made ready.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("volume name {0:?} must match [a-zA-Z0-9][a-zA-Z0-9_.-]*")]
    BadName(String),
    #[error("volume {name}: {what} {}: {err}", path.display())]
    Io {
        name: String,
        what: &'static str,
        path: PathBuf,
        #[source]
        err: io::Error,
    },
    #[error("volume {name}: copying the image's {path} into it: {err}")]
    Copy {
        name: String,
        path: String,
        #[source]
        err: io::Error,
    },
}

/// Docker's rule for volume names (the unit parser checks it too).
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// `<volume_dir>/NAME`: the volume's own directory.
pub fn volume_path(volume_dir: &Path, name: &str) -> Result<PathBuf, VolumeError> {
    if !valid_name(name) {
        return Err(VolumeError::BadName(name.to_string()));
    }
    Ok(volume_dir.join(name))
}

/// `<volume_dir>/NAME/_data`: what a container mounts.
pub fn data_path(volume_dir: &Path, name: &str) -> Result<PathBuf, VolumeError> {
    Ok(volume_path(volume_dir, name)?.join(DATA))
}

/// Makes volume `name` ready to be mounted at `path` (absolute, inside the
/// container) of a container whose root filesystem is `rootfs`: an
/// existing volume as it is, a new one filled from the rootfs at `path`.
/// Returns its data directory. Blocking.
pub fn ensure(
    volume_dir: &Path,
    name: &str,
    rootfs: &Path,
    path: &Path,
) -> Result<PathBuf, VolumeError> {
    let own = volume_path(volume_dir, name)?;
    let data = own.join(DATA);
    let io = |what: &'static str, p: &Path| {
        let (name, path) = (name.to_string(), p.to_path_buf());
        move |err: io::Error| VolumeError::Io {
            name,
            what,
            path,
            err,
        }
    };
    if data.is_dir() {
        return Ok(data);
    }
    mkdir_private(volume_dir).map_err(io("create", volume_dir))?;
    mkdir_private(&own).map_err(io("create", &own))?;
    let partial = own.join(format!("{DATA}.new"));
    match std::fs::remove_dir_all(&partial) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io("remove the partial copy", &partial)(e)),
    }
    let copied = match crate::inroot::open_dir(rootfs, path) {
        Ok(Some(src)) => copy_tree(&src, &partial),
        // Nothing there in the image (or not a directory): an empty volume.
        Ok(None) => std::fs::DirBuilder::new().create(&partial),
        Err(e) => Err(e),
    };
    copied.map_err(|err| VolumeError::Copy {
        name: name.to_string(),
        path: path.display().to_string(),
        err,
    })?;
    std::fs::rename(&partial, &data).map_err(io("rename into place", &partial))?;
    Ok(data)
}

/// Creates `dir` (and its parents) 0700 if missing.
fn mkdir_private(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Copies the directory `src` (its entries, then its own owner, mode and
/// times) to a new directory `dst`.
fn copy_tree(src: &OwnedFd, dst: &Path) -> io::Result<()> {
    let parent = dst.parent().unwrap_or(Path::new("/"));
    let name = dst.file_name().unwrap_or_default();
    let parent = open_dir_at(None, parent)?;
    let st = nix::sys::stat::fstat(src.as_raw_fd())?;
    mkdirat(
        Some(parent.as_raw_fd()),
        name,
        Mode::from_bits_truncate(0o700),
    )?;
    let out = open_dir_at(Some(parent.as_raw_fd()), Path::new(name))?;
    copy_entries(src, &out, 0)?;
    set_meta_fd(&out, &st)
}

fn open_dir_at(dir: Option<RawFd>, path: &Path) -> io::Result<OwnedFd> {
    let fd = openat(
        dir,
        path,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    // SAFETY: `openat` just returned this descriptor and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The names in the directory `dir` (not `.` and `..`).
fn names(dir: &OwnedFd) -> io::Result<Vec<OsString>> {
    // Through the descriptor's own magic link: the directory already open,
    // no name resolved again.
    let mut out = Vec::new();
    for e in std::fs::read_dir(format!("/proc/self/fd/{}", dir.as_raw_fd()))? {
        out.push(e?.file_name());
    }
    out.sort();
    Ok(out)
}

fn copy_entries(src: &OwnedFd, dst: &OwnedFd, depth: usize) -> io::Result<()> {
    if depth > MAX_DEPTH {
        return Err(io::Error::other(format!(
            "the tree is more than {MAX_DEPTH} directories deep"
        )));
    }
    let (s, d) = (src.as_raw_fd(), dst.as_raw_fd());
    for name in names(src)? {
        let name = Path::new(&name);
        let st = fstatat(Some(s), name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW)?;
        let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
        match kind {
            SFlag::S_IFDIR => {
                mkdirat(Some(d), name, Mode::from_bits_truncate(0o700))?;
                let child_src = open_dir_at(Some(s), name)?;
                let child_dst = open_dir_at(Some(d), name)?;
                copy_entries(&child_src, &child_dst, depth + 1)?;
                set_meta_fd(&child_dst, &st)?;
            }
            SFlag::S_IFREG => {
                let from = openat(
                    Some(s),
                    name,
                    OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK,
                    Mode::empty(),
                )?;
                // SAFETY: fresh descriptors nothing else owns.
                let mut from = unsafe { File::from_raw_fd(from) };
                let to = openat(
                    Some(d),
                    name,
                    OFlag::O_WRONLY
                        | OFlag::O_CREAT
                        | OFlag::O_EXCL
                        | OFlag::O_NOFOLLOW
                        | OFlag::O_CLOEXEC,
                    Mode::from_bits_truncate(0o600),
                )?;
                // SAFETY: as above.
                let mut to = unsafe { File::from_raw_fd(to) };
                io::copy(&mut from, &mut to)?;
                set_meta_fd(&to.into(), &st)?;
            }
            SFlag::S_IFLNK => {
                let target = nix::fcntl::readlinkat(Some(s), name)?;
                symlinkat(target.as_os_str(), Some(d), name)?;
                set_meta_at(d, name, &st, false)?;
            }
            SFlag::S_IFIFO | SFlag::S_IFCHR | SFlag::S_IFBLK => {
                mknodat(
                    Some(d),
                    name,
                    kind,
                    Mode::from_bits_truncate(0o600),
                    st.st_rdev,
                )?;
                set_meta_at(d, name, &st, true)?;
            }
            // Sockets belong to a process, not to an image.
            _ => {}
        }
    }
    Ok(())
}

fn times(st: &FileStat) -> (TimeSpec, TimeSpec) {
    (
        TimeSpec::new(st.st_atime, st.st_atime_nsec),
        TimeSpec::new(st.st_mtime, st.st_mtime_nsec),
    )
}

/// Owner, then mode (a chown clears set-id bits), then times.
fn set_meta_fd(fd: &OwnedFd, st: &FileStat) -> io::Result<()> {
    let fd = fd.as_raw_fd();
    fchown(
        fd,
        Some(Uid::from_raw(st.st_uid)),
        Some(Gid::from_raw(st.st_gid)),
    )?;
    fchmod(fd, Mode::from_bits_truncate(st.st_mode & 0o7777))?;
    let (a, m) = times(st);
    futimens(fd, &a, &m)?;
    Ok(())
}

/// The same for an entry that cannot be opened (a symlink, a node);
/// `chmod` only when it is not a symlink.
fn set_meta_at(dir: RawFd, name: &Path, st: &FileStat, chmod: bool) -> io::Result<()> {
    fchownat(
        Some(dir),
        name,
        Some(Uid::from_raw(st.st_uid)),
        Some(Gid::from_raw(st.st_gid)),
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )?;
    if chmod {
        fchmodat(
            Some(dir),
            name,
            Mode::from_bits_truncate(st.st_mode & 0o7777),
            FchmodatFlags::NoFollowSymlink,
        )
        .or_else(|e| match e {
            // Older kernels cannot chmod without following; a node is not
            // a link, so following is the same here.
            Errno::EOPNOTSUPP => fchmodat(
                Some(dir),
                name,
                Mode::from_bits_truncate(st.st_mode & 0o7777),
                FchmodatFlags::FollowSymlink,
            ),
            e => Err(e),
        })?;
    }
    let (a, m) = times(st);
    utimensat(Some(dir), name, &a, &m, UtimensatFlags::NoFollowSymlink)?;
    Ok(())
}

/// A volume's size: the bytes of its regular files (apparent sizes), not
/// following symlinks. Blocking.
pub fn size(dir: &Path) -> io::Result<u64> {
    let mut total = 0u64;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)? {
            let e = e?;
            let ft = e.file_type()?;
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                total = total.saturating_add(e.metadata()?.len());
            }
        }
    }
    Ok(total)
}

/// The names of the volumes in `volume_dir` (those with a data directory),
/// sorted. A missing `volume_dir` has none.
pub fn list(volume_dir: &Path) -> io::Result<Vec<String>> {
    let rd = match std::fs::read_dir(volume_dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for e in rd {
        let e = e?;
        let name = e.file_name();
        let Some(name) = name.to_str().filter(|n| valid_name(n)) else {
            continue;
        };
        if e.file_type()?.is_dir() && e.path().join(DATA).is_dir() {
            out.push(name.to_string());
        }
    }
    out.sort();
    Ok(out)
}

/// Removes volume `name` and everything in it. Blocking; the caller makes
/// sure no container uses it.
pub fn remove(volume_dir: &Path, name: &str) -> Result<(), VolumeError> {
    let own = volume_path(volume_dir, name)?;
    std::fs::remove_dir_all(&own).map_err(|err| VolumeError::Io {
        name: name.to_string(),
        what: "remove",
        path: own,
        err,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, FileTypeExt, MetadataExt, PermissionsExt};

    #[test]
    fn names_follow_dockers_rule() {
        for ok in ["pgdata", "a", "A1_b.c-d", "0"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", ".", "..", "-x", "_x", "a/b", "a b", "ü"] {
            assert!(!valid_name(bad), "{bad}");
            assert!(data_path(Path::new("/v"), bad).is_err(), "{bad}");
        }
        assert_eq!(
            data_path(Path::new("/v"), "pg").unwrap(),
            Path::new("/v/pg/_data")
        );
    }

    #[test]
    fn a_new_volume_is_filled_from_the_image_once() {
        let root = tempfile::tempdir().unwrap();
        let vols = tempfile::tempdir().unwrap();
        let r = root.path();
        std::fs::create_dir_all(r.join("var/lib/db/sub")).unwrap();
        std::fs::write(r.join("var/lib/db/conf"), "image content").unwrap();
        std::fs::write(r.join("var/lib/db/sub/deep"), "deeper").unwrap();
        std::os::unix::fs::chown(r.join("var/lib/db/conf"), Some(999), Some(998)).unwrap();
        std::fs::set_permissions(
            r.join("var/lib/db/conf"),
            std::fs::Permissions::from_mode(0o4751),
        )
        .unwrap();
        std::os::unix::fs::chown(r.join("var/lib/db"), Some(999), Some(999)).unwrap();
        std::fs::set_permissions(r.join("var/lib/db"), std::fs::Permissions::from_mode(0o700))
            .unwrap();
        symlink("/etc/shadow", r.join("var/lib/db/link")).unwrap();
        nix::unistd::mkfifo(&r.join("var/lib/db/fifo"), Mode::from_bits_truncate(0o640)).unwrap();

        let data = ensure(vols.path(), "db", r, Path::new("/var/lib/db")).unwrap();
        assert_eq!(data, vols.path().join("db/_data"));
        assert_eq!(
            std::fs::read_to_string(data.join("conf")).unwrap(),
            "image content"
        );
        assert_eq!(
            std::fs::read_to_string(data.join("sub/deep")).unwrap(),
            "deeper"
        );
        let m = std::fs::metadata(data.join("conf")).unwrap();
        assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (999, 998, 0o4751));
        let m = std::fs::metadata(&data).unwrap();
        assert_eq!((m.uid(), m.mode() & 0o7777), (999, 0o700));
        // The link is copied as a link, not followed.
        assert_eq!(
            std::fs::read_link(data.join("link")).unwrap(),
            Path::new("/etc/shadow")
        );
        let fifo = std::fs::symlink_metadata(data.join("fifo")).unwrap();
        assert!(fifo.file_type().is_fifo());
        assert_eq!(fifo.mode() & 0o7777, 0o640);
        assert!(!vols.path().join("db/_data.new").exists());

        // Used as it is afterwards: never refilled.
        std::fs::write(data.join("conf"), "changed by the service").unwrap();
        std::fs::remove_file(data.join("sub/deep")).unwrap();
        let again = ensure(vols.path(), "db", r, Path::new("/var/lib/db")).unwrap();
        assert_eq!(
            std::fs::read_to_string(again.join("conf")).unwrap(),
            "changed by the service"
        );
        assert!(!again.join("sub/deep").exists());
        assert_eq!(list(vols.path()).unwrap(), vec!["db".to_string()]);
        assert_eq!(size(&again).unwrap(), "changed by the service".len() as u64);
        remove(vols.path(), "db").unwrap();
        assert!(list(vols.path()).unwrap().is_empty());
    }

    #[test]
    fn a_path_the_image_lacks_gives_an_empty_volume_and_links_stay_inside() {
        let root = tempfile::tempdir().unwrap();
        let host = tempfile::tempdir().unwrap();
        let vols = tempfile::tempdir().unwrap();
        std::fs::write(host.path().join("secret"), "host").unwrap();
        let data = ensure(vols.path(), "empty", root.path(), Path::new("/nowhere")).unwrap();
        assert_eq!(std::fs::read_dir(&data).unwrap().count(), 0);
        // The mount path is a link out of the image: resolved inside it,
        // where it leads nowhere.
        symlink(host.path(), root.path().join("escape")).unwrap();
        let data = ensure(vols.path(), "esc", root.path(), Path::new("/escape")).unwrap();
        assert_eq!(std::fs::read_dir(&data).unwrap().count(), 0);
        // A partial copy an earlier run left is done again.
        std::fs::create_dir_all(vols.path().join("p/_data.new/junk")).unwrap();
        std::fs::create_dir_all(root.path().join("srv")).unwrap();
        std::fs::write(root.path().join("srv/f"), "x").unwrap();
        let data = ensure(vols.path(), "p", root.path(), Path::new("/srv")).unwrap();
        assert!(data.join("f").exists() && !data.join("junk").exists());
    }
}
