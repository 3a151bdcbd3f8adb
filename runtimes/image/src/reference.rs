//! Image references: `busybox`, `docker.io/homeassistant/home-assistant:2024.12`,
//! `registry.lan:5000/ns/app:1`, `app@sha256:...`, `oci-layout:/srv/images/app:1`.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use oci_spec::distribution::ParseError;

use crate::error::{Error, Result};

/// The prefix of a reference to a local OCI image layout directory.
pub const OCI_LAYOUT_PREFIX: &str = "oci-layout:";

/// A parsed image reference.
///
/// Its [`Display`](fmt::Display) form is canonical: the store keys images by
/// it, so `busybox`, `docker.io/busybox` and `docker.io/library/busybox:latest`
/// all name the same image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    /// An image in a registry. Docker Hub (`docker.io`) is the default
    /// registry, `library/` its default namespace, `latest` the default tag
    /// (unless a digest is given).
    Registry(oci_spec::distribution::Reference),
    /// A manifest in a local OCI image layout directory, chosen by its
    /// `org.opencontainers.image.ref.name` annotation (`tag`), or the layout's
    /// only manifest when no tag is given.
    OciLayout {
        /// The layout directory (absolute).
        path: PathBuf,
        /// The `org.opencontainers.image.ref.name` to select.
        tag: Option<String>,
    },
}

impl Reference {
    /// The registry host (`HOST[:PORT]`) for a registry reference, as written
    /// (`docker.io` for Docker Hub).
    pub fn registry(&self) -> Option<&str> {
        match self {
            Reference::Registry(r) => Some(r.registry()),
            Reference::OciLayout { .. } => None,
        }
    }

    /// The tag, if the reference has one.
    pub fn tag(&self) -> Option<&str> {
        match self {
            Reference::Registry(r) => r.tag(),
            Reference::OciLayout { tag, .. } => tag.as_deref(),
        }
    }

    /// The pinned digest of a registry reference (`name@sha256:...`).
    pub fn digest(&self) -> Option<&str> {
        match self {
            Reference::Registry(r) => r.digest(),
            Reference::OciLayout { .. } => None,
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Registry(r) => write!(f, "{r}"),
            Reference::OciLayout { path, tag } => {
                write!(f, "{OCI_LAYOUT_PREFIX}{}", path.display())?;
                if let Some(tag) = tag {
                    write!(f, ":{tag}")?;
                }
                Ok(())
            }
        }
    }
}

impl FromStr for Reference {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        parse_reference(s)
    }
}

/// Parse an image reference. See [`Reference`] for the accepted forms.
///
/// ```
/// use jarvis_image::parse_reference;
/// assert_eq!(parse_reference("busybox").unwrap().to_string(), "docker.io/library/busybox:latest");
/// assert_eq!(
///     parse_reference("oci-layout:/srv/img:1.0").unwrap().to_string(),
///     "oci-layout:/srv/img:1.0"
/// );
/// ```
pub fn parse_reference(s: &str) -> Result<Reference> {
    let bad = |reason: &str| Error::Reference {
        input: s.to_string(),
        reason: reason.to_string(),
    };
    if let Some(rest) = s.strip_prefix(OCI_LAYOUT_PREFIX) {
        return parse_layout(rest).map_err(|r| bad(&r));
    }
    if s.trim() != s || s.is_empty() {
        return Err(bad("empty, or surrounded by whitespace"));
    }
    let r = oci_spec::distribution::Reference::try_from(s).map_err(|e| {
        let reason = match e {
            ParseError::ReferenceInvalidFormat if s.chars().any(|c| c.is_ascii_uppercase()) => {
                "invalid reference format (repository names must be lowercase)".to_string()
            }
            ParseError::DigestUnsupported => {
                "unsupported digest algorithm (only sha256 is supported)".to_string()
            }
            e => e.to_string(),
        };
        bad(&reason)
    })?;
    if let Some(d) = r.digest() {
        if !d.starts_with("sha256:") {
            return Err(bad(
                "unsupported digest algorithm (only sha256 is supported)",
            ));
        }
        if !d[7..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(bad("digest must be lowercase hex"));
        }
    }
    Ok(Reference::Registry(r))
}

fn parse_layout(rest: &str) -> Result<Reference, String> {
    if !rest.starts_with('/') {
        return Err("the layout directory must be an absolute path (oci-layout:/DIR[:TAG])".into());
    }
    // A tag is what follows the last ':' after the last '/'.
    let last_slash = rest.rfind('/').unwrap_or(0);
    let (path, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => {
            let i = last_slash + i;
            (&rest[..i], Some(&rest[i + 1..]))
        }
        None => (rest, None),
    };
    if let Some(tag) = tag {
        if !valid_tag(tag) {
            return Err(format!("invalid tag {tag:?}"));
        }
    }
    let trimmed = path.trim_end_matches('/');
    let path = if trimmed.is_empty() { "/" } else { trimmed };
    if path.split('/').any(|c| c == "..") {
        return Err("the layout path must not contain `..`".into());
    }
    Ok(Reference::OciLayout {
        path: PathBuf::from(path),
        tag: tag.map(str::to_string),
    })
}

/// A tag as the distribution spec defines it: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub(crate) fn valid_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || c == b'_' || c == b'.' || c == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(s: &str) -> String {
        parse_reference(s).unwrap().to_string()
    }

    #[test]
    fn registry_references() {
        assert_eq!(canon("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(canon("busybox:1.36"), "docker.io/library/busybox:1.36");
        assert_eq!(
            canon("docker.io/busybox"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(
            canon("index.docker.io/library/busybox"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(
            canon("docker.io/homeassistant/home-assistant:2024.12"),
            "docker.io/homeassistant/home-assistant:2024.12"
        );
        assert_eq!(
            canon("homeassistant/home-assistant"),
            "docker.io/homeassistant/home-assistant:latest"
        );
        assert_eq!(
            canon("registry.lan:5000/ns/app:1.2"),
            "registry.lan:5000/ns/app:1.2"
        );
        assert_eq!(
            canon("127.0.0.1:5000/test/busybox:t"),
            "127.0.0.1:5000/test/busybox:t"
        );
        assert_eq!(canon("localhost:5000/app"), "localhost:5000/app:latest");
        assert_eq!(canon("ghcr.io/a/b/c:x"), "ghcr.io/a/b/c:x");
        let d = "sha256:".to_string() + &"ab".repeat(32);
        assert_eq!(
            canon(&format!("busybox@{d}")),
            format!("docker.io/library/busybox@{d}")
        );
        assert_eq!(
            canon(&format!("busybox:1@{d}")),
            format!("docker.io/library/busybox:1@{d}")
        );
        let r = parse_reference(&format!("busybox@{d}")).unwrap();
        assert_eq!(r.digest(), Some(d.as_str()));
        assert_eq!(r.tag(), None);
        assert_eq!(r.registry(), Some("docker.io"));
    }

    #[test]
    fn bad_references() {
        for s in [
            "",
            " busybox",
            "Busybox",
            "busybox:",
            "a//b",
            "busybox@sha256:abc",
            "busybox@md5:0123456789abcdef0123456789abcdef",
            "oci-layout:relative/dir",
            "oci-layout:/dir:bad tag",
            "oci-layout:/a/../b",
        ] {
            let e = parse_reference(s).unwrap_err();
            assert!(matches!(e, Error::Reference { .. }), "{s:?}: {e}");
        }
        let e = parse_reference("Busybox").unwrap_err().to_string();
        assert!(e.contains("lowercase"), "{e}");
        let upper = "sha256:".to_string() + &"AB".repeat(32);
        assert!(parse_reference(&format!("busybox@{upper}")).is_err());
    }

    #[test]
    fn layout_references() {
        assert_eq!(canon("oci-layout:/srv/img:1.0"), "oci-layout:/srv/img:1.0");
        assert_eq!(canon("oci-layout:/srv/img/"), "oci-layout:/srv/img");
        assert_eq!(
            canon("oci-layout:/srv/my:dir/img:t"),
            "oci-layout:/srv/my:dir/img:t"
        );
        match parse_reference("oci-layout:/srv/img:latest").unwrap() {
            Reference::OciLayout { path, tag } => {
                assert_eq!(path, PathBuf::from("/srv/img"));
                assert_eq!(tag.as_deref(), Some("latest"));
            }
            r => panic!("{r:?}"),
        }
        match parse_reference("oci-layout:/srv/img").unwrap() {
            Reference::OciLayout { tag, .. } => assert_eq!(tag, None),
            r => panic!("{r:?}"),
        }
    }
}
