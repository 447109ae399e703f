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
const KNOWN_FIELDS: [&str; 17] = [
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

/// Splits a body into events: a JSON array, or NDJSON (one object per line; a single object is
/// one line). Returns each event's JSON object or its error.
pub fn split_body(body: &[u8], limits: &IngestLimits) -> Result<Vec<Result<Map<String, Value>, EventError>>> {
    let first = body.iter().position(|b| !b.is_ascii_whitespace());
    let Some(first) = first else {
        return Err(Error::BadBody { message: "body is empty; send a JSON array or NDJSON events".into() });
    };
    let too_many = |n: String| Error::TooLarge {
        message: format!("request has {n} events; the limit is {} per request", limits.max_events_per_request),
    };
    let items: Vec<Result<Value, EventError>> = if body[first] == b'[' {
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
        values.into_iter().map(Ok).collect()
    } else {
        let lines = body.split(|b| *b == b'\n').filter(|line| line.iter().any(|b| !b.is_ascii_whitespace()));
        let count = lines.clone().count();
        if count > limits.max_events_per_request {
            return Err(too_many(count.to_string()));
        }
        lines
            .enumerate()
            .map(|(index, line)| {
                serde_json::from_slice::<Value>(line).map_err(|e| EventError {
                    index,
                    field: None,
                    error: format!("line is not valid JSON: {e}"),
                })
            })
            .collect()
    };
    Ok(items
        .into_iter()
        .enumerate()
        .map(|(index, item)| match item? {
            Value::Object(map) => Ok(map),
            other => Err(EventError {
                index,
                field: None,
                error: format!("event must be a JSON object, found {}", kind_of(&other)),
            }),
        })
        .collect())
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

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
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
    let string = |field: &str, max: usize| -> Result<Option<String>, EventError> {
        match obj.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.len() > max => {
                Err(fail(field, format!("string of {} bytes exceeds the limit of {max} bytes", s.len())))
            }
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(fail(field, format!("expected a string, found {}", kind_of(other)))),
        }
    };

    let name = match string("name", MAX_NAME_BYTES)? {
        Some(n) if !n.trim().is_empty() => n,
        Some(_) => return Err(fail("name", "must not be empty".into())),
        None => return Err(fail("name", "is required".into())),
    };
    let (event_id, id_assigned) = match string("event_id", MAX_EVENT_ID_BYTES)? {
        Some(id) if id.is_empty() => return Err(fail("event_id", "must not be empty".into())),
        Some(id) => (id, false),
        None => (uuid::Uuid::now_v7().to_string(), true),
    };
    let timestamp_ms = match obj.get("timestamp") {
        None | Some(Value::Null) => now_ms,
        Some(v) => parse_timestamp(v).map_err(|e| fail("timestamp", e))?,
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
    let mut text: [Option<String>; TEXT_FIELDS.len()] = Default::default();
    for (slot, field) in text.iter_mut().zip(TEXT_FIELDS) {
        *slot = string(field, limits.max_string_bytes)?;
    }
    let ip = match string("ip", 64)? {
        None => None,
        Some(s) => Some(s.trim().parse::<IpAddr>().map_err(|_| fail("ip", format!("{s:?} is not an IP address")))?),
    };
    let country = match string("country", 16)? {
        None => None,
        Some(c) if c.len() == 2 && c.bytes().all(|b| b.is_ascii_alphabetic()) => Some(c.to_ascii_uppercase()),
        Some(c) => {
            return Err(fail("country", format!("{c:?} is not an ISO 3166 alpha-2 code")));
        }
    };
    let language = match string("language", 35)? {
        Some(l) if !l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') => {
            return Err(fail("language", format!("{l:?} is not a language tag")));
        }
        other => other,
    };
    let screen_width = match obj.get("screen_width") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_i64() {
            Some(w) if (0..=100_000).contains(&w) => Some(w as i32),
            _ => {
                return Err(fail("screen_width", format!("expected an integer from 0 to 100000, found {v}")));
            }
        },
    };
    let revenue = match obj.get("revenue") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => match n.as_f64() {
            Some(r) if r.is_finite() => Some(r),
            _ => return Err(fail("revenue", format!("{n} is not a finite number"))),
        },
        Some(other) => {
            return Err(fail("revenue", format!("expected a number, found {}", kind_of(other))));
        }
    };
    let currency = match string("currency", 16)? {
        None => None,
        Some(c) if c.len() == 3 && c.bytes().all(|b| b.is_ascii_alphabetic()) => Some(c.to_ascii_uppercase()),
        Some(c) => return Err(fail("currency", format!("{c:?} is not an ISO 4217 code"))),
    };
    let interactive = match obj.get("interactive") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return Err(fail("interactive", format!("expected a boolean, found {}", kind_of(other))));
        }
    };
    let props = match obj.get("props") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(map)) => parse_props(map, limits).map_err(|(field, e)| fail(&field, e))?,
        Some(other) => {
            return Err(fail("props", format!("expected an object, found {}", kind_of(other))));
        }
    };
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
        interactive,
        props,
    })
}

fn parse_props(map: &Map<String, Value>, limits: &IngestLimits) -> Result<Vec<(String, String)>, (String, String)> {
    if map.len() > limits.max_props {
        return Err(("props".into(), format!("{} properties exceed the limit of {}", map.len(), limits.max_props)));
    }
    let mut props = Vec::with_capacity(map.len());
    for (key, value) in map {
        let field = format!("props.{key}");
        if key.is_empty() || key.len() > MAX_PROP_KEY_BYTES {
            return Err((field, format!("property keys must be 1 to {MAX_PROP_KEY_BYTES} bytes")));
        }
        let text = match value {
            Value::Null => continue,
            Value::String(s) => s.clone(),
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => n.to_string(),
            other => {
                return Err((field, format!("expected a string, number or boolean, found {}", kind_of(other))));
            }
        };
        if text.len() > limits.max_string_bytes {
            return Err((
                field,
                format!("value of {} bytes exceeds the limit of {} bytes", text.len(), limits.max_string_bytes),
            ));
        }
        props.push((key.clone(), text));
    }
    Ok(props)
}

fn parse_timestamp(v: &Value) -> Result<i64, String> {
    match v {
        Value::String(s) => chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| t.timestamp_millis())
            .map_err(|e| format!("{s:?} is not an RFC 3339 timestamp: {e}"))
            .and_then(|ms| if ms < 0 { Err(format!("{s:?} is before 1970-01-01")) } else { Ok(ms) }),
        Value::Number(n) => match n.as_i64() {
            Some(ms) if ms >= 0 => Ok(ms),
            Some(_) => Err(format!("{n} is before 1970-01-01")),
            None => Err(format!("{n} is not a whole number of epoch milliseconds")),
        },
        other => Err(format!("expected an RFC 3339 string or epoch milliseconds, found {}", kind_of(other))),
    }
}

fn format_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| ms.to_string())
}

#[cfg(test)]
mod tests;
