//! Manifests and indexes: telling them apart, choosing the host's platform,
//! checking that a manifest describes a runnable container image.

use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest, MediaType};

use crate::error::{Error, Result};
use crate::store::sha256_hex;

/// Docker's manifest list, the index of the Docker schema 2 world.
pub(crate) const DOCKER_MANIFEST_LIST: &str =
    "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker's schema 2 image manifest.
pub(crate) const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

/// What the registry is asked to send for a manifest.
pub(crate) const ACCEPTED_MANIFESTS: &[&str] = &[
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    DOCKER_MANIFEST_LIST,
    DOCKER_MANIFEST,
];

pub(crate) enum Parsed {
    Manifest(Box<ImageManifest>),
    Index(Box<ImageIndex>),
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Peek {
    schema_version: Option<u32>,
    media_type: Option<String>,
    manifests: Option<serde_json::Value>,
}

/// Parse a manifest or an index, telling them apart by `mediaType` (or, when
/// it is missing, by the presence of `manifests`).
pub(crate) fn parse(bytes: &[u8], what: &str) -> Result<Parsed> {
    let peek: Peek = serde_json::from_slice(bytes)
        .map_err(|e| Error::invalid(what, format!("not JSON: {e}")))?;
    if peek.schema_version != Some(2) {
        return Err(Error::invalid(
            what,
            format!(
                "schemaVersion {:?} is not supported (only schema 2 / OCI manifests)",
                peek.schema_version
            ),
        ));
    }
    let is_index = match peek.media_type.as_deref() {
        Some("application/vnd.oci.image.index.v1+json") | Some(DOCKER_MANIFEST_LIST) => true,
        Some("application/vnd.oci.image.manifest.v1+json") | Some(DOCKER_MANIFEST) => false,
        None => peek.manifests.is_some(),
        Some(other) => {
            return Err(Error::invalid(
                what,
                format!("media type {other} is not an image manifest or index"),
            ))
        }
    };
    if is_index {
        let index: ImageIndex = serde_json::from_slice(bytes)
            .map_err(|e| Error::invalid(what, format!("bad image index: {e}")))?;
        Ok(Parsed::Index(Box::new(index)))
    } else {
        let m: ImageManifest = serde_json::from_slice(bytes)
            .map_err(|e| Error::invalid(what, format!("bad image manifest: {e}")))?;
        Ok(Parsed::Manifest(Box::new(m)))
    }
}

/// The host's platform in OCI terms: `("linux", "amd64")` here.
pub fn host_platform() -> (&'static str, &'static str) {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "x86" => "386",
        "aarch64" => "arm64",
        "powerpc64" => "ppc64le",
        "loongarch64" => "loong64",
        other => other,
    };
    ("linux", arch)
}

fn is_index_type(mt: &MediaType) -> bool {
    matches!(mt, MediaType::ImageIndex) || mt.to_string() == DOCKER_MANIFEST_LIST
}

/// Choose the host's platform from an index.
pub(crate) fn choose_platform<'a>(index: &'a ImageIndex, what: &str) -> Result<&'a Descriptor> {
    let (os, arch) = host_platform();
    let mut seen = Vec::new();
    for d in index.manifests() {
        let Some(p) = d.platform() else { continue };
        let (pos, parch) = (p.os().to_string(), p.architecture().to_string());
        if pos == os && parch == arch {
            return Ok(d);
        }
        if pos != "unknown" {
            seen.push(format!("{pos}/{parch}"));
        }
    }
    Err(Error::invalid(
        what,
        format!(
            "no manifest for {os}/{arch} (the index has: {})",
            if seen.is_empty() {
                "no platforms".to_string()
            } else {
                seen.join(", ")
            }
        ),
    ))
}

pub(crate) fn is_index_descriptor(d: &Descriptor) -> bool {
    is_index_type(d.media_type())
}

/// The digest of a descriptor, checked to be sha256 (the only algorithm the
/// store speaks, and the only one we verify).
pub(crate) fn digest_of(d: &Descriptor, what: &str) -> Result<String> {
    let s = d.digest().to_string();
    if sha256_hex(&s).is_none() {
        return Err(Error::invalid(
            what,
            format!("digest {s} is not supported (only sha256)"),
        ));
    }
    Ok(s)
}

/// Check that the manifest is a container image we can unpack: a known config
/// type, tar layers, sha256 digests.
pub(crate) fn check_image(m: &ImageManifest, what: &str) -> Result<()> {
    let ct = m.config().media_type().to_string();
    if !matches!(m.config().media_type(), MediaType::ImageConfig) && ct != DOCKER_CONFIG {
        return Err(Error::invalid(
            what,
            format!("not a container image (config media type {ct})"),
        ));
    }
    digest_of(m.config(), what)?;
    for l in m.layers() {
        let lt = l.media_type().to_string();
        let ok = matches!(
            l.media_type(),
            MediaType::ImageLayer
                | MediaType::ImageLayerGzip
                | MediaType::ImageLayerZstd
                | MediaType::ImageLayerNonDistributable
                | MediaType::ImageLayerNonDistributableGzip
                | MediaType::ImageLayerNonDistributableZstd
        ) || lt.starts_with("application/vnd.docker.image.rootfs.");
        if !ok {
            return Err(Error::invalid(
                what,
                format!("layer {} has media type {lt}, not a tar layer", l.digest()),
            ));
        }
        digest_of(l, what)?;
    }
    Ok(())
}

/// Parse an image config blob.
pub(crate) fn parse_config(bytes: &[u8], what: &str) -> Result<ImageConfiguration> {
    let c: ImageConfiguration = serde_json::from_slice(bytes)
        .map_err(|e| Error::invalid(what, format!("bad image config: {e}")))?;
    let (os, _) = host_platform();
    if c.os().to_string() != os {
        return Err(Error::invalid(
            what,
            format!("image is for {}, not {os}", c.os()),
        ));
    }
    Ok(c)
}
