//! `[[secret]]`: host files a run reads, copied into a small tmpfs of its
//! own for the length of the run.
//!
//! [`mount`] mounts a fresh tmpfs at a directory (`size` just what the
//! files need, `noswap` where the kernel has it, `nosuid,nodev,noexec`),
//! checks that what is there now is that tmpfs, and only then copies each
//! secret in: owned by the run's user, with the secret's mode, the
//! directory 0500 owned by the same user. The content lives in memory
//! only; jarvis writes it nowhere else and never logs it. [`unmount`]
//! takes it away when the run is over (and clears what a run cut short
//! left).
//!
//! A container gets the directory bound read-only at `/run/secrets`; a
//! native unit gets its path in `$CREDENTIALS_DIRECTORY`.
//!
//! [`mount_file`] makes a tmpfs of the same kind, root's only, for one file
//! that holds secrets among other things: the `config.json` of a container
//! run whose environment has values from an encrypted env file.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use jarvis_unit::Secret;
use nix::errno::Errno;
use nix::fcntl::{openat, OFlag};
use nix::mount::{MntFlags, MsFlags};
use nix::sys::stat::Mode;

/// The largest secret: 1 MiB (systemd's limit for a credential).
pub const MAX_SIZE: u64 = 1 << 20;

const PAGE: u64 = 4096;

/// Why the secrets could not be put in place.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// A source is missing or unreadable; the message names the file.
    #[error("secret {target}: {}: {err}", source_path.display())]
    Source {
        target: String,
        source_path: PathBuf,
        err: String,
    },
    #[error("secrets directory {}: {what}: {err}", path.display())]
    Dir {
        path: PathBuf,
        what: &'static str,
        #[source]
        err: io::Error,
    },
}

/// Mounts a tmpfs at `dir` (created if missing; its parent must exist)
/// and fills it with `secrets`, owned by `uid`:`gid`. Whatever an earlier
/// run left there is unmounted first. Blocking. On failure nothing stays
/// mounted.
pub fn mount(dir: &Path, secrets: &[Secret], uid: u32, gid: u32) -> Result<(), SecretError> {
    let fail = |what: &'static str| {
        let path = dir.to_path_buf();
        move |err: io::Error| SecretError::Dir { path, what, err }
    };
    // Read every source first: a missing one fails before anything is
    // mounted, and the message names it.
    let mut contents = Vec::with_capacity(secrets.len());
    for s in secrets {
        contents.push(read_source(s)?);
    }
    let pages: u64 = contents
        .iter()
        .map(|c| (c.len() as u64).div_ceil(PAGE).max(1))
        .sum::<u64>()
        + 1;
    mount_tmpfs(dir, pages, secrets.len() + 8).map_err(|(what, err)| fail(what)(err))?;
    let filled = fill(dir, secrets, &contents, uid, gid);
    if let Err(e) = filled {
        let _ = unmount(dir);
        return Err(fail("fill")(e));
    }
    Ok(())
}

/// Mounts a fresh tmpfs of `pages` pages and `inodes` inodes at `dir`
/// (created if missing; its parent must exist), root's and 0700, after
/// unmounting whatever an earlier run left there. On failure, what was
/// being done and why.
fn mount_tmpfs(dir: &Path, pages: u64, inodes: usize) -> Result<(), (&'static str, io::Error)> {
    unmount(dir).map_err(|e| ("clear an earlier run's", e))?;
    match std::fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(("create", e)),
    }
    let opts = |noswap: bool| {
        format!(
            "size={},nr_inodes={inodes},mode=0700,uid=0,gid=0{}",
            pages * PAGE,
            if noswap { ",noswap" } else { "" }
        )
    };
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let mounted = nix::mount::mount(
        Some("tmpfs"),
        dir,
        Some("tmpfs"),
        flags,
        Some(opts(true).as_str()),
    )
    .or_else(|e| match e {
        // `noswap` is Linux 6.4's.
        Errno::EINVAL => nix::mount::mount(
            Some("tmpfs"),
            dir,
            Some("tmpfs"),
            flags,
            Some(opts(false).as_str()),
        ),
        e => Err(e),
    });
    mounted.map_err(|e| ("mount a tmpfs", e.into()))
}

/// Opens the directory `dir` and checks that it is a tmpfs (never a
/// directory on disk).
fn open_tmpfs(dir: &Path) -> io::Result<OwnedFd> {
    let fd = nix::fcntl::open(
        dir,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    // SAFETY: `open` just returned this descriptor and nothing else owns it.
    let dirfd = unsafe { OwnedFd::from_raw_fd(fd) };
    let fs = nix::sys::statfs::fstatfs(&dirfd)?;
    if fs.filesystem_type() != nix::sys::statfs::TMPFS_MAGIC {
        return Err(io::Error::other("not the tmpfs just mounted there"));
    }
    Ok(dirfd)
}

/// Mounts a tmpfs of its own at `dir` (as [`mount`] does, sized for
/// `content`, root's only: the directory 0700, the file 0600) and writes
/// `content` into it as `name`: for a file that holds secrets among other
/// things (a run's `config.json`, whose environment may hold values from
/// an encrypted env file), which must never reach a disk. Whatever an
/// earlier run left at `dir` is unmounted first; [`unmount`] takes it
/// away. Blocking. On failure nothing stays mounted.
pub fn mount_file(dir: &Path, name: &str, content: &[u8]) -> Result<(), SecretError> {
    let fail = |what: &'static str| {
        let path = dir.to_path_buf();
        move |err: io::Error| SecretError::Dir { path, what, err }
    };
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(fail("fill")(io::Error::other(format!(
            "{name:?} is not a file name"
        ))));
    }
    let pages = (content.len() as u64).div_ceil(PAGE).max(1) + 1;
    mount_tmpfs(dir, pages, 4).map_err(|(what, err)| fail(what)(err))?;
    let filled = (|| {
        let dirfd = open_tmpfs(dir)?;
        let fd = openat(
            Some(dirfd.as_raw_fd()),
            name,
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )?;
        // SAFETY: a fresh descriptor nothing else owns.
        let mut f = unsafe { File::from_raw_fd(fd) };
        f.write_all(content)
    })();
    if let Err(e) = filled {
        let _ = unmount(dir);
        return Err(fail("fill")(e));
    }
    Ok(())
}

/// Reads a secret's source: a regular file of at most [`MAX_SIZE`] bytes.
fn read_source(s: &Secret) -> Result<Vec<u8>, SecretError> {
    let fail = |err: String| SecretError::Source {
        target: s.target.clone(),
        source_path: s.source.clone(),
        err,
    };
    let file = File::open(&s.source).map_err(|e| {
        fail(match e.kind() {
            io::ErrorKind::NotFound => "no such file".into(),
            _ => e.to_string(),
        })
    })?;
    let meta = file.metadata().map_err(|e| fail(e.to_string()))?;
    if !meta.is_file() {
        return Err(fail("not a regular file".into()));
    }
    let mut buf = Vec::with_capacity(meta.len().min(MAX_SIZE) as usize);
    file.take(MAX_SIZE + 1)
        .read_to_end(&mut buf)
        .map_err(|e| fail(e.to_string()))?;
    if buf.len() as u64 > MAX_SIZE {
        return Err(fail(format!("larger than {MAX_SIZE} bytes")));
    }
    Ok(buf)
}

/// Writes the files into the tmpfs just mounted at `dir`, after checking
/// that `dir` is that tmpfs (never a directory on disk).
fn fill(
    dir: &Path,
    secrets: &[Secret],
    contents: &[Vec<u8>],
    uid: u32,
    gid: u32,
) -> io::Result<()> {
    let dirfd = open_tmpfs(dir)?;
    for (s, content) in secrets.iter().zip(contents) {
        if s.target.is_empty() || s.target.contains('/') || s.target == "." || s.target == ".." {
            return Err(io::Error::other(format!(
                "target {:?} is not a file name",
                s.target
            )));
        }
        let fd = openat(
            Some(dirfd.as_raw_fd()),
            s.target.as_str(),
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )?;
        // SAFETY: a fresh descriptor nothing else owns.
        let mut f = unsafe { File::from_raw_fd(fd) };
        f.write_all(content)?;
        nix::unistd::fchown(
            f.as_raw_fd(),
            Some(nix::unistd::Uid::from_raw(uid)),
            Some(nix::unistd::Gid::from_raw(gid)),
        )?;
        nix::sys::stat::fchmod(f.as_raw_fd(), Mode::from_bits_truncate(s.mode & 0o7777))?;
    }
    nix::unistd::fchown(
        dirfd.as_raw_fd(),
        Some(nix::unistd::Uid::from_raw(uid)),
        Some(nix::unistd::Gid::from_raw(gid)),
    )?;
    nix::sys::stat::fchmod(dirfd.as_raw_fd(), Mode::from_bits_truncate(0o500))?;
    Ok(())
}

/// Unmounts the tmpfs at `dir` (every mount stacked there) and removes the
/// directory. Nothing there is fine. Blocking.
pub fn unmount(dir: &Path) -> io::Result<()> {
    for _ in 0..16 {
        match crate::rootfs::is_mount_point(dir) {
            Ok(true) => nix::mount::umount2(dir, MntFlags::MNT_DETACH)?,
            Ok(false) => break,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        }
    }
    match std::fs::remove_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn secret(source: &Path, target: &str) -> Secret {
        Secret {
            source: source.to_path_buf(),
            target: target.into(),
            mode: Secret::DEFAULT_MODE,
        }
    }

    #[test]
    fn a_missing_source_is_named_and_nothing_is_mounted() {
        let tmp = tempfile::tempdir().unwrap();
        let gone = tmp.path().join("db_password");
        let dir = tmp.path().join("creds");
        let e = mount(&dir, &[secret(&gone, "db")], 0, 0).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("secret db: {}: no such file", gone.display())
        );
        assert!(!dir.exists());
    }

    #[test]
    fn secrets_live_in_a_tmpfs_owned_by_the_user() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("SKIPPED: mounting a tmpfs needs root");
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("pw");
        std::fs::write(&src, "hunter2").unwrap();
        let dir = tmp.path().join("creds");
        let mut s = secret(&src, "db");
        s.mode = 0o440;
        mount(&dir, &[s, secret(&src, "other")], 65534, 65533).unwrap();
        let fs = nix::sys::statfs::statfs(&dir).unwrap();
        assert_eq!(fs.filesystem_type(), nix::sys::statfs::TMPFS_MAGIC);
        assert_eq!(std::fs::read_to_string(dir.join("db")).unwrap(), "hunter2");
        let m = std::fs::metadata(dir.join("db")).unwrap();
        assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (65534, 65533, 0o440));
        let m = std::fs::metadata(dir.join("other")).unwrap();
        assert_eq!(m.mode() & 0o7777, 0o400);
        let m = std::fs::metadata(&dir).unwrap();
        assert_eq!((m.uid(), m.mode() & 0o7777), (65534, 0o500));
        // A second mount replaces the first; unmount leaves nothing.
        mount(&dir, &[secret(&src, "db")], 0, 0).unwrap();
        assert!(!dir.join("other").exists());
        unmount(&dir).unwrap();
        assert!(!dir.exists());
        unmount(&dir).unwrap();
    }

    #[test]
    fn a_file_of_secrets_lives_in_a_tmpfs_only_root_reads() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("SKIPPED: mounting a tmpfs needs root");
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("spec");
        let big = vec![b'x'; 3 * PAGE as usize + 1];
        mount_file(&dir, "config.json", &big).unwrap();
        let fs = nix::sys::statfs::statfs(&dir).unwrap();
        assert_eq!(fs.filesystem_type(), nix::sys::statfs::TMPFS_MAGIC);
        assert_eq!(std::fs::read(dir.join("config.json")).unwrap(), big);
        let m = std::fs::metadata(dir.join("config.json")).unwrap();
        assert_eq!((m.uid(), m.mode() & 0o7777), (0, 0o600));
        let m = std::fs::metadata(&dir).unwrap();
        assert_eq!((m.uid(), m.mode() & 0o7777), (0, 0o700));
        // Just big enough: a second file of that size does not fit.
        assert!(std::fs::write(dir.join("more"), &big).is_err());
        // A second mount replaces the first; unmount leaves nothing.
        mount_file(&dir, "config.json", b"{}").unwrap();
        assert_eq!(std::fs::read(dir.join("config.json")).unwrap(), b"{}");
        assert!(!dir.join("more").exists());
        unmount(&dir).unwrap();
        assert!(!dir.exists());
        let e = mount_file(&dir, "../x", b"{}").unwrap_err();
        assert!(e.to_string().contains("is not a file name"), "{e}");
        assert!(!dir.exists());
    }
}
