//! Google Analytics 4 Measurement Protocol requests turned into Hourglass ingest events, with
//! the validation messages GA4's `/debug/mp/collect` answers with.
//!
//! [`map_payload`] reads one request: the JSON body of `POST /mp/collect` and its query
//! parameters. It returns one event object per GA4 event, in the shape [`crate::parse`] accepts
//! (so the usual validation, IP hashing and de-duplication still apply), or every problem it
//! found. [`debug_response`] renders those problems as the debug endpoint's body. Resolving the
//! tenant from `measurement_id` and `api_secret`, the HTTP status and decompression are the
//! caller's; bodies over [`MAX_BODY_BYTES`] are refused here.
//!
//! # Mapping
//!
//! | GA4 | Hourglass |
//! |---|---|
//! | `client_id`, else `app_instance_id` (one is required) | `client_id` |
//! | `user_id` | `user_id` |
//! | `events[].timestamp_micros`, else `events[].params.timestamp_micros`, else the request's `timestamp_micros`, else [`MpContext::now_ms`] | `timestamp`, epoch ms (micros / 1000, rounded down) |
//! | `events[].name`, with `page_view` renamed `pageview` | `name` |
//! | `page_location`, `page_referrer`, `page_title` | `url`, `referrer`, `title` |
//! | `session_id` (string or number) | `session_id`, as text |
//! | `language` | `language` |
//! | `screen_resolution` (`1280x800`) | `screen_width` (`1280`) |
//! | `value`, when a number | `revenue`, with `currency` (upper-cased) as `currency` |
//! | `engagement_time_msec` | dropped: GA4 bookkeeping |
//! | `items` (an array of objects) | `props.items`, the array as compact JSON |
//! | any other parameter | `props`: strings as sent, numbers as their JSON text, booleans as `true`/`false` |
//! | `user_agent`, `ip_override`, `user_location.country_id` | `user_agent`, `ip`, `country`; when absent, [`MpContext`]'s (the request's headers) |
//!
//! Empty strings in mapped parameters count as absent. A `value` that is not a number stays a
//! property, and so does a `currency` without a numeric `value`; `transaction_id` is an ordinary
//! property. `user_properties`, `user_data`, `consent`, `device`, `non_personalized_ads` and
//! `validation_behavior` are checked for type and otherwise ignored. No `event_id` is set (GA4
//! has none per event): the ingester assigns one, so a retried request is counted twice.
//!
//! # Validation
//!
//! GA4's limits (the "Limitations" of the MP sending guide, the event collection limits and the
//! MP reference's reserved names): at most [`MAX_EVENTS`] events per request and
//! [`MAX_PARAMS`] parameters per event; event and parameter names of at most
//! [`MAX_NAME_CHARS`] characters that start with a letter and hold only letters, digits and
//! underscores; parameter values of at most [`MAX_VALUE_CHARS`] characters, except `page_title`
//! (300), `page_referrer` (420) and `page_location` (1000); no reserved event names
//! (`session_start`, `first_visit`, `ad_click`, ...; `ad_impression`, `in_app_purchase` and
//! `screen_view` too, as on web streams) or prefixes (`firebase_`, `google_`, `ga_`, and for
//! parameters also `_` and `gtag.`); timestamps at most [`MAX_PAST_MS`] (72 hours) old and, an
//! Hourglass addition, at most [`MAX_FUTURE_MS`] ahead. `items` may hold [`MAX_ITEMS`] items
//! and is bounded by [`MAX_ITEMS_JSON_BYTES`] instead of the value limit; item fields are not
//! checked. Lengths count characters, not bytes.
//!
//! Stricter than GA4's default `RELAXED` behaviour, like its `ENFORCE_RECOMMENDATIONS`: one
//! problem anywhere rejects the whole request, so nothing is stored by halves. Keys GA4 does not
//! define are errors (its parser answers "Cannot find field"). A key given twice in one object
//! keeps its last value, as `serde_json` reads it, so `NAME_DUPLICATED` is never reported. Field
//! paths name the exact field (`events[1].params.page_location`) where GA4 often says just
//! `events`; descriptions follow GA4's wording where it is known.

use std::net::IpAddr;

use serde_json::{Map, Value, json};

use crate::parse::kind_of;

/// Most events in one request.
pub const MAX_EVENTS: usize = 25;
/// Most parameters on one event.
pub const MAX_PARAMS: usize = 25;
/// Longest event or parameter name, in characters.
pub const MAX_NAME_CHARS: usize = 40;
/// Longest parameter value, in characters, save `page_title`, `page_referrer` and `page_location`.
pub const MAX_VALUE_CHARS: usize = 100;
/// Most entries in an `items` parameter.
pub const MAX_ITEMS: usize = 200;
/// Longest `items` parameter as compact JSON, in bytes: the default ingest limit on a property.
pub const MAX_ITEMS_JSON_BYTES: usize = 8 * 1024;
/// Largest request body; GA4 wants it "smaller than 130kB".
pub const MAX_BODY_BYTES: usize = 130 * 1024;
/// How far back an event may be dated: GA4 backdates events by up to 72 hours.
pub const MAX_PAST_MS: i64 = 72 * 60 * 60 * 1000;
/// How far ahead of the server clock an event may be dated, for clock skew.
pub const MAX_FUTURE_MS: i64 = 5 * 60 * 1000;

/// GA4's message for a body it cannot read, which also starts its unknown-field messages.
const PARSE_FAILED: &str = "Unable to parse Measurement Protocol JSON payload.";

/// Event names the MP reference reserves, then the three it allows on app streams only.
const RESERVED_EVENT_NAMES: &str = "ad_activeview ad_click ad_exposure ad_query ad_reward adunit_exposure \
    app_clear_data app_exception app_install app_remove app_store_refund app_update app_upgrade \
    dynamic_link_app_open dynamic_link_app_update dynamic_link_first_open error firebase_campaign \
    firebase_in_app_message_action firebase_in_app_message_dismiss firebase_in_app_message_impression \
    first_open first_visit notification_dismiss notification_foreground notification_open \
    notification_receive notification_send os_update session_start user_engagement \
    ad_impression in_app_purchase screen_view";
const RESERVED_EVENT_PREFIXES: &[&str] = &["firebase_", "google_", "ga_"];
/// Also covers the one reserved parameter name, `firebase_conversion`.
const RESERVED_PARAM_PREFIXES: &[&str] = &["_", "firebase_", "ga_", "google_", "gtag."];
/// Every key of the request body GA4 defines.
const REQUEST_KEYS: &str = "client_id app_instance_id user_id timestamp_micros user_properties user_data consent \
    non_personalized_ads user_location ip_override device user_agent validation_behavior events";
const EVENT_KEYS: &str = "name params timestamp_micros";
/// Parameters that become a text field of their own, and that field.
const FIELD_PARAMS: [(&str, &str); 4] =
    [("page_location", "url"), ("page_referrer", "referrer"), ("page_title", "title"), ("session_id", "session_id")];
/// Parameters read elsewhere (`timestamp_micros`) or not kept.
const DROPPED_PARAMS: [&str; 2] = ["engagement_time_msec", "timestamp_micros"];

/// The query parameters of a Measurement Protocol request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MpQuery {
    /// The data stream's measurement id, such as `G-XXXXXXXXXX`.
    pub measurement_id: Option<String>,
    /// The stream's API secret.
    pub api_secret: Option<String>,
}

/// What a request carries besides its body, copied into each of its events.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MpContext {
    /// Receive time, epoch ms: the time of undated events and the reference for the window.
    pub now_ms: i64,
    /// The request's `User-Agent`, unless the body sets `user_agent`.
    pub user_agent: Option<String>,
    /// The client's IP address, unless the body sets `ip_override`.
    pub ip: Option<String>,
    /// ISO 3166-1 alpha-2 country, unless the body sets `user_location.country_id`.
    pub country: Option<String>,
}

/// GA4's classes of validation problem, serialized as GA4 spells them (`VALUE_INVALID`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ValidationCode {
    /// The value provided is invalid.
    ValueInvalid,
    /// A required value was not provided.
    ValueRequired,
    /// The name provided is invalid.
    NameInvalid,
    /// The name provided is reserved.
    NameReserved,
    /// The value provided is too large.
    ValueOutOfBounds,
    /// There are too many events, parameters or items.
    ExceededMaxEntities,
    /// The same name was provided more than once.
    NameDuplicated,
}

/// One problem with a request, as the debug endpoint reports it (`fieldPath`, `description`,
/// `validationCode`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ValidationMessage {
    /// Path of the offending field, such as `events[0].params.page_title`; empty for the body.
    pub field_path: String,
    /// What is wrong.
    pub description: String,
    /// The class of problem.
    pub validation_code: ValidationCode,
}

/// The debug endpoint's response body, `{"validationMessages": [...]}`; the list is empty for a
/// valid request.
pub fn debug_response(messages: &[ValidationMessage]) -> Value {
    json!({ "validationMessages": messages })
}

/// Maps one Measurement Protocol request onto Hourglass ingest event objects, one per GA4
/// event and in order, as the module documentation describes; or returns every problem found.
pub fn map_payload(body: &[u8], query: &MpQuery, ctx: &MpContext) -> Result<Vec<Value>, Vec<ValidationMessage>> {
    let mut out = Vec::new();
    for (key, value, article) in
        [("measurement_id", &query.measurement_id, "a"), ("api_secret", &query.api_secret, "an")]
    {
        if value.as_deref().is_none_or(|v| v.trim().is_empty()) {
            report(&mut out, key, ValidationCode::ValueRequired, format!("Measurement requires {article} {key}."));
        }
    }
    if body.len() > MAX_BODY_BYTES {
        let description = format!("The post body has {} bytes; it must be at most {MAX_BODY_BYTES}.", body.len());
        report(&mut out, "", ValidationCode::ValueOutOfBounds, description);
        return Err(out);
    }
    let root = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(root)) => root,
        Ok(other) => {
            let description = format!("{PARSE_FAILED} The payload must be a JSON object, not {}.", kind_of(&other));
            report(&mut out, "", ValidationCode::ValueInvalid, description);
            return Err(out);
        }
        Err(e) => {
            report(&mut out, "", ValidationCode::ValueInvalid, format!("{PARSE_FAILED} {e}"));
            return Err(out);
        }
    };
    let shared = read_request(&root, ctx, &mut out);
    let events: &[Value] = match get(&root, "events") {
        Some(Value::Array(events)) => events,
        Some(other) => {
            let description = format!("events must be an array, not {}.", kind_of(other));
            report(&mut out, "events", ValidationCode::ValueInvalid, description);
            &[]
        }
        None => &[],
    };
    if events.is_empty() && !out.iter().any(|m| m.field_path == "events") {
        report(&mut out, "events", ValidationCode::ValueRequired, "Measurement requires at least one event.".into());
    }
    if events.len() > MAX_EVENTS {
        let description = format!("Measurement has {} events; at most {MAX_EVENTS} are allowed.", events.len());
        report(&mut out, "events", ValidationCode::ExceededMaxEntities, description);
    }
    let mut mapped = Vec::with_capacity(events.len());
    for (index, event) in events.iter().enumerate() {
        mapped.push(map_event(index, event, &shared, ctx.now_ms, &mut out));
    }
    if out.is_empty() { Ok(mapped) } else { Err(out) }
}

/// What every event of a request shares.
struct Shared<'a> {
    client_id: Option<&'a str>,
    user_id: Option<&'a str>,
    timestamp_ms: Option<i64>,
    user_agent: Option<&'a str>,
    ip: Option<&'a str>,
    country: Option<String>,
}

/// Checks the request's own fields and reads those its events share.
fn read_request<'a>(root: &'a Map<String, Value>, ctx: &'a MpContext, out: &mut Vec<ValidationMessage>) -> Shared<'a> {
    check_keys(root, "", REQUEST_KEYS, out);
    let client_id = text(root, "client_id", "", out);
    let app_instance_id = text(root, "app_instance_id", "", out);
    let client_id = client_id.or(app_instance_id).filter(|id| !id.trim().is_empty());
    if client_id.is_none() && !out.iter().any(|m| m.field_path == "client_id" || m.field_path == "app_instance_id") {
        report(out, "client_id", ValidationCode::ValueRequired, "Measurement requires a client_id.".into());
    }
    let user_id = text(root, "user_id", "", out).filter(|id| !id.is_empty());
    let timestamp_ms =
        get(root, "timestamp_micros").and_then(|v| timestamp(v, "timestamp_micros", "Measurement", ctx.now_ms, out));
    for key in ["user_properties", "user_data", "consent", "device"] {
        object(get(root, key), key, out);
    }
    if let Some(other) = get(root, "non_personalized_ads").filter(|v| !v.is_boolean()) {
        let description = format!("non_personalized_ads must be a boolean, not {}.", kind_of(other));
        report(out, "non_personalized_ads", ValidationCode::ValueInvalid, description);
    }
    if let Some(behavior) = text(root, "validation_behavior", "", out)
        && !matches!(behavior, "RELAXED" | "ENFORCE_RECOMMENDATIONS")
    {
        let description =
            format!("validation_behavior [{}] must be RELAXED or ENFORCE_RECOMMENDATIONS.", shown(behavior));
        report(out, "validation_behavior", ValidationCode::ValueInvalid, description);
    }
    let user_agent = text(root, "user_agent", "", out).filter(|ua| !ua.is_empty()).or(ctx.user_agent.as_deref());
    let ip = match text(root, "ip_override", "", out) {
        Some(ip) if ip.trim().parse::<IpAddr>().is_err() => {
            let description = format!("ip_override [{}] is not an IP address.", shown(ip));
            report(out, "ip_override", ValidationCode::ValueInvalid, description);
            None
        }
        Some(ip) => Some(ip.trim()),
        None => ctx.ip.as_deref(),
    };
    let country = match object(get(root, "user_location"), "user_location", out)
        .and_then(|location| text(location, "country_id", "user_location", out))
    {
        Some(c) if c.len() == 2 && c.bytes().all(|b| b.is_ascii_alphabetic()) => Some(c.to_ascii_uppercase()),
        Some(c) => {
            let description = format!("country_id [{}] is not an ISO 3166-1 alpha-2 code.", shown(c));
            report(out, "user_location.country_id", ValidationCode::ValueInvalid, description);
            None
        }
        None => ctx.country.clone(),
    };
    Shared { client_id, user_id, timestamp_ms, user_agent, ip, country }
}

/// Checks one event and builds its Hourglass object (meaningless once a problem is reported).
fn map_event(index: usize, event: &Value, shared: &Shared<'_>, now_ms: i64, out: &mut Vec<ValidationMessage>) -> Value {
    let path = format!("events[{index}]");
    let subject = format!("Event at index: [{index}]");
    let Value::Object(entries) = event else {
        report(
            out,
            path,
            ValidationCode::ValueInvalid,
            format!("{subject} must be an object, not {}.", kind_of(event)),
        );
        return Value::Null;
    };
    check_keys(entries, &path, EVENT_KEYS, out);
    let name_path = format!("{path}.name");
    let name = match get(entries, "name") {
        Some(Value::String(name)) => {
            let reserved = (RESERVED_EVENT_NAMES, RESERVED_EVENT_PREFIXES);
            check_name(name, "name", reserved, &subject, &name_path, out).then_some(name.as_str())
        }
        Some(other) => {
            let description = format!("{subject} has a name that is {}, not a string.", kind_of(other));
            report(out, name_path, ValidationCode::ValueInvalid, description);
            None
        }
        None => {
            report(out, name_path, ValidationCode::ValueRequired, format!("{subject} requires a name."));
            None
        }
    };
    let params_path = format!("{path}.params");
    let no_params = Map::new();
    let params = object(get(entries, "params"), &params_path, out).unwrap_or(&no_params);
    if params.len() > MAX_PARAMS {
        let description = format!("{subject} has {} parameters; at most {MAX_PARAMS} are allowed.", params.len());
        report(out, &params_path, ValidationCode::ExceededMaxEntities, description);
    }
    let own_timestamp = match (get(entries, "timestamp_micros"), get(params, "timestamp_micros")) {
        (Some(v), _) => timestamp(v, &format!("{path}.timestamp_micros"), &subject, now_ms, out),
        (None, Some(v)) => timestamp(v, &format!("{params_path}.timestamp_micros"), &subject, now_ms, out),
        (None, None) => None,
    };

    let mut fields = Map::new();
    let mut props = Map::new();
    let mut revenue = None;
    let mut currency = None;
    for (key, value) in params {
        let field = format!("{params_path}.{key}");
        if !check_name(key, "parameter name", ("", RESERVED_PARAM_PREFIXES), &subject, &field, out)
            || value.is_null()
            || DROPPED_PARAMS.contains(&key.as_str())
        {
            continue;
        }
        if key == "value"
            && let Value::Number(n) = value
        {
            revenue = n.as_f64();
            continue;
        }
        if key == "items" {
            if let Some(items) = items_json(value, &subject, &field, out) {
                props.insert(key.clone(), Value::String(items));
            }
            continue;
        }
        let Some(text) = param_text(key, value, &subject, &field, out) else { continue };
        if let Some((_, target)) = FIELD_PARAMS.iter().find(|(param, _)| *param == key.as_str()) {
            if !text.is_empty() {
                fields.insert((*target).to_owned(), Value::String(text));
            }
            continue;
        }
        let expected = match key.as_str() {
            "language" | "screen_resolution" | "currency" if text.is_empty() => continue,
            "language" => {
                if text.len() <= 35 && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
                    fields.insert("language".into(), Value::String(text));
                    continue;
                }
                "a language tag such as en-US"
            }
            "screen_resolution" => match screen_width(&text) {
                Some(width) => {
                    fields.insert("screen_width".into(), Value::from(width));
                    continue;
                }
                None => "WIDTHxHEIGHT, such as 1280x800",
            },
            "currency" => {
                if text.len() == 3 && text.bytes().all(|b| b.is_ascii_alphabetic()) {
                    currency = Some(text.to_ascii_uppercase());
                    continue;
                }
                "a three-letter ISO 4217 currency code"
            }
            _ => {
                props.insert(key.clone(), Value::String(text));
                continue;
            }
        };
        let description =
            format!("{subject} has parameter [{key}] with value [{}]; expected {expected}.", shown(&text));
        report(out, field, ValidationCode::ValueInvalid, description);
    }
    match (revenue, currency) {
        (Some(revenue), currency) => {
            fields.insert("revenue".into(), Value::from(revenue));
            if let Some(currency) = currency {
                fields.insert("currency".into(), Value::String(currency));
            }
        }
        (None, Some(currency)) => {
            props.insert("currency".into(), Value::String(currency));
        }
        (None, None) => {}
    }

    if let Some(name) = name {
        fields.insert("name".into(), Value::from(if name == "page_view" { "pageview" } else { name }));
    }
    fields.insert("timestamp".into(), Value::from(own_timestamp.or(shared.timestamp_ms).unwrap_or(now_ms)));
    let shared_text = [
        ("client_id", shared.client_id),
        ("user_id", shared.user_id),
        ("user_agent", shared.user_agent),
        ("ip", shared.ip),
        ("country", shared.country.as_deref()),
    ];
    for (key, value) in shared_text {
        if let Some(value) = value {
            fields.insert(key.into(), Value::from(value));
        }
    }
    if !props.is_empty() {
        fields.insert("props".into(), Value::Object(props));
    }
    Value::Object(fields)
}

/// Whether an event or parameter name (`noun`) is usable, given the reserved names (a
/// space-separated list) and prefixes; reports why not.
fn check_name(
    name: &str,
    noun: &str,
    (reserved, prefixes): (&str, &[&str]),
    subject: &str,
    path: &str,
    out: &mut Vec<ValidationMessage>,
) -> bool {
    let mut chars = name.chars();
    let (code, description) = if reserved.split_ascii_whitespace().any(|r| r == name) {
        (ValidationCode::NameReserved, format!("{subject} has {noun} [{name}] which is reserved."))
    } else if let Some(prefix) = prefixes.iter().find(|p| name.starts_with(**p)) {
        let description =
            format!("{subject} has {noun} [{}] which starts with the reserved prefix [{prefix}].", shown(name));
        (ValidationCode::NameReserved, description)
    } else if name.chars().count() > MAX_NAME_CHARS {
        let description = format!(
            "{subject} has invalid {noun} [{}]. Names must be {MAX_NAME_CHARS} characters or fewer.",
            shown(name)
        );
        (ValidationCode::NameInvalid, description)
    } else if !chars.next().is_some_and(char::is_alphabetic) {
        let description =
            format!("{subject} has invalid {noun} [{name}]. Names must start with an alphabetic character.");
        (ValidationCode::NameInvalid, description)
    } else if !chars.all(|c| c.is_alphanumeric() || c == '_') {
        let description =
            format!("{subject} has invalid {noun} [{name}]. Only alphanumeric characters and underscores are allowed.");
        (ValidationCode::NameInvalid, description)
    } else {
        return true;
    };
    report(out, path, code, description);
    false
}

/// A parameter value as text: strings within their length limit, numbers as their JSON text,
/// booleans as `true`/`false`. Reports anything else.
fn param_text(
    key: &str,
    value: &Value,
    subject: &str,
    field: &str,
    out: &mut Vec<ValidationMessage>,
) -> Option<String> {
    match value {
        Value::String(s) => {
            let limit = match key {
                "page_location" => 1000,
                "page_referrer" => 420,
                "page_title" => 300,
                _ => MAX_VALUE_CHARS,
            };
            // Bytes bound characters from above: most values skip the count.
            let chars = if s.len() > limit { s.chars().count() } else { 0 };
            if chars > limit {
                let description = format!(
                    "{subject} has parameter [{key}] with a value of {chars} characters; it must be {limit} or fewer."
                );
                report(out, field, ValidationCode::ValueOutOfBounds, description);
                return None;
            }
            Some(s.clone())
        }
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        other => {
            let description = format!(
                "{subject} has parameter [{key}] with {} value; values must be strings, numbers or booleans.",
                kind_of(other)
            );
            report(out, field, ValidationCode::ValueInvalid, description);
            None
        }
    }
}

/// The `items` parameter as compact JSON, or why it cannot be kept.
fn items_json(value: &Value, subject: &str, field: &str, out: &mut Vec<ValidationMessage>) -> Option<String> {
    let Value::Array(items) = value else {
        let description = format!("{subject} has parameter [items] that is {}, not an array.", kind_of(value));
        report(out, field, ValidationCode::ValueInvalid, description);
        return None;
    };
    if items.len() > MAX_ITEMS {
        let description = format!("{subject} has {} items; at most {MAX_ITEMS} are allowed.", items.len());
        report(out, field, ValidationCode::ExceededMaxEntities, description);
        return None;
    }
    if let Some(i) = items.iter().position(|item| !item.is_object()) {
        let description = format!("{subject} has an item at index [{i}] that is not an object.");
        report(out, format!("{field}[{i}]"), ValidationCode::ValueInvalid, description);
        return None;
    }
    let text = value.to_string();
    if text.len() > MAX_ITEMS_JSON_BYTES {
        let description =
            format!("{subject} has items of {} bytes as JSON; at most {MAX_ITEMS_JSON_BYTES} are kept.", text.len());
        report(out, field, ValidationCode::ValueOutOfBounds, description);
        return None;
    }
    Some(text)
}

/// Reads `timestamp_micros` (an integer, or one in a string as proto JSON allows) as epoch ms,
/// reporting bad types and times outside the accepted window.
fn timestamp(value: &Value, path: &str, subject: &str, now_ms: i64, out: &mut Vec<ValidationMessage>) -> Option<i64> {
    let micros = match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    };
    let Some(micros) = micros else {
        let description = format!("{subject} has timestamp_micros that is not a whole number of microseconds.");
        report(out, path, ValidationCode::ValueInvalid, description);
        return None;
    };
    let ms = micros.div_euclid(1000);
    let (hours, minutes) = (MAX_PAST_MS / 3_600_000, MAX_FUTURE_MS / 60_000);
    let description = if ms < now_ms.saturating_sub(MAX_PAST_MS) {
        format!(
            "{subject} has timestamp_micros [{micros}] more than {hours} hours in the past; \
             events can be backdated up to {hours} hours."
        )
    } else if ms > now_ms.saturating_add(MAX_FUTURE_MS) {
        format!("{subject} has timestamp_micros [{micros}] more than {minutes} minutes in the future.")
    } else {
        return Some(ms);
    };
    report(out, path, ValidationCode::ValueOutOfBounds, description);
    None
}

/// The width of a `WIDTHxHEIGHT` screen resolution, when it is one Hourglass can store.
fn screen_width(resolution: &str) -> Option<i64> {
    let (width, height) = resolution.split_once(['x', 'X'])?;
    let width = width.trim().parse::<u32>().ok()?;
    (height.trim().parse::<u32>().is_ok() && width <= 100_000).then_some(i64::from(width))
}

/// Reports keys outside `known`, a space-separated list, as GA4's parser does.
fn check_keys(obj: &Map<String, Value>, path: &str, known: &str, out: &mut Vec<ValidationMessage>) {
    for key in obj.keys().filter(|key| !known.split_ascii_whitespace().any(|k| k == key.as_str())) {
        let scope = if path.is_empty() { String::new() } else { format!("({path}) ") };
        let description = format!("{PARSE_FAILED} {scope}{}: Cannot find field.", shown(key));
        report(out, join(path, key), ValidationCode::ValueInvalid, description);
    }
}

/// The value at `key`; null counts as absent.
fn get<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

/// The string at `key` of the object at `path`, reporting any other type.
fn text<'a>(obj: &'a Map<String, Value>, key: &str, path: &str, out: &mut Vec<ValidationMessage>) -> Option<&'a str> {
    match get(obj, key)? {
        Value::String(s) => Some(s.as_str()),
        other => {
            let field = join(path, key);
            let description = format!("{field} must be a string, not {}.", kind_of(other));
            report(out, field, ValidationCode::ValueInvalid, description);
            None
        }
    }
}

/// The object at `path`, reporting any other type.
fn object<'a>(
    value: Option<&'a Value>,
    path: &str,
    out: &mut Vec<ValidationMessage>,
) -> Option<&'a Map<String, Value>> {
    match value? {
        Value::Object(obj) => Some(obj),
        other => {
            report(
                out,
                path,
                ValidationCode::ValueInvalid,
                format!("{path} must be an object, not {}.", kind_of(other)),
            );
            None
        }
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_owned() } else { format!("{path}.{key}") }
}

/// Text from the request quoted in a description, cut short so that descriptions stay small.
fn shown(s: &str) -> String {
    match s.char_indices().nth(MAX_NAME_CHARS + 10) {
        Some((end, _)) => format!("{}…", &s[..end]),
        None => s.to_owned(),
    }
}

fn report(
    out: &mut Vec<ValidationMessage>,
    field_path: impl Into<String>,
    validation_code: ValidationCode,
    description: String,
) {
    out.push(ValidationMessage { field_path: field_path.into(), description, validation_code });
}

#[cfg(test)]
mod tests;
