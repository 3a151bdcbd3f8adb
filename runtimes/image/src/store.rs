//! The on-disk image store.
//!
//! ```text
//! <root>/                      0700: layers hold setuid files; keep users out
//!   lock                       flock: shared while fetching, exclusive to commit/remove/gc
//!   refs.json                  reference -> manifest, config, layer digests (temp+fsync+rename)
//!   blobs/sha256/<hex>         manifests, configs and layer archives, verified before entering
//!   layers/sha256/<hex>/       each layer blob unpacked once, in overlayfs form
//!   tmp/                       partial downloads and unpacks; emptied when nobody is busy
//!   empty/                     an empty directory (bottom lowerdir for one-layer read-only mounts)
//! ```
//!
//! Blobs and layers only ever appear by `rename` from `tmp/`, after being
//! verified (blobs) or fully extracted and synced (layers), so a crash never
//! leaves a half blob or half layer under its final name.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use oci_spec::image::ImageConfiguration;
use rustix::fs::FlockOperation;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, IoContext, Result};
use crate::reference::parse_reference;
use crate::unpack;

/// An image in the store, ready to be mounted.
#[derive(Debug, Clone)]
pub struct StoredImage {
    /// The canonical reference it is stored under.
    pub reference: String,
    /// The digest of its (platform) image manifest.
    pub manifest_digest: String,
    /// The image configuration: entrypoint, cmd, env, working dir, user, ...
    pub config: ImageConfiguration,
    /// The unpacked layer directories, bottom first (manifest order). For an
    /// overlay mount they go into `lowerdir` in reverse order, top first: see
    /// [`StoredImage::lowerdir`].
    pub layers: Vec<PathBuf>,
}

/// One line of [`ImageStore::list`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageSummary {
    /// The canonical reference.
    pub reference: String,
    /// The manifest digest.
    pub digest: String,
    /// Bytes of its blobs as stored (compressed layers, config, manifest).
    pub size: u64,
    /// The image config's `created` timestamp (RFC 3339), if it has one.
    pub created: Option<String>,
}

/// What `refs.json` keeps for one reference.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RefRecord {
    pub manifest: String,
    pub config: String,
    pub layers: Vec<String>,
    #[serde(default)]
    pub size: u64,
    #[serde(default)]
    pub created: Option<String>,
    /// The index (manifest list) the manifest was chosen from, if any.
    #[serde(default)]
    pub index: Option<String>,
    /// Seconds since the epoch when it was stored.
    #[serde(default)]
    pub stored_at: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct RefsFile {
    version: u32,
    #[serde(default)]
    images: BTreeMap<String, RefRecord>,
}

const REFS_VERSION: u32 = 1;

/// The image store. Cheap to clone; clones share the directory, and several
/// stores (or processes) on the same directory coordinate through `lock`.
#[derive(Debug, Clone)]
pub struct ImageStore {
    root: PathBuf,
}

/// A held `flock` on `<root>/lock`; released on drop.
pub(crate) struct StoreLock(#[allow(dead_code)] File);

/// `sha256:<64 lowercase hex>` -> the hex part.
pub(crate) fn sha256_hex(digest: &str) -> Option<&str> {
    let hex = digest.strip_prefix("sha256:")?;
    (hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
    .then_some(hex)
}

pub(crate) fn sha256_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn mkdir_private(path: &Path) -> Result<()> {
    match fs::DirBuilder::new().mode(0o700).create(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(Error::io("create directory", path, e)),
    }
}

pub(crate) fn fsync_dir(path: &Path) -> Result<()> {
    File::open(path)
        .and_then(|d| d.sync_all())
        .ctx("fsync", path)
}

/// A blob being written into `tmp/`, hashed as it goes.
pub(crate) struct BlobWriter {
    file: tempfile::NamedTempFile,
    hasher: Sha256,
    size: u64,
}

impl BlobWriter {
    pub(crate) fn write(&mut self, buf: &[u8]) -> Result<()> {
        self.hasher.update(buf);
        self.size += buf.len() as u64;
        self.file.write_all(buf).ctx("write", self.file.path())
    }

    /// Verify digest and size, sync, and move the blob into place.
    pub(crate) fn finish(
        self,
        store: &ImageStore,
        what: &str,
        digest: &str,
        size: Option<u64>,
    ) -> Result<PathBuf> {
        let actual = format!("sha256:{}", hex::encode(self.hasher.finalize()));
        if actual != digest {
            return Err(Error::DigestMismatch {
                what: what.to_string(),
                expected: digest.to_string(),
                actual,
            });
        }
        if let Some(size) = size {
            if size != self.size {
                return Err(Error::DigestMismatch {
                    what: format!("{what} (size)"),
                    expected: format!("{size} bytes"),
                    actual: format!("{} bytes", self.size),
                });
            }
        }
        let dest = store.blob_path(digest)?;
        self.file
            .as_file()
            .sync_all()
            .ctx("fsync", self.file.path())?;
        self.file
            .as_file()
            .set_permissions(fs::Permissions::from_mode(0o644))
            .ctx("chmod", self.file.path())?;
        let tmp = self.file.path().to_path_buf();
        self.file
            .persist(&dest)
            .map_err(|e| Error::io("rename", &tmp, e.error))?;
        fsync_dir(dest.parent().unwrap_or(&store.root))?;
        Ok(dest)
    }
}

impl ImageStore {
    /// Open (creating if needed) the store at `root`. If no other pull,
    /// import or removal holds the store, leftovers of interrupted ones are
    /// cleared from `tmp/`.
    pub fn open(root: impl Into<PathBuf>) -> Result<ImageStore> {
        let root: PathBuf = root.into();
        fs::create_dir_all(&root).ctx("create directory", &root)?;
        fs::set_permissions(&root, fs::Permissions::from_mode(0o700)).ctx("chmod", &root)?;
        for d in [
            "blobs",
            "blobs/sha256",
            "layers",
            "layers/sha256",
            "tmp",
            "empty",
        ] {
            mkdir_private(&root.join(d))?;
        }
        fs::set_permissions(root.join("empty"), fs::Permissions::from_mode(0o755))
            .ctx("chmod", root.join("empty"))?;
        let store = ImageStore { root };
        let lock = store.lock_file()?;
        if rustix::fs::flock(&lock, FlockOperation::NonBlockingLockExclusive).is_ok() {
            store.clear_tmp()?;
        }
        Ok(store)
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// An empty directory inside the store.
    pub fn empty_dir(&self) -> PathBuf {
        self.root.join("empty")
    }

    fn refs_path(&self) -> PathBuf {
        self.root.join("refs.json")
    }

    fn bad_digest(&self, digest: &str) -> Error {
        Error::invalid(
            format!("digest {digest:?}"),
            "not a sha256 digest (sha256:<64 lowercase hex>)",
        )
    }

    /// Where the blob `digest` lives (whether or not it is there).
    pub fn blob_path(&self, digest: &str) -> Result<PathBuf> {
        let hex = sha256_hex(digest).ok_or_else(|| self.bad_digest(digest))?;
        Ok(self.root.join("blobs/sha256").join(hex))
    }

    /// Where the layer blob `digest` is (or would be) unpacked.
    pub fn layer_path(&self, digest: &str) -> Result<PathBuf> {
        let hex = sha256_hex(digest).ok_or_else(|| self.bad_digest(digest))?;
        Ok(self.root.join("layers/sha256").join(hex))
    }

    pub(crate) fn has_blob(&self, digest: &str) -> Result<bool> {
        Ok(self.blob_path(digest)?.is_file())
    }

    pub(crate) fn has_layer(&self, digest: &str) -> Result<bool> {
        Ok(self.layer_path(digest)?.is_dir() && self.has_blob(digest)?)
    }

    pub(crate) fn read_blob(&self, digest: &str) -> Result<Vec<u8>> {
        let p = self.blob_path(digest)?;
        fs::read(&p).ctx("read", &p)
    }

    pub(crate) fn blob_writer(&self) -> Result<BlobWriter> {
        let file = tempfile::Builder::new()
            .prefix("blob-")
            .tempfile_in(self.tmp_dir())
            .ctx("create temporary file in", self.tmp_dir())?;
        Ok(BlobWriter {
            file,
            hasher: Sha256::new(),
            size: 0,
        })
    }

    /// Store in-memory bytes as the blob `digest`, verifying them.
    pub(crate) fn put_blob(&self, what: &str, digest: &str, bytes: &[u8]) -> Result<PathBuf> {
        let mut w = self.blob_writer()?;
        w.write(bytes)?;
        w.finish(self, what, digest, Some(bytes.len() as u64))
    }

    /// Copy `reader` into the store as the blob `digest`, verifying it.
    pub(crate) fn copy_blob(
        &self,
        what: &str,
        digest: &str,
        size: Option<u64>,
        mut reader: impl Read,
        src: &Path,
    ) -> Result<PathBuf> {
        let mut w = self.blob_writer()?;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => w.write(&buf[..n])?,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io("read", src, e)),
            }
        }
        w.finish(self, what, digest, size)
    }

    /// Unpack the stored layer blob `digest` unless it already is. Blocking.
    pub(crate) fn ensure_layer(&self, digest: &str) -> Result<PathBuf> {
        let dest = self.layer_path(digest)?;
        if dest.is_dir() {
            return Ok(dest);
        }
        let blob = self.blob_path(digest)?;
        let tmp = tempfile::Builder::new()
            .prefix("layer-")
            .tempdir_in(self.tmp_dir())
            .ctx("create temporary directory in", self.tmp_dir())?;
        let started = std::time::Instant::now();
        unpack::unpack_layer(&blob, tmp.path(), digest)?;
        let dir = File::open(tmp.path()).ctx("open", tmp.path())?;
        rustix::fs::syncfs(&dir).ctx("syncfs", tmp.path())?;
        drop(dir);
        match fs::rename(tmp.path(), &dest) {
            Ok(()) => {
                // Now under its final name: not ours to delete any more.
                let _ = tmp.keep();
                fsync_dir(dest.parent().unwrap_or(&self.root))?;
            }
            // Someone else unpacked it meanwhile; ours goes away with `tmp`.
            Err(e) if dest.is_dir() => {
                tracing::debug!(layer = digest, error = %e, "layer appeared while unpacking");
            }
            Err(e) => return Err(Error::io("rename", tmp.path(), e)),
        }
        tracing::debug!(layer = digest, elapsed = ?started.elapsed(), "unpacked layer");
        Ok(dest)
    }

    fn lock_file(&self) -> Result<File> {
        let p = self.root.join("lock");
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&p)
            .ctx("open", &p)
    }

    /// Shared lock: held while fetching and unpacking, so garbage collection
    /// waits. Blocking.
    pub(crate) fn lock_shared(&self) -> Result<StoreLock> {
        let f = self.lock_file()?;
        rustix::fs::flock(&f, FlockOperation::LockShared).ctx("lock", self.root.join("lock"))?;
        Ok(StoreLock(f))
    }

    /// Exclusive lock: held to change `refs.json` and to collect garbage.
    /// Blocking.
    pub(crate) fn lock_exclusive(&self) -> Result<StoreLock> {
        let f = self.lock_file()?;
        rustix::fs::flock(&f, FlockOperation::LockExclusive).ctx("lock", self.root.join("lock"))?;
        Ok(StoreLock(f))
    }

    fn read_refs(&self) -> Result<RefsFile> {
        let p = self.refs_path();
        let bytes = match fs::read(&p) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(RefsFile {
                    version: REFS_VERSION,
                    images: BTreeMap::new(),
                })
            }
            Err(e) => return Err(Error::io("read", &p, e)),
        };
        serde_json::from_slice(&bytes).map_err(|e| Error::Store {
            root: self.root.clone(),
            message: format!("refs.json does not parse: {e}"),
        })
    }

    fn write_refs(&self, refs: &RefsFile) -> Result<()> {
        let p = self.refs_path();
        let bytes = serde_json::to_vec_pretty(refs).expect("refs serialize");
        jarvis_fsutil::write_atomic(&p, &bytes, jarvis_fsutil::Durability::Durable).ctx("write", &p)
    }

    /// Record `name -> record` if every blob and layer it needs is present.
    /// Returns `false` (and records nothing) if something went missing, e.g.
    /// collected by a concurrent `remove`; the caller fetches again.
    pub(crate) fn commit(&self, name: &str, record: &RefRecord) -> Result<bool> {
        let _lock = self.lock_exclusive()?;
        let mut needed = vec![&record.manifest, &record.config];
        needed.extend(record.layers.iter());
        for d in needed {
            if !self.has_blob(d)? {
                return Ok(false);
            }
        }
        for d in &record.layers {
            if !self.has_layer(d)? {
                return Ok(false);
            }
        }
        let mut refs = self.read_refs()?;
        refs.version = REFS_VERSION;
        refs.images.insert(name.to_string(), record.clone());
        self.write_refs(&refs)?;
        Ok(true)
    }

    /// The images in the store, sorted by reference.
    pub fn list(&self) -> Result<Vec<ImageSummary>> {
        Ok(self
            .read_refs()?
            .images
            .into_iter()
            .map(|(reference, r)| ImageSummary {
                reference,
                digest: r.manifest,
                size: r.size,
                created: r.created,
            })
            .collect())
    }

    /// Look an image up by reference (any spelling that parses to the same
    /// canonical reference). `None` if it is not in the store. Reads the
    /// config blob; otherwise cheap.
    pub fn get(&self, reference: &str) -> Result<Option<StoredImage>> {
        let name = parse_reference(reference)?.to_string();
        let refs = self.read_refs()?;
        let Some(record) = refs.images.get(&name) else {
            return Ok(None);
        };
        self.stored_image(&name, record).map(Some)
    }

    pub(crate) fn stored_image(&self, name: &str, record: &RefRecord) -> Result<StoredImage> {
        let damaged = |message: String| Error::Store {
            root: self.root.clone(),
            message: format!("{message}; pull or import {name} again"),
        };
        let config_bytes = self
            .read_blob(&record.config)
            .map_err(|e| damaged(format!("config of {name}: {e}")))?;
        let config: ImageConfiguration = serde_json::from_slice(&config_bytes).map_err(|e| {
            Error::invalid(format!("config {} of {name}", record.config), e.to_string())
        })?;
        let mut layers = Vec::with_capacity(record.layers.len());
        for d in &record.layers {
            let p = self.layer_path(d)?;
            if !p.is_dir() {
                return Err(damaged(format!("layer {d} is missing")));
            }
            layers.push(p);
        }
        Ok(StoredImage {
            reference: name.to_string(),
            manifest_digest: record.manifest.clone(),
            config,
            layers,
        })
    }

    /// Remove the reference and garbage-collect what no remaining reference
    /// uses. Errors with [`Error::NotFound`] if it is not there. Blocking
    /// (it waits for running pulls to finish); the store does not know about
    /// running containers, so the caller must not remove an image in use.
    pub fn remove(&self, reference: &str) -> Result<()> {
        let name = parse_reference(reference)?.to_string();
        let _lock = self.lock_exclusive()?;
        let mut refs = self.read_refs()?;
        if refs.images.remove(&name).is_none() {
            return Err(Error::NotFound(name));
        }
        self.write_refs(&refs)?;
        self.gc_locked(&refs)?;
        Ok(())
    }

    /// Delete blobs and unpacked layers that no reference uses, and leftovers
    /// in `tmp/`. Returns how many blobs and layers were removed. Blocking.
    pub fn gc(&self) -> Result<usize> {
        let _lock = self.lock_exclusive()?;
        let refs = self.read_refs()?;
        self.gc_locked(&refs)
    }

    fn gc_locked(&self, refs: &RefsFile) -> Result<usize> {
        let mut blobs = BTreeSet::new();
        let mut layers = BTreeSet::new();
        for r in refs.images.values() {
            blobs.insert(r.manifest.clone());
            blobs.insert(r.config.clone());
            if let Some(i) = &r.index {
                blobs.insert(i.clone());
            }
            for l in &r.layers {
                blobs.insert(l.clone());
                layers.insert(l.clone());
            }
        }
        let mut removed = 0;
        // Layers first: moved into tmp/ before deletion, so a crash midway
        // never leaves a half layer under its final name.
        let dir = self.root.join("layers/sha256");
        for name in list_names(&dir)? {
            if layers.contains(&format!("sha256:{name}")) {
                continue;
            }
            let from = dir.join(&name);
            let to = self.tmp_dir().join(format!("gc-{name}"));
            fs::rename(&from, &to).ctx("rename", &from)?;
            unpack::remove_tree(&to)?;
            tracing::debug!(layer = %name, "removed unused layer");
            removed += 1;
        }
        let dir = self.root.join("blobs/sha256");
        for name in list_names(&dir)? {
            if blobs.contains(&format!("sha256:{name}")) {
                continue;
            }
            let p = dir.join(&name);
            fs::remove_file(&p).ctx("remove", &p)?;
            tracing::debug!(blob = %name, "removed unused blob");
            removed += 1;
        }
        self.clear_tmp()?;
        fsync_dir(&self.root.join("layers/sha256"))?;
        fsync_dir(&self.root.join("blobs/sha256"))?;
        Ok(removed)
    }

    /// Empty `tmp/`. Only with the exclusive lock held (or obtained).
    fn clear_tmp(&self) -> Result<()> {
        let tmp = self.tmp_dir();
        for name in list_names(&tmp)? {
            let p = tmp.join(&name);
            unpack::remove_tree(&p)?;
        }
        Ok(())
    }
}

fn list_names(dir: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for ent in fs::read_dir(dir).ctx("read directory", dir)? {
        let ent = ent.ctx("read directory", dir)?;
        if let Some(n) = ent.file_name().to_str() {
            out.push(n.to_string());
        }
    }
    out.sort();
    Ok(out)
}
