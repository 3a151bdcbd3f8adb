//! `jarvisctl logs` for one unit, several, or all. A unit's log holds its
//! output as it was written, with no timestamp per line (only jarvis's own
//! `[jarvis TIME]` notes have one), so several units' logs cannot be merged
//! by time: without `-f` their tails are printed one unit after another;
//! with `-f` whole lines are interleaved as they arrive. With more than one unit each line
//! starts with the unit's name (coloured on a terminal).

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::mpsc;

use jarvis_proto::{Request, Response};

use crate::client::Client;

/// Colours for the units' names, in turn (cyan, yellow, green, magenta,
/// blue, red), as compose picks them.
const COLOURS: [u8; 6] = [36, 33, 32, 35, 34, 31];

pub fn run(
    client: &Client,
    units: Vec<String>,
    follow: bool,
    lines: Option<usize>,
) -> anyhow::Result<ExitCode> {
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
        client.stream(
            Request::Logs {
                unit: unit.clone(),
                lines,
                follow,
                since: None,
                timestamps: false,
            },
            |data| {
                // A closed pipe (`| head`) ends the stream quietly.
                stdout
                    .write_all(data.as_bytes())
                    .and_then(|_| stdout.flush())
                    .is_ok()
            },
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    let colour = std::io::stdout().is_terminal();
    let width = units.iter().map(|u| u.len()).max().unwrap_or(0);
    let prefixes: Vec<String> = units
        .iter()
        .enumerate()
        .map(|(i, u)| prefix(u, width, colour.then_some(COLOURS[i % COLOURS.len()])))
        .collect();
    if !follow {
        // The tails, one unit after another.
        let mut stdout = std::io::stdout().lock();
        for (unit, prefix) in units.iter().zip(&prefixes) {
            let mut lines_of = Lines::default();
            let req = Request::Logs {
                unit: unit.clone(),
                lines,
                follow: false,
                since: None,
                timestamps: false,
            };
            let mut out = |l: String| write!(stdout, "{prefix}{l}").is_ok();
            let mut ok = true;
            client.stream(req, |data| {
                ok = lines_of.push(data).all(&mut out);
                ok
            })?;
            if !ok || !lines_of.rest().all(&mut out) {
                break;
            }
        }
        let _ = stdout.flush();
        return Ok(ExitCode::SUCCESS);
    }
    // One follower per unit; lines are printed whole, as they arrive.
    let (tx, rx) = mpsc::channel::<(usize, String)>();
    for (i, unit) in units.iter().enumerate() {
        let (tx, client, unit) = (tx.clone(), client.clone(), unit.clone());
        std::thread::spawn(move || {
            let mut lines_of = Lines::default();
            let req = Request::Logs {
                unit,
                lines,
                follow: true,
                since: None,
                timestamps: false,
            };
            let r = client.stream(req, |data| {
                lines_of.push(data).all(|l| tx.send((i, l)).is_ok())
            });
            if let Err(e) = r {
                let _ = tx.send((i, format!("jarvisctl: {e:#}\n")));
            }
        });
    }
    drop(tx);
    for (i, line) in rx {
        let mut stdout = std::io::stdout().lock();
        if write!(stdout, "{}{line}", prefixes[i])
            .and_then(|_| stdout.flush())
            .is_err()
        {
            break;
        }
    }
    Ok(ExitCode::SUCCESS)
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

    #[test]
    fn chunks_become_whole_lines() {
        let mut l = Lines::default();
        assert_eq!(l.push("a\nb").collect::<Vec<_>>(), vec!["a\n"]);
        assert_eq!(l.push("c\nd\n").collect::<Vec<_>>(), vec!["bc\n", "d\n"]);
        assert_eq!(l.push("e").count(), 0);
        assert_eq!(l.rest().collect::<Vec<_>>(), vec!["e\n"]);
        assert_eq!(l.rest().count(), 0);
    }

    #[test]
    fn prefixes_line_up_and_colour_only_on_a_terminal() {
        assert_eq!(prefix("db", 4, None), "db   | ");
        assert_eq!(prefix("web", 3, Some(36)), "\x1b[36mweb |\x1b[0m ");
    }
}
