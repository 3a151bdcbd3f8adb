//! `env_file`: files of `KEY=VALUE` lines, read at each start.
//!
//! The grammar is compose's, [`jarvis_unit::envfile`] (comments, `export `,
//! single and double quotes, multi-line values, inline ` #` comments),
//! read without interpolation: values are taken as written, `${VAR}`
//! included, and a line with a name alone sets nothing (compose would take
//! the value from its own environment; jarvisd's is no unit's business).
//! `jarvisctl import compose` reports every env file whose values compose
//! would expand differently.
//!
//! Files are read in order and a later one overrides an earlier one; the
//! unit's `[env]` overrides them all. Errors name the file, the line and
//! the column, never a value: env files hold passwords.
//!
//! A file whose name ends in `.age` is age-encrypted: a start decrypts it
//! in memory ([`merged_decrypting`]); [`merged`], what `jarvisctl config`
//! shows, leaves its variables out.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use jarvis_unit::envfile;

/// The largest env file read: 1 MiB.
pub const MAX_SIZE: u64 = 1 << 20;

/// Why an env file could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvFileError {
    Read {
        path: String,
        err: String,
    },
    Syntax {
        path: String,
        line: usize,
        col: usize,
        what: String,
    },
}

impl std::fmt::Display for EnvFileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EnvFileError::Read { path, err } => write!(f, "env_file {path}: {err}"),
            EnvFileError::Syntax {
                path,
                line,
                col,
                what,
            } => write!(f, "env_file {path}:{line}:{col}: {what}"),
        }
    }
}

impl std::error::Error for EnvFileError {}

/// The variables of `files`, in order (a later file wins), with `env` over
/// them, less what encrypted (`.age`) files hold: what can be shown of
/// the environment a unit starts with.
pub fn merged(
    files: &[impl AsRef<Path>],
    env: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, EnvFileError> {
    merge(files, env, None)
}

/// The variables of `files`, in order (a later file wins), with `env` over
/// them: the environment a unit starts with. A `.age` file is decrypted
/// with the age identity in the file `identity`.
pub fn merged_decrypting(
    files: &[impl AsRef<Path>],
    env: &BTreeMap<String, String>,
    identity: &Path,
) -> Result<BTreeMap<String, String>, EnvFileError> {
    merge(files, env, Some(identity))
}

fn merge(
    files: &[impl AsRef<Path>],
    env: &BTreeMap<String, String>,
    identity: Option<&Path>,
) -> Result<BTreeMap<String, String>, EnvFileError> {
    let mut out = BTreeMap::new();
    for f in files {
        let f = f.as_ref();
        let vars = match (jarvis_unit::Secret::is_age(f), identity) {
            (false, _) => read(f)?,
            (true, Some(identity)) => read_encrypted(f, identity)?,
            (true, None) => continue,
        };
        for (k, v) in vars {
            out.insert(k, v);
        }
    }
    for (k, v) in env {
        out.insert(k.clone(), v.clone());
    }
    Ok(out)
}

/// Reads one env file: its variables in file order (a key set twice
/// appears twice; the later wins when they are applied in order).
pub fn read(path: &Path) -> Result<Vec<(String, String)>, EnvFileError> {
    let shown = path.display().to_string();
    let fail = |err: String| EnvFileError::Read {
        path: shown.clone(),
        err,
    };
    let file = std::fs::File::open(path).map_err(|e| {
        fail(match e.kind() {
            std::io::ErrorKind::NotFound => "no such file".to_string(),
            _ => e.to_string(),
        })
    })?;
    let meta = file.metadata().map_err(|e| fail(e.to_string()))?;
    if !meta.is_file() {
        return Err(fail("not a regular file".into()));
    }
    if meta.len() > MAX_SIZE {
        return Err(fail(format!("larger than {MAX_SIZE} bytes")));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_SIZE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| fail(e.to_string()))?;
    if bytes.len() as u64 > MAX_SIZE {
        return Err(fail(format!("larger than {MAX_SIZE} bytes")));
    }
    let text = String::from_utf8(bytes).map_err(|_| fail("not UTF-8 text".into()))?;
    parse(&text).map_err(|(line, col, what)| EnvFileError::Syntax {
        path: shown,
        line,
        col,
        what,
    })
}

/// Reads one age-encrypted env file, decrypting it in memory with the
/// identity in the file `identity`.
pub fn read_encrypted(path: &Path, identity: &Path) -> Result<Vec<(String, String)>, EnvFileError> {
    let shown = path.display().to_string();
    let plain = crate::inputs::decrypt_file(path, identity).map_err(|err| EnvFileError::Read {
        path: shown.clone(),
        err,
    })?;
    if plain.len() as u64 > MAX_SIZE {
        return Err(EnvFileError::Read {
            path: shown,
            err: format!("decrypted, larger than {MAX_SIZE} bytes"),
        });
    }
    let text = std::str::from_utf8(&plain).map_err(|_| EnvFileError::Read {
        path: shown.clone(),
        err: "decrypted, not UTF-8 text".into(),
    })?;
    parse(text).map_err(|(line, col, what)| EnvFileError::Syntax {
        path: shown,
        line,
        col,
        what,
    })
}

/// Parses env file text: its variables in file order. An error is the line
/// and column (from 1) and what is wrong.
pub fn parse(text: &str) -> Result<Vec<(String, String)>, (usize, usize, String)> {
    let entries = envfile::parse(text).map_err(|e| (e.line, e.col, e.kind.to_string()))?;
    let mut out = Vec::with_capacity(entries.len());
    for e in entries {
        // The grammar takes `=VALUE`; no process environment holds it.
        if e.key.is_empty() {
            return Err((e.line, 1, "the name before '=' is empty".into()));
        }
        out.push((e.key, e.value));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    //! The grammar's cases are jarvis-unit's (`envfile`); here, what a
    //! unit's env file adds to it.
    use super::*;

    #[test]
    fn values_are_taken_as_written() {
        let text = "A=1\nB=$A\nC=\"${A:-x} \\$A\"\nHOME\nD='$A'\n";
        assert_eq!(
            parse(text).unwrap(),
            [("A", "1"), ("B", "$A"), ("C", "${A:-x} $A"), ("D", "$A")]
                .map(|(k, v)| (k.to_string(), v.to_string()))
        );
    }

    #[test]
    fn errors_name_the_line_and_column() {
        assert_eq!(
            parse("A=1\nB=\"open\n\n"),
            Err((2, 3, "unterminated quoted value".to_string()))
        );
        assert_eq!(
            parse("A=1\n=2\n"),
            Err((2, 1, "the name before '=' is empty".to_string()))
        );
        assert_eq!(
            parse("A=1\n#x\nB C\n"),
            Err((3, 2, "key cannot contain a space".to_string()))
        );
    }

    #[test]
    fn later_files_win_and_env_wins_over_all() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.env");
        let b = dir.path().join("b.env");
        std::fs::write(&a, "X=from-a\nY=from-a\nZ=from-a\n").unwrap();
        std::fs::write(&b, "Y=from-b\nZ=from-b\n").unwrap();
        let env = BTreeMap::from([("Z".to_string(), "from-env".to_string())]);
        let m = merged(&[&a, &b], &env).unwrap();
        assert_eq!(m["X"], "from-a");
        assert_eq!(m["Y"], "from-b");
        assert_eq!(m["Z"], "from-env");
    }

    #[test]
    fn a_missing_or_oversized_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let gone = dir.path().join("gone.env");
        let e = merged(&[&gone], &BTreeMap::new()).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("env_file {}: no such file", gone.display())
        );
        let big = dir.path().join("big.env");
        std::fs::write(&big, vec![b'#'; MAX_SIZE as usize + 1]).unwrap();
        let e = read(&big).unwrap_err().to_string();
        assert!(e.contains("big.env") && e.contains("larger than"), "{e}");
        let e = read(dir.path()).unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
    }

    #[test]
    fn a_syntax_error_never_shows_a_value() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("s.env");
        std::fs::write(&f, "PASSWORD=\"hunter2 oops\n").unwrap();
        let e = read(&f).unwrap_err().to_string();
        assert!(e.contains("s.env:1:10: unterminated"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
    }
}
