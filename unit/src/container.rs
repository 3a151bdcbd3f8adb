//! The syntax of `[container]` values that are more than a plain string:
//! image references, bind mounts and `user`. Pure functions over text; the
//! positions are added by `parse.rs`.

use std::fmt;

use crate::schema::Volume;

/// `image` as written in a unit, split into its parts with the defaults
/// filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageReference {
    /// `[host[:port]/]path[:tag][@sha256:<hex>]`.
    Registry {
        /// `docker.io` when the reference names no registry.
        registry: String,
        /// The path in the registry, `library/NAME` for a one-component
        /// Docker Hub name.
        repository: String,
        /// `latest` when neither a tag nor a digest is given; `None` when
        /// only a digest is given.
        tag: Option<String>,
        /// `sha256:<64 lowercase hex>`.
        digest: Option<String>,
    },
    /// `oci-layout:/path/to/dir:tag`: an image in an OCI image layout
    /// directory on this machine, picked by its `org.opencontainers.image.ref.name`.
    OciLayout { path: String, tag: String },
}

pub(crate) const IMAGE_EXAMPLES: &str = "e.g. \"docker.io/library/nginx:1.27\", \
     \"ghcr.io/home-assistant/home-assistant:2024.12\" or \"oci-layout:/var/lib/images/nginx:latest\"";

const DEFAULT_REGISTRY: &str = "docker.io";
const OCI_LAYOUT: &str = "oci-layout:";

impl fmt::Display for ImageReference {
    /// The fully qualified form: `docker.io/library/nginx:latest`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageReference::Registry {
                registry,
                repository,
                tag,
                digest,
            } => {
                write!(f, "{registry}/{repository}")?;
                if let Some(tag) = tag {
                    write!(f, ":{tag}")?;
                }
                if let Some(digest) = digest {
                    write!(f, "@{digest}")?;
                }
                Ok(())
            }
            ImageReference::OciLayout { path, tag } => write!(f, "{OCI_LAYOUT}{path}:{tag}"),
        }
    }
}

/// Parses an image reference: `[host[:port]/]path[:tag][@sha256:<64 hex>]`
/// (Docker Hub and `library/` and `latest` are the defaults) or
/// `oci-layout:/path/to/dir:tag`. The error says what is wrong, without
/// repeating the reference.
pub fn parse_image_reference(s: &str) -> Result<ImageReference, String> {
    if s.is_empty() {
        return Err("the image reference is empty".into());
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("an image reference must not contain spaces".into());
    }
    if let Some(rest) = s.strip_prefix(OCI_LAYOUT) {
        return parse_oci_layout(rest);
    }
    if let Some((scheme, _)) = s.split_once("://") {
        return Err(format!(
            "leave out the scheme ({scheme}://): an image reference names the registry host directly"
        ));
    }

    let (name_tag, digest) = match s.split_once('@') {
        Some((n, d)) => {
            check_digest(d)?;
            (n, Some(d.to_string()))
        }
        None => (s, None),
    };
    // The tag follows the last ':' after the last '/' (a ':' before a '/' is
    // the registry's port).
    let last_slash = name_tag.rfind('/');
    let (name, tag) = match name_tag.rfind(':') {
        Some(i) if last_slash.is_none_or(|j| i > j) => {
            let tag = &name_tag[i + 1..];
            check_tag(tag)?;
            (&name_tag[..i], Some(tag.to_string()))
        }
        _ => (name_tag, None),
    };
    if name.is_empty() {
        return Err("the image name is missing".into());
    }

    // Docker's rule: the first component is a registry host when it has a
    // '.' or a ':', is "localhost", or has upper-case letters, and something
    // follows it.
    let (registry, path) = match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.chars().any(|c| c.is_ascii_uppercase()) =>
        {
            check_registry(first)?;
            (first.to_string(), rest)
        }
        _ => (DEFAULT_REGISTRY.to_string(), name),
    };
    if path.is_empty() {
        return Err(format!("the repository path after {registry:?} is missing"));
    }
    for component in path.split('/') {
        check_path_component(component)?;
    }
    let repository = if registry == DEFAULT_REGISTRY && !path.contains('/') {
        format!("library/{path}")
    } else {
        path.to_string()
    };
    if repository.len() > 255 {
        return Err("the repository path is longer than 255 characters".into());
    }
    let tag = match (tag, &digest) {
        (None, None) => Some("latest".to_string()),
        (tag, _) => tag,
    };
    Ok(ImageReference::Registry {
        registry,
        repository,
        tag,
        digest,
    })
}

fn parse_oci_layout(rest: &str) -> Result<ImageReference, String> {
    const FORM: &str = "write oci-layout:/path/to/dir:tag";
    let Some((path, tag)) = rest.rsplit_once(':') else {
        return Err(format!("an oci-layout image needs a tag; {FORM}"));
    };
    if path.is_empty() {
        return Err(format!("the layout directory is missing; {FORM}"));
    }
    if !path.starts_with('/') {
        return Err(format!(
            "the layout directory {path:?} must be an absolute path; {FORM}"
        ));
    }
    if tag.is_empty() {
        return Err(format!("the tag after the last ':' is empty; {FORM}"));
    }
    if tag.contains('/') {
        return Err(format!(
            "an oci-layout image needs a tag after the directory; {FORM}"
        ));
    }
    Ok(ImageReference::OciLayout {
        path: path.to_string(),
        tag: tag.to_string(),
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

/// `host[:port]`, the host a DNS name, an IPv4 address or `[IPv6]`.
fn check_registry(r: &str) -> Result<(), String> {
    let port = if let Some(after) = r.strip_prefix('[') {
        let Some((h, rest)) = after.split_once(']') else {
            return Err(format!("the registry {r:?} has an unclosed '['"));
        };
        if h.is_empty() || !h.chars().all(|c| c.is_ascii_hexdigit() || c == ':') {
            return Err(format!("the registry {r:?} has an invalid IPv6 address"));
        }
        match rest {
            "" => None,
            _ => match rest.strip_prefix(':') {
                Some(p) => Some(p),
                None => return Err(format!("the registry {r:?} has junk after ']'")),
            },
        }
    } else {
        let (h, p) = match r.split_once(':') {
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
        p
    };
    if let Some(p) = port {
        match p.parse::<u16>() {
            Ok(n) if n > 0 && p.chars().all(|c| c.is_ascii_digit()) => {}
            _ => {
                return Err(format!(
                    "the registry port {p:?} is not a number between 1 and 65535"
                ))
            }
        }
    }
    Ok(())
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

/// Parses a bind mount `host:container[:ro|:rw]`. Both paths are absolute
/// and have no `..`; the container path is not `/`.
pub fn parse_volume(s: &str) -> Result<Volume, String> {
    const FORM: &str = "write host:container or host:container:ro, e.g. \"/srv/app:/data\"";
    if s.contains('\0') {
        return Err("a volume must not contain NUL".into());
    }
    let parts: Vec<&str> = s.split(':').collect();
    let (host, container, mode) = match parts.as_slice() {
        [h, c] => (*h, *c, None),
        [h, c, m] => (*h, *c, Some(*m)),
        [_] => return Err(format!("expected host:container; {FORM}")),
        _ => {
            return Err(format!(
                "too many ':'; {FORM} (paths containing ':' are not supported)"
            ))
        }
    };
    if host.is_empty() {
        return Err(format!("the host path is empty; {FORM}"));
    }
    if !host.starts_with('/') {
        if !host.contains('/') {
            return Err(format!(
                "named volumes are not supported; give an absolute host directory, e.g. \"/srv/{host}:{container}\""
            ));
        }
        return Err(format!(
            "the host path {host:?} must be absolute (start with /)"
        ));
    }
    if has_dot_dot(host) {
        return Err(format!("the host path {host:?} must not contain \"..\""));
    }
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
        host: host.to_string(),
        container: container.to_string(),
        read_only,
    })
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
