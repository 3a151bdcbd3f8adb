//! jarvisd's HTTP listener (`--http ADDR`), opened only when asked.
//!
//! ## Routes
//!
//! Reads, to loopback peers freely and to others only with `Authorization:
//! Bearer TOKEN` (or `Basic` with the token as the password, which is how
//! a browser sends it) and `--http-token-file`'s token (401 otherwise):
//!
//! - `GET /api/v1/status`: the JSON `jarvisctl status --json` prints.
//! - `GET /metrics`: the same in Prometheus' format.
//! - `GET /api/v1/events`: server-sent events of state changes (`id` the
//!   event's seq, `event` its kind, `data` its JSON; `?since=10m`,
//!   `?unit=NAME` repeatable, `Last-Event-ID` resumes).
//! - `GET /api/v1/units/NAME/logs?lines=N`: the tail of a unit's log as
//!   JSON; `&follow=1`: server-sent events, the tail then each line as it
//!   is written.
//! - `GET /api/v1/units/NAME/bench`: the unit's stored benchmark result,
//!   404 when there is none.
//! - `GET /`, `/assets/app.js`, `/assets/app.css`: the dashboard (see
//!   `dashboard.rs`), one page that reads the routes above; a refused
//!   browser is asked for the token as a password (`WWW-Authenticate:
//!   Basic`).
//!
//! Unit names in routes must be unit names (`[a-z0-9][a-z0-9-]*`), 400
//! otherwise: no name reaches a path that could leave its directory.
//!
//! And the git push webhook: `POST /hooks/git`
//! (Forgejo, Gitea and GitHub send the same shape). Its body is signed with
//! HMAC-SHA256 under the secret in `--webhook-secret-file`:
//! `X-Hub-Signature-256: sha256=<hex>` (GitHub, Forgejo, Gitea) or
//! `X-Gitea-Signature: <hex>` (Gitea, Forgejo). A request whose signature
//! is missing or does not match gets 401 and does nothing; a good one wakes
//! the git poller (`crate::trigger`) and gets 202 at once: the apply runs in
//! the background, since a health gate can take minutes and forges give up
//! on a hook after about 10 s. Its outcome is in jarvisd's log and in
//! `jarvisctl generations`. A forge's `ping` event (sent when a hook is
//! made) gets 200 and applies nothing. The body itself is not parsed: the
//! poller asks the remote where the branch points, so a push to another
//! branch costs one look and changes nothing.
//!
//! ## What the listener may do
//!
//! It shares nothing with the control socket: it holds a [`Trigger`] (it
//! can ask for the configured repository to be checked) and the secret,
//! and a [`StatusSource`], which can ask the loop for two reads and
//! nothing else: the status of all units, and a unit's log (the loop
//! answers a `Logs` request with the log itself, read and followed here
//! as for `jarvisctl logs`, through jarvisd's one inotify watcher).
//! Without `--git` or without `--webhook-secret-file` the hook answers
//! 404 saying which is missing (jarvisd says so at start too).
//!
//! ## Bounds
//!
//! At most [`MAX_CONNECTIONS`] connections at once (more wait in the
//! kernel's backlog), one request per connection, headers within
//! [`HEADER_TIMEOUT`] and at most 64 KiB, a body of at most [`MAX_BODY`]
//! read within [`BODY_TIMEOUT`] (413 and 408 otherwise), and a connection
//! never lasts more than [`CONNECTION_TIMEOUT`]. Streams (the events, a
//! followed log) hold one of [`MAX_STREAMS`] stream slots instead of a
//! connection slot and last at most [`STREAM_TIMEOUT`]. A log read
//! returns at most [`MAX_LOG_LINES`] lines (default
//! [`DEFAULT_LOG_LINES`]) and [`MAX_LOG_BYTES`] of text, each line cut at
//! [`MAX_LOG_LINE`]; a stored benchmark result is read up to 8 MiB. A push
//! during an apply queues at most one more check (see `crate::trigger`).
//!
//! ## Adding routes
//!
//! [`router`] is an axum `Router`. Hooks prove themselves (a signature
//! over the body), so they are served to any peer the listener is bound
//! for. Routes that read jarvisd's state (`/api/v1/...`, `/metrics`) go
//! in its `reads` router with the [`Api`] state and check
//! [`allowed`] first: loopback peers through, others with the bearer token;
//! every request carries its peer's address as `ConnectInfo<SocketAddr>`.
//! The [`Api`] can ask the loop for the status of all units and a unit's
//! log, and nothing else. A route whose answer is a stream must be named
//! in `is_stream`, or it is cut at [`CONNECTION_TIMEOUT`].

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use sha2::Sha256;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

use crate::trigger::Trigger;

#[path = "dashboard.rs"]
mod dashboard;

/// The largest body a hook takes (a forge's push event is a few KiB to a
/// few hundred).
pub const MAX_BODY: usize = 1024 * 1024;
/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 32;
/// How long a client may take to send its request's headers.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client may take to send its request's body.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest a connection lasts, whatever it does.
pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(30);
/// The most a request's headers may take.
const MAX_HEADER_BYTES: usize = 64 * 1024;

/// The path of the git push webhook.
pub const GIT_HOOK: &str = "/hooks/git";

/// A key file's bytes, less one trailing newline (`echo key > file` writes
/// one; the key has none), and its mode. An empty file is refused, saying
/// what to put in it. Read at most 64 KiB: a key is short.
fn read_key_file(path: &Path, flag: &str, what: &str) -> anyhow::Result<(Vec<u8>, u32)> {
    use std::io::Read as _;
    let file = std::fs::File::open(path).with_context(|| format!("{flag} {}", path.display()))?;
    let mode = file.metadata()?.permissions().mode();
    let mut bytes = Vec::new();
    file.take(64 * 1024)
        .read_to_end(&mut bytes)
        .with_context(|| format!("{flag} {}", path.display()))?;
    if bytes.ends_with(b"\n") {
        bytes.pop();
        if bytes.ends_with(b"\r") {
            bytes.pop();
        }
    }
    anyhow::ensure!(
        !bytes.is_empty(),
        "{flag} {}: the file is empty; put {what} in it",
        path.display()
    );
    Ok((bytes, mode))
}

/// A webhook's shared secret, as read from its file.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    /// Reads `--webhook-secret-file` (see [`read_key_file`]); one everyone
    /// may read is used, with a warning.
    pub fn read(path: &Path) -> anyhow::Result<Secret> {
        let (bytes, mode) = read_key_file(path, "--webhook-secret-file", "the webhook's secret")?;
        if mode & 0o004 != 0 {
            tracing::warn!(file = %path.display(), "the webhook's secret is readable by everyone: chmod 600 it");
        }
        Ok(Secret(bytes))
    }

    pub fn new(bytes: impl Into<Vec<u8>>) -> Secret {
        Secret(bytes.into())
    }
}

/// `--http-token-file`: the bearer token peers other than loopback must
/// send to read jarvisd's state.
#[derive(Clone)]
pub struct Token(Vec<u8>);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

impl Token {
    /// Reads `--http-token-file` (see [`read_key_file`]); one everyone
    /// may read is refused.
    pub fn read(path: &Path) -> anyhow::Result<Token> {
        let (bytes, mode) = read_key_file(
            path,
            "--http-token-file",
            "a long random token (e.g. openssl rand -hex 32)",
        )?;
        anyhow::ensure!(
            mode & 0o004 == 0,
            "--http-token-file {}: everyone may read it; chmod 600 it",
            path.display()
        );
        Ok(Token(bytes))
    }

    pub fn new(bytes: impl Into<Vec<u8>>) -> Token {
        Token(bytes.into())
    }

    /// Whether `presented` is the token, in time that does not depend on
    /// where they differ.
    fn matches(&self, presented: &[u8]) -> bool {
        use subtle::ConstantTimeEq;
        self.0.len() == presented.len() && bool::from(self.0.ct_eq(presented))
    }
}

/// What the read-only routes may ask the loop: the status of all units
/// and a unit's log, and nothing else (the listener cannot start, stop or
/// change anything).
#[derive(Clone)]
pub struct StatusSource(tokio::sync::mpsc::UnboundedSender<crate::msg::Msg>);

impl StatusSource {
    pub fn new(tx: tokio::sync::mpsc::UnboundedSender<crate::msg::Msg>) -> StatusSource {
        StatusSource(tx)
    }

    async fn report(&self) -> Option<jarvis_proto::StatusReport> {
        crate::control::status_report(&self.0).await
    }

    /// The log of the unit `name`, to read (its tail, or following it):
    /// the loop answers a `Logs` request with the log itself, as it does
    /// for `jarvisctl logs`. 404 for a unit it does not know, 503 when it
    /// is gone.
    async fn log(&self, name: &str) -> Result<Arc<crate::logs::UnitLog>, (StatusCode, String)> {
        let gone = || {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "jarvisd is shutting down".to_string(),
            )
        };
        let (reply, rx) = tokio::sync::oneshot::channel();
        let req = jarvis_proto::Request::Logs {
            unit: name.to_string(),
            lines: Some(0),
            follow: false,
            since: None,
            timestamps: false,
        };
        self.0
            .send(crate::msg::Msg::Request { req, reply })
            .map_err(|_| gone())?;
        match rx.await.map_err(|_| gone())? {
            crate::msg::Reply::Log(log) => Ok(log),
            crate::msg::Reply::Now(jarvis_proto::Response::Error { message }) => {
                Err((StatusCode::NOT_FOUND, message))
            }
            _ => Err((
                StatusCode::INTERNAL_SERVER_ERROR,
                "unexpected answer to a log read".to_string(),
            )),
        }
    }
}

/// The read-only API (`/api/v1/...`): who may read, and where from.
#[derive(Clone)]
pub struct Api {
    pub status: StatusSource,
    pub token: Option<Token>,
    /// The events `/api/v1/events` streams.
    pub events: Arc<crate::events::EventLog>,
    /// Where stored benchmark results are (`crate::bench::dir`), for
    /// `/api/v1/units/NAME/bench`; `None`: none are served.
    pub bench_dir: Option<std::path::PathBuf>,
}

/// The path of the server-sent events of state changes.
pub const API_EVENTS: &str = "/api/v1/events";
/// Streams (server-sent events) served at once; more get 503.
pub const MAX_STREAMS: usize = 64;
/// The longest a stream lasts; a browser's `EventSource` then reconnects
/// by itself and, with `Last-Event-ID`, misses nothing kept.
pub const STREAM_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// How often an idle stream sends a comment, so that proxies keep it open
/// and a peer that went away is noticed.
const STREAM_KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The path of `status --json`'s JSON.
pub const API_STATUS: &str = "/api/v1/status";
/// The path of the Prometheus metrics.
pub const METRICS: &str = "/metrics";

/// Lets a read through when its peer is on loopback, or when it carries
/// `Authorization: Bearer TOKEN` with `--http-token-file`'s token; 401
/// otherwise, saying what is missing.
fn allowed(api: &Api, peer: SocketAddr, headers: &HeaderMap) -> Result<(), &'static str> {
    if peer.ip().is_loopback() {
        return Ok(());
    }
    let Some(token) = &api.token else {
        return Err(
            "reading jarvisd's state from another host needs a token: start jarvisd with \
             --http-token-file FILE and send Authorization: Bearer <its content>",
        );
    };
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    // A browser cannot add a header to the dashboard's page or its
    // EventSource, but it asks for a password when told to (`Basic`) and
    // then sends it with every request: the token is the password, the
    // user name is ignored.
    let presented = match auth {
        Some(v) => match (v.strip_prefix("Bearer "), v.strip_prefix("Basic ")) {
            (Some(b), _) => Some(b.trim().as_bytes().to_vec()),
            (None, Some(b)) => {
                base64_decode(b.trim()).map(|up| match up.iter().position(|c| *c == b':') {
                    Some(i) => up[i + 1..].to_vec(),
                    None => up,
                })
            }
            (None, None) => None,
        },
        None => None,
    };
    match presented {
        Some(p) if token.matches(&p) => Ok(()),
        Some(_) => Err("wrong token"),
        None => Err("send Authorization: Bearer <the content of --http-token-file>"),
    }
}

/// Standard base64 (with or without padding) decoded; `None` when it is
/// not base64.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// 401 for a read [`allowed`] refused, saying why.
fn refused(peer: SocketAddr, why: &str) -> Response {
    tracing::info!(%peer, "http: refused a read without a good token");
    text(StatusCode::UNAUTHORIZED, why)
}

/// `GET /api/v1/status`: the JSON `jarvisctl status --json` prints.
async fn api_status(
    State(api): State<Arc<Api>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    if let Err(why) = allowed(&api, peer, &headers) {
        return refused(peer, why);
    }
    match api.status.report().await {
        Some(report) => match serde_json::to_vec(&report) {
            Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
            Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        },
        None => text(StatusCode::SERVICE_UNAVAILABLE, "jarvisd is shutting down"),
    }
}

/// `GET /metrics`: Prometheus' text format (see `crate::metrics`).
async fn api_metrics(
    State(api): State<Arc<Api>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    if let Err(why) = allowed(&api, peer, &headers) {
        return refused(peer, why);
    }
    let Some(report) = api.status.report().await else {
        return text(StatusCode::SERVICE_UNAVAILABLE, "jarvisd is shutting down");
    };
    // Formatting 100 units takes about a millisecond: not on the thread the
    // event loop shares.
    match tokio::task::spawn_blocking(move || crate::metrics::render(&report)).await {
        Ok(body) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// What `/api/v1/events` was asked for: `?since=DUR` (kept events at
/// most DUR old, e.g. `10m`) and `?unit=NAME` (repeatable; none: all).
fn events_filter(query: Option<&str>) -> Result<crate::events::Filter, String> {
    let mut filter = crate::events::Filter::default();
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = percent_decode(v).ok_or_else(|| format!("{k}: bad percent-encoding"))?;
        match k {
            "since" => {
                let d = humantime::parse_duration(&v)
                    .map_err(|e| format!("since={v}: {e} (e.g. since=10m)"))?;
                filter.since = Some(d);
            }
            "unit" => {
                if filter.units.len() >= 1000 {
                    return Err("too many unit= parameters".into());
                }
                filter.units.push(v);
            }
            other => {
                return Err(format!(
                    "unknown parameter {other:?}: expected since= or unit="
                ))
            }
        }
    }
    Ok(filter)
}

/// `%XX` and `+` decoded; `None` for a bad escape or bytes that are not
/// UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// `GET /api/v1/events`: server-sent events, one per state change (`id`
/// the event's `seq`, `event` its kind, `data` its JSON as `jarvisctl
/// events --json` prints it). A reconnecting `EventSource` sends
/// `Last-Event-ID` and first gets the kept events after it.
async fn api_events(
    State(api): State<Arc<Api>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Response {
    use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
    use futures_util::StreamExt;
    if let Err(why) = allowed(&api, peer, &headers) {
        return refused(peer, why);
    }
    let mut filter = match events_filter(uri.query()) {
        Ok(f) => f,
        Err(e) => return text(StatusCode::BAD_REQUEST, e),
    };
    let after = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if after.is_some() {
        filter.since = Some(Duration::MAX);
    }
    let (backlog, rx) = api.events.subscribe(&filter);
    let backlog = backlog
        .into_iter()
        .filter(move |e| after.is_none_or(|a| e.seq > a));
    let live = futures_util::stream::unfold((rx, filter), |(mut rx, filter)| async move {
        crate::events::next(&mut rx, &filter)
            .await
            .map(|e| (e, (rx, filter)))
    });
    let stream = futures_util::stream::iter(backlog).chain(live).map(|e| {
        SseEvent::default()
            .id(e.seq.to_string())
            .event(e.kind.as_str())
            .data(serde_json::to_string(&*e).unwrap_or_default())
    });
    let stream = stream.map(Ok::<_, std::convert::Infallible>);
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(STREAM_KEEP_ALIVE))
        .into_response()
}

/// The prefix of the per-unit routes: `/api/v1/units/NAME/logs` and
/// `/api/v1/units/NAME/bench`.
pub const API_UNITS: &str = "/api/v1/units";
/// The most lines one log read returns (`?lines=` above it is cut to it).
pub const MAX_LOG_LINES: usize = 1000;
/// Lines a log read returns when `?lines=` is not given.
pub const DEFAULT_LOG_LINES: usize = 100;
/// The most bytes of text one log read returns: older lines are left out
/// first.
pub const MAX_LOG_BYTES: usize = 256 * 1024;
/// The longest a log line is sent; the rest is cut.
pub const MAX_LOG_LINE: usize = 16 * 1024;
/// The largest stored benchmark result read.
const MAX_BENCH_FILE: u64 = 8 * 1024 * 1024;

/// One line of a unit's log as the API sends it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
struct LogLine {
    /// When it was written, RFC 3339; null when not known.
    time: Option<String>,
    text: String,
    /// A line of jarvis's own about the unit ("started pid 12").
    note: bool,
}

impl LogLine {
    fn new(time: Option<std::time::SystemTime>, text: &[u8], note: bool) -> LogLine {
        let cut = &text[..text.len().min(MAX_LOG_LINE)];
        LogLine {
            time: time.map(jarvis_runtime::logfile::stamp),
            text: String::from_utf8_lossy(cut).into_owned(),
            note,
        }
    }
}

/// What a log read asked for: `?lines=N` and `?follow=1`.
fn log_query(query: Option<&str>) -> Result<(usize, bool), String> {
    let (mut lines, mut follow) = (DEFAULT_LOG_LINES, false);
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "lines" => {
                let n: usize = v
                    .parse()
                    .map_err(|_| format!("lines={v}: expected a number of lines"))?;
                lines = n.min(MAX_LOG_LINES);
            }
            "follow" => {
                follow = match v {
                    "" | "1" | "true" => true,
                    "0" | "false" => false,
                    _ => return Err(format!("follow={v}: expected 1 or 0")),
                }
            }
            other => {
                return Err(format!(
                    "unknown parameter {other:?}: expected lines= or follow="
                ))
            }
        }
    }
    Ok((lines, follow))
}

/// A unit's name from a route, checked against the unit name grammar
/// (`[a-z0-9][a-z0-9-]*`, so nothing that could leave a directory).
fn unit_name(name: &str) -> Result<&str, Box<Response>> {
    if jarvis_unit::is_valid_unit_name(name) {
        Ok(name)
    } else {
        Err(Box::new(text(
            StatusCode::BAD_REQUEST,
            "not a unit name (lower-case letters, digits and -)",
        )))
    }
}

/// The last `lines` lines of `log`, at most [`MAX_LOG_BYTES`] of text
/// (older lines left out first, and then `truncated`), and where the log
/// ended. Blocking.
fn log_tail(
    log: &crate::logs::UnitLog,
    lines: usize,
) -> std::io::Result<(Vec<LogLine>, bool, crate::logs::Position)> {
    let from = log.end();
    let tail = log.tail(lines, None, &from)?;
    let mut out: Vec<LogLine> = Vec::new();
    let mut bytes = 0;
    let mut truncated = false;
    for l in tail.lines.iter().rev() {
        let line = LogLine::new(l.time, &l.text, l.note);
        bytes += line.text.len() + 1;
        if bytes > MAX_LOG_BYTES {
            truncated = true;
            break;
        }
        out.push(line);
    }
    out.reverse();
    Ok((out, truncated, from))
}

/// Records appended to a log, made into whole lines (a line written in
/// parts comes as one).
#[derive(Default)]
struct LineAssembler {
    carry: Vec<u8>,
    open: Option<LogLine>,
}

impl LineAssembler {
    fn feed(&mut self, data: &[u8], out: &mut Vec<LogLine>) {
        use jarvis_runtime::logfile::{parse_record, Kind};
        self.carry.extend_from_slice(data);
        let Some(n) = self.carry.iter().rposition(|b| *b == b'\n') else {
            if self.carry.len() > MAX_LOG_LINE {
                // No record ends: send what there is as a line.
                out.push(LogLine::new(None, &std::mem::take(&mut self.carry), false));
            }
            return;
        };
        let rest = self.carry.split_off(n + 1);
        let records = std::mem::replace(&mut self.carry, rest);
        for raw in records[..n].split(|b| *b == b'\n') {
            let r = parse_record(raw);
            if r.kind == Kind::Note {
                out.extend(self.open.take());
                out.push(LogLine::new(r.time, r.text, true));
                continue;
            }
            let line = match self.open.take() {
                Some(mut open) => {
                    let room = MAX_LOG_LINE.saturating_sub(open.text.len());
                    open.text
                        .push_str(&String::from_utf8_lossy(&r.text[..r.text.len().min(room)]));
                    open
                }
                None => LogLine::new(r.time, r.text, false),
            };
            if r.kind == Kind::Part {
                self.open = Some(line);
            } else {
                out.push(line);
            }
        }
    }
}

/// Aborts its task when dropped (a log stream whose reader went away).
struct AbortOnDrop(tokio::task::JoinHandle<std::io::Result<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// `GET /api/v1/units/NAME/logs?lines=N`: the last N lines of the unit's
/// log (default [`DEFAULT_LOG_LINES`], at most [`MAX_LOG_LINES`] and
/// [`MAX_LOG_BYTES`]) as JSON, `{"unit", "lines": [{"time", "text",
/// "note"}], "truncated"}`. With `&follow=1`, server-sent events instead:
/// each line as an event `line` whose data is its JSON, the tail first,
/// then each line as it is written.
async fn api_unit_logs(
    State(api): State<Arc<Api>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    axum::extract::Path(name): axum::extract::Path<String>,
    uri: axum::http::Uri,
) -> Response {
    use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
    use futures_util::StreamExt;
    if let Err(why) = allowed(&api, peer, &headers) {
        return refused(peer, why);
    }
    let name = match unit_name(&name) {
        Ok(n) => n.to_string(),
        Err(resp) => return *resp,
    };
    let (lines, follow) = match log_query(uri.query()) {
        Ok(q) => q,
        Err(e) => return text(StatusCode::BAD_REQUEST, e),
    };
    let log = match api.status.log(&name).await {
        Ok(log) => log,
        Err((status, message)) => return text(status, message),
    };
    let read = {
        let log = log.clone();
        jarvis_runtime::blocking(move || log_tail(&log, lines)).await
    };
    let (tail, truncated, from) = match read {
        Ok(t) => t,
        Err(e) => {
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot read the log: {e}"),
            )
        }
    };
    if !follow {
        let body = serde_json::json!({"unit": name, "lines": tail, "truncated": truncated});
        return (
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response();
    }
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let follower = AbortOnDrop(tokio::spawn(crate::logs::follow(
        log.path(),
        from,
        tx,
        log.watcher.clone(),
    )));
    let live = futures_util::stream::unfold(
        (rx, LineAssembler::default(), follower),
        |(mut rx, mut lines, follower)| async move {
            let mut out = Vec::new();
            match rx.recv().await? {
                crate::logs::Followed::Data(d) => lines.feed(&d, &mut out),
                crate::logs::Followed::Notice(n) => out.push(LogLine::new(
                    Some(std::time::SystemTime::now()),
                    format!("[jarvis] {n}").as_bytes(),
                    true,
                )),
            }
            Some((futures_util::stream::iter(out), (rx, lines, follower)))
        },
    )
    .flatten();
    let stream = futures_util::stream::iter(tail).chain(live).map(|l| {
        Ok::<_, std::convert::Infallible>(
            SseEvent::default()
                .event("line")
                .data(serde_json::to_string(&l).unwrap_or_default()),
        )
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(STREAM_KEEP_ALIVE))
        .into_response()
}

/// `GET /api/v1/units/NAME/bench`: the unit's stored benchmark result
/// (`<state>/bench/NAME.json`, as jarvisd analysed it: `metrics` with each
/// form's median and p95, `verdict`, `recommendation`, `reason`), less its
/// raw rounds (`round_count` says how many); 404 when there is none.
async fn api_unit_bench(
    State(api): State<Arc<Api>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    axum::extract::Path(name): axum::extract::Path<String>,
) -> Response {
    if let Err(why) = allowed(&api, peer, &headers) {
        return refused(peer, why);
    }
    let name = match unit_name(&name) {
        Ok(n) => n.to_string(),
        Err(resp) => return *resp,
    };
    let none = || {
        text(
            StatusCode::NOT_FOUND,
            format!("no benchmark result for {name} (jarvisctl bench {name} stores one)"),
        )
    };
    let Some(dir) = api.bench_dir.clone() else {
        return none();
    };
    let path = dir.join(format!("{name}.json"));
    let read = jarvis_runtime::blocking(move || {
        use std::io::Read as _;
        let mut bytes = Vec::new();
        std::fs::File::open(&path)?
            .take(MAX_BENCH_FILE)
            .read_to_end(&mut bytes)?;
        Ok::<_, std::io::Error>(bytes)
    })
    .await;
    let bytes = match read {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return none(),
        Err(e) => {
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot read the benchmark result: {e}"),
            )
        }
    };
    let mut value: serde_json::Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(e) => {
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the stored benchmark result is not JSON: {e}"),
            )
        }
    };
    if let Some(obj) = value.as_object_mut() {
        let rounds = obj
            .remove("rounds")
            .and_then(|r| r.as_array().map(Vec::len))
            .unwrap_or(0);
        obj.insert("round_count".into(), rounds.into());
    }
    (
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

/// Whether a request's answer is a stream that may outlive
/// [`CONNECTION_TIMEOUT`]: the events, and a log followed.
fn is_stream(req: &hyper::Request<hyper::body::Incoming>) -> bool {
    req.method() == axum::http::Method::GET && stream_path(req.uri())
}

fn stream_path(uri: &axum::http::Uri) -> bool {
    let path = uri.path();
    if path == API_EVENTS {
        return true;
    }
    let is_log = path
        .strip_prefix(API_UNITS)
        .and_then(|p| p.strip_prefix('/'))
        .and_then(|p| p.strip_suffix("/logs"))
        .is_some_and(|name| !name.contains('/'));
    is_log && log_query(uri.query()).is_ok_and(|(_, follow)| follow)
}

/// The git webhook, served or not.
#[derive(Debug, Clone)]
pub enum Hook {
    /// Served: a good signature kicks the trigger.
    Ready { secret: Secret, trigger: Trigger },
    /// Not served, and why (the 404's body).
    Off(String),
}

/// Why a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadSignature {
    #[error("no signature: send X-Hub-Signature-256: sha256=<hex> or X-Gitea-Signature: <hex>")]
    Missing,
    #[error("{0}: not an HMAC-SHA256 in hex")]
    Malformed(&'static str),
    #[error("{0}: the signature does not match the body (is the hook's secret the one in --webhook-secret-file?)")]
    Mismatch(&'static str),
}

const HUB: &str = "x-hub-signature-256";
const GITEA: &str = "x-gitea-signature";

/// Checks the body's HMAC-SHA256 under `secret` against the request's
/// signature header, in constant time (`hmac`'s `verify_slice`).
/// `X-Hub-Signature-256` is used when present, else `X-Gitea-Signature`.
/// Answers the header that matched.
pub fn verify(
    secret: &Secret,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<&'static str, BadSignature> {
    let (name, hex) = if let Some(v) = headers.get(HUB) {
        let v = v.to_str().map_err(|_| BadSignature::Malformed(HUB))?;
        let hex = v
            .trim()
            .strip_prefix("sha256=")
            .ok_or(BadSignature::Malformed(HUB))?;
        (HUB, hex.to_string())
    } else if let Some(v) = headers.get(GITEA) {
        let v = v.to_str().map_err(|_| BadSignature::Malformed(GITEA))?;
        (GITEA, v.trim().to_string())
    } else {
        return Err(BadSignature::Missing);
    };
    let given = hex::decode(&hex).map_err(|_| BadSignature::Malformed(name))?;
    if given.len() != 32 {
        return Err(BadSignature::Malformed(name));
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(&secret.0).expect("HMAC takes a key of any size");
    mac.update(body);
    mac.verify_slice(&given)
        .map_err(|_| BadSignature::Mismatch(name))?;
    Ok(name)
}

/// The forge's name for the event, from whichever forge sent it.
fn event(headers: &HeaderMap) -> Option<&str> {
    [
        "x-github-event",
        "x-forgejo-event",
        "x-gitea-event",
        "x-gogs-event",
    ]
    .iter()
    .find_map(|h| headers.get(*h).and_then(|v| v.to_str().ok()))
}

fn text(status: StatusCode, body: impl Into<String>) -> Response {
    let mut body = body.into();
    if !body.ends_with('\n') {
        body.push('\n');
    }
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

/// `POST /hooks/git`.
async fn git_hook(State(hook): State<Arc<Hook>>, req: Request) -> Response {
    let (secret, trigger) = match &*hook {
        Hook::Ready { secret, trigger } => (secret, trigger),
        Hook::Off(why) => return text(StatusCode::NOT_FOUND, why.clone()),
    };
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.to_string())
        .unwrap_or_default();
    let too_large = || {
        tracing::warn!(%peer, "webhook: refused a body over {MAX_BODY} bytes");
        text(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is over {MAX_BODY} bytes"),
        )
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return too_large();
    }
    let (parts, body) = req.into_parts();
    let body =
        match tokio::time::timeout(BODY_TIMEOUT, Limited::new(body, MAX_BODY).collect()).await {
            Err(_) => {
                return text(
                    StatusCode::REQUEST_TIMEOUT,
                    format!(
                        "the body did not come within {}",
                        humantime::format_duration(BODY_TIMEOUT)
                    ),
                )
            }
            Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => return too_large(),
            Ok(Err(e)) => {
                return text(
                    StatusCode::BAD_REQUEST,
                    format!("cannot read the body: {e}"),
                )
            }
            Ok(Ok(collected)) => collected.to_bytes(),
        };
    let header = match verify(secret, &parts.headers, &body) {
        Ok(h) => h,
        Err(e) => {
            tracing::warn!(%peer, reason = %e, "webhook: refused a request");
            return text(StatusCode::UNAUTHORIZED, e.to_string());
        }
    };
    let event = event(&parts.headers).unwrap_or("");
    if event == "ping" {
        tracing::info!(%peer, "webhook: ping");
        return text(StatusCode::OK, "pong: the signature is good");
    }
    tracing::info!(%peer, event, signature = header, "webhook: a push: checking the branch");
    trigger.kick();
    text(
        StatusCode::ACCEPTED,
        "accepted: jarvisd checks the branch and applies a new revision in the background \
         (jarvisctl generations shows the outcome)",
    )
}

/// Anything else.
async fn not_found() -> Response {
    text(StatusCode::NOT_FOUND, "no such route")
}

/// The listener's routes.
pub fn router(hook: Hook, api: Api) -> Router {
    let reads = Router::new()
        .route(API_STATUS, get(api_status))
        .route(METRICS, get(api_metrics))
        .route(API_EVENTS, get(api_events))
        .route("/api/v1/units/{name}/logs", get(api_unit_logs))
        .route("/api/v1/units/{name}/bench", get(api_unit_bench))
        .merge(dashboard::routes())
        .with_state(Arc::new(api));
    Router::new()
        .route(GIT_HOOK, post(git_hook))
        .with_state(Arc::new(hook))
        .merge(reads)
        .fallback(not_found)
}

/// Binds `--http ADDR`.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("--http {addr}: cannot listen"))
}

/// Serves `app` on `listener` within the bounds above, until dropped.
pub async fn serve(listener: TcpListener, app: Router) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let streams = Arc::new(Semaphore::new(MAX_STREAMS));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "http: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let app = app.clone();
        let streams = streams.clone();
        tokio::spawn(async move {
            // A stream gives its connection slot back and holds a stream
            // slot instead, so that open dashboards never starve requests.
            let slot = Arc::new(std::sync::Mutex::new(Some(permit)));
            let streaming = Arc::new(std::sync::Mutex::new(None));
            let svc = {
                let (slot, streaming) = (slot.clone(), streaming.clone());
                hyper::service::service_fn(move |mut req: hyper::Request<_>| {
                    req.extensions_mut().insert(ConnectInfo(peer));
                    let refused = is_stream(&req) && {
                        match streams.clone().try_acquire_owned() {
                            Ok(p) => {
                                *streaming.lock().unwrap_or_else(|e| e.into_inner()) = Some(p);
                                slot.lock().unwrap_or_else(|e| e.into_inner()).take();
                                false
                            }
                            Err(_) => true,
                        }
                    };
                    let app = app.clone();
                    async move {
                        if refused {
                            return Ok(text(
                                StatusCode::SERVICE_UNAVAILABLE,
                                format!("{MAX_STREAMS} streams are open already; try again later"),
                            ));
                        }
                        app.oneshot(req.map(axum::body::Body::new)).await
                    }
                })
            };
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .max_buf_size(MAX_HEADER_BYTES)
                .keep_alive(false)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), svc);
            tokio::pin!(conn);
            let ended = match tokio::time::timeout(CONNECTION_TIMEOUT, &mut conn).await {
                Err(_)
                    if streaming
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .is_some() =>
                {
                    tokio::time::timeout(STREAM_TIMEOUT - CONNECTION_TIMEOUT, &mut conn).await
                }
                other => other,
            };
            drop(slot);
            match ended {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "http: connection ended"),
                Err(_) => tracing::debug!(%peer, "http: connection took too long: closed"),
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::HeaderValue;

    // GitHub's published example: the secret "It's a Secret to Everybody"
    // and the body "Hello, World!".
    const SECRET: &str = "It's a Secret to Everybody";
    const BODY: &str = "Hello, World!";
    const SIG: &str = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn signatures_are_checked_in_both_forms() {
        let s = Secret::new(SECRET);
        let hub = format!("sha256={SIG}");
        assert_eq!(
            verify(&s, &headers(&[(HUB, &hub)]), BODY.as_bytes()),
            Ok(HUB)
        );
        assert_eq!(
            verify(&s, &headers(&[(GITEA, SIG)]), BODY.as_bytes()),
            Ok(GITEA)
        );
        // Upper-case hex is the same digest.
        assert_eq!(
            verify(
                &s,
                &headers(&[(GITEA, &SIG.to_uppercase())]),
                BODY.as_bytes()
            ),
            Ok(GITEA)
        );
        // Another body, another secret.
        assert_eq!(
            verify(&s, &headers(&[(HUB, &hub)]), b"Hello, World?"),
            Err(BadSignature::Mismatch(HUB))
        );
        assert_eq!(
            verify(
                &Secret::new("another"),
                &headers(&[(GITEA, SIG)]),
                BODY.as_bytes()
            ),
            Err(BadSignature::Mismatch(GITEA))
        );
        // X-Hub-Signature-256 decides when both are there.
        let wrong = format!("sha256={}", "0".repeat(64));
        assert_eq!(
            verify(
                &s,
                &headers(&[(HUB, &wrong), (GITEA, SIG)]),
                BODY.as_bytes()
            ),
            Err(BadSignature::Mismatch(HUB))
        );
    }

    #[test]
    fn missing_and_malformed_signatures_are_refused() {
        let s = Secret::new(SECRET);
        let b = BODY.as_bytes();
        assert_eq!(verify(&s, &headers(&[]), b), Err(BadSignature::Missing));
        // The GitHub header without its sha256= prefix, a SHA-1 one, not
        // hex, or too short.
        for v in [
            SIG.to_string(),
            format!("sha1={SIG}"),
            "sha256=zz".into(),
            format!("sha256={}", &SIG[..62]),
        ] {
            assert_eq!(
                verify(&s, &headers(&[(HUB, &v)]), b),
                Err(BadSignature::Malformed(HUB)),
                "{v}"
            );
        }
        assert_eq!(
            verify(&s, &headers(&[(GITEA, "")]), b),
            Err(BadSignature::Malformed(GITEA))
        );
        // The old SHA-1 header alone is no signature.
        assert_eq!(
            verify(&s, &headers(&[("x-hub-signature", SIG)]), b),
            Err(BadSignature::Missing)
        );
    }

    #[test]
    fn the_secret_file_loses_one_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("secret");
        std::fs::write(&f, format!("{SECRET}\n")).unwrap();
        assert_eq!(Secret::read(&f).unwrap().0, SECRET.as_bytes());
        std::fs::write(&f, " x \r\n").unwrap();
        assert_eq!(Secret::read(&f).unwrap().0, b" x ");
        std::fs::write(&f, "\n").unwrap();
        assert!(Secret::read(&f).unwrap_err().to_string().contains("empty"));
        assert!(Secret::read(&dir.path().join("none")).is_err());
    }

    /// An API whose loop is gone: reads answer 503.
    fn no_api() -> Api {
        let (tx, _) = tokio::sync::mpsc::unbounded_channel();
        Api {
            status: StatusSource::new(tx),
            token: None,
            events: crate::events::EventLog::new(),
            bench_dir: None,
        }
    }

    /// An API over a stand-in loop that answers every status request with
    /// one unit named `web`.
    fn api_with(token: Option<&str>) -> Api {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<crate::msg::Msg>();
        tokio::spawn(async move {
            while let Some(msg) = rx.recv().await {
                let crate::msg::Msg::Request { req, reply } = msg else {
                    continue;
                };
                assert!(
                    matches!(req, jarvis_proto::Request::Status { .. }),
                    "{req:?}"
                );
                let report: jarvis_proto::StatusReport =
                    serde_json::from_value(serde_json::json!({"units": [{
                        "name": "web", "kind": "native", "state": "running", "pid": 42,
                        "restarts": 0, "health": null, "exit_code": null,
                        "cgroup": "/jarvis/web", "reason": null, "description": null,
                        "exit_signal": null, "oom_killed": false, "uptime_ms": 5,
                        "memory_bytes": null, "memory_max_bytes": null,
                        "cpu_usage_ns": null, "tasks": null, "wanted": true,
                        "placement": null, "networks": [], "ports": [], "privileged": false
                    }]}))
                    .unwrap();
                let _ = reply.send(crate::msg::Reply::Now(jarvis_proto::Response::Status(
                    report,
                )));
            }
        });
        Api {
            status: StatusSource::new(tx),
            token: token.map(Token::new),
            events: crate::events::EventLog::new(),
            bench_dir: None,
        }
    }

    fn get_status(peer: &str, auth: Option<&str>) -> axum::http::Request<Body> {
        get_from(API_STATUS, peer, auth)
    }

    #[tokio::test(flavor = "current_thread")]
    async fn status_is_read_from_loopback_freely_and_from_elsewhere_with_the_token() {
        let hook = || Hook::Off("no --git".into());
        // No token file: loopback reads, every other peer gets 401.
        let app = router(hook(), api_with(None));
        let (st, body) = call(&app, get_status("127.0.0.1:5000", None)).await;
        assert_eq!(st, StatusCode::OK, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["units"][0]["name"], "web");
        let (st, _) = call(&app, get_status("[::1]:5000", None)).await;
        assert_eq!(st, StatusCode::OK);
        let (st, body) = call(&app, get_status("192.168.1.5:5000", Some("Bearer x"))).await;
        assert_eq!(st, StatusCode::UNAUTHORIZED);
        assert!(body.contains("--http-token-file"), "{body}");

        // With one: the right bearer token reads, anything else is 401.
        let app = router(hook(), api_with(Some("s3cret-token")));
        for auth in [
            None,
            Some("Bearer wrong"),
            Some("Bearer s3cret-toke"),
            Some("s3cret-token"),
        ] {
            let (st, _) = call(&app, get_status("192.168.1.5:5000", auth)).await;
            assert_eq!(st, StatusCode::UNAUTHORIZED, "{auth:?}");
        }
        let (st, body) = call(
            &app,
            get_status("192.168.1.5:5000", Some("Bearer s3cret-token")),
        )
        .await;
        assert_eq!(st, StatusCode::OK, "{body}");
        assert!(body.contains("\"web\""), "{body}");
        // The hook is not behind the token (it has its own signature), and
        // reads cannot change anything: POST to the API is not a route.
        let mut post = axum::http::Request::post(API_STATUS)
            .body(Body::empty())
            .unwrap();
        post.extensions_mut()
            .insert(ConnectInfo("127.0.0.1:1".parse::<SocketAddr>().unwrap()));
        let (st, _) = call(&app, post).await;
        assert_eq!(st, StatusCode::METHOD_NOT_ALLOWED);
    }

    #[test]
    fn the_token_file_must_not_be_empty_or_readable_by_everyone() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("token");
        std::fs::write(&f, "abc\n").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(Token::read(&f).unwrap().matches(b"abc"));
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(Token::read(&f)
            .unwrap_err()
            .to_string()
            .contains("chmod 600"));
        std::fs::write(&f, "").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(Token::read(&f).unwrap_err().to_string().contains("empty"));
    }

    async fn call(app: &Router, req: axum::http::Request<Body>) -> (StatusCode, String) {
        let resp = app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    fn post_hook(sig: Option<(&'static str, String)>, body: Body) -> axum::http::Request<Body> {
        let mut b = axum::http::Request::post(GIT_HOOK);
        if let Some((k, v)) = sig {
            b = b.header(k, v);
        }
        b.body(body).unwrap()
    }

    /// Whether the trigger was kicked (takes the kick).
    async fn kicked(t: &Trigger) -> bool {
        t.take_kick(Duration::from_millis(50)).await
    }

    #[tokio::test(flavor = "current_thread")]
    async fn the_hook_kicks_the_trigger_only_for_a_good_signature() {
        let trigger = Trigger::default();
        let app = router(
            Hook::Ready {
                secret: Secret::new(SECRET),
                trigger: trigger.clone(),
            },
            no_api(),
        );
        let (st, _) = call(&app, post_hook(None, Body::from(BODY))).await;
        assert_eq!(st, StatusCode::UNAUTHORIZED);
        let bad = Some((GITEA, "0".repeat(64)));
        let (st, body) = call(&app, post_hook(bad, Body::from(BODY))).await;
        assert_eq!(st, StatusCode::UNAUTHORIZED);
        assert!(body.contains("does not match"), "{body}");
        assert!(!kicked(&trigger).await);

        let (st, _) = call(&app, post_hook(Some((GITEA, SIG.into())), Body::from(BODY))).await;
        assert_eq!(st, StatusCode::ACCEPTED);
        assert!(kicked(&trigger).await);

        // A ping is answered, and applies nothing.
        let mut ping = post_hook(Some((HUB, format!("sha256={SIG}"))), Body::from(BODY));
        ping.headers_mut()
            .insert("x-github-event", HeaderValue::from_static("ping"));
        let (st, _) = call(&app, ping).await;
        assert_eq!(st, StatusCode::OK);
        assert!(!kicked(&trigger).await);

        // Only POST, only there.
        let get = axum::http::Request::get(GIT_HOOK)
            .body(Body::empty())
            .unwrap();
        assert_eq!(call(&app, get).await.0, StatusCode::METHOD_NOT_ALLOWED);
        let other = axum::http::Request::post("/hooks/other")
            .body(Body::empty())
            .unwrap();
        assert_eq!(call(&app, other).await.0, StatusCode::NOT_FOUND);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn bodies_over_the_limit_are_refused_declared_or_not() {
        let trigger = Trigger::default();
        let app = router(
            Hook::Ready {
                secret: Secret::new(SECRET),
                trigger: trigger.clone(),
            },
            no_api(),
        );
        let big = vec![b'x'; MAX_BODY + 1];
        // Declared: refused before it is read.
        let mut req = post_hook(Some((GITEA, SIG.into())), Body::from(big.clone()));
        req.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(big.len()));
        assert_eq!(call(&app, req).await.0, StatusCode::PAYLOAD_TOO_LARGE);
        // Streamed without a length (chunked): refused once it passes it.
        let chunks = big
            .chunks(64 * 1024)
            .map(|c| Ok::<_, std::io::Error>(axum::body::Bytes::copy_from_slice(c)))
            .collect::<Vec<_>>();
        let body = Body::from_stream(futures_util::stream::iter(chunks));
        let (st, _) = call(&app, post_hook(Some((GITEA, SIG.into())), body)).await;
        assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(!kicked(&trigger).await);
    }

    /// An API over a stand-in loop that knows one unit, `web`, whose log
    /// is in `dir` (its benchmark results in `dir/bench`).
    fn api_with_log(dir: &Path, token: Option<&str>) -> Api {
        let log = Arc::new(crate::logs::UnitLog::new(
            dir,
            "web",
            &jarvis_unit::Logs::default(),
            crate::logs::Watcher::default(),
        ));
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<crate::msg::Msg>();
        tokio::spawn(async move {
            while let Some(msg) = rx.recv().await {
                let crate::msg::Msg::Request { req, reply } = msg else {
                    continue;
                };
                let jarvis_proto::Request::Logs { unit, .. } = req else {
                    panic!("only log reads are asked: {req:?}");
                };
                let _ = reply.send(if unit == "web" {
                    crate::msg::Reply::Log(log.clone())
                } else {
                    crate::msg::Reply::Now(jarvis_proto::Response::Error {
                        message: format!("no unit named {unit}"),
                    })
                });
            }
        });
        Api {
            status: StatusSource::new(tx),
            token: token.map(Token::new),
            events: crate::events::EventLog::new(),
            bench_dir: Some(dir.join("bench")),
        }
    }

    fn get_from(path: &str, peer: &str, auth: Option<&str>) -> axum::http::Request<Body> {
        let mut b = axum::http::Request::get(path);
        if let Some(a) = auth {
            b = b.header(header::AUTHORIZATION, a);
        }
        let mut req = b.body(Body::empty()).unwrap();
        req.extensions_mut()
            .insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
        req
    }

    #[tokio::test(flavor = "current_thread")]
    async fn the_dashboard_is_one_page_that_loads_nothing_from_elsewhere() {
        let app = router(Hook::Off("no --git".into()), no_api());
        let resp = app
            .clone()
            .oneshot(get_from("/", "127.0.0.1:1", None))
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let h = resp.headers();
        assert_eq!(h[header::CONTENT_TYPE], "text/html; charset=utf-8");
        let csp = h[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        for want in [
            "default-src 'none'",
            "script-src 'self'",
            "connect-src 'self'",
        ] {
            assert!(csp.contains(want), "{want} not in {csp}");
        }
        assert!(
            !csp.contains("unsafe-inline") && !csp.contains('*'),
            "{csp}"
        );
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let page = String::from_utf8_lossy(&body);
        assert!(page.contains("/assets/app.js") && page.contains("/assets/app.css"));
        // No inline script (the CSP would refuse it anyway).
        assert!(!page.contains("<script>"), "{page}");
        for (path, kind, text) in dashboard::ASSETS {
            let (st, body) = call(&app, get_from(path, "127.0.0.1:1", None)).await;
            assert_eq!(st, StatusCode::OK, "{path}");
            assert_eq!(&body, text, "{path}");
            // Nothing fetched from another origin. The one URL allowed is
            // the SVG namespace, a name that is never fetched.
            let refs = text.replace("\"http://www.w3.org/2000/svg\"", "");
            for bad in [
                "http://",
                "https://",
                "src=\"//",
                "href=\"//",
                "url(",
                "@import",
            ] {
                assert!(!refs.contains(bad), "{path} ({kind}) contains {bad}");
            }
            // Data goes into the DOM as text only.
            assert!(!text.contains("innerHTML"), "{path}");
            assert!(!text.contains("insertAdjacentHTML"), "{path}");
            assert!(!text.contains("document.write"), "{path}");
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn every_new_route_needs_the_token_from_elsewhere() {
        let dir = tempfile::tempdir().unwrap();
        let app = router(
            Hook::Off("no --git".into()),
            api_with_log(dir.path(), Some("tok")),
        );
        let routes = [
            "/",
            "/assets/app.js",
            "/assets/app.css",
            "/api/v1/units/web/logs",
            "/api/v1/units/web/logs?follow=1",
            "/api/v1/units/web/bench",
        ];
        for path in routes {
            for auth in [None, Some("Bearer nope"), Some("Basic dTpub3Bl")] {
                let resp = app
                    .clone()
                    .oneshot(get_from(path, "10.1.2.3:4", auth))
                    .await
                    .unwrap();
                assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{path} {auth:?}");
                if path == "/" {
                    // A browser asks for the token as a password.
                    let wa = resp.headers()[header::WWW_AUTHENTICATE].to_str().unwrap();
                    assert!(wa.starts_with("Basic "), "{wa}");
                }
            }
        }
        // The token as a bearer, or as the password of basic auth
        // ("u:tok"), lets the page and the log through.
        for auth in ["Bearer tok", "Basic dTp0b2s=", "Basic dTp0b2s"] {
            for path in ["/", "/api/v1/units/web/logs"] {
                let (st, body) = call(&app, get_from(path, "10.1.2.3:4", Some(auth))).await;
                assert_eq!(st, StatusCode::OK, "{path} {auth}: {body}");
            }
        }
        assert_eq!(base64_decode("dTp0b2s="), Some(b"u:tok".to_vec()));
        assert_eq!(base64_decode("a b"), None);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn log_reads_check_the_name_and_cap_the_lines() {
        let dir = tempfile::tempdir().unwrap();
        let app = router(Hook::Off("no --git".into()), api_with_log(dir.path(), None));
        let log = crate::logs::UnitLog::new(
            dir.path(),
            "web",
            &jarvis_unit::Logs::default(),
            crate::logs::Watcher::default(),
        );
        let read = |path: &str| call(&app, get_from(path, "127.0.0.1:1", None));
        // A unit that never wrote anything has an empty log.
        let (st, body) = read("/api/v1/units/web/logs").await;
        assert_eq!(st, StatusCode::OK, "{body}");
        assert!(body.contains("\"lines\":[]"), "{body}");
        for i in 0..1500 {
            log.note(&format!("line {i}"));
        }
        for bad in [
            "/api/v1/units/..%2F..%2Fetc%2Fpasswd/logs",
            "/api/v1/units/%2E%2E/logs",
            "/api/v1/units/Web/logs",
            "/api/v1/units/a_b/bench",
            "/api/v1/units/-x/logs",
            "/api/v1/units/web%00/logs",
        ] {
            let (st, body) = read(bad).await;
            assert_eq!(st, StatusCode::BAD_REQUEST, "{bad}: {body}");
            assert!(body.contains("not a unit name"), "{bad}: {body}");
        }
        for bad in ["lines=-1", "lines=x", "follow=maybe", "color=1"] {
            let (st, _) = read(&format!("/api/v1/units/web/logs?{bad}")).await;
            assert_eq!(st, StatusCode::BAD_REQUEST, "{bad}");
        }
        let (st, body) = read("/api/v1/units/nope/logs").await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{body}");

        let lines = |body: &str| -> Vec<String> {
            let v: serde_json::Value = serde_json::from_str(body).unwrap();
            v["lines"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l["text"].as_str().unwrap().to_string())
                .collect()
        };
        let (st, body) = read("/api/v1/units/web/logs?lines=3").await;
        assert_eq!(st, StatusCode::OK, "{body}");
        // jarvis's own lines (notes) say so, as in `jarvisctl logs`.
        assert_eq!(
            lines(&body),
            [
                "[jarvis] line 1497",
                "[jarvis] line 1498",
                "[jarvis] line 1499"
            ]
        );
        let (_, body) = read("/api/v1/units/web/logs").await;
        assert_eq!(lines(&body).len(), DEFAULT_LOG_LINES);
        // More than the cap: the cap.
        let (_, body) = read("/api/v1/units/web/logs?lines=1000000").await;
        let got = lines(&body);
        assert_eq!(got.len(), MAX_LOG_LINES);
        assert_eq!(got.last().unwrap(), "[jarvis] line 1499");
        assert_eq!(got[0], format!("[jarvis] line {}", 1500 - MAX_LOG_LINES));

        // Bytes are capped too: long lines leave older ones out.
        let long = "y".repeat(MAX_LOG_LINE * 2);
        for _ in 0..40 {
            log.note(&long);
        }
        let (_, body) = read("/api/v1/units/web/logs?lines=1000").await;
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["truncated"], true);
        let total: usize = lines(&body).iter().map(|l| l.len() + 1).sum();
        assert!(total <= MAX_LOG_BYTES, "{total}");
        assert!(lines(&body).iter().all(|l| l.len() == MAX_LOG_LINE));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_followed_log_streams_its_tail_then_new_lines() {
        let dir = tempfile::tempdir().unwrap();
        let app = router(Hook::Off("no --git".into()), api_with_log(dir.path(), None));
        let log = crate::logs::UnitLog::new(
            dir.path(),
            "web",
            &jarvis_unit::Logs::default(),
            crate::logs::Watcher::default(),
        );
        log.note("before");
        let resp = app
            .clone()
            .oneshot(get_from(
                "/api/v1/units/web/logs?follow=1&lines=10",
                "127.0.0.1:1",
                None,
            ))
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()[header::CONTENT_TYPE], "text/event-stream");
        let mut body = resp.into_body().into_data_stream();
        let mut seen = String::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let mut wrote = false;
        use futures_util::StreamExt;
        while !seen.contains("] after\"") {
            let chunk = tokio::time::timeout_at(deadline, body.next())
                .await
                .expect("the new line within 10 s")
                .unwrap()
                .unwrap();
            seen.push_str(&String::from_utf8_lossy(&chunk));
            if !wrote && seen.contains("] before\"") {
                log.note("after");
                wrote = true;
            }
        }
        assert!(seen.contains("event: line\n"), "{seen}");
        assert!(seen.find("before").unwrap() < seen.find("after").unwrap());
        // Whether a request is a stream (its own slot, its longer limit).
        let is = |s: &str| stream_path(&s.parse().unwrap());
        assert!(is("/api/v1/units/web/logs?follow=1"));
        assert!(is("/api/v1/units/web/logs?lines=5&follow"));
        assert!(is(API_EVENTS));
        assert!(!is("/api/v1/units/web/logs"));
        assert!(!is("/api/v1/units/web/logs?follow=0"));
        assert!(!is("/api/v1/units/web/bench?follow=1"));
        assert!(!is("/api/v1/units/a/b/logs?follow=1"));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_stored_benchmark_is_served_without_its_rounds() {
        let dir = tempfile::tempdir().unwrap();
        let app = router(Hook::Off("no --git".into()), api_with_log(dir.path(), None));
        let read = |path: &str| call(&app, get_from(path, "127.0.0.1:1", None));
        let (st, body) = read("/api/v1/units/web/bench").await;
        assert_eq!(st, StatusCode::NOT_FOUND);
        assert!(body.contains("jarvisctl bench web"), "{body}");
        std::fs::create_dir_all(dir.path().join("bench")).unwrap();
        let stored = serde_json::json!({
            "unit": "web", "api": "llamacpp", "rounds": [{}, {}, {}, {}],
            "metrics": {"latency_ms": {"native": {"median": 100.0, "p95": 120.0, "n": 10},
                "container": {"median": 103.0, "p95": 125.0, "n": 10}, "ratio": 1.03,
                "higher_is_better": false}},
            "verdict": "latency_ms: no difference beyond noise", "recommendation": "container",
        });
        std::fs::write(dir.path().join("bench/web.json"), stored.to_string()).unwrap();
        let (st, body) = read("/api/v1/units/web/bench").await;
        assert_eq!(st, StatusCode::OK, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["round_count"], 4);
        assert!(v.get("rounds").is_none());
        assert_eq!(v["metrics"]["latency_ms"]["container"]["median"], 103.0);
        assert_eq!(v["recommendation"], "container");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_hook_not_configured_says_why() {
        let app = router(Hook::Off("no --git: nothing to apply".into()), no_api());
        let (st, body) = call(&app, post_hook(Some((GITEA, SIG.into())), Body::from(BODY))).await;
        assert_eq!(st, StatusCode::NOT_FOUND);
        assert_eq!(body, "no --git: nothing to apply\n");
    }
}
