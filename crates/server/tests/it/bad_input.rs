//! Bad input gets a clear 4xx naming the event and field; the good events of the same batch
//! are kept; the server keeps serving.

use serde_json::{Value, json};

use crate::support::{TestServer, scalar};

struct Raw {
    url: String,
    key: String,
}

impl Raw {
    async fn post(&self, body: Vec<u8>, gzip: bool) -> (u16, Value) {
        let mut request = reqwest::Client::new().post(format!("{}/api/v1/events", self.url)).bearer_auth(&self.key);
        if gzip {
            request = request.header("content-encoding", "gzip");
        }
        let response = request.body(body).send().await.expect("send");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }
}

fn error_at(body: &Value, index: usize) -> (String, String) {
    let e = body["errors"].as_array().expect("errors").iter().find(|e| e["index"] == index).expect("error for index");
    (e["field"].as_str().unwrap_or("").to_string(), e["error"].as_str().unwrap_or("").to_string())
}

#[tokio::test]
async fn bad_events_are_named_and_good_ones_kept() {
    let server = TestServer::start(&["--max-body-bytes", "16MiB", "--max-decompressed-bytes", "32MiB"]);
    let creds = server.admin().create_tenant("bad").await.expect("tenant");
    let raw = Raw { url: server.url.clone(), key: creds.write_key.clone() };
    let reader = server.admin().with_token(&creds.read_token);
    let mut expected_good = 0;

    // Malformed JSON array: nothing can be trusted, 400 with the position.
    let (status, body) = raw.post(br#"[{"name": "a"}, {"name": "#.to_vec(), false).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "invalid_request");
    assert!(body["error"]["message"].as_str().unwrap_or("").contains("line 1"), "{body}");

    // NDJSON mixing good events with wrong types, a missing name, a far-future timestamp,
    // an unknown field, a broken line and invalid UTF-8.
    let mut ndjson = Vec::new();
    for line in [
        json!({"event_id": "g1", "name": "pageview"}).to_string(),
        json!({"name": 42}).to_string(),
        json!({"url": "https://x.example"}).to_string(),
        json!({"name": "x", "timestamp": "9999-12-31T23:59:59Z"}).to_string(),
        json!({"name": "x", "screen_width": "wide"}).to_string(),
        json!({"name": "x", "props": {"nested": {"a": 1}}}).to_string(),
        "{\"name\": \"x\"".to_string(),
        json!({"event_id": "g2", "name": "signup", "revenue": 3}).to_string(),
    ] {
        ndjson.extend_from_slice(line.as_bytes());
        ndjson.push(b'\n');
    }
    ndjson.extend_from_slice(b"{\"name\": \"caf\xe9\"}\n");
    let (status, body) = raw.post(ndjson, false).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!((body["accepted"].as_u64(), body["rejected"].as_u64()), (Some(2), Some(7)), "{body}");
    expected_good += 2;
    assert_eq!(error_at(&body, 1).0, "name");
    assert!(error_at(&body, 1).1.contains("expected a string"));
    assert_eq!(error_at(&body, 2), ("name".to_string(), "is required".to_string()));
    assert_eq!(error_at(&body, 3).0, "timestamp");
    assert!(error_at(&body, 3).1.contains("ahead of the server clock"), "{body}");
    assert_eq!(error_at(&body, 4).0, "screen_width");
    assert_eq!(error_at(&body, 5).0, "props.nested");
    assert!(error_at(&body, 6).1.contains("not valid JSON"));
    assert!(error_at(&body, 8).1.contains("not valid JSON"), "invalid UTF-8 is reported: {body}");

    // Every event bad: 400 with the same shape.
    let (status, body) = raw.post(b"{\"name\": 1}\n".to_vec(), false).await;
    assert_eq!(status, 400);
    assert_eq!(body["accepted"], 0);
    assert_eq!(error_at(&body, 0).0, "name");

    // A 10 MB string is rejected by field; its neighbour is kept.
    let huge = json!({"name": "x", "url": format!("https://x.example/{}", "a".repeat(10 * 1024 * 1024))});
    let body = format!("{}\n{}\n", huge, json!({"event_id": "g3", "name": "pageview"}));
    let (status, body) = raw.post(body.into_bytes(), false).await;
    assert_eq!(status, 200);
    assert_eq!((body["accepted"].as_u64(), body["rejected"].as_u64()), (Some(1), Some(1)));
    assert_eq!(error_at(&body, 0).0, "url");
    expected_good += 1;

    // Oversized body: 413 before it is parsed.
    let (status, body) = raw.post(vec![b' '; 17 * 1024 * 1024], false).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"]["code"], "payload_too_large");

    // Gzip bomb: 100 MB of spaces in about 100 KB; refused at the decompressed limit.
    let bomb = {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let block = vec![b' '; 1024 * 1024];
        for _ in 0..100 {
            enc.write_all(&block).expect("gzip");
        }
        enc.finish().expect("gzip")
    };
    assert!(bomb.len() < 1024 * 1024);
    let (status, body) = raw.post(bomb, true).await;
    assert_eq!(status, 413, "{body}");
    let (status, _) = raw.post(b"not gzip".to_vec(), true).await;
    assert_eq!(status, 400);

    // Unsupported encoding, empty body, wrong top-level type.
    let response = reqwest::Client::new()
        .post(format!("{}/api/v1/events", server.url))
        .bearer_auth(&creds.write_key)
        .header("content-encoding", "br")
        .body("{}")
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 400);
    assert_eq!(raw.post(Vec::new(), false).await.0, 400);
    let (status, body) = raw.post(b"42\n".to_vec(), false).await;
    assert_eq!(status, 400);
    assert!(error_at(&body, 0).1.contains("object"));

    // Malformed query requests.
    let response = reqwest::Client::new()
        .post(format!("{}/api/v1/query", server.url))
        .bearer_auth(&creds.read_token)
        .body("{\"sql\": ")
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 400);
    let status = crate::support::status_of(reader.query_json("SELEC nonsense").await);
    assert_eq!(status, 400);
    let status = crate::support::status_of(reader.query_json("SELECT no_such_column FROM events").await);
    assert_eq!(status, 400);

    // Still serving, with exactly the good events.
    assert_eq!(server.get("/health").await.0, 200);
    assert_eq!(scalar(&reader, "SELECT count(*) FROM raw_events").await, expected_good);
    let ids = reader.query_json("SELECT event_id FROM events ORDER BY event_id").await.expect("ids");
    let ids: Vec<&str> = ids.iter().filter_map(|r| r["event_id"].as_str()).collect();
    assert_eq!(ids, ["g1", "g2", "g3"]);
}

#[tokio::test]
async fn old_timestamps_and_huge_arrays_are_refused() {
    let server = TestServer::start(&["--max-past", "2days"]);
    let creds = server.admin().create_tenant("old").await.expect("tenant");
    let raw = Raw { url: server.url.clone(), key: creds.write_key.clone() };
    let (status, body) = raw.post(b"{\"name\":\"x\",\"timestamp\":\"2001-01-01T00:00:00Z\"}\n".to_vec(), false).await;
    assert_eq!(status, 400);
    assert_eq!(error_at(&body, 0).0, "timestamp");
    assert!(error_at(&body, 0).1.contains("days before"), "{body}");

    // A JSON array of millions of tiny values stops at the event limit instead of being read.
    let mut huge = Vec::with_capacity(8 * 1024 * 1024);
    huge.push(b'[');
    for i in 0..4_000_000 {
        if i > 0 {
            huge.push(b',');
        }
        huge.push(b'0');
    }
    huge.push(b']');
    let (status, body) = raw.post(huge, false).await;
    assert_eq!(status, 413, "{body}");
}

#[tokio::test]
async fn too_many_events_is_refused_whole() {
    let server = TestServer::start(&["--max-events-per-request", "5"]);
    let creds = server.admin().create_tenant("many").await.expect("tenant");
    let raw = Raw { url: server.url.clone(), key: creds.write_key.clone() };
    let (status, body) = raw.post(crate::support::pageviews("m", 6).into_bytes(), false).await;
    assert_eq!(status, 413, "{body}");
    assert!(body["error"]["message"].as_str().unwrap_or("").contains("limit is 5"), "{body}");
    let (status, _) = raw.post(crate::support::pageviews("m", 5).into_bytes(), false).await;
    assert_eq!(status, 200);
}
