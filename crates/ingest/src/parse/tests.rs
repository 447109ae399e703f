use super::*;
use serde_json::json;

const NOW: i64 = 1_800_000_000_000;

fn check(v: Value) -> Result<ValidEvent, EventError> {
    let Value::Object(map) = v else { panic!("test input must be an object") };
    validate(3, &map, &IngestLimits::default(), NOW)
}

fn field_error(v: Value) -> (String, String) {
    let e = check(v).expect_err("must be rejected");
    assert_eq!(e.index, 3);
    (e.field.unwrap_or_default(), e.error)
}

#[test]
fn minimal_event_gets_defaults() {
    let e = check(json!({"name": "pageview"})).expect("valid");
    assert_eq!(e.timestamp_ms, NOW);
    assert!(e.id_assigned);
    let mut events = vec![e.clone(), e.clone(), check(json!({"name": "x", "event_id": "mine"})).expect("valid")];
    assign_event_ids(&mut events);
    assert_ne!(events[0].event_id, events[1].event_id);
    assert!(uuid::Uuid::parse_str(&events[0].event_id).is_ok_and(|u| u.get_version_num() == 7));
    assert_eq!(events[2].event_id, "mine");
    assert!(e.interactive);
    assert!(e.props.is_empty());
}

#[test]
fn all_fields_are_read() {
    let e = check(json!({
        "event_id": "e1", "timestamp": "2027-01-15T08:00:00.123+01:00", "name": "purchase",
        "client_id": "c", "user_id": "u", "session_id": "s", "url": "https://x.example/p",
        "referrer": "https://r.example", "title": "Tïtle", "user_agent": "UA", "ip": "203.0.113.9",
        "country": "de", "language": "de-DE", "screen_width": 1280, "revenue": 19.99,
        "currency": "eur", "interactive": false, "props": {"plan": "pro", "n": 3, "ok": true, "gone": null}
    }))
    .expect("valid");
    assert_eq!(e.event_id, "e1");
    assert!(!e.id_assigned);
    // NOW is 2027-01-15T08:00:00Z.
    assert_eq!(e.timestamp_ms, NOW - 3_600_000 + 123);
    assert_eq!(e.text[5].as_deref(), Some("Tïtle"));
    assert_eq!(e.country.as_deref(), Some("DE"));
    assert_eq!(e.currency.as_deref(), Some("EUR"));
    assert_eq!(e.revenue, Some(19.99));
    assert!(!e.interactive);
    assert_eq!(e.props, vec![("n".into(), "3".into()), ("ok".into(), "true".into()), ("plan".into(), "pro".into())]);
}

#[test]
fn epoch_milliseconds_are_accepted() {
    assert_eq!(
        check(json!({"name": "x", "timestamp": NOW - 86_400_000 + 123})).expect("valid").timestamp_ms,
        NOW - 86_400_000 + 123
    );
}

#[test]
fn bad_fields_are_named() {
    assert_eq!(field_error(json!({})).0, "name");
    assert_eq!(field_error(json!({"name": 5})).0, "name");
    assert_eq!(field_error(json!({"name": " "})).0, "name");
    assert_eq!(field_error(json!({"name": "x", "timestamp": "yesterday"})).0, "timestamp");
    assert_eq!(field_error(json!({"name": "x", "timestamp": 1.5})).0, "timestamp");
    assert_eq!(field_error(json!({"name": "x", "timestamp": "9999-12-31T00:00:00Z"})).0, "timestamp");
    assert_eq!(field_error(json!({"name": "x", "ip": "not-an-ip"})).0, "ip");
    assert_eq!(field_error(json!({"name": "x", "country": "Germany"})).0, "country");
    assert_eq!(field_error(json!({"name": "x", "screen_width": "wide"})).0, "screen_width");
    assert_eq!(field_error(json!({"name": "x", "revenue": "12"})).0, "revenue");
    assert_eq!(field_error(json!({"name": "x", "interactive": "yes"})).0, "interactive");
    assert_eq!(field_error(json!({"name": "x", "props": {"a": {"b": 1}}})).0, "props.a");
    assert_eq!(field_error(json!({"name": "x", "props": [1]})).0, "props");
    assert_eq!(field_error(json!({"name": "x", "nmae": "typo"})).0, "nmae");
    let (field, error) = field_error(json!({"name": "x", "url": "u".repeat(10_000)}));
    assert_eq!(field, "url");
    assert!(error.contains("exceeds"), "{error}");
}

#[test]
fn bodies_split_into_events() {
    let limits = IngestLimits::default();
    let ndjson = b"{\"name\":\"a\"}\n\n  {\"name\":\"b\"}\nnot json\n[1]\n";
    let items = parse_events(ndjson, &limits, NOW).expect("split");
    assert_eq!(items.len(), 4);
    assert!(items[0].is_ok() && items[1].is_ok());
    assert_eq!(items[2].as_ref().expect_err("bad line").index, 2);
    assert!(items[3].as_ref().expect_err("not an object").error.contains("array"));

    let array = br#"[{"name":"a"}, 7]"#;
    let items = parse_events(array, &limits, NOW).expect("split");
    assert!(items[0].is_ok());
    assert_eq!(items[1].as_ref().expect_err("not an object").index, 1);

    assert!(matches!(parse_events(b"[{\"name\":", &limits, NOW), Err(Error::BadBody { .. })));
    assert!(matches!(parse_events(b"   ", &limits, NOW), Err(Error::BadBody { .. })));
    let invalid_utf8 = b"{\"name\":\"a\"}\n{\"name\":\"\xff\"}\n";
    let items = parse_events(invalid_utf8, &limits, NOW).expect("split");
    assert!(items[0].is_ok());
    assert!(items[1].is_err());
}

#[test]
fn too_many_events_is_too_large() {
    let limits = IngestLimits { max_events_per_request: 2, ..Default::default() };
    let body = b"{\"name\":\"a\"}\n{\"name\":\"a\"}\n{\"name\":\"a\"}\n";
    assert!(matches!(parse_events(body, &limits, NOW), Err(Error::TooLarge { .. })));
}

#[test]
fn gzip_bombs_stop_at_the_limit() {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(&vec![b' '; 10 * 1024 * 1024]).expect("compress");
    let bomb = enc.finish().expect("finish");
    assert!(bomb.len() < 100 * 1024);
    assert!(matches!(gunzip(&bomb, 1024 * 1024), Err(Error::TooLarge { .. })));
    assert_eq!(gunzip(&bomb, 11 * 1024 * 1024).expect("fits").len(), 10 * 1024 * 1024);
    assert!(matches!(gunzip(b"not gzip", 100), Err(Error::BadBody { .. })));
}

#[test]
fn typed_and_generic_paths_agree() {
    let limits = IngestLimits::default();
    for event in [
        json!({"event_id": "a", "name": "pageview", "url": "https://x.example/\u{e9}?q=\"1\"", "props": {"b": 1.5, "a": true, "n": null, "big": 1e21}}),
        json!({"event_id": "b", "name": "x", "timestamp": NOW - 5, "screen_width": 0, "revenue": 3, "interactive": false}),
        json!({"event_id": "c", "name": "x", "timestamp": "2027-01-15T07:59:00Z", "country": "fr", "currency": "usd", "ip": " ::1 "}),
        json!({"event_id": "d", "name": "x", "country": "France"}),
        json!({"event_id": "e", "name": "x", "props": {"k": {"nested": 1}}}),
        json!({"event_id": "f", "name": "x", "screen_width": 12.5}),
        json!({"event_id": "g", "name": "x", "timestamp": 1.5}),
        json!({"event_id": "h", "name": "x", "typo": 1}),
        json!({"event_id": "i", "name": 7}),
    ] {
        let line = event.to_string();
        let Value::Object(map) = &event else { unreachable!() };
        assert_eq!(validate_line(0, line.as_bytes(), &limits, NOW), validate(0, map, &limits, NOW), "{line}");
    }
}
