//! Importing from an OCI image layout: a directory, or a tar of one.

use std::fs::{self, File};
use std::io::BufReader;
use std::path::{Path, PathBuf};

use oci_spec::image::{Descriptor, ImageIndex, ANNOTATION_REF_NAME};

use crate::error::{Error, IoContext, Result};
use crate::manifest::{self, Parsed};
use crate::reference::{parse_reference, Reference};
use crate::store::{sha256_of, ImageStore, RefRecord, StoredImage};
use crate::unpack;

const ATTEMPTS: usize = 3;

impl ImageStore {
    /// Import an image from an OCI image layout at `path` (a directory, or a
    /// tar of one, optionally gzip- or zstd-compressed) and store it under the
    /// reference `tag` (e.g. `myapp:1.0`, stored as
    /// `docker.io/library/myapp:1.0`).
    ///
    /// The manifest is the one whose `org.opencontainers.image.ref.name`
    /// annotation is `tag` as written, its canonical form or just its tag part
    /// (`1.0`, as `skopeo copy ... oci:DIR:1.0` writes it); failing that, the
    /// layout's only manifest. Every blob is verified against its digest as it
    /// is copied in.
    ///
    /// Blocking (copies and unpacks): from async code, call it in
    /// `tokio::task::spawn_blocking`.
    pub fn import(&self, path: &Path, tag: &str) -> Result<StoredImage> {
        let reference = parse_reference(tag)?;
        let mut selectors = vec![tag.to_string(), reference.to_string()];
        if let Some(t) = reference.tag() {
            selectors.push(t.to_string());
        }
        self.import_as(path, &selectors, &reference.to_string())
    }

    /// Pull for an `oci-layout:DIR[:TAG]` reference.
    pub(crate) fn import_reference(&self, reference: &Reference) -> Result<StoredImage> {
        let Reference::OciLayout { path, tag } = reference else {
            unreachable!("import_reference takes oci-layout references");
        };
        let selectors: Vec<String> = tag.iter().cloned().collect();
        self.import_as(path, &selectors, &reference.to_string())
    }

    fn import_as(&self, path: &Path, selectors: &[String], name: &str) -> Result<StoredImage> {
        for _ in 0..ATTEMPTS {
            let record = {
                let _lock = self.lock_shared()?;
                self.import_locked(path, selectors)?
            };
            if self.commit(name, &record)? {
                return self.stored_image(name, &record);
            }
        }
        Err(Error::Store {
            root: self.root().to_path_buf(),
            message: format!("{name}: its blobs kept being removed by concurrent removals"),
        })
    }

    fn import_locked(&self, path: &Path, selectors: &[String]) -> Result<RefRecord> {
        let meta = fs::metadata(path).ctx("stat", path)?;
        // A tar is extracted into tmp/ first (plain files and directories
        // only), then read like a directory.
        let _extracted;
        let dir: PathBuf = if meta.is_dir() {
            path.to_path_buf()
        } else {
            let tmp = tempfile::Builder::new()
                .prefix("import-")
                .tempdir_in(self.tmp_dir())
                .ctx("create temporary directory in", self.tmp_dir())?;
            let label = path.display().to_string();
            let (reader, _) = unpack::open_decompressed(path, &label)?;
            unpack::unpack_plain(reader, tmp.path(), &label)?;
            let d = tmp.path().to_path_buf();
            _extracted = tmp;
            d
        };
        let layout = Layout {
            dir: &dir,
            shown: path,
        };
        layout.check_header()?;
        let index_path = dir.join("index.json");
        let index: ImageIndex =
            serde_json::from_slice(&fs::read(&index_path).ctx("read", &index_path)?)
                .map_err(|e| Error::invalid(layout.what("index.json"), e.to_string()))?;
        let mut desc = select(&index, selectors, path)?.clone();
        let mut index_digest = None;
        // An index inside the layout: choose the platform.
        for _ in 0..4 {
            if !manifest::is_index_descriptor(&desc) {
                break;
            }
            let d = manifest::digest_of(&desc, &layout.what("index.json"))?;
            let bytes = layout.read_blob(&d, desc.size())?;
            let Parsed::Index(inner) = manifest::parse(&bytes, &layout.what(&d))? else {
                return Err(Error::invalid(layout.what(&d), "expected an image index"));
            };
            index_digest.get_or_insert(d.clone());
            self.put_blob(&format!("index {d}"), &d, &bytes)?;
            desc = manifest::choose_platform(&inner, &layout.what(&d))?.clone();
        }
        let manifest_digest = manifest::digest_of(&desc, &layout.what("index.json"))?;
        let what = layout.what(&format!("manifest {manifest_digest}"));
        let bytes = layout.read_blob(&manifest_digest, desc.size())?;
        let Parsed::Manifest(m) = manifest::parse(&bytes, &what)? else {
            return Err(Error::invalid(
                what,
                "expected an image manifest, found an index",
            ));
        };
        manifest::check_image(&m, &what)?;
        let config_digest = manifest::digest_of(m.config(), &what)?;
        let mut size = bytes.len() as u64 + m.config().size();
        let mut layers = Vec::new();
        for d in std::iter::once(m.config()).chain(m.layers().iter()) {
            let digest = manifest::digest_of(d, &what)?;
            if !self.has_blob(&digest)? {
                let src = layout.blob_path(&digest)?;
                let f = File::open(&src).ctx("open", &src)?;
                self.copy_blob(
                    &format!("blob {digest} in {}", path.display()),
                    &digest,
                    Some(d.size()),
                    BufReader::new(f),
                    &src,
                )?;
            }
        }
        let config_bytes = self.read_blob(&config_digest)?;
        let config = manifest::parse_config(
            &config_bytes,
            &layout.what(&format!("config {config_digest}")),
        )?;
        for l in m.layers() {
            let digest = manifest::digest_of(l, &what)?;
            size += l.size();
            self.ensure_layer(&digest)?;
            layers.push(digest);
        }
        self.put_blob(&what, &manifest_digest, &bytes)?;
        Ok(RefRecord {
            manifest: manifest_digest,
            config: config_digest,
            layers,
            size,
            created: config.created().clone(),
            index: index_digest,
            stored_at: crate::store::now_secs(),
        })
    }
}

struct Layout<'a> {
    dir: &'a Path,
    shown: &'a Path,
}

impl Layout<'_> {
    fn what(&self, thing: &str) -> String {
        format!("OCI layout {}: {thing}", self.shown.display())
    }

    fn check_header(&self) -> Result<()> {
        let p = self.dir.join("oci-layout");
        let bytes = match fs::read(&p) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::invalid(
                    self.what("oci-layout"),
                    "missing: this is not an OCI image layout",
                ))
            }
            Err(e) => return Err(Error::io("read", &p, e)),
        };
        #[derive(serde::Deserialize)]
        struct Header {
            #[serde(rename = "imageLayoutVersion")]
            version: String,
        }
        let h: Header = serde_json::from_slice(&bytes)
            .map_err(|e| Error::invalid(self.what("oci-layout"), e.to_string()))?;
        if !h.version.starts_with("1.") {
            return Err(Error::invalid(
                self.what("oci-layout"),
                format!("unsupported imageLayoutVersion {}", h.version),
            ));
        }
        Ok(())
    }

    fn blob_path(&self, digest: &str) -> Result<PathBuf> {
        let hex = crate::store::sha256_hex(digest)
            .ok_or_else(|| Error::invalid(self.what("blob"), format!("bad digest {digest:?}")))?;
        Ok(self.dir.join("blobs/sha256").join(hex))
    }

    /// Read a small blob (manifest, index) and verify it.
    fn read_blob(&self, digest: &str, size: u64) -> Result<Vec<u8>> {
        let p = self.blob_path(digest)?;
        if size > 4 << 20 {
            return Err(Error::invalid(
                self.what(digest),
                format!("{size} bytes is too big for a manifest"),
            ));
        }
        let bytes = fs::read(&p).ctx("read", &p)?;
        let actual = sha256_of(&bytes);
        if actual != digest || bytes.len() as u64 != size {
            return Err(Error::DigestMismatch {
                what: self.what(&format!("blob {digest}")),
                expected: format!("{digest} ({size} bytes)"),
                actual: format!("{actual} ({} bytes)", bytes.len()),
            });
        }
        Ok(bytes)
    }
}

/// The manifest named by one of `selectors`, or the only one.
pub(crate) fn select<'a>(
    index: &'a ImageIndex,
    selectors: &[String],
    path: &Path,
) -> Result<&'a Descriptor> {
    let name_of = |d: &Descriptor| {
        d.annotations()
            .as_ref()
            .and_then(|a| a.get(ANNOTATION_REF_NAME))
            .cloned()
    };
    if let Some(d) = index
        .manifests()
        .iter()
        .find(|d| name_of(d).is_some_and(|n| selectors.contains(&n)))
    {
        return Ok(d);
    }
    if let [only] = index.manifests().as_slice() {
        return Ok(only);
    }
    let names: Vec<String> = index.manifests().iter().filter_map(name_of).collect();
    Err(Error::invalid(
        format!("OCI layout {}", path.display()),
        format!(
            "{} manifests and none is named {}; names: [{}]",
            index.manifests().len(),
            selectors
                .first()
                .map(String::as_str)
                .unwrap_or("(no tag given)"),
            names.join(", ")
        ),
    ))
}
