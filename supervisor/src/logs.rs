//! A unit's log as jarvisd sees it. The shim of each run writes the unit's
//! output to `<state>/logs/<unit>.log` (rotated); jarvisd adds its own notes
//! to the same file, reads its tail, and follows it for `logs -f` through
//! inotify (no polling).

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use futures_util::StreamExt;
use jarvis_runtime::logfile::{self, LogConfig};
use jarvis_unit::Logs;

pub struct UnitLog {
    cfg: Mutex<LogConfig>,
}

impl UnitLog {
    pub fn new(dir: &Path, unit: &str, limits: &Logs) -> UnitLog {
        UnitLog {
            cfg: Mutex::new(LogConfig {
                path: dir.join(format!("{unit}.log")),
                max_size: limits.max_size,
                max_files: limits.max_files,
            }),
        }
    }

    pub fn config(&self) -> LogConfig {
        self.cfg.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn path(&self) -> PathBuf {
        self.config().path
    }

    pub fn set_limits(&self, limits: &Logs) {
        let mut cfg = self.cfg.lock().unwrap_or_else(|p| p.into_inner());
        cfg.max_size = limits.max_size;
        cfg.max_files = limits.max_files;
    }

    /// A line from jarvis itself about the unit ("started pid 12").
    pub fn note(&self, msg: &str) {
        let line = logfile::note_line(msg);
        if let Err(err) = logfile::append_once(&self.config(), line.as_bytes()) {
            tracing::warn!(path = %self.path().display(), %err, "cannot write unit log");
        }
    }

    /// The last `lines` lines across the current and rotated files.
    pub fn tail(&self, lines: usize) -> io::Result<Vec<u8>> {
        logfile::tail(&self.config(), lines)
    }

    /// Where the log ends now, for [`follow`] to start from. Holds the file
    /// open, so what is written to it before a rotation is not lost.
    pub fn end(&self) -> Position {
        let file = File::open(self.path()).ok();
        let meta = file.as_ref().and_then(|f| f.metadata().ok());
        Position {
            ino: meta.as_ref().map(|m| m.ino()),
            offset: meta.map(|m| m.len()).unwrap_or(0),
            file,
        }
    }
}

/// A place in the current log file.
#[derive(Debug)]
pub struct Position {
    ino: Option<u64>,
    offset: u64,
    file: Option<File>,
}

/// Sends everything written to the log after `from` to `out`, as it is
/// written, until `out` closes (the reader went away). Follows rotations:
/// what was left in the old file comes first, then the new one from its
/// start.
pub async fn follow(
    path: PathBuf,
    mut from: Position,
    out: tokio::sync::mpsc::Sender<Vec<u8>>,
) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("/")).to_path_buf();
    std::fs::create_dir_all(&dir)?;
    let inotify = inotify::Inotify::init()?;
    inotify.watches().add(
        &dir,
        inotify::WatchMask::MODIFY | inotify::WatchMask::CREATE | inotify::WatchMask::MOVED_TO,
    )?;
    let mut events = inotify.into_event_stream([0u8; 4096])?;
    let name = path.file_name().map(|n| n.to_owned());
    let mut file = from.file.take();
    loop {
        // Catch up with what is there, off the runtime's thread (the event
        // loop shares it).
        let (f, p, chunks) = {
            let path = path.clone();
            jarvis_runtime::blocking(move || catch_up(&path, file, from)).await?
        };
        (file, from) = (f, p);
        for chunk in chunks {
            if out.send(chunk).await.is_err() {
                return Ok(());
            }
        }
        // Sleep until something happens to our file, or the reader leaves.
        loop {
            tokio::select! {
                ev = events.next() => match ev {
                    Some(Ok(ev)) if ev.name.as_deref() == name.as_deref() => break,
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => return Err(e),
                    None => return Ok(()),
                },
                _ = out.closed() => return Ok(()),
            }
        }
    }
}

/// Reads what was written after `from`: the rest of a file rotated away
/// first, then the current file. Blocking.
fn catch_up(
    path: &Path,
    mut file: Option<File>,
    mut from: Position,
) -> io::Result<(Option<File>, Position, Vec<Vec<u8>>)> {
    let mut chunks = Vec::new();
    let current = std::fs::metadata(path).ok().map(|m| m.ino());
    if current != from.ino {
        if let Some(f) = file.as_mut() {
            let rest = read_from(f, from.offset)?;
            if !rest.is_empty() {
                chunks.push(rest);
            }
        }
        file = None;
        from = Position {
            ino: current,
            offset: 0,
            file: None,
        };
    }
    if file.is_none() && from.ino.is_some() {
        file = File::open(path).ok();
    }
    if let Some(f) = file.as_mut() {
        let data = read_from(f, from.offset)?;
        from.offset += data.len() as u64;
        if !data.is_empty() {
            chunks.push(data);
        }
    }
    Ok((file, from, chunks))
}

fn read_from(f: &mut File, offset: u64) -> io::Result<Vec<u8>> {
    f.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn follow_sees_appends_and_rotations() {
        let dir = tempfile::tempdir().unwrap();
        let log = UnitLog::new(
            dir.path(),
            "u",
            &Logs {
                max_size: 12,
                max_files: 2,
            },
        );
        let cfg = log.config();
        logfile::append_once(&cfg, b"before\n").unwrap();
        let from = log.end();
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(16);
        let task = tokio::spawn(follow(log.path(), from, tx));
        let mut got = Vec::new();
        let mut writer = logfile::LogFile::new(cfg.clone());
        // "two" and "four" each rotate the 12-byte file.
        for line in [&b"one\n"[..], b"two\n", b"three\n", b"four\n"] {
            writer.append(line).unwrap();
            while !got.ends_with(line) {
                let chunk = tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv())
                    .await
                    .expect("followed in time")
                    .unwrap();
                got.extend(chunk);
            }
        }
        assert_eq!(got, b"one\ntwo\nthree\nfour\n");
        task.abort();
    }
}
