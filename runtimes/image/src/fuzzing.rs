//! Entry points for the fuzz targets in `fuzz/` (behind the `fuzzing`
//! feature): what the store does with bytes from a registry, an OCI layout or
//! an auth file, without a registry, a layout or a store around them.

use std::io::Read;
use std::path::Path;

use oci_spec::image::{ImageConfiguration, ImageIndex};

use crate::error::{Error, Result};
use crate::manifest::{self, Parsed};

/// A manifest or an index as a pull reads it: parsed, the host's platform
/// chosen from an index, an image manifest checked, every digest read.
pub fn manifest(bytes: &[u8]) -> Result<()> {
    match manifest::parse(bytes, "fuzz")? {
        Parsed::Index(index) => {
            for d in index.manifests() {
                let _ = manifest::is_index_descriptor(d);
                let _ = manifest::digest_of(d, "fuzz");
            }
            let chosen = manifest::choose_platform(&index, "fuzz")?;
            manifest::digest_of(chosen, "fuzz")?;
        }
        Parsed::Manifest(m) => {
            manifest::check_image(&m, "fuzz")?;
            manifest::digest_of(m.config(), "fuzz")?;
            for l in m.layers() {
                manifest::digest_of(l, "fuzz")?;
            }
        }
    }
    Ok(())
}

/// An image config blob, as a pull and an import check it.
pub fn config(bytes: &[u8]) -> Result<ImageConfiguration> {
    manifest::parse_config(bytes, "fuzz")
}

/// An OCI layout's `index.json`, and the manifest an import would choose
/// from it for `selectors`.
pub fn layout_index(bytes: &[u8], selectors: &[String]) -> Result<()> {
    let index: ImageIndex =
        serde_json::from_slice(bytes).map_err(|e| Error::invalid("index.json", e.to_string()))?;
    let d = crate::layout::select(&index, selectors, Path::new("fuzz"))?;
    manifest::digest_of(d, "fuzz")?;
    Ok(())
}

/// An auth file's text, and the entry a pull of `repository` on `registry`
/// would use. `Err` is the message a bad file gets.
pub fn auth(text: &str, registry: &str, repository: &str) -> std::result::Result<(), String> {
    let auths = crate::auth::Auths::parse(text)?;
    let _ = auths.lookup(registry, repository);
    Ok(())
}

/// Extract an archive of plain files and directories into `dest`, as an
/// import of an OCI layout in a tar does (compression found by its first
/// bytes).
pub fn unpack_plain(reader: impl Read + 'static, dest: &Path) -> Result<()> {
    let (reader, _) = crate::unpack::decompress(std::io::BufReader::new(reader), "fuzz")?;
    crate::unpack::unpack_plain(reader, dest, "fuzz")
}

/// Extract a layer read from `blob` (plain, gzip or zstd, found by its first
/// bytes) into `dest`, as [`crate::unpack::unpack_layer`] does with a file;
/// an archive that decompresses to more than `limit` bytes is cut off there
/// (an error), so a small input cannot fill the disk.
pub fn unpack_layer(blob: impl Read + 'static, dest: &Path, limit: u64) -> Result<()> {
    let (reader, _) = crate::unpack::decompress(std::io::BufReader::new(blob), "fuzz")?;
    crate::unpack::unpack_reader(
        Box::new(Limited {
            inner: reader,
            left: limit,
        }),
        dest,
        "fuzz",
    )
}

struct Limited {
    inner: Box<dyn Read>,
    left: u64,
}

impl Read for Limited {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            // More to come is an error; a clean end is not.
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => Err(std::io::Error::other("archive over the fuzzing size limit")),
            };
        }
        let want = buf.len().min(self.left.min(usize::MAX as u64) as usize);
        let n = self.inner.read(&mut buf[..want])?;
        self.left -= n as u64;
        Ok(n)
    }
}
