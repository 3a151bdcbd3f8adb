//! `jarvisctl logs` for one unit, several, or all, as `docker compose logs`
//! shows them. Every line of a unit's log carries the time it was written
//! (jarvisd sends it first on the line when asked: RFC 3339, UTC, nine
//! fractional digits, then a space; lines of an older jarvis's log have no
//! time and come as they are).
//!
//! - One unit: its lines as jarvisd sends them, with their times only
//!   under `--timestamps`; with `-f` output is printed as it comes, a line
//!   not yet finished too.
//! - Several units (or none: all) without `-f`: each unit's tail (`-n` lines
//!   each, `--since` applies to each), merged by time, each line after its
//!   unit's name (coloured on a terminal). A line of unknown time keeps its
//!   place after the line before it in its unit.
//! - Several units with `-f`: the tails, then whole lines as they arrive,
//!   after their unit's name.
//!
//! `--since` is an RFC 3339 time (`2026-11-29T14:00:00Z`, with an offset
//! such as `+01:00`, or a date) or a duration ago in the unit files'
//! grammar (`10m`, `1h30m`, `2s`); jarvisd filters, so older lines never
//! cross the socket.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use jarvis_proto::{Request, Response};

use crate::client::Client;

/// Colours for the units' names, in turn (cyan, yellow, green, magenta,
/// blue, red), as compose picks them.
const COLOURS: [u8; 6] = [36, 33, 32, 35, 34, 31];

/// The length of a line's time as jarvisd sends it.
const STAMP_LEN: usize = 30;

/// What `jarvisctl logs` was asked.
#[derive(Debug, Clone, Default)]
pub struct Opts {
    pub follow: bool,
    pub lines: Option<usize>,
    pub since: Option<SystemTime>,
    pub timestamps: bool,
}

impl Opts {
    fn request(&self, unit: &str, timestamps: bool) -> Request {
        Request::Logs {
            unit: unit.to_string(),
            lines: self.lines,
            follow: self.follow,
            since: self
                .since
                .map(|t| humantime::format_rfc3339_nanos(t).to_string()),
            timestamps,
        }
    }
}

/// `--since`: an RFC 3339 time, a date, or a duration before now.
pub fn parse_since(s: &str) -> anyhow::Result<SystemTime> {
    parse_since_at(s, SystemTime::now())
}

fn parse_since_at(s: &str, now: SystemTime) -> anyhow::Result<SystemTime> {
    let s = s.trim();
    if let Ok(d) = humantime::parse_duration(s) {
        return now
            .checked_sub(d)
            .with_context(|| format!("--since {s:?} is before 1970"));
    }
    let bad = || {
        format!(
            "bad --since {s:?}: expected a time (2026-11-29T14:00:00Z, \
             2026-11-29T15:00:00+01:00, 2026-11-29) or a duration (10m, 1h30m)"
        )
    };
    if s.len() == 10 {
        return humantime::parse_rfc3339_weak(&format!("{s}T00:00:00Z")).with_context(bad);
    }
    // An offset from UTC: `+HH:MM` or `-HH:MM` at the end.
    let b = s.as_bytes();
    if b.len() > 6 && matches!(b[b.len() - 6], b'+' | b'-') && b[b.len() - 3] == b':' {
        let (time, offset) = s.split_at(s.len() - 6);
        let hours: u64 = offset[1..3].parse().ok().with_context(bad)?;
        let minutes: u64 = offset[4..].parse().ok().with_context(bad)?;
        let local = humantime::parse_rfc3339_weak(time).with_context(bad)?;
        let offset = Duration::from_secs(hours * 3600 + minutes * 60);
        return if b[b.len() - 6] == b'+' {
            local.checked_sub(offset).with_context(bad)
        } else {
            local.checked_add(offset).with_context(bad)
        };
    }
    humantime::parse_rfc3339_weak(s.strip_suffix('z').unwrap_or(s)).with_context(bad)
}

/// The time at the start of a line jarvisd sent with times, and the rest;
/// no time for a line without one.
fn split_stamp(line: &str) -> (Option<SystemTime>, &str) {
    let b = line.as_bytes();
    if b.len() > STAMP_LEN && b[STAMP_LEN] == b' ' {
        let shape = b"dddd-dd-ddTdd:dd:dd.dddddddddZ";
        let fits = b.iter().zip(shape).all(|(c, s)| match s {
            b'd' => c.is_ascii_digit(),
            s => c == s,
        });
        if fits {
            if let Ok(t) = humantime::parse_rfc3339(&line[..STAMP_LEN]) {
                return (Some(t), &line[STAMP_LEN + 1..]);
            }
        }
    }
    (None, line)
}

pub fn run(client: &Client, units: Vec<String>, opts: Opts) -> anyhow::Result<ExitCode> {
    let units = if units.is_empty() {
        let Response::Status(report) = client.expect(Request::Status { units: vec![] })? else {
            unreachable!("checked by expect")
        };
        report.units.into_iter().map(|u| u.name).collect()
    } else {
        units
    };
    if let [unit] = units.as_slice() {
        let mut stdout = std::io::stdout().lock();
        let mut quit = false;
        client.stream(opts.request(unit, opts.timestamps), |data| {
            // A closed pipe (`| head`) ends the stream quietly.
            quit = stdout
                .write_all(data.as_bytes())
                .and_then(|_| stdout.flush())
                .is_err();
            !quit
        })?;
        if opts.follow && !quit {
            anyhow::bail!("{}", ended(unit));
        }
        return Ok(ExitCode::SUCCESS);
    }
    let colour = std::io::stdout().is_terminal();
    let width = units.iter().map(|u| u.len()).max().unwrap_or(0);
    let prefixes: Vec<String> = units
        .iter()
        .enumerate()
        .map(|(i, u)| prefix(u, width, colour.then_some(COLOURS[i % COLOURS.len()])))
        .collect();
    if !opts.follow {
        // Every unit's tail, with times, then merged.
        let mut tails = Vec::new();
        for unit in &units {
            let mut lines_of = Lines::default();
            let mut tail = Vec::new();
            client.stream(opts.request(unit, true), |data| {
                tail.extend(lines_of.push(data));
                true
            })?;
            tail.extend(lines_of.rest());
            tails.push(tail);
        }
        let mut stdout = std::io::stdout().lock();
        for (i, line) in merge(&tails) {
            let (time, text) = split_stamp(line);
            let time = match (opts.timestamps, time) {
                (true, Some(t)) => format!("{} ", humantime::format_rfc3339_nanos(t)),
                _ => String::new(),
            };
            if write!(stdout, "{}{time}{text}", prefixes[i]).is_err() {
                break;
            }
        }
        let _ = stdout.flush();
        return Ok(ExitCode::SUCCESS);
    }
    // One follower per unit; lines are printed whole, as they arrive.
    let (tx, rx) = mpsc::channel::<(usize, Result<String, String>)>();
    for (i, unit) in units.iter().enumerate() {
        let (tx, client, unit, opts) = (tx.clone(), client.clone(), unit.clone(), opts.clone());
        std::thread::spawn(move || {
            let mut lines_of = Lines::default();
            let req = opts.request(&unit, opts.timestamps);
            let mut quit = false;
            let r = client.stream(req, |data| {
                quit = !lines_of.push(data).all(|l| tx.send((i, Ok(l))).is_ok());
                !quit
            });
            // A follower that ends is said, never dropped silently.
            match r {
                Err(e) => {
                    let _ = tx.send((i, Err(format!("{e:#}"))));
                }
                Ok(()) if !quit => {
                    let _ = tx.send((i, Err(ended(&unit))));
                }
                Ok(()) => {}
            }
        });
    }
    drop(tx);
    let mut failed = false;
    for (i, line) in rx {
        let line = match line {
            Ok(line) => line,
            Err(e) => {
                failed = true;
                eprintln!("jarvisctl: {}: {e}", units[i]);
                continue;
            }
        };
        let mut stdout = std::io::stdout().lock();
        if write!(stdout, "{}{line}", prefixes[i])
            .and_then(|_| stdout.flush())
            .is_err()
        {
            break;
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Why a follower's lines stopped when neither it nor the user ended them.
fn ended(unit: &str) -> String {
    format!("jarvisd ended the log stream of {unit} (did jarvisd stop?)")
}

/// The lines of every unit's tail (each with its time first, or none), in
/// the order of their times, with the index of their unit. Each unit's own
/// order is kept: a line without a time comes right after the line before
/// it, and ties go to the unit named first.
fn merge(tails: &[Vec<String>]) -> Vec<(usize, &str)> {
    let mut keyed: Vec<Vec<(SystemTime, &str)>> = Vec::new();
    for tail in tails {
        let mut last = SystemTime::UNIX_EPOCH;
        keyed.push(
            tail.iter()
                .map(|l| {
                    last = split_stamp(l).0.unwrap_or(last);
                    (last, l.as_str())
                })
                .collect(),
        );
    }
    let mut next = vec![0usize; keyed.len()];
    let mut out = Vec::with_capacity(keyed.iter().map(Vec::len).sum());
    loop {
        let first = (0..keyed.len())
            .filter_map(|i| keyed[i].get(next[i]).map(|(t, _)| (*t, i)))
            .min();
        let Some((_, i)) = first else { break };
        out.push((i, keyed[i][next[i]].1));
        next[i] += 1;
    }
    out
}

fn prefix(unit: &str, width: usize, colour: Option<u8>) -> String {
    match colour {
        Some(c) => format!("\x1b[{c}m{unit:<width$} |\x1b[0m "),
        None => format!("{unit:<width$} | "),
    }
}

/// Whole lines out of chunks that may end mid-line.
#[derive(Default)]
struct Lines {
    partial: String,
}

impl Lines {
    /// The complete lines `data` finishes, each with its newline.
    fn push(&mut self, data: &str) -> impl Iterator<Item = String> {
        self.partial.push_str(data);
        let mut done = Vec::new();
        while let Some(n) = self.partial.find('\n') {
            done.push(self.partial.drain(..=n).collect());
        }
        done.into_iter()
    }

    /// What is left without a newline, ended with one.
    fn rest(&mut self) -> impl Iterator<Item = String> {
        let rest = std::mem::take(&mut self.partial);
        (!rest.is_empty()).then(|| rest + "\n").into_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A jarvisd stand-in on a socket in `dir`: each connection gets the
    /// greeting, one line of log and then its end (no `LogEnd`).
    fn ending_server(dir: &std::path::Path, conns: usize) -> std::path::PathBuf {
        use jarvis_proto::{read_frame, write_frame, Hello, PROTOCOL_VERSION};
        let path = dir.join("s.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        std::thread::spawn(move || {
            for _ in 0..conns {
                let (mut s, _) = listener.accept().unwrap();
                let _: Hello = read_frame(&mut s).unwrap();
                let hello = Hello {
                    version: PROTOCOL_VERSION,
                    agent: "stand-in".into(),
                };
                write_frame(&mut s, &hello).unwrap();
                let _: Request = read_frame(&mut s).unwrap();
                let data = Response::LogData { data: "x\n".into() };
                write_frame(&mut s, &data).unwrap();
            }
        });
        path
    }

    #[test]
    fn a_follow_jarvisd_ends_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let client = Client::new(ending_server(dir.path(), 3));
        let follow = Opts {
            follow: true,
            ..Default::default()
        };
        let err = run(&client, vec!["web".into()], follow.clone()).unwrap_err();
        assert!(
            err.to_string()
                .contains("jarvisd ended the log stream of web"),
            "{err}"
        );
        let code = run(&client, vec!["a".into(), "b".into()], follow).unwrap();
        assert_eq!(code, ExitCode::FAILURE);
    }

    #[test]
    fn chunks_become_whole_lines() {
        let mut l = Lines::default();
        assert_eq!(l.push("a\nb").collect::<Vec<_>>(), vec!["a\n"]);
        assert_eq!(l.push("c\nd\n").collect::<Vec<_>>(), vec!["bc\n", "d\n"]);
        assert_eq!(l.push("e").count(), 0);
        assert_eq!(l.rest().collect::<Vec<_>>(), vec!["e\n"]);
        assert_eq!(l.rest().count(), 0);
    }

    fn at(s: &str) -> SystemTime {
        humantime::parse_rfc3339(s).unwrap()
    }

    #[test]
    fn since_takes_times_dates_and_durations() {
        let now = at("2026-11-29T14:00:00Z");
        let since = |s| parse_since_at(s, now).unwrap();
        assert_eq!(since("10m"), at("2026-11-29T13:50:00Z"));
        assert_eq!(since("1h30m"), at("2026-11-29T12:30:00Z"));
        assert_eq!(since("2s"), at("2026-11-29T13:59:58Z"));
        assert_eq!(since("2026-11-29T10:00:00Z"), at("2026-11-29T10:00:00Z"));
        assert_eq!(
            since("2026-11-29T10:00:00.25Z"),
            at("2026-11-29T10:00:00.25Z")
        );
        assert_eq!(
            since("2026-11-29T11:30:00+01:30"),
            at("2026-11-29T10:00:00Z")
        );
        assert_eq!(
            since("2026-11-29T05:00:00-05:00"),
            at("2026-11-29T10:00:00Z")
        );
        assert_eq!(since("2026-11-29"), at("2026-11-29T00:00:00Z"));
        for bad in [
            "yesterday",
            "10",
            "2026-11-29T25:00:00Z",
            "2026-11-29T10:00:00+1:00",
        ] {
            let err = parse_since_at(bad, now).unwrap_err().to_string();
            assert!(err.contains("--since"), "{bad}: {err}");
        }
    }

    #[test]
    fn a_line_s_time_is_only_a_stamp_and_a_space_at_its_start() {
        let t = "2026-11-29T14:01:48.123456789Z";
        assert_eq!(
            split_stamp(&format!("{t} hello\n")),
            (Some(at(t)), "hello\n")
        );
        // The program's own time after it is text.
        assert_eq!(
            split_stamp(&format!("{t} {t} x")),
            (Some(at(t)), &*format!("{t} x"))
        );
        for plain in [
            "hello\n",
            "2026-11-29T14:01:48Z hello\n",
            "2026-11-29T14:01:48.123456789Zhello\n",
            "2026-11-29T14:01:48.123456789Z",
        ] {
            assert_eq!(split_stamp(plain), (None, plain));
        }
    }

    #[test]
    fn tails_merge_by_time_and_keep_each_unit_s_order() {
        let l = |s: &str, text: &str| format!("2026-11-29T14:00:0{s}.000000000Z {text}\n");
        let a = vec![
            "old line of a\n".to_string(),
            l("1", "a1"),
            "untimed after a1\n".to_string(),
            l("4", "a4"),
        ];
        let b = vec![l("0", "b0"), l("1", "b1"), l("3", "b3")];
        let tails = [a, b];
        let merged: Vec<(usize, &str)> = merge(&tails)
            .into_iter()
            .map(|(i, line)| (i, split_stamp(line).1.trim_end()))
            .collect();
        assert_eq!(
            merged,
            [
                (0, "old line of a"),
                (1, "b0"),
                (0, "a1"),
                (0, "untimed after a1"),
                (1, "b1"),
                (1, "b3"),
                (0, "a4"),
            ]
        );
    }

    #[test]
    fn prefixes_line_up_and_colour_only_on_a_terminal() {
        assert_eq!(prefix("db", 4, None), "db   | ");
        assert_eq!(prefix("web", 3, Some(36)), "\x1b[36mweb |\x1b[0m ");
    }
}
