//! Notifications (`--notify-url`, `--notify-format`): when a unit fails,
//! turns unhealthy, is OOM-killed or falls back from its GPU to the CPU, or
//! a generation is rolled back, jarvisd POSTs it to each URL, in the form
//! the receiving service takes (plain event JSON, ntfy, Gotify, a Discord
//! or a Slack webhook).
//!
//! The notifier reads the [`EventLog`] beside the event loop, as every
//! other reader does, and never blocks it. Bounds:
//! - the same unit and kind is sent at most once per [`REPEAT_WINDOW`]; the
//!   next one sent after that says how many were held back meanwhile;
//! - each URL gets at most [`BURST`] notifications at once and
//!   [`PER_MINUTE`] a minute after that (a token bucket); more are dropped
//!   and counted;
//! - each URL has a queue of [`QUEUE`] notifications; when its receiver is
//!   slow and the queue is full, new ones are dropped and counted;
//! - each POST may take [`TIMEOUT`]; a connection error, a timeout or a 5xx
//!   is tried once more after [`RETRY_AFTER`], a 4xx is not.
//!
//! A URL may hold a token (Gotify's `?token=`, the secret path of a Discord
//! or Slack webhook): logs name a URL by its scheme, host and path only,
//! and not even its path for Discord and Slack, whose path is the secret.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jarvis_proto::{Event, EventKind};
use tokio::sync::mpsc;

use crate::events::{self, EventLog, Filter};

/// The same unit and kind is sent at most once in this window.
pub const REPEAT_WINDOW: Duration = Duration::from_secs(60);
/// Notifications a URL may get at once.
pub const BURST: u32 = 10;
/// ... and a minute after that.
pub const PER_MINUTE: u32 = 10;
/// Notifications waiting for one URL.
pub const QUEUE: usize = 64;
/// How long one POST may take, connecting included.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// The wait before the one retry.
pub const RETRY_AFTER: Duration = Duration::from_secs(2);
/// The longest message sent (Discord takes 2,000 characters).
const MAX_MESSAGE: usize = 1800;
/// Unit and kind pairs remembered for [`REPEAT_WINDOW`]; older ones are
/// forgotten first when there are more.
const KEYS_KEPT: usize = 4096;

/// The body a notification is sent as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// The event as `jarvisctl events --json` prints it.
    #[default]
    Json,
    /// ntfy: the message as the body, with Title, Priority and Tags headers.
    Ntfy,
    /// Gotify's /message API: {"title", "message", "priority"}.
    Gotify,
    /// A Discord webhook: {"content"}.
    Discord,
    /// A Slack incoming webhook: {"text"}.
    Slack,
}

/// Whether an event of `kind` is notified.
pub fn notable(kind: EventKind) -> bool {
    matches!(
        kind,
        EventKind::Failed
            | EventKind::Unhealthy
            | EventKind::OomKilled
            | EventKind::GpuFallback
            | EventKind::Rollback
    )
}

/// Whether `kind` is sent with a high priority (ntfy, Gotify).
fn urgent(kind: EventKind) -> bool {
    matches!(
        kind,
        EventKind::Failed | EventKind::OomKilled | EventKind::GpuFallback | EventKind::Rollback
    )
}

/// One URL notifications go to.
#[derive(Debug, Clone)]
pub struct Target {
    url: reqwest::Url,
    /// What logs call it: never its query, nor a webhook's secret path.
    shown: String,
}

impl Target {
    /// `url`, if it is an http or https URL with a host.
    pub fn parse(url: &str, format: Format) -> Result<Target, String> {
        let parsed = reqwest::Url::parse(url)
            .map_err(|e| format!("--notify-url {}: not a URL: {e}", redact_unparsed(url)))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(format!(
                "--notify-url {}: only http and https URLs are supported, not {}:",
                redact_unparsed(url),
                parsed.scheme()
            ));
        }
        let Some(host) = parsed.host_str() else {
            return Err(format!(
                "--notify-url {}: the URL has no host",
                redact_unparsed(url)
            ));
        };
        let port = parsed.port().map(|p| format!(":{p}")).unwrap_or_default();
        let path = match format {
            // The webhook's path is its secret.
            Format::Discord | Format::Slack => "/…",
            _ => parsed.path(),
        };
        let shown = format!("{}://{host}{port}{path}", parsed.scheme());
        Ok(Target { url: parsed, shown })
    }

    /// The URL as logs show it.
    pub fn shown(&self) -> &str {
        &self.shown
    }
}

/// What a URL that does not parse is called in its error: its scheme and
/// host, at most (it may still hold a token).
fn redact_unparsed(url: &str) -> String {
    let end = url.find(['?', '#']).unwrap_or(url.len());
    let head = &url[..end];
    match head.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.split('/').next().unwrap_or("");
            let host = host.rsplit('@').next().unwrap_or(host);
            format!("{scheme}://{host}/…")
        }
        None => "(not shown)".to_string(),
    }
}

/// A notification ready to POST: its headers besides Content-Type, its
/// content type and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    pub headers: Vec<(&'static str, String)>,
    pub content_type: &'static str,
    pub body: String,
}

/// The notification of `event` in `format`; `held_back` more like it were
/// not sent in the window before it.
pub fn payload(format: Format, event: &Event, held_back: u32) -> Payload {
    let unit = event.unit.as_deref().unwrap_or("jarvisd");
    let title = format!("jarvis: {unit} {}", event.kind);
    let mut message = truncate(&event.message, MAX_MESSAGE);
    if held_back > 0 {
        message.push_str(&format!(
            " ({held_back} more like this in the last {} s were not sent)",
            REPEAT_WINDOW.as_secs()
        ));
    }
    let json = |v: serde_json::Value| Payload {
        headers: Vec::new(),
        content_type: "application/json",
        body: v.to_string(),
    };
    match format {
        Format::Json => Payload {
            headers: Vec::new(),
            content_type: "application/json",
            body: serde_json::to_string(&WithHeldBack { event, held_back }).unwrap_or_default(),
        },
        Format::Ntfy => Payload {
            headers: vec![
                ("Title", header_value(&title)),
                (
                    "Priority",
                    if urgent(event.kind) {
                        "high"
                    } else {
                        "default"
                    }
                    .to_string(),
                ),
                ("Tags", format!("{},jarvis", tag(event.kind))),
            ],
            content_type: "text/plain; charset=utf-8",
            body: message,
        },
        Format::Gotify => json(serde_json::json!({
            "title": title,
            "message": message,
            "priority": if urgent(event.kind) { 8 } else { 5 },
        })),
        Format::Discord => json(serde_json::json!({
            "content": format!("**{title}**: {message}"),
        })),
        Format::Slack => json(serde_json::json!({
            "text": format!("*{title}*: {message}"),
        })),
    }
}

/// The event as `jarvisctl events --json` prints it, with `held_back`
/// after its fields when some were.
#[derive(serde::Serialize)]
struct WithHeldBack<'a> {
    #[serde(flatten)]
    event: &'a Event,
    #[serde(skip_serializing_if = "is_zero")]
    held_back: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// ntfy's tag for `kind`: an emoji short code, which ntfy shows as the
/// emoji.
fn tag(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Failed => "x",
        EventKind::OomKilled => "boom",
        EventKind::Rollback => "rewind",
        _ => "warning",
    }
}

/// `s` as a header value: printable ASCII, other characters as `?`.
fn header_value(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c == ' ' || c.is_ascii_graphic() {
                c
            } else {
                '?'
            }
        })
        .collect()
}

/// At most `max` characters of `s`, with an ellipsis when cut.
fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_string(),
        Some((at, _)) => format!("{}…", &s[..at]),
    }
}

// ---------------------------------------------------------------------------
// Limits (pure: the caller passes the time)

/// The same unit and kind at most once per window; counts what it held
/// back.
#[derive(Debug)]
pub struct Repeats {
    window: Duration,
    seen: HashMap<(Option<String>, EventKind), Seen>,
}

#[derive(Debug, Clone, Copy)]
struct Seen {
    sent: Instant,
    held_back: u32,
}

impl Repeats {
    pub fn new(window: Duration) -> Repeats {
        Repeats {
            window,
            seen: HashMap::new(),
        }
    }

    /// `Some(n)` when an event of `unit` and `kind` is to be sent now, `n`
    /// being how many were held back since the last one sent; `None` when
    /// it is held back.
    pub fn admit(&mut self, unit: Option<&str>, kind: EventKind, now: Instant) -> Option<u32> {
        let key = (unit.map(str::to_string), kind);
        if let Some(s) = self.seen.get_mut(&key) {
            if now.saturating_duration_since(s.sent) < self.window {
                s.held_back = s.held_back.saturating_add(1);
                return None;
            }
            let held = s.held_back;
            *s = Seen {
                sent: now,
                held_back: 0,
            };
            return Some(held);
        }
        if self.seen.len() >= KEYS_KEPT {
            let window = self.window;
            self.seen
                .retain(|_, s| now.saturating_duration_since(s.sent) < window);
            if self.seen.len() >= KEYS_KEPT {
                // All recent: the oldest goes.
                if let Some(oldest) = self
                    .seen
                    .iter()
                    .min_by_key(|(_, s)| s.sent)
                    .map(|(k, _)| k.clone())
                {
                    self.seen.remove(&oldest);
                }
            }
        }
        self.seen.insert(
            key,
            Seen {
                sent: now,
                held_back: 0,
            },
        );
        Some(0)
    }
}

/// A token bucket: `capacity` at once, refilled at `per_minute`.
#[derive(Debug)]
pub struct Bucket {
    capacity: f64,
    per_sec: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    pub fn new(capacity: u32, per_minute: u32, now: Instant) -> Bucket {
        Bucket {
            capacity: f64::from(capacity),
            per_sec: f64::from(per_minute) / 60.0,
            tokens: f64::from(capacity),
            at: now,
        }
    }

    /// Whether one more may go now (and takes its token).
    pub fn take(&mut self, now: Instant) -> bool {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + dt * self.per_sec).min(self.capacity);
        self.at = now.max(self.at);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

// ---------------------------------------------------------------------------
// The notifier

/// What the notifier did, for logs and tests.
#[derive(Debug, Default)]
pub struct Counts {
    pub sent: AtomicU64,
    pub failed: AtomicU64,
    /// Dropped: a full queue or the URL's rate limit.
    pub dropped: AtomicU64,
    /// Not sent: the same unit and kind again within the window.
    pub held_back: AtomicU64,
}

/// The HTTP client notifications go out with: [`TIMEOUT`] per request, no
/// redirects (a token must not follow one to another host).
pub fn client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .timeout(TIMEOUT)
        .connect_timeout(TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("jarvisd/", env!("CARGO_PKG_VERSION")))
        .build()?)
}

/// Starts the notifier: one task reading the events, one per URL sending.
/// It ends when the event log does.
pub fn spawn(
    log: &Arc<EventLog>,
    client: reqwest::Client,
    targets: Vec<Target>,
    format: Format,
) -> (Arc<Counts>, tokio::task::JoinHandle<()>) {
    let counts = Arc::new(Counts::default());
    let (_, mut rx) = log.subscribe(&Filter::default());
    let mut queues = Vec::new();
    let mut senders = Vec::new();
    for target in targets {
        let (tx, qrx) = mpsc::channel::<Payload>(QUEUE);
        senders.push(tokio::spawn(send_loop(
            client.clone(),
            target.clone(),
            qrx,
            counts.clone(),
            RETRY_AFTER,
        )));
        queues.push((target, tx));
    }
    let task = tokio::spawn({
        let counts = counts.clone();
        async move {
            let mut repeats = Repeats::new(REPEAT_WINDOW);
            let all = Filter::default();
            while let Some(event) = events::next(&mut rx, &all).await {
                if !notable(event.kind) {
                    continue;
                }
                let Some(held) = repeats.admit(event.unit.as_deref(), event.kind, Instant::now())
                else {
                    counts.held_back.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(unit = ?event.unit, kind = %event.kind, "notify: held back (sent one in the last minute)");
                    continue;
                };
                let p = payload(format, &event, held);
                for (target, tx) in &queues {
                    if tx.try_send(p.clone()).is_err() {
                        let n = counts.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                        tracing::warn!(url = %target.shown, dropped = n, "notify: queue full, notification dropped");
                    }
                }
            }
            for s in senders {
                s.abort();
            }
        }
    });
    (counts, task)
}

/// Sends what comes for `target`, within its rate limit.
async fn send_loop(
    client: reqwest::Client,
    target: Target,
    mut rx: mpsc::Receiver<Payload>,
    counts: Arc<Counts>,
    retry_after: Duration,
) {
    let mut bucket = Bucket::new(BURST, PER_MINUTE, Instant::now());
    while let Some(p) = rx.recv().await {
        if !bucket.take(Instant::now()) {
            let n = counts.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::warn!(url = %target.shown, dropped = n, "notify: rate limit ({PER_MINUTE} a minute), notification dropped");
            continue;
        }
        match post(&client, &target, &p).await {
            Ok(()) => {
                counts.sent.fetch_add(1, Ordering::Relaxed);
            }
            Err(Failure::Final(why)) => {
                counts.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(url = %target.shown, "notify: {why}");
            }
            Err(Failure::Retry(why)) => {
                tracing::debug!(url = %target.shown, "notify: {why}; trying again");
                tokio::time::sleep(retry_after).await;
                match post(&client, &target, &p).await {
                    Ok(()) => {
                        counts.sent.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(Failure::Final(why) | Failure::Retry(why)) => {
                        counts.failed.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(url = %target.shown, "notify: {why} (tried twice)");
                    }
                }
            }
        }
    }
}

enum Failure {
    /// Worth one more try: no connection, a timeout, a 5xx.
    Retry(String),
    /// Not: the receiver refused it.
    Final(String),
}

async fn post(client: &reqwest::Client, target: &Target, p: &Payload) -> Result<(), Failure> {
    let mut req = client
        .post(target.url.clone())
        .header(reqwest::header::CONTENT_TYPE, p.content_type)
        .body(p.body.clone());
    for (name, value) in &p.headers {
        req = req.header(*name, value.as_str());
    }
    match req.send().await {
        Ok(resp) if resp.status().is_success() => Ok(()),
        Ok(resp) if resp.status().is_server_error() => Err(Failure::Retry(format!(
            "the receiver answered {}",
            resp.status()
        ))),
        Ok(resp) => Err(Failure::Final(format!(
            "the receiver refused the notification: {}",
            resp.status()
        ))),
        // reqwest's errors name the URL, with its query: not logged.
        Err(e) => Err(Failure::Retry(format!(
            "cannot send: {}",
            error_chain(&e.without_url())
        ))),
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(cause) = src {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        src = cause.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(unit: Option<&str>, kind: EventKind, message: &str) -> Event {
        Event {
            seq: 7,
            time: "2026-11-29T14:01:48.123Z".into(),
            unit: unit.map(Into::into),
            kind,
            message: message.into(),
        }
    }

    fn json(p: &Payload) -> serde_json::Value {
        assert_eq!(p.content_type, "application/json");
        serde_json::from_str(&p.body).unwrap()
    }

    #[test]
    fn only_trouble_is_notified() {
        let sent: Vec<EventKind> = EventKind::ALL
            .iter()
            .copied()
            .filter(|k| notable(*k))
            .collect();
        assert_eq!(
            sent,
            [
                EventKind::Unhealthy,
                EventKind::OomKilled,
                EventKind::Failed,
                EventKind::GpuFallback,
                EventKind::Rollback
            ]
        );
    }

    #[test]
    fn json_is_the_event_as_events_json_prints_it() {
        let e = event(Some("web"), EventKind::Failed, "exited with code 1");
        let p = payload(Format::Json, &e, 0);
        assert!(p.headers.is_empty());
        assert_eq!(p.body, serde_json::to_string(&e).unwrap());
        let held = json(&payload(Format::Json, &e, 3));
        assert_eq!(held["held_back"], 3);
        assert_eq!(held["message"], "exited with code 1");
    }

    #[test]
    fn ntfy_is_the_message_with_title_priority_and_tags() {
        let p = payload(
            Format::Ntfy,
            &event(
                Some("web"),
                EventKind::OomKilled,
                "killed by the OOM killer",
            ),
            0,
        );
        assert_eq!(p.content_type, "text/plain; charset=utf-8");
        assert_eq!(p.body, "killed by the OOM killer");
        assert_eq!(
            p.headers,
            [
                ("Title", "jarvis: web oom-killed".to_string()),
                ("Priority", "high".to_string()),
                ("Tags", "boom,jarvis".to_string()),
            ]
        );
        let p = payload(
            Format::Ntfy,
            &event(Some("db"), EventKind::Unhealthy, "3 checks failed"),
            2,
        );
        assert_eq!(p.headers[1], ("Priority", "default".to_string()));
        assert_eq!(
            p.body,
            "3 checks failed (2 more like this in the last 60 s were not sent)"
        );
    }

    #[test]
    fn gotify_discord_and_slack_bodies() {
        let e = event(
            None,
            EventKind::Rollback,
            "generation 3 failed its health gate",
        );
        let g = json(&payload(Format::Gotify, &e, 0));
        assert_eq!(
            g,
            serde_json::json!({
                "title": "jarvis: jarvisd rollback",
                "message": "generation 3 failed its health gate",
                "priority": 8,
            })
        );
        let u = event(Some("web"), EventKind::Unhealthy, "timed out");
        assert_eq!(json(&payload(Format::Gotify, &u, 0))["priority"], 5);
        assert_eq!(
            json(&payload(Format::Discord, &u, 0)),
            serde_json::json!({"content": "**jarvis: web unhealthy**: timed out"})
        );
        assert_eq!(
            json(&payload(Format::Slack, &u, 0)),
            serde_json::json!({"text": "*jarvis: web unhealthy*: timed out"})
        );
    }

    #[test]
    fn long_messages_are_cut_and_headers_stay_ascii() {
        let long = "é".repeat(5000);
        let p = payload(
            Format::Discord,
            &event(Some("web"), EventKind::Failed, &long),
            0,
        );
        let content = json(&p)["content"].as_str().unwrap().to_string();
        assert!(content.chars().count() < 2000, "{}", content.len());
        assert!(content.ends_with('…'));
        assert_eq!(header_value("jarvis: wéb\n"), "jarvis: w?b?");
    }

    #[test]
    fn urls_are_checked_and_shown_without_their_secrets() {
        let t = Target::parse(
            "https://gotify.example:8443/message?token=SECRET",
            Format::Gotify,
        )
        .unwrap();
        assert_eq!(t.shown(), "https://gotify.example:8443/message");
        let t =
            Target::parse("https://discord.com/api/webhooks/1/SECRET", Format::Discord).unwrap();
        assert_eq!(t.shown(), "https://discord.com/…");
        for bad in [
            "ftp://host/x?token=SECRET",
            "file:///etc/passwd",
            "not a url?token=SECRET",
            "unix:/run/x",
        ] {
            let e = Target::parse(bad, Format::Json).unwrap_err();
            assert!(!e.contains("SECRET"), "{e}");
            assert!(e.starts_with("--notify-url"), "{e}");
        }
        assert!(Target::parse("ftp://host/x", Format::Json)
            .unwrap_err()
            .contains("only http and https"));
    }

    #[test]
    fn a_repeat_within_the_window_is_held_back_and_counted_in_the_next() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut r = Repeats::new(REPEAT_WINDOW);
        assert_eq!(r.admit(Some("web"), EventKind::Failed, t0), Some(0));
        assert_eq!(r.admit(Some("web"), EventKind::Failed, t0 + s), None);
        assert_eq!(r.admit(Some("web"), EventKind::Failed, t0 + 30 * s), None);
        // Another kind or unit is its own.
        assert_eq!(r.admit(Some("web"), EventKind::OomKilled, t0 + s), Some(0));
        assert_eq!(r.admit(Some("db"), EventKind::Failed, t0 + s), Some(0));
        assert_eq!(r.admit(None, EventKind::Rollback, t0 + s), Some(0));
        assert_eq!(r.admit(Some("web"), EventKind::Failed, t0 + 59 * s), None);
        // After the window: sent, saying 3 were held back.
        assert_eq!(
            r.admit(Some("web"), EventKind::Failed, t0 + 61 * s),
            Some(3)
        );
        assert_eq!(r.admit(Some("web"), EventKind::Failed, t0 + 62 * s), None);
        assert_eq!(
            r.admit(Some("web"), EventKind::Failed, t0 + 200 * s),
            Some(1)
        );
    }

    #[test]
    fn the_remembered_keys_are_bounded() {
        let t0 = Instant::now();
        let mut r = Repeats::new(REPEAT_WINDOW);
        for i in 0..KEYS_KEPT + 10 {
            let unit = format!("u{i}");
            assert_eq!(r.admit(Some(&unit), EventKind::Failed, t0), Some(0));
        }
        assert!(r.seen.len() <= KEYS_KEPT);
    }

    #[test]
    fn the_bucket_lets_a_burst_through_then_its_rate() {
        let t0 = Instant::now();
        let mut b = Bucket::new(3, 6, t0);
        assert!((0..3).all(|_| b.take(t0)));
        assert!(!b.take(t0));
        // 6 a minute: one every 10 s.
        assert!(!b.take(t0 + Duration::from_secs(9)));
        assert!(b.take(t0 + Duration::from_secs(10)));
        assert!(!b.take(t0 + Duration::from_secs(11)));
        // A long quiet refills it to its capacity, no more.
        let later = t0 + Duration::from_secs(3600);
        assert_eq!((0..10).filter(|_| b.take(later)).count(), 3);
        // A clock that goes back takes nothing.
        assert!(!b.take(t0));
    }

    /// A receiver on 127.0.0.1 answering each request with the next of
    /// `statuses` (then 200): its URL and what it got (request head and
    /// body).
    fn receiver(statuses: Vec<u16>) -> (String, Arc<std::sync::Mutex<Vec<String>>>) {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!(
            "http://{}/hook?token=SECRET",
            listener.local_addr().unwrap()
        );
        let got = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = got.clone();
        std::thread::spawn(move || {
            let mut statuses = statuses.into_iter();
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                let mut r = BufReader::new(conn.try_clone().unwrap());
                let mut head = String::new();
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                    head.push_str(&line);
                }
                let mut body = vec![0; length];
                let _ = r.read_exact(&mut body);
                seen.lock()
                    .unwrap()
                    .push(format!("{head}\r\n{}", String::from_utf8_lossy(&body)));
                let code = statuses.next().unwrap_or(200);
                let _ = write!(
                    conn,
                    "HTTP/1.1 {code} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
            }
        });
        (url, got)
    }

    /// Sends `p` through a send loop to `url` and waits until it is done
    /// with it.
    async fn send_one(url: &str, p: Payload) -> Arc<Counts> {
        jarvis_image::install_crypto_provider();
        let counts = Arc::new(Counts::default());
        let (tx, rx) = mpsc::channel(QUEUE);
        let target = Target::parse(url, Format::Json).unwrap();
        let task = tokio::spawn(send_loop(
            client().unwrap(),
            target,
            rx,
            counts.clone(),
            Duration::from_millis(50),
        ));
        tx.send(p).await.unwrap();
        drop(tx);
        tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .unwrap()
            .unwrap();
        counts
    }

    fn sample() -> Payload {
        payload(
            Format::Ntfy,
            &event(Some("web"), EventKind::Failed, "exited with code 1"),
            0,
        )
    }

    #[tokio::test]
    async fn a_5xx_is_tried_once_more_and_a_4xx_is_not() {
        let (url, got) = receiver(vec![503]);
        let c = send_one(&url, sample()).await;
        assert_eq!(got.lock().unwrap().len(), 2);
        assert_eq!(c.sent.load(Ordering::Relaxed), 1);
        let first = got.lock().unwrap()[0].clone();
        assert!(
            first.starts_with("POST /hook?token=SECRET HTTP/1.1"),
            "{first}"
        );
        assert!(first.contains("title: jarvis: web failed"), "{first}");
        assert!(first.ends_with("\r\n\r\nexited with code 1"), "{first}");

        let (url, got) = receiver(vec![500, 502]);
        let c = send_one(&url, sample()).await;
        assert_eq!(got.lock().unwrap().len(), 2, "tried twice, no more");
        assert_eq!(c.failed.load(Ordering::Relaxed), 1);

        let (url, got) = receiver(vec![403]);
        let c = send_one(&url, sample()).await;
        assert_eq!(got.lock().unwrap().len(), 1);
        assert_eq!(c.failed.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn a_receiver_that_is_not_there_fails_after_one_retry() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let c = send_one(&format!("http://127.0.0.1:{port}/x"), sample()).await;
        assert_eq!(c.failed.load(Ordering::Relaxed), 1);
        assert_eq!(c.sent.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn the_notifier_sends_trouble_once_per_unit_and_kind_within_the_burst() {
        jarvis_image::install_crypto_provider();
        let (url, got) = receiver(vec![]);
        let log = EventLog::new();
        let (counts, task) = spawn(
            &log,
            client().unwrap(),
            vec![Target::parse(&url, Format::Json).unwrap()],
            Format::Json,
        );
        log.push(Some("web".into()), EventKind::Started, "pid 1".into());
        log.push(
            Some("web".into()),
            EventKind::Failed,
            "exited with code 1".into(),
        );
        log.push(
            Some("web".into()),
            EventKind::Failed,
            "exited with code 1".into(),
        );
        // More units failing at once than the burst a URL takes.
        for i in 0..BURST + 4 {
            log.push(Some(format!("u{i}")), EventKind::OomKilled, "OOM".into());
        }
        let until = Instant::now() + Duration::from_secs(20);
        let done = || {
            counts.sent.load(Ordering::Relaxed) + counts.dropped.load(Ordering::Relaxed)
                == u64::from(BURST) + 5
        };
        while !done() {
            assert!(Instant::now() < until, "{counts:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        task.abort();
        assert_eq!(counts.sent.load(Ordering::Relaxed), u64::from(BURST));
        assert_eq!(counts.dropped.load(Ordering::Relaxed), 5);
        assert_eq!(counts.held_back.load(Ordering::Relaxed), 1);
        let got = got.lock().unwrap();
        assert_eq!(got.len(), BURST as usize);
        let first: serde_json::Value =
            serde_json::from_str(got[0].split("\r\n\r\n").nth(1).unwrap()).unwrap();
        assert_eq!(
            (first["unit"].as_str(), first["kind"].as_str()),
            (Some("web"), Some("failed"))
        );
    }
}
