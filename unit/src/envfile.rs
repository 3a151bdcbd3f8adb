//! Env files: the `KEY=VALUE` grammar of compose v2 (compose-go's `dotenv`
//! package), read by compose's `.env` and by a unit's `env_file`.
//!
//! - blank lines and lines whose first non-blank character is `#` are
//!   skipped; a UTF-8 byte order mark at the start is dropped;
//! - a statement may start with `export ` (`exportFOO` is a name);
//! - `KEY=VALUE` or `KEY: VALUE`; blanks around the key and before the value
//!   are dropped; a name holds letters, digits, `_ . - [ ]` and no blank;
//! - an unquoted value runs to the end of its line; ` #` starts a comment
//!   (`a#b` is a value), trailing blanks (and a `\r`) are dropped;
//! - `'single quoted'` values are literal but for `\'`; `"double quoted"`
//!   values take the escapes `\a \b \f \n \r \t \v \\ \" \$` and `\0NNN`
//!   (octal; anything else keeps its backslash); both may span lines (a PEM
//!   key, say); after the closing quote only blanks and a `#` comment may
//!   follow on its line (compose-go would read more text there as the next
//!   statement);
//! - `KEY=` is the empty value; a line with a name alone (`KEY`) takes its
//!   value from the [`Interpolation`]'s lookup when there is one and it has
//!   the name, and sets nothing otherwise;
//! - unquoted and double-quoted values are interpolated only with an
//!   [`Interpolation`], whose `expand` is the template grammar (compose's,
//!   `${VAR:-default}` and all) and whose `lookup` is consulted before the
//!   values read above. Without one, values are taken as written.
//!
//! Errors carry the line and column (from 1, in characters) and never a
//! value: env files hold passwords.

use std::collections::BTreeMap;
use std::fmt;

use crate::diagnostic::LineIndex;

/// One `KEY=VALUE` read, with the line its key is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub value: String,
    /// The line of the key, from 1.
    pub line: usize,
}

/// What is wrong at a position of an env file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvFileErrorKind {
    /// A blank inside a name (`MY KEY=1`, or a line of two words).
    KeySpace,
    /// A character a name cannot hold.
    KeyChar(char),
    /// A quote that is never closed.
    Unterminated,
    /// Text after a closing quote on its line.
    AfterQuote,
    /// The interpolation hook refused a value (its message).
    Interpolation(String),
}

/// An env file that could not be read: where, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvFileError {
    pub line: usize,
    pub col: usize,
    pub kind: EnvFileErrorKind,
}

impl fmt::Display for EnvFileErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EnvFileErrorKind::KeySpace => f.write_str("key cannot contain a space"),
            EnvFileErrorKind::KeyChar(c) => write!(
                f,
                "unexpected character {c:?} in a variable name (names hold letters, digits and \
                 _ . - [ ])"
            ),
            EnvFileErrorKind::Unterminated => f.write_str("unterminated quoted value"),
            EnvFileErrorKind::AfterQuote => {
                f.write_str("unexpected text after a quoted value (only a # comment may follow it)")
            }
            EnvFileErrorKind::Interpolation(m) => f.write_str(m),
        }
    }
}

/// `LINE:COL: what is wrong`.
impl fmt::Display for EnvFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.col, self.kind)
    }
}

impl std::error::Error for EnvFileError {}

/// The lookup type of the hook: a variable's value, `None` when unset.
pub type Lookup<'a> = dyn Fn(&str) -> Option<String> + 'a;

/// The template grammar of the hook: `value` with its variables expanded
/// through the lookup given, or why it cannot be.
pub type Expand<'a> = dyn Fn(&str, &Lookup<'_>) -> Result<String, String> + 'a;

/// Interpolation, for those readers that do it (compose does; a unit's
/// `env_file` does not).
pub struct Interpolation<'a> {
    /// Variables from outside the text: consulted before the values read
    /// above, and what a bare `KEY` line takes.
    pub lookup: &'a Lookup<'a>,
    /// The template grammar.
    pub expand: &'a Expand<'a>,
}

/// Parses `text` without interpolation: values as written.
pub fn parse(text: &str) -> Result<Vec<Entry>, EnvFileError> {
    parse_with(text, &mut BTreeMap::new(), None)
}

/// Parses `text`; `vars` holds the variables read before it (another
/// file's, say) and gets those of `text` (a later key replaces an earlier
/// one). Returns the entries in file order, a key set twice twice.
pub fn parse_with(
    text: &str,
    vars: &mut BTreeMap<String, String>,
    interp: Option<&Interpolation<'_>>,
) -> Result<Vec<Entry>, EnvFileError> {
    let body = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut p = Parser {
        src: body,
        at: 0,
        lines: LineIndex::new(body),
    };
    let mut out = Vec::new();
    loop {
        p.statement_start();
        if p.at >= p.src.len() {
            return Ok(out);
        }
        let key_at = p.at;
        let line = p.line_col(key_at).0;
        let (key, inherited) = p.key_name()?;
        if inherited {
            if let Some(v) = interp.and_then(|i| (i.lookup)(&key)) {
                vars.insert(key.clone(), v.clone());
                out.push(Entry {
                    key,
                    value: v,
                    line,
                });
            }
            continue;
        }
        let value = p.value(vars, interp)?;
        vars.insert(key.clone(), value.clone());
        out.push(Entry { key, value, line });
    }
}

/// Spaces other than line breaks.
fn is_space(c: char) -> bool {
    matches!(
        c,
        '\t' | '\u{0b}' | '\u{0c}' | '\r' | ' ' | '\u{85}' | '\u{a0}'
    )
}

struct Parser<'a> {
    src: &'a str,
    /// The byte offset reached.
    at: usize,
    lines: LineIndex<'a>,
}

impl<'a> Parser<'a> {
    fn rest(&self) -> &'a str {
        &self.src[self.at..]
    }

    /// The line and column (from 1) of byte `offset`.
    fn line_col(&self, offset: usize) -> (usize, usize) {
        self.lines.line_col(offset)
    }

    fn error(&mut self, offset: usize, kind: EnvFileErrorKind) -> EnvFileError {
        let (line, col) = self.line_col(offset);
        EnvFileError { line, col, kind }
    }

    /// Skips blanks, line breaks and comment lines.
    fn statement_start(&mut self) {
        loop {
            let rest = self.rest();
            let Some(skip) = rest.find(|c: char| !c.is_whitespace()) else {
                self.at = self.src.len();
                return;
            };
            self.at += skip;
            if !self.rest().starts_with('#') {
                return;
            }
            match self.rest().find('\n') {
                Some(nl) => self.at += nl,
                None => self.at = self.src.len(),
            }
        }
    }

    /// The name, and whether it stands alone (no `=` or `:` follows);
    /// leaves `at` after the `=` (and the blanks after it), or after the
    /// line of a name alone.
    fn key_name(&mut self) -> Result<(String, bool), EnvFileError> {
        if let Some(after) = self.rest().strip_prefix("export") {
            if after.starts_with(is_space) {
                let blanks = after.len() - after.trim_start_matches(is_space).len();
                self.at += "export".len() + blanks;
            }
        }
        let start = self.at;
        let rest = self.rest();
        let mut end = None;
        for (i, c) in rest.char_indices() {
            if is_space(c) {
                continue;
            }
            match c {
                '=' | ':' | '\n' => {
                    end = Some((i, c));
                    break;
                }
                '_' | '.' | '-' | '[' | ']' => {}
                c if c.is_alphanumeric() => {}
                c => return Err(self.error(start + i, EnvFileErrorKind::KeyChar(c))),
            }
        }
        let (len, inherited, next) = match end {
            Some((i, c)) => (i, c == '\n', i + c.len_utf8()),
            None => (rest.len(), true, rest.len()),
        };
        let raw = &rest[..len];
        let key = raw.trim_end_matches(is_space);
        if let Some(i) = key.find(is_space) {
            return Err(self.error(start + i, EnvFileErrorKind::KeySpace));
        }
        let key = key.to_string();
        self.at = start + next;
        if !inherited {
            let after = self.rest();
            self.at += after.len() - after.trim_start_matches(is_space).len();
        }
        Ok((key, inherited))
    }

    /// The value at `at`, through the end of its statement.
    fn value(
        &mut self,
        vars: &BTreeMap<String, String>,
        interp: Option<&Interpolation<'_>>,
    ) -> Result<String, EnvFileError> {
        let start = self.at;
        let rest = self.rest();
        let quote = match rest.chars().next() {
            Some(q @ ('"' | '\'')) => q,
            _ => {
                let line = rest.split('\n').next().unwrap_or_default();
                self.at += line.len();
                let value = line.split_once(" #").map_or(line, |(v, _)| v).trim_end();
                return self.expand(start, value, vars, interp);
            }
        };
        let mut chars = String::new();
        let mut escaped = false;
        let mut close = None;
        for (i, c) in rest.char_indices().skip(1) {
            if c != quote {
                if !escaped && c == '\\' {
                    escaped = true;
                    continue;
                }
                if escaped {
                    escaped = false;
                    chars.push('\\');
                }
                chars.push(c);
                continue;
            }
            if escaped {
                escaped = false;
                chars.push(c);
                continue;
            }
            close = Some(i);
            break;
        }
        let Some(close) = close else {
            return Err(self.error(start, EnvFileErrorKind::Unterminated));
        };
        self.at = start + close + 1;
        // Only blanks and a comment may follow on the line.
        let after = self.rest();
        let blanks = after.len() - after.trim_start_matches(is_space).len();
        match after[blanks..].chars().next() {
            None | Some('\n') => {}
            Some('#') => {
                self.at += after.find('\n').unwrap_or(after.len());
            }
            Some(_) => {
                return Err(self.error(self.at + blanks, EnvFileErrorKind::AfterQuote));
            }
        }
        if quote == '\'' {
            return Ok(chars);
        }
        let unescaped = expand_escapes(&chars, interp.is_some());
        self.expand(start, &unescaped, vars, interp)
    }

    fn expand(
        &mut self,
        at: usize,
        value: &str,
        vars: &BTreeMap<String, String>,
        interp: Option<&Interpolation<'_>>,
    ) -> Result<String, EnvFileError> {
        let Some(i) = interp else {
            return Ok(value.to_string());
        };
        let lookup = |k: &str| (i.lookup)(k).or_else(|| vars.get(k).cloned());
        (i.expand)(value, &lookup).map_err(|m| self.error(at, EnvFileErrorKind::Interpolation(m)))
    }
}

/// `\a \b \f \n \r \t \v \$ \" \\` and `\0NNN` (three octal digits);
/// anything else stays as written. With `for_template`, `\$` becomes `$$`,
/// so that the expansion after it keeps a literal `$`.
fn expand_escapes(s: &str, for_template: bool) -> String {
    let b = s.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' || i + 1 >= b.len() {
            out.push(b[i]);
            i += 1;
            continue;
        }
        let c = b[i + 1];
        let simple: Option<&[u8]> = match c {
            b'a' => Some(&[0x07]),
            b'b' => Some(&[0x08]),
            b'f' => Some(&[0x0c]),
            b'n' => Some(b"\n"),
            b'r' => Some(b"\r"),
            b't' => Some(b"\t"),
            b'v' => Some(&[0x0b]),
            b'$' if for_template => Some(b"$$"),
            b'$' => Some(b"$"),
            b'"' => Some(b"\""),
            b'\\' => Some(b"\\"),
            _ => None,
        };
        if let Some(rep) = simple {
            out.extend_from_slice(rep);
            i += 2;
            continue;
        }
        if c == b'0' {
            // `\0` then up to three digits, read as Go reads `\NNN`: exactly
            // three octal digits, else the text stays.
            let mut j = i + 2;
            while j < b.len() && j < i + 5 && b[j].is_ascii_digit() {
                j += 1;
            }
            let digits = &s[i + 2..j];
            if digits.len() == 3 {
                if let Ok(n) = u8::from_str_radix(digits, 8) {
                    out.extend_from_slice(char::from(n).to_string().as_bytes());
                    i = j;
                    continue;
                }
            }
            out.extend_from_slice(&b[i..j]);
            i = j;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests;
