//! Overlay helpers: the `lowerdir=` value for an image, and a read-only
//! overlay mount of it (what the tests compare against `umoci unpack`).
//!
//! The container runtime does its own mount (with an upper and work dir);
//! these helpers show how the layers stack.

use std::path::{Path, PathBuf};

use rustix::mount::{MountFlags, UnmountFlags};

use crate::error::{Error, IoContext, Result};
use crate::store::{ImageStore, StoredImage};

/// Escape a path for overlayfs's comma- and colon-separated options.
fn escape(p: &Path) -> String {
    let s = p.to_string_lossy();
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, ':' | ',' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The `lowerdir=` value for `layers` given bottom first (as in
/// [`StoredImage::layers`]): top first, `:`-separated, with `:`, `,` and `\`
/// escaped.
///
/// overlayfs needs at least two lower directories when there is no upper
/// directory, and the whole option string must fit in a page (4096 bytes), so
/// very deep images under a long store path need the new mount API or
/// shorter (relative) paths.
pub fn lowerdir_option(layers: &[PathBuf]) -> String {
    layers
        .iter()
        .rev()
        .map(|p| escape(p))
        .collect::<Vec<_>>()
        .join(":")
}

impl StoredImage {
    /// The overlayfs `lowerdir=` value for this image (top layer first).
    pub fn lowerdir(&self) -> String {
        lowerdir_option(&self.layers)
    }
}

impl ImageStore {
    /// Mount `image` read-only at `target` as an overlay of its layers only
    /// (no upper directory). A one-layer image gets the store's empty
    /// directory as a second, bottom layer, which overlayfs requires.
    /// Undo with [`unmount`]. Needs CAP_SYS_ADMIN.
    pub fn mount_readonly(&self, image: &StoredImage, target: &Path) -> Result<()> {
        if image.layers.is_empty() {
            return Err(Error::invalid(
                format!("image {}", image.reference),
                "has no layers to mount",
            ));
        }
        let mut layers = vec![self.empty_dir()];
        layers.extend(image.layers.iter().cloned());
        let data = std::ffi::CString::new(format!("lowerdir={}", lowerdir_option(&layers)))
            .map_err(|_| Error::invalid("lowerdir", "path contains a NUL byte"))?;
        rustix::mount::mount(
            "overlay",
            target,
            "overlay",
            MountFlags::RDONLY | MountFlags::NODEV | MountFlags::NOSUID,
            Some(data.as_c_str()),
        )
        .ctx("mount overlay on", target)
    }
}

/// Unmount what [`ImageStore::mount_readonly`] mounted (lazily, so a busy
/// mount goes away once idle).
pub fn unmount(target: &Path) -> Result<()> {
    rustix::mount::unmount(target, UnmountFlags::DETACH).ctx("unmount", target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowerdir_is_top_first_and_escaped() {
        let layers = vec![
            PathBuf::from("/s/a"),
            PathBuf::from("/s/b:c"),
            PathBuf::from("/s/d,e"),
        ];
        assert_eq!(lowerdir_option(&layers), r"/s/d\,e:/s/b\:c:/s/a");
    }
}
