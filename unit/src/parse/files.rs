//! Host files a unit reads at each start: `env_file` and `[[secret]]`.
//! Native and container units take both.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use toml::de::DeValue;

use super::{a_type, string, Cx, Section, Value};
use crate::limits::MAX_FILE_NAME;
use crate::schema::{parse_mode, Secret};

const SECRET_EXAMPLE: &str =
    "[[secret]] with source = \"/srv/secrets/db_password\" and target = \"db_password\"";

/// `path` as the unit keeps it: an absolute path to a file, or, with a
/// `base` (a repository's root), a relative one joined to it. Relative
/// paths may use `..` as long as they stay below the base. `unit` names
/// the unit in the example a relative path gets without a base.
fn host_file(path: &str, unit: Option<&str>, base: Option<&Path>) -> Result<PathBuf, String> {
    if path.is_empty() {
        return Err("the path is empty".into());
    }
    if path.chars().any(char::is_control) {
        return Err(format!(
            "{path:?} has a control character, which a path here must not have"
        ));
    }
    if path.ends_with('/') {
        return Err(format!(
            "{path:?} ends with '/', so it names a directory; give the file"
        ));
    }
    if path.starts_with('/') {
        if path.split('/').any(|c| c == "..") {
            return Err(format!("{path:?} must not contain \"..\""));
        }
        return Ok(PathBuf::from(path));
    }
    let Some(base) = base else {
        let rest = path.trim_start_matches("./");
        return Err(format!(
            "{path:?} is relative; paths in a unit file are absolute (compose resolves a \
             relative path against the compose file's directory, a unit file has none), e.g. \
             \"/srv/{}/{rest}\"",
            unit.unwrap_or("app")
        ));
    };
    // Lexically: `..` takes away what the path added, never the base.
    let mut kept: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if kept.pop().is_none() {
                    return Err(format!(
                        "{path:?} leaves the repository through \"..\"; a relative path \
                         names a file in the repository (relative to its root), or give an \
                         absolute path"
                    ));
                }
            }
            c => kept.push(c),
        }
    }
    if kept.is_empty() {
        return Err(format!(
            "{path:?} names the repository's root, a directory; give the file"
        ));
    }
    Ok(kept.iter().fold(base.to_path_buf(), |p, c| p.join(c)))
}

/// `env_file`: a path or a list of paths, absolute, each once.
pub(super) fn env_file(cx: &mut Cx<'_>, v: &Value<'_>, unit: Option<&str>) -> Vec<PathBuf> {
    const LABEL: &str = "env_file";
    const EXAMPLE: &str = "[\"/srv/app/.env\"]";
    let items: Vec<&Value<'_>> = match v.get_ref() {
        DeValue::String(_) => vec![v],
        DeValue::Array(a) => a.iter().collect(),
        other => {
            cx.error(
                v.span(),
                format!(
                    "{LABEL}: expected a path or a list of paths, e.g. {EXAMPLE}, found {}",
                    a_type(other)
                ),
            );
            return Vec::new();
        }
    };
    let mut out: Vec<PathBuf> = Vec::new();
    // Path (as resolved) -> the line that first lists it.
    let mut seen: BTreeMap<PathBuf, usize> = BTreeMap::new();
    for item in items {
        let Some(path) = string(cx, LABEL, item) else {
            continue;
        };
        let resolved = match host_file(&path, unit, cx.base) {
            Ok(p) => p,
            Err(e) => {
                cx.error(item.span(), format!("{LABEL}: {e}"));
                continue;
            }
        };
        let (line, _) = cx.line_col(item.span().start);
        if let Some(first) = seen.get(&resolved) {
            cx.error(
                item.span(),
                format!("{LABEL}: {path:?} is already listed on line {first}; list each file once"),
            );
            continue;
        }
        seen.insert(resolved.clone(), line);
        out.push(resolved);
    }
    out
}

/// `[[secret]]`: an array of tables. Each target once per unit.
pub(super) fn secrets(cx: &mut Cx<'_>, v: &Value<'_>, unit: Option<&str>) -> Vec<Secret> {
    let mut out = Vec::new();
    // Target -> the line of the secret that first has it.
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for item in super::array_of_tables(cx, v, "secret", SECRET_EXAMPLE) {
        let Some((secret, target_span, defaulted)) = secret(cx, item, unit) else {
            continue;
        };
        let (line, _) = cx.line_col(item.span().start);
        if let Some(first) = seen.get(&secret.target) {
            let what = if defaulted {
                format!("secret.source: its file name, {:?},", secret.target)
            } else {
                format!("secret.target: {:?}", secret.target)
            };
            cx.error(
                target_span,
                format!(
                    "{what} is already the target of the secret on line {first}; each secret \
                     needs its own file name, so give this one another target = \"NAME\""
                ),
            );
            continue;
        }
        seen.insert(secret.target.clone(), line);
        out.push(secret);
    }
    out
}

/// One `[[secret]]` table, with the span its target comes from (`target`,
/// or the `source` it defaults to) and whether it was defaulted.
fn secret(
    cx: &mut Cx<'_>,
    v: &Value<'_>,
    unit: Option<&str>,
) -> Option<(Secret, std::ops::Range<usize>, bool)> {
    let s = Section::open(cx, "secret", v, Secret::KEYS)?;
    let source = s.with(cx, "source", |cx, l, v| {
        let path = string(cx, l, v)?;
        match host_file(&path, unit, cx.base) {
            Ok(p) => Some(p),
            Err(e) => {
                cx.error(v.span(), format!("{l}: {e}"));
                None
            }
        }
    });
    let target = s.with(cx, "target", |cx, l, v| {
        let t = string(cx, l, v)?;
        match check_target(&t) {
            Ok(()) => Some(t),
            Err(e) => {
                cx.error(v.span(), format!("{l}: {e}"));
                None
            }
        }
    });
    let mode = s.with(cx, "mode", mode);
    let Some(source_value) = s.get("source") else {
        cx.missing(
            s.span.clone(),
            format!(
                "[[secret]] needs source = \"/path/to/file\", the host file; e.g. {SECRET_EXAMPLE}"
            ),
        );
        return None;
    };
    let source = source?;
    let (target, span, defaulted) = match (s.get("target"), target) {
        (Some(tv), Some(t)) => (t, tv.span(), false),
        (Some(_), None) => return None,
        (None, _) => {
            let name = default_target(&source);
            if let Err(e) = name.as_deref().map_or(Err(String::new()), check_target) {
                cx.error(
                    source_value.span(),
                    format!(
                        "secret.source: its file name cannot be the target{}; give target = \
                         \"NAME\"",
                        if e.is_empty() { e } else { format!(" ({e})") }
                    ),
                );
                return None;
            }
            (name?, source_value.span(), true)
        }
    };
    Some((
        Secret {
            source,
            target,
            mode: mode.unwrap_or(Secret::DEFAULT_MODE),
        },
        span,
        defaulted,
    ))
}

/// The target a secret gets when it has none: its source's file name,
/// without the `.age` of an encrypted one (`db_password.age` is
/// decrypted to `db_password`).
fn default_target(source: &Path) -> Option<String> {
    let name = source.file_name()?.to_string_lossy().into_owned();
    Some(match name.strip_suffix(Secret::AGE_SUFFIX) {
        Some(stem) if !stem.is_empty() => stem.to_string(),
        _ => name,
    })
}

/// Why `t` is not a secret's target, if it is not: a file name, not `.` or
/// `..`, at most [`MAX_FILE_NAME`] bytes.
fn check_target(t: &str) -> Result<(), String> {
    if t.is_empty() {
        return Err("the target is empty; give a file name, e.g. \"db_password\"".into());
    }
    if t.contains('/') {
        return Err(format!(
            "{t:?} has '/'; a target is a file name, which the service reads at {}/NAME (or \
             $CREDENTIALS_DIRECTORY/NAME natively); to put a file elsewhere in a container, \
             bind it read-only with volumes = [\"SOURCE:/path/in/container:ro\"]",
            Secret::CONTAINER_DIR
        ));
    }
    if t == "." || t == ".." {
        return Err(format!("{t:?} is not a file name"));
    }
    if t.chars().any(char::is_control) {
        return Err(format!("{t:?} has a control character"));
    }
    if t.len() > MAX_FILE_NAME {
        return Err(format!(
            "the target is {} bytes long; a file name has at most {MAX_FILE_NAME}",
            t.len()
        ));
    }
    Ok(())
}

/// A secret's `mode`: an octal TOML integer (`0o440`) or a string of octal
/// digits (`"0440"`), at most `0o777`. A decimal integer is refused: 440
/// and 0o440 are different modes.
fn mode(cx: &mut Cx<'_>, label: &str, v: &Value<'_>) -> Option<u32> {
    const HINT: &str = "write the mode in octal, e.g. 0o440 or \"0440\"";
    let parsed = match v.get_ref() {
        DeValue::Integer(i) if i.radix() == 8 => parse_mode(i.as_str(), 0o777),
        DeValue::Integer(_) => Err(format!(
            "{} is a decimal number; {HINT}",
            cx.source(v.span())
        )),
        DeValue::String(s) => parse_mode(s, 0o777),
        other => Err(format!(
            "expected an octal mode, found {}; {HINT}",
            a_type(other)
        )),
    };
    match parsed {
        Ok(m) => Some(m),
        Err(e) => {
            cx.error(v.span(), format!("{label}: {e}"));
            None
        }
    }
}
