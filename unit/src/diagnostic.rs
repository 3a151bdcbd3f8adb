//! A problem found in a unit file, with its position.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One problem in one unit file.
///
/// `line` and `col` are 1-based; `col` counts characters, not bytes.
/// `line == 0` means the problem has no position in the file (for example,
/// the file could not be read).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl Diagnostic {
    /// A diagnostic at a 1-based `line:col`.
    pub fn new(
        file: impl Into<PathBuf>,
        line: usize,
        col: usize,
        message: impl Into<String>,
    ) -> Self {
        Diagnostic {
            file: file.into(),
            line,
            col,
            message: message.into(),
        }
    }

    /// A diagnostic with no position in the file.
    pub fn whole_file(file: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Diagnostic::new(file, 0, 0, message)
    }

    /// A diagnostic at the byte offset `span.start` of `text`.
    pub fn at_span(
        file: &Path,
        text: &str,
        span: Range<usize>,
        message: impl Into<String>,
    ) -> Self {
        let (line, col) = line_col(text, span.start);
        Diagnostic::new(file, line, col, message)
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file.display(),
                self.line,
                self.col,
                self.message
            )
        }
    }
}

impl std::error::Error for Diagnostic {}

/// Sorts diagnostics by file, line, column (then message) and drops exact
/// duplicates.
pub(crate) fn sort(diags: &mut Vec<Diagnostic>) {
    diags.sort();
    diags.dedup();
}

/// Converts a byte offset into a 1-based line and a 1-based column counted in
/// characters. Offsets past the end (or inside a character) are clamped.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_chars() {
        let text = "ab\nçé = 1\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 2), (1, 3));
        assert_eq!(line_col(text, 3), (2, 1));
        // "çé" is 4 bytes; the '=' after "çé " is the 4th char.
        assert_eq!(line_col(text, 3 + 5), (2, 4));
        assert_eq!(line_col(text, 1000), (3, 1));
    }

    #[test]
    fn display() {
        let d = Diagnostic::new("units/web.toml", 3, 11, "bad");
        assert_eq!(d.to_string(), "units/web.toml:3:11: bad");
        let d = Diagnostic::whole_file("units/web.toml", "cannot read");
        assert_eq!(d.to_string(), "units/web.toml: cannot read");
    }
}
