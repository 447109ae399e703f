//! Bulk ingest over gRPC: Arrow Flight `DoPut` from pyarrow's Flight client
//! (`tests/bulk/doput.py`), SIGKILL in the middle of a `DoPut` stream, and the client-streaming
//! `hourglass.ingest.v1.IngestService/Ingest` through tonic's generated client.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use futures::stream;
use hourglass_proto::ingest::v1::ingest_service_client::IngestServiceClient;
use hourglass_proto::ingest::v1::{Event, IngestRequest, event};

use crate::support::{TestServer, run_python_client, scalar};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/bulk/doput.py");

/// Rows per batch of `doput.py`.
const BATCH_ROWS: i64 = 50_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyarrow_doput_stores_a_million_rows_and_reports_bad_rows_one_by_one() {
    let server = TestServer::start(&[]);
    let (writer, reader) = server.tenant("bulk-put").await;
    let grpc = server.grpc_url.clone().expect("serve prints its gRPC address");
    run_python_client(&server, "bulk/doput.py", &["check", &grpc, writer.token(), reader.token()], "all checks passed");
    // A million rows, the two good rows of the bad batch, and the re-sent batch only once.
    assert_eq!(scalar(&reader, "SELECT count(*) FROM events").await, 1_000_002);
    assert_eq!(scalar(&reader, "SELECT count(DISTINCT event_id) FROM events").await, 1_000_002);
    assert_eq!(scalar(&reader, "SELECT count(*) FROM raw_events WHERE event_id LIKE 'bad-%'").await, 2);
    let rows = reader
        .query_json("SELECT event_id, props['plan'] AS plan, country FROM events WHERE event_id = 'bad-0'")
        .await
        .expect("query");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["plan"], "pro");
    assert_eq!(rows[0]["country"], "DE");
    // Stored the same as HTTP ingest: the processor filled the derived columns.
    assert_eq!(scalar(&reader, "SELECT count(*) FROM events WHERE path = '/p/7'").await, 2_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_a_doput_stream_loses_nothing_acknowledged() {
    let mut server = TestServer::start(&[]);
    let (writer, reader) = server.tenant("bulk-kill").await;
    let grpc = server.grpc_url.clone().expect("serve prints its gRPC address");
    let mut child = Command::new("python3")
        .args([SCRIPT, "stream", &grpc, writer.token()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 (scripts/test-deps installs pyarrow)");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut acked = Vec::new();
    let mut transcript = String::new();
    tokio::task::block_in_place(|| {
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("read the client's output");
            transcript.push_str(&line);
            transcript.push('\n');
            if let Some(rest) = line.strip_prefix("acked ") {
                let batch: usize = rest.split(' ').next().and_then(|n| n.parse().ok()).expect("batch number");
                acked.push(batch);
                // Kill while batches are still on their way.
                if acked.len() == 6 {
                    server.kill();
                }
            }
        }
        let status = child.wait().expect("wait for the client");
        let stderr = std::io::read_to_string(child.stderr.take().expect("piped stderr")).unwrap_or_default();
        assert!(status.success(), "the streaming client failed:\n{transcript}{stderr}");
    });
    assert!(acked.len() >= 6, "the client saw too few acks before the kill:\n{transcript}");
    assert!(transcript.contains("stream ended"), "the stream did not end with the server:\n{transcript}");

    server.restart();
    let reader = server.admin().with_token(reader.token());
    let rows = reader
        .query_json("SELECT substr(event_id, 1, 6) AS batch, count(*) AS n FROM events GROUP BY 1 ORDER BY 1")
        .await
        .expect("count per batch");
    let stored: BTreeMap<usize, i64> = rows
        .iter()
        .map(|r| {
            let batch = r["batch"].as_str().and_then(|b| b.strip_prefix('b')).and_then(|b| b.parse().ok());
            (batch.expect("batch prefix"), r["n"].as_i64().expect("count"))
        })
        .collect();
    for batch in &acked {
        assert_eq!(stored.get(batch), Some(&BATCH_ROWS), "acknowledged batch {batch} lost rows: {stored:?}");
    }
    // A batch is one WAL commit: stored whole or not at all, even if its ack never left.
    assert!(stored.values().all(|n| *n == BATCH_ROWS), "a batch was stored in part: {stored:?}");
}

fn event(id: &str, name: &str) -> Event {
    Event { event_id: Some(id.to_string()), name: name.to_string(), ..Event::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_rpc_stores_every_request_and_names_each_bad_event() {
    let server = TestServer::start(&[]);
    let (writer, reader) = server.tenant("bulk-rpc").await;
    let grpc = server.grpc_url.clone().expect("serve prints its gRPC address").replace("grpc://", "http://");
    let channel = tonic::transport::Channel::from_shared(grpc).expect("url").connect().await.expect("connect");
    let mut client = IngestServiceClient::new(channel);

    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .expect("clock");
    let first: Vec<Event> = (0..1000)
        .map(|i| Event {
            url: Some(format!("https://shop.example/p/{i}")),
            timestamp: Some(event::Timestamp::TimestampMs(now_ms - i)),
            ..event(&format!("r-{i}"), "pageview")
        })
        .collect();
    // Whole seconds, an hour ago, as RFC 3339 text.
    let hour_ago_s = now_ms / 1000 - 3600;
    let hour_ago = chrono::DateTime::from_timestamp(hour_ago_s, 0).expect("time");
    let mut signup = event("s-0", "signup");
    signup.timestamp = Some(event::Timestamp::TimestampRfc3339(hour_ago.to_rfc3339()));
    signup.props.insert("plan".into(), "pro".into());
    signup.country = Some("nl".into());
    let mut bad_currency = event("s-2", "purchase");
    bad_currency.currency = Some("euros".into());
    let second = vec![signup, event("s-1", ""), bad_currency];
    let again = first[..10].to_vec();
    let requests =
        vec![IngestRequest { events: first }, IngestRequest { events: second }, IngestRequest { events: again }];

    let authorized = |requests: Vec<IngestRequest>, token: &str| {
        let mut request = tonic::Request::new(stream::iter(requests));
        let value = format!("Bearer {token}").parse().expect("header value");
        request.metadata_mut().insert("authorization", value);
        request
    };
    let response = client.ingest(authorized(requests, writer.token())).await.expect("ingest").into_inner();
    assert_eq!((response.accepted, response.rejected, response.duplicates), (1011, 2, 10), "{response:?}");
    let errors: Vec<(u64, u64, &str)> =
        response.errors.iter().map(|e| (e.request, e.index, e.field.as_str())).collect();
    assert_eq!(errors, vec![(1, 1, "name"), (1, 2, "currency")], "{response:?}");
    assert!(!response.errors_truncated);

    assert_eq!(scalar(&reader, "SELECT count(*) FROM events").await, 1001);
    let sql = "SELECT props['plan'] AS plan, country, CAST(to_unixtime(timestamp) AS BIGINT) AS ts FROM events \
               WHERE event_id = 's-0'";
    let rows = reader.query_json(sql).await.expect("query");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["plan"], "pro");
    assert_eq!(rows[0]["country"], "NL");
    assert_eq!(rows[0]["ts"], hour_ago_s, "{rows:?}");

    let refused = client.ingest(authorized(vec![IngestRequest::default()], reader.token())).await;
    assert_eq!(refused.expect_err("a read token cannot write").code(), tonic::Code::PermissionDenied);
    let refused = client.ingest(tonic::Request::new(stream::iter(vec![IngestRequest::default()]))).await;
    assert_eq!(refused.expect_err("no token").code(), tonic::Code::Unauthenticated);
}
