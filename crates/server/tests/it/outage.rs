//! The object store unreachable for 30 seconds: ingest keeps acknowledging only what is durable
//! (or answers 503 with Retry-After), `/ready` says why it is not ready, and persistence catches
//! up once the store is back.

use std::time::{Duration, Instant};

use hourglass_testkit::{S3Server, TcpProxy};

use crate::support::{TestServer, pageviews, scalar};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_store_outage_never_acknowledges_what_is_not_durable() {
    let s3 = S3Server::start().await;
    let proxy = TcpProxy::start(s3.addr()).await;
    let endpoint = format!("http://{}", proxy.addr());
    let args: Vec<String> = [
        "--object-store",
        "s3",
        "--bucket",
        s3.bucket(),
        "--endpoint",
        &endpoint,
        "--object-store-retry-timeout",
        "2s",
        "--persist-max-age",
        "1s",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let env: Vec<(String, String)> = s3.aws_env().into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    let mut server = TestServer::start_with(&args, &env);
    let (writer, reader) = server.tenant("outage").await;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("http client");

    let mut acked = 0usize;
    writer.ingest(pageviews("before", 50)).await.expect("ingest before the outage");
    acked += 50;

    proxy.set_cut(true);
    let outage = Instant::now();
    let (mut refused, mut saw_not_ready, mut batch) = (0usize, false, 0usize);
    while outage.elapsed() < Duration::from_secs(30) {
        let response = http
            .post(format!("{}/api/v1/events", server.url))
            .bearer_auth(writer.token())
            .body(pageviews(&format!("during-{batch}"), 20))
            .send()
            .await
            .expect("the server answers during the outage");
        batch += 1;
        match response.status().as_u16() {
            200 => acked += 20,
            503 => {
                assert!(response.headers().contains_key("retry-after"), "503 without Retry-After");
                refused += 1;
            }
            other => {
                panic!("unexpected status {other} during the outage: {}", response.text().await.unwrap_or_default())
            }
        }
        let ready = http.get(format!("{}/ready", server.url)).send().await.expect("ready");
        if ready.status().as_u16() == 503 {
            let body = ready.text().await.unwrap_or_default();
            assert!(body.contains("object store unreachable"), "{body}");
            saw_not_ready = true;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(refused > 0, "no ingest was refused while the store was unreachable");
    assert!(saw_not_ready, "/ready never reported the outage");

    proxy.set_cut(false);
    let back = Instant::now();
    loop {
        let (status, _) = server.get("/ready").await;
        if status == 200 {
            break;
        }
        assert!(back.elapsed() < Duration::from_secs(60), "not ready again after the store came back");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    writer.ingest(pageviews("after", 30)).await.expect("ingest after the outage");
    acked += 30;
    server.admin().flush().await.expect("persistence catches up");
    assert_eq!(scalar(&reader, "SELECT count(*) FROM raw_events").await as usize, acked);

    // Everything acknowledged survives a kill: it is in Parquet or in the WAL on the store.
    server.restart();
    let reader = server.admin().with_token(reader.token());
    assert_eq!(scalar(&reader, "SELECT count(*) FROM events").await as usize, acked);
    eprintln!("outage: {acked} acknowledged, {refused} requests refused with 503");
}
