//! The web dashboard and SQL explorer: static files built into the binary (so `hourglass
//! serve` needs nothing beside it) that talk only to the public report and query APIs with
//! the merchant's read token, which stays in the browser.
//!
//! `GET /` and `GET /sql` answer the same page (the script picks the view from the path);
//! `GET /ui/<file>` answers its scripts, styles and the vendored chart library (uPlot, MIT).

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use hourglass_types::ErrorKind;

const INDEX: &str = include_str!("../ui/index.html");

/// Assets by file name: (body, content type).
const ASSETS: [(&str, &str, &str); 4] = [
    ("app.js", include_str!("../ui/app.js"), "text/javascript; charset=utf-8"),
    ("app.css", include_str!("../ui/app.css"), "text/css; charset=utf-8"),
    ("uPlot.iife.min.js", include_str!("../ui/vendor/uplot/uPlot.iife.min.js"), "text/javascript; charset=utf-8"),
    ("uPlot.min.css", include_str!("../ui/vendor/uplot/uPlot.min.css"), "text/css; charset=utf-8"),
];

/// Scripts and styles come only from this server. Styles also allow inline ones because the
/// chart library and the tables' bars set style attributes; scripts never run inline.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
                   connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// An ETag that changes whenever the body does: FNV-1a over the bytes.
fn etag(body: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in body.as_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("\"{hash:016x}\"")
}

/// The page's and each asset's ETag (in the order of `ASSETS`, then the page), hashed once
/// rather than on every request.
static ETAGS: LazyLock<Vec<String>> =
    LazyLock::new(|| ASSETS.iter().map(|(_, body, _)| etag(body)).chain([etag(INDEX)]).collect());

/// The body with validators: browsers revalidate on every load (`no-cache`) and get 304 when
/// nothing changed, so a new binary's files are never mixed with an old page.
fn respond(headers: &HeaderMap, body: &'static str, tag: &str, content_type: &'static str) -> Response {
    let common = [
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        (header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP)),
        (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
    ];
    let tag_value = HeaderValue::from_str(tag).unwrap_or_else(|_| HeaderValue::from_static("\"0\""));
    if headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains(tag)) {
        let mut response = (StatusCode::NOT_MODIFIED, common).into_response();
        response.headers_mut().insert(header::ETAG, tag_value);
        return response;
    }
    let mut response = (common, [(header::CONTENT_TYPE, content_type)], body).into_response();
    response.headers_mut().insert(header::ETAG, tag_value);
    response
}

/// `GET /` and `GET /sql`: the page.
pub(crate) async fn page(headers: HeaderMap) -> Response {
    respond(&headers, INDEX, &ETAGS[ASSETS.len()], "text/html; charset=utf-8")
}

/// `GET /ui/{file}`: a script or style of the page.
pub(crate) async fn asset(Path(file): Path<String>, headers: HeaderMap) -> Result<Response, ApiError> {
    let index = ASSETS
        .iter()
        .position(|(name, _, _)| *name == file)
        .ok_or_else(|| ApiError::new(ErrorKind::NotFound, format!("no such file: /ui/{file}")))?;
    let (_, body, content_type) = ASSETS[index];
    Ok(respond(&headers, body, &ETAGS[index], content_type))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_the_page_names_is_served() {
        for (name, _, _) in ASSETS {
            assert!(INDEX.contains(&format!("/ui/{name}")), "index.html loads /ui/{name}");
        }
        let referenced = INDEX.matches("/ui/").count();
        assert_eq!(referenced, ASSETS.len(), "index.html names no file that is not served");
    }

    #[test]
    fn etags_follow_the_content() {
        assert_eq!(etag("a"), etag("a"));
        assert_ne!(etag("a"), etag("b"));
    }
}
