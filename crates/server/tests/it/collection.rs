//! The collection edge and tenant settings: the admin API and CLI for settings, the browser
//! endpoint with its site key, CORS and allowed hostnames, the tracker in headless Chromium,
//! and the GA4 Measurement Protocol endpoints.

use std::process::Command;

use serde_json::{Value, json};

use crate::support::{ADMIN_TOKEN, TestServer, hourglass, scalar, status_of};

const CHROME: &str =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36";

#[tokio::test]
async fn tenant_settings_through_the_admin_api_and_the_cli() {
    let server = TestServer::start(&[]);
    let creds = server.admin().create_tenant("conf").await.expect("tenant");
    let site_key = creds.site_key.expect("create answers the site key");
    assert!(site_key.starts_with("hgp_"), "{site_key}");

    let got = server.admin().tenant_settings("conf").await.expect("settings");
    assert_eq!(got["site_key"], site_key.as_str());
    assert_eq!(got["settings"]["session_timeout_ms"], 1_800_000);
    assert_eq!(got["settings"]["identified_mode"], false);
    assert_eq!(got["settings"]["key_events"], json!(["signup", "purchase"]));

    let changed = server
        .admin()
        .update_tenant_settings("conf", &json!({"identified_mode": true, "allowed_hostnames": ["WWW.Shop.example"]}))
        .await
        .expect("patch");
    assert_eq!(changed["settings"]["identified_mode"], true);
    assert_eq!(changed["settings"]["allowed_hostnames"], json!(["shop.example"]));
    assert_eq!(changed["settings"]["session_timeout_ms"], 1_800_000, "fields not given stay");

    for bad in [json!({"session_timeout_ms": 59_999}), json!({"colour": "red"}), json!({"reporting_currency": "EURO"})]
    {
        let result = server.admin().update_tenant_settings("conf", &bad).await;
        assert_eq!(status_of(result), 400, "{bad}");
    }
    assert_eq!(status_of(server.admin().tenant_settings("nobody").await), 404);
    let reader = server.admin().with_token(&creds.read_token);
    assert_eq!(status_of(reader.tenant_settings("conf").await), 403, "settings need the admin token");

    let (ok, out, err) = hourglass(
        &["tenant", "settings", "conf", "--session-timeout", "1h30m", "--key-events", "signup, trial_start"],
        ADMIN_TOKEN,
        &server.url,
    );
    assert!(ok, "{err}");
    let printed: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(printed["settings"]["session_timeout_ms"], 5_400_000);
    assert_eq!(printed["settings"]["key_events"], json!(["signup", "trial_start"]));
    assert_eq!(printed["settings"]["identified_mode"], true);
    let (ok, _, err) = hourglass(&["tenant", "settings", "conf", "--session-timeout", "8h"], ADMIN_TOKEN, &server.url);
    assert!(!ok && err.contains("session_timeout_ms"), "{err}");
    let (ok, out, _) = hourglass(&["tenant", "settings", "conf"], ADMIN_TOKEN, &server.url);
    assert!(ok && out.contains("5400000"), "{out}");

    // Retention: per table, a patch changes only the tables it names, null goes back to the
    // deployment's default.
    assert_eq!(printed["settings"]["retention"], json!({"raw_events": null, "events": null}));
    let changed =
        server.admin().update_tenant_settings("conf", &json!({"retention": {"events": 30}})).await.expect("patch");
    assert_eq!(changed["settings"]["retention"], json!({"raw_events": null, "events": 30}));
    for bad in [json!({"retention": {"events": 0}}), json!({"retention": {"rollups": 5}})] {
        let result = server.admin().update_tenant_settings("conf", &bad).await;
        assert_eq!(status_of(result), 400, "{bad}");
    }
    let (ok, out, err) = hourglass(
        &["tenant", "settings", "conf", "--retention-raw-days", "400", "--retention-events-days", "default"],
        ADMIN_TOKEN,
        &server.url,
    );
    assert!(ok, "{err}");
    let printed: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(printed["settings"]["retention"], json!({"raw_events": 400, "events": null}));
    let (ok, _, err) =
        hourglass(&["tenant", "settings", "conf", "--retention-events-days", "36501"], ADMIN_TOKEN, &server.url);
    assert!(!ok && err.contains("retention.events"), "{err}");
}

#[tokio::test]
async fn identified_mode_makes_user_ids_visitors() {
    let server = TestServer::start(&[]);
    let (writer, reader) = server.tenant("ident").await;
    let events = |prefix: &str| {
        (0..2)
            .map(|i| {
                format!(
                    "{{\"event_id\":\"{prefix}{i}\",\"name\":\"pageview\",\"url\":\"https://a.example/\",\
                     \"user_id\":\"u-1\",\"client_id\":\"device-{i}\"}}\n"
                )
            })
            .collect::<String>()
    };
    writer.ingest(events("off")).await.expect("ingest");
    server.admin().update_tenant_settings("ident", &json!({"identified_mode": true})).await.expect("patch");
    // The change reaches the ingester once its settings cache expires.
    tokio::time::sleep(std::time::Duration::from_millis(5_500)).await;
    writer.ingest(events("on")).await.expect("ingest");
    let distinct =
        |prefix: &str| format!("SELECT count(DISTINCT visitor_id) FROM events WHERE event_id LIKE '{prefix}%'");
    assert_eq!(scalar(&reader, &distinct("off")).await, 2, "two devices without identified mode");
    assert_eq!(scalar(&reader, &distinct("on")).await, 1, "one user in identified mode");
}

async fn collect(server: &TestServer, body: &Value, origin: Option<&str>) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(format!("{}/api/v1/collect", server.url))
        .header("Content-Type", "text/plain;charset=UTF-8")
        .header("User-Agent", CHROME)
        .body(body.to_string());
    if let Some(origin) = origin {
        request = request.header("Origin", origin);
    }
    request.send().await.expect("POST collect")
}

#[tokio::test]
async fn the_browser_endpoint_takes_site_keys_from_allowed_hostnames() {
    let server = TestServer::start(&[]);
    let creds = server.admin().create_tenant("web").await.expect("tenant");
    let site_key = creds.site_key.expect("site key");
    let reader = server.admin().with_token(&creds.read_token);
    server.admin().update_tenant_settings("web", &json!({"allowed_hostnames": ["shop.example"]})).await.expect("patch");

    let event = json!({
        "site_key": site_key,
        "name": "pageview",
        "url": "https://www.shop.example/p%C3%A4ge?utm_source=google&gclid=x#top",
        "referrer": "https://www.google.com/",
        "screen_width": 1440,
        "language": "de-DE",
    });
    let answer = collect(&server, &event, Some("https://www.shop.example")).await;
    assert_eq!(answer.status(), 202);
    assert_eq!(answer.headers()["access-control-allow-origin"], "*");

    let mut elsewhere = event.clone();
    elsewhere["url"] = "https://evil.example/".into();
    let answer = collect(&server, &elsewhere, None).await;
    assert_eq!(answer.status(), 403);
    assert_eq!(answer.headers()["access-control-allow-origin"], "*", "errors are readable by the page too");
    assert!(answer.text().await.expect("body").contains("hostname_not_allowed"));
    let answer = collect(&server, &event, Some("https://evil.example")).await;
    assert_eq!(answer.status(), 403, "a page elsewhere cannot send for an allowed hostname");

    let mut unknown = event.clone();
    unknown["site_key"] = "hgp_nope".into();
    assert_eq!(collect(&server, &unknown, None).await.status(), 401);
    let mut bad = event.clone();
    bad["screen_width"] = "wide".into();
    assert_eq!(collect(&server, &bad, None).await.status(), 400);
    let mut relative = event.clone();
    relative["url"] = "/cart".into();
    assert_eq!(collect(&server, &relative, None).await.status(), 400);

    let preflight = reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, format!("{}/api/v1/collect", server.url))
        .header("Origin", "https://shop.example")
        .header("Access-Control-Request-Method", "POST")
        .send()
        .await
        .expect("OPTIONS");
    assert_eq!(preflight.status(), 204);
    assert_eq!(preflight.headers()["access-control-allow-origin"], "*");

    let rows = reader
        .query_json(
            "SELECT hostname, path, source, channel, browser, device, language, screen_width, ip_hash, country \
             FROM events",
        )
        .await
        .expect("query");
    assert_eq!(rows.len(), 1, "{rows:?}");
    let row = &rows[0];
    assert_eq!(row["hostname"], "shop.example");
    assert_eq!(row["path"], "/päge");
    assert_eq!(row["source"], "Google");
    assert_eq!(row["channel"], "Paid Search");
    assert_eq!(row["browser"], "Chrome", "the user agent comes from the request header");
    assert_eq!(row["device"], "Desktop");
    assert_eq!(row["screen_width"], 1440);
    assert!(row["ip_hash"].as_str().is_some_and(|h| h.len() == 16), "the socket address is hashed: {row:?}");
    assert!(row.get("country").is_none_or(Value::is_null), "no trusted country header is configured");
}

#[tokio::test]
async fn a_trusted_cdn_header_gives_the_country_and_address() {
    let server = TestServer::start(&["--country-header", "CF-IPCountry", "--client-ip-header", "X-Forwarded-For"]);
    let creds = server.admin().create_tenant("cdn").await.expect("tenant");
    let reader = server.admin().with_token(&creds.read_token);
    let body = json!({"site_key": creds.site_key, "name": "pageview", "url": "https://a.example/"});
    for (ip, country) in [("203.0.113.7", "NZ"), ("203.0.113.8", "XX")] {
        let answer = reqwest::Client::new()
            .post(format!("{}/api/v1/collect", server.url))
            .header("User-Agent", CHROME)
            .header("CF-IPCountry", country)
            .header("X-Forwarded-For", format!("{ip}, 10.0.0.1"))
            .body(body.to_string())
            .send()
            .await
            .expect("POST");
        assert_eq!(answer.status(), 202);
    }
    let countries = reader.query_json("SELECT country FROM events ORDER BY country NULLS LAST").await.expect("q");
    assert_eq!(countries[0]["country"], "NZ");
    assert!(countries[1].get("country").is_none_or(Value::is_null), "XX means unknown: {countries:?}");
    assert_eq!(scalar(&reader, "SELECT count(DISTINCT ip_hash) FROM events").await, 2, "two forwarded addresses");
}

#[tokio::test]
async fn the_tracker_script_is_served_with_caching_headers() {
    let server = TestServer::start(&[]);
    let response = reqwest::get(format!("{}/js/hourglass.js", server.url)).await.expect("GET");
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().expect("type").starts_with("text/javascript"));
    assert!(response.headers()["cache-control"].to_str().expect("cache").contains("max-age="));
    let body = response.text().await.expect("body");
    assert!(body.contains("/api/v1/collect") && body.contains("sendBeacon"), "the tracker itself");
}

/// Runs the Playwright script that drives Debian's Chromium through a test site embedding the
/// tracker (scripts/browser-deps installs both).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tracker_in_headless_chromium() {
    let server = TestServer::start(&[]);
    let creds = server.admin().create_tenant("browser").await.expect("tenant");
    let reader = server.admin().with_token(&creds.read_token);
    let script = format!("{}/../../tests/browser/tracker-test.mjs", env!("CARGO_MANIFEST_DIR"));
    let output = tokio::task::block_in_place(|| {
        Command::new("node")
            .arg(&script)
            .env("HOURGLASS_URL", &server.url)
            .env("HOURGLASS_SITE_KEY", creds.site_key.as_deref().unwrap_or(""))
            .output()
            .expect("node (scripts/browser-deps installs it with playwright-core and chromium)")
    });
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("\"ok\":true"),
        "tracker test failed:\n{stdout}{}\nserver log:\n{}",
        String::from_utf8_lossy(&output.stderr),
        server.logs()
    );

    let rows = reader
        .query_json(
            "SELECT event_id, CAST(timestamp AS BIGINT) AS ts, name, path, hostname, referrer_page, source, channel, device, browser, screen_width, language, \
             props['plan'] AS plan FROM events ORDER BY timestamp, name",
        )
        .await
        .expect("query");
    assert_eq!(rows.len(), 3, "{rows:?}");
    let (landing, settings, signup) = (&rows[0], &rows[1], &rows[2]);
    assert_eq!(landing["name"], "pageview");
    assert_eq!(landing["path"], "/landing");
    assert_eq!(landing["hostname"], "127.0.0.1");
    assert!(
        landing["referrer_page"].as_str().is_some_and(|r| r.starts_with("http://localhost:") && r.ends_with("/start")),
        "{landing:?}"
    );
    assert_eq!(landing["source"], "newsletter");
    assert_eq!(landing["channel"], "Email");
    assert_eq!(landing["device"], "Desktop");
    assert_eq!(landing["browser"], "Chrome");
    assert_eq!(landing["screen_width"], 1280);
    assert_eq!(settings["name"], "pageview");
    assert_eq!(settings["path"], "/app/settings", "the history navigation is a pageview");
    assert!(settings.get("referrer_page").is_none_or(Value::is_null), "{settings:?}");
    assert_eq!(signup["name"], "signup");
    assert_eq!(signup["path"], "/app/settings");
    assert_eq!(signup["plan"], "pro");
    let sessions = scalar(&reader, "SELECT count(*) FROM sessions").await;
    assert_eq!(sessions, 1, "one visit");
    let entry = reader
        .query_json(
            "SELECT entry_page, exit_page, pageviews, is_bounce, is_engaged, key_events, source, channel, language, \
             device, referrer FROM sessions",
        )
        .await
        .expect("q");
    assert_eq!(entry.len(), 1, "{entry:?}\n{rows:?}");
    assert_eq!(entry[0]["entry_page"], "/landing");
    assert_eq!(entry[0]["exit_page"], "/app/settings", "{entry:?}\n{rows:?}");
    assert_eq!(entry[0]["pageviews"], 2);
    assert_eq!(entry[0]["is_bounce"], false);
    assert_eq!(entry[0]["is_engaged"], true);
    assert_eq!(entry[0]["key_events"], 1, "signup is a default key event");
    assert_eq!(entry[0]["source"], "newsletter", "attributes come from the first event");
    assert_eq!(entry[0]["channel"], "Email");
    assert_eq!(entry[0]["language"], "en", "the primary subtag");
    assert_eq!(entry[0]["device"], "Desktop");
    assert!(entry[0]["referrer"].as_str().is_some_and(|r| r.ends_with("/start")), "{entry:?}");
}

async fn mp(server: &TestServer, path: &str, query: &str, body: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}{path}?{query}", server.url))
        .header("User-Agent", "python-requests/2.31")
        .body(body.to_string())
        .send()
        .await
        .expect("POST mp");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_measurement_protocol_endpoint_maps_ga4_payloads() {
    let server = TestServer::start(&[]);
    let creds = server.admin().create_tenant("mp").await.expect("tenant");
    let reader = server.admin().with_token(&creds.read_token);
    let site_key = creds.site_key.expect("site key");
    let query = format!("measurement_id={site_key}&api_secret={}", creds.write_key);
    let payload = json!({
        "client_id": "123456.7654321",
        "events": [
            {"name": "page_view", "params": {
                "page_location": "https://shop.example/pricing?utm_source=newsletter&utm_medium=email",
                "page_title": "Pricing", "session_id": 1712345678, "engagement_time_msec": 100}},
            {"name": "purchase", "params": {"currency": "usd", "value": 42.5, "transaction_id": "T-1"}}
        ],
        "user_agent": CHROME
    });

    let (status, answer) = mp(&server, "/debug/mp/collect", &query, &payload.to_string()).await;
    assert_eq!((status, answer), (200, json!({"validationMessages": []})));
    assert_eq!(scalar(&reader, "SELECT count(*) FROM raw_events").await, 0, "the debug endpoint stores nothing");

    let (status, _) = mp(&server, "/mp/collect", &query, &payload.to_string()).await;
    assert_eq!(status, 204);
    let rows = reader
        .query_json(
            "SELECT name, path, title, session_id, channel, revenue, currency, browser FROM events ORDER BY name",
        )
        .await
        .expect("query");
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0]["name"], "pageview");
    assert_eq!(rows[0]["path"], "/pricing");
    assert_eq!(rows[0]["title"], "Pricing");
    assert_eq!(rows[0]["session_id"], "1712345678");
    assert_eq!(rows[0]["channel"], "Email");
    assert_eq!(rows[0]["browser"], "Chrome", "the body's user_agent wins over the sender's");
    assert_eq!(rows[1]["name"], "purchase");
    assert_eq!(rows[1]["revenue"], 42.5);
    assert_eq!(rows[1]["currency"], "USD");

    let malformed = json!({"events": [{"name": "session_start"}, {"name": "add-to-cart"}]});
    let (status, answer) = mp(&server, "/mp/collect", &query, &malformed.to_string()).await;
    assert_eq!(status, 400);
    let messages = answer["validationMessages"].as_array().expect("messages");
    let has = |path: &str, code: &str| messages.iter().any(|m| m["fieldPath"] == path && m["validationCode"] == code);
    assert!(has("client_id", "VALUE_REQUIRED"), "{answer}");
    assert!(has("events[0].name", "NAME_RESERVED"), "{answer}");
    assert!(has("events[1].name", "NAME_INVALID"), "{answer}");
    let (status, answer) = mp(&server, "/debug/mp/collect", &query, "{not json").await;
    assert_eq!(status, 200);
    assert_eq!(answer["validationMessages"][0]["validationCode"], "VALUE_INVALID", "{answer}");

    // Another tenant's write key with this site key writes nowhere.
    let other = server.admin().create_tenant("mp-other").await.expect("tenant");
    let crossed = format!("measurement_id={site_key}&api_secret={}", other.write_key);
    let (status, _) = mp(&server, "/mp/collect", &crossed, &payload.to_string()).await;
    assert_eq!(status, 401, "a write key of another tenant is not this site's api_secret");
    let other_reader = server.admin().with_token(&other.read_token);
    assert_eq!(scalar(&other_reader, "SELECT count(*) FROM raw_events").await, 0);

    let wrong = format!("measurement_id={site_key}&api_secret={}", creds.read_token);
    let (status, _) = mp(&server, "/mp/collect", &wrong, &payload.to_string()).await;
    assert_eq!(status, 401, "a read token is not an api_secret");
    let (status, answer) = mp(&server, "/debug/mp/collect", &wrong, &payload.to_string()).await;
    assert_eq!(status, 200);
    assert_eq!(answer["validationMessages"][0]["fieldPath"], "api_secret", "{answer}");
    assert_eq!(scalar(&reader, "SELECT count(*) FROM raw_events").await, 2, "nothing else was stored");
}

#[tokio::test]
async fn a_geoip_database_gives_the_country_of_events_that_carry_none() {
    let dir = tempfile::tempdir().expect("tempdir");
    let database = dir.path().join("countries.mmdb");
    let bytes = hourglass_testkit::mmdb::country_database(&[("81.2.69.0/24", "GB"), ("2a02:2f0c::/32", "RO")]);
    std::fs::write(&database, bytes).expect("write the database");
    let database = database.to_string_lossy().to_string();
    let server = TestServer::start(&[
        "--geoip-database",
        &database,
        "--country-header",
        "CF-IPCountry",
        "--client-ip-header",
        "X-Forwarded-For",
    ]);
    let creds = server.admin().create_tenant("geo").await.expect("tenant");
    let writer = server.admin().with_token(&creds.write_key);
    let reader = server.admin().with_token(&creds.read_token);
    let events = [
        json!({"name": "by-address", "ip": "81.2.69.160"}),
        json!({"name": "by-ipv6-address", "ip": "2a02:2f0c:1::9"}),
        json!({"name": "own-country-wins", "ip": "81.2.69.161", "country": "FR"}),
        json!({"name": "unknown-address", "ip": "192.0.2.1"}),
        json!({"name": "no-address"}),
    ];
    let body = events.iter().map(Value::to_string).collect::<Vec<_>>().join("\n");
    let outcome = writer.ingest(body).await.expect("ingest");
    assert_eq!(outcome.accepted, 5, "{outcome:?}");

    // A browser event: the CDN's header is more trustworthy than the database.
    let answer = reqwest::Client::new()
        .post(format!("{}/api/v1/collect", server.url))
        .header("User-Agent", CHROME)
        .header("CF-IPCountry", "NZ")
        .header("X-Forwarded-For", "81.2.69.7")
        .body(json!({"site_key": creds.site_key, "name": "header-wins", "url": "https://a.example/"}).to_string())
        .send()
        .await
        .expect("POST");
    assert_eq!(answer.status(), 202);

    let rows = reader.query_json("SELECT name, country FROM raw_events ORDER BY name").await.expect("query");
    let got: Vec<(String, Option<String>)> = rows
        .iter()
        .map(|r| {
            (r["name"].as_str().expect("name").to_string(), r.get("country").and_then(|c| c.as_str()).map(String::from))
        })
        .collect();
    let want = [
        ("by-address", Some("GB")),
        ("by-ipv6-address", Some("RO")),
        ("header-wins", Some("NZ")),
        ("no-address", None),
        ("own-country-wins", Some("FR")),
        ("unknown-address", None),
    ];
    let want: Vec<(String, Option<String>)> = want.iter().map(|(n, c)| (n.to_string(), c.map(String::from))).collect();
    assert_eq!(got, want);
    assert_eq!(scalar(&reader, "SELECT count(*) FROM events WHERE country = 'GB'").await, 1, "events carry it too");
}

#[test]
fn an_unreadable_geoip_database_stops_the_server_with_the_flag_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data").to_string_lossy().to_string();
    let database = dir.path().join("missing.mmdb").to_string_lossy().to_string();
    let (ok, _, stderr) = hourglass(
        &[
            "serve",
            "--data-dir",
            &data,
            "--http-addr",
            "127.0.0.1:0",
            "--grpc-addr",
            "127.0.0.1:0",
            "--pg-addr",
            "127.0.0.1:0",
            "--admin-token",
            ADMIN_TOKEN,
            "--geoip-database",
            &database,
        ],
        "",
        "",
    );
    assert!(!ok, "the server must not start without its GeoIP database");
    assert!(stderr.contains("--geoip-database") && stderr.contains("missing.mmdb"), "{stderr}");
}
