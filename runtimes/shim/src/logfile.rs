//! A unit's log on disk: `<unit>.log`, rotated at `max_size` into
//! `<unit>.log.1` ... keeping `max_files` files in all.
//!
//! The shim appends the unit's output; jarvisd appends its own notes and
//! reads the tail. Each append opens the current file with O_APPEND, so the
//! two writers never tear each other's lines and both follow a rotation.
//!
//! # Lines
//!
//! Every line in the file is one record, as CRI's log files have them:
//!
//! ```text
//! 2026-11-29T14:01:48.123456789Z F listening on :8080
//! 2026-11-29T14:01:49.000012000Z P Password:␠
//! 2026-11-29T14:01:52.500000000Z F  ok
//! 2026-11-29T14:01:53.100000000Z J [jarvis] pid 12 exited with code 0
//! ```
//!
//! - the time the shim read the output (or jarvisd wrote the note): RFC 3339
//!   in UTC with nine fractional digits, always 30 bytes;
//! - a space and a tag: `F` a full line of the unit's output, `P` part of a
//!   line, `J` a note from jarvis (its text starts with `[jarvis]`);
//! - a space, the text as the unit wrote it (any bytes but `\n`; a program's
//!   own timestamps are text like the rest), and `\n`.
//!
//! Output without a newline is held by the shim for [`PARTIAL_WAIT`] (a
//! program that writes a line in several writes gets one record) or until
//! [`PARTIAL_MAX`] bytes; then it is written as a `P` record, and what
//! follows it in the output (`P` or `F` records) continues the same line.
//! Readers join them ([`join`]): the line has the time of its first part.
//! A note between the parts ends the line there. When the output ends, what
//! is held is written as an `F` record.
//!
//! A line that is not a record (a file written by an older jarvis, which
//! stored output as it came) is a full line of output whose time is not
//! known.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

/// The length of a record's time: `2026-11-29T14:01:48.123456789Z`.
pub const STAMP_LEN: usize = 30;
/// How long the shim holds output that has no newline yet.
pub const PARTIAL_WAIT: Duration = Duration::from_millis(100);
/// The most output without a newline the shim holds.
pub const PARTIAL_MAX: usize = 16 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogConfig {
    pub path: PathBuf,
    pub max_size: u64,
    pub max_files: u32,
}

/// What a record holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A full line of output (`F`), or the end of a line begun by `P`s.
    Line,
    /// Part of a line of output (`P`): the next output record continues it.
    Part,
    /// A note from jarvis (`J`).
    Note,
}

impl Kind {
    fn tag(self) -> u8 {
        match self {
            Kind::Line => b'F',
            Kind::Part => b'P',
            Kind::Note => b'J',
        }
    }

    fn from_tag(tag: u8) -> Option<Kind> {
        match tag {
            b'F' => Some(Kind::Line),
            b'P' => Some(Kind::Part),
            b'J' => Some(Kind::Note),
            _ => None,
        }
    }
}

/// One line of the file, without its `\n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// `None` for a line that is not a record.
    pub time: Option<SystemTime>,
    pub kind: Kind,
    pub text: &'a [u8],
}

/// `time` as a record has it: RFC 3339, UTC, nanoseconds, [`STAMP_LEN`]
/// bytes.
pub fn stamp(time: SystemTime) -> String {
    humantime::format_rfc3339_nanos(time).to_string()
}

/// The time in `b`, which must be exactly what [`stamp`] writes.
pub fn parse_stamp(b: &[u8]) -> Option<SystemTime> {
    if b.len() != STAMP_LEN {
        return None;
    }
    let shape = b"dddd-dd-ddTdd:dd:dd.dddddddddZ";
    let fits = b.iter().zip(shape).all(|(c, s)| match s {
        b'd' => c.is_ascii_digit(),
        s => c == s,
    });
    if !fits {
        return None;
    }
    humantime::parse_rfc3339(std::str::from_utf8(b).ok()?).ok()
}

/// Reads one line of the file (without its `\n`).
pub fn parse_record(line: &[u8]) -> Record<'_> {
    let plain = Record {
        time: None,
        kind: Kind::Line,
        text: line,
    };
    if line.len() < STAMP_LEN + 2 || line[STAMP_LEN] != b' ' {
        return plain;
    }
    let (Some(time), Some(kind)) = (
        parse_stamp(&line[..STAMP_LEN]),
        Kind::from_tag(line[STAMP_LEN + 1]),
    ) else {
        return plain;
    };
    let text = match &line[STAMP_LEN + 2..] {
        [] => &[][..],
        [b' ', text @ ..] => text,
        _ => return plain,
    };
    Record {
        time: Some(time),
        kind,
        text,
    }
}

/// Appends one record to `out`. `text` must hold no `\n`.
pub fn encode(out: &mut Vec<u8>, time: SystemTime, kind: Kind, text: &[u8]) {
    encode_stamped(out, &stamp(time), kind, text)
}

/// [`encode`] with the time already written out (the lines of one read
/// share it).
fn encode_stamped(out: &mut Vec<u8>, stamp: &str, kind: Kind, text: &[u8]) {
    debug_assert!(!text.contains(&b'\n'));
    out.extend_from_slice(stamp.as_bytes());
    out.push(b' ');
    out.push(kind.tag());
    out.push(b' ');
    out.extend_from_slice(text);
    out.push(b'\n');
}

/// A note from jarvis as it stands in the log, one `J` record per line of
/// `msg`, each starting with `[jarvis]`.
pub fn note_records(msg: &str, time: SystemTime) -> Vec<u8> {
    let mut out = Vec::new();
    for line in msg.split('\n') {
        encode(
            &mut out,
            time,
            Kind::Note,
            format!("[jarvis] {line}").as_bytes(),
        );
    }
    out
}

/// The writer side. Keeps the file open between appends; reopens after a
/// rotation (its own or, noticed by size, another writer's). The shim's
/// output goes through [`LogFile::output`], which cuts it into records.
///
/// Output that cannot be written (a full disk) is dropped, not retried
/// and not held: the writer learns it once ([`Outage::Began`], from
/// [`LogFile::take_outages`]), each later write tries again quietly, and
/// the first that works puts a `J` record in the log saying how much was
/// lost before it ([`Outage::Ended`]).
pub struct LogFile {
    cfg: LogConfig,
    file: Option<File>,
    /// Output after the last newline, not written yet, and when its first
    /// byte was read.
    held: Vec<u8>,
    held_since: Option<(Instant, SystemTime)>,
    /// Writes fail: the bytes dropped since, and why they failed.
    dropping: Option<(u64, io::Error)>,
    /// Changes in that the writer has not taken yet.
    outages: Vec<Outage>,
}

/// A change in whether a [`LogFile`] can be written, for its writer to
/// tell once.
#[derive(Debug)]
pub enum Outage {
    /// A write failed (most often a full disk, `ENOSPC`): output is dropped
    /// from now on until a write works again.
    Began(io::Error),
    /// Writes work again; `dropped` bytes of records were lost meanwhile
    /// (a `J` record in the log says so where they are missing).
    Ended { dropped: u64 },
}

impl Outage {
    /// In words, for the writer's own log: `disk full (No space left on
    /// device); dropping output until there is room`, `writing again; N
    /// bytes were dropped`.
    pub fn describe(&self) -> String {
        match self {
            Outage::Began(e) if disk_full(e) => format!(
                "disk full ({}); dropping output until there is room",
                errno_text(e)
            ),
            Outage::Began(e) => format!("cannot write ({e}); dropping output until it can"),
            Outage::Ended { dropped } => {
                format!("writing again; {dropped} bytes were dropped")
            }
        }
    }
}

/// Whether `e` says the disk (or the quota on it) is full.
fn disk_full(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT))
}

/// The system's words for `e`'s errno, without the number.
fn errno_text(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => nix::errno::Errno::from_raw(n).desc().to_string(),
        None => e.to_string(),
    }
}

impl LogFile {
    pub fn new(cfg: LogConfig) -> LogFile {
        LogFile {
            cfg,
            file: None,
            held: Vec::new(),
            held_since: None,
            dropping: None,
            outages: Vec::new(),
        }
    }

    /// What changed in whether the log can be written since last asked
    /// (see [`Outage`]), oldest first.
    pub fn take_outages(&mut self) -> Vec<Outage> {
        std::mem::take(&mut self.outages)
    }

    pub fn config(&self) -> &LogConfig {
        &self.cfg
    }

    /// The unit's output as it was read now: every line it finishes becomes
    /// a record; the rest is held (see [`LogFile::held_until`]). What cannot
    /// be written is dropped (see [`Outage`]).
    pub fn output(&mut self, data: &[u8]) {
        self.output_at(data, Instant::now(), SystemTime::now())
    }

    fn output_at(&mut self, data: &[u8], now: Instant, time: SystemTime) {
        if data.is_empty() {
            return;
        }
        let mut out = Vec::new();
        let mut rest = data;
        let now_stamp = stamp(time);
        while let Some(n) = rest.iter().position(|b| *b == b'\n') {
            let held_stamp;
            let at = match self.held_since.take() {
                Some((_, t)) => {
                    held_stamp = stamp(t);
                    &held_stamp
                }
                None => &now_stamp,
            };
            let line = if self.held.is_empty() {
                &rest[..n]
            } else {
                self.held.extend_from_slice(&rest[..n]);
                &self.held[..]
            };
            encode_stamped(&mut out, at, Kind::Line, line);
            self.held.clear();
            rest = &rest[n + 1..];
        }
        if !rest.is_empty() {
            self.held.extend_from_slice(rest);
            self.held_since.get_or_insert((now, time));
        }
        if self.held.len() >= PARTIAL_MAX {
            self.take_held(Kind::Part, &mut out);
        }
        self.write(&out)
    }

    /// When what is held must be written as a part of a line
    /// ([`LogFile::flush_partial`]), if anything is held.
    pub fn held_until(&self) -> Option<Instant> {
        self.held_since.map(|(at, _)| at + PARTIAL_WAIT)
    }

    /// Writes what is held as a `P` record: the line goes on in the next
    /// output.
    pub fn flush_partial(&mut self) {
        let mut out = Vec::new();
        self.take_held(Kind::Part, &mut out);
        self.write(&out)
    }

    /// The output has ended: what is held is a line of its own.
    pub fn end_output(&mut self) {
        let mut out = Vec::new();
        self.take_held(Kind::Line, &mut out);
        self.write(&out)
    }

    /// A note from jarvis about the run. Output held is written first (as a
    /// part), so the log keeps the order things happened in.
    pub fn note(&mut self, msg: &str) {
        let mut out = Vec::new();
        self.take_held(Kind::Part, &mut out);
        out.extend(note_records(msg, SystemTime::now()));
        self.write(&out)
    }

    /// Writes records of output or notes; one that cannot be written is
    /// dropped and counted (see [`Outage`]), so this never fails.
    fn write(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let Some((dropped, why)) = self.dropping.take() else {
            if let Err(e) = self.append(data) {
                self.file = None;
                self.dropping = Some((data.len() as u64, clone_error(&e)));
                self.outages.push(Outage::Began(e));
            }
            return;
        };
        let gap = if disk_full(&why) {
            "the disk was full".to_string()
        } else {
            format!("the log could not be written ({why})")
        };
        let mut with_gap = note_records(
            &format!("{dropped} bytes of output were dropped: {gap}"),
            SystemTime::now(),
        );
        with_gap.extend_from_slice(data);
        match self.append(&with_gap) {
            Ok(()) => self.outages.push(Outage::Ended { dropped }),
            Err(_) => {
                self.file = None;
                self.dropping = Some((dropped + data.len() as u64, why));
            }
        }
    }

    fn take_held(&mut self, kind: Kind, out: &mut Vec<u8>) {
        if let Some((_, time)) = self.held_since.take() {
            encode(out, time, kind, &self.held);
            self.held.clear();
        }
    }

    /// Appends bytes as they are: whole records, or (in tests) what an
    /// older jarvis wrote.
    pub fn append(&mut self, data: &[u8]) -> io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        if self.file.is_none() {
            if let Some(dir) = self.cfg.path.parent() {
                fs::create_dir_all(dir)?;
            }
            self.file = Some(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.cfg.path)?,
            );
        }
        // The file at the path now: another writer may have rotated ours
        // away from under the descriptor.
        let size = match (fs::metadata(&self.cfg.path), &self.file) {
            (Ok(at_path), Some(f))
                if f.metadata().map(|m| (m.dev(), m.ino()))? == (at_path.dev(), at_path.ino()) =>
            {
                at_path.len()
            }
            _ => {
                self.file = None;
                return self.append(data);
            }
        };
        if size > 0 && size + data.len() as u64 > self.cfg.max_size {
            self.file = None;
            rotate(&self.cfg)?;
            return self.append(data);
        }
        let file = self.file.as_mut().expect("opened above");
        file.write_all(data)
    }
}

fn clone_error(e: &io::Error) -> io::Error {
    match e.raw_os_error() {
        Some(n) => io::Error::from_raw_os_error(n),
        None => io::Error::new(e.kind(), e.to_string()),
    }
}

/// Appends one line from jarvis itself, opening and closing the file.
pub fn append_once(cfg: &LogConfig, data: &[u8]) -> io::Result<()> {
    LogFile::new(cfg.clone()).append(data)
}

/// Appends a note from jarvis, opening and closing the file.
pub fn note(cfg: &LogConfig, msg: &str) -> io::Result<()> {
    append_once(cfg, &note_records(msg, SystemTime::now()))
}

fn rotate(cfg: &LogConfig) -> io::Result<()> {
    let keep = cfg.max_files.max(1);
    let _ = fs::remove_file(rotated(&cfg.path, keep - 1));
    for i in (1..keep).rev() {
        let from = rotated(&cfg.path, i - 1);
        match fs::rename(&from, rotated(&cfg.path, i)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    if keep == 1 {
        match fs::remove_file(&cfg.path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// `path` for 0, `path.N` for N.
pub fn rotated(path: &Path, i: u32) -> PathBuf {
    if i == 0 {
        return path.to_path_buf();
    }
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{i}"));
    PathBuf::from(s)
}

/// A line for a reader: the parts of a line joined, without its `\n`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// When its first part was read; `None` when not known.
    pub time: Option<SystemTime>,
    pub text: Vec<u8>,
    pub note: bool,
}

/// Lines out of whole records (`data` ends with `\n`, or what follows the
/// last one is read as a record too), and whether the last line is still
/// open (it ended with a `P` record: more of it may follow).
pub fn join(data: &[u8]) -> (Vec<Line>, bool) {
    let mut lines = Vec::new();
    if data.is_empty() {
        return (lines, false);
    }
    let mut open: Option<Line> = None;
    let body = data.strip_suffix(b"\n").unwrap_or(data);
    for raw in body.split(|b| *b == b'\n') {
        let r = parse_record(raw);
        if r.kind == Kind::Note {
            lines.extend(open.take());
            lines.push(Line {
                time: r.time,
                text: r.text.to_vec(),
                note: true,
            });
            continue;
        }
        let line = open.get_or_insert_with(|| Line {
            time: r.time,
            text: Vec::new(),
            note: false,
        });
        line.text.extend_from_slice(r.text);
        if r.kind == Kind::Line {
            lines.extend(open.take());
        }
    }
    let is_open = open.is_some();
    lines.extend(open);
    (lines, is_open)
}

/// The lines of a log file's bytes as the unit (or jarvis) wrote them,
/// without their times, each ended by `\n`.
pub fn plain_text(data: &[u8]) -> String {
    let mut out = String::new();
    for line in join(data).0 {
        out.push_str(&String::from_utf8_lossy(&line.text));
        out.push('\n');
    }
    out
}

/// The end of a log: its last lines, oldest first.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Tail {
    pub lines: Vec<Line>,
    /// The last line is not finished: its next part will be the next
    /// record of output.
    pub open: bool,
}

/// The last `lines` lines across the current and rotated files, of those
/// not older than `since`. A line whose time is not known counts as being
/// as old as the timed line before it (a file written by an older jarvis
/// holds only such lines: they are older than any `since`).
///
/// `cap`: (inode, length) of the current file, to read it only up to
/// there (where a follower starts).
pub fn tail(
    cfg: &LogConfig,
    lines: usize,
    since: Option<SystemTime>,
    cap: Option<(u64, u64)>,
) -> io::Result<Tail> {
    if lines == 0 {
        return Ok(Tail::default());
    }
    let mut want = 64 * 1024u64;
    loop {
        let (data, whole) = read_last(cfg, want, cap)?;
        // Unless the window starts a file, its first record may be cut.
        let body = if whole {
            &data[..]
        } else {
            match data.iter().position(|b| *b == b'\n') {
                Some(n) => &data[n + 1..],
                None => &[][..],
            }
        };
        let (all, open) = join(body);
        let count = all.len();
        let mut older = false;
        let mut last_time = None;
        let mut kept: Vec<(usize, Line)> = Vec::new();
        for (i, line) in all.into_iter().enumerate() {
            last_time = line.time.or(last_time);
            match (since, last_time) {
                (None, _) => kept.push((i, line)),
                (Some(s), Some(t)) if t >= s => kept.push((i, line)),
                _ => older |= last_time.is_some(),
            }
        }
        if whole || older || kept.len() > lines {
            let from = kept.len().saturating_sub(lines);
            let open = open && kept.last().is_some_and(|(i, _)| *i + 1 == count);
            return Ok(Tail {
                lines: kept.drain(from..).map(|(_, l)| l).collect(),
                open,
            });
        }
        want = want.saturating_mul(4);
    }
}

/// The last `want` bytes of the log across its files, oldest first, and
/// whether that is all of it.
fn read_last(cfg: &LogConfig, want: u64, cap: Option<(u64, u64)>) -> io::Result<(Vec<u8>, bool)> {
    let mut parts = Vec::new();
    let mut left = want;
    let mut whole = true;
    for i in 0..cfg.max_files.max(1) {
        let path = rotated(&cfg.path, i);
        if left == 0 {
            whole = !path.exists();
            break;
        }
        let mut f = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let meta = f.metadata()?;
        let mut len = meta.len();
        if let Some((ino, at)) = cap.filter(|_| i == 0) {
            if meta.ino() == ino {
                len = len.min(at);
            }
        }
        let take = len.min(left);
        f.seek(SeekFrom::Start(len - take))?;
        let mut buf = Vec::with_capacity(take as usize);
        f.take(take).read_to_end(&mut buf)?;
        left -= take;
        parts.push(buf);
        if take < len {
            whole = false;
            break;
        }
    }
    parts.reverse();
    Ok((parts.concat(), whole))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn cfg(dir: &Path, max_size: u64, max_files: u32) -> LogConfig {
        LogConfig {
            path: dir.join("u.log"),
            max_size,
            max_files,
        }
    }

    /// A time `ms` milliseconds into a fixed second.
    fn t(ms: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_795_000_000) + Duration::from_millis(ms)
    }

    fn record(time: SystemTime, kind: Kind, text: &str) -> Vec<u8> {
        let mut out = Vec::new();
        encode(&mut out, time, kind, text.as_bytes());
        out
    }

    fn texts(lines: &[Line]) -> Vec<String> {
        lines
            .iter()
            .map(|l| String::from_utf8_lossy(&l.text).into_owned())
            .collect()
    }

    fn tail_texts(c: &LogConfig, n: usize) -> Vec<String> {
        texts(&tail(c, n, None, None).unwrap().lines)
    }

    #[test]
    fn stamps_are_fixed_width_and_read_back() {
        let time = UNIX_EPOCH + Duration::new(1_795_000_000, 1_000);
        let s = stamp(time);
        assert_eq!(s, "2026-11-18T11:06:40.000001000Z");
        assert_eq!(s.len(), STAMP_LEN);
        assert_eq!(parse_stamp(s.as_bytes()), Some(time));
        assert_eq!(
            stamp(UNIX_EPOCH + Duration::from_secs(1_795_000_000)).len(),
            STAMP_LEN
        );
        for bad in [
            "2026-11-18T08:26:40Z",
            "2026-11-18T08:26:40.000001000+00:00",
            "2026-11-18 08:26:40.000001000Z",
            "2026-11-18T08:26:40.00000100xZ",
            "2026-13-18T08:26:40.000001000Z",
        ] {
            assert_eq!(parse_stamp(bad.as_bytes()), None, "{bad}");
        }
    }

    #[test]
    fn records_and_what_is_not_one() {
        let r = record(t(0), Kind::Line, "hello world");
        assert_eq!(r.len(), STAMP_LEN + 3 + "hello world".len() + 1);
        let back = parse_record(r.strip_suffix(b"\n").unwrap());
        assert_eq!(
            back,
            Record {
                time: Some(t(0)),
                kind: Kind::Line,
                text: b"hello world"
            }
        );
        // Empty text, with or without the space before it.
        let empty = record(t(1), Kind::Part, "");
        assert_eq!(parse_record(empty.strip_suffix(b"\n").unwrap()).text, b"");
        assert_eq!(
            parse_record(&empty[..STAMP_LEN + 2]).kind,
            Kind::Part,
            "{empty:?}"
        );
        // Lines an older jarvis wrote, and near misses: plain output.
        let s = stamp(t(2));
        for plain in [
            "plain output".to_string(),
            "[jarvis 2026-01-02T03:04:05Z] started pid 12".to_string(),
            format!("{s} X tag is not one"),
            format!("{s}F no space"),
            format!("{s} Fno space after the tag"),
            s.clone(),
            String::new(),
        ] {
            assert_eq!(
                parse_record(plain.as_bytes()),
                Record {
                    time: None,
                    kind: Kind::Line,
                    text: plain.as_bytes()
                }
            );
        }
    }

    #[test]
    fn output_that_looks_like_a_record_is_text() {
        let dir = tempfile::tempdir().unwrap();
        let c = cfg(dir.path(), 1 << 20, 1);
        let mut log = LogFile::new(c.clone());
        let fake = format!("{} J [jarvis] not from jarvis", stamp(t(5)));
        log.output_at(format!("{fake}\n").as_bytes(), Instant::now(), t(9));
        let got = tail(&c, 10, None, None).unwrap().lines;
        assert_eq!(
            got,
            vec![Line {
                time: Some(t(9)),
                text: fake.into_bytes(),
                note: false
            }]
        );
    }

    #[test]
    fn output_is_cut_into_lines_and_held_parts_are_joined() {
        let dir = tempfile::tempdir().unwrap();
        let c = cfg(dir.path(), 1 << 20, 1);
        let mut log = LogFile::new(c.clone());
        let now = Instant::now();
        log.output_at(b"one\ntw", now, t(0));
        assert_eq!(log.held_until(), Some(now + PARTIAL_WAIT));
        // Finished by the next read: one record, with the first part's time.
        log.output_at(b"o\nthr", now, t(10));
        assert_eq!(fs::read(&c.path).unwrap(), {
            let mut want = record(t(0), Kind::Line, "one");
            want.extend(record(t(0), Kind::Line, "two"));
            want
        });
        // Held too long: written as a part; the rest continues it.
        log.flush_partial();
        assert_eq!(log.held_until(), None);
        log.output_at(b"ee\n", now, t(20));
        // A note between parts ends the line there.
        log.output_at(b"fo", now, t(30));
        log.note("stopping");
        log.output_at(b"ur", now, t(40));
        log.end_output();
        let text = String::from_utf8(fs::read(&c.path).unwrap()).unwrap();
        let tags: Vec<char> = text
            .lines()
            .map(|l| l.as_bytes()[STAMP_LEN + 1] as char)
            .collect();
        assert_eq!(tags, ['F', 'F', 'P', 'F', 'P', 'J', 'F'], "{text}");
        let Tail { lines, open } = tail(&c, 100, None, None).unwrap();
        assert!(!open);
        assert_eq!(
            texts(&lines),
            ["one", "two", "three", "fo", "[jarvis] stopping", "ur"]
        );
        assert_eq!(lines[2].time, Some(t(10)), "the time of its first part");
        assert!(lines[4].note && !lines[3].note);
    }

    #[test]
    fn a_long_line_is_written_in_parts() {
        let dir = tempfile::tempdir().unwrap();
        let c = cfg(dir.path(), 1 << 20, 1);
        let mut log = LogFile::new(c.clone());
        let chunk = vec![b'x'; PARTIAL_MAX / 2];
        for i in 0..5 {
            log.output_at(&chunk, Instant::now(), t(i));
        }
        // Two parts written, half a part held.
        assert_eq!(
            fs::read(&c.path)
                .unwrap()
                .iter()
                .filter(|b| **b == b'\n')
                .count(),
            2
        );
        let Tail { lines, open } = tail(&c, 1, None, None).unwrap();
        assert!(open, "the line goes on");
        assert_eq!(lines[0].text.len(), PARTIAL_MAX * 2);
        assert_eq!(lines[0].time, Some(t(0)));
        log.output_at(b"end\n", Instant::now(), t(9));
        let Tail { lines, open } = tail(&c, 1, None, None).unwrap();
        assert!(!open);
        assert_eq!(lines[0].text.len(), PARTIAL_MAX * 5 / 2 + 3);
    }

    #[test]
    fn notes_are_one_record_per_line() {
        let text = note_records("started pid 12: sh -c 'a\nb'", t(0));
        let (lines, open) = join(&text);
        assert!(!open);
        assert_eq!(
            texts(&lines),
            ["[jarvis] started pid 12: sh -c 'a", "[jarvis] b'"]
        );
        assert!(lines.iter().all(|l| l.note && l.time == Some(t(0))));
    }

    #[test]
    fn plain_text_leaves_out_the_times() {
        let mut data = record(t(0), Kind::Part, "x=");
        data.extend(record(t(1), Kind::Line, "1"));
        data.extend(note_records("done", t(2)));
        data.extend(b"old\n");
        assert_eq!(plain_text(&data), "x=1\n[jarvis] done\nold\n");
        assert_eq!(plain_text(b""), "");
    }

    #[test]
    fn a_file_from_an_older_jarvis_reads_as_lines_of_unknown_time() {
        let dir = tempfile::tempdir().unwrap();
        let c = cfg(dir.path(), 1 << 20, 2);
        fs::write(
            rotated(&c.path, 1),
            "[jarvis 2026-01-02T03:04:05Z] started pid 12\nold one\n",
        )
        .unwrap();
        // An older shim's last output had no newline; this jarvis goes on.
        fs::write(&c.path, "old two\nold thr").unwrap();
        append_once(&c, b"ee\n").unwrap();
        LogFile::new(c.clone()).output_at(b"new\n", Instant::now(), t(0));
        let all = tail(&c, usize::MAX, None, None).unwrap().lines;
        assert_eq!(
            texts(&all),
            [
                "[jarvis 2026-01-02T03:04:05Z] started pid 12",
                "old one",
                "old two",
                "old three",
                "new"
            ]
        );
        assert_eq!(
            all.iter().map(|l| l.time.is_some()).collect::<Vec<_>>(),
            [false, false, false, false, true]
        );
        assert_eq!(tail_texts(&c, 2), ["old three", "new"]);
        // Their time is not known: older than any `since`.
        assert_eq!(
            texts(&tail(&c, 100, Some(t(0)), None).unwrap().lines),
            ["new"]
        );
    }

    #[test]
    fn since_keeps_newer_lines_and_the_untimed_lines_among_them() {
        let dir = tempfile::tempdir().unwrap();
        let c = cfg(dir.path(), 1 << 20, 1);
        let mut data = Vec::new();
        for (i, w) in ["a", "b", "c", "d"].iter().enumerate() {
            data.extend(record(t(i as u64 * 1000), Kind::Line, w));
        }
        data.extend(b"untimed after d\n");
        data.extend(record(t(4000), Kind::Note, "[jarvis] e"));
        append_once(&c, &data).unwrap();
        let since = |s, n| texts(&tail(&c, n, Some(s), None).unwrap().lines);
        assert_eq!(
            since(t(2000), 100),
            ["c", "d", "untimed after d", "[jarvis] e"]
        );
        assert_eq!(since(t(2001), 100), ["d", "untimed after d", "[jarvis] e"]);
        assert_eq!(since(t(2000), 2), ["untimed after d", "[jarvis] e"]);
        assert!(since(t(4001), 100).is_empty());
        assert_eq!(since(t(0), 100).len(), 6);
    }

    #[test]
    fn a_cap_stops_the_tail_where_a_follower_starts() {
        let dir = tempfile::tempdir().unwrap();
        let c = cfg(dir.path(), 1 << 20, 1);
        append_once(&c, &record(t(0), Kind::Line, "before")).unwrap();
        let meta = fs::metadata(&c.path).unwrap();
        append_once(&c, &record(t(1), Kind::Line, "after")).unwrap();
        let capped = tail(&c, 10, None, Some((meta.ino(), meta.len()))).unwrap();
        assert_eq!(texts(&capped.lines), ["before"]);
    }

    #[test]
    fn a_tail_of_many_lines_reads_back_far_enough() {
        let dir = tempfile::tempdir().unwrap();
        let c = cfg(dir.path(), 1 << 30, 1);
        let mut log = LogFile::new(c.clone());
        let mut data = Vec::new();
        for i in 0..20_000 {
            data.extend(format!("line {i:05}\n").into_bytes());
        }
        log.output_at(&data, Instant::now(), t(0));
        let got = tail_texts(&c, 15_000);
        assert_eq!(got.len(), 15_000);
        assert_eq!(got[0], "line 05000");
        assert_eq!(got[14_999], "line 19999");
        assert_eq!(tail_texts(&c, usize::MAX).len(), 20_000);
        assert!(tail_texts(&c, 0).is_empty());
    }

    #[test]
    fn rotates_and_keeps_max_files() {
        let dir = tempfile::tempdir().unwrap();
        let c = cfg(dir.path(), 200, 3);
        let mut log = LogFile::new(c.clone());
        for i in 0..50 {
            log.output(format!("line {i:03}\n").as_bytes());
        }
        let mut names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, vec!["u.log", "u.log.1", "u.log.2"]);
        for n in &names {
            assert!(fs::metadata(dir.path().join(n)).unwrap().len() <= 200);
        }
        assert_eq!(tail_texts(&c, 3), ["line 047", "line 048", "line 049"]);
    }

    #[test]
    fn tail_spans_rotated_files() {
        let dir = tempfile::tempdir().unwrap();
        // 43-byte records, 129-byte files: u.log.1 holds 0,1,2; u.log holds 3.
        let c = cfg(dir.path(), 129, 2);
        let mut log = LogFile::new(c.clone());
        for i in 0..4 {
            log.output_at(format!("{i}23456789\n").as_bytes(), Instant::now(), t(i));
        }
        assert_eq!(fs::metadata(&c.path).unwrap().len(), 43);
        assert_eq!(tail_texts(&c, 3), ["123456789", "223456789", "323456789"]);
        assert!(tail_texts(&c, 0).is_empty());
        assert_eq!(tail_texts(&c, usize::MAX).len(), 4);
    }

    #[test]
    fn two_writers_follow_each_others_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let c = cfg(dir.path(), 20, 2);
        let mut shim = LogFile::new(c.clone());
        shim.append(b"aaaaaaaaa\n").unwrap();
        append_once(&c, b"note12345\n").unwrap();
        // Full: the next append rotates, and lands in the new file.
        shim.append(b"bbbbbbbbb\n").unwrap();
        assert_eq!(fs::read(&c.path).unwrap(), b"bbbbbbbbb\n");
        assert_eq!(
            fs::read(rotated(&c.path, 1)).unwrap(),
            b"aaaaaaaaa\nnote12345\n"
        );
        append_once(&c, b"note2\n").unwrap();
        assert_eq!(fs::read(&c.path).unwrap(), b"bbbbbbbbb\nnote2\n");
    }

    #[test]
    fn a_single_file_is_truncated_on_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let c = cfg(dir.path(), 10, 1);
        let mut log = LogFile::new(c.clone());
        log.append(b"aaaaaaaaa\n").unwrap();
        log.append(b"bbbbbbbbb\n").unwrap();
        assert_eq!(fs::read(&c.path).unwrap(), b"bbbbbbbbb\n");
        assert!(!rotated(&c.path, 1).exists());
    }

    #[test]
    fn a_full_disk_is_told_once_and_its_gap_marked_in_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let c = cfg(dir.path(), 1 << 20, 2);
        let mut log = LogFile::new(c.clone());
        log.output_at(b"before\n", Instant::now(), t(0));
        assert!(log.take_outages().is_empty());
        // The log now leads to a device whose every write fails as a full
        // disk's does.
        let kept = dir.path().join("kept.log");
        fs::rename(&c.path, &kept).unwrap();
        std::os::unix::fs::symlink("/dev/full", &c.path).unwrap();
        let chunk = vec![b'x'; PARTIAL_MAX];
        let mut lost = 0;
        for i in 0..5u64 {
            let mut data = chunk.clone();
            data.push(b'\n');
            lost += data.len() + STAMP_LEN + 3;
            // Nothing fails back to the caller: output is dropped quietly.
            log.output_at(&data, Instant::now(), t(i));
        }
        let told = log.take_outages();
        assert_eq!(told.len(), 1, "told once: {told:?}");
        assert!(
            matches!(&told[0], Outage::Began(e) if e.raw_os_error() == Some(libc::ENOSPC)),
            "{told:?}"
        );
        assert_eq!(
            told[0].describe(),
            "disk full (No space left on device); dropping output until there is room"
        );
        assert!(log.take_outages().is_empty());
        // Room again: the gap is marked where it was, and said once.
        fs::remove_file(&c.path).unwrap();
        fs::rename(&kept, &c.path).unwrap();
        log.output_at(b"after\n", Instant::now(), t(9));
        log.output_at(b"more\n", Instant::now(), t(10));
        let told = log.take_outages();
        assert_eq!(told.len(), 1, "{told:?}");
        assert!(
            matches!(told[0], Outage::Ended { dropped } if dropped == lost as u64),
            "{told:?}, want {lost} dropped"
        );
        assert_eq!(
            told[0].describe(),
            format!("writing again; {lost} bytes were dropped")
        );
        let lines = tail(&c, 10, None, None).unwrap().lines;
        assert_eq!(
            texts(&lines),
            [
                "before".to_string(),
                format!("[jarvis] {lost} bytes of output were dropped: the disk was full"),
                "after".to_string(),
                "more".to_string(),
            ]
        );
        assert!(lines[1].note);
    }

    #[test]
    fn the_shim_reopens_after_a_note_rotated_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let c = cfg(dir.path(), 20, 2);
        let mut shim = LogFile::new(c.clone());
        shim.append(b"aaaaaaaaa\n").unwrap();
        shim.append(b"bbbbbbbbb\n").unwrap();
        append_once(&c, b"note\n").unwrap(); // rotates
        shim.append(b"ccc\n").unwrap();
        assert_eq!(fs::read(&c.path).unwrap(), b"note\nccc\n");
    }
}
