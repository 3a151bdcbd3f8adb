//! jarvis-fsutil: files replaced atomically.
//!
//! [`write_atomic`] writes the new contents to a temporary file in the same
//! directory (`.NAME.XXXXXX.partial`), then renames it over `NAME`
//! (`tempfile::NamedTempFile::persist`), so a reader sees the old file or the
//! new one, never half of one. With [`Durability::Durable`] the file is
//! fsynced before the rename and its directory after it, so the new contents
//! also survive a power cut once the call returns. On any error the
//! temporary file is removed and `NAME` is left as it was.

use std::fs::{File, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// How far a write must have got when [`write_atomic`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// On disk: the file is fsynced before the rename and the directory
    /// after it. For state that must survive a crash of the machine.
    Durable,
    /// Only atomic: no fsync, so a crash of the machine may lose the write
    /// (a crash of the process cannot). For files that need to outlive a
    /// process, not a reboot.
    Atomic,
}

/// Replaces `path` with `contents`, atomically (see the crate's docs). The
/// file is created with mode 0666 less the umask, as `File::create` would.
/// Errors name the file the failing step was about.
pub fn write_atomic(path: &Path, contents: &[u8], durability: Durability) -> io::Result<()> {
    write_atomic_mode(path, contents, durability, 0o666)
}

/// [`write_atomic`], with the new file created with `mode` (less the umask)
/// from the start: a private file (0600) is never readable by others, not
/// even for a moment.
pub fn write_atomic_mode(
    path: &Path,
    contents: &[u8],
    durability: Durability,
    mode: u32,
) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: not a file name", path.display()),
        )
    })?;
    let prefix = format!(".{}.", name.to_string_lossy());
    let mut tmp = tempfile::Builder::new()
        .prefix(&prefix)
        .suffix(".partial")
        .permissions(Permissions::from_mode(mode))
        .tempfile_in(dir)
        .map_err(|e| context(e, "create a temporary file in", dir))?;
    tmp.write_all(contents)
        .map_err(|e| context(e, "write", tmp.path()))?;
    if durability == Durability::Durable {
        tmp.as_file()
            .sync_all()
            .map_err(|e| context(e, "fsync", tmp.path()))?;
    }
    tmp.persist(path)
        .map_err(|e| context(e.error, "rename a temporary file to", path))?;
    if durability == Durability::Durable {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Fsyncs a directory, so that the entries created, renamed or removed in
/// it are on disk.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| context(e, "fsync", dir))
}

/// `e` with what was being done, and to which path, in its message; its
/// kind kept, and the error itself kept as the source, so its errno is not
/// lost (see [`os_error`]).
fn context(e: io::Error, what: &str, path: &Path) -> io::Error {
    let kind = e.kind();
    io::Error::new(
        kind,
        Context {
            what: format!("{what} {}", path.display()),
            source: e,
        },
    )
}

/// An I/O error and what was being done when it happened.
#[derive(Debug)]
struct Context {
    what: String,
    source: io::Error,
}

impl std::fmt::Display for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.what, self.source)
    }
}

impl std::error::Error for Context {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// The errno behind `e`, looking through the context this crate (or any
/// wrapper that names its source) gave it.
pub fn os_error(e: &io::Error) -> Option<i32> {
    if let Some(errno) = e.raw_os_error() {
        return Some(errno);
    }
    let mut next: Option<&(dyn std::error::Error + 'static)> = e.get_ref().map(|i| i as _);
    while let Some(inner) = next {
        if let Some(io) = inner.downcast_ref::<io::Error>() {
            return os_error(io);
        }
        next = inner.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_errno_survives_the_context() {
        let e = context(
            io::Error::from_raw_os_error(libc::EMFILE),
            "create a temporary file in",
            Path::new("/run/jarvis"),
        );
        assert_eq!(os_error(&e), Some(libc::EMFILE));
        assert!(
            e.to_string()
                .starts_with("create a temporary file in /run/jarvis: "),
            "{e}"
        );
        assert!(e.to_string().contains("(os error 24)"), "{e}");
        assert_eq!(os_error(&io::Error::other("no errno")), None);
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn replaces_the_file_and_leaves_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state.json");
        for durability in [Durability::Durable, Durability::Atomic] {
            write_atomic(&p, b"one", durability).unwrap();
            assert_eq!(std::fs::read(&p).unwrap(), b"one");
            write_atomic(&p, b"two", durability).unwrap();
            assert_eq!(std::fs::read(&p).unwrap(), b"two");
            assert_eq!(names(dir.path()), ["state.json"]);
        }
    }

    #[test]
    fn the_mode_is_what_file_create_gives() {
        let dir = tempfile::tempdir().unwrap();
        let ours = dir.path().join("a");
        let plain = dir.path().join("b");
        write_atomic(&ours, b"x", Durability::Atomic).unwrap();
        File::create(&plain).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&ours), mode(&plain));
    }

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("refs.json");
        write_atomic(&p, b"old", Durability::Durable).unwrap();
        // The target is a non-empty directory now: the rename fails.
        let blocked = dir.path().join("blocked");
        std::fs::create_dir(&blocked).unwrap();
        std::fs::write(blocked.join("x"), b"").unwrap();
        let e = write_atomic(&blocked, b"new", Durability::Durable).unwrap_err();
        assert!(e.to_string().contains("blocked"), "{e}");
        assert_eq!(names(dir.path()), ["blocked", "refs.json"]);
        assert_eq!(std::fs::read(&p).unwrap(), b"old");
    }

    #[test]
    fn a_missing_directory_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let e = write_atomic(
            &dir.path().join("gone/state.json"),
            b"x",
            Durability::Durable,
        )
        .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(e.to_string().contains("gone"), "{e}");
    }
}
