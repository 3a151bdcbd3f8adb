//! The syntax of `[container]` values that are more than a plain string:
//! image references, bind mounts and `user`. Pure functions over text; the
//! positions are added by `parse.rs`.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::limits::MAX_VOLUME_NAME;
use crate::schema::{Volume, VolumeSource};

/// An image reference, as `[container] image` and every image command take
/// it, parsed by [`parse_image_reference`].
///
/// Its [`Display`](fmt::Display) form is canonical (the image store keys
/// images by it): `busybox`, `docker.io/busybox` and
/// `docker.io/library/busybox:latest` all name the same image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageReference {
    /// An image in a registry, in the grammar of the OCI distribution
    /// reference (`oci_spec::distribution::Reference`): Docker Hub
    /// (`docker.io`) is the default registry, `library/` its default
    /// namespace, `latest` the default tag (unless a digest is given).
    Registry(oci_spec::distribution::Reference),
    /// `oci-layout:/path/to/dir[:tag]`: a manifest in an OCI image layout
    /// directory on this machine, chosen by its
    /// `org.opencontainers.image.ref.name` annotation (`tag`), or the
    /// layout's only manifest when no tag is given.
    OciLayout {
        /// The layout directory: absolute, without a trailing '/'.
        path: PathBuf,
        tag: Option<String>,
    },
}

/// The prefix of a reference to a local OCI image layout directory.
pub const OCI_LAYOUT_PREFIX: &str = "oci-layout:";

pub(crate) const IMAGE_EXAMPLES: &str = "e.g. \"docker.io/library/nginx:1.27\", \
     \"ghcr.io/home-assistant/home-assistant:2024.12\" or \"oci-layout:/var/lib/images/nginx:latest\"";

impl ImageReference {
    /// The registry host (`HOST[:PORT]`) of a registry reference, as
    /// written (`docker.io` for Docker Hub).
    pub fn registry(&self) -> Option<&str> {
        match self {
            ImageReference::Registry(r) => Some(r.registry()),
            ImageReference::OciLayout { .. } => None,
        }
    }

    /// The repository path of a registry reference (`library/nginx`).
    pub fn repository(&self) -> Option<&str> {
        match self {
            ImageReference::Registry(r) => Some(r.repository()),
            ImageReference::OciLayout { .. } => None,
        }
    }

    /// The tag, if the reference has one.
    pub fn tag(&self) -> Option<&str> {
        match self {
            ImageReference::Registry(r) => r.tag(),
            ImageReference::OciLayout { tag, .. } => tag.as_deref(),
        }
    }

    /// The pinned digest of a registry reference (`name@sha256:...`).
    pub fn digest(&self) -> Option<&str> {
        match self {
            ImageReference::Registry(r) => r.digest(),
            ImageReference::OciLayout { .. } => None,
        }
    }
}

impl fmt::Display for ImageReference {
    /// The canonical form: `docker.io/library/nginx:latest`,
    /// `oci-layout:/srv/images/nginx:1.27`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageReference::Registry(r) => write!(f, "{r}"),
            ImageReference::OciLayout { path, tag } => {
                write!(f, "{OCI_LAYOUT_PREFIX}{}", path.display())?;
                if let Some(tag) = tag {
                    write!(f, ":{tag}")?;
                }
                Ok(())
            }
        }
    }
}

impl FromStr for ImageReference {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        parse_image_reference(s)
    }
}

/// Parses an image reference: a registry reference in the OCI distribution
/// grammar (`[host[:port]/]path[:tag][@sha256:<64 hex>]`, parsed by
/// `oci_spec::distribution::Reference`) or `oci-layout:/path/to/dir[:tag]`.
/// This is the one grammar: unit files are validated with it and the image
/// store pulls with it. On top of oci-spec's grammar a reference must be
/// ASCII without spaces, its repository lower-case, its port 1..=65535 and
/// its digest sha256 in lower-case hex, as the store needs. The error says
/// what is wrong, without repeating the reference.
pub fn parse_image_reference(s: &str) -> Result<ImageReference, String> {
    if s.is_empty() {
        return Err("the image reference is empty".into());
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("an image reference must not contain spaces".into());
    }
    if let Some(rest) = s.strip_prefix(OCI_LAYOUT_PREFIX) {
        return parse_oci_layout(rest);
    }
    if let Some((scheme, _)) = s.split_once("://") {
        return Err(format!(
            "leave out the scheme ({scheme}://): an image reference names the registry host directly"
        ));
    }
    if let Some(c) = s.chars().find(|c| !c.is_ascii()) {
        return Err(format!(
            "{c:?} is not allowed: an image reference is ASCII letters, digits and . _ - : / @"
        ));
    }
    let r = oci_spec::distribution::Reference::from_str(s).map_err(|e| explain(s, e))?;
    if r.repository().chars().any(|c| c.is_ascii_uppercase()) {
        return Err(format!(
            "repository paths are lower-case: write {:?}",
            r.repository().to_ascii_lowercase()
        ));
    }
    if let Some((_, port)) = r.registry().split_once(':') {
        check_port(port)?;
    }
    if let Some(d) = r.digest() {
        check_digest(d)?;
    }
    Ok(ImageReference::Registry(r))
}

fn check_port(p: &str) -> Result<(), String> {
    match p.parse::<u16>() {
        Ok(n) if n > 0 && p.chars().all(|c| c.is_ascii_digit()) => Ok(()),
        _ => Err(format!(
            "the registry port {p:?} is not a number between 1 and 65535"
        )),
    }
}

/// Why oci-spec refused `s`. This only explains: whether a reference is
/// valid is decided by [`parse_image_reference`]. It looks for the usual
/// mistakes, part by part, and falls back to oci-spec's own words.
fn explain(s: &str, e: oci_spec::distribution::ParseError) -> String {
    let found = (|| -> Result<(), String> {
        let (name_tag, digest) = match s.split_once('@') {
            Some((n, d)) => (n, Some(d)),
            None => (s, None),
        };
        if let Some(d) = digest {
            check_digest(d)?;
        }
        // The tag follows the last ':' after the last '/' (a ':' before a
        // '/' is the registry's port).
        let last_slash = name_tag.rfind('/');
        let name = match name_tag.rfind(':') {
            Some(i) if last_slash.is_none_or(|j| i > j) => {
                check_tag(&name_tag[i + 1..])?;
                &name_tag[..i]
            }
            _ => name_tag,
        };
        if name.is_empty() {
            return Err("the image name is missing".into());
        }
        // Docker's rule: the first component names a registry when it has a
        // '.' or a ':' or is "localhost", and something follows it ('[' too
        // here, to say that an IPv6 address cannot be one).
        let path = match name.split_once('/') {
            Some((first, rest)) if first.contains(['.', ':', '[']) || first == "localhost" => {
                check_registry(first)?;
                if rest.is_empty() {
                    return Err(format!("the repository path after {first:?} is missing"));
                }
                rest
            }
            _ => name,
        };
        path.split('/').try_for_each(check_path_component)
    })();
    match found {
        Err(why) => why,
        Ok(()) => format!("{e}; write [REGISTRY[:PORT]/]PATH[:TAG][@sha256:DIGEST]"),
    }
}

/// `oci-layout:` then `/DIR[:TAG]`: the tag is what follows the last ':'
/// after the last '/'.
fn parse_oci_layout(rest: &str) -> Result<ImageReference, String> {
    const FORM: &str = "write oci-layout:/path/to/dir:tag (the tag may be left out when the \
                        layout holds one image)";
    let last_slash = rest.rfind('/').unwrap_or(0);
    let (path, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
        None => (rest, None),
    };
    if path.is_empty() {
        return Err(format!("the layout directory is missing; {FORM}"));
    }
    if !path.starts_with('/') {
        return Err(format!(
            "the layout directory {path:?} must be an absolute path; {FORM}"
        ));
    }
    if path.split('/').any(|c| c == "..") {
        return Err(format!(
            "the layout directory {path:?} must not contain \"..\""
        ));
    }
    match tag {
        Some("") => return Err(format!("the tag after the last ':' is empty; {FORM}")),
        Some(t) => check_tag(t)?,
        None => {}
    }
    let trimmed = path.trim_end_matches('/');
    // `/srv/app:1/` would print as `/srv/app:1`: the directory `/srv/app`
    // with the tag 1. A ':' in the directory's last component cannot be
    // told from a tag, so it is refused.
    if tag.is_none() && trimmed.rsplit('/').next().is_some_and(|c| c.contains(':')) {
        return Err(format!(
            "the layout directory {path:?} has a ':' in its last component, which reads as a tag; \
             rename the directory, or {FORM}"
        ));
    }
    Ok(ImageReference::OciLayout {
        path: PathBuf::from(if trimmed.is_empty() { "/" } else { trimmed }),
        tag: tag.map(str::to_string),
    })
}

/// `sha256:` and 64 lowercase hex digits.
fn check_digest(d: &str) -> Result<(), String> {
    let hex = d
        .strip_prefix("sha256:")
        .ok_or_else(|| format!("the digest {d:?} must be sha256:<64 hex digits>"))?;
    if hex.len() != 64
        || !hex
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, 'a'..='f'))
    {
        return Err(format!(
            "the digest must be sha256: and 64 lowercase hex digits, got {} characters after sha256:",
            hex.chars().count()
        ));
    }
    Ok(())
}

/// `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
fn check_tag(tag: &str) -> Result<(), String> {
    if tag.is_empty() {
        return Err("the tag after ':' is empty; leave the ':' out to use \"latest\"".into());
    }
    if tag.len() > 128 {
        return Err("the tag is longer than 128 characters".into());
    }
    if tag.starts_with(['.', '-']) {
        return Err(format!(
            "the tag {tag:?} must start with a letter, a digit or '_'"
        ));
    }
    if let Some(c) = tag
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Err(format!(
            "the tag {tag:?} has {c:?}; tags are letters, digits, '_', '.' and '-'"
        ));
    }
    Ok(())
}

/// `host[:port]`, the host a DNS name or an IPv4 address.
fn check_registry(r: &str) -> Result<(), String> {
    if r.starts_with('[') {
        return Err(format!(
            "the registry {r:?} is an IPv6 address, which image references cannot name; give \
             the registry's host name"
        ));
    }
    let (h, port) = match r.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (r, None),
    };
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if !h.split('.').all(label_ok) {
        return Err(format!("the registry host {h:?} is not a valid host name"));
    }
    port.map_or(Ok(()), check_port)
}

/// A repository path component: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
fn check_path_component(c: &str) -> Result<(), String> {
    if c.is_empty() {
        return Err("the repository path has an empty component ('//', or '/' at an end)".into());
    }
    if c.chars().any(|ch| ch.is_ascii_uppercase()) {
        return Err(format!(
            "repository paths are lower-case: write {:?}",
            c.to_ascii_lowercase()
        ));
    }
    if let Some(ch) = c.chars().find(|ch| {
        !(ch.is_ascii_lowercase() || ch.is_ascii_digit() || matches!(ch, '.' | '_' | '-'))
    }) {
        return Err(format!(
            "{c:?} has {ch:?}; repository paths are lower-case letters, digits and the separators '.', '_', '__' and '-'"
        ));
    }
    let alnum = |ch: char| ch.is_ascii_lowercase() || ch.is_ascii_digit();
    if !c.starts_with(alnum) || !c.ends_with(alnum) {
        return Err(format!("{c:?} must start and end with a letter or a digit"));
    }
    // Runs of separators between alphanumerics.
    for run in c.split(alnum).filter(|r| !r.is_empty()) {
        let ok = matches!(run, "." | "_" | "__") || run.chars().all(|ch| ch == '-');
        if !ok {
            return Err(format!(
                "{c:?} has the separator {run:?}; use one of '.', '_', '__' or '-' between letters and digits"
            ));
        }
    }
    Ok(())
}

/// Parses a line of `volumes`: a bind mount `HOST_PATH:PATH[:ro|:rw]` or a
/// named volume `NAME:PATH[:ro|:rw]`. Host and container paths are absolute
/// and have no `..`; the container path is not `/`; a volume name is
/// `[a-zA-Z0-9][a-zA-Z0-9_.-]*` (Docker's rule).
pub fn parse_volume(s: &str) -> Result<Volume, String> {
    const FORM: &str = "write HOST_PATH:PATH or NAME:PATH, with :ro to mount it read-only, e.g. \
                        \"/srv/app:/data\" or \"pgdata:/var/lib/postgresql/data\"";
    if s.contains('\0') {
        return Err("a volume must not contain NUL".into());
    }
    let parts: Vec<&str> = s.split(':').collect();
    let (host, container, mode) = match parts.as_slice() {
        [h, c] => (*h, *c, None),
        [h, c, m] => (*h, *c, Some(*m)),
        [p] if p.starts_with('/') => {
            return Err(format!(
                "{p:?} alone would be an anonymous volume, which jarvis does not have; name \
                 it, e.g. \"data:{p}\", or give a host directory, e.g. \"/srv/data:{p}\""
            ))
        }
        [_] => return Err(format!("expected HOST_PATH:PATH or NAME:PATH; {FORM}")),
        _ => {
            return Err(format!(
                "too many ':'; {FORM} (paths containing ':' are not supported)"
            ))
        }
    };
    let source = if host.is_empty() {
        return Err(format!("the part before ':' is empty; {FORM}"));
    } else if host.starts_with('/') {
        if has_dot_dot(host) {
            return Err(format!("the host path {host:?} must not contain \"..\""));
        }
        VolumeSource::Bind(host.to_string())
    } else if host.starts_with('.') || host.starts_with('~') || host.contains('/') {
        return Err(format!(
            "the host path {host:?} is relative; host paths in a unit file are absolute \
             (compose resolves relative ones against the compose file's directory), even in \
             a repository (only env_file and [[secret]] source resolve against its root), e.g. \
             \"/srv/app/{}:{container}\"",
            host.trim_start_matches(['.', '~', '/'])
        ));
    } else {
        check_volume_name(host)?;
        VolumeSource::Named(host.to_string())
    };
    if container.is_empty() {
        return Err(format!("the container path is empty; {FORM}"));
    }
    if !container.starts_with('/') {
        return Err(format!(
            "the container path {container:?} must be absolute (start with /)"
        ));
    }
    if has_dot_dot(container) {
        return Err(format!(
            "the container path {container:?} must not contain \"..\""
        ));
    }
    if normalize_path(container) == "/" {
        return Err("cannot mount over the container's root directory \"/\"; use read_only to make the root read-only".into());
    }
    let read_only = match mode {
        None | Some("rw") => false,
        Some("ro") => true,
        Some(m) => {
            return Err(format!(
                "unknown mode {m:?}: the mode is ro or rw (other options such as z, Z or propagation modes are not supported)"
            ))
        }
    };
    Ok(Volume {
        source,
        container: container.to_string(),
        read_only,
    })
}

/// Checks a named volume's name: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`, as Docker
/// has it, at most [`MAX_VOLUME_NAME`] bytes (a file name: the volume is a directory named
/// after it).
pub fn check_volume_name(name: &str) -> Result<(), String> {
    const RULE: &str = "a volume name starts with a letter or a digit and has only letters, \
                        digits, '_', '.' and '-'";
    if name.is_empty() {
        return Err("the volume name is empty".into());
    }
    if name.len() > MAX_VOLUME_NAME {
        return Err(format!(
            "the volume name is {} bytes long; at most {MAX_VOLUME_NAME} are allowed",
            name.len()
        ));
    }
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(format!("{name:?} is not a volume name: {RULE}"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Err(format!(
            "{name:?} has {c:?}, so it is not a volume name: {RULE}"
        ));
    }
    Ok(())
}

fn has_dot_dot(path: &str) -> bool {
    path.split('/').any(|c| c == "..")
}

/// `path` without repeated '/', "." components or a trailing '/', so that
/// "/config/" and "/config" compare equal.
pub(crate) fn normalize_path(path: &str) -> String {
    let parts: Vec<&str> = path
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    format!("/{}", parts.join("/"))
}

/// A user or group name as `useradd` accepts it (also used for `[native]`).
pub(crate) fn is_valid_id_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '$'))
        && !s.starts_with('-')
}

/// Checks a container `user`: "uid", "uid:gid", "name" or "name:group".
pub(crate) fn check_container_user(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("it is empty".into());
    }
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() > 2 {
        return Err("it has more than one ':'".into());
    }
    for (part, what) in parts.iter().zip(["user", "group"]) {
        if part.is_empty() {
            return Err(format!("the {what} is empty"));
        }
        if part.chars().all(|c| c.is_ascii_digit()) {
            if part.parse::<u32>().is_err() {
                return Err(format!(
                    "the {what} id {part} is too large (at most {})",
                    u32::MAX
                ));
            }
        } else if !is_valid_id_name(part) {
            return Err(format!("{part:?} is not a valid {what} name"));
        }
    }
    Ok(())
}
