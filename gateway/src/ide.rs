//! The GraphQL IDE at `/`: GraphiQL served from files embedded in the
//! binary (pinned production builds in `gateway/assets/ide/`, re-fetched by
//! `fetch.sh` there), so it works without internet access, under a strict
//! Content-Security-Policy (no inline script, nothing from another origin).

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

/// Only this server's own files; no inline or evaluated script or style.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                   img-src 'self' data:; font-src 'self' data:; connect-src 'self'; \
                   base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Where the IDE's files are served.
pub const ASSET_PREFIX: &str = "/ide/";

/// One embedded file: name under [`ASSET_PREFIX`], body, media type, and
/// whether its name pins its content (a version in the name), so browsers
/// may keep it for a year.
struct Asset {
    name: &'static str,
    body: &'static [u8],
    media_type: &'static str,
    pinned: bool,
}

macro_rules! asset {
    ($name:literal, $media:expr, $pinned:expr) => {
        Asset {
            name: $name,
            body: include_bytes!(concat!("../assets/ide/", $name)),
            media_type: $media,
            pinned: $pinned,
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

static ASSETS: &[Asset] = &[
    asset!("react-18.3.1.production.min.js", JS, true),
    asset!("react-dom-18.3.1.production.min.js", JS, true),
    asset!("graphiql-3.8.3.min.js", JS, true),
    asset!("graphiql-3.8.3.min.css", CSS, true),
    asset!("ide.js", JS, false),
    asset!("ide.css", CSS, false),
];

const PAGE: &[u8] = include_bytes!("../assets/ide/index.html");

fn respond(body: &'static [u8], media_type: &'static str, pinned: bool) -> Response {
    let cache = if pinned {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(media_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}

/// `GET /`: the IDE's page.
pub async fn page() -> Response {
    let mut resp = respond(PAGE, "text/html; charset=utf-8", false);
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    resp
}

/// `GET /ide/{file}`: one of the IDE's embedded files.
pub async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|a| a.name == file) {
        Some(a) => respond(a.body, a.media_type, a.pinned),
        None => (StatusCode::NOT_FOUND, "not found").into_response(),
    }
}

/// True when the request comes from a browser loading a page (it asks for
/// HTML), as when someone opens the GraphQL endpoint's URL.
pub fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|part| {
            part.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("text/html"))
        })
}

/// Sends a browser to the IDE.
pub fn redirect() -> Response {
    Redirect::to("/").into_response()
}
