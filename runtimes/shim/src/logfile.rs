//! A unit's log on disk: `<unit>.log`, rotated at `max_size` into
//! `<unit>.log.1` ... keeping `max_files` files in all.
//!
//! The shim appends the unit's output; jarvisd appends its own notes and
//! reads the tail. Each append opens the current file with O_APPEND, so the
//! two writers never tear each other's lines and both follow a rotation.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogConfig {
    pub path: PathBuf,
    pub max_size: u64,
    pub max_files: u32,
}

/// The writer side. Keeps the file open between appends; reopens after a
/// rotation (its own or, noticed by size, another writer's).
pub struct LogFile {
    cfg: LogConfig,
    file: Option<File>,
}

impl LogFile {
    pub fn new(cfg: LogConfig) -> LogFile {
        LogFile { cfg, file: None }
    }

    pub fn config(&self) -> &LogConfig {
        &self.cfg
    }

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

/// Appends one line from jarvis itself, opening and closing the file.
pub fn append_once(cfg: &LogConfig, data: &[u8]) -> io::Result<()> {
    LogFile::new(cfg.clone()).append(data)
}

/// A line from jarvis about the unit, as it stands in the log:
/// `[jarvis 2026-01-02T03:04:05Z] started pid 12`.
pub fn note_line(msg: &str) -> String {
    let ts = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
    format!("[jarvis {ts}] {msg}\n")
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

/// The last `lines` lines across the current and rotated files, oldest
/// first.
pub fn tail(cfg: &LogConfig, lines: usize) -> io::Result<Vec<u8>> {
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    let mut have = 0usize;
    for i in 0..cfg.max_files.max(1) {
        if have > lines {
            break;
        }
        let data = match tail_of_file(&rotated(&cfg.path, i), lines.saturating_add(1)) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        have += data.iter().filter(|b| **b == b'\n').count();
        chunks.push(data);
    }
    chunks.reverse();
    let all = chunks.concat();
    if lines == 0 {
        return Ok(Vec::new());
    }
    // Keep the last `lines` lines (a final line without '\n' counts too).
    let body = all.strip_suffix(b"\n").unwrap_or(&all);
    let mut newlines = 0;
    let mut start = 0;
    for (i, b) in body.iter().enumerate().rev() {
        if *b == b'\n' {
            newlines += 1;
            if newlines == lines {
                start = i + 1;
                break;
            }
        }
    }
    Ok(all[start..].to_vec())
}

/// Reads enough of the end of a file to hold `lines` lines.
fn tail_of_file(path: &Path, lines: usize) -> io::Result<Vec<u8>> {
    let mut f = File::open(path)?;
    let len = f.metadata()?.len();
    let mut want = 64 * 1024u64;
    loop {
        let from = len.saturating_sub(want);
        f.seek(SeekFrom::Start(from))?;
        let mut buf = Vec::new();
        f.read_to_end(&mut buf)?;
        if from == 0 || buf.iter().filter(|b| **b == b'\n').count() > lines {
            return Ok(buf);
        }
        want = want.saturating_mul(4);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(dir: &Path, max_size: u64, max_files: u32) -> LogConfig {
        LogConfig {
            path: dir.join("u.log"),
            max_size,
            max_files,
        }
    }

    #[test]
    fn rotates_and_keeps_max_files() {
        let dir = tempfile::tempdir().unwrap();
        let c = cfg(dir.path(), 100, 3);
        let mut log = LogFile::new(c.clone());
        for i in 0..50 {
            log.append(format!("line {i:03} ..........\n").as_bytes())
                .unwrap();
        }
        let mut names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, vec!["u.log", "u.log.1", "u.log.2"]);
        for n in &names {
            assert!(fs::metadata(dir.path().join(n)).unwrap().len() <= 100);
        }
        assert_eq!(
            String::from_utf8(tail(&c, 3).unwrap()).unwrap(),
            "line 047 ..........\nline 048 ..........\nline 049 ..........\n"
        );
    }

    #[test]
    fn tail_spans_rotated_files() {
        let dir = tempfile::tempdir().unwrap();
        let c = cfg(dir.path(), 30, 2);
        let mut log = LogFile::new(c.clone());
        for i in 0..4 {
            log.append(format!("{i}23456789\n").as_bytes()).unwrap();
        }
        // 10-byte lines, 30-byte files: u.log.1 holds 0,1,2; u.log holds 3.
        assert_eq!(
            String::from_utf8(tail(&c, 3).unwrap()).unwrap(),
            "123456789\n223456789\n323456789\n"
        );
        assert_eq!(tail(&c, 0).unwrap(), b"");
        assert_eq!(tail(&c, usize::MAX).unwrap().len(), 40);
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
}

#[cfg(test)]
mod rotation_by_another_writer {
    use super::*;

    #[test]
    fn the_shim_reopens_after_a_note_rotated_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let c = LogConfig {
            path: dir.path().join("u.log"),
            max_size: 20,
            max_files: 2,
        };
        let mut shim = LogFile::new(c.clone());
        shim.append(b"aaaaaaaaa\n").unwrap();
        shim.append(b"bbbbbbbbb\n").unwrap();
        append_once(&c, b"note\n").unwrap(); // rotates
        shim.append(b"ccc\n").unwrap();
        assert_eq!(fs::read(&c.path).unwrap(), b"note\nccc\n");
    }
}
