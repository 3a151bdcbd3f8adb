//! Registry credentials, from an auth file in the format of podman's
//! `containers-auth.json` and docker's `config.json`.
//!
//! ```json
//! {"auths": {
//!     "registry.example:5000": {"auth": "dXNlcjpwYXNz"},
//!     "https://index.docker.io/v1/": {"username": "me", "password": "secret"}
//! }}
//! ```
//!
//! - Each entry gives `auth`, the base64 of `USER:PASSWORD` (what `podman
//!   login`, `skopeo login` and `docker login` write), or `username` and
//!   `password`. When `auth` is there it wins, as in docker.
//! - A key names a registry as `HOST[:PORT]`; an `http://` or `https://`
//!   prefix and a `/v1/` or `/v2/` suffix are ignored, so docker's
//!   `https://index.docker.io/v1/` is Docker Hub, as are `docker.io`,
//!   `index.docker.io` and `registry-1.docker.io`. Hosts compare without
//!   regard to case.
//! - A key with a path below the host (`registry.example/team`, as podman
//!   allows) applies to that repository and those under it only, and wins
//!   over a key for the whole registry; the longest such path wins.
//! - Other top-level keys (`credsStore`, `credHelpers`, ...) are ignored, as
//!   is an entry without `auth` or `username`/`password` (an
//!   `identitytoken`, or `{}` left by a credential helper): no credential
//!   helpers are run.
//! - The file is read at each pull, so an edit applies to the next one. It
//!   must not be readable by everyone (mode `o+r`): such a file is refused.
//!   A missing file means anonymous pulls when it is the default path
//!   ([`DEFAULT_AUTH_FILE`]), and is an error when it was given explicitly.
//! - Credentials never appear in errors, logs or `Debug` output: errors name
//!   the file and the key, never a user name, password or `auth` value.

use std::fmt;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use base64::Engine;

use crate::error::{Error, Result};

/// Where jarvisd looks for registry credentials when `--auth-file` is not
/// given. It may be missing (pulls are then anonymous).
pub const DEFAULT_AUTH_FILE: &str = "/etc/jarvis/auth.json";

/// The hosts that all mean Docker Hub.
const DOCKER_HUB: [&str; 3] = ["docker.io", "index.docker.io", "registry-1.docker.io"];

/// An auth file to take registry credentials from: [`crate::PullOptions`]'
/// `auth_file`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthFile {
    /// The file (absolute, for a daemon).
    pub path: PathBuf,
    /// Whether a missing file is an error (a file given explicitly) rather
    /// than a reason to pull anonymously (the default path).
    pub required: bool,
}

impl Default for AuthFile {
    /// [`DEFAULT_AUTH_FILE`], which may be missing.
    fn default() -> Self {
        AuthFile {
            path: PathBuf::from(DEFAULT_AUTH_FILE),
            required: false,
        }
    }
}

impl AuthFile {
    /// A file given explicitly (`jarvisd --auth-file PATH`): it must exist.
    pub fn given(path: impl Into<PathBuf>) -> AuthFile {
        AuthFile {
            path: path.into(),
            required: true,
        }
    }

    /// The auth file of a daemon: `given` (made absolute; it must exist) or
    /// else [`DEFAULT_AUTH_FILE`] (which may be missing), read and checked now,
    /// so that a missing, malformed or world-readable file stops the daemon
    /// at start instead of failing its pulls later. Pulls read it again each
    /// time.
    pub fn at_start(given: Option<&Path>) -> Result<AuthFile> {
        let file = match given {
            Some(p) => AuthFile::given(
                std::path::absolute(p).map_err(|e| Error::io("resolve auth file", p, e))?,
            ),
            None => AuthFile::default(),
        };
        file.check()?;
        Ok(file)
    }

    /// Read and check the file as a pull would: present (if required), not
    /// readable by everyone, well-formed.
    pub fn check(&self) -> Result<()> {
        self.load().map(|_| ())
    }

    /// The file's entries, or `None` for a missing file that is not required.
    pub(crate) fn load(&self) -> Result<Option<Auths>> {
        let path = &self.path;
        let mut f = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !self.required => {
                return Ok(None)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(auth_error(path, "it does not exist"))
            }
            Err(e) => return Err(Error::io("open auth file", path, e)),
        };
        let meta = f
            .metadata()
            .map_err(|e| Error::io("stat auth file", path, e))?;
        if !meta.is_file() {
            return Err(auth_error(path, "it is not a regular file"));
        }
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o004 != 0 {
            return Err(auth_error(
                path,
                format!(
                    "it is readable by everyone (mode {mode:04o}) and holds credentials: \
                     chmod o-rwx {} (0600 or 0640)",
                    path.display()
                ),
            ));
        }
        let mut text = String::new();
        f.read_to_string(&mut text)
            .map_err(|e| Error::io("read auth file", path, e))?;
        Auths::parse(&text)
            .map(Some)
            .map_err(|m| auth_error(path, m))
    }
}

fn auth_error(path: &Path, message: impl Into<String>) -> Error {
    Error::AuthFile {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// A user name and password for a registry. `Debug` shows neither.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Credentials {
    pub username: String,
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Credentials(<redacted>)")
    }
}

/// One entry of `auths`, by its key.
#[derive(Debug, Clone)]
struct Entry {
    /// The key as written in the file.
    key: String,
    /// Its host, lowercased, Docker Hub's aliases made `docker.io`.
    host: String,
    /// Its repository path below the host ("" for the whole registry).
    path: String,
    /// `None`: the entry has no usable credentials (an identity token, `{}`).
    credentials: Option<Credentials>,
}

/// What an auth file says about one repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// Credentials, and the key they were found under.
    Found {
        key: String,
        credentials: Credentials,
    },
    /// An entry matches, but has neither `auth` nor `username`/`password`.
    Unusable { key: String },
    /// No entry matches.
    None,
}

/// An auth file's `auths`, parsed.
#[derive(Debug, Clone, Default)]
pub(crate) struct Auths {
    entries: Vec<Entry>,
}

impl Auths {
    /// Parse an auth file. Errors name keys and fields, never their values.
    pub(crate) fn parse(text: &str) -> std::result::Result<Auths, String> {
        let doc: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| format!("not valid JSON ({})", json_error_position(&e)))?;
        let serde_json::Value::Object(top) = doc else {
            return Err("not a JSON object (expected {\"auths\": {...}})".into());
        };
        let Some(auths) = top.get("auths") else {
            return Ok(Auths::default());
        };
        let serde_json::Value::Object(auths) = auths else {
            return Err("\"auths\" is not an object".into());
        };
        let mut entries = Vec::new();
        for (key, value) in auths {
            let serde_json::Value::Object(fields) = value else {
                return Err(format!("entry {key:?} is not an object"));
            };
            let (host, path) = normalize_key(key)
                .ok_or_else(|| format!("entry {key:?} does not name a registry"))?;
            let string = |name: &str| -> std::result::Result<Option<&str>, String> {
                match fields.get(name) {
                    None | Some(serde_json::Value::Null) => Ok(None),
                    Some(serde_json::Value::String(s)) if s.is_empty() => Ok(None),
                    Some(serde_json::Value::String(s)) => Ok(Some(s)),
                    Some(_) => Err(format!("entry {key:?}: {name:?} is not a string")),
                }
            };
            let credentials = if let Some(auth) = string("auth")? {
                Some(decode_auth(auth).map_err(|m| format!("entry {key:?}: \"auth\" {m}"))?)
            } else {
                match (string("username")?, string("password")?) {
                    (Some(u), Some(p)) => Some(Credentials {
                        username: u.to_string(),
                        password: p.to_string(),
                    }),
                    (Some(_), None) => {
                        return Err(format!(
                            "entry {key:?} has a \"username\" but no \"password\""
                        ))
                    }
                    (None, Some(_)) => {
                        return Err(format!(
                            "entry {key:?} has a \"password\" but no \"username\""
                        ))
                    }
                    (None, None) => None,
                }
            };
            entries.push(Entry {
                key: key.clone(),
                host,
                path,
                credentials,
            });
        }
        Ok(Auths { entries })
    }

    /// The entry for `repository` on `registry` (as in the reference:
    /// `HOST[:PORT]`, `docker.io` for Docker Hub): the one with the longest
    /// path that is `repository` or above it, else one for the whole
    /// registry; among equals, an exact key over a decorated one
    /// (`https://.../v1/`), then the first found.
    pub(crate) fn lookup(&self, registry: &str, repository: &str) -> Lookup {
        let host = canonical_host(registry);
        let rank = |e: &Entry| {
            let exact = e.key.eq_ignore_ascii_case(registry)
                || (e.path.is_empty() && e.key.eq_ignore_ascii_case(&host));
            (e.path.len(), exact)
        };
        let mut best: Option<&Entry> = None;
        for e in &self.entries {
            let applies = e.host == host
                && (e.path.is_empty()
                    || repository == e.path
                    || repository
                        .strip_prefix(e.path.as_str())
                        .is_some_and(|rest| rest.starts_with('/')));
            if applies && best.is_none_or(|b| rank(e) > rank(b)) {
                best = Some(e);
            }
        }
        let Some(e) = best else {
            return Lookup::None;
        };
        match &e.credentials {
            Some(c) => Lookup::Found {
                key: e.key.clone(),
                credentials: c.clone(),
            },
            None => Lookup::Unusable { key: e.key.clone() },
        }
    }
}

/// serde_json's position of an error, without its text (which can quote a
/// value).
fn json_error_position(e: &serde_json::Error) -> String {
    format!("line {} column {}", e.line(), e.column())
}

/// `USER:PASSWORD` from base64 (padding optional, as some tools drop it).
fn decode_auth(auth: &str) -> std::result::Result<Credentials, String> {
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    let bytes = engine
        .decode(auth.trim())
        .map_err(|_| "is not valid base64".to_string())?;
    let text = String::from_utf8(bytes).map_err(|_| "is not UTF-8 once decoded".to_string())?;
    let (username, password) = text
        .split_once(':')
        .ok_or_else(|| "is not the base64 of USER:PASSWORD (no colon)".to_string())?;
    if username.is_empty() {
        return Err("has an empty user name".into());
    }
    Ok(Credentials {
        username: username.to_string(),
        password: password.to_string(),
    })
}

/// A key's host (canonical) and repository path: `https://` or `http://`
/// dropped, then everything up to the first `/` is the host; a remaining
/// `v1`/`v2` (docker's API suffixes) or nothing is the whole registry.
/// `None` for an empty host.
fn normalize_key(key: &str) -> Option<(String, String)> {
    let k = key.trim();
    let lower = k.to_ascii_lowercase();
    let k = if lower.starts_with("https://") {
        &k[8..]
    } else if lower.starts_with("http://") {
        &k[7..]
    } else {
        k
    };
    let (host, path) = k.split_once('/').unwrap_or((k, ""));
    if host.is_empty() {
        return None;
    }
    let path = path.trim_matches('/');
    let path = if matches!(path, "v1" | "v2") {
        ""
    } else {
        path
    };
    Some((canonical_host(host), path.to_string()))
}

/// A registry host lowercased, with Docker Hub's names made `docker.io`.
fn canonical_host(host: &str) -> String {
    let h = host.to_ascii_lowercase();
    if DOCKER_HUB.contains(&h.as_str()) {
        DOCKER_HUB[0].to_string()
    } else {
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn creds(u: &str, p: &str) -> Credentials {
        Credentials {
            username: u.into(),
            password: p.into(),
        }
    }

    fn found(a: &Auths, registry: &str, repo: &str) -> Option<(String, Credentials)> {
        match a.lookup(registry, repo) {
            Lookup::Found { key, credentials } => Some((key, credentials)),
            _ => None,
        }
    }

    #[test]
    fn auth_and_username_password_are_both_read() {
        let text = format!(
            r#"{{"auths": {{
                "registry.example:5000": {{"auth": "{}"}},
                "other.example": {{"username": "bob", "password": "p:w"}},
                "both.example": {{"auth": "{}", "username": "x", "password": "y"}}
            }}}}"#,
            b64("alice:s3cr:et"),
            b64("carol:pw")
        );
        let a = Auths::parse(&text).unwrap();
        assert_eq!(
            found(&a, "registry.example:5000", "app").unwrap().1,
            creds("alice", "s3cr:et"),
            "the password is everything after the first colon"
        );
        assert_eq!(
            found(&a, "other.example", "app").unwrap().1,
            creds("bob", "p:w")
        );
        assert_eq!(
            found(&a, "both.example", "app").unwrap().1,
            creds("carol", "pw"),
            "auth wins over username/password, as in docker"
        );
        assert_eq!(
            a.lookup("registry.example", "app"),
            Lookup::None,
            "port matters"
        );
        assert_eq!(a.lookup("nowhere.example", "app"), Lookup::None);
    }

    #[test]
    fn unpadded_base64_is_accepted() {
        // "ab:cd" is 5 bytes: standard base64 pads it with one '='.
        let padded = b64("ab:cd");
        assert!(padded.ends_with('='));
        let text = format!(
            r#"{{"auths": {{"r.example": {{"auth": "{}"}}}}}}"#,
            padded.trim_end_matches('=')
        );
        let a = Auths::parse(&text).unwrap();
        assert_eq!(found(&a, "r.example", "x").unwrap().1, creds("ab", "cd"));
    }

    #[test]
    fn keys_match_as_in_docker() {
        let text = format!(
            r#"{{"auths": {{
                "https://REG.example:5000/v2/": {{"auth": "{}"}},
                "http://plain.example/v1/": {{"auth": "{}"}},
                "https://index.docker.io/v1/": {{"auth": "{}"}}
            }}}}"#,
            b64("a:1"),
            b64("b:2"),
            b64("hub:3")
        );
        let a = Auths::parse(&text).unwrap();
        let (key, c) = found(&a, "reg.example:5000", "app").unwrap();
        assert_eq!(key, "https://REG.example:5000/v2/");
        assert_eq!(c, creds("a", "1"));
        assert_eq!(
            found(&a, "plain.example", "x/y").unwrap().1,
            creds("b", "2")
        );
        for hub in ["docker.io", "index.docker.io", "registry-1.docker.io"] {
            assert_eq!(
                found(&a, hub, "library/busybox").unwrap().1,
                creds("hub", "3"),
                "{hub}"
            );
        }
        // And a podman-style key for Docker Hub matches docker's name for it.
        let text = format!(
            r#"{{"auths": {{"docker.io": {{"auth": "{}"}}}}}}"#,
            b64("p:4")
        );
        let a = Auths::parse(&text).unwrap();
        assert_eq!(
            found(&a, "index.docker.io", "library/busybox").unwrap().1,
            creds("p", "4")
        );
    }

    #[test]
    fn exact_key_wins_over_a_decorated_one() {
        let text = format!(
            r#"{{"auths": {{
                "https://r.example/v1/": {{"auth": "{}"}},
                "r.example": {{"auth": "{}"}}
            }}}}"#,
            b64("old:1"),
            b64("new:2")
        );
        let a = Auths::parse(&text).unwrap();
        assert_eq!(found(&a, "r.example", "x").unwrap().1, creds("new", "2"));
    }

    #[test]
    fn repository_paths_narrow_an_entry() {
        let text = format!(
            r#"{{"auths": {{
                "r.example": {{"auth": "{}"}},
                "r.example/team": {{"auth": "{}"}},
                "r.example/team/app": {{"auth": "{}"}}
            }}}}"#,
            b64("all:1"),
            b64("team:2"),
            b64("app:3")
        );
        let a = Auths::parse(&text).unwrap();
        assert_eq!(
            found(&a, "r.example", "other").unwrap().1,
            creds("all", "1")
        );
        assert_eq!(
            found(&a, "r.example", "team/db").unwrap().1,
            creds("team", "2")
        );
        assert_eq!(
            found(&a, "r.example", "team/app").unwrap().1,
            creds("app", "3")
        );
        assert_eq!(
            found(&a, "r.example", "teamwork/x").unwrap().1,
            creds("all", "1"),
            "a path matches whole components only"
        );
    }

    #[test]
    fn entries_without_credentials_are_unusable_not_errors() {
        let text = r#"{"credsStore": "desktop", "auths": {
            "https://index.docker.io/v1/": {},
            "r.example": {"identitytoken": "abc"}
        }}"#;
        let a = Auths::parse(text).unwrap();
        assert_eq!(
            a.lookup("docker.io", "library/busybox"),
            Lookup::Unusable {
                key: "https://index.docker.io/v1/".into()
            }
        );
        assert_eq!(
            a.lookup("r.example", "x"),
            Lookup::Unusable {
                key: "r.example".into()
            }
        );
        // No "auths" at all: no credentials, not an error.
        let a = Auths::parse(r#"{"credHelpers": {}}"#).unwrap();
        assert_eq!(a.lookup("r.example", "x"), Lookup::None);
    }

    #[test]
    fn malformed_files_are_refused_without_quoting_secrets() {
        let secret = "hunter2-SECRET";
        let cases = [
            (
                format!("{{\"auths\": {{\"r\": {{\"auth\": \"{secret}\"\n"),
                "not valid JSON",
            ),
            ("[1]".to_string(), "not a JSON object"),
            (r#"{"auths": []}"#.to_string(), "\"auths\" is not an object"),
            (
                format!(r#"{{"auths": {{"r": "{secret}"}}}}"#),
                "entry \"r\" is not an object",
            ),
            (
                format!(r#"{{"auths": {{"r": {{"auth": "{secret}!"}}}}}}"#),
                "not valid base64",
            ),
            (
                format!(r#"{{"auths": {{"r": {{"auth": "{}"}}}}}}"#, b64(secret)),
                "no colon",
            ),
            (
                format!(
                    r#"{{"auths": {{"r": {{"auth": "{}"}}}}}}"#,
                    b64(&format!(":{secret}"))
                ),
                "empty user name",
            ),
            (
                r#"{"auths": {"r": {"username": "u", "password": 7}}}"#.to_string(),
                "\"password\" is not a string",
            ),
            (
                format!(r#"{{"auths": {{"r": {{"username": "{secret}"}}}}}}"#),
                "no \"password\"",
            ),
            (
                format!(r#"{{"auths": {{"r": {{"password": "{secret}"}}}}}}"#),
                "no \"username\"",
            ),
            (
                format!(
                    r#"{{"auths": {{"https:///v2/": {{"auth": "{}"}}}}}}"#,
                    b64("u:p")
                ),
                "does not name a registry",
            ),
        ];
        for (text, want) in cases {
            let err = Auths::parse(&text).unwrap_err();
            assert!(err.contains(want), "{text}: {err}");
            assert!(
                !err.contains(secret) && !err.contains(&b64(secret)),
                "{err}"
            );
        }
    }

    #[test]
    fn credentials_debug_is_redacted() {
        let text = format!(
            r#"{{"auths": {{"r.example": {{"auth": "{}"}}}}}}"#,
            b64("alice:hunter2")
        );
        let a = Auths::parse(&text).unwrap();
        for shown in [
            format!("{a:?}"),
            format!("{:?}", a.lookup("r.example", "x")),
        ] {
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(!shown.contains("alice"), "{shown}");
            assert!(shown.contains("redacted"), "{shown}");
        }
    }

    fn write(dir: &Path, name: &str, text: &str, mode: u32) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    #[test]
    fn missing_default_file_means_anonymous_missing_given_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("auth.json");
        let optional = AuthFile {
            path: missing.clone(),
            required: false,
        };
        assert!(optional.load().unwrap().is_none());
        optional.check().unwrap();
        let err = AuthFile::given(&missing).check().unwrap_err().to_string();
        assert_eq!(
            err,
            format!("auth file {}: it does not exist", missing.display())
        );
        let err = AuthFile::at_start(Some(&missing)).unwrap_err().to_string();
        assert!(err.contains("does not exist"), "{err}");
    }

    #[test]
    fn world_readable_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(r#"{{"auths": {{"r": {{"auth": "{}"}}}}}}"#, b64("u:p"));
        for mode in [0o600, 0o640, 0o400, 0o660] {
            let p = write(dir.path(), &format!("ok{mode:o}.json"), &text, mode);
            let a = AuthFile::given(&p).load().unwrap().unwrap();
            assert!(
                matches!(a.lookup("r", "x"), Lookup::Found { .. }),
                "{mode:o}"
            );
        }
        for mode in [0o644, 0o604, 0o666] {
            let p = write(dir.path(), &format!("bad{mode:o}.json"), &text, mode);
            for file in [
                AuthFile::given(&p),
                AuthFile {
                    path: p.clone(),
                    required: false,
                },
            ] {
                let err = file.check().unwrap_err().to_string();
                assert!(err.contains("readable by everyone"), "{err}");
                assert!(err.contains(&format!("mode {mode:04o}")), "{err}");
                assert!(err.contains(&p.display().to_string()), "{err}");
            }
        }
    }

    #[test]
    fn at_start_makes_a_given_path_absolute_and_checks_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "auth.json", r#"{"auths": {}}"#, 0o600);
        let file = AuthFile::at_start(Some(&p)).unwrap();
        assert_eq!(file, AuthFile::given(&p));
        let bad = write(dir.path(), "bad.json", "{", 0o600);
        let err = AuthFile::at_start(Some(&bad)).unwrap_err().to_string();
        assert!(err.contains("not valid JSON"), "{err}");
        let cwd = std::env::current_dir().unwrap();
        let rel = Path::new("surely-not-here/auth.json");
        let err = AuthFile::at_start(Some(rel)).unwrap_err().to_string();
        assert!(
            err.contains(&cwd.join(rel).display().to_string()),
            "the error names the absolute path: {err}"
        );
    }
}
