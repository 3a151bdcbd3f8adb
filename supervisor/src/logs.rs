//! Each unit's log: stdout and stderr of every run, appended to
//! `<state>/logs/<unit>.log`, rotated at `logs.max_size` keeping
//! `logs.max_files` files (`<unit>.log`, `<unit>.log.1`, ...), and broadcast
//! to `logs -f` followers.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use jarvis_unit::Logs;
use tokio::sync::broadcast;

/// New output for a `logs -f` follower.
pub type Follow = broadcast::Receiver<Arc<[u8]>>;

pub struct LogSink {
    inner: Mutex<Inner>,
    tx: broadcast::Sender<Arc<[u8]>>,
}

struct Inner {
    path: PathBuf,
    file: Option<File>,
    size: u64,
    limits: Logs,
}

impl LogSink {
    pub fn new(dir: &Path, unit: &str, limits: &Logs) -> Arc<LogSink> {
        let (tx, _) = broadcast::channel(256);
        Arc::new(LogSink {
            inner: Mutex::new(Inner {
                path: dir.join(format!("{unit}.log")),
                file: None,
                size: 0,
                limits: limits.clone(),
            }),
            tx,
        })
    }

    pub fn path(&self) -> PathBuf {
        self.lock().path.clone()
    }

    pub fn set_limits(&self, limits: &Logs) {
        self.lock().limits = limits.clone();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends `data`, rotating first when the current file is full.
    pub fn write(&self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let mut inner = self.lock();
        if let Err(err) = inner.append(data) {
            tracing::warn!(path = %inner.path.display(), %err, "cannot write unit log");
            inner.file = None;
        }
        let _ = self.tx.send(Arc::from(data));
    }

    /// A line from jarvis itself about the unit ("started pid 12").
    pub fn note(&self, msg: &str) {
        let ts = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
        self.write(format!("[jarvis {ts}] {msg}\n").as_bytes());
    }

    /// The last `lines` lines across the current and rotated files, and, when
    /// `follow`, a receiver for everything written after them (taken under the
    /// same lock, so nothing falls between).
    pub fn tail(&self, lines: usize, follow: bool) -> io::Result<(Vec<u8>, Option<Follow>)> {
        let inner = self.lock();
        let text = tail_files(&inner.path, inner.limits.max_files, lines)?;
        let rx = follow.then(|| self.tx.subscribe());
        Ok((text, rx))
    }
}

impl Inner {
    fn open(&mut self) -> io::Result<&mut File> {
        if self.file.is_none() {
            if let Some(dir) = self.path.parent() {
                fs::create_dir_all(dir)?;
            }
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?;
            self.size = file.metadata()?.len();
            self.file = Some(file);
        }
        Ok(self.file.as_mut().expect("just opened"))
    }

    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        self.open()?;
        if self.size > 0 && self.size + data.len() as u64 > self.limits.max_size {
            self.rotate()?;
            self.open()?;
        }
        let file = self.file.as_mut().expect("opened above");
        file.write_all(data)?;
        self.size += data.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.file = None;
        let keep = self.limits.max_files.max(1);
        let name = |i: u32| rotated(&self.path, i);
        let _ = fs::remove_file(name(keep - 1));
        for i in (1..keep.saturating_sub(1) + 1).rev() {
            let from = if i == 1 {
                self.path.clone()
            } else {
                name(i - 1)
            };
            if from.exists() {
                fs::rename(&from, name(i))?;
            }
        }
        if keep == 1 {
            fs::remove_file(&self.path).or_else(ignore_missing)?;
        }
        self.size = 0;
        Ok(())
    }
}

fn ignore_missing(e: io::Error) -> io::Result<()> {
    if e.kind() == io::ErrorKind::NotFound {
        Ok(())
    } else {
        Err(e)
    }
}

fn rotated(path: &Path, i: u32) -> PathBuf {
    if i == 0 {
        return path.to_path_buf();
    }
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{i}"));
    PathBuf::from(s)
}

/// The last `lines` lines, newest file last.
fn tail_files(path: &Path, max_files: u32, lines: usize) -> io::Result<Vec<u8>> {
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    let mut have = 0usize;
    for i in 0..max_files.max(1) {
        if have > lines {
            break;
        }
        let data = match tail_of_file(&rotated(path, i), lines.saturating_add(1)) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        have += data.iter().filter(|b| **b == b'\n').count();
        chunks.push(data);
    }
    chunks.reverse();
    let all = chunks.concat();
    // Keep the last `lines` lines (a final line without '\n' counts too).
    let mut newlines = 0;
    let body = all.strip_suffix(b"\n").unwrap_or(&all);
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
    if lines == 0 {
        start = all.len();
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
        want *= 4;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_size: u64, max_files: u32) -> Logs {
        Logs {
            max_size,
            max_files,
        }
    }

    #[test]
    fn rotates_and_keeps_max_files() {
        let dir = tempfile::tempdir().unwrap();
        let sink = LogSink::new(dir.path(), "u", &limits(100, 3));
        for i in 0..50 {
            sink.write(format!("line {i:03} ..........\n").as_bytes());
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
        let (tail, _) = sink.tail(3, false).unwrap();
        assert_eq!(
            String::from_utf8(tail).unwrap(),
            "line 047 ..........\nline 048 ..........\nline 049 ..........\n"
        );
    }

    #[test]
    fn tail_spans_rotated_files() {
        let dir = tempfile::tempdir().unwrap();
        let sink = LogSink::new(dir.path(), "u", &limits(30, 2));
        for i in 0..4 {
            sink.write(format!("{i}23456789\n").as_bytes());
        }
        // 10-byte lines, 30-byte files: u.log.1 holds 0,1,2; u.log holds 3.
        let (tail, _) = sink.tail(3, false).unwrap();
        assert_eq!(
            String::from_utf8(tail).unwrap(),
            "123456789\n223456789\n323456789\n"
        );
    }

    #[test]
    fn single_file_is_truncated_on_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let sink = LogSink::new(dir.path(), "u", &limits(10, 1));
        sink.write(b"aaaaaaaaa\n");
        sink.write(b"bbbbbbbbb\n");
        assert_eq!(fs::read(dir.path().join("u.log")).unwrap(), b"bbbbbbbbb\n");
        assert!(!dir.path().join("u.log.1").exists());
    }

    #[tokio::test]
    async fn followers_get_what_comes_after_the_tail() {
        let dir = tempfile::tempdir().unwrap();
        let sink = LogSink::new(dir.path(), "u", &limits(1 << 20, 2));
        sink.write(b"old\n");
        let (tail, rx) = sink.tail(10, true).unwrap();
        assert_eq!(tail, b"old\n");
        sink.write(b"new\n");
        let got = rx.unwrap().recv().await.unwrap();
        assert_eq!(&*got, b"new\n");
    }
}
