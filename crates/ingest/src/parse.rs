//! Turning a request body into validated events, with an error per bad event that names its
//! index and field. A bad event never spoils the good ones beside it.

use std::io::Read;
use std::net::IpAddr;

use serde_json::{Map, Value};

use crate::limits::{IngestLimits, MAX_EVENT_ID_BYTES, MAX_NAME_BYTES, MAX_PROP_KEY_BYTES};
use crate::{Error, Result};

/// One event that passed validation, before IP hashing.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidEvent {
    /// Client-chosen or assigned id.
    pub event_id: String,
    /// Whether the id was assigned by the server (such events cannot be retried as duplicates).
    pub id_assigned: bool,
    /// Event time, epoch ms.
    pub timestamp_ms: i64,
    /// Event name.
    pub name: String,
    /// Optional string fields, in [`TEXT_FIELDS`] order.
    pub text: [Option<String>; TEXT_FIELDS.len()],
    /// Client IP, only kept until it is hashed.
    pub ip: Option<IpAddr>,
    /// ISO 3166 alpha-2, upper case.
    pub country: Option<String>,
    /// Language tag.
    pub language: Option<String>,
    /// Screen width in pixels.
    pub screen_width: Option<i32>,
    /// Revenue amount.
    pub revenue: Option<f64>,
    /// ISO 4217, upper case.
    pub currency: Option<String>,
    /// Whether the event ends a bounce.
    pub interactive: bool,
    /// Custom properties in the order received.
    pub props: Vec<(String, String)>,
}

/// The free-text fields stored as given, in the order of [`ValidEvent::text`].
pub const TEXT_FIELDS: [&str; 7] = ["client_id", "user_id", "session_id", "url", "referrer", "title", "user_agent"];

/// Every key an event may carry.
pub(crate) const KNOWN_FIELDS: [&str; 17] = [
    "event_id",
    "timestamp",
    "name",
    "client_id",
    "user_id",
    "session_id",
    "url",
    "referrer",
    "title",
    "user_agent",
    "ip",
    "country",
    "language",
    "screen_width",
    "revenue",
    "currency",
    "interactive",
];

/// Why one event of a request was rejected.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct EventError {
    /// Position of the event in the request (line for NDJSON, element for arrays), from 0.
    pub index: usize,
    /// The offending field, when one is to blame.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// What is wrong.
    pub error: String,
}

/// Decompresses a gzip body, refusing to inflate past `limit` bytes.
pub fn gunzip(body: &[u8], limit: usize) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(limit));
    let decoder = flate2::read::MultiGzDecoder::new(body);
    decoder
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| Error::BadBody { message: format!("gzip body does not decompress: {e}") })?;
    if out.len() > limit {
        return Err(Error::TooLarge { message: format!("decompressed body exceeds the limit of {limit} bytes") });
    }
    Ok(out)
}

/// Splits a body into events and validates each: a JSON array, or NDJSON (one object per
/// line; a single object is one line). Returns each event or its error, in order.
pub fn parse_events(body: &[u8], limits: &IngestLimits, now_ms: i64) -> Result<Vec<Result<ValidEvent, EventError>>> {
    let first = body.iter().position(|b| !b.is_ascii_whitespace());
    let Some(first) = first else {
        return Err(Error::BadBody { message: "body is empty; send a JSON array or NDJSON events".into() });
    };
    let too_many = |n: String| Error::TooLarge {
        message: format!("request has {n} events; the limit is {} per request", limits.max_events_per_request),
    };
    if body[first] == b'[' {
        let mut de = serde_json::Deserializer::from_slice(body);
        let values = serde::de::DeserializeSeed::deserialize(BoundedArray(limits.max_events_per_request), &mut de)
            .and_then(|v| de.end().map(|()| v))
            .map_err(|e| {
                if e.to_string().starts_with(TOO_MANY_EVENTS) {
                    too_many("more than that".into())
                } else {
                    Error::BadBody { message: format!("body is not a valid JSON array: {e}") }
                }
            })?;
        return Ok(values
            .into_iter()
            .enumerate()
            .map(|(index, value)| match value {
                Value::Object(map) => validate(index, &map, limits, now_ms),
                other => Err(EventError {
                    index,
                    field: None,
                    error: format!("event must be a JSON object, found {}", kind_of(&other)),
                }),
            })
            .collect());
    }
    let lines = ndjson_lines(body);
    if lines.len() > limits.max_events_per_request {
        return Err(too_many(lines.len().to_string()));
    }
    Ok(lines.into_iter().enumerate().map(|(index, line)| validate_line(index, line, limits, now_ms)).collect())
}

/// The non-blank lines of an NDJSON body.
fn ndjson_lines(body: &[u8]) -> Vec<&[u8]> {
    let mut lines = Vec::new();
    let mut start = 0;
    for end in memchr::memchr_iter(b'\n', body).chain(std::iter::once(body.len())) {
        let line = &body[start..end];
        if line.iter().any(|b| !b.is_ascii_whitespace()) {
            lines.push(line);
        }
        start = end + 1;
    }
    lines
}

/// Reads a JSON array of at most `.0` elements, failing with [`TOO_MANY_EVENTS`] as soon as
/// there are more, without reading (or allocating) the rest: a huge array of tiny values
/// cannot exhaust memory.
struct BoundedArray(usize);

/// Start of the error [`BoundedArray`] fails with.
const TOO_MANY_EVENTS: &str = "too many events";

impl<'de> serde::de::DeserializeSeed<'de> for BoundedArray {
    type Value = Vec<Value>;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> std::result::Result<Self::Value, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> serde::de::Visitor<'de> for BoundedArray {
    type Value = Vec<Value>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "a JSON array of events")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Self::Value, A::Error> {
        let mut values = Vec::new();
        while let Some(value) = seq.next_element::<Value>()? {
            if values.len() == self.0 {
                return Err(serde::de::Error::custom(TOO_MANY_EVENTS));
            }
            values.push(value);
        }
        Ok(values)
    }
}

/// How a JSON value's type reads in an error message (`a number`, `an array`).
pub(crate) fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// An event's fields with their types checked, before limits and formats are: what every
/// input format (JSON, Arrow record batches, protobuf) is turned into before
/// [`check_fields`] applies the one set of rules.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct EventFields {
    pub event_id: Option<String>,
    pub timestamp: Option<Timestamp>,
    pub name: Option<String>,
    pub client_id: Option<String>,
    pub user_id: Option<String>,
    pub session_id: Option<String>,
    pub url: Option<String>,
    pub referrer: Option<String>,
    pub title: Option<String>,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    pub country: Option<String>,
    pub language: Option<String>,
    pub screen_width: Option<i64>,
    pub revenue: Option<f64>,
    pub currency: Option<String>,
    pub interactive: Option<bool>,
    pub props: Option<Props>,
}

/// A timestamp as sent: epoch milliseconds or text to parse as RFC 3339.
#[derive(Debug)]
pub enum Timestamp {
    /// Epoch milliseconds.
    Millis(i64),
    /// RFC 3339 text.
    Text(String),
}

impl<'de> serde::Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Timestamp;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an RFC 3339 string or integer epoch milliseconds")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> std::result::Result<Timestamp, E> {
                Ok(Timestamp::Millis(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> std::result::Result<Timestamp, E> {
                i64::try_from(v).map(Timestamp::Millis).map_err(|_| E::custom("timestamp out of range"))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<Timestamp, E> {
                Ok(Timestamp::Text(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// Custom properties as sent (strings, numbers and booleans as text; nulls dropped), ordered
/// by key.
#[derive(Debug, Default)]
pub struct Props(pub Vec<(String, String)>);

impl<'de> serde::Deserialize<'de> for Props {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Scalar(Option<String>);
        impl<'de> serde::Deserialize<'de> for Scalar {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                struct V;
                impl serde::de::Visitor<'_> for V {
                    type Value = Scalar;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str("a string, number or boolean")
                    }
                    fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<Scalar, E> {
                        Ok(Scalar(Some(v.to_string())))
                    }
                    fn visit_bool<E: serde::de::Error>(self, v: bool) -> std::result::Result<Scalar, E> {
                        Ok(Scalar(Some(v.to_string())))
                    }
                    fn visit_i64<E: serde::de::Error>(self, v: i64) -> std::result::Result<Scalar, E> {
                        Ok(Scalar(Some(v.to_string())))
                    }
                    fn visit_u64<E: serde::de::Error>(self, v: u64) -> std::result::Result<Scalar, E> {
                        Ok(Scalar(Some(v.to_string())))
                    }
                    fn visit_f64<E: serde::de::Error>(self, v: f64) -> std::result::Result<Scalar, E> {
                        // Formatted exactly as serde_json formats numbers, like the slow path.
                        let n = serde_json::Number::from_f64(v).ok_or_else(|| E::custom("not a finite number"))?;
                        Ok(Scalar(Some(n.to_string())))
                    }
                    fn visit_unit<E: serde::de::Error>(self) -> std::result::Result<Scalar, E> {
                        Ok(Scalar(None))
                    }
                }
                d.deserialize_any(V)
            }
        }
        let map: std::collections::BTreeMap<String, Scalar> = serde::Deserialize::deserialize(d)?;
        Ok(Props(map.into_iter().filter_map(|(k, v)| v.0.map(|v| (k, v))).collect()))
    }
}

/// Gives every event without a client `event_id` a fresh UUIDv7. One v7 value is drawn per
/// request and its low 32 bits count up, so ids stay unique and time-ordered without a clock
/// read and a random draw per event.
pub fn assign_event_ids(events: &mut [ValidEvent]) {
    let base = uuid::Uuid::now_v7().as_u128() & !0xFFFF_FFFFu128;
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    for (i, event) in events.iter_mut().filter(|e| e.id_assigned).enumerate() {
        let id = uuid::Uuid::from_u128(base | (i as u128 & 0xFFFF_FFFF));
        event.event_id = id.hyphenated().encode_lower(&mut buf).to_string();
    }
}

/// Validates one NDJSON line. Well-typed events take a fast typed path; anything else is
/// parsed generically so that the error names the offending field.
pub fn validate_line(index: usize, line: &[u8], limits: &IngestLimits, now_ms: i64) -> Result<ValidEvent, EventError> {
    if let Ok(fields) = serde_json::from_slice::<EventFields>(line) {
        return check_fields(index, fields, limits, now_ms);
    }
    match serde_json::from_slice::<Value>(line) {
        Err(e) => Err(EventError { index, field: None, error: format!("line is not valid JSON: {e}") }),
        Ok(Value::Object(map)) => validate(index, &map, limits, now_ms),
        Ok(other) => Err(EventError {
            index,
            field: None,
            error: format!("event must be a JSON object, found {}", kind_of(&other)),
        }),
    }
}

/// Validates one event object received at `now_ms`.
pub fn validate(
    index: usize,
    obj: &Map<String, Value>,
    limits: &IngestLimits,
    now_ms: i64,
) -> Result<ValidEvent, EventError> {
    let fail = |field: &str, error: String| EventError { index, field: Some(field.to_string()), error };
    for key in obj.keys() {
        if !KNOWN_FIELDS.contains(&key.as_str()) && key != "props" {
            return Err(fail(key, format!("unknown field {key:?}; put custom values in \"props\"")));
        }
    }
    let string = |field: &str| -> Result<Option<String>, EventError> {
        match obj.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(fail(field, format!("expected a string, found {}", kind_of(other)))),
        }
    };
    let timestamp = match obj.get("timestamp") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(Timestamp::Text(s.clone())),
        Some(Value::Number(n)) => match n.as_i64() {
            Some(ms) => Some(Timestamp::Millis(ms)),
            None => return Err(fail("timestamp", format!("{n} is not a whole number of epoch milliseconds"))),
        },
        Some(other) => {
            return Err(fail(
                "timestamp",
                format!("expected an RFC 3339 string or epoch milliseconds, found {}", kind_of(other)),
            ));
        }
    };
    let screen_width = match obj.get("screen_width") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_i64() {
            Some(w) => Some(w),
            None => return Err(fail("screen_width", format!("expected an integer from 0 to 100000, found {v}"))),
        },
    };
    let revenue = match obj.get("revenue") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => match n.as_f64() {
            Some(r) => Some(r),
            None => return Err(fail("revenue", format!("{n} is not a finite number"))),
        },
        Some(other) => return Err(fail("revenue", format!("expected a number, found {}", kind_of(other)))),
    };
    let interactive = match obj.get("interactive") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(other) => {
            return Err(fail("interactive", format!("expected a boolean, found {}", kind_of(other))));
        }
    };
    let props = match obj.get("props") {
        None | Some(Value::Null) => None,
        Some(Value::Object(map)) => Some(Props(parse_props(map).map_err(|(field, e)| fail(&field, e))?)),
        Some(other) => return Err(fail("props", format!("expected an object, found {}", kind_of(other)))),
    };
    let fields = EventFields {
        event_id: string("event_id")?,
        timestamp,
        name: string("name")?,
        client_id: string("client_id")?,
        user_id: string("user_id")?,
        session_id: string("session_id")?,
        url: string("url")?,
        referrer: string("referrer")?,
        title: string("title")?,
        user_agent: string("user_agent")?,
        ip: string("ip")?,
        country: string("country")?,
        language: string("language")?,
        screen_width,
        revenue,
        currency: string("currency")?,
        interactive,
        props,
    };
    check_fields(index, fields, limits, now_ms)
}

/// Applies limits, formats and defaults to type-checked fields: the validation rules of every
/// ingest path. `index` is the event's position, reported in its error.
pub fn check_fields(
    index: usize,
    f: EventFields,
    limits: &IngestLimits,
    now_ms: i64,
) -> Result<ValidEvent, EventError> {
    let fail = |field: &str, error: String| EventError { index, field: Some(field.to_string()), error };
    let bounded = |field: &str, value: Option<String>, max: usize| -> Result<Option<String>, EventError> {
        match value {
            Some(s) if s.len() > max => {
                Err(fail(field, format!("string of {} bytes exceeds the limit of {max} bytes", s.len())))
            }
            other => Ok(other),
        }
    };

    let name = match bounded("name", f.name, MAX_NAME_BYTES)? {
        Some(n) if !n.trim().is_empty() => n,
        Some(_) => return Err(fail("name", "must not be empty".into())),
        None => return Err(fail("name", "is required".into())),
    };
    let (event_id, id_assigned) = match bounded("event_id", f.event_id, MAX_EVENT_ID_BYTES)? {
        Some(id) if id.is_empty() => return Err(fail("event_id", "must not be empty".into())),
        Some(id) => (id, false),
        // Assigned in bulk per request by `assign_event_ids`.
        None => (String::new(), true),
    };
    let timestamp_ms = match f.timestamp {
        None => now_ms,
        Some(t) => parse_timestamp(t).map_err(|e| fail("timestamp", e))?,
    };
    if timestamp_ms > now_ms.saturating_add(limits.max_future_ms) {
        return Err(fail(
            "timestamp",
            format!(
                "{} is more than {} s ahead of the server clock",
                format_ms(timestamp_ms),
                limits.max_future_ms / 1000
            ),
        ));
    }
    if timestamp_ms < now_ms.saturating_sub(limits.max_past_ms) {
        return Err(fail(
            "timestamp",
            format!(
                "{} is more than {} days before the server clock",
                format_ms(timestamp_ms),
                limits.max_past_ms / 86_400_000
            ),
        ));
    }
    let max = limits.max_string_bytes;
    let text = [
        bounded("client_id", f.client_id, max)?,
        bounded("user_id", f.user_id, max)?,
        bounded("session_id", f.session_id, max)?,
        bounded("url", f.url, max)?,
        bounded("referrer", f.referrer, max)?,
        bounded("title", f.title, max)?,
        bounded("user_agent", f.user_agent, max)?,
    ];
    let ip = match bounded("ip", f.ip, 64)? {
        None => None,
        Some(s) => Some(s.trim().parse::<IpAddr>().map_err(|_| fail("ip", format!("{s:?} is not an IP address")))?),
    };
    let country = match bounded("country", f.country, 16)? {
        None => None,
        Some(c) if c.len() == 2 && c.bytes().all(|b| b.is_ascii_alphabetic()) => Some(c.to_ascii_uppercase()),
        Some(c) => return Err(fail("country", format!("{c:?} is not an ISO 3166 alpha-2 code"))),
    };
    let language = match bounded("language", f.language, 35)? {
        Some(l) if !l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') => {
            return Err(fail("language", format!("{l:?} is not a language tag")));
        }
        other => other,
    };
    let screen_width = match f.screen_width {
        None => None,
        Some(w) if (0..=100_000).contains(&w) => Some(w as i32),
        Some(w) => return Err(fail("screen_width", format!("expected an integer from 0 to 100000, found {w}"))),
    };
    let revenue = match f.revenue {
        Some(r) if !r.is_finite() => return Err(fail("revenue", format!("{r} is not a finite number"))),
        other => other,
    };
    let currency = match bounded("currency", f.currency, 16)? {
        None => None,
        Some(c) if c.len() == 3 && c.bytes().all(|b| b.is_ascii_alphabetic()) => Some(c.to_ascii_uppercase()),
        Some(c) => return Err(fail("currency", format!("{c:?} is not an ISO 4217 code"))),
    };
    let props = f.props.map(|p| p.0).unwrap_or_default();
    if props.len() > limits.max_props {
        return Err(fail("props", format!("{} properties exceed the limit of {}", props.len(), limits.max_props)));
    }
    for (key, value) in &props {
        let field = || format!("props.{key}");
        if key.is_empty() || key.len() > MAX_PROP_KEY_BYTES {
            return Err(fail(&field(), format!("property keys must be 1 to {MAX_PROP_KEY_BYTES} bytes")));
        }
        if value.len() > limits.max_string_bytes {
            return Err(fail(
                &field(),
                format!("value of {} bytes exceeds the limit of {} bytes", value.len(), limits.max_string_bytes),
            ));
        }
    }
    Ok(ValidEvent {
        event_id,
        id_assigned,
        timestamp_ms,
        name,
        text,
        ip,
        country,
        language,
        screen_width,
        revenue,
        currency,
        interactive: f.interactive.unwrap_or(true),
        props,
    })
}

/// Converts a props object, naming the first value of a type props cannot hold.
fn parse_props(map: &Map<String, Value>) -> Result<Vec<(String, String)>, (String, String)> {
    let mut props = Vec::with_capacity(map.len());
    for (key, value) in map {
        let text = match value {
            Value::Null => continue,
            Value::String(s) => s.clone(),
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => n.to_string(),
            other => {
                return Err((
                    format!("props.{key}"),
                    format!("expected a string, number or boolean, found {}", kind_of(other)),
                ));
            }
        };
        props.push((key.clone(), text));
    }
    Ok(props)
}

fn parse_timestamp(t: Timestamp) -> Result<i64, String> {
    match t {
        Timestamp::Text(s) => chrono::DateTime::parse_from_rfc3339(&s)
            .map(|t| t.timestamp_millis())
            .map_err(|e| format!("{s:?} is not an RFC 3339 timestamp: {e}"))
            .and_then(|ms| if ms < 0 { Err(format!("{s:?} is before 1970-01-01")) } else { Ok(ms) }),
        Timestamp::Millis(ms) if ms >= 0 => Ok(ms),
        Timestamp::Millis(ms) => Err(format!("{ms} is before 1970-01-01")),
    }
}

fn format_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| ms.to_string())
}

#[cfg(test)]
mod tests;
