//! A problem found in a unit file, with its position.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::limits::{MAX_DIAGNOSTICS, MAX_DIAGNOSTICS_PER_FILE, MAX_MESSAGE_BYTES};

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

    /// A diagnostic at the byte offset `span.start` of `text`. For many
    /// diagnostics in one text, build a [`LineIndex`] once.
    pub fn at_span(
        file: &Path,
        text: &str,
        span: Range<usize>,
        message: impl Into<String>,
    ) -> Self {
        let (line, col) = LineIndex::new(text).line_col(span.start);
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

/// Where the lines of a text start, built in one pass, so that each
/// `LINE:COL` costs a binary search (and counting the characters of at most
/// [`LineIndex::STEP`] bytes), not a scan of the text before it.
pub(crate) struct LineIndex<'t> {
    text: &'t str,
    /// The byte offset of each line's start; the first is 0.
    starts: Vec<usize>,
    /// `(byte offset, characters before it)` about every [`LineIndex::STEP`]
    /// bytes, each offset a character boundary; the first is `(0, 0)`.
    /// Empty when the text is ASCII (a column is then a byte count).
    marks: Vec<(usize, usize)>,
}

impl<'t> LineIndex<'t> {
    const STEP: usize = 4096;

    pub(crate) fn new(text: &'t str) -> Self {
        let bytes = text.as_bytes();
        let mut starts = vec![0];
        starts.extend(
            bytes
                .iter()
                .enumerate()
                .filter(|(_, b)| **b == b'\n')
                .map(|(i, _)| i + 1),
        );
        let mut marks = Vec::new();
        if !text.is_ascii() {
            marks.push((0, 0));
            let (mut chars, mut last) = (0, 0);
            for (i, _) in text.char_indices() {
                if i - last >= Self::STEP {
                    marks.push((i, chars));
                    last = i;
                }
                chars += 1;
            }
        }
        LineIndex {
            text,
            starts,
            marks,
        }
    }

    /// The characters before byte `offset`, a character boundary.
    fn chars_before(&self, offset: usize) -> usize {
        if self.marks.is_empty() {
            return offset;
        }
        let i = self.marks.partition_point(|(o, _)| *o <= offset) - 1;
        let (at, chars) = self.marks[i];
        chars + self.text[at..offset].chars().count()
    }

    /// A byte offset clamped into the text, at a character boundary.
    fn clamp(&self, offset: usize) -> usize {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        offset
    }

    /// The 1-based line and 1-based column, counted in characters, of a
    /// byte offset. Offsets past the end (or inside a character) are
    /// clamped.
    pub(crate) fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = self.clamp(offset);
        let line = self.starts.partition_point(|s| *s <= offset);
        let start = self.starts[line - 1];
        (
            line,
            self.chars_before(offset) - self.chars_before(start) + 1,
        )
    }

    /// The byte offset of the start of the line `offset` is on.
    pub(crate) fn line_start(&self, offset: usize) -> usize {
        let offset = self.clamp(offset);
        self.starts[self.starts.partition_point(|s| *s <= offset) - 1]
    }

    /// The byte offset of the start of the line after the one `offset` is
    /// on (the text's length on the last line).
    pub(crate) fn next_line_start(&self, offset: usize) -> usize {
        let offset = self.clamp(offset);
        let i = self.starts.partition_point(|s| *s <= offset);
        self.starts.get(i).copied().unwrap_or(self.text.len())
    }
}

/// `message` cut to at most [`MAX_MESSAGE_BYTES`] bytes (at a character
/// boundary, ending with "…") when it is longer: a message that quotes a
/// long value.
pub(crate) fn bounded_message(mut message: String) -> String {
    if message.len() > MAX_MESSAGE_BYTES {
        let mut end = MAX_MESSAGE_BYTES - '…'.len_utf8();
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push('…');
    }
    message
}

/// Keeps the first [`MAX_DIAGNOSTICS_PER_FILE`] problems of each file and
/// the first [`MAX_DIAGNOSTICS`] of all, from `diags` sorted by file (each
/// file's problems together); each file whose problems are cut gets one
/// last problem that counts the rest, and the files left out altogether
/// are counted in one problem at the end. `omitted` counts the problems of
/// a file left out already (by the parser, which keeps only the first of a
/// file).
pub(crate) fn cap(diags: Vec<Diagnostic>, omitted: &BTreeMap<PathBuf, usize>) -> Vec<Diagnostic> {
    // Each file's problems, in order, with the count left out before.
    let mut groups: Vec<(PathBuf, Vec<Diagnostic>, usize)> = Vec::new();
    for d in diags {
        match groups.last_mut() {
            Some((file, list, _)) if *file == d.file => list.push(d),
            _ => {
                let left = omitted.get(&d.file).copied().unwrap_or(0);
                groups.push((d.file.clone(), vec![d], left));
            }
        }
    }
    for (file, n) in omitted {
        if *n > 0 && !groups.iter().any(|(f, _, _)| f == file) {
            groups.push((file.clone(), Vec::new(), *n));
        }
    }
    let mut out = Vec::new();
    let mut budget = MAX_DIAGNOSTICS;
    // The files left out altogether: the first, how many, their problems.
    let mut rest: Option<(PathBuf, usize, usize)> = None;
    for (file, mut list, left) in groups {
        let total = list.len() + left;
        let shown = list.len().min(MAX_DIAGNOSTICS_PER_FILE).min(budget);
        if shown == 0 {
            let r = rest.get_or_insert((file, 0, 0));
            r.1 += 1;
            r.2 += total;
            continue;
        }
        list.truncate(shown);
        budget -= shown;
        out.extend(list.into_iter().map(|mut d| {
            d.message = bounded_message(d.message);
            d
        }));
        if shown < total {
            let message = format!(
                "... and {} more problems in {} (fix these first)",
                total - shown,
                file.display()
            );
            out.push(Diagnostic::whole_file(file, message));
        }
    }
    if let Some((file, files, problems)) = rest {
        let others = match files - 1 {
            0 => String::new(),
            1 => " and 1 other file".to_string(),
            n => format!(" and {n} other files"),
        };
        let message = format!(
            "... and {problems} more problems in {}{others} (fix these first)",
            file.display()
        );
        out.push(Diagnostic::whole_file(file, message));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The column and line by a scan of everything before the offset.
    fn scan(text: &str, offset: usize) -> (usize, usize) {
        let before = &text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        (line, before[line_start..].chars().count() + 1)
    }

    fn line_col(text: &str, offset: usize) -> (usize, usize) {
        LineIndex::new(text).line_col(offset)
    }

    #[test]
    fn line_index_agrees_with_a_scan() {
        // Long lines of characters of 1 to 4 bytes, so that columns cross
        // the index's marks, and short ones.
        let mut text = String::new();
        for i in 0..200 {
            let piece = ["a", "é", "€", "𝄞"][i % 4];
            text.push_str(&piece.repeat(i * 37 % 3000));
            text.push('\n');
            if i % 7 == 0 {
                text.push('\n');
            }
        }
        let index = LineIndex::new(&text);
        for (offset, _) in text.char_indices().step_by(97).chain([(text.len(), ' ')]) {
            assert_eq!(index.line_col(offset), scan(&text, offset), "at {offset}");
            let start = index.line_start(offset);
            assert_eq!(start, text[..offset].rfind('\n').map_or(0, |i| i + 1));
        }
        let ascii = "ab\ncd\n\nefg";
        let index = LineIndex::new(ascii);
        for offset in 0..=ascii.len() {
            assert_eq!(index.line_col(offset), scan(ascii, offset), "at {offset}");
        }
        assert_eq!(index.next_line_start(0), 3);
        assert_eq!(index.next_line_start(8), ascii.len());
        assert_eq!(LineIndex::new("").line_col(5), (1, 1));
    }

    #[test]
    fn long_messages_are_cut() {
        let m = bounded_message(format!("bad {:?}", "é".repeat(MAX_MESSAGE_BYTES)));
        assert!(
            m.len() <= MAX_MESSAGE_BYTES && m.ends_with('…'),
            "{}",
            m.len()
        );
        assert_eq!(bounded_message("short".into()), "short");
    }

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
