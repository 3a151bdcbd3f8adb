//! Layer unpacking on archives built from the input: entries with
//! whiteouts (`.wh.NAME`, `.wh..wh..opq`), hard links, symlinks (absolute,
//! through `..`, to a directory outside), long names (GNU `L`/`K` records,
//! PAX `path`/`linkpath`, the ustar prefix), directories, device nodes and
//! fifos, xattrs; plain, gzip or zstd; or the input's raw bytes as the blob.
//! Each archive is unpacked into a fresh directory inside a fresh parent,
//! next to a sentinel directory, as a layer or as an OCI layout archive.
//!
//! Checked after each: no panic; nothing was created, removed or changed
//! outside the layer directory (the parents hold exactly what they held, the
//! sentinel's entries and metadata, ctime included, are untouched, and no
//! hard link reaches it); the layer directory is still a directory on the
//! same filesystem; an OCI layout archive yields only files and directories.
#![no_main]

use std::collections::BTreeSet;
use std::fs;
use std::io::{Cursor, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use arbitrary::Arbitrary;
use jarvis_image::fuzzing;
use libfuzzer_sys::fuzz_target;

/// What an archive may decompress to, in total.
const LIMIT: u64 = 16 << 20;

#[derive(Arbitrary, Debug)]
enum Input<'a> {
    Layer(Archive),
    Plain(Archive),
    /// The rest of the input, as it is, is the blob.
    RawLayer(&'a [u8]),
    RawPlain(&'a [u8]),
}

#[derive(Arbitrary, Debug)]
struct Archive {
    compression: Compression,
    entries: Vec<Entry>,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Compression {
    None,
    Gzip,
    Zstd,
}

#[derive(Arbitrary, Debug)]
struct Entry {
    path: PathSpec,
    kind: Kind,
    form: NameForm,
    mode: u16,
    owner: Owner,
    mtime: u32,
    xattrs: Vec<(XattrName, Vec<u8>)>,
    pax: Vec<(PaxKey, String)>,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum NameForm {
    /// The name field, or the ustar prefix and name when it is longer.
    Ustar,
    /// GNU `././@LongLink` records when a name is over 100 bytes.
    Gnu,
    /// PAX `path` and `linkpath` records.
    Pax,
}

#[derive(Arbitrary, Debug)]
enum Owner {
    Root,
    Small(u8),
    Any(u32),
}

#[derive(Arbitrary, Debug)]
enum XattrName {
    User,
    Capability,
    OverlayOpaque,
    OverlayRedirect,
    Acl,
    Selinux,
    Raw(String),
}

#[derive(Arbitrary, Debug)]
enum PaxKey {
    Uid,
    Gid,
    Mtime,
    Size,
    Raw(String),
}

#[derive(Arbitrary, Debug)]
struct PathSpec {
    absolute: bool,
    comps: Vec<Comp>,
    trailing_slash: bool,
}

#[derive(Arbitrary, Debug)]
enum Comp {
    A,
    B,
    C,
    Dot,
    DotDot,
    Empty,
    WhiteoutA,
    WhiteoutB,
    WhiteoutDot,
    WhiteoutDotDot,
    WhiteoutEmpty,
    Opaque,
    AufsMeta,
    Long(u8),
    Raw(String),
}

#[derive(Arbitrary, Debug)]
enum Kind {
    File(Vec<u8>),
    Dir,
    Symlink(Target),
    HardLink(Target),
    Char(u8, u8),
    Block(u8, u8),
    Fifo,
    /// Any other type byte: contiguous, sparse, global PAX, volume label...
    Other(u8),
}

#[derive(Arbitrary, Debug)]
enum Target {
    Path(PathSpec),
    /// The sentinel directory, by its absolute path.
    OutsideDir,
    /// The file in the sentinel directory, by its absolute path.
    OutsideFile,
    /// The sentinel directory from the layer root, through `..`.
    UpToSentinel,
    Root,
    EtcPasswd,
    Empty,
}

impl PathSpec {
    fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if self.absolute {
            out.push(b'/');
        }
        for (i, c) in self.comps.iter().take(16).enumerate() {
            if i > 0 {
                out.push(b'/');
            }
            out.extend_from_slice(&c.bytes());
        }
        if self.trailing_slash {
            out.push(b'/');
        }
        out
    }
}

impl Comp {
    fn bytes(&self) -> Vec<u8> {
        match self {
            Comp::A => b"a".to_vec(),
            Comp::B => b"b".to_vec(),
            Comp::C => b"c".to_vec(),
            Comp::Dot => b".".to_vec(),
            Comp::DotDot => b"..".to_vec(),
            Comp::Empty => Vec::new(),
            Comp::WhiteoutA => b".wh.a".to_vec(),
            Comp::WhiteoutB => b".wh.b".to_vec(),
            Comp::WhiteoutDot => b".wh..".to_vec(),
            Comp::WhiteoutDotDot => b".wh...".to_vec(),
            Comp::WhiteoutEmpty => b".wh.".to_vec(),
            Comp::Opaque => b".wh..wh..opq".to_vec(),
            Comp::AufsMeta => b".wh..wh.plnk".to_vec(),
            // 1 to 256 bytes: past 100 (the name field) and past 255 (NAME_MAX).
            Comp::Long(n) => vec![b'l'; usize::from(*n) + 1],
            Comp::Raw(s) => s.as_bytes().iter().copied().take(300).collect(),
        }
    }
}

impl Target {
    fn bytes(&self, sentinel: &Path) -> Vec<u8> {
        use std::os::unix::ffi::OsStrExt;
        match self {
            Target::Path(p) => p.bytes(),
            Target::OutsideDir => sentinel.as_os_str().as_bytes().to_vec(),
            Target::OutsideFile => sentinel.join("keep").as_os_str().as_bytes().to_vec(),
            Target::UpToSentinel => b"../sentinel/keep".to_vec(),
            Target::Root => b"/".to_vec(),
            Target::EtcPasswd => b"/etc/passwd".to_vec(),
            Target::Empty => Vec::new(),
        }
    }
}

fn pax_record(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    // "LEN KEY=VALUE\n", LEN counting itself.
    let rest = key.len() + value.len() + 3;
    let mut len = rest + 1;
    while len != rest + len.to_string().len() {
        len = rest + len.to_string().len();
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key);
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

fn long_record(b: &mut tar::Builder<Vec<u8>>, ty: u8, name: &[u8]) {
    let mut h = tar::Header::new_gnu();
    h.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
    h.set_entry_type(tar::EntryType::new(ty));
    h.set_mode(0o644);
    let mut data = name.to_vec();
    data.push(0);
    h.set_size(data.len() as u64);
    h.set_cksum();
    b.append(&h, data.as_slice()).expect("append to a Vec");
}

fn copy_truncated(field: &mut [u8], bytes: &[u8]) {
    let n = field.len().min(bytes.len());
    field[..n].copy_from_slice(&bytes[..n]);
}

fn build(archive: &Archive, sentinel: &Path) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in archive.entries.iter().take(64) {
        let path = e.path.bytes();
        let (ty, link, data): (u8, Option<Vec<u8>>, &[u8]) = match &e.kind {
            Kind::File(d) => (b'0', None, d.as_slice()),
            Kind::Dir => (b'5', None, &[]),
            Kind::Symlink(t) => (b'2', Some(t.bytes(sentinel)), &[]),
            Kind::HardLink(t) => (b'1', Some(t.bytes(sentinel)), &[]),
            Kind::Char(..) => (b'3', None, &[]),
            Kind::Block(..) => (b'4', None, &[]),
            Kind::Fifo => (b'6', None, &[]),
            Kind::Other(t) => (*t, None, &[]),
        };

        let mut pax = Vec::new();
        if matches!(e.form, NameForm::Pax) {
            pax_record(&mut pax, b"path", &path);
            if let Some(l) = &link {
                pax_record(&mut pax, b"linkpath", l);
            }
        }
        for (name, value) in e.xattrs.iter().take(4) {
            let name: &[u8] = match name {
                XattrName::User => b"user.fuzz",
                XattrName::Capability => b"security.capability",
                XattrName::OverlayOpaque => b"trusted.overlay.opaque",
                XattrName::OverlayRedirect => b"trusted.overlay.redirect",
                XattrName::Acl => b"system.posix_acl_access",
                XattrName::Selinux => b"security.selinux",
                XattrName::Raw(s) => s.as_bytes(),
            };
            let mut key = b"SCHILY.xattr.".to_vec();
            key.extend_from_slice(name);
            pax_record(&mut pax, &key, value);
        }
        for (key, value) in e.pax.iter().take(4) {
            let key: &[u8] = match key {
                PaxKey::Uid => b"uid",
                PaxKey::Gid => b"gid",
                PaxKey::Mtime => b"mtime",
                PaxKey::Size => b"size",
                PaxKey::Raw(s) => s.as_bytes(),
            };
            pax_record(&mut pax, key, value.as_bytes());
        }
        if !pax.is_empty() {
            let mut h = tar::Header::new_ustar();
            copy_truncated(&mut h.as_old_mut().name, b"PaxHeaders/entry");
            h.set_entry_type(tar::EntryType::XHeader);
            h.set_mode(0o644);
            h.set_size(pax.len() as u64);
            h.set_cksum();
            b.append(&h, pax.as_slice()).expect("append to a Vec");
        }

        let mut h = match e.form {
            NameForm::Gnu => tar::Header::new_gnu(),
            NameForm::Ustar | NameForm::Pax => tar::Header::new_ustar(),
        };
        if matches!(e.form, NameForm::Gnu) {
            if path.len() > 100 {
                long_record(&mut b, b'L', &path);
            }
            if let Some(l) = link.as_ref().filter(|l| l.len() > 100) {
                long_record(&mut b, b'K', l);
            }
        }
        // The name field: the whole name when it fits; for ustar, split at
        // a slash into prefix and name when that makes it fit.
        let (prefix, name) = match e.form {
            NameForm::Ustar if path.len() > 100 => {
                match path
                    .iter()
                    .enumerate()
                    .rev()
                    .find(|(i, c)| **c == b'/' && path.len() - i - 1 <= 100 && *i <= 155)
                {
                    Some((i, _)) => (&path[..i], &path[i + 1..]),
                    None => (&[][..], &path[..]),
                }
            }
            _ => (&[][..], &path[..]),
        };
        copy_truncated(&mut h.as_old_mut().name, name);
        if let Some(u) = h.as_ustar_mut() {
            copy_truncated(&mut u.prefix, prefix);
        }
        if let Some(l) = &link {
            copy_truncated(&mut h.as_old_mut().linkname, l);
        }
        h.set_entry_type(tar::EntryType::new(ty));
        h.set_mode(u32::from(e.mode) & 0o7777);
        let (uid, gid) = match e.owner {
            Owner::Root => (0, 0),
            Owner::Small(n) => (u64::from(n), u64::from(n)),
            Owner::Any(n) => (u64::from(n), u64::from(n.rotate_left(16))),
        };
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_mtime(u64::from(e.mtime));
        if let Kind::Char(ma, mi) | Kind::Block(ma, mi) = e.kind {
            let _ = h.set_device_major(u32::from(ma));
            let _ = h.set_device_minor(u32::from(mi));
        }
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append(&h, data).expect("append to a Vec");
    }
    let tar = b.into_inner().expect("finish a Vec");
    match archive.compression {
        Compression::None => tar,
        Compression::Gzip => {
            let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            z.write_all(&tar).expect("gzip to a Vec");
            z.finish().expect("gzip to a Vec")
        }
        Compression::Zstd => zstd::encode_all(tar.as_slice(), 1).expect("zstd to a Vec"),
    }
}

/// Where the scratch directories go: `JARVIS_FUZZ_SCRATCH`, else the
/// temporary directory.
fn base() -> &'static Path {
    static BASE: OnceLock<PathBuf> = OnceLock::new();
    BASE.get_or_init(|| {
        std::env::var_os("JARVIS_FUZZ_SCRATCH")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir)
    })
}

fn names(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| {
            e.expect("directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect()
}

/// What must not change about an inode outside the layer.
fn stamp(path: &Path) -> (u64, u32, u32, u32, u64, i64, i64, i64, i64, u64) {
    let m = fs::symlink_metadata(path).unwrap_or_else(|e| panic!("stat {}: {e}", path.display()));
    (
        m.ino(),
        m.mode(),
        m.uid(),
        m.gid(),
        m.nlink(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec(),
        m.size(),
    )
}

/// Every entry under `dir`, never following a symlink.
fn walk(dir: &Path, dev: u64, plain: bool, sentinel_ino: u64) {
    for e in fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display())) {
        let path = e.expect("directory entry").path();
        let m = fs::symlink_metadata(&path).expect("stat an entry");
        assert_eq!(m.dev(), dev, "{} is on another filesystem", path.display());
        assert_ne!(m.ino(), sentinel_ino, "{} is the sentinel", path.display());
        let ft = m.file_type();
        if plain {
            assert!(
                ft.is_file() || ft.is_dir(),
                "{}: an OCI layout archive made something other than a file or directory",
                path.display()
            );
        }
        if ft.is_dir() {
            walk(&path, dev, plain, sentinel_ino);
        }
    }
}

fuzz_target!(|input: Input<'_>| {
    let outer = tempfile::Builder::new()
        .prefix("jarvis-fuzz-unpack-")
        .tempdir_in(base())
        .expect("scratch directory");
    let parent = outer.path().join("p");
    let layer = parent.join("layer");
    let sentinel = parent.join("sentinel");
    fs::create_dir(&parent).unwrap();
    fs::create_dir(&layer).unwrap();
    fs::create_dir(&sentinel).unwrap();
    fs::write(sentinel.join("keep"), b"sentinel").unwrap();

    let (blob, plain) = match &input {
        Input::Layer(a) => (build(a, &sentinel), false),
        Input::Plain(a) => (build(a, &sentinel), true),
        Input::RawLayer(bytes) => (bytes.to_vec(), false),
        Input::RawPlain(bytes) => (bytes.to_vec(), true),
    };

    let before = (
        stamp(outer.path()),
        stamp(&parent),
        stamp(&sentinel),
        stamp(&sentinel.join("keep")),
    );
    let layer_ino = stamp(&layer).0;

    let result = if plain {
        fuzzing::unpack_plain(Cursor::new(blob), &layer)
    } else {
        fuzzing::unpack_layer(Cursor::new(blob), &layer, LIMIT)
    };
    if std::env::var_os("JARVIS_FUZZ_DEBUG").is_some() {
        eprintln!("{input:?} -> {result:?}");
    }

    assert_eq!(names(outer.path()), BTreeSet::from(["p".to_string()]));
    assert_eq!(
        names(&parent),
        BTreeSet::from(["layer".to_string(), "sentinel".to_string()])
    );
    assert_eq!(names(&sentinel), BTreeSet::from(["keep".to_string()]));
    assert_eq!(fs::read(sentinel.join("keep")).unwrap(), b"sentinel");
    let after = (
        stamp(outer.path()),
        stamp(&parent),
        stamp(&sentinel),
        stamp(&sentinel.join("keep")),
    );
    assert_eq!(before, after, "something outside the layer changed");
    let m = fs::symlink_metadata(&layer).unwrap();
    assert!(m.is_dir(), "the layer directory was replaced");
    assert_eq!(m.ino(), layer_ino, "the layer directory was replaced");
    walk(&layer, m.dev(), plain, before.3 .0);
});
