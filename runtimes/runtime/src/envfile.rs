//! `env_file`: files of `KEY=VALUE` lines, read at each start.
//!
//! The syntax is the part of compose's `.env` format that env files use:
//!
//! - blank lines and lines whose first non-blank character is `#` are
//!   skipped;
//! - a line may start with `export `;
//! - `KEY=VALUE`, blanks around the key and an unquoted value trimmed; an
//!   unquoted value ends at ` #` (a comment);
//! - `'single quoted'` values are literal; `"double quoted"` values take
//!   the escapes `\n`, `\r`, `\t`, `\\`, `\"` and `\$`; either may span
//!   lines (a PEM key, say); after the closing quote only blanks and a
//!   comment may follow;
//! - a line with a key and no `=` sets nothing (compose would take the
//!   value from its own environment; jarvisd's is no unit's business);
//! - no `${VAR}` expansion: values are taken as written.
//!
//! Files are read in order and a later one overrides an earlier one; the
//! unit's `[env]` overrides them all. Errors name the file and the line,
//! never a value: env files hold passwords.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

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
        what: &'static str,
    },
}

impl std::fmt::Display for EnvFileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EnvFileError::Read { path, err } => write!(f, "env_file {path}: {err}"),
            EnvFileError::Syntax { path, line, what } => {
                write!(f, "env_file {path}:{line}: {what}")
            }
        }
    }
}

impl std::error::Error for EnvFileError {}

/// The variables of `files`, in order (a later file wins), with `env` over
/// them: the environment a unit starts with.
pub fn merged(
    files: &[impl AsRef<Path>],
    env: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, EnvFileError> {
    let mut out = BTreeMap::new();
    for f in files {
        for (k, v) in read(f.as_ref())? {
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
    parse(&text).map_err(|(line, what)| EnvFileError::Syntax {
        path: shown,
        line,
        what,
    })
}

/// Parses env file text; an error is the line (from 1) and what is wrong.
pub fn parse(text: &str) -> Result<Vec<(String, String)>, (usize, &'static str)> {
    let mut out = Vec::new();
    let mut p = Parser {
        chars: text.chars().collect(),
        pos: 0,
        line: 1,
    };
    loop {
        p.skip_blanks();
        match p.peek() {
            None => break,
            Some('\n') | Some('\r') => {
                p.bump();
                continue;
            }
            Some('#') => {
                p.skip_line();
                continue;
            }
            _ => {}
        }
        let start_line = p.line;
        let mut key = p.take_while(|c| c != '=' && c != '\n' && c != '#');
        if let Some(rest) = key.strip_prefix("export") {
            if rest.starts_with([' ', '\t']) {
                key = rest.to_string();
            }
        }
        let key = key.trim().to_string();
        match p.peek() {
            Some('=') => p.bump(),
            // A bare key sets nothing.
            _ if valid_key(&key) => {
                p.skip_line();
                continue;
            }
            _ => return Err((start_line, "expected KEY=VALUE")),
        }
        if !valid_key(&key) {
            return Err((start_line, "the name before '=' is not a variable name"));
        }
        let value = p.value()?;
        out.push((key, value));
    }
    Ok(out)
}

/// A name a process environment can hold: not empty, no `=`, no blanks,
/// no control characters.
fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && !k
            .chars()
            .any(|c| c == '=' || c.is_whitespace() || c.is_control())
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
    line: usize,
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn bump(&mut self) {
        if self.peek() == Some('\n') {
            self.line += 1;
        }
        self.pos += 1;
    }

    fn skip_blanks(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t')) {
            self.bump();
        }
    }

    fn skip_line(&mut self) {
        while let Some(c) = self.peek() {
            self.bump();
            if c == '\n' {
                break;
            }
        }
    }

    fn take_while(&mut self, f: impl Fn(char) -> bool) -> String {
        let mut s = String::new();
        while let Some(c) = self.peek().filter(|&c| f(c)) {
            s.push(c);
            self.bump();
        }
        s
    }

    /// The value after `=`, and the rest of its line.
    fn value(&mut self) -> Result<String, (usize, &'static str)> {
        self.skip_blanks();
        let start = self.line;
        let value = match self.peek() {
            Some(q @ ('\'' | '"')) => {
                self.bump();
                let mut v = String::new();
                loop {
                    match self.peek() {
                        None => return Err((start, "a quoted value is not closed")),
                        Some(c) if c == q => {
                            self.bump();
                            break;
                        }
                        Some('\\') if q == '"' => {
                            self.bump();
                            let e = match self.peek() {
                                Some('n') => '\n',
                                Some('r') => '\r',
                                Some('t') => '\t',
                                Some(c @ ('\\' | '"' | '$')) => c,
                                // Other backslashes stay as written.
                                _ => {
                                    v.push('\\');
                                    continue;
                                }
                            };
                            v.push(e);
                            self.bump();
                        }
                        Some(c) => {
                            v.push(c);
                            self.bump();
                        }
                    }
                }
                self.skip_blanks();
                match self.peek() {
                    None | Some('\n') | Some('#') => {}
                    Some('\r') if self.chars.get(self.pos + 1).is_none_or(|&c| c == '\n') => {}
                    _ => return Err((self.line, "unexpected text after a quoted value")),
                }
                v
            }
            _ => {
                let mut v = String::new();
                while let Some(c) = self.peek() {
                    if c == '\n' || (c == '#' && v.ends_with([' ', '\t'])) {
                        break;
                    }
                    v.push(c);
                    self.bump();
                }
                v.trim().to_string()
            }
        };
        self.skip_line();
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(text: &str) -> Vec<(String, String)> {
        parse(text).unwrap()
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn compose_syntax() {
        let text = "# a comment\n\
                    \n\
                    PLAIN=value\n\
                    export EXPORTED=yes\n\
                    \t SPACED = some value  \n\
                    EMPTY=\n\
                    HASH=a#b\n\
                    COMMENTED=x # not this\n\
                    SINGLE='lit $HOME \\n # kept'\n\
                    DOUBLE=\"a\\nb \\\"q\\\" \\$x\" # comment\n\
                    MULTI=\"line1\n\
                    line2\"\n\
                    BARE\n\
                    exportNOT=1\n\
                    CRLF=v\r\n\
                    URL=postgres://u:p@db:5432/x?a=b\n";
        assert_eq!(
            kv(text),
            pairs(&[
                ("PLAIN", "value"),
                ("EXPORTED", "yes"),
                ("SPACED", "some value"),
                ("EMPTY", ""),
                ("HASH", "a#b"),
                ("COMMENTED", "x"),
                ("SINGLE", "lit $HOME \\n # kept"),
                ("DOUBLE", "a\nb \"q\" $x"),
                ("MULTI", "line1\nline2"),
                ("exportNOT", "1"),
                ("CRLF", "v"),
                ("URL", "postgres://u:p@db:5432/x?a=b"),
            ])
        );
    }

    #[test]
    fn errors_name_the_line_and_no_value() {
        assert_eq!(
            parse("A=1\nB=\"open\n\n"),
            Err((2, "a quoted value is not closed"))
        );
        assert_eq!(
            parse("A='x' y\n"),
            Err((1, "unexpected text after a quoted value"))
        );
        assert_eq!(
            parse("A=1\n=2\n"),
            Err((2, "the name before '=' is not a variable name"))
        );
        assert_eq!(parse("A=1\n#x\nB C\n"), Err((3, "expected KEY=VALUE")));
        assert_eq!(
            parse("MY KEY=2\n"),
            Err((1, "the name before '=' is not a variable name"))
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
        assert!(e.contains("s.env:1"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
    }
}
