//! Every field survives ingest -> buffer -> Parquet exactly.

use arrow::array::{Array, TimestampMillisecondArray};
use serde_json::{Value, json};

use crate::support::{TestServer, scalar};

fn event() -> Value {
    json!({
        "event_id": "rt-1",
        "timestamp": "2026-03-29T01:59:59.987+02:00",
        "name": "purchase",
        "client_id": "client-ä",
        "user_id": "user-42",
        "session_id": "sess-1",
        "url": "https://WWW.Shop.Example/caf%C3%A9/?utm_source=News&utm_medium=email&utm_campaign=spring",
        "referrer": "https://search.example/?q=%E2%9C%93",
        "title": "Ünïcödé 日本語 עברית 🎉",
        "user_agent": "Mozilla/5.0 (X11; Linux x86_64)",
        "ip": "203.0.113.7",
        "country": "de",
        "language": "de-DE",
        "screen_width": 1440,
        "revenue": 1234.5678,
        "currency": "eur",
        "interactive": false,
        "props": {"plan": "pro ✓", "seats": 12, "trial": false}
    })
}

async fn check(reader: &hourglass_client::Client, stage: &str) {
    let rows = reader.query_json("SELECT * FROM raw_events").await.expect("query raw_events");
    assert_eq!(rows.len(), 1, "{stage}");
    let row = &rows[0];
    let expect = |k: &str, v: Value| assert_eq!(row.get(k), Some(&v), "{stage}: field {k}");
    expect("tenant_id", json!("rt"));
    expect("event_id", json!("rt-1"));
    expect("timestamp", json!("2026-03-28T23:59:59.987Z"));
    expect("name", json!("purchase"));
    expect("client_id", json!("client-ä"));
    expect("user_id", json!("user-42"));
    expect("session_id", json!("sess-1"));
    expect("url", event()["url"].clone());
    expect("referrer", event()["referrer"].clone());
    expect("title", json!("Ünïcödé 日本語 עברית 🎉"));
    expect("user_agent", event()["user_agent"].clone());
    expect("country", json!("DE"));
    expect("language", json!("de-DE"));
    expect("screen_width", json!(1440));
    expect("revenue", json!(1234.5678));
    expect("currency", json!("EUR"));
    expect("interactive", json!(false));
    expect("props", json!({"plan": "pro ✓", "seats": "12", "trial": "false"}));
    let ip_hash = row.get("ip_hash").and_then(|v| v.as_str()).expect("ip_hash");
    assert_eq!(ip_hash.len(), 16, "{stage}");
    assert!(!serde_json::to_string(row).expect("json").contains("203.0.113.7"), "{stage}: raw IP stored");

    let derived = reader
        .query_json("SELECT hostname, path, utm_source, utm_medium, utm_campaign, utm_content, props['plan'] AS plan FROM events")
        .await
        .expect("query events");
    assert_eq!(
        Value::Object(derived[0].clone()),
        json!({"hostname": "shop.example", "path": "/café/", "utm_source": "News", "utm_medium": "email",
               "utm_campaign": "spring", "utm_content": null, "plan": "pro ✓"}),
        "{stage}"
    );

    // Arrow IPC carries the exact millisecond timestamp.
    let batches = reader.query_arrow("SELECT timestamp FROM events").await.expect("arrow");
    let ts = batches[0].column(0).as_any().downcast_ref::<TimestampMillisecondArray>().expect("ms timestamps");
    assert_eq!(ts.value(0), 1_774_742_399_987, "{stage}");
    assert!(ts.is_valid(0));
    assert_eq!(
        scalar(reader, "SELECT count(*) FROM events WHERE timestamp = '2026-03-28T23:59:59.987Z'").await,
        1,
        "{stage}"
    );
}

#[tokio::test]
async fn every_field_round_trips_from_buffer_and_parquet() {
    let server = TestServer::start(&["--max-past", "36500days"]);
    let (writer, reader) = server.tenant("rt").await;
    let response = writer.ingest(serde_json::to_vec(&vec![event()]).expect("json")).await.expect("ingest");
    assert_eq!((response.accepted, response.rejected), (1, 0));

    check(&reader, "buffered").await;
    server.admin().flush().await.expect("flush");
    assert!(!server.objects(".parquet").is_empty(), "flush wrote parquet files");
    check(&reader, "persisted").await;

    // Epoch milliseconds are accepted as timestamps too.
    writer.ingest(r#"{"event_id":"rt-2","name":"x","timestamp":1774742399988}"#).await.expect("ingest epoch ms");
    assert_eq!(
        scalar(&reader, "SELECT count(*) FROM raw_events WHERE timestamp = to_timestamp_millis(1774742399988)").await,
        1
    );
}

#[tokio::test]
async fn gzip_bodies_and_json_arrays_are_accepted() {
    use std::io::Write;
    let server = TestServer::start(&[]);
    let creds = server.admin().create_tenant("gz").await.expect("tenant");
    let writer = server.admin().with_token(&creds.write_key);
    let reader = server.admin().with_token(&creds.read_token);
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(crate::support::pageviews("gz", 500).as_bytes()).expect("gzip");
    let body = enc.finish().expect("gzip");
    let response = reqwest::Client::new()
        .post(format!("{}/api/v1/events", server.url))
        .bearer_auth(&creds.write_key)
        .header("content-encoding", "gzip")
        .body(body)
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
    let array = json!([{"name": "a"}, {"name": "b"}]).to_string();
    assert_eq!(writer.ingest(array).await.expect("array").accepted, 2);
    assert_eq!(scalar(&reader, "SELECT count(*) FROM events").await, 502);
}

/// Processor version 2 through the whole path: derived columns are filled, and a crawler's
/// event is kept in `raw_events` but left out of `events`, in the buffer and in Parquet.
#[tokio::test]
async fn bots_stay_in_raw_events_and_derived_columns_survive_persisting() {
    let server = TestServer::start(&[]);
    let (writer, reader) = server.tenant("bots").await;
    let chrome = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) \
                  Chrome/131.0.0.0 Safari/537.36";
    let events = json!([
        {"event_id": "human", "name": "pageview", "client_id": "c1", "user_agent": chrome,
         "url": "https://shop.example/p?utm_medium=cpc&gclid=abc", "referrer": "https://www.google.de/"},
        {"event_id": "crawler", "name": "pageview", "url": "https://shop.example/p",
         "user_agent": "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"},
    ]);
    let response = writer.ingest(events.to_string()).await.expect("ingest");
    assert_eq!((response.accepted, response.rejected), (2, 0), "bots are accepted: raw keeps them");
    for stage in ["buffered", "persisted"] {
        if stage == "persisted" {
            server.admin().flush().await.expect("flush");
        }
        assert_eq!(scalar(&reader, "SELECT count(*) FROM raw_events").await, 2, "{stage}");
        let rows = reader
            .query_json(
                "SELECT event_id, source, channel, click_id, referrer_page, browser, os, device, \
                 visitor_id IS NOT NULL AS has_visitor, processor_version FROM events",
            )
            .await
            .expect("query events");
        assert_eq!(rows.len(), 1, "{stage}: the crawler is left out of events");
        assert_eq!(
            Value::Object(rows[0].clone()),
            json!({"event_id": "human", "source": "Google", "channel": "Paid Search", "click_id": "gclid",
                   "referrer_page": "https://www.google.de/", "browser": "Chrome", "os": "Windows",
                   "device": "Desktop", "has_visitor": true, "processor_version": 4}),
            "{stage}"
        );
    }
}
