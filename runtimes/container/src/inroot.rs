//! Path resolution that stays inside a container's root filesystem.
//!
//! An image controls its own symlinks: `/etc/passwd -> /host/secret` or a
//! working directory `../../..` must not reach the host. Every lookup here
//! goes through `openat2(2)` with `RESOLVE_IN_ROOT`, which resolves `..` and
//! absolute symlinks as if the rootfs were `/`, and refuses magic links.
//! Every descriptor is opened `O_CLOEXEC`.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Component, Path};

use nix::errno::Errno;
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fstat, mkdirat, Mode, SFlag};

fn resolve_flags() -> ResolveFlag {
    ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS
}

fn open_root(rootfs: &Path) -> io::Result<OwnedFd> {
    let fd = nix::fcntl::open(
        rootfs,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    // SAFETY: `open` just returned this descriptor and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn open_in(root: &OwnedFd, path: &Path, flags: OFlag) -> Result<OwnedFd, Errno> {
    let rel = relative(path);
    let how = OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .resolve(resolve_flags());
    let fd = openat2(root.as_raw_fd(), rel, how)?;
    // SAFETY: `openat2` just returned this descriptor and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `path` without its leading `/` (an empty path becomes `.`).
fn relative(path: &Path) -> &Path {
    let rel = path.strip_prefix("/").unwrap_or(path);
    if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    }
}

/// Reads a regular file at `path` (absolute, as seen from inside the
/// container) of the rootfs. `Ok(None)` when it does not exist. Refuses
/// anything but a regular file (a FIFO would block, a device would be worse)
/// and files over `limit` bytes.
pub fn read_file(rootfs: &Path, path: &Path, limit: u64) -> io::Result<Option<Vec<u8>>> {
    let root = open_root(rootfs)?;
    let fd = match open_in(
        &root,
        path,
        OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOCTTY,
    ) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) | Err(Errno::ENOTDIR) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let st = fstat(fd.as_raw_fd())?;
    if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFREG {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} in the image is not a regular file", path.display()),
        ));
    }
    if st.st_size as u64 > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{} in the image is larger than {limit} bytes",
                path.display()
            ),
        ));
    }
    let mut buf = Vec::with_capacity(st.st_size as usize);
    File::from(fd).take(limit + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} grew past {limit} bytes", path.display()),
        ));
    }
    Ok(Some(buf))
}

/// Opens the directory at `path` (absolute, as seen from inside the
/// container) of the rootfs for reading its entries. `Ok(None)` when
/// nothing is there or it is not a directory.
pub fn open_dir(rootfs: &Path, path: &Path) -> io::Result<Option<OwnedFd>> {
    let root = open_root(rootfs)?;
    match open_in(&root, path, OFlag::O_RDONLY | OFlag::O_DIRECTORY) {
        Ok(fd) => Ok(Some(fd)),
        Err(Errno::ENOENT) | Err(Errno::ENOTDIR) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Creates the directory `path` (absolute, as seen from inside the
/// container) and its missing parents inside the rootfs, like `mkdir -p`,
/// resolving every existing component inside the rootfs. A component that
/// exists but is not a directory is an error.
pub fn mkdir_all(rootfs: &Path, path: &Path, mode: u32) -> io::Result<()> {
    let root = open_root(rootfs)?;
    let mut parent = open_in(&root, Path::new("."), OFlag::O_PATH | OFlag::O_DIRECTORY)?;
    let mut so_far = std::path::PathBuf::from("/");
    for comp in path.components() {
        match comp {
            Component::RootDir | Component::CurDir => continue,
            Component::Prefix(_) => unreachable!("no prefixes on Unix"),
            Component::ParentDir => {
                so_far.push("..");
                parent = open_in(&root, &so_far, OFlag::O_PATH | OFlag::O_DIRECTORY)?;
            }
            Component::Normal(name) => {
                so_far.push(name);
                match open_in(&root, &so_far, OFlag::O_PATH | OFlag::O_DIRECTORY) {
                    Ok(fd) => {
                        parent = fd;
                        continue;
                    }
                    Err(Errno::ENOENT) => {}
                    Err(e) => {
                        return Err(io::Error::other(format!(
                            "{} in the image: {e}",
                            so_far.display()
                        )))
                    }
                }
                // `parent` was resolved inside the root; a plain name under it
                // cannot escape. mkdirat does not follow a dangling symlink
                // (EEXIST), which then fails the open below.
                match mkdirat(
                    Some(parent.as_raw_fd()),
                    name,
                    Mode::from_bits_truncate(mode),
                ) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => return Err(e.into()),
                }
                parent =
                    open_in(&root, &so_far, OFlag::O_PATH | OFlag::O_DIRECTORY).map_err(|e| {
                        io::Error::other(format!("{} in the image: {e}", so_far.display()))
                    })?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn reads_stay_inside_the_root() {
        let host = tempfile::tempdir().unwrap();
        std::fs::write(host.path().join("secret"), "host secret").unwrap();
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("etc")).unwrap();
        // An absolute symlink pointing at a host path resolves inside the root.
        symlink(host.path().join("secret"), root.path().join("etc/passwd")).unwrap();
        assert_eq!(
            read_file(root.path(), Path::new("/etc/passwd"), 1024).unwrap(),
            None
        );
        symlink(
            "../../../../../../etc/hostname",
            root.path().join("etc/group"),
        )
        .unwrap();
        std::fs::write(root.path().join("etc/hostname"), "inside").unwrap();
        assert_eq!(
            read_file(root.path(), Path::new("/etc/group"), 1024).unwrap(),
            Some(b"inside".to_vec())
        );
        assert!(read_file(root.path(), Path::new("/etc/hostname"), 3).is_err());
        assert!(read_file(root.path(), Path::new("/etc"), 1024).is_err());
    }

    #[test]
    fn mkdir_all_stays_inside_the_root() {
        let host = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        // A link to a host path dangles inside the root: refused, host untouched.
        symlink(host.path(), root.path().join("escape")).unwrap();
        assert!(mkdir_all(root.path(), Path::new("/escape/a/b"), 0o755).is_err());
        assert!(!host.path().join("a").exists());
        // An absolute link is followed inside the root.
        std::fs::create_dir(root.path().join("srv")).unwrap();
        symlink("/srv", root.path().join("link")).unwrap();
        mkdir_all(root.path(), Path::new("/link/a/b"), 0o755).unwrap();
        assert!(root.path().join("srv/a/b").is_dir());
        mkdir_all(root.path(), Path::new("/../../x/./y"), 0o755).unwrap();
        assert!(root.path().join("x/y").is_dir());
        std::fs::write(root.path().join("file"), "").unwrap();
        assert!(mkdir_all(root.path(), Path::new("/file/sub"), 0o755).is_err());
    }
}
