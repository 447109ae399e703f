//! `hourglass demo` and the web dashboard: the demo tenant's generated month, its credentials
//! across restarts, and the dashboard and SQL explorer driven by headless Chromium against the
//! report and query APIs.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use hourglass_client::Client;
use serde_json::{Value, json};

use crate::support::{TestServer, scalar};

/// The demo tenant's credentials, as `hourglass demo` keeps them in the data directory.
struct DemoCredentials {
    read_token: String,
    write_key: String,
}

/// Starts `hourglass demo` with `args` and waits until it says the demo is ready.
fn start_demo(args: &[&str]) -> TestServer {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let server = TestServer::start_role("demo", &args, &[]);
    wait_for_ready(&server, 1);
    server
}

/// Waits until stdout holds `times` "demo ready" lines (one per start).
fn wait_for_ready(server: &TestServer, times: usize) {
    let deadline = Instant::now() + Duration::from_secs(180);
    while server.stdout().matches("demo ready: open ").count() < times {
        assert!(Instant::now() < deadline, "the demo did not get ready:\n{}\n{}", server.stdout(), server.logs());
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn credentials(data_dir: &Path) -> DemoCredentials {
    let path = data_dir.join("demo-tenant.json");
    let state: Value = serde_json::from_slice(&std::fs::read(&path).expect("demo-tenant.json")).expect("json");
    assert_eq!(state["tenant"], "demo");
    DemoCredentials {
        read_token: state["read_token"].as_str().expect("read_token").to_string(),
        write_key: state["write_key"].as_str().expect("write_key").to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_fills_a_month_and_keeps_its_token_across_restarts() {
    let mut server = start_demo(&["--demo-visits-per-day", "60", "--demo-live", "false"]);
    let creds = credentials(&server.data_dir);
    let printed = server.stdout();
    assert!(
        printed.contains(&format!("demo ready: open {}/#token={}", server.url, creds.read_token)),
        "the URL and token are printed:\n{printed}"
    );
    assert!(printed.contains(&creds.write_key), "the write key is printed:\n{printed}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(server.data_dir.join("demo-tenant.json")).expect("meta").permissions().mode();
        assert_eq!(mode & 0o077, 0, "the credentials file is private to its owner: {mode:o}");
    }

    let reader = Client::new(&server.url, &creds.read_token);
    let by_day = reader
        .report(&json!({"date_range": "30d", "metrics": ["visitors", "pageviews"], "dimensions": ["time:day"], "limit": 100}))
        .await
        .expect("report by day");
    let days: Vec<&Value> = by_day["rows"].as_array().expect("rows").iter().collect();
    let busy_days = days.iter().filter(|r| r["metrics"][0].as_i64().unwrap_or(0) > 0).count();
    assert!(busy_days >= 29, "a month of visits, found {busy_days} days: {by_day}");

    let names: BTreeSet<String> = reader
        .query_json("SELECT DISTINCT name FROM events")
        .await
        .expect("names")
        .iter()
        .filter_map(|r| r["name"].as_str().map(str::to_string))
        .collect();
    for name in ["pageview", "signup", "add_to_cart", "purchase"] {
        assert!(names.contains(name), "the demo sends {name} events: {names:?}");
    }
    let campaigns = scalar(&reader, "SELECT count(DISTINCT utm_campaign) FROM sessions").await;
    assert!(campaigns >= 2, "visits come from campaigns too: {campaigns}");
    let channels = scalar(&reader, "SELECT count(DISTINCT channel) FROM sessions").await;
    assert!(channels >= 5, "visits come from many channels: {channels}");
    let weekday_visits =
        scalar(&reader, "SELECT count(*) FROM sessions WHERE extract(dow FROM started_at) BETWEEN 1 AND 5").await;
    let weekend_visits =
        scalar(&reader, "SELECT count(*) FROM sessions WHERE extract(dow FROM started_at) IN (0, 6)").await;
    assert!(
        weekday_visits / 5 > weekend_visits / 2,
        "a working week is busier than a weekend: {weekday_visits} vs {weekend_visits}"
    );
    let events = scalar(&reader, "SELECT count(*) FROM events").await;

    // A restart finds the tenant again: the same token, and the month is not generated twice.
    server.restart();
    wait_for_ready(&server, 2);
    let again = credentials(&server.data_dir);
    assert_eq!(again.read_token, creds.read_token, "the demo keeps its token");
    let second_start = server.stdout().rsplit("demo: generating").next().unwrap_or_default().to_string();
    assert!(second_start.contains(&creds.read_token), "the same token is printed again:\n{second_start}");
    let reader = Client::new(&server.url, &creds.read_token);
    let after = scalar(&reader, "SELECT count(*) FROM events").await;
    assert!(
        after >= events && after < events + events / 20,
        "only the missed minutes are added: {events} then {after}"
    );
}

/// Against one demo server: tests/browser/dashboard-test.mjs (Playwright driving Debian's
/// Chromium, installed by scripts/browser-deps) checks sign-in, cards, chart, panels,
/// comparison, ranges, click-to-filter, realtime, narrow screens and the SQL explorer against
/// the public APIs; then tests/grafana/check-dashboard-queries.py runs every query of the
/// Grafana dashboard over PostgreSQL wire (psycopg) and Flight SQL (ADBC) and compares them
/// with the report API. A week of demo traffic keeps the debug build's uncached reports quick.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_dashboard_in_chromium_and_the_grafana_queries_show_the_report_api() {
    let server = start_demo(&["--demo-days", "8", "--demo-visits-per-day", "300", "--demo-live", "false"]);
    let creds = credentials(&server.data_dir);

    // Visitors on the site right now, three of them from Google, so that "visitors now" has
    // something to show and to filter.
    let writer = Client::new(&server.url, &creds.write_key);
    let live: String = (0..5)
        .map(|i| {
            let mut event = json!({
                "event_id": format!("live-{i}"), "name": "pageview", "client_id": format!("live-visitor-{i}"),
                "url": format!("https://shop.example/live/{i}"),
            });
            if i < 3 {
                event["referrer"] = json!("https://www.google.com/");
            }
            format!("{event}\n")
        })
        .collect();
    let outcome = writer.ingest(live).await.expect("live events");
    assert_eq!(outcome.accepted, 5, "{outcome:?}");

    let output_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser").join("dashboard");
    let _ = std::fs::remove_dir_all(&output_dir);
    let output_dir_text = output_dir.to_string_lossy().to_string();
    let stdout = run_client(
        &server,
        Command::new("node").arg(client_path("browser/dashboard-test.mjs")).envs([
            ("HOURGLASS_URL", server.url.as_str()),
            ("HOURGLASS_READ_TOKEN", creds.read_token.as_str()),
            ("HOURGLASS_WRITE_KEY", creds.write_key.as_str()),
            ("OUTPUT_DIR", output_dir_text.as_str()),
        ]),
        "\"ok\":true",
    );
    let summary: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default()).expect("summary line");
    assert!(summary["checks"].as_u64().unwrap_or(0) >= 80, "the script ran all its checks: {summary}");
    for name in
        ["dashboard-1280.png", "dashboard-390.png", "dashboard-filtered-1280.png", "sql-1280.png", "sql-390.png"]
    {
        let bytes = std::fs::read(output_dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "{name} is a PNG");
    }

    // The Grafana dashboard over the last seven whole UTC days (the demo tenant's zone is UTC).
    let today = chrono::Utc::now().date_naive();
    let (first, last) =
        ((today - chrono::Duration::days(7)).to_string(), (today - chrono::Duration::days(1)).to_string());
    let pg = server.pg_addr.clone().expect("the demo serves PostgreSQL wire");
    let flight = server.grpc_url.clone().expect("the demo serves Flight SQL");
    run_client(
        &server,
        Command::new("python3").arg(client_path("grafana/check-dashboard-queries.py")).args([
            "--http",
            &server.url,
            "--pg",
            &pg,
            "--flight",
            &flight,
            "--token",
            &creds.read_token,
            "--from",
            &first,
            "--to",
            &last,
            "--source",
            "Google",
        ]),
        "grafana queries ok",
    );
}

/// The path of a client script under `tests/`.
fn client_path(script: &str) -> String {
    format!("{}/../../tests/{script}", env!("CARGO_MANIFEST_DIR"))
}

/// Runs a client nobody on the team wrote (Chromium through Playwright, psycopg, ADBC; installed
/// by scripts/test-deps) and asserts that it succeeded and printed `done`; returns its stdout.
fn run_client(server: &TestServer, command: &mut Command, done: &str) -> String {
    let output = tokio::task::block_in_place(|| command.output())
        .unwrap_or_else(|e| panic!("{:?} (scripts/test-deps installs the clients): {e}", command.get_program()));
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success() && stdout.contains(done),
        "{:?} failed:\n{stdout}{}\nserver log:\n{}",
        command.get_args().next().unwrap_or_default(),
        String::from_utf8_lossy(&output.stderr),
        server.logs()
    );
    stdout
}
