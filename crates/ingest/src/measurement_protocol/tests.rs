use super::*;
use crate::limits::IngestLimits;

const NOW: i64 = 1_800_000_000_000;
const HOUR_MS: i64 = 3_600_000;

fn query() -> MpQuery {
    MpQuery { measurement_id: Some("G-TEST123".into()), api_secret: Some("secret".into()) }
}

fn ctx() -> MpContext {
    MpContext { now_ms: NOW, user_agent: Some("Mozilla/5.0".into()), ip: Some("203.0.113.9".into()), country: None }
}

fn map(body: &Value) -> Result<Vec<Value>, Vec<ValidationMessage>> {
    map_payload(body.to_string().as_bytes(), &query(), &ctx())
}

/// The field path and code of every message for a body that must be rejected.
fn problems(body: &[u8], query: &MpQuery) -> Vec<(String, ValidationCode)> {
    map_payload(body, query, &ctx())
        .expect_err("must be rejected")
        .into_iter()
        .map(|m| (m.field_path, m.validation_code))
        .collect()
}

fn errors(body: &Value) -> Vec<(String, ValidationCode)> {
    problems(body.to_string().as_bytes(), &query())
}

fn one(path: &str, code: ValidationCode) -> Vec<(String, ValidationCode)> {
    vec![(path.to_owned(), code)]
}

/// A valid request holding `events`.
fn request(events: Value) -> Value {
    json!({"client_id": "123.456", "events": events})
}

#[test]
fn page_view_becomes_a_pageview_that_ingest_accepts() {
    let body = json!({
        "client_id": "123.456",
        "user_id": "u1",
        "events": [{
            "name": "page_view",
            "params": {
                "page_location": "https://shop.example/p?x=1",
                "page_referrer": "https://search.example/",
                "page_title": "Product",
                "session_id": 1_700_000_000,
                "engagement_time_msec": 100,
                "language": "en-us",
                "screen_resolution": "1280x800",
                "plan": "pro",
                "logged_in": true,
                "count": 3
            }
        }]
    });
    let events = map(&body).expect("valid");
    let expected = json!({
        "name": "pageview",
        "timestamp": NOW,
        "client_id": "123.456",
        "user_id": "u1",
        "url": "https://shop.example/p?x=1",
        "referrer": "https://search.example/",
        "title": "Product",
        "session_id": "1700000000",
        "language": "en-us",
        "screen_width": 1280,
        "user_agent": "Mozilla/5.0",
        "ip": "203.0.113.9",
        "props": {"plan": "pro", "logged_in": "true", "count": "3"}
    });
    assert_eq!(events, vec![expected]);

    let Value::Object(event) = &events[0] else { panic!("events are objects") };
    let valid = crate::parse::validate(0, event, &IngestLimits::default(), NOW).expect("ingest accepts the event");
    assert_eq!(valid.name, "pageview");
    assert_eq!(valid.text[2].as_deref(), Some("1700000000"));
    assert_eq!(valid.text[3].as_deref(), Some("https://shop.example/p?x=1"));
    assert_eq!(valid.screen_width, Some(1280));
    assert_eq!(valid.props.len(), 3);
}

#[test]
fn purchase_value_and_currency_become_revenue() {
    let body = json!({
        "client_id": "123.456",
        "timestamp_micros": (NOW - HOUR_MS) * 1000 + 999,
        "events": [{
            "name": "purchase",
            "params": {
                "transaction_id": "T-1",
                "value": 19.99,
                "currency": "eur",
                "items": [{"item_id": "sku-1", "price": 19.99}]
            }
        }]
    });
    let events = map(&body).expect("valid");
    let event = &events[0];
    assert_eq!(event["name"], "purchase");
    assert_eq!(event["timestamp"], NOW - HOUR_MS);
    assert_eq!(event["revenue"], 19.99);
    assert_eq!(event["currency"], "EUR");
    assert_eq!(event["props"], json!({"transaction_id": "T-1", "items": r#"[{"item_id":"sku-1","price":19.99}]"#}));
    let Value::Object(event) = event else { panic!("events are objects") };
    let valid = crate::parse::validate(0, event, &IngestLimits::default(), NOW).expect("ingest accepts the event");
    assert_eq!((valid.revenue, valid.currency.as_deref()), (Some(19.99), Some("EUR")));

    // Without a numeric value, value and currency are ordinary properties.
    let events =
        map(&request(json!([{"name": "quote", "params": {"value": "n/a", "currency": "usd"}}]))).expect("valid");
    assert_eq!(events[0].get("revenue"), None);
    assert_eq!(events[0]["props"], json!({"value": "n/a", "currency": "USD"}));
}

#[test]
fn event_timestamps_override_the_request_timestamp() {
    let micros = |ms: i64| ms * 1000;
    let body = json!({
        "client_id": "c",
        "timestamp_micros": micros(NOW - 2 * HOUR_MS),
        "events": [
            {"name": "a", "timestamp_micros": micros(NOW - HOUR_MS)},
            {"name": "b", "params": {"timestamp_micros": micros(NOW - 60_000).to_string()}},
            {"name": "c"}
        ]
    });
    let times: Vec<Value> = map(&body).expect("valid").iter().map(|e| e["timestamp"].clone()).collect();
    assert_eq!(times, vec![json!(NOW - HOUR_MS), json!(NOW - 60_000), json!(NOW - 2 * HOUR_MS)]);
}

#[test]
fn body_fields_override_the_request_context() {
    let body = json!({
        "app_instance_id": "app-1",
        "user_agent": "Shop/2.0 (iPhone)",
        "ip_override": "198.51.100.7",
        "user_location": {"country_id": "de", "city": "Berlin"},
        "consent": {"ad_user_data": "GRANTED"},
        "events": [{"name": "login", "params": {"method": "Google"}}]
    });
    let event = &map(&body).expect("valid")[0];
    assert_eq!(event["client_id"], "app-1");
    assert_eq!(event["user_agent"], "Shop/2.0 (iPhone)");
    assert_eq!(event["ip"], "198.51.100.7");
    assert_eq!(event["country"], "DE");
}

#[test]
fn missing_client_id_is_required() {
    assert_eq!(errors(&json!({"events": [{"name": "login"}]})), one("client_id", ValidationCode::ValueRequired));
    assert_eq!(
        errors(&json!({"client_id": " ", "events": [{"name": "login"}]})),
        one("client_id", ValidationCode::ValueRequired)
    );
    let messages = map(&json!({"events": [{"name": "login"}]})).expect_err("rejected");
    assert_eq!(messages[0].description, "Measurement requires a client_id.");
}

#[test]
fn missing_query_parameters_are_required() {
    let body = request(json!([{"name": "login"}])).to_string();
    let no_secret = MpQuery { api_secret: None, ..query() };
    assert_eq!(problems(body.as_bytes(), &no_secret), one("api_secret", ValidationCode::ValueRequired));
    let blank_id = MpQuery { measurement_id: Some(String::new()), ..query() };
    assert_eq!(problems(body.as_bytes(), &blank_id), one("measurement_id", ValidationCode::ValueRequired));
}

#[test]
fn more_than_25_events_exceed_the_limit() {
    let events: Vec<Value> = (0..26).map(|i| json!({"name": format!("step_{i}")})).collect();
    assert_eq!(errors(&request(json!(events))), one("events", ValidationCode::ExceededMaxEntities));
    let events: Vec<Value> = (0..25).map(|i| json!({"name": format!("step_{i}")})).collect();
    assert_eq!(map(&request(json!(events))).expect("25 events are allowed").len(), 25);
    assert_eq!(errors(&request(json!([]))), one("events", ValidationCode::ValueRequired));
}

#[test]
fn event_name_longer_than_40_characters_is_invalid() {
    let name = "a".repeat(41);
    assert_eq!(errors(&request(json!([{"name": name}]))), one("events[0].name", ValidationCode::NameInvalid));
    assert!(map(&request(json!([{"name": "a".repeat(40)}]))).is_ok());
}

#[test]
fn reserved_event_names_and_prefixes_are_refused() {
    let body = request(json!([{"name": "login"}, {"name": "session_start"}, {"name": "firebase_thing"}]));
    assert_eq!(
        errors(&body),
        vec![
            ("events[1].name".to_owned(), ValidationCode::NameReserved),
            ("events[2].name".to_owned(), ValidationCode::NameReserved),
        ]
    );
    let messages = map(&body).expect_err("rejected");
    assert_eq!(messages[0].description, "Event at index: [1] has name [session_start] which is reserved.");
}

#[test]
fn event_names_must_start_with_a_letter_and_hold_only_word_characters() {
    let body = request(json!([{"name": "1st_visit"}, {"name": "add-to-cart"}, {"name": "_badEventName"}]));
    assert_eq!(
        errors(&body),
        vec![
            ("events[0].name".to_owned(), ValidationCode::NameInvalid),
            ("events[1].name".to_owned(), ValidationCode::NameInvalid),
            ("events[2].name".to_owned(), ValidationCode::NameInvalid),
        ]
    );
    let messages = map(&body).expect_err("rejected");
    assert_eq!(
        messages[2].description,
        "Event at index: [2] has invalid name [_badEventName]. Names must start with an alphabetic character."
    );
    assert_eq!(
        messages[1].description,
        "Event at index: [1] has invalid name [add-to-cart]. Only alphanumeric characters and underscores are allowed."
    );
    assert_eq!(errors(&request(json!([{}]))), one("events[0].name", ValidationCode::ValueRequired));
}

#[test]
fn parameter_values_over_their_limit_are_out_of_bounds() {
    let body = request(json!([
        {"name": "note", "params": {"comment": "a".repeat(101)}},
        {"name": "page_view", "params": {"page_location": format!("https://x.example/{}", "a".repeat(1000))}},
        {"name": "page_view", "params": {"page_location": format!("https://x.example/{}", "a".repeat(500))}},
        {"name": "note", "params": {"comment": "é".repeat(100)}}
    ]));
    assert_eq!(
        errors(&body),
        vec![
            ("events[0].params.comment".to_owned(), ValidationCode::ValueOutOfBounds),
            ("events[1].params.page_location".to_owned(), ValidationCode::ValueOutOfBounds),
        ]
    );
}

#[test]
fn parameter_names_and_counts_are_checked() {
    let many: Map<String, Value> = (0..26).map(|i| (format!("p{i}"), json!(i))).collect();
    let body = request(json!([
        {"name": "a", "params": {"ga_source": "x", "_private": 1, "bad-name": "y", "nested": {"a": 1}}},
        {"name": "b", "params": many}
    ]));
    let mut expected = vec![
        ("events[0].params.ga_source".to_owned(), ValidationCode::NameReserved),
        ("events[0].params._private".to_owned(), ValidationCode::NameReserved),
        ("events[0].params.bad-name".to_owned(), ValidationCode::NameInvalid),
        ("events[0].params.nested".to_owned(), ValidationCode::ValueInvalid),
        ("events[1].params".to_owned(), ValidationCode::ExceededMaxEntities),
    ];
    // Parameters come in the order serde_json writes them, which depends on its features.
    let mut got = errors(&body);
    got.sort_by(|a, b| a.0.cmp(&b.0));
    expected.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(got, expected);
}

#[test]
fn invalid_json_is_one_message_for_the_whole_body() {
    let messages = map_payload(br#"{"client_id": "c", "events": ["#, &query(), &ctx()).expect_err("rejected");
    assert_eq!(messages.len(), 1);
    assert_eq!((messages[0].field_path.as_str(), messages[0].validation_code), ("", ValidationCode::ValueInvalid));
    assert!(messages[0].description.starts_with("Unable to parse Measurement Protocol JSON payload."));
    assert_eq!(problems(b"[]", &query()), one("", ValidationCode::ValueInvalid));
}

#[test]
fn timestamps_outside_the_window_are_out_of_bounds() {
    let old = (NOW - 73 * HOUR_MS) * 1000;
    let body = json!({"client_id": "c", "timestamp_micros": old, "events": [{"name": "a"}]});
    assert_eq!(errors(&body), one("timestamp_micros", ValidationCode::ValueOutOfBounds));
    let body = request(json!([
        {"name": "a", "timestamp_micros": old},
        {"name": "b", "params": {"timestamp_micros": (NOW + HOUR_MS) * 1000}},
        {"name": "c", "timestamp_micros": "soon"},
        {"name": "d", "timestamp_micros": (NOW - 71 * HOUR_MS) * 1000}
    ]));
    assert_eq!(
        errors(&body),
        vec![
            ("events[0].timestamp_micros".to_owned(), ValidationCode::ValueOutOfBounds),
            ("events[1].params.timestamp_micros".to_owned(), ValidationCode::ValueOutOfBounds),
            ("events[2].timestamp_micros".to_owned(), ValidationCode::ValueInvalid),
        ]
    );
}

#[test]
fn unknown_keys_are_reported_as_ga4_parser_errors() {
    let body =
        json!({"client_id": "c", "extra": 1, "events": [{"name": "a", "names": "b", "params": {"names": "ok"}}]});
    assert_eq!(
        errors(&body),
        vec![
            ("extra".to_owned(), ValidationCode::ValueInvalid),
            ("events[0].names".to_owned(), ValidationCode::ValueInvalid),
        ]
    );
    let messages = map(&body).expect_err("rejected");
    assert_eq!(messages[0].description, "Unable to parse Measurement Protocol JSON payload. extra: Cannot find field.");
    assert_eq!(
        messages[1].description,
        "Unable to parse Measurement Protocol JSON payload. (events[0]) names: Cannot find field."
    );
    // A key given twice keeps its last value.
    let body = br#"{"client_id": "c", "events": [{"name": "a", "params": {"k": "1", "k": "2"}}]}"#;
    let events = map_payload(body, &query(), &ctx()).expect("valid");
    assert_eq!(events[0]["props"], json!({"k": "2"}));
}

#[test]
fn debug_response_uses_ga4_field_names() {
    let messages = map(&request(json!([{"name": "session_start"}]))).expect_err("rejected");
    assert_eq!(
        debug_response(&messages),
        json!({"validationMessages": [{
            "fieldPath": "events[0].name",
            "description": "Event at index: [0] has name [session_start] which is reserved.",
            "validationCode": "NAME_RESERVED"
        }]})
    );
    assert_eq!(debug_response(&[]), json!({"validationMessages": []}));
}
