//! Extracting layer archives safely, in overlayfs form.
//!
//! A layer is a tar archive, plain, gzip- or zstd-compressed (found by its
//! first bytes, whatever the media type says). [`unpack_layer`] extracts it
//! into an empty directory so that the directory can be stacked directly as an
//! overlayfs `lowerdir`:
//!
//! - `.wh.NAME` becomes a character device `NAME` with device number 0/0 (an
//!   overlayfs whiteout), owned by 0/0;
//! - `.wh..wh..opq` becomes the xattr `trusted.overlay.opaque=y` on its
//!   directory; other `.wh..wh.*` entries (AUFS bookkeeping) are skipped.
//!
//! Nothing may land outside the directory. Every entry's path is split into
//! components; absolute paths and `..` components are refused, and each parent
//! directory is opened one component at a time with `O_NOFOLLOW`, relative to
//! the one before, so an entry can never be written *through* a symlink (even
//! one pointing inside the layer: well-formed layers never need that). Hard
//! links must name an earlier, non-directory entry of the same layer. Symlink
//! *targets* are stored as they are (absolute ones included) and never
//! followed.
//!
//! Kept: file contents, modes (setuid/setgid/sticky included), numeric
//! owners, modification times (directories' too, set once the archive is
//! done), hard links, symlinks, device nodes and fifos, and the xattrs
//! `user.*` and `security.capability` (from PAX `SCHILY.xattr.*` records).
//! Other xattrs are dropped: `trusted.overlay.*` from an archive would let it
//! forge overlayfs metadata, and ACLs and SELinux labels mean nothing here.
//!
//! Any refused entry aborts the extraction with [`Error::UnsafeEntry`]; the
//! caller throws the partial directory away (the store unpacks into a
//! temporary directory and renames it into place only on success).

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Gid, Mode, OFlags, Timespec, Timestamps, Uid, XattrFlags};
use rustix::io::Errno;

use crate::error::{Error, IoContext, Result};

/// The xattr overlayfs reads to make a directory opaque.
pub const OPAQUE_XATTR: &str = "trusted.overlay.opaque";
const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_WHITEOUT: &str = ".wh..wh..opq";
const WHITEOUT_META_PREFIX: &str = ".wh..wh.";

/// Which compression a blob uses, by its magic bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar archive.
    None,
    /// gzip (possibly several concatenated members).
    Gzip,
    /// zstd.
    Zstd,
}

/// Open `path` and return a reader of the decompressed bytes, choosing the
/// decompressor from the first bytes.
pub(crate) fn open_decompressed(path: &Path, label: &str) -> Result<(Box<dyn Read>, Compression)> {
    let file = File::open(path).ctx("open", path)?;
    decompress(BufReader::with_capacity(256 * 1024, file), label)
}

pub(crate) fn decompress<R: BufRead + 'static>(
    mut r: R,
    label: &str,
) -> Result<(Box<dyn Read>, Compression)> {
    let head = r.fill_buf().map_err(|e| Error::Layer {
        layer: label.to_string(),
        message: format!("reading: {e}"),
    })?;
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok((
            Box::new(flate2::bufread::MultiGzDecoder::new(r)),
            Compression::Gzip,
        ))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        let d = zstd::stream::read::Decoder::with_buffer(r).map_err(|e| Error::Layer {
            layer: label.to_string(),
            message: format!("zstd: {e}"),
        })?;
        Ok((Box::new(d), Compression::Zstd))
    } else if head.starts_with(b"BZh") || head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Err(Error::Layer {
            layer: label.to_string(),
            message: "bzip2/xz compressed layers are not supported (only gzip, zstd and plain tar)"
                .to_string(),
        })
    } else {
        Ok((Box::new(r), Compression::None))
    }
}

/// Extract the layer blob at `blob` into `dest`, an existing empty directory,
/// in overlayfs form (see the module docs). `layer` names the layer in errors
/// (its digest).
///
/// This is blocking work: run it on a blocking thread.
pub fn unpack_layer(blob: &Path, dest: &Path, layer: &str) -> Result<()> {
    let (reader, _) = open_decompressed(blob, layer)?;
    unpack_reader(reader, dest, layer)
}

/// [`unpack_layer`] from a reader of the decompressed archive.
pub(crate) fn unpack_reader(reader: Box<dyn Read>, dest: &Path, layer: &str) -> Result<()> {
    Unpacker::new(dest, layer, Kind::Layer)?.run(reader)
}

/// Extract an archive of plain files and directories (an OCI layout in a tar)
/// into `dest`. Only regular files and directories are created (0644, 0755,
/// owned by the caller); anything else is skipped. The same path checks as for
/// layers apply.
pub(crate) fn unpack_plain(reader: Box<dyn Read>, dest: &Path, label: &str) -> Result<()> {
    Unpacker::new(dest, label, Kind::Plain)?.run(reader)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Layer,
    Plain,
}

struct Meta {
    uid: u32,
    gid: u32,
    mode: u32,
    times: Timestamps,
    xattrs: Vec<(String, Vec<u8>)>,
}

struct Unpacker<'a> {
    root: OwnedFd,
    root_path: &'a Path,
    layer: &'a str,
    kind: Kind,
    /// Directories whose times are set once every entry is in place.
    dirs: Vec<(Vec<OsString>, Timestamps)>,
}

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

fn mode(bits: u32) -> Mode {
    Mode::from_raw_mode(bits & 0o7777)
}

fn display(comps: &[&OsStr]) -> String {
    let mut s = String::new();
    for (i, c) in comps.iter().enumerate() {
        if i > 0 {
            s.push('/');
        }
        s.push_str(&c.to_string_lossy());
    }
    s
}

/// Split an archive path into components, refusing absolute paths and `..`.
fn clean(raw: &[u8]) -> Result<Vec<&OsStr>, String> {
    if raw.first() == Some(&b'/') {
        return Err("absolute path; entries must be relative to the layer root".into());
    }
    let mut out = Vec::new();
    for c in raw.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return Err("`..` component would escape the layer root".into()),
            c => out.push(OsStr::from_bytes(c)),
        }
    }
    Ok(out)
}

impl<'a> Unpacker<'a> {
    fn new(dest: &'a Path, layer: &'a str, kind: Kind) -> Result<Self> {
        let root = rustix::fs::open(dest, DIR_FLAGS, Mode::empty()).ctx("open", dest)?;
        // The directory the caller made may be 0700 (a temporary directory);
        // a layer root without a `./` entry should look like any directory.
        rustix::fs::fchmod(&root, Mode::from_raw_mode(0o755)).ctx("chmod", dest)?;
        Ok(Unpacker {
            root,
            root_path: dest,
            layer,
            kind,
            dirs: Vec::new(),
        })
    }

    fn refuse(&self, entry: &str, reason: impl Into<String>) -> Error {
        Error::UnsafeEntry {
            layer: self.layer.to_string(),
            entry: entry.to_string(),
            reason: reason.into(),
        }
    }

    fn broken(&self, message: impl Into<String>) -> Error {
        Error::Layer {
            layer: self.layer.to_string(),
            message: message.into(),
        }
    }

    fn path_of(&self, comps: &[&OsStr]) -> PathBuf {
        let mut p = self.root_path.to_path_buf();
        p.extend(comps);
        p
    }

    fn run(mut self, reader: Box<dyn Read>) -> Result<()> {
        let mut archive = tar::Archive::new(reader);
        let entries = archive
            .entries()
            .map_err(|e| self.broken(format!("reading the archive: {e}")))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| self.broken(format!("reading the archive: {e}")))?;
            self.entry(&mut entry)?;
        }
        self.finish_dirs()
    }

    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<()> {
        let raw = entry.path_bytes().into_owned();
        let name = String::from_utf8_lossy(&raw).into_owned();
        let comps = clean(&raw).map_err(|r| self.refuse(&name, r))?;
        let ty = entry.header().entry_type();
        let meta = self.meta(entry, &name)?;

        if self.kind == Kind::Plain {
            return match ty {
                tar::EntryType::Directory => {
                    if !comps.is_empty() {
                        let parent = self.open_parent(&comps, &name)?;
                        self.make_dir(&parent, &comps, None)?;
                    }
                    Ok(())
                }
                tar::EntryType::Regular
                | tar::EntryType::Continuous
                | tar::EntryType::GNUSparse => {
                    if comps.is_empty() {
                        return Err(self.refuse(&name, "a file cannot be the root"));
                    }
                    let parent = self.open_parent(&comps, &name)?;
                    self.write_file(&parent, &comps, entry, None)
                }
                _ => {
                    tracing::debug!(entry = %name, "skipping non-regular entry in an OCI layout archive");
                    Ok(())
                }
            };
        }

        if comps.is_empty() {
            if ty != tar::EntryType::Directory {
                return Err(self.refuse(&name, "the layer root must be a directory"));
            }
            let root = self.root.try_clone().ctx("dup", self.root_path)?;
            self.set_meta(root.as_fd(), &meta, self.root_path)?;
            self.dirs.push((Vec::new(), clone_times(&meta.times)));
            return Ok(());
        }

        let last = comps[comps.len() - 1].to_string_lossy().into_owned();
        if last == OPAQUE_WHITEOUT {
            let parent = self.open_parent(&comps, &name)?;
            let dir_path = self.path_of(&comps[..comps.len() - 1]);
            return rustix::fs::fsetxattr(&parent, OPAQUE_XATTR, b"y", XattrFlags::empty())
                .ctx("set opaque xattr on", dir_path);
        }
        if last.starts_with(WHITEOUT_META_PREFIX) {
            tracing::debug!(entry = %name, "skipping AUFS metadata entry");
            return Ok(());
        }
        if let Some(hidden) = last.strip_prefix(WHITEOUT_PREFIX) {
            if hidden.is_empty() || hidden == "." || hidden == ".." {
                return Err(self.refuse(&name, "whiteout of an invalid name"));
            }
            let parent = self.open_parent(&comps, &name)?;
            let hidden =
                OsStr::from_bytes(&comps[comps.len() - 1].as_bytes()[WHITEOUT_PREFIX.len()..]);
            let mut target: Vec<&OsStr> = comps[..comps.len() - 1].to_vec();
            target.push(hidden);
            let path = self.path_of(&target);
            self.clear(&parent, hidden, false, &path)?;
            rustix::fs::mknodat(
                &parent,
                hidden,
                FileType::CharacterDevice,
                Mode::empty(),
                rustix::fs::makedev(0, 0),
            )
            .ctx("create whiteout", &path)?;
            // Owned by 0/0 (we are root); the entry's time, for reproducibility.
            return rustix::fs::utimensat(&parent, hidden, &meta.times, AtFlags::SYMLINK_NOFOLLOW)
                .ctx("set times on", &path);
        }

        let parent = self.open_parent(&comps, &name)?;
        let file_name = comps[comps.len() - 1];
        let path = self.path_of(&comps);
        match ty {
            tar::EntryType::Directory => {
                self.make_dir(&parent, &comps, Some(&meta))?;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                self.write_file(&parent, &comps, entry, Some(&meta))?;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| self.broken(format!("symlink {name:?} has no target")))?
                    .into_owned();
                if target.is_empty() {
                    return Err(self.broken(format!("symlink {name:?} has an empty target")));
                }
                self.clear(&parent, file_name, false, &path)?;
                rustix::fs::symlinkat(OsStr::from_bytes(&target), &parent, file_name)
                    .ctx("create symlink", &path)?;
                self.set_meta_at(&parent, file_name, &meta, &path, false)?;
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| self.broken(format!("hard link {name:?} has no target")))?
                    .into_owned();
                self.hard_link(&parent, &comps, &name, &target)?;
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let (ft, dev) = match ty {
                    tar::EntryType::Fifo => (FileType::Fifo, 0),
                    _ => {
                        let h = entry.header();
                        let major = h.device_major().ok().flatten().unwrap_or(0);
                        let minor = h.device_minor().ok().flatten().unwrap_or(0);
                        let ft = if ty == tar::EntryType::Char {
                            FileType::CharacterDevice
                        } else {
                            FileType::BlockDevice
                        };
                        (ft, rustix::fs::makedev(major, minor))
                    }
                };
                self.clear(&parent, file_name, false, &path)?;
                rustix::fs::mknodat(&parent, file_name, ft, Mode::empty(), dev)
                    .ctx("create node", &path)?;
                self.set_meta_at(&parent, file_name, &meta, &path, true)?;
            }
            other => {
                return Err(
                    self.broken(format!("entry {name:?} has an unsupported type {other:?}"))
                );
            }
        }
        Ok(())
    }

    /// Owner, mode, times and xattrs of an entry, PAX records overriding the
    /// header.
    fn meta<R: Read>(&self, entry: &mut tar::Entry<'_, R>, name: &str) -> Result<Meta> {
        let h = entry.header();
        let bad =
            |what: &str, e: std::io::Error| self.broken(format!("entry {name:?}: bad {what}: {e}"));
        let mut uid = h.uid().map_err(|e| bad("uid", e))?;
        let mut gid = h.gid().map_err(|e| bad("gid", e))?;
        let mode_bits = h.mode().map_err(|e| bad("mode", e))?;
        let mut mtime = (h.mtime().map_err(|e| bad("mtime", e))? as i64, 0i64);
        let mut xattrs = Vec::new();
        if let Some(exts) = entry
            .pax_extensions()
            .map_err(|e| self.broken(format!("entry {name:?}: bad PAX header: {e}")))?
        {
            for ext in exts {
                let ext =
                    ext.map_err(|e| self.broken(format!("entry {name:?}: bad PAX header: {e}")))?;
                let Ok(key) = ext.key() else { continue };
                let value = ext.value_bytes();
                let text = std::str::from_utf8(value).unwrap_or("");
                match key {
                    "uid" => {
                        uid = text
                            .parse()
                            .map_err(|_| self.broken(format!("entry {name:?}: bad PAX uid")))?
                    }
                    "gid" => {
                        gid = text
                            .parse()
                            .map_err(|_| self.broken(format!("entry {name:?}: bad PAX gid")))?
                    }
                    "mtime" => {
                        if let Some(t) = parse_pax_time(text) {
                            mtime = t;
                        }
                    }
                    k => {
                        if let Some(x) = k.strip_prefix("SCHILY.xattr.") {
                            if x.starts_with("user.") || x == "security.capability" {
                                xattrs.push((x.to_string(), value.to_vec()));
                            } else {
                                tracing::debug!(entry = %name, xattr = %x, "dropping xattr");
                            }
                        }
                    }
                }
            }
        }
        let id = |v: u64, what: &str| {
            u32::try_from(v)
                .ok()
                .filter(|v| *v != u32::MAX)
                .ok_or_else(|| self.broken(format!("entry {name:?}: {what} {v} out of range")))
        };
        let t = Timespec {
            tv_sec: mtime.0,
            tv_nsec: mtime.1 as _,
        };
        Ok(Meta {
            uid: id(uid, "uid")?,
            gid: id(gid, "gid")?,
            mode: mode_bits,
            times: Timestamps {
                last_access: t,
                last_modification: t,
            },
            xattrs,
        })
    }

    /// Open the directory that holds the entry `comps`, creating missing
    /// parents (0755, owned by the caller) and refusing symlinks on the way.
    fn open_parent(&self, comps: &[&OsStr], entry: &str) -> Result<OwnedFd> {
        self.open_dir(&comps[..comps.len() - 1], Some(entry))
    }

    /// Open the directory `comps` one component at a time with `O_NOFOLLOW`.
    /// With `create_for` set, missing directories are made and a symlink or
    /// non-directory on the way is refused as unsafe for that entry; without
    /// it, those are plain `NotFound`/`NotADirectory` IO errors.
    fn open_dir(&self, comps: &[&OsStr], create_for: Option<&str>) -> Result<OwnedFd> {
        let mut cur = self.root.try_clone().ctx("dup", self.root_path)?;
        for (i, c) in comps.iter().enumerate() {
            let next = match rustix::fs::openat(&cur, *c, DIR_FLAGS, Mode::empty()) {
                Ok(fd) => fd,
                Err(Errno::NOENT) if create_for.is_some() => {
                    let p = self.path_of(&comps[..=i]);
                    rustix::fs::mkdirat(&cur, *c, Mode::from_raw_mode(0o755)).ctx("mkdir", &p)?;
                    let fd =
                        rustix::fs::openat(&cur, *c, DIR_FLAGS, Mode::empty()).ctx("open", &p)?;
                    rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o755)).ctx("chmod", &p)?;
                    fd
                }
                Err(e @ (Errno::LOOP | Errno::NOTDIR)) => {
                    let Some(entry) = create_for else {
                        return Err(Error::io("open", self.path_of(&comps[..=i]), e.into()));
                    };
                    let shown = display(&comps[..=i]);
                    let is_link = rustix::fs::statat(&cur, *c, AtFlags::SYMLINK_NOFOLLOW)
                        .map(|st| FileType::from_raw_mode(st.st_mode) == FileType::Symlink)
                        .unwrap_or(false);
                    return Err(self.refuse(
                        entry,
                        if is_link {
                            format!(
                                "its parent {shown:?} is a symlink; refusing to write through it"
                            )
                        } else {
                            format!("its parent {shown:?} is not a directory")
                        },
                    ));
                }
                Err(e) => return Err(Error::io("open", self.path_of(&comps[..=i]), e.into())),
            };
            cur = next;
        }
        Ok(cur)
    }

    /// Make room for a new entry `name` in `parent`: remove what is there,
    /// unless it is a directory and `keep_dir` is set.
    fn clear(&self, parent: &OwnedFd, name: &OsStr, keep_dir: bool, path: &Path) -> Result<()> {
        match rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
            Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(Error::io("stat", path, e.into())),
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
                if keep_dir {
                    Ok(())
                } else {
                    remove_tree_at(parent.as_fd(), name, path)
                }
            }
            Ok(_) => rustix::fs::unlinkat(parent, name, AtFlags::empty()).ctx("remove", path),
        }
    }

    fn make_dir(&mut self, parent: &OwnedFd, comps: &[&OsStr], meta: Option<&Meta>) -> Result<()> {
        let name = comps[comps.len() - 1];
        let path = self.path_of(comps);
        self.clear(parent, name, true, &path)?;
        match rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(0o700)) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => return Err(Error::io("mkdir", &path, e.into())),
        }
        let fd = rustix::fs::openat(parent, name, DIR_FLAGS, Mode::empty()).ctx("open", &path)?;
        match meta {
            Some(meta) => {
                self.set_meta(fd.as_fd(), meta, &path)?;
                self.dirs.push((
                    comps.iter().map(|c| c.to_os_string()).collect(),
                    clone_times(&meta.times),
                ));
            }
            None => rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o755)).ctx("chmod", &path)?,
        }
        Ok(())
    }

    fn write_file<R: Read>(
        &self,
        parent: &OwnedFd,
        comps: &[&OsStr],
        entry: &mut tar::Entry<'_, R>,
        meta: Option<&Meta>,
    ) -> Result<()> {
        let name = comps[comps.len() - 1];
        let path = self.path_of(comps);
        self.clear(parent, name, false, &path)?;
        let fd = rustix::fs::openat(
            parent,
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .ctx("create", &path)?;
        let mut file = File::from(fd);
        let mut buf = vec![0u8; 128 * 1024];
        loop {
            let n = match entry.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(self.broken(format!("reading {}: {e}", display(comps))));
                }
            };
            file.write_all(&buf[..n]).ctx("write", &path)?;
        }
        match meta {
            Some(meta) => self.set_meta(file.as_fd(), meta, &path)?,
            None => rustix::fs::fchmod(&file, Mode::from_raw_mode(0o644)).ctx("chmod", &path)?,
        }
        Ok(())
    }

    fn hard_link(
        &self,
        parent: &OwnedFd,
        comps: &[&OsStr],
        entry: &str,
        target: &[u8],
    ) -> Result<()> {
        let shown = String::from_utf8_lossy(target);
        let tcomps = clean(target).map_err(|r| {
            self.refuse(
                entry,
                format!("hard link target {shown:?} is outside the layer: {r}"),
            )
        })?;
        if tcomps.is_empty() {
            return Err(self.refuse(entry, "hard link to the layer root"));
        }
        if tcomps == comps {
            return Ok(());
        }
        let missing = || {
            self.refuse(
                entry,
                format!("hard link target {shown:?} is not an earlier entry of this layer"),
            )
        };
        let tparent = match self.open_dir(&tcomps[..tcomps.len() - 1], None) {
            Ok(fd) => fd,
            Err(Error::Io { source, .. })
                if matches!(
                    source.raw_os_error(),
                    Some(libc::ENOENT) | Some(libc::ENOTDIR) | Some(libc::ELOOP)
                ) =>
            {
                return Err(missing());
            }
            Err(e) => return Err(e),
        };
        let tname = tcomps[tcomps.len() - 1];
        match rustix::fs::statat(&tparent, tname, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
                return Err(
                    self.refuse(entry, format!("hard link target {shown:?} is a directory"))
                );
            }
            Ok(_) => {}
            Err(Errno::NOENT) => return Err(missing()),
            Err(e) => return Err(Error::io("stat", self.path_of(&tcomps), e.into())),
        }
        let name = comps[comps.len() - 1];
        let path = self.path_of(comps);
        self.clear(parent, name, false, &path)?;
        rustix::fs::linkat(&tparent, tname, parent, name, AtFlags::empty()).ctx("hard link", &path)
    }

    /// Owner, then mode (chown clears setuid bits), xattrs and, for
    /// non-directories, times, all through an open descriptor.
    fn set_meta(&self, fd: BorrowedFd<'_>, meta: &Meta, path: &Path) -> Result<()> {
        rustix::fs::fchown(
            fd,
            Some(Uid::from_raw(meta.uid)),
            Some(Gid::from_raw(meta.gid)),
        )
        .ctx("chown", path)?;
        rustix::fs::fchmod(fd, mode(meta.mode)).ctx("chmod", path)?;
        for (name, value) in &meta.xattrs {
            match rustix::fs::fsetxattr(fd, name.as_str(), value, XattrFlags::empty()) {
                Ok(()) => {}
                Err(Errno::NOTSUP) => {
                    tracing::warn!(path = %path.display(), xattr = %name, "filesystem does not support this xattr; dropped");
                }
                Err(e) => return Err(Error::io("set xattr on", path, e.into())),
            }
        }
        let st = rustix::fs::fstat(fd).ctx("stat", path)?;
        if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
            rustix::fs::futimens(fd, &meta.times).ctx("set times on", path)?;
        }
        Ok(())
    }

    /// Owner, times and (for nodes) mode of a symlink or node, by name and
    /// without following it.
    fn set_meta_at(
        &self,
        parent: &OwnedFd,
        name: &OsStr,
        meta: &Meta,
        path: &Path,
        chmod: bool,
    ) -> Result<()> {
        rustix::fs::chownat(
            parent,
            name,
            Some(Uid::from_raw(meta.uid)),
            Some(Gid::from_raw(meta.gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .ctx("chown", path)?;
        if chmod {
            // A device node or fifo we just created, never a symlink.
            rustix::fs::chmodat(parent, name, mode(meta.mode), AtFlags::empty())
                .ctx("chmod", path)?;
        }
        rustix::fs::utimensat(parent, name, &meta.times, AtFlags::SYMLINK_NOFOLLOW)
            .ctx("set times on", path)
    }

    /// Set the directories' times last, deepest last-seen first, since
    /// creating their entries changed them.
    fn finish_dirs(self) -> Result<()> {
        for (comps, times) in self.dirs.iter().rev() {
            let comps: Vec<&OsStr> = comps.iter().map(|c| c.as_os_str()).collect();
            // A later entry may have replaced the directory: skip it then.
            let fd = match self.open_dir(&comps, None) {
                Ok(fd) => fd,
                Err(Error::Io { .. }) => continue,
                Err(e) => return Err(e),
            };
            rustix::fs::futimens(&fd, times).ctx("set times on", self.path_of(&comps))?;
        }
        Ok(())
    }
}

fn clone_times(t: &Timestamps) -> Timestamps {
    Timestamps {
        last_access: t.last_access,
        last_modification: t.last_modification,
    }
}

/// `1700000000` or `1700000000.123456789` -> (seconds, nanoseconds).
fn parse_pax_time(s: &str) -> Option<(i64, i64)> {
    let (secs, frac) = match s.split_once('.') {
        Some((a, b)) => (a, b),
        None => (s, ""),
    };
    let secs: i64 = secs.parse().ok()?;
    let mut nanos = 0i64;
    for (i, c) in frac.bytes().take(9).enumerate() {
        if !c.is_ascii_digit() {
            return None;
        }
        nanos += i64::from(c - b'0') * 10i64.pow(8 - i as u32);
    }
    Some((secs, nanos))
}

/// Remove `name` in `parent` and everything under it, never following a
/// symlink.
pub(crate) fn remove_tree_at(parent: BorrowedFd<'_>, name: &OsStr, path: &Path) -> Result<()> {
    let fd = match rustix::fs::openat(parent, name, DIR_FLAGS, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::NOTDIR | Errno::LOOP) => {
            return rustix::fs::unlinkat(parent, name, AtFlags::empty()).ctx("remove", path);
        }
        Err(Errno::NOENT) => return Ok(()),
        Err(e) => return Err(Error::io("open", path, e.into())),
    };
    let mut children = Vec::new();
    for ent in rustix::fs::Dir::read_from(&fd).ctx("read directory", path)? {
        let ent = ent.ctx("read directory", path)?;
        let n = ent.file_name().to_bytes();
        if n == b"." || n == b".." {
            continue;
        }
        children.push((OsStr::from_bytes(n).to_os_string(), ent.file_type()));
    }
    for (child, ty) in children {
        let cpath = path.join(&child);
        match ty {
            FileType::Directory | FileType::Unknown => remove_tree_at(fd.as_fd(), &child, &cpath)?,
            _ => rustix::fs::unlinkat(&fd, child.as_os_str(), AtFlags::empty())
                .ctx("remove", &cpath)?,
        }
    }
    rustix::fs::unlinkat(parent, name, AtFlags::REMOVEDIR).ctx("remove", path)
}

/// Remove the directory tree at `path` without following symlinks.
pub(crate) fn remove_tree(path: &Path) -> Result<()> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(Error::io(
            "remove",
            path,
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a removable path"),
        ));
    };
    let pfd = rustix::fs::open(parent, DIR_FLAGS, Mode::empty()).ctx("open", parent)?;
    remove_tree_at(pfd.as_fd(), name, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_paths() {
        let ok = |s: &str| {
            clean(s.as_bytes())
                .unwrap()
                .iter()
                .map(|c| c.to_str().unwrap().to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(ok("./a/b/"), ["a", "b"]);
        assert_eq!(ok("a//b/./c"), ["a", "b", "c"]);
        assert!(ok("./").is_empty());
        assert!(clean(b"/etc/passwd").is_err());
        assert!(clean(b"../x").is_err());
        assert!(clean(b"a/../../x").is_err());
        assert!(clean(b"a/..").is_err());
    }

    #[test]
    fn pax_times() {
        assert_eq!(parse_pax_time("17"), Some((17, 0)));
        assert_eq!(parse_pax_time("17.5"), Some((17, 500_000_000)));
        assert_eq!(parse_pax_time("17.123456789123"), Some((17, 123_456_789)));
        assert_eq!(parse_pax_time("x"), None);
    }
}
