//! The cluster behind HAProxy (configured by `deploy/haproxy.cfg`) under sustained ingest and
//! queries while a querier is killed and restarted, an ingester is SIGKILLed and restarted and
//! a gateway is stopped. Clients see retries at most; afterwards no acknowledged event is lost
//! or duplicated and the counts are exact.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hourglass_client::Client;

use crate::cluster::Cluster;
use crate::support::ADMIN_TOKEN;

const TENANTS: usize = 4;
const BATCH: usize = 25;

/// HAProxy running `deploy/haproxy.cfg` with the gateways' real addresses.
struct Haproxy {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Haproxy {
    fn start(gateways: &[String]) -> Self {
        let template = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/haproxy.cfg"))
            .expect("deploy/haproxy.cfg");
        let port = hourglass_testkit::free_port();
        let mut config = template.replace("bind :8080", &format!("bind 127.0.0.1:{port}"));
        for (i, url) in gateways.iter().enumerate() {
            let name = format!("gateway-{}", i + 1);
            let addr = url.trim_start_matches("http://");
            config = config.replace(&format!("server {name} {name}:8080"), &format!("server {name} {addr}"));
        }
        assert!(!config.contains("gateway-1:8080"), "the gateway lines of deploy/haproxy.cfg changed");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("haproxy.cfg");
        std::fs::write(&path, config).expect("write config");
        let child = Command::new("haproxy")
            .arg("-f")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("haproxy (scripts/test-deps installs it)");
        Self { child, url: format!("http://127.0.0.1:{port}"), _dir: dir }
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// POSTs until a 200, retrying connection errors and 5xx with the same body.
async fn post_until_ok(http: &reqwest::Client, url: &str, token: &str, body: String, retries: &AtomicUsize) -> String {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        match http.post(url).bearer_auth(token).body(body.clone()).send().await {
            Ok(r) if r.status().is_success() => return r.text().await.unwrap_or_default(),
            Ok(r) if r.status().is_server_error() || r.status().as_u16() == 429 => {}
            Ok(r) => panic!("{url} answered {}: {}", r.status(), r.text().await.unwrap_or_default()),
            Err(_) => {}
        }
        retries.fetch_add(1, Ordering::Relaxed);
        assert!(Instant::now() < deadline, "{url} kept failing for two minutes");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn batch(tenant: usize, n: usize, now_ms: i64) -> String {
    (0..BATCH)
        .map(|i| {
            format!(
                "{{\"event_id\":\"t{tenant}-b{n}-{i}\",\"name\":\"pageview\",\"timestamp\":{},\"url\":\"https://c.example/{n}\"}}\n",
                now_ms + i as i64
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cluster_survives_kills_behind_haproxy() {
    let mut cluster = Cluster::start(2, 2, 2).await;
    let gateway_urls: Vec<String> = cluster.gateways.iter().map(|g| g.url.clone()).collect();
    let haproxy = Haproxy::start(&gateway_urls);
    let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().expect("client");
    let retries = Arc::new(AtomicUsize::new(0));

    // Wait for HAProxy's health checks to admit the gateways.
    let admin = Client::new(&haproxy.url, ADMIN_TOKEN);
    let mut tenants = Vec::new();
    for t in 0..TENANTS {
        let body = format!("{{\"id\":\"chaos-{t}\"}}");
        let created =
            post_until_ok(&http, &format!("{}/api/v1/admin/tenants", haproxy.url), ADMIN_TOKEN, body, &retries).await;
        let creds: serde_json::Value = serde_json::from_str(&created).expect("credentials");
        tenants.push((
            creds["write_key"].as_str().expect("key").to_string(),
            creds["read_token"].as_str().expect("token").to_string(),
        ));
    }
    retries.store(0, Ordering::Relaxed);

    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for (t, (key, _)) in tenants.iter().enumerate() {
        let (http, url, key, stop, retries) =
            (http.clone(), format!("{}/api/v1/events", haproxy.url), key.clone(), stop.clone(), retries.clone());
        writers.push(tokio::spawn(async move {
            let mut batches = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let now = chrono_now_ms();
                let answer = post_until_ok(&http, &url, &key, batch(t, batches, now), &retries).await;
                let outcome: serde_json::Value = serde_json::from_str(&answer).expect("ingest answer");
                // A retried batch may be partly known already: accepted plus duplicates is all.
                let settled = outcome["accepted"].as_u64().unwrap_or(0) + outcome["duplicates"].as_u64().unwrap_or(0);
                assert_eq!(settled as usize, BATCH, "{answer}");
                batches += 1;
            }
            batches * BATCH
        }));
    }
    let queries = {
        let (http, url, token, stop, retries) = (
            http.clone(),
            format!("{}/api/v1/query", haproxy.url),
            tenants[0].1.clone(),
            stop.clone(),
            retries.clone(),
        );
        tokio::spawn(async move {
            let mut answered = 0usize;
            while !stop.load(Ordering::Relaxed) {
                post_until_ok(
                    &http,
                    &url,
                    &token,
                    r#"{"sql":"SELECT count(*) AS n FROM events"}"#.to_string(),
                    &retries,
                )
                .await;
                answered += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            answered
        })
    };

    tokio::time::sleep(Duration::from_secs(2)).await;
    eprintln!("chaos: SIGKILL querier 0");
    cluster.queriers[0].kill();
    tokio::time::sleep(Duration::from_secs(2)).await;
    eprintln!("chaos: restart querier 0");
    tokio::task::block_in_place(|| cluster.queriers[0].restart());
    tokio::time::sleep(Duration::from_secs(1)).await;
    eprintln!("chaos: SIGKILL ingester 0 and restart it");
    tokio::task::block_in_place(|| cluster.ingesters[0].restart());
    tokio::time::sleep(Duration::from_secs(2)).await;
    eprintln!("chaos: stop gateway 0");
    assert!(tokio::task::block_in_place(|| cluster.gateways[0].terminate()), "gateway 0 did not stop cleanly");
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);

    let mut sent = Vec::new();
    for w in writers {
        sent.push(w.await.expect("writer"));
    }
    let answered = queries.await.expect("queries");
    eprintln!("chaos: sent {sent:?} events, {answered} queries answered, {} retries", retries.load(Ordering::Relaxed));
    assert!(answered > 0, "no query was answered");

    // Persist everything and let the compactor merge (and de-duplicate) every partition.
    post_until_ok(&http, &format!("{}/api/v1/admin/flush", haproxy.url), ADMIN_TOKEN, String::new(), &retries).await;
    let waited = Instant::now();
    loop {
        let most = cluster.count(&admin, "SELECT coalesce(max(files), 0) FROM system.partitions").await;
        if most <= 1 {
            break;
        }
        assert!(waited.elapsed() < Duration::from_secs(60), "partitions still hold {most} files\n{}", cluster.logs());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for (t, (_, token)) in tenants.iter().enumerate() {
        let reader = Client::new(&haproxy.url, token);
        for table in ["raw_events", "events"] {
            let total = cluster.count(&reader, &format!("SELECT count(*) FROM {table}")).await;
            let distinct = cluster.count(&reader, &format!("SELECT count(DISTINCT event_id) FROM {table}")).await;
            assert_eq!(distinct as usize, sent[t], "tenant {t} {table}: acknowledged events lost");
            assert_eq!(total, distinct, "tenant {t} {table}: events stored twice");
        }
    }
}

fn chrono_now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

#[test]
fn deploy_haproxy_config_is_valid() {
    let output = Command::new("haproxy")
        .args(["-c", "-f", concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/haproxy.cfg")])
        .output()
        .expect("haproxy (scripts/test-deps installs it)");
    assert!(
        output.status.success(),
        "haproxy -c rejected deploy/haproxy.cfg:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
