//! The collection edge: the browser tracker script, the browser endpoint that takes one event
//! per request with a tenant's public site key, and the GA4 Measurement Protocol endpoints.
//!
//! - `GET /js/hourglass.js`: the tracker, cacheable for an hour.
//! - `POST /api/v1/collect` (site key in the body): one event from a web page. CORS is open
//!   (the key is public, and no credentials are involved); the page's hostname must be one
//!   the tenant allows. The user agent, client address and (with a trusted CDN header) the
//!   country come from the request, not from the body.
//! - `POST /mp/collect?measurement_id=SITE_KEY&api_secret=WRITE_KEY`: a GA4 Measurement
//!   Protocol request; 204 when stored, 400 with GA4-style `validationMessages` when not.
//! - `POST /debug/mp/collect`: the same checks, nothing stored, always the messages (200).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::RwLock;

use axum::Json;
use axum::extract::{ConnectInfo, Query, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hourglass_catalog::{Principal, secret};
use hourglass_ingest::measurement_protocol::{self as mp, MpContext, MpQuery, ValidationCode, ValidationMessage};
use hourglass_types::{ErrorKind, TenantId};
use serde::Deserialize;

use crate::error::ApiError;
use crate::handlers::{Shared, read_body, role_missing};

/// The tracker, served as written (it is small and readable).
const TRACKER: &str = include_str!("../assets/hourglass.js");

/// Largest browser event body: one event with its properties.
const MAX_COLLECT_BYTES: usize = 32 * 1024;

/// Where the client's address and country come from, when a proxy or CDN in front of
/// Hourglass knows them better than the socket does.
#[derive(Debug, Clone, Default)]
pub struct ClientHeaders {
    /// Header holding the client address (`X-Forwarded-For` style: the first entry is used).
    /// Only set this behind a proxy that overwrites it: clients can send any value.
    pub client_ip: Option<HeaderName>,
    /// Header holding the client's ISO 3166 country, such as Cloudflare's `CF-IPCountry`.
    pub country: Option<HeaderName>,
}

/// Site keys resolved so far. Keys are never reassigned, so a found key stays valid; unknown
/// keys are not remembered, so a new tenant's key works at once.
#[derive(Debug, Default)]
pub(crate) struct SiteKeys(RwLock<HashMap<String, TenantId>>);

impl SiteKeys {
    async fn resolve(&self, gw: &crate::Gateway, key: &str) -> Result<Option<TenantId>, ApiError> {
        // Anything that is not shaped like a key is refused without asking the catalog: this
        // endpoint is open to the internet.
        if !is_site_key(key) {
            return Ok(None);
        }
        if let Some(t) = self.0.read().unwrap_or_else(|e| e.into_inner()).get(key) {
            return Ok(Some(t.clone()));
        }
        let Some(tenant) = gw.catalog.tenant_by_site_key(key).await? else {
            return Ok(None);
        };
        self.0.write().unwrap_or_else(|e| e.into_inner()).insert(key.to_string(), tenant.clone());
        Ok(Some(tenant))
    }
}

/// Whether `key` has the shape of a site key: the prefix and 32 lower-case hex digits.
fn is_site_key(key: &str) -> bool {
    key.strip_prefix(secret::SITE_KEY_PREFIX)
        .is_some_and(|hex| hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
}

/// `GET /js/hourglass.js`.
pub(crate) async fn tracker() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        TRACKER,
    )
        .into_response()
}

fn with_cors(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("POST, OPTIONS"));
    headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static("Content-Type"));
    headers.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("86400"));
    response
}

/// `OPTIONS /api/v1/collect`: the CORS preflight (the tracker avoids it, other scripts may not).
pub(crate) async fn collect_preflight() -> Response {
    with_cors(StatusCode::NO_CONTENT.into_response())
}

/// The client's address: the trusted header's first entry when configured, else the socket's.
fn client_ip(headers: &HeaderMap, socket: Option<SocketAddr>, trusted: &ClientHeaders) -> Option<IpAddr> {
    if let Some(name) = &trusted.client_ip {
        let first = headers.get(name)?.to_str().ok()?.split(',').next()?.trim();
        return first.parse().ok();
    }
    socket.map(|s| s.ip())
}

/// The country from the trusted CDN header, when it holds a two-letter code (Cloudflare sends
/// `XX` and `T1` for unknown and Tor, which are left out).
fn header_country(headers: &HeaderMap, trusted: &ClientHeaders) -> Option<String> {
    let value = headers.get(trusted.country.as_ref()?)?.to_str().ok()?.trim().to_ascii_uppercase();
    let valid = value.len() == 2 && value.bytes().all(|b| b.is_ascii_uppercase()) && value != "XX";
    valid.then_some(value)
}

fn user_agent(headers: &HeaderMap) -> Option<String> {
    headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(str::to_string)
}

/// The body of `POST /api/v1/collect`. Unknown keys are ignored, so an older server accepts
/// a newer tracker's events.
#[derive(Debug, Deserialize)]
struct BrowserEvent {
    site_key: String,
    name: String,
    url: String,
    #[serde(default)]
    referrer: Option<String>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    screen_width: Option<serde_json::Value>,
    #[serde(default)]
    language: Option<String>,
    #[serde(default)]
    props: Option<serde_json::Value>,
    #[serde(default)]
    revenue: Option<serde_json::Value>,
    #[serde(default)]
    currency: Option<String>,
    #[serde(default)]
    interactive: Option<bool>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default)]
    session_id: Option<String>,
    #[serde(default)]
    country: Option<String>,
}

/// The lower-case host of a page URL, without a leading `www.`.
fn page_hostname(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    let host = parsed.host_str()?.to_ascii_lowercase();
    Some(host.strip_prefix("www.").map(str::to_string).unwrap_or(host))
}

/// `POST /api/v1/collect`.
pub(crate) async fn collect(State(gw): Shared, request: Request) -> Response {
    with_cors(match collect_event(&gw, request).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    })
}

async fn collect_event(gw: &crate::Gateway, request: Request) -> Result<Response, ApiError> {
    let socket = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
    let (parts, body) = request.into_parts();
    let headers = parts.headers;
    let body = read_body(body, MAX_COLLECT_BYTES).await?;
    let event: BrowserEvent = serde_json::from_slice(&body)
        .map_err(|e| ApiError::new(ErrorKind::InvalidArgument, format!("invalid event: {e}")))?;
    let tenant = gw
        .site_keys
        .resolve(gw, event.site_key.trim())
        .await?
        .ok_or_else(|| ApiError::new(ErrorKind::Unauthenticated, "unknown site_key"))?;
    let hostname = page_hostname(&event.url)
        .ok_or_else(|| ApiError::new(ErrorKind::InvalidArgument, "url: not an absolute URL with a host"))?;
    let config =
        gw.settings.get(&tenant).await?.ok_or_else(|| ApiError::new(ErrorKind::Unauthenticated, "unknown site_key"))?;
    if !config.settings.allows_hostname(&hostname) {
        return Err(ApiError::new(
            ErrorKind::PermissionDenied,
            format!("hostname {hostname} is not among this site's allowed hostnames"),
        )
        .with_code("hostname_not_allowed"));
    }
    let origin_host = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()).and_then(page_hostname);
    if let Some(origin) = origin_host.filter(|o| !config.settings.allows_hostname(o)) {
        return Err(ApiError::new(
            ErrorKind::PermissionDenied,
            format!("origin {origin} is not among this site's allowed hostnames"),
        )
        .with_code("hostname_not_allowed"));
    }

    let mut out = serde_json::Map::new();
    out.insert("name".into(), event.name.into());
    out.insert("url".into(), event.url.into());
    let optional_text = [
        ("referrer", event.referrer),
        ("title", event.title),
        ("language", event.language),
        ("currency", event.currency),
        ("client_id", event.client_id),
        ("user_id", event.user_id),
        ("session_id", event.session_id),
        ("user_agent", user_agent(&headers)),
        ("ip", client_ip(&headers, socket, &gw.client_headers).map(|ip| ip.to_string())),
        ("country", event.country.or_else(|| header_country(&headers, &gw.client_headers))),
    ];
    for (key, value) in optional_text {
        if let Some(value) = value.filter(|v| !v.is_empty()) {
            out.insert(key.into(), value.into());
        }
    }
    for (key, value) in [("screen_width", event.screen_width), ("props", event.props), ("revenue", event.revenue)] {
        if let Some(value) = value.filter(|v| !v.is_null()) {
            out.insert(key.into(), value);
        }
    }
    if let Some(interactive) = event.interactive {
        out.insert("interactive".into(), interactive.into());
    }
    let body = serde_json::to_vec(&serde_json::Value::Object(out))
        .map_err(|e| ApiError::new(ErrorKind::Internal, format!("encoding the event: {e}")))?;
    let outcome = store(gw, &tenant, body).await?;
    if let Some(error) = outcome.errors.first() {
        let field = error.field.as_deref().map(|f| format!("{f}: ")).unwrap_or_default();
        return Err(ApiError::new(ErrorKind::InvalidArgument, format!("{field}{}", error.error)));
    }
    Ok((StatusCode::ACCEPTED, Json(serde_json::json!({"accepted": outcome.accepted}))).into_response())
}

/// Stores an ingest body for `tenant` through the in-process ingester, under an ingest slot.
async fn store(
    gw: &crate::Gateway,
    tenant: &TenantId,
    body: Vec<u8>,
) -> Result<hourglass_ingest::IngestOutcome, ApiError> {
    let ingester = gw.services.ingester.as_ref().ok_or_else(|| role_missing("ingester"))?;
    let _slot = gw.ingest_slots.try_acquire().map_err(|_| {
        ApiError::new(ErrorKind::ResourceExhausted, "too many ingest requests in flight; retry shortly")
    })?;
    Ok(ingester.ingest(tenant, body.into(), false).await?)
}

/// Query parameters of the Measurement Protocol endpoints.
#[derive(Debug, Deserialize)]
pub(crate) struct MpParams {
    measurement_id: Option<String>,
    api_secret: Option<String>,
}

/// Checks that `measurement_id` is a site key and `api_secret` a write key of the same tenant.
async fn mp_tenant(gw: &crate::Gateway, params: &MpParams) -> Result<Option<TenantId>, ApiError> {
    let (Some(site_key), Some(secret)) = (params.measurement_id.as_deref(), params.api_secret.as_deref()) else {
        return Ok(None);
    };
    let Some(tenant) = gw.site_keys.resolve(gw, site_key.trim()).await? else {
        return Ok(None);
    };
    match gw.auth.resolve(secret.trim()).await? {
        Some(Principal::Writer(owner)) if owner == tenant => Ok(Some(tenant)),
        _ => Ok(None),
    }
}

fn mp_context(gw: &crate::Gateway, headers: &HeaderMap, socket: Option<SocketAddr>, now_ms: i64) -> MpContext {
    MpContext {
        now_ms,
        user_agent: user_agent(headers),
        ip: client_ip(headers, socket, &gw.client_headers).map(|ip| ip.to_string()),
        country: header_country(headers, &gw.client_headers),
    }
}

fn credentials_message() -> ValidationMessage {
    ValidationMessage {
        field_path: "api_secret".into(),
        description: "The measurement_id and api_secret do not name a site and one of its write keys.".into(),
        validation_code: ValidationCode::ValueInvalid,
    }
}

/// Reads a Measurement Protocol request: the events to store, or the messages to answer.
async fn mp_events(
    gw: &crate::Gateway,
    params: &MpParams,
    request: Request,
) -> Result<(Option<TenantId>, Result<Vec<serde_json::Value>, Vec<ValidationMessage>>), ApiError> {
    let socket = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
    let (parts, body) = request.into_parts();
    let body = read_body(body, mp::MAX_BODY_BYTES).await?;
    let now_ms =
        gw.services.ingester.as_ref().map(|i| i.now_ms()).unwrap_or_else(|| chrono::Utc::now().timestamp_millis());
    let query = MpQuery { measurement_id: params.measurement_id.clone(), api_secret: params.api_secret.clone() };
    let mapped = mp::map_payload(&body, &query, &mp_context(gw, &parts.headers, socket, now_ms));
    let tenant = mp_tenant(gw, params).await?;
    Ok((tenant, mapped))
}

/// `POST /mp/collect`.
pub(crate) async fn mp_collect(
    State(gw): Shared,
    Query(params): Query<MpParams>,
    request: Request,
) -> Result<Response, ApiError> {
    let (tenant, mapped) = mp_events(&gw, &params, request).await?;
    let events = match mapped {
        Ok(events) => events,
        Err(messages) => {
            return Ok((StatusCode::BAD_REQUEST, Json(mp::debug_response(&messages))).into_response());
        }
    };
    let tenant = tenant.ok_or_else(|| {
        ApiError::new(ErrorKind::Unauthenticated, "measurement_id and api_secret must be a site key and its write key")
    })?;
    let body = serde_json::to_vec(&events)
        .map_err(|e| ApiError::new(ErrorKind::Internal, format!("encoding the events: {e}")))?;
    let outcome = store(&gw, &tenant, body).await?;
    if !outcome.errors.is_empty() {
        let messages: Vec<ValidationMessage> = outcome
            .errors
            .iter()
            .map(|e| ValidationMessage {
                field_path: format!("events[{}]", e.index),
                description: format!("{}{}", e.field.as_deref().map(|f| format!("{f}: ")).unwrap_or_default(), e.error),
                validation_code: ValidationCode::ValueInvalid,
            })
            .collect();
        return Ok((StatusCode::BAD_REQUEST, Json(mp::debug_response(&messages))).into_response());
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /debug/mp/collect`: validation only.
pub(crate) async fn mp_debug(
    State(gw): Shared,
    Query(params): Query<MpParams>,
    request: Request,
) -> Result<Response, ApiError> {
    let (tenant, mapped) = mp_events(&gw, &params, request).await?;
    let mut messages = mapped.err().unwrap_or_default();
    let has_credentials = params.measurement_id.is_some() && params.api_secret.is_some();
    if tenant.is_none() && has_credentials {
        messages.push(credentials_message());
    }
    Ok(Json(mp::debug_response(&messages)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostnames_and_headers() {
        assert_eq!(page_hostname("https://WWW.Shop.example:8443/a?b#c").as_deref(), Some("shop.example"));
        assert_eq!(page_hostname("/relative"), None);
        assert!(is_site_key("hgp_0123456789abcdef0123456789abcdef"));
        for bad in ["hgp_nope", "hgw_0123456789abcdef0123456789abcdef", "hgp_0123456789ABCDEF0123456789abcdef", ""] {
            assert!(!is_site_key(bad), "{bad}");
        }
        let trusted = ClientHeaders {
            client_ip: Some(HeaderName::from_static("x-forwarded-for")),
            country: Some(HeaderName::from_static("cf-ipcountry")),
        };
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", HeaderValue::from_static("203.0.113.9, 10.0.0.1"));
        headers.insert("cf-ipcountry", HeaderValue::from_static("de"));
        let socket: SocketAddr = "127.0.0.1:9".parse().expect("addr");
        assert_eq!(client_ip(&headers, Some(socket), &trusted), "203.0.113.9".parse().ok());
        assert_eq!(client_ip(&headers, Some(socket), &ClientHeaders::default()), Some(socket.ip()));
        assert_eq!(header_country(&headers, &trusted).as_deref(), Some("DE"));
        headers.insert("cf-ipcountry", HeaderValue::from_static("XX"));
        assert_eq!(header_country(&headers, &trusted), None);
        assert_eq!(header_country(&headers, &ClientHeaders::default()), None);
    }
}
