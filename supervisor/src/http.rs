//! jarvisd's HTTP listener (`--http ADDR`), opened only when asked.
//!
//! It serves two reads, `GET /api/v1/status` (the JSON `jarvisctl status
//! --json` prints) and `GET /metrics` (the same in Prometheus' format),
//! to loopback peers freely and to others only with `Authorization: Bearer
//! TOKEN` and `--http-token-file`'s token (401 otherwise); and the git push
//! webhook: `POST /hooks/git`
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
//! and no way to send the loop a request. Without `--git` or without
//! `--webhook-secret-file` the hook answers 404 saying which is missing
//! (jarvisd says so at start too).
//!
//! ## Bounds
//!
//! At most [`MAX_CONNECTIONS`] connections at once (more wait in the
//! kernel's backlog), one request per connection, headers within
//! [`HEADER_TIMEOUT`] and at most 64 KiB, a body of at most [`MAX_BODY`]
//! read within [`BODY_TIMEOUT`] (413 and 408 otherwise), and a connection
//! never lasts more than [`CONNECTION_TIMEOUT`]. A push during an apply
//! queues at most one more check (see `crate::trigger`).
//!
//! ## Adding routes
//!
//! [`router`] is an axum `Router`. Hooks prove themselves (a signature
//! over the body), so they are served to any peer the listener is bound
//! for. Routes that read jarvisd's state (`/api/v1/...`, `/metrics`) go
//! in its `reads` router with the [`Api`] state and check
//! [`allowed`] first: loopback peers through, others with the bearer token;
//! every request carries its peer's address as `ConnectInfo<SocketAddr>`.
//! The [`Api`] can ask the loop for the status of all units and nothing
//! else.

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

/// What the read-only routes may ask the loop: the status of all units,
/// and nothing else (the listener cannot start, stop or change anything).
#[derive(Clone)]
pub struct StatusSource(tokio::sync::mpsc::UnboundedSender<crate::msg::Msg>);

impl StatusSource {
    pub fn new(tx: tokio::sync::mpsc::UnboundedSender<crate::msg::Msg>) -> StatusSource {
        StatusSource(tx)
    }

    async fn report(&self) -> Option<jarvis_proto::StatusReport> {
        crate::control::status_report(&self.0).await
    }
}

/// The read-only API (`/api/v1/...`): who may read, and where from.
#[derive(Clone)]
pub struct Api {
    pub status: StatusSource,
    pub token: Option<Token>,
    /// The events `/api/v1/events` streams.
    pub events: Arc<crate::events::EventLog>,
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
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match presented {
        Some(p) if token.matches(p.trim().as_bytes()) => Ok(()),
        Some(_) => Err("wrong token"),
        None => Err("send Authorization: Bearer <the content of --http-token-file>"),
    }
}

/// `GET /api/v1/status`: the JSON `jarvisctl status --json` prints.
async fn api_status(
    State(api): State<Arc<Api>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    if let Err(why) = allowed(&api, peer, &headers) {
        tracing::info!(%peer, "http: refused a read without a good token");
        return text(StatusCode::UNAUTHORIZED, why);
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
        tracing::info!(%peer, "http: refused a read without a good token");
        return text(StatusCode::UNAUTHORIZED, why);
    }
    match api.status.report().await {
        Some(report) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            crate::metrics::render(&report),
        )
            .into_response(),
        None => text(StatusCode::SERVICE_UNAVAILABLE, "jarvisd is shutting down"),
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
        tracing::info!(%peer, "http: refused a read without a good token");
        return text(StatusCode::UNAUTHORIZED, why);
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

/// Whether a request's answer is a stream that may outlive
/// [`CONNECTION_TIMEOUT`].
fn is_stream(req: &hyper::Request<hyper::body::Incoming>) -> bool {
    req.method() == axum::http::Method::GET && req.uri().path() == API_EVENTS
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
        }
    }

    fn get_status(peer: &str, auth: Option<&str>) -> axum::http::Request<Body> {
        let mut b = axum::http::Request::get(API_STATUS);
        if let Some(a) = auth {
            b = b.header(header::AUTHORIZATION, a);
        }
        let mut req = b.body(Body::empty()).unwrap();
        req.extensions_mut()
            .insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
        req
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

    #[tokio::test(flavor = "current_thread")]
    async fn a_hook_not_configured_says_why() {
        let app = router(Hook::Off("no --git: nothing to apply".into()), no_api());
        let (st, body) = call(&app, post_hook(Some((GITEA, SIG.into())), Body::from(BODY))).await;
        assert_eq!(st, StatusCode::NOT_FOUND);
        assert_eq!(body, "no --git: nothing to apply\n");
    }
}
