//! `jarvisctl events`: what happens to units, as it happens, like `docker
//! events`. `--since DUR` first prints the events jarvisd kept (the last
//! 1,000, in memory) from that long ago; `--no-follow` stops there.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use jarvis_proto::{Event, EventKind, Request, Response};

use crate::client::Client;

/// What `jarvisctl events` was asked.
#[derive(Debug, Clone, Default)]
pub struct Opts {
    pub units: Vec<String>,
    pub since: Option<Duration>,
    pub follow: bool,
    pub json: bool,
}

pub fn run(client: &Client, opts: Opts) -> anyhow::Result<ExitCode> {
    if !opts.units.is_empty() {
        // Unknown names are an error now, not a stream that stays quiet.
        match client.expect(Request::Status {
            units: opts.units.clone(),
        })? {
            Response::Status(_) => {}
            other => anyhow::bail!("unexpected answer from jarvisd: {other:?}"),
        }
    }
    let colour = !opts.json && std::io::stdout().is_terminal();
    let stdout = std::io::stdout();
    let req = Request::Events {
        since_ms: opts
            .since
            .map(|d| d.as_millis().min(u64::MAX as u128) as u64),
        units: opts.units.clone(),
        follow: opts.follow,
    };
    client.events(req, |e| {
        let line = if opts.json {
            serde_json::to_string(e).unwrap_or_default()
        } else {
            line(e, colour)
        };
        let mut out = stdout.lock();
        // A closed pipe (`| head`) ends the stream quietly.
        writeln!(out, "{line}").and_then(|()| out.flush()).is_ok()
    })?;
    Ok(ExitCode::SUCCESS)
}

/// One event as a line: time, unit (`jarvisd` for its own), kind, message.
pub fn line(e: &Event, colour: bool) -> String {
    let unit = e.unit.as_deref().unwrap_or("jarvisd");
    let kind = e.kind.as_str();
    let kind = match (colour, paint(e.kind)) {
        (true, Some(c)) => format!("\x1b[{c}m{kind:<12}\x1b[0m"),
        _ => format!("{kind:<12}"),
    };
    let message = e.message.split('\n').collect::<Vec<_>>().join("; ");
    format!("{}  {unit:<16} {kind} {message}", e.time)
        .trim_end()
        .to_string()
}

/// Red for what needs a look, yellow for what may, green for what is well.
fn paint(kind: EventKind) -> Option<u8> {
    use EventKind::*;
    match kind {
        Failed | OomKilled | GpuFallback | Rollback | DeviceGone | Unhealthy => Some(31),
        Restarted => Some(33),
        Started | Healthy | GpuOk | DeviceBack => Some(32),
        Exited | Stopped | Placed => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_has_time_unit_kind_and_message_on_one_line() {
        let e = Event {
            seq: 7,
            time: "2026-11-29T14:01:48.123Z".into(),
            unit: Some("ollama".into()),
            kind: EventKind::Restarted,
            message: "exited with code 1; restarting in 2s".into(),
        };
        assert_eq!(
            line(&e, false),
            "2026-11-29T14:01:48.123Z  ollama           restarted    exited with code 1; restarting in 2s"
        );
        let own = Event {
            unit: None,
            kind: EventKind::Rollback,
            message: "generation 3 failed\nits gate".into(),
            ..e
        };
        let l = line(&own, true);
        assert!(
            l.contains("jarvisd") && l.contains("\x1b[31m") && !l.contains('\n'),
            "{l}"
        );
    }
}
