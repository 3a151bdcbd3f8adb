//! The dashboard: one page (`GET /`) and its script and style, all in the
//! binary (`dashboard/`), plain HTML, CSS and JavaScript with no build
//! step. The page reads what any client of the API reads
//! (`/api/v1/status`, `/api/v1/events`, `/api/v1/units/NAME/logs` and
//! `/bench`) and nothing else: it loads nothing from another origin, and
//! its `Content-Security-Policy` forbids it to. A unit's own view is the
//! same page at `/#/unit/NAME`.
//!
//! It is served behind the same check as the API (loopback, or the
//! token); a browser elsewhere is asked for a password
//! (`WWW-Authenticate: Basic`), which is the token (any user name), and
//! then sends it with every request the page makes.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::Api;

/// The page, its script and its style: (path, content type, body).
pub(super) const ASSETS: &[(&str, &str, &str)] = &[
    (
        "/",
        "text/html; charset=utf-8",
        include_str!("dashboard/index.html"),
    ),
    (
        "/assets/app.js",
        "text/javascript; charset=utf-8",
        include_str!("dashboard/app.js"),
    ),
    (
        "/assets/app.css",
        "text/css; charset=utf-8",
        include_str!("dashboard/app.css"),
    ),
];

/// Only this origin: scripts, styles and requests; images only inline
/// (`data:`, the page's empty icon); no frames, forms or plugins.
pub(super) const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// The dashboard's routes (every path in [`ASSETS`]).
pub(super) fn routes() -> Router<Arc<Api>> {
    ASSETS
        .iter()
        .fold(Router::new(), |r, (path, _, _)| r.route(path, get(asset)))
}

async fn asset(
    State(api): State<Arc<Api>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    if let Err(why) = super::allowed(&api, peer, &headers) {
        let mut resp = super::refused(peer, why);
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"jarvisd\", charset=\"UTF-8\""),
        );
        return resp;
    }
    let Some((_, kind, body)) = ASSETS.iter().find(|(p, _, _)| *p == uri.path()) else {
        return super::text(StatusCode::NOT_FOUND, "no such route");
    };
    (
        [
            (header::CONTENT_TYPE, *kind),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        *body,
    )
        .into_response()
}
