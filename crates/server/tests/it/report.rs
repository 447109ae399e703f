//! The report API against an independent oracle: generated multi-tenant traffic (shuffled,
//! duplicated, late, crossing midnights, cookie and cookieless visitors, client session ids)
//! goes through the real server; every row, total, comparison and time label of many report
//! requests must equal what `report_oracle` computes from the generated events.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Duration, NaiveDate};
use chrono_tz::Tz;
use hourglass_client::Client;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use crate::report_oracle::{DAY, Data, Ev, HOUR, MIN, Oracle, Rules, local_day};
use crate::support::TestServer;

const AGENTS: [&str; 4] = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    "Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
];

/// Ways a visit arrives: a query string for the landing URL and a referrer.
const ARRIVALS: [(&str, Option<&str>); 7] = [
    ("", None),
    ("?utm_source=newsletter&utm_medium=email&utm_campaign=spring", None),
    ("", Some("https://www.google.com/search?q=shoes")),
    ("?gclid=abc123", None),
    ("", Some("https://news.ycombinator.com/item?id=1")),
    ("?utm_source=fb&utm_medium=paid_social&utm_content=ad1&utm_term=shoes", None),
    ("?utm_source=Bing&utm_medium=cpc&utm_campaign=brand", Some("https://www.bing.com/")),
];

const PAGES: [&str; 6] = ["/", "/pricing", "/blog/a", "/Blog/B", "/docs/start", "/checkout"];

/// One generated event as sent.
#[derive(Debug, Clone)]
struct Sent {
    json: Value,
    ev: Ev,
}

struct Visitor {
    cookie: Option<String>,
    ip: String,
    agent: &'static str,
    host: &'static str,
    session_ids: bool,
    country: Option<&'static str>,
    language: Option<&'static str>,
    screen: Option<i64>,
}

fn generate(rng: &mut StdRng, tenant: &str, start: i64, end: i64, timeout: i64) -> Vec<Sent> {
    let gaps = [MIN, 4 * MIN, timeout - 1, timeout, timeout + 1, 2 * HOUR, 9 * HOUR];
    let mut out = Vec::new();
    for v in 0..36 {
        let visitor = Visitor {
            cookie: (v % 5 != 0 && v % 5 != 3).then(|| format!("{tenant}-c{v}")),
            ip: format!("203.0.113.{}", v / 2),
            agent: AGENTS[v % AGENTS.len()],
            host: if v % 7 == 0 { "blog.example" } else { "shop.example" },
            session_ids: v % 4 == 1,
            country: [Some("DE"), Some("US"), None, Some("FR")][v % 4],
            language: [Some("de-DE"), Some("en-US"), None][v % 3],
            screen: [Some(375), Some(800), Some(1280), Some(1920), None][v % 5],
        };
        let mut ts = rng.random_range(start..end - 3 * HOUR);
        let mut sid = 0;
        let mut arrival = ARRIVALS[rng.random_range(0..ARRIVALS.len())];
        for k in 0..rng.random_range(1..11) {
            if k > 0 {
                let gap = gaps[rng.random_range(0..gaps.len())];
                if gap > timeout || rng.random_range(0..5) == 0 {
                    sid += 1;
                }
                if gap > timeout {
                    arrival = ARRIVALS[rng.random_range(0..ARRIVALS.len())];
                }
                ts += gap;
            }
            if ts >= end {
                break;
            }
            let name = match rng.random_range(0..14) {
                0 => "signup",
                1 => "scroll",
                2 | 3 => "purchase",
                4 => "download",
                _ => "pageview",
            };
            let path = PAGES[rng.random_range(0..PAGES.len())];
            // The arrival's query and referrer are on the first event and sometimes on later
            // ones too: a session takes its first event's.
            let (query, referrer) = if k == 0 || rng.random_range(0..4) == 0 { arrival } else { ("", None) };
            let mut props = BTreeMap::new();
            match name {
                "purchase" => {
                    props.insert("plan".to_string(), ["pro", "basic"][rng.random_range(0..2)].to_string());
                }
                "signup" => {
                    props.insert("plan".to_string(), "free".to_string());
                }
                "pageview" if rng.random_range(0..3) == 0 => {
                    props.insert("ab".to_string(), ["x", "y"][rng.random_range(0..2)].to_string());
                }
                _ => {}
            }
            let revenue = (name == "purchase")
                .then(|| [(10.0, "USD"), (19.99, "USD"), (5.0, "EUR"), (7.5, "")][rng.random_range(0..4)]);
            let id = format!("{tenant}-{v}-{k}");
            let mut json = json!({
                "event_id": id,
                "timestamp": ts,
                "name": name,
                "url": format!("https://{}{path}{query}", visitor.host),
                "user_agent": visitor.agent,
                "interactive": name != "scroll",
                "props": props,
            });
            if let Some(r) = referrer {
                json["referrer"] = json!(r);
            }
            match &visitor.cookie {
                Some(c) => json["client_id"] = json!(c),
                None => json["ip"] = json!(visitor.ip),
            }
            let session_id = visitor.session_ids.then(|| format!("s{sid}"));
            if let Some(s) = &session_id {
                json["session_id"] = json!(s);
            }
            if let Some(c) = visitor.country {
                json["country"] = json!(c);
            }
            if let Some(l) = visitor.language {
                json["language"] = json!(l);
            }
            if let Some(w) = visitor.screen {
                json["screen_width"] = json!(w);
            }
            if let Some((amount, currency)) = revenue {
                json["revenue"] = json!(amount);
                if !currency.is_empty() {
                    json["currency"] = json!(currency);
                }
            }
            let (browser_key, visitor_key) = match &visitor.cookie {
                Some(c) => (format!("c:{c}"), format!("c:{c}")),
                None => {
                    let b = format!("a:{}|{}|{}", visitor.ip, visitor.agent, visitor.host);
                    let day = ts.div_euclid(DAY);
                    (b.clone(), format!("{b}|{day}"))
                }
            };
            let ev = Ev {
                id,
                ts,
                name: name.to_string(),
                path: path.to_string(),
                host: visitor.host.to_string(),
                props,
                revenue: revenue.map(|(a, c)| (a, c.to_string())),
                interactive: name != "scroll",
                browser_key,
                visitor: visitor_key,
                session_id,
                attrs: BTreeMap::new(),
            };
            out.push(Sent { json, ev });
        }
    }
    out
}

/// Fills each event's visit labels: what the test sent (country, language, screen) and what
/// the processor derived from URLs and user agents (read back from `events` by event id).
async fn label(reader: &Client, events: &mut [Ev], sent: &[Sent], currency: &str) {
    let rows = reader
        .query_json(
            "SELECT event_id, source, channel, referrer_page, utm_source, utm_medium, utm_campaign, utm_content, \
             utm_term, device, browser, browser_version, os, os_version FROM events",
        )
        .await
        .expect("derived columns");
    let mut derived: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for row in rows {
        let text = |k: &str| row.get(k).and_then(|v| v.as_str()).filter(|v| !v.is_empty()).map(str::to_string);
        let id = text("event_id").expect("id");
        let mut attrs = BTreeMap::new();
        attrs.insert("source".into(), text("source").unwrap_or_else(|| "Direct / None".into()));
        attrs.insert("referrer".into(), text("referrer_page").unwrap_or_else(|| "Direct / None".into()));
        attrs.insert("channel".into(), text("channel").unwrap_or_else(|| "(not set)".into()));
        for k in [
            "utm_source",
            "utm_medium",
            "utm_campaign",
            "utm_content",
            "utm_term",
            "device",
            "browser",
            "browser_version",
            "os",
            "os_version",
        ] {
            attrs.insert(k.into(), text(k).unwrap_or_else(|| "(not set)".into()));
        }
        derived.insert(id, attrs);
    }
    let by_id: BTreeMap<&str, &Value> = sent.iter().map(|s| (s.ev.id.as_str(), &s.json)).collect();
    for e in events.iter_mut() {
        let mut attrs = derived.get(&e.id).cloned().unwrap_or_else(|| panic!("event {} is in events", e.id));
        let json = by_id[e.id.as_str()];
        attrs.insert("country".into(), json["country"].as_str().unwrap_or("(not set)").to_string());
        let lang = json["language"].as_str().map(|l| l.split('-').next().unwrap_or("").to_lowercase());
        attrs.insert("language".into(), lang.unwrap_or_else(|| "(not set)".into()));
        let screen = json["screen_width"].as_i64().map(|w| match w {
            w if w < 576 => "Mobile",
            w if w < 992 => "Tablet",
            w if w < 1440 => "Laptop",
            _ => "Desktop",
        });
        attrs.insert("screen".into(), screen.unwrap_or("(not set)").to_string());
        e.attrs = attrs;
        if let Some((_, c)) = &mut e.revenue
            && c.is_empty()
        {
            // No currency counts as the reporting currency.
            *c = currency.to_string();
        }
    }
}

fn day(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

/// Every number as a float, so that 2 and 2.0 compare equal.
fn normalize(v: &Value) -> Value {
    match v {
        Value::Number(n) => json!(n.as_f64().unwrap_or(f64::NAN)),
        Value::Array(a) => Value::Array(a.iter().map(normalize).collect()),
        Value::Object(o) => Value::Object(o.iter().map(|(k, v)| (k.clone(), normalize(v))).collect()),
        other => other.clone(),
    }
}

/// The report requests checked against the oracle, over local days `first..=last`.
fn requests(first: NaiveDate, last: NaiveDate, tz: &str) -> Vec<Value> {
    let all = [
        "visitors",
        "visits",
        "pageviews",
        "events",
        "views_per_visit",
        "bounce_rate",
        "visit_duration",
        "engagement_rate",
        "revenue",
    ];
    let range = json!([day(first), day(last)]);
    let base = |dims: Value| json!({"date_range": range, "timezone": tz, "metrics": all, "dimensions": dims});
    let mut out = vec![base(json!([]))];
    for dim in [
        "event:name",
        "event:page",
        "event:hostname",
        "event:props:plan",
        "event:props:ab",
        "visit:source",
        "visit:channel",
        "visit:referrer",
        "visit:utm_source",
        "visit:utm_medium",
        "visit:utm_campaign",
        "visit:utm_content",
        "visit:utm_term",
        "visit:entry_page",
        "visit:exit_page",
        "visit:device",
        "visit:browser",
        "visit:browser_version",
        "visit:os",
        "visit:os_version",
        "visit:country",
        "visit:screen",
        "visit:language",
        "time:hour",
        "time:day",
        "time:week",
        "time:month",
    ] {
        out.push(base(json!([dim])));
    }
    out.push(base(json!(["visit:source", "time:day"])));
    out.push(base(json!(["event:page", "visit:device"])));
    for filters in [
        json!([["is", "visit:country", ["DE"]]]),
        json!([["contains", "event:page", ["/blog"]]]),
        json!([["is_not", "event:page", ["/pricing"]]]),
        json!([["not", ["is", "event:name", ["signup"]]]]),
        json!([["or", [["is", "visit:device", ["Mobile"]], ["starts_with", "event:page", ["/docs"]]]]]),
        json!([["matches", "event:page", ["^/b"], {"case_sensitive": false}]]),
        json!([["is", "event:page", ["/checkout"]], ["is", "event:name", ["purchase"]]]),
        json!([["contains_not", "visit:source", ["oo"]], ["ends_with", "event:page", ["a"]]]),
        json!([["is", "event:props:plan", ["pro", "free"]]]),
    ] {
        let mut r = base(json!(["visit:source"]));
        r["filters"] = filters.clone();
        out.push(r);
        let mut r = base(json!(["event:page"]));
        r["filters"] = filters;
        out.push(r);
    }
    out.push(json!({"date_range": range, "timezone": tz, "metrics": ["visitors", "conversion_rate"], "dimensions": ["event:name"]}));
    out.push(json!({"date_range": range, "timezone": tz, "metrics": ["visitors", "conversion_rate", "visits"],
        "dimensions": ["visit:source"], "filters": [["is", "event:name", ["signup", "purchase"]]]}));
    out.push(json!({"date_range": range, "timezone": tz, "metrics": ["conversion_rate"],
        "dimensions": ["event:name", "visit:device"]}));
    let mut r = base(json!(["time:day"]));
    r["compare"] = json!("previous_period");
    out.push(r);
    let mut r = base(json!(["visit:source"]));
    r["compare"] = json!("previous_period");
    out.push(r);
    let mut r = base(json!(["visit:channel"]));
    r["having"] = json!([["gte", "visits", 2], ["lt", "bounce_rate", 100]]);
    r["order_by"] = json!([["visit:channel", "desc"]]);
    out.push(r);
    let mut r = base(json!(["event:page", "visit:source"]));
    r["order_by"] = json!([["bounce_rate", "asc"], ["visitors", "desc"]]);
    r["limit"] = json!(4);
    r["offset"] = json!(3);
    out.push(r);
    out
}

async fn report(reader: &Client, request: &Value) -> Value {
    reader.report(request).await.unwrap_or_else(|e| panic!("report {request}: {e}"))
}

/// One generated tenant: its settings, credentials and events.
struct Stream {
    tenant: &'static str,
    rules: Rules,
    tz: &'static str,
    creds: hourglass_client::TenantCredentials,
    sent: Vec<Sent>,
    /// The events in the order they are sent: shuffled, a fifth of them twice.
    order: Vec<usize>,
}

impl Stream {
    fn third(&self, part: usize) -> &[usize] {
        let third = self.order.len().div_ceil(3);
        let start = (part * third).min(self.order.len());
        &self.order[start..((part + 1) * third).min(self.order.len())]
    }
}

/// Three tenants with different settings and zones, and three days of their traffic.
async fn streams(server: &TestServer, now: i64) -> Vec<Stream> {
    let defaults =
        Rules { timeout: 30 * MIN, key_events: vec!["signup".into(), "purchase".into()], currency: "USD".into() };
    let custom = Rules { timeout: 10 * MIN, key_events: vec!["download".into()], currency: "EUR".into() };
    let tenants = [
        ("rep-a", defaults.clone(), "Europe/Berlin"),
        ("rep-b", custom, "America/New_York"),
        ("rep-c", defaults, "UTC"),
    ];
    let mut rng = StdRng::seed_from_u64(0x0bad_cafe);
    let mut out = Vec::new();
    for (tenant, rules, tz) in tenants {
        let creds = server.admin().create_tenant(tenant).await.expect("tenant");
        let patch = json!({
            "session_timeout_ms": rules.timeout, "key_events": rules.key_events,
            "reporting_currency": rules.currency, "timezone": tz,
        });
        server.admin().update_tenant_settings(tenant, &patch).await.expect("settings");
        let sent = generate(&mut rng, tenant, now - 3 * DAY, now, rules.timeout);
        let mut order: Vec<usize> = (0..sent.len()).collect();
        order.extend((0..sent.len()).filter(|i| i % 5 == 0));
        order.shuffle(&mut StdRng::seed_from_u64(7));
        out.push(Stream { tenant, rules, tz, creds, sent, order });
    }
    out
}

/// Sends the `part`-th third of every stream.
async fn send(server: &TestServer, streams: &[Stream], part: usize) {
    for s in streams {
        let writer = server.admin().with_token(&s.creds.write_key);
        for chunk in s.third(part).chunks(50) {
            let body: String = chunk.iter().map(|i| format!("{}\n", s.sent[*i].json)).collect();
            let answer = writer.ingest(body).await.expect("ingest");
            assert_eq!(answer.rejected, 0, "{answer:?}");
        }
    }
}

/// Checks every request of [`requests`] against the oracle over the events of the first
/// `parts` thirds; returns the answer paths seen (`raw`, `rollup:...`).
async fn check(server: &TestServer, streams: &[Stream], parts: usize, now: i64) -> BTreeSet<String> {
    let mut paths = BTreeSet::new();
    for s in streams {
        let reader = server.admin().with_token(&s.creds.read_token);
        let sent_ids: BTreeSet<usize> = (0..parts).flat_map(|p| s.third(p).iter().copied()).collect();
        let sent: Vec<Sent> = sent_ids.iter().map(|i| s.sent[*i].clone()).collect();
        let mut events: Vec<Ev> = sent.iter().map(|x| x.ev.clone()).collect();
        label(&reader, &mut events, &sent, &s.rules.currency).await;
        let data = Data::new(&events, s.rules.clone());
        let tz: Tz = s.tz.parse().expect("zone");
        let oracle = Oracle { data: &data, tz };
        let today = local_day(tz, now);
        let (first, last) = (today - Duration::days(3), today);
        let mut checked = 0;
        for mut request in requests(first, last, s.tz) {
            // The tenant's zone applies when the request names none.
            if s.tenant == "rep-b" {
                request.as_object_mut().expect("object").remove("timezone");
            }
            request["include"] = json!({"total_rows": true});
            let got = report(&reader, &request).await;
            let n = (last - first).num_days() + 1;
            let previous = request.get("compare").map(|_| (first - Duration::days(n), first - Duration::days(1)));
            let want = oracle.answer(&request, (first, last), previous);
            let tenant = s.tenant;
            let path = got["meta"]["path"].as_str().unwrap_or("?").to_string();
            assert_eq!(
                normalize(&got["rows"]),
                normalize(&want["rows"]),
                "{tenant}: rows of {request} ({path})\ngot {}\nwant {}",
                got["rows"],
                want["rows"]
            );
            assert_eq!(normalize(&got["totals"]), normalize(&want["totals"]), "{tenant}: totals of {request} ({path})");
            assert_eq!(got["meta"]["total_rows"], want["total_rows"], "{tenant}: total_rows of {request}");
            if let Some(labels) = want.get("time_labels") {
                assert_eq!(&got["meta"]["time_labels"], labels, "{tenant}: time labels of {request}");
            }
            assert_eq!(got["meta"]["timezone"], json!(s.tz), "{tenant}");
            paths.insert(path);
            checked += 1;
        }
        // The data must exercise what the requests test: enough sessions over the range.
        let totals = report(&reader, &json!({"date_range": [day(first), day(last)], "metrics": ["visits"]})).await;
        assert!(totals["totals"]["metrics"][0].as_u64().unwrap_or(0) >= 20, "{}: {totals}", s.tenant);
        assert!(checked > 40);
    }
    paths
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_report_equals_an_independent_computation() {
    let server = TestServer::start(&["--report-rollups", "false"]);
    let now = chrono::Utc::now().timestamp_millis();
    let streams = streams(&server, now).await;
    // In thirds with a flush between, so that later thirds hold late events for hours
    // already persisted.
    for part in 0..3 {
        send(&server, &streams, part).await;
        if part < 2 {
            server.admin().flush().await.expect("flush");
        }
    }
    let paths = check(&server, &streams, 3, now).await;
    assert_eq!(paths, BTreeSet::from(["raw".to_string()]));
}

/// Polls until every tenant's three-day report reads rollups for all but the newest hours.
async fn wait_for_rollups(server: &TestServer, streams: &[Stream]) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    for s in streams {
        let reader = server.admin().with_token(&s.creds.read_token);
        loop {
            let r =
                report(&reader, &json!({"date_range": "7d", "metrics": ["visits"], "dimensions": ["visit:source"]}))
                    .await;
            let spans = r["meta"]["raw_spans"].as_u64().unwrap_or(99);
            if r["meta"]["path"].as_str().is_some_and(|p| p.starts_with("rollup")) && spans <= 1 {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{}: rollups did not catch up: {}", s.tenant, r["meta"]);
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
    }
}

/// Waits until every UTC day that ended over two hours before `now` (the default
/// `--rollup-merge-after`) keeps its rollups in one file, and no hour's rows are in two files;
/// returns how many files hold more than one hour.
async fn wait_for_merged_days(server: &TestServer, streams: &[Stream], now: i64) -> i64 {
    let settled_day = (now - 2 * HOUR).div_euclid(DAY) * DAY;
    let admin = server.admin();
    let split_days = format!(
        "SELECT count(*) FROM (SELECT date_trunc('day', min_time) AS d FROM system.files \
         WHERE table_name = 'rollups' AND min_time < to_timestamp_millis({settled_day}) GROUP BY 1 HAVING count(*) > 1)"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while crate::support::scalar(&admin, &split_days).await > 0 {
        assert!(std::time::Instant::now() < deadline, "settled days still spread over several rollup files");
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    let twice = "SELECT count(*) FROM (SELECT timestamp FROM rollups WHERE rollup_name = 'totals' \
                 GROUP BY 1 HAVING count(*) > 1)";
    for s in streams {
        let reader = admin.with_token(&s.creds.read_token);
        assert_eq!(
            crate::support::scalar(&reader, twice).await,
            0,
            "{}: an hour's rows are in one file only",
            s.tenant
        );
    }
    crate::support::scalar(
        &admin,
        "SELECT count(*) FROM system.files WHERE table_name = 'rollups' AND max_time > min_time",
    )
    .await
}

/// `"accuracy": "fast"` reads visitor sketches from rollups: within the error bound the
/// answer states of the exact count.
async fn check_fast(server: &TestServer, streams: &[Stream]) {
    for s in streams {
        let reader = server.admin().with_token(&s.creds.read_token);
        for dims in [json!([]), json!(["visit:source"]), json!(["time:day"]), json!(["event:page"])] {
            let exact = json!({"date_range": "7d", "metrics": ["visitors", "visits"], "dimensions": dims});
            let mut fast = exact.clone();
            fast["accuracy"] = json!("fast");
            let (e, f) = (report(&reader, &exact).await, report(&reader, &fast).await);
            assert_eq!(f["meta"]["accuracy"], "fast", "{}", f["meta"]);
            assert_eq!(e["meta"]["accuracy"], "exact");
            let bound = f["meta"]["error_bound"]["visitors_relative"].as_f64().expect("a stated bound");
            assert!(bound > 0.0 && bound < 0.1);
            // Rows are ordered by visitors, which fast mode estimates: rows with close counts
            // may swap places, so rows pair up by their dimension values.
            let rows = |r: &Value| -> BTreeMap<String, Value> {
                let list = r["rows"].as_array().cloned().unwrap_or_default();
                list.into_iter().map(|row| (row["dimensions"].to_string(), row)).collect()
            };
            let (exact_rows, fast_rows) = (rows(&e), rows(&f));
            assert_eq!(
                exact_rows.keys().collect::<Vec<_>>(),
                fast_rows.keys().collect::<Vec<_>>(),
                "{}: the same rows ({dims})",
                s.tenant
            );
            let pairs =
                exact_rows.values().zip(fast_rows.values()).chain(std::iter::once((&e["totals"], &f["totals"])));
            for (re, rf) in pairs {
                let (x, y) = (re["metrics"][0].as_f64().unwrap_or(0.0), rf["metrics"][0].as_f64().unwrap_or(0.0));
                assert!((x - y).abs() <= (bound * x).ceil() + 1.0, "{}: fast {y} vs exact {x} ({dims})", s.tenant);
                assert_eq!(
                    re["metrics"][1], rf["metrics"][1],
                    "{}: visits stay exact ({dims}, row {re})\nexact meta {}\nfast meta {}",
                    s.tenant, e["meta"], f["meta"]
                );
            }
        }
    }
}

/// A cached report is answered again from the cache until data of its range changes: new
/// events, late events for a rolled-up hour, or a persist.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_report_changes_as_soon_as_its_data_does() {
    let server = TestServer::start(&["--rollup-interval", "300ms", "--rollup-settle", "1s"]);
    let creds = server.admin().create_tenant("cache").await.expect("tenant");
    let (writer, reader) = (server.admin().with_token(&creds.write_key), server.admin().with_token(&creds.read_token));
    let now = chrono::Utc::now().timestamp_millis();
    let old = now - 20 * HOUR;
    let event = |id: &str, ts: i64, path: &str| {
        json!({"event_id": id, "timestamp": ts, "name": "pageview", "url": format!("https://a.example{path}"), "client_id": id})
            .to_string()
    };
    writer.ingest(format!("{}\n{}", event("a", old, "/x"), event("b", old + 1000, "/y"))).await.expect("ingest");
    server.admin().flush().await.expect("flush");
    let request = json!({"date_range": "7d", "metrics": ["visitors", "pageviews"], "dimensions": ["event:page"]});
    // Wait for the old hour's rollup, so the cache is exercised on the rollup path too.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let r = report(&reader, &request).await;
        if r["meta"]["path"].as_str().is_some_and(|p| p.starts_with("rollup")) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no rollup: {}", r["meta"]);
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    let first = report(&reader, &request).await;
    let again = report(&reader, &request).await;
    assert_eq!(again["meta"]["cache_hit"], true, "{}", again["meta"]);
    assert_eq!(again["rows"], first["rows"]);
    assert_eq!(first["totals"]["metrics"], json!([2, 2]));

    // A new event in the range: the next answer is computed, and counts it.
    writer.ingest(event("c", now, "/x")).await.expect("ingest");
    let fresh = report(&reader, &request).await;
    assert_eq!(fresh["meta"]["cache_hit"], false);
    assert_eq!(fresh["totals"]["metrics"], json!([3, 3]));
    assert_eq!(report(&reader, &request).await["meta"]["cache_hit"], true);

    // A late event for the rolled-up hour: counted at once (the hour comes from events while
    // its rollup is stale).
    writer.ingest(event("d", old + 2000, "/z")).await.expect("ingest");
    let late = report(&reader, &request).await;
    assert_eq!(late["meta"]["cache_hit"], false);
    assert_eq!(late["totals"]["metrics"], json!([4, 4]));
    server.admin().flush().await.expect("flush");
    let persisted = report(&reader, &request).await;
    assert_eq!(persisted["totals"]["metrics"], json!([4, 4]), "{}", persisted["meta"]);
    let metrics = reqwest::get(format!("{}/metrics", server.url)).await.expect("metrics").text().await.expect("text");
    for name in [
        "hourglass_report_cache_hit_ratio",
        "hourglass_cache_parquet_metadata_hit_ratio",
        "hourglass_cache_object_bytes_hit_ratio",
    ] {
        assert!(metrics.contains(name), "{name} on /metrics");
    }
}

/// Rollups answer exactly what events do: the oracle's numbers, with rollups materialized,
/// with late events still buffered for rolled-up hours, with those hours stale after a
/// persist, after they are computed again, and with rollups switched off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollups_answer_exactly_what_events_do() {
    let mut server = TestServer::start(&["--rollup-interval", "300ms", "--rollup-settle", "1s"]);
    let now = chrono::Utc::now().timestamp_millis();
    let streams = streams(&server, now).await;
    send(&server, &streams, 0).await;
    send(&server, &streams, 1).await;
    server.admin().flush().await.expect("flush");
    wait_for_rollups(&server, &streams).await;
    assert!(
        wait_for_merged_days(&server, &streams, now).await >= 2,
        "the settled days merge into one rollup file each"
    );
    let paths = check(&server, &streams, 2, now).await;
    // The newest hours (and a range's partial edges) always come from events.
    assert!(paths.iter().any(|p| p.starts_with("rollup:")), "{paths:?}");
    assert!(paths.contains("raw"), "filters no rollup covers are answered from events: {paths:?}");

    check_fast(&server, &streams).await;

    // Late events for rolled-up hours, still in the buffer: those hours come from events.
    send(&server, &streams, 2).await;
    check(&server, &streams, 3, now).await;
    // Persisted: the hours are stale until the job computes them again (hours of a merged
    // day are written back into its file).
    server.admin().flush().await.expect("flush");
    check(&server, &streams, 3, now).await;
    wait_for_rollups(&server, &streams).await;
    wait_for_merged_days(&server, &streams, now).await;
    let paths = check(&server, &streams, 3, now).await;
    assert!(paths.iter().any(|p| p.starts_with("rollup:")), "{paths:?}");

    server.restart_with(&["--report-rollups", "false"]);
    let paths = check(&server, &streams, 3, now).await;
    assert_eq!(paths, BTreeSet::from(["raw".to_string()]), "rollups switched off");
}

#[tokio::test]
async fn invariants_hold_on_every_row() {
    let server = TestServer::start(&[]);
    let creds = server.admin().create_tenant("inv").await.expect("tenant");
    let now = chrono::Utc::now().timestamp_millis();
    let mut rng = StdRng::seed_from_u64(11);
    let sent = generate(&mut rng, "inv", now - 2 * DAY, now, 30 * MIN);
    let body: String = sent.iter().map(|s| format!("{}\n", s.json)).collect();
    server.admin().with_token(&creds.write_key).ingest(body).await.expect("ingest");
    let reader = server.admin().with_token(&creds.read_token);
    for dim in ["visit:source", "time:hour", "visit:device"] {
        let r = report(&reader, &json!({"date_range": "7d", "metrics": ["visitors", "visits", "events", "bounce_rate"], "dimensions": [dim]})).await;
        let mut visits = 0;
        for row in r["rows"].as_array().expect("rows") {
            let m = &row["metrics"];
            let (visitors, v, events) =
                (m[0].as_u64().expect("int"), m[1].as_u64().expect("int"), m[2].as_u64().expect("int"));
            assert!(visitors <= v, "{dim}: {row}");
            // A session starting in the range has its first event there, under the same labels.
            assert!(v <= events, "{dim}: {row}");
            if let Some(b) = m[3].as_f64() {
                assert!((0.0..=100.0).contains(&b), "{dim}: {row}");
            }
            visits += v;
        }
        // Session-level dimensions partition the sessions.
        assert_eq!(json!(visits), r["totals"]["metrics"][1], "{dim}: totals.visits is the sum of rows");
    }
}

#[tokio::test]
async fn an_event_shows_up_in_a_report_as_soon_as_it_is_acknowledged() {
    let server = TestServer::start(&[]);
    let creds = server.admin().create_tenant("fresh").await.expect("tenant");
    let reader = server.admin().with_token(&creds.read_token);
    let writer = server.admin().with_token(&creds.write_key);
    let request = json!({"date_range": "today", "metrics": ["visitors", "pageviews"], "dimensions": ["event:page"]});
    let before = report(&reader, &request).await;
    assert_eq!(before["rows"], json!([]));
    assert_eq!(before["totals"]["metrics"], json!([0, 0]));
    writer.ingest(r#"{"name":"pageview","url":"https://a.example/now","client_id":"c1"}"#).await.expect("ingest");
    let after = report(&reader, &request).await;
    assert_eq!(after["rows"], json!([{"dimensions": ["/now"], "metrics": [1, 1]}]));
    let realtime = reader
        .report_realtime(&json!({"metrics": ["current_visitors", "pageviews"], "dimensions": ["time:minute"]}))
        .await
        .expect("realtime");
    assert_eq!(realtime["totals"]["metrics"], json!([1, 1]));
    assert_eq!(realtime["rows"].as_array().map(Vec::len), Some(1));
    let labels = realtime["meta"]["time_labels"].as_array().expect("minute labels").len();
    assert!((30..=31).contains(&labels), "{labels}");
}

async fn error_of(server: &TestServer, token: &str, path: &str, body: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}{path}", server.url))
        .bearer_auth(token)
        .body(body.to_string())
        .send()
        .await
        .expect("POST");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON error"))
}

#[tokio::test]
async fn bad_requests_get_400_with_a_code_and_the_json_path() {
    let server = TestServer::start(&[]);
    let creds = server.admin().create_tenant("bad").await.expect("tenant");
    let cases = [
        (r#"{"date_range": "7d", "metrics": ["visitors", "nope"]}"#, "unknown_metric", "metrics[1]"),
        (
            r#"{"date_range": "7d", "metrics": ["visits"], "dimensions": ["time:day", "time:hour"]}"#,
            "multiple_time_dimensions",
            "dimensions[1]",
        ),
        (
            r#"{"date_range": "7d", "metrics": ["visits"], "filters": [["is", "visit:source", ["x"]], ["matches", "event:page", ["[a-"]]]}"#,
            "invalid_regex",
            "filters[1][2][0]",
        ),
        (
            r#"{"date_range": ["2026-02-30", "2026-03-01"], "metrics": ["visits"]}"#,
            "invalid_date_range",
            "date_range[0]",
        ),
        (
            r#"{"date_range": ["2026-03-02", "2026-03-01"], "metrics": ["visits"]}"#,
            "invalid_date_range",
            "date_range[1]",
        ),
        (
            r#"{"date_range": "7d", "metrics": ["visits"], "dimensions": ["visit:planet"]}"#,
            "unknown_dimension",
            "dimensions[0]",
        ),
        (r#"{"date_range": "7d", "metrics": ["visits"], "timezone": "Moon/Base"}"#, "invalid_timezone", "timezone"),
        (r#"{"date_range": "7d", "metrics": ["conversion_rate"]}"#, "invalid_request", "metrics[0]"),
        (
            r#"{"date_range": "7d", "metrics": ["visits"], "filters": [["or", [["is", "visit:nope", ["x"]]]]]}"#,
            "unknown_dimension",
            "filters[0][1][0][1]",
        ),
        (r#"{"date_range": "7d", "metrics": ["visits"], "limit": 0}"#, "invalid_pagination", "limit"),
        (r#"[1, 2]"#, "invalid_request", ""),
        (r#"{"date_range": "7d", "metrics": ["visits"],"#, "invalid_request", ""),
    ];
    for (body, code, path) in cases {
        let (status, error) = error_of(&server, &creds.read_token, "/api/v1/report", body).await;
        assert_eq!(status, 400, "{body}: {error}");
        assert_eq!(error["error"]["code"], code, "{body}: {error}");
        assert_eq!(error["error"]["path"], path, "{body}: {error}");
        assert!(error["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{error}");
    }
    let (status, _) =
        error_of(&server, &creds.write_key, "/api/v1/report", r#"{"date_range":"7d","metrics":["visits"]}"#).await;
    assert_eq!(status, 403, "a write key cannot read reports");
    let (status, _) =
        error_of(&server, "hgr_nope", "/api/v1/report", r#"{"date_range":"7d","metrics":["visits"]}"#).await;
    assert_eq!(status, 401);
    let (status, error) =
        error_of(&server, &creds.read_token, "/api/v1/report/realtime", r#"{"date_range":"7d","metrics":["visits"]}"#)
            .await;
    assert_eq!((status, error["error"]["path"].as_str()), (400, Some("date_range")));
}

#[tokio::test]
async fn metadata_lists_dimensions_metrics_and_the_prop_keys_seen() {
    let server = TestServer::start(&[]);
    let creds = server.admin().create_tenant("meta").await.expect("tenant");
    let writer = server.admin().with_token(&creds.write_key);
    writer.ingest(r#"{"name":"signup","props":{"plan":"pro","referral":"x"},"client_id":"c"}"#).await.expect("ingest");
    let meta = server.admin().with_token(&creds.read_token).metadata().await.expect("metadata");
    assert_eq!(meta["prop_keys"], json!(["plan", "referral"]));
    let names: Vec<&str> =
        meta["dimensions"].as_array().expect("dims").iter().filter_map(|d| d["name"].as_str()).collect();
    for name in ["event:page", "event:props:plan", "visit:source", "visit:entry_page", "time:week"] {
        assert!(names.contains(&name), "{name} in {names:?}");
    }
    let metrics: Vec<&str> =
        meta["metrics"].as_array().expect("metrics").iter().filter_map(|m| m["name"].as_str()).collect();
    assert!(metrics.contains(&"bounce_rate") && metrics.contains(&"current_visitors"));
}
